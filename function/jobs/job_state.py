"""What an observed worker Job (and, when Crossplane may read them, its Pods) says about the run.

Precedence for a failure's class: the worker's JSON result (termination message) > the container's exit code >
the Job's failure reason (`PodFailurePolicy` means exit 2). Without Pods the Job's conditions are enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dbops_api.result import ERROR_CLASSES, EXIT_PERMANENT, read_result
from function.jobs.job import CONTAINER
from function.objects import dig, items, mapping, text

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
MESSAGE_MAX = 1024

Phase = Literal["running", "complete", "failed"]


@dataclass(frozen=True)
class JobState:
    name: str
    phase: Phase
    permanent: bool = False
    message: str = ""
    code: str = ""
    result: dict[str, Any] | None = None
    finished_at: datetime | None = None
    started_at: datetime | None = (
        None  # the Job's start (else its creation): with finished_at, how long it took
    )


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in items(job, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _terminations(job_name: str, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker container's `state.terminated` of this Job's Pods, latest last."""
    out: list[dict[str, Any]] = []
    for pod in pods:
        labels = mapping(pod, "metadata", "labels")
        if not any(labels.get(label) == job_name for label in JOB_NAME_LABELS):
            continue
        for status in items(pod, "status", "containerStatuses"):
            if not isinstance(status, dict) or status.get("name") != CONTAINER:
                continue
            terminated = dig(status, "state", "terminated")
            if isinstance(terminated, dict):
                out.append(terminated)
    return sorted(out, key=lambda t: str(t.get("finishedAt", "")))


def worker_result(message: Any) -> dict[str, Any] | None:
    return read_result(message)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 3] + "..."


_SIGNALS = {6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


def _killed(exit_code: Any, reason: str, job_reason: str) -> str:
    """What to tell the user when the worker died from a signal (exit 128 + n) and so reported nothing; "" when it
    exited by itself. The cause is guessed from the container's reason (OOMKilled) and the Job's (DeadlineExceeded).
    A kill is transient whatever the cause: the next run converges what the killed one left (docs/reliability.md)."""
    if not isinstance(exit_code, int) or not 128 < exit_code <= 128 + 64:
        return ""
    number = exit_code - 128
    head = (
        f"the worker was killed ({_SIGNALS.get(number, f'signal {number}')}, exit code {exit_code}"
        f"{', ' + reason if reason else ''}) before it could report a result"
    )
    if reason == "OOMKilled":
        cause = "it ran out of memory; raise the step Input's worker.resources.limits.memory"
    elif job_reason == "DeadlineExceeded":
        cause = "the Job ran longer than the step Input's job.activeDeadlineSeconds"
    elif number == 9:
        cause = (
            "likely out of memory (see the Pod's events; the limit is the step Input's "
            "worker.resources.limits.memory), else the node went away or someone killed the Pod"
        )
    else:
        cause = "the Pod was stopped (node drain, eviction or deletion)"
    return f"{head}: {cause}; it is retried"


def job_state(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobState:
    name = text(job, "metadata", "name")
    complete = _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    terminations = _terminations(name, pods)
    started = parse_time(dig(job, "status", "startTime")) or parse_time(
        dig(job, "metadata", "creationTimestamp")
    )
    if complete and not failed:
        ok = [t for t in terminations if t.get("exitCode") == 0]
        result = worker_result(ok[-1].get("message")) if ok else None
        finished = parse_time(dig(job, "status", "completionTime")) or parse_time(
            complete.get("lastTransitionTime")
        )
        return JobState(name, "complete", result=result, finished_at=finished, started_at=started)
    if not failed:
        return JobState(name, "running")
    last = terminations[-1] if terminations else {}
    result = worker_result(last.get("message"))
    error = mapping(result, "error")
    exit_code = last.get("exitCode")
    if error.get("class") in ERROR_CLASSES:
        permanent = error["class"] == "permanent"
    elif isinstance(exit_code, int):
        permanent = exit_code == EXIT_PERMANENT
    else:
        permanent = failed.get("reason") == "PodFailurePolicy"
    output = last.get("message")
    last_line = output.strip().splitlines()[-1] if isinstance(output, str) and output.strip() else ""
    killed = _killed(exit_code, str(last.get("reason", "")), str(failed.get("reason", "")))
    if error.get("message"):
        message = str(error["message"])
    elif killed:
        # With FallbackToLogsOnError the "message" of a killed worker is its log tail: context, not the cause.
        message = killed + (f"; its last output: {last_line}" if last_line else "")
    elif last_line:
        message = last_line
    elif isinstance(exit_code, int):
        message = f"the worker exited with code {exit_code} ({last.get('reason', 'Error')})"
    else:
        reason = failed.get("reason", "Failed")
        detail = failed.get("message", "")
        message = f"the Job failed ({reason}){': ' + detail if detail else ''}"
    finished = (
        parse_time(failed.get("lastTransitionTime"))
        or parse_time(last.get("finishedAt"))
        or parse_time(dig(job, "status", "startTime"))
        or parse_time(dig(job, "metadata", "creationTimestamp"))
    )
    return JobState(
        name,
        "failed",
        permanent=permanent,
        message=_short(message),
        code=str(error.get("code", "")),
        result=result,
        finished_at=finished,
        started_at=started,
    )
