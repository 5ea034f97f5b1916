"""The request's and the response's protobuf Structs as plain data, and back.

Converting a Struct field by field in Python is the costliest step of a call (a Job is some 300 values), and
Crossplane sends the same observed Jobs, claims and Pods, and gets the same Jobs back, call after call. So the
conversions are memoized, bounded (LRU), keyed by the exact bytes (or the exact encoded content), and hold:

- no password: a Secret (the credentials Secret, the admin Secret, an existing password Secret) is never memoized,
  it is converted every time;
- no shared value: a memo holds `marshal` bytes, and every call gets its own new dicts and lists from them.

docs/benchmarks.md ("What each memo buys") has the numbers with and without.
"""

from __future__ import annotations

import marshal
from functools import lru_cache
from typing import Any

from google.protobuf import struct_pb2

MEMO_ENTRIES = 512


def plain(value: struct_pb2.Value) -> Any:
    """A protobuf Value as plain Python. JSON numbers arrive as doubles; whole ones become ints again so that
    `port: 5432` validates as an integer (as the API server saw it)."""
    kind = value.WhichOneof("kind")
    # Most values are strings; a map is read key by key (its items() view is a slow Python fallback).
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        fields = value.struct_value.fields
        return {key: plain(fields[key]) for key in fields}
    if kind == "list_value":
        return [plain(v) for v in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind == "bool_value":
        return value.bool_value
    return None


def to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields
    return {key: plain(fields[key]) for key in fields}


# The fields of a Secret that hold its values: never memoized, in either direction.
SECRET_VALUES = frozenset({"data", "stringData"})


def _is_secret(struct: struct_pb2.Struct) -> bool:
    kind = struct.fields.get("kind")
    return kind is not None and kind.string_value == "Secret"


def decoded(struct: struct_pb2.Struct) -> dict[str, Any]:
    """`to_dict`, memoized for everything but Secrets; the result is the caller's own. An observed Secret is never
    memoized, not even its metadata: a Secret written with `kubectl apply` carries its values in the
    last-applied-configuration annotation."""
    if _is_secret(struct):
        return to_dict(struct)
    value: dict[str, Any] = marshal.loads(_decoded(struct.SerializeToString(deterministic=True)))  # noqa: S302
    return value


@lru_cache(maxsize=MEMO_ENTRIES)
def _decoded(data: bytes) -> bytes:
    return marshal.dumps(to_dict(struct_pb2.Struct.FromString(data)))


def decoded_fields(struct: struct_pb2.Struct) -> dict[str, Any]:
    """`decoded` one top-level field at a time, for the composite: what changes from call to call is mostly one part
    of it (its labels, its status), and the other parts are found in the memo."""
    fields = struct.fields
    out: dict[str, Any] = {}
    for key in fields:
        value = fields[key]
        if value.WhichOneof("kind") == "struct_value":
            out[key] = decoded(value.struct_value)
        else:
            out[key] = plain(value)
    return out


def encode(resource: dict[str, Any], target: struct_pb2.Struct, *, merge: bool = False) -> None:
    """Write `resource` into `target` (`merge`: its keys replace those of `target`, others stay), memoized (keyed by
    its marshal bytes: the same content built the same way; a different order of keys only misses the memo). Of a
    Secret the function composes, only the values (`data`, `stringData`) bypass the memo: the rest is the
    function's own metadata."""
    if resource.get("kind") == "Secret":
        values = {k: v for k, v in resource.items() if k in SECRET_VALUES}
        rest = {k: v for k, v in resource.items() if k not in SECRET_VALUES}
        if merge:
            target.MergeFromString(_encoded(marshal.dumps(rest)))
        else:
            target.ParseFromString(_encoded(marshal.dumps(rest)))
        target.update(values)
        return
    data = _encoded(marshal.dumps(resource))
    if merge:
        target.MergeFromString(data)
    else:
        target.ParseFromString(data)


@lru_cache(maxsize=MEMO_ENTRIES)
def _encoded(blob: bytes) -> bytes:
    struct = struct_pb2.Struct()
    struct.update(marshal.loads(blob))  # noqa: S302 (our own bytes, made by encode above)
    data: bytes = struct.SerializeToString()
    return data
