"""Role membership WITH ADMIN OPTION (`adminRoles`): requested, observed and exact, on a real PostgreSQL and a real
MariaDB, for DatabaseUser and DatabaseGrant; MySQL 8 and PostgreSQL 16+ at the SQL-generation level.

What a user checks: the catalog (`pg_auth_members.admin_option`, `mysql.roles_mapping.Admin_option`), a real login
of the member that can (or can no longer) grant the role to someone else, and the server's statement log.
"""

from __future__ import annotations

import secrets
from typing import Any

import pymysql
import pytest

from dbops_api.registry import SPECS
from dbops_api.validation import normalize
from function.spec.cel import rule_errors
from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_mysql_plan import sqls, user_spec
from tests.test_mysql_support import mark_account
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import as_user, execute, make_role, mark, statements
from tests.test_pg_support import writes_during as pg_writes_during
from worker.adapters.base import ServerInfo
from worker.adapters.mysql_account import AccountRows, AccountState, UserState, account_parts, plan_user
from worker.adapters.mysql_grants import GrantState, plan_grants
from worker.adapters.pg_acl import Membership, membership_steps
from worker.errors import PermanentError

MYSQL = ServerInfo("mysql", "8.0.36", (8, 0, 36))
MARIADB = ServerInfo("mariadb", "10.11.6-MariaDB", (10, 11, 6))
PASSWORD = "Adm1n-0ption-Pa55word"


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def pg_admin_options(pg: Server, member: str) -> dict[str, bool]:
    """role -> held WITH ADMIN OPTION (from any grantor), for every membership of `member`."""
    rows = pg.query(
        "SELECT roleid::regrole::text, bool_or(admin_option) FROM pg_auth_members "
        "WHERE member = %s::regrole GROUP BY 1",
        (member,),
    )
    return dict(rows)


def pg_can_grant(pg: Server, user: str, password: str, role: str, other: str) -> bool:
    """Whether `user`, logged in, may make `other` a member of `role`; a grant that works is taken back by the same
    login, so nothing depends on the user's admin option afterwards."""
    ok, _ = as_user(pg, user, password, f"GRANT {role} TO {other}")
    if ok:
        undone, message = as_user(pg, user, password, f"REVOKE {role} FROM {other}")
        assert undone, message
    return ok


def pg_roles(pg: Server) -> tuple[str, str, str]:
    """Two group roles and an unrelated role the member tries to grant them to."""
    r1, _ = make_role(pg, "grp", "NOLOGIN")
    r2, _ = make_role(pg, "grp", "NOLOGIN")
    other, _ = make_role(pg, "other", "NOLOGIN")
    return r1, r2, other


@pytest.mark.postgres
def test_pg_user_admin_option_is_granted_exact_and_reverted(pg: Server) -> None:
    r1, r2, other = pg_roles(pg)
    name = unique("adm")
    password = secrets.token_urlsafe(16)
    spec: dict[str, Any] = {
        "username": name,
        "roles": [r1],
        "postgres": {"inRoles": [r2]},
        "adminRoles": [r1],
    }
    created = apply_ok(pg, "DatabaseUser", spec, password=password)
    # The role is created first, then its memberships: r1 with the admin option, r2 without.
    assert f"GRANT {r2} TO {name}" in created.result["changes"]
    assert f"GRANT {r1} TO {name} WITH ADMIN OPTION" in created.result["changes"]
    assert pg_admin_options(pg, name) == {r1: True, r2: False}
    assert pg_can_grant(pg, name, password, r1, other)
    assert not pg_can_grant(pg, name, password, r2, other)

    again, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=password))
    assert statements(writes) == [] and again.result["changes"] == []

    # Out of adminRoles: only the admin option goes, the membership stays.
    spec["adminRoles"] = []
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=password))
    assert statements(writes) == [f"REVOKE ADMIN OPTION FOR {r1} FROM {name}"]
    assert pg_admin_options(pg, name) == {r1: False, r2: False}
    assert not pg_can_grant(pg, name, password, r1, other)

    # A hand-added admin option on a managed membership is reverted; an absent adminRoles means "none".
    del spec["adminRoles"]
    execute(pg, f"GRANT {r2} TO {name} WITH ADMIN OPTION")
    assert pg_can_grant(pg, name, password, r2, other)
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=password))
    assert statements(writes) == [f"REVOKE ADMIN OPTION FOR {r2} FROM {name}"]
    assert pg_admin_options(pg, name) == {r1: False, r2: False}
    assert not pg_can_grant(pg, name, password, r2, other)

    # Back in adminRoles: the held membership is upgraded in place.
    spec["adminRoles"] = [r2]
    upgraded = apply_ok(pg, "DatabaseUser", spec, password=password)
    assert upgraded.result["changes"] == [f"GRANT {r2} TO {name} WITH ADMIN OPTION"]
    assert pg_admin_options(pg, name) == {r1: False, r2: True}


@pytest.mark.postgres
def test_pg_unmanaged_memberships_keep_their_admin_option(pg: Server) -> None:
    r1, _, other = pg_roles(pg)
    name, password = make_role(pg, "adm", "LOGIN")
    mark(pg, "ROLE", name)
    execute(pg, f"GRANT {r1} TO {name} WITH ADMIN OPTION")
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}))
    assert statements(writes) == []
    assert pg_admin_options(pg, name) == {r1: True}
    assert pg_can_grant(pg, name, password, r1, other)


@pytest.mark.postgres
def test_pg_grant_admin_option_is_granted_exact_reverted_and_dropped(pg: Server) -> None:
    r1, r2, other = pg_roles(pg)
    grantee, password = make_role(pg, "grantee", "LOGIN")
    mark(pg, "ROLE", grantee)
    spec: dict[str, Any] = {"grantee": grantee, "postgres": {"roles": [r1, r2], "adminRoles": [r2]}}
    first = apply_ok(pg, "DatabaseGrant", spec)
    assert first.result["changes"] == [
        f"GRANT {r1} TO {grantee}",
        f"GRANT {r2} TO {grantee} WITH ADMIN OPTION",
    ]
    assert pg_admin_options(pg, grantee) == {r1: False, r2: True}
    assert pg_can_grant(pg, grantee, password, r2, other)
    assert not pg_can_grant(pg, grantee, password, r1, other)

    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseGrant", spec))
    assert statements(writes) == []

    spec["postgres"]["adminRoles"] = []
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseGrant", spec))
    assert statements(writes) == [f"REVOKE ADMIN OPTION FOR {r2} FROM {grantee}"]
    assert pg_admin_options(pg, grantee) == {r1: False, r2: False}
    assert not pg_can_grant(pg, grantee, password, r2, other)

    execute(pg, f"GRANT {r1} TO {grantee} WITH ADMIN OPTION")
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseGrant", spec))
    assert statements(writes) == [f"REVOKE ADMIN OPTION FOR {r1} FROM {grantee}"]
    assert not pg_can_grant(pg, grantee, password, r1, other)

    # Drop revokes the named memberships, admin option and all; a membership it does not name keeps its option.
    spec["postgres"] = {"roles": [r1], "adminRoles": [r1]}
    apply_ok(pg, "DatabaseGrant", spec)
    execute(pg, f"GRANT {r2} TO {grantee} WITH ADMIN OPTION")
    dropped = run(pg, "drop", "DatabaseGrant", spec)
    assert dropped.code == 0, dropped.result
    assert dropped.result["changes"] == [f"REVOKE {r1} FROM {grantee}"]
    assert pg_admin_options(pg, grantee) == {r2: True}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        (
            "DatabaseUser",
            {"roles": ["R1"], "postgres": {"inRoles": ["R2"]}, "adminRoles": ["R1", "R3"]},
            "adminRoles",
        ),
        ("DatabaseGrant", {"postgres": {"roles": ["R1"], "adminRoles": ["R3"]}}, "postgres.adminRoles"),
    ],
)
def test_pg_admin_roles_outside_roles_exit_2_and_change_nothing(
    pg: Server, kind: str, spec: dict[str, Any], field: str
) -> None:
    r1, r2, _ = pg_roles(pg)
    r3, _ = make_role(pg, "grp", "NOLOGIN")
    name, _ = make_role(pg, "adm", "LOGIN")
    execute(pg, f"GRANT {r1} TO {name}")
    names = {"R1": r1, "R2": r2, "R3": r3}
    filled = _substitute(spec, names)
    filled["username" if kind == "DatabaseUser" else "grantee"] = name
    result, writes = pg_writes_during(pg, lambda: run(pg, "apply", kind, filled))
    assert result.code == 2
    assert result.error["code"] == "InvalidRequest"
    assert f"request.spec.{field}: adminRoles names a role" in result.error["message"]
    assert writes == []
    assert pg_admin_options(pg, name) == {r1: False}


def test_pg_sql_admin_option_per_grantor_on_16_and_one_grant_before() -> None:
    held16 = [
        Membership("a", "admin1", admin=True),
        Membership("a", "postgres", admin=True),
        Membership("b", "postgres"),
        Membership("c", "postgres", admin=True),
    ]
    steps = membership_steps(
        "u",
        frozenset({"a", "b", "c", "d", "e"}),
        held16,
        (16, 4),
        "spec.roles",
        admin=frozenset({"b", "c", "e"}),
    )
    assert [s.sql for s in steps] == [
        # PostgreSQL 16+: every grantor's grant of `a` carries the option, each loses it on its own.
        "REVOKE ADMIN OPTION FOR a FROM u GRANTED BY admin1",
        "REVOKE ADMIN OPTION FOR a FROM u GRANTED BY postgres",
        "GRANT d TO u",
        # `b` is upgraded (the current user's grant), `e` is new; `c` already has it.
        "GRANT b, e TO u WITH ADMIN OPTION",
    ]
    held15 = [Membership("a", "postgres", admin=True), Membership("b", None)]
    steps = membership_steps(
        "u", frozenset({"a", "b"}), held15, (15, 8), "spec.roles", admin=frozenset({"b"})
    )
    assert [s.sql for s in steps] == ["REVOKE ADMIN OPTION FOR a FROM u", "GRANT b TO u WITH ADMIN OPTION"]
    converged = [Membership("a", "postgres"), Membership("b", None, admin=True)]
    assert membership_steps("u", frozenset({"a", "b"}), converged, (15, 8), "x", admin=frozenset({"b"})) == []
    # Unmanaged admin option (the drop of a grant keeping what it does not name): nothing about it is planned.
    dropping = membership_steps("u", frozenset({"a"}), held15, (16, 1), "x", admin=None)
    assert [s.sql for s in dropping] == ["REVOKE b FROM u"]


# --- MariaDB --------------------------------------------------------------------------------------------------


def maria_admin_options(maria: Server, user: str, host: str = "%") -> dict[str, bool]:
    rows = maria.query(
        "SELECT Role, Admin_option FROM mysql.roles_mapping WHERE User = %s AND Host = %s", (user, host)
    )
    return {str(role): option == "Y" for role, option in rows}


def maria_can_grant(maria: Server, user: str, password: str, role: str, other: str) -> bool:
    """Whether `user`, logged in, may grant `role` to the account `other`@`%` (taken back by the same login)."""
    conn = maria.connect(user=user, password=password)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(f"GRANT `{role}` TO %s@'%%'", (other,))
            except pymysql.MySQLError as exc:
                if exc.args[0] in (1044, 1227, 1698):  # access denied
                    return False
                raise
            cur.execute(f"REVOKE `{role}` FROM %s@'%%'", (other,))
        return True
    finally:
        conn.close()


def maria_world(maria: Server) -> tuple[str, str, str]:
    r1, r2, other = unique("grp"), unique("grp"), unique("other")
    maria.query(f"CREATE ROLE {r1}")
    maria.query(f"CREATE ROLE {r2}")
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (other, PASSWORD))
    return r1, r2, other


def maria_account(user: str) -> str:
    return f"'{user}'@'%'"


@pytest.mark.mariadb
def test_maria_user_admin_option_is_granted_exact_and_reverted(maria: Server) -> None:
    r1, r2, other = maria_world(maria)
    name = unique("adm")
    spec: dict[str, Any] = {"username": name, "roles": [r1, r2], "adminRoles": [r2]}
    created = apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    assert created.result["changes"][2:] == [  # after its catalog row and CREATE USER
        f"GRANT `{r1}` TO {maria_account(name)}",
        f"GRANT `{r2}` TO {maria_account(name)} WITH ADMIN OPTION",
        f"SET DEFAULT ROLE `{r1}` FOR {maria_account(name)}",
    ]
    assert maria_admin_options(maria, name) == {r1: False, r2: True}
    assert maria_can_grant(maria, name, PASSWORD, r2, other)
    assert not maria_can_grant(maria, name, PASSWORD, r1, other)

    _, writes = maria_writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []

    # Out of adminRoles: `REVOKE ADMIN OPTION FOR`, the role stays granted (and the default role stays).
    spec["adminRoles"] = []
    lowered = apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    assert lowered.result["changes"] == [f"REVOKE ADMIN OPTION FOR `{r2}` FROM {maria_account(name)}"]
    assert maria_admin_options(maria, name) == {r1: False, r2: False}
    assert not maria_can_grant(maria, name, PASSWORD, r2, other)
    _, writes = maria_writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []

    # Hand-added admin option on a managed role: reverted on the next apply.
    maria.query(f"GRANT {r1} TO %s@'%%' WITH ADMIN OPTION", (name,))
    assert maria_can_grant(maria, name, PASSWORD, r1, other)
    reverted = apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    assert reverted.result["changes"] == [f"REVOKE ADMIN OPTION FOR `{r1}` FROM {maria_account(name)}"]
    assert maria_admin_options(maria, name) == {r1: False, r2: False}
    assert not maria_can_grant(maria, name, PASSWORD, r1, other)


@pytest.mark.mariadb
def test_maria_grant_admin_option_is_granted_exact_reverted_and_dropped(maria: Server) -> None:
    r1, r2, other = maria_world(maria)
    grantee = unique("gr")
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (grantee, PASSWORD))
    mark_account(maria, grantee)
    spec: dict[str, Any] = {"grantee": grantee, "mysql": {"roles": [r1, r2], "adminRoles": [r1]}}
    first = apply_ok(maria, "DatabaseGrant", spec)
    assert first.result["changes"] == [
        f"GRANT `{r2}` TO {maria_account(grantee)}",
        f"GRANT `{r1}` TO {maria_account(grantee)} WITH ADMIN OPTION",
        f"SET DEFAULT ROLE `{r1}` FOR {maria_account(grantee)}",
    ]
    assert maria_admin_options(maria, grantee) == {r1: True, r2: False}
    assert maria_can_grant(maria, grantee, PASSWORD, r1, other)
    assert not maria_can_grant(maria, grantee, PASSWORD, r2, other)

    _, writes = maria_writes_during(maria, lambda: apply_ok(maria, "DatabaseGrant", spec))
    assert writes == []

    spec["mysql"]["adminRoles"] = []
    lowered = apply_ok(maria, "DatabaseGrant", spec)
    assert lowered.result["changes"] == [f"REVOKE ADMIN OPTION FOR `{r1}` FROM {maria_account(grantee)}"]
    assert maria_admin_options(maria, grantee) == {r1: False, r2: False}
    assert not maria_can_grant(maria, grantee, PASSWORD, r1, other)

    maria.query(f"GRANT {r2} TO %s@'%%' WITH ADMIN OPTION", (grantee,))
    reverted = apply_ok(maria, "DatabaseGrant", spec)
    assert reverted.result["changes"] == [f"REVOKE ADMIN OPTION FOR `{r2}` FROM {maria_account(grantee)}"]
    assert not maria_can_grant(maria, grantee, PASSWORD, r2, other)

    # Drop revokes the named roles with their admin option; a role it does not name keeps its option.
    spec["mysql"] = {"roles": [r2], "adminRoles": [r2]}
    apply_ok(maria, "DatabaseGrant", spec)
    maria.query(f"GRANT {r1} TO %s@'%%' WITH ADMIN OPTION", (grantee,))
    dropped = run(maria, "drop", "DatabaseGrant", spec)
    assert dropped.code == 0, dropped.result
    # r2 was the default role: it is cleared, not left dangling (docs/worker-mysql.md).
    assert dropped.result["changes"] == [
        f"REVOKE `{r2}` FROM {maria_account(grantee)}",
        f"SET DEFAULT ROLE NONE FOR {maria_account(grantee)}",
    ]
    assert maria_admin_options(maria, grantee) == {r1: True}


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("DatabaseUser", {"roles": ["R1"], "adminRoles": ["R2"]}, "adminRoles"),
        ("DatabaseGrant", {"mysql": {"roles": ["R1"], "adminRoles": ["R1", "R2"]}}, "mysql.adminRoles"),
    ],
)
def test_maria_admin_roles_outside_roles_exit_2_and_change_nothing(
    maria: Server, kind: str, spec: dict[str, Any], field: str
) -> None:
    r1, r2, _ = maria_world(maria)
    name = unique("adm")
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, PASSWORD))
    maria.query(f"GRANT {r1} TO %s@'%%'", (name,))
    filled = _substitute(spec, {"R1": r1, "R2": r2})
    filled["username" if kind == "DatabaseUser" else "grantee"] = name
    result, writes = maria_writes_during(maria, lambda: run(maria, "apply", kind, filled, password=PASSWORD))
    assert result.code == 2
    assert result.error["code"] == "InvalidRequest"
    assert f"request.spec.{field}: adminRoles names a role" in result.error["message"]
    assert writes == []
    assert maria_admin_options(maria, name) == {r1: False}


def test_maria_observation_reads_the_admin_option() -> None:
    text = " ".join(sql for sql, _ in account_parts(MARIADB, "app"))
    assert "Admin_option" in text and "mysql.roles_mapping" in text
    parsed = AccountRows.parse(
        [("role", "%", "a", "Y", None, None), ("role", "%", "b", "N", None, None)], MARIADB
    )
    assert parsed.roles == {"%": {"a", "b"}} and parsed.admin_roles == {"%": {"a"}}


# --- MySQL 8 (SQL generation only: no MySQL server here) -------------------------------------------------------


def mysql_user_spec(**extra: Any) -> dict[str, Any]:
    return {**user_spec(), **extra}


def mysql_account(defaults: tuple[str, ...] = ()) -> AccountState:
    return AccountState(host="%", plugin="caching_sha2_password", default_roles=defaults)


def mysql_user_state(roles: set[str], admin: set[str], defaults: tuple[str, ...]) -> UserState:
    return UserState(
        {"%": mysql_account(defaults)},
        roles={"%": frozenset(roles)},
        admin_roles={"%": frozenset(admin)},
        known_roles=frozenset({"reader", "writer", "boss", "old"}),
        login_ok=True,
    )


def test_mysql8_observation_reads_with_admin_option() -> None:
    text = " ".join(sql for sql, _ in account_parts(MYSQL, "app"))
    assert "WITH_ADMIN_OPTION" in text and "mysql.role_edges" in text
    parsed = AccountRows.parse(
        [("role", "%", "boss", "Y", None, None), ("role", "%", "reader", "N", None, None)], MYSQL
    )
    assert parsed.roles == {"%": {"boss", "reader"}} and parsed.admin_roles == {"%": {"boss"}}


def test_mysql8_user_admin_option_grant_upgrade_and_revoke_regrant() -> None:
    spec = mysql_user_spec(roles=["reader", "writer", "boss"], adminRoles=["reader", "boss"])
    state = mysql_user_state({"reader", "writer", "old"}, {"writer", "old"}, ("reader", "writer"))
    assert sqls(plan_user(spec, state, MYSQL, PASSWORD).steps) == [
        "REVOKE `old` FROM 'app'@'%'",
        # No REVOKE ADMIN OPTION FOR in MySQL 8: revoke the role and grant it again without the option.
        "REVOKE `writer` FROM 'app'@'%'",
        "GRANT `writer` TO 'app'@'%'",
        # One statement adds `boss` and upgrades the held `reader`.
        "GRANT `reader`, `boss` TO 'app'@'%' WITH ADMIN OPTION",
        "ALTER USER 'app'@'%' DEFAULT ROLE `boss`, `reader`, `writer`",
    ]
    converged = mysql_user_state(
        {"reader", "writer", "boss"}, {"reader", "boss"}, ("boss", "reader", "writer")
    )
    assert plan_user(spec, converged, MYSQL, PASSWORD).steps == []


def test_mysql8_revoke_regrant_states_the_default_roles_again() -> None:
    # The defaults are already right, but the revoke that drops the admin option may take `writer` out of them.
    spec = mysql_user_spec(roles=["reader", "writer"])
    state = mysql_user_state({"reader", "writer"}, {"writer"}, ("reader", "writer"))
    assert sqls(plan_user(spec, state, MYSQL, PASSWORD).steps) == [
        "REVOKE `writer` FROM 'app'@'%'",
        "GRANT `writer` TO 'app'@'%'",
        "ALTER USER 'app'@'%' DEFAULT ROLE `reader`, `writer`",
    ]
    # On MariaDB (one default role: the first listed) only the admin option goes, nothing else is touched.
    maria = mysql_user_state({"reader", "writer"}, {"writer"}, ("reader",))
    assert sqls(plan_user(spec, maria, MARIADB, None).steps) == [
        "REVOKE ADMIN OPTION FOR `writer` FROM 'app'@'%'"
    ]


def mysql_grant_state(roles: set[str], admin: set[str], defaults: tuple[str, ...] = ()) -> GrantState:
    return GrantState(
        accounts={"%": mysql_account(defaults)},
        roles={"%": frozenset(roles)},
        admin_roles={"%": frozenset(admin)},
        known_roles=frozenset({"reader", "writer", "boss", "old"}),
    )


def test_mysql8_grant_roles_are_an_exact_set_with_all_as_defaults() -> None:
    spec = {"grantee": "app", "granteeHosts": ["%"], "mysql": {"roles": ["reader", "writer"]}}
    state = mysql_grant_state({"old", "reader"}, set(), ("old",))
    assert sqls(plan_grants(spec, state, MYSQL).steps) == [
        "REVOKE `old` FROM 'app'@'%'",
        "GRANT `writer` TO 'app'@'%'",
        "ALTER USER 'app'@'%' DEFAULT ROLE `reader`, `writer`",
    ]
    assert (
        plan_grants(spec, mysql_grant_state({"reader", "writer"}, set(), ("reader", "writer")), MYSQL).steps
        == []
    )
    with pytest.raises(PermanentError, match=r"spec\.mysql\.roles: role ghost does not exist"):
        plan_grants({**spec, "mysql": {"roles": ["ghost"]}}, state, MYSQL)


def test_mysql8_grant_admin_option_and_drop() -> None:
    spec = {
        "grantee": "app",
        "granteeHosts": ["%"],
        "mysql": {"roles": ["reader", "boss"], "adminRoles": ["boss"]},
    }
    state = mysql_grant_state({"reader", "boss", "old"}, {"reader", "old"}, ("boss", "old", "reader"))
    assert sqls(plan_grants(spec, state, MYSQL).steps) == [
        "REVOKE `old` FROM 'app'@'%'",
        "REVOKE `reader` FROM 'app'@'%'",
        "GRANT `reader` TO 'app'@'%'",
        "GRANT `boss` TO 'app'@'%' WITH ADMIN OPTION",
        "ALTER USER 'app'@'%' DEFAULT ROLE `boss`, `reader`",
    ]
    # Drop: the named roles go (admin option and all), `old` stays as it is, and stays the only default role.
    assert sqls(plan_grants(spec, state, MYSQL, drop=True).steps) == [
        "REVOKE `boss`, `reader` FROM 'app'@'%'",
        "ALTER USER 'app'@'%' DEFAULT ROLE `old`",
    ]


# --- the rule: adminRoles within roles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spec", "field", "ok"),
    [
        ("DatabaseUser", {"roles": ["a"], "adminRoles": ["a"]}, "spec.adminRoles", True),
        ("DatabaseUser", {"postgres": {"inRoles": ["a"]}, "adminRoles": ["a"]}, "spec.adminRoles", True),
        ("DatabaseUser", {"adminRoles": []}, "spec.adminRoles", True),
        ("DatabaseUser", {"adminRoles": ["a"]}, "spec.adminRoles", False),
        (
            "DatabaseUser",
            {"roles": ["a"], "postgres": {"inRoles": ["b"]}, "adminRoles": ["c"]},
            "spec.adminRoles",
            False,
        ),
        (
            "DatabaseGrant",
            {"postgres": {"roles": ["a"], "adminRoles": ["a"]}},
            "spec.postgres.adminRoles",
            True,
        ),
        ("DatabaseGrant", {"postgres": {"adminRoles": ["a"]}}, "spec.postgres.adminRoles", False),
        (
            "DatabaseGrant",
            {"mysql": {"roles": ["a"], "adminRoles": ["a", "b"]}},
            "spec.mysql.adminRoles",
            False,
        ),
    ],
)
def test_cel_rule_and_python_twin_agree_on_admin_roles(
    kind: str, spec: dict[str, Any], field: str, ok: bool
) -> None:
    base = {"instanceRef": {"name": "i"}, "username": "u"} if kind == "DatabaseUser" else {"roleName": "u"}
    value, python_errors = normalize(SPECS[kind], {**base, **spec}, "spec")
    cel_errors = rule_errors(SPECS[kind], value, "spec")
    for errors in (python_errors, cel_errors):
        named = [str(e) for e in errors if str(e).startswith(f"{field}: adminRoles names a role")]
        assert bool(named) is not ok, errors


def _substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value
