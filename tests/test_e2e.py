"""End to end without a cluster: claims -> function over gRPC -> Jobs run locally -> real servers -> status.

Everything here goes through `dbops_local` (what `dbops-local` and `make demo` run): the real `function`
console script, the real `dbops-worker` with the environment each Job declares, the private PostgreSQL and
MariaDB servers. Assertions are what a user would check: the claim's phase and message, the catalog, a login.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from dbops_local.loop import DEFAULT_MAX_WAIT, MAX_ROUNDS, OfflineCluster, load_manifests
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, condition, instance_claim
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


# --- manifests ----------------------------------------------------------------------------------------------


def phases(c: OfflineCluster) -> dict[str, str]:
    return {f"{o['kind']}/{o['metadata']['name']}": o.get("status", {}).get("phase", "-") for o in c.claims()}


def status(c: OfflineCluster, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = c.claim(kind, name).get("status", {})
    return found


def jobs(c: OfflineCluster) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in c.store.select("batch/v1", "Job")}


def worker_result(c: OfflineCluster, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Job's one Pod's terminated state, and its termination message read as the worker's JSON result."""
    pods = c.pods_of(job)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    terminated: dict[str, Any] = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    return terminated, json.loads(terminated["message"])


def database_exists(server: Server, name: str) -> bool:
    if server.engine == "postgres":
        return bool(server.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))
    return bool(server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)))


def login(server: Server, user: str, password: str, database: str, sql: str) -> list[tuple[Any, ...]]:
    conn = server.connect(user=user, password=password, database=database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


# --- the seed's Quick Start --------------------------------------------------------------------------------


QUICKSTARTS = {
    "postgres": ("quickstart.yaml", "myapp-db-credentials", "myapp"),
    "mariadb": ("quickstart-mariadb.yaml", "shop-db-credentials", "shop"),
}
# The claims' Quick Start (examples/) and the same as namespaced XRs (examples/namespaced/, apiVersion changed).
SHAPE_EXAMPLES = {"claims": "examples", "namespaced": "examples/namespaced"}


@pytest.mark.parametrize("shape", ["claims", "namespaced"])
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_quickstart_reaches_ready_and_the_user_logs_in(
    function_client: FunctionClient, server: Server, shape: str
) -> None:
    path, secret_name, database = QUICKSTARTS[server.engine]
    docs = load_manifests([ROOT / SHAPE_EXAMPLES[shape] / path])
    for doc in docs:  # point the example at the private server; everything else as written
        if doc["kind"] == "Secret":
            doc["stringData"] = {"username": server.admin_user, "password": server.admin_password}
        if doc["kind"] == "DatabaseInstance":
            doc["spec"]["connection"].update(host=server.host, port=server.port)
    c = cluster(function_client)
    c.apply(docs)
    c.reconcile()

    assert set(phases(c).values()) == {"Ready"}, phases(c)
    assert len(c.claims()) == 3
    for obj in c.claims():
        assert obj["apiVersion"] == load_manifests([ROOT / SHAPE_EXAMPLES[shape] / path])[1]["apiVersion"]
        assert condition(obj, "Provisioned")["status"] == "True"
        assert condition(obj, "Ready")["status"] == "True"
    if shape == "namespaced":
        # No claim, no cluster-scoped XR, nothing in crossplane-system: every composed object is in the XRs'
        # namespace, controlled by its XR.
        assert c.store.select("dbops.dbprovision.io/v1alpha1") == []
        assert c.store.select(namespace="crossplane-system") == []
        composed = [o for o in c.store.all() if "crossplane.io/composite" in o["metadata"].get("labels", {})]
        assert {o["kind"] for o in composed} == {"Job", "Secret"}
        assert {o["metadata"]["namespace"] for o in composed} == {"default"}
        uids = {o["metadata"]["uid"] for o in c.claims()}
        assert all(o["metadata"]["ownerReferences"][0]["uid"] in uids for o in composed)
    instance_status = next(o for o in c.claims() if o["kind"] == "DatabaseInstance")["status"]
    assert instance_status["instance"]["flavor"] == server.engine
    # Every Job completed, one per object, and its Pod's termination message is the worker's result, which the
    # claim's status reports.
    assert len(jobs(c)) == 3
    for obj in c.claims():
        st = obj["status"]
        job = jobs(c)[st["job"]]
        assert [cond["type"] for cond in job["status"]["conditions"]] == ["Complete"]
        terminated, result = worker_result(c, job)
        assert terminated["exitCode"] == 0
        assert result["ok"] is True and result["error"] is None and result["kind"] == obj["kind"]
        done = f"{len(result['changes'])} change(s)" if result["changes"] else "no changes needed"
        assert st["message"] == f"converged by Job {st['job']}: {done}"
    creds = c.secret_data(secret_name)
    assert set(creds) >= {"username", "password", "host", "port", "database", "uri"}
    assert (
        creds["host"] == server.host and creds["port"] == str(server.port) and creds["database"] == database
    )
    assert database_exists(server, database)
    who = "SELECT current_user" if server.engine == "postgres" else "SELECT current_user()"
    assert login(server, creds["username"], creds["password"], database, who)[0][0].startswith(
        creds["username"]
    )
    # The password is generated once: another round keeps it and runs nothing.
    runs = c.jobs_run
    c.reconcile()
    assert c.secret_data(secret_name)["password"] == creds["password"]
    assert c.jobs_run == runs


# --- a spec change -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_spec_change_runs_a_new_job_and_converges(function_client: FunctionClient, server: Server) -> None:
    name = unique("chg")
    c = cluster(function_client)
    options: dict[str, Any] = (
        {"postgres": {"connectionLimit": 5}}
        if server.engine == "postgres"
        else {"mysql": {"charset": "utf8mb4", "collation": "utf8mb4_general_ci"}}
    )
    db = claim("Database", "db", {"instanceRef": {"name": "server"}, "name": name, **options})
    c.apply([admin_secret(server, "admin"), instance_claim(server, "server", "admin"), db])
    c.reconcile()
    assert phases(c)["Database/db"] == "Ready"
    first_job = status(c, "Database", "db")["job"]

    changed = copy.deepcopy(db)
    if server.engine == "postgres":
        changed["spec"]["postgres"]["connectionLimit"] = 10
    else:
        changed["spec"]["mysql"]["collation"] = "utf8mb4_unicode_ci"
    c.apply([changed])
    c.reconcile()

    after = status(c, "Database", "db")
    assert after["phase"] == "Ready" and after["job"] != first_job
    assert first_job not in jobs(c), "the superseded Job left the desired set and was deleted"
    assert after["message"].endswith("1 change(s)")
    if server.engine == "postgres":
        assert server.query("SELECT datconnlimit FROM pg_database WHERE datname = %s", (name,)) == [(10,)]
    else:
        assert server.query(
            "SELECT default_collation_name FROM information_schema.schemata WHERE schema_name = %s", (name,)
        ) == [("utf8mb4_unicode_ci",)]


# --- dependencies ------------------------------------------------------------------------------------------


def test_user_created_before_its_instance_is_ready_waits_then_converges(
    function_client: FunctionClient, pg: Server
) -> None:
    dbname, username = unique("early"), unique("early_u")
    c = cluster(function_client)
    c.apply(
        [
            claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
            claim(
                "DatabaseUser",
                "user",
                {"instanceRef": {"name": "server"}, "databaseRef": {"name": "db"}, "username": username},
            ),
        ]
    )
    c.reconcile()
    user = status(c, "DatabaseUser", "user")
    assert user["phase"] == "Pending" and "DatabaseInstance server" in user["message"]
    assert condition(c.claim("DatabaseUser", "user"), "InstanceReady")["reason"] == "InstanceNotFound"
    assert not jobs(c)

    # The instance arrives before its admin Secret: its check Job cannot start, so it is not Ready yet.
    c.apply([instance_claim(pg, "server", "admin")])
    c.reconcile()
    assert phases(c)["DatabaseInstance/server"] != "Ready"
    assert status(c, "DatabaseUser", "user")["phase"] == "Pending"
    assert "not Ready" in status(c, "DatabaseUser", "user")["message"]
    assert [j for j in jobs(c) if "user" in j] == [], "no Job for the user while the instance is not Ready"

    c.apply([admin_secret(pg, "admin")])
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    creds = c.secret_data("user-credentials")
    assert login(pg, username, creds["password"], dbname, "SELECT current_database()") == [(dbname,)]


# --- a wrong admin password ----------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_wrong_admin_password_fails_then_fixing_the_secret_converges(
    function_client: FunctionClient, server: Server
) -> None:
    dbname = unique("wrongpw")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(server, "admin", password="not-the-password"),
            instance_claim(server, "server", "admin"),
            claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
        ]
    )
    c.reconcile()
    failed = status(c, "DatabaseInstance", "server")
    assert failed["phase"] == "Failed", failed
    assert condition(c.claim("DatabaseInstance", "server"), "Connected")["reason"] == "AuthenticationFailed"
    # The worker exited 2 (permanent), so the Job's podFailurePolicy failed it at once; the Pod keeps the exit code
    # and the worker's result as its termination message, and the claim's message is the worker's.
    job = jobs(c)[failed["job"]]
    assert [(cond["type"], cond["reason"]) for cond in job["status"]["conditions"]] == [
        ("FailureTarget", "PodFailurePolicy"),
        ("Failed", "PodFailurePolicy"),
    ]
    terminated, result = worker_result(c, job)
    assert terminated["exitCode"] == 2 and terminated["reason"] == "Error"
    assert result["ok"] is False
    assert {k: result["error"][k] for k in ("class", "code")} == {
        "class": "permanent",
        "code": "AuthenticationFailed",
    }
    denied = (
        f'password authentication failed for user "{server.admin_user}"'
        if server.engine == "postgres"
        else f"Access denied for user '{server.admin_user}'@"
    )
    assert denied in result["error"]["message"]
    assert failed["message"].startswith(result["error"]["message"])
    # The Secret holds the password (base64 in `data`, as the API server keeps it); no other object, no status
    # or termination message, and no Pod's log carries it.
    assert c.secret_data("admin")["password"] == "not-the-password"
    others = [o for o in c.store.dump() if (o["kind"], o["metadata"]["name"]) != ("Secret", "admin")]
    assert "not-the-password" not in json.dumps(others)
    assert not [pod for pod, logs in c.pod_logs.items() if "not-the-password" in logs]
    assert status(c, "Database", "db")["phase"] == "Pending"
    assert not database_exists(server, dbname)
    runs = c.jobs_run
    c.reconcile()
    assert c.jobs_run == runs, "a permanent failure is not retried until something changes"

    c.apply([admin_secret(server, "admin")])
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    assert database_exists(server, dbname)


# --- grants ---------------------------------------------------------------------------------------------------


def _grant_spec(engine: str, privileges: list[str]) -> dict[str, Any]:
    if engine == "postgres":
        return {
            "postgres": {"grants": [{"schema": "public", "tables": ["orders"], "privileges": privileges}]}
        }
    return {"mysql": {"grants": [{"level": "table", "table": "orders", "privileges": privileges}]}}


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_grant_shrink_revokes(function_client: FunctionClient, server: Server) -> None:
    dbname, username = unique("grants"), unique("grant_u")
    c = cluster(function_client)
    base = [
        admin_secret(server, "admin"),
        instance_claim(server, "server", "admin"),
        claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
        claim("DatabaseUser", "user", {"instanceRef": {"name": "server"}, "username": username}),
    ]
    c.apply(base)
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    server.query("CREATE TABLE orders (id int)", database=dbname)
    grant = claim(
        "DatabaseGrant",
        "grant",
        {
            "userRef": {"name": "user"},
            "databaseRef": {"name": "db"},
            **_grant_spec(server.engine, ["SELECT", "INSERT"]),
        },
    )
    c.apply([grant])
    c.reconcile()
    assert phases(c)["DatabaseGrant/grant"] == "Ready", status(c, "DatabaseGrant", "grant")
    password = c.secret_data("user-credentials")["password"]
    login(server, username, password, dbname, "INSERT INTO orders VALUES (1)")

    shrunk = copy.deepcopy(grant)
    shrunk["spec"].update(_grant_spec(server.engine, ["SELECT"]))
    c.apply([shrunk])
    c.reconcile()
    assert phases(c)["DatabaseGrant/grant"] == "Ready"
    assert login(server, username, password, dbname, "SELECT count(*) FROM orders") == [(1,)]
    with pytest.raises(Exception, match=r"(?i)denied"):
        login(server, username, password, dbname, "INSERT INTO orders VALUES (2)")


# --- deletion -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_ensure_absent_drops_only_when_unprotected_and_deleting_a_claim_drops_nothing(
    function_client: FunctionClient, server: Server
) -> None:
    kept, dropped = unique("kept"), unique("gone")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(server, "admin"),
            instance_claim(server, "server", "admin"),
            claim("Database", "kept", {"instanceRef": {"name": "server"}, "name": kept}),
            claim("Database", "gone", {"instanceRef": {"name": "server"}, "name": dropped}),
        ]
    )
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}

    # Deleting a claim never drops anything in the server.
    c.delete("Database", "kept")
    c.reconcile()
    assert database_exists(server, kept)

    # ensure: Absent with deletionPolicy: Delete is refused while deletionProtection is on (the default) ...
    absent = claim(
        "Database",
        "gone",
        {"instanceRef": {"name": "server"}, "name": dropped, "ensure": "Absent", "deletionPolicy": "Delete"},
    )
    c.apply([absent])
    c.reconcile()
    refused = status(c, "Database", "gone")
    assert refused["phase"] == "Failed" and "deletionProtection" in refused["message"]
    assert database_exists(server, dropped)

    # ... and drops once protection is off.
    absent["spec"]["deletionProtection"] = False
    c.apply([absent])
    c.reconcile()
    assert status(c, "Database", "gone")["phase"] == "Dropped"
    assert not database_exists(server, dropped)


# --- waiting: only for a retry ----------------------------------------------------------------------------------


def test_the_default_max_wait_settles_permanent_failures_and_missing_secrets_without_waiting(
    function_client: FunctionClient, pg: Server
) -> None:
    """Claims waiting for a failed instance, and an instance whose admin Secret is missing, ask the function to be
    called again in 30 s and 10 s; the loop calls every claim every round, so it does not wait for those."""
    waits: list[float] = []
    c = cluster(function_client, sleep=waits.append)
    c.apply(
        [
            admin_secret(pg, "admin", password="not-the-password"),
            instance_claim(pg, "server", "admin"),
            claim("Database", "db", {"instanceRef": {"name": "server"}, "name": unique("nowait")}),
            claim(
                "DatabaseUser", "user", {"instanceRef": {"name": "server"}, "username": unique("nowait_u")}
            ),
            instance_claim(pg, "no-secret", "absent-admin"),
        ]
    )
    rounds = c.reconcile(max_wait=DEFAULT_MAX_WAIT)
    assert phases(c) == {
        "DatabaseInstance/no-secret": "Provisioning",
        "DatabaseInstance/server": "Failed",
        "Database/db": "Pending",
        "DatabaseUser/user": "Pending",
    }
    assert waits == [], "nothing but a retry is waited for"
    assert c.settled and c.next_retry is None and rounds < MAX_ROUNDS
    (pod,) = c.pods_of(jobs(c)[status(c, "DatabaseInstance", "no-secret")["job"]])
    assert pod["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "absent-admin" not found'}
    }
    assert c.jobs_run == 1, "only the wrong-password check ran"


def test_a_transient_failure_is_waited_for_and_retried_then_converges(
    function_client: FunctionClient, pg: Server
) -> None:
    """The server is down (connection refused: transient); while the loop waits for the back-off it comes back,
    and the retry converges the instance and then the Database behind it."""
    waits: list[float] = []
    down = [True]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if down.pop():
            pg.start()
        time.sleep(seconds)  # the back-off is measured by the function's clock

    dbname = unique("retried")
    c = cluster(function_client, sleep=sleep)
    pg.stop()
    try:
        c.apply(
            [
                admin_secret(pg, "admin"),
                instance_claim(pg, "server", "admin"),
                claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
            ]
        )
        c.reconcile(max_wait=DEFAULT_MAX_WAIT)
    finally:
        if down:
            pg.start()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    assert len(waits) == 1, waits
    assert c.settled and c.next_retry is None
    instance = c.composite(c.claim("DatabaseInstance", "server"))
    assert instance is not None
    # Pods are named <Job>-<index>: the first Job's Pods (the Job's own backoffLimit re-runs a Pod that exits 1)
    # were refused, the retry's one Pod converged. On a busy machine the loop may come back only after the first
    # back-off has ended: then it retries at once, without a wait, while the server is still down, and that Job is
    # refused too (the server comes back during the one wait, for the retry after it).
    pods = sorted(p for p in c.pod_logs if p.startswith(instance["metadata"]["name"] + "-"))
    by_job: dict[str, list[str]] = {}
    for pod in pods:
        by_job.setdefault(pod.rsplit("-", 1)[0], []).append(c.pod_logs[pod])
    assert len(by_job) >= 2, "the failed check, then the retry"
    retried = by_job.pop(status(c, "DatabaseInstance", "server")["job"])
    for refused in by_job.values():
        assert all('"class":"transient","code":"ConnectionRefused"' in logs for logs in refused), refused
    assert len(retried) == 1 and '"ok":true' in retried[0]
    assert database_exists(pg, dbname)
