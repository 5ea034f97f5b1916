"""Validate a value against a `dbops_api` schema and fill its defaults, as the API server would.

The function and the worker both use this, so a spec the function accepts is a request the worker accepts.
It covers the OpenAPI subset our schemas use (type, enum, pattern, lengths, bounds, required, properties,
additionalProperties, items, list-type set/map, defaults), and each object's cross-field rules through a `RuleCheck`:
the rules' Python predicates in the worker, their CEL text in the function where no API server runs. We do not use
`jsonschema` here: it would add ~110 ms to every worker start (docs/benchmarks.md) for a subset this small.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dbops_api.schema import CHECKS, KEY_PATTERN, Schema

TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@lru_cache(maxsize=256)
def openapi_regex(pattern: str) -> re.Pattern[str]:
    """An OpenAPI `pattern` as a Python regular expression that matches what the API server's matches."""
    # OpenAPI patterns are ECMA-262 / RE2 regular expressions, whose `$` matches only at the end of the text; in
    # Python it also matches before a final newline, so `app\n` would pass `^[a-z]+$` here and fail in the API
    # server. Our patterns end with `$` as their only end anchor.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


# `scheme://user:password@host` pasted into a field: the error message must not repeat the password.
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/@\s]*@")


def _show(value: Any) -> str:
    text = _URL_PASSWORD.sub(r"\1:***@", repr(value))
    return text if len(text) <= 40 else text[:37] + "..."


# What evaluates an object's cross-field rules (`x-kubernetes-validations`) during a walk: given the object's schema,
# its value (defaults filled in, no error found inside it) and its path, the errors. The worker uses `predicates`
# (the rules' Python predicates: it has no CEL interpreter); the function, where no API server has checked the
# object, the rules' own CEL text (function.spec.cel); on a cluster, nothing (the API server did).
RuleCheck = Callable[[Schema, dict[str, Any], str], list[FieldError]]


def predicates(schema: Schema, value: dict[str, Any], path: str) -> list[FieldError]:
    """The object's rules, decided by their Python predicates (`Rule.check`)."""
    return [
        FieldError(path + rule.get("fieldPath", ""), rule["message"])
        for rule, check in zip(
            schema.get("x-kubernetes-validations", []), schema.get(CHECKS, []), strict=True
        )
        if not check(value)
    ]


def normalize(
    schema: Schema,
    value: Any,
    path: str,
    ignored: list[str] | None = None,
    rules: RuleCheck | None = predicates,
) -> tuple[Any, list[FieldError]]:
    """Return `value` with schema defaults filled in, and every violation found (empty when valid).

    `ignored`: when given, object properties the schema does not know are left out of the value and their paths
    listed there instead of being errors (a request from a newer minor version of the contract).
    `rules`: what decides each object's cross-field rules, once nothing inside the object is wrong (None: skip
    them)."""
    errors: list[FieldError] = []
    out = _walk(schema, value, path, _Walk(errors, ignored, rules))
    return out, errors


@dataclass(frozen=True)
class _Walk:
    """One normalize() call: where its errors go, and what it does with unknown fields and with rules."""

    errors: list[FieldError]
    ignored: list[str] | None
    rules: RuleCheck | None


def _walk(schema: Schema, value: Any, path: str, walk: _Walk) -> Any:
    errors = walk.errors
    kind = schema.get("type")
    if kind and not _is_type(value, kind):
        errors.append(FieldError(path, f"must be {_article(kind)}, got {_type_name(value)} {_show(value)}"))
        return value
    if kind == "object":
        return _walk_object(schema, value, path, walk)
    if kind == "array":
        return _walk_array(schema, value, path, walk)
    _check_scalar(schema, value, path, errors)
    return value


def _walk_object(schema: Schema, value: dict[str, Any], path: str, walk: _Walk) -> dict[str, Any]:
    errors, ignored = walk.errors, walk.ignored
    out: dict[str, Any] = {}
    before = len(errors)
    props: dict[str, Schema] | None = schema.get("properties")
    extra = schema.get("additionalProperties")
    if props is not None:
        unknown = sorted(set(value) - set(props))
        for name in unknown:
            if ignored is not None:
                ignored.append(f"{path}.{name}")
            else:
                errors.append(FieldError(f"{path}.{name}", f"unknown field; allowed: {', '.join(props)}"))
        for name, sub in props.items():
            if name in value:
                out[name] = _walk(sub, value[name], f"{path}.{name}", walk)
            elif "default" in sub:
                out[name] = _copy_default(sub["default"])
        for name in schema.get("required", []):
            if name not in value:
                errors.append(FieldError(f"{path}.{name}", "is required"))
    elif isinstance(extra, dict):
        key_pattern = schema.get(KEY_PATTERN)
        for name, item in value.items():
            if key_pattern and not openapi_regex(key_pattern).search(name):
                errors.append(FieldError(f"{path}[{name!r}]", f"key must match {key_pattern}"))
            out[name] = _walk(extra, item, f"{path}[{name!r}]", walk)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(FieldError(path, f"must have at most {schema['maxProperties']} entries"))
    if len(errors) == before and walk.rules is not None and "x-kubernetes-validations" in schema:
        errors.extend(walk.rules(schema, out, path))
    return out


def _walk_array(schema: Schema, value: list[Any], path: str, walk: _Walk) -> list[Any]:
    errors = walk.errors
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(FieldError(path, f"must have at least {schema['minItems']} item(s)"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError(path, f"must have at most {schema['maxItems']} items, got {len(value)}"))
    items = schema.get("items", {})
    out = [_walk(items, item, f"{path}[{i}]", walk) for i, item in enumerate(value)]
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: set[str] = set()
        for i, item in enumerate(out):
            text = repr(item)
            if text in seen:
                errors.append(FieldError(f"{path}[{i}]", f"duplicate entry {_show(item)}"))
            seen.add(text)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: set[tuple[Any, ...]] = set()
        for i, item in enumerate(out):
            if not isinstance(item, dict):
                continue
            # repr: a key of the wrong type (a list, say) is reported by its item's schema, and must not crash us.
            key = tuple(repr(item.get(k)) for k in keys)
            if key in seen_keys:
                shown = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                errors.append(FieldError(f"{path}[{i}]", f"duplicate entry with {shown}"))
            seen_keys.add(key)
    return out


def _check_scalar(schema: Schema, value: Any, path: str, errors: list[FieldError]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        errors.append(
            FieldError(path, f"must be one of {', '.join(map(str, schema['enum']))}; got {_show(value)}")
        )
        return
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(FieldError(path, f"must be at least {schema['minLength']} character(s)"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(
                FieldError(path, f"must be at most {schema['maxLength']} characters, got {len(value)}")
            )
        elif "pattern" in schema and not openapi_regex(schema["pattern"]).search(value):
            errors.append(FieldError(path, f"must match {schema['pattern']}; got {_show(value)}"))
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (
                f"between {low} and {high}"
                if low is not None and high is not None
                else (f"at least {low}" if low is not None else f"at most {high}")
            )
            errors.append(FieldError(path, f"must be {bounds}, got {value}"))


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer",) and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _copy_default(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
