"""The real-control-plane suite (marker `cluster`): etcd, kube-apiserver, kube-controller-manager and Crossplane core
built by tools/cluster/build-tools.sh, started once per session by tools.cluster.controlplane, with dbops installed
as docs/packages.md says. Skipped, with the reason, when the tools are not built; DBOPS_REQUIRE_TOOLS=1 makes that
a failure instead (CI)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server
from tools.cluster.controlplane import READ_PODS, ControlPlane, missing_tools, tools_dir
from tools.cluster.kube import Kube, Obj, load_yaml, wait

ROOT = Path(__file__).resolve().parents[2]
GROUP = "dbops.dbprovision.io/v1alpha1"
QUICKSTART_PASSWORD = "supersecret"
MEASURED: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.section("cluster measurements (seconds)")
        for name, value in sorted(MEASURED.items()):
            terminalreporter.write_line(f"{name}: {value:.1f}")


@pytest.fixture(scope="session")
def cluster_tools() -> Path:
    """The built tools' directory (tools/cluster/build-tools.sh), or skip (fail with DBOPS_REQUIRE_TOOLS=1)."""
    tools = tools_dir()
    missing = missing_tools(tools)
    if missing:
        reason = f"missing {', '.join(missing)} in {tools}/bin: run tools/cluster/build-tools.sh all"
        if os.environ.get("DBOPS_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return tools


@pytest.fixture(scope="session")
def control_plane(cluster_tools: Path) -> Iterator[ControlPlane]:
    """Opted in to Pod reads (`status.readPods: true` and deploy/rbac-pods.yaml), since these tests check the
    worker's facts and messages on the claims; the shipped default (no Pod reads, no Pod rule) has control planes of
    its own in test_pod_reads.py."""
    tools = cluster_tools
    t0 = time.monotonic()
    with ControlPlane.start(tools, step_input=READ_PODS) as cp:
        MEASURED["control plane start"] = time.monotonic() - t0
        t1 = time.monotonic()
        cp.install(pod_rule=True)
        MEASURED["install (packages Healthy, kinds served)"] = time.monotonic() - t1
        yield cp


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    return control_plane.admin


def prepare_quickstart_server(server: Server) -> None:
    """Give the server's admin the Quick Start's password so its Secret applies unchanged."""
    if server.engine == "postgres":
        server.query(f"ALTER ROLE {server.admin_user} PASSWORD '{QUICKSTART_PASSWORD}'")
    else:
        server.query(f"ALTER USER '{server.admin_user}'@'%' IDENTIFIED BY '{QUICKSTART_PASSWORD}'")
    server.admin_password = QUICKSTART_PASSWORD


def point_at(docs: list[Obj], server: Server) -> list[Obj]:
    """The only change to the Quick Start: the instance's host and port name the private server."""
    for doc in docs:
        if doc["kind"] == "DatabaseInstance":
            doc["spec"]["connection"]["host"] = server.host
            doc["spec"]["connection"]["port"] = server.port
    return docs


def quickstart(server: Server) -> list[Obj]:
    path = "examples/quickstart.yaml" if server.engine == "postgres" else "examples/quickstart-mariadb.yaml"
    return point_at(load_yaml(ROOT / path), server)


def namespace(kube: Kube, name: str) -> str:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # The namespace's default ServiceAccount must exist before Pods can be admitted.
    wait(lambda: kube.get("v1", "ServiceAccount", "default", name), 60, f"ServiceAccount {name}/default")
    return name


def claim(kube: Kube, kind: str, name: str, ns: str) -> Obj:
    return kube.get(GROUP, kind, name, ns) or {}


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def is_ready(obj: Obj) -> bool:
    conds = conditions(obj)
    return obj.get("status", {}).get("phase") == "Ready" and conds.get("Ready", {}).get("status") == "True"


def wait_claim(
    kube: Kube,
    kind: str,
    name: str,
    ns: str,
    predicate: Any = is_ready,
    timeout: float = 240,
    what: str = "Ready",
) -> Obj:
    last: dict[str, Obj] = {}

    def probe() -> Obj | None:
        obj = claim(kube, kind, name, ns)
        last["obj"] = obj
        return obj if obj and predicate(obj) else None

    try:
        return wait(probe, timeout, f"{kind} {ns}/{name} {what}", interval=0.5)
    except TimeoutError as exc:
        status = last.get("obj", {}).get("status", {})
        raise AssertionError(f"{exc}; last status: {status}") from None


def wait_all_ready(kube: Kube, docs: list[Obj], ns: str, timeout: float = 300) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for doc in docs:
        if doc["apiVersion"] == GROUP:
            out[doc["metadata"]["name"]] = wait_claim(
                kube, doc["kind"], doc["metadata"]["name"], ns, timeout=timeout
            )
    return out
