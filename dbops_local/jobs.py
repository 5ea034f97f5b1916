"""Run a Job's Pod locally: the container's command with exactly the environment the Pod spec declares.

Environment variables come from literal values and `secretKeyRef`s resolved against the Secrets in play; Secret
volumes are written to a private temporary directory and paths under their mount points are translated to it;
the termination-log file is a temporary file handed to the worker as `DBOPS_RESULT_FILE`. To that the image's
own environment is added (`IMAGE_ENV`, a `PATH`, a `HOME` unless declared) and nothing else: this process's
environment never leaks in. Exit codes, the termination message and the Job's rules (`backoffLimit`,
`podFailurePolicy`, `activeDeadlineSeconds` for the whole Job) behave as in Kubernetes.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbops_local.store import Obj

TERMINATION_LOG = "/dev/termination-log"
LOG_TAIL_BYTES = 2048  # what Kubernetes keeps of logs for FallbackToLogsOnError
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# What the worker image's ENV lines (and its python base image) set; a declared variable overrides them.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
DEADLINE_MESSAGE = "Job was active longer than specified deadline"  # the Job controller's words
SecretLookup = Callable[[str, str], Obj | None]
# (namespace, claimName) -> the directory standing in for a PersistentVolumeClaim's volume; raises PodCannotStart
# when it cannot be mounted (no such claim, no directory for volumes).
VolumeLookup = Callable[[str, str], Path]


class PodCannotStart(Exception):
    """The kubelet cannot start the container yet; `reason` is the container's waiting reason as Kubernetes
    reports it: `CreateContainerConfigError` (message in the status) when an env var's Secret or key is missing,
    `ContainerCreating` while a Secret volume cannot be mounted (the message is a `FailedMount` event)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class PodRun:
    exit_code: int
    message: str
    logs: str
    started: str
    finished: str
    deadline_exceeded: bool = False  # killed at the Job's activeDeadlineSeconds


@dataclass
class JobRun:
    pods: list[Obj] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # Pod name -> stdout and stderr (`kubectl logs`)
    events: dict[str, str] = field(default_factory=dict)  # Pod name -> its last warning event (`describe`)
    ran: bool = False  # whether a container started (False while the Pod waits, or past the deadline)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(TIME_FORMAT)


def _parse_time(timestamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(timestamp, TIME_FORMAT).replace(tzinfo=datetime.UTC)


def secret_value(secret: Obj, key: str) -> str | None:
    data = secret.get("data") or {}
    if key in data:
        return base64.b64decode(data[key]).decode()
    string_data = secret.get("stringData") or {}
    value = string_data.get(key)
    return value if isinstance(value, str) else None


def resolve_command(command: list[str]) -> list[str]:
    """The image's entrypoints are our console scripts; find them next to this Python first."""
    if command:
        local = shutil.which(command[0], path=os.path.dirname(sys.executable))
        if local:
            return [local, *command[1:]]
    return command


def run_job(
    job: Obj,
    lookup_secret: SecretLookup,
    timeout_default: float = 600,
    lookup_volume: VolumeLookup | None = None,
) -> JobRun:
    """Run the Job's Pod (again after transient failures, as the Job controller would) and return its status.

    A Job that already has a `startTime` (its Pod was waiting for a Secret) keeps it: `activeDeadlineSeconds`
    counts from there for the whole Job, every Pod included, and ends it `DeadlineExceeded` as Kubernetes does."""
    spec = job["spec"]
    namespace = job["metadata"].get("namespace", "")
    pod_spec = spec["template"]["spec"]
    backoff_limit = int(spec.get("backoffLimit", 6))
    fail_codes = _fail_job_exit_codes(spec)
    active_deadline = datetime.timedelta(seconds=float(spec.get("activeDeadlineSeconds", timeout_default)))
    start_time = (job.get("status") or {}).get("startTime")
    # A fresh start counts from now exactly (startTime itself has whole seconds only).
    started = _parse_time(start_time) if start_time else datetime.datetime.now(datetime.UTC)
    status = {
        "startTime": start_time or started.strftime(TIME_FORMAT),
        "active": 0,
        "succeeded": 0,
        "failed": 0,
    }
    result = JobRun(status=status)
    for attempt in range(backoff_limit + 1):
        remaining = (started + active_deadline - datetime.datetime.now(datetime.UTC)).total_seconds()
        if remaining <= 0:
            return _deadline_exceeded(result)
        pod_name = f"{job['metadata']['name']}-{attempt:05d}"[:63]
        try:
            run = run_pod(
                pod_spec,
                namespace,
                lookup_secret,
                remaining,
                fields=pod_fields(job, pod_name),
                lookup_volume=lookup_volume,
            )
        except PodCannotStart as exc:
            result.pods.append(_pod(job, pod_name, pod_spec, waiting=exc))
            if exc.reason == "ContainerCreating":
                result.events[pod_name] = f"Warning FailedMount: {exc.message}"
            result.status["active"] = 1
            return result
        result.ran = True
        result.logs[pod_name] = run.logs
        if run.deadline_exceeded:
            # The Job controller deletes the Job's active Pods at the deadline: no Pod stays to be observed.
            result.status["failed"] += 1
            return _deadline_exceeded(result)
        result.pods.append(_pod(job, pod_name, pod_spec, run=run))
        if run.exit_code == 0:
            result.status.update(succeeded=1, completionTime=run.finished)
            result.status["conditions"] = [_condition("Complete", "", "")]
            return result
        result.status["failed"] += 1
        if run.exit_code in fail_codes:
            message = (
                f"Container {pod_spec['containers'][0]['name']} for pod {namespace}/{pod_name} failed with "
                f"exit code {run.exit_code} matching FailJob rule at index 0"
            )
            result.status["conditions"] = [
                _condition("FailureTarget", "PodFailurePolicy", message),
                _condition("Failed", "PodFailurePolicy", message),
            ]
            return result
    result.status["conditions"] = [
        _condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        _condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    ]
    return result


def _deadline_exceeded(result: JobRun) -> JobRun:
    result.status["active"] = 0
    result.status["conditions"] = [
        _condition("FailureTarget", "DeadlineExceeded", DEADLINE_MESSAGE),
        _condition("Failed", "DeadlineExceeded", DEADLINE_MESSAGE),
    ]
    return result


@dataclass
class PodProcess:
    """What the kubelet would start for a Pod: the command, exactly its environment, and where the termination
    message goes (Secret volumes and the termination-log file live under the caller's private directory)."""

    command: list[str]
    env: dict[str, str]
    result_file: Path
    container: Obj

    def termination_message(self, code: int, logs: str) -> str:
        """The file the container wrote, or with FallbackToLogsOnError the log tail of a failed container."""
        message = self.result_file.read_text()
        if (
            not message
            and code != 0
            and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            message = logs.encode()[-LOG_TAIL_BYTES:].decode(errors="replace")
        return message[:4096]


def pod_process(
    pod_spec: Obj,
    namespace: str,
    lookup_secret: SecretLookup,
    tmp: Path,
    *,
    fields: dict[str, str] | None = None,
    lookup_volume: VolumeLookup | None = None,
) -> PodProcess:
    """Resolve a Pod's first container against the Secrets `lookup_secret` finds; `PodCannotStart` when the
    kubelet could not start it yet. `fields`: what the downward API's `fieldRef`s read (`pod_fields`)."""
    container = pod_spec["containers"][0]
    mounts = _mount_secret_volumes(
        pod_spec, container, namespace, lookup_secret, tmp, lookup_volume=lookup_volume
    )
    env = _environment(container, namespace, lookup_secret, mounts, fields or {})
    term_path = container.get("terminationMessagePath", TERMINATION_LOG)
    result_file = tmp / "termination-log"
    result_file.touch()
    mounts[term_path] = str(result_file)
    env["DBOPS_RESULT_FILE"] = str(result_file)
    # The image's own environment (its PATH holds the worker's console script; a writable HOME unless the
    # Pod declares one); nothing from this process leaks in.
    env = {**IMAGE_ENV, "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(tmp), **env}
    command = resolve_command([*container.get("command", []), *container.get("args", [])])
    return PodProcess(command, env, result_file, container)


def run_pod(
    pod_spec: Obj,
    namespace: str,
    lookup_secret: SecretLookup,
    deadline: float,
    *,
    fields: dict[str, str] | None = None,
    lookup_volume: VolumeLookup | None = None,
) -> PodRun:
    with tempfile.TemporaryDirectory(prefix="dbops-pod-") as tmp:
        process = pod_process(
            pod_spec, namespace, lookup_secret, Path(tmp), fields=fields, lookup_volume=lookup_volume
        )
        started = now_rfc3339()
        try:
            proc = subprocess.run(
                process.command,
                env=process.env,
                capture_output=True,
                text=True,
                timeout=deadline,
                check=False,
            )
            code, logs = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            text = "".join(_text(part) for part in (exc.stdout, exc.stderr))
            logs = f"{text}\nkilled: the Job's activeDeadlineSeconds passed"
            return PodRun(137, "", logs, started, now_rfc3339(), deadline_exceeded=True)
        except OSError as exc:
            code, logs = 128, f"cannot start container: {exc}"
        return PodRun(code, process.termination_message(code, logs), logs, started, now_rfc3339())


def _text(output: str | bytes | None) -> str:
    """What a timed-out process wrote (bytes even in text mode, on some paths)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _fail_job_exit_codes(job_spec: Obj) -> set[int]:
    codes: set[int] = set()
    for rule in (job_spec.get("podFailurePolicy") or {}).get("rules", []):
        on = rule.get("onExitCodes") or {}
        if rule.get("action") == "FailJob" and on.get("operator") == "In":
            codes.update(int(v) for v in on.get("values", []))
    return codes


def _mount_secret_volumes(
    pod_spec: Obj,
    container: Obj,
    namespace: str,
    lookup: SecretLookup,
    root: Path,
    *,
    lookup_volume: VolumeLookup | None = None,
) -> dict[str, str]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        claim = volume.get("persistentVolumeClaim")
        if claim is not None:
            # The claim's directory (kept between runs), or its `subPath` inside, created as the kubelet does.
            if lookup_volume is None:
                raise PodCannotStart(
                    "ContainerCreating",
                    f'persistentvolumeclaim "{claim["claimName"]}": dbops-local has no directory for volumes '
                    "(--volumes DIR)",
                )
            directory = lookup_volume(namespace, claim["claimName"])
            sub = mount.get("subPath", "")
            if sub:
                if ".." in Path(sub).parts or Path(sub).is_absolute():
                    raise PodCannotStart(
                        "CreateContainerConfigError", f"subPath {sub!r} must be relative, no .."
                    )
                directory = directory / sub
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/")] = str(directory)
            continue
        target = root / "volumes" / mount["name"]
        target.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"].rstrip("/")] = str(target)
        source = volume.get("secret")
        if source is None:
            continue  # emptyDir and the like: an empty writable directory
        secret = lookup(namespace, source["secretName"])
        # The kubelet's words when it cannot mount the volume; the Pod stays ContainerCreating meanwhile.
        failed_mount = f'MountVolume.SetUp failed for volume "{mount["name"]}" : '
        if secret is None:
            if source.get("optional"):
                continue
            raise PodCannotStart(
                "ContainerCreating", f'{failed_mount}secret "{source["secretName"]}" not found'
            )
        items = source.get("items") or [{"key": k, "path": k} for k in {**secret.get("data", {})}]
        for item in items:
            value = secret_value(secret, item["key"])
            if value is None:
                if source.get("optional"):
                    continue
                raise PodCannotStart(
                    "ContainerCreating", f"{failed_mount}references non-existent secret key: {item['key']}"
                )
            path = target / item["path"]
            path.write_text(value)
            path.chmod(0o400)
    return mounts


def pod_fields(job: Obj, pod_name: str) -> dict[str, str]:
    """The Pod's fields a `fieldRef` may read, as the kubelet resolves them: its name, namespace and labels
    (`metadata.labels['job-name']`: the Job's name, what a CronJob's runs learn their name from)."""
    labels = _pod(job, pod_name, job["spec"]["template"]["spec"])["metadata"]["labels"]
    out = {"metadata.name": pod_name, "metadata.namespace": job["metadata"].get("namespace", "")}
    out.update({f"metadata.labels['{key}']": str(value) for key, value in labels.items()})
    return out


def _environment(
    container: Obj, namespace: str, lookup: SecretLookup, mounts: dict[str, str], fields: dict[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = _translate_value(str(var["value"]), mounts)
            continue
        field_ref = (var.get("valueFrom") or {}).get("fieldRef")
        if field_ref is not None:
            if field_ref.get("fieldPath") in fields:
                env[var["name"]] = fields[field_ref["fieldPath"]]
            continue
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            continue
        secret = lookup(namespace, ref["name"])
        value = secret_value(secret, ref["key"]) if secret else None
        if value is None:
            if ref.get("optional"):
                continue
            what = (
                f'secret "{ref["name"]}" not found'
                if secret is None
                else (f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
            )
            raise PodCannotStart("CreateContainerConfigError", what)
        env[var["name"]] = value
    return env


def _translate_value(value: str, mounts: dict[str, str]) -> str:
    """A literal env value with mount paths translated: the value itself, or the strings inside a JSON object (the
    worker's request names a mounted volume's path, `storage.volume.path`)."""
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return _translate(value, mounts)
        translated = _translate_json(data, mounts)
        return value if translated == data else json.dumps(translated, separators=(",", ":"), sort_keys=True)
    return _translate(value, mounts)


def _translate_json(data: Any, mounts: dict[str, str]) -> Any:
    if isinstance(data, str):
        return _translate(data, mounts)
    if isinstance(data, dict):
        return {k: _translate_json(v, mounts) for k, v in data.items()}
    if isinstance(data, list):
        return [_translate_json(v, mounts) for v in data]
    return data


def _translate(value: str, mounts: dict[str, str]) -> str:
    for mount_path, local in mounts.items():
        if value == mount_path or value.startswith(mount_path + "/"):
            return local + value[len(mount_path) :]
    return value


def _condition(kind: str, reason: str, message: str) -> dict[str, str]:
    now = now_rfc3339()
    out = {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _pod(
    job: Obj, name: str, pod_spec: Obj, run: PodRun | None = None, waiting: PodCannotStart | None = None
) -> Obj:
    job_name = job["metadata"]["name"]
    uid = job["metadata"].get("uid", "")
    container = pod_spec["containers"][0]["name"]
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job["metadata"].get("namespace", ""),
            "labels": {
                # The Job controller gives its Pods the template's labels plus its own.
                **(job["spec"]["template"].get("metadata", {}).get("labels", {})),
                "batch.kubernetes.io/job-name": job_name,
                "job-name": job_name,
                "batch.kubernetes.io/controller-uid": uid,
                "controller-uid": uid,
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
    if run is None:
        state: dict[str, str] = {"reason": waiting.reason if waiting else "ContainerCreating"}
        if waiting is not None and waiting.reason != "ContainerCreating":
            state["message"] = waiting.message
        pod["status"] = {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": container,
                    "ready": False,
                    "restartCount": 0,
                    "image": "",
                    "state": {"waiting": state},
                }
            ],
        }
        return pod
    terminated = {
        "exitCode": run.exit_code,
        "reason": "Completed" if run.exit_code == 0 else "Error",
        "startedAt": run.started,
        "finishedAt": run.finished,
    }
    if run.message:
        terminated["message"] = run.message
    pod["status"] = {
        "phase": "Succeeded" if run.exit_code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": container,
                "ready": False,
                "restartCount": 0,
                "image": "",
                "state": {"terminated": terminated},
            }
        ],
    }
    return pod
