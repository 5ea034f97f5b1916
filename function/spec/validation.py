"""Validate an XR's spec as the API server would (schema, defaults, CEL rules incl. immutability), then as the
worker will (engine-dependent checks, the worker's own request parser), so a bad spec never reaches a Job.

Immutability (`self == oldSelf`) needs the previous spec. Crossplane hands a function only the current XR, and
`crossplane render` has no API server at all, so the previous spec is the one the observed Jobs were built from:
their `DBOPS_REQUEST` carries the engine and the server-side names.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from dbops_api.engine_rules import engine_errors
from dbops_api.registry import SPECS
from dbops_api.request import validate
from dbops_api.validation import FieldError, normalize
from function.jobs.job import CONTAINER, canonical
from function.jobs.progress import observed_jobs
from function.objects import items, mapping, text
from function.spec.cel import rule_errors
from function.view import View


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
    """The claim spec with defaults, and every error the API server (schema + CEL) would report.

    Memoized on the spec's and the previous spec's canonical JSON: Crossplane calls again and again with the same
    spec, and evaluating CEL is the costliest step of a call. The returned spec is shared: read it, never change
    it."""
    old = previous_spec(view)
    value, errors = _validated(kind, canonical(view.spec), canonical(old) if old is not None else "")
    return value, list(errors)


@lru_cache(maxsize=1024)
def _validated(kind: str, spec_json: str, old_json: str) -> tuple[dict[str, Any], tuple[FieldError, ...]]:
    value, errors = _validate(kind, json.loads(spec_json), json.loads(old_json) if old_json else None)
    return value, tuple(errors)


def _validate(kind: str, spec: Any, old: Any) -> tuple[dict[str, Any], list[FieldError]]:
    schema = SPECS[kind]
    value, errors = normalize(schema, spec, "spec")
    if errors:
        # Rules on a spec with type or required-field errors only add noise; keep the transition rules
        # (immutability), which the user must hear about whatever else is wrong.
        if old is not None:
            plain = {(e.path, e.message) for e in rule_errors(schema, value, "spec")}
            errors += [
                e for e in rule_errors(schema, value, "spec", old=old) if (e.path, e.message) not in plain
            ]
        return value, _dedupe(errors)
    errors = rule_errors(schema, value, "spec", old=old)
    return value, _dedupe(errors)


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


def request_errors(
    kind: str, action: str, request: dict[str, Any], renames: dict[str, str] | None = None
) -> list[FieldError]:
    return list(_request_errors(kind, action, canonical(request), tuple(sorted((renames or {}).items()))))


@lru_cache(maxsize=1024)
def _request_errors(
    kind: str, action: str, request_json: str, renames: tuple[tuple[str, str], ...]
) -> tuple[FieldError, ...]:
    return tuple(_uncached_request_errors(kind, action, json.loads(request_json), dict(renames)))


def _uncached_request_errors(
    kind: str, action: str, request: dict[str, Any], renames: dict[str, str]
) -> list[FieldError]:
    """Engine-dependent errors, then the worker's own parser as the last guard: a request the function
    composes is one the worker accepts. `renames` maps resolved request fields back to the claim field they
    came from (e.g. `spec.grantee` -> `spec.roleName`)."""
    allow_global = bool((request.get("policy") or {}).get("allowGlobalGrants"))
    errors = engine_errors(kind, request["engine"], request["spec"], "spec", allow_global)
    if not errors:
        checked = validate(canonical(request), "check" if kind == "DatabaseInstance" else action)
        if checked.errors:
            text = "; ".join(str(e) for e in checked.errors)
            errors = [FieldError("spec", text.replace("request.spec", "spec"))]
    for old, new in renames.items():
        errors = [
            FieldError(new + e.path[len(old) :], e.message) if e.path.startswith(old) else e for e in errors
        ]
    return errors
