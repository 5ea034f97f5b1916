"""A DatabaseUser whose databaseRef gives its user the use of a database, and a DatabaseGrant whose database-level
entry for that user and database is an exact set without all of it: before, the two claims revoked and granted each
other's privileges on every run (MariaDB: ALL PRIVILEGES against the entry's subset; PostgreSQL: TEMPORARY). Now
the grant is refused, naming both claims and the fix, and another round writes nothing, whether the grant names the
account with userRef or by its name with roleName. Through dbops-local and the real function, on both servers."""

from __future__ import annotations

from typing import Any

import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import writes_during as pg_writes_during


def writes_during(server: Server, action: Any) -> tuple[Any, list[Any]]:
    return (pg_writes_during if server.engine == "postgres" else maria_writes_during)(server, action)


def held(server: Server, username: str, db: str) -> set[str]:
    if server.engine == "postgres":
        rows = server.query(
            "SELECT p FROM unnest(ARRAY['CONNECT', 'TEMPORARY', 'CREATE']) p "
            "WHERE has_database_privilege(%s, %s, p)",
            (username, db),
        )
    else:
        rows = server.query(
            "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s",
            (f"'{username}'@'%'",),
        )
    return {str(r[0]) for r in rows}


@pytest.mark.parametrize("how", ["userRef", "roleName"])
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_grant_that_would_undo_the_users_database_access_is_refused(
    function_client: FunctionClient, server: Server, how: str
) -> None:
    instance, db_obj, user_obj, grant_obj = (
        kube_name("inst"),
        kube_name("db"),
        kube_name("user"),
        kube_name("g"),
    )
    db, username = unique("db"), unique("app")
    c = cluster(function_client)
    subset: dict[str, Any]
    if server.engine == "postgres":
        subset = {"postgres": {"grants": [{"privileges": ["CONNECT"]}]}}
    else:
        subset = {"mysql": {"grants": [{"level": "database", "privileges": ["SELECT"]}]}}
    c.apply(
        [
            admin_secret(server, f"{instance}-admin"),
            instance_claim(server, instance, f"{instance}-admin"),
            claim("Database", db_obj, {"instanceRef": {"name": instance}, "name": db}),
            claim(
                "DatabaseUser",
                user_obj,
                {"instanceRef": {"name": instance}, "username": username, "databaseRef": {"name": db_obj}},
            ),
        ]
    )
    c.reconcile()
    before = held(server, username, db)
    assert c.claim("DatabaseUser", user_obj)["status"]["phase"] == "Ready"
    grantee: dict[str, Any] = (
        {"userRef": {"name": user_obj}}
        if how == "userRef"
        else {"roleName": username, "instanceRef": {"name": instance}}
    )
    grant = claim("DatabaseGrant", grant_obj, {**grantee, "databaseRef": {"name": db_obj}, **subset})
    c.apply([grant])
    c.reconcile()
    got = c.claim("DatabaseGrant", grant_obj)["status"]
    assert got["phase"] == "Failed", got
    named = "" if how == "userRef" else f" (username {username}, the role spec.roleName names)"
    assert f"DatabaseUser {user_obj}{named} already gives its user" in got["message"], got["message"]
    assert f"remove databaseRef from DatabaseUser {user_obj}" in got["message"]
    assert held(server, username, db) == before
    # Another round: nothing flips.
    _, writes = writes_during(server, lambda: (c.apply([grant]), c.reconcile()))
    assert writes == [], [w.text for w in writes]
    assert held(server, username, db) == before
