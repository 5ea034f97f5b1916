"""DatabaseGrant and default privileges on a real PostgreSQL: exact sets at every level, confirmed by the server's
privilege functions and by real logins that can or cannot read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_pg_support import as_user, execute, make_role, one, statements, writes_during

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


def test_all_tables_with_all_privileges_and_grant_option(pg: Server, scene: Scene) -> None:
    spec = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["*"], "privileges": ["ALL"], "withGrantOption": True},
    )
    first = grant_ok(pg, spec)
    assert (
        f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE app.t1, app.t2, app.v1 TO {scene.grantee} WITH GRANT OPTION"
        in first.result["changes"]
    )
    for table in ("app.t1", "app.t2", "app.v1"):
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"):
            assert has(pg, scene, f"has_table_privilege(%(g)s, '{table}', '{privilege} WITH GRANT OPTION')")
    # `*` covers tables, not sequences.
    assert not has(pg, scene, "has_sequence_privilege(%(g)s, 'app.s1', 'SELECT')")
    _, writes = writes_during(pg, lambda: grant_ok(pg, spec))
    assert writes == []

    without = scene.spec(
        {"schema": "app", "privileges": ["USAGE"]},
        {"schema": "app", "tables": ["*"], "privileges": ["ALL"]},
    )
    _, writes = writes_during(pg, lambda: grant_ok(pg, without))
    assert statements(writes) == [
        "REVOKE GRANT OPTION FOR SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER "
        f"ON TABLE app.t1, app.t2, app.v1 FROM {scene.grantee}"
    ]
    assert has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT')")
    assert not has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT WITH GRANT OPTION')")

    # A table created later joins `*` on the next apply.
    execute(pg, f"SET ROLE {scene.owner}", "CREATE TABLE app.t3 (id int)", database=scene.db)
    _, writes = writes_during(pg, lambda: grant_ok(pg, without))
    assert statements(writes) == [
        f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE app.t3 TO {scene.grantee}"
    ]


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
    assert statements(writes) == [f"GRANT EXECUTE ON ROUTINE app.g() TO {scene.grantee}"]
    assert reads(pg, scene, "SELECT app.g()")


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
    )
    result, writes = writes_during(pg, lambda: run(pg, "apply", "DatabaseGrant", spec))
    assert result.code == 2
    message = result.error["message"]
    assert (
        f"spec.postgres.grants[1].tables[0]: table app.nope does not exist in database {scene.db}" in message
    )
    assert "spec.postgres.grants[2].schema: schema ghost does not exist" in message
    if pg.query("SHOW server_version_num")[0][0] < "170000":
        assert "MAINTAIN needs PostgreSQL 17 or later" in message
    assert writes == []
    assert not has(pg, scene, "has_table_privilege(%(g)s, 'app.t1', 'SELECT')")
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
