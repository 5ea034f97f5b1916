"""Validate an XR's spec as the API server would (schema, defaults, CEL rules incl. immutability), then as the
worker will (engine-dependent checks, the worker's own request parser), so a bad spec never reaches a Job.

Immutability (`self == oldSelf`) needs the previous spec. Crossplane hands a function only the current XR, and
`crossplane render` has no API server at all, so the previous spec is the one the observed Jobs were built from:
their `DBOPS_REQUEST` carries the engine and the server-side names.
"""

from __future__ import annotations

import json
import marshal
from functools import lru_cache
from typing import Any

from dbops_api.engine_rules import engine_errors
from dbops_api.go_compat import resolve_aliases
from dbops_api.registry import SPECS
from dbops_api.request import validate_value
from dbops_api.validation import FieldError, normalize
from function.jobs.job import CONTAINER
from function.jobs.progress import observed_jobs
from function.objects import items, mapping, text
from function.spec.cel import object_rules, transition_errors
from function.view import View
from function.wire import MEMO_ENTRIES


def previous_spec(view: View) -> dict[str, Any] | None:
    """The spec fields the latest observed Job was built from (enough for the immutable ones), or None."""
    best: tuple[tuple[str, str], dict[str, Any]] | None = None
    for key, res in observed_jobs(view).items():
        request = _job_request(res)
        if request is None:
            continue
        old: dict[str, Any] = dict(mapping(request, "spec"))
        if isinstance(request.get("engine"), str):
            old["engine"] = request["engine"]
        rank = (text(res, "metadata", "creationTimestamp"), key)
        if best is None or rank > best[0]:
            best = (rank, old)
    return best[1] if best else None


def _job_request(job: dict[str, Any]) -> dict[str, Any] | None:
    containers = items(job, "spec", "template", "spec", "containers")
    for container in containers:
        if not isinstance(container, dict) or container.get("name") != CONTAINER:
            continue
        for env in container.get("env") or []:
            if (
                isinstance(env, dict)
                and env.get("name") == "DBOPS_REQUEST"
                and isinstance(env.get("value"), str)
            ):
                try:
                    value = json.loads(env["value"])
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
    return None


def _dedupe(errors: list[FieldError]) -> list[FieldError]:
    seen: set[tuple[str, str]] = set()
    out: list[FieldError] = []
    for error in errors:
        key = (error.path, error.message)
        if key not in seen:
            seen.add(key)
            out.append(error)
    return out


def validate_spec(view: View, kind: str) -> tuple[dict[str, Any], list[FieldError]]:
    """The claim spec with defaults, and what is wrong with it that the function must say itself.

    On a cluster the API server has already held the XR to its XRD (schema and CEL rules, immutability included):
    the schema walk here fills defaults and guards the code against shapes it cannot read, and finds nothing the
    API server would not. With `view.offline` no API server ran, so the walk also decides the XRD's CEL rules
    (cel-python), and the transition rules against the previous spec."""
    schema = SPECS[kind]
    if not view.offline:
        return schema_walk(kind, view.spec)
    spec, alias_errors = resolve_aliases(kind, view.spec)
    value, errors = normalize(schema, spec, "spec", rules=object_rules)
    errors = alias_errors + errors
    old = previous_spec(view)
    if old is not None:
        errors += transition_errors(schema, value, "spec", old)
    return value, _dedupe(errors)


def schema_walk(kind: str, spec: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """A claim spec of `kind` with its defaults, and its schema errors (no rules): the caller's own value."""
    blob, errors = _schema_walk(kind, marshal.dumps(spec))
    value: dict[str, Any] = marshal.loads(blob)  # noqa: S302 (our own bytes, from _schema_walk)
    return value, list(errors)


@lru_cache(maxsize=MEMO_ENTRIES)
def _schema_walk(kind: str, spec: bytes) -> tuple[bytes, tuple[FieldError, ...]]:
    """The schema walk of a spec (a claim spec holds no secret: only Secret names), memoized by the spec's marshal
    bytes: Crossplane sends the same spec call after call. It holds bytes and immutable errors; each call loads its
    own copy of the value."""
    resolved, alias_errors = resolve_aliases(kind, marshal.loads(spec))  # noqa: S302 (our own bytes)
    value, errors = normalize(SPECS[kind], resolved, "spec", rules=None)
    return marshal.dumps(value), tuple(_dedupe(alias_errors + errors))


def engine_block_errors(spec: dict[str, Any], engine: str, instance: str) -> list[FieldError]:
    if engine == "postgres" and "mysql" in spec:
        return [
            FieldError(
                "spec.mysql",
                f"DatabaseInstance {instance} runs postgres; remove spec.mysql or use spec.postgres",
            )
        ]
    if engine != "postgres" and "postgres" in spec:
        return [
            FieldError(
                "spec.postgres",
                f"DatabaseInstance {instance} runs {engine}; remove spec.postgres or use spec.mysql",
            )
        ]
    return []


def _request_errors(kind: str, action: str, request: dict[str, Any], *, offline: bool) -> list[FieldError]:
    allow_global = bool((request.get("policy") or {}).get("allowGlobalGrants"))
    errors = engine_errors(kind, request["engine"], request["spec"], "spec", allow_global)
    if not errors:
        checked = validate_value(
            request,
            "check" if kind == "DatabaseInstance" else action,
            rules=object_rules if offline else None,
        )
        if checked.errors:
            text = "; ".join(str(e) for e in checked.errors)
            errors = [FieldError("spec", text.replace("request.spec", "spec"))]
    return errors


@lru_cache(maxsize=MEMO_ENTRIES)
def _memo_request_errors(kind: str, action: str, request: bytes) -> tuple[FieldError, ...]:
    """The verdict on a request (which never holds a secret), memoized by its marshal bytes; immutable."""
    return tuple(_request_errors(kind, action, marshal.loads(request), offline=False))  # noqa: S302


def request_errors(
    view: View, kind: str, action: str, request: dict[str, Any], renames: dict[str, str] | None = None
) -> list[FieldError]:
    """Engine-dependent errors, then the worker's own request validation as the last guard: a request the function
    composes is one the worker accepts. `renames` maps resolved request fields back to the claim field they came
    from (e.g. `spec.grantee` -> `spec.roleName`)."""
    if view.offline:
        errors = _request_errors(kind, action, request, offline=True)
    else:
        errors = list(_memo_request_errors(kind, action, marshal.dumps(request)))
    for old, new in (renames or {}).items():
        errors = [
            FieldError(new + e.path[len(old) :], e.message) if e.path.startswith(old) else e for e in errors
        ]
    return errors
