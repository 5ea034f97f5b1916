"""The worker request (design section 5): the claim spec minus function-only fields plus resolved references."""

from __future__ import annotations

from typing import Any

from dbops_api.registry import BY_NAME
from dbops_api.request import API_VERSION
from function.view import View


def request_spec(kind: str, spec: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if k not in BY_NAME[kind].function_only}
    out.update(resolved)
    return out


def worker_request(
    view: View,
    kind: str,
    engine: str,
    connection: dict[str, Any],
    spec: dict[str, Any],
    *,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "engine": engine,
        "connection": connection,
        "spec": spec,
        "owner": view.owner(),
    }
    if policy:  # absent means the defaults, so requests of instances that set nothing stay as they were
        out["policy"] = policy
    return out
