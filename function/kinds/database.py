"""XDatabase: waits for its DatabaseInstance, then one `dbops-worker apply|drop` Job per desired state."""

from __future__ import annotations

from typing import Any

from function.kinds.driver import Kind, Target, compose
from function.outcome import Outcome
from function.spec.references import Lookup, instance_spec
from function.view import View


def resolve_instance(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    name, namespace = spec["instanceRef"]["name"], spec["instanceRef"].get("namespace")
    instance = instance_spec(lookup, name, "spec.instanceRef", namespace)
    return Target(name, instance, instance_namespace=namespace) if instance is not None else None


KIND = Kind("Database", resolve_instance)


def compose_database(view: View) -> Outcome:
    return compose(view, KIND)
