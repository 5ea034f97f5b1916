"""Schema defaults inside option blocks that are absent, for reading a spec (never for building requests)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from dbops_api.registry import SPECS
from dbops_api.schema import Schema
from dbops_api.validation import normalize


@dataclass(frozen=True)
class _Block:
    """An object property of a schema: its value when absent (defaults filled in, blocks inside it too; None when an
    empty one is not valid, e.g. it has required fields), and the blocks inside it."""

    absent: Any
    inner: dict[str, _Block]


def _blocks(schema: Schema) -> dict[str, _Block]:
    out: dict[str, _Block] = {}
    for name, sub in (schema.get("properties") or {}).items():
        if sub.get("type") != "object" or "properties" not in sub:
            continue
        inner = _blocks(sub)
        filled, errors = normalize(sub, {}, name, rules=None)
        out[name] = _Block(None if errors else _fill(inner, filled), inner)
    return out


@cache
def _kind_blocks(kind: str) -> dict[str, _Block]:
    """The blocks of a kind's spec: a constant of its schema, worked out once (each absent block would otherwise
    cost a schema walk on every call)."""
    return _blocks(SPECS[kind])


def _fill(blocks: dict[str, _Block], value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, block in blocks.items():
        if name in out:
            out[name] = _fill(block.inner, out[name])
        elif block.absent is not None:
            out[name] = _copy(block.absent)
    return out


def _copy(value: Any) -> Any:
    """A JSON-like value copied, so no caller shares the defaults' own dicts and lists."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def spec_with_defaults(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """`with_defaults` for a claim spec of `kind`: a new value, the caller's own."""
    value: dict[str, Any] = _fill(_kind_blocks(kind), spec)
    return value


def block_with_defaults(kind: str, spec: dict[str, Any], name: str) -> dict[str, Any]:
    """One option block of a claim spec of `kind` (`passwordSecret`, `healthCheck`, ...), with its defaults and
    those of the blocks inside it, whether the spec has it or not: a new value, the caller's own."""
    block = _kind_blocks(kind)[name]
    value: dict[str, Any] = _fill(block.inner, spec[name]) if name in spec else _copy(block.absent)
    return value


def with_defaults(schema: Schema, value: Any) -> Any:
    """`value` with absent option blocks filled in with their defaults, recursively, as a reading aid: the
    API server (like `normalize`) defaults fields only inside objects that are present. Never used for requests,
    where an absent block keeps its meaning (e.g. "not managed")."""
    return _fill(_blocks(schema), value)
