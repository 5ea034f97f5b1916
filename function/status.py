"""The XR status and conditions for each situation: provisioning, waiting, invalid, refused, not managed.

Status is re-emitted in full on every call (Crossplane applies it server-side: what is not emitted is dropped),
so whatever the call did not learn anew is carried over from the observed XR status.
"""

from __future__ import annotations

from typing import Any

from function.outcome import Composed, Condition, Outcome, Requirement, Result
from function.provisioning import Progress, carried_over
from function.view import View
from worker.spec_schema import KIND_STATUS
from worker.validation import FieldError, normalize

PROVISIONED = "Provisioned"
INSTANCE_READY = "InstanceReady"
CONNECTED = "Connected"
CUSTOM_CONDITIONS = (PROVISIONED, INSTANCE_READY, CONNECTED)
CARRIED = ("job", "lastAppliedHash", "lastSuccessfulTime", "attempts")
MAX_ERRORS_SHOWN = 8


def facts_key(kind: str) -> str:
    return KIND_STATUS[kind][0]


def facts(kind: str, observed: Any) -> dict[str, Any]:
    """The worker's `observed` block restricted to the fields (and types) the status schema declares."""
    if not isinstance(observed, dict):
        return {}
    schema = KIND_STATUS[kind][1]
    out: dict[str, Any] = {}
    for name, sub in schema["properties"].items():
        if name in observed:
            value, errors = normalize(sub, observed[name], name)
            if not errors:
                out[name] = value
    return out


def carried_status(view: View, kind: str) -> dict[str, Any]:
    """The observed status fields this call keeps as they are."""
    out = {k: view.status[k] for k in CARRIED if k in view.status}
    key = facts_key(kind)
    previous = facts(kind, view.status.get(key))
    if previous:
        out[key] = previous
    return out


def provisioned(status: str, reason: str, message: str) -> Condition:
    return Condition(PROVISIONED, status, reason, message)  # type: ignore[arg-type]


def from_progress(view: View, kind: str, prog: Progress) -> Outcome:
    status = carried_status(view, kind)
    status.update(phase=prog.phase, message=prog.message, job=prog.job_name, attempts=prog.attempts)
    reported = prog.reported
    if prog.fresh and reported is not None:
        status["lastAppliedHash"] = prog.state
        if reported.finished_at is not None:
            status["lastSuccessfulTime"] = reported.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        new_facts = facts(kind, (reported.result or {}).get("observed"))
        if kind == "DatabaseInstance" and reported.result:
            new_facts = {**facts(kind, reported.result.get("server")), **new_facts}
        if new_facts:
            status[facts_key(kind)] = new_facts
    if prog.phase == "Dropped":
        status.pop(facts_key(kind), None)
    out = Outcome(
        resources=dict(prog.resources),
        status=status,
        requirements={"pods": prog.pods} if prog.pods is not None else {},
        ttl_seconds=prog.ttl_seconds,
        ttl_at=prog.ttl_at,
        valid_until=prog.valid_until,
        cacheable=prog.cacheable,
        ready=prog.settled,
    )
    if prog.settled:
        out.conditions.append(
            provisioned("True" if prog.phase == "Ready" else "False", prog.reason, prog.message)
        )
    else:
        out.conditions.append(provisioned("False", prog.reason, prog.message))
    if prog.phase == "Failed":
        out.results.append(Result("Warning", prog.message, prog.reason))
    return out


def waiting(
    view: View, kind: str, message: str, reason: str, requirements: dict[str, Requirement]
) -> Outcome:
    """Nothing to run yet (a dependency is missing or not Ready): keep what exists, say what we wait for."""
    status = carried_status(view, kind)
    status.update(phase="Pending", message=message)
    return Outcome(
        resources=carried_over(view),
        status=status,
        conditions=[provisioned("False", reason, message)],
        requirements=dict(requirements),
        ttl_seconds=float(view.input["ttl"]["waitingSeconds"]),
        ready=False,
    )


def error_text(errors: list[FieldError]) -> str:
    shown = "; ".join(str(e) for e in errors[:MAX_ERRORS_SHOWN])
    more = len(errors) - MAX_ERRORS_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def failed(
    view: View,
    kind: str,
    message: str,
    reason: str,
    requirements: dict[str, Requirement] | None = None,
) -> Outcome:
    """The spec (or a referenced object) is wrong: compose nothing new and drop nothing, say what to fix."""
    status = carried_status(view, kind)
    status.update(phase="Failed", message=message)
    return Outcome(
        resources=carried_over(view),
        status=status,
        conditions=[provisioned("False", reason, message)],
        results=[Result("Warning", message, reason)],
        requirements=dict(requirements or {}),
        ttl_seconds=float(view.input["resync"]["intervalSeconds"]),
        ready=False,
    )


def invalid(
    view: View, kind: str, errors: list[FieldError], requirements: dict[str, Requirement] | None = None
) -> Outcome:
    return failed(view, kind, "invalid spec: " + error_text(errors), "InvalidSpec", requirements)


def not_managed(view: View, kind: str, keep: dict[str, Composed]) -> Outcome:
    message = (
        "not managed (ensure: Absent, deletionPolicy: Retain): the object is left in the server as it is"
    )
    status = carried_status(view, kind)
    status.update(phase="Ready", message=message, attempts=0)
    status.pop("job", None)
    return Outcome(
        resources=keep,
        status=status,
        conditions=[provisioned("True", "NotManaged", message)],
        ttl_seconds=float(view.input["resync"]["intervalSeconds"]),
        ready=True,
    )


def unevaluated_conditions(view: View, out: Outcome) -> Outcome:
    """Crossplane merges the conditions a function returns into those the XR (and its claim) already has and never
    removes one, so a custom condition this call did not evaluate (InstanceReady when the spec is invalid, say)
    would keep its last value, however stale. Each custom condition the XR carries that `out` leaves out is set
    Unknown instead, saying why."""
    have = {c.type for c in out.conditions}
    for cond in view.status.get("conditions") or []:
        kind = cond.get("type") if isinstance(cond, dict) else None
        if kind in CUSTOM_CONDITIONS and kind not in have:
            have.add(kind)
            why = str(out.status.get("message") or out.status.get("phase") or "")
            out.conditions.append(
                Condition(kind, "Unknown", "NotEvaluated", f"not evaluated this time: {why}"[:1024])
            )
    return out
