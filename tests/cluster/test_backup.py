"""Backup and restore on the real control plane (issue 14): a DatabaseBackup claim of a Database with rows, to the
private S3-compatible store (versitygw over TLS on 127.0.0.1, which the process node's Pods share), zstd and
AES-256-GCM with the key from a Secret, reaches `Completed` through a batch/v1 Job the real Job controller ran; a
DatabaseRestore from it into a second, empty Database claim reaches `Completed`, and the rows are the same."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import GROUP, MEASURED, conditions, namespace, wait_claim
from tests.conftest import unique
from tests.object_store import ObjectStore
from tests.servers import Server
from tools.cluster.kube import Kube, Obj

KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes 0..31
ROWS = 500


def secret(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def dbops(kind: str, name: str, spec: dict[str, Any]) -> Obj:
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name}, "spec": spec}


def rows(server: Server, database: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in server.query("SELECT id, note FROM t ORDER BY id", database=database)]


def phase_is(phase: str) -> Any:
    return lambda o: o.get("status", {}).get("phase") in (phase, "Failed")


def assert_run_by_the_job_controller(kube: Kube, name: str, ns: str) -> None:
    """The claim's Job is a batch/v1 Job that completed, and its Pod was made by the Job controller (owned by the
    Job, labelled with its controller uid, which the API server put in the Job's selector)."""
    job = kube.get("batch/v1", "Job", name, ns)
    assert job is not None, f"no Job {ns}/{name}"
    assert job["status"].get("succeeded") == 1, job["status"]
    assert conditions(job).get("Complete", {}).get("status") == "True", job["status"]
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == uid
    pods = kube.list("v1", "Pod", ns, labels=f"batch.kubernetes.io/controller-uid={uid}")
    assert pods, f"no Pod of Job {name}"
    owners = [
        (o["kind"], o["name"], o.get("controller")) for p in pods for o in p["metadata"]["ownerReferences"]
    ]
    assert set(owners) == {("Job", name, True)}, owners
    assert "Succeeded" in {p["status"].get("phase") for p in pods}


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_backup_to_s3_then_restore_into_an_empty_database_gives_the_same_rows(
    kube: Kube, server: Server, object_store_tls: ObjectStore
) -> None:
    store = object_store_tls
    assert store.ca_path is not None
    ns = namespace(kube, f"bk-{server.engine}")
    source, target = unique("bksrc"), unique("bkdst")
    t0 = time.monotonic()
    kube.apply_all(
        [
            {
                **secret("admin", username=server.admin_user, password=server.admin_password),
                "type": "Opaque",
            },
            secret("s3-keys", AWS_ACCESS_KEY_ID=store.access_key, AWS_SECRET_ACCESS_KEY=store.secret_key),
            secret("s3-ca", **{"ca.crt": Path(store.ca_path).read_text()}),
            secret("backup-key", key=KEY_B64),
            dbops(
                "DatabaseInstance",
                "inst",
                {
                    "engine": server.engine,
                    "connection": {"host": server.host, "port": server.port, "secretRef": {"name": "admin"}},
                },
            ),
            dbops(
                "Database",
                "src",
                {"instanceRef": {"name": "inst"}, "name": source, "deletionProtection": False},
            ),
            dbops(
                "Database",
                "dst",
                {"instanceRef": {"name": "inst"}, "name": target, "deletionProtection": False},
            ),
        ],
        ns,
    )
    for name in ("src", "dst"):
        wait_claim(kube, "Database", name, ns, timeout=300)
    if server.engine == "postgres":
        server.query(
            "CREATE TABLE t (id int PRIMARY KEY, note text);"
            f"INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g",
            database=source,
        )
    else:
        server.query("CREATE TABLE t (id int PRIMARY KEY, note varchar(40))", database=source)
        server.query(f"INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_{ROWS}", database=source)

    prefix = unique("cluster")
    t1 = time.monotonic()
    kube.apply(
        dbops(
            "DatabaseBackup",
            "nightly",
            {
                "databaseRef": {"name": "src"},
                "storage": {
                    "type": "s3",
                    "s3": {
                        "endpoint": store.endpoint,
                        "bucket": store.bucket,
                        "prefix": prefix,
                        "region": store.region,
                        "forcePathStyle": True,
                        "secretRef": {
                            "name": "s3-keys",
                            "keys": {"accessKey": "AWS_ACCESS_KEY_ID", "secretKey": "AWS_SECRET_ACCESS_KEY"},
                        },
                        "caSecretRef": {"name": "s3-ca", "key": "ca.crt"},
                    },
                },
                "compression": {"algorithm": "zstd"},
                "encryption": {"enabled": True, "secretRef": {"name": "backup-key", "key": "key"}},
            },
        ),
        ns,
    )
    backup = wait_claim(
        kube, "DatabaseBackup", "nightly", ns, phase_is("Completed"), timeout=300, what="Completed"
    )["status"]
    assert backup["phase"] == "Completed", backup
    MEASURED[f"backup {server.engine}: apply to Completed"] = time.monotonic() - t1
    facts = backup["backup"]
    assert facts["database"] == source and facts["encryption"] == "aes-256-gcm", facts
    assert facts["uri"].startswith(f"s3://{store.bucket}/{prefix}/nightly/"), facts
    manifest = json.loads(store.object_path(f"{prefix}/nightly/manifest.json").read_text())
    assert manifest["sha256"] == facts["sha256"] and manifest["database"] == source
    assert_run_by_the_job_controller(kube, backup["job"], ns)
    job = kube.get("batch/v1", "Job", backup["job"], ns)
    for value in (store.secret_key, KEY_B64, server.admin_password):
        assert value not in json.dumps(backup) and value not in json.dumps(job)

    t2 = time.monotonic()
    kube.apply(
        dbops(
            "DatabaseRestore",
            "restore",
            {"backupRef": {"name": "nightly"}, "target": {"databaseRef": {"name": "dst"}}},
        ),
        ns,
    )
    restored = wait_claim(
        kube, "DatabaseRestore", "restore", ns, phase_is("Completed"), timeout=300, what="Completed"
    )["status"]
    assert restored["phase"] == "Completed", restored
    MEASURED[f"restore {server.engine}: apply to Completed"] = time.monotonic() - t2
    MEASURED[f"backup round trip {server.engine}: claims applied to restored"] = time.monotonic() - t0
    assert restored["restore"]["database"] == target and restored["restore"]["sourceDatabase"] == source
    assert_run_by_the_job_controller(kube, restored["job"], ns)
    assert rows(server, target) == rows(server, source) and len(rows(server, target)) == ROWS
