"""DatabaseUser password rotation on a real PostgreSQL (strategy role-inheritance, docs/worker.md "Password
rotation"): an application's connection and logins keep working through every step, new logins use the new
credential, the old one fails once retired, a half-done run is finished by the next, and a converged run writes
nothing. Passwords never reach the statement log."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg2
import pytest

from tests.conftest import apply_ok, unique
from tests.servers import Server
from tests.test_pg_support import can_login, execute, log_text_during, mark, one, writes_during

pytestmark = pytest.mark.postgres


def _spec(name: str, rotation: dict[str, Any]) -> dict[str, Any]:
    return {"username": name, "rotation": {"strategy": "role-inheritance", **rotation}}


def _select(conn: Any, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return int(cur.fetchone()[0])


def test_rotation_keeps_old_and_new_working_until_retired(pg: Server) -> None:
    name = unique("rot")
    table = unique("t")
    p0, p1, p2 = (secrets.token_urlsafe(24) for _ in range(3))
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 0}), password=p0)
    execute(
        pg,
        f"CREATE TABLE {table} (x int)",
        f"GRANT SELECT, INSERT ON {table} TO {name}",
        f"CREATE SCHEMA {table}_s",
        f"GRANT USAGE, CREATE ON SCHEMA {table}_s TO {name}",
    )
    app = pg.connect(user=name, password=p0)  # the application's long-lived connection
    app.autocommit = True
    assert _select(app, table) == 0

    # Step 1: the login role of generation 1, proved by a real login; the old credential still works.
    result, log = log_text_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    )
    assert result.result["observed"]["rotation"] == {"generation": 1, "verified": True, "active": [0, 1]}
    assert p1 not in log and "SCRAM-SHA-256$" not in log and p1 not in result.stdout + result.stderr
    assert can_login(pg, name, p0) and can_login(pg, f"{name}_r1", p1)
    assert _select(app, table) == 0
    new = pg.connect(user=f"{name}_r1", password=p1)
    new.autocommit = True
    with new.cursor() as cur:
        cur.execute(f"INSERT INTO {table} VALUES (1)")  # the shared role's privilege, inherited
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == name  # ALTER ROLE ... SET role: the session acts as the shared role
        created = unique("made")
        cur.execute(f"CREATE TABLE {table}_s.{created} (x int)")
    assert one(pg, "SELECT tableowner FROM pg_tables WHERE tablename = %s", (created,)) == name
    new.close()
    assert one(
        pg, "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (f"{name}_r1",)
    )

    # A converged re-run writes nothing, before and after the Secret switch (the same request).
    again, writes = writes_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    )
    assert writes == []
    assert again.result["observed"]["rotation"]["verified"] is True

    # Grace period over: the user's own login is retired (NOLOGIN, never dropped: it holds everything).
    retire = _spec(name, {"generation": 1, "retireBefore": 1})
    apply_ok(pg, "DatabaseUser", retire, password=p1)
    assert not can_login(pg, name, p0)
    assert can_login(pg, f"{name}_r1", p1)
    assert _select(app, table) == 1  # an open session is not cut: only new logins fail
    app.close()
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", retire, password=p1))
    assert writes == []

    # The next rotation: generation 2 next to 1, then 1 is dropped.
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 2, "retireBefore": 1}), password=p2)
    assert can_login(pg, f"{name}_r1", p1) and can_login(pg, f"{name}_r2", p2)
    done = apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 2, "retireBefore": 2}), password=p2)
    assert done.result["observed"]["rotation"] == {"generation": 2, "verified": True, "active": [2]}
    assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (f"{name}_r1",)) == 0
    assert not can_login(pg, f"{name}_r1", p1)

    # A lost status: a request without a generation only reads, and finds generation 2 and whether the Secret's
    # password is its own.
    found, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", _spec(name, {}), password=p2))
    assert writes == []
    assert found.result["observed"]["rotation"] == {"generation": 2, "verified": True, "active": [2]}
    stale = apply_ok(pg, "DatabaseUser", _spec(name, {}), password=p1)
    assert stale.result["observed"]["rotation"]["verified"] is False
    assert stale.result["observed"]["login"] is False  # the read-only run left the user NOLOGIN


def test_half_done_rotation_is_finished_and_owning_role_only_disabled(pg: Server) -> None:
    name = unique("rot")
    p0, p1, p2 = (secrets.token_urlsafe(24) for _ in range(3))
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 0}), password=p0)
    execute(pg, f"CREATE SCHEMA {name}_s", f"GRANT USAGE, CREATE ON SCHEMA {name}_s TO {name}")
    # A Job killed after its first statements: the login role exists, marked, with no password nor SET role.
    execute(pg, f"CREATE ROLE {name}_r1 LOGIN")
    mark(pg, "ROLE", f"{name}_r1")
    assert not can_login(pg, f"{name}_r1", p1)
    assert can_login(pg, name, p0)  # no lockout meanwhile
    run = apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    assert run.result["observed"]["rotation"]["verified"] is True
    assert can_login(pg, f"{name}_r1", p1) and can_login(pg, name, p0)
    assert one(pg, "SELECT pg_has_role(%s, %s, 'MEMBER')", (f"{name}_r1", name)) is True

    # An application that SET ROLE NONE and created a table as the login role itself: it is kept (NOLOGIN).
    conn = pg.connect(user=f"{name}_r1", password=p1)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET ROLE NONE")  # RESET ROLE would go back to the SET role default
        cur.execute(f"CREATE TABLE {name}_s.own (x int)")
    conn.close()
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 2, "retireBefore": 1}), password=p2)
    last = apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 2, "retireBefore": 2}), password=p2)
    assert any("set NOLOGIN instead of dropped" in w for w in last.result.get("warnings", [])), last.result
    assert one(pg, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (f"{name}_r1",)) is False
    assert not can_login(pg, f"{name}_r1", p1) and not can_login(pg, name, p0)
    assert can_login(pg, f"{name}_r2", p2)


def test_someone_elses_role_of_that_name_is_never_taken(pg: Server) -> None:
    name = unique("rot")
    p0, p1 = (secrets.token_urlsafe(24) for _ in range(2))
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 0}), password=p0)
    execute(pg, f"CREATE ROLE {name}_r1 LOGIN")  # not dbops': no marker
    from tests.conftest import run

    result = run(pg, "apply", "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    assert result.code != 0
    assert result.result["error"]["code"] == "UnmanagedObject", result.result["error"]
    assert can_login(pg, name, p0)
    with pytest.raises(psycopg2.OperationalError):
        pg.connect(user=f"{name}_r1", password=p1).close()


def test_dropping_the_user_drops_its_login_roles(pg: Server) -> None:
    from tests.conftest import run

    name = unique("rot")
    p0, p1 = (secrets.token_urlsafe(24) for _ in range(2))
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 0}), password=p0)
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    # The drop request carries no rotation (the function sends none for ensure: Absent).
    dropped = run(pg, "drop", "DatabaseUser", {"username": name})
    assert dropped.code == 0, dropped.result
    assert f"DROP ROLE {name}_r1" in dropped.result["changes"]
    assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", (name, f"{name}_r1")) == 0
    assert not can_login(pg, f"{name}_r1", p1)


def test_the_rotate_action_needs_a_generation(pg: Server) -> None:
    from tests.conftest import run

    name = unique("rot")
    p0, p1 = (secrets.token_urlsafe(24) for _ in range(2))
    apply_ok(pg, "DatabaseUser", _spec(name, {"generation": 0}), password=p0)
    refused = run(pg, "rotate", "DatabaseUser", _spec(name, {}), password=p1)
    assert refused.code == 2 and refused.result["error"]["code"] == "InvalidRequest"
    assert "spec.rotation.generation" in refused.result["error"]["message"]
    done = run(pg, "rotate", "DatabaseUser", _spec(name, {"generation": 1}), password=p1)
    assert done.code == 0, done.result
    assert done.result["observed"]["rotation"]["verified"] is True
