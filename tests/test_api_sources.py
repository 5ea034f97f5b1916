"""One source of truth for the API: the committed XRDs, Input CRD and reference equal what `tools.apigen`
generates from `dbops_api/kinds/`; every CEL rule and its Python twin agree on generated objects; the CEL
evaluator (`function.spec.cel`) walks nested objects and lists and handles transition rules as Kubernetes does.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbops_api.registry import KINDS, SPECS
from dbops_api.request import request_schema
from dbops_api.schema import CHECKS, Schema
from dbops_api.status import status_schema
from dbops_api.validation import normalize
from function.input import INPUT_SCHEMA
from function.spec.cel import (
    RuleEvaluationError,
    evaluate_rule,
    is_transition_rule,
    rule_errors,
)
from tools import apigen

ROOT = Path(__file__).resolve().parent.parent


# --- committed artefacts == generated -----------------------------------------------------------------------------


def test_committed_artefacts_equal_the_generated_ones() -> None:
    assert apigen.drifted() == [], "run `python -m tools.apigen write` and commit the result"


def test_check_command_exits_0_when_in_step() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.apigen", "check"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_check_names_every_drifted_file(tmp_path: Path) -> None:
    for rel in apigen.artefacts():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert apigen.drifted(tmp_path) == []
    definition = tmp_path / "apis/database/definition.yaml"
    definition.write_text(definition.read_text().replace("maxLength: 63", "maxLength: 64", 1))
    (tmp_path / "docs/reference.md").unlink()
    assert apigen.drifted(tmp_path) == [Path("apis/database/definition.yaml"), Path("docs/reference.md")]
    assert apigen.write(tmp_path) == [Path("apis/database/definition.yaml"), Path("docs/reference.md")]
    assert apigen.drifted(tmp_path) == []


def test_private_keys_never_reach_the_api_server() -> None:
    def keys(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from keys(v)
        elif isinstance(value, list):
            for v in value:
                yield from keys(v)

    for kind in KINDS:
        assert not [k for k in keys(apigen.xrd(kind)) if k.startswith("x-dbops-")]
    assert not [k for k in keys(apigen.input_crd()) if k.startswith("x-dbops-")]
    # ... while the source keeps them for dbops_api.validation.
    assert any(k.startswith("x-dbops-") for k in keys(SPECS["DatabaseUser"]))


def test_reference_lists_every_field_and_status_field_and_rule() -> None:
    text = (ROOT / "docs/reference.md").read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"## {kind}\n" in text
        for root, schema in (("spec", SPECS[kind]), ("status", status_schema(kind))):
            for f in apigen.fields(schema, root)[1:]:
                assert f"| `{f.path}` |" in text, f"{f.path} is missing from docs/reference.md"
        for node in rule_nodes(SPECS[kind], "spec"):
            for rule in node.schema.get("x-kubernetes-validations", []):
                if not is_transition_rule(rule["rule"]):
                    assert rule["message"] in text
    for f in apigen.fields(INPUT_SCHEMA, "input")[1:]:
        if f.path.split(".")[1] not in ("apiVersion", "kind", "metadata"):
            assert f"| `{f.path}` |" in text


def test_reference_marks_immutable_fields() -> None:
    text = (ROOT / "docs/reference.md").read_text(encoding="utf-8")
    for path in ("spec.engine", "spec.name", "spec.username"):
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| `{path}` |")]
        assert "immutable" in line


# --- CEL rules and their Python twins agree -----------------------------------------------------------------------


class Node:
    def __init__(self, path: str, schema: Schema) -> None:
        self.path = path
        self.schema = schema

    def pairs(self) -> list[tuple[str, Callable[[dict[str, Any]], bool]]]:
        """(CEL rule, Python twin) for every non-transition rule of this node."""
        rules = [r["rule"] for r in self.schema.get("x-kubernetes-validations", [])]
        checks = self.schema.get(CHECKS, [])
        plain = [r for r in rules if not is_transition_rule(r)]
        assert len(plain) == len(checks), (
            f"{self.path}: {len(plain)} CEL rules but {len(checks)} Python twins"
        )
        return list(zip(plain, checks, strict=True))


def rule_nodes(schema: Schema, path: str) -> list[Node]:
    out = [Node(path, schema)] if schema.get("x-kubernetes-validations") else []
    for name, sub in schema.get("properties", {}).items():
        out += rule_nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += rule_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += rule_nodes(schema["additionalProperties"], f"{path}{{}}")
    return out


def all_rule_nodes() -> list[Node]:
    """Nodes with rules in the claim specs and the worker requests; a request's copy of a spec node (same twins)
    is tested once."""
    nodes: list[Node] = []
    seen: set[tuple[int, ...]] = set()
    for kind in KINDS:
        for node in rule_nodes(SPECS[kind], f"{kind}.spec") + rule_nodes(
            request_schema(kind), f"{kind}.request"
        ):
            key = tuple(id(check) for _, check in node.pairs())
            if key and key not in seen:
                seen.add(key)
                nodes.append(node)
    return nodes


# `self.a.b` field chains a rule reads; a name called as a method (`self.roles.all(...)`) is not a field.
FIELD_CHAIN = r"self((?:\.\w+(?!\w*\())+)"


def can_fail(rule: str, schema: Schema) -> bool:
    """Whether every field the rule reads exists in the schema; a rule about an absent field always holds (e.g. the
    request of a DatabaseInstance has no spec.postgres), so only its agreement is tested, not both outcomes."""
    for chain in re.findall(FIELD_CHAIN, rule):
        node = schema
        for name in chain.strip(".").split("."):
            props = node.get("properties", {})
            if name not in props:
                return False
            node = props[name]
    return True


RULE_NODES = all_rule_nodes()
# cel-python raises the recursion limit when its parser is first built; do that before Hypothesis starts watching.
evaluate_rule("true", {})


def values(schema: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """Objects shaped by `schema`: each optional field present about half the time, enums drawn from their values.
    Rules read presence, booleans and enums, so these shapes reach every branch of them."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.sampled_from(["a", "b_1"])
    if kind == "integer":
        low = schema.get("minimum", -3)
        return st.integers(low, schema.get("maximum", low + 10))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(values(schema.get("items", {}), depth + 1), max_size=2 if depth < 2 else 0)
    if kind == "object" and "properties" in schema:
        if depth > 2:  # rules read at most two levels down (self.spec.postgres, self.tls.enabled)
            return st.just({})
        required = set(schema.get("required", []))
        props = schema["properties"]
        return st.fixed_dictionaries(
            {k: values(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: values(v, depth + 1) for k, v in props.items() if k not in required},
        )
    if kind == "object":
        return st.dictionaries(st.sampled_from(["k1", "k2"]), st.just("v"), max_size=2)
    return st.none()


def verdict_cel(rule: str, value: Any, schema: Schema | None = None) -> bool:
    try:
        return evaluate_rule(rule, value, schema=schema)
    except RuleEvaluationError:
        return False  # the API server rejects an object when a rule cannot be evaluated


def verdict_python(check: Callable[[dict[str, Any]], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except (KeyError, TypeError):
        return False


def disagreements(node: Node, value: Any) -> list[str]:
    """Rules of `node` on which CEL and the Python twin disagree for `value` (after defaulting, as the API server
    defaults before it validates)."""
    defaulted, _ = normalize(node.schema, value, node.path)
    return [
        f"{node.path}: {rule!r}: CEL {verdict_cel(rule, defaulted, node.schema)}, "
        f"Python {verdict_python(check, defaulted)} on {defaulted!r}"
        for rule, check in node.pairs()
        if verdict_cel(rule, defaulted, node.schema) != verdict_python(check, defaulted)
    ]


@pytest.mark.parametrize("node", RULE_NODES, ids=[n.path for n in RULE_NODES])
def test_cel_rules_and_python_twins_agree_on_generated_objects(node: Node) -> None:
    @settings(
        max_examples=80,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(values(node.schema))
    def agree(value: Any) -> None:
        assert disagreements(node, value) == []

    agree()


_ABSENT = object()


def _candidates(schema: Schema, literals: set[str], own: list[str], distinct: int = 1) -> list[Any]:
    """Values worth trying for a field a rule reads: absent, and each value that changes what the rule sees.
    `own`: the string literals of the rules that read this very field (the names a rule refuses, a pattern)."""
    if "enum" in schema:
        named = [v for v in schema["enum"] if v in literals]
        return [_ABSENT, *named, *[v for v in schema["enum"] if v not in literals][:1]]
    names = schema.get("items", {}).get("type") == "string"
    return {
        "boolean": [_ABSENT, True, False],
        "object": [_ABSENT, {}],
        # A list of names also gets one entry, for rules that compare lists (`adminRoles` within `roles`), and one
        # of the names its own rules refuse.
        "array": [_ABSENT, [], *([["a"]] if names else []), *([[own[0]]] if names and own else [])],
        "integer": [_ABSENT, schema.get("minimum", 0), *([schema["maximum"]] if "maximum" in schema else [])],
    }.get(schema.get("type", ""), [_ABSENT, "a", *own[: max(distinct, 1)]])


def combinations(node: Node) -> list[dict[str, Any]]:
    """Every combination of presence and telling values of the fields the node's rules read."""
    chains: set[tuple[str, ...]] = set()
    literals: set[str] = set()
    for rule, _ in node.pairs():
        literals |= set(re.findall(r"'([^']*)'", rule))
        for chain in re.findall(FIELD_CHAIN, rule):
            names = tuple(re.sub(r"^__(\w+)__$", r"\1", n) for n in chain.strip(".").split("."))
            chains |= {names[: i + 1] for i in range(len(names))}
    ordered = sorted(chains, key=len)
    options = []
    for chain in ordered:
        sub, required = node.schema, False
        for name in chain:
            required = name in sub.get("required", [])
            sub = sub.get("properties", {}).get(name, {})
        reads = re.compile(r"self\." + r"\.".join(chain) + r"\b(?!\.\w+\b(?!\w*\())")
        # The literals of the rules reading this field, the first of each rule first: a field two rules refuse
        # values of (pg_* and _dbops) gets a value each rule refuses.
        literal_lists = [re.findall(r"'([^']*)'", rule) for rule, _ in node.pairs() if reads.search(rule)]
        firsts = sorted({lits[0] for lits in literal_lists if lits})
        own = [*firsts, *sorted({lit for lits in literal_lists for lit in lits} - set(firsts))]
        distinct = len(firsts)
        # A required field is always there: the schema refuses the object before any rule matters.
        candidates = _candidates(sub, literals, own, distinct)
        options.append([v for v in candidates if not (required and v is _ABSENT)])
    out = []
    for picks in itertools.product(*options):
        chosen = dict(zip(ordered, picks, strict=True))
        if any(v is not _ABSENT and len(c) > 1 and chosen[c[:-1]] is _ABSENT for c, v in chosen.items()):
            continue  # a field inside an absent object
        value: dict[str, Any] = {}
        for chain, pick in chosen.items():
            if pick is not _ABSENT:
                parent = value
                for name in chain[:-1]:
                    parent = parent[name]
                parent[chain[-1]] = copy.deepcopy(pick)
        out.append(value)
    return out


@pytest.mark.parametrize("node", RULE_NODES, ids=[n.path for n in RULE_NODES])
def test_cel_rules_and_python_twins_agree_on_every_combination(node: Node) -> None:
    seen: dict[str, set[bool]] = {rule: set() for rule, _ in node.pairs()}
    cases = combinations(node)
    assert len(cases) < 2000, (
        f"{node.path}: {len(cases)} combinations; the rules read too many fields to enumerate"
    )
    for value in cases:
        assert disagreements(node, value) == []
        defaulted, _ = normalize(node.schema, value, node.path)
        for rule, _check in node.pairs():
            seen[rule].add(verdict_cel(rule, defaulted, node.schema))
    # Both outcomes must have occurred, or the agreement above proves nothing about that rule.
    one_sided = {rule: o for rule, o in seen.items() if o != {True, False} and can_fail(rule, node.schema)}
    assert one_sided == {}


def test_the_agreement_check_catches_a_wrong_twin() -> None:
    wrong = {
        "type": "object",
        "properties": {"a": {"type": "boolean"}},
        "x-kubernetes-validations": [{"rule": "!has(self.a) || self.a", "message": "a must be true"}],
        CHECKS: [lambda s: not s.get("a", False)],  # inverted
    }
    assert disagreements(Node("x", wrong), {"a": True})
    assert disagreements(Node("x", wrong), {"a": False})


def test_every_rule_compiles_and_has_a_message() -> None:
    for kind in KINDS:
        for schema in (SPECS[kind], request_schema(kind), status_schema(kind)):
            for node in rule_nodes(schema, kind):
                for rule in node.schema["x-kubernetes-validations"]:
                    assert rule.get("message"), f"{node.path}: {rule['rule']} has no message"
                    # Compiles; evaluating it on {} may legitimately fail.
                    with contextlib.suppress(RuleEvaluationError):
                        evaluate_rule(rule["rule"], {}, {} if is_transition_rule(rule["rule"]) else None)


# --- rule_errors walks like the API server -------------------------------------------------------------------------


def _defaulted(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    value, _ = normalize(SPECS[kind], spec, "spec")
    return dict(value)


INSTANCE = {"engine": "postgres", "connection": {"host": "db", "port": 5432, "secretRef": {"name": "admin"}}}


def test_rule_errors_accepts_a_valid_spec_and_names_the_broken_rule() -> None:
    assert rule_errors(SPECS["DatabaseInstance"], _defaulted("DatabaseInstance", INSTANCE), "spec") == []
    bad = _defaulted("DatabaseInstance", {**INSTANCE, "mysql": {}, "tls": {"enabled": True}})
    errors = {str(e) for e in rule_errors(SPECS["DatabaseInstance"], bad, "spec")}
    assert errors == {
        "spec.mysql: mysql options need engine: mysql or mariadb",
        "spec.tls.secretRef: tls.enabled defaults to mode verify-full, which needs tls.secretRef; set it or tls.mode: require",
    }


def test_rule_errors_reaches_list_items_with_their_index() -> None:
    spec = {
        "userRef": {"name": "u"},
        "mysql": {
            "grants": [
                {"level": "database", "privileges": ["SELECT"]},
                {"level": "column", "table": "t", "privileges": ["SELECT"]},
            ]
        },
    }
    errors = [str(e) for e in rule_errors(SPECS["DatabaseGrant"], _defaulted("DatabaseGrant", spec), "spec")]
    assert errors == ["spec.mysql.grants[1].columns: column grants need columns"]


def test_transition_rules_run_only_on_updates_and_only_where_the_old_value_exists() -> None:
    spec = _defaulted("Database", {"instanceRef": {"name": "i"}, "name": "app"})
    assert rule_errors(SPECS["Database"], spec, "spec") == []  # create: no oldSelf
    assert rule_errors(SPECS["Database"], spec, "spec", old=copy.deepcopy(spec)) == []
    renamed = {**spec, "name": "other"}
    assert [str(e) for e in rule_errors(SPECS["Database"], renamed, "spec", old=spec)] == [
        "spec.name: name is immutable; create a new object to change it"
    ]
    old_without_name = {k: v for k, v in spec.items() if k != "name"}
    assert rule_errors(SPECS["Database"], renamed, "spec", old=old_without_name) == []


@pytest.mark.parametrize(
    ("kind", "field", "before", "after"),
    [
        ("DatabaseInstance", "engine", "postgres", "mysql"),
        ("Database", "name", "app", "app2"),
        ("DatabaseUser", "username", "app", "app2"),
    ],
)
def test_immutable_fields_refuse_changes(kind: str, field: str, before: str, after: str) -> None:
    base = {
        "DatabaseInstance": INSTANCE,
        "Database": {"instanceRef": {"name": "i"}, "name": "app"},
        "DatabaseUser": {"instanceRef": {"name": "i"}, "username": "app"},
    }[kind]
    old = _defaulted(kind, {**base, field: before})
    new = _defaulted(kind, {**base, field: after})
    assert [e.path for e in rule_errors(SPECS[kind], new, "spec", old=old)] == [f"spec.{field}"]
    # Any other change is not a transition error.
    changed = {**old, "deletionProtection": not old["deletionProtection"]}
    assert rule_errors(SPECS[kind], changed, "spec", old=old) == []


def test_map_list_items_correlate_by_key_for_transition_rules() -> None:
    schema: Schema = {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "size": {
                    "type": "integer",
                    "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "no shrinking"}],
                },
            },
        },
    }
    old = [{"name": "a", "size": 5}, {"name": "b", "size": 5}]
    new = [{"name": "b", "size": 4}, {"name": "a", "size": 6}, {"name": "c", "size": 1}]
    assert [str(e) for e in rule_errors(schema, new, "x", old=old)] == ["x[0].size: no shrinking"]


def test_a_rule_that_cannot_be_evaluated_is_an_error_naming_the_rule() -> None:
    schema: Schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.missing == 1", "message": "m"}],
    }
    (error,) = rule_errors(schema, {}, "spec")
    assert error.path == "spec" and "self.missing == 1" in error.message


def test_mistyped_values_are_left_to_schema_validation() -> None:
    assert rule_errors(SPECS["DatabaseInstance"], {"engine": 5, "tls": "on"}, "spec") == []


def test_property_names_are_escaped_as_kubernetes_does() -> None:
    from function.spec.cel import escape_property

    assert escape_property("function") == "__function__"
    assert escape_property("namespace") == "__namespace__"
    assert escape_property("a.b-c/d") == "a__dot__b__dash__c__slash__d"
    assert escape_property("x__y") == "x__underscores__y"
    assert escape_property("allowedHosts") == "allowedHosts"


def test_a_rule_reading_a_reserved_word_field_needs_the_escaped_name() -> None:
    schema: Schema = {
        "type": "object",
        "properties": {
            "function": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    value = {"function": "f", "labels": {"app.kubernetes.io/name": "x"}}
    assert evaluate_rule("has(self.__function__)", value, schema=schema)
    assert not evaluate_rule("has(self.function)", value, schema=schema)
    # Map keys are not properties: they keep their names.
    assert evaluate_rule("self.labels['app.kubernetes.io/name'] == 'x'", value, schema=schema)


def test_rules_never_name_a_reserved_word_unescaped() -> None:
    reserved = {"function", "namespace", "package", "import", "in", "as", "for", "if", "var", "let", "return"}
    for kind in KINDS:
        for schema in (SPECS[kind], request_schema(kind)):
            for node in rule_nodes(schema, kind):
                for rule in node.schema["x-kubernetes-validations"]:
                    used = set(re.findall(r"\.(\w+)", rule["rule"]))
                    assert not used & reserved, f"{node.path}: {rule['rule']} reads a reserved word unescaped"
