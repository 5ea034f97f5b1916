"""Memoized responses: composing is a pure function of the request and the time, so an identical request within the
time its outcome holds gets the same response without recomputing it.

Crossplane calls the function for every XR every TTL and on every watch event, mostly with an unchanged request
(the steady state). An entry holds the response (without meta), the outcome's TTL rule and how long the outcome
holds (`valid_until`: the next resync epoch or retry; None: until the request changes). Requests differing in
anything but `meta` are different keys. Entries are evicted least-recently-used.

An entry never holds a password. A response's secret values (a composed Secret's `data` and `stringData`, the XR's
connection details) are left out of it; they are memoized only when they equal what the request itself carries (the
observed Secret under the same key, the observed connection details), and a hit takes them from the request at
hand. A response whose secret values differ from the request's (a new password, a changed template) is not
memoized at all.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.outcome import MIN_TTL, Outcome
from function.wire import SECRET_VALUES, plain

MAX_ENTRIES = 2048


@dataclass(frozen=True)
class Summary:
    """What a log line and the TTL need from an outcome (never resources or connection details)."""

    phase: str
    job: str
    results: tuple[str, ...]
    ttl_seconds: float
    ttl_at: datetime | None
    valid_until: datetime | None
    # (kind, namespace, name) of the claim, for the metrics of a memoized answer; None when the call had none.
    claim: tuple[str, str, str] | None = None

    @classmethod
    def of(cls, outcome: Outcome, claim: tuple[str, str, str] | None = None) -> Summary:
        return cls(
            phase=str(outcome.status.get("phase", "")),
            job=str(outcome.status.get("job", "")),
            results=tuple(r.reason for r in outcome.results),
            ttl_seconds=outcome.ttl_seconds,
            ttl_at=outcome.ttl_at,
            valid_until=outcome.valid_until,
            claim=claim,
        )

    def ttl(self, now: datetime) -> float:
        if self.ttl_at is not None:
            return max((self.ttl_at - now).total_seconds(), MIN_TTL)
        return max(self.ttl_seconds, MIN_TTL)


@dataclass(frozen=True)
class Entry:
    response: bytes  # without meta and without any secret value
    summary: Summary
    # Composed Secrets whose values come from the observed Secret of the same key; connection details likewise.
    secrets_from_request: tuple[str, ...] = ()
    details_from_request: bool = False

    def fresh(self, now: datetime) -> bool:
        return self.summary.valid_until is None or now < self.summary.valid_until


def request_key(req: fnv1.RunFunctionRequest) -> bytes:
    """A digest of everything in the request but `meta` (whose tag Crossplane derives from the rest anyway), taken
    over its serialized bytes after `meta` (no copy of the request, and no change to it)."""
    return hashlib.blake2b(without_meta(req.SerializeToString(deterministic=True)), digest_size=20).digest()


# `meta` is field 1 of both RunFunctionRequest and RunFunctionResponse, a message (length-delimited).
_META_TAG = bytes([fnv1.RunFunctionRequest.META_FIELD_NUMBER << 3 | 2])


def without_meta(data: bytes) -> bytes:
    """A serialized request or response without its `meta`: fields are serialized in the order of their numbers,
    so `meta`, when set, is the leading field; the bytes after it."""
    if data[:1] != _META_TAG:
        return data
    length = shift = 0
    pos = 1
    while True:  # the varint length
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return data[pos + length :]
        shift += 7


@dataclass(frozen=True)
class MemoPlan:
    """How a response is memoized without its secret values: which composed Secrets and whether the connection
    details are taken from the request on a hit."""

    secrets: tuple[str, ...]
    details: bool


def memo_plan(req: fnv1.RunFunctionRequest, outcome: Outcome) -> MemoPlan | None:
    """None when the outcome may not be memoized: it holds only until the request changes and it is cacheable, but
    its secret values must also be the ones the request carries (else the memo would have to hold them)."""
    if not outcome.cacheable:
        return None
    secrets: list[str] = []
    for name, composed in outcome.resources.items():
        if composed.resource.get("kind") != "Secret":
            continue
        observed = req.observed.resources[name].resource.fields if name in req.observed.resources else {}
        for field in SECRET_VALUES:
            have = plain(observed[field]) if field in observed else None
            if composed.resource.get(field) != have:
                return None  # values the request does not carry (a new password): never held here
        secrets.append(name)
    details = bool(outcome.connection_details)
    if details:
        wanted = {k: v.encode() for k, v in outcome.connection_details.items()}
        if wanted != dict(req.observed.composite.connection_details):
            return None
    return MemoPlan(tuple(secrets), details)


class ResponseCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(
        self, key: bytes, req: fnv1.RunFunctionRequest, now: datetime
    ) -> tuple[fnv1.RunFunctionResponse, Summary] | None:
        entry = self._entries.get(key)
        if entry is None or not entry.fresh(now):
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        rsp = fnv1.RunFunctionResponse.FromString(entry.response)
        for name in entry.secrets_from_request:
            observed = req.observed.resources[name].resource.fields
            desired = rsp.desired.resources[name].resource.fields
            for field in SECRET_VALUES:
                if field in observed:
                    desired[field].CopyFrom(observed[field])
        if entry.details_from_request:
            rsp.desired.composite.connection_details.update(req.observed.composite.connection_details)
        rsp.meta.tag = req.meta.tag
        rsp.meta.ttl.FromTimedelta(timedelta(seconds=entry.summary.ttl(now)))
        return rsp, entry.summary

    def put(
        self,
        key: bytes,
        body: bytes,
        plan: MemoPlan,
        outcome: Outcome,
        claim: tuple[str, str, str] | None = None,
    ) -> None:
        """Memoize `body` (the response without meta, secret values and connection details; see `memo_plan`)."""
        self._entries[key] = Entry(body, Summary.of(outcome, claim), plan.secrets, plan.details)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
