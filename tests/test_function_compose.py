"""RunFunction, called as Crossplane calls it, for every behaviour of design section 4 (table rows where the
behaviour is "given these observed objects, expect this status")."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from function.jobs import schedule
from function.jobs.job import JOB_PREFIX, PASSWORD_REVISION_ANNOTATION
from function.secrets import credentials as creds
from tests.function_cases import kube
from worker.request import parse

# 50 minutes into the Quick Start user's current resync epoch (1 h, offset by its uid), so that "earlier in the
# same epoch" and "the next epoch" are both easy to name.
_SHIFT = schedule.offset(kube.xr_uid("myapp-user"), 3600)
NOW = datetime.fromtimestamp(schedule.epoch_start(483_000, 3600, _SHIFT) + 50 * 60, tz=UTC)
QUICKSTART = {d["metadata"]["name"]: d for d in kube.load_yaml(kube.ROOT / "examples" / "quickstart.yaml")}
INSTANCE = kube.claim("DatabaseInstance", "postgres-server", QUICKSTART["postgres-server"]["spec"])
DATABASE = kube.claim("Database", "myapp-db", QUICKSTART["myapp-db"]["spec"])
USER_XR = kube.xr_from_claim(QUICKSTART["myapp-user"])
DB_XR = kube.xr_from_claim(QUICKSTART["myapp-db"])
INSTANCE_XR = kube.xr_from_claim(QUICKSTART["postgres-server"])
USER_REQUIRED = {"instance": [INSTANCE], "database": [DATABASE], "credentials-secret": []}
# Most tests here read the worker's result from its Pod, so they opt in to Pod reads; the shipped Compositions
# leave `status.readPods` off (test_without_read_pods_no_pod_is_required_and_a_failure_points_at_the_log).
SHIPPED_INPUT = kube.composition_input("DatabaseUser")
USER_INPUT = kube.reading_pods(SHIPPED_INPUT)
USER_CLAIM = kube.claim("DatabaseUser", "myapp-user", QUICKSTART["myapp-user"]["spec"])
ASKING_CLAIM = kube.claim(
    "DatabaseUser",
    "myapp-user",
    {**QUICKSTART["myapp-user"]["spec"], "writeConnectionSecretToRef": {"name": "myapp-connection"}},
)


def call(
    req: fnv1.RunFunctionRequest, now: datetime = NOW, seed: int = 7, offline: bool = False
) -> fnv1.RunFunctionResponse:
    """One call of the function as served on a cluster, or (`offline`) as `crossplane render` and dbops-local run
    it (`function --offline`: no API server validated the XR, so the function checks its XRD's CEL rules too)."""
    runner = FunctionRunner(clock=lambda: now, rng=random.Random(seed), offline=offline)
    return asyncio.run(runner.RunFunction(req))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_secret(now: datetime = NOW) -> dict[str, Any]:
    """The credentials Secret the function composes on the first call, as observed after Crossplane applied it."""
    rsp = call(kube.request(USER_XR, required=USER_REQUIRED, input_=USER_INPUT), now)
    return kube.observed(kube.desired(rsp)["credentials"], "credentials")


SECRET = user_secret()
PASSWORD = kube.secret_data(SECRET)["password"]


def user_job(
    now: datetime = NOW, observed: dict[str, dict[str, Any]] | None = None, xr: dict[str, Any] = USER_XR
) -> tuple[str, dict[str, Any]]:
    """The Job composed for the Quick Start user once its Secret exists: (desired key, observed Job)."""
    rsp = call(
        kube.request(
            xr,
            observed_resources=observed or {"credentials": SECRET},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        ),
        now,
    )
    [(key, job)] = kube.jobs(rsp).items()
    return key, kube.observed(job, key)


USER_FACTS = {"username": "myapp", "roles": [], "login": True}


# --- the Quick Start --------------------------------------------------------------------------------------------


def test_quickstart_user_first_composes_its_secret_and_waits_for_it() -> None:
    rsp = call(kube.request(USER_XR, required=USER_REQUIRED, input_=USER_INPUT))
    desired = kube.desired(rsp)
    assert set(desired) == {"credentials"}, "no Job before the Secret exists"
    secret = desired["credentials"]
    assert secret["metadata"]["name"] == "myapp-db-credentials"
    assert secret["metadata"]["namespace"] == "default"
    data = kube.secret_data(secret)
    assert set(data) == {"username", "password", "host", "port", "database", "uri"}
    assert data["username"] == "myapp"
    assert data["host"] == "postgres.default.svc.cluster.local"
    assert data["port"] == "5432"
    assert data["database"] == "myapp"
    assert len(data["password"]) == 32 and data["password"].isalnum()
    assert (
        data["uri"] == f"postgresql://myapp:{data['password']}@postgres.default.svc.cluster.local:5432/myapp"
    )
    assert rsp.desired.resources["credentials"].ready == fnv1.READY_TRUE
    assert kube.status(rsp)["phase"] == "Pending"
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "WaitingForSecret")
    assert kube.conditions(rsp)["InstanceReady"][0] == "True"
    assert not rsp.desired.composite.connection_details, "the claim does not ask for a connection Secret"


def test_quickstart_user_with_its_secret_composes_the_job() -> None:
    rsp = call(
        kube.request(
            USER_XR, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        )
    )
    desired = kube.desired(rsp)
    assert kube.secret_data(desired["credentials"])["password"] == PASSWORD
    [(key, job)] = kube.jobs(rsp).items()
    name = job["metadata"]["name"]
    assert key == JOB_PREFIX + name.rsplit("-", 1)[1]
    assert name.startswith("myapp-user-x7k2p-") and len(name) <= 63
    assert job["metadata"]["namespace"] == "default"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["dbops-worker", "apply"]
    env = kube.job_env(job)
    assert env["DBOPS_ADMIN_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "postgres-admin-creds",
        "key": "username",
    }
    assert env["DBOPS_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "postgres-admin-creds",
        "key": "password",
    }
    assert env["DBOPS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "myapp-db-credentials",
        "key": "password",
    }
    request = kube.job_request(job)
    assert request["kind"] == "DatabaseUser" and request["engine"] == "postgres"
    assert request["spec"] == {"username": "myapp", "database": "myapp"}
    assert request["connection"]["host"] == "postgres.default.svc.cluster.local"
    assert request["connection"]["database"] == "postgres"
    assert request["owner"] == {
        "kind": "DatabaseUser",
        "name": "myapp-user",
        "namespace": "default",
        "uid": kube.xr_uid("myapp-user"),
    }
    parse(json.dumps(request), "apply")  # the worker accepts it
    status = kube.status(rsp)
    assert status["phase"] == "Provisioning" and status["job"] == name and status["attempts"] == 0
    assert {r.resources[k].kind for r in [rsp.requirements] for k in r.resources} == {
        "Pod",
        "DatabaseInstance",
        "Database",
        "Secret",
        "DatabaseUser",  # its own claim: does it ask for connection details?
    }
    assert rsp.requirements.resources["admin-secret"].match_name == "postgres-admin-creds"
    assert rsp.requirements.resources["pods"].match_labels.labels == {
        "dbops.dbprovision.io/xr": "myapp-user-x7k2p"
    }


def test_quickstart_instance_composes_a_check_job() -> None:
    rsp = call(kube.request(INSTANCE_XR, input_=kube.composition_input("DatabaseInstance")))
    [job] = kube.jobs(rsp).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "check"]
    request = kube.job_request(job)
    assert request["spec"] == {} and request["kind"] == "DatabaseInstance"
    assert "sslMode" not in request["connection"]
    parse(json.dumps(request), "check")
    assert kube.conditions(rsp)["Connected"][0] == "Unknown"


def test_quickstart_database_composes_an_apply_job() -> None:
    rsp = call(
        kube.request(DB_XR, required={"instance": [INSTANCE]}, input_=kube.composition_input("Database"))
    )
    [job] = kube.jobs(rsp).values()
    request = kube.job_request(job)
    assert request["spec"]["name"] == "myapp"
    assert request["spec"]["postgres"] == {"encoding": "UTF8"}
    assert "DBOPS_PASSWORD" not in kube.job_env(job)
    parse(json.dumps(request), "apply")


# --- status from the Job: table -----------------------------------------------------------------------------------


@dataclass
class Case:
    reason: str
    job: str  # running | complete | failed-permanent | failed-transient | failed-policy | killed-<reason>
    pods: bool = True
    age: timedelta = timedelta(seconds=5)  # how long ago the Job finished
    want_phase: str = ""
    want_reason: str = ""
    want_new_job: bool = False
    want_attempts: int = 0
    want_message: str = ""
    want_ready: bool = False
    previous_status: dict[str, Any] = field(default_factory=dict)


KEY, JOB = user_job()
PERMANENT = {"class": "permanent", "code": "PermissionDenied", "message": "permission denied to create role"}
TRANSIENT = {
    "class": "transient",
    "code": "ConnectionRefused",
    "message": "connection refused by 10.0.0.5:5432",
}

CASES = [
    Case(
        "a complete Job with its result is Ready",
        "complete",
        want_phase="Ready",
        want_reason="Converged",
        want_ready=True,
    ),
    Case(
        "without Pod access, a complete Job is Ready and keeps the facts it had",
        "complete",
        pods=False,
        want_phase="Ready",
        want_reason="Converged",
        want_ready=True,
        previous_status={"user": {"username": "myapp", "login": True}},
    ),
    Case("a running Job is Provisioning", "running", want_phase="Provisioning", want_reason="JobRunning"),
    Case(
        "exit 2 fails with the worker's message and no retry",
        "failed-permanent",
        age=timedelta(minutes=40),
        want_phase="Failed",
        want_reason="PermanentFailure",
        want_attempts=1,
        want_message="permission denied to create role",
    ),
    Case(
        "exit 2 seen only through the pod failure policy is permanent too",
        "failed-policy",
        pods=False,
        age=timedelta(minutes=40),
        want_phase="Failed",
        want_reason="PermanentFailure",
        want_attempts=1,
    ),
    Case(
        "exit 1 waits for its back-off with the failed Job kept",
        "failed-transient",
        age=timedelta(seconds=10),
        want_phase="Failed",
        want_reason="TransientFailure",
        want_attempts=1,
        want_message="connection refused",
    ),
    Case(
        "exit 1 after the back-off starts attempt 2",
        "failed-transient",
        age=timedelta(seconds=31),
        want_phase="Provisioning",
        want_reason="Retrying",
        want_new_job=True,
        want_attempts=1,
    ),
    Case(
        "SIGKILL by the OOM killer (exit 137, no result) is transient and points at the memory limit",
        "killed-OOMKilled",
        age=timedelta(seconds=10),
        want_phase="Failed",
        want_reason="TransientFailure",
        want_attempts=1,
        want_message="the worker was killed (SIGKILL, exit code 137, OOMKilled) before it could report a result: "
        "it ran out of memory; raise the step Input's worker.resources.limits.memory; it is retried",
    ),
    Case(
        "SIGKILL for another reason (exit 137, Error, no result) is transient and names memory or a kill",
        "killed-Error",
        age=timedelta(seconds=10),
        want_phase="Failed",
        want_reason="TransientFailure",
        want_attempts=1,
        want_message="the worker was killed (SIGKILL, exit code 137, Error) before it could report a result: "
        "likely out of memory",
    ),
    Case(
        "SIGKILL after the back-off starts attempt 2",
        "killed-OOMKilled",
        age=timedelta(seconds=31),
        want_phase="Provisioning",
        want_reason="Retrying",
        want_new_job=True,
        want_attempts=1,
    ),
]


def observed_job(case: Case, finished: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    when = iso(finished)
    if case.job == "running":
        return kube.job_running(JOB, when), []
    if case.job == "complete":
        result = kube.worker_result("DatabaseUser", observed_facts=USER_FACTS)
        return kube.job_complete(JOB, when), [kube.pod(JOB, 0, result, when)]
    if case.job == "failed-policy":
        return kube.job_failed(JOB, when, reason="PodFailurePolicy"), []
    if case.job.startswith("killed-"):
        # SIGKILL: no termination message (nothing logged either); the Job has used up its Pod retries.
        pod = kube.pod(JOB, 137, "", when)
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        terminated["reason"] = case.job.removeprefix("killed-")
        del terminated["message"]
        return kube.job_failed(JOB, when, reason="BackoffLimitExceeded"), [pod]
    error = PERMANENT if case.job == "failed-permanent" else TRANSIENT
    code = 2 if error is PERMANENT else 1
    return kube.job_failed(JOB, when), [
        kube.pod(JOB, code, kube.worker_result("DatabaseUser", error=error), when)
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
def test_status_from_the_job(case: Case) -> None:
    finished = NOW - case.age
    job, pods = observed_job(case, finished)
    xr = kube.with_status(USER_XR, case.previous_status) if case.previous_status else USER_XR
    required = {**USER_REQUIRED, "pods": pods if case.pods else []}
    rsp = call(
        kube.request(
            xr, observed_resources={"credentials": SECRET, KEY: job}, required=required, input_=USER_INPUT
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == case.want_phase, status
    # Every condition and result reaches the claim, not just the XR.
    assert rsp.conditions and {c.target for c in rsp.conditions} == {fnv1.TARGET_COMPOSITE_AND_CLAIM}
    assert {r.target for r in rsp.results} <= {fnv1.TARGET_COMPOSITE_AND_CLAIM}
    conds = kube.conditions(rsp)
    assert conds["Provisioned"][1] == case.want_reason
    assert conds["Provisioned"][0] == ("True" if case.want_phase == "Ready" else "False")
    assert status["attempts"] == case.want_attempts
    assert case.want_message in status["message"]
    jobs = kube.jobs(rsp)
    if case.want_new_job:
        # The failed attempt's Job stays (its Pod and logs with it) until a Job succeeds.
        assert KEY in jobs and len(jobs) == 2
        [new] = [j for k, j in jobs.items() if k != KEY]
        assert new["metadata"]["annotations"]["dbops.dbprovision.io/attempt"] == "2"
        assert status["job"] == new["metadata"]["name"]
        assert f"kubectl logs -n default job/{JOB['metadata']['name']}" in status["message"]
        assert rsp.desired.resources[KEY].ready == fnv1.READY_TRUE
    else:
        assert list(jobs) == [KEY], "the Job is kept, and no other is started"
        assert status["job"] == JOB["metadata"]["name"]
    assert (rsp.desired.composite.ready == fnv1.READY_TRUE) is case.want_ready
    if case.want_phase == "Ready":
        assert status["lastAppliedHash"] == JOB["metadata"]["annotations"]["dbops.dbprovision.io/state-hash"]
        assert status["lastSuccessfulTime"] == iso(finished)
        want_facts = USER_FACTS if case.pods else case.previous_status["user"]
        assert status["user"] == want_facts
        assert rsp.desired.resources[KEY].ready == fnv1.READY_TRUE
        # Settled: Crossplane comes back at the next resync epoch; NOW is 50 minutes into a 1 h epoch.
        assert (rsp.meta.ttl.seconds, rsp.meta.ttl.nanos) == (10 * 60, 0)
    if case.want_phase == "Failed":
        [result] = [r for r in rsp.results if r.severity == fnv1.SEVERITY_WARNING]
        assert case.want_message in result.message
        assert result.target == fnv1.TARGET_COMPOSITE_AND_CLAIM
    if case.job == "running" or case.want_new_job:
        assert rsp.meta.ttl.seconds == 10
    if case.want_reason == "TransientFailure":
        assert rsp.meta.ttl.seconds == 20, "the TTL is the time left until the retry"


def test_permanent_failure_is_not_retried_within_the_epoch_but_at_the_next() -> None:
    failed_at = NOW - timedelta(seconds=1)
    job = kube.job_failed(JOB, iso(failed_at))
    pods = [kube.pod(JOB, 2, kube.worker_result("DatabaseUser", error=PERMANENT), iso(failed_at))]
    observed = {"credentials": SECRET, KEY: job}
    required = {**USER_REQUIRED, "pods": pods}
    seen = set()
    for minutes in (0, 5, 9):
        rsp = call(
            kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT),
            NOW + timedelta(minutes=minutes),
        )
        seen.add(kube.status(rsp)["phase"])
        assert list(kube.jobs(rsp)) == [KEY]
    later = NOW + timedelta(minutes=10, seconds=1)
    rsp = call(
        kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT), later
    )
    jobs = kube.jobs(rsp)
    assert KEY in jobs and len(jobs) == 2, (
        "the next resync epoch runs the worker again, keeping the failed Job"
    )
    assert kube.status(rsp)["phase"] == "Provisioning"
    assert seen == {"Failed"}, "within the epoch the failed Job stays and nothing new starts"


def test_transient_back_off_doubles_per_attempt() -> None:
    job = copy.deepcopy(JOB)
    job["metadata"]["annotations"]["dbops.dbprovision.io/attempt"] = "3"
    failed_at = NOW - timedelta(seconds=100)
    pods = [kube.pod(job, 1, kube.worker_result("DatabaseUser", error=TRANSIENT), iso(failed_at))]
    req = kube.request(
        USER_XR,
        observed_resources={"credentials": SECRET, KEY: kube.job_failed(job, iso(failed_at))},
        required={**USER_REQUIRED, "pods": pods},
        input_=USER_INPUT,
    )
    rsp = call(req)
    assert kube.status(rsp)["phase"] == "Failed", "attempt 3 waits 30 * 2^2 = 120 s"
    assert rsp.meta.ttl.seconds == 20
    rsp = call(req, NOW + timedelta(seconds=20))
    [new] = [j for k, j in kube.jobs(rsp).items() if k != KEY]
    assert new["metadata"]["annotations"]["dbops.dbprovision.io/attempt"] == "4"
    assert kube.status(rsp)["attempts"] == 3


def test_resync_runs_a_new_job_in_the_next_epoch_and_stays_ready() -> None:
    done = NOW - timedelta(minutes=1)
    result = kube.worker_result("DatabaseUser", observed_facts=USER_FACTS)
    observed = {"credentials": SECRET, KEY: kube.job_complete(JOB, iso(done))}
    required = {**USER_REQUIRED, "pods": [kube.pod(JOB, 0, result, iso(done))]}
    rsp = call(kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Ready"
    ttl = rsp.meta.ttl.seconds
    assert 1 <= ttl <= 3600
    # At the epoch boundary the same desired state gets a fresh Job; status stays Ready meanwhile.
    later = NOW + timedelta(seconds=ttl + 1)
    rsp = call(
        kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT), later
    )
    jobs = kube.jobs(rsp)
    assert KEY not in jobs and len(jobs) == 1
    status = kube.status(rsp)
    assert status["phase"] == "Ready" and status["user"] == USER_FACTS
    assert kube.conditions(rsp)["Provisioned"][:2] == ("True", "Resync")
    assert rsp.desired.composite.ready == fnv1.READY_TRUE
    [new] = jobs.values()
    # ... and while that Job runs, the converged status stays (the XR status says what converged last).
    new_key = next(iter(jobs))
    converged = kube.with_status(USER_XR, status)
    rsp = call(
        kube.request(
            converged,
            observed_resources={
                "credentials": SECRET,
                new_key: kube.job_running(kube.observed(new, new_key), iso(later)),
            },
            required=USER_REQUIRED,
            input_=USER_INPUT,
        ),
        later,
    )
    assert kube.status(rsp)["phase"] == "Ready" and kube.status(rsp)["user"] == USER_FACTS


def test_resync_disabled_keeps_the_complete_job() -> None:
    no_resync = {**USER_INPUT, "resync": {"enabled": False, "intervalSeconds": 3600}}
    key, job = user_job()
    rsp0 = call(
        kube.request(
            USER_XR, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=no_resync
        )
    )
    [(key, job)] = kube.jobs(rsp0).items()
    done = kube.job_complete(kube.observed(job, key), iso(NOW))
    rsp = call(
        kube.request(
            USER_XR,
            observed_resources={"credentials": SECRET, key: done},
            required=USER_REQUIRED,
            input_=no_resync,
        ),
        NOW + timedelta(days=3),
    )
    assert list(kube.jobs(rsp)) == [key] and kube.status(rsp)["phase"] == "Ready"


def test_a_spec_change_replaces_the_job() -> None:
    changed = copy.deepcopy(USER_XR)
    changed["spec"]["postgres"] = {"connectionLimit": 5}
    done = kube.job_complete(JOB, iso(NOW))
    rsp = call(
        kube.request(
            kube.with_status(changed, {"phase": "Ready"}),
            observed_resources={"credentials": SECRET, KEY: done},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    jobs = kube.jobs(rsp)
    assert KEY not in jobs and len(jobs) == 1
    [job] = jobs.values()
    assert kube.job_request(job)["spec"]["postgres"] == {
        "connectionLimit": 5,
        "validUntil": "infinity",
        "superuser": False,
        "createDB": False,
        "createRole": False,
        "inherit": True,
        "login": True,
        "replication": False,
        "bypassRLS": False,
    }
    assert kube.status(rsp)["phase"] == "Provisioning"


def converged_ttl(uid: str, now: datetime = NOW, name: str | None = None) -> int:
    """Seconds until Crossplane calls again for the Quick Start user converged at `now`, its XR having `uid` (and
    `name`): the time left to its next resync epoch."""
    xr = copy.deepcopy(USER_XR)
    xr["metadata"]["uid"] = uid
    if name is not None:
        xr["metadata"]["name"] = name
    observed: dict[str, dict[str, Any]] = {"credentials": SECRET}
    [(key, job)] = kube.jobs(
        call(kube.request(xr, observed_resources=observed, required=USER_REQUIRED, input_=USER_INPUT), now)
    ).items()
    done = kube.job_complete(kube.observed(job, key), iso(now))
    pods = [kube.pod(done, 0, kube.worker_result("DatabaseUser", observed_facts=USER_FACTS), iso(now))]
    rsp = call(
        kube.request(
            xr,
            observed_resources={**observed, key: done},
            required={**USER_REQUIRED, "pods": pods},
            input_=USER_INPUT,
        ),
        now,
        seed=len(uid),
    )
    assert kube.status(rsp)["phase"] == "Ready"
    return int(rsp.meta.ttl.seconds)


def test_resync_offsets_differ_between_xrs_and_stay_fixed_per_uid() -> None:
    uids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"xr/user-{i}")) for i in range(200)]
    offsets = [schedule.offset(u, 3600) for u in uids]
    assert all(0 <= o < 3600 for o in offsets)
    assert len(set(offsets)) > 180, "200 XRs spread over the hour (a few collisions are expected)"
    assert [schedule.offset(u, 3600) for u in uids] == offsets
    # Not Python's per-process string hash: another interpreter with another hash seed computes the same offsets.
    script = "import sys; from function.jobs import schedule; print([schedule.offset(u, 3600) for u in sys.argv[1:]])"
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script, *uids[:5]],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=kube.ROOT,
        )
        assert done.stdout.strip() == str(offsets[:5])
    # As the user sees it: two converged users that differ only in their uid come back at different times ...
    mine, other = kube.xr_uid("myapp-user"), kube.xr_uid("other-user")
    ttl = converged_ttl(mine)
    assert ttl == 10 * 60, "NOW is 50 minutes into this uid's 1 h epoch"
    assert converged_ttl(other) != ttl
    # ... and one uid keeps its offset: called again, an epoch later, or with the XR renamed.
    assert converged_ttl(mine) == ttl
    assert converged_ttl(mine, NOW + timedelta(hours=1)) == ttl
    assert converged_ttl(mine, name="renamed-x1b2c") == ttl


# --- dependencies ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("required", "want"),
    [
        ({}, "looking up DatabaseInstance postgres-server"),
        (
            {"instance": [], "database": [DATABASE]},
            "DatabaseInstance postgres-server not found in namespace default",
        ),
        (
            {
                "instance": [
                    kube.claim("DatabaseInstance", "postgres-server", INSTANCE["spec"], phase="Provisioning")
                ],
                "database": [DATABASE],
            },
            "DatabaseInstance postgres-server is not Ready (phase Provisioning",
        ),
        (
            {
                "instance": [kube.claim("DatabaseInstance", "postgres-server", INSTANCE["spec"], phase=None)],
                "database": [DATABASE],
            },
            "DatabaseInstance postgres-server is not Ready (no status yet)",
        ),
        (
            {
                "instance": [INSTANCE],
                "database": [kube.claim("Database", "myapp-db", DATABASE["spec"], phase="Failed")],
            },
            "Database myapp-db is not Ready (phase Failed",
        ),
    ],
    ids=["unresolved", "missing", "provisioning", "no-status", "database-failed"],
)
def test_missing_or_unready_dependencies_wait_without_a_job(required: dict[str, Any], want: str) -> None:
    for observed in ({}, {"credentials": SECRET}):
        rsp = call(kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT))
        status = kube.status(rsp)
        assert status["phase"] == "Pending"
        assert want in status["message"]
        assert not kube.jobs(rsp)
        assert rsp.desired.composite.ready == fnv1.READY_FALSE
        assert rsp.meta.ttl.seconds == 30, "required resources are not watched: poll"
        assert set(rsp.requirements.resources) >= {"instance"}
        if observed:
            assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == PASSWORD


def test_database_waits_for_its_instance_with_instance_ready_false() -> None:
    rsp = call(kube.request(DB_XR, required={"instance": []}, input_=kube.composition_input("Database")))
    assert kube.status(rsp)["phase"] == "Pending" and not kube.jobs(rsp)
    assert kube.conditions(rsp)["InstanceReady"][0] == "False"


def test_user_and_database_on_different_instances_is_an_error() -> None:
    other = kube.claim("Database", "myapp-db", {**DATABASE["spec"], "instanceRef": {"name": "other"}})
    rsp = call(
        kube.request(USER_XR, required={"instance": [INSTANCE], "database": [other]}, input_=USER_INPUT)
    )
    assert kube.status(rsp)["phase"] == "Failed"
    assert "spec.databaseRef: Database myapp-db is on DatabaseInstance other" in kube.status(rsp)["message"]


# --- an unhealthy instance: a claim that converged keeps its last result -------------------------------------------


def xr_after(xr: dict[str, Any], rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    """The XR as Crossplane leaves it after applying `rsp`: the status and the custom conditions written."""
    names = {fnv1.STATUS_CONDITION_TRUE: "True", fnv1.STATUS_CONDITION_FALSE: "False"}
    conditions = [
        {"type": c.type, "status": names.get(c.status, "Unknown"), "reason": c.reason, "message": c.message}
        for c in rsp.conditions
    ]
    return kube.with_status(xr, {**kube.status(rsp), "conditions": conditions})


def converge(
    xr: dict[str, Any], required: dict[str, list[dict[str, Any]]], inp: Any
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Call the function as Crossplane would, each Job completing with a successful worker result, until the XR
    is Ready: (the XR with its status, the observed resources, the required resources with the Pods)."""
    observed: dict[str, dict[str, Any]] = {}
    for _ in range(4):
        rsp = call(kube.request(xr, observed_resources=observed, required=required, input_=inp))
        xr = xr_after(xr, rsp)
        if kube.status(rsp)["phase"] == "Ready":
            return xr, observed, required
        observed = {k: kube.observed(r, k) for k, r in kube.desired(rsp).items()}
        done = iso(NOW - timedelta(minutes=1))
        for key, job in kube.jobs(rsp).items():
            observed[key] = kube.observed(kube.job_complete(job, done), key)
            facts = {"Database": {"name": "myapp", "encoding": "UTF8"}, "DatabaseUser": USER_FACTS}
            result = kube.worker_result(
                xr["kind"][1:], observed_facts=facts.get(xr["kind"][1:]), changes=["created"]
            )
            required = {**required, "pods": [kube.pod(job, 0, result, done)]}
    raise AssertionError(f"{xr['kind']} never converged: {xr['status']}")


GRANT_SPEC = {
    "userRef": {"name": "myapp-user"},
    "databaseRef": {"name": "myapp-db"},
    "postgres": {"grants": [{"privileges": ["CONNECT", "TEMPORARY"]}]},
}
DEPENDENTS = {
    "Database": (DB_XR, {"instance": [INSTANCE]}),
    "DatabaseUser": (USER_XR, {**USER_REQUIRED, "claim": [USER_CLAIM]}),
    "DatabaseGrant": (
        kube.xr_from_claim(
            {"kind": "DatabaseGrant", "metadata": {"name": "myapp-grant"}, "spec": GRANT_SPEC}
        ),
        {"instance": [INSTANCE], "database": [DATABASE], "user": [USER_CLAIM]},
    ),
}
UNHEALTHY = {
    "failed": kube.claim("DatabaseInstance", "postgres-server", INSTANCE["spec"], phase="Failed"),
    "rechecking": kube.claim("DatabaseInstance", "postgres-server", INSTANCE["spec"], phase="Provisioning"),
    "deleted": None,
}


@pytest.mark.parametrize("kind", sorted(DEPENDENTS))
@pytest.mark.parametrize("instance", sorted(UNHEALTHY))
def test_a_converged_claim_keeps_its_last_result_while_its_instance_is_unhealthy(
    kind: str, instance: str
) -> None:
    xr, required = DEPENDENTS[kind]
    inp = kube.composition_input(kind)
    ready_xr, observed, required = converge(xr, required, inp)
    down = UNHEALTHY[instance]
    unhealthy = {**required, "instance": [down] if down else []}
    rsp = call(kube.request(ready_xr, observed_resources=observed, required=unhealthy, input_=inp))

    before = {k: v for k, v in ready_xr["status"].items() if k != "conditions"}
    assert before["phase"] == "Ready" and before["lastSuccessfulTime"]
    assert kube.status(rsp) == before, "the last result stands: phase, message, facts, hash, time"
    assert rsp.desired.composite.ready == fnv1.READY_TRUE, (
        "Ready stays True: alerts fire for the instance only"
    )
    conditions = kube.conditions(rsp)
    before = {c["type"]: (c["status"], c["reason"], c["message"]) for c in ready_xr["status"]["conditions"]}
    assert conditions["Provisioned"] == before["Provisioned"] and before["Provisioned"][0] == "True"
    want = {"failed": "InstanceNotReady", "rechecking": "InstanceNotReady", "deleted": "InstanceNotFound"}
    assert conditions["InstanceReady"][:2] == ("False", want[instance])
    assert "DatabaseInstance postgres-server" in conditions["InstanceReady"][2]
    desired = kube.desired(rsp)
    assert set(desired) == set(observed), "no new Job; nothing dropped"
    assert all(desired[k]["metadata"]["name"] == observed[k]["metadata"]["name"] for k in desired)
    assert rsp.meta.ttl.seconds == 30, "poll the instance"
    if kind == "DatabaseUser":
        assert kube.secret_data(desired["credentials"]) == kube.secret_data(observed["credentials"])

    # The instance is Ready again: the result comes from the Job as before, nothing re-runs.
    rsp = call(kube.request(ready_xr, observed_resources=observed, required=required, input_=inp))
    assert kube.status(rsp)["phase"] == "Ready" and set(kube.desired(rsp)) == set(observed)
    assert kube.conditions(rsp)["InstanceReady"][0] == "True"


@pytest.mark.parametrize("kind", sorted(DEPENDENTS))
def test_a_claim_that_never_converged_waits_for_its_unhealthy_instance(kind: str) -> None:
    xr, required = DEPENDENTS[kind]
    failed = {**required, "instance": [UNHEALTHY["failed"]]}
    rsp = call(kube.request(xr, required=failed, input_=kube.composition_input(kind)))
    assert kube.status(rsp)["phase"] == "Pending" and not kube.jobs(rsp)
    assert rsp.desired.composite.ready == fnv1.READY_FALSE
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "WaitingForInstance")


def test_a_claim_whose_last_result_was_a_failure_keeps_it_too() -> None:
    """Converged once, then a spec change failed permanently, then the instance went down: still Failed with the
    worker's message, not Pending (and not Ready)."""
    inp = kube.composition_input("Database")
    ready_xr, observed, required = converge(DB_XR, {"instance": [INSTANCE]}, inp)
    changed = copy.deepcopy(ready_xr)
    changed["spec"]["postgres"] = {"connectionLimit": 7}
    rsp = call(kube.request(changed, observed_resources=observed, required=required, input_=inp))
    [(key, job)] = [(k, j) for k, j in kube.jobs(rsp).items() if k not in observed]
    error = {
        "class": "permanent",
        "code": "PermissionDenied",
        "message": "permission denied to alter database",
    }
    pod = kube.pod(job, 2, kube.worker_result("Database", error=error), iso(NOW))
    observed = {**observed, key: kube.observed(kube.job_failed(job, iso(NOW), "PodFailurePolicy"), key)}
    rsp = call(
        kube.request(changed, observed_resources=observed, required={**required, "pods": [pod]}, input_=inp)
    )
    failed_xr = xr_after(changed, rsp)
    assert failed_xr["status"]["phase"] == "Failed"
    down = {**required, "instance": [UNHEALTHY["failed"]]}
    rsp = call(kube.request(failed_xr, observed_resources=observed, required=down, input_=inp))
    assert kube.status(rsp)["phase"] == "Failed"
    assert kube.status(rsp)["message"] == failed_xr["status"]["message"]
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "PermanentFailure")
    assert rsp.desired.composite.ready == fnv1.READY_FALSE


@pytest.mark.parametrize(
    ("code", "exit_code", "klass"),
    [
        ("ConnectionRefused", 1, "transient"),
        ("AuthenticationFailed", 2, "permanent"),
        ("TLSError", 2, "permanent"),
    ],
)
def test_a_job_that_cannot_reach_the_server_keeps_a_converged_claim_ready(
    code: str, exit_code: int, klass: str
) -> None:
    """The instance's own check has not noticed yet (its claim is still Ready), but the claim's next Job (here for a
    spec change) meets a server it cannot reach: the last result stands, InstanceReady says why, and the Job and
    its retries go on as composed."""
    inp = kube.composition_input("Database")
    ready_xr, observed, required = converge(DB_XR, {"instance": [INSTANCE]}, inp)
    changed = copy.deepcopy(ready_xr)
    changed["spec"]["postgres"] = {"connectionLimit": 7}
    rsp = call(kube.request(changed, observed_resources=observed, required=required, input_=inp))
    changed = xr_after(changed, rsp)
    assert changed["status"]["phase"] == "Provisioning", "a change is on its way"
    [(key, job)] = [(k, j) for k, j in kube.jobs(rsp).items() if k not in observed]
    error = {"class": klass, "code": code, "message": "connecting to db.example: connection refused"}
    finished = iso(NOW - timedelta(seconds=5))
    pod = kube.pod(job, exit_code, kube.worker_result("Database", error=error), finished)
    failed = {**observed, key: kube.observed(kube.job_failed(job, finished), key)}
    rsp = call(
        kube.request(changed, observed_resources=failed, required={**required, "pods": [pod]}, input_=inp)
    )

    status = kube.status(rsp)
    assert status["phase"] == "Ready"
    converged_at = ready_xr["status"]["lastSuccessfulTime"]
    assert status["message"].startswith(
        f"as converged at {converged_at}; the current spec waits until the server can be reached: the worker "
        "could not reach the server: connecting to db.example"
    )
    kept = ("lastSuccessfulTime", "lastAppliedHash", "database")
    assert {k: status[k] for k in kept} == {k: ready_xr["status"][k] for k in kept}
    assert rsp.desired.composite.ready == fnv1.READY_TRUE
    conditions = kube.conditions(rsp)
    assert conditions["Provisioned"][:2] == ("False", f"{klass.capitalize()}Failure"), "the change is not in"
    assert conditions["InstanceReady"][:2] == ("False", code)
    assert "the worker could not reach the server: connecting to db.example" in conditions["InstanceReady"][2]
    assert [r.reason for r in rsp.results] == [f"{klass.capitalize()}Failure"], "an event says what happened"
    assert key in kube.desired(rsp), "the failed Job stays (its retry, if any, follows the back-off)"
    if klass == "transient":
        # The retry after the back-off, while it runs, and once it converged.
        told = xr_after(changed, rsp)
        later = NOW + timedelta(minutes=5)
        pods = {**required, "pods": [pod]}
        rsp = call(kube.request(told, observed_resources=failed, required=pods, input_=inp), later)
        [(retry_key, retry)] = [(k, j) for k, j in kube.jobs(rsp).items() if k not in failed]
        assert kube.status(rsp)["phase"] == "Ready" and rsp.desired.composite.ready == fnv1.READY_TRUE
        assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "Retrying")
        assert kube.conditions(rsp)["InstanceReady"][:2] == ("False", code)
        told = xr_after(told, rsp)
        running = {retry_key: kube.observed(kube.job_running(retry, iso(later)), retry_key)}
        rsp = call(kube.request(told, observed_resources=running, required=required, input_=inp), later)
        assert kube.status(rsp)["phase"] == "Ready" and rsp.desired.composite.ready == fnv1.READY_TRUE
        assert kube.conditions(rsp)["InstanceReady"][:2] == ("False", code)
        done = {retry_key: kube.observed(kube.job_complete(retry, iso(later)), retry_key)}
        ok = kube.pod(retry, 0, kube.worker_result("Database", changes=["ALTER DATABASE"]), iso(later))
        pods = {**required, "pods": [ok]}
        rsp = call(kube.request(told, observed_resources=done, required=pods, input_=inp), later)
        assert kube.status(rsp)["phase"] == "Ready" and kube.status(rsp)["job"] == retry["metadata"]["name"]
        assert kube.conditions(rsp)["InstanceReady"][0] == "True"
        assert kube.conditions(rsp)["Provisioned"][:2] == ("True", "Converged")


# --- the password -----------------------------------------------------------------------------------------------


def test_password_is_identical_across_100_calls_given_the_observed_secret() -> None:
    passwords = set()
    for i in range(100):
        rsp = call(
            kube.request(
                USER_XR, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
            ),
            NOW + timedelta(minutes=i),
            seed=i,
        )
        desired = kube.desired(rsp)
        passwords.add(kube.secret_data(desired["credentials"])["password"])
        assert (
            desired["credentials"]["metadata"]["annotations"]["dbops.dbprovision.io/password-revision"] == "1"
        )
    assert passwords == {PASSWORD}


def test_password_is_generated_when_there_is_none_and_honours_the_settings() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"].update(length=48, includeSpecialChars=True, excludeChars="0O1lI")
    seen = set()
    for seed in range(20):
        rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT), seed=seed)
        password = kube.secret_data(kube.desired(rsp)["credentials"])["password"]
        assert len(password) == 48
        assert not set(password) & set("0O1lI")
        assert set(password) <= set("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-._~")
        assert set(password) & set("-._~")
        seen.add(password)
    assert len(seen) == 20


def test_a_lost_secret_gets_a_new_password_with_a_higher_revision_and_a_new_job() -> None:
    done = kube.job_complete(JOB, iso(NOW))
    rsp = call(
        kube.request(USER_XR, observed_resources={KEY: done}, required=USER_REQUIRED, input_=USER_INPUT),
        seed=99,
    )
    secret = kube.desired(rsp)["credentials"]
    assert kube.secret_data(secret)["password"] != PASSWORD
    assert secret["metadata"]["annotations"]["dbops.dbprovision.io/password-revision"] == "2"
    assert list(kube.jobs(rsp)) == [KEY], "no new Job until the new Secret exists; the old one is kept"
    rsp = call(
        kube.request(
            USER_XR,
            observed_resources={KEY: done, "credentials": kube.observed(secret, "credentials")},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    jobs = kube.jobs(rsp)
    assert KEY not in jobs and len(jobs) == 1
    [job] = jobs.values()
    assert job["metadata"]["annotations"]["dbops.dbprovision.io/password-revision"] == "2"


def test_existing_password_secret_is_required_and_referenced() -> None:
    xr = copy.deepcopy(USER_XR)
    del xr["spec"]["passwordSecret"]["generate"]
    xr["spec"]["existingPasswordSecret"] = {"name": "app-password", "key": "pw"}
    rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Pending"
    assert rsp.requirements.resources["existing-password-secret"].match_name == "app-password"
    existing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-password", "namespace": "default", "resourceVersion": "812"},
        "data": {"pw": "czNjcjN0LXBhc3N3b3Jk"},
    }
    required = {**USER_REQUIRED, "existing-password-secret": [existing]}
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    [job] = kube.jobs(rsp).values()
    assert kube.job_env(job)["DBOPS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "app-password",
        "key": "pw",
    }
    assert job["metadata"]["annotations"]["dbops.dbprovision.io/password-revision"] == "rv-812"
    assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == "s3cr3t-password"
    assert "s3cr3t-password" not in json.dumps(job)
    # A new resourceVersion (the password changed) means a new Job.
    required["existing-password-secret"] = [
        {**existing, "metadata": {**existing["metadata"], "resourceVersion": "813"}}
    ]
    [job2] = kube.jobs(call(kube.request(xr, required=required, input_=USER_INPUT))).values()
    assert job2["metadata"]["name"] != job["metadata"]["name"]
    # A Secret without the key is an error naming the field.
    required["existing-password-secret"] = [{**existing, "data": {}}]
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Failed"
    assert "spec.existingPasswordSecret: Secret app-password has no key 'pw'" in kube.status(rsp)["message"]


# --- connection details: only for a claim that asks ------------------------------------------------------------


def details(rsp: fnv1.RunFunctionResponse) -> dict[str, str]:
    return {k: v.decode() for k, v in rsp.desired.composite.connection_details.items()}


def test_connection_details_only_for_a_claim_that_asks_for_them() -> None:
    """Crossplane writes an XR's connection details to its Secret in writeConnectionSecretsToNamespace
    (crossplane-system) and copies that to the claim's writeConnectionSecretToRef: only a claim that asks may
    have its password there."""
    observed = {"credentials": SECRET}
    for found in ([USER_CLAIM], [], None):  # not asking; no claim; not looked up yet
        required = {**USER_REQUIRED, **({"claim": found} if found is not None else {})}
        for obs in ({}, observed):
            rsp = call(kube.request(USER_XR, observed_resources=obs, required=required, input_=USER_INPUT))
            assert details(rsp) == {}
            assert rsp.requirements.resources["claim"].match_name == "myapp-user"
            assert rsp.requirements.resources["claim"].kind == "DatabaseUser"
    required = {**USER_REQUIRED, "claim": [ASKING_CLAIM]}
    rsp = call(kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT))
    assert details(rsp) == kube.secret_data(SECRET)
    # Also while the user waits for its instance: the values come from the observed Secret.
    waiting = {"instance": [], "database": [DATABASE], "claim": [ASKING_CLAIM]}
    rsp = call(kube.request(USER_XR, observed_resources=observed, required=waiting, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Pending" and details(rsp) == kube.secret_data(SECRET)


def test_connection_details_already_published_are_blanked_when_not_asked() -> None:
    """An XR whose connection Secret already holds the password (published by an earlier release, or before the
    claim dropped writeConnectionSecretToRef): every key Crossplane read from it is sent back empty, since
    Crossplane merge-patches that Secret and would keep a key the function leaves out."""
    req = kube.request(
        USER_XR,
        observed_resources={"credentials": SECRET},
        required={**USER_REQUIRED, "claim": [USER_CLAIM]},
        input_=USER_INPUT,
    )
    for key, value in kube.secret_data(SECRET).items():
        req.observed.composite.connection_details[key] = value.encode()
    rsp = call(req)
    assert details(rsp) == dict.fromkeys(kube.secret_data(SECRET), "")
    assert PASSWORD.encode() not in rsp.SerializeToString()


def test_a_namespaced_xr_has_no_connection_details_and_does_not_look_up_its_claim() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["metadata"] = {"name": "myapp-user", "namespace": "default", "uid": "u1"}
    del xr["spec"]["claimRef"]
    rsp = call(kube.request(xr, observed_resources={"credentials": SECRET}, input_=USER_INPUT))
    assert "claim" not in rsp.requirements.resources and details(rsp) == {}


# --- the credentials Secret is never a Secret dbops did not create for the claim ---------------------------------


def existing(name: str, controller: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    """A Secret that exists in the claim's namespace, as Crossplane returns it for the by-name lookup."""
    meta: dict[str, Any] = {"name": name, "namespace": "default", "resourceVersion": "99", "labels": labels}
    if controller is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "controller": True, "blockOwnerDeletion": True, **controller}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "data": {"password": "c2VjcmV0LXZhbHVlLTE="},
    }


TLS_INSTANCE = kube.claim(
    "DatabaseInstance",
    "postgres-server",
    {**INSTANCE["spec"], "tls": {"enabled": True, "mode": "verify-full", "secretRef": {"name": "pg-tls"}}},
)
OTHER_XR = {"apiVersion": kube.API, "kind": "XDatabaseUser", "name": "other-user-q8w4e", "uid": "uid-other"}


@pytest.mark.parametrize(
    ("secret_name", "found", "instance", "why"),
    [
        # The instance's admin and TLS Secrets are refused by name, whether or not they exist yet.
        ("postgres-admin-creds", [], INSTANCE, "is the admin Secret of DatabaseInstance postgres-server"),
        ("postgres-admin-creds", [existing("postgres-admin-creds")], INSTANCE, "is the admin Secret"),
        ("pg-tls", [], TLS_INSTANCE, "is the TLS Secret of DatabaseInstance postgres-server"),
        (
            "other-user-credentials",
            [
                existing(
                    "other-user-credentials",
                    OTHER_XR,
                    **{
                        "crossplane.io/composite": "other-user-q8w4e",
                        "crossplane.io/claim-name": "other-user",
                    },
                )
            ],
            INSTANCE,
            "already exists and it belongs to XDatabaseUser other-user-q8w4e (the claim other-user)",
        ),
        (
            "web-tls",
            [
                existing(
                    "web-tls",
                    {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "web", "uid": "c1"},
                )
            ],
            INSTANCE,
            "already exists and it belongs to Certificate web",
        ),
        ("app-config", [existing("app-config")], INSTANCE, "already exists and it has no controller"),
        # Owned by this XR's name but another uid: a claim deleted and created again is another XR.
        (
            "myapp-db-credentials",
            [existing("myapp-db-credentials", {**OTHER_XR, "name": "myapp-user-x7k2p"})],
            INSTANCE,
            "belongs to XDatabaseUser myapp-user-x7k2p",
        ),
    ],
    ids=["admin", "admin-exists", "tls", "other-claim", "cert-manager", "unrelated", "same-name-other-uid"],
)
def test_the_credentials_secret_is_never_an_existing_secret_dbops_did_not_create(
    secret_name: str, found: list[dict[str, Any]], instance: dict[str, Any], why: str
) -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"]["secretName"] = secret_name
    required = {**USER_REQUIRED, "instance": [instance], "credentials-secret": found}
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    assert kube.desired(rsp) == {}, "nothing is composed: above all not that Secret"
    status = kube.status(rsp)
    assert status["phase"] == "Failed"
    message = status["message"]
    assert message.startswith(f"spec.passwordSecret.secretName: Secret default/{secret_name} "), message
    assert why in message and "choose another secretName" in message
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "SecretNotOwned")
    assert [(r.severity, r.reason) for r in rsp.results] == [(fnv1.SEVERITY_WARNING, "SecretNotOwned")]
    assert rsp.desired.composite.ready == fnv1.READY_FALSE
    assert not rsp.desired.composite.connection_details
    assert rsp.meta.ttl.seconds == 30, "look again soon: the Secret may be deleted"
    assert "secret-value-1" not in str(rsp)

    if secret_name == SECRET["metadata"]["name"]:
        return  # the next part renames an observed Secret
    # An XR that already has its credentials Secret under another name keeps it unchanged and is refused too.
    observed = {"credentials": SECRET, KEY: kube.job_complete(JOB, iso(NOW))}
    rsp = call(kube.request(xr, observed_resources=observed, required=required, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Failed" and why in kube.status(rsp)["message"]
    desired = kube.desired(rsp)
    assert set(desired) == {"credentials", KEY}
    assert desired["credentials"]["metadata"]["name"] == "myapp-db-credentials"
    assert desired["credentials"]["data"] == SECRET["data"]


def test_the_default_secret_name_is_checked_too() -> None:
    xr = copy.deepcopy(USER_XR)
    del xr["spec"]["passwordSecret"]["secretName"]
    required = {**USER_REQUIRED, "credentials-secret": [existing("myapp-user-credentials")]}
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    assert kube.desired(rsp) == {}
    assert kube.status(rsp)["message"].startswith(
        "spec.passwordSecret.secretName (default myapp-user-credentials): Secret default/myapp-user-credentials "
        "already exists"
    )


# --- the migration from claims to namespaced XRs (docs/migrating.md): a released credentials Secret is taken over --


def released(**changes: Any) -> dict[str, Any]:
    """The claim's credentials Secret as the migration leaves it: its owner reference to the legacy XR removed;
    `changes` are metadata changes (None deletes a key)."""
    secret = copy.deepcopy(SECRET)
    meta = secret["metadata"]
    meta.pop("ownerReferences", None)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return secret


NS_USER_XR = kube.namespaced_xr("DatabaseUser", "myapp-user", QUICKSTART["myapp-user"]["spec"])
NS_REQUIRED = {
    "instance": [
        kube.namespaced_xr(
            "DatabaseInstance", "postgres-server", QUICKSTART["postgres-server"]["spec"], "Ready"
        )
    ],
    "database": [kube.namespaced_xr("Database", "myapp-db", QUICKSTART["myapp-db"]["spec"], "Ready")],
}


def test_a_namespaced_xr_takes_over_the_released_secret_of_the_claim_of_its_name_and_keeps_the_password() -> (
    None
):
    rsp = call(
        kube.request(
            NS_USER_XR, required={**NS_REQUIRED, "credentials-secret": [released()]}, input_=USER_INPUT
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == "Provisioning", status
    secret = kube.desired(rsp)["credentials"]
    assert kube.secret_data(secret)["password"] == PASSWORD, "the claim's password, not a new one"
    assert secret["metadata"]["annotations"][creds.REVISION_ANNOTATION] == "1", (
        "the same revision: no new password"
    )
    assert secret["metadata"]["labels"]["dbops.dbprovision.io/xr"] == "myapp-user"
    (job,) = kube.jobs(rsp).values()
    assert job["metadata"]["annotations"][PASSWORD_REVISION_ANNOTATION] == "1"
    assert [(r.severity, r.reason) for r in rsp.results] == [(fnv1.SEVERITY_NORMAL, "SecretTakenOver")]
    assert "myapp-db-credentials" in rsp.results[0].message and PASSWORD not in str(rsp.results)
    # A claim of the same name (created again after its Secret was released) takes it over just the same.
    rsp = call(
        kube.request(
            USER_XR, required={**USER_REQUIRED, "credentials-secret": [released()]}, input_=USER_INPUT
        )
    )
    assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == PASSWORD


OTHER_OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm1"}


@pytest.mark.parametrize(
    ("found", "why"),
    [
        # Still owned, even without a controller reference: something else keeps it.
        (released(ownerReferences=[OTHER_OWNER]), "it has no controller"),
        # Made by someone else: no managed-by label, or none at all.
        (
            released(
                labels={
                    k: v
                    for k, v in SECRET["metadata"]["labels"].items()
                    if k != "app.kubernetes.io/managed-by"
                }
            ),
            "no controller",
        ),
        (released(labels=None), "no controller"),
        # dbops' Secret, but of another claim, or another kind, or another namespace.
        (
            released(labels={**SECRET["metadata"]["labels"], "dbops.dbprovision.io/claim": "other-user"}),
            "no controller",
        ),
        (
            released(labels={**SECRET["metadata"]["labels"], "dbops.dbprovision.io/kind": "Database"}),
            "no controller",
        ),
        (released(namespace="team-b"), "no controller"),
    ],
    ids=["other-owner", "not-managed-by-dbops", "no-labels", "other-claim", "other-kind", "other-namespace"],
)
def test_a_secret_released_by_another_owner_or_not_made_by_dbops_is_never_taken_over(
    found: dict[str, Any], why: str
) -> None:
    for xr, required in ((NS_USER_XR, NS_REQUIRED), (USER_XR, USER_REQUIRED)):
        rsp = call(kube.request(xr, required={**required, "credentials-secret": [found]}, input_=USER_INPUT))
        assert kube.desired(rsp) == {}, "nothing is composed: above all not that Secret"
        status = kube.status(rsp)
        assert status["phase"] == "Failed" and why in status["message"], status
        assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "SecretNotOwned")
        assert PASSWORD not in str(rsp)


def test_the_credentials_secret_is_composed_only_once_its_name_is_known_free_or_ours() -> None:
    # Before Crossplane answered the lookup: nothing composed, the lookup asked for with the claims.
    rsp = call(
        kube.request(USER_XR, required={"instance": [INSTANCE], "database": [DATABASE]}, input_=USER_INPUT)
    )
    assert kube.desired(rsp) == {}
    assert kube.status(rsp)["phase"] == "Pending"
    assert kube.status(rsp)["message"] == "looking up Secret myapp-db-credentials before creating it"
    wanted = rsp.requirements.resources["credentials-secret"]
    assert (wanted.api_version, wanted.kind, wanted.namespace, wanted.match_name) == (
        "v1",
        "Secret",
        "default",
        "myapp-db-credentials",
    )
    first = call(kube.request(USER_XR, input_=USER_INPUT))
    assert "credentials-secret" in first.requirements.resources, "asked in the first call, with the claims"
    # Not there: composed (see the Quick Start tests). There and controlled by this XR (it was created, but is
    # not among the observed resources yet): composed with the password it holds, and its Job can start.
    mine = existing(
        "myapp-db-credentials", {**OTHER_XR, "name": "myapp-user-x7k2p", "uid": kube.xr_uid("myapp-user")}
    )
    mine["data"] = SECRET["data"]
    required = {**USER_REQUIRED, "credentials-secret": [mine]}
    rsp = call(kube.request(USER_XR, required=required, input_=USER_INPUT))
    assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == PASSWORD
    assert len(kube.jobs(rsp)) == 1
    # Once observed, the name is not looked up again.
    rsp = call(
        kube.request(
            USER_XR, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        )
    )
    assert "credentials-secret" not in rsp.requirements.resources


def admin_secret() -> dict[str, Any]:
    """The Quick Start's admin Secret as Crossplane hands it to the function (required resource `admin-secret`):
    `stringData` turned into base64 `data` by the API server."""
    source = QUICKSTART["postgres-admin-creds"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": source["metadata"]["name"], "namespace": "default", "resourceVersion": "4711"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in source["stringData"].items()},
    }


def test_no_job_anywhere_contains_a_secret_value() -> None:
    """Every Job the scenarios compose, with the admin Secret required as in a cluster: neither the user's password
    nor the admin password (plain or base64) appears anywhere in it; secrets reach the Pod only by reference."""
    admin = admin_secret()
    admin_password = QUICKSTART["postgres-admin-creds"]["stringData"]["password"]
    secrets = [PASSWORD, admin_password, SECRET["data"]["password"], admin["data"]["password"]]
    required = {**USER_REQUIRED, "admin-secret": [admin]}
    rsp = call(
        kube.request(
            USER_XR, observed_resources={"credentials": SECRET}, required=required, input_=USER_INPUT
        )
    )
    [(key, job)] = kube.jobs(rsp).items()
    assert job["metadata"]["name"] != JOB["metadata"]["name"], "the admin Secret was read (its revision)"
    done = kube.job_complete(kube.observed(job, key), iso(NOW))
    seen_jobs = 0
    for observed in ({"credentials": SECRET}, {"credentials": SECRET, key: done}):
        for now in (NOW, NOW + timedelta(hours=5)):
            rsp = call(
                kube.request(USER_XR, observed_resources=observed, required=required, input_=USER_INPUT), now
            )
            for job in kube.jobs(rsp).values():
                seen_jobs += 1
                text = json.dumps(job)
                assert not [s for s in secrets if s in text]
                for env in kube.job_env(job).values():
                    assert env["name"] in (
                        "DBOPS_REQUEST",
                        "DBOPS_CREDENTIAL_REVISION",  # which password (a counter), never the password
                        "HOME",
                        "DBOPS_TLS_CA",
                        "DBOPS_TLS_CERT",
                        "DBOPS_TLS_KEY",
                    ) or set(env) == {"name", "valueFrom"}
                assert kube.job_env(job)["DBOPS_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                    "name": "postgres-admin-creds",
                    "key": "password",
                }
    assert seen_jobs >= 3


def test_secret_template_renders_placeholders_and_pipes() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"]["secretTemplate"] = {
        "type": "kubernetes.io/basic-auth",
        "labels": {"team": "payments"},
        "annotations": {"owner": "payments@example.com"},
        "data": {
            "DATABASE_URL": "postgres://{{ .Username }}:{{ .Password | urlquery }}@{{ .Host }}:{{ .Port }}/{{ .Database }}?sslmode={{ .SSLMode }}",
            "WHO": "{{- .Namespace -}} / {{ .Name | upper }}",
            "uri": "custom",
        },
    }
    xr["spec"]["passwordSecret"]["includeSpecialChars"] = True
    rsp = call(kube.request(xr, observed_resources={}, required=USER_REQUIRED, input_=USER_INPUT))
    secret = kube.desired(rsp)["credentials"]
    data = kube.secret_data(secret)
    password = data["password"]
    from urllib.parse import quote

    assert data["DATABASE_URL"] == (
        f"postgres://myapp:{quote(password, safe='')}@postgres.default.svc.cluster.local:5432/myapp?sslmode=prefer"
    )
    assert data["WHO"] == "default/ MYAPP-USER"
    assert data["uri"] == "custom"
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["metadata"]["labels"]["team"] == "payments"
    assert secret["metadata"]["annotations"]["owner"] == "payments@example.com"


@pytest.mark.parametrize(
    "secret_type",
    ["Opaque", "kubernetes.io/basic-auth", "example.com/db-credentials", "vault.example.com/team/db"],
)
def test_allowed_secret_types_are_composed_with_username_and_password(secret_type: str) -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"]["secretTemplate"] = {"type": secret_type}
    observed = {"credentials": {**SECRET, "type": secret_type}}  # created with that type
    rsp = call(kube.request(xr, observed_resources=observed, required=USER_REQUIRED, input_=USER_INPUT))
    secret = kube.desired(rsp)["credentials"]
    assert secret["type"] == secret_type
    data = kube.secret_data(secret)
    assert (data["username"], data["password"]) == ("myapp", PASSWORD)
    assert kube.status(rsp)["phase"] == "Provisioning" and len(kube.jobs(rsp)) == 1


def test_basic_auth_with_an_existing_password_secret_is_composed() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"] = {
        "secretName": "myapp-db-credentials",
        "secretTemplate": {"type": "kubernetes.io/basic-auth"},
    }
    xr["spec"]["existingPasswordSecret"] = {"name": "app-password", "key": "pw"}
    existing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-password", "namespace": "default", "resourceVersion": "9"},
        "data": {"pw": base64.b64encode(b"from-elsewhere").decode()},
    }
    required = {**USER_REQUIRED, "existing-password-secret": [existing]}
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    secret = kube.desired(rsp)["credentials"]
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert kube.secret_data(secret)["password"] == "from-elsewhere"
    assert kube.status(rsp)["phase"] == "Provisioning"


# --- invalid specs ---------------------------------------------------------------------------------------------


INVALID = [
    ("username", {"username": "my-app"}, "spec.username: must match"),
    ("unknown field", {"passwrd": {}}, "spec.passwrd: unknown field"),
    (
        "wrong type",
        {"postgres": {"connectionLimit": "ten"}},
        "spec.postgres.connectionLimit: must be an integer",
    ),
    (
        "CEL rule",
        {"existingPasswordSecret": {"name": "x"}},
        "existingPasswordSecret and passwordSecret.generate: true contradict",
    ),
    ("reserved role", {"roles": ["public"]}, "spec.roles[0]: 'public' is reserved in PostgreSQL"),
    (
        "engine block",
        {"mysql": {"maxUserConnections": 3}},
        "spec.mysql: DatabaseInstance postgres-server runs postgres",
    ),
    (
        "template placeholder",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"data": {"DSN": "{{ .Pasword }}"}},
            }
        },
        "spec.passwordSecret.secretTemplate.data['DSN']: unknown placeholder .Pasword",
    ),
    (
        "template code",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"data": {"X": '{{ printf "%s" .Password }}'}},
            }
        },
        "spec.passwordSecret.secretTemplate.data['X']: cannot read",
    ),
    (
        "template pipe",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"data": {"X": "{{ .Password | exec }}"}},
            }
        },
        "unknown pipe 'exec'",
    ),
    (
        "password key",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"data": {"password": "x"}},
            }
        },
        "data['password']: is reserved",
    ),
    (
        "alphabet",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "excludeChars": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
            }
        },
        "spec.passwordSecret.excludeChars: excludeChars leaves 10 usable characters",
    ),
    ("missing instanceRef", {"instanceRef": None}, "spec.instanceRef: is required"),
    *(
        (
            f"secret type {secret_type}",
            {
                "passwordSecret": {
                    "secretName": "myapp-db-credentials",
                    "secretTemplate": {"type": secret_type},
                }
            },
            "spec.passwordSecret.secretTemplate.type: secretTemplate.type must be Opaque, "
            "kubernetes.io/basic-auth or a custom type <domain>/<name>",
        )
        for secret_type in (
            "kubernetes.io/tls",
            "kubernetes.io/service-account-token",
            "bootstrap.kubernetes.io/token",
            "bogus type!!",
            "",
        )
    ),
    (
        "basic-auth without a password",
        {
            "passwordSecret": {
                "generate": False,
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"type": "kubernetes.io/basic-auth"},
            }
        },
        "spec.passwordSecret.secretTemplate.type: kubernetes.io/basic-auth needs non-empty keys username and "
        "password, but the Secret would have no password: no password is managed",
    ),
    (
        "basic-auth with an empty username",
        {
            "passwordSecret": {
                "secretName": "myapp-db-credentials",
                "secretTemplate": {"type": "kubernetes.io/basic-auth", "data": {"username": ""}},
            }
        },
        "spec.passwordSecret.secretTemplate.type: kubernetes.io/basic-auth needs non-empty keys username and "
        "password, but the Secret would have no username: secretTemplate.data['username'] renders empty",
    ),
    # db-provision-operator fields dbops knows in order to refuse them with why (dbops_api/go_compat.py).
    (
        "reference into another namespace",
        {"databaseRef": {"name": "myapp-db", "namespace": "vault"}},
        "spec.databaseRef.namespace: cross-namespace references are not supported yet: dbops looks "
        "databaseRef up in the claim's own namespace default, not in vault",
    ),
]


@pytest.mark.parametrize(("reason", "change", "want"), INVALID, ids=[c[0] for c in INVALID])
def test_an_invalid_spec_names_the_field_and_composes_nothing_new(
    reason: str, change: dict[str, Any], want: str
) -> None:
    xr = copy.deepcopy(USER_XR)
    for key, value in change.items():
        if value is None:
            del xr["spec"][key]
        else:
            xr["spec"][key] = value
    done = kube.job_complete(JOB, iso(NOW))
    observed = {"credentials": SECRET, KEY: done}
    rsp = call(
        kube.request(xr, observed_resources=observed, required=USER_REQUIRED, input_=USER_INPUT), offline=True
    )
    status = kube.status(rsp)
    assert status["phase"] == "Failed"
    assert want in status["message"], status["message"]
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "InvalidSpec")
    [result] = rsp.results
    assert result.severity == fnv1.SEVERITY_WARNING and want in result.message
    desired = kube.desired(rsp)
    assert set(desired) == set(observed), "nothing new, nothing dropped"
    assert kube.secret_data(desired["credentials"]) == kube.secret_data(SECRET)
    assert desired[KEY]["metadata"]["name"] == JOB["metadata"]["name"]
    assert "status" not in desired[KEY] and "resourceVersion" not in desired[KEY]["metadata"]
    assert rsp.desired.composite.ready == fnv1.READY_FALSE


def test_go_operator_fields_that_mean_what_dbops_does_change_nothing() -> None:
    """`driftPolicy.mode: correct` (what dbops always does) and a reference naming the claim's own namespace
    compose exactly what the spec without them composes."""
    observed = {"credentials": SECRET}
    plain = call(
        kube.request(
            copy.deepcopy(USER_XR), observed_resources=observed, required=USER_REQUIRED, input_=USER_INPUT
        ),
        offline=True,
    )
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["driftPolicy"] = {"mode": "correct", "interval": "8h"}
    xr["spec"]["instanceRef"] = {**xr["spec"]["instanceRef"], "namespace": kube.NAMESPACE}
    go = call(
        kube.request(xr, observed_resources=observed, required=USER_REQUIRED, input_=USER_INPUT), offline=True
    )
    assert kube.status(go)["phase"] == kube.status(plain)["phase"] == "Provisioning"
    assert len(kube.jobs(go)) == 1 and kube.desired(go) == kube.desired(plain), "the same Job and request"
    assert kube.status(go) == kube.status(plain)


def test_an_invalid_spec_on_a_new_user_composes_nothing() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["username"] = "9lives"
    rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT))
    assert not rsp.desired.resources
    assert "spec.username" in kube.status(rsp)["message"]


def test_immutable_fields_are_enforced_against_the_observed_jobs() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["username"] = "myapp2"
    rsp = call(
        kube.request(
            xr,
            observed_resources={"credentials": SECRET, KEY: JOB},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        ),
        offline=True,
    )
    assert kube.status(rsp)["phase"] == "Failed"
    assert (
        "spec.username: username is immutable; create a new object to change it"
        in kube.status(rsp)["message"]
    )
    assert list(kube.jobs(rsp)) == [KEY]
    # The same change on an object that has no Job yet is a create, not a change.
    rsp = call(
        kube.request(
            xr, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        ),
        offline=True,
    )
    assert kube.status(rsp)["phase"] == "Provisioning"


def test_database_name_and_instance_engine_are_immutable() -> None:
    rsp = call(
        kube.request(DB_XR, required={"instance": [INSTANCE]}, input_=kube.composition_input("Database")),
        offline=True,
    )
    [(key, job)] = kube.jobs(rsp).items()
    renamed = copy.deepcopy(DB_XR)
    renamed["spec"]["name"] = "other"
    rsp = call(
        kube.request(
            renamed,
            observed_resources={key: kube.observed(job, key)},
            required={"instance": [INSTANCE]},
            input_=kube.composition_input("Database"),
        ),
        offline=True,
    )
    assert "spec.name: name is immutable" in kube.status(rsp)["message"]
    rsp = call(kube.request(INSTANCE_XR, input_=kube.composition_input("DatabaseInstance")), offline=True)
    [(key, job)] = kube.jobs(rsp).items()
    changed = copy.deepcopy(INSTANCE_XR)
    changed["spec"]["engine"] = "mariadb"
    rsp = call(
        kube.request(
            changed,
            observed_resources={key: kube.observed(job, key)},
            input_=kube.composition_input("DatabaseInstance"),
        ),
        offline=True,
    )
    assert "spec.engine: engine is immutable" in kube.status(rsp)["message"]


def test_on_a_cluster_the_function_leaves_the_xrds_cel_rules_to_the_api_server() -> None:
    """Served on a cluster (no --offline), the function does not evaluate the XRD's CEL rules again: the API server
    refused such an XR before it existed. Offline the same spec is refused, with the API server's message."""
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"] = {"secretName": "x", "secretTemplate": {"type": "kubernetes.io/tls"}}
    req = kube.request(
        xr, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
    )
    offline = kube.status(call(req, offline=True))
    assert offline["phase"] == "Failed"
    assert "secretTemplate.type must be Opaque" in offline["message"]
    assert "secretTemplate.type must be Opaque" not in kube.status(call(req)).get("message", "")


def test_unknown_kind_and_invalid_input_are_fatal() -> None:
    rsp = call(kube.request({**USER_XR, "kind": "XBucket"}))
    [result] = rsp.results
    assert result.severity == fnv1.SEVERITY_FATAL and "got kind 'XBucket'" in result.message
    assert not rsp.desired.resources
    rsp = call(kube.request(USER_XR, required=USER_REQUIRED, input_={"job": {"backoffLimit": 99}}))
    [result] = rsp.results
    assert result.severity == fnv1.SEVERITY_FATAL
    assert "input.job.backoffLimit: must be between 0 and 10, got 99" in result.message


def test_an_xr_without_claim_or_namespace_fails_clearly() -> None:
    xr = copy.deepcopy(USER_XR)
    del xr["metadata"]["labels"]
    del xr["spec"]["claimRef"]
    rsp = call(kube.request(xr, input_=USER_INPUT))
    assert kube.status(rsp)["phase"] == "Failed"
    assert "create a DatabaseUser claim instead" in kube.status(rsp)["message"]
    assert not rsp.desired.resources


def test_a_namespaced_xr_uses_its_own_namespace_and_references_xrs() -> None:
    xr = kube.namespaced_xr(
        "DatabaseUser", "myapp-user", QUICKSTART["myapp-user"]["spec"], namespace="team-a"
    )
    instance = kube.namespaced_xr(
        "DatabaseInstance", "postgres-server", QUICKSTART["postgres-server"]["spec"], "Ready", "team-a"
    )
    database = kube.namespaced_xr("Database", "myapp-db", QUICKSTART["myapp-db"]["spec"], "Ready", "team-a")
    required = {"instance": [instance], "database": [database], "credentials-secret": []}
    rsp = call(kube.request(xr, required=required, input_=USER_INPUT))
    # References resolve to XRs of the same shape (the claim's kind name, the namespaced group), never to claims.
    ref = rsp.requirements.resources["instance"]
    assert (ref.api_version, ref.kind, ref.namespace) == (kube.NS_API, "DatabaseInstance", "team-a")
    assert rsp.requirements.resources["database"].api_version == kube.NS_API
    assert "claim" not in rsp.requirements.resources, "a namespaced XR has no claim to look up"
    assert rsp.requirements.resources["credentials-secret"].namespace == "team-a"
    assert kube.status(rsp)["phase"] in ("Pending", "Provisioning"), kube.status(rsp)
    composed = kube.desired(rsp)
    assert composed, "the credentials Secret at least"
    assert {r["metadata"]["namespace"] for r in composed.values()} == {"team-a"}
    assert not rsp.desired.composite.connection_details, "v2 XRs have no connection details"


def test_a_legacy_kind_name_in_the_namespaced_group_is_not_composed() -> None:
    """Dispatch reads the group with the kind: `XDatabaseUser` exists only in the claims' group."""
    xr = kube.namespaced_xr("DatabaseUser", "myapp-user", QUICKSTART["myapp-user"]["spec"])
    rsp = call(kube.request({**xr, "kind": "XDatabaseUser"}, input_=USER_INPUT))
    (result,) = rsp.results
    assert result.severity == fnv1.SEVERITY_FATAL and result.reason == "UnknownKind"
    assert "DatabaseUser.ns.dbops.dbprovision.io" in result.message
    claim_kind = {**USER_XR, "kind": "DatabaseUser"}  # a claim is never an XR
    (result,) = call(kube.request(claim_kind, input_=USER_INPUT)).results
    assert result.reason == "UnknownKind"


def test_a_namespaced_xr_without_a_namespace_is_refused_naming_the_field() -> None:
    xr = kube.namespaced_xr("DatabaseUser", "myapp-user", QUICKSTART["myapp-user"]["spec"])
    del xr["metadata"]["namespace"]
    rsp = call(kube.request(xr, input_=USER_INPUT))
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and "metadata.namespace" in status["message"]
    assert not kube.desired(rsp)


# --- deletion ---------------------------------------------------------------------------------------------------


def absent(xr: dict[str, Any], **spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(xr)
    out["spec"].update(ensure="Absent", **spec)
    return out


def test_ensure_absent_is_refused_while_deletion_protection_is_on() -> None:
    done = kube.job_complete(JOB, iso(NOW))
    rsp = call(
        kube.request(
            absent(USER_XR, deletionPolicy="Delete"),
            observed_resources={"credentials": SECRET, KEY: done},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == "Failed"
    assert "set spec.deletionProtection: false first" in status["message"]
    assert kube.conditions(rsp)["Provisioned"][1] == "DeletionProtected"
    assert list(kube.jobs(rsp)) == [KEY], "no drop Job"


def test_ensure_absent_with_retain_stops_managing() -> None:
    done = kube.job_complete(JOB, iso(NOW))
    xr = kube.with_status(absent(USER_XR, deletionProtection=False), {"phase": "Ready", "user": USER_FACTS})
    rsp = call(
        kube.request(
            xr,
            observed_resources={"credentials": SECRET, KEY: done},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == "Ready" and status["message"].startswith("not managed")
    assert kube.conditions(rsp)["Provisioned"][:2] == ("True", "NotManaged")
    assert set(kube.desired(rsp)) == {"credentials"}, "the Secret stays, no Job runs"
    assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == PASSWORD


def test_ensure_absent_with_delete_drops_then_reports_dropped() -> None:
    xr = absent(USER_XR, deletionProtection=False, deletionPolicy="Delete")
    done = kube.job_complete(JOB, iso(NOW))
    rsp = call(
        kube.request(
            xr,
            observed_resources={"credentials": SECRET, KEY: done},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    jobs = kube.jobs(rsp)
    [(key, job)] = jobs.items()
    assert key != KEY
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "drop"]
    assert "DBOPS_PASSWORD" not in kube.job_env(job)
    parse(json.dumps(kube.job_request(job)), "drop")
    assert kube.status(rsp)["phase"] == "Provisioning"
    dropped = kube.job_complete(kube.observed(job, key), iso(NOW))
    pods = [kube.pod(dropped, 0, kube.worker_result("DatabaseUser", action="drop"), iso(NOW))]
    rsp = call(
        kube.request(
            kube.with_status(xr, {"phase": "Ready", "user": USER_FACTS}),
            observed_resources={"credentials": SECRET, key: dropped},
            required={**USER_REQUIRED, "pods": pods},
            input_=USER_INPUT,
        )
    )
    status = kube.status(rsp)
    assert status["phase"] == "Dropped" and "user" not in status
    assert kube.conditions(rsp)["Provisioned"][:2] == ("False", "Dropped")
    assert "credentials" in kube.desired(rsp), "the Secret stays until the claim is deleted"
    assert rsp.desired.composite.ready == fnv1.READY_TRUE


# --- grants and instances ------------------------------------------------------------------------------------------


MARIA = kube.claim(
    "DatabaseInstance",
    "maria",
    {
        "engine": "mariadb",
        "connection": {"host": "maria.db", "port": 3306, "secretRef": {"name": "maria-admin"}},
    },
)
MARIA_USER = kube.claim(
    "DatabaseUser",
    "shop-app",
    {
        "instanceRef": {"name": "maria"},
        "username": "shop_app",
        "mysql": {"allowedHosts": ["10.0.%", "app.example.com"]},
    },
)
MARIA_DB = kube.claim("Database", "shop-db", {"instanceRef": {"name": "maria"}, "name": "shop"})


def grant_xr(spec: dict[str, Any]) -> dict[str, Any]:
    return kube.xr_from_claim({"kind": "DatabaseGrant", "metadata": {"name": "g"}, "spec": spec})


def test_grant_resolves_user_database_and_instance_in_steps() -> None:
    xr = grant_xr(
        {
            "userRef": {"name": "shop-app"},
            "databaseRef": {"name": "shop-db"},
            "mysql": {"grants": [{"level": "database", "privileges": ["SELECT"]}]},
        }
    )
    inp = kube.composition_input("DatabaseGrant")
    rsp = call(kube.request(xr, input_=inp))
    assert set(rsp.requirements.resources) == {"user", "database"}
    rsp = call(kube.request(xr, required={"user": [MARIA_USER], "database": [MARIA_DB]}, input_=inp))
    assert set(rsp.requirements.resources) == {"user", "database", "instance"}
    assert rsp.requirements.resources["instance"].match_name == "maria"
    rsp = call(
        kube.request(
            xr, required={"user": [MARIA_USER], "database": [MARIA_DB], "instance": [MARIA]}, input_=inp
        )
    )
    [job] = kube.jobs(rsp).values()
    request = kube.job_request(job)
    assert request["engine"] == "mariadb"
    assert request["spec"]["grantee"] == "shop_app"
    assert request["spec"]["granteeHosts"] == ["10.0.%", "app.example.com"]
    assert request["spec"]["database"] == "shop"
    assert "userRef" not in request["spec"] and "databaseRef" not in request["spec"]
    parse(json.dumps(request), "apply")


def test_grant_by_role_name_needs_an_instance() -> None:
    inp = kube.composition_input("DatabaseGrant")
    rsp = call(
        kube.request(grant_xr({"roleName": "reporting", "postgres": {"roles": ["readers"]}}), input_=inp)
    )
    assert "spec.instanceRef: is required when none of userRef, roleRef and databaseRef" in kube.status(rsp)["message"]
    xr = grant_xr(
        {"roleName": "public", "instanceRef": {"name": "postgres-server"}, "postgres": {"roles": ["readers"]}}
    )
    rsp = call(kube.request(xr, required={"instance": [INSTANCE]}, input_=inp))
    assert "spec.roleName: 'public' is reserved in PostgreSQL" in kube.status(rsp)["message"]


def test_grant_references_on_different_instances_are_an_error() -> None:
    xr = grant_xr({"userRef": {"name": "shop-app"}, "instanceRef": {"name": "postgres-server"}})
    rsp = call(
        kube.request(xr, required={"user": [MARIA_USER]}, input_=kube.composition_input("DatabaseGrant"))
    )
    assert "the references lead to different DatabaseInstances" in kube.status(rsp)["message"]


def test_instance_check_result_fills_status_and_connected() -> None:
    pg_main = next(
        d
        for d in kube.load_yaml(kube.ROOT / "examples" / "postgres" / "instance.yaml")
        if d["metadata"]["name"] == "pg-main"
    )
    xr = kube.xr_from_claim(pg_main)
    inp = kube.composition_input("DatabaseInstance")
    rsp = call(kube.request(xr, input_=inp))
    [(key, job)] = kube.jobs(rsp).items()
    env = kube.job_env(job)
    assert env["DBOPS_ADMIN_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "pg-admin", "key": "user"}
    assert env["DBOPS_TLS_CA"]["value"] == "/etc/dbops/tls/ca.crt"
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == "pg-tls" and volume["secret"]["optional"] is True
    assert {i["key"] for i in volume["secret"]["items"]} == {"ca.pem", "client.pem", "client-key.pem"}
    connection = kube.job_request(job)["connection"]
    assert connection["sslMode"] == "verify-full"
    # healthCheck.timeoutSeconds (15) bounds the check: statementTimeout 30s -> 15s, connectTimeout 5 stays.
    assert connection["statementTimeout"] == "15s" and connection["connectTimeout"] == 5
    assert connection["applicationName"] == "dbops-pg-main"
    facts = {
        "version": "15.4",
        "flavor": "postgres",
        "tls": True,
        "canCreateDatabases": True,
        "canCreateRoles": True,
        "superuser": False,
    }
    done = kube.job_complete(kube.observed(job, key), iso(NOW))
    pods = [kube.pod(done, 0, kube.worker_result("DatabaseInstance", "check", facts), iso(NOW))]
    rsp = call(kube.request(xr, observed_resources={key: done}, required={"pods": pods}, input_=inp))
    status = kube.status(rsp)
    assert status["phase"] == "Ready" and status["instance"] == facts
    connected = kube.conditions(rsp)["Connected"]
    assert connected[0] == "True" and "postgres 15.4 over TLS" in connected[2]
    assert rsp.meta.ttl.seconds <= 600, "the health check interval is the resync interval"
    failed = kube.job_failed(kube.observed(job, key), iso(NOW))
    error = {
        "class": "permanent",
        "code": "AuthenticationFailed",
        "message": "password authentication failed for user admin",
    }
    pods = [kube.pod(failed, 2, kube.worker_result("DatabaseInstance", "check", error=error), iso(NOW))]
    rsp = call(kube.request(xr, observed_resources={key: failed}, required={"pods": pods}, input_=inp))
    assert kube.conditions(rsp)["Connected"][:2] == ("False", "AuthenticationFailed")
    assert kube.status(rsp)["message"].startswith("password authentication failed")


def test_long_names_give_valid_job_names() -> None:
    claim_ = copy.deepcopy(QUICKSTART["myapp-user"])
    claim_["metadata"]["name"] = "a" * 60 + "-user"
    xr = kube.xr_from_claim(claim_)
    rsp = call(
        kube.request(
            xr, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        )
    )
    [job] = kube.jobs(rsp).values()
    assert len(job["metadata"]["name"]) <= 63
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert all(len(v) <= 63 for v in labels.values())


def test_a_user_without_a_managed_password_gets_no_password_anywhere() -> None:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"] = {"generate": False, "secretName": "myapp-db-credentials"}
    rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT))
    [job] = kube.jobs(rsp).values()
    assert "DBOPS_PASSWORD" not in kube.job_env(job), "the worker leaves the password alone"
    data = kube.secret_data(kube.desired(rsp)["credentials"])
    assert "password" not in data
    assert data["uri"] == "postgresql://myapp@postgres.default.svc.cluster.local:5432/myapp"


def test_a_secret_keeps_its_type_with_a_warning_when_the_template_type_changes() -> None:
    # Kubernetes refuses to change a Secret's type; composing the new type would fail on every apply.
    assert SECRET["type"] == "Opaque"
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"]["secretTemplate"] = {"type": "kubernetes.io/basic-auth"}
    rsp = call(
        kube.request(
            xr, observed_resources={"credentials": SECRET}, required=USER_REQUIRED, input_=USER_INPUT
        )
    )
    secret = kube.desired(rsp)["credentials"]
    assert secret["type"] == "Opaque"
    assert kube.secret_data(secret)["password"] == PASSWORD, "the password is kept"
    [warning] = [r for r in rsp.results if r.reason == "SecretTypeFixed"]
    assert warning.severity == fnv1.SEVERITY_WARNING
    assert "kubernetes.io/basic-auth" in warning.message and "Delete the Secret" in warning.message
    # Once the Secret is gone it is composed with the new type.
    rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT))
    assert kube.desired(rsp)["credentials"]["type"] == "kubernetes.io/basic-auth"
    assert not [r for r in rsp.results if r.reason == "SecretTypeFixed"]


def test_a_kept_basic_auth_type_never_leaves_the_secret_without_its_password() -> None:
    # The Secret keeps its type; a basic-auth Secret must still hold both keys, so dropping the password is refused.
    basic = {**SECRET, "type": "kubernetes.io/basic-auth"}
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordSecret"] = {
        "generate": False,
        "secretName": "myapp-db-credentials",
        "secretTemplate": {"type": "Opaque"},
    }
    rsp = call(
        kube.request(xr, observed_resources={"credentials": basic}, required=USER_REQUIRED, input_=USER_INPUT)
    )
    status = kube.status(rsp)
    assert status["phase"] == "Failed"
    assert "spec.passwordSecret.secretTemplate.type" in status["message"]
    assert "exists with type kubernetes.io/basic-auth" in status["message"]
    assert kube.secret_data(kube.desired(rsp)["credentials"]) == kube.secret_data(SECRET), "kept as it was"


def test_a_condition_not_evaluated_this_call_is_set_unknown_not_left_stale() -> None:
    """Crossplane merges returned conditions into the XR's and never removes one: InstanceReady=True from an
    earlier call must not survive a call that never looked at the instance (the user stopped managing it)."""
    done = kube.job_complete(JOB, iso(NOW))
    earlier = [
        {"type": "InstanceReady", "status": "True", "reason": "InstanceReady"},
        {"type": "Provisioned", "status": "True", "reason": "Converged"},
        {"type": "Ready", "status": "True", "reason": "Available"},
    ]
    xr = kube.with_status(
        absent(USER_XR, deletionProtection=False),
        {"phase": "Ready", "user": USER_FACTS, "conditions": earlier},
    )
    rsp = call(
        kube.request(
            xr,
            observed_resources={"credentials": SECRET, KEY: done},
            required=USER_REQUIRED,
            input_=USER_INPUT,
        )
    )
    conds = kube.conditions(rsp)
    assert conds["InstanceReady"][:2] == ("Unknown", "NotEvaluated")
    assert "not managed" in conds["InstanceReady"][2]
    assert conds["Provisioned"][:2] == ("True", "NotManaged"), "an evaluated condition is left as composed"
    assert "Ready" not in conds, "Crossplane's own conditions are Crossplane's"


def test_a_permanent_failure_comes_back_within_the_waiting_ttl_to_notice_a_fixed_secret() -> None:
    """Crossplane re-runs an XR only at its TTL: the admin Secret is not watched. A permanent failure therefore asks
    to be called again after ttl.waitingSeconds, and a changed admin Secret then starts a new Job at once."""
    failed_at = NOW - timedelta(seconds=1)
    job = kube.job_failed(JOB, iso(failed_at))
    pods = [kube.pod(JOB, 2, kube.worker_result("DatabaseUser", error=PERMANENT), iso(failed_at))]
    required = {**USER_REQUIRED, "pods": pods}
    rsp = call(kube.request(USER_XR, {"credentials": SECRET, KEY: job}, required, USER_INPUT))
    assert kube.status(rsp)["phase"] == "Failed"
    assert rsp.meta.ttl.seconds == 30, "ttl.waitingSeconds, not the next resync epoch (10 minutes away)"
    assert "picked up within 30 s" in kube.status(rsp)["message"]
    fixed = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "postgres-admin-creds", "namespace": "default", "resourceVersion": "42"},
    }
    rsp = call(
        kube.request(
            USER_XR, {"credentials": SECRET, KEY: job}, {**required, "admin-secret": [fixed]}, USER_INPUT
        ),
        NOW + timedelta(seconds=30),
    )
    assert kube.status(rsp)["phase"] == "Provisioning", "a new Job for the changed Secret"
    assert len(kube.jobs(rsp)) == 2, "the failed Job stays beside it until a Job succeeds"


def test_without_read_pods_no_pod_is_required_and_a_failure_points_at_the_log() -> None:
    """status.readPods off (the default, and what the shipped Compositions say): Crossplane is never asked for Pods
    (no cluster-wide Pod cache, no Pod RBAC); a failure is classed by the Job's own conditions (PodFailurePolicy =
    exit 2) and the message says where the log is. Opting in asks for the Pods of the XR's Jobs."""
    assert SHIPPED_INPUT is not None and SHIPPED_INPUT["status"]["readPods"] is False
    failed_at = NOW - timedelta(seconds=1)
    job = kube.job_failed(JOB, iso(failed_at), reason="PodFailurePolicy")
    no_status = {k: v for k, v in SHIPPED_INPUT.items() if k != "status"}
    for no_pods in (SHIPPED_INPUT, no_status):
        rsp = call(kube.request(USER_XR, {"credentials": SECRET, KEY: job}, USER_REQUIRED, no_pods))
        assert "pods" not in rsp.requirements.resources
        status = kube.status(rsp)
        assert status["phase"] == "Failed" and kube.conditions(rsp)["Provisioned"][1] == "PermanentFailure"
        assert f"kubectl logs -n default job/{JOB['metadata']['name']}" in status["message"]
        assert "user" not in status, "no facts without the Pod"
    with_pods = call(kube.request(USER_XR, {"credentials": SECRET, KEY: job}, USER_REQUIRED, USER_INPUT))
    assert with_pods.requirements.resources["pods"].kind == "Pod", "opting in reads them"
