"""The audit trail: each finished worker run, once, as a report (metrics, the JSON log line) and, when the worker
changed something, an event on the claim.

A call *reports* a run when its status takes the run in for the first time, judged against the status the XR had
before the call (Crossplane hands it back on every call, so no memory of our own is needed and a restart or a
second replica reports nothing twice):

- a Job that completed: the status' `lastSuccessfulTime` becomes this Job's finish time;
- a Job that failed: what the status says (phase, message, job, attempts) changes and its `attempts` reaches this
  Job's attempt (a retry's call, which only starts the next attempt, does not report the failure a second time).

A status Crossplane failed to write is reported again on the next call: at least once, never per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from function.jobs.progress import Progress
from function.objects import mapping
from function.outcome import Result, WorkerReport

EVENT_REASON = "DatabaseChanged"
EVENT_MAX = 1024  # Kubernetes keeps at most this much of an event's message
SHOWN_CHANGES = 20
_SAID = ("phase", "message", "job", "attempts")


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else ""


def worker_report(
    before: Mapping[str, Any], status: Mapping[str, Any], prog: Progress
) -> WorkerReport | None:
    """The run this call reports for the first time (see the module's docstring), else None."""
    run = prog.reported
    if run is None or run.phase == "running":
        return None
    if run.phase == "complete":
        if run.finished_at is not None:
            news = before.get("lastSuccessfulTime") != _time(run.finished_at)
        else:
            news = any(before.get(k) != status.get(k) for k in _SAID)
        if not news or not prog.fresh:
            return None
    else:
        changed = any(before.get(k) != status.get(k) for k in _SAID)
        if not changed or before.get("attempts") == prog.attempts or prog.attempts < 1:
            return None
    result = run.result or {}
    error = mapping(result, "error")
    changes = result.get("changes")
    seconds = None
    if run.started_at is not None and run.finished_at is not None:
        seconds = max((run.finished_at - run.started_at).total_seconds(), 0.0)
    ok = run.phase == "complete"
    return WorkerReport(
        job=run.name,
        action=str(result.get("action", "")),
        engine=prog.engine,
        server=prog.server,
        ok=ok,
        error_class="" if ok else ("permanent" if run.permanent else "transient"),
        code="" if ok else (run.code or str(error.get("code", "")) or "Unknown"),
        # A plan (driftPolicy detect) changed nothing: its statements are in status.driftPlan, not the audit trail.
        changes=tuple(str(c) for c in changes)
        if isinstance(changes, list) and result.get("action") != "plan"
        else (),
        version=str(mapping(result, "server").get("version", "")),
        seconds=seconds,
        finished=run.finished_at.timestamp() if run.finished_at is not None else None,
    )


def audit_event(report: WorkerReport) -> Result | None:
    """The event for a run that changed something: Normal when it converged, Warning when it failed after changing
    part of what it planned. Nothing for a run that changed nothing (a resync that found no drift)."""
    if not report.changes:
        return None
    count = len(report.changes)
    head = (
        f"Job {report.job} {'changed' if report.ok else 'failed after changing'} {report.engine} {report.server}: "
        f"{count} statement{'s' if count != 1 else ''}: "
    )
    body = "; ".join(report.changes[:SHOWN_CHANGES])
    if count > SHOWN_CHANGES:
        body += f"; ... and {count - SHOWN_CHANGES} more"
    message = head + body
    if len(message) > EVENT_MAX:
        message = message[: EVENT_MAX - 3] + "..."
    return Result("Normal" if report.ok else "Warning", message, EVENT_REASON)


def audit_fields(report: WorkerReport) -> dict[str, Any]:
    """The audit log line's fields beside time, claim and kind (function.fn writes the line)."""
    return {
        "engine": report.engine,
        "server": report.server,
        "serverVersion": report.version,
        "job": report.job,
        "action": report.action,
        "statements": list(report.changes),
        "outcome": "converged" if report.ok else f"failed ({report.error_class} {report.code})",
        "durationSeconds": report.seconds,
    }
