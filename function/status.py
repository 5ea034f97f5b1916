"""The XR status and conditions for each situation: provisioning, waiting, invalid, refused, not managed.

Status is re-emitted in full on every call (Crossplane applies it server-side: what is not emitted is dropped),
so whatever the call did not learn anew is carried over from the observed XR status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from dbops_api.registry import BY_NAME
from dbops_api.result import UNREACHABLE
from dbops_api.validation import FieldError, normalize
from function.audit import audit_event, worker_report
from function.jobs.progress import SETTLED_PHASE, Progress, carried_over, drift_count
from function.objects import items, text
from function.outcome import Composed, Condition, Outcome, Requirement, Result
from function.view import View

PROVISIONED = "Provisioned"
INSTANCE_READY = "InstanceReady"
CONNECTED = "Connected"
DRIFTED = "Drifted"
CUSTOM_CONDITIONS = (PROVISIONED, INSTANCE_READY, CONNECTED, DRIFTED)
CARRIED = ("job", "lastAppliedHash", "lastSuccessfulTime", "attempts", "driftPlan", "rotation")
# At most this many of a detect run's statements are kept in status.driftPlan (the worker's result is bounded too).
DRIFT_SHOWN = 20
MAX_ERRORS_SHOWN = 8


def facts_key(kind: str) -> str:
    return BY_NAME[kind].facts_key


def facts(kind: str, observed: Any) -> dict[str, Any]:
    """The worker's `observed` block restricted to the fields (and types) the status schema declares."""
    if not isinstance(observed, dict):
        return {}
    schema = BY_NAME[kind].facts
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


def from_progress(
    view: View, kind: str, prog: Progress, requirements: Mapping[str, Requirement] | None = None
) -> Outcome:
    """The outcome of a worker Job's progress; `requirements`: what else the call asked Crossplane for."""
    requirements = requirements or {}
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
    conditions = [provisioned("True" if prog.phase == "Ready" else "False", prog.reason, prog.message)]
    if not prog.settled:
        conditions = [provisioned("False", prog.reason, prog.message)]
    if prog.action == "plan":
        conditions.append(_drifted(prog, status))
    elif prog.action:
        status.pop("driftPlan", None)  # detect is off: nothing is only detected
    results: list[Result] = []
    if prog.phase == "Failed":
        results.append(Result("Warning", prog.message, prog.reason))
    if prog.fresh and reported is not None:
        # What the worker said about the request itself (fields of a newer minor version it ignored: an older
        # worker image than the function's) is news the platform team must hear.
        said = (reported.result or {}).get("warnings")
        if isinstance(said, list):
            results += [Result("Warning", str(w), "WorkerWarning") for w in said[:MAX_ERRORS_SHOWN]]
    out = Outcome(
        resources=prog.resources,
        status=status,
        conditions=conditions,
        results=results,
        requirements={**({"pods": prog.pods} if prog.pods is not None else {}), **requirements},
        ttl_seconds=prog.ttl_seconds,
        ttl_at=prog.ttl_at,
        valid_until=prog.valid_until,
        cacheable=prog.cacheable,
        ready=prog.settled,
    )
    trouble = _unreachable(view, kind, prog)
    if trouble is not None:
        # The Job met a server it cannot reach (the instance's own check may not have noticed yet): as while the
        # instance is not Ready, a claim that converged before keeps its last result, through the retries too.
        # The Job and its retries go on as composed.
        out = last_result(view, kind, out, trouble.message, job_met_it=True).adding(conditions=[trouble])
    report = worker_report(view.status, out.status, prog)
    if report is not None:
        event = audit_event(report)
        out = replace(out, report=report).adding(results=[event] if event is not None else [])
    return out


def _drifted(prog: Progress, status: dict[str, Any]) -> Condition:
    """driftPolicy detect: the Drifted condition, and status.driftPlan with the statements the plan would run
    (the worker's `changes`: what `dbops-worker plan` prints, secrets as `***`), from a fresh run's result."""
    reported = prog.reported
    if not (prog.fresh and reported is not None):
        previous = status.get("driftPlan")
        if isinstance(previous, dict) and prog.settled:
            count = int(previous.get("count") or 0)
            return Condition(
                DRIFTED, "True" if count else "False", "Detected" if count else "InSync", prog.message
            )
        return Condition(DRIFTED, "Unknown", prog.reason, prog.message)
    result = reported.result
    if result is None:  # no Pod read: the plan is only in the Job's log
        status.pop("driftPlan", None)
        return Condition(DRIFTED, "Unknown", "PlanNotRead", prog.message)
    changes = [str(c) for c in result.get("changes") or []]
    count = drift_count(changes)
    status["driftPlan"] = {
        "count": count,
        "missing": bool(result.get("missing")),
        "statements": changes[:DRIFT_SHOWN],
    }
    if count:
        return Condition(DRIFTED, "True", "Missing" if result.get("missing") else "Detected", prog.message)
    return Condition(DRIFTED, "False", "InSync", prog.message)


def _unreachable(view: View, kind: str, prog: Progress) -> Condition | None:
    """The InstanceReady condition that says the server cannot be reached, when this claim's last result should
    stand for that reason: its Job failed with such an error, or it is the retry of one that did."""
    if kind == "DatabaseInstance" or not converged_before(view):
        return None
    reported = prog.reported
    retrying = prog.phase == "Provisioning" and prog.attempts > 0
    met = reported is not None and reported.phase == "failed" and reported.code in UNREACHABLE
    if met and reported is not None and (prog.phase == "Failed" or retrying):
        why = prog.message if prog.phase == "Failed" else reported.message
        message = f"the worker could not reach the server: {why}"
        return Condition(INSTANCE_READY, "False", reported.code, message)
    said = next(
        (
            c
            for c in items(view.status, "conditions")
            if isinstance(c, dict) and c.get("type") == INSTANCE_READY
        ),
        {},
    )
    if retrying and said.get("reason") in UNREACHABLE:
        return Condition(INSTANCE_READY, "False", said["reason"], text(said, "message"))
    return None


def waiting(
    view: View, kind: str, message: str, reason: str, requirements: Mapping[str, Requirement]
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


def converged_before(view: View) -> bool:
    """Whether a Job of this XR ever completed (the worker converged it, or dropped it, at least once)."""
    return bool(view.status.get("lastSuccessfulTime"))


def kept(view: View, kind: str, requirements: Mapping[str, Requirement], why: str) -> Outcome:
    """The instance is not Ready, but this claim converged before: its last result stands (`last_result`), every
    composed resource is kept, no Job is composed, and the instance is looked at again soon; the InstanceReady
    condition (added by the caller) says why."""
    out = Outcome(
        resources=carried_over(view),
        requirements=dict(requirements),
        ttl_seconds=float(view.input["ttl"]["waitingSeconds"]),
    )
    return last_result(view, kind, out, why)


def last_result(view: View, kind: str, out: Outcome, why: str, job_met_it: bool = False) -> Outcome:
    """`out` with the claim's last result in place of what it says about the claim, for a claim that converged
    before (`converged_before`) while the server cannot be reached (`why`). Alerts on Ready then fire for the
    instance, not for everything on it; composed resources, requirements and TTL stay `out`'s.

    - last phase `Ready`, `Failed` or `Dropped` (a result): phase, message and facts as they were;
    - last phase `Provisioning` or `Pending` (a change on its way): phase `Ready` again, as of
      `lastSuccessfulTime`, with a message saying the current spec waits for the server.

    Readiness follows the phase, as always. `Provisioned` (the current spec is in the server) stays what `out`
    says when the claim's own Job met the unreachable server (`job_met_it`: TransientFailure, Retrying, ...);
    otherwise it is re-emitted as it was after a result (Crossplane never removes a condition, so it is
    re-emitted rather than dropped), and is False `WaitingForInstance` while a change waits."""
    status = carried_status(view, kind)
    phase = text(view.status, "phase")
    before = next(
        (c for c in items(view.status, "conditions") if isinstance(c, dict) and c.get("type") == PROVISIONED),
        None,
    )
    if phase in ("Ready", "Failed", "Dropped"):
        status.update(phase=phase, message=text(view.status, "message"))
        if before is not None and before.get("status") in ("True", "False", "Unknown"):
            condition = provisioned(
                before["status"], text(before, "reason") or phase, text(before, "message")
            )
        else:
            condition = provisioned("True" if phase == "Ready" else "False", phase, status["message"])
    else:
        phase = "Ready"
        message = (
            f"as converged at {status.get('lastSuccessfulTime', '?')}; the current spec waits until the server can "
            f"be reached: {why}"
        )
        status.update(phase=phase, message=message)
        condition = provisioned("False", "WaitingForInstance", message)
    conditions = out.conditions
    if not job_met_it:
        conditions = (*(c for c in out.conditions if c.type != PROVISIONED), condition)
    return replace(out, status=status, conditions=conditions, ready=phase in SETTLED_PHASE.values())


def error_text(errors: list[FieldError]) -> str:
    shown = "; ".join(str(e) for e in errors[:MAX_ERRORS_SHOWN])
    more = len(errors) - MAX_ERRORS_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def failed(
    view: View,
    kind: str,
    message: str,
    reason: str,
    requirements: Mapping[str, Requirement] | None = None,
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
    view: View, kind: str, errors: list[FieldError], requirements: Mapping[str, Requirement] | None = None
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
    added: list[Condition] = []
    for cond in view.status.get("conditions") or []:
        kind = cond.get("type") if isinstance(cond, dict) else None
        if kind in CUSTOM_CONDITIONS and kind not in have:
            have.add(kind)
            why = str(out.status.get("message") or out.status.get("phase") or "")
            added.append(Condition(kind, "Unknown", "NotEvaluated", f"not evaluated this time: {why}"[:1024]))
    return replace(out, conditions=(*out.conditions, *added)) if added else out
