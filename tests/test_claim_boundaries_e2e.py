"""What a claim can never do, end to end (docs/security.md "What a claim can never do"): claims through the
offline loop (`dbops_local`: the served function, Crossplane's apply rules, the worker against the private
PostgreSQL and MariaDB servers), asserting what a platform team would check: the Secrets as they were, logins,
the server's catalog, every claim's phase and conditions."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from dbops_local.loop import DEFAULT_MAX_WAIT, OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, condition, instance_claim
from tests.servers import Server


def phases(c: OfflineCluster) -> dict[str, str]:
    return {f"{o['kind']}/{o['metadata']['name']}": o.get("status", {}).get("phase", "-") for o in c.claims()}


def secret(c: OfflineCluster, name: str) -> dict[str, Any]:
    found = c.store.get("v1", "Secret", name, "default")
    assert found is not None, f"Secret {name} is gone"
    return copy.deepcopy(found)


def role_exists(server: Server, name: str) -> bool:
    if server.engine == "postgres":
        return bool(server.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)))
    return bool(server.query("SELECT 1 FROM mysql.user WHERE user = %s", (name,)))


def can_log_in(server: Server, user: str, password: str) -> bool:
    conn = server.connect(user=user, password=password, database=None)
    conn.close()
    return True


# --- 1. the credentials Secret is never a Secret dbops did not create for the claim ------------------------------


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_user_cannot_take_over_the_admin_secret_another_claims_secret_or_any_other(
    function_client: FunctionClient, server: Server
) -> None:
    victim = unique("victim")
    c = cluster(function_client)
    unrelated = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-config"},
        "type": "Opaque",
        "stringData": {"password": "app-config-value-1", "other": "kept"},
    }
    c.apply(
        [
            admin_secret(server, "admin"),
            unrelated,
            instance_claim(server, "server", "admin"),
            claim("DatabaseUser", "victim", {"instanceRef": {"name": "server"}, "username": victim}),
        ]
    )
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    before = {name: secret(c, name) for name in ("admin", "app-config", "victim-credentials")}

    grabs = {"grab-admin": "admin", "grab-other": "victim-credentials", "grab-unrelated": "app-config"}
    usernames = {name: unique("grab") for name in grabs}
    c.apply(
        [
            claim(
                "DatabaseUser",
                name,
                {
                    "instanceRef": {"name": "server"},
                    "username": usernames[name],
                    "passwordSecret": {"secretName": target},
                },
            )
            for name, target in grabs.items()
        ]
    )
    c.reconcile()

    for name, target in grabs.items():
        user = c.claim("DatabaseUser", name)
        assert user["status"]["phase"] == "Failed", user["status"]
        assert user["status"]["message"].startswith(
            f"spec.passwordSecret.secretName: Secret default/{target} "
        )
        assert condition(user, "Provisioned")["reason"] == "SecretNotOwned"
        assert condition(user, "Ready")["status"] == "False"
        assert c.composed_of(user) == {}, "nothing composed: no Secret, no Job"
        assert not role_exists(server, usernames[name])
    assert (
        "is the admin Secret of DatabaseInstance server"
        in c.claim("DatabaseUser", "grab-admin")["status"]["message"]
    )
    # Not a byte, label or owner reference changed; the instance and the victim work as before.
    assert {name: secret(c, name) for name in before} == before
    assert phases(c)["DatabaseInstance/server"] == phases(c)["DatabaseUser/victim"] == "Ready"
    assert can_log_in(server, victim, c.secret_data("victim-credentials")["password"])

    # Deleting the refused claims takes nothing with them (Crossplane garbage-collects only what the XR controls).
    for name in grabs:
        c.delete("DatabaseUser", name)
    c.reconcile()
    assert {name: secret(c, name) for name in before} == before


# --- 5. passwords are copied to crossplane-system only for a claim that asks for a connection Secret ------------


def published(c: OfflineCluster, claim_name: str) -> dict[str, str]:
    """The XR's connection Secret in crossplane-system (Crossplane names it by the XR's uid), non-empty values."""
    xr = c.composite(c.claim("DatabaseUser", claim_name))
    assert xr is not None
    ref = xr["spec"]["writeConnectionSecretToRef"]
    assert ref["namespace"] == "crossplane-system" and ref["name"] == xr["metadata"]["uid"]
    return {k: v for k, v in c.secret_data(ref["name"], ref["namespace"]).items() if v}


def test_only_a_claim_asking_for_a_connection_secret_has_its_password_in_crossplane_system(
    function_client: FunctionClient, pg: Server
) -> None:
    quiet, asking = unique("quiet"), unique("asking")
    c = cluster(function_client)
    asking_claim = claim(
        "DatabaseUser",
        "asking",
        {
            "instanceRef": {"name": "server"},
            "username": asking,
            "writeConnectionSecretToRef": {"name": "asking-connection"},
        },
    )
    c.apply(
        [
            admin_secret(pg, "admin"),
            instance_claim(pg, "server", "admin"),
            claim("DatabaseUser", "quiet", {"instanceRef": {"name": "server"}, "username": quiet}),
            asking_claim,
        ]
    )
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    assert published(c, "quiet") == {}
    password = c.secret_data("asking-credentials")["password"]
    assert published(c, "asking")["password"] == password
    connection = c.secret_data("asking-connection")
    assert connection["password"] == password and connection["username"] == asking
    assert can_log_in(pg, asking, connection["password"])

    # The claim stops asking: the copy in crossplane-system is blanked (Crossplane merge-patches that Secret, so
    # the keys are sent back empty); the claim's own Secret stays, as Crossplane leaves it.
    del asking_claim["spec"]["writeConnectionSecretToRef"]
    c.apply([asking_claim])
    c.reconcile()
    assert published(c, "asking") == {}
    assert phases(c)["DatabaseUser/asking"] == "Ready"


# --- 10. an unhealthy instance does not flip what converged on it to Ready=False ---------------------------------


def _grant(engine: str) -> dict[str, Any]:
    # The user's databaseRef already gives CONNECT and TEMPORARY (PostgreSQL) or ALL (MySQL/MariaDB) on the
    # database: a database-level entry must include them (tests/test_grant_conflict_e2e.py).
    if engine == "postgres":
        return {"postgres": {"grants": [{"privileges": ["CONNECT", "TEMPORARY"]}]}}
    return {"mysql": {"grants": [{"level": "database", "privileges": ["ALL"]}]}}


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_claims_that_converged_stay_ready_while_their_instance_fails_and_new_ones_wait(
    function_client: FunctionClient, server: Server
) -> None:
    dbname, username = unique("kept"), unique("kept_u")
    c = cluster(function_client)
    dependents = [
        claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
        claim(
            "DatabaseUser",
            "user",
            {"instanceRef": {"name": "server"}, "databaseRef": {"name": "db"}, "username": username},
        ),
        claim(
            "DatabaseGrant",
            "grant",
            {"userRef": {"name": "user"}, "databaseRef": {"name": "db"}, **_grant(server.engine)},
        ),
    ]
    c.apply([admin_secret(server, "admin"), instance_claim(server, "server", "admin"), *dependents])
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    converged = {f"{o['kind']}/{o['metadata']['name']}": copy.deepcopy(o["status"]) for o in c.claims()}

    # The admin password is changed to a wrong one: the instance's check fails; what converged on it keeps its
    # last result, Ready stays True, and InstanceReady says why. A claim that never converged waits.
    c.apply(
        [
            admin_secret(server, "admin", password="not-the-admin-password"),
            claim("Database", "late", {"instanceRef": {"name": "server"}, "name": unique("late")}),
        ]
    )
    runs = c.jobs_run
    c.reconcile()
    instance = c.claim("DatabaseInstance", "server")
    assert instance["status"]["phase"] == "Failed"
    assert condition(instance, "Connected")["reason"] == "AuthenticationFailed"
    assert condition(instance, "Ready")["status"] == "False", "the instance's own alert fires"
    assert c.jobs_run == runs + 1, "only the instance's check ran"
    for obj in dependents:
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        now = c.claim(obj["kind"], obj["metadata"]["name"])
        assert {k: v for k, v in now["status"].items() if k != "conditions"} == {
            k: v for k, v in converged[key].items() if k != "conditions"
        }, key
        assert condition(now, "Ready")["status"] == "True", key
        assert condition(now, "Provisioned")[("status")] == "True", key
        ready = condition(now, "InstanceReady")
        assert (ready["status"], ready["reason"]) == ("False", "InstanceNotReady"), key
        assert "DatabaseInstance server is not Ready (phase Failed" in ready["message"], key
    late = c.claim("Database", "late")
    assert late["status"]["phase"] == "Pending" and condition(late, "Ready")["status"] == "False"
    # The server was never touched: the user still logs in with its Secret.
    assert can_log_in(server, username, c.secret_data("user-credentials")["password"])

    # Fixed: everything converges again (the admin Secret's new revision re-runs each object once).
    c.apply([admin_secret(server, "admin")])
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    assert {
        condition(o, "InstanceReady").get("status") for o in c.claims() if o["kind"] != "DatabaseInstance"
    } == {"True"}


def test_a_job_that_finds_the_server_down_keeps_a_converged_claim_ready_and_its_retry_converges(
    function_client: FunctionClient, pg: Server
) -> None:
    """The server goes down between two health checks (the instance is still Ready) and a Database's spec changes:
    its Job is refused (transient). The Database keeps its last result and Ready; InstanceReady says the server
    could not be reached; the retry after the back-off, with the server back, applies the change."""
    dbname = unique("down")
    down = [True]

    def sleep(seconds: float) -> None:
        if down.pop():
            pg.start()
        time.sleep(seconds)  # the back-off is measured by the function's clock

    c = cluster(function_client, sleep=sleep)
    db = claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname})
    c.apply([admin_secret(pg, "admin"), instance_claim(pg, "server", "admin"), db])
    c.reconcile()
    assert set(phases(c).values()) == {"Ready"}, phases(c)
    converged = copy.deepcopy(c.claim("Database", "db")["status"])

    changed = copy.deepcopy(db)
    changed["spec"]["postgres"] = {"connectionLimit": 7}
    c.apply([changed])
    pg.stop()
    try:
        c.reconcile(max_wait=0)  # one failed attempt, the retry not yet due
        now = c.claim("Database", "db")
        assert now["status"]["phase"] == "Ready", json.dumps(now["status"], indent=1)
        assert now["status"]["lastSuccessfulTime"] == converged["lastSuccessfulTime"]
        assert now["status"]["database"] == converged["database"]
        assert now["status"]["message"].startswith(f"as converged at {converged['lastSuccessfulTime']}; ")
        assert condition(now, "Ready")["status"] == "True"
        reason = condition(now, "InstanceReady")
        assert (reason["status"], reason["reason"]) == ("False", "ConnectionRefused"), reason
        assert "could not reach the server" in reason["message"]
        c.reconcile(max_wait=DEFAULT_MAX_WAIT)  # waits for the retry, starting the server meanwhile
    finally:
        if down:
            pg.start()
    now = c.claim("Database", "db")
    assert now["status"]["phase"] == "Ready" and now["status"]["job"] != converged["job"], json.dumps(now["status"], indent=1)
    assert condition(now, "InstanceReady")["status"] == "True"
    assert pg.query("SELECT datconnlimit FROM pg_database WHERE datname = %s", (dbname,)) == [(7,)]
