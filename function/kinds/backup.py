"""XDatabaseBackup and XDatabaseRestore: one `dbops-worker backup|restore` Job each, run once.

    databaseRef (backup) / target.databaseRef (restore) -> the Database claim (Ready) -> its DatabaseInstance
    the claim's storage, compression, encryption  -> the worker request (dbops_api.backup), Secrets as mounted files
    Job complete (the worker exits 0 only once the manifest is published, or the restore is done) -> Completed

A backup is made once: the Job has no resync, and once the status says Completed the function composes nothing
new (the finished Job is kept as observed), whatever changes later (the spec, the Secrets, the worker image). A
Job stopped by its deadline or a killed Pod is a failed Job (retried with back-off, transient), never Completed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from dbops_api.result import read_result
from dbops_api.retention import request_retention
from dbops_api.validation import FieldError
from function import status as st
from function.jobs.job import CONTAINER, JobExtras, WorkerCall, job_spec
from function.jobs.progress import PODS_REQUIREMENT, carried_over, pods_requirement, progress
from function.kinds.driver import Kind, Ready, Target, compose
from function.labels import managed_labels
from function.objects import dig, items, mapping, text
from function.outcome import Composed, Outcome
from function.secrets import credentials as creds
from function.spec.references import DATABASE, Lookup, instance_spec
from function.view import View

COMPLETED = "Completed"
DONE_TTL = 3600.0  # a completed claim changes no more; Crossplane still calls back now and then
BACKUP_REQUIREMENT = "backup"
SECRETS_DIR = "/etc/dbops/backup"
VOLUME_DIR = "/var/lib/dbops/backups"
MEMORY_DIR = "/var/run/dbops"  # the dump tool's credentials file (DBOPS_SECRETS_DIR)
# The Job's volumes in order (the name, its directory under SECRETS_DIR), and the variable naming each file.
VOLUMES = (("s3-keys", "s3"), ("s3-ca", "s3-ca"), ("backups", ""), ("backup-key", "key"))
FILE_ENV = {
    "access-key": "DBOPS_S3_ACCESS_KEY_FILE",
    "secret-key": "DBOPS_S3_SECRET_KEY_FILE",
    "ca.crt": "DBOPS_S3_CA_FILE",
    "key": "DBOPS_BACKUP_KEY_FILE",
}
# The claim's Secrets (requirements, in its namespace) a cross-namespace Job reads through a copy.
S3_SECRET = "s3-secret"  # noqa: S105 (a requirement name)
CA_SECRET = "s3-ca-secret"  # noqa: S105 (a requirement name)
KEY_SECRET = "backup-key-secret"  # noqa: S105 (a requirement name)
JOB_SECRETS_KEY = "job-secrets"  # the desired-resource key of the copy


def _database(
    lookup: Lookup, name: str, path: str
) -> tuple[str, dict[str, Any], dict[str, Any], str | None] | None:
    """(instance name, instance spec, Database spec, the instance's namespace when it is not the claim's) of a
    Database claim, once it and its instance are Ready. A claim (legacy XR) may use a Database on an instance of
    another namespace that allows the claim's: its Jobs run there (docs/function.md); a namespaced XR may not."""
    found = lookup.claim(DATABASE, "Database", name, path)
    database = lookup.claim_spec(found, "Database", path) if found is not None else None
    if database is None:
        return None
    instance_name = database["instanceRef"]["name"]
    elsewhere = database["instanceRef"].get("namespace")
    if elsewhere == lookup.view.namespace:
        elsewhere = None
    if elsewhere and not lookup.view.legacy:
        lookup.errors.append(FieldError(path, cross_namespace_backup(name, elsewhere, instance_name)))
        return None
    instance = instance_spec(lookup, instance_name, path, elsewhere)
    if instance is None:
        return None
    return instance_name, instance, database, elsewhere


def cross_namespace_backup(database: str, namespace: str, instance: str) -> str:
    return (
        f"Database {database} is on DatabaseInstance {namespace}/{instance}, of another namespace: a namespaced "
        "object cannot use it (Crossplane composes its Jobs in its own namespace, where that instance's admin "
        f"Secret is not); use a claim (group dbops.dbprovision.io), or a claim in namespace {namespace}"
    )


def storage_request(storage: dict[str, Any]) -> dict[str, Any]:
    """The request's storage: the claim's S3 block without its Secret references, a PVC as its mounted path (the
    Job mounts the claim's `subPath` there, and the kubelet creates it in the volume when it is missing)."""
    if storage["type"] == "s3":
        s3 = {k: v for k, v in storage["s3"].items() if k not in ("secretRef", "caSecretRef")}
        return {"type": "s3", "s3": s3}
    return {"type": "volume", "volume": {"path": VOLUME_DIR}}


def _secret_volume(name: str, secret: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": key, "path": path} for key, path in items],
        },
    }


@dataclass(frozen=True)
class SecretUse:
    """One key of one of the claim's Secrets that the Job reads as a file: in the claim's namespace, or as the key
    `file` of the copy composed next to a cross-namespace Job."""

    requirement: str
    path: str  # the claim's field naming the Secret
    secret: str
    key: str
    file: str
    volume: str


def secret_uses(
    storage: dict[str, Any], encryption: dict[str, Any] | None, prefix: str = "spec"
) -> list[SecretUse]:
    """Every Secret key the backup's Job reads: the S3 keys, the S3 CA bundle, the encryption key (their fields
    under `prefix`, where the claim says storage and encryption)."""
    uses: list[SecretUse] = []
    if storage["type"] == "s3":
        ref = storage["s3"]["secretRef"]
        keys = ref.get("keys", {})
        where = f"{prefix}.storage.s3.secretRef"
        uses += [
            SecretUse(
                S3_SECRET,
                where,
                ref["name"],
                keys.get("accessKey", "AWS_ACCESS_KEY_ID"),
                "access-key",
                "s3-keys",
            ),
            SecretUse(
                S3_SECRET,
                where,
                ref["name"],
                keys.get("secretKey", "AWS_SECRET_ACCESS_KEY"),
                "secret-key",
                "s3-keys",
            ),
        ]
        ca = storage["s3"].get("caSecretRef")
        if ca:
            uses.append(
                SecretUse(
                    CA_SECRET,
                    f"{prefix}.storage.s3.caSecretRef",
                    ca["name"],
                    ca.get("key", "ca.crt"),
                    "ca.crt",
                    "s3-ca",
                )
            )
    if encryption and encryption.get("enabled") and encryption.get("secretRef"):
        ref = encryption["secretRef"]
        uses.append(
            SecretUse(
                KEY_SECRET, f"{prefix}.encryption.secretRef", ref["name"], ref["key"], "key", "backup-key"
            )
        )
    return uses


def job_extras(
    storage: dict[str, Any], encryption: dict[str, Any] | None, deadline: int, copy: str | None = None
) -> JobExtras:
    """The Secrets and the volume the worker reads as files (docs/worker.md, "Backup and restore"); with `copy`,
    every Secret key is read from that Secret (a cross-namespace Job's copy, keyed by file name)."""
    env: list[tuple[str, str]] = [("DBOPS_SECRETS_DIR", MEMORY_DIR)]
    volumes: list[dict[str, Any]] = [
        {"name": "secrets", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    ]
    mounts: list[dict[str, Any]] = [{"name": "secrets", "mountPath": MEMORY_DIR}]
    uses = secret_uses(storage, encryption)
    for volume, directory in VOLUMES:
        if volume == "backups":
            if storage["type"] == "pvc":
                pvc = storage["pvc"]
                volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": pvc["claimName"]}})
                sub = pvc.get("subPath")
                mounts.append({"name": volume, "mountPath": VOLUME_DIR, **({"subPath": sub} if sub else {})})
            continue
        mine = [u for u in uses if u.volume == volume]
        if not mine:
            continue
        pairs = [(u.key if copy is None else u.file, u.file) for u in mine]
        volumes.append(_secret_volume(volume, copy or mine[0].secret, pairs))
        mounts.append({"name": volume, "mountPath": f"{SECRETS_DIR}/{directory}", "readOnly": True})
        env += [(FILE_ENV[u.file], f"{SECRETS_DIR}/{directory}/{u.file}") for u in mine]
    return JobExtras(tuple(env), tuple(volumes), tuple(mounts), deadline)


def _run_once(ready: Ready, extras: JobExtras) -> Outcome:
    call = WorkerCall(ready.action, ready.request, ready.access, None, "", extras)
    prog = progress(ready.view, call, resync=False)
    out = ready.lookup.annotate(st.from_progress(ready.view, ready.kind, prog, ready.lookup.requirements))
    if prog.phase == "Ready":
        # Only a Job that completed: the worker exits 0 only after publishing (backup) or restoring.
        out = replace(out, status={**out.status, "phase": COMPLETED})
    return out


# --- DatabaseBackup -------------------------------------------------------------------------------------------------


def _backup_resolve(
    view: View, spec: dict[str, Any], lookup: Lookup, *, prefix: str = "spec"
) -> Target | None:
    found = _database(lookup, spec["databaseRef"]["name"], "spec.databaseRef")
    if found is None:
        return None
    instance_name, instance, database, elsewhere = found
    if elsewhere and not _secrets_across(
        lookup,
        spec["storage"],
        spec.get("encryption"),
        prefix=prefix,
        namespace=elsewhere,
        instance=instance_name,
    ):
        return None
    compression = spec.get("compression", {})
    resolved: dict[str, Any] = {
        "database": database["name"],
        "name": view.claim_name,
        "storage": storage_request(spec["storage"]),
        "compression": (
            {
                "algorithm": compression.get("algorithm", "zstd"),
                **({"level": compression["level"]} if "level" in compression else {}),
            }
            if compression.get("enabled", True)
            else {"algorithm": "none"}
        ),
    }
    encryption = spec.get("encryption", {})
    if encryption.get("enabled"):
        resolved["encryption"] = {"enabled": True, "algorithm": encryption.get("algorithm", "aes-256-gcm")}
    renames = {"spec.database": "spec.databaseRef", "spec.name": "metadata.name"}
    return Target(instance_name, instance, resolved, renames, instance_namespace=elsewhere)


def _secrets_across(
    lookup: Lookup,
    storage: dict[str, Any],
    encryption: dict[str, Any] | None,
    *,
    prefix: str,
    namespace: str,
    instance: str,
) -> bool:
    """For a Job that runs in the instance's namespace: refuse a PVC of the claim's (a Pod mounts claims of its own
    namespace only), and ask for the claim's Secrets it reads, whose values its copy needs (not only their names).
    """
    if storage["type"] != "s3":
        lookup.errors.append(FieldError(f"{prefix}.storage.type", cross_namespace_pvc(namespace, instance)))
        return False
    for use in secret_uses(storage, encryption, prefix):
        lookup.require(use.requirement, "v1", "Secret", use.secret, use.path)
    return True


def cross_namespace_pvc(namespace: str, instance: str) -> str:
    return (
        f"a PersistentVolumeClaim of this namespace cannot be mounted by the backup's Job, which runs in namespace "
        f"{namespace} (the namespace of DatabaseInstance {namespace}/{instance}, where its admin Secret is); use "
        "storage type s3"
    )


def _backup_finish(ready: Ready) -> Outcome:
    spec = ready.spec
    storage, encryption, deadline = (
        spec["storage"],
        spec.get("encryption"),
        int(spec["activeDeadlineSeconds"]),
    )
    if not ready.view.job_namespace:
        return _run_once(ready, job_extras(storage, encryption, deadline))
    return _run_across(ready, storage, encryption, deadline, "spec")


def _run_across(
    ready: Ready, storage: dict[str, Any], encryption: dict[str, Any] | None, deadline: int, prefix: str
) -> Outcome:
    """The Job of a backup on an instance of another namespace: it runs there, and reads the claim's Secrets from
    a copy composed next to it (only the keys it uses); it starts once the copy of their current revision exists."""
    copy, waiting = job_copy(ready, storage, encryption, prefix, started=False)
    if waiting is not None:
        return waiting
    extras = job_extras(storage, encryption, deadline, copy=copy["metadata"]["name"])
    return _run_once(ready, extras).adding(resources={JOB_SECRETS_KEY: Composed(copy, ready=True)})


def job_copy(
    ready: Ready, storage: dict[str, Any], encryption: dict[str, Any] | None, prefix: str, *, started: bool
) -> tuple[dict[str, Any], Outcome | None]:
    """The copy, in the Job's namespace, of the keys the Job reads of the claim's Secrets; and the outcome to
    return instead of the Job (or CronJob) while it must wait: a key is missing, or (unless `started`: the CronJob
    exists, and keeps the copy's name) the observed copy is not of the current revision yet."""
    view = ready.view
    data: dict[str, str] = {}
    revisions: dict[str, str] = {}
    missing = ""
    for use in secret_uses(storage, encryption, prefix):
        found = view.one(use.requirement)
        value = creds.secret_value(found, use.key)
        if value is None:
            missing = (
                missing
                or f"waiting: {use.path}: Secret {use.secret} has no key {use.key}; add it to the Secret"
            )
            continue
        data[use.file] = value
        revisions[use.secret] = text(found, "metadata", "resourceVersion") or "-"
    revision = ",".join(f"{name}@{version}" for name, version in sorted(revisions.items()))
    copy = creds.job_input_secret(view, "backup-secrets", data, revision)
    if missing:
        waiting = st.waiting(view, ready.kind, missing, "WaitingForSecret", ready.lookup.requirements)
        return copy, ready.lookup.annotate(waiting)
    if started or creds.job_input_current(view, JOB_SECRETS_KEY, revision):
        return copy, None
    message = (
        f"copying the keys the Job reads of Secret(s) {', '.join(sorted(revisions))} to Secret "
        f"{copy['metadata']['name']} in namespace {view.jobs_namespace}, where the Job runs; it starts once "
        "the copy exists"
    )
    waiting = st.waiting(view, ready.kind, message, "WaitingForSecret", ready.lookup.requirements)
    out = replace(waiting, ttl_seconds=float(view.input["ttl"]["runningSeconds"]))
    return copy, ready.lookup.annotate(out.adding(resources={JOB_SECRETS_KEY: Composed(copy, ready=True)}))


BACKUP = Kind(
    "DatabaseBackup",
    _backup_resolve,
    spec_errors=lambda spec: [],
    lifecycle=False,
    action="backup",
    finish=_backup_finish,
    engine_blocks=False,
)


# --- DatabaseRestore ------------------------------------------------------------------------------------------------


def _source(
    view: View, spec: dict[str, Any], lookup: Lookup
) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(backup name, storage, encryption) of what is restored: a Completed DatabaseBackup claim, or fromPath."""
    if "fromPath" in spec:
        src = spec["fromPath"]
        return src["backupPath"], src["storage"], src.get("encryption", {})
    name = spec["backupRef"]["name"]
    api_version, kind = view.ref("DatabaseBackup")
    found = lookup.require(BACKUP_REQUIREMENT, api_version, kind, name, "spec.backupRef")
    if found is None:
        return None
    phase = text(found, "status", "phase")
    if phase != COMPLETED:
        detail = f"phase {phase}: {text(found, 'status', 'message')}" if phase else "no status yet"
        lookup.waiting.append(f"DatabaseBackup {name} is not Completed ({detail})")
        return None
    backup = lookup.claim_spec(found, "DatabaseBackup", "spec.backupRef")
    if backup is None:
        return None
    return name, backup["storage"], backup.get("encryption", {})


def _restore_resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    source = _source(view, spec, lookup)
    found = _database(lookup, spec["target"]["databaseRef"]["name"], "spec.target.databaseRef")
    if source is None or found is None:
        return None
    name, storage, encryption = source
    instance_name, instance, database, elsewhere = found
    prefix = _restore_prefix(spec)
    if elsewhere and not _secrets_across(
        lookup, storage, encryption, prefix=prefix, namespace=elsewhere, instance=instance_name
    ):
        return None
    resolved = {
        "database": database["name"],
        "name": name,
        "storage": storage_request(storage),
        "overwrite": bool(spec["overwrite"]),
    }
    renames = {"spec.database": "spec.target.databaseRef", "spec.name": "spec.backupRef"}
    return Target(instance_name, instance, resolved, renames, instance_namespace=elsewhere)


def _restore_prefix(spec: dict[str, Any]) -> str:
    """Where the restore's storage and encryption are said: its fromPath, or the DatabaseBackup of backupRef."""
    return "spec.fromPath" if "fromPath" in spec else "spec.backupRef"


def _restore_finish(ready: Ready) -> Outcome:
    spec = ready.spec
    if "fromPath" in spec:
        storage, encryption = spec["fromPath"]["storage"], spec["fromPath"].get("encryption")
    else:
        found = ready.view.one(BACKUP_REQUIREMENT) or {}
        backup = mapping(found, "spec")
        storage, encryption = dict(backup["storage"]), backup.get("encryption")
    deadline = int(spec["activeDeadlineSeconds"])
    if ready.view.job_namespace:
        return _run_across(ready, storage, encryption, deadline, _restore_prefix(spec))
    return _run_once(ready, job_extras(storage, encryption, deadline))


RESTORE = Kind(
    "DatabaseRestore",
    _restore_resolve,
    lifecycle=False,
    action="restore",
    finish=_restore_finish,
    engine_blocks=False,
)


def _once(view: View, kind: Kind) -> Outcome:
    """A claim that completed stays completed: its status and its Job are kept, nothing new is composed. The copy
    of its Secrets' keys a cross-namespace Job read is not kept: the keys stay in that namespace no longer than the
    Job needs them."""
    if view.status.get("phase") == COMPLETED:
        status = st.carried_status(view, kind.name)
        message = str(view.status.get("message", "completed"))
        status.update(phase=COMPLETED, message=message)
        kept = {k: v for k, v in carried_over(view).items() if k != JOB_SECRETS_KEY}
        return Outcome(
            resources=kept,
            status=status,
            conditions=[st.provisioned("True", COMPLETED, message)],
            ttl_seconds=DONE_TTL,
            ready=True,
        )
    return compose(view, kind)


def compose_backup(view: View) -> Outcome:
    return _once(view, BACKUP)


def compose_restore(view: View) -> Outcome:
    return _once(view, RESTORE)


# --- DatabaseBackupSchedule -----------------------------------------------------------------------------------------

CRONJOB_KEY = "cronjob"
CRONJOB_NAME_MAX = 52  # Kubernetes: a CronJob's name leaves 11 characters for its Jobs' suffix


def _schedule_resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    return _backup_resolve(view, spec["template"]["spec"], lookup, prefix="spec.template.spec")


def cronjob_name(view: View) -> str:
    """The claim's name (what users know; each run's Job, and backup, is `<name>-<minutes>`), shortened with a
    digest when longer than a CronJob name may be."""
    name = view.claim_name
    if len(name) <= CRONJOB_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: CRONJOB_NAME_MAX - 9].rstrip('-.')}-{digest}"


def _schedule_finish(ready: Ready) -> Outcome:
    spec, view = ready.spec, ready.view
    backup = spec["template"]["spec"]
    observed = view.observed.get(CRONJOB_KEY)
    composed: dict[str, Composed] = {}
    if view.job_namespace:
        # Its runs read a copy, in the instance's namespace, of the keys they use of the claim's Secrets; the
        # CronJob is created once the copy exists, then the copy follows the Secrets (its name stays).
        copy, waiting = job_copy(
            ready,
            backup["storage"],
            backup.get("encryption"),
            "spec.template.spec",
            started=observed is not None,
        )
        if waiting is not None:
            return waiting
        composed[JOB_SECRETS_KEY] = Composed(copy, ready=True)
    copy_name = composed[JOB_SECRETS_KEY].resource["metadata"]["name"] if composed else None
    base = job_extras(
        backup["storage"], backup.get("encryption"), int(backup["activeDeadlineSeconds"]), copy=copy_name
    )
    extras = replace(base, field_env=(("DBOPS_JOB_NAME", "metadata.labels['job-name']"),))
    run_spec: dict[str, Any] = {**ready.request["spec"], "perRun": True}
    run_spec["schedule"] = f"{view.namespace}/{view.claim_name}"
    if "retention" in spec:
        run_spec["retention"] = request_retention(spec["retention"], spec["timezone"])
    request = {**ready.request, "spec": run_spec}
    call = WorkerCall("backup", request, ready.access, None, "", extras)
    name = cronjob_name(view)
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": view.jobs_namespace, "labels": managed_labels(view)},
        "spec": {
            "schedule": spec["schedule"],
            "timeZone": spec["timezone"],
            "suspend": bool(spec["paused"]),
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": int(spec["successfulBackupsHistoryLimit"]),
            "failedJobsHistoryLimit": int(spec["failedBackupsHistoryLimit"]),
            "jobTemplate": {"metadata": {"labels": managed_labels(view)}, "spec": job_spec(view, call)},
        },
    }
    seen = mapping(observed, "status") if observed is not None else {}
    facts: dict[str, Any] = {"cronJob": name, "active": len(seen.get("active") or [])}
    for key in ("lastScheduleTime", "lastSuccessfulTime"):
        if text(seen, key):
            facts[key] = text(seen, key)
    pruned = retention_report(view) if "retention" in spec else None
    if pruned is not None:
        facts["retention"] = pruned
    status = st.carried_status(view, ready.kind)
    when = f"{spec['schedule']} ({spec['timezone']})"
    shown = f"{view.jobs_namespace}/{name}" if view.job_namespace else name  # where to look, when not here
    if observed is None:
        phase, reason, message = (
            "Provisioning",
            "CronJobCreated",
            f"CronJob {shown} created: backups at {when}",
        )
    else:
        phase, reason = "Ready", "Scheduled"
        message = f"CronJob {shown} {'is paused' if spec['paused'] else 'runs backups at ' + when}"
        if facts.get("lastSuccessfulTime"):
            message += f"; last backup published at {facts['lastSuccessfulTime']}"
        if pruned is not None:
            message += "; " + _pruned_message(pruned)
    status.update(phase=phase, message=message, schedule=facts)
    requirements = dict(ready.lookup.requirements)
    pods = pods_requirement(view) if "retention" in spec else None
    if pods is not None:
        requirements[PODS_REQUIREMENT] = pods
    out = Outcome(
        resources={CRONJOB_KEY: Composed(cronjob, ready=observed is not None), **composed},
        status=status,
        conditions=[st.provisioned("True" if phase == "Ready" else "False", reason, message)],
        requirements=requirements,
        ttl_seconds=float(view.input["ttl"]["runningSeconds"]) if observed is None else 600.0,
        ready=phase == "Ready",
    )
    return ready.lookup.annotate(out)


SCHEDULE = Kind(
    "DatabaseBackupSchedule",
    _schedule_resolve,
    lifecycle=False,
    action="backup",
    request_kind="DatabaseBackup",
    finish=_schedule_finish,
    engine_blocks=False,
)


def compose_schedule(view: View) -> Outcome:
    return compose(view, SCHEDULE)


def retention_report(view: View) -> dict[str, Any] | None:
    """What the latest finished run said about retention: its Pod's result (`observed.retention`, or the warning
    that stopped it), read from the Pods of this XR's runs (only when the Input's status.readPods is on)."""
    latest: tuple[str, str, dict[str, Any]] | None = None
    for pod in view.required.get(PODS_REQUIREMENT) or []:
        job = text(pod, "metadata", "labels", "job-name") or text(
            pod, "metadata", "labels", "batch.kubernetes.io/job-name"
        )
        for status in items(pod, "status", "containerStatuses"):
            if not isinstance(status, dict) or status.get("name") != CONTAINER:
                continue
            terminated = dig(status, "state", "terminated")
            if not isinstance(terminated, dict):
                continue
            result = read_result(terminated.get("message"))
            if result is None or result.get("action") != "backup":
                continue
            when = str(terminated.get("finishedAt", ""))
            if latest is None or (when, job) > latest[:2]:
                latest = (when, job, result)
    if latest is None:
        return None
    when, job, result = latest
    observed = result.get("observed")
    report = dict(observed["retention"]) if isinstance(observed, dict) and "retention" in observed else {}
    warning = next((w for w in result.get("warnings") or [] if str(w).startswith("retention: ")), None)
    if warning:
        report["warning"] = str(warning)
    if not report:
        return None
    return {"job": job, "finishedAt": when, **report}


def _pruned_message(report: dict[str, Any]) -> str:
    if "warning" in report and "kept" not in report:
        return f"retention did not run ({report['warning']})"
    if report.get("dryRun"):
        said = f"retention (dry run) would delete {report.get('wouldDeleteCount', 0)} backup(s)"
    else:
        said = f"retention deleted {report.get('deletedCount', 0)} backup(s)"
    return f"{said}, kept {report.get('kept', 0)} (Job {report['job']})"
