"""Every case of the hostile corpus (tests/hostile/) gets a clear answer naming the field, and nothing runs.

- The function, served by its console script and called as `crossplane render` calls it, for a legacy XR behind
  a claim and for a v2 namespaced XR alike, answers with a result and a status naming the field, composes no Job (nothing at all for a new XR) and, for an XR that already has a
  Secret and a Job, returns them unchanged.
- The installed `dbops-worker`, given the request the same mistake would produce, exits 2 with InvalidRequest
  naming the field, and never connects: the private servers' logs show no statement and no connection from the
  whole batch (PostgreSQL with log_connections switched on for it, MariaDB's general log records every Connect).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from google.protobuf.json_format import MessageToJson

from tests import hostile
from tests.conftest import WorkerRun, request_for, run_worker
from tests.function_cases import kube
from tests.function_cases.render import Rendered, render
from tests.servers import Server, free_port

FUNCTION = shutil.which("function", path=os.path.dirname(sys.executable)) or "function"
CASES = hostile.cases()
WORKER_CASES = [c for c in CASES if c.worker is not None]
USER_PASSWORD = "hostile-user-password-1"  # a test password; it must not appear anywhere either
SECRET_VALUES = [
    *(v for s in hostile.world()["secrets"] for v in s["data"].values() if "secret" in v),
    "hunter2",
    USER_PASSWORD,
]


def _secret(entry: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": entry["name"],
        "namespace": entry.get("namespace", kube.NAMESPACE),
        "resourceVersion": "17",
    }
    if "labels" in entry:
        meta["labels"] = entry["labels"]
    if "controller" in entry:
        meta["ownerReferences"] = [{**entry["controller"], "controller": True, "blockOwnerDeletion": True}]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": entry.get("type", "Opaque"),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in entry["data"].items()},
    }


WORLD = [
    kube.claim(c["kind"], c["name"], c["spec"], namespace=c.get("namespace", kube.NAMESPACE))
    for c in hostile.world()["claims"]
] + [_secret(s) for s in hostile.world()["secrets"]]
# The same world as Crossplane v2 namespaced XRs (ns.dbops.dbprovision.io): references resolve to these.
NAMESPACED_WORLD = [
    kube.namespaced_xr(c["kind"], c["name"], c["spec"], "Ready", namespace=c.get("namespace", kube.NAMESPACE))
    for c in hostile.world()["claims"]
] + [_secret(s) for s in hostile.world()["secrets"]]
SHAPES = ("claim", "namespaced")


# --- the corpus itself ------------------------------------------------------------------------------------------


def test_the_corpus_covers_every_kind_category_and_name_like_field() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 60
    assert {c.kind for c in CASES} == set(hostile.ACTIONS)
    assert {c.category for c in CASES} == set(hostile.CATEGORIES), "every category has cases"
    for c in CASES:
        assert c.category in hostile.CATEGORIES, c.id
        assert c.field.startswith("spec"), c.id
        if c.worker is not None:
            assert c.worker.field.startswith("request."), c.id
    # Every name-like field of the API is attacked at least once (function side; worker side where reachable).
    name_like = {
        "database name": "spec.name",
        "owner": "spec.owner",
        "username": "spec.username",
        "roles": "spec.roles[",
        "inRoles": "spec.postgres.inRoles[",
        "schema": "spec.postgres.schemas[0].name",
        "schema owner": "spec.postgres.schemas[0].owner",
        "extension name": "spec.postgres.extensions[0].name",
        "extension schema": "spec.postgres.extensions[0].schema",
        "tablespace": "spec.postgres.tablespace",
        "template": "spec.postgres.template",
        "default privileges role": "spec.postgres.defaultPrivileges[0].role",
        "default privileges forRole": "spec.postgres.defaultPrivileges[0].forRole",
        "roleName": "spec.roleName",
        "grant roles (PostgreSQL)": "spec.postgres.roles[",
        "grant roles (MySQL)": "spec.mysql.roles[",
        "grant database": "spec.postgres.grants[0].database",
        "grant schema": "spec.postgres.grants[0].schema",
        "tables": "spec.postgres.grants[0].tables[",
        "sequences": "spec.postgres.grants[0].sequences[",
        "functions": "spec.postgres.grants[0].functions[",
        "table (MySQL)": "spec.mysql.grants[0].table",
        "columns": "spec.mysql.grants[0].columns[",
        "procedure": "spec.mysql.grants[0].procedure",
        "function (MySQL)": "spec.mysql.grants[0].function",
        "grant database (MySQL)": "spec.mysql.grants[0].database",
        "allowed hosts": "spec.mysql.allowedHosts[",
        "connection host": "spec.connection.host",
        "admin database": "spec.connection.database",
        "secret names": "spec.connection.secretRef.name",
        "secret keys": "spec.connection.secretRef.keys.",
        "TLS secret keys": "spec.tls.secretRef.keys.",
        "credentials Secret name": "spec.passwordSecret.secretName",
        "existing password Secret": "spec.existingPasswordSecret.name",
        "existing password key": "spec.existingPasswordSecret.key",
        "config parameter keys": "spec.postgres.configParameters[",
        "template placeholders": "spec.passwordSecret.secretTemplate.data[",
        "privilege names (PostgreSQL)": "spec.postgres.grants[0].privileges",
        "privilege names (MySQL)": "spec.mysql.grants[0].privileges",
        "default privilege names": "spec.postgres.defaultPrivileges[0].privileges",
        "references": "spec.instanceRef",
    }
    missing = [name for name, path in name_like.items() if not any(c.field.startswith(path) for c in CASES)]
    assert not missing, f"name-like fields without a hostile case: {missing}"


# --- the function -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub() -> Iterator[grpcv1.FunctionRunnerServiceStub]:
    """The `function` console script serving plain gRPC, as `crossplane render` runs it (`--offline`: no API
    server checked these XRs)."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [FUNCTION, "--insecure", "--offline", "--address", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
    except grpc.FutureTimeoutError:
        proc.kill()
        pytest.fail("the function did not start: " + proc.communicate()[1].decode())
    yield grpcv1.FunctionRunnerServiceStub(channel)  # type: ignore[no-untyped-call]
    channel.close()
    proc.terminate()
    proc.wait(timeout=15)


def _render(
    stub: Any, case: hostile.Case, spec: dict[str, Any], observed: list[dict[str, Any]], shape: str = "claim"
) -> Rendered:
    if shape == "namespaced":
        xr = kube.namespaced_xr(case.kind, case.id, spec)
        return render(stub.RunFunction, xr, kube.composition_input(case.kind), observed, NAMESPACED_WORLD)
    xr = kube.xr_from_claim({"kind": case.kind, "metadata": {"name": case.id}, "spec": spec})
    return render(stub.RunFunction, xr, kube.composition_input(case.kind), observed, WORLD)


def _before(stub: Any, case: hostile.Case, shape: str = "claim") -> list[dict[str, Any]]:
    """What the case's XR had composed while its spec was the valid baseline: its Secret (users) and a Job that
    completed, as Crossplane observes them."""
    observed: list[dict[str, Any]] = []
    for _ in range(3):
        out = _render(stub, case, hostile.baseline(case.kind, case.base), observed, shape)
        jobs = {k: r for k, r in out.composed.items() if r.get("kind") == "Job"}
        if jobs:
            break
        observed = [kube.observed(r, k) for k, r in out.composed.items()]
    else:
        raise AssertionError(f"the baseline of {case.id} never composed a Job: {out.xr['status']}")
    others = [kube.observed(r, k) for k, r in out.composed.items() if r.get("kind") != "Job"]
    done = [kube.observed(kube.job_complete(r, "2025-01-01T00:00:00Z"), k) for k, r in jobs.items()]
    return others + done


def _names_the_field(case: hostile.Case, out: Rendered, says: bool = True) -> None:
    status = out.xr["status"]
    messages = [r["message"] for r in out.results]
    assert any(case.field in m for m in messages), (case.field, messages, status.get("message"))
    assert case.field in status["message"], status["message"]
    if case.says and says:
        assert any(case.says in m for m in messages), (case.says, messages)
    assert status["phase"] in ("Failed", "Pending"), status
    provisioned = out.condition("Provisioned")
    assert provisioned["status"] == "False", provisioned
    assert out.ready == "False"
    text = MessageToJson(out.response)
    leaked = [s for s in SECRET_VALUES if s in text]
    assert not leaked, f"the answer contains secret values {leaked}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_function_names_the_field_and_composes_nothing(stub: Any, case: hostile.Case, shape: str) -> None:
    out = _render(stub, case, case.spec, [], shape)
    _names_the_field(case, out)
    assert out.composed == {}, f"a new XR with a bad spec composes nothing: {sorted(out.composed)}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_function_keeps_what_exists_unchanged(stub: Any, case: hostile.Case, shape: str) -> None:
    before = _before(stub, case, shape)
    out = _render(stub, case, case.spec, before, shape)
    # The old Jobs carry the old spec, so changing an immutable field (username, name, engine) is also reported;
    # that error names the same field and may come first.
    _names_the_field(case, out, says=False)
    observed = {r["metadata"]["annotations"][kube.COMPOSITION_RESOURCE_NAME]: r for r in before}
    assert set(out.composed) == set(observed), "no new Job, nothing dropped"
    for key, was in observed.items():
        now = out.composed[key]
        assert now["metadata"]["name"] == was["metadata"]["name"]
        if was["kind"] == "Job":
            assert now["spec"] == was["spec"], f"Job {key} changed"
            assert "status" not in now
        else:
            assert now.get("data") == was.get("data"), f"Secret {key} changed"


# --- the worker -------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    runs: dict[str, WorkerRun]
    logs: dict[str, str]  # server engine -> raw log text written during the batch


def _servers(request: pytest.FixtureRequest) -> dict[str, Server]:
    return {"postgres": request.getfixturevalue("pg"), "mariadb": request.getfixturevalue("maria")}


@contextmanager
def _connections_logged(pg: Server) -> Iterator[None]:
    """PostgreSQL logs every connection attempt while this is open (MariaDB's general log always does)."""
    pg.query("ALTER SYSTEM SET log_connections = on")
    pg.query("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 10
        while pg.query("SHOW log_connections") != [("on",)]:
            assert time.monotonic() < deadline, "log_connections did not take effect"
            time.sleep(0.05)
        yield
    finally:
        pg.query("ALTER SYSTEM RESET log_connections")
        pg.query("SELECT pg_reload_conf()")


def _request(worker: hostile.WorkerCase, server: Server) -> dict[str, Any]:
    return {
        "kind": worker.kind,
        "engine": worker.engine,
        "connection": {**server.connection(), **worker.connection},
        "spec": worker.spec,
        "owner": {"kind": worker.kind, "name": "hostile", "namespace": "default", "uid": "0000"},
    }


def _run(case: hostile.Case, servers: dict[str, Server]) -> WorkerRun:
    assert case.worker is not None
    server = servers[case.worker.server]
    return run_worker(server, case.worker.action, _request(case.worker, server), password=USER_PASSWORD)


CONNECTED = {
    "postgres": re.compile(r"connection received: host="),
    "mariadb": re.compile(r"^\S*\s*\S*\s*\d+ Connect\t", re.M),
}


@pytest.fixture(scope="module")
def batch(request: pytest.FixtureRequest) -> Batch:
    """Every worker case at once (a thread pool over subprocesses), with the servers' logs marked around it."""
    servers = _servers(request)
    if any(s.log is None for s in servers.values()):
        pytest.skip("needs the private servers' statement logs")
    with _connections_logged(servers["postgres"]):
        marks = {name: s.log.mark() for name, s in servers.items()}  # type: ignore[union-attr]
        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = dict(
                zip(
                    [c.id for c in WORKER_CASES],
                    pool.map(lambda c: _run(c, servers), WORKER_CASES),
                    strict=True,
                )
            )
        logs = {name: s.log.text_since(marks[name]) for name, s in servers.items()}  # type: ignore[union-attr]
    return Batch(runs, logs)


@pytest.mark.parametrize("case", WORKER_CASES, ids=str)
def test_the_worker_refuses_before_connecting(batch: Batch, case: hostile.Case) -> None:
    assert case.worker is not None
    run = batch.runs[case.id]
    assert run.code == 2, (run.stdout, run.stderr)
    assert run.error["code"] == "InvalidRequest", run.result
    assert case.worker.field in run.error["message"], (case.worker.field, run.error["message"])
    assert f"permanent error InvalidRequest: {case.worker.field}" in run.stderr, run.stderr
    assert run.result["statements"] == {"reads": 0, "writes": 0}
    everything = run.stdout + run.stderr
    assert USER_PASSWORD not in everything and not any(s in everything for s in SECRET_VALUES)


def test_no_worker_of_the_batch_sent_a_statement_or_connected(batch: Batch) -> None:
    assert len(batch.runs) == len(WORKER_CASES) >= 60
    for engine, text in batch.logs.items():
        assert not CONNECTED[engine].search(text), f"{engine} saw a connection:\n{text[:2000]}"
        statements = [line for line in text.splitlines() if "statement:" in line or "\tQuery\t" in line]
        assert not statements, f"{engine} logged statements:\n" + "\n".join(statements[:20])


def test_the_log_check_sees_a_worker_that_does_connect(request: pytest.FixtureRequest) -> None:
    """The control for the check above: a valid request connects, and the logs show it."""
    servers = _servers(request)
    if any(s.log is None for s in servers.values()):
        pytest.skip("needs the private servers' statement logs")
    with _connections_logged(servers["postgres"]):
        for engine, server in servers.items():
            mark = server.log.mark()  # type: ignore[union-attr]
            valid = {
                "kind": "DatabaseInstance",
                "engine": engine,
                "connection": server.connection(),
                "spec": {},
            }
            run = run_worker(server, "check", json.dumps(valid))
            assert run.code == 0, run.stderr
            text = server.log.text_since(mark)  # type: ignore[union-attr]
            assert CONNECTED[engine].search(text), f"{engine}: the connection is not in the log:\n{text}"


# --- the admin account ------------------------------------------------------------------------------------------


def _admin(server: Server) -> str:
    """The admin the worker is told it connects as. The private PostgreSQL server's is `postgres`, a system account
    every request is refused for anyway; the check under test is the one for any admin name, so PostgreSQL gets
    another (the requests are refused before connecting: the name never logs in)."""
    return "ops_admin" if server.engine == "postgres" else server.admin_user


def _admin_requests(server: Server) -> list[tuple[str, dict[str, Any], str]]:
    """Requests that would alter, drop, revoke from or hand out the account the worker connects as. Only the
    worker knows that account (from its Secret), so the function composes these and the worker must refuse."""
    admin = _admin(server)
    if server.engine == "postgres":
        return [
            ("DatabaseUser", {"username": admin}, "request.spec.username"),
            ("DatabaseUser", {"username": "app_h5", "roles": ["readers", admin]}, "request.spec.roles[1]"),
            (
                "DatabaseUser",
                {"username": "app_h5", "postgres": {"inRoles": [admin]}},
                "request.spec.postgres.inRoles[0]",
            ),
            ("DatabaseGrant", {"grantee": admin, "postgres": {"roles": []}}, "request.spec.grantee"),
            (
                "DatabaseGrant",
                {"grantee": "app_h5", "postgres": {"roles": [admin]}},
                "request.spec.postgres.roles[0]",
            ),
        ]
    return [
        ("DatabaseUser", {"username": admin}, "request.spec.username"),
        ("DatabaseUser", {"username": "app_h5", "roles": [admin]}, "request.spec.roles[0]"),
        ("DatabaseGrant", {"grantee": admin, "mysql": {"grants": []}}, "request.spec.grantee"),
        ("DatabaseGrant", {"grantee": "app_h5", "mysql": {"roles": [admin]}}, "request.spec.mysql.roles[0]"),
    ]


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_request_naming_the_admin_account_is_refused_before_connecting(
    request: pytest.FixtureRequest, server: Server
) -> None:
    if server.log is None:
        pytest.skip("needs the private server's statement log")
    cases = [
        (kind, spec, field, action)
        for kind, spec, field in _admin_requests(server)
        for action in ("apply", "drop")
    ]
    with _connections_logged(request.getfixturevalue("pg")):
        mark = server.log.mark()
        env = {"DBOPS_ADMIN_USERNAME": _admin(server)}
        runs = [
            run_worker(server, action, request_for(server, kind, spec), password=USER_PASSWORD, env=env)
            for kind, spec, _, action in cases
        ]
        text = server.log.text_since(mark)
        statements = server.log.since(mark)
    for (kind, spec, field, action), run in zip(cases, runs, strict=True):
        assert run.code == 2, (kind, spec, action, run.stderr)
        assert run.error["code"] == "InvalidRequest"
        assert run.error["message"].startswith(f"{field}: '{_admin(server)}' is the admin account"), run.error
    assert not CONNECTED[server.engine].search(text), text[:2000]
    assert not statements, statements[:5]


def test_docs_quote_the_corpus_as_it_is() -> None:
    text = (kube.ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    start, end = (
        "<!-- corpus: kept equal to tests/hostile by tests/test_hostile_input.py -->\n",
        "\n<!-- /corpus -->",
    )
    assert start in text and end in text
    quoted = text[text.index(start) + len(start) : text.index(end)]
    assert quoted == hostile.summary_markdown(), (
        "update docs/security.md from tests.hostile.summary_markdown()"
    )
