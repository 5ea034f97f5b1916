"""Workers on the same object serialise on a PostgreSQL advisory lock (real server, real processes)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.conftest import WORKER, request_for, run, unique
from tests.servers import Server
from tests.test_pg_support import execute, one
from worker.adapters.postgres import advisory_key

pytestmark = pytest.mark.postgres


def start(pg: Server, kind: str, spec: dict[str, Any], password: str | None = None) -> subprocess.Popen[str]:
    env = pg.worker_env(DBOPS_REQUEST=json.dumps(request_for(pg, kind, spec)))
    if password:
        env["DBOPS_PASSWORD"] = password
    return subprocess.Popen(
        [WORKER, "apply"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out.strip().splitlines()[-1])


def test_concurrent_workers_on_one_user_both_succeed_and_create_once(pg: Server) -> None:
    db = unique("db")
    name = unique("user")
    procs = [start(pg, "Database", {"name": db}) for _ in range(3)]
    procs += [start(pg, "DatabaseUser", {"username": name}, password="pw-" + name) for _ in range(3)]
    results = [finish(p) for p in procs]
    assert [code for code, _ in results] == [0] * 6, results
    changes = [c for _, result in results for c in result["changes"]]
    assert sum(c.startswith("CREATE DATABASE") for c in changes) == 1
    assert sum(c.startswith("CREATE ROLE") for c in changes) == 1
    assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)) == 1


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
    assert run(pg, "apply", "DatabaseUser", {"username": name}, lockTimeout="1s").code == 0
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
