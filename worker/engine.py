"""Observe -> plan -> apply, engine-neutral. Decides nothing about SQL; adapters do."""

from __future__ import annotations

import time
from typing import Any

from worker.adapters import load
from worker.adapters.base import Adapter, KindHandler, Plan
from worker.errors import PermanentError, TransientError, WorkerError, internal_error
from worker.request import Request, Secrets
from worker.result import Result

# Transient errors that a concurrent change by another session causes (two workers granting on one object, a
# deadlock): under the lock, observing again usually finds that work done, so they are retried at once, a few
# times, instead of after the function's back-off. Each attempt's transaction was rolled back by the adapter.
RETRY_IN_PLACE = frozenset({"ConcurrentChange", "SerializationFailure", "Deadlock"})
IN_PLACE_ATTEMPTS = 5  # each failure means another transaction committed: N racing workers need at most N


def run(action: str, request: Request, secrets: Secrets, printer: Any = None) -> Result:
    """Carry out `action` for `request`. Never raises a WorkerError: it ends up in the result."""
    started = time.monotonic()
    result = Result(kind=request.kind, action=action, warnings=list(request.warnings))
    adapter_cls = load(request.engine)
    adapter = adapter_cls(request, secrets)
    try:
        with adapter:
            info = adapter.connect()
            result.server = {"version": info.version, "flavor": info.flavor}
            _check_flavor(request.engine, info.flavor, info.version)
            if action == "check":
                result.observed = adapter.check()
            else:
                _converge(adapter, action, request.spec, result, printer)
    except WorkerError as exc:
        result.error = exc
    except Exception as exc:  # a bug: still one JSON result and a permanent exit (cli redacts it)
        result.error = internal_error(exc)
    finally:
        result.statements = {"reads": adapter.reads, "writes": adapter.writes}
        result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _check_flavor(engine: str, flavor: str, version: str) -> None:
    # engine: mysql names the protocol family, so it accepts a MariaDB server (the flavor is reported).
    if engine != flavor and not (engine == "mysql" and flavor == "mariadb"):
        raise PermanentError(
            "EngineMismatch",
            f"the instance says engine {engine}, but the server is {flavor} {version}; fix spec.engine",
        )


def _converge(adapter: Adapter, action: str, spec: dict[str, Any], result: Result, printer: Any) -> None:
    handler = adapter.handler(result.kind)
    ignore = action in ("apply", "rotate") and adapter.request.drift_mode == "ignore"
    observed = _observe(handler, action, spec)
    plan = _plan(handler, action, spec, observed, result, ignore=ignore)
    if action == "plan":
        # A step no observation can confirm (a password the worker cannot check) is printed, but it is not a known
        # difference: `changes` (what driftPolicy detect counts as drift) leaves it out, unless the object is new.
        result.changes = [
            s.summary for s in plan.steps if not s.bookkeeping and (plan.creates or not s.unverifiable)
        ]
        result.missing = plan.creates and result.kind != "DatabaseGrant"
        if printer is not None:
            for step in plan.steps:
                printer(f"-- {step.reason}\n{step.summary};")
        result.observed = handler.facts(spec, observed)
        _raise_drift(plan)
        return
    if plan.steps:
        # Observed without the lock to keep a no-op cheap; now decide again under the lock, since another
        # worker may have converged the object meanwhile.
        with adapter.lock(handler.lock_key(spec)):
            conflict: TransientError | None = None
            for attempt in range(1, IN_PLACE_ATTEMPTS + 1):
                observed = _observe(handler, action, spec)
                plan = _plan(handler, action, spec, observed, result, ignore=ignore)
                if conflict is not None:
                    _raise_if_still_planned(conflict, plan)
                try:
                    for step in adapter.execute(plan.steps):
                        if not step.bookkeeping:
                            result.changes.append(step.summary)
                    break
                except TransientError as exc:
                    if exc.code not in RETRY_IN_PLACE or attempt == IN_PLACE_ATTEMPTS:
                        raise
                    conflict = exc if exc.statement else None
                finally:
                    result.observed = handler.facts(spec, observed)
            observed = _observe(handler, action, spec)
            # An unverifiable step (a password nobody can check) is planned again on every observation: it was
            # just executed, so it is not a difference the plan failed to fix.
            again = _plan(handler, action, spec, observed, result, ignore=ignore)
            leftover = [s for s in again.steps if not s.unverifiable]
            if leftover:
                raise PermanentError(
                    "NotConverged",
                    "the server still differs after applying the plan: "
                    + "; ".join(s.summary for s in leftover[:5]),
                )
    result.observed = handler.facts(spec, observed)
    _raise_drift(plan)


def _raise_if_still_planned(conflict: TransientError, plan: Plan) -> None:
    """A statement refused because its object "already exists" is a concurrent change only if observing again
    shows the object as the spec wants it (the new plan no longer has the statement). If the plan still has it,
    something else of that name is in the way (a type where an extension wants to create one, a role the
    observation did not find): permanent, naming the server's own words."""
    if any(step.summary == conflict.statement for step in plan.steps):
        detail = conflict.message.split(". Another session", 1)[0]
        raise PermanentError(
            "AlreadyExists",
            f"{detail}. Observed again under the lock, the server still needs this statement, so this is not a "
            "concurrent change: an object of that name that dbops does not manage is in the way; rename or drop "
            "it, or change the spec",
        )


def _observe(handler: KindHandler[Any], action: str, spec: dict[str, Any]) -> Any:
    return handler.observe_drop(spec) if action == "drop" else handler.observe(spec)


def _plan(
    handler: KindHandler[Any],
    action: str,
    spec: dict[str, Any],
    observed: Any,
    result: Result,
    *,
    ignore: bool = False,
) -> Plan:
    """The handler's plan; with `ignore` (driftPolicy ignore) only its creation steps (Plan.creation_steps), and
    no drift: what exists is never corrected, so it is not reported as a difference either."""
    plan = handler.plan_drop(spec, observed) if action == "drop" else handler.plan(spec, observed)
    result.warnings += [w for w in plan.warnings if w not in result.warnings]
    if ignore:
        return Plan(plan.creation_steps(), warnings=plan.warnings, creates=plan.creates)
    return plan


def _raise_drift(plan: Plan) -> None:
    if plan.drift:
        raise PermanentError(
            "ImmutableFieldChanged",
            "the server differs in attributes that cannot change in place: " + "; ".join(plan.drift),
        )
