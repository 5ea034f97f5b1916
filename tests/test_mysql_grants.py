"""DatabaseGrant on a real MariaDB: every level, exact sets, the ownership rule, and the competitors' failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest

from tests import conftest
from tests.conftest import WorkerRun, unique
from tests.servers import Server
from tests.test_mysql_support import can_login, denied, mark_account, query_as, show_grants, writes_during

pytestmark = pytest.mark.mariadb

PASSWORD = "Gr4nt-Pa55word-Example"
# These tests are about grant mechanics at every level, the global one included: their instance allows global
# grants (the refusal without that consent is tested in tests/test_claim_limits.py).
GLOBAL_GRANTS = {"allowGlobalGrants": True}


def apply_ok(server: Server, kind: str, spec: dict[str, Any], password: str | None = None) -> WorkerRun:
    return conftest.apply_ok(server, kind, spec, password, policy=GLOBAL_GRANTS)


def run(
    server: Server, action: str, kind: str, spec: dict[str, Any], password: str | None = None
) -> WorkerRun:
    return conftest.run(server, action, kind, spec, password, policy=GLOBAL_GRANTS)


@dataclass
class World:
    """A database with a table, a procedure and a function, and a user that holds nothing yet."""

    db: str
    user: str

    @property
    def account(self) -> str:
        return f"'{self.user}'@'%'"


def make_world(maria: Server, db: str | None = None) -> World:
    world = World(db or unique("db"), unique("u"))
    maria.query(f"CREATE DATABASE `{world.db}`")
    maria.query(f"CREATE TABLE `{world.db}`.t (a INT, b INT)")
    maria.query(f"INSERT INTO `{world.db}`.t VALUES (1, 2)")
    maria.query(f"CREATE TABLE `{world.db}`.t2 (a INT)")
    maria.query(f"CREATE PROCEDURE `{world.db}`.p() SELECT 1")
    maria.query(f"CREATE FUNCTION `{world.db}`.f() RETURNS INT RETURN 7")
    # Created directly (DatabaseUser has its own tests), as a DatabaseUser of this namespace would.
    maria.query("CREATE USER %s@%s IDENTIFIED BY %s", (world.user, "%", PASSWORD))
    mark_account(maria, world.user)
    return world


def grant(world: World, *grants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"grantee": world.user, "database": world.db, "mysql": {"grants": list(grants)}, **extra}


def works(maria: Server, world: World, sql: str) -> bool:
    return not denied(maria, world.user, PASSWORD, sql.format(db=world.db))


@dataclass
class Level:
    entry: dict[str, Any]
    full: list[str]
    shrunk: list[str]
    kept: str  # needs a privilege of `shrunk`
    removed: str  # needs the privilege that shrinking removes
    hand: str  # grants that privilege back by hand
    revoke: str  # the statement that shrinking must send


LEVELS = {
    "global": Level(
        {"level": "global"},
        ["SELECT", "INSERT"],
        ["SELECT"],
        "SELECT COUNT(*) FROM `{db}`.t",
        "INSERT INTO `{db}`.t VALUES (3, 4)",
        "GRANT INSERT ON *.* TO {account}",
        "REVOKE INSERT ON *.* FROM {account}",
    ),
    "database": Level(
        {"level": "database"},
        ["SELECT", "INSERT"],
        ["SELECT"],
        "SELECT COUNT(*) FROM `{db}`.t",
        "INSERT INTO `{db}`.t VALUES (3, 4)",
        "GRANT INSERT ON `{pattern}`.* TO {account}",
        "REVOKE INSERT ON `{pattern}`.* FROM {account}",
    ),
    "table": Level(
        {"level": "table", "table": "t"},
        ["SELECT", "INSERT"],
        ["SELECT"],
        "SELECT COUNT(*) FROM `{db}`.t",
        "INSERT INTO `{db}`.t VALUES (3, 4)",
        "GRANT INSERT ON `{db}`.t TO {account}",
        "REVOKE INSERT ON `{db}`.`t` FROM {account}",
    ),
    "column": Level(
        {"level": "column", "table": "t", "columns": ["a"]},
        ["SELECT", "UPDATE"],
        ["SELECT"],
        "SELECT a FROM `{db}`.t",
        "UPDATE `{db}`.t SET a = 5",
        "GRANT UPDATE (a) ON `{db}`.t TO {account}",
        "REVOKE UPDATE (`a`) ON `{db}`.`t` FROM {account}",
    ),
    "procedure": Level(
        {"level": "procedure", "procedure": "p"},
        ["EXECUTE", "ALTER ROUTINE"],
        ["ALTER ROUTINE"],
        "ALTER PROCEDURE `{db}`.p COMMENT 'kept'",
        "CALL `{db}`.p()",
        "GRANT EXECUTE ON PROCEDURE `{db}`.p TO {account}",
        "REVOKE EXECUTE ON PROCEDURE `{db}`.`p` FROM {account}",
    ),
    "function": Level(
        {"level": "function", "function": "f"},
        ["EXECUTE", "ALTER ROUTINE"],
        ["ALTER ROUTINE"],
        "ALTER FUNCTION `{db}`.f COMMENT 'kept'",
        "SELECT `{db}`.f()",
        "GRANT EXECUTE ON FUNCTION `{db}`.f TO {account}",
        "REVOKE EXECUTE ON FUNCTION `{db}`.`f` FROM {account}",
    ),
}


@pytest.mark.parametrize("level", list(LEVELS))
def test_every_level_grants_converges_shrinks_and_reverts_hand_edits(maria: Server, level: str) -> None:
    case = LEVELS[level]
    world = make_world(maria)
    fmt = {"db": world.db, "account": world.account, "pattern": world.db.replace("_", "\\_")}

    # Grant: the server confirms it, and a real login can do what the privileges allow.
    first = apply_ok(maria, "DatabaseGrant", grant(world, {**case.entry, "privileges": case.full}))
    assert first.result["observed"]["privileges"] == len(case.full)
    assert works(maria, world, case.kept) and works(maria, world, case.removed)
    if level == "column":
        assert not works(maria, world, "SELECT b FROM `{db}`.t")  # column b was never named

    # Re-apply: zero writes.
    _, writes = writes_during(
        maria, lambda: apply_ok(maria, "DatabaseGrant", grant(world, {**case.entry, "privileges": case.full}))
    )
    assert writes == []

    # Shrink: exactly the removed privilege is revoked.
    shrunk = grant(world, {**case.entry, "privileges": case.shrunk})
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", shrunk))
    assert [w.text for w in writes] == [case.revoke.format(**fmt)]
    assert works(maria, world, case.kept)
    assert not works(maria, world, case.removed)

    # A privilege added by hand on the managed pair is revoked on the next apply.
    maria.query(case.hand.format(**fmt))
    assert works(maria, world, case.removed)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", shrunk))
    assert [w.text for w in writes] == [case.revoke.format(**fmt)]
    assert not works(maria, world, case.removed)

    # privileges: [] revokes everything on the pair.
    apply_ok(maria, "DatabaseGrant", grant(world, {**case.entry, "privileges": []}))
    assert not works(maria, world, case.kept)
    assert show_grants(maria, world.user) == [f"GRANT USAGE ON *.* TO `{world.user}`@`%`"]


def test_show_grants_lists_what_the_spec_names(maria: Server) -> None:
    world = make_world(maria)
    apply_ok(
        maria,
        "DatabaseGrant",
        grant(
            world,
            {"level": "global", "privileges": ["PROCESS", "REPLICATION CLIENT"]},
            {"level": "database", "privileges": ["SELECT"], "withGrantOption": True},
            {"level": "table", "table": "t", "privileges": ["DELETE"]},
            {"level": "column", "table": "t", "columns": ["a", "b"], "privileges": ["SELECT", "REFERENCES"]},
            {"level": "procedure", "procedure": "p", "privileges": ["EXECUTE"]},
            {"level": "function", "function": "F", "privileges": ["ALL"]},
        ),
    )
    pattern = world.db.replace("_", "\\_")
    assert sorted(show_grants(maria, world.user)) == sorted(
        [
            f"GRANT PROCESS, BINLOG MONITOR ON *.* TO `{world.user}`@`%`",
            f"GRANT SELECT ON `{pattern}`.* TO `{world.user}`@`%` WITH GRANT OPTION",
            f"GRANT SELECT (`a`, `b`), DELETE, REFERENCES (`a`, `b`) ON `{world.db}`.`t` TO `{world.user}`@`%`",
            f"GRANT EXECUTE ON PROCEDURE `{world.db}`.`p` TO `{world.user}`@`%`",
            f"GRANT EXECUTE, ALTER ROUTINE ON FUNCTION `{world.db}`.`f` TO `{world.user}`@`%`",
        ]
    )


def test_all_expands_for_the_server_and_converges(maria: Server) -> None:
    world = make_world(maria)
    spec = grant(
        world,
        {"level": "database", "privileges": ["ALL PRIVILEGES"]},
        {"level": "table", "table": "t2", "privileges": ["ALL"]},
    )
    apply_ok(maria, "DatabaseGrant", spec)
    grants = show_grants(maria, world.user)
    assert (
        f"GRANT ALL PRIVILEGES ON `{world.db.replace('_', chr(92) + '_')}`.* TO `{world.user}`@`%`" in grants
    )
    assert f"GRANT ALL PRIVILEGES ON `{world.db}`.`t2` TO `{world.user}`@`%`" in grants
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert writes == []


def test_grant_option_is_granted_and_revoked_with_valid_syntax(maria: Server) -> None:
    world = make_world(maria)
    other = unique("u")
    apply_ok(maria, "DatabaseUser", {"username": other}, password=PASSWORD)
    with_option = grant(
        world, {"level": "table", "table": "t", "privileges": ["SELECT"], "withGrantOption": True}
    )
    apply_ok(maria, "DatabaseGrant", with_option)
    assert f"GRANT SELECT ON `{world.db}`.`t` TO `{world.user}`@`%` WITH GRANT OPTION" in show_grants(
        maria, world.user
    )
    query_as(maria, world.user, PASSWORD, f"GRANT SELECT ON `{world.db}`.t TO '{other}'@'%'")
    # Competitors send `REVOKE ALL PRIVILEGES, GRANT OPTION ON db.* ...`, which is a syntax error with ON:
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        maria.query(f"REVOKE ALL PRIVILEGES, GRANT OPTION ON `{world.db}`.t FROM {world.account}")
    assert info.value.args[0] == 1064
    without = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", without))
    assert [w.text for w in writes] == [f"REVOKE GRANT OPTION ON `{world.db}`.`t` FROM '{world.user}'@'%'"]
    assert f"GRANT SELECT ON `{world.db}`.`t` TO `{world.user}`@`%`" in show_grants(maria, world.user)
    assert denied(maria, world.user, PASSWORD, f"GRANT SELECT ON `{world.db}`.t TO '{other}'@'%'")


@pytest.mark.parametrize("level", ["database", "procedure", "function"])
def test_grant_option_at_database_and_routine_level_is_granted_and_revoked(maria: Server, level: str) -> None:
    world = make_world(maria)
    other = unique("u")
    maria.query("CREATE USER %s@%s IDENTIFIED BY %s", (other, "%", PASSWORD))
    pattern = world.db.replace("_", "\\_")
    entry, on, shown, passes_on = {
        "database": (
            {"level": "database", "privileges": ["SELECT"]},
            f"`{pattern}`.*",
            f"GRANT SELECT ON `{pattern}`.* TO `{world.user}`@`%`",
            f"GRANT SELECT ON `{world.db}`.t TO '{other}'@'%'",
        ),
        "procedure": (
            {"level": "procedure", "procedure": "p", "privileges": ["EXECUTE"]},
            f"PROCEDURE `{world.db}`.`p`",
            f"GRANT EXECUTE ON PROCEDURE `{world.db}`.`p` TO `{world.user}`@`%`",
            f"GRANT EXECUTE ON PROCEDURE `{world.db}`.p TO '{other}'@'%'",
        ),
        "function": (
            {"level": "function", "function": "f", "privileges": ["EXECUTE"]},
            f"FUNCTION `{world.db}`.`f`",
            f"GRANT EXECUTE ON FUNCTION `{world.db}`.`f` TO `{world.user}`@`%`",
            f"GRANT EXECUTE ON FUNCTION `{world.db}`.f TO '{other}'@'%'",
        ),
    }[level]
    with_option = grant(world, {**entry, "withGrantOption": True})
    assert show_grants(maria, world.user) == [f"GRANT USAGE ON *.* TO `{world.user}`@`%`"]

    result = apply_ok(maria, "DatabaseGrant", with_option)
    assert result.result["changes"] == [
        f"GRANT {entry['privileges'][0]} ON {on} TO '{world.user}'@'%' WITH GRANT OPTION"
    ]
    assert sorted(show_grants(maria, world.user)) == sorted(
        [f"GRANT USAGE ON *.* TO `{world.user}`@`%`", f"{shown} WITH GRANT OPTION"]
    )
    query_as(maria, world.user, PASSWORD, passes_on)  # the grant option is real: the grantee passes it on
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", with_option))
    assert writes == []

    # Competitors revoke with `REVOKE ALL PRIVILEGES, GRANT OPTION ON ...`, a syntax error whenever ON is given.
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        maria.query(f"REVOKE ALL PRIVILEGES, GRANT OPTION ON {on} FROM {world.account}")
    assert info.value.args[0] == 1064

    # Turning withGrantOption off revokes only the grant option, in a statement the server accepts.
    without = grant(world, entry)
    result, writes = writes_during(maria, lambda: run(maria, "apply", "DatabaseGrant", without))
    assert result.code == 0, result.result
    assert [w.text for w in writes] == [f"REVOKE GRANT OPTION ON {on} FROM '{world.user}'@'%'"]
    assert sorted(show_grants(maria, world.user)) == sorted(
        [f"GRANT USAGE ON *.* TO `{world.user}`@`%`", shown]
    )
    assert denied(maria, world.user, PASSWORD, passes_on)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", without))
    assert writes == []

    # A grant option added by hand on the managed pair is revoked again on the next apply.
    maria.query(f"{shown} WITH GRANT OPTION")  # a SHOW GRANTS line is itself a valid GRANT
    assert f"{shown} WITH GRANT OPTION" in show_grants(maria, world.user)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", without))
    assert [w.text for w in writes] == [f"REVOKE GRANT OPTION ON {on} FROM '{world.user}'@'%'"]
    assert shown in show_grants(maria, world.user)


def test_a_shrunk_list_is_revoked_across_levels_at_once(maria: Server) -> None:
    world = make_world(maria)
    apply_ok(
        maria,
        "DatabaseGrant",
        grant(
            world,
            {"level": "database", "privileges": ["SELECT", "INSERT", "UPDATE", "DELETE"]},
            {"level": "table", "table": "t2", "privileges": ["SELECT", "INSERT"]},
        ),
    )
    shrunk = grant(
        world,
        {"level": "database", "privileges": ["SELECT"]},
        {"level": "table", "table": "t2", "privileges": []},
    )
    result = apply_ok(maria, "DatabaseGrant", shrunk)
    pattern = world.db.replace("_", "\\_")
    assert result.result["changes"] == [
        f"REVOKE DELETE, INSERT, UPDATE ON `{pattern}`.* FROM '{world.user}'@'%'",
        f"REVOKE INSERT, SELECT ON `{world.db}`.`t2` FROM '{world.user}'@'%'",
    ]
    assert sorted(show_grants(maria, world.user)) == sorted(
        [
            f"GRANT USAGE ON *.* TO `{world.user}`@`%`",
            f"GRANT SELECT ON `{pattern}`.* TO `{world.user}`@`%`",
        ]
    )


def test_pairs_the_spec_does_not_name_are_never_touched(maria: Server) -> None:
    world = make_world(maria)
    maria.query(f"GRANT INSERT ON `{world.db}`.t2 TO {world.account}")
    maria.query(f"GRANT RELOAD ON *.* TO {world.account}")
    spec = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    apply_ok(maria, "DatabaseGrant", spec)
    grants = show_grants(maria, world.user)
    assert f"GRANT INSERT ON `{world.db}`.`t2` TO `{world.user}`@`%`" in grants
    assert f"GRANT RELOAD ON *.* TO `{world.user}`@`%`" in grants
    # Dropping the grant revokes what it names, and only that.
    result = run(maria, "drop", "DatabaseGrant", spec)
    assert result.code == 0, result.result
    assert result.result["changes"] == [f"REVOKE SELECT ON `{world.db}`.`t` FROM '{world.user}'@'%'"]
    grants = show_grants(maria, world.user)
    assert f"GRANT INSERT ON `{world.db}`.`t2` TO `{world.user}`@`%`" in grants
    assert not any("`t`" in g for g in grants)


def test_database_grants_do_not_leak_through_the_underscore_wildcard(maria: Server) -> None:
    base = unique("shop")
    world = make_world(maria, base)
    lookalike = base.replace("_", "X")
    maria.query(f"CREATE DATABASE `{lookalike}`")
    maria.query(f"CREATE TABLE `{lookalike}`.t (a INT)")
    apply_ok(maria, "DatabaseGrant", grant(world, {"level": "database", "privileges": ["SELECT"]}))
    assert works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    assert denied(maria, world.user, PASSWORD, f"SELECT COUNT(*) FROM `{lookalike}`.t")


def test_a_hand_made_wildcard_grant_on_the_name_is_revoked_too(maria: Server) -> None:
    world = make_world(maria)  # its name contains "_"
    apply_ok(maria, "DatabaseGrant", grant(world, {"level": "database", "privileges": ["SELECT"]}))
    # Typed the natural way, unescaped: a wildcard row that covers the database once the exact row is gone.
    maria.query(f"GRANT INSERT ON `{world.db}`.* TO {world.account}")
    result = apply_ok(maria, "DatabaseGrant", grant(world, {"level": "database", "privileges": []}))
    assert result.result["changes"] == [
        f"REVOKE SELECT ON `{world.db.replace('_', chr(92) + '_')}`.* FROM '{world.user}'@'%'",
        f"REVOKE INSERT ON `{world.db}`.* FROM '{world.user}'@'%'",
    ]
    assert not works(maria, world, "INSERT INTO `{db}`.t VALUES (3, 4)")
    assert not works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    assert show_grants(maria, world.user) == [f"GRANT USAGE ON *.* TO `{world.user}`@`%`"]


def test_nothing_is_half_applied_when_an_object_is_missing(maria: Server) -> None:
    world = make_world(maria)
    spec = grant(
        world,
        {"level": "database", "privileges": ["SELECT"]},
        {"level": "table", "table": "ghost", "privileges": ["SELECT"]},
        {"level": "column", "table": "t", "columns": ["zzz"], "privileges": ["SELECT"]},
        {"level": "procedure", "procedure": "nope", "privileges": ["EXECUTE"]},
        {"level": "database", "database": "no_such_db", "privileges": ["SELECT"]},
    )
    before = show_grants(maria, world.user)
    result, writes = writes_during(maria, lambda: run(maria, "apply", "DatabaseGrant", spec))
    assert result.code == 2
    assert result.error["code"] == "ObjectNotFound"
    message = result.error["message"]
    for part in (
        f"spec.mysql.grants[1].table: table {world.db}.ghost does not exist",
        f"spec.mysql.grants[2].columns: table {world.db}.t has no column zzz",
        f"spec.mysql.grants[3].procedure: procedure {world.db}.nope does not exist",
        "spec.mysql.grants[4].database: database no_such_db does not exist",
        "nothing was changed",
    ):
        assert part in message
    assert writes == []
    assert show_grants(maria, world.user) == before


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"level": "table", "table": "t", "privileges": ["SELEKT"]},
            "request.spec.mysql.grants[0].privileges[0]: 'SELEKT' is not a MariaDB privilege",
        ),
        (
            {"level": "table", "table": "t", "privileges": ["FILE"]},
            "request.spec.mysql.grants[0].privileges[0]: FILE applies at level global, not at level table",
        ),
        (
            {"level": "procedure", "procedure": "p", "privileges": ["SELECT"]},
            "SELECT applies at level global, database, table, column, not at level procedure",
        ),
    ],
)
def test_bad_privileges_exit_2_before_connecting(maria: Server, entry: dict[str, Any], message: str) -> None:
    world = make_world(maria)
    result, writes = writes_during(maria, lambda: run(maria, "apply", "DatabaseGrant", grant(world, entry)))
    assert result.code == 2 and result.error["code"] == "InvalidRequest"
    assert message in result.error["message"]
    assert result.result["server"] == {}
    assert writes == []


def test_roles_of_the_grantee_are_an_exact_set(maria: Server) -> None:
    world = make_world(maria)
    reader, extra = unique("reader"), unique("extra")
    for role in (reader, extra):
        maria.query(f"CREATE ROLE {role}")
    maria.query(f"GRANT SELECT ON `{world.db}`.t TO {reader}")
    maria.query(f"GRANT {extra} TO {world.account}")
    spec = {"grantee": world.user, "mysql": {"roles": [reader]}}
    result = apply_ok(maria, "DatabaseGrant", spec)
    assert result.result["changes"] == [
        f"REVOKE `{extra}` FROM '{world.user}'@'%'",
        f"GRANT `{reader}` TO '{world.user}'@'%'",
        f"SET DEFAULT ROLE `{reader}` FOR '{world.user}'@'%'",
    ]
    assert result.result["observed"]["roles"] == [reader]
    assert works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert writes == []


def test_dropping_the_grant_clears_the_default_role_it_set(maria: Server) -> None:
    """A role revoked while it is the account's default role dangles: MariaDB warns (1959) at every login."""
    world = make_world(maria)
    reader = unique("reader")
    maria.query(f"CREATE ROLE {reader}")
    spec = {"grantee": world.user, "mysql": {"roles": [reader]}}
    apply_ok(maria, "DatabaseGrant", spec)
    default = "SELECT default_role FROM mysql.user WHERE User = %s AND Host = '%%'"
    assert maria.query(default, (world.user,))[0][0] == reader
    result = run(maria, "drop", "DatabaseGrant", spec)
    assert result.code == 0, result.result
    assert result.result["changes"] == [
        f"REVOKE `{reader}` FROM '{world.user}'@'%'",
        f"SET DEFAULT ROLE NONE FOR '{world.user}'@'%'",
    ]
    assert maria.query(default, (world.user,))[0][0] in ("", None)
    conn = maria.connect(user=world.user, password=PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert conn.show_warnings() == ()
    finally:
        conn.close()
    _, writes = writes_during(maria, lambda: run(maria, "drop", "DatabaseGrant", spec))
    assert writes == []


def test_a_mariadb_role_can_be_the_grantee(maria: Server) -> None:
    world = make_world(maria)
    role = unique("role")
    maria.query(f"CREATE ROLE {role}")
    spec = {
        "grantee": role,
        "database": world.db,
        "mysql": {"grants": [{"level": "table", "table": "t", "privileges": ["SELECT"]}]},
    }
    # dbops creates no roles: a role made by hand is granted to only with adopt (it is never marked).
    refused = run(maria, "apply", "DatabaseGrant", spec)
    assert refused.code == 2 and refused.error["code"] == "UnmanagedObject", refused.result
    spec["adopt"] = True
    result = apply_ok(maria, "DatabaseGrant", spec)
    assert result.result["changes"] == [f"GRANT SELECT ON `{world.db}`.`t` TO `{role}`"]
    assert show_grants(maria, role, None) == [
        f"GRANT USAGE ON *.* TO `{role}`",
        f"GRANT SELECT ON `{world.db}`.`t` TO `{role}`",
    ]
    apply_ok(maria, "DatabaseUser", {"username": world.user, "roles": [role]}, password=PASSWORD)
    assert works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert writes == []


def test_every_grantee_host_gets_the_same_grants(maria: Server) -> None:
    world = make_world(maria)
    hosts = ["%", "10.9.%"]
    apply_ok(
        maria, "DatabaseUser", {"username": world.user, "mysql": {"allowedHosts": hosts}}, password=PASSWORD
    )
    spec = {**grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]}), "granteeHosts": hosts}
    result = apply_ok(maria, "DatabaseGrant", spec)
    assert result.result["observed"]["hosts"] == hosts
    for host in hosts:
        assert f"GRANT SELECT ON `{world.db}`.`t` TO `{world.user}`@`{host}`" in show_grants(
            maria, world.user, host
        )


def test_a_missing_grantee_account_exits_2(maria: Server) -> None:
    world = make_world(maria)
    spec = {
        **grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]}),
        "granteeHosts": ["192.0.2.%"],
    }
    result = run(maria, "apply", "DatabaseGrant", spec)
    assert result.code == 2 and result.error["code"] == "GranteeNotFound"
    assert f"'{world.user}'@'192.0.2.%' does not exist" in result.error["message"]


def test_plan_lists_grants_and_revokes_without_writing(maria: Server) -> None:
    world = make_world(maria)
    maria.query(f"GRANT INSERT ON `{world.db}`.t TO {world.account}")
    spec = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    result, writes = writes_during(maria, lambda: run(maria, "plan", "DatabaseGrant", spec))
    assert result.code == 0 and writes == []
    assert result.result["changes"] == [
        f"REVOKE INSERT ON `{world.db}`.`t` FROM '{world.user}'@'%'",
        f"GRANT SELECT ON `{world.db}`.`t` TO '{world.user}'@'%'",
    ]
    assert can_login(maria, world.user, PASSWORD)


def test_dropping_a_grant_after_its_user_is_gone_succeeds(maria: Server) -> None:
    world = make_world(maria)
    spec = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    apply_ok(maria, "DatabaseGrant", spec)
    maria.query(f"DROP USER {world.account}")
    result, writes = writes_during(maria, lambda: run(maria, "drop", "DatabaseGrant", spec))
    assert result.code == 0, result.result
    # Nothing to revoke: only dbops' memory of the claim's grants is forgotten.
    assert result.result["changes"] == [] and [w.text for w in writes if "_dbops" not in w.text] == []
    assert remembered(maria, world) is None
    _, writes = writes_during(maria, lambda: run(maria, "drop", "DatabaseGrant", spec))
    assert writes == []


# --- memory of what dbops granted (docs/worker.md, "Memory of what dbops granted") ------------------------------


def remembered(maria: Server, world: World, claim: str = "default/test") -> list[list[str]] | None:
    rows = maria.query(
        "SELECT targets FROM `_dbops`.`grants` WHERE claim = %s AND grantee = %s", (claim, world.user)
    )
    return json.loads(rows[0][0]) if rows else None


def user_writes(writes: list[Any]) -> list[str]:
    """The statements that changed privileges, without dbops' memory of them."""
    return [w.text for w in writes if "_dbops" not in w.text]


def test_entries_removed_from_the_spec_are_revoked_and_a_login_proves_it(maria: Server) -> None:
    world = make_world(maria)
    table = {"level": "table", "table": "t", "privileges": ["SELECT"]}
    routine = {"level": "procedure", "procedure": "p", "privileges": ["EXECUTE"]}
    column = {"level": "column", "table": "t2", "columns": ["a"], "privileges": ["SELECT"]}
    full = grant(world, table, routine, column)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", full))
    memory = [w.text for w in writes if "`_dbops`.`grants`" in w.text]
    # Remembered once, before the first GRANT (GRANT commits on its own: the memory goes first).
    assert len([m for m in memory if m.startswith("INSERT")]) == 1
    assert "`_dbops`" in writes[0].text
    assert sorted(k[1] for k in remembered(maria, world) or []) == ["column", "procedure", "table"]
    assert works(maria, world, "CALL `{db}`.p()") and works(maria, world, "SELECT a FROM `{db}`.t2")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", full))
    assert writes == []

    # A privilege granted by hand outside dbops, on a pair no spec names: never touched.
    maria.query(f"GRANT INSERT ON `{world.db}`.t2 TO {world.account}")

    # The routine and the column leave the spec: their privileges go, and the memory forgets them afterwards.
    shrunk = grant(world, table)
    result, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", shrunk))
    assert sorted(result.result["changes"]) == sorted(
        [
            f"REVOKE EXECUTE ON PROCEDURE `{world.db}`.`p` FROM '{world.user}'@'%'",
            f"REVOKE SELECT (`a`) ON `{world.db}`.`t2` FROM '{world.user}'@'%'",
        ]
    )
    assert "`_dbops`.`grants`" in writes[-1].text  # forgotten after the REVOKEs
    assert not works(maria, world, "CALL `{db}`.p()")
    assert not works(maria, world, "SELECT a FROM `{db}`.t2")
    assert works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    assert works(maria, world, "INSERT INTO `{db}`.t2 VALUES (9)")  # the hand grant stays
    assert [k[1] for k in remembered(maria, world) or []] == ["table"]
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", shrunk))
    assert writes == []


def test_absent_revokes_everything_the_claim_ever_granted_and_hand_grants_stay(maria: Server) -> None:
    world = make_world(maria)
    database = {"level": "database", "privileges": ["SELECT"]}
    routine = {"level": "function", "function": "f", "privileges": ["EXECUTE"]}
    apply_ok(maria, "DatabaseGrant", grant(world, database, routine))
    maria.query(f"GRANT INSERT ON `{world.db}`.t2 TO {world.account}")
    # The claim was edited and deleted before a worker ran the edit: the drop still revokes what was granted.
    edited = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    result, writes = writes_during(maria, lambda: run(maria, "drop", "DatabaseGrant", edited))
    assert result.code == 0, result.result
    assert remembered(maria, world) is None
    assert "`_dbops`.`grants`" in writes[-1].text
    assert not works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    assert not works(maria, world, "SELECT `{db}`.f()")
    assert sorted(show_grants(maria, world.user)) == sorted(
        [
            f"GRANT USAGE ON *.* TO `{world.user}`@`%`",
            f"GRANT INSERT ON `{world.db}`.`t2` TO `{world.user}`@`%`",
        ]
    )
    _, writes = writes_during(maria, lambda: run(maria, "drop", "DatabaseGrant", edited))
    assert writes == []


def test_a_claim_recreated_after_its_status_was_lost_neither_regrants_nor_orphans(maria: Server) -> None:
    world = make_world(maria)
    spec = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    apply_ok(maria, "DatabaseGrant", spec)
    # The same claim (namespace/name) created again from Git: a new uid, no status; the worker has only the
    # request and the server.
    again = conftest.request_for(maria, "DatabaseGrant", spec, policy=GLOBAL_GRANTS)
    again["owner"]["uid"] = "1111"
    result, writes = writes_during(maria, lambda: conftest.run_worker(maria, "apply", again))
    assert result.code == 0 and writes == [] and result.result["changes"] == []
    shrunk = conftest.request_for(
        maria,
        "DatabaseGrant",
        grant(world, {"level": "table", "table": "t2", "privileges": ["SELECT"]}),
        policy=GLOBAL_GRANTS,
    )
    shrunk["owner"]["uid"] = "2222"
    result = conftest.run_worker(maria, "apply", shrunk)
    assert result.code == 0, result.result
    assert result.result["changes"] == [
        f"GRANT SELECT ON `{world.db}`.`t2` TO '{world.user}'@'%'",
        f"REVOKE SELECT ON `{world.db}`.`t` FROM '{world.user}'@'%'",
    ]
    assert not works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")


def test_a_pair_another_claim_remembers_is_left_to_it(maria: Server) -> None:
    world = make_world(maria)
    t = {"level": "table", "table": "t", "privileges": ["SELECT"]}
    t2 = {"level": "table", "table": "t2", "privileges": ["SELECT"]}

    def apply_as(owner: str, spec: dict[str, Any]) -> WorkerRun:
        result = conftest.run(maria, "apply", "DatabaseGrant", spec, owner=owner, policy=GLOBAL_GRANTS)
        assert result.code == 0, result.result
        return result

    apply_as("first", grant(world, t, t2))
    apply_as("second", grant(world, t))
    # `first` no longer names t, but `second` granted it too: it stays.
    result = apply_as("first", grant(world, t2))
    assert result.result["changes"] == []
    assert works(maria, world, "SELECT COUNT(*) FROM `{db}`.t")
    assert [k[3] for k in remembered(maria, world, "default/first") or []] == ["t2"]


def test_exclusive_makes_the_grantees_privileges_in_the_database_exactly_the_spec(maria: Server) -> None:
    world = make_world(maria)
    other = unique("other")
    maria.query(f"CREATE DATABASE `{other}`")
    maria.query(f"CREATE TABLE `{other}`.t (a INT)")
    pattern = world.db.replace("_", "\\_")
    for hand in (
        f"GRANT INSERT ON `{pattern}`.* TO {world.account}",
        f"GRANT DELETE ON `{world.db}`.t2 TO {world.account}",
        f"GRANT UPDATE (b) ON `{world.db}`.t TO {world.account}",
        f"GRANT EXECUTE ON PROCEDURE `{world.db}`.p TO {world.account}",
        f"GRANT SELECT ON `{other}`.t TO {world.account}",
    ):
        maria.query(hand)
    t = {"level": "table", "table": "t", "privileges": ["SELECT"]}
    # Without the opt-in, hand grants on pairs the spec does not name stay.
    result = apply_ok(maria, "DatabaseGrant", grant(world, t))
    assert result.result["changes"] == [f"GRANT SELECT ON `{world.db}`.`t` TO '{world.user}'@'%'"]
    assert works(maria, world, "CALL `{db}`.p()")

    exclusive = grant(world, t)
    exclusive["mysql"]["exclusive"] = True
    result = apply_ok(maria, "DatabaseGrant", exclusive)
    assert sorted(result.result["changes"]) == sorted(
        [
            f"REVOKE INSERT ON `{pattern}`.* FROM '{world.user}'@'%'",
            f"REVOKE DELETE ON `{world.db}`.`t2` FROM '{world.user}'@'%'",
            f"REVOKE UPDATE (`b`) ON `{world.db}`.`t` FROM '{world.user}'@'%'",
            f"REVOKE EXECUTE ON PROCEDURE `{world.db}`.`p` FROM '{world.user}'@'%'",
        ]
    ), result.result["changes"]
    assert sorted(show_grants(maria, world.user)) == sorted(
        [
            f"GRANT USAGE ON *.* TO `{world.user}`@`%`",
            f"GRANT SELECT ON `{world.db}`.`t` TO `{world.user}`@`%`",
            f"GRANT SELECT ON `{other}`.`t` TO `{world.user}`@`%`",  # a database the spec does not name
        ]
    )
    assert not works(maria, world, "CALL `{db}`.p()")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", exclusive))
    assert writes == []


def test_a_memory_naming_more_than_was_granted_is_harmless(maria: Server) -> None:
    """GRANT commits on its own, so the memory grows before the GRANTs: a worker that dies in between leaves a row
    naming pairs never granted. The next run finds nothing held there, revokes nothing and forgets them."""
    world = make_world(maria)
    spec = grant(world, {"level": "table", "table": "t", "privileges": ["SELECT"]})
    apply_ok(maria, "DatabaseGrant", spec)
    superset = [["%", "table", world.db, "t", ""], ["%", "table", world.db, "t2", ""]]
    maria.query(
        "UPDATE `_dbops`.`grants` SET targets = %s WHERE claim = 'default/test' AND grantee = %s",
        (json.dumps(superset), world.user),
    )
    result, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert result.result["changes"] == []
    assert user_writes(writes) == [] and len(writes) == 1  # the memory shrinks back
    assert remembered(maria, world) == [["%", "table", world.db, "t", ""]]
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert writes == []
