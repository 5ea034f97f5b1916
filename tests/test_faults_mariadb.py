"""Faults on MariaDB (issue 6): the server stops mid-apply, the worker is killed mid-apply, workers race on one
object, lock and statement timeouts, a host that does not resolve, an admin without a privilege.

MariaDB runs DDL and DCL outside transactions, so "nothing half-applied" means something else than on PostgreSQL:
the statements before the fault are applied, the next run observes the server and applies exactly the rest.
Cases the worker-level tests already prove are not repeated: `test_mysql_user.py` (our object lock timing out),
`test_mysql_instance.py` (unreachable server, unknown host, TLS). docs/reliability.md lists all. Races are forced:
the test holds what the workers contend for (their GET_LOCK, a grant table) until it sees all of them waiting.

The worker is made to stop inside its plan by a test session holding `LOCK TABLES mysql.tables_priv WRITE`: a
grant spec with a database-level and a table-level entry runs `GRANT ... ON db.*` (table mysql.db) and then waits
in `GRANT ... ON db.t` (table mysql.tables_priv). MariaDB waits for its grant tables without honouring
`lock_wait_timeout`; `max_statement_time` (connection.statementTimeout) bounds the wait.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import request_for, run_worker, unique
from tests.offline_support import admin_secret, cluster, condition, instance_claim, kube_name
from tests.servers import Server
from tests.test_faults_support import (
    assert_a_further_reconcile_runs_no_job,
    assert_no_op,
    claims_during_outage,
    dedicated,
    finish,
    holding_object_lock,
    maria_blocked,
    maria_waiting_in,
    object_lock_waiters,
    start_worker,
    wait_until,
    worker_runs,
)
from tests.test_mysql_support import can_login, hosts_of, mark_account, mark_database, show_grants
from worker.adapters.mysql import lock_name

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_maria() -> Iterator[Server]:
    """A MariaDB server of this module's own: the tests stop and start it."""
    with dedicated("mariadb") as server:
        yield server


class Scene:
    """A database with a table and an account, and the two-level grant spec the tests apply to it."""

    def __init__(self, maria: Server) -> None:
        self.maria = maria
        self.db, self.user = unique("db"), unique("g")
        maria.query(f"CREATE DATABASE {self.db}")
        maria.query(f"CREATE TABLE {self.db}.t (i int)")
        maria.query(f"CREATE TABLE {self.db}.u (i int)")
        maria.query(f"CREATE USER '{self.user}'@'%'")
        mark_account(maria, self.user)  # as a DatabaseUser of this namespace would have created it
        # A database-level grant names a pattern: dbops escapes `_` so it matches this database only.
        self.pattern = self.db.replace("_", "\\_")
        self.database_grant = f"GRANT SELECT ON `{self.pattern}`.* TO '{self.user}'@'%'"
        self.table_grant = f"GRANT INSERT ON `{self.db}`.`t` TO '{self.user}'@'%'"
        self.last_grant = f"GRANT UPDATE ON `{self.db}`.`u` TO '{self.user}'@'%'"

    def request(self, three: bool = False, **connection: Any) -> dict[str, Any]:
        """The two-level spec; with `three`, a third statement after the table-level one (`last_grant`)."""
        grants = [
            {"level": "database", "database": self.db, "privileges": ["SELECT"]},
            {"level": "table", "database": self.db, "table": "t", "privileges": ["INSERT"]},
        ]
        if three:
            grants.append({"level": "table", "database": self.db, "table": "u", "privileges": ["UPDATE"]})
        spec = {"grantee": self.user, "granteeHosts": ["%"], "mysql": {"grants": grants}}
        return request_for(self.maria, "DatabaseGrant", spec, **connection)

    def grants(self) -> list[str]:
        return sorted(show_grants(self.maria, self.user))

    def applied_first_only(self) -> list[str]:
        """SHOW GRANTS after the database-level statement only."""
        return sorted(
            [
                f"GRANT USAGE ON *.* TO `{self.user}`@`%`",
                f"GRANT SELECT ON `{self.pattern}`.* TO `{self.user}`@`%`",
            ]
        )

    def complete(self) -> list[str]:
        """SHOW GRANTS once the spec is converged."""
        return sorted([*self.applied_first_only(), f"GRANT INSERT ON `{self.db}`.`t` TO `{self.user}`@`%`"])

    def complete_three(self) -> list[str]:
        """SHOW GRANTS once the spec with `three` is converged."""
        return sorted([*self.complete(), f"GRANT UPDATE ON `{self.db}`.`u` TO `{self.user}`@`%`"])


def hold(maria: Server, *tables: str) -> pymysql.connections.Connection:
    conn = maria.connect()
    with conn.cursor() as cur:
        cur.execute("LOCK TABLES " + ", ".join(f"{t} WRITE" for t in tables))
    return conn


def release(conn: pymysql.connections.Connection) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute("UNLOCK TABLES")
    except pymysql.MySQLError:
        pass  # the server went away: so did the lock
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            conn.close()


# --- the server stops mid-apply ---------------------------------------------------------------------------------


def test_server_stops_mid_apply_then_the_next_run_applies_exactly_the_rest(own_maria: Server) -> None:
    maria = own_maria
    scene = Scene(maria)
    request = scene.request(statementTimeout="10min")
    blocker = hold(maria, "mysql.tables_priv")
    proc = start_worker(maria, "apply", request)
    wait_until(
        lambda: maria_blocked(maria, "GRANT INSERT"), "the worker waits in the table-level GRANT", proc
    )
    maria.stop()
    try:
        stopped = finish(proc)
        while_down = run_worker(maria, "apply", request)
    finally:
        maria.start()
        release(blocker)

    assert stopped.code == 1, stopped.result
    assert stopped.error["class"] == "transient"
    assert stopped.error["code"] in ("ConnectionLost", "ServerShutdown")
    message = stopped.error["message"]
    assert message.startswith(scene.table_grant + ": server error ")
    assert "the next run" in message and "applies the rest" in message
    assert stopped.result["changes"] == [scene.database_grant]
    assert while_down.code == 1
    assert (while_down.error["class"], while_down.error["code"]) == ("transient", "Unreachable")
    assert scene.grants() == scene.applied_first_only()

    again = run_worker(maria, "apply", request)
    assert again.code == 0, again.result
    assert again.result["changes"] == [scene.table_grant]
    assert scene.grants() == scene.complete()
    assert_no_op(maria, request)


def test_server_down_then_up_is_retried_by_the_function_until_ready(
    own_maria: Server, function_client: FunctionClient
) -> None:
    """Through the whole path: a transient failure is retried with back-off, without any change to the claims."""
    maria = own_maria
    run = claims_during_outage(maria, function_client)
    c, instance, database, db_name, down, waiting = (
        run.cluster,
        run.instance,
        run.database,
        run.db_name,
        run.down,
        run.waiting,
    )
    assert down["status"]["phase"] == "Failed", down["status"]
    assert "transient" in down["status"]["message"]
    assert condition(down, "Connected")["reason"] == "Unreachable"
    assert waiting["status"]["phase"] == "Pending"

    c.reconcile(max_wait=5)
    assert c.claim("DatabaseInstance", instance)["status"]["phase"] == "Ready"
    assert c.claim("Database", database)["status"]["phase"] == "Ready"
    assert len(worker_runs(c, c.claim("DatabaseInstance", instance))) >= 2
    assert schemas_named(maria, db_name) == 1
    assert_a_further_reconcile_runs_no_job(c)


# --- the worker is killed mid-apply -----------------------------------------------------------------------------


def test_worker_killed_mid_apply_then_the_next_run_converges_without_duplicates(maria: Server) -> None:
    """Three statements: the database-level GRANT is applied, the worker is killed while its table-level GRANT
    waits, and the third was never sent. MariaDB does not notice the dead client while the statement waits: it
    finishes that statement, then ends the session. So the next run must apply exactly the third."""
    scene = Scene(maria)
    request = scene.request(three=True, statementTimeout="10min")
    blocker = hold(maria, "mysql.tables_priv")
    try:
        proc = start_worker(maria, "apply", request)
        wait_until(
            lambda: maria_blocked(maria, "GRANT INSERT"), "the worker waits in the table-level GRANT", proc
        )
        proc.kill()  # SIGKILL: no cleanup, no result
        proc.wait()
        assert scene.grants() == scene.applied_first_only()
    finally:
        release(blocker)
    # The dead session finishing its statement and ending is what releases the worker's object lock.
    lock = lock_name(f"account:{scene.user}")
    wait_until(
        lambda: maria.query("SELECT IS_USED_LOCK(%s)", (lock,))[0][0] is None,
        "the killed worker's session ends and frees its lock",
    )
    assert scene.grants() == scene.complete()  # the waiting statement completed; the third was never sent

    again = run_worker(maria, "apply", request)
    assert again.code == 0, again.result
    assert again.result["changes"] == [scene.last_grant]
    assert scene.grants() == scene.complete_three()
    assert hosts_of(maria, scene.user) == ["%"]
    assert_no_op(maria, request)


# --- workers race on one object ---------------------------------------------------------------------------------


def schemas_named(maria: Server, name: str) -> int:
    rows = maria.query("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    return int(rows[0][0])


def test_two_workers_on_one_database_wait_for_its_lock_and_create_it_once(maria: Server) -> None:
    """The test holds the database's GET_LOCK until both workers are seen waiting for it (processlist state
    `User lock`): the race is certain. Released, the first creates the database, the second re-observes under
    the lock and finds it done."""
    name = unique("db")
    request = request_for(
        maria, "Database", {"name": name, "mysql": {"collation": "utf8mb4_bin"}}, lockTimeout="10min"
    )
    key = f"database:{name}"
    with holding_object_lock(maria, key):
        procs = [start_worker(maria, "apply", request) for _ in range(2)]
        wait_until(lambda: object_lock_waiters(maria, key) == 2, "both workers wait for the lock", procs)
    runs = [finish(p) for p in procs]
    assert [r.code for r in runs] == [0, 0], [r.result for r in runs]
    changes = [c for r in runs for c in r.result["changes"]]
    assert len(changes) == 2 and changes[0].startswith("INSERT INTO `_dbops`.`owners` "), changes  # its marker
    assert changes[1] == f"CREATE DATABASE `{name}` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin`"
    assert schemas_named(maria, name) == 1
    assert maria.query(
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
    ) == [("utf8mb4_bin",)]
    assert_no_op(maria, request)


def test_two_workers_on_one_account_wait_for_its_lock_and_create_it_once(maria: Server) -> None:
    """As above for a DatabaseUser (an old and a new Job for one account), with its password."""
    name, password = unique("u"), "Race-user-pw-123456"
    request = request_for(maria, "DatabaseUser", {"username": name}, lockTimeout="10min")
    key = f"account:{name}"
    with holding_object_lock(maria, key):
        procs = [start_worker(maria, "apply", request, password=password) for _ in range(2)]
        wait_until(lambda: object_lock_waiters(maria, key) == 2, "both workers wait for the lock", procs)
    runs = [finish(p) for p in procs]
    assert [r.code for r in runs] == [0, 0], [r.result for r in runs]
    changes = [c for r in runs for c in r.result["changes"]]
    assert len(changes) == 2 and changes[1].startswith(f"CREATE USER '{name}'@'%'"), changes  # after its marker
    assert hosts_of(maria, name) == ["%"]
    assert can_login(maria, name, password)
    assert_no_op(maria, request, password=password)


def test_grants_of_two_grantees_on_one_table_at_once_both_converge(maria: Server) -> None:
    """Two grantees are two locks but one grant table: the test holds mysql.tables_priv until both GRANTs wait
    for it, so they run into each other for certain."""
    scene = Scene(maria)
    other = unique("g")
    maria.query(f"CREATE USER '{other}'@'%'")
    mark_account(maria, other)
    entry = {"level": "table", "database": scene.db, "table": "t", "privileges": ["SELECT", "UPDATE"]}
    requests = [
        request_for(
            maria,
            "DatabaseGrant",
            {"grantee": g, "granteeHosts": ["%"], "mysql": {"grants": [entry]}},
            statementTimeout="10min",
        )
        for g in (scene.user, other)
    ]
    blocker = hold(maria, "mysql.tables_priv")
    try:
        procs = [start_worker(maria, "apply", r) for r in requests]
        statement = f"GRANT SELECT, UPDATE ON `{scene.db}`.`t`"
        wait_until(
            lambda: maria_waiting_in(maria, statement) == 2, "both GRANTs wait for the grant table", procs
        )
    finally:
        release(blocker)
    runs = [finish(p) for p in procs]
    assert [r.code for r in runs] == [0, 0], [r.result for r in runs]
    for grantee, run, request in zip((scene.user, other), runs, requests, strict=True):
        assert run.result["changes"] == [f"GRANT SELECT, UPDATE ON `{scene.db}`.`t` TO '{grantee}'@'%'"]
        assert f"GRANT SELECT, UPDATE ON `{scene.db}`.`t` TO `{grantee}`@`%`" in show_grants(maria, grantee)
        assert_no_op(maria, request)


# --- timeouts ---------------------------------------------------------------------------------------------------


def test_a_lock_wait_over_lock_timeout_is_transient_and_changes_nothing(maria: Server) -> None:
    """ALTER DATABASE needs the schema's metadata lock, which a session with LOCK TABLES ... WRITE holds."""
    name = unique("db")
    maria.query(f"CREATE DATABASE {name} COLLATE utf8mb4_general_ci")
    mark_database(maria, name)
    maria.query(f"CREATE TABLE {name}.t (i int)")
    request = request_for(
        maria, "Database", {"name": name, "mysql": {"collation": "utf8mb4_bin"}}, lockTimeout="1s"
    )
    blocker = hold(maria, f"{name}.t")
    try:
        timed_out = run_worker(maria, "apply", request)
    finally:
        release(blocker)
    assert timed_out.code == 1, timed_out.result
    assert (timed_out.error["class"], timed_out.error["code"]) == ("transient", "LockTimeout")
    message = timed_out.error["message"]
    assert message.startswith(f"ALTER DATABASE `{name}` ")
    assert "Lock wait timeout exceeded" in message and "longer than connection.lockTimeout" in message
    assert timed_out.result["changes"] == []
    collation = "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
    assert maria.query(collation, (name,)) == [("utf8mb4_general_ci",)]

    again = run_worker(maria, "apply", request)
    assert again.code == 0, again.result
    assert again.result["changes"] == [
        f"ALTER DATABASE `{name}` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin`"
    ]
    assert maria.query(collation, (name,)) == [("utf8mb4_bin",)]
    assert_no_op(maria, request)


def test_a_statement_over_statement_timeout_is_transient_and_the_next_run_applies_the_rest(
    maria: Server,
) -> None:
    scene = Scene(maria)
    request = scene.request(statementTimeout="1s")
    blocker = hold(maria, "mysql.tables_priv")
    try:
        timed_out = run_worker(maria, "apply", request)
    finally:
        release(blocker)
    assert timed_out.code == 1, timed_out.result
    assert (timed_out.error["class"], timed_out.error["code"]) == ("transient", "StatementTimeout")
    message = timed_out.error["message"]
    assert message.startswith(scene.table_grant + ": server error 1969: ")
    assert "longer than connection.statementTimeout" in message
    assert timed_out.result["changes"] == [scene.database_grant]
    assert scene.grants() == scene.applied_first_only()

    again = run_worker(maria, "apply", request)
    assert again.code == 0, again.result
    assert again.result["changes"] == [scene.table_grant]
    assert scene.grants() == scene.complete()
    assert_no_op(maria, request)


# --- the host does not resolve ----------------------------------------------------------------------------------


def test_a_host_that_does_not_resolve_is_retried_then_fixing_it_converges(
    maria: Server, function_client: FunctionClient
) -> None:
    """Through the whole path (the worker alone: test_mysql_instance.test_unknown_host_is_transient)."""
    instance = kube_name("maria-dns")
    c = cluster(function_client)
    wrong = instance_claim(maria, instance, f"{instance}-admin")
    wrong["spec"]["connection"]["host"] = "no-such-host.invalid"
    c.apply([admin_secret(maria, f"{instance}-admin"), wrong])
    c.reconcile(max_wait=0)  # the first attempt fails
    # The first retry is due 1 s after that failure (Job times have second precision, so waiting 1.1 s is always
    # enough); waiting with max_wait=0 runs it and stops at the next back-off, whatever the clock's phase.
    time.sleep(1.1)
    c.reconcile(max_wait=0)
    failed = c.claim("DatabaseInstance", instance)
    assert failed["status"]["phase"] == "Failed"
    assert "transient" in failed["status"]["message"]
    assert "does not resolve" in failed["status"]["message"]
    assert condition(failed, "Connected")["reason"] == "HostNotFound"
    assert len(worker_runs(c, failed)) >= 2

    c.apply([instance_claim(maria, instance, f"{instance}-admin")])
    c.reconcile(max_wait=3)
    assert c.claim("DatabaseInstance", instance)["status"]["phase"] == "Ready"
    assert_a_further_reconcile_runs_no_job(c)


# --- the admin lacks a privilege --------------------------------------------------------------------------------


@pytest.fixture
def limited_admin(maria: Server) -> Iterator[tuple[str, str]]:
    """An admin account that can read the grant tables and use dbops' catalog, and nothing else (tests grant it
    more)."""
    name, password = unique("adm"), "Limited-admin-pw-1"
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
    maria.query(f"GRANT SELECT ON mysql.* TO '{name}'@'%'")
    maria.query(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `_dbops`.* TO '{name}'@'%'")
    yield name, password
    maria.query(f"DROP USER '{name}'@'%'")


def as_admin(admin: tuple[str, str]) -> dict[str, str]:
    return {"DBOPS_ADMIN_USERNAME": admin[0], "DBOPS_ADMIN_PASSWORD": admin[1]}


@pytest.mark.parametrize(
    ("kind", "privilege", "hint"),
    [
        ("DatabaseUser", "CREATE USER", "GRANT CREATE USER ON *.* TO <admin>"),
        ("Database", "CREATE privilege", "GRANT CREATE ON *.* TO <admin>"),
    ],
)
def test_admin_without_a_privilege_gets_a_permanent_error_naming_it_and_granting_it_converges(
    maria: Server, limited_admin: tuple[str, str], kind: str, privilege: str, hint: str
) -> None:
    name, password = unique("x"), "User-pw-123456"
    is_user = kind == "DatabaseUser"
    request = request_for(maria, kind, {"username": name} if is_user else {"name": name})
    result = run_worker(maria, "apply", request, password=password, env=as_admin(limited_admin))
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "PermissionDenied")
    assert privilege in result.error["message"]
    assert f"({hint})" in result.error["message"]
    # Only the catalog row went in: it comes first (DDL is not transactional), names what was to be created, and
    # the next run creates that object under it.
    [marked] = result.result["changes"]
    assert marked.startswith("INSERT INTO `_dbops`.`owners` ") and f"'{name}'" in marked
    assert hosts_of(maria, name) == []
    assert schemas_named(maria, name) == 0

    maria.query(hint.replace("<admin>", f"'{limited_admin[0]}'@'%'"))  # what the hint says
    fixed = run_worker(maria, "apply", request, password=password, env=as_admin(limited_admin))
    assert fixed.code == 0, fixed.result
    created = f"CREATE USER '{name}'@'%'" if is_user else f"CREATE DATABASE `{name}`"
    assert len(fixed.result["changes"]) == 2, fixed.result["changes"]  # its marker, then the object
    assert fixed.result["changes"][1].startswith(created)
    if is_user:
        assert hosts_of(maria, name) == ["%"]
        assert can_login(maria, name, password)
    else:
        assert schemas_named(maria, name) == 1
    assert_no_op(maria, request, password=password, env=as_admin(limited_admin))


def test_admin_without_grant_option_gets_a_permanent_error_naming_it(
    maria: Server, limited_admin: tuple[str, str]
) -> None:
    scene = Scene(maria)
    maria.query(f"GRANT SELECT, INSERT ON `{scene.db}`.* TO '{limited_admin[0]}'@'%'")  # no GRANT OPTION
    result = run_worker(maria, "apply", scene.request(), env=as_admin(limited_admin))
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "PermissionDenied")
    assert result.error["message"].startswith(scene.database_grant + ": server error 1044: ")
    assert "WITH GRANT OPTION" in result.error["message"]
    assert scene.grants() == [f"GRANT USAGE ON *.* TO `{scene.user}`@`%`"]

    maria.query(f"GRANT SELECT, INSERT ON `{scene.db}`.* TO '{limited_admin[0]}'@'%' WITH GRANT OPTION")
    fixed = run_worker(maria, "apply", scene.request(), env=as_admin(limited_admin))
    assert fixed.code == 0, fixed.result
    assert fixed.result["changes"] == [scene.database_grant, scene.table_grant]
    assert scene.grants() == scene.complete()
    assert_no_op(maria, scene.request(), env=as_admin(limited_admin))


def test_admin_that_cannot_read_the_grant_tables_is_told_so_and_granting_it_converges(
    maria: Server, limited_admin: tuple[str, str]
) -> None:
    admin = f"'{limited_admin[0]}'@'%'"
    maria.query(f"GRANT CREATE USER ON *.* TO {admin}")  # all it needs but the grant tables
    maria.query(f"REVOKE SELECT ON mysql.* FROM {admin}")
    name, password = unique("x"), "User-pw-123456"
    request = request_for(maria, "DatabaseUser", {"username": name})
    result = run_worker(maria, "apply", request, password=password, env=as_admin(limited_admin))
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "PermissionDenied")
    assert "SELECT on the mysql schema" in result.error["message"]
    assert result.result["statements"]["writes"] == 0
    assert hosts_of(maria, name) == []

    maria.query(f"GRANT SELECT ON mysql.* TO {admin}")
    fixed = run_worker(maria, "apply", request, password=password, env=as_admin(limited_admin))
    assert fixed.code == 0, fixed.result
    assert len(fixed.result["changes"]) == 2 and fixed.result["changes"][1].startswith(
        f"CREATE USER '{name}'@'%'"
    )
    assert hosts_of(maria, name) == ["%"]
    assert can_login(maria, name, password)
    assert_no_op(maria, request, password=password, env=as_admin(limited_admin))


# --- manifests for the cases through the function ---------------------------------------------------------------
