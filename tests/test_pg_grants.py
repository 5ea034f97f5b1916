"""DatabaseGrant and default privileges on a real PostgreSQL: exact sets at every level, confirmed by the server's
privilege functions and by real logins that can or cannot read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import apply_ok, request_for, run, run_worker, unique
from tests.servers import Server
from tests.test_pg_support import (
    as_user,
    execute,
    make_role,
    mark,
    memory_writes,
    one,
    statements,
    writes_during,
)

pytestmark = pytest.mark.postgres


@dataclass
class Scene:
    """A database owned by `owner` with schema app: tables t1, t2, view v1, sequence s1, routines f(int), f(text)
    and g() (EXECUTE revoked from PUBLIC), and a grantee that can log in."""

    db: str
    owner: str
    grantee: str
    password: str

    def spec(self, *grants: dict[str, Any], roles: list[str] | None = None) -> dict[str, Any]:
        pg: dict[str, Any] = {"grants": list(grants)}
        if roles is not None:
            pg["roles"] = roles
        return {"grantee": self.grantee, "database": self.db, "postgres": pg}


@pytest.fixture
def scene(pg: Server) -> Scene:
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    grantee, password = make_role(pg, "grantee", "LOGIN")
    mark(pg, "ROLE", grantee)  # a user a DatabaseUser of the grant's namespace manages
    db = unique("db")
    execute(pg, f"CREATE DATABASE {db} OWNER {owner}")
    execute(
        pg,
        f"SET ROLE {owner}",
        "CREATE SCHEMA app",
        "CREATE TABLE app.t1 (id int)",
        "CREATE TABLE app.t2 (id int)",
        "CREATE VIEW app.v1 AS SELECT 1 AS x",
        "CREATE SEQUENCE app.s1",
        "CREATE FUNCTION app.f(int) RETURNS int LANGUAGE sql AS 'SELECT $1'",
        "CREATE FUNCTION app.f(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
        "CREATE FUNCTION app.g() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC",
        database=db,
    )
    return Scene(db, owner, grantee, password)


def grant_ok(pg: Server, spec: dict[str, Any]) -> Any:
    return apply_ok(pg, "DatabaseGrant", spec)


def has(pg: Server, scene: Scene, check: str) -> bool:
    """has_*_privilege(...) for the scene's grantee, evaluated in the scene's database."""
    return bool(one(pg, f"SELECT {check}", {"g": scene.grantee, "d": scene.db}, database=scene.db))


def reads(pg: Server, scene: Scene, sql: str) -> bool:
    ok, _ = as_user(pg, scene.grantee, scene.password, sql, database=scene.db)
    return ok


def test_database_level_exact_set(pg: Server, scene: Scene) -> None:
    execute(pg, f"REVOKE ALL ON DATABASE {scene.db} FROM PUBLIC")
    assert not reads(pg, scene, "SELECT 1")  # no CONNECT yet
    spec = scene.spec({"privileges": ["CONNECT", "TEMP"]})
    first = grant_ok(pg, spec)
    assert first.result["changes"] == [f"GRANT CONNECT, TEMPORARY ON DATABASE {scene.db} TO {scene.grantee}"]
    assert has(pg, scene, "has_database_privilege(%(g)s, %(d)s, 'CONNECT')")
    assert not has(pg, scene, "has_database_privilege(%(g)s, %(d)s, 'CREATE')")
    assert reads(pg, scene, "CREATE TEMPORARY TABLE tmp (id int)")
    assert first.result["observed"] == {"grantee": scene.grantee, "roles": [], "privileges": 2}

    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert writes == []

    # Shrinking the list revokes exactly what was removed.
    _, writes = writes_during(pg, lambda: grant_ok(pg, scene.spec({"privileges": ["CONNECT"]})))
    assert statements(writes) == [f"REVOKE TEMPORARY ON DATABASE {scene.db} FROM {scene.grantee}"]
    assert not reads(pg, scene, "CREATE TEMPORARY TABLE tmp (id int)")

    # A privilege added by hand on the managed pair goes on the next apply.
    execute(pg, f"GRANT CREATE ON DATABASE {scene.db} TO {scene.grantee}")
    _, writes = writes_during(pg, lambda: grant_ok(pg, scene.spec({"privileges": ["CONNECT"]})))
    assert statements(writes) == [f"REVOKE CREATE ON DATABASE {scene.db} FROM {scene.grantee}"]
    assert not has(pg, scene, "has_database_privilege(%(g)s, %(d)s, 'CREATE')")


def test_schema_and_named_tables_with_real_reads(pg: Server, scene: Scene) -> None:
    spec = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]},
    )
    grant_ok(pg, spec)
    assert reads(pg, scene, "SELECT * FROM app.t1")
    assert not reads(pg, scene, "INSERT INTO app.t1 VALUES (1)")
    assert not reads(pg, scene, "SELECT * FROM app.t2")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert writes == []

    # Pairs the spec does not name are never touched, even when granted by hand.
    execute(
        pg,
        f"GRANT SELECT ON app.t2 TO {scene.grantee}",
        f"GRANT INSERT ON app.t1 TO {scene.grantee}",
        database=scene.db,
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert statements(writes) == [f"REVOKE INSERT ON TABLE app.t1 FROM {scene.grantee}"]
    assert reads(pg, scene, "SELECT * FROM app.t2")

    # `privileges: []` revokes everything on the pair.
    emptied = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]}, {"schema": "app", "tables": ["t1"], "privileges": []}
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, emptied))
    assert statements(writes) == [f"REVOKE SELECT ON TABLE app.t1 FROM {scene.grantee}"]
    assert not reads(pg, scene, "SELECT * FROM app.t1")


def test_schema_level_shrinks_and_reverts_hand_edits(pg: Server, scene: Scene) -> None:
    # Rolled back, so the grantee owns nothing afterwards and the same statement can run again.
    create = "BEGIN; CREATE TABLE app.mine (id int); ROLLBACK"
    assert not reads(pg, scene, create)
    full = scene.spec({"schema": "app", "privileges": ["USAGE", "CREATE"]})
    first = grant_ok(pg, full)
    assert first.result["changes"] == [f"GRANT USAGE, CREATE ON SCHEMA app TO {scene.grantee}"]
    assert has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'USAGE')")
    assert has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'CREATE')")
    assert reads(pg, scene, create)
    _, writes = writes_during(pg, lambda: grant_ok(pg, full))
    assert writes == []

    # Shrinking [USAGE, CREATE] to [USAGE] revokes CREATE and nothing else.
    shrunk = scene.spec({"schema": "app", "privileges": ["USAGE"]})
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert statements(writes) == [f"REVOKE CREATE ON SCHEMA app FROM {scene.grantee}"]
    assert has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'USAGE')")
    assert not has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'CREATE')")
    assert not reads(pg, scene, create)

    # CREATE granted by hand on the managed pair goes on the next apply.
    execute(pg, f"GRANT CREATE ON SCHEMA app TO {scene.grantee}", database=scene.db)
    assert reads(pg, scene, create)
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert statements(writes) == [f"REVOKE CREATE ON SCHEMA app FROM {scene.grantee}"]
    assert not has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'CREATE')")
    assert has(pg, scene, "has_schema_privilege(%(g)s, 'app', 'USAGE')")
    assert not reads(pg, scene, create)


def table_all(pg: Server) -> list[str]:
    """What ALL means for a table on this server, from the server's own version: MAINTAIN exists from 17."""
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    if int(pg.query("SHOW server_version_num")[0][0]) >= 170000:
        privileges.append("MAINTAIN")
    return privileges


def test_all_tables_with_all_privileges_and_grant_option(pg: Server, scene: Scene) -> None:
    everything = table_all(pg)
    listed = ", ".join(everything)
    usage = {"schema": "app", "privileges": ["USAGE"]}
    spec = scene.spec(
        usage, {"schema": "app", "tables": ["*"], "privileges": ["ALL"], "withGrantOption": True}
    )
    first = grant_ok(pg, spec)
    assert (
        f"GRANT {listed} ON TABLE app.t1, app.t2, app.v1 TO {scene.grantee} WITH GRANT OPTION"
        in first.result["changes"]
    )
    for table in ("app.t1", "app.t2", "app.v1"):
        for privilege in everything:
            assert has(pg, scene, f"has_table_privilege(%(g)s, '{table}', '{privilege} WITH GRANT OPTION')")
    # `*` covers tables, not sequences.
    assert not has(pg, scene, "has_sequence_privilege(%(g)s, 'app.s1', 'SELECT')")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert writes == []

    without = scene.spec(usage, {"schema": "app", "tables": ["*"], "privileges": ["ALL"]})
    _, writes = writes_during(pg, lambda: grant_ok(pg, without))
    assert statements(writes) == [
        f"REVOKE GRANT OPTION FOR {listed} ON TABLE app.t1, app.t2, app.v1 FROM {scene.grantee}"
    ]
    assert has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT')")
    assert not has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT WITH GRANT OPTION')")

    # A table created later joins `*` on the next apply.
    execute(pg, f"SET ROLE {scene.owner}", "CREATE TABLE app.t3 (id int)", database=scene.db)
    _, writes = writes_during(pg, lambda: grant_ok(pg, without))
    assert statements(writes) == [f"GRANT {listed} ON TABLE app.t3 TO {scene.grantee}"]

    # Shrinking ALL to SELECT revokes exactly the rest, in one statement over every table `*` covers.
    select_only = scene.spec(usage, {"schema": "app", "tables": ["*"], "privileges": ["SELECT"]})
    _, writes = writes_during(pg, lambda: grant_ok(pg, select_only))
    rest = [p for p in everything if p != "SELECT"]
    assert statements(writes) == [
        f"REVOKE {', '.join(rest)} ON TABLE app.t1, app.t2, app.t3, app.v1 FROM {scene.grantee}"
    ]
    for table in ("app.t1", "app.t2", "app.t3", "app.v1"):
        assert has(pg, scene, f"has_table_privilege(%(g)s, '{table}', 'SELECT')")
        for privilege in rest:
            assert not has(pg, scene, f"has_table_privilege(%(g)s, '{table}', '{privilege}')")
    assert reads(pg, scene, "SELECT * FROM app.t2")
    assert not reads(pg, scene, "INSERT INTO app.t2 VALUES (1)")

    # An INSERT granted by hand on one table `*` covers is revoked on the next apply, and only there.
    execute(pg, f"GRANT INSERT ON app.t2 TO {scene.grantee}", database=scene.db)
    assert reads(pg, scene, "INSERT INTO app.t2 VALUES (1)")
    _, writes = writes_during(pg, lambda: grant_ok(pg, select_only))
    assert statements(writes) == [f"REVOKE INSERT ON TABLE app.t2 FROM {scene.grantee}"]
    assert not reads(pg, scene, "INSERT INTO app.t2 VALUES (1)")
    assert reads(pg, scene, "SELECT * FROM app.t2")


def test_sequences_and_every_overload_of_a_routine(pg: Server, scene: Scene) -> None:
    spec = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "sequences": ["s1"], "privileges": ["USAGE", "SELECT"]},
        {"schema": "app", "functions": ["f"], "privileges": ["EXECUTE"]},
    )
    grant_ok(pg, spec)
    assert reads(pg, scene, "SELECT nextval('app.s1')")
    assert not has(pg, scene, "has_sequence_privilege(%(g)s, 'app.s1', 'UPDATE')")
    assert reads(pg, scene, "SELECT app.f(1), app.f('x'::text)")
    assert not reads(pg, scene, "SELECT app.g()")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert writes == []
    everything = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "functions": ["*"], "privileges": ["ALL"]},
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, everything))
    # The sequence entry left the spec: what dbops granted there goes (its memory, docs/worker.md).
    assert statements(writes) == [
        f"REVOKE USAGE, SELECT ON SEQUENCE app.s1 FROM {scene.grantee}",
        f"GRANT EXECUTE ON ROUTINE app.g() TO {scene.grantee}",
    ]
    assert not reads(pg, scene, "SELECT nextval('app.s1')")
    assert reads(pg, scene, "SELECT app.g()")


def test_sequences_shrink_and_a_hand_granted_update_is_revoked(pg: Server, scene: Scene) -> None:
    usage = {"schema": "app", "privileges": ["USAGE"]}
    full = scene.spec(usage, {"schema": "app", "sequences": ["s1"], "privileges": ["ALL"]})
    first = grant_ok(pg, full)
    assert f"GRANT USAGE, SELECT, UPDATE ON SEQUENCE app.s1 TO {scene.grantee}" in first.result["changes"]
    assert reads(pg, scene, "SELECT setval('app.s1', 5)")
    assert reads(pg, scene, "SELECT last_value FROM app.s1")
    _, writes = writes_during(pg, lambda: grant_ok(pg, full))
    assert writes == []

    shrunk = scene.spec(usage, {"schema": "app", "sequences": ["s1"], "privileges": ["USAGE"]})
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert statements(writes) == [f"REVOKE SELECT, UPDATE ON SEQUENCE app.s1 FROM {scene.grantee}"]
    assert reads(pg, scene, "SELECT nextval('app.s1')")
    assert not reads(pg, scene, "SELECT last_value FROM app.s1")
    assert not reads(pg, scene, "SELECT setval('app.s1', 5)")

    execute(pg, f"GRANT UPDATE ON SEQUENCE app.s1 TO {scene.grantee}", database=scene.db)
    assert reads(pg, scene, "SELECT setval('app.s1', 5)")
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert statements(writes) == [f"REVOKE UPDATE ON SEQUENCE app.s1 FROM {scene.grantee}"]
    assert not has(pg, scene, "has_sequence_privilege(%(g)s, 'app.s1', 'UPDATE')")
    assert not reads(pg, scene, "SELECT setval('app.s1', 5)")
    assert reads(pg, scene, "SELECT nextval('app.s1')")


def test_functions_shrink_and_a_hand_granted_execute_is_revoked(pg: Server, scene: Scene) -> None:
    # The scene revoked EXECUTE from PUBLIC, so a call proves the grantee's own privilege.
    both = "SELECT app.f(1), app.f('x'::text)"
    assert not reads(pg, scene, "SELECT app.f(1)")
    usage = {"schema": "app", "privileges": ["USAGE"]}
    overloads = "app.f(integer), app.f(text)"

    def spec(privileges: list[str], option: bool = False) -> dict[str, Any]:
        entry = {"schema": "app", "functions": ["f"], "privileges": privileges, "withGrantOption": option}
        return scene.spec(usage, entry)

    first = grant_ok(pg, spec(["EXECUTE"], option=True))
    assert (
        f"GRANT EXECUTE ON ROUTINE {overloads} TO {scene.grantee} WITH GRANT OPTION"
        in first.result["changes"]
    )
    assert has(pg, scene, "has_function_privilege(%(g)s, 'app.f(text)', 'EXECUTE WITH GRANT OPTION')")
    assert reads(pg, scene, both)
    assert not reads(pg, scene, "SELECT app.g()")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec(["EXECUTE"], option=True)))
    assert writes == []

    _, writes = writes_during(pg, lambda: grant_ok(pg, spec(["EXECUTE"])))
    assert statements(writes) == [
        f"REVOKE GRANT OPTION FOR EXECUTE ON ROUTINE {overloads} FROM {scene.grantee}"
    ]
    assert not has(pg, scene, "has_function_privilege(%(g)s, 'app.f(text)', 'EXECUTE WITH GRANT OPTION')")
    assert reads(pg, scene, both)

    # EXECUTE is a routine's only privilege: shrinking means `[]`.
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec([])))
    assert statements(writes) == [f"REVOKE EXECUTE ON ROUTINE {overloads} FROM {scene.grantee}"]
    assert not reads(pg, scene, "SELECT app.f(1)")
    assert not reads(pg, scene, "SELECT app.f('x'::text)")

    # EXECUTE granted by hand on one overload of the named function goes on the next apply.
    execute(pg, f"GRANT EXECUTE ON FUNCTION app.f(text) TO {scene.grantee}", database=scene.db)
    assert reads(pg, scene, "SELECT app.f('x'::text)")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec([])))
    assert statements(writes) == [f"REVOKE EXECUTE ON ROUTINE app.f(text) FROM {scene.grantee}"]
    assert not reads(pg, scene, "SELECT app.f('x'::text)")


def test_role_membership_is_an_exact_set(pg: Server, scene: Scene) -> None:
    r1, _ = make_role(pg, "grp", "NOLOGIN")
    r2, _ = make_role(pg, "grp", "NOLOGIN")
    r3, _ = make_role(pg, "grp", "NOLOGIN")
    grant_ok(pg, scene.spec(roles=[r1, r2]))
    member_of = (
        "SELECT array_agg(roleid::regrole::text ORDER BY 1) FROM pg_auth_members WHERE member = %s::regrole"
    )
    assert one(pg, member_of, (scene.grantee,)) == sorted([r1, r2])
    execute(pg, f"GRANT {r3} TO {scene.grantee}")
    _, writes = writes_during(pg, lambda: grant_ok(pg, scene.spec(roles=[r2])))
    assert sorted(statements(writes)) == sorted(
        [f"REVOKE {r1} FROM {scene.grantee}", f"REVOKE {r3} FROM {scene.grantee}"]
    )
    assert one(pg, member_of, (scene.grantee,)) == [r2]


def test_bad_references_exit_2_and_nothing_is_half_applied(pg: Server, scene: Scene) -> None:
    spec = scene.spec(
        {"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]},
        {"schema": "app", "tables": ["nope"], "privileges": ["SELECT"]},
        {"schema": "ghost", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t2"], "privileges": ["MAINTAIN"]},
        {"schema": "app", "sequences": ["s1", "noseq"], "privileges": ["USAGE"]},
        {"schema": "app", "functions": ["nofn"], "privileges": ["EXECUTE"]},
        {"schema": "app", "sequences": ["t1"], "privileges": ["USAGE"]},  # a table is not a sequence
    )
    result, writes = writes_during(pg, lambda: run(pg, "apply", "DatabaseGrant", spec))
    assert result.code == 2
    assert result.error["code"] == "InvalidReference"
    message = result.error["message"]
    for part in (
        f"spec.postgres.grants[4].sequences[1]: sequence app.noseq does not exist in database {scene.db}",
        f"spec.postgres.grants[5].functions[0]: function app.nofn does not exist in database {scene.db}",
        f"spec.postgres.grants[6].sequences[0]: sequence app.t1 does not exist in database {scene.db}",
    ):
        assert part in message
    assert "grants[4].sequences[0]" not in message
    assert (
        f"spec.postgres.grants[1].tables[0]: table app.nope does not exist in database {scene.db}" in message
    )
    assert "spec.postgres.grants[2].schema: schema ghost does not exist" in message
    if int(pg.query("SHOW server_version_num")[0][0]) < 170000:
        assert "MAINTAIN needs PostgreSQL 17 or later" in message
    assert writes == []
    assert not has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT')")
    assert not has(pg, scene, "has_sequence_privilege(%(g)s, 'app.s1', 'USAGE')")
    missing_grantee = run(pg, "apply", "DatabaseGrant", {**scene.spec(), "grantee": unique("ghost")})
    assert missing_grantee.code == 2
    assert missing_grantee.error["code"] == "RoleNotFound"
    missing_db = run(
        pg, "apply", "DatabaseGrant", {**scene.spec({"privileges": ["CONNECT"]}), "database": unique("nodb")}
    )
    assert missing_db.code == 2
    assert "spec.databaseRef: database" in missing_db.error["message"]


def test_drop_revokes_everything_the_spec_names_and_nothing_else(pg: Server, scene: Scene) -> None:
    r1, _ = make_role(pg, "grp", "NOLOGIN")
    r2, _ = make_role(pg, "grp", "NOLOGIN")
    spec = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1"], "privileges": ["SELECT", "INSERT"]},
        roles=[r1],
    )
    grant_ok(pg, spec)
    planned, writes = writes_during(pg, lambda: run(pg, "plan", "DatabaseGrant", spec))
    assert planned.code == 0 and writes == [] and planned.result["changes"] == []
    execute(pg, f"GRANT SELECT ON app.t2 TO {scene.grantee}", database=scene.db)
    execute(pg, f"GRANT {r2} TO {scene.grantee}")
    dropped = run(pg, "drop", "DatabaseGrant", spec)
    assert dropped.code == 0, dropped.result
    assert sorted(dropped.result["changes"]) == sorted(
        [
            f"REVOKE {r1} FROM {scene.grantee}",
            f"REVOKE USAGE ON SCHEMA app FROM {scene.grantee}",
            f"REVOKE SELECT, INSERT ON TABLE app.t1 FROM {scene.grantee}",
        ]
    )
    assert not has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT')")
    assert has(pg, scene, "has_table_privilege(%(g)s, 'app.t2', 'SELECT')")
    assert one(pg, "SELECT pg_has_role(%s, %s, 'MEMBER')", (scene.grantee, r2))
    assert not one(pg, "SELECT pg_has_role(%s, %s, 'MEMBER')", (scene.grantee, r1))


def test_plan_shows_grants_without_writing(pg: Server, scene: Scene) -> None:
    spec = scene.spec({"schema": "app", "tables": ["t1", "t2"], "privileges": ["select"]})
    result, writes = writes_during(pg, lambda: run(pg, "plan", "DatabaseGrant", spec))
    assert result.code == 0
    assert writes == []
    assert f"GRANT SELECT ON TABLE app.t1, app.t2 TO {scene.grantee};" in result.stdout


# --- memory of what dbops granted (docs/worker.md, "Memory of what dbops granted") ------------------------------


def remembered(pg: Server, scene: Scene, claim: str = "default/test") -> list[list[str]] | None:
    rows = pg.query(
        "SELECT targets FROM _dbops.grants WHERE claim = %s AND grantee = %s", (claim, scene.grantee)
    )
    return rows[0][0] if rows else None


def test_entries_removed_from_the_spec_are_revoked_and_a_login_proves_it(pg: Server, scene: Scene) -> None:
    full = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1", "t2"], "privileges": ["SELECT"]},
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, full))
    # Remembered once, before the grants (the first grant on a server also creates the table).
    assert [w for w in memory_writes(writes) if w.startswith("INSERT")] != []
    assert len([w for w in memory_writes(writes) if w.startswith("INSERT")]) == 1
    assert reads(pg, scene, "SELECT * FROM app.t2")
    assert sorted(t[3] for t in remembered(pg, scene) or []) == ["app", "t1", "t2"]
    _, writes = writes_during(pg, lambda: grant_ok(pg, full))
    assert writes == []

    # A pair granted by hand is not dbops': removing entries never touches it.
    execute(pg, f"GRANT SELECT ON app.v1 TO {scene.grantee}", database=scene.db)

    # t2 leaves the list: its SELECT goes, in one transaction with the memory's update.
    shrunk = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]},
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert statements(writes) == [f"REVOKE SELECT ON TABLE app.t2 FROM {scene.grantee}"]
    assert len(memory_writes(writes)) == 1
    assert not reads(pg, scene, "SELECT * FROM app.t2")
    assert reads(pg, scene, "SELECT * FROM app.t1")
    assert reads(pg, scene, "SELECT * FROM app.v1")
    _, writes = writes_during(pg, lambda: grant_ok(pg, shrunk))
    assert writes == []

    # The schema entry leaves: USAGE goes, so nothing in the schema is readable any more.
    tables_only = scene.spec({"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]})
    _, writes = writes_during(pg, lambda: grant_ok(pg, tables_only))
    assert statements(writes) == [f"REVOKE USAGE ON SCHEMA app FROM {scene.grantee}"]
    assert not reads(pg, scene, "SELECT * FROM app.t1")
    _, writes = writes_during(pg, lambda: grant_ok(pg, tables_only))
    assert writes == []
    assert has(pg, scene, "has_table_privilege(%(g)s, 'app.v1', 'SELECT')")  # still the hand grant


def test_a_claim_recreated_after_its_status_was_lost_neither_regrants_nor_orphans(
    pg: Server, scene: Scene
) -> None:
    spec = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1", "t2"], "privileges": ["SELECT"]},
    )
    grant_ok(pg, spec)
    # The same claim (namespace/name) created again from Git: a new uid, no status. The worker reads nothing but
    # the request and the server.
    again = request_for(pg, "DatabaseGrant", spec)
    again["owner"]["uid"] = "1111"
    result, writes = writes_during(pg, lambda: run_worker(pg, "apply", again))
    assert result.code == 0 and writes == [] and result.result["changes"] == []
    shrunk = request_for(pg, "DatabaseGrant", scene.spec({"schema": "app", "privileges": ["USAGE"]}))
    shrunk["owner"]["uid"] = "2222"
    result, writes = writes_during(pg, lambda: run_worker(pg, "apply", shrunk))
    assert result.code == 0, result.result
    assert statements(writes) == [f"REVOKE SELECT ON TABLE app.t1, app.t2 FROM {scene.grantee}"]
    assert not reads(pg, scene, "SELECT * FROM app.t1")


def test_a_pair_another_claim_remembers_is_left_to_it(pg: Server, scene: Scene) -> None:
    usage = {"schema": "app", "privileges": ["USAGE"]}
    t1 = {"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]}
    apply_ok(pg, "DatabaseGrant", scene.spec(usage, t1), owner="first")
    apply_ok(pg, "DatabaseGrant", scene.spec(t1), owner="second")
    # `first` no longer names t1, but `second` granted it too: it stays.
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseGrant", scene.spec(usage), owner="first"))
    assert statements(writes) == []
    assert reads(pg, scene, "SELECT * FROM app.t1")
    assert [t[3] for t in remembered(pg, scene, "default/first") or []] == ["app"]


def test_absent_revokes_everything_the_claim_ever_granted(pg: Server, scene: Scene) -> None:
    full = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["t1", "t2"], "privileges": ["SELECT"]},
        {"schema": "app", "functions": ["f"], "privileges": ["EXECUTE"]},
    )
    grant_ok(pg, full)
    execute(pg, f"GRANT SELECT ON app.v1 TO {scene.grantee}", database=scene.db)
    # The claim is edited and deleted before a worker ran the edit: the drop still revokes what was granted.
    edited = scene.spec({"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]})
    dropped, writes = writes_during(pg, lambda: run(pg, "drop", "DatabaseGrant", edited))
    assert dropped.code == 0, dropped.result
    assert sorted(statements(writes)) == sorted(
        [
            f"REVOKE SELECT ON TABLE app.t1 FROM {scene.grantee}",
            f"REVOKE SELECT ON TABLE app.t2 FROM {scene.grantee}",
            f"REVOKE USAGE ON SCHEMA app FROM {scene.grantee}",
            f"REVOKE EXECUTE ON ROUTINE app.f(integer), app.f(text) FROM {scene.grantee}",
        ]
    ) or statements(writes)
    assert not reads(pg, scene, "SELECT app.f(1)")
    assert not reads(pg, scene, "SELECT * FROM app.t2")
    assert has(pg, scene, "has_table_privilege(%(g)s, 'app.v1', 'SELECT')")  # never dbops'
    assert remembered(pg, scene) is None
    _, writes = writes_during(pg, lambda: run(pg, "drop", "DatabaseGrant", edited))
    assert writes == []


def test_exclusive_makes_the_grantees_privileges_in_the_database_exactly_the_spec(
    pg: Server, scene: Scene
) -> None:
    other_db = unique("db")
    execute(pg, f"CREATE DATABASE {other_db}")
    execute(pg, "CREATE TABLE public.elsewhere (id int)", database=other_db)
    hand = [
        f"GRANT SELECT ON app.t2, app.v1 TO {scene.grantee}",
        f"GRANT USAGE ON SEQUENCE app.s1 TO {scene.grantee}",
        f"GRANT EXECUTE ON FUNCTION app.g() TO {scene.grantee}",
        f"GRANT TEMPORARY ON DATABASE {scene.db} TO {scene.grantee}",
    ]
    execute(pg, *hand, database=scene.db)
    execute(pg, f"GRANT SELECT ON public.elsewhere TO {scene.grantee}", database=other_db)
    usage = {"schema": "app", "privileges": ["USAGE"]}
    t1 = {"schema": "app", "tables": ["t1"], "privileges": ["SELECT"]}
    # Without the opt-in, hand grants on objects the spec does not name stay.
    _, writes = writes_during(pg, lambda: grant_ok(pg, scene.spec(usage, t1)))
    assert statements(writes) == [
        f"GRANT USAGE ON SCHEMA app TO {scene.grantee}",
        f"GRANT SELECT ON TABLE app.t1 TO {scene.grantee}",
    ]
    assert reads(pg, scene, "SELECT * FROM app.t2")

    exclusive = scene.spec(usage, t1)
    exclusive["postgres"]["exclusive"] = True
    _, writes = writes_during(pg, lambda: grant_ok(pg, exclusive))
    assert sorted(statements(writes)) == sorted(
        [
            f"REVOKE TEMPORARY ON DATABASE {scene.db} FROM {scene.grantee}",
            f"REVOKE SELECT ON TABLE app.t2, app.v1 FROM {scene.grantee}",
            f"REVOKE USAGE ON SEQUENCE app.s1 FROM {scene.grantee}",
            f"REVOKE EXECUTE ON ROUTINE app.g() FROM {scene.grantee}",
        ]
    ), statements(writes)
    assert not reads(pg, scene, "SELECT * FROM app.t2")
    assert not reads(pg, scene, "SELECT app.g()")
    assert reads(pg, scene, "SELECT * FROM app.t1")
    # Another database the spec does not name is not touched.
    assert one(
        pg,
        "SELECT has_table_privilege(%s, 'public.elsewhere', 'SELECT')",
        (scene.grantee,),
        database=other_db,
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, exclusive))
    assert writes == []


# --- default privileges (Database.postgres.defaultPrivileges) ----------------------------------------------------


def test_default_privileges_cover_objects_created_later_and_every_rule_applies(pg: Server) -> None:
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    reader, reader_pw = make_role(pg, "reader", "LOGIN")
    writer, writer_pw = make_role(pg, "writer", "LOGIN")
    db = unique("db")
    rules = [
        {"role": reader, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]},
        {"role": reader, "objectType": "sequences", "privileges": ["USAGE", "SELECT"]},
        {"role": writer, "schema": "app", "objectType": "tables", "privileges": ["SELECT", "INSERT"]},
        {"role": reader, "objectType": "schemas", "privileges": ["USAGE"]},
        {"role": writer, "forRole": owner, "objectType": "functions", "privileges": ["EXECUTE"]},
    ]
    spec = {
        "name": db,
        "owner": owner,
        "postgres": {"schemas": [{"name": "app"}], "defaultPrivileges": rules},
    }
    first = apply_ok(pg, "Database", spec)
    assert sum(c.startswith("ALTER DEFAULT PRIVILEGES") for c in first.result["changes"]) == 5
    for role in (reader, writer):
        mark(pg, "ROLE", role)
        usage = {
            "grantee": role,
            "database": db,
            "postgres": {"grants": [{"schema": "app", "privileges": ["USAGE"]}]},
        }
        apply_ok(pg, "DatabaseGrant", usage)
    # Every rule is in the catalog, not only the first.
    assert one(pg, "SELECT count(*) FROM pg_default_acl", database=db) == 4
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", spec))
    assert writes == []

    execute(
        pg,
        f"SET ROLE {owner}",
        "CREATE TABLE app.later (id int)",
        "CREATE SEQUENCE app.seq",
        "CREATE SCHEMA other",
        "CREATE FUNCTION app.h() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        database=db,
    )
    assert as_user(pg, reader, reader_pw, "SELECT * FROM app.later; SELECT nextval('app.seq')", database=db)[
        0
    ]
    assert not as_user(pg, reader, reader_pw, "INSERT INTO app.later VALUES (1)", database=db)[0]
    assert as_user(pg, writer, writer_pw, "INSERT INTO app.later VALUES (1)", database=db)[0]
    assert one(pg, "SELECT has_schema_privilege(%s, 'other', 'USAGE')", (reader,), database=db)

    # Shrinking a rule revokes only what was removed; a default added by hand on a managed tuple goes too.
    rules[2]["privileges"] = ["SELECT"]
    execute(
        pg,
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT DELETE ON TABLES TO {reader}",
        database=db,
    )
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", spec))
    assert sorted(statements(writes)) == sorted(
        [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app REVOKE DELETE ON TABLES FROM {reader}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app REVOKE INSERT ON TABLES FROM {writer}",
        ]
    )
    execute(pg, f"SET ROLE {owner}", "CREATE TABLE app.later2 (id int)", database=db)
    assert not as_user(pg, writer, writer_pw, "INSERT INTO app.later2 VALUES (1)", database=db)[0]
    assert as_user(pg, writer, writer_pw, "SELECT * FROM app.later2", database=db)[0]
    assert not one(pg, "SELECT has_table_privilege(%s, 'app.later2', 'DELETE')", (reader,), database=db)

    # `privileges: []` clears the tuple.
    rules[0]["privileges"] = []
    apply_ok(pg, "Database", spec)
    execute(pg, f"SET ROLE {owner}", "CREATE TABLE app.later3 (id int)", database=db)
    assert not as_user(pg, reader, reader_pw, "SELECT * FROM app.later3", database=db)[0]


def test_default_privileges_for_sequences_functions_and_types_are_exact(pg: Server) -> None:
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    user, user_pw = make_role(pg, "user", "LOGIN")
    other, other_pw = make_role(pg, "other", "LOGIN")
    mark(pg, "ROLE", user)
    mark(pg, "ROLE", other)
    db = unique("db")
    base = {"name": db, "owner": owner, "postgres": {"schemas": [{"name": "app"}]}}
    apply_ok(pg, "Database", base)
    for role in (user, other):
        usage = {
            "grantee": role,
            "database": db,
            "postgres": {"grants": [{"schema": "app", "privileges": ["USAGE"]}]},
        }
        apply_ok(pg, "DatabaseGrant", usage)
    # PUBLIC holds EXECUTE on new functions and USAGE on new types by default, which would make every check
    # below pass without the rules; these global defaults take it away (PUBLIC is not a grantee dbops manages).
    execute(
        pg,
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE USAGE ON TYPES FROM PUBLIC",
        database=db,
    )

    def spec(sequences: list[str], functions: list[str], types: list[str]) -> dict[str, Any]:
        rules = [
            {"role": user, "schema": "app", "objectType": "sequences", "privileges": sequences},
            {"role": user, "schema": "app", "objectType": "functions", "privileges": functions},
            {"role": user, "schema": "app", "objectType": "types", "privileges": types},
        ]
        return {**base, "postgres": {**base["postgres"], "defaultPrivileges": rules}}

    def as_(role: str, password: str, sql: str) -> bool:
        return as_user(pg, role, password, sql, database=db)[0]

    def created_later(*sql: str) -> None:
        execute(pg, f"SET ROLE {owner}", *sql, database=db)

    head = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app"
    full = spec(["USAGE", "SELECT", "UPDATE"], ["EXECUTE"], ["USAGE"])
    first = apply_ok(pg, "Database", full)
    assert first.result["changes"] == [
        f"{head} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {user}",
        f"{head} GRANT EXECUTE ON FUNCTIONS TO {user}",
        f"{head} GRANT USAGE ON TYPES TO {user}",
    ]
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", full))
    assert writes == []

    created_later(
        "CREATE SEQUENCE app.sq",
        "CREATE FUNCTION app.h() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TYPE app.mood AS ENUM ('ok')",
    )
    assert as_(user, user_pw, "SELECT nextval('app.sq'), setval('app.sq', 5), app.h()")
    assert as_(user, user_pw, "CREATE TEMPORARY TABLE tmp (m app.mood)")
    assert one(pg, "SELECT has_type_privilege(%s, 'app.mood', 'USAGE')", (user,), database=db)
    assert not as_(other, other_pw, "SELECT nextval('app.sq')")
    assert not as_(other, other_pw, "SELECT app.h()")
    assert not as_(other, other_pw, "CREATE TEMPORARY TABLE tmp (m app.mood)")
    assert not one(pg, "SELECT has_type_privilege(%s, 'app.mood', 'USAGE')", (other,), database=db)

    # Shrinking revokes exactly what was removed; `[]` on types empties the tuple and PostgreSQL drops its row.
    shrunk = spec(["USAGE"], ["EXECUTE"], [])
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", shrunk))
    assert statements(writes) == [
        f"{head} REVOKE SELECT, UPDATE ON SEQUENCES FROM {user}",
        f"{head} REVOKE USAGE ON TYPES FROM {user}",
    ]
    types_rows = "SELECT count(*) FROM pg_default_acl WHERE defaclobjtype = 'T' AND defaclnamespace = 'app'::regnamespace"
    assert one(pg, types_rows, database=db) == 0
    created_later("CREATE SEQUENCE app.sq2", "CREATE TYPE app.mood2 AS ENUM ('ok')")
    assert as_(user, user_pw, "SELECT nextval('app.sq2')")
    assert not as_(user, user_pw, "SELECT last_value FROM app.sq2")
    assert not as_(user, user_pw, "SELECT setval('app.sq2', 5)")
    assert not as_(user, user_pw, "CREATE TEMPORARY TABLE tmp (m app.mood2)")
    assert not one(pg, "SELECT has_type_privilege(%s, 'app.mood2', 'USAGE')", (user,), database=db)

    # Defaults added by hand on managed tuples go on the next apply.
    execute(
        pg,
        f"{head} GRANT UPDATE ON SEQUENCES TO {user}",
        f"{head} GRANT USAGE ON TYPES TO {user}",
        database=db,
    )
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", shrunk))
    assert statements(writes) == [
        f"{head} REVOKE UPDATE ON SEQUENCES FROM {user}",
        f"{head} REVOKE USAGE ON TYPES FROM {user}",
    ]
    assert one(pg, types_rows, database=db) == 0
    created_later("CREATE SEQUENCE app.sq3", "CREATE TYPE app.mood3 AS ENUM ('ok')")
    assert not as_(user, user_pw, "SELECT setval('app.sq3', 5)")
    assert not one(pg, "SELECT has_type_privilege(%s, 'app.mood3', 'USAGE')", (user,), database=db)

    # `[]` on functions: a function created afterwards is no longer callable.
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", spec(["USAGE"], [], [])))
    assert statements(writes) == [f"{head} REVOKE EXECUTE ON FUNCTIONS FROM {user}"]
    created_later("CREATE FUNCTION app.h2() RETURNS int LANGUAGE sql AS 'SELECT 2'")
    assert not as_(user, user_pw, "SELECT app.h2()")
    assert as_(user, user_pw, "SELECT app.h()")  # objects created earlier keep what they were given


def test_default_privileges_removed_from_the_spec_are_revoked_and_hand_set_ones_stay(pg: Server) -> None:
    """A Database's default privileges are remembered (`_dbops.grants`, claim `<claim> Database`): an entry
    removed from the spec is revoked, one set by hand is never touched, and dropping the database forgets them."""
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    reader, reader_pw = make_role(pg, "reader", "LOGIN")
    writer, writer_pw = make_role(pg, "writer", "LOGIN")
    handmade, handmade_pw = make_role(pg, "handmade", "LOGIN")
    db = unique("db")
    claim = unique("dbclaim")
    rules = [
        {"role": reader, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]},
        {"role": writer, "schema": "app", "objectType": "tables", "privileges": ["SELECT", "INSERT"]},
        {"role": writer, "objectType": "sequences", "privileges": ["USAGE"]},
    ]

    def spec(*entries: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": db,
            "owner": owner,
            "postgres": {"schemas": [{"name": "app"}], "defaultPrivileges": list(entries)},
        }

    def apply(body: dict[str, Any]) -> Any:
        result = run_worker(pg, "apply", request_for(pg, "Database", body, owner=claim))
        assert result.code == 0, (result.result, result.stderr)
        return result

    def remembered() -> list[tuple[str, Any]]:
        rows = pg.query(
            "SELECT grantee, targets FROM _dbops.grants WHERE claim = %s", (f"default/{claim} Database",)
        )
        return sorted((str(g), sorted(map(tuple, t))) for g, t in rows)

    def default_acl() -> list[tuple[str, str, str]]:
        return sorted(
            (str(a.grantee_name), str(a.nsp), str(a.privilege_type)) for a in _default_acl_rows(pg, db)
        )

    def can(role: str, password: str, sql: str) -> bool:
        return as_user(pg, role, password, sql, database=db)[0]

    apply(spec(*rules))
    for role in (reader, writer, handmade):
        execute(pg, f"GRANT USAGE ON SCHEMA app TO {role}", database=db)
    # Set by hand: another grantee on a managed scope, and the same grantee on a scope the spec never named.
    execute(
        pg,
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT SELECT ON TABLES TO {handmade}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT EXECUTE ON FUNCTIONS TO {writer}",
        database=db,
    )
    assert remembered() == sorted(
        [
            (reader, [(db, "default tables", "app", owner, "")]),
            (writer, [(db, "default sequences", "", owner, ""), (db, "default tables", "app", owner, "")]),
        ]
    )

    # The writer's table entry is removed: its default INSERT and SELECT on app's tables go, nothing else.
    _, writes = writes_during(pg, lambda: apply(spec(rules[0], rules[2])))
    assert statements(writes) == [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app REVOKE SELECT, INSERT ON TABLES FROM {writer}"
    ]
    assert len(memory_writes(writes)) == 1
    assert default_acl() == sorted(
        [
            (handmade, "app", "SELECT"),
            (reader, "app", "SELECT"),
            (writer, "", "USAGE"),
            (writer, "app", "EXECUTE"),
        ]
    )
    execute(pg, f"SET ROLE {owner}", "CREATE TABLE app.later (id int)", database=db)
    assert not can(writer, writer_pw, "INSERT INTO app.later VALUES (1)")
    assert not one(pg, "SELECT has_table_privilege(%s, 'app.later', 'SELECT')", (writer,), database=db)
    assert can(reader, reader_pw, "SELECT * FROM app.later")
    assert can(handmade, handmade_pw, "SELECT * FROM app.later")  # set by hand: never touched
    # Converged: the memory comes with the database query, the rules with the one inside the database.
    again, writes = writes_during(pg, lambda: apply(spec(rules[0], rules[2])))
    assert writes == []
    assert again.result["statements"] == {"reads": 2, "writes": 0}

    # Every entry removed: the rest of what the claim set goes; the hand-set defaults stay.
    _, writes = writes_during(pg, lambda: apply(spec()))
    assert sorted(statements(writes)) == sorted(
        [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app REVOKE SELECT ON TABLES FROM {reader}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE USAGE ON SEQUENCES FROM {writer}",
        ]
    )
    assert default_acl() == sorted([(handmade, "app", "SELECT"), (writer, "app", "EXECUTE")])
    assert remembered() == []
    execute(pg, f"SET ROLE {owner}", "CREATE TABLE app.later2 (id int)", database=db)
    assert not can(reader, reader_pw, "SELECT * FROM app.later2")
    assert can(handmade, handmade_pw, "SELECT * FROM app.later2")
    again, writes = writes_during(pg, lambda: apply(spec()))
    assert writes == []
    assert again.result["statements"] == {"reads": 2, "writes": 0}  # schema app is still in the spec

    # Dropped: the database's default privileges go with it, and so does the memory of them.
    apply(spec(*rules))
    assert len(remembered()) == 2
    dropped = run_worker(pg, "drop", request_for(pg, "Database", spec(*rules), owner=claim))
    assert dropped.code == 0, dropped.result
    assert not pg.query("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
    assert remembered() == []
    _, writes = writes_during(
        pg, lambda: run_worker(pg, "drop", request_for(pg, "Database", spec(*rules), owner=claim))
    )
    assert writes == []


def test_default_privileges_of_the_old_owner_go_when_the_owner_changes(pg: Server) -> None:
    """An entry without forRole covers what the database owner creates: a new owner moves the rule, and what the
    old owner's rule gave (remembered) is revoked."""
    old_owner, _ = make_role(pg, "oldowner", "NOLOGIN")
    new_owner, _ = make_role(pg, "newowner", "NOLOGIN")
    reader, _ = make_role(pg, "reader", "LOGIN")
    db = unique("db")
    rule = {"role": reader, "objectType": "tables", "privileges": ["SELECT"]}
    apply_ok(pg, "Database", {"name": db, "owner": old_owner, "postgres": {"defaultPrivileges": [rule]}})
    _, writes = writes_during(
        pg,
        lambda: apply_ok(
            pg, "Database", {"name": db, "owner": new_owner, "postgres": {"defaultPrivileges": [rule]}}
        ),
    )
    assert statements(writes) == [
        f"ALTER DATABASE {db} OWNER TO {new_owner}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {new_owner} GRANT SELECT ON TABLES TO {reader}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {old_owner} REVOKE SELECT ON TABLES FROM {reader}",
    ]
    assert [(a.grantee_name, a.privilege_type) for a in _default_acl_rows(pg, db)] == [(reader, "SELECT")]
    assert (
        one(
            pg,
            "SELECT pg_get_userbyid(defaclrole) FROM pg_default_acl WHERE defaclobjtype = 'r'",
            database=db,
        )
        == new_owner
    )


def test_default_privileges_reference_checks(pg: Server) -> None:
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    spec = {
        "name": db,
        "postgres": {
            "defaultPrivileges": [
                {
                    "role": unique("ghost"),
                    "schema": "nowhere",
                    "objectType": "tables",
                    "privileges": ["SELECT"],
                }
            ]
        },
    }
    result, writes = writes_during(pg, lambda: run(pg, "apply", "Database", spec))
    assert result.code == 2
    assert "spec.postgres.defaultPrivileges[0].role: role" in result.error["message"]
    assert (
        "spec.postgres.defaultPrivileges[0].schema: schema nowhere does not exist" in result.error["message"]
    )
    assert writes == []


@dataclass
class _AclRow:
    grantee_name: str
    nsp: str
    privilege_type: str


def _default_acl_rows(pg: Server, db: str) -> list[_AclRow]:
    """Every default privilege set in `db` (pg_default_acl) for a role other than the creator: grantee, schema
    ('' for the whole database) and privilege."""
    rows = pg.query(
        "SELECT pg_get_userbyid(a.grantee), coalesce(n.nspname, ''), a.privilege_type "
        "FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a "
        "WHERE a.grantee <> d.defaclrole",
        database=db,
    )
    return [_AclRow(str(g), str(n), str(p)) for g, n, p in rows]
