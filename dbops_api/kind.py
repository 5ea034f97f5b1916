"""What the API says about one claim kind, as one value: its spec and status schemas, how its spec becomes a worker
request, and how `kubectl get` shows it.

Adding a kind is adding a module under `dbops_api/kinds/` that builds a `Kind`, and listing it in
`dbops_api.registry`. Nothing here knows the names Crossplane gives the composite resource (`XDatabaseUser`, or the
namespaced XR of another API group): those belong to the XR shapes in `dbops_api.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbops_api.schema import Schema


@dataclass(frozen=True)
class Kind:
    name: str  # the claim kind, e.g. DatabaseUser
    plural: str  # databaseusers
    folder: str  # apis/<folder>/ holds its XRD and Composition
    spec: Schema
    facts_key: str  # status.<facts_key> holds what the worker observed
    facts: Schema
    # Spec fields the function consumes and never passes to the worker.
    function_only: tuple[str, ...]
    # Fields the function adds to the worker request's spec after resolving references.
    resolved: Mapping[str, Schema]
    # Printer columns; Crossplane appends SYNCED, READY, CONNECTION-SECRET and AGE to claims itself.
    columns: tuple[dict[str, Any], ...]
    # Fields the worker request's spec requires beyond those the claim spec requires and keeps.
    request_required: tuple[str, ...] = ()
    # Status fields of this kind besides the common ones and its facts (written by the function).
    status_extra: Mapping[str, Schema] | None = None


def column(name: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": "string", "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


PHASE_COLUMN = column(
    "PHASE",
    ".status.phase",
    "Pending, Provisioning, Ready, Completed (a backup or restore), Failed or Dropped.",
)
MESSAGE_COLUMN = column("MESSAGE", ".status.message", "What happened last.", priority=1)
