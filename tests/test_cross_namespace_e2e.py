"""Cross-namespace instances end to end (docs/function.md "Cross-namespace instances"): a DatabaseInstance claim
in namespace `platform` (with the admin Secret) and claims in a tenant namespace naming it, through the offline
loop (`dbops_local`, which composes as Crossplane does) on the private PostgreSQL and MariaDB servers. What a
platform team checks: the catalog, every Job's namespace and every Secret it can read, the claims' status, and the
statement log while consent is withdrawn."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, condition, instance_claim
from tests.servers import Server

PLATFORM = "platform"


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["namespace"] = namespace
    return out


def namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def mounted_secrets(job: dict[str, Any]) -> set[str]:
    """Every Secret a Job's Pod can read (env secretKeyRef, envFrom, secret and projected volumes), by name; a Pod
    reads Secrets of its own namespace only."""
    pod = job["spec"]["template"]["spec"]
    out: set[str] = set()
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                out.add(ref["name"])
        out |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            out.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                out.add(source["secret"]["name"])
    return out


def jobs_by_namespace(c: OfflineCluster) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in c.store.all():
        if obj.get("kind") == "Job":
            out.setdefault(obj["metadata"]["namespace"], []).append(obj)
    return out


def database_exists(server: Server, name: str) -> bool:
    if server.engine == "postgres":
        return bool(server.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))
    return bool(server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)))


def status(c: OfflineCluster, kind: str, name: str, ns: str) -> dict[str, Any]:
    return dict(c.claim(kind, name, ns).get("status", {}))


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
@pytest.mark.parametrize("consent", ["names", "selector"])
def test_consent_given_ready_jobs_in_the_instances_namespace_withdrawn_nothing_dropped(
    function_client: FunctionClient, server: Server, consent: str
) -> None:
    tenant = unique("team").replace("_", "-")
    dbname = unique("xns")
    username = unique("xu")
    c = cluster(function_client)
    allowed = (
        {"names": [tenant]} if consent == "names" else {"selector": {"matchLabels": {"dbops/tenant": "yes"}}}
    )
    c.apply(
        [
            namespace(tenant, {"dbops/tenant": "yes"}),
            in_namespace(admin_secret(server, "admin"), PLATFORM),
            in_namespace(instance_claim(server, "shared", "admin", allowedNamespaces=allowed), PLATFORM),
            # A Secret of the tenant's own: a Job must never be able to read it, nor any other of the tenant's.
            in_namespace(admin_secret(server, "admin", password="not-the-admin-password-1"), tenant),
            in_namespace(
                claim(
                    "Database",
                    "app",
                    {
                        "instanceRef": {"name": "shared", "namespace": PLATFORM},
                        "name": dbname,
                        "deletionProtection": False,
                    },
                ),
                tenant,
            ),
            in_namespace(
                claim(
                    "DatabaseUser",
                    "app-user",
                    {
                        "instanceRef": {"name": "shared", "namespace": PLATFORM},
                        "databaseRef": {"name": "app"},
                        "username": username,
                        "deletionProtection": False,
                    },
                ),
                tenant,
            ),
        ]
    )
    c.reconcile()
    app = status(c, "Database", "app", tenant)
    assert app["phase"] == "Ready", app
    assert database_exists(server, dbname)
    assert status(c, "DatabaseUser", "app-user", tenant)["phase"] == "Ready"
    credentials = c.secret_data("app-user-credentials", tenant)
    assert credentials["username"] == username
    conn = server.connect(user=username, password=credentials["password"], database=None)  # a real login
    conn.close()
    assert condition(c.claim("Database", "app", tenant), "InstanceReady")["message"] == (
        f"DatabaseInstance {PLATFORM}/shared is Ready"
    )

    # Where each Job ran and what it could read: every Job in platform, reading platform's admin Secret and, for
    # the user, the copy of its own password composed there; nothing of the tenant's namespace.
    jobs = jobs_by_namespace(c)
    assert set(jobs) == {PLATFORM}, {ns: [j["metadata"]["name"] for j in js] for ns, js in jobs.items()}
    platform_secrets = {
        o["metadata"]["name"]: o
        for o in c.store.all()
        if o.get("kind") == "Secret" and o["metadata"].get("namespace") == PLATFORM
    }
    mounted = {
        job["metadata"]["labels"]["crossplane.io/claim-name"]: mounted_secrets(job) for job in jobs[PLATFORM]
    }
    copies = {n for n in platform_secrets if n.endswith("-password")}
    assert len(copies) == 1 and mounted == {
        "shared": {"admin"},
        "app": {"admin"},
        "app-user": {"admin", *copies},
    }
    [copied] = copies
    assert set(platform_secrets[copied]["data"]) == {"password"}
    tenant_secrets = {
        o["metadata"]["name"]
        for o in c.store.all()
        if o.get("kind") == "Secret" and o["metadata"].get("namespace") == tenant
    }
    assert tenant_secrets == {"admin", "app-user-credentials"}, (
        "nothing of platform is in the tenant's namespace"
    )

    # Consent withdrawn (and then the tenant asks for a drop): the claim says so; the server sees no write.
    mark = server.log.mark()  # type: ignore[union-attr]
    c.apply([in_namespace(instance_claim(server, "shared", "admin"), PLATFORM)])
    c.reconcile()
    app = status(c, "Database", "app", tenant)
    assert app["phase"] == "Pending"
    assert f"DatabaseInstance {PLATFORM}/shared does not allow namespace {tenant}" in app["message"]
    ready = condition(c.claim("Database", "app", tenant), "InstanceReady")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotAllowed")
    assert status(c, "DatabaseUser", "app-user", tenant)["phase"] == "Pending"
    assert c.secret_data("app-user-credentials", tenant) == credentials, "the tenant keeps its Secret"
    conn = server.connect(user=username, password=credentials["password"], database=None)  # and its login
    conn.close()
    c.apply(
        [
            in_namespace(
                claim(
                    "Database",
                    "app",
                    {
                        "instanceRef": {"name": "shared", "namespace": PLATFORM},
                        "name": dbname,
                        "deletionProtection": False,
                        "deletionPolicy": "Delete",
                        "ensure": "Absent",
                    },
                ),
                tenant,
            )
        ]
    )
    c.reconcile()
    assert status(c, "Database", "app", tenant)["phase"] == "Pending"
    c.delete("Database", "app", tenant)
    c.reconcile()
    writes = [s.text for s in server.log.writes_since(mark)]  # type: ignore[union-attr]
    assert not [w for w in writes if "drop" in w.lower()], writes
    assert database_exists(server, dbname), "nothing is dropped while consent is withdrawn, nor on deletion"


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_no_consent_no_job_and_a_namespaced_xr_is_refused(
    function_client: FunctionClient, server: Server
) -> None:
    tenant = unique("team").replace("_", "-")
    c = cluster(function_client)
    c.apply(
        [
            namespace(tenant, {"tier": "web"}),
            in_namespace(admin_secret(server, "admin"), PLATFORM),
            in_namespace(
                instance_claim(
                    server, "shared", "admin", allowedNamespaces={"selector": {"matchLabels": {"tier": "db"}}}
                ),
                PLATFORM,
            ),
            in_namespace(
                claim(
                    "Database", "app", {"instanceRef": {"name": "shared", "namespace": PLATFORM}, "name": "x"}
                ),
                tenant,
            ),
            {
                "apiVersion": "ns.dbops.dbprovision.io/v1alpha1",
                "kind": "Database",
                "metadata": {"name": "nsapp", "namespace": tenant},
                "spec": {"instanceRef": {"name": "shared", "namespace": PLATFORM}, "name": "y"},
            },
        ]
    )
    c.reconcile()
    app = status(c, "Database", "app", tenant)
    assert app["phase"] == "Pending"
    assert "matches neither by name nor by labels" in app["message"]
    nsapp = c.claim("Database", "nsapp", tenant, api_version="ns.dbops.dbprovision.io/v1alpha1")["status"]
    assert nsapp["phase"] == "Failed" and "use a claim (group dbops.dbprovision.io)" in nsapp["message"]
    assert set(jobs_by_namespace(c)) == {PLATFORM}  # the instance's own check only
    assert [
        j["metadata"]["labels"].get("crossplane.io/claim-name") for j in jobs_by_namespace(c)[PLATFORM]
    ] == ["shared"]
