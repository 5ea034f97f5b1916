"""Retention in the worker's `backup` action (worker/backup/retention.py) against a real PostgreSQL and MariaDB, the
real dump tools, the real S3-compatible store (versitygw over TLS) and a volume directory.

A store shared with others: another schedule's backups, a one-off DatabaseBackup named like a run, an unpublished
leftover and objects that are no backup at all sit under the same prefix; retention deletes only this schedule's
published backups the policy does not keep, never the newest, and a dry run writes and deletes nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import request_for, run_worker
from tests.object_store import ObjectStore
from tests.servers import Server
from tests.test_backup import make_database, s3_env

pytestmark = pytest.mark.slow

OWNER = "default/nightly"


class Store:
    """One storage (S3 prefix or volume directory): the request's block, the worker's env, and the files as the
    test sees them (versitygw keeps objects as files)."""

    def __init__(self, kind: str, tmp_path: Path, object_store: ObjectStore | None) -> None:
        self.env: dict[str, str] = {}
        if kind == "volume":
            self.root = tmp_path / "volume"
            self.root.mkdir()
            self.block: dict[str, Any] = {"type": "volume", "volume": {"path": str(self.root)}}
            return
        assert object_store is not None
        prefix = f"retention-{uuid.uuid4().hex[:8]}"
        self.root = Path(object_store.object_path(prefix))
        s3 = {
            "endpoint": object_store.endpoint,
            "bucket": object_store.bucket,
            "prefix": prefix,
            "region": object_store.region,
            "forcePathStyle": True,
        }
        self.block = {"type": "s3", "s3": s3}
        self.env = s3_env(object_store, tmp_path)

    def files(self) -> dict[str, bytes]:
        if not self.root.exists():
            return {}
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }

    def folders(self) -> set[str]:
        return {key.split("/")[0] for key in self.files() if "/" in key}

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def backup(
    server: Server,
    store: Store,
    database: str,
    job: str,
    retention: dict[str, Any] | None = None,
    schedule: str = OWNER,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "database": database,
        "name": "nightly",
        "storage": store.block,
        "perRun": True,
        "schedule": schedule,
    }
    if retention is not None:
        spec["retention"] = {"timeZone": "Europe/Berlin", **retention}
    done = run_worker(
        server,
        "backup",
        request_for(server, "DatabaseBackup", spec),
        env={**store.env, "DBOPS_JOB_NAME": job},
    )
    assert done.code == 0, done.stdout + done.stderr
    return done.result


@pytest.fixture(params=["s3", "volume"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "s3":
        return Store("s3", tmp_path, request.getfixturevalue("object_store_tls"))
    return Store("volume", tmp_path, None)


def test_retention_deletes_only_this_schedules_backups_and_a_dry_run_nothing(
    server: Server, store: Store
) -> None:
    database = make_database(server, rows=50)
    # What else lives under the prefix: none of it is ever touched.
    foreign = {
        "README.txt": b"not a backup",
        "someone-else/data.bin": b"\x00" * 10,
        "nightly-28999998/dump.sql.zst": b"a run killed before it cleaned up",  # no manifest: unpublished
    }
    for key, data in foreign.items():
        store.put(key, data)
    backup(server, store, database, "other-29000000", schedule="default/other")  # another schedule's run
    # A one-off backup named like a run of this schedule: its manifest names no schedule.
    one_off = request_for(
        server, "DatabaseBackup", {"database": database, "name": "nightly-28999999", "storage": store.block}
    )
    assert run_worker(server, "backup", one_off, env=store.env).code == 0
    untouchable = {k: v for k, v in store.files().items()}

    # Three runs with a dry run of keepLast 2: the third would delete the first, and deletes nothing.
    for n in (1, 2):
        result = backup(server, store, database, f"nightly-2900000{n}", {"keepLast": 2, "dryRun": True})
        assert result["observed"]["retention"]["wouldDeleteCount"] == 0
    before = store.files()
    result = backup(server, store, database, "nightly-29000003", {"keepLast": 2, "dryRun": True})
    after = store.files()
    new = {k for k in after if k.startswith("nightly-29000003/")}
    assert {k: v for k, v in after.items() if k not in new} == before, "a dry run writes and deletes nothing"
    report = result["observed"]["retention"]
    assert report["dryRun"] is True and report["kept"] == 2 and report["wouldDeleteCount"] == 1
    assert [d["name"] for d in report["wouldDelete"]] == ["nightly-29000001"]
    assert report["wouldDelete"][0]["why"] == "selected by no keep rule"
    assert report["unpublished"] == ["nightly-28999998"]
    assert report["otherObjects"] == 3  # someone-else, the other schedule's run, the one-off backup
    assert any(c.startswith("retention would delete ") for c in result["changes"])

    # The fourth run for real: the two oldest runs go, data and manifest; everything else stays byte for byte.
    result = backup(server, store, database, "nightly-29000004", {"keepLast": 2})
    report = result["observed"]["retention"]
    assert report["dryRun"] is False and report["deletedCount"] == 2 and report["kept"] == 2
    assert [d["name"] for d in report["deleted"]] == ["nightly-29000002", "nightly-29000001"]
    files = store.files()
    assert {k: v for k, v in files.items() if k in untouchable} == untouchable
    assert {f for f in store.folders() if f.startswith("nightly-29")} == {
        "nightly-29000003",
        "nightly-29000004",
    }
    for run in ("nightly-29000003", "nightly-29000004"):
        manifest = json.loads(files[f"{run}/manifest.json"])
        assert manifest["schedule"] == OWNER and f"{run}/{manifest['object']}" in files
    if store.block["type"] == "volume":
        assert not (store.root / "nightly-29000001").exists(), "the emptied directory goes too"

    # keepLast 0: the newest (this run's) is never deleted.
    result = backup(server, store, database, "nightly-29000005", {"keepLast": 0})
    assert result["observed"]["retention"]["kept"] == 1
    assert {f for f in store.folders() if f.startswith("nightly-29")} == {"nightly-29000005"}
    assert {k: v for k, v in store.files().items() if k in untouchable} == untouchable


def test_a_half_done_deletion_is_finished_by_the_next_run_and_max_age(pg: Server, store: Store) -> None:
    database = make_database(pg, rows=20)
    for n in (1, 2):
        backup(pg, store, database, f"nightly-2900000{n}")  # no retention yet
    # A run killed in the middle of deleting nightly-29000001: marker written, manifest gone, data still there.
    store.put("nightly-29000001/deleting.json", json.dumps({"schedule": OWNER}).encode())
    (store.root / "nightly-29000001" / "manifest.json").unlink()
    # Another schedule's half-done deletion is not this one's to finish.
    store.put("nightly-29000000/deleting.json", json.dumps({"schedule": "default/other"}).encode())
    store.put("nightly-29000000/dump.pgdump.zst", b"theirs")
    # nightly-29000002 is a year old: maxAge deletes it although keepLast would keep it.
    path = store.root / "nightly-29000002" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "finished_at": "2025-12-01T03:00:00Z"}))

    dry = backup(
        pg, store, database, "nightly-29000003", {"keepLast": 5, "maxAgeSeconds": 720 * 3600, "dryRun": True}
    )
    assert dry["observed"]["retention"]["unfinished"] == ["nightly-29000001"]
    assert (store.root / "nightly-29000001" / "deleting.json").exists()

    result = backup(pg, store, database, "nightly-29000004", {"keepLast": 5, "maxAgeSeconds": 720 * 3600})
    report = result["observed"]["retention"]
    assert report["finished"] == ["nightly-29000001"]
    assert [(d["name"], d["why"]) for d in report["deleted"]] == [
        ("nightly-29000002", "older than maxAge (2592000 s)")
    ]
    folders = store.folders()
    assert "nightly-29000001" not in folders and "nightly-29000002" not in folders
    assert {"nightly-29000000", "nightly-29000003", "nightly-29000004"} <= folders
    assert store.files()["nightly-29000000/dump.pgdump.zst"] == b"theirs"


def restore(server: Server, store: Store, database: str, name: str) -> Any:
    spec = {"database": database, "name": name, "storage": store.block}
    return run_worker(server, "restore", request_for(server, "DatabaseRestore", spec), env=store.env)


def test_a_restore_holds_a_lease_retention_respects_and_never_reads_a_backup_being_deleted(
    pg: Server, store: Store
) -> None:
    database = make_database(pg, rows=20)
    for n in (1, 2, 3):
        backup(pg, store, database, f"nightly-2900000{n}")
    # A restore in progress on nightly-29000001 (its lease, as take_lease writes it); a stale one on -02.
    store.put("nightly-29000001/restoring/a.json", json.dumps({"startedAt": "2099-01-01T00:00:00Z"}).encode())
    store.put("nightly-29000002/restoring/b.json", json.dumps({"startedAt": "2020-01-01T00:00:00Z"}).encode())
    # (a lease from the future is live: retention only compares its age with LEASE_MAX)
    result = backup(pg, store, database, "nightly-29000004", {"keepLast": 1})
    report = result["observed"]["retention"]
    assert [d["name"] for d in report["deleted"]] == ["nightly-29000003", "nightly-29000002"], report
    assert report["kept"] == 2
    folders = store.folders()
    assert "nightly-29000001" in folders and "nightly-29000002" not in folders
    assert "nightly-29000001/manifest.json" in store.files()

    # A restore writes its lease and removes it when done; the files are as before.
    before = store.files()
    target = f"rt_{uuid.uuid4().hex[:8]}"
    pg.query(f"CREATE DATABASE {target}")
    done = restore(pg, store, target, "nightly-29000004")
    assert done.code == 0, done.stdout + done.stderr
    assert store.files() == before
    assert pg.query("SELECT count(*) FROM t", database=target) == [(20,)]

    # A backup retention is deleting (its marker there): the restore refuses it, writes nothing, leaves no lease.
    store.put("nightly-29000004/deleting.json", json.dumps({"schedule": OWNER}).encode())
    before = store.files()
    refused = restore(pg, store, target, "nightly-29000004")
    assert refused.code == 2 and refused.error["code"] == "BackupNotFound", refused.stdout
    assert "is being deleted by the retention of schedule default/nightly" in refused.error["message"]
    assert store.files() == before
