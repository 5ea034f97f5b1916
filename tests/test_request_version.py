"""The request's `apiVersion` and version skew between the function and the worker, both ways.

- A function newer than its worker: a request of a newer MINOR version is applied, the fields this worker does not
  know are ignored and named in the result's `warnings` (which the function turns into a Warning event); a newer
  MAJOR version is refused before connecting, saying which image to run.
- A worker newer than the function: a request of an older version (or without `apiVersion`, as Jobs composed
  before the field existed carry) is applied as before.
- The Composition's default worker image is the function's own release.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
from datetime import timedelta
from typing import Any

import pytest
import yaml

from dbops_api.request import API_GROUP, API_VERSION, MAJOR, MINOR, validate
from function.input import DEFAULT_WORKER_IMAGE, parse_input
from tests.conftest import request_for, run_worker, unique
from tests.function_cases import kube
from tests.servers import Server
from tests.test_function_compose import (
    NOW,
    SECRET,
    USER_FACTS,
    USER_INPUT,
    USER_REQUIRED,
    USER_XR,
    call,
    iso,
    user_job,
)

ROOT = kube.ROOT

NEWER_MINOR = f"{API_GROUP}/v{MAJOR}.{MINOR + 3}"
NEWER_MAJOR = f"{API_GROUP}/v{MAJOR + 1}.0"


def _database_exists(server: Server, name: str) -> bool:
    if server.engine == "postgres":
        return bool(server.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))
    return bool(server.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)))


def test_the_function_stamps_its_version_on_every_request() -> None:
    _, job = user_job()
    assert kube.job_request(job)["apiVersion"] == API_VERSION


def test_the_state_hash_ignores_the_version_so_an_upgrade_keeps_converged_jobs() -> None:
    """A Job composed by a function of another request version (here: without apiVersion, as before the field
    existed) still carries the current desired state: it is kept, not re-run."""
    key, job = user_job()
    old = copy.deepcopy(job)
    env = kube.job_env(old)["DBOPS_REQUEST"]
    env["value"] = json.dumps({k: v for k, v in json.loads(env["value"]).items() if k != "apiVersion"})
    result = kube.worker_result("DatabaseUser", observed_facts=USER_FACTS)
    when = iso(NOW - timedelta(minutes=1))
    rsp = call(
        kube.request(
            USER_XR,
            observed_resources={"credentials": SECRET, key: kube.job_complete(old, when)},
            required={**USER_REQUIRED, "pods": [kube.pod(old, 0, result, when)]},
            input_=USER_INPUT,
        )
    )
    assert list(kube.jobs(rsp)) == [key]
    assert kube.status(rsp)["phase"] == "Ready"


def test_the_function_reports_what_an_older_worker_ignored_as_a_warning() -> None:
    key, job = user_job()
    result = json.loads(kube.worker_result("DatabaseUser", observed_facts=USER_FACTS))
    result["warnings"] = [
        "the request is of a newer minor version than this worker (...); ignored: request.x"
    ]
    when = iso(NOW - timedelta(minutes=1))
    rsp = call(
        kube.request(
            USER_XR,
            observed_resources={"credentials": SECRET, key: kube.job_complete(job, when)},
            required={**USER_REQUIRED, "pods": [kube.pod(job, 0, json.dumps(result), when)]},
            input_=USER_INPUT,
        )
    )
    assert kube.status(rsp)["phase"] == "Ready"
    warnings = [(r.reason, r.message) for r in rsp.results]
    assert ("WorkerWarning", result["warnings"][0]) in warnings


def test_a_newer_minor_request_is_applied_and_its_unknown_fields_are_named_in_warnings(
    server: Server,
) -> None:
    name = unique("skew")
    request: dict[str, Any] = request_for(server, "Database", {"name": name, "futureOption": {"x": 1}})
    request["apiVersion"] = NEWER_MINOR
    request["tracing"] = {"sampled": True}
    run = run_worker(server, "apply", request)
    assert run.code == 0, (run.result, run.stderr)
    assert _database_exists(server, name)
    (warning,) = run.result["warnings"]
    assert "request.spec.futureOption" in warning and "request.tracing" in warning
    assert API_VERSION in warning
    # Known fields are still validated: a newer minor version only adds optional fields.
    request["spec"]["name"] = "bad name"
    refused = run_worker(server, "apply", request)
    assert refused.code == 2
    assert "request.spec.name: must match" in refused.error["message"]


def test_a_newer_major_request_is_refused_before_connecting() -> None:
    request = {
        "apiVersion": NEWER_MAJOR,
        "kind": "Database",
        "engine": "postgres",
        # Nothing listens here: a refusal that tried to connect would be a transient connection error instead.
        "connection": {"host": "127.0.0.1", "port": 9},
        "spec": {"name": "app"},
        "owner": {"kind": "Database", "name": "app"},
    }
    checked = validate(json.dumps(request), "apply")
    assert checked.value is None
    (error,) = checked.errors
    assert error.path == "request.apiVersion"
    assert "newer major version" in error.message and "worker.image" in error.message


def test_a_newer_major_request_exits_2_with_a_clear_message(pg: Server) -> None:
    request = request_for(pg, "Database", {"name": unique("skew")})
    request["apiVersion"] = NEWER_MAJOR
    assert pg.log is not None
    mark = pg.log.mark()
    run = run_worker(pg, "apply", request)
    assert run.code == 2
    assert run.error["code"] == "InvalidRequest"
    assert f"request.apiVersion: {NEWER_MAJOR} is a newer major version" in run.error["message"]
    assert not pg.log.since(mark), "a refused request never reaches the server"


@pytest.mark.parametrize("version", [None, f"{API_GROUP}/v1.0"])
def test_a_worker_newer_than_the_function_applies_an_older_request(
    server: Server, version: str | None
) -> None:
    name = unique("old")
    request = request_for(server, "Database", {"name": name})
    if version is not None:
        request["apiVersion"] = version
    run = run_worker(server, "apply", request)
    assert run.code == 0, (run.result, run.stderr)
    assert "warnings" not in run.result
    assert _database_exists(server, name)


@pytest.mark.parametrize(
    "version", ["v1.0", "request.dbops.dbprovision.io/1.0", 1, "request.dbops.dbprovision.io/v1"]
)
def test_a_malformed_version_is_refused_naming_the_form(version: Any) -> None:
    checked = validate(json.dumps({"apiVersion": version, "kind": "Database", "engine": "postgres"}), "apply")
    (error,) = checked.errors
    assert error.path == "request.apiVersion"
    assert f"must be {API_GROUP}/v<major>.<minor>" in error.message


def test_the_default_worker_image_is_the_functions_own_release() -> None:
    release = importlib.metadata.version("dbops")
    assert DEFAULT_WORKER_IMAGE.endswith(f":v{release}")
    assert parse_input(None)[0]["worker"]["image"] == DEFAULT_WORKER_IMAGE
    for path in sorted((ROOT / "apis").glob("*/composition.yaml")):
        composition = yaml.safe_load(path.read_text())
        (step,) = composition["spec"]["pipeline"]
        assert step["input"]["worker"]["image"] == DEFAULT_WORKER_IMAGE, path
