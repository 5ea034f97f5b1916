"""XDatabaseInstance: a `dbops-worker check` Job per health-check epoch; status.instance and `Connected`."""

from __future__ import annotations

from typing import Any

from function import status as st
from function.jobs.connection import server_access
from function.jobs.job import WorkerCall
from function.jobs.progress import progress
from function.jobs.request import request_spec, worker_request
from function.outcome import Condition, Outcome
from function.spec.defaults import spec_with_defaults
from function.spec.references import Lookup
from function.spec.validation import request_errors, validate_spec
from function.view import View

KIND = "DatabaseInstance"


def compose_instance(view: View) -> Outcome:
    spec, errors = validate_spec(view, KIND)
    if errors:
        return _with_connected(st.invalid(view, KIND, errors), "Unknown", "InvalidSpec", "")
    lookup = Lookup(view)
    access = lookup.credentials(server_access(spec))
    health = spec_with_defaults(KIND, spec)["healthCheck"]
    request = worker_request(
        view,
        KIND,
        access.engine,
        _bounded(access.connection, health["timeoutSeconds"]),
        request_spec(KIND, spec, {}),
    )
    errors = request_errors(view, KIND, "check", request)
    if errors:
        return _with_connected(st.invalid(view, KIND, errors), "Unknown", "InvalidSpec", "")
    interval = int(health["intervalSeconds"]) if health["enabled"] else None
    prog = progress(view, WorkerCall("check", request, access, None, ""), interval)
    out = st.from_progress(view, KIND, prog)
    out.requirements.update(lookup.requirements)
    reported = prog.reported
    if prog.phase == "Ready":
        facts = out.status.get("instance", {})
        what = " ".join(str(facts[k]) for k in ("flavor", "version") if k in facts) or access.engine
        tls = " over TLS" if facts.get("tls") else ""
        return _with_connected(out, "True", "Connected", f"{what}{tls} at {access.connection['host']}")
    if prog.phase == "Failed" and reported is not None:
        return _with_connected(out, "False", reported.code or "CheckFailed", reported.message)
    return _with_connected(out, "Unknown", "Checking", prog.message)


def _bounded(connection: dict[str, Any], timeout: int) -> dict[str, Any]:
    """The check's connection with every timeout at most healthCheck.timeoutSeconds ("seconds a check may
    take"): a hung server fails the check quickly instead of holding the Job until its deadline."""
    out = dict(connection)
    out["connectTimeout"] = min(out.get("connectTimeout", timeout), timeout)
    if "readTimeout" in out:
        out["readTimeout"] = min(out["readTimeout"], timeout)
        out["writeTimeout"] = min(out["writeTimeout"], timeout)
    if "statementTimeout" in out:
        out["statementTimeout"] = (
            f"{timeout}s" if _seconds(out["statementTimeout"]) > timeout else out["statementTimeout"]
        )
    return out


def _seconds(duration: str) -> float:
    for unit, factor in (("ms", 0.001), ("min", 60.0), ("s", 1.0), ("h", 3600.0)):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * factor
    return float("inf")


def _with_connected(out: Outcome, status: str, reason: str, message: str) -> Outcome:
    out.conditions.append(Condition(st.CONNECTED, status, reason, message))  # type: ignore[arg-type]
    return out
