"""The one way every kind is composed; a kind's module says only what differs (`Kind`).

    validate the spec -> (its own checks) -> ensure/deletion settle it? -> resolve its references
      -> the server access and the worker request -> engine rules and the worker's own validation
      -> the kind's last step (default: the Job for the request, and the status its progress yields)

Each step that ends the call returns an Outcome saying why (invalid, settled, waiting); nothing after it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dbops_api.go_compat import reference_namespace_errors
from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import ServerAccess, server_access
from function.jobs.job import WorkerCall
from function.jobs.progress import progress
from function.jobs.request import request_spec, worker_request
from function.kinds.lifecycle import action_for
from function.outcome import Outcome
from function.spec.references import NOT_ALLOWED, Lookup, Resolution
from function.spec.validation import engine_block_errors, request_errors, validate_spec
from function.view import View


@dataclass(frozen=True)
class Target:
    """What a kind's references resolved to: the instance the object lives on and the names the request needs."""

    instance_name: str
    instance: dict[str, Any]  # the DatabaseInstance spec, defaults filled in
    resolved: dict[str, Any] = field(default_factory=dict)  # fields added to the request spec
    renames: dict[str, str] = field(default_factory=dict)  # request field -> the claim field it came from
    # The instance's namespace when it is not the claim's (it allows the claim's): the Jobs run there.
    instance_namespace: str | None = None


@dataclass(frozen=True)
class Ready:
    """Everything the last step of a kind may use: the spec is valid, the references resolved, the request built."""

    view: View
    kind: str
    spec: dict[str, Any]
    action: str
    lookup: Resolution
    target: Target
    access: ServerAccess
    request: dict[str, Any]


def run_job(ready: Ready) -> Outcome:
    """The default last step: the Job for the request, and the status its progress yields."""
    call = WorkerCall(ready.action, ready.request, ready.access, None, "")
    out = st.from_progress(ready.view, ready.kind, progress(ready.view, call), ready.lookup.requirements)
    return ready.lookup.annotate(out)


@dataclass(frozen=True)
class Kind:
    """What one kind's module says; every other step is `compose`'s."""

    name: str
    # The references: a Target once they resolve; None (with `lookup` recording why) while they do not.
    resolve: Callable[[View, dict[str, Any], Lookup], Target | None]
    # Checks of the spec the schema cannot make (beyond engine rules), before anything is looked up.
    spec_errors: Callable[[dict[str, Any]], list[FieldError]] = lambda spec: []
    # Whether ensure/deletionPolicy/deletionProtection apply (a DatabaseInstance only ever runs `check`).
    lifecycle: bool = True
    # The worker action when `lifecycle` is off (a DatabaseInstance: check; a backup: backup).
    action: str = "check"
    # The kind of the worker request, when not the claim's (a DatabaseBackupSchedule's runs: DatabaseBackup).
    request_kind: str = ""
    # The request's connection, given the access (a health check bounds its timeouts).
    connection: Callable[[dict[str, Any], ServerAccess], dict[str, Any]] = lambda spec, access: (
        access.connection
    )
    finish: Callable[[Ready], Outcome] = run_job
    # Whether the spec's engine blocks must match the instance's engine (a DatabaseInstance's own schema says so).
    engine_blocks: bool = True


def compose(view: View, kind: Kind) -> Outcome:
    name = kind.name
    spec, errors = validate_spec(view, name)
    if not errors:
        errors = reference_namespace_errors(name, spec, view.namespace, view.legacy) + kind.spec_errors(spec)
    if errors:
        return st.invalid(view, name, errors)
    action = kind.action
    if kind.lifecycle:
        action, settled = action_for(view, name, spec)
        if settled is not None:
            return settled
    lookup = Lookup(view)
    target = kind.resolve(view, spec, lookup)
    if lookup.errors:
        return lookup.resolution().invalid(name)
    if target is None or lookup.waiting:
        reason = "WaitingForInstance" if lookup.instance_unavailable else "WaitingForDependencies"
        if lookup.not_allowed:
            reason = NOT_ALLOWED
        return lookup.resolution().waiting_outcome(name, reason)
    if target.instance_namespace and target.instance_namespace != view.namespace:
        if spec.get("adopt"):
            return lookup.resolution().invalid(name, [FieldError("spec.adopt", CROSS_NAMESPACE_ADOPT)])
        # Its Jobs run in the instance's namespace, where the admin Secret is (docs/function.md).
        view = replace(view, job_namespace=target.instance_namespace)
        lookup.view = view
    access = lookup.credentials(server_access(target.instance), view.jobs_namespace)
    found = lookup.resolution()
    request = worker_request(
        view,
        kind.request_kind or name,
        access.engine,
        kind.connection(spec, access),
        request_spec(name, spec, target.resolved),
        policy=access.policy,
    )
    errors = (kind.engine_blocks and engine_block_errors(spec, access.engine, target.instance_name)) or (
        request_errors(view, kind.request_kind or name, action, request, target.renames)
    )
    if errors:
        return found.invalid(name, errors)
    mode = drift_mode(spec, target.instance) if kind.lifecycle else "correct"
    if action == "apply" and mode == "detect":
        action = "plan"  # the worker plans and writes nothing; the status shows the plan (function.status)
    elif action == "apply" and mode == "ignore":
        request["driftMode"] = "ignore"
    return kind.finish(Ready(view, name, spec, action, found, target, access, request))


CROSS_NAMESPACE_ADOPT = (
    "adopt is refused for an instance of another namespace: it would let this namespace take over objects "
    "that other namespaces' claims or the server's owner made; create the object under a new name, or manage it "
    "from a claim in the instance's namespace"
)


def drift_mode(spec: dict[str, Any], instance: dict[str, Any]) -> str:
    """The claim's driftPolicy.mode, else its DatabaseInstance's (the default of its dependents), else correct.
    A driftPolicy without a mode means detect, as in db-provision-operator's CRD."""
    for source in (spec, instance):
        policy = source.get("driftPolicy")
        if isinstance(policy, dict):
            return str(policy.get("mode") or "detect")
    return "correct"
