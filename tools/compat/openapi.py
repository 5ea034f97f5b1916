"""OpenAPI v3 schemas (CRDs, XRDs) as flat field lists: the one notation the Go field list, dbops' fields and
docs/compatibility.md share."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
Field = dict[str, Any]

CONSTRAINTS = ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems")


def schema_paths(schema: Schema, path: str) -> list[tuple[str, Schema, bool]]:
    """(path, schema, required) for every property below `schema`; items of object lists add `[]` to the path."""
    if schema.get("type") == "array" and "properties" in schema.get("items", {}):
        return schema_paths(schema["items"], path + "[]")
    out: list[tuple[str, Schema, bool]] = []
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        out.append((f"{path}.{name}", sub, name in required))
        out += schema_paths(sub, f"{path}.{name}")
    return out


def type_name(schema: Schema) -> str:
    """`string`, `integer`, `boolean`, `object`, `[]string`, `[]object`, `map[string]string`."""
    kind = schema.get("type", "object")
    if kind == "array":
        return "[]" + type_name(schema.get("items", {}))
    if (
        kind == "object"
        and "properties" not in schema
        and isinstance(schema.get("additionalProperties"), dict)
    ):
        return "map[string]" + type_name(schema["additionalProperties"])
    return str(kind)


def describe(path: str, schema: Schema, required: bool) -> Field:
    """One path as data: type, required, enum, default, other bounds, CEL rules (descriptions left out)."""
    schema = merged(schema)
    field: Field = {"path": path, "type": type_name(schema), "required": required}
    if "enum" in schema:
        field["enum"] = schema["enum"]
    if "default" in schema:
        field["default"] = schema["default"]
    bounds = {k: schema[k] for k in CONSTRAINTS if k in schema}
    items = schema.get("items", {})
    item_bounds = {k: items[k] for k in ("enum", *CONSTRAINTS) if k in items}
    if item_bounds and "properties" not in items:
        bounds["items"] = item_bounds
    if bounds:
        field["constraints"] = bounds
    rules = [
        {"rule": r["rule"], "message": r.get("message", "")}
        for r in schema.get("x-kubernetes-validations", [])
    ]
    if rules:
        field["rules"] = rules
    return field


def merged(schema: Schema) -> Schema:
    """`schema` with its `allOf` parts folded in (controller-gen emits `allOf` of enums when a type and its field
    both carry an enum marker: a value must be in every one)."""
    if "allOf" not in schema:
        return schema
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        for key, value in merged(part).items():
            if key == "enum" and "enum" in out:
                out["enum"] = [v for v in out["enum"] if v in value]
            else:
                out.setdefault(key, value)
    return out


def fields(schema: Schema, path: str = "spec") -> list[Field]:
    """Every path below `schema`, described, with `leaf` (no path below it)."""
    described = [describe(p, sub, required) for p, sub, required in schema_paths(schema, path)]
    parents = {f["path"].rsplit(".", 1)[0].removesuffix("[]") for f in described}
    return [{**f, "leaf": f["path"] not in parents} for f in described]
