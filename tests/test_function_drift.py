"""driftPolicy (issue 12 item 4) in the function: which worker action and request a mode gives, the instance's
default for its claims, and what a detect run's result puts in status (driftPlan, the Drifted condition).

The worker's side (what ignore runs, what plan writes) is tested on real servers in tests/test_drift_policy.py.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest

from tests.function_cases import kube
from tests.test_function_compose import DB_XR, INSTANCE, NOW, QUICKSTART, call, iso
from worker.request import parse as parse_request

DB_INPUT = kube.reading_pods(kube.composition_input("Database"))


def _database(claim_mode: str | None, instance_mode: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    xr = copy.deepcopy(DB_XR)
    if claim_mode is not None:
        xr["spec"]["driftPolicy"] = {"mode": claim_mode} if claim_mode != "-" else {}
    instance_spec = copy.deepcopy(QUICKSTART["postgres-server"]["spec"])
    if instance_mode is not None:
        instance_spec["driftPolicy"] = {"mode": instance_mode, "interval": "8h"}
    instance = kube.claim("DatabaseInstance", "postgres-server", instance_spec) if instance_mode else INSTANCE
    return xr, instance


# (claim's mode, instance's mode) -> (the Job's action, the request's driftMode)
MODES = [
    (None, None, "apply", None),
    ("correct", None, "apply", None),
    ("detect", None, "plan", None),
    ("ignore", None, "apply", "ignore"),
    ("-", None, "plan", None),  # a driftPolicy without a mode: detect, as in the Go CRD
    (None, "detect", "plan", None),  # the instance's default
    (None, "ignore", "apply", "ignore"),
    ("correct", "detect", "apply", None),  # the claim's own wins
    ("detect", "ignore", "plan", None),
]


@pytest.mark.parametrize(("claim", "instance", "action", "drift"), MODES)
def test_the_mode_picks_the_action_and_the_request(
    claim: str | None, instance: str | None, action: str, drift: str | None
) -> None:
    xr, inst = _database(claim, instance)
    rsp = call(kube.request(xr, required={"instance": [inst]}, input_=DB_INPUT), offline=True)
    [job] = kube.jobs(rsp).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", action]
    request = kube.job_request(job)
    assert request.get("driftMode") == drift
    assert "driftPolicy" not in request["spec"], "the function resolves it; the worker gets driftMode"
    parse_request(json.dumps(request), action)  # the worker accepts it


RESULTS = [
    # (changes, missing) -> (Drifted, reason, count, words in the message)
    ([], False, "False", "InSync", 0, "the server matches the spec"),
    (["ALTER ROLE app CONNECTION LIMIT 5"], False, "True", "Detected", 1, "1 statement(s) would correct it"),
    (
        ["CREATE DATABASE myapp", "COMMENT ON DATABASE myapp IS 'managed by dbops'"],
        True,
        "True",
        "Missing",
        2,
        "the object does not exist, and detect does not create it",
    ),
    (
        [f"GRANT SELECT ON t{i} TO app" for i in range(25)] + ["... and 40 more"],
        False,
        "True",
        "Detected",
        65,
        "65",
    ),
]


@pytest.mark.parametrize(("changes", "missing", "drifted", "reason", "count", "words"), RESULTS)
def test_a_detect_result_shows_the_plan_and_the_drifted_condition(
    changes: list[str], missing: bool, drifted: str, reason: str, count: int, words: str
) -> None:
    xr, inst = _database("detect", None)
    required: dict[str, Any] = {"instance": [inst]}
    first = call(kube.request(xr, required=required, input_=DB_INPUT))
    [(key, job)] = kube.jobs(first).items()
    done = iso(NOW - timedelta(minutes=1))
    result = json.loads(kube.worker_result("Database", action="plan", changes=changes))
    if missing:
        result["missing"] = True
    pod = kube.pod(job, 0, json.dumps(result), done)
    observed = {key: kube.observed(kube.job_complete(job, done), key)}
    rsp = call(
        kube.request(xr, observed_resources=observed, required={**required, "pods": [pod]}, input_=DB_INPUT)
    )
    status = kube.status(rsp)
    conds = kube.conditions(rsp)
    assert status["phase"] == "Ready", status
    assert conds["Drifted"][:2] == (drifted, reason)
    assert words in status["message"] and "wrote nothing" in status["message"]
    plan = status["driftPlan"]
    assert plan["count"] == count and plan["missing"] is missing
    assert plan["statements"] == changes[:20]
    assert not [r for r in rsp.results if r.reason == "DatabaseChanged"], (
        "a plan changed nothing: no audit event"
    )


def test_detect_without_pod_reads_points_at_the_log() -> None:
    xr, inst = _database("detect", None)
    inp = kube.composition_input("Database")  # status.readPods off, as shipped
    first = call(kube.request(xr, required={"instance": [inst]}, input_=inp))
    [(key, job)] = kube.jobs(first).items()
    done = iso(NOW - timedelta(minutes=1))
    observed = {key: kube.observed(kube.job_complete(job, done), key)}
    rsp = call(kube.request(xr, observed_resources=observed, required={"instance": [inst]}, input_=inp))
    assert kube.conditions(rsp)["Drifted"][:2] == ("Unknown", "PlanNotRead")
    assert "kubectl logs job/" in kube.status(rsp)["message"]
    assert "driftPlan" not in kube.status(rsp)


def test_switching_back_to_correct_drops_the_drift_plan() -> None:
    xr, inst = _database("correct", None)
    xr = kube.with_status(xr, {"driftPlan": {"count": 1, "missing": False, "statements": ["X"]}})
    rsp = call(kube.request(xr, required={"instance": [inst]}, input_=DB_INPUT))
    assert "driftPlan" not in kube.status(rsp)


@pytest.mark.parametrize(("mode", "action"), [("detect", "plan"), ("ignore", "apply"), ("correct", "apply")])
def test_a_user_job_runs_the_action_of_its_mode(mode: str, action: str) -> None:
    """DatabaseUser composes its own Job (with the password): it takes the mode's action too."""
    from tests.test_function_compose import SECRET, USER_INPUT, USER_REQUIRED, USER_XR

    xr = copy.deepcopy(USER_XR)
    xr["spec"]["driftPolicy"] = {"mode": mode}
    rsp = call(
        kube.request(
            xr, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        )
    )
    [job] = kube.jobs(rsp).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", action]
    assert kube.job_request(job).get("driftMode") == ("ignore" if mode == "ignore" else None)
