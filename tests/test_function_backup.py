"""RunFunction for DatabaseBackup and DatabaseRestore: the Job each composes (request, mounted Secrets, deadline),
what it waits for, and the status from the Job (Completed only from a completed Job; a deadline or a kill never).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from tests.function_cases import kube
from worker.request import parse

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
EXAMPLES = {
    (d["kind"], d["metadata"]["name"]): d
    for name in ("instance.yaml", "database.yaml", "backup.yaml")
    for d in kube.load_yaml(kube.ROOT / "examples" / "postgres" / name)
}
INSTANCE = kube.claim("DatabaseInstance", "pg-main", EXAMPLES[("DatabaseInstance", "pg-main")]["spec"])
INTERNAL = kube.claim(
    "DatabaseInstance", "pg-internal", EXAMPLES[("DatabaseInstance", "pg-internal")]["spec"]
)
ORDERS_DB = kube.claim("Database", "orders-db", EXAMPLES[("Database", "orders-db")]["spec"])
SCRATCH_DB = kube.claim("Database", "scratch-db", EXAMPLES[("Database", "scratch-db")]["spec"])
S3_BACKUP = EXAMPLES[("DatabaseBackup", "orders-20261206")]
PVC_BACKUP = EXAMPLES[("DatabaseBackup", "scratch-to-volume")]
RESTORE = EXAMPLES[("DatabaseRestore", "orders-into-scratch")]
FROM_PATH = EXAMPLES[("DatabaseRestore", "scratch-from-volume")]
BACKUP_INPUT = kube.reading_pods(kube.composition_input("DatabaseBackup"))
RESTORE_INPUT = kube.reading_pods(kube.composition_input("DatabaseRestore"))
BACKUP_REQUIRED = {"database": [ORDERS_DB], "instance": [INSTANCE]}


def call(
    req: fnv1.RunFunctionRequest, now: datetime = NOW, offline: bool = False
) -> fnv1.RunFunctionResponse:
    runner = FunctionRunner(clock=lambda: now, rng=random.Random(7), offline=offline)
    return asyncio.run(runner.RunFunction(req))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def compose(
    claim: dict[str, Any],
    required: dict[str, list[dict[str, Any]]],
    observed: dict[str, dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    input_: dict[str, Any] | None = None,
    offline: bool = False,
) -> fnv1.RunFunctionResponse:
    xr = kube.xr_from_claim(claim)
    if status is not None:
        xr = kube.with_status(xr, status)
    default_input = BACKUP_INPUT if claim["kind"] == "DatabaseBackup" else RESTORE_INPUT
    req = kube.request(xr, observed_resources=observed, required=required, input_=input_ or default_input)
    return call(req, offline=offline)


def only_job(rsp: fnv1.RunFunctionResponse) -> tuple[str, dict[str, Any]]:
    [(key, job)] = kube.jobs(rsp).items()
    return key, job


def volumes(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}


def mounts(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def test_s3_backup_composes_a_backup_job_with_its_secrets_as_files() -> None:
    rsp = compose(S3_BACKUP, BACKUP_REQUIRED)
    assert kube.status(rsp)["phase"] == "Provisioning"
    _, job = only_job(rsp)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dbops-worker", "backup"]
    request = kube.job_request(job)
    assert request["kind"] == "DatabaseBackup"
    assert request["spec"] == {
        "database": "orders",
        "name": "orders-20261206",
        "storage": {
            "type": "s3",
            "s3": {
                "endpoint": "https://minio.backup.svc:9000",
                "bucket": "db-backups",
                "prefix": "prod/orders",
                "region": "us-east-1",
                "forcePathStyle": True,
                "allowHttp": False,
            },
        },
        "compression": {"algorithm": "zstd", "level": 3},
        "encryption": {"enabled": True, "algorithm": "aes-256-gcm"},
    }
    parse(json.dumps(request), "backup")  # the worker takes it as it is
    env = kube.job_env(job)
    paths = {k: v.get("value") for k, v in env.items() if k.startswith("DBOPS_") and k.endswith("_FILE")}
    assert paths == {
        "DBOPS_S3_ACCESS_KEY_FILE": "/etc/dbops/backup/s3/access-key",
        "DBOPS_S3_SECRET_KEY_FILE": "/etc/dbops/backup/s3/secret-key",
        "DBOPS_S3_CA_FILE": "/etc/dbops/backup/s3-ca/ca.crt",
        "DBOPS_BACKUP_KEY_FILE": "/etc/dbops/backup/key/key",
    }
    vols = volumes(job)
    assert vols["s3-keys"]["secret"]["secretName"] == "backup-s3"
    assert vols["s3-keys"]["secret"]["items"] == [
        {"key": "AWS_ACCESS_KEY_ID", "path": "access-key"},
        {"key": "AWS_SECRET_ACCESS_KEY", "path": "secret-key"},
    ]
    assert vols["backup-key"]["secret"] == {
        "secretName": "backup-key",
        "defaultMode": 0o440,
        "items": [{"key": "key", "path": "key"}],
    }
    assert vols["secrets"]["emptyDir"]["medium"] == "Memory"
    assert env["DBOPS_SECRETS_DIR"]["value"] == mounts(job)["secrets"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    # No secret value and no Secret key reference beyond the admin's: the keys are files.
    refs = {k for k, v in env.items() if "valueFrom" in v}
    assert refs == {"DBOPS_ADMIN_USERNAME", "DBOPS_ADMIN_PASSWORD"}


def test_pvc_backup_mounts_the_claim_and_sends_its_path() -> None:
    rsp = compose(PVC_BACKUP, {"database": [SCRATCH_DB], "instance": [INTERNAL]})
    _, job = only_job(rsp)
    spec = kube.job_request(job)["spec"]
    assert spec["storage"] == {"type": "volume", "volume": {"path": "/var/lib/dbops/backups"}}
    assert spec["compression"] == {"algorithm": "gzip", "level": 6}
    assert "encryption" not in spec
    assert volumes(job)["backups"] == {
        "name": "backups",
        "persistentVolumeClaim": {"claimName": "db-backups"},
    }
    assert mounts(job)["backups"] == "/var/lib/dbops/backups"
    # The claim's subPath is the mount's: the kubelet creates it in the volume when it is missing.
    [mount] = [
        m for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] if m["name"] == "backups"
    ]
    assert mount["subPath"] == "scratch"
    assert not any(k.endswith("_FILE") for k in kube.job_env(job))


def test_compression_off_is_none() -> None:
    claim = copy.deepcopy(PVC_BACKUP)
    claim["spec"]["compression"] = {"enabled": False}
    _, job = only_job(compose(claim, {"database": [SCRATCH_DB], "instance": [INTERNAL]}))
    assert kube.job_request(job)["spec"]["compression"] == {"algorithm": "none"}


@pytest.mark.parametrize(
    ("required", "want"),
    [
        ({}, "looking up Database orders-db"),
        ({"database": []}, "spec.databaseRef: Database orders-db not found"),
        (
            {"database": [kube.claim("Database", "orders-db", ORDERS_DB["spec"], phase="Provisioning")]},
            "not Ready",
        ),
        ({"database": [ORDERS_DB], "instance": []}, "DatabaseInstance pg-main not found"),
    ],
    ids=["looking-up", "missing", "not-ready", "no-instance"],
)
def test_backup_waits_for_its_database_and_instance(required: dict[str, Any], want: str) -> None:
    rsp = compose(S3_BACKUP, required)
    status = kube.status(rsp)
    assert status["phase"] == "Pending" and want in status["message"], status
    assert kube.jobs(rsp) == {}


BACKUP_FACTS = {
    "uri": "s3://db-backups/prod/orders/orders-20261206/dump.pgdump.zst.enc",
    "database": "orders",
    "sha256": "ab" * 32,
    "sizeBytes": 1234,
    "storedBytes": 567,
    "compression": "zstd",
    "encryption": "aes-256-gcm",
    "serverVersion": "15.4",
    "tool": "pg_dump 15.10",
    "startedAt": "2026-12-06T11:59:00Z",
    "finishedAt": "2026-12-06T11:59:30Z",
}


def finished(job: dict[str, Any], how: str, when: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    at = iso(when)
    if how == "running":
        return kube.job_running(job, at), []
    if how == "complete":
        result = kube.worker_result("DatabaseBackup", "backup", observed_facts=BACKUP_FACTS)
        return kube.job_complete(job, at), [kube.pod(job, 0, result, at)]
    if how == "deadline":
        # The Job's deadline: Kubernetes kills the Pod (SIGTERM, then SIGKILL) and marks the Job failed.
        pod = kube.pod(job, 143, "", at)
        del pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        return kube.job_failed(job, at, reason="DeadlineExceeded"), [pod]
    if how == "killed":
        pod = kube.pod(job, 137, "", at)
        del pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        return kube.job_failed(job, at), [pod]
    error = {"class": "transient", "code": "DumpFailed", "message": "pg_dump exited 1; nothing was published"}
    if how == "permanent":
        error = {
            "class": "permanent",
            "code": "StorageAccessDenied",
            "message": "the object store refused the keys",
        }
    code = 2 if how == "permanent" else 1
    return kube.job_failed(job, at), [
        kube.pod(job, code, kube.worker_result("DatabaseBackup", "backup", error=error), at)
    ]


@pytest.mark.parametrize(
    ("how", "phase", "ready"),
    [
        ("running", "Provisioning", False),
        ("complete", "Completed", True),
        ("deadline", "Failed", False),
        ("killed", "Failed", False),
        ("transient", "Failed", False),
        ("permanent", "Failed", False),
    ],
)
def test_backup_status_from_its_job(how: str, phase: str, ready: bool) -> None:
    key, job = only_job(compose(S3_BACKUP, BACKUP_REQUIRED))
    observed, pods = finished(kube.observed(job, key), how, NOW - timedelta(seconds=5))
    rsp = compose(S3_BACKUP, {**BACKUP_REQUIRED, "pods": pods}, observed={key: observed})
    status = kube.status(rsp)
    assert status["phase"] == phase, status
    assert (rsp.desired.composite.ready == fnv1.READY_TRUE) is ready
    assert list(kube.jobs(rsp)) == [key], "the Job is kept, no other started"
    if phase == "Completed":
        assert status["backup"] == BACKUP_FACTS
        assert kube.conditions(rsp)["Provisioned"][0] == "True"
    else:
        assert "backup" not in status
    if how == "deadline":
        assert "activeDeadlineSeconds" in status["message"] or "killed" in status["message"]


def test_a_completed_backup_is_never_run_again() -> None:
    """Hours later, with a new admin Secret revision and another worker image, the finished Job stays and
    nothing new is composed: the backup was published once."""
    key, job = only_job(compose(S3_BACKUP, BACKUP_REQUIRED))
    observed, pods = finished(kube.observed(job, key), "complete", NOW - timedelta(seconds=5))
    done = kube.status(compose(S3_BACKUP, {**BACKUP_REQUIRED, "pods": pods}, observed={key: observed}))
    assert done["phase"] == "Completed"
    later = {
        **(BACKUP_INPUT or {}),
        "worker": {**BACKUP_INPUT["worker"], "image": "example.org/dbops-worker:next"},
    }
    admin = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin", "resourceVersion": "99"}}
    for required in ({**BACKUP_REQUIRED, "admin-secret": [admin]}, {}):
        rsp = compose(S3_BACKUP, required, observed={key: observed}, status=done, input_=later)
        assert kube.status(rsp)["phase"] == "Completed"
        assert kube.status(rsp)["backup"] == BACKUP_FACTS
        assert list(kube.jobs(rsp)) == [key]
        assert rsp.desired.composite.ready == fnv1.READY_TRUE


def test_a_transient_failure_is_retried_with_a_new_attempt_after_back_off() -> None:
    key, job = only_job(compose(S3_BACKUP, BACKUP_REQUIRED))
    observed, pods = finished(kube.observed(job, key), "transient", NOW - timedelta(hours=1))
    rsp = compose(S3_BACKUP, {**BACKUP_REQUIRED, "pods": pods}, observed={key: observed})
    jobs = kube.jobs(rsp)
    assert len(jobs) == 2 and kube.status(rsp)["phase"] == "Provisioning"
    [new] = [j for k, j in jobs.items() if k != key]
    assert new["metadata"]["annotations"]["dbops.dbprovision.io/attempt"] == "2"


# --- DatabaseRestore ------------------------------------------------------------------------------------------------

COMPLETED_BACKUP = kube.claim("DatabaseBackup", "orders-20261206", S3_BACKUP["spec"], phase="Completed")
RESTORE_REQUIRED = {"backup": [COMPLETED_BACKUP], "database": [SCRATCH_DB], "instance": [INTERNAL]}


def test_restore_from_a_backup_claim_composes_a_restore_job() -> None:
    rsp = compose(RESTORE, RESTORE_REQUIRED)
    _, job = only_job(rsp)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "restore"]
    request = kube.job_request(job)
    assert request["kind"] == "DatabaseRestore"
    assert request["spec"]["database"] == "scratch"
    assert request["spec"]["name"] == "orders-20261206"
    assert request["spec"]["overwrite"] is False
    assert request["spec"]["storage"]["s3"]["bucket"] == "db-backups"
    parse(json.dumps(request), "restore")
    env = kube.job_env(job)
    assert env["DBOPS_BACKUP_KEY_FILE"]["value"] == "/etc/dbops/backup/key/key"
    assert env["DBOPS_S3_ACCESS_KEY_FILE"]["value"] == "/etc/dbops/backup/s3/access-key"
    assert job["spec"]["activeDeadlineSeconds"] == 7200


def test_restore_from_path_with_overwrite() -> None:
    rsp = compose(FROM_PATH, {"database": [SCRATCH_DB], "instance": [INTERNAL]})
    _, job = only_job(rsp)
    spec = kube.job_request(job)["spec"]
    assert spec["name"] == "scratch-to-volume" and spec["overwrite"] is True
    assert spec["storage"] == {"type": "volume", "volume": {"path": "/var/lib/dbops/backups"}}
    assert "DBOPS_BACKUP_KEY_FILE" not in kube.job_env(job)


@pytest.mark.parametrize(
    ("backup", "want"),
    [
        ([], "spec.backupRef: DatabaseBackup orders-20261206 not found"),
        (
            [kube.claim("DatabaseBackup", "orders-20261206", S3_BACKUP["spec"], phase="Provisioning")],
            "DatabaseBackup orders-20261206 is not Completed",
        ),
        (
            [kube.claim("DatabaseBackup", "orders-20261206", S3_BACKUP["spec"], phase="Failed")],
            "is not Completed (phase Failed",
        ),
    ],
    ids=["missing", "running", "failed"],
)
def test_restore_waits_for_a_completed_backup(backup: list[dict[str, Any]], want: str) -> None:
    rsp = compose(RESTORE, {**RESTORE_REQUIRED, "backup": backup})
    status = kube.status(rsp)
    assert status["phase"] == "Pending" and want in status["message"], status
    assert kube.jobs(rsp) == {}


# --- refused specs ------------------------------------------------------------------------------------------------


def _with(claim: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(claim)
    node = out["spec"]
    *parents, last = path.split(".")
    for name in parents:
        node = node.setdefault(name, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


REFUSED = [
    (S3_BACKUP, "storage.type", "gcs", "storage.type gcs and azure are not supported"),
    (S3_BACKUP, "storage.type", "pvc", "storage needs exactly the block its type names"),
    (S3_BACKUP, "compression.algorithm", "lz4", "spec.compression.algorithm"),
    (S3_BACKUP, "encryption.algorithm", "aes-256-cbc", "spec.encryption.algorithm"),
    (S3_BACKUP, "encryption.secretRef", None, "encryption.enabled needs encryption.secretRef"),
    (S3_BACKUP, "storage.s3.endpoint", "http://minio:9000", "an http:// endpoint needs allowHttp: true"),
    (S3_BACKUP, "storage.s3.secretRef", None, "spec.storage.s3.secretRef"),
    (S3_BACKUP, "databaseRef.namespace", "other", "cross-namespace references are not supported"),
    (S3_BACKUP, "encryption.secretRef.namespace", "other", "cross-namespace references are not supported"),
    (PVC_BACKUP, "storage.pvc.subPath", "../etc", "spec.storage.pvc.subPath"),
    (S3_BACKUP, "ttl", "720h", "spec.ttl: ttl is not supported: dbops never deletes a DatabaseBackup"),
    (RESTORE, "fromPath", FROM_PATH["spec"]["fromPath"], "set exactly one of backupRef and fromPath"),
    (
        RESTORE,
        "overwrite",
        True,
        "overwrite: true needs confirmation.acknowledgeDataLoss: I-UNDERSTAND-DATA-LOSS",
    ),
    (RESTORE, "target.databaseRef.namespace", "other", "cross-namespace references are not supported"),
]


@pytest.mark.parametrize(
    ("claim", "path", "value", "want"), REFUSED, ids=[f"{c['kind']}-{p}-{v}" for c, p, v, _ in REFUSED]
)
def test_refused_specs_fail_naming_the_field(claim: dict[str, Any], path: str, value: Any, want: str) -> None:
    bad = _with(claim, path, value)
    required = BACKUP_REQUIRED if claim["kind"] == "DatabaseBackup" else RESTORE_REQUIRED
    rsp = compose(bad, required, offline=True)
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and want in status["message"], status
    assert kube.jobs(rsp) == {}


# --- the namespaced XR shape ----------------------------------------------------------------------------------------


def test_namespaced_backup_and_restore_compose_the_same_jobs() -> None:
    """v2 namespaced XRs (ns.dbops.dbprovision.io): references resolve to namespaced XRs of the same group, the
    backup's name is the XR's own, and a restore waits for the DatabaseBackup XR to be Completed."""
    db = kube.namespaced_xr("Database", "orders-db", ORDERS_DB["spec"], "Ready")
    inst = kube.namespaced_xr("DatabaseInstance", "pg-main", INSTANCE["spec"], "Ready")
    xr = kube.namespaced_xr("DatabaseBackup", "orders-20261206", S3_BACKUP["spec"])
    rsp = call(kube.request(xr, required={"database": [db], "instance": [inst]}, input_=BACKUP_INPUT))
    _, job = only_job(rsp)
    request = kube.job_request(job)
    assert request["spec"]["name"] == "orders-20261206" and request["spec"]["database"] == "orders"
    assert request["owner"]["kind"] == "DatabaseBackup"

    scratch = kube.namespaced_xr("Database", "scratch-db", SCRATCH_DB["spec"], "Ready")
    internal = kube.namespaced_xr("DatabaseInstance", "pg-internal", INTERNAL["spec"], "Ready")
    restore = kube.namespaced_xr("DatabaseRestore", "orders-into-scratch", RESTORE["spec"])
    for phase, jobs in (("Provisioning", 0), ("Completed", 1)):
        backup = kube.namespaced_xr("DatabaseBackup", "orders-20261206", S3_BACKUP["spec"], phase)
        required = {"backup": [backup], "database": [scratch], "instance": [internal]}
        rsp = call(kube.request(restore, required=required, input_=RESTORE_INPUT))
        assert len(kube.jobs(rsp)) == jobs, kube.status(rsp)
    [job] = kube.jobs(rsp).values()
    assert kube.job_request(job)["spec"]["name"] == "orders-20261206"


# --- DatabaseBackupSchedule -----------------------------------------------------------------------------------------

SCHEDULE = EXAMPLES[("DatabaseBackupSchedule", "orders-nightly")]
SCHEDULE_INPUT = kube.composition_input("DatabaseBackupSchedule")


def test_schedule_composes_a_cronjob_running_the_backup_per_run() -> None:
    xr = kube.xr_from_claim(SCHEDULE)
    rsp = call(kube.request(xr, required=BACKUP_REQUIRED, input_=SCHEDULE_INPUT))
    cronjob = kube.desired(rsp)["cronjob"]
    assert kube.status(rsp)["phase"] == "Provisioning"
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    assert cronjob["metadata"]["name"] == "orders-nightly"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"], spec["concurrencyPolicy"]) == (
        "0 3 * * *",
        "Europe/Berlin",
        False,
        "Forbid",
    )
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (5, 3)
    job = {"spec": spec["jobTemplate"]["spec"]}
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dbops-worker", "backup"]
    request = kube.job_request(job)
    assert request["kind"] == "DatabaseBackup" and request["spec"]["perRun"] is True
    assert request["spec"]["database"] == "orders"
    parse(json.dumps(request), "backup")
    env = kube.job_env(job)
    assert env["DBOPS_JOB_NAME"] == {
        "name": "DBOPS_JOB_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}},
    }
    assert env["DBOPS_BACKUP_KEY_FILE"]["value"] == "/etc/dbops/backup/key/key"
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert kube.jobs(rsp) == {}, "no Job of its own: the CronJob starts them"


def test_schedule_is_ready_once_its_cronjob_exists_and_reports_the_last_runs() -> None:
    xr = kube.xr_from_claim(SCHEDULE)
    first = call(kube.request(xr, required=BACKUP_REQUIRED, input_=SCHEDULE_INPUT))
    observed = kube.observed(kube.desired(first)["cronjob"], "cronjob")
    observed["status"] = {
        "lastScheduleTime": "2026-12-06T02:00:00Z",
        "lastSuccessfulTime": "2026-12-06T02:01:10Z",
        "active": [],
    }
    rsp = call(
        kube.request(
            xr, observed_resources={"cronjob": observed}, required=BACKUP_REQUIRED, input_=SCHEDULE_INPUT
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == "Ready" and rsp.desired.composite.ready == fnv1.READY_TRUE
    assert status["schedule"] == {
        "cronJob": "orders-nightly",
        "active": 0,
        "lastScheduleTime": "2026-12-06T02:00:00Z",
        "lastSuccessfulTime": "2026-12-06T02:01:10Z",
    }
    assert "last backup published at 2026-12-06T02:01:10Z" in status["message"]


@pytest.mark.parametrize(
    ("path", "value", "want"),
    [
        ("retention.maxAge", "30d", "spec.retention.maxAge"),
        ("retention.keepDaily", -1, "spec.retention.keepDaily"),
        ("template.spec.ttl", "720h", "spec.template.spec.ttl: ttl is not supported"),
        ("concurrencyPolicy", "Replace", "concurrencyPolicy Allow and Replace are refused"),
        ("schedule", "every night", "spec.schedule"),
        ("template.spec.databaseRef.namespace", "other", "cross-namespace references are not supported"),
    ],
)
def test_schedule_refusals(path: str, value: Any, want: str) -> None:
    rsp = call(
        kube.request(
            kube.xr_from_claim(_with(SCHEDULE, path, value)), required=BACKUP_REQUIRED, input_=SCHEDULE_INPUT
        ),
        offline=True,
    )
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and want in status["message"], status
    assert kube.desired(rsp) == {}


def _run_pod(job: str, finished: str, result: dict[str, Any]) -> dict[str, Any]:
    """A finished Pod of one of the schedule's runs, its worker result as the termination message."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-x", "namespace": "default", "labels": {"job-name": job}},
        "status": {
            "containerStatuses": [
                {
                    "name": "worker",
                    "state": {
                        "terminated": {"exitCode": 0, "finishedAt": finished, "message": json.dumps(result)}
                    },
                }
            ]
        },
    }


def test_schedule_sends_its_retention_and_identity_to_every_run() -> None:
    xr = kube.xr_from_claim(SCHEDULE)
    rsp = call(kube.request(xr, required=BACKUP_REQUIRED, input_=SCHEDULE_INPUT))
    job = {"spec": kube.desired(rsp)["cronjob"]["spec"]["jobTemplate"]["spec"]}
    request = kube.job_request(job)
    assert request["spec"]["schedule"] == "default/orders-nightly"
    assert request["spec"]["retention"] == {
        "keepLast": 3,
        "keepDaily": 7,
        "keepWeekly": 5,
        "keepMonthly": 12,
        "maxAgeSeconds": 9600 * 3600,
        "timeZone": "Europe/Berlin",
        "dryRun": False,
    }
    parse(json.dumps(request), "backup")
    # Without Pod reads (the shipped Compositions) no Pods are asked for.
    assert "pods" not in rsp.requirements.resources


def test_schedule_status_shows_what_the_latest_run_pruned_or_would_prune() -> None:
    claim = _with(SCHEDULE, "retention.dryRun", True)
    xr = kube.xr_from_claim(claim)
    step = kube.reading_pods(SCHEDULE_INPUT)
    first = call(kube.request(xr, required=BACKUP_REQUIRED, input_=step))
    assert "pods" in first.requirements.resources
    observed = kube.observed(kube.desired(first)["cronjob"], "cronjob")
    observed["status"] = {"lastSuccessfulTime": "2026-12-06T02:01:10Z"}
    dry = {
        "dryRun": True,
        "kept": 3,
        "wouldDelete": [
            {"name": "orders-nightly-29410000", "published": "2025-11-01T02:01:00Z", "why": "older"}
        ],
        "wouldDeleteCount": 1,
    }
    older = {"ok": True, "kind": "DatabaseBackup", "action": "backup", "observed": {"retention": {"kept": 9}}}
    latest = {"ok": True, "kind": "DatabaseBackup", "action": "backup", "observed": {"retention": dry}}
    pods = [
        _run_pod("orders-nightly-29420000", "2026-12-05T02:01:10Z", older),
        _run_pod("orders-nightly-29421440", "2026-12-06T02:01:10Z", latest),
    ]
    rsp = call(
        kube.request(
            xr,
            observed_resources={"cronjob": observed},
            required={**BACKUP_REQUIRED, "pods": pods},
            input_=step,
        )
    )
    status = kube.status(rsp)
    assert status["schedule"]["retention"] == {
        "job": "orders-nightly-29421440",
        "finishedAt": "2026-12-06T02:01:10Z",
        **dry,
    }
    assert (
        "retention (dry run) would delete 1 backup(s), kept 3 (Job orders-nightly-29421440)"
        in status["message"]
    )
    # A run whose retention stopped says why; the backup itself was published.
    warned = {**latest, "observed": {}, "warnings": ["retention: listing failed (StorageUnavailable); ..."]}
    pods.append(_run_pod("orders-nightly-29422880", "2026-12-07T02:01:10Z", warned))
    rsp = call(
        kube.request(
            xr,
            observed_resources={"cronjob": observed},
            required={**BACKUP_REQUIRED, "pods": pods},
            input_=step,
        )
    )
    status = kube.status(rsp)
    assert status["schedule"]["retention"]["warning"].startswith("retention: listing failed")
    assert "retention did not run (retention: listing failed" in status["message"]
