"""Workers on the same object serialise on a PostgreSQL advisory lock (real server, real processes)."""

from __future__ import annotations

import pytest

from tests.conftest import request_for, run, unique
from tests.servers import Server
from tests.test_faults_support import (
    assert_no_op,
    finish,
    holding_object_lock,
    object_lock_waiters,
    start_worker,
    wait_until,
)
from tests.test_pg_support import can_login, execute, one
from worker.adapters.postgres import advisory_key

pytestmark = pytest.mark.postgres


def test_workers_waiting_on_one_object_lock_all_succeed_and_create_once(pg: Server) -> None:
    """Three Jobs for one database and three for one role at once (old and new Jobs, retries). The test holds both
    object locks first, so every worker provably waits for its lock (counted in pg_locks) before any may write;
    released, they take it one by one and all but the first find the work done under the lock."""
    db, name = unique("db"), unique("user")
    password = "pw-" + name
    database = request_for(pg, "Database", {"name": db}, lockTimeout="10min")
    user = request_for(pg, "DatabaseUser", {"username": name}, lockTimeout="10min")
    keys = (f"database:{db}", f"role:{name}")
    with holding_object_lock(pg, keys[0]), holding_object_lock(pg, keys[1]):
        procs = [start_worker(pg, "apply", database) for _ in range(3)]
        procs += [start_worker(pg, "apply", user, password=password) for _ in range(3)]
        wait_until(
            lambda: [object_lock_waiters(pg, key) for key in keys] == [3, 3],
            "all six workers wait for their object's lock",
            procs,
        )
    runs = [finish(p) for p in procs]
    assert [r.code for r in runs] == [0] * 6, [r.result for r in runs]
    changes = [c for r in runs for c in r.result["changes"]]
    assert sum(c.startswith("CREATE DATABASE") for c in changes) == 1
    assert sum(c.startswith("CREATE ROLE") for c in changes) == 1
    assert one(pg, "SELECT count(*) FROM pg_database WHERE datname = %s", (db,)) == 1
    assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)) == 1
    assert can_login(pg, name, password)
    assert_no_op(pg, database)
    assert_no_op(pg, user, password=password)


def test_lock_wait_is_bounded_by_lock_timeout_and_transient(pg: Server) -> None:
    name = unique("user")
    holder = pg.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (advisory_key(f"role:{name}"),))
        blocked = run(pg, "apply", "DatabaseUser", {"username": name}, lockTimeout="1s")
        assert blocked.code == 1
        assert blocked.error == {**blocked.error, "class": "transient", "code": "LockTimeout"}
        assert f"role:{name}" in blocked.error["message"]
        assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)) == 0
    finally:
        holder.close()  # the session lock goes with the session
    retried = run(pg, "apply", "DatabaseUser", {"username": name}, lockTimeout="1s")
    assert retried.code == 0, retried.result
    assert len(retried.result["changes"]) == 2, retried.result["changes"]  # the role and its marker
    assert retried.result["changes"][0].startswith(f"CREATE ROLE {name} ")
    assert_no_op(pg, request_for(pg, "DatabaseUser", {"username": name}, lockTimeout="1s"))
    execute(pg, f"DROP ROLE {name}")


def test_a_no_op_takes_no_lock(pg: Server) -> None:
    name = unique("user")
    assert run(pg, "apply", "DatabaseUser", {"username": name}).code == 0
    holder = pg.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (advisory_key(f"role:{name}"),))
        # Converged already: observed without the lock, nothing to do, so the held lock does not matter.
        result = run(pg, "apply", "DatabaseUser", {"username": name}, lockTimeout="1s")
        assert result.code == 0
        assert result.result["statements"] == {"reads": 1, "writes": 0}
    finally:
        holder.close()
