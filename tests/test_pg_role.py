"""DatabaseRole on a real PostgreSQL: a NOLOGIN role with its privileges, members that log in and use them, a
grant removed from the spec revoked, the drop, and a role dbops did not create refused."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_pg_support import as_user, comment, execute, make_role, one, statements, writes_during

pytestmark = pytest.mark.postgres


def scene(pg: Server) -> tuple[str, str]:
    """A database owned by a hand-made role, with tables app.t1 and app.t2: (database, owner)."""
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    db = unique("db")
    execute(pg, f"CREATE DATABASE {db} OWNER {owner}")
    execute(
        pg,
        f"SET ROLE {owner}",
        "CREATE SCHEMA app",
        "CREATE TABLE app.t1 (id int)",
        "CREATE TABLE app.t2 (id int)",
        database=db,
    )
    return db, owner


def role_spec(name: str, db: str, *tables: str, **postgres: Any) -> dict[str, Any]:
    grants: list[dict[str, Any]] = [
        {"database": db, "privileges": ["CONNECT"]},
        {"database": db, "schema": "app", "privileges": ["USAGE"]},
    ]
    if tables:
        grants.append({"database": db, "schema": "app", "tables": list(tables), "privileges": ["SELECT"]})
    return {"roleName": name, "postgres": {"grants": grants, **postgres}}


def user_spec(name: str, role: str) -> dict[str, Any]:
    return {"username": name, "roles": [role], "postgres": {}}


def test_role_members_privileges_shrink_noop_and_drop(pg: Server) -> None:
    db, _ = scene(pg)
    name = unique("readers")
    spec = role_spec(name, db, "t1", "t2", createDB=True, inherit=True)
    first = apply_ok(pg, "DatabaseRole", spec)
    assert one(
        pg,
        "SELECT json_build_array(rolcanlogin, rolinherit, rolcreatedb, rolsuper, rolcreaterole) FROM pg_roles "
        "WHERE rolname = %s",
        (name,),
    ) == [False, True, True, False, False]
    assert comment(pg, "pg_authid", name) == "managed by dbops for DatabaseRole default/test"
    assert first.result["observed"]["members"] == []

    # A member user (a DatabaseUser of its own claim) logs in and uses the role's privileges.
    user = unique("member")
    password = secrets.token_urlsafe(16)
    apply_ok(pg, "DatabaseUser", user_spec(user, name), password=password, owner="member")
    assert as_user(pg, user, password, "SELECT * FROM app.t1", database=db) == (True, "")
    assert as_user(pg, user, password, "SELECT * FROM app.t2", database=db) == (True, "")
    assert as_user(pg, user, password, "INSERT INTO app.t1 VALUES (1)", database=db)[0] is False

    # Re-applying sends no write, and the status shows the member.
    again, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", spec))
    assert writes == []
    assert again.result["statements"]["writes"] == 0
    assert again.result["observed"] == {"roleName": name, "members": [user], "privileges": 4}

    # t2 leaves the spec: the role's SELECT on it is revoked (remembered minus desired), t1 stays.
    shrunk = role_spec(name, db, "t1", createDB=True)
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", shrunk))
    assert any(s.startswith("REVOKE") and "app.t2" in s for s in statements(writes)), statements(writes)
    assert as_user(pg, user, password, "SELECT * FROM app.t1", database=db) == (True, "")
    assert as_user(pg, user, password, "SELECT * FROM app.t2", database=db)[0] is False
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", shrunk))
    assert writes == []

    # The drop revokes the role's privileges, drops it, and the member loses the membership.
    dropped = run(pg, "drop", "DatabaseRole", shrunk)
    assert dropped.code == 0, (dropped.error, dropped.result)
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) == []
    assert as_user(pg, user, password, "SELECT * FROM app.t1", database=db)[0] is False
    assert (
        one(
            pg,
            "SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = %s",
            (user,),
        )
        == 0
    )
    # Dropping again (already gone) writes nothing to the role.
    assert run(pg, "drop", "DatabaseRole", shrunk).code == 0


def test_a_role_dbops_did_not_create_is_refused(pg: Server) -> None:
    db, _ = scene(pg)
    by_hand, _ = make_role(pg, "byhand", "NOLOGIN")
    refused = run(pg, "apply", "DatabaseRole", role_spec(by_hand, db, "t1"))
    assert refused.code != 0 and refused.error["code"] == "UnmanagedObject", refused.result
    assert "adopt" in refused.error["message"]
    assert comment(pg, "pg_authid", by_hand) is None
    assert one(pg, "SELECT has_table_privilege(%s, 'app.t1', 'SELECT')", (by_hand,), database=db) is False

    # A role a DatabaseUser of the same claim name created is not this DatabaseRole's either.
    user = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": user, "postgres": {"login": False}})
    other = run(pg, "apply", "DatabaseRole", role_spec(user, db))
    assert other.code != 0 and other.error["code"] == "OwnedByAnotherClaim", other.result

    # With adopt: true the role is taken over (marked as this claim's) and converged.
    adopted = apply_ok(pg, "DatabaseRole", {**role_spec(by_hand, db, "t1"), "adopt": True})
    assert adopted.result["observed"]["privileges"] == 3
    assert comment(pg, "pg_authid", by_hand) == "managed by dbops for DatabaseRole default/test"


def test_a_role_holding_privileges_someone_else_granted_is_not_dropped(pg: Server) -> None:
    db, _ = scene(pg)
    name = unique("readers")
    spec = role_spec(name, db, "t1")
    apply_ok(pg, "DatabaseRole", spec)
    execute(pg, f"GRANT INSERT ON app.t2 TO {name}", database=db)
    refused = run(pg, "drop", "DatabaseRole", spec)
    assert refused.code != 0 and refused.error["code"] == "DependentObjects", refused.result
    assert "REASSIGN OWNED" in refused.error["message"]
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) != []


def test_role_default_privileges_reach_members_shrink_noop_and_drop(pg: Server) -> None:
    """postgres.defaultPrivileges: tables the owner creates later are readable by a member user; removing the entry
    revokes it; a re-run writes nothing; the role is dropped with default privileges in place."""
    db, owner = scene(pg)
    name = unique("future")
    grants = role_spec(name, db)["postgres"]["grants"]
    defaults = [
        {"database": db, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]},
        {"database": db, "forRole": owner, "objectType": "sequences", "privileges": ["USAGE"]},
    ]
    spec = {"roleName": name, "postgres": {"grants": grants, "defaultPrivileges": defaults}}
    apply_ok(pg, "DatabaseRole", spec)
    acl_sql = (
        "SELECT coalesce(json_agg(json_build_array(pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''), d.defaclobjtype,"
        " a.privilege_type) ORDER BY d.defaclobjtype), '[]') FROM pg_default_acl d"
        " LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a"
        " WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)"
    )
    # forRole defaults to the database owner, as on a Database claim.
    held = sorted(tuple(r) for r in one(pg, acl_sql, (name,), database=db))
    assert held == [(owner, "", "S", "USAGE"), (owner, "app", "r", "SELECT")], held

    # A table the owner creates afterwards is readable by a member user (real login), not writable.
    user = unique("member")
    password = secrets.token_urlsafe(16)
    apply_ok(pg, "DatabaseUser", user_spec(user, name), password=password, owner="member")
    execute(pg, f"SET ROLE {owner}", "CREATE TABLE app.later (id int)", database=db)
    assert as_user(pg, user, password, "SELECT * FROM app.later", database=db) == (True, "")
    assert as_user(pg, user, password, "INSERT INTO app.later VALUES (1)", database=db)[0] is False

    # Re-applying sends no write.
    again, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", spec))
    assert writes == []
    assert again.result["statements"]["writes"] == 0
    # The no-op budget: the role query (members included), the grantee query, and the grants' query in the database,
    # which carries the default privileges there.
    assert again.result["statements"]["reads"] == 3, again.result["statements"]

    # A default privilege granted by hand to the role, outside the spec, is revoked (the exact set); the removed
    # sequences entry is revoked too; the tables entry stays.
    execute(
        pg, f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT EXECUTE ON FUNCTIONS TO {name}", database=db
    )
    shrunk = {"roleName": name, "postgres": {"grants": grants, "defaultPrivileges": defaults[:1]}}
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", shrunk))
    assert any("REVOKE USAGE ON SEQUENCES" in s for s in statements(writes)), statements(writes)
    assert any("REVOKE EXECUTE ON FUNCTIONS" in s for s in statements(writes)), statements(writes)
    held = sorted(tuple(r) for r in one(pg, acl_sql, (name,), database=db))
    assert held == [(owner, "app", "r", "SELECT")], held
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", shrunk))
    assert writes == []

    # A schema that does not exist is refused with the field and the fix.
    wrong = {
        "roleName": name,
        "postgres": {
            "defaultPrivileges": [
                {"database": db, "schema": "nope", "objectType": "tables", "privileges": ["SELECT"]}
            ]
        },
    }
    refused = run(pg, "apply", "DatabaseRole", wrong)
    assert refused.code != 0 and refused.error["code"] == "InvalidReference", refused.result
    assert "spec.postgres.defaultPrivileges[0].schema" in refused.error["message"]

    # Dropping the role (even from a spec no longer naming the database) revokes its default privileges first, and
    # what they gave it on the table created meanwhile (PostgreSQL refuses DROP ROLE while either names it).
    bare = {"roleName": name, "postgres": {"grants": grants}}
    dropped, writes = writes_during(pg, lambda: run(pg, "drop", "DatabaseRole", bare))
    assert dropped.code == 0, (dropped.error, dropped.result)
    assert any(
        "REVOKE SELECT ON SEQUENCES" not in s and "REVOKE SELECT ON TABLES" in s for s in statements(writes)
    )
    assert any(s.startswith("REVOKE SELECT ON TABLE app.later") for s in statements(writes)), statements(
        writes
    )
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) == []
    assert one(pg, "SELECT count(*) FROM pg_default_acl", database=db) == 0


def test_default_privileges_in_a_database_the_grants_do_not_read(pg: Server) -> None:
    """Default privileges alone (no grants): read with a query of their own in that database, applied, and a re-run
    writes nothing."""
    db, owner = scene(pg)
    name = unique("onlydefaults")
    spec = {
        "roleName": name,
        "postgres": {
            "defaultPrivileges": [{"database": db, "objectType": "tables", "privileges": ["SELECT"]}]
        },
    }
    apply_ok(pg, "DatabaseRole", spec)
    held = one(
        pg,
        "SELECT coalesce(json_agg(json_build_array(pg_get_userbyid(d.defaclrole), a.privilege_type)), '[]')"
        " FROM pg_default_acl d, aclexplode(d.defaclacl) a"
        " WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)",
        (name,),
        database=db,
    )
    assert held == [[owner, "SELECT"]], held
    again, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", spec))
    assert writes == []
    assert again.result["statements"]["reads"] == 3, again.result["statements"]
    dropped = run(pg, "drop", "DatabaseRole", spec)
    assert dropped.code == 0, (dropped.error, dropped.result)
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) == []


def test_a_hand_grant_on_an_object_the_default_privileges_reached_still_blocks_the_drop(pg: Server) -> None:
    """The drop revokes only what the role's default privileges give: INSERT granted by hand on a table created
    under them is not the claim's, so the drop is refused with the fix (not a failed DROP ROLE)."""
    db, owner = scene(pg)
    name = unique("future")
    spec = {
        "roleName": name,
        "postgres": {
            "defaultPrivileges": [{"database": db, "objectType": "tables", "privileges": ["SELECT"]}]
        },
    }
    apply_ok(pg, "DatabaseRole", spec)
    execute(
        pg,
        f"SET ROLE {owner}",
        "CREATE TABLE app.later (id int)",
        f"GRANT INSERT ON app.later TO {name}",
        database=db,
    )
    refused = run(pg, "drop", "DatabaseRole", spec)
    assert refused.code != 0 and refused.error["code"] == "DependentObjects", refused.result
    assert "app.later" in refused.error["message"], refused.error
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) != []
    # Nothing was half-done: the refusal comes from the plan, before any statement.
    assert one(pg, "SELECT count(*) FROM pg_default_acl", database=db) == 1
    assert one(pg, f"SELECT has_table_privilege('{name}', 'app.later', 'SELECT')", database=db) is True
