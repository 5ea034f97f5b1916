"""The response memo: an identical request gets the identical answer while it holds, never after."""

from __future__ import annotations

import asyncio
import base64
import random
from datetime import datetime, timedelta

from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.json_format import MessageToDict

from function.fn import FunctionRunner
from function.response_cache import ResponseCache
from tests.function_cases import kube
from tests.test_function_compose import (
    JOB,
    KEY,
    NOW,
    SECRET,
    TRANSIENT,
    USER_FACTS,
    USER_INPUT,
    USER_REQUIRED,
    USER_XR,
    iso,
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _runner(clock: Clock, cache: ResponseCache | None = None) -> FunctionRunner:
    return FunctionRunner(
        clock=clock, rng=random.Random(5), cache=cache if cache is not None else ResponseCache()
    )


def _call(runner: FunctionRunner, req: fnv1.RunFunctionRequest) -> fnv1.RunFunctionResponse:
    return asyncio.run(runner.RunFunction(req))


def _body(rsp: fnv1.RunFunctionResponse) -> dict[str, object]:
    out = MessageToDict(rsp)
    out.pop("meta")
    return out


def _converged(tag: str = "a") -> fnv1.RunFunctionRequest:
    done = kube.job_complete(JOB, iso(NOW - timedelta(minutes=1)))
    pods = [kube.pod(JOB, 0, kube.worker_result("DatabaseUser", observed_facts=USER_FACTS), iso(NOW))]
    return kube.request(
        USER_XR, {"credentials": SECRET, KEY: done}, {**USER_REQUIRED, "pods": pods}, USER_INPUT, tag=tag
    )


def test_an_identical_request_is_answered_from_the_memo_with_its_own_tag_and_ttl() -> None:
    clock = Clock(NOW)
    runner = _runner(clock)
    first = _call(runner, _converged("a"))
    clock.now = NOW + timedelta(minutes=4)
    second = _call(runner, _converged("b"))
    assert runner.cache.hits == 1 and runner.cache.misses == 1
    assert _body(first) == _body(second)
    assert second.meta.tag == "b"
    assert first.meta.ttl.seconds - second.meta.ttl.seconds == 240, "the TTL still points at the next epoch"
    # The memo answers exactly what composing afresh would.
    fresh = _call(_runner(clock), _converged("c"))
    assert _body(fresh) == _body(second) and fresh.meta.ttl == second.meta.ttl


def test_the_memo_ends_at_the_next_resync_epoch() -> None:
    clock = Clock(NOW)
    runner = _runner(clock)
    first = _call(runner, _converged())
    clock.now = NOW + timedelta(seconds=first.meta.ttl.seconds + 1)
    later = _call(runner, _converged())
    assert runner.cache.hits == 0
    assert set(kube.jobs(later)) != set(kube.jobs(first)), "a resync Job, not the memoized answer"


def test_the_memo_ends_when_the_back_off_is_over() -> None:
    failed = kube.job_failed(JOB, iso(NOW))
    pods = [kube.pod(JOB, 1, kube.worker_result("DatabaseUser", error=TRANSIENT), iso(NOW))]
    req = kube.request(
        USER_XR, {"credentials": SECRET, KEY: failed}, {**USER_REQUIRED, "pods": pods}, USER_INPUT
    )
    clock = Clock(NOW + timedelta(seconds=10))
    runner = _runner(clock)
    assert kube.status(_call(runner, req))["phase"] == "Failed"
    clock.now = NOW + timedelta(seconds=29)
    assert kube.status(_call(runner, req))["phase"] == "Failed"
    assert runner.cache.hits == 1
    clock.now = NOW + timedelta(seconds=31)
    rsp = _call(runner, req)
    assert kube.status(rsp)["phase"] == "Provisioning" and len(kube.jobs(rsp)) == 2, "a new attempt starts"


def test_a_freshly_generated_password_is_never_memoized() -> None:
    runner = _runner(Clock(NOW))
    req = kube.request(USER_XR, required=USER_REQUIRED, input_=USER_INPUT)
    first = kube.secret_data(kube.desired(_call(runner, req))["credentials"])["password"]
    second = kube.secret_data(kube.desired(_call(runner, req))["credentials"])["password"]
    assert runner.cache.hits == 0 and len(runner.cache) == 0
    assert first != second


def test_the_memo_is_bounded() -> None:
    cache = ResponseCache(max_entries=3)
    runner = _runner(Clock(NOW), cache)
    for i in range(6):
        _call(
            runner,
            kube.request(
                {**USER_XR, "metadata": {**USER_XR["metadata"], "resourceVersion": str(i)}},
                {"credentials": SECRET},
                USER_REQUIRED,
                USER_INPUT,
            ),
        )
    assert len(cache) == 3


def _memo_bytes(cache: ResponseCache) -> bytes:
    return b"".join(entry.response for entry in cache._entries.values())


def test_the_memo_never_holds_a_password_and_a_hit_still_carries_it() -> None:
    """A converged user's response carries its credentials Secret (the password) and, for a claim that asks, the
    connection details; the memo keeps neither, and a hit fills them in from the request at hand."""
    password = kube.secret_data(SECRET)["password"]
    forms = [password.encode(), base64.b64encode(password.encode())]
    clock = Clock(NOW)
    cache = ResponseCache()
    runner = _runner(clock, cache)
    req = _converged()
    first = _call(runner, req)
    assert kube.secret_data(kube.desired(first)["credentials"])["password"] == password
    assert len(cache) == 1 and cache.misses == 1
    held = _memo_bytes(cache)
    assert held and not [f for f in forms if f in held]
    again = _call(runner, _converged(tag="b"))
    assert cache.hits == 1
    assert _body(again) == _body(first)


def test_a_response_with_a_new_password_is_not_memoized() -> None:
    """The first call of a new user draws a password the request does not carry: nothing is memoized."""
    clock = Clock(NOW)
    cache = ResponseCache()
    runner = _runner(clock, cache)
    rsp = _call(runner, kube.request(USER_XR, required=USER_REQUIRED, input_=USER_INPUT))
    assert "credentials" in kube.desired(rsp)
    assert len(cache) == 0


def test_connection_details_are_memoized_only_as_the_request_carries_them() -> None:
    from tests.test_function_compose import ASKING_CLAIM

    password = kube.secret_data(SECRET)["password"]
    cache = ResponseCache()
    runner = _runner(Clock(NOW), cache)
    req = _converged()
    req.required_resources["claim"].items.add().resource.update(ASKING_CLAIM)
    first = _call(runner, req)
    details = dict(first.desired.composite.connection_details)
    assert details["password"] == password.encode()
    assert len(cache) == 0, "the request does not carry these details yet: not memoized"
    for key, value in details.items():
        req.observed.composite.connection_details[key] = value
    _call(runner, req)
    assert len(cache) == 1
    assert password.encode() not in _memo_bytes(cache)
    hit = _call(runner, req)
    assert cache.hits == 1
    assert dict(hit.desired.composite.connection_details) == details


def test_request_key_ignores_meta_and_nothing_else() -> None:
    """The memo key leaves out `meta` (a short or long tag, or none) without changing the request, and tells every
    other difference apart."""
    from function.response_cache import request_key

    base = kube.request(USER_XR, {}, USER_REQUIRED, USER_INPUT)
    base.ClearField("meta")
    keys = set()
    for tag in ("", "a", "x" * 200, "y" * 20000):
        req = fnv1.RunFunctionRequest()
        req.CopyFrom(base)
        if tag:
            req.meta.tag = tag
        before = req.SerializeToString(deterministic=True)
        keys.add(request_key(req))
        assert req.SerializeToString(deterministic=True) == before, "the request is left as it was"
    assert len(keys) == 1
    other = fnv1.RunFunctionRequest()
    other.CopyFrom(base)
    other.meta.tag = "a"
    other.observed.composite.resource["metadata"]["labels"]["x"] = "1"
    assert request_key(other) not in keys
    other.CopyFrom(base)
    other.context["k"] = "v"
    assert request_key(other) not in keys


def test_without_meta_of_a_response() -> None:
    """The memo form of a response is its serialization without `meta`, however long the tag, and nothing else."""
    from function.response_cache import without_meta

    for tag in ("", "t", "z" * 300):
        rsp = fnv1.RunFunctionResponse()
        rsp.desired.composite.resource["status"] = {"phase": "Ready"}
        rsp.results.add(message="m")
        bare = rsp.SerializeToString()
        if tag:
            rsp.meta.tag = tag
            rsp.meta.ttl.seconds = 60
        assert without_meta(rsp.SerializeToString()) == bare
        assert fnv1.RunFunctionResponse.FromString(
            without_meta(rsp.SerializeToString())
        ) == fnv1.RunFunctionResponse.FromString(bare)
