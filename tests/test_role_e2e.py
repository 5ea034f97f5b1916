"""DatabaseRole end to end through dbops-local and the real function, on PostgreSQL (claims) and MariaDB
(namespaced XRs): the role Ready with its privileges, a DatabaseUser that joins it by `roleRefs` (the claim's name) logs in and uses
them, and `ensure: Absent` with `deletionPolicy: Delete` drops the role again."""

from __future__ import annotations

from typing import Any

import pytest

from dbops_local import crossplane as xp
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server
from tests.test_mysql_support import query_as
from tests.test_pg_support import as_user, execute


def world(server: Server) -> str:
    db = unique("db")
    if server.engine == "postgres":
        execute(server, f"CREATE DATABASE {db}")
        execute(server, "CREATE TABLE public.t (a int)", "CREATE TABLE public.t2 (a int)", database=db)
    else:
        server.query(f"CREATE DATABASE `{db}`")
        server.query(f"CREATE TABLE `{db}`.t (a INT)")
        server.query(f"CREATE TABLE `{db}`.t2 (a INT)")
    return db


def role_spec(server: Server, instance: str, role: str, db: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"instanceRef": {"name": instance}, "roleName": role}
    if server.engine == "postgres":
        spec["postgres"] = {
            "grants": [
                {"database": db, "privileges": ["CONNECT"]},
                {"database": db, "schema": "public", "tables": ["t"], "privileges": ["SELECT"]},
            ]
        }
    else:
        spec["mysql"] = {
            "grants": [{"level": "table", "database": db, "table": "t", "privileges": ["SELECT"]}]
        }
    return spec


def role_exists(server: Server, role: str) -> bool:
    if server.engine == "postgres":
        return bool(server.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)))
    return bool(server.query("SELECT 1 FROM mysql.global_priv WHERE User = %s AND Host = ''", (role,)))


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_role_claim_member_login_and_drop(function_client: FunctionClient, server: Server) -> None:
    # PostgreSQL through claims, MariaDB through namespaced XRs: dbops-local runs both shapes.
    api = xp.API_VERSION if server.engine == "postgres" else xp.NAMESPACED_API_VERSION
    db = world(server)
    instance, role_obj, user_obj = kube_name("inst"), kube_name("role"), kube_name("user")
    role, username = unique("readers"), unique("member")
    c = cluster(function_client)

    def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {**claim(kind, name, spec), "apiVersion": api}

    base = [admin_secret(server, f"{instance}-admin"), instance_claim(server, instance, f"{instance}-admin")]
    base = [base[0], {**base[1], "apiVersion": api}]
    user = doc(
        "DatabaseUser",
        user_obj,
        {"instanceRef": {"name": instance}, "username": username, "roleRefs": [{"name": role_obj}]},
    )
    c.apply([*base, doc("DatabaseRole", role_obj, role_spec(server, instance, role, db))])
    c.reconcile()
    got = c.claim("DatabaseRole", role_obj, api_version=api)
    assert got["status"]["phase"] == "Ready", got["status"]
    assert got["status"]["role"]["roleName"] == role
    c.apply([user])
    c.reconcile()
    assert c.claim("DatabaseUser", user_obj, api_version=api)["status"]["phase"] == "Ready"
    password = c.secret_data(f"{user_obj}-credentials")["password"]
    if server.engine == "postgres":
        assert as_user(server, username, password, "SELECT * FROM public.t", database=db) == (True, "")
    else:
        assert query_as(server, username, password, f"SELECT * FROM `{db}`.t") == []

    # A DatabaseGrant names the role by its claim (roleRef): the grantee and the instance come from it.
    if server.engine == "postgres":
        more: dict[str, Any] = {
            "postgres": {
                "grants": [{"database": db, "schema": "public", "tables": ["t2"], "privileges": ["SELECT"]}]
            }
        }
        probe = "SELECT * FROM public.t2"
    else:
        more = {
            "mysql": {"grants": [{"level": "table", "database": db, "table": "t2", "privileges": ["SELECT"]}]}
        }
        probe = f"SELECT * FROM `{db}`.t2"
    grant_obj = kube_name("grant")
    c.apply([doc("DatabaseGrant", grant_obj, {"roleRef": {"name": role_obj}, **more})])
    c.reconcile()
    granted = c.claim("DatabaseGrant", grant_obj, api_version=api)["status"]
    assert granted["phase"] == "Ready", granted
    assert granted["grant"]["grantee"] == role
    if server.engine == "postgres":
        assert as_user(server, username, password, probe, database=db) == (True, "")
    else:
        assert query_as(server, username, password, probe) == []

    # The grant goes first (on PostgreSQL privileges it granted would block the role's drop, named in the message).
    c.apply(
        [
            doc(
                "DatabaseGrant",
                grant_obj,
                {
                    "roleRef": {"name": role_obj},
                    **more,
                    "ensure": "Absent",
                    "deletionPolicy": "Delete",
                    "deletionProtection": False,
                },
            )
        ]
    )
    c.reconcile()
    assert c.claim("DatabaseGrant", grant_obj, api_version=api)["status"]["phase"] == "Dropped"
    gone = role_spec(server, instance, role, db)
    gone.update(ensure="Absent", deletionPolicy="Delete", deletionProtection=False)
    c.apply([doc("DatabaseRole", role_obj, gone)])
    c.reconcile()
    got = c.claim("DatabaseRole", role_obj, api_version=api)
    assert got["status"]["phase"] == "Dropped", got["status"]
    assert not role_exists(server, role)
