"""Which call reports a finished worker run (function/audit.py): the one whose status first takes it in, however
often the function is called afterwards, through a transient failure, its retry and the retry's success. Each call
gets the status the previous one wrote, as Crossplane hands it back."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from function.audit import EVENT_REASON
from function.fn import run
from function.outcome import Outcome
from tests.function_cases import kube
from tests.test_function_compose import (
    JOB,
    KEY,
    NOW,
    PASSWORD,
    SECRET,
    TRANSIENT,
    USER_INPUT,
    USER_REQUIRED,
    USER_XR,
    iso,
)

CHANGES = [
    "CREATE ROLE myapp WITH LOGIN",
    "ALTER ROLE myapp PASSWORD ***",
    "GRANT CONNECT ON DATABASE myapp TO myapp",
]


def _call(
    status: dict[str, Any] | None, observed: dict[str, Any], pods: list[dict[str, Any]], now: datetime
) -> tuple[dict[str, Any], Outcome]:
    xr = kube.with_status(USER_XR, status) if status else USER_XR
    req = kube.request(
        xr,
        observed_resources={"credentials": SECRET, **observed},
        required={**USER_REQUIRED, "pods": pods},
        input_=USER_INPUT,
    )
    rsp, _, outcome = run(req, now, random.Random(7))
    return kube.status(rsp), outcome


def _events(outcome: Outcome) -> list[str]:
    return [r.message for r in outcome.results if r.reason == EVENT_REASON]


def test_a_run_is_reported_by_one_call_through_failure_retry_and_success() -> None:
    started = NOW - timedelta(seconds=40)
    status, out = _call(None, {KEY: kube.job_running(JOB, iso(started))}, [], started)
    assert out.report is None and status["job"] == JOB["metadata"]["name"]

    # Attempt 1 fails (transient): the first call that sees it reports it, the next ones do not.
    failed_at = NOW - timedelta(seconds=10)
    failed = {KEY: kube.job_failed(JOB, iso(failed_at))}
    pods = [kube.pod(JOB, 1, kube.worker_result("DatabaseUser", error=TRANSIENT), iso(failed_at))]
    status, out = _call(status, failed, pods, NOW)
    assert status["phase"] == "Failed"
    assert out.report is not None and not out.report.ok
    assert (out.report.error_class, out.report.code) == ("transient", TRANSIENT["code"])
    assert (out.report.engine, out.report.job) == ("postgres", JOB["metadata"]["name"])
    assert out.report.server.endswith(":5432")
    assert not _events(out), "it changed nothing"
    for later in (NOW, NOW + timedelta(seconds=5)):
        again, out = _call(status, failed, pods, later)
        assert out.report is None and again == status

    # The back-off ends: the call that starts attempt 2 does not report attempt 1 again.
    retry_at = NOW + timedelta(seconds=30)
    status, out = _call(status, failed, pods, retry_at)
    assert out.report is None and status["phase"] == "Provisioning" and status["attempts"] == 1
    [(key2, job2)] = [
        (k, c.resource) for k, c in out.resources.items() if c.resource.get("kind") == "Job" and k != KEY
    ]

    # Attempt 2 converges, changing three things: reported once, with one event; then never again.
    done_at = retry_at + timedelta(seconds=20)
    observed = {**failed, key2: kube.job_complete(kube.observed(job2, key2), iso(done_at))}
    result = kube.worker_result(
        "DatabaseUser", observed_facts={"username": "myapp", "login": True}, changes=CHANGES
    )
    pods2 = [*pods, kube.pod(job2, 0, result, iso(done_at))]
    status, out = _call(status, observed, pods2, done_at + timedelta(seconds=1))
    assert status["phase"] == "Ready"
    assert out.report is not None and out.report.ok and out.report.changes == tuple(CHANGES)
    [event] = _events(out)
    assert event.startswith(f"Job {job2['metadata']['name']} changed postgres ")
    assert "3 statements: CREATE ROLE myapp WITH LOGIN; ALTER ROLE myapp PASSWORD ***;" in event
    assert [r.severity for r in out.results if r.reason == EVENT_REASON] == ["Normal"]
    for later in (timedelta(seconds=2), timedelta(minutes=5)):
        again, out = _call(status, observed, pods2, done_at + later)
        assert out.report is None and not _events(out)


def test_a_secret_in_the_changes_is_scrubbed_from_the_event_and_the_report() -> None:
    """The worker masks passwords itself; should one slip into a change summary, the function's redaction (every
    secret the call can see) removes it from the event and from what the audit log line is made of."""
    done_at = NOW - timedelta(seconds=5)
    leaky = [f"ALTER ROLE myapp PASSWORD '{PASSWORD}'"]
    result = kube.worker_result("DatabaseUser", observed_facts={"username": "myapp"}, changes=leaky)
    _, out = _call(
        {"phase": "Provisioning", "job": JOB["metadata"]["name"], "attempts": 0},
        {KEY: kube.job_complete(JOB, iso(done_at))},
        [kube.pod(JOB, 0, result, iso(done_at))],
        NOW,
    )
    assert out.report is not None
    assert PASSWORD not in " ".join(out.report.changes) and PASSWORD not in " ".join(_events(out))
    assert _events(out)
