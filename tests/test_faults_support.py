"""Helpers shared by the fault tests (no tests here): workers in the background, waiting for a worker to block,
dedicated servers that may be stopped, and the offline cluster for faults seen through the function.

The blocking trick: a test session holds a lock that the worker's second (or later) statement needs, so the worker
is reliably *inside* its plan when the fault is injected (server stopped, worker killed, timeout reached). Races are
forced the same way: the test holds the lock the racing workers need and counts them waiting before it lets go.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.conftest import WORKER, WorkerRun, run_worker, unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server, Statement, is_write, private_servers
from tests.test_mysql_support import HIDDEN_WRITE
from worker.adapters.mysql import lock_name
from worker.adapters.postgres import advisory_key

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


def wait_until(
    condition: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[str] | Sequence[subprocess.Popen[str]] | None = None,
) -> None:
    """Poll `condition` until it holds; fail naming `what` (and a worker's output if one ended meanwhile)."""
    procs = [] if proc is None else [proc] if isinstance(proc, subprocess.Popen) else list(proc)
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        for ended in (p for p in procs if p.poll() is not None):
            out, err = ended.communicate()
            pytest.fail(f"a worker ended (exit {ended.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting until {what}")
        time.sleep(0.05)


def pg_waiting_in(pg: Server, application: str, statement: str) -> int:
    """How many sessions of `application` wait on a lock in a statement starting so."""
    rows = pg.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock' "
        "AND query LIKE %s",
        (application, statement + "%"),
    )
    return int(rows[0][0])


def pg_blocked(pg: Server, application: str, statement: str) -> bool:
    """Whether the worker's session (by application_name) waits on a lock in a statement starting so."""
    return pg_waiting_in(pg, application, statement) > 0


def maria_waiting_in(maria: Server, statement: str) -> int:
    """How many sessions wait on a lock running a statement that starts so."""
    rows = maria.query(
        "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND STATE LIKE 'Waiting%%'",
        (statement + "%",),
    )
    return int(rows[0][0])


def maria_blocked(maria: Server, statement: str) -> bool:
    """Whether a session waits on a lock running a statement that starts so."""
    return maria_waiting_in(maria, statement) > 0


# --- the workers' object locks, held by a test ------------------------------------------------------------------
# Workers on one object serialise on a server-side lock named by the handler's lock_key (`role:u`, `database:d`,
# `account:u`): PostgreSQL pg_advisory_lock(advisory_key(key)) in the admin database, MySQL GET_LOCK(lock_name(key)).
# A test that takes that lock first makes every worker on the object provably wait for it (a race by construction,
# not by luck of scheduling), and can count the waiters in the server's own lock tables.


@contextmanager
def holding_object_lock(server: Server, key: str) -> Iterator[None]:
    """Hold the workers' lock on `key` on a separate session until the block ends."""
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            if server.engine == "postgres":
                cur.execute("SELECT pg_advisory_lock(%s)", (advisory_key(key),))
            else:
                cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(key),))
                assert cur.fetchone() == (1,), f"the lock on {key} is taken already"
        yield
    finally:
        conn.close()  # the lock goes with the session


def object_lock_waiters(server: Server, key: str) -> int:
    """How many sessions wait for the workers' lock on `key` (seen in the server's lock tables)."""
    if server.engine == "postgres":
        # pg_locks shows a bigint advisory key as its high and low 32 bits (classid, objid; objsubid 1).
        unsigned = advisory_key(key) & 0xFFFF_FFFF_FFFF_FFFF
        rows = server.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        )
        return int(rows[0][0])
    rows = server.query("SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'")
    quoted = f"GET_LOCK('{lock_name(key)}'"
    return sum(1 for _, info in rows if info and quoted in info)


# --- a re-run that must write nothing ---------------------------------------------------------------------------


# A statement carrying a secret is kept out of the statement log; the switch that hides it is logged, so it stands
# for the hidden write (otherwise a re-set password would look like "no write" in the log).
PG_HIDDEN_WRITE = "SET LOCAL log_statement = "


def server_writes(server: Server, mark: int) -> list[Statement]:
    """The write statements the server logged since `mark`, counting the switch that hides one as a write."""
    assert server.log is not None
    hidden = PG_HIDDEN_WRITE if server.engine == "postgres" else HIDDEN_WRITE
    return [s for s in server.log.since(mark) if is_write(s.text) or s.text.strip().startswith(hidden)]


def assert_no_op(
    server: Server, request: dict[str, Any], password: str | None = None, env: dict[str, str] | None = None
) -> None:
    """Run the worker again on a converged request: it exits 0, reports no change and no write, and the server's
    own statement log (where the tests have one) shows no write statement while it ran."""
    mark = server.log.mark() if server.log is not None else None
    again = run_worker(server, "apply", request, password=password, env=env)
    assert again.code == 0, again.result
    assert again.result["changes"] == []
    assert again.result["statements"]["writes"] == 0
    if mark is not None:
        assert server_writes(server, mark) == []


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


def assert_a_further_reconcile_runs_no_job(c: OfflineCluster) -> None:
    """Converged through the function: reconciling again starts no worker at all (so it cannot write)."""
    before = c.jobs_run
    c.reconcile(max_wait=0)
    assert c.jobs_run == before, "a converged claim started another worker"


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
