"""The only place the compatibility tools look at dbops' own API. Re-point these functions when the API source
moves (a contract package); nothing else under tools/compat imports the function or the worker.

- `dbops_fields`: the field list, from the generated XRDs (`apis/*/definition.yaml`), which stay generated
  wherever their source lives.
- `dbops_errors`: what dbops says about a claim spec: the schema with its CEL twins (`dbops_api.validation.
  normalize`), then what the function checks beyond the schema (secret templates, engine-dependent rules).
- `crd_errors`: another project's CRD schema applied the way the API server would (unknown fields refused,
  defaults, then its CEL rules), with the same machinery.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from tools.compat.locations import ROOT
from tools.compat.openapi import Schema, merged, schema_paths

XRD_GLOB = "apis/*/definition.yaml"


@cache
def dbops_spec_schemas() -> dict[str, Schema]:
    """The claim `spec` schema of every dbops kind, from the committed XRDs, by claim kind."""
    out: dict[str, Schema] = {}
    for path in sorted(ROOT.glob(XRD_GLOB)):
        xrd = yaml.safe_load(path.read_text())
        (version,) = [v for v in xrd["spec"]["versions"] if v.get("referenceable", True)]
        out[xrd["spec"]["claimNames"]["kind"]] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return out


def dbops_fields(kind: str) -> dict[str, tuple[Schema, bool]]:
    """Every spec path of a dbops kind (list items as `[]`) with its schema and whether it is required; empty for
    a kind dbops lacks."""
    schema = dbops_spec_schemas().get(kind)
    return {path: (sub, required) for path, sub, required in schema_paths(schema, "spec")} if schema else {}


def dbops_errors(kind: str, spec: Any, engine: str | None, namespace: str = "default") -> list[str]:
    """Why dbops refuses this claim spec today (empty: accepted): the schema and its CEL twins, then what the
    function checks beyond the schema (references into another namespace than the claim's `namespace`, the
    secret template grammar; with the instance's `engine` known, the engine-dependent rules and the engine
    block)."""
    from dbops_api.engine_rules import engine_errors
    from dbops_api.go_compat import reference_namespace_errors, resolve_aliases
    from dbops_api.registry import SPECS
    from dbops_api.schema import ENGINES
    from dbops_api.validation import FieldError, normalize
    from function.secrets.credentials import template_errors
    from function.spec.validation import engine_block_errors

    if kind not in SPECS:
        return [f"kind {kind}: dbops has no such kind"]
    resolved, errors = resolve_aliases(kind, spec)
    value, schema_errors = normalize(SPECS[kind], resolved, "spec")
    errors += schema_errors
    if errors:
        return [str(e) for e in errors]
    errors += reference_namespace_errors(kind, value, namespace)
    if kind == "DatabaseUser":
        template = value.get("passwordSecret", {}).get("secretTemplate", {})
        errors += [
            FieldError(f"spec.passwordSecret.secretTemplate.{where}", message)
            for where, message in template_errors(template)
        ]
    if engine in ENGINES:
        instance = (value.get("instanceRef") or {}).get("name", "of this claim")
        errors += engine_block_errors(value, engine, instance) + engine_errors(kind, engine, value)
    return [str(e) for e in errors]


def crd_errors(schema: Schema, spec: Any) -> list[str]:
    """A CRD `spec` schema (with CEL rules, without our Python twins) applied to `spec` as the API server would."""
    from dbops_api.validation import normalize
    from function.spec.cel import rule_errors

    value, errors = normalize(_without_rules(schema), spec, "spec")
    if not errors:
        errors = rule_errors(schema, value, "spec")
    return [str(e) for e in errors]


def _without_rules(schema: Any) -> Any:
    """The schema as `normalize` reads it: CEL rules out (`normalize` evaluates CEL through our Python twins,
    which another project's CRD has none of), `allOf` folded in (it does not read `allOf`)."""
    if isinstance(schema, list):
        return [_without_rules(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: _without_rules(v) for k, v in merged(schema).items() if k != "x-kubernetes-validations"}
