"""Reading Pods on the real control plane: Crossplane caches required resources cluster-wide, so reading Pods needs
the Pod rule of deploy/rbac.yaml or the step fails; `status.readPods: false` needs no Pod access at all. Each test
has a control plane of its own (installed without the Pod rule), since Crossplane keeps a Pod cache once started."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import (
    conditions,
    namespace,
    prepare_quickstart_server,
    quickstart,
    wait_all_ready,
)
from tests.servers import Server
from tools.cluster.controlplane import ROOT, ControlPlane
from tools.cluster.kube import load_yaml, wait

pytestmark = pytest.mark.timeout(900)


def test_reading_pods_without_the_pod_rule_fails_the_step_until_the_rule_is_applied(
    control_plane: ControlPlane, pg: Server
) -> None:
    with ControlPlane.start(control_plane.tools) as cp:
        cp.install(pod_rule=False)
        kube = cp.admin
        prepare_quickstart_server(pg)
        ns = namespace(kube, "pods-no-rbac")
        docs = [d for d in quickstart(pg) if d["kind"] in ("Secret", "DatabaseInstance")]
        kube.apply_all(docs, ns)

        def unsynced() -> str | None:
            for xr in kube.list("dbops.dbprovision.io/v1alpha1", "XDatabaseInstance"):
                synced = conditions(xr).get("Synced", {})
                if synced.get("status") == "False":
                    return str(synced.get("message", ""))
            return None

        message = wait(unsynced, 400, "the XR's Synced=False", interval=2)
        assert "pods" in message.lower(), message
        kube.apply_all(load_yaml(ROOT / "deploy/rbac.yaml"))
        wait_all_ready(kube, docs, ns, timeout=400)


def test_without_read_pods_no_pod_access_is_needed(control_plane: ControlPlane, pg: Server) -> None:
    with ControlPlane.start(control_plane.tools, step_input={"status": {"readPods": False}}) as cp:
        cp.install(pod_rule=False)
        kube = cp.admin
        prepare_quickstart_server(pg)
        ns = namespace(kube, "pods-off")
        docs = quickstart(pg)
        kube.apply_all(docs, ns)
        claims = wait_all_ready(kube, docs, ns)
        for obj in claims.values():
            assert obj["status"]["message"].startswith("converged by Job"), obj["status"]
        assert "instance" not in claims["postgres-server"]["status"], "no facts without the worker's result"
