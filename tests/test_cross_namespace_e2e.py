"""Cross-namespace instances end to end (docs/function.md "Cross-namespace instances"): a DatabaseInstance claim
in namespace `platform` (with the admin Secret) and claims in a tenant namespace naming it, through the offline
loop (`dbops_local`, which composes as Crossplane does) on the private PostgreSQL and MariaDB servers. What a
platform team checks: the catalog, every Job's namespace and every Secret it can read, the claims' status, and the
statement log while consent is withdrawn."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.object_store import ObjectStore
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


KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes 0..31


def string_secret(name: str, ns: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "stringData": data,
    }


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_a_tenants_backup_runs_in_the_instances_namespace_on_a_copy_of_its_keys_and_restores(
    function_client: FunctionClient, server: Server, object_store_tls: ObjectStore
) -> None:
    """A tenant backs up its Database on the platform's instance to its own S3 bucket: the Job runs in platform
    with platform's admin Secret and a copy of only the keys it reads of the tenant's Secrets; the stored backup
    restores (a DatabaseRestore of the tenant, whose Job runs in platform as well) with the same rows."""
    store = object_store_tls
    assert store.ca_path is not None
    tenant = unique("team").replace("_", "-")
    source, target = unique("xbsrc"), unique("xbdst")
    c = cluster(function_client)
    ca = Path(store.ca_path).read_text()
    tenant_keys = {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
    c.apply(
        [
            namespace(tenant, {}),
            in_namespace(admin_secret(server, "admin"), PLATFORM),
            in_namespace(
                instance_claim(server, "shared", "admin", allowedNamespaces={"names": [tenant]}), PLATFORM
            ),
            string_secret("s3-keys", tenant, **tenant_keys, unrelated="must-not-be-copied"),
            string_secret("s3-ca", tenant, **{"ca.crt": ca}),
            string_secret("backup-key", tenant, key=KEY_B64),
            in_namespace(
                claim(
                    "Database",
                    "app",
                    {"instanceRef": {"name": "shared", "namespace": PLATFORM}, "name": source},
                ),
                tenant,
            ),
        ]
    )
    c.reconcile()
    assert status(c, "Database", "app", tenant)["phase"] == "Ready"
    server.query(
        "CREATE TABLE t (id int PRIMARY KEY, note text);"
        "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 300) g",
        database=source,
    )
    prefix = unique("xns")
    s3 = {
        "endpoint": store.endpoint,
        "bucket": store.bucket,
        "prefix": prefix,
        "region": store.region,
        "forcePathStyle": True,
        "secretRef": {"name": "s3-keys"},
        "caSecretRef": {"name": "s3-ca"},
    }
    encryption = {"enabled": True, "secretRef": {"name": "backup-key", "key": "key"}}
    backup_spec = {
        "databaseRef": {"name": "app"},
        "storage": {"type": "s3", "s3": s3},
        "encryption": encryption,
    }
    c.apply([in_namespace(claim("DatabaseBackup", "nightly", backup_spec), tenant)])
    c.reconcile()
    backup = status(c, "DatabaseBackup", "nightly", tenant)
    assert backup["phase"] == "Completed", backup
    assert backup["backup"]["database"] == source

    # Where the Job ran and what it read: platform's admin Secret and the copy, in platform; the copy's keys are
    # the four it reads, and it is gone once the backup completed; nothing of platform is in the tenant's namespace.
    jobs = jobs_by_namespace(c)
    assert set(jobs) == {PLATFORM}
    [job] = [j for j in jobs[PLATFORM] if j["metadata"]["labels"]["crossplane.io/claim-name"] == "nightly"]
    [copied] = [n for n in mounted_secrets(job) if n.endswith("-backup-secrets")]
    assert mounted_secrets(job) == {"admin", copied}
    read = {
        item["key"]
        for volume in job["spec"]["template"]["spec"]["volumes"]
        if (volume.get("secret") or {}).get("secretName") == copied
        for item in volume["secret"]["items"]
    }
    assert read == {"access-key", "secret-key", "ca.crt", "key"}
    assert c.store.get("v1", "Secret", copied, PLATFORM) is None, "the copy lives only while the Job needs it"
    assert not [
        o["metadata"]["name"]
        for o in c.store.all()
        if o.get("kind") == "Secret"
        and o["metadata"].get("namespace") == PLATFORM
        and "unrelated" in o.get("data", {})
    ], "a key the Job does not read is never copied"
    tenant_secrets = {
        o["metadata"]["name"]
        for o in c.store.all()
        if o.get("kind") == "Secret" and o["metadata"].get("namespace") == tenant
    }
    assert tenant_secrets == {"s3-keys", "s3-ca", "backup-key"}
    for value in (store.secret_key, KEY_B64, server.admin_password):
        assert value not in json.dumps(backup) and value not in json.dumps(job)

    # The stored backup restores, from a DatabaseRestore of the tenant into another of its Databases on the same
    # instance: its Job too runs in platform, on its own copy.
    c.apply(
        [
            in_namespace(
                claim(
                    "Database",
                    "dst",
                    {"instanceRef": {"name": "shared", "namespace": PLATFORM}, "name": target},
                ),
                tenant,
            ),
            in_namespace(
                claim(
                    "DatabaseRestore",
                    "restore",
                    {"backupRef": {"name": "nightly"}, "target": {"databaseRef": {"name": "dst"}}},
                ),
                tenant,
            ),
        ]
    )
    c.reconcile()
    restored = status(c, "DatabaseRestore", "restore", tenant)
    assert restored["phase"] == "Completed", restored
    assert set(jobs_by_namespace(c)) == {PLATFORM}
    count = "SELECT count(*) FROM t"
    assert server.query(count, database=target) == server.query(count, database=source) == [(300,)]

    # A schedule of the tenant: its CronJob is in platform, and a run (started by hand) publishes a backup.
    c.apply(
        [
            in_namespace(
                claim(
                    "DatabaseBackupSchedule",
                    "daily",
                    {"schedule": "0 3 * * *", "timezone": "UTC", "template": {"spec": backup_spec}},
                ),
                tenant,
            )
        ]
    )
    c.reconcile()
    schedule = status(c, "DatabaseBackupSchedule", "daily", tenant)
    assert schedule["phase"] == "Ready", schedule
    cronjob = c.store.get("batch/v1", "CronJob", "daily", PLATFORM)
    assert cronjob is not None and c.store.get("batch/v1", "CronJob", "daily", tenant) is None
    [schedule_copy] = [
        n for n in mounted_secrets(cronjob["spec"]["jobTemplate"]) if n.endswith("-backup-secrets")
    ]
    assert mounted_secrets(cronjob["spec"]["jobTemplate"]) == {"admin", schedule_copy}
    kept = c.store.get("v1", "Secret", schedule_copy, PLATFORM)
    assert kept is not None and set(kept["data"]) == {"access-key", "secret-key", "ca.crt", "key"}
    c.run_cronjob("daily", "daily-29000000", namespace=PLATFORM)
    c.reconcile()
    assert Path(store.object_path(f"{prefix}/daily-29000000/manifest.json")).exists()
