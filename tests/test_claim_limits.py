"""What a claim can never do (docs/security.md), against the real servers: take over a role, account or database
dbops did not create, fight another claim over one, touch the servers' own objects or hand out server-wide
privileges without the instance's consent, leave PUBLIC's access on a database it manages unmanageable, send a
password in clear to MySQL/MariaDB, retry a bug forever, or mistake a conflict, a missing privilege, a read-only
server, a cut connection or an unreachable account for something else.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pymysql
import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import apply_ok, request_for, run, run_worker, unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server
from tests.test_faults_support import dedicated
from tests.test_mysql_support import account, catalog_rows, mark_account, show_grants
from tests.test_mysql_support import can_login as maria_can_login
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import admin_env, as_user, can_login, comment, execute, make_role, one
from tests.test_pg_support import writes_during as pg_writes_during
from tests.wire import relay_to
from worker.adapters.base import ServerInfo
from worker.adapters.mysql_account import native_hash
from worker.adapters.mysql_errors import classify
from worker.adapters.mysql_login import client_host, login_decides
from worker.ownership import Owner

PASSWORD = "Claim-limits-pw-1"
OTHER_PASSWORD = "Claim-limits-pw-2"
MINE = "managed by dbops for DatabaseUser default/test"


def role_attributes(pg: Server, name: str) -> tuple[bool, bool, int]:
    return one(pg, "SELECT rolreplication, rolcreatedb, rolconnlimit FROM pg_roles WHERE rolname = %s", (name,))


# --- no takeover: PostgreSQL ----------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_pg_an_existing_role_is_never_taken_over_without_adopt(pg: Server) -> None:
    """Before: the role silently lost REPLICATION, its connection limit and its password."""
    name, old = make_role(pg, "legacy", "LOGIN REPLICATION CONNECTION LIMIT 5")
    spec: dict[str, Any] = {"username": name}
    refused, writes = pg_writes_during(pg, lambda: run(pg, "apply", "DatabaseUser", spec, password=PASSWORD))
    assert refused.code == 2, refused.result
    assert (refused.error["class"], refused.error["code"]) == ("permanent", "UnmanagedObject")
    assert f"role {name} exists and dbops did not create it" in refused.error["message"]
    assert "spec.adopt: true" in refused.error["message"]
    assert writes == []
    assert role_attributes(pg, name) == (True, False, 5)
    assert can_login(pg, name, old) and not can_login(pg, name, PASSWORD)
    assert comment(pg, "pg_authid", name) is None
    dropped = run(pg, "drop", "DatabaseUser", spec)
    assert (dropped.code, dropped.error.get("code")) == (2, "UnmanagedObject")
    assert can_login(pg, name, old)

    # Asked for explicitly: managed from now on, and marked as this claim's.
    adopted = apply_ok(pg, "DatabaseUser", {**spec, "adopt": True}, password=PASSWORD)
    assert adopted.result["changes"][0] == f"COMMENT ON ROLE {name} IS '{MINE}'"
    assert comment(pg, "pg_authid", name) == MINE
    assert role_attributes(pg, name) == (False, False, -1)
    assert can_login(pg, name, PASSWORD) and not can_login(pg, name, old)
    # The marker lives in the server: a new run without adopt (a new Job, a lost status) knows it as its own.
    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []


@pytest.mark.postgres
def test_pg_two_claims_never_manage_one_role(pg: Server) -> None:
    name = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": name}, password=PASSWORD, owner="team-a")
    second = {"username": name, "postgres": {"createDB": True}}
    refused, writes = pg_writes_during(
        pg, lambda: run(pg, "apply", "DatabaseUser", second, password=OTHER_PASSWORD, owner="team-b")
    )
    assert (refused.code, refused.error["code"]) == (2, "OwnedByAnotherClaim"), refused.result
    assert f"role {name} is managed by DatabaseUser default/team-a" in refused.error["message"]
    assert writes == []
    assert role_attributes(pg, name)[1] is False and can_login(pg, name, PASSWORD)
    assert run(pg, "drop", "DatabaseUser", second, owner="team-b").error["code"] == "OwnedByAnotherClaim"

    # adopt moves it; the first claim is refused from then on.
    apply_ok(pg, "DatabaseUser", {**second, "adopt": True}, password=OTHER_PASSWORD, owner="team-b")
    assert comment(pg, "pg_authid", name) == "managed by dbops for DatabaseUser default/team-b"
    back = run(pg, "apply", "DatabaseUser", {"username": name}, password=PASSWORD, owner="team-a")
    assert (back.code, back.error["code"]) == (2, "OwnedByAnotherClaim")
    assert can_login(pg, name, OTHER_PASSWORD)


@pytest.mark.postgres
def test_pg_an_existing_database_is_never_taken_over_or_dropped(pg: Server) -> None:
    name = unique("db")
    execute(pg, f"CREATE DATABASE {name} CONNECTION LIMIT 7")
    spec: dict[str, Any] = {"name": name, "postgres": {"connectionLimit": 50}}
    refused, writes = pg_writes_during(pg, lambda: run(pg, "apply", "Database", spec))
    assert (refused.code, refused.error["code"]) == (2, "UnmanagedObject"), refused.result
    assert f"database {name} exists and dbops did not create it" in refused.error["message"]
    assert writes == []
    limit = "SELECT datconnlimit FROM pg_database WHERE datname = %s"
    assert one(pg, limit, (name,)) == 7
    dropped = run(pg, "drop", "Database", spec)
    assert (dropped.code, dropped.error["code"]) == (2, "UnmanagedObject")
    assert one(pg, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)) == 1

    adopted = apply_ok(pg, "Database", {**spec, "adopt": True})
    assert adopted.result["changes"][0] == (
        f"COMMENT ON DATABASE {name} IS 'managed by dbops for Database default/test'"
    )
    assert one(pg, limit, (name,)) == 50
    other = run(pg, "apply", "Database", spec, owner="elsewhere")
    assert (other.code, other.error["code"]) == (2, "OwnedByAnotherClaim")
    assert "managed by Database default/test" in other.error["message"]


@pytest.mark.postgres
def test_pg_a_grant_acts_only_on_roles_its_namespace_manages(pg: Server) -> None:
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    hand, _ = make_role(pg, "hand", "LOGIN")
    spec: dict[str, Any] = {"grantee": hand, "database": db, "postgres": {"grants": [{"privileges": ["CONNECT"]}]}}
    refused, writes = pg_writes_during(pg, lambda: run(pg, "apply", "DatabaseGrant", spec))
    assert (refused.code, refused.error["code"]) == (2, "UnmanagedObject"), refused.result
    assert writes == []
    elsewhere, _ = make_role(pg, "elsewhere", "LOGIN")
    execute(pg, f"COMMENT ON ROLE {elsewhere} IS '{Owner('DatabaseUser', 'team-b', 'app').marker}'")
    foreign = run(pg, "apply", "DatabaseGrant", {**spec, "grantee": elsewhere})
    assert (foreign.code, foreign.error["code"]) == (2, "OwnedByAnotherClaim")
    assert "DatabaseUser team-b/app in another namespace" in foreign.error["message"]
    # adopt grants, and never marks the grantee as the grant's.
    apply_ok(pg, "DatabaseGrant", {**spec, "adopt": True})
    assert one(pg, "SELECT has_database_privilege(%s, %s, 'CONNECT')", (hand, db)) is True
    assert comment(pg, "pg_authid", hand) is None


# --- no takeover: MariaDB -------------------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_maria_the_catalog_comes_with_the_first_object_and_marks_what_dbops_creates() -> None:
    """A fresh server has no catalog: the first object creates it (before the object), and from then on reading
    the markers is part of the one query a converged object costs."""
    with dedicated("mariadb") as maria:
        assert maria.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '_dbops'") == []
        name = unique("u")
        env = {"DBOPS_CREDENTIAL_REVISION": "3"}
        first = apply_ok(maria, "DatabaseUser", {"username": name}, password=PASSWORD, env=env)
        changes = first.result["changes"]
        assert changes[0].startswith("CREATE DATABASE IF NOT EXISTS `_dbops`")
        assert changes[1].startswith("CREATE TABLE IF NOT EXISTS `_dbops`.`owners`")
        assert changes[2].startswith("INSERT INTO `_dbops`.`owners`")
        assert changes[3].startswith(f"CREATE USER '{name}'@'%'")
        assert catalog_rows(maria, "account", name) == {"%": (MINE, "3")}
        again, writes = maria_writes_during(
            maria, lambda: apply_ok(maria, "DatabaseUser", {"username": name}, password=PASSWORD, env=env)
        )
        assert writes == [] and again.result["statements"] == {"reads": 1, "writes": 0}


@pytest.mark.mariadb
def test_maria_an_existing_account_is_never_taken_over_without_adopt(maria: Server) -> None:
    name = unique("u")
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS 3", (name, OTHER_PASSWORD))
    spec: dict[str, Any] = {"username": name}
    refused, writes = maria_writes_during(maria, lambda: run(maria, "apply", "DatabaseUser", spec, password=PASSWORD))
    assert (refused.code, refused.error["code"]) == (2, "UnmanagedObject"), refused.result
    assert f"account '{name}'@'%' exists and dbops did not create it" in refused.error["message"]
    assert writes == []
    assert (account(maria, name) or {})["max_user_connections"] == 3
    assert maria_can_login(maria, name, OTHER_PASSWORD) and not maria_can_login(maria, name, PASSWORD)
    assert run(maria, "drop", "DatabaseUser", spec).error["code"] == "UnmanagedObject"
    assert catalog_rows(maria, "account", name) == {}

    adopted = apply_ok(maria, "DatabaseUser", {**spec, "adopt": True}, password=PASSWORD)
    assert adopted.result["changes"][0].startswith("INSERT INTO `_dbops`.`owners`")
    assert catalog_rows(maria, "account", name) == {"%": (MINE, None)}
    assert (account(maria, name) or {})["max_user_connections"] == 0
    assert maria_can_login(maria, name, PASSWORD)
    _, writes = maria_writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == []


@pytest.mark.mariadb
def test_maria_two_claims_never_manage_one_account_or_database(maria: Server) -> None:
    name, db = unique("u"), unique("db")
    apply_ok(maria, "DatabaseUser", {"username": name}, password=PASSWORD, owner="team-a")
    apply_ok(maria, "Database", {"name": db, "mysql": {"charset": "utf8mb4"}}, owner="team-a")
    refused, writes = maria_writes_during(
        maria,
        lambda: [
            run(maria, "apply", "DatabaseUser", {"username": name}, password=OTHER_PASSWORD, owner="team-b"),
            run(maria, "apply", "Database", {"name": db, "mysql": {"charset": "latin1"}}, owner="team-b"),
            run(maria, "drop", "Database", {"name": db}, owner="team-b"),
        ],
    )
    assert [r.error["code"] for r in refused] == ["OwnedByAnotherClaim"] * 3, [r.result for r in refused]
    assert "managed by DatabaseUser default/team-a" in refused[0].error["message"]
    assert writes == []
    assert maria_can_login(maria, name, PASSWORD)
    charset = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
    assert maria.query(charset, (db,)) == [("utf8mb4",)]


@pytest.mark.mariadb
def test_maria_a_grant_acts_only_on_accounts_its_namespace_manages(maria: Server) -> None:
    db, hand = unique("db"), unique("u")
    maria.query(f"CREATE DATABASE `{db}`")
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (hand, PASSWORD))
    spec: dict[str, Any] = {"grantee": hand, "database": db, "mysql": {"grants": [{"level": "database", "privileges": ["SELECT"]}]}}
    refused, writes = maria_writes_during(maria, lambda: run(maria, "apply", "DatabaseGrant", spec))
    assert (refused.code, refused.error["code"]) == (2, "UnmanagedObject"), refused.result
    assert writes == []
    mark_account(maria, hand, owner="app")  # a DatabaseUser default/app manages it now: same namespace
    apply_ok(maria, "DatabaseGrant", spec)
    assert f"GRANT SELECT ON `{db.replace('_', chr(92) + '_')}`.* TO `{hand}`@`%`" in show_grants(maria, hand)


# --- a lost status (or a rebuilt cluster) -----------------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_the_same_claims_in_a_new_cluster_recognise_their_objects(
    function_client: FunctionClient, server: Server
) -> None:
    """Nothing survives but the server: a new cluster (no status, no Jobs, no Secrets) with the same claims
    converges on the objects the first one created, because the markers name the claims."""
    instance, database, user = kube_name("inst"), kube_name("db"), kube_name("user")
    db_name, username = unique("app"), unique("app")
    docs = [
        admin_secret(server, f"{instance}-admin"),
        instance_claim(server, instance, f"{instance}-admin"),
        claim("Database", database, {"instanceRef": {"name": instance}, "name": db_name}),
        claim(
            "DatabaseUser",
            user,
            {
                "instanceRef": {"name": instance},
                "databaseRef": {"name": database},
                "username": username,
                "passwordSecret": {"secretName": f"{user}-creds"},
            },
        ),
    ]
    for _ in range(2):
        c = cluster(function_client)
        c.apply(docs)
        c.reconcile()
        phases = {o["kind"]: (o["status"]["phase"], o["status"]["message"]) for o in c.claims()}
        assert {p for p, _ in phases.values()} == {"Ready"}, phases
        creds = c.secret_data(f"{user}-creds")  # a new password the second time, set by the second Job
        conn = server.connect(user=creds["username"], password=creds["password"], database=db_name)
        conn.close()


# --- system objects and server-wide privileges ----------------------------------------------------------------


@pytest.mark.postgres
def test_pg_membership_in_a_superuser_role_is_refused(pg: Server) -> None:
    boss, _ = make_role(pg, "boss", "NOLOGIN SUPERUSER")
    name = unique("user")
    refused, writes = pg_writes_during(pg, lambda: run(pg, "apply", "DatabaseUser", {"username": name, "roles": [boss]}))
    assert (refused.code, refused.error["code"]) == (2, "SystemObject"), refused.result
    assert f"{boss} is a superuser role" in refused.error["message"]
    assert writes == []
    assert one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)) == 0


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_server_wide_privileges_need_the_instances_consent(server: Server) -> None:
    """PostgreSQL membership in a predefined role, MySQL/MariaDB global grants and grants on the mysql schema:
    refused before connecting unless the request carries the instance's allowGlobalGrants."""
    user = unique("user")
    apply_ok(server, "DatabaseUser", {"username": user}, password=PASSWORD)
    if server.engine == "postgres":
        kind, spec = "DatabaseUser", {"username": user, "postgres": {"inRoles": ["pg_read_all_data"]}}
        field = "request.spec.postgres.inRoles[0]"
        cases = [(spec, field)]
    else:
        kind = "DatabaseGrant"
        cases = [
            ({"grantee": user, "mysql": {"grants": [{"level": "global", "privileges": ["ALL"]}]}}, "request.spec.mysql.grants[0].level"),
            (
                {"grantee": user, "mysql": {"grants": [{"level": "table", "database": "mysql", "table": "user", "privileges": ["SELECT"]}]}},
                "request.spec.mysql.grants[0].database",
            ),
        ]
    for spec, field in cases:
        refused = run(server, "apply", kind, spec, password=PASSWORD)
        assert (refused.code, refused.error["code"]) == (2, "InvalidRequest"), refused.result
        assert refused.error["message"].startswith(f"{field}: ")
        assert "allowGlobalGrants: true" in refused.error["message"]
        assert refused.result["statements"] == {"reads": 0, "writes": 0}
        allowed = run(server, "apply", kind, spec, password=PASSWORD, policy={"allowGlobalGrants": True})
        assert allowed.code == 0, allowed.result


# --- PUBLIC on a managed database (PostgreSQL) --------------------------------------------------------------------


@pytest.mark.postgres
def test_pg_public_privileges_let_privileges_empty_mean_no_access(pg: Server) -> None:
    """A Database with publicPrivileges: [] keeps PUBLIC from connecting, so a DatabaseGrant's privileges: [] leaves
    its grantee without access, which real logins show. Before: PUBLIC always kept CONNECT."""
    db, app, other = unique("db"), unique("user"), unique("user")
    spec: dict[str, Any] = {"name": db, "postgres": {"publicPrivileges": []}}
    created = apply_ok(pg, "Database", spec)
    assert f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC" in created.result["changes"]
    apply_ok(pg, "DatabaseUser", {"username": app, "database": db}, password=PASSWORD)
    apply_ok(pg, "DatabaseUser", {"username": other}, password=OTHER_PASSWORD)
    assert as_user(pg, app, PASSWORD, "SELECT 1", database=db) == (True, "")  # databaseRef: CONNECT of its own
    refused = as_user(pg, other, OTHER_PASSWORD, "SELECT 1", database=db)
    assert not refused[0] and f'permission denied for database "{db}"' in refused[1]

    grant: dict[str, Any] = {"grantee": other, "database": db, "postgres": {"grants": [{"privileges": ["CONNECT"]}]}}
    apply_ok(pg, "DatabaseGrant", grant)
    assert as_user(pg, other, OTHER_PASSWORD, "SELECT 1", database=db) == (True, "")
    grant["postgres"]["grants"][0]["privileges"] = []
    apply_ok(pg, "DatabaseGrant", grant)
    assert not as_user(pg, other, OTHER_PASSWORD, "SELECT 1", database=db)[0]  # [] now means no access

    _, writes = pg_writes_during(pg, lambda: apply_ok(pg, "Database", spec))
    assert writes == []
    apply_ok(pg, "Database", {"name": db, "postgres": {"publicPrivileges": ["CONNECT"]}})
    assert as_user(pg, other, OTHER_PASSWORD, "SELECT 1", database=db) == (True, "")
    assert not as_user(pg, other, OTHER_PASSWORD, "CREATE TEMP TABLE t (i int)", database=db)[0]


@pytest.mark.postgres
def test_pg_a_database_the_admin_may_not_connect_to_is_permission_denied_not_missing(pg: Server) -> None:
    """An admin without CONNECT on a database (PUBLIC's revoked): the refused connection is PermissionDenied with
    the fix. Before: DatabaseNotFound, as if the database did not exist."""
    db, grantee = unique("db"), unique("user")
    apply_ok(pg, "Database", {"name": db, "postgres": {"publicPrivileges": []}})
    apply_ok(pg, "DatabaseUser", {"username": grantee})
    admin, admin_password = make_role(pg, "noconnect", "LOGIN CREATEROLE")
    spec = {"grantee": grantee, "database": db, "postgres": {"grants": [{"schema": "public", "privileges": ["USAGE"]}]}}
    result = run(pg, "apply", "DatabaseGrant", spec, env=admin_env(admin, admin_password))
    assert (result.code, result.error["class"], result.error["code"]) == (2, "permanent", "PermissionDenied"), result.result
    assert f'permission denied for database "{db}"' in result.error["message"]
    assert "GRANT CONNECT ON DATABASE" in result.error["message"]


# --- TLS by default on MySQL/MariaDB ------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_maria_statements_are_encrypted_unless_disable_is_asked_for(maria: Server) -> None:
    """Without connection.sslMode the worker encrypts (require): a relay in front of the server sees neither the
    password nor its hash. Asked for explicitly, disable sends them readable (the control). Before: disable was
    the default."""
    check = run(maria, "check", "DatabaseInstance", {})
    assert check.code == 0 and check.result["observed"]["tls"] is True, check.result
    clear = run(maria, "check", "DatabaseInstance", {}, sslMode="disable")
    assert clear.code == 0 and clear.result["observed"]["tls"] is False
    for mode, readable in ((None, False), ("disable", True)):
        name = unique("u")
        connection = {"sslMode": mode} if mode else {}
        with relay_to(maria.host, maria.port) as relay:
            request = request_for(maria, "DatabaseUser", {"username": name}, host="127.0.0.1", port=relay.port, **connection)
            created = run_worker(maria, "apply", request, password=PASSWORD)
        assert created.code == 0, created.result
        assert relay.seen(f"CREATE USER '{name}'") is readable
        assert relay.seen(native_hash(PASSWORD)) is readable
        assert not relay.seen(PASSWORD)


# --- failures end where they belong --------------------------------------------------------------------------------

BROKEN = """
import os, sys
import {module} as target
def broken(*args, **kwargs):
    raise ZeroDivisionError("cannot divide by " + os.environ["DBOPS_ADMIN_PASSWORD"])
setattr({owner}, {name!r}, broken)
from worker.cli import main
sys.exit(main(["apply"]))
"""


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("module", "owner", "name"),
    [
        ("worker.adapters.pg_role", "target.RoleHandler", "observe"),  # inside the engine, connected
        ("worker.cli", "target", "secrets_from_env"),  # before the engine, in the CLI
    ],
)
def test_an_unexpected_exception_ends_permanent_internal_error_with_a_json_result(
    pg: Server, module: str, owner: str, name: str
) -> None:
    """A bug (here injected) must not exit 1 with a traceback, which the function retries forever."""
    script = BROKEN.format(module=module, owner=owner, name=name)
    env = pg.worker_env(DBOPS_REQUEST=json.dumps(request_for(pg, "DatabaseUser", {"username": unique("u")})))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is False and result["kind"] == "DatabaseUser"
    assert (result["error"]["class"], result["error"]["code"]) == ("permanent", "InternalError")
    assert result["error"]["message"].startswith("unexpected ZeroDivisionError at <string>:")
    assert "dbops bug" in result["error"]["message"]
    assert pg.admin_password not in proc.stdout + proc.stderr  # the exception's text is redacted
    assert "permanent error InternalError" in proc.stderr


@pytest.mark.postgres
@pytest.mark.parametrize(
    "when", ["2030-02-30T00:00:00Z", "2031-02-29T12:00:00Z", "2030-04-31T00:00:00+02:00", "2030-01-01T24:00:00Z"]
)
def test_impossible_dates_are_refused_before_connecting(pg: Server, when: str) -> None:
    """Before: the pattern let them through; for an existing role the worker crashed comparing the date (ValueError,
    exit 1 with a traceback, retried forever), for a new one the server refused it after connecting."""
    name = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": name})
    result = run(pg, "apply", "DatabaseUser", {"username": name, "postgres": {"validUntil": when}})
    assert (result.code, result.error["code"]) == (2, "InvalidRequest"), result.result
    assert result.error["message"].startswith("request.spec.postgres.validUntil: is not a time that exists")
    assert result.result["statements"] == {"reads": 0, "writes": 0}


@pytest.mark.postgres
def test_pg_a_leap_day_is_a_date(pg: Server) -> None:
    name = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": name, "postgres": {"validUntil": "2032-02-29T12:00:00Z"}})
    assert str(one(pg, "SELECT rolvaliduntil AT TIME ZONE 'UTC' FROM pg_roles WHERE rolname = %s", (name,))) == (
        "2032-02-29 12:00:00"
    )


@pytest.mark.postgres
def test_pg_an_extension_over_an_existing_type_is_permanent_not_a_concurrent_change(pg: Server) -> None:
    """`already exists` (42710) is ConcurrentChange only when observing again finds the object as wanted. A type
    citext made by hand is not the extension: before, the run ended transient and was retried forever."""
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    execute(pg, "CREATE TYPE citext AS (a int)", database=db)
    result = run(pg, "apply", "Database", {"name": db, "postgres": {"extensions": [{"name": "citext"}]}})
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "AlreadyExists")
    message = result.error["message"]
    assert message.startswith("CREATE EXTENSION citext WITH CASCADE: type \"citext\" already exists")
    assert "not a concurrent change" in message
    assert result.result["changes"] == []
    assert not pg.query("SELECT 1 FROM pg_extension WHERE extname = 'citext'", database=db)


@pytest.mark.mariadb
def test_maria_read_only_is_transient_and_other_options_are_permanent(maria: Server) -> None:
    """1290 names the option that refuses the statement: --read-only (a replica, failover) passes; others do not."""
    admin, admin_password = unique("adm"), "Read-only-admin-pw-1"
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (admin, admin_password))
    maria.query(f"GRANT CREATE, SELECT ON *.* TO '{admin}'@'%'")
    maria.query(f"GRANT INSERT, UPDATE, DELETE ON `_dbops`.* TO '{admin}'@'%'")
    env = {"DBOPS_ADMIN_USERNAME": admin, "DBOPS_ADMIN_PASSWORD": admin_password}
    name = unique("db")
    maria.query("SET GLOBAL read_only = 1")
    try:
        result = run(maria, "apply", "Database", {"name": name}, env=env)
    finally:
        maria.query("SET GLOBAL read_only = 0")
    assert result.code == 1, result.result
    assert (result.error["class"], result.error["code"]) == ("transient", "ReadOnly")
    assert "--read-only" in result.error["message"]
    assert run(maria, "apply", "Database", {"name": name}, env=env).code == 0  # the failover is over
    # MySQL 8's words for another option (no such server here): permanent, naming it.
    other = pymysql.err.OperationalError(
        1290, "The MySQL server is running with the --skip-grant-tables option so it cannot execute this statement"
    )
    error = classify(other, doing="CREATE USER 'app'@'%'")
    assert (error.error_class, error.code) == ("permanent", "ServerOptionPrevents")
    super_read_only = pymysql.err.OperationalError(
        1290, "The MySQL server is running with the --super-read-only option so it cannot execute this statement"
    )
    assert classify(super_read_only).code == "ReadOnly"


@pytest.mark.mariadb
def test_maria_a_connection_cut_in_the_tls_handshake_is_transient(maria: Server) -> None:
    """What a worker sees when the server restarts while it connects: EOF in the TLS handshake. Before: a
    permanent TLSError, so the Job was never retried."""
    with relay_to(maria.host, maria.port, cut_at_tls=True) as relay:
        result = run(maria, "apply", "Database", {"name": unique("db")}, host="127.0.0.1", port=relay.port, sslMode="require")
    assert relay.cut >= 1
    assert result.code == 1, result.result
    assert (result.error["class"], result.error["code"]) == ("transient", "ConnectionLost")
    assert "closed the TLS connection" in result.error["message"]


@pytest.mark.mariadb
def test_maria_host_restricted_accounts_converge_without_sending_the_password_again(maria: Server) -> None:
    """The worker cannot log in as these accounts (the server sees it as 127.0.0.1 and skips name resolution):
    MariaDB compares the stored hash, and a second run sends nothing, as the general log shows."""
    name = unique("u")
    spec = {"username": name, "mysql": {"allowedHosts": ["localhost", "10.0.0.0/255.0.0.0"]}}
    apply_ok(maria, "DatabaseUser", spec, password=PASSWORD)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        maria.connect(user=name, password=PASSWORD).close()
    # From here no account of that name matches. For an unknown account MariaDB answers with a plugin picked at
    # random (so that a login cannot tell which accounts exist); pymysql cannot answer mysql_old_password and
    # gets 1698 instead of 1045. Both mean "access denied"; a login that succeeded or failed otherwise would not.
    assert refused.value.args[0] in (1045, 1698)
    again, writes = maria_writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", spec, password=PASSWORD))
    assert writes == [] and again.result["changes"] == []
    changed = apply_ok(maria, "DatabaseUser", spec, password=OTHER_PASSWORD)
    assert len(changed.result["changes"]) == 2  # a new password is still set, on both accounts


MYSQL_8_0_36 = ServerInfo("mysql", "8.0.36", (8, 0, 36))
MYSQL_8_0_20 = ServerInfo("mysql", "8.0.20", (8, 0, 20))


@pytest.mark.mariadb
def test_mysql8_a_login_decides_only_for_an_account_that_matches_the_worker(maria: Server) -> None:
    """MySQL 8's salted plugins are checked by logging in, and 1045 means "wrong password" only when the server
    is sure to check an account dbops manages. The worker's address is what the server says (USER(), here from
    the real server); the rules are MySQL's (no MySQL 8 server here: the decision is tested as data)."""
    ((user_function,),) = maria.query("SELECT USER()")
    client = client_host(user_function)
    assert client == "127.0.0.1"

    def decides(accounts: dict[str, str], listed: list[str], **kw: Any) -> bool:
        tls = kw.pop("tls", True)
        return login_decides(accounts, listed, client, kw.pop("info", MYSQL_8_0_36), tls=tls, client_certificate=kw.pop("cert", False))

    assert not decides({"localhost": ""}, ["localhost"])  # skip-name-resolve: localhost is not 127.0.0.1
    assert not decides({"10.0.0.0/255.0.0.0": ""}, ["10.0.0.0/255.0.0.0"])
    assert not decides({"10.0.%": ""}, ["10.0.%"])
    assert decides({"%": ""}, ["%"])
    assert decides({"127.0.0.%": ""}, ["127.0.0.%"])
    assert decides({"127.0.0.0/255.0.0.0": ""}, ["127.0.0.0/255.0.0.0"])
    assert decides({"127.0.0.0/8": ""}, ["127.0.0.0/8"])
    assert not decides({"127.0.0.0/8": ""}, ["127.0.0.0/8"], info=MYSQL_8_0_20)  # CIDR hosts from 8.0.23
    # An account of that name the spec does not list matches too: the server may pick it.
    assert not decides({"%": "", "127.0.0.1": ""}, ["%"])
    # The account's TLS requirement must be met by the worker's connection.
    assert not decides({"%": "ANY"}, ["%"], tls=False)
    assert decides({"%": "ANY"}, ["%"])
    assert not decides({"%": "X509"}, ["%"])
    assert decides({"%": "X509"}, ["%"], cert=True)
    assert not decides({"%": "SPECIFIED"}, ["%"], cert=True)
    # A worker the server knows by name: only exact and % patterns are certain.
    assert login_decides({"%": ""}, ["%"], "worker.example.com", MYSQL_8_0_36, tls=True, client_certificate=False)
    assert not login_decides({"10.%": ""}, ["10.%"], "worker.example.com", MYSQL_8_0_36, tls=True, client_certificate=False)

