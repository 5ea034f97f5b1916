"""The status every kind's XR carries: the phase, what happened last, and the kind's observed facts."""

from __future__ import annotations

from dbops_api.registry import BY_NAME
from dbops_api.schema import Schema, array, boolean, enum, integer, obj, string

PHASES = ("Pending", "Provisioning", "Ready", "Completed", "Failed", "Dropped")

COMMON_STATUS: dict[str, Schema] = {
    "phase": enum("Where the object is in its life.", PHASES),
    "message": string("What happened last, in words; the worker's error message when Failed."),
    "job": string("Name of the Job that carries the current desired state."),
    "lastAppliedHash": string("Hash of the last desired state the worker converged."),
    "lastSuccessfulTime": string("When the worker last converged the object.", format="date-time"),
    "attempts": integer("Failed attempts at the current desired state (retries back off exponentially)."),
}

# Only kinds with a drift policy (a run-once backup or restore has none) carry what a detect run found.
DRIFT_STATUS: dict[str, Schema] = {
    "driftPlan": obj(
        "driftPolicy detect: what the last run found (needs the Input's status.readPods). The worker planned and "
        "wrote nothing.",
        {
            "count": integer("Statements the plan would run; 0: the server matches the spec."),
            "missing": boolean("The object does not exist: detect does not create it."),
            "statements": array(
                "The statements, as `dbops-worker plan` prints them (secrets `***`); at most 20.",
                string("A statement."),
                maxItems=20,
            ),
        },
    ),
}


def status_schema(kind: str) -> Schema:
    k = BY_NAME[kind]
    drift = DRIFT_STATUS if "driftPolicy" in k.spec.get("properties", {}) else {}
    return obj(
        f"Observed state of the {kind}, written by the function.",
        {**COMMON_STATUS, **drift, **(k.status_extra or {}), k.facts_key: k.facts},
    )
