"""Shared fixtures: the private servers (one each per test session) and a runner for the worker's CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import timing
from tests.object_store import ObjectStore, find_server_binary, private_object_store
from tests.servers import Server, private_servers
from worker.adapters import mysql_catalog

_STARTED: dict[str, Server] = {}
_CONTEXTS: list[Any] = []


def _server(engine: str) -> Server:
    if engine not in _STARTED:
        context = private_servers((engine,))
        _STARTED.update(context.__enter__())
        _CONTEXTS.append(context)
        if engine == "mariadb":
            # dbops' catalog, as the first object dbops creates on a server leaves it: whichever test runs first
            # would otherwise see two more statements. The catalog's creation has its own test, on its own server.
            for step in mysql_catalog.create_steps():
                _STARTED[engine].query(step.sql)
    return _STARTED[engine]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist process (`make test`), the longest test files first (tests/timing.py); a run in one process
    keeps pytest's order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        timing.order(items, timing.load())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _CONTEXTS:
        _CONTEXTS.pop().__exit__(None, None, None)


@pytest.fixture(scope="session")
def pg() -> Server:
    """The private PostgreSQL server (started on first use)."""
    return _server("postgres")


@pytest.fixture(scope="session")
def maria() -> Server:
    """The private MariaDB server (started on first use)."""
    return _server("mariadb")


@pytest.fixture(params=["postgres", "mariadb"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each real server in turn, for tests that hold for every engine."""
    return _server(request.param)


@pytest.fixture(scope="session")
def object_store_binary() -> str:
    """The pinned S3 gateway, or skip (fail when DBOPS_REQUIRE_TOOLS=1 or DBOPS_S3_SERVER names a missing one)."""
    binary, why = find_server_binary()
    if binary is None:
        if os.environ.get("DBOPS_REQUIRE_TOOLS") == "1" or os.environ.get("DBOPS_S3_SERVER"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return binary


@pytest.fixture(scope="session")
def object_store_tls(object_store_binary: str) -> Iterator[ObjectStore]:
    """A private S3-compatible store (versitygw) over TLS from a generated CA, one bucket; shared by the session,
    so each test works under its own key prefix."""
    with private_object_store(object_store_binary, tls=True) as store:
        yield store


@pytest.fixture(scope="session")
def object_store_plain(object_store_binary: str) -> Iterator[ObjectStore]:
    """The same over plain HTTP."""
    with private_object_store(object_store_binary, tls=False) as store:
        yield store


@pytest.fixture(params=["tls", "plain"])
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each private object store in turn, for tests that hold with and without TLS."""
    store: ObjectStore = request.getfixturevalue(f"object_store_{request.param}")
    return store


WORKER = shutil.which("dbops-worker", path=os.path.dirname(sys.executable)) or "dbops-worker"


@dataclass
class WorkerRun:
    code: int
    result: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def error(self) -> dict[str, Any]:
        return self.result.get("error") or {}


OWNER_NAME = "test"  # the claim every test request acts for (default/test), unless a test names another


def request_for(
    server: Server,
    kind: str,
    spec: dict[str, Any],
    *,
    owner: str = OWNER_NAME,
    policy: dict[str, Any] | None = None,
    **connection: Any,
) -> dict[str, Any]:
    """A worker request for `server` as the function would build it, for the claim `default/<owner>`."""
    engine = "postgres" if server.engine == "postgres" else "mariadb"
    out = {
        "kind": kind,
        "engine": engine,
        "connection": {**server.connection(), **connection},
        "spec": spec,
        "owner": {"kind": kind, "name": owner, "namespace": "default", "uid": "0000"},
    }
    if policy:
        out["policy"] = policy
    return out


def run_worker(
    server: Server,
    action: str,
    request: dict[str, Any] | str,
    password: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> WorkerRun:
    """Run the installed `dbops-worker` console script the way the Job does (request and secrets from env)."""
    full_env = server.worker_env()
    full_env["DBOPS_REQUEST"] = request if isinstance(request, str) else json.dumps(request)
    if password is not None:
        full_env["DBOPS_PASSWORD"] = password
    full_env.update(env or {})
    proc = subprocess.run(
        [WORKER, action], env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    return WorkerRun(proc.returncode, result, proc.stdout, proc.stderr)


def unique(prefix: str) -> str:
    """A fresh server-side name per test, so tests share one server without restarting it."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def run(
    server: Server,
    action: str,
    kind: str,
    spec: dict[str, Any],
    password: str | None = None,
    env: dict[str, str] | None = None,
    **request: Any,
) -> WorkerRun:
    """`run_worker` for a request built from `kind` and `spec` (`request`: request_for's keywords)."""
    return run_worker(server, action, request_for(server, kind, spec, **request), password=password, env=env)


def apply_ok(
    server: Server, kind: str, spec: dict[str, Any], password: str | None = None, **kw: Any
) -> WorkerRun:
    result = run(server, "apply", kind, spec, password=password, **kw)
    assert result.code == 0, (result.result, result.stderr)
    return result


@pytest.fixture(scope="module")
def function_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real `function` console script, served once per test module; its log goes to a temporary file."""
    from dbops_local.runtime import LocalFunction

    with LocalFunction(log_path=str(tmp_path_factory.mktemp("function") / "function.log")) as client:
        yield client
