"""Helpers for tests that go through the offline loop (`dbops_local`): manifests and a cluster.

The `function_client` fixture (tests/conftest.py) serves the real function once per test module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from dbops_local.crossplane import API_VERSION
from dbops_local.loop import OfflineCluster, load_compositions
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.servers import Server


class RecordingClient:
    """The function's client, keeping every response (results and conditions are replaced on the next call)."""

    def __init__(self, inner: FunctionClient) -> None:
        self.inner = inner
        self.responses: list[dict[str, Any]] = []

    def run(self, req: Any) -> Any:
        rsp = self.inner.run(req)
        self.responses.append(MessageToDict(rsp))
        return rsp


ROOT = Path(__file__).resolve().parent.parent


def kube_name(prefix: str) -> str:
    """A fresh Kubernetes object name."""
    return unique(prefix).replace("_", "-")


def cluster(
    client: FunctionClient, sleep: Callable[[float], None] = time.sleep, *, plan_only: bool = False
) -> OfflineCluster:
    """Claims through the real function; transient failures are retried after 1 s, 2 s, 2 s, ... Periodic re-runs
    are off, so a resync epoch (or health check) that happens to begin during a test adds no Job to count. Pod reads
    are opted in (`status.readPods: true`), since these tests check the worker's facts and messages in status; the
    shipped default (off) is covered by tests/test_offline_cli.py and the function tests.
    `sleep`: how the loop waits for a retry (a test may count the waits, or act during one); `plan_only`:
    `dbops-local --plan`, workers plan instead of applying."""
    overrides = {
        "retry": {"baseSeconds": 1, "maxSeconds": 2},
        "resync": {"enabled": False},
        "status": {"readPods": True},
    }
    compositions = load_compositions(ROOT / "apis", ROOT / "apis-namespaced")
    return OfflineCluster(client, compositions, input_overrides=overrides, sleep=sleep, plan_only=plan_only)


def claim(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def admin_secret(
    server: Server, name: str, password: str | None = None, username: str | None = None
) -> dict[str, Any]:
    """The instance's admin Secret with the server's admin credentials (or another password or user)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {
            "username": server.admin_user if username is None else username,
            "password": server.admin_password if password is None else password,
        },
    }


def instance_claim(server: Server, name: str, secret: str, **spec: Any) -> dict[str, Any]:
    """A DatabaseInstance for `server` (host and port of the private server) with admin Secret `secret`."""
    connection = {"host": server.host, "port": server.port, "secretRef": {"name": secret}}
    return claim("DatabaseInstance", name, {"engine": server.engine, "connection": connection, **spec})


def condition(claim_obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The claim's condition of type `kind` ({} when absent)."""
    for cond in claim_obj.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}
