"""The schema DSL every kind's spec is written in: OpenAPI v3 builders, CEL rules, shared patterns.

The XRDs, `docs/reference.md` and every validator are generated from or driven by schemas built with these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

ENGINES = ("postgres", "mysql", "mariadb")

# Identifiers we create or name in a server. Quoting makes any name safe, but a conservative pattern keeps names
# portable across engines and free of surprises (case folding, quotes, whitespace, Unicode look-alikes).
IDENT_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
IDENT_MAX = 63
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern for Secret keys)
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$"
MYSQL_HOST_PATTERN = r"^[A-Za-z0-9%_.:-]+(/[0-9.]+)?$"
PRIVILEGE_PATTERN = r"^[A-Za-z_]+( [A-Za-z_]+)*$"  # MariaDB READ_ONLY ADMIN, MySQL 8 dynamic privileges
TABLE_OR_ALL_PATTERN = r"^([a-zA-Z_][a-zA-Z0-9_]*|\*)$"
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
PG_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# An RFC 3339 time whose calendar date exists (no 2030-02-30, no February 29 outside leap years) and whose clock
# reads 00:00:00 to 23:59:59: the API server checks it with RE2, the worker and the function with Python's re.
_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_CLOCK = "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
CALENDAR_TIME_PATTERN = f"^({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_CLOCK}$"
_CALENDAR_TIME = re.compile(CALENDAR_TIME_PATTERN[:-1] + r"\Z")

# Private schema keys (prefix `x-dbops-`): the XRD generator strips them, `dbops_api.validation` honours them.
KEY_PATTERN = "x-dbops-key-pattern"
CHECKS = "x-dbops-checks"


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server, the same predicate in Python for the worker and function.

    `tests/test_api_sources.py` evaluates both on generated objects and fails when they disagree."""

    cel: str
    message: str
    check: Callable[[dict[str, Any]], bool]
    # The field the error is reported at (Kubernetes `fieldPath`, relative to the node carrying the rule, e.g.
    # `.mysql`), so the API server and our validators name the field to fix, not just the object around it.
    field: str = ""


# --- builders -------------------------------------------------------------------------------------------------


def string(description: str, **kw: Any) -> Schema:
    return {"type": "string", "description": description, **kw}


def ident(description: str, **kw: Any) -> Schema:
    return string(description, pattern=IDENT_PATTERN, minLength=1, maxLength=IDENT_MAX, **kw)


def integer(description: str, **kw: Any) -> Schema:
    return {"type": "integer", "description": description, **kw}


def boolean(description: str, **kw: Any) -> Schema:
    return {"type": "boolean", "description": description, **kw}


def enum(description: str, values: tuple[str, ...] | list[str], **kw: Any) -> Schema:
    return string(description, enum=list(values), **kw)


def array(description: str, items: Schema, **kw: Any) -> Schema:
    return {"type": "array", "description": description, "items": items, **kw}


def ident_set(description: str, max_items: int = 64) -> Schema:
    return array(description, ident("A name."), maxItems=max_items, **{"x-kubernetes-list-type": "set"})


def string_map(
    description: str, key_rule: str | None = None, max_props: int = 64, max_len: int = 1024
) -> Schema:
    out: Schema = {
        "type": "object",
        "description": description,
        "maxProperties": max_props,
        "additionalProperties": {"type": "string", "maxLength": max_len},
    }
    if key_rule:
        # Not CEL: a rule over unbounded map keys would exceed the API server's cost budget.
        out[KEY_PATTERN] = key_rule
    return out


def obj(
    description: str,
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    rules: tuple[Rule, ...] = (),
) -> Schema:
    out: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        out["required"] = list(required)
    if rules:
        out["x-kubernetes-validations"] = [
            {"rule": r.cel, "message": r.message, **({"fieldPath": r.field} if r.field else {})}
            for r in rules
        ]
        out[CHECKS] = [r.check for r in rules]
    return out


def immutable(schema: Schema, field: str) -> Schema:
    out = dict(schema)
    out["x-kubernetes-validations"] = [
        *schema.get("x-kubernetes-validations", []),
        {"rule": "self == oldSelf", "message": f"{field} is immutable; create a new object to change it"},
    ]
    return out


NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# db-provision-operator's references carry a namespace; dbops resolves every reference in the claim's own, except
# an instanceRef to an instance whose spec.allowedNamespaces allows the claim's namespace.
REFERENCE_NAMESPACE_DESCRIPTION = (
    "Accepted for db-provision-operator manifests when it is the claim's own namespace; another namespace is "
    "refused (cross-namespace references are supported only in `spec.instanceRef`)."
)
INSTANCE_NAMESPACE_DESCRIPTION = (
    "The DatabaseInstance's namespace, when not the claim's own: allowed when that instance's "
    "`spec.allowedNamespaces` allows this claim's namespace (claims only, not namespaced XRs); its Jobs then run in "
    "the instance's namespace."
)


def reference_namespace(description: str = REFERENCE_NAMESPACE_DESCRIPTION) -> Schema:
    return string(description, pattern=NAMESPACE_PATTERN, maxLength=63)


def object_ref(description: str, namespace: str = REFERENCE_NAMESPACE_DESCRIPTION) -> Schema:
    return obj(
        description,
        {
            "name": string(
                "Name of the claim in the same namespace.", pattern=K8S_NAME_PATTERN, maxLength=253
            ),
            "namespace": reference_namespace(namespace),
        },
        required=("name",),
    )


def secret_name(description: str) -> Schema:
    return string(description, pattern=K8S_NAME_PATTERN, minLength=1, maxLength=253)


def secret_key(description: str, default: str) -> Schema:
    return string(description, pattern=SECRET_KEY_PATTERN, maxLength=253, default=default)
