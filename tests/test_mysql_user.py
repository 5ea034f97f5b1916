"""DatabaseUser on a real MariaDB: accounts per host, options, passwords, roles, database access, locks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.conftest import WorkerRun, apply_ok, run, unique
from tests.servers import Server
from tests.test_mysql_support import (
    account,
    can_login,
    catalog_rows,
    denied,
    ensure_ed25519,
    hosts_of,
    log_text_during,
    query_as,
    show_grants,
    writes_during,
)
from worker.adapters.mysql_account import ed25519_hash, native_hash

pytestmark = pytest.mark.mariadb

PASSWORD = "Us3r-Pa55word-Example"


def user_spec(name: str, **mysql: Any) -> dict[str, Any]:
    return {"username": name, "mysql": mysql}


def server_native_hash(maria: Server, password: str) -> str:
    return str(maria.query("SELECT PASSWORD(%s)", (password,))[0][0])


def test_create_with_every_option_then_reapply_writes_nothing(maria: Server) -> None:
    name = unique("u")
    spec = user_spec(
        name,
        maxQueriesPerHour=1000,
        maxUpdatesPerHour=100,
        maxConnectionsPerHour=50,
        maxUserConnections=5,
        requireSSL=True,
    )
    (result, log) = log_text_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    priv = account(maria, name)
    assert priv is not None
    assert priv["plugin"] == "mysql_native_password"
    assert priv["authentication_string"] == server_native_hash(maria, PASSWORD)
    assert (
        priv["ssl_type"],
        priv["max_questions"],
        priv["max_updates"],
        priv["max_connections"],
        priv["max_user_connections"],
    ) == (1, 1000, 100, 50, 5)
    assert not priv.get("account_locked", False)
    assert result.result["observed"] == {"username": name, "hosts": ["%"], "roles": [], "login": True}
    # Neither the password nor its hash reaches the result or the general log.
    hashed = native_hash(PASSWORD)
    assert PASSWORD not in result.stdout + log and hashed not in result.stdout + log
    assert result.result["changes"][0].startswith("INSERT INTO `_dbops`.`owners` ")  # the marker comes first
    assert "IDENTIFIED VIA mysql_native_password USING '***'" in result.result["changes"][1]
    # The user logs in with its password, over TLS only (REQUIRE SSL).
    assert can_login(maria, name, PASSWORD)
    assert not can_login(maria, name, PASSWORD, ssl_disabled=True)
    assert not can_login(maria, name, "not-the-password")
    second, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []
    assert second.result["changes"] == []
    assert second.result["statements"]["writes"] == 0


def test_a_change_alters_only_the_delta(maria: Server) -> None:
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name, maxQueriesPerHour=10), password=PASSWORD)
    spec = user_spec(name, maxQueriesPerHour=20, requireX509=True)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert [w.text for w in writes] == [f"ALTER USER '{name}'@'%' REQUIRE X509 WITH MAX_QUERIES_PER_HOUR 20"]
    priv = account(maria, name)
    assert priv is not None and (priv["ssl_type"], priv["max_questions"]) == (2, 20)


def test_password_rotation_sets_it_once_and_quietly(maria: Server) -> None:
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    new = "N3w-Rotated-Password"
    (result, log) = log_text_during(
        maria, lambda: apply_ok(maria, "DatabaseUser", user_spec(name), password=new)
    )
    assert result.result["changes"] == [
        f"ALTER USER '{name}'@'%' IDENTIFIED VIA mysql_native_password USING '***'"
    ]
    assert new not in log and native_hash(new) not in log
    assert can_login(maria, name, new) and not can_login(maria, name, PASSWORD)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", user_spec(name), password=new))
    assert writes == []


def test_password_set_by_hand_is_restored(maria: Server) -> None:
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    maria.query(f"SET PASSWORD FOR '{name}'@'%' = PASSWORD('changed-by-hand')")
    result, writes = writes_during(
        maria, lambda: apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    )
    assert [w.text for w in writes] == ["SET SESSION sql_log_off = 1"]  # the password statement, unlogged
    assert result.result["statements"]["writes"] == 1
    assert can_login(maria, name, PASSWORD)


def test_unmanaged_password_never_opens_the_account(maria: Server) -> None:
    name = unique("u")
    result = apply_ok(maria, "DatabaseUser", user_spec(name))
    assert result.result["changes"][1:] == [
        f"CREATE USER '{name}'@'%' IDENTIFIED VIA mysql_native_password USING 'invalid'"
    ]
    assert account(maria, name) is not None
    assert not can_login(maria, name, "")
    assert not can_login(maria, name, "invalid")
    # Setting a password later takes over; leaving it unset again changes nothing.
    apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    assert can_login(maria, name, PASSWORD)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", user_spec(name)))
    assert writes == []
    assert can_login(maria, name, PASSWORD)


def test_ed25519_hash_is_computed_client_side(maria: Server) -> None:
    ensure_ed25519(maria)
    reference = unique("ref")
    maria.query(
        "CREATE USER %s@%s IDENTIFIED VIA ed25519 USING PASSWORD(%s)", (reference, "%", "Reference-pw-1")
    )
    stored = account(maria, reference)
    assert stored is not None and stored["authentication_string"] == ed25519_hash("Reference-pw-1")

    name = unique("u")
    spec = user_spec(name, authPlugin="ed25519")
    (_, log) = log_text_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    priv = account(maria, name)
    assert priv is not None and priv["plugin"] == "ed25519"
    assert priv["authentication_string"] == ed25519_hash(PASSWORD)
    assert PASSWORD not in log and ed25519_hash(PASSWORD) not in log
    assert can_login(maria, name, PASSWORD)
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []
    # Back to mysql_native_password: one statement, kept out of the log too, and the login still works.
    back = user_spec(name, authPlugin="mysql_native_password")
    (_, writes), log = log_text_during(
        maria, lambda: writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", back, password=PASSWORD))
    )
    assert [w.text for w in writes] == ["SET SESSION sql_log_off = 1"]  # the password statement, unlogged
    assert account(maria, name)["plugin"] == "mysql_native_password"  # type: ignore[index]
    assert PASSWORD not in log and native_hash(PASSWORD) not in log and "IDENTIFIED" not in log
    assert can_login(maria, name, PASSWORD)


def test_account_lock_and_unlock(maria: Server) -> None:
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name, accountLocked=True), password=PASSWORD)
    assert account(maria, name)["account_locked"] is True  # type: ignore[index]
    assert not can_login(maria, name, PASSWORD)
    result = apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    assert result.result["changes"] == [f"ALTER USER '{name}'@'%' ACCOUNT UNLOCK"]
    assert can_login(maria, name, PASSWORD)


def test_require_x509_needs_a_client_certificate(maria: Server, tmp_path: Path) -> None:
    if maria.ca is None:
        pytest.skip("no CA for this server")
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name, requireX509=True), password=PASSWORD)
    assert not can_login(maria, name, PASSWORD)
    client = maria.ca.issue("user-client", name, client=True, directory=tmp_path)
    assert can_login(maria, name, PASSWORD, ssl_ca=maria.ca.ca_path, ssl_cert=client.cert, ssl_key=client.key)


def test_each_allowed_host_gets_an_account_and_narrowing_drops_the_claims_old_ones(maria: Server) -> None:
    name = unique("u")
    spec = user_spec(name, allowedHosts=["%", "10.0.0.%"], maxUserConnections=3)
    apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    assert hosts_of(maria, name) == ["%", "10.0.0.%"]
    for host in ("%", "10.0.0.%"):
        assert account(maria, name, host)["max_user_connections"] == 3  # type: ignore[index]
    assert can_login(maria, name, PASSWORD)  # from here, through '%'
    # Narrowing the list drops the account dbops made for the removed host: its old password stops working.
    narrowed = user_spec(name, allowedHosts=["10.0.0.%"], maxUserConnections=4)
    result, writes = writes_during(
        maria, lambda: run(maria, "apply", "DatabaseUser", narrowed, password=PASSWORD)
    )
    assert result.code == 0, result.result
    assert result.result["changes"] == [
        f"ALTER USER '{name}'@'10.0.0.%' WITH MAX_USER_CONNECTIONS 4",
        f"DROP USER '{name}'@'%'",
        f"DELETE FROM `_dbops`.`owners` WHERE object_type = 'account' AND object_name = '{name}' AND host IN ('%')",
    ]
    assert hosts_of(maria, name) == ["10.0.0.%"]
    assert not can_login(maria, name, PASSWORD)
    assert "drift" not in result.result["observed"]
    _, writes = writes_during(maria, lambda: run(maria, "apply", "DatabaseUser", narrowed, password=PASSWORD))
    assert writes == []

    # An account of an unlisted host that dbops did not create for this claim is never dropped: it is drift.
    maria.query("CREATE USER %s@'192.0.2.1' IDENTIFIED BY %s", (name, PASSWORD))
    result, writes = writes_during(
        maria, lambda: run(maria, "apply", "DatabaseUser", narrowed, password=PASSWORD)
    )
    assert result.code == 2
    assert result.error["code"] == "ImmutableFieldChanged"
    assert f"account '{name}'@'192.0.2.1' exists but is not listed" in result.error["message"]
    assert writes == []
    assert hosts_of(maria, name) == ["10.0.0.%", "192.0.2.1"]


def test_roles_are_an_exact_set_and_the_first_is_active(maria: Server) -> None:
    reader, writer, name = unique("reader"), unique("writer"), unique("u")
    database = unique("db")
    maria.query(f"CREATE DATABASE {database}")
    maria.query(f"CREATE TABLE {database}.t (id INT)")
    maria.query(f"CREATE ROLE {reader}")
    maria.query(f"CREATE ROLE {writer}")
    maria.query(f"GRANT SELECT ON {database}.t TO {reader}")
    spec = {**user_spec(name), "roles": [reader, writer]}
    apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    grants = show_grants(maria, name)
    assert f"GRANT `{reader}` TO `{name}`@`%`" in grants and f"GRANT `{writer}` TO `{name}`@`%`" in grants
    assert account(maria, name)["default_role"] == reader  # type: ignore[index]
    # The default role is active at login: the user reads what the role may.
    assert query_as(maria, name, PASSWORD, f"SELECT COUNT(*) FROM {database}.t") == [(0,)]
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []
    narrowed = {**user_spec(name), "roles": [writer]}
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", narrowed, password=PASSWORD))
    assert [w.text for w in writes] == [
        f"REVOKE `{reader}` FROM '{name}'@'%'",
        f"SET DEFAULT ROLE `{writer}` FOR '{name}'@'%'",
    ]
    assert denied(maria, name, PASSWORD, f"SELECT COUNT(*) FROM {database}.t")


def test_unknown_roles_exit_2_before_any_change(maria: Server) -> None:
    name = unique("u")
    result, writes = writes_during(
        maria,
        lambda: run(
            maria, "apply", "DatabaseUser", {**user_spec(name), "roles": ["no_such_role"]}, password=PASSWORD
        ),
    )
    assert result.code == 2 and result.error["code"] == "RoleNotFound"
    assert "spec.roles: no_such_role do not exist" in result.error["message"]
    assert writes == [] and account(maria, name) is None


def test_database_reference_gives_full_use_of_exactly_that_database(maria: Server) -> None:
    name = unique("u")
    base = unique("app")  # contains "_": a wildcard in database-level grants
    other = base.replace("_", "X")
    for db in (base, other):
        maria.query(f"CREATE DATABASE {db}")
    spec = {**user_spec(name), "database": base}
    apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    assert f"GRANT ALL PRIVILEGES ON `{base.replace('_', chr(92) + '_')}`.* TO `{name}`@`%`" in show_grants(
        maria, name
    )
    query_as(maria, name, PASSWORD, f"CREATE TABLE {base}.t (id INT)")
    assert query_as(maria, name, PASSWORD, f"SELECT COUNT(*) FROM {base}.t") == [(0,)]
    assert denied(maria, name, PASSWORD, f"CREATE TABLE {other}.t (id INT)")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []


def test_a_role_name_is_not_a_user(maria: Server) -> None:
    role = unique("r")
    maria.query(f"CREATE ROLE {role}")
    result = run(maria, "apply", "DatabaseUser", user_spec(role), password=PASSWORD)
    assert result.code == 2 and result.error["code"] == "NotAUser"


def test_caching_sha2_on_mariadb_is_an_invalid_request(maria: Server) -> None:
    result = run(
        maria,
        "apply",
        "DatabaseUser",
        user_spec(unique("u"), authPlugin="caching_sha2_password"),
        password=PASSWORD,
    )
    assert result.code == 2 and result.error["code"] == "InvalidRequest"
    assert (
        "request.spec.mysql.authPlugin: caching_sha2_password is a MySQL 8 plugin" in result.error["message"]
    )


def test_plan_shows_statements_with_the_password_redacted(maria: Server) -> None:
    name = unique("u")
    result, writes = writes_during(
        maria, lambda: run(maria, "plan", "DatabaseUser", user_spec(name), password=PASSWORD)
    )
    assert result.code == 0 and writes == []
    assert f"CREATE USER '{name}'@'%' IDENTIFIED VIA mysql_native_password USING '***';" in result.stdout
    assert PASSWORD not in result.stdout and native_hash(PASSWORD) not in result.stdout
    assert account(maria, name) is None


def test_drop_removes_the_listed_accounts(maria: Server) -> None:
    name = unique("u")
    spec = user_spec(name, allowedHosts=["%", "localhost"])
    apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    result = run(maria, "drop", "DatabaseUser", spec)
    assert result.code == 0, result.result
    assert result.result["changes"] == [
        f"DROP USER '{name}'@'%', '{name}'@'localhost'",
        f"DELETE FROM `_dbops`.`owners` WHERE object_type = 'account' AND object_name = '{name}' AND host IN "
        "('%', 'localhost')",
    ]
    assert hosts_of(maria, name) == []
    assert catalog_rows(maria, "account", name) == {}


def test_two_workers_at_once_serialise_and_both_succeed(maria: Server) -> None:
    name = unique("u")
    spec = {**user_spec(name, allowedHosts=["%", "10.1.%"], maxQueriesPerHour=5)}
    results: list[WorkerRun] = []

    def worker() -> None:
        results.append(run(maria, "apply", "DatabaseUser", spec, password=PASSWORD))

    def both() -> None:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    _, writes = writes_during(maria, both)
    assert [r.code for r in results] == [0, 0], [r.result for r in results]
    creates = [c for r in results for c in r.result["changes"] if c.startswith("CREATE USER")]
    assert len(creates) == 2  # one per account: the second worker found the work done under the lock
    # Each account's catalog row, then its password-carrying CREATE USER behind sql_log_off.
    assert len(writes) == 4, writes
    assert hosts_of(maria, name) == ["%", "10.1.%"]


def test_a_held_lock_ends_transient_after_lock_timeout(maria: Server) -> None:
    name = unique("u")
    holder = maria.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (f"dbops:account:{name}",))
            assert cur.fetchone() == (1,)
        result, writes = writes_during(
            maria,
            lambda: run(maria, "apply", "DatabaseUser", user_spec(name), password=PASSWORD, lockTimeout="1s"),
        )
    finally:
        holder.close()
    assert result.code == 1, result.result
    assert result.error["code"] == "LockTimeout"
    assert "retrying later" in result.error["message"]
    assert writes == [] and account(maria, name) is None
    apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)


def test_wrong_admin_password_exits_2(maria: Server) -> None:
    result = run(
        maria,
        "apply",
        "DatabaseUser",
        user_spec(unique("u")),
        password=PASSWORD,
        env={"DBOPS_ADMIN_PASSWORD": "wrong-admin-password"},
    )
    assert result.code == 2 and result.error["code"] == "AuthenticationFailed"


def test_native_hash_matches_the_server(maria: Server) -> None:
    for password in ("a", "päss wörd ✓", "x" * 100):
        assert native_hash(password) == server_native_hash(maria, password)


def test_login_with_a_wrong_password_is_refused_by_the_driver_too(maria: Server) -> None:
    name = unique("u")
    apply_ok(maria, "DatabaseUser", user_spec(name), password=PASSWORD)
    with pytest.raises(pymysql.err.OperationalError) as info:
        maria.connect(user=name, password="nope").close()
    assert info.value.args[0] == 1045


def test_an_admin_without_super_still_manages_users_and_sends_only_hashes(maria: Server) -> None:
    admin, admin_password = unique("admin"), "Limited-Admin-pw-1"
    maria.query("CREATE USER %s@%s IDENTIFIED BY %s", (admin, "%", admin_password))
    maria.query(f"GRANT CREATE USER, SELECT ON *.* TO '{admin}'@'%'")
    maria.query(f"GRANT INSERT, UPDATE, DELETE ON `_dbops`.* TO '{admin}'@'%'")  # dbops' catalog
    name = unique("u")
    env = {"DBOPS_ADMIN_USERNAME": admin, "DBOPS_ADMIN_PASSWORD": admin_password}
    result, log = log_text_during(
        maria, lambda: run(maria, "apply", "DatabaseUser", user_spec(name), password=PASSWORD, env=env)
    )
    assert result.code == 0, result.result
    # Without SUPER the general log cannot be switched off (docs/security.md): it shows the statement with the
    # hash computed client-side, never the password.
    [created] = [line for line in log.splitlines() if f"CREATE USER '{name}'" in line]
    assert f"IDENTIFIED VIA mysql_native_password USING '{native_hash(PASSWORD)}'" in created
    assert PASSWORD not in log
    assert can_login(maria, name, PASSWORD)
