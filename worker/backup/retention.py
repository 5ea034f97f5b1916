"""Retention: after a schedule's run published its backup, delete the schedule's backups its policy does not keep.

1. List the store under the storage's root (the S3 prefix, the volume's path) and group the keys by their first
   segment, a backup's directory. A directory is a candidate only when its manifest parses and names this schedule
   (`schedule`, `<namespace>/<name>`, written by the run that published it); any other manifest (another schedule,
   a DatabaseBackup, a backup made before retention existed), any object that is no dbops backup, and any
   directory without a manifest is never touched. The store may be shared.
2. `dbops_api.retention.plan` decides, from the manifests' publication times alone (the newest is always kept).
3. Unless `dryRun`, each backup to delete goes in this order: a `deleting.json` marker naming the schedule, then
   the manifest, then the data objects, then the marker. Removing the manifest first unpublishes the backup at once
   (a restore reads the manifest first, and a half-deleted backup is never restorable in appearance); the marker
   lets the next run finish a deletion a killed Pod left half done, since without a manifest nothing else would
   prove the directory is this schedule's.

A restore holds a lease on the backup it reads (`restoring/<id>.json` in its directory, written before it reads
the manifest, removed when it ends): retention keeps a backup with a lease younger than LEASE_MAX. The two exclude
each other without a lock: retention writes its marker, then lists the directory, and leaves the backup alone if a
lease is there; a restore writes its lease, then refuses the backup if a marker is there. Whichever wrote second
sees the other's object (the stores are strongly consistent), so a restore never reads a backup being deleted.

A directory named like this schedule's runs (`<cronjob>-<digits>`) that has objects but neither manifest nor
marker is an unpublished leftover (a run killed with SIGKILL before it could remove what it stored): reported, not
deleted, because nothing proves whose it is.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dbops_api.retention import Backup, Decision, plan
from worker.backup import manifest
from worker.backup.storage import Storage
from worker.errors import PermanentError, WorkerError
from worker.result import Result

MARKER = "deleting.json"
LEASES = "restoring/"
# The longest a Job may run (activeDeadlineSeconds' maximum): an older lease is one a killed restore left behind.
LEASE_MAX = timedelta(days=7)
LISTED = 8  # names per list in the result (a termination message holds 4 KiB)


def _published(record: manifest.Manifest) -> datetime | None:
    try:
        when = datetime.fromisoformat(record.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _owner(raw: bytes | None) -> str | None:
    try:
        data = json.loads(raw or b"")
    except ValueError:
        return None
    return data.get("schedule") if isinstance(data, dict) and isinstance(data.get("schedule"), str) else None


def prune(
    storage: Storage, spec: dict[str, Any], run: str, result: Result, now: datetime | None = None
) -> None:
    """Apply `spec.retention` to the backups of `spec.schedule`; `run` is this run's backup (just published).
    What it did (or, dry, would do) goes into `result.observed["retention"]` and `result.changes`."""
    policy = spec["retention"]
    owner = str(spec["schedule"])
    dry = bool(policy.get("dryRun"))
    now = now or datetime.now(UTC)
    runs = re.compile(re.escape(run.rsplit("-", 1)[0]) + r"-[0-9]+") if re.search(r"-[0-9]+$", run) else None

    folders: dict[str, list[str]] = defaultdict(list)
    for key in storage.keys(""):
        if "/" in key:
            folder, rest = key.split("/", 1)
            folders[folder].append(rest)
    backups: list[Backup] = []
    unfinished: list[str] = []  # deletions a stopped run left half done
    leftovers: list[str] = []
    others = 0
    for folder, names in sorted(folders.items()):
        if manifest.NAME in names:
            raw = storage.read_small(f"{folder}/{manifest.NAME}")
            try:
                record = manifest.parse(raw or b"", storage.uri(f"{folder}/{manifest.NAME}"))
            except PermanentError:
                others += 1
                continue
            published = _published(record)
            if record.schedule != owner or published is None:
                others += 1
                continue
            backups.append(Backup(folder, published))
        elif MARKER in names and _owner(storage.read_small(f"{folder}/{MARKER}")) == owner:
            unfinished.append(folder)
        elif runs is not None and runs.fullmatch(folder) and folder != run:
            leftovers.append(folder)
        else:
            others += 1

    leased = {
        folder: since
        for folder in (b.name for b in backups)
        if (since := _leased(storage, folder, folders[folder], now)) is not None
    }
    decisions = [
        replace(d, keep=True, reasons=(f"a restore is reading it (since {leased[d.name]})",))
        if not d.keep and d.name in leased
        else d
        for d in plan(policy, backups, now)
    ]
    if not any(d.name == run for d in decisions):
        # This run's own manifest must be among them (it was just published, or found published): anything else
        # means the listing is not what was written, and deleting on its strength would be a guess.
        raise PermanentError(
            "RetentionSkipped",
            f"{storage.uri(run + '/' + manifest.NAME)} is not listed as this schedule's ({owner}) backup; "
            "nothing was deleted",
        )
    doomed = [d for d in decisions if not d.keep]
    deleted: list[Decision] = []
    failure: WorkerError | None = None
    if not dry:
        for folder in unfinished:
            _finish(storage, folder, folders[folder], owner)
        for decision in doomed:
            try:
                if _delete(storage, decision.name, owner, now):
                    deleted.append(decision)
            except WorkerError as exc:
                failure = exc
                break
    report: dict[str, Any] = {
        "dryRun": dry,
        # This schedule's backups still stored after the run (dry: that would be).
        "kept": len(decisions) - len(doomed if dry else deleted),
        ("wouldDelete" if dry else "deleted"): [d.as_dict() for d in (doomed if dry else deleted)][:LISTED],
        ("wouldDeleteCount" if dry else "deletedCount"): len(doomed if dry else deleted),
    }
    if leftovers:
        report["unpublished"] = leftovers[:LISTED]
    if unfinished:
        report["unfinished" if dry else "finished"] = unfinished[:LISTED]
    if others:
        report["otherObjects"] = others
    result.observed["retention"] = report
    verb = "would delete" if dry else "deleted"
    for d in doomed if dry else deleted:
        result.changes.append(f"retention {verb} {storage.uri(d.name + '/')} ({'; '.join(d.reasons)})")
    if failure is not None:
        raise failure


def _delete(storage: Storage, folder: str, owner: str, now: datetime) -> bool:
    """Delete one backup, unless a restore took a lease on it meanwhile (then the marker goes again: False)."""
    storage.put_small(f"{folder}/{MARKER}", (json.dumps({"schedule": owner}) + "\n").encode())
    names = [
        key.split("/", 1)[1] for key in storage.keys(folder + "/")
    ]  # after the marker: see the docstring
    if _leased(storage, folder, names, now) is not None:
        storage.delete([f"{folder}/{MARKER}"])
        return False
    storage.delete([f"{folder}/{manifest.NAME}"])
    _finish(storage, folder, names, owner)
    return True


def _leased(storage: Storage, folder: str, names: list[str], now: datetime) -> str | None:
    """When the oldest live restore lease on a backup was taken (None: no live lease)."""
    live: list[str] = []
    for name in names:
        if not name.startswith(LEASES):
            continue
        try:
            data = json.loads(storage.read_small(f"{folder}/{name}") or b"")
            since = datetime.fromisoformat(str(data["startedAt"]).replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):
            continue
        if since.tzinfo is not None and now - since < LEASE_MAX:
            live.append(str(data["startedAt"]))
    return min(live) if live else None


def take_lease(storage: Storage, base: str, holder: dict[str, Any]) -> str:
    """A restore's lease on backup `base` (the key written); refused (`BackupNotFound`) when retention is deleting
    it. A store that refuses the write raises the storage's error."""
    key = f"{base}/{LEASES}{uuid.uuid4().hex}.json"
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    storage.put_small(key, (json.dumps({"startedAt": started, "restore": holder}) + "\n").encode())
    marker = storage.read_small(f"{base}/{MARKER}")
    if marker is not None:
        storage.delete([key])
        raise PermanentError(
            "BackupNotFound",
            f"{storage.uri(base + '/')} is being deleted by the retention of schedule {_owner(marker) or '?'}",
        )
    return key


def _finish(storage: Storage, folder: str, names: list[str], owner: str) -> None:
    storage.delete([f"{folder}/{n}" for n in names if n not in (manifest.NAME, MARKER)])
    storage.delete([f"{folder}/{MARKER}"])
