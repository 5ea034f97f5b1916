"""The function's password-rotation steps, call by call, without a server (function/kinds/user_rotation.py,
docs/function.md "Password rotation"): when a rotation starts (maxAge), which Secret the Job's DBOPS_PASSWORD comes
from, that the credentials Secret switches only once that Job completed, and what status.rotation says."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from function.kinds import user_rotation as rot
from tests.function_cases import kube
from tests.test_function_compose import NOW, USER_INPUT, USER_REQUIRED, USER_XR, call, iso

DAY = timedelta(days=1)


def rotating_xr(**rotation: Any) -> dict[str, Any]:
    xr = copy.deepcopy(USER_XR)
    xr["spec"]["passwordRotation"] = {"enabled": True, "maxAge": "90d", **rotation}
    return xr


def step(xr: dict[str, Any], observed: dict[str, dict[str, Any]], when: Any, seed: int = 7) -> Any:
    # Crossplane answered the lookup of the -rotation Secret's name: nothing there.
    required = {**USER_REQUIRED, rot.REQUIREMENT: []}
    req = kube.request(xr, observed_resources=observed, required=required, input_=USER_INPUT)
    return call(req, when, seed=seed)


def test_a_rotation_by_age_runs_step_by_step_and_the_secret_switches_only_after_the_proving_job() -> None:
    xr = rotating_xr()
    first = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT), NOW)
    created = kube.desired(first)["credentials"]
    notes = created["metadata"]["annotations"]
    assert notes[rot.ROTATED_AT_ANNOTATION] == iso(NOW) and notes[rot.GENERATION_ANNOTATION] == "0"
    secret = kube.observed(created, "credentials")
    old = kube.secret_data(secret)

    # Stable: the Job's request carries generation 0, nothing retired; the next rotation is maxAge away.
    rsp = step(xr, {"credentials": secret}, NOW + DAY)
    [job] = kube.jobs(rsp).values()
    assert kube.job_request(job)["spec"]["rotation"] == {
        "strategy": "role-inheritance",
        "generation": 0,
        "retireBefore": 0,
        "oldUserAction": "delete",
    }
    shown = kube.status(rsp)["rotation"]
    assert shown["phase"] == "Stable" and shown["nextRotationAt"] == iso(NOW + 90 * DAY)

    # 90 days on: the next password goes into the -rotation Secret; the credentials Secret is unchanged.
    later = NOW + 91 * DAY
    rsp = step(xr, {"credentials": secret}, later, seed=8)  # another draw (production: the OS CSPRNG)
    desired = kube.desired(rsp)
    staging = desired[rot.SECRET_KEY]
    assert staging["metadata"]["name"] == "myapp-db-credentials-rotation"
    assert staging["metadata"]["annotations"][rot.GENERATION_ANNOTATION] == "1"
    new_password = kube.secret_data(staging)["password"]
    assert new_password != old["password"] and len(new_password) == 32
    assert kube.secret_data(desired["credentials"]) == old
    assert kube.status(rsp)["rotation"]["phase"] == "NewCredentialCreated"

    # With the -rotation Secret: the Job creates generation 1 with that password.
    observed = {"credentials": secret, rot.SECRET_KEY: kube.observed(staging, rot.SECRET_KEY)}
    rsp = step(xr, observed, later)
    [(key, job)] = kube.jobs(rsp).items()
    env = kube.job_env(job)
    assert env["DBOPS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "myapp-db-credentials-rotation",
        "key": "password",
    }
    assert kube.job_request(job)["spec"]["rotation"]["generation"] == 1
    assert kube.job_request(job)["spec"]["rotation"]["retireBefore"] == 0
    # The `rotate` action: a worker that predates rotation refuses it rather than complete without the credential.
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "rotate"]
    assert kube.secret_data(kube.desired(rsp)["credentials"]) == old, "not switched before the Job completed"

    # That Job completed (it logged in with the new password): the Secret switches to myapp_r1.
    done = kube.job_complete(kube.observed(job, key), iso(later))
    rsp = step(xr, {**observed, key: done}, later + timedelta(minutes=1))
    switched = kube.desired(rsp)["credentials"]
    data = kube.secret_data(switched)
    assert data["username"] == "myapp_r1" and data["password"] == new_password
    assert data["uri"].startswith(f"postgresql://myapp_r1:{new_password}@")
    assert switched["metadata"]["annotations"][rot.GENERATION_ANNOTATION] == "1"
    shown = kube.status(rsp)["rotation"]
    assert shown["phase"] == "SecretSwitched" and shown["generation"] == 1 and shown["username"] == "myapp_r1"
    assert rot.SECRET_KEY in kube.desired(rsp), "kept until the old credential is retired"

    # Within the grace period the Job keeps the old credential; after it, the Job retires it.
    observed = {
        "credentials": kube.observed(switched, "credentials"),
        rot.SECRET_KEY: observed[rot.SECRET_KEY],
    }
    rsp = step(xr, observed, later + 2 * DAY)
    [job] = kube.jobs(rsp).values()
    assert kube.job_request(job)["spec"]["rotation"]["retireBefore"] == 0
    assert kube.job_env(job)["DBOPS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "myapp-db-credentials"
    rsp = step(xr, observed, later + 8 * DAY)
    [job] = kube.jobs(rsp).values()
    assert kube.job_request(job)["spec"]["rotation"]["retireBefore"] == 1


def test_a_strategy_the_engine_lacks_and_a_long_username_are_refused_naming_the_field() -> None:
    xr = rotating_xr(strategy="dual-password")
    rsp = call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT), NOW)
    assert kube.status(rsp)["phase"] == "Failed"
    assert "spec.passwordRotation.strategy" in kube.status(rsp)["message"]
    long_name = rotating_xr()
    long_name["spec"]["username"] = "u" * 60
    rsp = call(kube.request(long_name, required=USER_REQUIRED, input_=USER_INPUT), NOW)
    assert "at most 55 characters" in kube.status(rsp)["message"]


def test_a_rotation_never_takes_over_a_secret_of_the_rotation_secrets_name() -> None:
    xr = rotating_xr(trigger="now")
    secret = kube.observed(
        kube.desired(call(kube.request(xr, required=USER_REQUIRED, input_=USER_INPUT)))["credentials"],
        "credentials",
    )
    xr["spec"]["passwordRotation"]["trigger"] = "again"
    # Crossplane has not looked the name up yet: nothing is composed under it.
    req = kube.request(
        xr, observed_resources={"credentials": secret}, required=USER_REQUIRED, input_=USER_INPUT
    )
    rsp = call(req, NOW)
    assert rot.SECRET_KEY not in kube.desired(rsp)
    assert rsp.requirements.resources[rot.REQUIREMENT].match_name == "myapp-db-credentials-rotation"
    foreign = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "myapp-db-credentials-rotation", "namespace": "default"},
        "data": {},
    }
    required = {**USER_REQUIRED, rot.REQUIREMENT: [foreign]}
    req = kube.request(xr, observed_resources={"credentials": secret}, required=required, input_=USER_INPUT)
    rsp = call(req, NOW)
    assert rot.SECRET_KEY not in kube.desired(rsp)
    assert [r.reason for r in rsp.results if r.reason == "SecretNotOwned"] == ["SecretNotOwned"]
    assert kube.status(rsp)["rotation"]["phase"] == "Stable"
    # Nothing there: the rotation starts.
    req = kube.request(
        xr,
        observed_resources={"credentials": secret},
        required={**USER_REQUIRED, rot.REQUIREMENT: []},
        input_=USER_INPUT,
    )
    assert rot.SECRET_KEY in kube.desired(call(req, NOW, seed=9))
