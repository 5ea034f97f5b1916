"""Every resource the function composes for every example claim is valid Kubernetes (kubernetes-validate, strict,
1.31), every Job is hardened as design section 4 says, and every request it puts in a Job is one the worker
accepts (`worker.request.parse`)."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from function.fn import FunctionRunner
from tests.function_cases import kube
from tests.function_cases.render import render
from worker.request import parse

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
K8S_VERSION = "1.31"
SETS = {
    "quickstart": [kube.ROOT / "examples" / "quickstart.yaml"],
    "postgres": sorted((kube.ROOT / "examples" / "postgres").glob("*.yaml")),
    "mysql": sorted((kube.ROOT / "examples" / "mysql").glob("*.yaml")),
}


def _claims(paths: list[Path]) -> list[dict[str, Any]]:
    docs = [d for p in paths for d in kube.load_yaml(p)]
    return [d for d in docs if d.get("apiVersion", "").startswith("dbops.dbprovision.io/")]


def _run(req: Any) -> Any:
    return asyncio.run(FunctionRunner(clock=lambda: NOW, rng=random.Random(3)).RunFunction(req))


def _ready(claim: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(claim)
    out["metadata"] = {"name": claim["metadata"]["name"], "namespace": kube.NAMESPACE}
    out["spec"].update(kube.crossplane_claim_fields(claim["kind"], claim["metadata"]["name"]))
    # A DatabaseRestore waits for its DatabaseBackup to be Completed, everything else for Ready.
    out["status"] = {"phase": "Completed" if claim["kind"] == "DatabaseBackup" else "Ready"}
    return out


def composed_for_examples() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(claim, desired key, resource) for each example claim: first render, then with the Secret observed, then
    with the drop Job of `ensure: Absent` where deletion is allowed."""
    for set_name, paths in SETS.items():
        claims = _claims(paths)
        # Applied with `kubectl apply -n default`: the API server gives them the namespace the function asks in.
        secrets = [
            {**d, "metadata": {**d["metadata"], "namespace": kube.NAMESPACE}}
            for p in paths
            for d in kube.load_yaml(p)
            if d.get("kind") == "Secret"
        ]
        required = [_ready(c) for c in claims] + secrets
        for claim in claims:
            xr = kube.xr_from_claim(claim)
            inp = kube.composition_input(claim["kind"])
            observed: list[dict[str, Any]] = []
            for _ in range(2):
                out = render(_run, xr, inp, observed, required)
                for key, res in sorted(out.composed.items()):
                    yield f"{set_name}/{claim['metadata']['name']}", key, res
                if "credentials" not in out.composed or observed:
                    break
                observed = [kube.observed(out.composed["credentials"], "credentials")]
            if claim["kind"] not in (
                "DatabaseInstance",
                "DatabaseBackup",
                "DatabaseRestore",
                "DatabaseBackupSchedule",
            ):
                absent = copy.deepcopy(xr)
                absent["spec"].update(ensure="Absent", deletionPolicy="Delete", deletionProtection=False)
                out = render(_run, absent, inp, observed, required)
                for key, res in sorted(out.composed.items()):
                    yield f"{set_name}/{claim['metadata']['name']}/absent", key, res


COMPOSED = list(composed_for_examples())


def test_every_example_claim_gets_a_job() -> None:
    with_job = {
        claim.split("/")[1] for claim, _, res in COMPOSED if res["kind"] == "Job" and "absent" not in claim
    }
    # A DatabaseBackupSchedule composes a CronJob instead (its runs are the CronJob's Jobs).
    with_cronjob = {claim.split("/")[1] for claim, _, res in COMPOSED if res["kind"] == "CronJob"}
    claims = {c["metadata"]["name"] for paths in SETS.values() for c in _claims(paths)}
    assert with_job | with_cronjob == claims and not with_job & with_cronjob
    assert len(COMPOSED) > 20


@pytest.mark.parametrize(("claim", "key", "resource"), COMPOSED, ids=[f"{c}:{k}" for c, k, _ in COMPOSED])
def test_composed_resources_are_valid_kubernetes(claim: str, key: str, resource: dict[str, Any]) -> None:
    body = copy.deepcopy(resource)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)


JOBS = [(c, k, r) for c, k, r in COMPOSED if r["kind"] == "Job"]


@pytest.mark.parametrize(("claim", "key", "job"), JOBS, ids=[f"{c}:{k}" for c, k, _ in JOBS])
def test_jobs_are_hardened_and_carry_a_valid_request(claim: str, key: str, job: dict[str, Any]) -> None:
    spec = job["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert len(job["metadata"]["name"]) <= 63
    assert key == "job-" + job["metadata"]["name"].rsplit("-", 1)[1]
    backups = {
        "backup": 3600,
        "restore": 7200,
    }  # their claims' activeDeadlineSeconds (the examples' defaults)
    action = pod["containers"][0]["command"][1]
    assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == backups.get(action, 600)
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2]},
    }
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    for labels in (job["metadata"]["labels"], spec["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/managed-by"] == "dbops"
        assert labels["dbops.dbprovision.io/xr"].endswith("-x7k2p")
    assert container["command"][0] == "dbops-worker" and action in ("apply", "check", "drop", *backups)
    env = {e["name"]: e for e in container["env"]}
    for name, entry in env.items():
        if name in ("DBOPS_ADMIN_USERNAME", "DBOPS_ADMIN_PASSWORD", "DBOPS_PASSWORD"):
            assert set(entry) == {"name", "valueFrom"} and "secretKeyRef" in entry["valueFrom"]
        elif name == "DBOPS_CREDENTIAL_REVISION":
            # Which password DBOPS_PASSWORD is (never the password): the revision the Job is annotated with.
            assert "DBOPS_PASSWORD" in env
            assert entry["value"] == job["metadata"]["annotations"]["dbops.dbprovision.io/password-revision"]
        else:
            assert name in ("DBOPS_REQUEST", "HOME", "DBOPS_TLS_CA", "DBOPS_TLS_CERT", "DBOPS_TLS_KEY") or (
                # A backup's file paths (never a secret): the Secrets are mounted files.
                action in backups
                and name
                in (
                    "DBOPS_SECRETS_DIR",
                    "DBOPS_S3_ACCESS_KEY_FILE",
                    "DBOPS_S3_SECRET_KEY_FILE",
                    "DBOPS_S3_CA_FILE",
                    "DBOPS_BACKUP_KEY_FILE",
                )
                and entry["value"].startswith("/")
            )
    request = json.loads(env["DBOPS_REQUEST"]["value"])
    parsed = parse(json.dumps(request), action)
    assert parsed.kind == request["kind"]
    for volume in pod["volumes"]:
        if "secret" in volume:
            # The TLS files are optional (a CA without a client certificate); a backup's Secrets are not: its Pod
            # waits for them, as Kubernetes does.
            tls = volume["name"] == "tls"
            assert volume["secret"].get("optional") is (True if tls or action not in backups else None)
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
            assert mount["readOnly"] is True


def test_carried_over_resources_stay_valid_kubernetes() -> None:
    """What an invalid spec carries over (observed objects with server fields) is valid to apply again."""
    [claim] = [c for c in _claims(SETS["quickstart"]) if c["kind"] == "DatabaseUser"]
    required = [_ready(c) for c in _claims(SETS["quickstart"])]
    xr = kube.xr_from_claim(claim)
    inp = kube.composition_input("DatabaseUser")
    first = render(_run, xr, inp, [], required)
    secret = kube.observed(first.composed["credentials"], "credentials")
    second = render(_run, xr, inp, [secret], required)
    [(key, job)] = [(k, v) for k, v in second.composed.items() if v["kind"] == "Job"]
    live = kube.job_complete(kube.observed(job, key), "2025-06-01T08:00:00Z")
    live["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}
    live["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = "abc"
    live["metadata"]["managedFields"] = [{"manager": "crossplane"}]
    broken = copy.deepcopy(xr)
    broken["spec"]["username"] = "Not Valid"
    out = render(_run, broken, inp, [secret, live], required)
    assert out.xr["status"]["phase"] == "Failed"
    assert set(out.composed) == {"credentials", key}
    carried = out.composed[key]
    assert "status" not in carried and "managedFields" not in carried["metadata"]
    assert "selector" not in carried["spec"]
    assert "batch.kubernetes.io/controller-uid" not in carried["spec"]["template"]["metadata"]["labels"]
    for res in out.composed.values():
        kubernetes_validate.validate(copy.deepcopy(res), K8S_VERSION, strict=True)
