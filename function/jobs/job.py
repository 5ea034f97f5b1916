"""The worker Job: one per desired state, named and keyed by a hash, hardened, secrets only by reference."""

from __future__ import annotations

import hashlib
import json
import marshal
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dbops_api.result import EXIT_PERMANENT
from function.jobs.connection import SecretKeyRef, ServerAccess
from function.labels import managed_labels
from function.view import View
from function.wire import MEMO_ENTRIES

JOB_PREFIX = "job-"
CONTAINER = "worker"
ANNOTATION_PREFIX = "dbops.dbprovision.io/"
STATE_HASH_ANNOTATION = ANNOTATION_PREFIX + "state-hash"
EPOCH_ANNOTATION = ANNOTATION_PREFIX + "resync-epoch"
ATTEMPT_ANNOTATION = ANNOTATION_PREFIX + "attempt"
PASSWORD_REVISION_ANNOTATION = ANNOTATION_PREFIX + "password-revision"
ACTION_ANNOTATION = ANNOTATION_PREFIX + "action"
TLS_DIR = "/etc/dbops/tls"
TLS_FILES = {"ca": "ca.crt", "cert": "tls.crt", "key": "tls.key"}
NONROOT = 65532
NAME_MAX = 63  # the Job name becomes the value of the Pods' job-name label
DIGEST_LEN = 10


@dataclass(frozen=True)
class WorkerCall:
    """What a Job runs: `dbops-worker <action>` with this request, these credentials and this password."""

    action: str
    request: dict[str, Any]
    access: ServerAccess
    password: SecretKeyRef | None
    password_revision: str
    extras: JobExtras | None = None


@dataclass(frozen=True)
class JobExtras:
    """What a kind adds to its Job (a backup's mounted Secrets and volume, its own deadline): plain env values
    (file paths, never secrets), volumes and their mounts."""

    env: tuple[tuple[str, str], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    active_deadline_seconds: int | None = None
    # Variables from the Pod's own fields (downward API), e.g. the Job name a schedule's run is stored under.
    field_env: tuple[tuple[str, str], ...] = ()


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_hash(call: WorkerCall) -> str:
    """The desired state in the server: request, action, password revision (never the password) and the revision
    of the admin/TLS Secrets. Equal state hashes mean a re-run would change nothing that was asked for (a resync
    or a retry). The request's `apiVersion` is left out: it says how the state is written, not what it is, so a
    function upgrade that only bumps it does not re-run every Job (the new Job template still replaces old ones at
    their next run)."""
    material = {
        "action": call.action,
        "request": {k: v for k, v in call.request.items() if k != "apiVersion"},
        "passwordRevision": call.password_revision,
        "credentialsRevision": call.access.revision,
    }
    return _hash(material, 16)


def job_digest(state: str, template: dict[str, Any], epoch: int, attempt: int) -> str:
    """Distinguishes Jobs: the state, the whole Pod template (a Job's template is immutable, so any change there,
    e.g. a new worker image, needs a new Job), the resync epoch and the attempt."""
    material = {"state": state, "template": template, "epoch": epoch, "attempt": attempt}
    return _hash(material, DIGEST_LEN)


def _hash(material: dict[str, Any], length: int) -> str:
    """The first `length` hex digits of the SHA-256 of `material`'s canonical JSON."""
    return hashlib.sha256(memo_canonical(material).encode()).hexdigest()[:length]


def memo_canonical(value: dict[str, Any]) -> str:
    """`canonical(value)`, memoized by `value`'s `marshal` bytes: canonical JSON costs five times as much, and the
    same request and Job template come back call after call. The memo holds JSON text of worker requests and Job
    templates, which name Secrets, never hold their values."""
    try:
        blob = marshal.dumps(value)
    except ValueError:  # not plain data (never built that way here): no memo
        return canonical(value)
    return _memo_canonical(blob)


@lru_cache(maxsize=MEMO_ENTRIES)
def _memo_canonical(blob: bytes) -> str:
    return canonical(marshal.loads(blob))  # noqa: S302 (our own bytes, made by memo_canonical above)


def job_name(xr_name: str, digest: str) -> str:
    prefix = xr_name[: NAME_MAX - DIGEST_LEN - 1].rstrip("-.")
    return f"{prefix}-{digest}" if prefix else digest


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def job_spec(view: View, call: WorkerCall) -> dict[str, Any]:
    """The Job's spec (the part that must not change for a given Job)."""
    worker = view.input["worker"]
    job = view.input["job"]
    env: list[dict[str, Any]] = [
        {"name": "DBOPS_REQUEST", "value": memo_canonical(call.request)},
        _secret_env("DBOPS_ADMIN_USERNAME", call.access.admin_username),
        _secret_env("DBOPS_ADMIN_PASSWORD", call.access.admin_password),
    ]
    if call.password is not None:
        env.append(_secret_env("DBOPS_PASSWORD", call.password))
        # Not a secret: which password that is, so the worker can remember what it set where no login can check.
        env.append({"name": "DBOPS_CREDENTIAL_REVISION", "value": call.password_revision})
    env.append({"name": "HOME", "value": "/tmp"})  # noqa: S108 (an emptyDir: the root filesystem is read-only)
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    tls = call.access.tls
    if tls is not None:
        env += [
            {"name": "DBOPS_TLS_CA", "value": f"{TLS_DIR}/{TLS_FILES['ca']}"},
            {"name": "DBOPS_TLS_CERT", "value": f"{TLS_DIR}/{TLS_FILES['cert']}"},
            {"name": "DBOPS_TLS_KEY", "value": f"{TLS_DIR}/{TLS_FILES['key']}"},
        ]
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "tls",
                "secret": {
                    "secretName": tls.secret,
                    # Absent keys are skipped (a CA without a client certificate is plain TLS, not mTLS).
                    "optional": True,
                    "defaultMode": 0o440,
                    "items": [
                        {"key": tls.ca, "path": TLS_FILES["ca"]},
                        {"key": tls.cert, "path": TLS_FILES["cert"]},
                        {"key": tls.key, "path": TLS_FILES["key"]},
                    ],
                },
            }
        )
    extras = call.extras or JobExtras()
    env += [{"name": k, "value": v} for k, v in extras.env]
    env += [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in extras.field_env]
    mounts += [dict(m) for m in extras.mounts]
    volumes += [dict(v) for v in extras.volumes]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": worker["image"],
        "imagePullPolicy": worker["imagePullPolicy"],
        "command": ["dbops-worker", call.action],
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = {k: dict(v) for k, v in worker.get("resources", {}).items() if v}
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT,
            "runAsGroup": NONROOT,
            "fsGroup": NONROOT,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if worker.get("serviceAccountName"):
        pod["serviceAccountName"] = worker["serviceAccountName"]
    if worker.get("nodeSelector"):
        pod["nodeSelector"] = dict(worker["nodeSelector"])
    if worker.get("priorityClassName"):
        pod["priorityClassName"] = worker["priorityClassName"]
    return {
        "backoffLimit": job["backoffLimit"],
        "activeDeadlineSeconds": extras.active_deadline_seconds or job["activeDeadlineSeconds"],
        "podFailurePolicy": {
            "rules": [
                # Exit 2 is a permanent failure: another Pod would fail the same way.
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "In",
                        "values": [EXIT_PERMANENT],
                    },
                },
                # An evicted or preempted Pod is not the worker's failure; do not count it.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "template": {"metadata": {"labels": managed_labels(view)}, "spec": pod},
    }


def job(
    view: View, name: str, spec: dict[str, Any], call: WorkerCall, *, state: str, epoch: int, attempt: int
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": view.jobs_namespace,
            "labels": managed_labels(view),
            # Crossplane deletes superseded Jobs without a propagation policy, and batch/v1 then orphans the
            # Pods by default; a foregroundDeletion finalizer set at creation makes that deletion cascade instead,
            # so finished Pods do not pile up with every resync.
            "finalizers": ["foregroundDeletion"],
            "annotations": {
                STATE_HASH_ANNOTATION: state,
                EPOCH_ANNOTATION: str(epoch),
                ATTEMPT_ANNOTATION: str(attempt),
                PASSWORD_REVISION_ANNOTATION: call.password_revision,
                ACTION_ANNOTATION: call.action,
            },
        },
        "spec": spec,
    }
