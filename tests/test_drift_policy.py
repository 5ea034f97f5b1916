"""driftPolicy (issue 12 item 4) against the real servers, through dbops-local: a change made by hand is only
shown by `detect` (the statement in status, Drifted=True, no write in the server's statement log), left alone by
`ignore` (which still creates a missing object), and fixed by `correct`; a DatabaseInstance's driftPolicy is the
default of the claims on it.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.conftest import apply_ok, request_for, run_worker, unique
from tests.offline_support import admin_secret, claim, cluster, condition, instance_claim, kube_name
from tests.servers import Server
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import writes_during as pg_writes_during


def writes_during(server: Server, action: Any) -> tuple[Any, list[Any]]:
    return (pg_writes_during if server.engine == "postgres" else maria_writes_during)(server, action)


def user_spec(server: Server, instance: str, username: str, mode: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"instanceRef": {"name": instance}, "username": username}
    if server.engine == "postgres":
        spec["postgres"] = {"connectionLimit": 5}
    else:
        spec["mysql"] = {"maxUserConnections": 5}
    if mode is not None:
        spec["driftPolicy"] = {"mode": mode}
    return spec


def limit(server: Server, username: str) -> int | None:
    if server.engine == "postgres":
        rows = server.query("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (username,))
    else:
        rows = server.query("SELECT max_user_connections FROM mysql.user WHERE User = %s", (username,))
    return int(rows[0][0]) if rows else None


def set_limit_by_hand(server: Server, username: str, value: int) -> None:
    if server.engine == "postgres":
        sql = f'ALTER ROLE "{username}" CONNECTION LIMIT {value}'
    else:
        sql = f"ALTER USER '{username}'@'%' WITH MAX_USER_CONNECTIONS {value}"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def converge(c: OfflineCluster, docs: list[dict[str, Any]]) -> None:
    c.apply(docs)
    c.reconcile()


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_detect_shows_ignore_leaves_correct_fixes_a_change_made_by_hand(
    function_client: FunctionClient, server: Server
) -> None:
    instance, user, username = kube_name("inst"), kube_name("user"), unique("drift")
    c = cluster(function_client)
    base = [admin_secret(server, f"{instance}-admin"), instance_claim(server, instance, f"{instance}-admin")]
    converge(c, [*base, claim("DatabaseUser", user, user_spec(server, instance, username, None))])
    assert c.claim("DatabaseUser", user)["status"]["phase"] == "Ready"
    assert limit(server, username) == 5
    set_limit_by_hand(server, username, 50)

    # detect: the plan in status, Drifted=True, nothing written
    _, writes = writes_during(
        server,
        lambda: converge(c, [claim("DatabaseUser", user, user_spec(server, instance, username, "detect"))]),
    )
    got = c.claim("DatabaseUser", user)
    assert writes == [], [w.text for w in writes]
    assert limit(server, username) == 50
    assert got["status"]["phase"] == "Ready", got["status"]
    drifted = condition(got, "Drifted")
    assert (drifted.get("status"), drifted.get("reason")) == ("True", "Detected"), (
        got["status"]["message"],
        got["status"].get("conditions"),
    )
    plan = got["status"]["driftPlan"]
    assert plan["count"] == 1 and not plan["missing"], plan
    want = "CONNECTION LIMIT 5" if server.engine == "postgres" else "MAX_USER_CONNECTIONS 5"
    assert want in plan["statements"][0], plan
    assert "1 statement(s) would correct it" in got["status"]["message"]

    # ignore: an existing object is never corrected
    _, writes = writes_during(
        server,
        lambda: converge(c, [claim("DatabaseUser", user, user_spec(server, instance, username, "ignore"))]),
    )
    got = c.claim("DatabaseUser", user)
    assert got["status"]["phase"] == "Ready", got["status"]
    assert writes == [] and limit(server, username) == 50
    assert "driftPlan" not in got["status"]
    assert condition(got, "Drifted").get("status") in (None, "Unknown")

    # correct: fixed; and detect then finds it in sync
    converge(c, [claim("DatabaseUser", user, user_spec(server, instance, username, "correct"))])
    assert limit(server, username) == 5
    converge(c, [claim("DatabaseUser", user, user_spec(server, instance, username, "detect"))])
    got = c.claim("DatabaseUser", user)
    assert (condition(got, "Drifted")["status"], condition(got, "Drifted")["reason"]) == ("False", "InSync")
    assert got["status"]["driftPlan"] == {"count": 0, "missing": False, "statements": []}


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_ignore_creates_what_is_missing_and_detect_creates_nothing(
    function_client: FunctionClient, server: Server
) -> None:
    """A missing object: ignore creates it; detect (here the instance's default) writes nothing and says so."""
    instance, detecting = kube_name("inst"), kube_name("inst")
    user, db = kube_name("user"), kube_name("db")
    username, db_name = unique("drift"), unique("drift")
    c = cluster(function_client)
    docs = [
        admin_secret(server, f"{instance}-admin"),
        instance_claim(server, instance, f"{instance}-admin"),
        instance_claim(
            server, detecting, f"{instance}-admin", driftPolicy={"mode": "detect", "interval": "8h"}
        ),
        claim("DatabaseUser", user, user_spec(server, instance, username, "ignore")),
    ]
    converge(c, docs)
    got = c.claim("DatabaseUser", user)
    assert got["status"]["phase"] == "Ready", got["status"]
    assert limit(server, username) == 5, "ignore created the missing user, as the spec says"

    _, writes = writes_during(
        server,
        lambda: converge(c, [claim("Database", db, {"instanceRef": {"name": detecting}, "name": db_name})]),
    )
    got = c.claim("Database", db)
    assert writes == [], [w.text for w in writes]
    if server.engine == "postgres":
        exists = server.query("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,))
    else:
        exists = server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db_name,))
    assert not exists
    assert got["status"]["phase"] == "Ready", got["status"]
    drifted = condition(got, "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "Missing"), drifted
    assert "does not exist, and detect does not create it" in got["status"]["message"]
    plan = got["status"]["driftPlan"]
    assert plan["missing"] and any("CREATE DATABASE" in s for s in plan["statements"]), plan


def has_grant(server: Server, username: str, db_name: str) -> bool:
    if server.engine == "postgres":
        rows = server.query("SELECT has_database_privilege(%s, %s, 'CREATE')", (username, db_name))
        return bool(rows[0][0])
    rows = server.query(
        "SELECT 1 FROM mysql.db WHERE User = %s AND Db IN (%s, %s) AND Select_priv = 'Y'",
        (username, db_name, db_name.replace("_", "\\_")),
    )
    return bool(rows)


def revoke_by_hand(server: Server, username: str, db_name: str) -> None:
    if server.engine == "postgres":
        sql = f'REVOKE CREATE ON DATABASE "{db_name}" FROM "{username}"'
    else:
        sql = f"REVOKE SELECT ON `{db_name.replace('_', chr(92) + '_')}`.* FROM '{username}'@'%'"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_grant_is_created_under_ignore_and_a_revoke_by_hand_is_only_detected(
    function_client: FunctionClient, server: Server
) -> None:
    instance, user, db, grant = kube_name("inst"), kube_name("user"), kube_name("db"), kube_name("grant")
    username, db_name = unique("drift"), unique("drift")
    c = cluster(function_client)
    docs = [
        admin_secret(server, f"{instance}-admin"),
        instance_claim(server, instance, f"{instance}-admin"),
        claim("Database", db, {"instanceRef": {"name": instance}, "name": db_name}),
        claim("DatabaseUser", user, {"instanceRef": {"name": instance}, "username": username}),
    ]
    if server.engine == "postgres":
        grants: dict[str, Any] = {"postgres": {"grants": [{"privileges": ["CREATE"]}]}}
    else:
        grants = {"mysql": {"grants": [{"level": "database", "privileges": ["SELECT"]}]}}

    def grant_claim(mode: str) -> dict[str, Any]:
        spec = {
            "userRef": {"name": user},
            "databaseRef": {"name": db},
            **grants,
            "driftPolicy": {"mode": mode},
        }
        return claim("DatabaseGrant", grant, spec)

    converge(c, [*docs, grant_claim("ignore")])
    assert c.claim("DatabaseGrant", grant)["status"]["phase"] == "Ready"
    assert has_grant(server, username, db_name), "ignore granted what the claim never granted before"
    revoke_by_hand(server, username, db_name)

    _, writes = writes_during(server, lambda: converge(c, [grant_claim("detect")]))
    got = c.claim("DatabaseGrant", grant)
    assert writes == [], [w.text for w in writes]
    assert not has_grant(server, username, db_name)
    drifted = condition(got, "Drifted")
    assert (drifted.get("status"), drifted.get("reason")) == ("True", "Detected"), got["status"]
    want = "GRANT CREATE ON DATABASE" if server.engine == "postgres" else "GRANT SELECT ON"
    assert any(want in s for s in got["status"]["driftPlan"]["statements"]), got["status"]["driftPlan"]

    _, writes = writes_during(server, lambda: converge(c, [grant_claim("ignore")]))
    assert writes == [], [w.text for w in writes]
    assert not has_grant(server, username, db_name), "ignore never corrects"
    assert c.claim("DatabaseGrant", grant)["status"]["phase"] == "Ready"

    converge(c, [grant_claim("correct")])
    assert has_grant(server, username, db_name)


# --- the worker alone: which steps are creation ---------------------------------------------------------------------


@pytest.mark.mariadb
def test_maria_ignore_creates_the_account_of_a_new_host_and_leaves_the_existing_one(maria: Server) -> None:
    """Creation steps are marked per account: under ignore a user that exists on '%' gets its missing 'localhost'
    account (with its marker, as the spec says), while the hand-changed '%' account is not corrected; a second
    run writes nothing."""
    name = unique("drift")
    apply_ok(maria, "DatabaseUser", {"username": name, "mysql": {"maxUserConnections": 5}})
    set_limit_by_hand(maria, name, 50)
    spec = {"username": name, "mysql": {"maxUserConnections": 5, "allowedHosts": ["%", "localhost"]}}
    request = {**request_for(maria, "DatabaseUser", spec), "driftMode": "ignore"}
    first = run_worker(maria, "apply", request)
    assert first.code == 0, first.result
    assert any(f"CREATE USER '{name}'@'localhost'" in c for c in first.result["changes"]), first.result
    assert not any("'%'" in c for c in first.result["changes"]), first.result["changes"]
    limits = dict(maria.query("SELECT Host, max_user_connections FROM mysql.user WHERE User = %s", (name,)))
    assert limits == {"%": 50, "localhost": 5}
    again, writes = maria_writes_during(maria, lambda: run_worker(maria, "apply", request))
    assert again.code == 0 and again.result["changes"] == [] and writes == []
    assert again.result["statements"]["writes"] == 0


@pytest.mark.postgres
def test_pg_plan_of_a_missing_object_says_missing_and_ignore_creates_it_whole(pg: Server) -> None:
    name = unique("drift")
    spec = {"username": name, "postgres": {"connectionLimit": 7}}
    planned, writes = pg_writes_during(
        pg, lambda: run_worker(pg, "plan", request_for(pg, "DatabaseUser", spec))
    )
    assert planned.code == 0 and writes == []
    assert planned.result["missing"] is True
    assert planned.result["changes"][0].startswith(f"CREATE ROLE {name}")
    created = run_worker(pg, "apply", {**request_for(pg, "DatabaseUser", spec), "driftMode": "ignore"})
    assert created.code == 0, created.result
    assert limit(pg, name) == 7
    assert pg.query("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s", (name,))[
        0
    ][0].startswith("managed by dbops for DatabaseUser"), "the marker is part of creating it"
    again = run_worker(pg, "plan", request_for(pg, "DatabaseUser", spec))
    assert again.result["changes"] == [] and "missing" not in again.result
