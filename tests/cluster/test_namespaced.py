"""The namespaced shape on the real control plane: the Configuration `dbops-namespaced` installs beside `dbops`
(one Function for both), and the seed's Quick Start as Crossplane v2 namespaced XRs (examples/namespaced/, only
apiVersion changed; host and port pointed at the private server) reaches Ready on both engines. Everything composed
lives in the XRs' namespace, controlled by its XR; nothing is written to crossplane-system."""

from __future__ import annotations

import base64
import time

import pytest

from tests.cluster.conftest import (
    MEASURED,
    ROOT,
    conditions,
    namespace,
    point_at,
    prepare_quickstart_server,
)
from tests.servers import Server
from tools.cluster.controlplane import NAMESPACE, ControlPlane
from tools.cluster.kube import Kube, Obj, load_yaml, wait

NS_GROUP = "ns.dbops.dbprovision.io/v1alpha1"
FILES = {"postgres": "quickstart.yaml", "mariadb": "quickstart-mariadb.yaml"}
SECRETS = {"postgres": "myapp-db-credentials", "mariadb": "shop-db-credentials"}


@pytest.fixture(scope="module")
def namespaced(control_plane: ControlPlane) -> Kube:
    t0 = time.monotonic()
    control_plane.install_namespaced()
    MEASURED["install namespaced (Configuration Healthy, kinds served)"] = time.monotonic() - t0
    assert len(control_plane.function_names()) == 1, "both Configurations depend on the one Function"
    return control_plane.admin


@pytest.fixture(params=["postgres", "mariadb"])
def engine_server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue("pg" if request.param == "postgres" else "maria")
    prepare_quickstart_server(server)
    return server


def _ready(kube: Kube, kind: str, name: str, ns: str) -> Obj | None:
    obj = kube.get(NS_GROUP, kind, name, ns)
    if not obj:
        return None
    ok = (
        obj.get("status", {}).get("phase") == "Ready"
        and conditions(obj).get("Ready", {}).get("status") == "True"
    )
    return obj if ok else None


def test_namespaced_quickstart_reaches_ready_in_its_own_namespace(
    namespaced: Kube, engine_server: Server
) -> None:
    kube = namespaced
    ns = namespace(kube, f"nsqs-{engine_server.engine}")
    docs = point_at(load_yaml(ROOT / "examples/namespaced" / FILES[engine_server.engine]), engine_server)
    xrs = [d for d in docs if d["kind"] != "Secret"]
    assert {d["apiVersion"] for d in xrs} == {NS_GROUP}
    system_secrets = {s["metadata"]["name"] for s in kube.list("v1", "Secret", NAMESPACE)}
    t0 = time.monotonic()
    kube.apply_all(docs, ns)
    ready: dict[str, Obj] = {}
    for doc in xrs:
        name = doc["metadata"]["name"]
        last: dict[str, Obj] = {}

        def probe(kind: str = doc["kind"], name: str = name, last: dict[str, Obj] = last) -> Obj | None:
            last["obj"] = kube.get(NS_GROUP, kind, name, ns) or {}
            return _ready(kube, kind, name, ns)

        try:
            ready[name] = wait(probe, 300, f"{doc['kind']} {ns}/{name} Ready", interval=0.5)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last status: {last.get('obj', {}).get('status')}") from None
    MEASURED[f"namespaced quickstart {engine_server.engine}: apply to all Ready"] = time.monotonic() - t0

    for name, xr in ready.items():
        # Crossplane's fields under spec.crossplane, no claim in front, the worker's result on the XR itself.
        assert "claimRef" not in xr["spec"] and "compositionRef" not in xr["spec"], xr["spec"]
        assert xr["spec"]["crossplane"]["compositionRef"]["name"].endswith(".ns.dbops.dbprovision.io")
        assert xr["status"]["message"].startswith("converged by Job"), xr["status"]

        # The XR as it is now: the snapshot taken when it became Ready may name a Job a later health check or
        # resync has replaced since (its status names the new one once Crossplane has written it).
        def current_job(kind: str = xr["kind"], name: str = name) -> Obj | None:
            job_name = (kube.get(NS_GROUP, kind, name, ns) or {}).get("status", {}).get("job")
            return kube.get("batch/v1", "Job", job_name, ns) if job_name else None

        try:
            job = wait(current_job, 60, f"the Job {name}'s status names, in {ns}", interval=0.5)
        except TimeoutError:
            raise AssertionError(f"the Job of {name} is not in {ns}") from None
        [owner] = [r for r in job["metadata"]["ownerReferences"] if r.get("controller")]
        assert (owner["apiVersion"], owner["kind"], owner["name"]) == (NS_GROUP, xr["kind"], name)

    secret = kube.get("v1", "Secret", SECRETS[engine_server.engine], ns)
    assert secret is not None
    [owner] = [r for r in secret["metadata"]["ownerReferences"] if r.get("controller")]
    assert (owner["apiVersion"], owner["kind"]) == (NS_GROUP, "DatabaseUser")
    creds = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert creds["host"] == engine_server.host and int(creds["port"]) == engine_server.port
    conn = engine_server.connect(
        user=creds["username"], password=creds["password"], database=creds["database"]
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    conn.close()
    # Nothing composed for these XRs outside their namespace: no connection Secret in crossplane-system.
    assert {s["metadata"]["name"] for s in kube.list("v1", "Secret", NAMESPACE)} == system_secrets
    legacy = kube.list(
        "dbops.dbprovision.io/v1alpha1", "XDatabaseUser", labels=f"crossplane.io/claim-namespace={ns}"
    )
    assert legacy == [], "no claim, no legacy XR"
