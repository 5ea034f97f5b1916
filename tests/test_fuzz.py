"""Property-based fuzzing of everything that reads untrusted input: the worker's request parser, its result
rendering, and RunFunction beyond tests/test_function_property.py (which mutates specs, Input and observed Jobs
at random): here the inputs start from what the function really composes for the examples, and the properties are
stronger than "no crash".

- `worker.request.parse`: arbitrary text, arbitrary JSON and mutations of the requests the function composes for
  every example claim end in a Request or InvalidRequest, nothing else; what it accepts is a fixed point (parsing
  it again changes nothing) and carries no quote, backslash, semicolon, control or non-ASCII character in any
  name (defence in depth behind identifier quoting).
- `worker.result.render`: whatever the message and changes contain, the line is JSON of at most 4096 bytes in
  which no secret appears, raw or escaped.
- RunFunction: mutated specs of the example claims (with their references Ready) never crash, and every Job it
  composes carries a request the worker accepts and no secret value; Pods whose termination messages are
  mutated worker results (or garbage, or a password) never crash it, never make it write a status the XRD would
  refuse, and never put the user's password into status, conditions or results; a mutated step Input is either
  accepted or a Fatal result naming `input.`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import string
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from google.protobuf.json_format import MessageToJson
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as s

from dbops_api.status import PHASES, status_schema
from dbops_api.validation import normalize
from function.fn import FunctionRunner
from function.spec.cel import evaluate
from tests.function_cases import kube
from tests.function_cases.render import render
from worker.errors import InvalidRequest, PermanentError
from worker.request import Request, parse
from worker.result import RESULT_LIMIT, Result
from worker.result import render as render_result

EXAMPLES = [
    *sorted((kube.ROOT / "examples" / "postgres").glob("*.yaml")),
    *sorted((kube.ROOT / "examples" / "mysql").glob("*.yaml")),
]
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings an attacker would try, mixed into generated JSON.
HOSTILE = [
    "'; DROP DATABASE postgres; --",
    'a"b',
    "a`b",
    "x\ny",
    "nul\x00",
    "\u0430pp",  # a Cyrillic a
    "\u202egnp",
    "public",
    "CURRENT_USER",
    "pg_x",
    "%",
    "{{ .Password }}",
    "$(id)",
    "../x",
    "a" * 300,
    "",
]
scalars = s.one_of(
    s.none(),
    s.booleans(),
    s.integers(min_value=-(2**40), max_value=2**40),
    s.floats(allow_nan=False, allow_infinity=False, width=32),
    s.text(max_size=30),
    s.sampled_from(HOSTILE),
)
json_values = s.recursive(
    scalars,
    lambda children: s.one_of(
        s.lists(children, max_size=4), s.dictionaries(s.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


# --- what the function composes for the examples -----------------------------------------------------------------


def _world() -> list[dict[str, Any]]:
    """Every example claim, Ready, and every example Secret: what the examples' references resolve to."""
    out: list[dict[str, Any]] = []
    for path in EXAMPLES:
        for doc in kube.load_yaml(path):
            if doc["kind"] == "Secret":
                out.append(
                    {
                        **doc,
                        "metadata": {**doc["metadata"], "namespace": kube.NAMESPACE, "resourceVersion": "3"},
                    }
                )
            else:
                # A DatabaseRestore waits for its DatabaseBackup to be Completed, the others for Ready.
                phase = "Completed" if doc["kind"] == "DatabaseBackup" else "Ready"
                out.append(kube.claim(doc["kind"], doc["metadata"]["name"], doc["spec"], phase=phase))
    return out


def _claims() -> list[dict[str, Any]]:
    return [d for p in EXAMPLES for d in kube.load_yaml(p) if d["kind"] != "Secret"]


def _run_sync(runner: FunctionRunner) -> Any:
    return lambda req: asyncio.run(runner.RunFunction(req))


# cel-python raises the recursion limit when it builds its parser; do that now, not inside a Hypothesis test.
evaluate("true", {})
# The mutated specs never went through an API server: the function checks the XRDs' CEL rules itself (--offline).
RUNNER = FunctionRunner(clock=lambda: NOW, rng=random.Random(3), offline=True)
RUN = _run_sync(RUNNER)


def _compose(claim: dict[str, Any], spec: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Render the claim's XR (with `spec` instead of its own, if given) until it composes a Job or settles: the
    last render and the observed resources it was given."""
    xr = kube.xr_from_claim({**claim, "spec": claim["spec"] if spec is None else spec})
    observed: list[dict[str, Any]] = []
    out = None
    for _ in range(3):
        out = render(RUN, xr, kube.composition_input(claim["kind"]), observed, WORLD)
        if any(r.get("kind") == "Job" for r in out.composed.values()) or not out.composed:
            break
        observed = [kube.observed(r, k) for k, r in out.composed.items()]
    return out, observed


WORLD = _world()


@cache
def composed_requests() -> tuple[tuple[str, str], ...]:
    """(action, DBOPS_REQUEST) of the Job the function composes for each example claim."""
    out = []
    for claim in _claims():
        rendered, _ = _compose(claim)
        for res in rendered.composed.values():
            if res.get("kind") == "Job":
                container = res["spec"]["template"]["spec"]["containers"][0]
                out.append((container["command"][1], kube.job_env(res)["DBOPS_REQUEST"]["value"]))
    return tuple(out)


def test_every_example_claim_composes_a_job_whose_request_the_worker_accepts() -> None:
    requests = composed_requests()
    kinds = {json.loads(text)["kind"] for _, text in requests}
    assert kinds == {
        "DatabaseInstance",
        "Database",
        "DatabaseUser",
        "DatabaseRole",
        "DatabaseGrant",
        "DatabaseBackup",
        "DatabaseRestore",
    }
    # A DatabaseBackupSchedule composes a CronJob, no Job: its runs carry DatabaseBackup requests.
    assert len(requests) == len([c for c in _claims() if c["kind"] != "DatabaseBackupSchedule"])
    for action, text in requests:
        parse(text, action)


# --- worker.request.parse ---------------------------------------------------------------------------------------

_BAD_CHARS = set("'\"`;\\") | {chr(c) for c in range(32)} | {chr(127)}


def _unsafe(value: Any, path: str = "") -> list[str]:
    """Strings in an accepted request that a name should never hold (configParameters values are free text)."""
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out += _unsafe(key, f"{path}[key]")
            if not path.endswith("configParameters"):
                out += _unsafe(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _unsafe(item, f"{path}[{i}]")]
    if isinstance(value, str) and (set(value) & _BAD_CHARS or not value.isascii()):
        return [f"{path}={value!r}"]
    return []


def _accepts_or_refuses(text: str, action: str) -> Request | None:
    try:
        return parse(text, action)
    except InvalidRequest as exc:
        assert exc.code == "InvalidRequest" and exc.message
        return None


def _as_dict(request: Request) -> dict[str, Any]:
    return {
        "kind": request.kind,
        "engine": request.engine,
        "connection": request.connection,
        "spec": request.spec,
        "owner": request.owner,
        "policy": request.policy,
    }


def _check_accepted(request: Request | None, action: str) -> None:
    if request is None:
        return
    again = parse(json.dumps(_as_dict(request)), action)
    assert again == request, "an accepted request is a fixed point of parse"
    unsafe = _unsafe({"connection": request.connection, "spec": request.spec})
    assert not unsafe, unsafe


ACTIONS = ["apply", "plan", "check", "drop"]


@FAST
@given(
    text=s.one_of(s.text(max_size=300), s.binary(max_size=200).map(lambda b: b.decode("latin-1"))),
    action=s.sampled_from(ACTIONS),
)
def test_parse_answers_any_text_with_a_request_or_invalid_request(text: str, action: str) -> None:
    _check_accepted(_accepts_or_refuses(text, action), action)


@FAST
@given(
    value=json_values,
    kind=s.sampled_from(["Database", "DatabaseUser", "DatabaseGrant", "DatabaseInstance", "x"]),
    action=s.sampled_from(ACTIONS),
)
def test_parse_answers_any_json_with_a_request_or_invalid_request(value: Any, kind: str, action: str) -> None:
    if isinstance(value, dict):
        value.setdefault("kind", kind)
    _check_accepted(_accepts_or_refuses(json.dumps(value), action), action)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _mutate(value: Any, data: s.DataObject, rounds: int = 3) -> Any:
    """`value` with a few nodes replaced, removed, duplicated or given unknown siblings, at any depth."""
    out = copy.deepcopy(value)
    for _ in range(data.draw(s.integers(1, rounds))):
        path = data.draw(s.sampled_from(_paths(out)))
        if not path:
            continue
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        op = data.draw(s.sampled_from(["replace", "remove", "sibling", "hostile", "wrap"]))
        if op == "replace":
            parent[last] = data.draw(json_values)
        elif op == "hostile":
            parent[last] = data.draw(s.sampled_from(HOSTILE))
        elif op == "wrap":
            parent[last] = [parent[last]]
        elif op == "remove":
            del parent[last]
        elif isinstance(parent, dict):
            parent[data.draw(s.sampled_from([*HOSTILE[:6], "password", "superuser", "extra"]))] = data.draw(
                json_values
            )
        else:
            parent.append(copy.deepcopy(parent[last]))
    return out


@FAST
@given(data=s.data())
def test_parse_answers_mutated_real_requests_with_a_request_or_invalid_request(data: s.DataObject) -> None:
    action, text = data.draw(s.sampled_from(composed_requests()))
    mutated = _mutate(json.loads(text), data)
    _check_accepted(_accepts_or_refuses(json.dumps(mutated), action), action)


# --- worker.result.render -----------------------------------------------------------------------------------------

secrets_text = s.text(
    alphabet=s.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=8, max_size=40
).filter(lambda t: "*" not in t)


@FAST
@given(
    secrets=s.lists(secrets_text, min_size=1, max_size=3),
    pieces=s.lists(s.text(max_size=300), min_size=1, max_size=30),
    data=s.data(),
)
def test_rendered_results_are_bounded_json_without_any_secret(
    secrets: list[str], pieces: list[str], data: s.DataObject
) -> None:
    def salted(text: str) -> str:
        at = data.draw(s.integers(0, len(text)))
        return text[:at] + data.draw(s.sampled_from(secrets)) + text[at:]

    changes = [salted(p) for p in pieces]
    message = salted(" ".join(pieces))
    result = Result(kind="DatabaseUser", action="apply", changes=changes, observed={"username": salted("u")})
    result.error = PermanentError("ServerError", message)
    plain = Result(kind="DatabaseUser", action="apply", changes=list(pieces), observed={"username": "u"})
    plain.error = PermanentError("ServerError", " ".join(pieces))
    skeleton = render_result(plain, [])
    # A secret that the result's own structure already contains (a key, `true`) cannot be told apart from it.
    assume(not any(secret in skeleton for secret in secrets))
    line = render_result(result, secrets)
    assert len(line.encode()) <= RESULT_LIMIT
    decoded = json.loads(line)
    text = json.dumps(decoded, ensure_ascii=False)
    for secret in secrets:
        assert secret not in line and secret not in text, "a secret survived rendering"


# --- RunFunction ------------------------------------------------------------------------------------------------

CLAIMS = _claims()
# The claims that compose a Job of their own (a DatabaseBackupSchedule composes a CronJob).
JOB_CLAIMS = [c for c in CLAIMS if c["kind"] != "DatabaseBackupSchedule"]


def _secret_values() -> list[str]:
    values = []
    for res in WORLD:
        if res["kind"] == "Secret":
            values += [v for v in (res.get("stringData") or {}).values() if len(v) >= 8 and "PEM" not in v]
    return values


WORLD_SECRETS = _secret_values()


def _literal_secrets(job: dict[str, Any]) -> list[str]:
    env = job["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return [e["name"] for e in env if "PASSWORD" in e["name"] and "value" in e]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=s.data(), index=s.integers(0, len(CLAIMS) - 1))
def test_jobs_composed_from_mutated_specs_carry_requests_the_worker_accepts(
    data: s.DataObject, index: int
) -> None:
    claim = CLAIMS[index]
    spec = _mutate(claim["spec"], data, rounds=2)
    out, _ = _compose(claim, spec)
    reasons = [r["message"] for r in out.results]
    assert not any("internal error" in m for m in reasons), reasons
    text = MessageToJson(out.response)
    assert not [v for v in WORLD_SECRETS if v in text]
    for res in out.composed.values():
        if res.get("kind") != "Job":
            continue
        event("composed a Job")
        assert not _literal_secrets(res)
        container = res["spec"]["template"]["spec"]["containers"][0]
        parse(kube.job_env(res)["DBOPS_REQUEST"]["value"], container["command"][1])


def _settled_job(claim: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """The claim's XR with its Job (and Secret) observed; the user's password when it has one."""
    out, observed = _compose(claim)
    [(key, job)] = [(k, r) for k, r in out.composed.items() if r.get("kind") == "Job"]
    password = None
    for res in observed:
        if res.get("kind") == "Secret":
            password = kube.secret_data(res).get("password")
    return kube.observed(job, key), observed, password


@cache
def _settled(index: int) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    return _settled_job(JOB_CLAIMS[index])


def _termination_message(data: s.DataObject, kind: str, password: str | None) -> str:
    valid = json.loads(
        kube.worker_result(kind, observed_facts={"username": "app", "name": "app", "grantee": "app"})
    )
    choice = data.draw(s.sampled_from(["mutated", "garbage", "json", "password"]))
    if choice == "mutated":
        return json.dumps(_mutate(valid, data))
    if choice == "garbage":
        return data.draw(s.text(max_size=200))
    if choice == "json":
        return json.dumps(data.draw(json_values))
    # A worker that failed to redact: its error message (or observed facts) holds the password.
    leaked = password or "no-password-here"
    valid["ok"] = False
    valid["error"] = {
        "class": "permanent",
        "code": "ServerError",
        "message": f"login failed for app with {leaked}",
    }
    valid["observed"] = {"username": leaked}
    return json.dumps(valid)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=s.data(), index=s.integers(0, len(JOB_CLAIMS) - 1))
def test_any_pod_result_yields_a_valid_status_without_the_password(data: s.DataObject, index: int) -> None:
    claim = JOB_CLAIMS[index]
    job, observed, password = _settled(index)
    finished = "2025-06-01T11:59:00Z"
    code = data.draw(s.sampled_from([0, 1, 2, 137, 255]))
    if data.draw(s.booleans()):
        state = (
            kube.job_complete(job, finished)
            if code == 0
            else kube.job_failed(
                job,
                finished,
                data.draw(s.sampled_from(["PodFailurePolicy", "BackoffLimitExceeded", "DeadlineExceeded"])),
            )
        )
    else:
        state = kube.job_running(job, finished)
    pod = kube.pod(job, code, _termination_message(data, claim["kind"], password), finished)
    resources = [*(r for r in observed if r.get("kind") != "Job"), state]
    xr = kube.xr_from_claim(claim)
    out = render(RUN, xr, kube.composition_input(claim["kind"]), resources, [*WORLD, pod])
    messages = [r["message"] for r in out.results]
    assert not any("internal error" in m for m in messages), messages
    # conditions and claimConditionTypes are Crossplane's; the rest is what the function writes.
    status = {k: v for k, v in out.xr["status"].items() if k not in ("conditions", "claimConditionTypes")}
    assert status["phase"] in PHASES
    _, errors = normalize(status_schema(claim["kind"]), status, "status")
    assert not errors, [str(e) for e in errors]
    if password:
        told = json.dumps([status, out.xr["status"]["conditions"], messages])
        assert password not in told, "the function copied the user's password from a Pod into status"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=s.data(), index=s.integers(0, len(CLAIMS) - 1))
def test_a_mutated_step_input_is_used_or_refused_as_fatal(data: s.DataObject, index: int) -> None:
    claim = CLAIMS[index]
    fn_input = _mutate(kube.composition_input(claim["kind"]) or {}, data, rounds=2)
    xr = kube.xr_from_claim(claim)
    req = kube.request(xr, {}, {}, fn_input if isinstance(fn_input, dict) else None)
    rsp = RUN(req)
    fatal = [r for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    assert all(r.reason in ("InvalidInput",) for r in fatal), [(r.reason, r.message) for r in fatal]
    for r in fatal:
        assert r.message.startswith("invalid step input: input."), r.message
    if fatal:
        assert not rsp.desired.resources, "a fatal result composes nothing"


@pytest.mark.parametrize("index", range(len(JOB_CLAIMS)), ids=[c["metadata"]["name"] for c in JOB_CLAIMS])
def test_the_settled_fixtures_are_real(index: int) -> None:
    """Guards the Pod property above against a vacuous setup: every example claim reaches a Job, and users with
    a generated password have it in their observed Secret."""
    claim = JOB_CLAIMS[index]
    job, _, password = _settled(index)
    assert job["kind"] == "Job"
    generate = claim["kind"] == "DatabaseUser" and "existingPasswordSecret" not in claim["spec"]
    if generate and claim["spec"].get("passwordSecret", {}).get("generate", True):
        assert password and len(password) >= 12 and set(password) <= set(string.printable)


def _selected(selector: Any, res: Any) -> bool:
    """Whether Crossplane would hand `res` over for `selector`, reading `res` without trusting its shape."""
    if not isinstance(res, dict):
        return False
    if res.get("apiVersion") != selector.api_version or res.get("kind") != selector.kind:
        return False
    meta = res.get("metadata") if isinstance(res.get("metadata"), dict) else {}
    if selector.WhichOneof("match") == "match_name":
        return bool(meta.get("name") == selector.match_name)
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    return all(labels.get(k) == v for k, v in selector.match_labels.labels.items())


def _call(xr: Any, observed: dict[str, Any], world: list[Any], fn_input: Any) -> fnv1.RunFunctionResponse:
    """One reconcile as Crossplane does it: call, hand over what the requirements select, call again."""
    required: dict[str, list[Any]] = {}
    rsp = RUN(kube.request(xr, observed, required, fn_input))
    for _ in range(5):
        wanted = {
            name: [r for r in world if _selected(sel, r)] for name, sel in rsp.requirements.resources.items()
        }
        if wanted == required:
            break
        required = wanted
        rsp = RUN(kube.request(xr, observed, required, fn_input))
    return rsp


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=s.data(), index=s.integers(0, len(JOB_CLAIMS) - 1))
def test_mutated_xrs_claims_secrets_and_jobs_never_crash_or_leak(data: s.DataObject, index: int) -> None:
    """The objects around a settled claim, one of them mutated: the XR itself (metadata, status), a referenced
    claim or Secret, the observed credentials Secret or the observed Job."""
    claim = JOB_CLAIMS[index]
    job, before, _ = _settled(index)
    xr: Any = kube.xr_from_claim(claim)
    world: list[Any] = list(WORLD)
    resources = [
        *(r for r in before if r.get("kind") != "Job"),
        kube.job_complete(job, "2025-06-01T11:00:00Z"),
    ]
    observed = {r["metadata"]["annotations"][kube.COMPOSITION_RESOURCE_NAME]: r for r in resources}
    target = data.draw(s.sampled_from(["xr", "world", "observed"]))
    if target == "xr":
        xr = {**_mutate({k: v for k, v in xr.items() if k != "spec"}, data), "spec": xr["spec"]}
    elif target == "world":
        at = data.draw(s.integers(0, len(world) - 1))
        world[at] = _mutate(world[at], data)
    else:
        key = data.draw(s.sampled_from(sorted(observed)))
        observed[key] = _mutate(observed[key], data)
    rsp = _call(xr, observed, world, kube.composition_input(claim["kind"]))
    assert "InternalError" not in [r.reason for r in rsp.results], [r.message for r in rsp.results]
    told = MessageToJson(rsp.desired.composite.resource) + json.dumps(
        [[r.message for r in rsp.results], [c.message for c in rsp.conditions]]
    )
    assert not [v for v in WORLD_SECRETS if v in told]
