"""Schema defaults inside option blocks that are absent, for reading a spec (never for building requests)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from dbops_api.registry import SPECS
from dbops_api.validation import normalize


def spec_with_defaults(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """`with_defaults` for a claim spec of `kind`, memoized on its canonical JSON. Read the result; never change
    it (it is shared between calls)."""
    value: dict[str, Any] = _spec_with_defaults(kind, json.dumps(spec, sort_keys=True, separators=(",", ":")))
    return value


@lru_cache(maxsize=512)
def _spec_with_defaults(kind: str, spec_json: str) -> Any:
    return with_defaults(SPECS[kind], json.loads(spec_json))


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with absent option blocks filled in with their defaults, recursively, as a reading aid: the
    API server (like `normalize`) defaults fields only inside objects that are present. Never used for requests,
    where an absent block keeps its meaning (e.g. "not managed")."""
    if not isinstance(value, dict) or not isinstance(schema.get("properties"), dict):
        return value
    out = dict(value)
    for name, sub in schema["properties"].items():
        if sub.get("type") != "object" or "properties" not in sub:
            continue
        if name in out:
            out[name] = with_defaults(sub, out[name])
            continue
        filled, errors = normalize(sub, {}, name)
        if not errors:
            out[name] = with_defaults(sub, filled)
    return out
