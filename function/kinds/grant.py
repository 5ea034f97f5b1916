"""XDatabaseGrant: resolves the grantee (userRef or roleName), the database and the instance, then one
`dbops-worker apply|drop` Job per desired state (drop revokes)."""

from __future__ import annotations

from typing import Any

from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import server_access
from function.jobs.job import WorkerCall
from function.jobs.progress import progress
from function.jobs.request import request_spec, worker_request
from function.kinds.lifecycle import action_for
from function.outcome import Outcome
from function.spec.references import DATABASE, USER, Lookup, instance_spec
from function.spec.validation import engine_block_errors, request_errors, validate_spec
from function.view import View

KIND = "DatabaseGrant"


def compose_grant(view: View) -> Outcome:
    spec, errors = validate_spec(view, KIND)
    if errors:
        return st.invalid(view, KIND, errors)
    action, settled = action_for(view, KIND, spec)
    if settled is not None:
        return settled
    lookup = Lookup(view)
    instances: dict[str, str] = {}  # instance name -> the field that led to it
    if "instanceRef" in spec:
        instances.setdefault(spec["instanceRef"]["name"], "spec.instanceRef")
    user: dict[str, Any] | None = None
    if "userRef" in spec:
        user = _claim_spec(lookup, USER, "DatabaseUser", spec["userRef"]["name"], "spec.userRef")
        if user is not None:
            instances.setdefault(user["instanceRef"]["name"], "spec.userRef")
    database: dict[str, Any] | None = None
    if "databaseRef" in spec:
        database = _claim_spec(lookup, DATABASE, "Database", spec["databaseRef"]["name"], "spec.databaseRef")
        if database is not None:
            instances.setdefault(database["instanceRef"]["name"], "spec.databaseRef")
    if len(instances) > 1:
        shown = ", ".join(f"{field} -> {name}" for name, field in instances.items())
        lookup.errors.append(
            FieldError(
                "spec", f"the references lead to different DatabaseInstances ({shown}); use one instance"
            )
        )
    if not instances and not lookup.waiting:
        lookup.errors.append(
            FieldError(
                "spec.instanceRef",
                "is required when neither userRef nor databaseRef names an object on the instance",
            )
        )
    if lookup.errors:
        return lookup.invalid(KIND)
    if not instances:
        return lookup.waiting_outcome(KIND, "WaitingForDependencies")
    instance_name, path = next(iter(instances.items()))
    instance = instance_spec(lookup, instance_name, path)
    if lookup.errors:
        return lookup.invalid(KIND)
    if instance is None or lookup.waiting:
        reason = "WaitingForInstance" if instance is None else "WaitingForDependencies"
        return lookup.waiting_outcome(KIND, reason)

    access = lookup.credentials(server_access(instance))
    resolved: dict[str, Any] = {}
    renames: dict[str, str] = {}
    if user is not None:
        resolved["grantee"] = user["username"]
        renames["spec.grantee"] = "spec.userRef"
        if access.engine != "postgres":
            resolved["granteeHosts"] = list(user.get("mysql", {}).get("allowedHosts", ["%"]))
    else:
        resolved["grantee"] = spec["roleName"]
        renames["spec.grantee"] = "spec.roleName"
        if access.engine != "postgres":
            resolved["granteeHosts"] = ["%"]
    if database is not None:
        resolved["database"] = database["name"]
    request = worker_request(
        view, KIND, access.engine, access.connection, request_spec(KIND, spec, resolved), policy=access.policy
    )
    errors = engine_block_errors(spec, access.engine, instance_name) or request_errors(
        view, KIND, action, request, renames
    )
    if errors:
        return lookup.invalid(KIND, errors)
    out = st.from_progress(view, KIND, progress(view, WorkerCall(action, request, access, None, "")))
    out.requirements.update(lookup.requirements)
    return lookup.annotate(out)


def _claim_spec(lookup: Lookup, requirement: str, kind: str, name: str, path: str) -> dict[str, Any] | None:
    found = lookup.claim(requirement, kind, name, path)
    return lookup.claim_spec(found, kind, path) if found is not None else None
