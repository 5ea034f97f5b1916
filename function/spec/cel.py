"""Evaluate the CEL rules (`x-kubernetes-validations`) of a `dbops_api` schema, as the API server does.

The XRDs carry these rules, so on a cluster the API server enforces them on every claim and XR and the function
does not evaluate them again. Where no API server runs (`crossplane render`, dbops-local: `function --offline`) the
function evaluates the XRDs' own rule text here, with cel-python, so such a run refuses what a cluster would, with
the API server's message. The worker, which carries no CEL interpreter, decides the same rules with their Python
predicates (`dbops_api.validation.predicates`); `tests/test_api_sources.py` checks that both agree.

Semantics follow Kubernetes: `value` is expected with defaults already applied (`dbops_api.validation.normalize`),
a node's rules run only when the node is present and has its schema's type, and a transition rule (one that
mentions `oldSelf`) runs only when the old object has a value at the same place (object properties, map values,
and items of `x-kubernetes-list-type: map` lists matched by their keys).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from dbops_api.schema import Schema
from dbops_api.validation import TYPES, FieldError

_OLD_SELF = re.compile(r"\boldSelf\b")


# Kubernetes exposes an object property to CEL under an escaped name when the name is a CEL reserved word or has
# characters CEL identifiers cannot (apiserver/pkg/cel/escaping.go): a rule reads `function` as `self.__function__`.
_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_NEEDS_ESCAPE = re.compile(r"__|[-./]")


def escape_property(name: str) -> str:
    """The name under which a CEL rule sees an object property."""
    if name in _RESERVED:
        return f"__{name}__"
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], name)


def _escaped(value: Any, schema: Schema | None) -> Any:
    """`value` with object property names escaped. Map keys (additionalProperties) stay as they are; without a
    schema every object is taken for one with properties."""
    if isinstance(value, list):
        items = schema.get("items") if schema else None
        return [_escaped(v, items if isinstance(items, dict) else None) for v in value]
    if not isinstance(value, dict):
        return value
    if schema is not None and "properties" not in schema:
        extra = schema.get("additionalProperties")
        return {k: _escaped(v, extra if isinstance(extra, dict) else None) for k, v in value.items()}
    props = schema.get("properties", {}) if schema else {}
    return {escape_property(k): _escaped(v, props.get(k) if schema else None) for k, v in value.items()}


class RuleEvaluationError(Exception):
    """A rule could not be evaluated (for example it reads a field that is absent); the API server rejects the
    object in that case too."""


def is_transition_rule(rule: str) -> bool:
    """Whether a rule compares with the old object (`oldSelf`) and so runs only on updates."""
    return bool(_OLD_SELF.search(rule))


# The few members of Kubernetes' CEL string library that cel-python lacks and that rules we evaluate use
# (Crossplane's own CRDs check `self.plural == self.plural.lowerAscii()`).
_KUBERNETES_FUNCTIONS: dict[str, Any] = {
    "lowerAscii": lambda s: celpy.celtypes.StringType("".join(c.lower() if c.isascii() else c for c in s)),
    "upperAscii": lambda s: celpy.celtypes.StringType("".join(c.upper() if c.isascii() else c for c in s)),
}


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    # One environment for every rule: creating one builds a parser and raises the interpreter's recursion limit.
    return celpy.Environment()


@lru_cache(maxsize=512)
def _program(rule: str) -> celpy.Runner:
    env = _environment()
    return env.program(env.compile(rule), functions=_KUBERNETES_FUNCTIONS)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate a CEL expression over JSON-like variables (e.g. an admission policy's `request`, `object` and
    `oldObject`). Raises RuleEvaluationError when it cannot be evaluated; a rule that does not parse raises
    celpy.CELParseError (a bug in the schema, not in the object)."""
    activation = {name: None if value is None else json_to_cel(value) for name, value in variables.items()}
    try:
        result = _program(expression).evaluate(activation)
    except CELEvalError as exc:
        raise RuleEvaluationError(_eval_message(exc)) from None
    if isinstance(result, CELEvalError):
        raise RuleEvaluationError(_eval_message(result))
    return result


def evaluate_rule(rule: str, value: Any, old: Any = None, schema: Schema | None = None) -> bool:
    """Evaluate one `x-kubernetes-validations` rule with `self` = value (and `oldSelf` = old), `schema` being the
    schema of the node that carries the rule (it tells properties, whose names are escaped, from map keys). Raises
    RuleEvaluationError when the rule cannot be evaluated or does not yield a boolean."""
    variables = {"self": _escaped(value, schema)}
    if old is not None:
        variables["oldSelf"] = _escaped(old, schema)
    result = evaluate(rule, variables)
    if not isinstance(result, celpy.celtypes.BoolType):
        raise RuleEvaluationError(f"rule yields {type(result).__name__}, not a boolean")
    return bool(result)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def object_rules(schema: Schema, value: dict[str, Any], path: str) -> list[FieldError]:
    """The object's own rules that `value` breaks, transition rules aside (a `dbops_api.validation.RuleCheck`)."""
    errors: list[FieldError] = []
    _check_rules(schema, value, path, None, errors)
    return errors


def transition_errors(schema: Schema, value: Any, path: str, old: Any) -> list[FieldError]:
    """Only the transition rules (`oldSelf`: immutable fields) that `value` breaks against `old`."""
    errors: list[FieldError] = []
    _walk(schema, value, path, old, errors, transitions_only=True)
    return errors


def rule_errors(schema: Schema, value: Any, path: str, old: Any = None) -> list[FieldError]:
    """Every CEL rule of `schema` and its nested properties, map values and list items that `value` breaks.

    Transition rules (those using `oldSelf`) are skipped when `old` is None (a create) and, below the top, wherever
    the old object has no correlated value."""
    errors: list[FieldError] = []
    _walk(schema, value, path, old, errors)
    return errors


def _walk(
    schema: Schema,
    value: Any,
    path: str,
    old: Any,
    errors: list[FieldError],
    *,
    transitions_only: bool = False,
) -> None:
    kind = schema.get("type")
    if kind in TYPES and not _has_type(value, kind):
        return  # a type error is normalize()'s to report; rules on a mistyped value are meaningless
    _check_rules(schema, value, path, old, errors, transitions_only=transitions_only)
    if isinstance(value, dict):
        props: dict[str, Schema] | None = schema.get("properties")
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        if props is not None:
            for name, sub in props.items():
                if name in value:
                    _walk(
                        sub,
                        value[name],
                        f"{path}.{name}",
                        old_map.get(name),
                        errors,
                        transitions_only=transitions_only,
                    )
        elif isinstance(extra, dict):
            for name, item in value.items():
                _walk(
                    extra,
                    item,
                    f"{path}[{name!r}]",
                    old_map.get(name),
                    errors,
                    transitions_only=transitions_only,
                )
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            olds = _correlate_items(schema, value, old)
            for i, item in enumerate(value):
                _walk(items, item, f"{path}[{i}]", olds[i], errors, transitions_only=transitions_only)


def _check_rules(
    schema: Schema,
    value: Any,
    path: str,
    old: Any,
    errors: list[FieldError],
    *,
    transitions_only: bool = False,
) -> None:
    for spec in schema.get("x-kubernetes-validations", []):
        rule: str = spec["rule"]
        transition = is_transition_rule(rule)
        if (transition and old is None) or (transitions_only and not transition):
            continue
        where = path + spec.get("fieldPath", "")
        try:
            ok = evaluate_rule(rule, value, old if transition else None, schema)
        except RuleEvaluationError as exc:
            errors.append(FieldError(where, f"{exc} evaluating rule: {rule}"))
            continue
        if not ok:
            errors.append(FieldError(where, spec.get("message") or f"failed rule: {rule}"))


def _correlate_items(schema: Schema, value: list[Any], old: Any) -> list[Any]:
    """Old counterparts of new list items: only `map` lists correlate (by their keys), as in Kubernetes."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(old, list):
        return [None] * len(value)
    keys = schema.get("x-kubernetes-list-map-keys", [])
    # Keys by their JSON text: a key of the wrong type (a list) is a schema error, not a reason to crash.
    by_key = {_json([o.get(k) for k in keys]): o for o in old if isinstance(o, dict)}
    return [by_key.get(_json([v.get(k) for k in keys])) if isinstance(v, dict) else None for v in value]


def _has_type(value: Any, kind: str) -> bool:
    if kind == "integer" and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def _eval_message(exc: CELEvalError) -> str:
    return str(exc.args[0]) if exc.args else "evaluation error"
