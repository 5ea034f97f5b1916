"""DatabaseBackup and DatabaseRestore end to end through dbops-local: claims -> the function -> the worker's
backup and restore Jobs run locally -> the real servers and the real S3-compatible store (versitygw over TLS).

A Database with a table is backed up (zstd, AES-256-GCM, the store's CA and keys from Secrets mounted as files);
the claim is Completed with the manifest in the bucket, and a DatabaseRestore into another, empty Database gives
the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import run_worker, unique
from tests.object_store import ObjectStore
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server

pytestmark = pytest.mark.slow

KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # base64 of bytes 0..31


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": data,
    }


def rows(server: Server, database: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in server.query("SELECT id, note FROM t ORDER BY id", database=database)]


def test_backup_then_restore_into_an_empty_database_gives_the_same_rows(
    function_client: FunctionClient, server: Server, object_store_tls: ObjectStore
) -> None:
    store = object_store_tls
    assert store.ca_path is not None
    source, target = unique("bksrc"), unique("bkdst")
    admin, inst = kube_name("admin"), kube_name("inst")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(server, admin),
            secret("s3-keys", AWS_ACCESS_KEY_ID=store.access_key, AWS_SECRET_ACCESS_KEY=store.secret_key),
            secret("s3-ca", **{"ca.crt": Path(store.ca_path).read_text()}),
            secret("backup-key", key=KEY_B64),
            instance_claim(server, inst, admin),
            claim("Database", "src", {"instanceRef": {"name": inst}, "name": source}),
            claim("Database", "dst", {"instanceRef": {"name": inst}, "name": target}),
        ]
    )
    c.reconcile()
    assert c.claim("Database", "src")["status"]["phase"] == "Ready"
    if server.engine == "postgres":
        server.query(
            "CREATE TABLE t (id int PRIMARY KEY, note text);"
            "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g",
            database=source,
        )
    else:
        server.query("CREATE TABLE t (id int PRIMARY KEY, note varchar(40))", database=source)
        server.query("INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_500", database=source)
    prefix = unique("e2e")
    backup_name = kube_name("nightly")
    c.apply(
        [
            claim(
                "DatabaseBackup",
                backup_name,
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
                            "secretRef": {"name": "s3-keys"},
                            "caSecretRef": {"name": "s3-ca"},
                        },
                    },
                    "compression": {"algorithm": "zstd"},
                    "encryption": {"enabled": True, "secretRef": {"name": "backup-key", "key": "key"}},
                },
            )
        ]
    )
    c.reconcile()
    backup = c.claim("DatabaseBackup", backup_name)["status"]
    assert backup["phase"] == "Completed", backup
    facts = backup["backup"]
    assert facts["database"] == source and facts["encryption"] == "aes-256-gcm"
    assert facts["uri"].startswith(f"s3://{store.bucket}/{prefix}/{backup_name}/")
    assert len(facts["sha256"]) == 64 and facts["storedBytes"] > 0 and facts["sizeBytes"] > 0
    manifest = json.loads(store.object_path(f"{prefix}/{backup_name}/manifest.json").read_text())
    assert manifest["sha256"] == facts["sha256"] and manifest["database"] == source
    # No secret in the status or the Job's request.
    for value in (store.secret_key, KEY_B64, server.admin_password):
        assert value not in json.dumps(backup)
    job = c.store.get("batch/v1", "Job", backup["job"], "default")
    assert job is not None
    assert store.secret_key not in json.dumps(job) and KEY_B64 not in json.dumps(job)

    # Another reconcile runs nothing again: the published backup stays, its Job stays.
    c.reconcile()
    again = c.claim("DatabaseBackup", backup_name)["status"]
    assert again["phase"] == "Completed" and again["job"] == backup["job"]

    c.apply(
        [
            claim(
                "DatabaseRestore",
                "restore",
                {"backupRef": {"name": backup_name}, "target": {"databaseRef": {"name": "dst"}}},
            )
        ]
    )
    c.reconcile()
    restored = c.claim("DatabaseRestore", "restore")["status"]
    assert restored["phase"] == "Completed", restored
    assert restored["restore"]["database"] == target and restored["restore"]["sourceDatabase"] == source
    assert rows(server, target) == rows(server, source) and len(rows(server, target)) == 500


def test_restore_of_a_backup_never_published_fails_permanently(
    function_client: FunctionClient, pg: Server, object_store_tls: ObjectStore
) -> None:
    """fromPath names a backup that does not exist: the worker says so, permanently, and writes nothing."""
    store = object_store_tls
    admin, inst, target = kube_name("admin"), kube_name("inst"), unique("bkdst")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(pg, admin),
            secret("s3-keys", AWS_ACCESS_KEY_ID=store.access_key, AWS_SECRET_ACCESS_KEY=store.secret_key),
            secret("s3-ca", **{"ca.crt": Path(str(store.ca_path)).read_text()}),
            instance_claim(pg, inst, admin),
            claim("Database", "dst", {"instanceRef": {"name": inst}, "name": target}),
            claim(
                "DatabaseRestore",
                "restore",
                {
                    "fromPath": {
                        "storage": {
                            "type": "s3",
                            "s3": {
                                "endpoint": store.endpoint,
                                "bucket": store.bucket,
                                "prefix": unique("none"),
                                "region": store.region,
                                "forcePathStyle": True,
                                "secretRef": {"name": "s3-keys"},
                                "caSecretRef": {"name": "s3-ca"},
                            },
                        },
                        "backupPath": "never-made",
                    },
                    "target": {"databaseRef": {"name": "dst"}},
                },
            ),
        ]
    )
    c.reconcile()
    restored = c.claim("DatabaseRestore", "restore")["status"]
    assert restored["phase"] == "Failed", restored
    assert "there is no published backup named 'never-made'" in restored["message"], restored
    assert "resync" not in restored["message"], "a restore runs once: no resync will fix it"
    assert pg.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", database=target
    ) == [(0,)]


def test_a_schedule_is_a_cronjob_whose_runs_are_backups_of_their_own(
    function_client: FunctionClient, pg: Server, object_store_tls: ObjectStore, tmp_path: Path
) -> None:
    """dbops-local applies the CronJob (it does not run it on schedule); its job template, run as the CronJob's
    Jobs would run it, publishes one backup per Job name, and refuses to run without one."""
    store = object_store_tls
    admin, inst, source = kube_name("admin"), kube_name("inst"), unique("bksched")
    prefix = unique("sched")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(pg, admin),
            secret("s3-keys", AWS_ACCESS_KEY_ID=store.access_key, AWS_SECRET_ACCESS_KEY=store.secret_key),
            secret("s3-ca", **{"ca.crt": Path(str(store.ca_path)).read_text()}),
            instance_claim(pg, inst, admin),
            claim("Database", "src", {"instanceRef": {"name": inst}, "name": source}),
            claim(
                "DatabaseBackupSchedule",
                "nightly",
                {
                    "schedule": "0 3 * * *",
                    "timezone": "Europe/Berlin",
                    "template": {
                        "spec": {
                            "databaseRef": {"name": "src"},
                            "storage": {
                                "type": "s3",
                                "s3": {
                                    "endpoint": store.endpoint,
                                    "bucket": store.bucket,
                                    "prefix": prefix,
                                    "region": store.region,
                                    "forcePathStyle": True,
                                    "secretRef": {"name": "s3-keys"},
                                    "caSecretRef": {"name": "s3-ca"},
                                },
                            },
                        }
                    },
                },
            ),
        ]
    )
    c.reconcile()
    status = c.claim("DatabaseBackupSchedule", "nightly")["status"]
    assert status["phase"] == "Ready", status
    cronjob = c.store.get("batch/v1", "CronJob", "nightly", "default")
    assert cronjob is not None and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["timeZone"] == "Europe/Berlin" and cronjob["spec"]["schedule"] == "0 3 * * *"
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    request = next(e["value"] for e in container["env"] if e["name"] == "DBOPS_REQUEST")

    pg.query(
        "CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'one')", database=source
    )
    (tmp_path / "access").write_text(store.access_key)
    (tmp_path / "secret").write_text(store.secret_key)
    env = {
        "DBOPS_S3_ACCESS_KEY_FILE": str(tmp_path / "access"),
        "DBOPS_S3_SECRET_KEY_FILE": str(tmp_path / "secret"),
        "DBOPS_S3_CA_FILE": str(store.ca_path),
    }
    for run in ("nightly-29012345", "nightly-29013785"):
        done = run_worker(pg, "backup", request, env={**env, "DBOPS_JOB_NAME": run})
        assert done.code == 0, done.stdout + done.stderr
        manifest = json.loads(store.object_path(f"{prefix}/{run}/manifest.json").read_text())
        assert manifest["database"] == source
    refused = run_worker(pg, "backup", request, env=env)
    assert refused.code == 2 and "DBOPS_JOB_NAME" in refused.error["message"], refused.stdout


def test_schedule_retention_through_dbops_local_dry_run_then_for_real(
    function_client: FunctionClient, pg: Server, object_store_tls: ObjectStore
) -> None:
    """The CronJob's runs started as `kubectl create job --from=cronjob/...` would (dbops-local runs no CronJob on
    its schedule): each publishes its backup and prunes; the schedule's status shows what its latest run pruned or,
    dry, would prune; another claim's backup under the same prefix stays."""
    store = object_store_tls
    admin, inst, source = kube_name("admin"), kube_name("inst"), unique("bkret")
    prefix = unique("ret")
    s3 = {
        "endpoint": store.endpoint,
        "bucket": store.bucket,
        "prefix": prefix,
        "region": store.region,
        "forcePathStyle": True,
        "secretRef": {"name": "s3-keys"},
        "caSecretRef": {"name": "s3-ca"},
    }
    backup_spec = {"databaseRef": {"name": "src"}, "storage": {"type": "s3", "s3": s3}}

    def schedule(dry: bool) -> dict[str, Any]:
        return claim(
            "DatabaseBackupSchedule",
            "nightly",
            {
                "schedule": "0 3 * * *",
                "timezone": "Europe/Berlin",
                "template": {"spec": backup_spec},
                "retention": {"keepLast": 1, "keepDaily": 1, "dryRun": dry},
            },
        )

    c = cluster(function_client)
    c.apply(
        [
            admin_secret(pg, admin),
            secret("s3-keys", AWS_ACCESS_KEY_ID=store.access_key, AWS_SECRET_ACCESS_KEY=store.secret_key),
            secret("s3-ca", **{"ca.crt": Path(str(store.ca_path)).read_text()}),
            instance_claim(pg, inst, admin),
            claim("Database", "src", {"instanceRef": {"name": inst}, "name": source}),
            claim("DatabaseBackup", "nightly-28000000", backup_spec),  # a one-off, named like a run
            schedule(dry=True),
        ]
    )
    c.reconcile()
    assert c.claim("DatabaseBackup", "nightly-28000000")["status"]["phase"] == "Completed"

    def folders() -> set[str]:
        root = Path(store.object_path(prefix))
        return {p.name for p in root.iterdir() if p.is_dir() and any(p.iterdir())}

    for run in ("nightly-29000001", "nightly-29000002", "nightly-29000003"):
        c.run_cronjob("nightly", run)
        c.reconcile()
    status = c.claim("DatabaseBackupSchedule", "nightly")["status"]
    report = status["schedule"]["retention"]
    assert report["job"] == "nightly-29000003" and report["dryRun"] is True, report
    assert [d["name"] for d in report["wouldDelete"]] == ["nightly-29000002", "nightly-29000001"]
    assert report["wouldDeleteCount"] == 2 and report["kept"] == 1 and report["otherObjects"] == 1
    assert "retention (dry run) would delete 2 backup(s), kept 1 (Job nightly-29000003)" in status["message"]
    assert folders() == {"nightly-28000000", "nightly-29000001", "nightly-29000002", "nightly-29000003"}

    c.apply([schedule(dry=False)])
    c.reconcile()
    c.run_cronjob("nightly", "nightly-29000004")
    c.reconcile()
    status = c.claim("DatabaseBackupSchedule", "nightly")["status"]
    report = status["schedule"]["retention"]
    assert report["job"] == "nightly-29000004" and report["dryRun"] is False, report
    assert report["deletedCount"] == 3 and report["kept"] == 1
    assert "retention deleted 3 backup(s), kept 1 (Job nightly-29000004)" in status["message"]
    assert folders() == {"nightly-28000000", "nightly-29000004"}

    # The kept backup restores.
    target = unique("bkret_dst")
    c.apply(
        [
            claim("Database", "dst", {"instanceRef": {"name": inst}, "name": target}),
            claim(
                "DatabaseRestore",
                "restore",
                {
                    "fromPath": {"storage": {"type": "s3", "s3": s3}, "backupPath": "nightly-29000004"},
                    "target": {"databaseRef": {"name": "dst"}},
                },
            ),
        ]
    )
    c.reconcile()
    assert c.claim("DatabaseRestore", "restore")["status"]["phase"] == "Completed"


def pvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_backup_to_a_pvc_and_back_through_dbops_local(
    function_client: FunctionClient, server: Server, tmp_path: Path
) -> None:
    """storage.type pvc in dbops-local: the claim's volume is a directory under --volumes, its subPath created in
    it; a Pod whose claim is not applied waits, as for an unbound claim; compressed and encrypted, restored row for
    row, and a schedule's runs to the same volume pruned by retention."""
    source, target = unique("pvsrc"), unique("pvdst")
    admin, inst = kube_name("admin"), kube_name("inst")
    volumes = tmp_path / "volumes"
    c = cluster(function_client)
    c.volumes = volumes
    storage = {"type": "pvc", "pvc": {"claimName": "db-backups", "subPath": "prod/orders"}}
    backup_spec = {
        "databaseRef": {"name": "src"},
        "storage": storage,
        "compression": {"algorithm": "gzip"},
        "encryption": {"enabled": True, "secretRef": {"name": "backup-key", "key": "key"}},
    }
    c.apply(
        [
            admin_secret(server, admin),
            secret("backup-key", key=KEY_B64),
            instance_claim(server, inst, admin),
            claim("Database", "src", {"instanceRef": {"name": inst}, "name": source}),
            claim("Database", "dst", {"instanceRef": {"name": inst}, "name": target}),
            claim("DatabaseBackup", "orders-1", backup_spec),
        ]
    )
    c.reconcile()
    waiting = c.claim("DatabaseBackup", "orders-1")["status"]
    assert waiting["phase"] == "Provisioning", waiting
    assert any('persistentvolumeclaim "db-backups" not found' in e for e in c.pod_events.values()), (
        c.pod_events
    )
    assert not volumes.exists()

    if server.engine == "postgres":
        server.query(
            "CREATE TABLE t (id int PRIMARY KEY, note text);"
            "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 300) g",
            database=source,
        )
    else:
        server.query("CREATE TABLE t (id int PRIMARY KEY, note varchar(40))", database=source)
        server.query("INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_300", database=source)
    # The claim applied: the waiting Pod starts in a later round.
    c.apply([pvc("db-backups")])
    c.reconcile()
    done = c.claim("DatabaseBackup", "orders-1")["status"]
    assert done["phase"] == "Completed", done
    folder = volumes / "default" / "db-backups" / "prod" / "orders" / "orders-1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "dump" + (".pgdump" if server.engine == "postgres" else ".sql") + ".gz.enc",
        "manifest.json",
    ]
    # The request's path is translated to the volume's directory here, so the status names the local file.
    assert done["backup"]["uri"].startswith(f"file://{folder}/dump")
    assert json.loads((folder / "manifest.json").read_text())["encryption"] == "aes-256-gcm"
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}

    c.apply(
        [
            claim(
                "DatabaseRestore",
                "restore",
                {"backupRef": {"name": "orders-1"}, "target": {"databaseRef": {"name": "dst"}}},
            )
        ]
    )
    c.reconcile()
    restored = c.claim("DatabaseRestore", "restore")["status"]
    assert restored["phase"] == "Completed", restored
    assert rows(server, target) == rows(server, source) and len(rows(server, source)) == 300

    # A schedule's runs to the same volume: retention keeps the newest run and never the one-off backup's business.
    c.apply(
        [
            claim(
                "DatabaseBackupSchedule",
                "orders",
                {"schedule": "@daily", "template": {"spec": backup_spec}, "retention": {"keepLast": 1}},
            )
        ]
    )
    c.reconcile()
    for run in ("orders-29000001", "orders-29000002"):
        c.run_cronjob("orders", run)
        c.reconcile()
    report = c.claim("DatabaseBackupSchedule", "orders")["status"]["schedule"]["retention"]
    assert report["deletedCount"] == 1 and report["deleted"][0]["name"] == "orders-29000001", report
    assert sorted(p.name for p in folder.parent.iterdir()) == ["orders-1", "orders-29000002"]
