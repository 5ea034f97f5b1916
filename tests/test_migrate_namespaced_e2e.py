"""A move from claims to namespaced XRs (docs/migrating-namespaced.md), end to end on real PostgreSQL and MariaDB
through dbops-local.

The Quick Start (instance, database, user with a generated password, a grant) converges as claims. Then the steps
of the guide: the claims exported as `kubectl get -o yaml` shows them go through `dbops-local
migrate-to-namespaced`; the credentials Secret is released (its owner reference to the legacy XR removed); the
plan of the namespaced XRs, with the exported Secrets, is empty; the claims are deleted (their XRs and Jobs with
them, the released Secret stays); the namespaced XRs are applied.

What must hold: every namespaced XR Ready; the server's statement log shows no write at all (the markers name the
same namespace and name, so the worker sees the same owner); the same database, user and grants; the password of
the pre-migration Secret still logs in and the Secret still holds it; nothing of the claims' shape is left.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbops_api.registry import API_VERSION
from dbops_local.migrate_namespaced import NAMESPACED_API_VERSION
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, cluster, kube_name
from tests.servers import Server
from tests.test_mysql_support import can_login as maria_can_login
from tests.test_mysql_support import show_grants
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import as_user
from tests.test_pg_support import writes_during as pg_writes_during

ROOT = Path(__file__).resolve().parent.parent
DBOPS_LOCAL = shutil.which("dbops-local", path=os.path.dirname(sys.executable))


def quickstart(server: Server, namespace: str, dbname: str, username: str) -> list[dict[str, Any]]:
    """The Quick Start as claims, for `server`, with a grant on the database."""
    pg = server.engine == "postgres"

    def claim(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }

    connection = {"host": server.host, "port": server.port, "secretRef": {"name": "admin-creds"}}
    # On MariaDB, the user's databaseRef already gives it ALL PRIVILEGES on the database; a narrower database-level
    # grant would revoke what the user claim grants, on every run of either (a fight of two claims, not of the move).
    grants = (
        {"postgres": {"grants": [{"privileges": ["CONNECT", "TEMPORARY"]}]}}
        if pg
        else {"mysql": {"grants": [{"level": "database", "privileges": ["ALL PRIVILEGES"]}]}}
    )
    secret = admin_secret(server, "admin-creds")
    secret["metadata"]["namespace"] = namespace
    return [
        secret,
        claim("DatabaseInstance", "server", {"engine": server.engine, "connection": connection}),
        claim("Database", "app-db", {"instanceRef": {"name": "server"}, "name": dbname}),
        claim(
            "DatabaseUser",
            "app-user",
            {
                "instanceRef": {"name": "server"},
                "databaseRef": {"name": "app-db"},
                "username": username,
                "passwordSecret": {"generate": True, "secretName": "app-db-credentials"},
            },
        ),
        claim(
            "DatabaseGrant",
            "app-grant",
            {"userRef": {"name": "app-user"}, "databaseRef": {"name": "app-db"}, **grants},
        ),
    ]


def exported(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as `kubectl get -o yaml` prints it: with the server's bookkeeping and status."""
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("resourceVersion", "4711")
    out["metadata"].setdefault("finalizers", ["finalizer.apiextensions.crossplane.io"])
    return out


def migrate(tmp_path: Path, docs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """`dbops-local migrate-to-namespaced` as a user runs it, on a `kubectl get -o yaml` List."""
    assert DBOPS_LOCAL is not None, f"dbops-local is not installed next to {sys.executable}"
    given = tmp_path / "claims.yaml"
    given.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}))
    done = subprocess.run(
        [DBOPS_LOCAL, "migrate-to-namespaced", "-f", str(given)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d], done.stderr


def server_state(server: Server, dbname: str, username: str) -> Any:
    if server.engine == "postgres":
        return {
            "role": server.query(
                "SELECT oid, rolcanlogin, rolpassword, rolconnlimit, rolvaliduntil FROM pg_authid "
                "WHERE rolname = %s",
                (username,),
            ),
            "database": server.query(
                "SELECT oid, datdba::regrole::text, datacl::text[] FROM pg_database WHERE datname = %s",
                (dbname,),
            ),
        }
    return {
        "account": server.query(
            "SELECT User, Host, Priv FROM mysql.global_priv WHERE User = %s", (username,)
        ),
        "grants": show_grants(server, username),
        "database": server.query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (dbname,)
        ),
    }


def logs_in(server: Server, username: str, password: str, dbname: str) -> bool:
    if server.engine == "postgres":
        return as_user(server, username, password, "SELECT 1", database=dbname) == (True, "")
    return bool(maria_can_login(server, username, password))


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_move_from_claims_to_namespaced_xrs_keeps_everything_and_writes_nothing(
    function_client: FunctionClient, server: Server, tmp_path: Path
) -> None:
    namespace, dbname, username = kube_name("mig"), unique("migdb"), unique("mig_u")
    writes_during = pg_writes_during if server.engine == "postgres" else maria_writes_during
    c = cluster(function_client)
    claims = quickstart(server, namespace, dbname, username)
    c.apply(claims)
    c.reconcile()
    assert {o["status"]["phase"] for o in c.claims()} == {"Ready"}, [o["status"] for o in c.claims()]
    secret = c.store.get("v1", "Secret", "app-db-credentials", namespace)
    assert secret is not None and secret["metadata"].get("ownerReferences"), "composed by the legacy XR"
    password = c.secret_data("app-db-credentials", namespace)["password"]
    before = server_state(server, dbname, username)
    assert logs_in(server, username, password, dbname)

    # 1. Export and convert (the claims as the cluster shows them, status and all).
    xrs, report = migrate(tmp_path, [exported(o) for o in c.claims()])
    assert report == "", "the Quick Start has no claim-only field"
    assert sorted((x["kind"], x["metadata"]["name"]) for x in xrs) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in claims if o["kind"] != "Secret"
    )
    assert {x["apiVersion"] for x in xrs} == {NAMESPACED_API_VERSION}
    assert {x["metadata"]["namespace"] for x in xrs} == {namespace}
    assert all("status" not in x and "resourceVersion" not in x["metadata"] for x in xrs)

    # 2. Release the credentials Secret: its owner reference to the legacy XR removed (the XR is paused first on
    # a cluster, so that Crossplane does not put it back; dbops-local reconciles only when asked).
    released = copy.deepcopy(secret)
    del released["metadata"]["ownerReferences"]
    c.store.put(released)

    # 3. The plan of the namespaced XRs, with the admin Secret and the released credentials Secret: empty.
    planner = cluster(function_client, plan_only=True)

    def plan() -> dict[str, list[str] | str]:
        planner.apply([claims[0], released, *xrs])
        planner.reconcile()
        return planner.plans

    plans, planned_writes = writes_during(server, plan)
    assert planned_writes == [], "a plan writes nothing"
    assert sorted(plans) == ["Database/app-db", "DatabaseGrant/app-grant", "DatabaseUser/app-user"]
    assert {k: [line for line in v if not line.startswith("-- ")] for k, v in plans.items()} == {
        k: [] for k in plans
    }, plans

    # 4. Delete the claims (their XRs and Jobs go; the released Secret stays), then apply the namespaced XRs.
    def move() -> list[dict[str, Any]]:
        for claim in reversed(claims[1:]):
            c.delete(claim["kind"], claim["metadata"]["name"], namespace, API_VERSION)
        assert c.claims() == [] or all(o["apiVersion"] != API_VERSION for o in c.claims())
        assert c.secret_data("app-db-credentials", namespace)["password"] == password
        c.apply(xrs)
        c.reconcile()
        return c.claims()

    after_xrs, writes = writes_during(server, move)
    assert {(o["apiVersion"], o["status"]["phase"]) for o in after_xrs} == {
        (NAMESPACED_API_VERSION, "Ready")
    }, [(o["kind"], o["status"]) for o in after_xrs]
    assert [w.text for w in writes] == [], "the namespaced XRs are the same owner: nothing to write"

    # Nothing of the claims' shape is left; the Secret is the namespaced XR's now, with the same password.
    left = [o for o in c.store.all() if o["apiVersion"].startswith(API_VERSION.split("/")[0] + "/")]
    assert left == [], [(o["kind"], o["metadata"]["name"]) for o in left]
    secret = c.store.get("v1", "Secret", "app-db-credentials", namespace)
    assert secret is not None
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["name"]) == (
        NAMESPACED_API_VERSION,
        "DatabaseUser",
        "app-user",
    )
    assert c.secret_data("app-db-credentials", namespace)["password"] == password
    assert logs_in(server, username, password, dbname)
    assert server_state(server, dbname, username) == before

    # A second run writes nothing either.
    _, again = writes_during(server, c.reconcile)
    assert again == []
