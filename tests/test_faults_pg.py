"""Faults on PostgreSQL (issue 6): the server stops mid-apply, the worker is killed mid-apply, workers race on one
object, lock and statement timeouts, a host that does not resolve, an admin without a privilege.

Each ends in a clear transient (exit 1) or permanent (exit 2) error, leaves nothing half-applied, and the next run
converges with nothing lost or duplicated. Cases the worker-level tests already prove are not repeated:
`test_pg_lock.py` (workers racing on one role and one database, our object lock timing out),
`test_pg_instance.py` (unreachable server, unknown host, admin without CREATEROLE). docs/reliability.md lists all.

The worker is made to stop inside its plan by a test session that updated the database's `pg_database` row in an
open transaction: the worker's `GRANT ... ON DATABASE` (its third statement, after `CREATE ROLE` and the password,
in one transaction) waits for that row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg2.extensions
import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import WorkerRun, request_for, run_worker, unique
from tests.offline_support import admin_secret, cluster, condition, instance_claim, kube_name
from tests.servers import Server
from tests.test_faults_support import (
    assert_a_further_reconcile_runs_no_job,
    assert_no_op,
    claims_during_outage,
    dedicated,
    finish,
    pg_blocked,
    pg_waiting_in,
    start_worker,
    wait_until,
    worker_runs,
)
from tests.test_pg_support import admin_env, as_user, execute, make_role, mark, one

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "Fault-test-pw-1234567"


@pytest.fixture(scope="module")
def own_pg() -> Iterator[Server]:
    """A PostgreSQL server of this module's own: the tests stop and start it."""
    with dedicated("postgres") as server:
        yield server


def user_request(pg: Server, name: str, database: str, app: str, **connection: Any) -> dict[str, Any]:
    spec = {"username": name, "database": database}
    return request_for(pg, "DatabaseUser", spec, applicationName=app, **connection)


def hold_database_row(pg: Server, database: str) -> psycopg2.extensions.connection:
    """A session whose open transaction changed the database's catalog row; GRANT ... ON DATABASE waits for it."""
    conn = pg.connect()
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute(f"ALTER DATABASE {database} CONNECTION LIMIT 50")
    return conn


def role_count(pg: Server, name: str) -> int:
    return int(one(pg, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)))


def creates(run: WorkerRun) -> int:
    return sum(change.startswith("CREATE ROLE") for change in run.result["changes"])


def assert_user_complete(pg: Server, name: str, database: str) -> None:
    """Exactly one role, it logs in with the password and has the use of the database (the plan's last grant is
    USAGE on schema public)."""
    assert role_count(pg, name) == 1
    table = unique("t")
    assert as_user(pg, name, PASSWORD, f"CREATE TEMP TABLE {table} (i int)", database=database) == (True, "")
    assert one(pg, OWN_USAGE_ON_PUBLIC, (name,), database=database) is True


# The role's own USAGE on schema public (has_schema_privilege would also count PUBLIC's).
OWN_USAGE_ON_PUBLIC = (
    "SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'public' "
    "AND a.grantee = %s::regrole AND a.privilege_type = 'USAGE')"
)


# --- the server stops mid-apply ---------------------------------------------------------------------------------


def test_server_stops_mid_apply_nothing_commits_and_the_next_run_converges(own_pg: Server) -> None:
    pg = own_pg
    db, name, app = unique("db"), unique("u"), unique("app")
    execute(pg, f"CREATE DATABASE {db}")
    request = user_request(pg, name, db, app, lockTimeout="10min")
    blocker = hold_database_row(pg, db)
    proc = start_worker(pg, "apply", request, password=PASSWORD)
    wait_until(lambda: pg_blocked(pg, app, "GRANT"), "the worker waits in GRANT ... ON DATABASE", proc)
    pg.stop()
    try:
        stopped = finish(proc)
        while_down = run_worker(pg, "apply", request, password=PASSWORD)
    finally:
        pg.start()
        blocker.close()

    assert stopped.code == 1, stopped.result
    assert (stopped.error["class"], stopped.error["code"]) == ("transient", "ConnectionLost")
    message = stopped.error["message"]
    assert message.startswith(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {name}: ")
    assert "connection to the server was lost" in message
    assert "rolled back, nothing of it is applied" in message
    assert stopped.result["changes"] == []
    assert while_down.code == 1
    assert (while_down.error["class"], while_down.error["code"]) == ("transient", "ConnectionRefused")
    # CREATE ROLE and the password were in the transaction the server never committed.
    assert role_count(pg, name) == 0

    again = run_worker(pg, "apply", request, password=PASSWORD)
    assert again.code == 0, again.result
    assert creates(again) == 1
    assert_user_complete(pg, name, db)
    assert_no_op(pg, request, password=PASSWORD)


def test_server_down_then_up_is_retried_by_the_function_until_ready(
    own_pg: Server, function_client: FunctionClient
) -> None:
    """Through the whole path: a transient failure is retried with back-off, without any change to the claims."""
    pg = own_pg
    run = claims_during_outage(pg, function_client)
    c, instance, database, db_name, down, waiting = (
        run.cluster,
        run.instance,
        run.database,
        run.db_name,
        run.down,
        run.waiting,
    )
    status = down["status"]
    assert status["phase"] == "Failed", status
    assert "transient" in status["message"]
    assert "nothing listens on connection.host:port yet" in status["message"]
    assert condition(down, "Connected")["reason"] == "ConnectionRefused"
    assert waiting["status"]["phase"] == "Pending"
    assert not pg.query("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,))

    c.reconcile(max_wait=5)
    assert c.claim("DatabaseInstance", instance)["status"]["phase"] == "Ready"
    assert c.claim("Database", database)["status"]["phase"] == "Ready"
    assert len(worker_runs(c, c.claim("DatabaseInstance", instance))) >= 2  # the failed check, then the retry
    assert one(pg, "SELECT count(*) FROM pg_database WHERE datname = %s", (db_name,)) == 1
    assert_a_further_reconcile_runs_no_job(c)


# --- the worker is killed mid-apply -----------------------------------------------------------------------------


def test_worker_killed_mid_apply_leaves_nothing_and_the_next_run_converges(pg: Server) -> None:
    db, name, app = unique("db"), unique("u"), unique("app")
    execute(pg, f"CREATE DATABASE {db}")
    request = user_request(pg, name, db, app, lockTimeout="10min")
    blocker = hold_database_row(pg, db)
    try:
        proc = start_worker(pg, "apply", request, password=PASSWORD)
        wait_until(lambda: pg_blocked(pg, app, "GRANT"), "the worker waits in GRANT ... ON DATABASE", proc)
        proc.kill()  # SIGKILL: no cleanup, no result, as when a node dies or the Pod is OOM-killed
        proc.wait()
        if int(one(pg, "SHOW server_version_num")) >= 140000:
            # client_connection_check_interval: the server ends the dead worker's session although its statement
            # still waits, which rolls back its transaction and frees its object lock at once.
            wait_until(
                lambda: not pg.query("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (app,)),
                "the server ends the killed worker's session",
            )
            assert role_count(pg, name) == 0
    finally:
        blocker.rollback()
        blocker.close()
    wait_until(
        lambda: not pg.query("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (app,)),
        "the killed worker's session ends",
    )
    assert role_count(pg, name) == 0

    again = run_worker(pg, "apply", request, password=PASSWORD)
    assert again.code == 0, again.result
    assert creates(again) == 1
    assert_user_complete(pg, name, db)
    assert_no_op(pg, request, password=PASSWORD)


def test_worker_killed_in_its_second_transaction_keeps_the_first_and_the_next_run_adds_the_rest(
    pg: Server,
) -> None:
    """A user's plan is two transactions: the role with its database grant (admin database), then the grant on
    schema public inside the user's database. Killed in the second, the first stays committed, the second is
    rolled back by the server at once (client_connection_check_interval on that session too), and the next run
    applies exactly the schema grant."""
    if int(one(pg, "SHOW server_version_num")) < 140000:
        pytest.skip("client_connection_check_interval needs PostgreSQL 14")
    db, name, app = unique("db"), unique("u"), unique("app")
    other, _ = make_role(pg, "other", "NOLOGIN")
    execute(pg, f"CREATE DATABASE {db}")
    request = user_request(pg, name, db, app, lockTimeout="10min")
    blocker = pg.connect(database=db)
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute(f"GRANT USAGE ON SCHEMA public TO {other}")  # holds schema public's catalog row
    try:
        proc = start_worker(pg, "apply", request, password=PASSWORD)
        wait_until(
            lambda: pg_blocked(pg, app, "GRANT USAGE"), "the worker waits in GRANT ... ON SCHEMA", proc
        )
        proc.kill()
        proc.wait()
        wait_until(
            lambda: not pg.query("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (app,)),
            "the server ends both sessions of the killed worker",
        )
    finally:
        blocker.rollback()
        blocker.close()
    assert role_count(pg, name) == 1  # the first transaction committed
    assert one(pg, "SELECT has_database_privilege(%s, %s, 'CONNECT')", (name, db)) is True
    assert one(pg, OWN_USAGE_ON_PUBLIC, (name,), database=db) is False

    again = run_worker(pg, "apply", request, password=PASSWORD)
    assert again.code == 0, again.result
    assert again.result["changes"] == [f"GRANT USAGE ON SCHEMA public TO {name}"]
    assert_user_complete(pg, name, db)
    assert_no_op(pg, request, password=PASSWORD)


# --- workers race on one object ---------------------------------------------------------------------------------


def test_a_grant_racing_another_transaction_on_the_same_catalog_row_is_retried_in_place(pg: Server) -> None:
    """Two users of one database are two objects (two locks), but both GRANT ... ON DATABASE update the same
    pg_database row. The loser used to end permanent with `tuple concurrently updated`; now the worker observes
    again and succeeds. The other transaction is held open by the test so the collision is certain."""
    db, name, app = unique("db"), unique("u"), unique("app")
    other, _ = make_role(pg, "other", "NOLOGIN")
    execute(pg, f"CREATE DATABASE {db}")
    request = user_request(pg, name, db, app)
    competitor = pg.connect()
    competitor.autocommit = False
    with competitor.cursor() as cur:
        cur.execute(f"GRANT CONNECT ON DATABASE {db} TO {other}")
    try:
        proc = start_worker(pg, "apply", request, password=PASSWORD)
        wait_until(lambda: pg_blocked(pg, app, "GRANT"), "the worker waits in GRANT ... ON DATABASE", proc)
        competitor.commit()
        won = finish(proc)
    finally:
        competitor.close()
    assert won.code == 0, won.result
    assert creates(won) == 1
    assert_user_complete(pg, name, db)
    assert one(pg, "SELECT has_database_privilege(%s, %s, 'CONNECT')", (other, db)) is True
    assert_no_op(pg, request, password=PASSWORD)


def test_many_users_of_one_database_at_once_all_converge(pg: Server) -> None:
    """Four users of one database: four locks, one pg_database row. The test holds that row until all four wait
    in GRANT ... ON DATABASE, then lets go: they collide on the row for certain, and each loser retries in place."""
    db, app = unique("db"), unique("app")
    execute(pg, f"CREATE DATABASE {db}")
    names = [unique("u") for _ in range(4)]
    requests = [user_request(pg, name, db, app, lockTimeout="10min") for name in names]
    blocker = hold_database_row(pg, db)
    try:
        procs = [start_worker(pg, "apply", r, password=PASSWORD) for r in requests]
        wait_until(
            lambda: pg_waiting_in(pg, app, "GRANT") == len(names),
            "all four workers wait in GRANT ... ON DATABASE",
            procs,
        )
    finally:
        blocker.rollback()
        blocker.close()
    runs = [finish(p) for p in procs]
    assert [r.code for r in runs] == [0] * len(runs), [r.result for r in runs]
    assert [creates(r) for r in runs] == [1] * len(runs)
    for name, request in zip(names, requests, strict=True):
        assert_user_complete(pg, name, db)
        assert_no_op(pg, request, password=PASSWORD)


def test_grants_of_two_grantees_on_one_table_race_and_both_converge(pg: Server) -> None:
    db = unique("db")
    execute(pg, f"CREATE DATABASE {db}")
    execute(pg, "CREATE TABLE public.orders (id int)", database=db)
    first, _ = make_role(pg, "reader", "NOLOGIN")
    second, _ = make_role(pg, "reader", "NOLOGIN")
    for grantee in (first, second):
        mark(pg, "ROLE", grantee)  # roles a DatabaseUser of this namespace manages
    app = unique("app")

    def grant(grantee: str) -> dict[str, Any]:
        entry = {"database": db, "schema": "public", "tables": ["orders"], "privileges": ["SELECT"]}
        spec = {"grantee": grantee, "postgres": {"grants": [entry]}}
        return request_for(pg, "DatabaseGrant", spec, applicationName=app)

    competitor = pg.connect(database=db)
    competitor.autocommit = False
    with competitor.cursor() as cur:
        cur.execute(
            f"GRANT SELECT ON public.orders TO {first}"
        )  # the first grantee's worker, mid-transaction
    try:
        proc = start_worker(pg, "apply", grant(second))
        wait_until(lambda: pg_blocked(pg, app, "GRANT SELECT"), "the second grant waits for the first", proc)
        competitor.commit()
        won = finish(proc)
    finally:
        competitor.close()
    assert won.code == 0, won.result
    assert won.result["changes"] == [f"GRANT SELECT ON TABLE public.orders TO {second}"]
    # The first grantee's pair was granted by hand: its first dbops run only remembers it (docs/worker.md).
    remembered = run_worker(pg, "apply", grant(first))
    assert remembered.code == 0 and remembered.result["changes"] == []
    assert remembered.result["statements"]["writes"] == 1
    for grantee in (first, second):
        assert one(pg, "SELECT has_table_privilege(%s, 'public.orders', 'SELECT')", (grantee,), database=db)
        assert_no_op(pg, grant(grantee))


# --- timeouts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeouts", "code", "words", "setting"),
    [
        ({"lockTimeout": "1s"}, "LockTimeout", "canceling statement due to lock timeout", "lockTimeout"),
        (
            {"lockTimeout": "10min", "statementTimeout": "1s"},
            "StatementTimeout",
            "canceling statement due to statement timeout",
            "statementTimeout",
        ),
    ],
)
def test_a_lock_wait_or_statement_over_its_timeout_is_transient_and_rolled_back(
    pg: Server, timeouts: dict[str, str], code: str, words: str, setting: str
) -> None:
    db, name, app = unique("db"), unique("u"), unique("app")
    execute(pg, f"CREATE DATABASE {db}")
    blocker = hold_database_row(pg, db)
    try:
        timed_out = run_worker(pg, "apply", user_request(pg, name, db, app, **timeouts), password=PASSWORD)
    finally:
        blocker.rollback()
        blocker.close()
    assert timed_out.code == 1, timed_out.result
    assert (timed_out.error["class"], timed_out.error["code"]) == ("transient", code)
    message = timed_out.error["message"]
    assert message.startswith(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {name}: {words}")
    assert f"longer than connection.{setting}" in message
    assert role_count(pg, name) == 0  # the role's transaction was rolled back with the statement

    request = user_request(pg, name, db, app, **timeouts)
    again = run_worker(pg, "apply", request, password=PASSWORD)
    assert again.code == 0, again.result
    assert creates(again) == 1
    assert_user_complete(pg, name, db)
    assert_no_op(pg, request, password=PASSWORD)


# --- the host does not resolve ----------------------------------------------------------------------------------


def test_a_host_that_does_not_resolve_is_retried_then_fixing_it_converges(
    pg: Server, function_client: FunctionClient
) -> None:
    """Through the whole path (the worker alone: test_pg_instance.test_unreachable_server_is_transient)."""
    instance = kube_name("pg-dns")
    c = cluster(function_client)
    wrong = instance_claim(pg, instance, f"{instance}-admin")
    wrong["spec"]["connection"]["host"] = "no-such-host.invalid"
    wrong["spec"]["postgres"] = {"connectTimeout": 2}
    c.apply([admin_secret(pg, f"{instance}-admin"), wrong])
    c.reconcile(max_wait=0)  # the first attempt fails
    # The first retry is due 1 s after that failure (Job times have second precision, so waiting 1.1 s is always
    # enough); waiting with max_wait=0 runs it and stops at the next back-off, whatever the clock's phase.
    time.sleep(1.1)
    c.reconcile(max_wait=0)
    failed = c.claim("DatabaseInstance", instance)
    assert failed["status"]["phase"] == "Failed"
    assert "transient" in failed["status"]["message"]
    assert "could not translate host name" in failed["status"]["message"]
    assert condition(failed, "Connected")["reason"] == "HostNotFound"
    assert len(worker_runs(c, failed)) >= 2  # retried with back-off, unlike a permanent failure

    c.apply([instance_claim(pg, instance, f"{instance}-admin")])
    c.reconcile(max_wait=3)
    assert c.claim("DatabaseInstance", instance)["status"]["phase"] == "Ready"
    assert_a_further_reconcile_runs_no_job(c)


# --- the admin lacks a privilege --------------------------------------------------------------------------------


def test_admin_without_createdb_gets_a_permanent_error_naming_it_and_granting_it_converges(
    pg: Server,
) -> None:
    """(Without CREATEROLE: test_pg_instance.test_admin_without_createrole_gets_a_hint.)"""
    admin, password = make_role(pg, "nocreatedb", "LOGIN CREATEROLE")
    name = unique("db")
    request, env = request_for(pg, "Database", {"name": name}), admin_env(admin, password)
    result = run_worker(pg, "apply", request, env=env)
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "PermissionDenied")
    assert "the admin role needs CREATEDB (ALTER ROLE <admin> CREATEDB)" in result.error["message"]
    assert result.result["changes"] == []
    assert not pg.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,))

    execute(pg, f"ALTER ROLE {admin} CREATEDB")  # what the hint says
    fixed = run_worker(pg, "apply", request, env=env)
    assert fixed.code == 0, fixed.result
    assert fixed.result["changes"] == [
        f"CREATE DATABASE {name}",
        f"COMMENT ON DATABASE {name} IS 'managed by dbops for Database default/test'",
    ]
    assert one(pg, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)) == 1
    assert_no_op(pg, request, env=env)


def test_admin_without_grant_option_gets_a_permanent_error_naming_it(pg: Server) -> None:
    """PostgreSQL only warns when the grantor lacks GRANT OPTION and grants nothing; the worker used to report
    the GRANT as a change and then `NotConverged`. Now it is PermissionDenied naming GRANT OPTION."""
    db = unique("db")
    execute(pg, f"CREATE DATABASE {db}")
    execute(pg, "CREATE TABLE public.ledger (id int)", database=db)
    admin, password = make_role(pg, "nograntopt", "LOGIN CREATEROLE")
    grantee, _ = make_role(pg, "grantee", "NOLOGIN")
    mark(pg, "ROLE", grantee)
    execute(pg, f"GRANT SELECT ON public.ledger TO {admin}", database=db)  # without GRANT OPTION
    entry = {"database": db, "schema": "public", "tables": ["ledger"], "privileges": ["SELECT"]}
    request = request_for(pg, "DatabaseGrant", {"grantee": grantee, "postgres": {"grants": [entry]}})
    result = run_worker(pg, "apply", request, env=admin_env(admin, password))
    assert result.code == 2, result.result
    assert (result.error["class"], result.error["code"]) == ("permanent", "PermissionDenied")
    assert result.error["message"].startswith(f"GRANT SELECT ON TABLE public.ledger TO {grantee}: ")
    assert "GRANT OPTION" in result.error["message"]
    assert result.result["changes"] == []
    assert (
        one(pg, "SELECT has_table_privilege(%s, 'public.ledger', 'SELECT')", (grantee,), database=db) is False
    )

    execute(pg, f"GRANT SELECT ON public.ledger TO {admin} WITH GRANT OPTION", database=db)
    fixed = run_worker(pg, "apply", request, env=admin_env(admin, password))
    assert fixed.code == 0, fixed.result
    assert fixed.result["changes"] == [f"GRANT SELECT ON TABLE public.ledger TO {grantee}"]
    assert (
        one(pg, "SELECT has_table_privilege(%s, 'public.ledger', 'SELECT')", (grantee,), database=db) is True
    )
    assert_no_op(pg, request, env=admin_env(admin, password))


def test_admin_that_cannot_keep_the_memory_still_grants_with_a_warning_naming_the_fix(pg: Server) -> None:
    """dbops' memory of what it granted lives in the admin database (`_dbops.grants`, docs/worker.md). An admin
    without CREATE there still gets its grants, with a warning that removed entries cannot be revoked and how to
    fix that; once fixed, the next run remembers what the spec names and shrinking the spec revokes."""
    db, admin_db = unique("db"), unique("admindb")
    execute(pg, f"CREATE DATABASE {db}", f"CREATE DATABASE {admin_db}")
    execute(pg, "CREATE TABLE public.t1 (id int)", "CREATE TABLE public.t2 (id int)", database=db)
    admin, password = make_role(pg, "nomemory", "LOGIN CREATEROLE")
    grantee, _ = make_role(pg, "grantee", "NOLOGIN")
    mark(pg, "ROLE", grantee)
    execute(pg, f"GRANT SELECT ON public.t1, public.t2 TO {admin} WITH GRANT OPTION", database=db)
    env = admin_env(admin, password)

    def request(*tables: str) -> dict[str, Any]:
        entry = {"database": db, "schema": "public", "tables": list(tables), "privileges": ["SELECT"]}
        return request_for(
            pg, "DatabaseGrant", {"grantee": grantee, "postgres": {"grants": [entry]}}, database=admin_db
        )

    def holds(table: str) -> bool:
        return bool(
            one(pg, f"SELECT has_table_privilege(%s, 'public.{table}', 'SELECT')", (grantee,), database=db)
        )

    granted = run_worker(pg, "apply", request("t1", "t2"), env=env)
    assert granted.code == 0, granted.result
    assert granted.result["changes"] == [f"GRANT SELECT ON TABLE public.t1, public.t2 TO {grantee}"]
    (warning,) = [w for w in granted.result.get("warnings", []) if "memory" in w]
    assert "will not be revoked" in warning
    assert f"GRANT CREATE ON DATABASE {admin_db} TO {admin}" in warning
    assert holds("t1") and holds("t2")
    assert not pg.query("SELECT 1 FROM pg_namespace WHERE nspname = '_dbops'", database=admin_db)

    execute(pg, f"GRANT CREATE ON DATABASE {admin_db} TO {admin}")  # what the warning says
    remembered = run_worker(pg, "apply", request("t1", "t2"), env=env)
    assert remembered.code == 0, remembered.result
    assert remembered.result["changes"] == [] and "warnings" not in remembered.result
    assert remembered.result["statements"]["writes"] > 0  # the memory's table and its row
    shrunk = run_worker(pg, "apply", request("t1"), env=env)
    assert shrunk.code == 0, shrunk.result
    assert shrunk.result["changes"] == [f"REVOKE SELECT ON TABLE public.t2 FROM {grantee}"]
    assert holds("t1") and not holds("t2")
    assert_no_op(pg, request("t1"), env=env)


# --- manifests for the cases through the function ---------------------------------------------------------------
