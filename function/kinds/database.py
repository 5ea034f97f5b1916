"""XDatabase: waits for its DatabaseInstance, then one `dbops-worker apply|drop` Job per desired state."""

from __future__ import annotations

from function import status as st
from function.jobs.connection import server_access
from function.jobs.job import WorkerCall
from function.jobs.progress import progress
from function.jobs.request import request_spec, worker_request
from function.kinds.lifecycle import action_for
from function.outcome import Outcome
from function.spec.references import Lookup, instance_spec
from function.spec.validation import engine_block_errors, request_errors, validate_spec
from function.view import View

KIND = "Database"


def compose_database(view: View) -> Outcome:
    spec, errors = validate_spec(view, KIND)
    if errors:
        return st.invalid(view, KIND, errors)
    action, settled = action_for(view, KIND, spec)
    if settled is not None:
        return settled
    lookup = Lookup(view)
    instance = instance_spec(lookup, spec["instanceRef"]["name"], "spec.instanceRef")
    if lookup.errors:
        return lookup.invalid(KIND)
    if instance is None or lookup.waiting:
        return lookup.waiting_outcome(KIND, "WaitingForInstance")
    access = lookup.credentials(server_access(instance))
    errors = engine_block_errors(spec, access.engine, spec["instanceRef"]["name"])
    request = worker_request(view, KIND, access.engine, access.connection, request_spec(KIND, spec, {}))
    errors = errors or request_errors(view, KIND, action, request)
    if errors:
        return lookup.invalid(KIND, errors)
    out = st.from_progress(view, KIND, progress(view, WorkerCall(action, request, access, None, "")))
    out.requirements.update(lookup.requirements)
    return lookup.annotate(out)
