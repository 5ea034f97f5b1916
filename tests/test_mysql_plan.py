"""Pure plan tests for the MySQL/MariaDB adapter: observed state in, statements out, no server.

MySQL 8 cannot be installed here, so its statements are tested at this level only (docs/worker-mysql.md): the plan
functions are fed a MySQL 8 `ServerInfo` and observed state, and the generated SQL is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymysql
import pytest

from dbops_api.mysql_privileges import level_privileges
from worker.adapters.base import ServerInfo, Step
from worker.adapters.mysql import tls_context
from worker.adapters.mysql_account import (
    AccountRows,
    AccountState,
    UserState,
    account_from_json,
    account_parts,
    ed25519_hash,
    native_hash,
    plan_drop_user,
    plan_user,
)
from worker.adapters.mysql_catalog import Entry
from worker.adapters.mysql_database import DatabaseState, plan_database, plan_drop_database
from worker.adapters.mysql_errors import classify
from worker.adapters.mysql_grants import GrantState, Held, Target, observe_parts, plan_grants
from worker.adapters.mysql_sql import Account, db_pattern, parse_version, render, unsupported
from worker.errors import PermanentError
from worker.ownership import Owner
from worker.request import Secrets

MARIADB = ServerInfo("mariadb", "10.11.6-MariaDB", (10, 11, 6))
MYSQL = ServerInfo("mysql", "8.0.36", (8, 0, 36))
PASSWORD = "s3cret-Pa55word"
OWNER = Owner("Database", "default", "test")  # the claim these plans act for; its objects carry its marker


def sqls(steps: list[Step]) -> list[str]:
    return [s.summary for s in steps]


def user_spec(**mysql: Any) -> dict[str, Any]:
    options = {
        "maxQueriesPerHour": 0,
        "maxUpdatesPerHour": 0,
        "maxConnectionsPerHour": 0,
        "maxUserConnections": 0,
        "requireSSL": False,
        "requireX509": False,
        "allowedHosts": ["%"],
        "accountLocked": False,
    }
    return {"username": "app", "mysql": {**options, **mysql}}


def existing(plugin: str = "mysql_native_password", auth: str = "", **kw: Any) -> AccountState:
    return AccountState(host=kw.pop("host", "%"), plugin=plugin, auth_string=auth, **kw)


# --- versions, quoting, summaries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "flavor", "version", "supported"),
    [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1-log", "mariadb", (10, 11, 19), True),
        ("10.4.32-MariaDB", "mariadb", (10, 4, 32), False),
        ("8.0.36", "mysql", (8, 0, 36), True),
        ("8.4.0-commercial", "mysql", (8, 4, 0), True),
        ("5.7.44-log", "mysql", (5, 7, 44), False),
    ],
)
def test_flavor_and_version_from_the_handshake(
    reported: str, flavor: str, version: tuple[int, ...], supported: bool
) -> None:
    info = parse_version(reported)
    assert (info.flavor, info.version_tuple) == (flavor, version)
    assert not info.version.startswith("5.5.5-")
    problem = unsupported(info)
    assert (problem is None) == supported
    if problem:
        assert "is not supported; dbops needs" in problem


def test_summaries_quote_values_and_hide_secrets() -> None:
    summary = render(
        "ALTER USER %s@%s IDENTIFIED BY %s WITH MAX_QUERIES_PER_HOUR %s",
        ["o'brien", "%", PASSWORD, 5],
        [PASSWORD],
    )
    assert summary == "ALTER USER 'o\\'brien'@'%' IDENTIFIED BY '***' WITH MAX_QUERIES_PER_HOUR 5"


def test_database_level_grants_escape_the_underscore_wildcard() -> None:
    assert db_pattern("shop_db", MARIADB) == "shop\\_db"
    assert db_pattern("shop_db", MYSQL) == "shop\\_db"
    # MySQL 8 with partial_revokes reads database names literally.
    assert db_pattern("shop_db", MYSQL, partial_revokes=True) == "shop_db"


def test_tls_needs_both_halves_of_a_client_certificate(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("not used")
    secrets = Secrets("admin", "pw", tls_cert=str(cert), tls_key=str(tmp_path / "tls.key"))
    with pytest.raises(PermanentError, match="the TLS Secret has the certificate but no key"):
        tls_context("require", secrets)
    assert tls_context("disable", secrets) is None


def test_error_table_decides_exit_codes() -> None:
    cases = {
        1045: ("permanent", "AuthenticationFailed"),
        1044: ("permanent", "PermissionDenied"),
        1227: ("permanent", "PermissionDenied"),
        2003: ("transient", "Unreachable"),
        2013: ("transient", "ConnectionLost"),
        1205: ("transient", "LockTimeout"),
        1213: ("transient", "Deadlock"),
        1969: ("transient", "StatementTimeout"),
        3024: ("transient", "StatementTimeout"),
        9999: ("permanent", "ServerError"),
    }
    for number, (kind, code) in cases.items():
        error = classify(pymysql.err.OperationalError(number, "boom"))
        assert (error.error_class, error.code) == (kind, code), number
    hinted = classify(pymysql.err.OperationalError(1142, "CREATE command denied"))
    assert "the admin account needs" in hinted.message


def test_error_messages_never_carry_secrets() -> None:
    hashed = native_hash(PASSWORD)
    error = classify(pymysql.err.ProgrammingError(1064, f"syntax error near '{hashed}'"), [hashed])
    assert hashed not in error.message and "***" in error.message


# --- Database -------------------------------------------------------------------------------------------------


def test_database_create_alter_and_noop() -> None:
    spec = {"name": "shop", "mysql": {"charset": "utf8mb4", "collation": "utf8mb4_bin"}}
    known = {
        "charset_default_collation": "utf8mb4_general_ci",
        "collation_targets": (("utf8mb4", "utf8mb4_bin"),),
    }
    plan = plan_database(spec, DatabaseState(False, **known), OWNER)
    assert sqls(plan.steps)[1:] == ["CREATE DATABASE `shop` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin`"]
    mine = {**known, "marker": OWNER.marker}
    assert not plan_database(spec, DatabaseState(True, "utf8mb4", "utf8mb4_bin", **mine), OWNER)
    plan = plan_database(spec, DatabaseState(True, "latin1", "latin1_swedish_ci", **mine), OWNER)
    assert sqls(plan.steps) == ["ALTER DATABASE `shop` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin`"]
    assert "latin1/latin1_swedish_ci" in plan.steps[0].reason


def test_database_short_collation_names_resolve_to_the_full_name() -> None:
    spec = {"name": "shop", "mysql": {"charset": "utf8mb4", "collation": "uca1400_ai_ci"}}
    state = DatabaseState(
        True,
        "utf8mb4",
        "utf8mb4_uca1400_ai_ci",
        "utf8mb4_general_ci",
        (("utf8mb3", "utf8mb3_uca1400_ai_ci"), ("utf8mb4", "utf8mb4_uca1400_ai_ci")),
        marker=OWNER.marker,
    )
    assert not plan_database(spec, state, OWNER)
    ambiguous = {"name": "shop", "mysql": {"collation": "uca1400_ai_ci"}}
    with pytest.raises(
        PermanentError, match=r"applies to several character sets; set spec\.mysql\.charset too"
    ):
        plan_database(ambiguous, state, OWNER)


@pytest.mark.parametrize(
    ("options", "state", "message"),
    [
        ({"charset": "klingon"}, DatabaseState(False), "spec.mysql.charset: the server has no character set"),
        ({"collation": "nope"}, DatabaseState(False), "spec.mysql.collation: the server has no collation"),
        (
            {"charset": "latin1", "collation": "utf8mb4_bin"},
            DatabaseState(
                False,
                charset_default_collation="latin1_swedish_ci",
                collation_targets=(("utf8mb4", "utf8mb4_bin"),),
            ),
            "'utf8mb4_bin' does not belong to character set 'latin1'",
        ),
    ],
)
def test_database_encoding_errors_name_the_field(
    options: dict[str, str], state: DatabaseState, message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        plan_database({"name": "shop", "mysql": options}, state, OWNER)


def test_database_drop() -> None:
    mine = DatabaseState(True, "a", "b", marker=OWNER.marker)
    assert sqls(plan_drop_database({"name": "shop"}, mine, OWNER).steps) == [
        "DROP DATABASE `shop`",
        "DELETE FROM `_dbops`.`owners` WHERE object_type = 'database' AND object_name = 'shop' AND host IN ('')",
    ]
    assert not plan_drop_database({"name": "shop"}, DatabaseState(False), OWNER)
    with pytest.raises(PermanentError, match="dbops did not create it"):
        plan_drop_database({"name": "shop"}, DatabaseState(True, "a", "b"), OWNER)


# --- DatabaseUser: MariaDB ------------------------------------------------------------------------------------


def test_mariadb_create_sends_a_hash_never_the_password() -> None:
    spec = user_spec(requireSSL=True, maxQueriesPerHour=100, maxUserConnections=5, accountLocked=True)
    plan = plan_user(spec, UserState({}), MARIADB, PASSWORD)
    [step] = plan.steps
    assert step.sql == (
        "CREATE USER %s@%s IDENTIFIED VIA mysql_native_password USING %s REQUIRE SSL "
        "WITH MAX_QUERIES_PER_HOUR %s MAX_USER_CONNECTIONS %s ACCOUNT LOCK"
    )
    assert step.params == ("app", "%", native_hash(PASSWORD), 100, 5)
    assert PASSWORD not in repr(step.params) and PASSWORD not in step.summary
    assert native_hash(PASSWORD) in step.secrets and native_hash(PASSWORD) not in step.summary
    assert "USING '***'" in step.summary


def test_mariadb_unchanged_password_and_options_plan_nothing() -> None:
    spec = user_spec(maxQueriesPerHour=7)
    state = UserState({"%": existing(auth=native_hash(PASSWORD).lower(), limits=(7, 0, 0, 0))})
    assert not plan_user(spec, state, MARIADB, PASSWORD)


def test_mariadb_alters_only_the_delta() -> None:
    spec = user_spec(maxQueriesPerHour=7, requireX509=True)
    state = UserState(
        {"%": existing(auth=native_hash("old-password"), limits=(3, 0, 0, 0), ssl_type="ANY", locked=True)}
    )
    plan = plan_user(spec, state, MARIADB, PASSWORD)
    assert sqls(plan.steps) == [
        "ALTER USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING '***'",
        "ALTER USER 'app'@'%' REQUIRE X509 WITH MAX_QUERIES_PER_HOUR 7 ACCOUNT UNLOCK",
    ]
    assert plan.steps[0].reason == "the password differs"
    assert plan.steps[1].reason == "REQUIRE SSL -> X509; MAX_QUERIES_PER_HOUR 3 -> 7; unlocked"


def test_mariadb_ed25519_hash_compares_with_the_stored_key() -> None:
    spec = user_spec(authPlugin="ed25519")
    stored = ed25519_hash(PASSWORD)
    assert len(stored) == 43 and not stored.endswith("=")
    same = UserState({"%": existing("ed25519", stored)}, plugin_status="ACTIVE")
    assert not plan_user(spec, same, MARIADB, PASSWORD)
    switch = UserState({"%": existing(auth=native_hash(PASSWORD))}, plugin_status="ACTIVE")
    [step] = plan_user(spec, switch, MARIADB, PASSWORD).steps
    assert step.summary == "ALTER USER 'app'@'%' IDENTIFIED VIA ed25519 USING '***'"
    assert step.params == ("app", "%", stored)
    assert step.reason == "authPlugin is mysql_native_password, spec wants ed25519"


def test_an_inactive_plugin_is_a_clear_permanent_error() -> None:
    with pytest.raises(
        PermanentError, match=r"the ed25519 plugin is not active .*INSTALL SONAME 'auth_ed25519'"
    ):
        plan_user(user_spec(authPlugin="ed25519"), UserState({}), MARIADB, PASSWORD)


def test_unmanaged_password_creates_an_account_no_password_opens() -> None:
    [step] = plan_user(user_spec(), UserState({}), MARIADB, None).steps
    assert step.summary == "CREATE USER 'app'@'%' IDENTIFIED VIA mysql_native_password USING 'invalid'"
    assert "credential no password matches" in step.reason
    # An existing account keeps whatever password it has.
    assert not plan_user(user_spec(), UserState({"%": existing(auth="*ABC")}), MARIADB, None)


def test_unlisted_hosts_are_drift_never_dropped() -> None:
    spec = user_spec(allowedHosts=["10.0.0.%"])
    state = UserState({"%": existing(auth=native_hash(PASSWORD))})
    plan = plan_user(spec, state, MARIADB, PASSWORD)
    assert sqls(plan.steps) == [
        "CREATE USER 'app'@'10.0.0.%' IDENTIFIED VIA mysql_native_password USING '***'"
    ]
    assert plan.drift == [
        "mysql.allowedHosts: account 'app'@'%' exists but is not listed, and dbops did not create it for this "
        "claim, so it never drops it (list the host, or DROP USER it by hand)"
    ]
    assert not any("DROP" in s for s in sqls(plan.steps))


def test_mariadb_roles_are_an_exact_set_with_the_first_as_default() -> None:
    spec = {**user_spec(), "roles": ["reader", "writer"]}
    state = UserState(
        {"%": existing(auth=native_hash(PASSWORD), default_roles=("old",))},
        roles={"%": frozenset({"old", "reader"})},
        known_roles=frozenset({"reader", "writer"}),
    )
    assert sqls(plan_user(spec, state, MARIADB, PASSWORD).steps) == [
        "REVOKE `old` FROM 'app'@'%'",
        "GRANT `writer` TO 'app'@'%'",
        "SET DEFAULT ROLE `reader` FOR 'app'@'%'",
    ]
    with pytest.raises(PermanentError, match=r"spec\.roles: ghost do not exist as roles"):
        plan_user({**user_spec(), "roles": ["ghost"]}, state, MARIADB, PASSWORD)


def test_database_reference_grants_all_on_the_escaped_name() -> None:
    spec = {**user_spec(), "database": "shop_db"}
    fresh = UserState({"%": existing(auth=native_hash(PASSWORD))})
    assert sqls(plan_user(spec, fresh, MARIADB, PASSWORD).steps) == [
        "GRANT ALL PRIVILEGES ON `shop\\_db`.* TO 'app'@'%'"
    ]
    full = UserState(
        {"%": existing(auth=native_hash(PASSWORD))},
        db_privileges={"%": level_privileges("database", "mariadb", (10, 11, 6))},
    )
    assert not plan_user(spec, full, MARIADB, PASSWORD)


def test_a_role_is_not_a_user() -> None:
    with pytest.raises(PermanentError, match="is a role in the server, not a user"):
        plan_user(user_spec(), UserState({}, is_role=True), MARIADB, PASSWORD)


def test_drop_user_drops_the_listed_accounts_only() -> None:
    spec = user_spec(allowedHosts=["%", "10.0.0.%"])
    state = UserState(
        {"%": existing(), "localhost": existing(host="localhost")}, owners={"%": Entry(OWNER.marker)}
    )
    assert sqls(plan_drop_user(spec, state, OWNER).steps) == [
        "DROP USER 'app'@'%'",
        "DELETE FROM `_dbops`.`owners` WHERE object_type = 'account' AND object_name = 'app' AND host IN ('%')",
    ]


def test_mariadb_account_json_is_read_with_its_defaults() -> None:
    state = account_from_json(
        "%",
        {
            "plugin": "mysql_native_password",
            "authentication_string": "*AB",
            "ssl_type": 2,
            "max_questions": 3,
            "account_locked": True,
            "default_role": "r",
        },
        "mariadb",
    )
    assert (state.ssl_type, state.limits, state.locked, state.default_roles) == (
        "X509",
        (3, 0, 0, 0),
        True,
        ("r",),
    )
    chained = account_from_json(
        "localhost",
        {"plugin": "mysql_native_password", "auth_or": [{}, {"plugin": "unix_socket"}]},
        "mariadb",
    )
    assert chained.plugin == "mysql_native_password OR unix_socket"


# --- DatabaseUser: MySQL 8 (SQL generation only) --------------------------------------------------------------


def test_mysql8_create_uses_the_server_default_plugin_and_never_logs_the_password() -> None:
    [step] = plan_user(user_spec(requireSSL=True), UserState({}), MYSQL, PASSWORD).steps
    assert step.sql == "CREATE USER %s@%s IDENTIFIED BY %s REQUIRE SSL"
    assert PASSWORD in step.secrets and PASSWORD not in step.summary


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        ("caching_sha2_password", "CREATE USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY '***'"),
        ("sha256_password", "CREATE USER 'app'@'%' IDENTIFIED WITH sha256_password BY '***'"),
        ("mysql_native_password", "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password AS '***'"),
    ],
)
def test_mysql8_create_with_each_plugin(plugin: str, expected: str) -> None:
    [step] = plan_user(
        user_spec(authPlugin=plugin), UserState({}, plugin_status="ACTIVE"), MYSQL, PASSWORD
    ).steps
    assert step.summary == expected
    if plugin == "mysql_native_password":
        assert step.params == ("app", "%", native_hash(PASSWORD))


def test_mysql8_salted_plugins_trust_a_deciding_login_else_the_revision() -> None:
    spec = user_spec(authPlugin="caching_sha2_password")
    account = {"%": existing("caching_sha2_password", "")}
    assert not plan_user(spec, UserState(account, plugin_status="ACTIVE", login_ok=True), MYSQL, PASSWORD)
    [step] = plan_user(
        spec, UserState(account, plugin_status="ACTIVE", login_ok=False), MYSQL, PASSWORD
    ).steps
    assert step.summary == "ALTER USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY '***'"
    assert not step.unverifiable
    # No login can decide (login_ok None): the revision dbops recorded when it set the password does.
    recorded = UserState(account, plugin_status="ACTIVE", owners={"%": Entry(OWNER.marker, "7")})
    assert not plan_user(spec, recorded, MYSQL, PASSWORD, revision="7")
    step, remember = plan_user(spec, recorded, MYSQL, PASSWORD, revision="8").steps
    assert step.summary == "ALTER USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY '***'"
    assert "revision 7, it is now 8" in step.reason and not step.unverifiable
    assert remember.summary == (
        "UPDATE `_dbops`.`owners` SET password_revision = '8' WHERE object_type = 'account' AND "
        "object_name = 'app' AND host = '%'"
    )
    # Neither a login nor a revision: set on every run, and not counted as left over.
    [step] = plan_user(spec, UserState(account, plugin_status="ACTIVE"), MYSQL, PASSWORD).steps
    assert step.unverifiable


def test_mysql8_unmanaged_password_uses_mysqls_own_impossible_hash() -> None:
    [step] = plan_user(user_spec(), UserState({}), MYSQL, None).steps
    assert step.summary.startswith("CREATE USER 'app'@'%' IDENTIFIED WITH caching_sha2_password AS '$A$005$")


def test_mysql8_roles_use_its_multi_role_syntax() -> None:
    spec = {**user_spec(), "roles": ["reader", "writer"]}
    state = UserState(
        {"%": existing("caching_sha2_password", default_roles=("old",))},
        roles={"%": frozenset({"old"})},
        known_roles=frozenset({"reader", "writer"}),
        login_ok=True,
    )
    assert sqls(plan_user(spec, state, MYSQL, PASSWORD).steps) == [
        "REVOKE `old` FROM 'app'@'%'",
        "GRANT `reader`, `writer` TO 'app'@'%'",
        "ALTER USER 'app'@'%' DEFAULT ROLE `reader`, `writer`",
    ]


def test_mysql8_has_no_ed25519() -> None:
    with pytest.raises(PermanentError, match="ed25519 is not available on MySQL"):
        plan_user(user_spec(authPlugin="ed25519"), UserState({}), MYSQL, PASSWORD)


def test_mysql8_database_reference_honours_partial_revokes() -> None:
    spec = {**user_spec(), "database": "shop_db"}
    state = UserState({"%": existing("caching_sha2_password")}, partial_revokes=True, login_ok=True)
    assert sqls(plan_user(spec, state, MYSQL, PASSWORD).steps) == [
        "GRANT ALL PRIVILEGES ON `shop_db`.* TO 'app'@'%'"
    ]


def mysql8_account_row(**columns: Any) -> tuple[Any, ...]:
    """An 'account' row as the MySQL 8 observation returns it: the JSON_OBJECT built from mysql.user columns
    (ssl_type and account_locked are ENUM strings there; the hash is read for mysql_native_password only)."""
    values = {
        "plugin": "mysql_native_password",
        "authentication_string": native_hash(PASSWORD),
        "ssl_type": "",
        "max_questions": 0,
        "max_updates": 0,
        "max_connections": 0,
        "max_user_connections": 0,
        "account_locked": "N",
        **columns,
    }
    return ("account", "%", json.dumps(values), None, None, None)


def test_mysql8_alters_only_the_delta() -> None:
    observed = mysql8_account_row(ssl_type="ANY", max_questions=10, max_connections=5, max_user_connections=2)
    state = UserState(AccountRows.parse([observed], MYSQL).accounts)
    assert state.accounts["%"].ssl_type == "ANY"  # REQUIRE SSL
    assert not state.accounts["%"].locked
    # The same limits, REQUIRE SSL and the same password: nothing to do.
    same = user_spec(requireSSL=True, maxQueriesPerHour=10, maxConnectionsPerHour=5, maxUserConnections=2)
    assert not plan_user(same, state, MYSQL, PASSWORD)
    # One limit, REQUIRE X509 and ACCOUNT LOCK differ: one ALTER USER with exactly those clauses.
    changed = user_spec(
        requireX509=True,
        maxQueriesPerHour=10,
        maxConnectionsPerHour=7,
        maxUserConnections=2,
        accountLocked=True,
    )
    [step] = plan_user(changed, state, MYSQL, PASSWORD).steps
    assert step.sql == "ALTER USER %s@%s REQUIRE X509 WITH MAX_CONNECTIONS_PER_HOUR %s ACCOUNT LOCK"
    assert step.params == ("app", "%", 7)
    assert step.summary == "ALTER USER 'app'@'%' REQUIRE X509 WITH MAX_CONNECTIONS_PER_HOUR 7 ACCOUNT LOCK"
    assert step.reason == "REQUIRE SSL -> X509; MAX_CONNECTIONS_PER_HOUR 5 -> 7; locked"
    assert not step.secrets
    # The server as that statement leaves it: converged.
    after = mysql8_account_row(
        ssl_type="X509", max_questions=10, max_connections=7, max_user_connections=2, account_locked="Y"
    )
    assert not plan_user(changed, UserState(AccountRows.parse([after], MYSQL).accounts), MYSQL, PASSWORD)
    # Back to no TLS requirement and unlocked, limits unchanged.
    relaxed = user_spec(maxQueriesPerHour=10, maxConnectionsPerHour=7, maxUserConnections=2)
    [step] = plan_user(relaxed, UserState(AccountRows.parse([after], MYSQL).accounts), MYSQL, PASSWORD).steps
    assert step.summary == "ALTER USER 'app'@'%' REQUIRE NONE ACCOUNT UNLOCK"


def test_mysql8_observation_reads_its_own_catalogs() -> None:
    text = " ".join(sql for sql, _ in account_parts(MYSQL, "app"))
    assert "FROM mysql.user" in text and "mysql.role_edges" in text and "mysql.default_roles" in text
    assert "global_priv" not in text
    rows = [
        (
            "account",
            "%",
            '{"plugin": "caching_sha2_password", "ssl_type": "X509", "account_locked": "Y", '
            '"max_updates": 4}',
            None,
            None,
            None,
        ),
        ("default_role", "%", "reader", None, None, None),
        ("var", "partial_revokes", "1", None, None, None),
    ]
    parsed = AccountRows.parse(rows, MYSQL)
    state = parsed.accounts["%"]
    assert (state.ssl_type, state.locked, state.limits, state.default_roles) == (
        "X509",
        True,
        (0, 4, 0, 0),
        ("reader",),
    )
    assert parsed.partial_revokes


# --- DatabaseGrant ----------------------------------------------------------------------------------------------


def grant_spec(*grants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "grantee": "app",
        "granteeHosts": ["%"],
        "database": "shop",
        "mysql": {"grants": [{"withGrantOption": False, **g} for g in grants]},
        **extra,
    }


def grant_state(held: dict[Target, Held] | None = None, **kw: Any) -> GrantState:
    return GrantState(
        accounts={"%": existing()},
        held={("%", t): h for t, h in (held or {}).items()},
        schemas=frozenset({"shop"}),
        tables=frozenset({("shop", "orders")}),
        columns={("shop", "orders"): frozenset({"id", "total", "note"})},
        routines=frozenset({("shop", "refund", "PROCEDURE")}),
        **kw,
    )


def test_grant_diff_revokes_extras_and_grant_option_separately() -> None:
    spec = grant_spec({"level": "database", "privileges": ["SELECT", "INSERT"]})
    held = {Target("database", "shop"): Held({"SELECT", "DELETE", "UPDATE"}, grant_option=True)}
    steps = sqls(plan_grants(spec, grant_state(held), MARIADB).steps)
    assert steps == [
        "REVOKE DELETE, UPDATE ON `shop`.* FROM 'app'@'%'",
        "REVOKE GRANT OPTION ON `shop`.* FROM 'app'@'%'",
        "GRANT INSERT ON `shop`.* TO 'app'@'%'",
    ]
    assert not any("ALL PRIVILEGES, GRANT OPTION" in s for s in steps)


def test_grant_option_alone_is_granted_with_the_listed_privileges() -> None:
    spec = grant_spec(
        {"level": "table", "table": "orders", "privileges": ["SELECT"], "withGrantOption": True}
    )
    held = {Target("table", "shop", "orders"): Held({"SELECT"})}
    assert sqls(plan_grants(spec, grant_state(held), MARIADB).steps) == [
        "GRANT SELECT ON `shop`.`orders` TO 'app'@'%' WITH GRANT OPTION"
    ]


def test_empty_privileges_revoke_everything_on_the_pair() -> None:
    spec = grant_spec({"level": "procedure", "procedure": "Refund", "privileges": []})
    held = {Target("procedure", "shop", "refund"): Held({"EXECUTE", "ALTER ROUTINE"}, grant_option=True)}
    assert sqls(plan_grants(spec, grant_state(held), MARIADB).steps) == [
        "REVOKE ALTER ROUTINE, EXECUTE ON PROCEDURE `shop`.`Refund` FROM 'app'@'%'",
        "REVOKE GRANT OPTION ON PROCEDURE `shop`.`Refund` FROM 'app'@'%'",
    ]


def test_column_pairs_of_a_table_share_one_statement_each_way() -> None:
    spec = grant_spec(
        {"level": "column", "table": "orders", "columns": ["id", "Total"], "privileges": ["SELECT", "UPDATE"]}
    )
    held = {
        Target("column", "shop", "orders", "id"): Held({"SELECT", "INSERT"}),
        Target("column", "shop", "orders", "note"): Held({"SELECT"}),
    }
    assert sqls(plan_grants(spec, grant_state(held), MARIADB).steps) == [
        "REVOKE INSERT (`id`) ON `shop`.`orders` FROM 'app'@'%'",
        "GRANT SELECT (`Total`), UPDATE (`id`, `Total`) ON `shop`.`orders` TO 'app'@'%'",
    ]


def test_unnamed_pairs_are_never_touched() -> None:
    spec = grant_spec({"level": "table", "table": "orders", "privileges": ["SELECT"]})
    held = {
        Target("table", "shop", "orders"): Held({"SELECT"}),
        Target("table", "shop", "invoices"): Held({"DELETE"}),
        Target("global"): Held({"PROCESS"}),
    }
    assert not plan_grants(spec, grant_state(held), MARIADB)


def test_a_wildcard_grant_on_the_same_name_is_revoked() -> None:
    spec = {**grant_spec({"level": "database", "privileges": ["SELECT"]}), "database": "shop_db"}
    state = GrantState(
        accounts={"%": existing()},
        schemas=frozenset({"shop_db"}),
        held={("%", Target("database", "shop_db")): Held({"SELECT"})},
        aliases={("%", Target("database", "shop_db")): Held({"INSERT"}, grant_option=True)},
    )
    assert sqls(plan_grants(spec, state, MARIADB).steps) == [
        "REVOKE INSERT ON `shop_db`.* FROM 'app'@'%'",
        "REVOKE GRANT OPTION ON `shop_db`.* FROM 'app'@'%'",
    ]


def test_missing_objects_are_all_reported_before_any_statement() -> None:
    spec = grant_spec(
        {"level": "database", "database": "nowhere", "privileges": ["SELECT"]},
        {"level": "table", "table": "ghost", "privileges": ["SELECT"]},
        {"level": "column", "table": "orders", "columns": ["nope"], "privileges": ["SELECT"]},
        {"level": "function", "function": "refund", "privileges": ["EXECUTE"]},
        {"level": "global", "privileges": ["PROCESS"]},
    )
    with pytest.raises(PermanentError) as info:
        plan_grants(spec, grant_state(), MARIADB)
    assert info.value.code == "ObjectNotFound"
    for part in (
        "grants[0].database: database nowhere does not exist",
        "grants[1].table: table shop.ghost does not exist",
        "grants[2].columns: table shop.orders has no column nope",
        "grants[3].function: function shop.refund does not exist",
        "nothing was changed",
    ):
        assert part in info.value.message


def test_privileges_the_server_version_lacks_are_refused() -> None:
    spec = grant_spec({"level": "table", "table": "orders", "privileges": ["DELETE HISTORY"]})
    with pytest.raises(PermanentError) as info:
        plan_grants(spec, grant_state(), MYSQL)
    assert info.value.code == "InvalidPrivilege"
    assert "spec.mysql.grants[0].privileges: 'DELETE HISTORY' is not a MySQL privilege" in info.value.message


def test_missing_grantee_accounts_are_named() -> None:
    spec = {**grant_spec({"level": "global", "privileges": ["PROCESS"]}), "granteeHosts": ["%", "10.%"]}
    with pytest.raises(
        PermanentError, match=r"spec.grantee: 'app'@'10.%' does not exist; create the user first"
    ):
        plan_grants(spec, grant_state(), MARIADB)


def test_mariadb_role_grantee_has_no_host() -> None:
    spec = grant_spec({"level": "database", "privileges": ["SELECT"]})
    state = GrantState(accounts={"": AccountState("", "", is_role=True)}, schemas=frozenset({"shop"}))
    assert sqls(plan_grants(spec, state, MARIADB).steps) == ["GRANT SELECT ON `shop`.* TO `app`"]


def test_drop_revokes_everything_the_spec_names() -> None:
    spec = {
        **grant_spec(
            {"level": "database", "privileges": ["SELECT"]},
            {"level": "table", "table": "ghost", "privileges": ["SELECT"]},
        ),
        "mysql": {
            "grants": [
                {"level": "database", "privileges": ["SELECT"]},
                {"level": "table", "table": "ghost", "privileges": ["SELECT"]},
            ],
            "roles": ["reader"],
        },
    }
    held = {Target("database", "shop"): Held({"SELECT", "INSERT"}, grant_option=True)}
    state = grant_state(held, roles={"%": frozenset({"reader", "other"})})
    assert sqls(plan_grants(spec, state, MARIADB, drop=True).steps) == [
        "REVOKE INSERT, SELECT ON `shop`.* FROM 'app'@'%'",
        "REVOKE GRANT OPTION ON `shop`.* FROM 'app'@'%'",
        "REVOKE `reader` FROM 'app'@'%'",
    ]


def test_dropping_grants_of_a_vanished_account_is_a_no_op() -> None:
    spec = grant_spec({"level": "database", "privileges": ["SELECT"]})
    assert not plan_grants(spec, GrantState(accounts={}), MARIADB, drop=True)
    with pytest.raises(PermanentError, match="does not exist"):
        plan_grants(spec, GrantState(accounts={}), MARIADB)


def test_mysql8_grants_dynamic_privileges_and_reads_global_grants() -> None:
    spec = grant_spec({"level": "global", "privileges": ["BACKUP_ADMIN", "PROCESS"]})
    held = {Target("global"): Held({"PROCESS", "SYSTEM_VARIABLES_ADMIN"})}
    assert sqls(plan_grants(spec, grant_state(held), MYSQL).steps) == [
        "REVOKE SYSTEM_VARIABLES_ADMIN ON *.* FROM 'app'@'%'",
        "GRANT BACKUP_ADMIN ON *.* TO 'app'@'%'",
    ]
    text = " ".join(sql for sql, _ in observe_parts(spec, MYSQL))
    assert "mysql.global_grants" in text and "information_schema.USER_PRIVILEGES" in text


def test_mysql8_all_at_database_level_expands_without_mariadb_privileges() -> None:
    spec = grant_spec({"level": "database", "privileges": ["ALL"]})
    [step] = plan_grants(spec, grant_state(), MYSQL).steps
    assert "DELETE HISTORY" not in step.summary and "CREATE TEMPORARY TABLES" in step.summary
    assert step.summary.endswith("ON `shop`.* TO 'app'@'%'")


def test_observation_is_one_query_with_bound_values() -> None:
    spec = grant_spec(
        {"level": "column", "table": "orders", "columns": ["id"], "privileges": ["SELECT"]},
        {"level": "function", "function": "f", "privileges": ["EXECUTE"]},
    )
    parts = observe_parts(spec, MARIADB)
    for sql, params in parts:
        assert sql.count("%s") == len(params), sql
        assert "'app'" not in sql and "orders" not in sql  # values are parameters, never spliced in


def test_account_display() -> None:
    assert str(Account("app", "%")) == "'app'@'%'"
    assert str(Account("reader", None)) == "'reader'"
    assert Account("reader", None).grantee() == "'reader'@''"
