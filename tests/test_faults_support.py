"""Helpers shared by the fault tests (no tests here): workers in the background, waiting for a worker to block,
dedicated servers that may be stopped, and the offline cluster for faults seen through the function.

The blocking trick: a test session holds a lock that the worker's second (or later) statement needs, so the worker
is reliably *inside* its plan when the fault is injected (server stopped, worker killed, timeout reached).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from function.offline.loop import OfflineCluster
from function.offline.runtime import FunctionClient
from tests.conftest import WORKER, WorkerRun, unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server, private_servers

WAIT_SECONDS = 60  # how long to wait for something that must happen (a worker to block, a session to end)


def start_worker(
    server: Server,
    action: str,
    request: dict[str, Any],
    password: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`dbops-worker` in the background, with the request and secrets in its environment as a Job has them."""
    full_env = server.worker_env(DBOPS_REQUEST=json.dumps(request))
    if password is not None:
        full_env["DBOPS_PASSWORD"] = password
    full_env.update(env or {})
    return subprocess.Popen(
        [WORKER, action], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> WorkerRun:
    out, err = proc.communicate(timeout=WAIT_SECONDS * 2)
    lines = out.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    return WorkerRun(proc.returncode, result, out, err)


def wait_until(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll `condition` until it holds; fail naming `what` (and the worker's output if it ended meanwhile)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the worker ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting until {what}")
        time.sleep(0.05)


def pg_blocked(pg: Server, application: str, statement: str) -> bool:
    """Whether the worker's session (by application_name) waits on a lock in a statement starting so."""
    rows = pg.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock' "
        "AND query LIKE %s",
        (application, statement + "%"),
    )
    return bool(rows)


def maria_blocked(maria: Server, statement: str) -> bool:
    """Whether a session waits on a lock running a statement that starts so."""
    rows = maria.query(
        "SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND STATE LIKE 'Waiting%%'",
        (statement + "%",),
    )
    return bool(rows)


@contextmanager
def dedicated(engine: str, cert_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Iterator[Server]:
    """A private server of its own, which a test may stop and start (the session-wide ones stay up)."""
    with private_servers((engine,), cert_hosts=cert_hosts) as servers:
        server = servers[engine]
        if server.start_callback is None:
            pytest.skip("the server comes from DBOPS_TEST_*_URL; it cannot be stopped and started here")
        yield server


def jobs_of(c: OfflineCluster, claim: dict[str, Any]) -> list[dict[str, Any]]:
    """The claim's Jobs that exist now (replaced ones are deleted)."""
    return [o for o in c.composed_of(claim).values() if o["kind"] == "Job"]


def worker_runs(c: OfflineCluster, claim: dict[str, Any]) -> list[str]:
    """The logs of every worker Pod that ran for the claim so far, replaced Jobs included (Pods are named
    `<xr name>-<digest>-<attempt>`)."""
    xr = c.composite(claim)
    assert xr is not None, f"{claim['kind']} {claim['metadata']['name']} has no XR"
    prefix = xr["metadata"]["name"] + "-"
    return [logs for pod, logs in sorted(c.pod_logs.items()) if pod.startswith(prefix)]


@dataclass
class OutageRun:
    """Claims applied while the server was down, reconciled once then (and the server started again)."""

    cluster: OfflineCluster
    instance: str
    database: str
    db_name: str
    down: dict[str, Any]  # the DatabaseInstance claim while the server was down
    waiting: dict[str, Any]  # the Database claim while the server was down


def claims_during_outage(server: Server, client: FunctionClient) -> OutageRun:
    """Apply an instance and a Database while `server` is stopped, reconcile without waiting, start it again."""
    instance, database = kube_name(f"{server.engine}-down"), kube_name(f"{server.engine}-down-db")
    db_name = unique("db")
    c = cluster(client)
    server.stop()
    try:
        c.apply(
            [
                admin_secret(server, f"{instance}-admin"),
                instance_claim(server, instance, f"{instance}-admin"),
                claim("Database", database, {"instanceRef": {"name": instance}, "name": db_name}),
            ]
        )
        c.reconcile(max_wait=0)
        down = c.claim("DatabaseInstance", instance)
        waiting = c.claim("Database", database)
    finally:
        server.start()
    return OutageRun(c, instance, database, db_name, down, waiting)
