"""XDatabaseInstance: a `dbops-worker check` Job per health-check epoch; status.instance and `Connected`."""

from __future__ import annotations

from typing import Any

from function import status as st
from function.jobs.connection import ServerAccess
from function.jobs.job import WorkerCall
from function.jobs.progress import progress
from function.kinds.driver import Kind, Ready, Target, compose
from function.outcome import Condition, Outcome
from function.spec.defaults import block_with_defaults
from function.spec.references import Lookup
from function.view import View


def _resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target:
    """An instance refers to nothing: its own spec says where the server is."""
    return Target(view.claim_name, spec)


def _connection(spec: dict[str, Any], access: ServerAccess) -> dict[str, Any]:
    health = block_with_defaults("DatabaseInstance", spec, "healthCheck")
    return _bounded(access.connection, health["timeoutSeconds"])


def _finish(ready: Ready) -> Outcome:
    view, access = ready.view, ready.access
    health = block_with_defaults(KIND.name, ready.spec, "healthCheck")
    interval = int(health["intervalSeconds"]) if health["enabled"] else None
    prog = progress(view, WorkerCall("check", ready.request, access, None, ""), interval)
    out = st.from_progress(view, KIND.name, prog, ready.lookup.requirements)
    reported = prog.reported
    if prog.phase == "Ready":
        facts = out.status.get("instance", {})
        what = " ".join(str(facts[k]) for k in ("flavor", "version") if k in facts) or access.engine
        tls = " over TLS" if facts.get("tls") else ""
        return _with_connected(out, "True", "Connected", f"{what}{tls} at {access.connection['host']}")
    if prog.phase == "Failed" and reported is not None:
        return _with_connected(out, "False", reported.code or "CheckFailed", reported.message)
    return _with_connected(out, "Unknown", "Checking", prog.message)


KIND = Kind(
    "DatabaseInstance", _resolve, lifecycle=False, connection=_connection, finish=_finish, engine_blocks=False
)


def compose_instance(view: View) -> Outcome:
    out = compose(view, KIND)
    if any(c.type == st.CONNECTED for c in out.conditions):
        return out
    # Stopped before a Job (an invalid spec): whether the server can be reached is not known.
    return _with_connected(out, "Unknown", "InvalidSpec", "")


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
    return out.adding(conditions=[Condition(st.CONNECTED, status, reason, message)])  # type: ignore[arg-type]
