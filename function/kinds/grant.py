"""XDatabaseGrant: resolves the grantee (userRef or roleName), the database and the instance, then one
`dbops-worker apply|drop` Job per desired state (drop revokes)."""

from __future__ import annotations

from typing import Any

from dbops_api.validation import FieldError
from function.kinds.driver import Kind, Target, compose
from function.outcome import Outcome
from function.spec.references import DATABASE, USER, Lookup, instance_spec
from function.view import View


def _resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    # (namespace, instance name) -> the field that led to it; namespace "" is the claim's own.
    instances: dict[tuple[str, str], str] = {}
    if "instanceRef" in spec:
        instances.setdefault(_instance(view, spec), "spec.instanceRef")
    user: dict[str, Any] | None = None
    if "userRef" in spec:
        user = _claim_spec(lookup, USER, "DatabaseUser", spec["userRef"]["name"], "spec.userRef")
        if user is not None:
            instances.setdefault(_instance(view, user), "spec.userRef")
    database: dict[str, Any] | None = None
    if "databaseRef" in spec:
        database = _claim_spec(lookup, DATABASE, "Database", spec["databaseRef"]["name"], "spec.databaseRef")
        if database is not None:
            instances.setdefault(_instance(view, database), "spec.databaseRef")
    if len(instances) > 1:
        shown = ", ".join(
            f"{field} -> {namespace + '/' if namespace else ''}{name}"
            for (namespace, name), field in instances.items()
        )
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
    if lookup.errors or not instances:
        return None
    (namespace, instance_name), path = next(iter(instances.items()))
    instance = instance_spec(lookup, instance_name, path, namespace or None)
    if instance is None or lookup.waiting or lookup.errors:
        return None
    engine = str(instance["engine"])
    resolved: dict[str, Any] = {}
    renames: dict[str, str] = {}
    if user is not None:
        resolved["grantee"] = user["username"]
        renames["spec.grantee"] = "spec.userRef"
        if engine != "postgres":
            resolved["granteeHosts"] = list(user.get("mysql", {}).get("allowedHosts", ["%"]))
    else:
        resolved["grantee"] = spec["roleName"]
        renames["spec.grantee"] = "spec.roleName"
        if engine != "postgres":
            resolved["granteeHosts"] = ["%"]
    if database is not None:
        resolved["database"] = database["name"]
    return Target(instance_name, instance, resolved, renames, instance_namespace=namespace or None)


def _instance(view: View, spec: dict[str, Any]) -> tuple[str, str]:
    """The (namespace, name) of a spec's instanceRef; namespace "" when it is the claim's own."""
    ref = spec["instanceRef"]
    namespace = ref.get("namespace") or ""
    return ("" if namespace == view.namespace else namespace), ref["name"]


KIND = Kind("DatabaseGrant", _resolve)


def compose_grant(view: View) -> Outcome:
    return compose(view, KIND)


def _claim_spec(lookup: Lookup, requirement: str, kind: str, name: str, path: str) -> dict[str, Any] | None:
    found = lookup.claim(requirement, kind, name, path)
    return lookup.claim_spec(found, kind, path) if found is not None else None
