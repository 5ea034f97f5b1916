"""A DatabaseRole's default privileges are an exact set (the role is the claim's), and a Database claim may give
default privileges to that same role (`postgres.defaultPrivileges` entry with `role:` its roleName). Before, the
role's run revoked the Database's rules and the Database's run set them again, on every run. Now the role leaves
alone the rules a Database claim remembers setting for it (dbops' memory, `_dbops.grants`), and a rule both claims
name is refused on the role, naming the Database claim and the fix. Real PostgreSQL, the worker's console script."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_pg_support import execute, make_role, one, statements, writes_during

pytestmark = pytest.mark.postgres

ACL_SQL = (
    "SELECT coalesce(json_agg(json_build_array(pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''),"
    " d.defaclobjtype::text, a.privilege_type) ORDER BY 1, 2, 3, 4), '[]') FROM pg_default_acl d"
    " LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a"
    " WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)"
)


def held(pg: Server, role: str, db: str) -> list[tuple[str, ...]]:
    return sorted(tuple(r) for r in one(pg, ACL_SQL, (role,), database=db))


def scene(pg: Server) -> tuple[str, str, str]:
    """A Database claim's database name, its owner (a hand-made role) and a DatabaseRole's role name."""
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    return unique("db"), owner, unique("readers")


def database_spec(db: str, owner: str, *rules: dict[str, Any]) -> dict[str, Any]:
    """The Database claim `default/app`: the database with schema app, owned by `owner`."""
    return {
        "name": db,
        "owner": owner,
        "postgres": {"schemas": [{"name": "app"}], "defaultPrivileges": list(rules)},
    }


@pytest.mark.parametrize(
    "role_defaults",
    [
        pytest.param(None, id="role without defaultPrivileges"),
        pytest.param(
            [{"objectType": "sequences", "privileges": ["USAGE"]}],
            id="role with its own rule in that database",
        ),
    ],
)
def test_a_databases_default_privileges_for_a_database_role_are_not_revoked_by_the_role(
    pg: Server, role_defaults: list[dict[str, Any]] | None
) -> None:
    db, owner, role = scene(pg)
    role_spec: dict[str, Any] = {"roleName": role, "postgres": {}}
    if role_defaults is not None:
        role_spec["postgres"]["defaultPrivileges"] = [{**e, "database": db} for e in role_defaults]
    apply_ok(pg, "Database", database_spec(db, owner), owner="app")
    apply_ok(pg, "DatabaseRole", role_spec, owner="readers")
    rule = {"role": role, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]}
    database = database_spec(db, owner, rule)
    apply_ok(pg, "Database", database, owner="app")
    mine = [(owner, "", "S", "USAGE")] if role_defaults is not None else []
    want = sorted([(owner, "app", "r", "SELECT"), *mine])
    assert held(pg, role, db) == want
    # Each claim again, in turn: neither writes, and the Database's rule stays.
    for kind, spec, claim in (("DatabaseRole", role_spec, "readers"), ("Database", database, "app")) * 2:
        _, writes = writes_during(pg, lambda k=kind, s=spec, c=claim: apply_ok(pg, k, s, owner=c))
        assert writes == [], (kind, statements(writes))
    assert held(pg, role, db) == want

    # The Database's entry removed: its run revokes the rule (its memory), and the role's own rule stays.
    apply_ok(pg, "Database", database_spec(db, owner), owner="app")
    assert held(pg, role, db) == mine
    # A rule set by hand (no claim remembers it) is still the role's to revoke: its set is exact.
    execute(
        pg, f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} GRANT EXECUTE ON FUNCTIONS TO {role}", database=db
    )
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseRole", role_spec, owner="readers"))
    assert any("REVOKE EXECUTE ON FUNCTIONS" in s for s in statements(writes)), statements(writes)
    assert held(pg, role, db) == mine


def test_a_rule_both_claims_name_is_refused_on_the_role_naming_the_database_claim(pg: Server) -> None:
    db, owner, role = scene(pg)
    rule = {"role": role, "schema": "app", "objectType": "tables", "privileges": ["SELECT", "INSERT"]}
    apply_ok(pg, "Database", database_spec(db, owner), owner="app")
    apply_ok(pg, "DatabaseRole", {"roleName": role, "postgres": {}}, owner="readers")
    apply_ok(pg, "Database", database_spec(db, owner, rule), owner="app")
    same = {"database": db, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]}
    role_spec = {"roleName": role, "postgres": {"defaultPrivileges": [same]}}
    refused, writes = writes_during(pg, lambda: run(pg, "apply", "DatabaseRole", role_spec, owner="readers"))
    assert refused.code == 2, (refused.result, refused.stderr)
    assert refused.error["code"] == "OwnedByAnotherClaim", refused.error
    message = refused.error["message"]
    assert "spec.postgres.defaultPrivileges[0]" in message, message
    assert "Database default/app" in message, message
    assert "DatabaseRole default/readers" in message, message
    assert writes == [], statements(writes)
    assert held(pg, role, db) == [(owner, "app", "r", "INSERT"), (owner, "app", "r", "SELECT")]
    # forRole spelled out as the database's owner is the same rule.
    explicit = {"roleName": role, "postgres": {"defaultPrivileges": [{**same, "forRole": owner}]}}
    assert run(pg, "apply", "DatabaseRole", explicit, owner="readers").error["code"] == "OwnedByAnotherClaim"
    # Another schema is another rule: no conflict, both kept.
    execute(pg, f"SET ROLE {owner}", "CREATE SCHEMA other", database=db)
    elsewhere = {"roleName": role, "postgres": {"defaultPrivileges": [{**same, "schema": "other"}]}}
    apply_ok(pg, "DatabaseRole", elsewhere, owner="readers")
    assert held(pg, role, db) == [
        (owner, "app", "r", "INSERT"),
        (owner, "app", "r", "SELECT"),
        (owner, "other", "r", "SELECT"),
    ]
