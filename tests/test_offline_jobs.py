"""How `dbops-local` runs a Job's Pod (dbops_local.jobs): exactly the declared environment, Secrets resolved
as the kubelet resolves them, and the Job's rules. Real processes; no database needed."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dbops_local.jobs import DEADLINE_MESSAGE, IMAGE_ENV, PodCannotStart, run_job, run_pod
from dbops_local.loop import OfflineCluster
from dbops_local.store import Obj

NAMESPACE = "apps"
PRINT_ENV = (
    "import json, os, pathlib; "
    "print(json.dumps({'env': dict(os.environ), 'ca': pathlib.Path(os.environ['CA_FILE']).read_text()}))"
)


def secret(name: str, **data: str) -> Obj:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": encoded,
    }


def lookup(*secrets: Obj) -> Any:
    by_name = {s["metadata"]["name"]: s for s in secrets}
    return lambda namespace, name: by_name.get(name) if namespace == NAMESPACE else None


def pod_spec(command: list[str], env: list[Obj], volumes: list[Obj] | None = None) -> Obj:
    mounts = [{"name": v["name"], "mountPath": f"/etc/{v['name']}"} for v in volumes or []]
    container = {"name": "worker", "command": command, "env": env, "volumeMounts": mounts}
    return {"restartPolicy": "Never", "containers": [container], "volumes": volumes or []}


def job(spec: Obj, status: Obj | None = None, **job_spec: Any) -> Obj:
    out: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "job", "namespace": NAMESPACE, "uid": "u1"},
        "spec": {"backoffLimit": 6, "template": {"spec": spec}, **job_spec},
    }
    if status is not None:
        out["status"] = status
    return out


def waiting_state(pod: Obj) -> Obj:
    state: Obj = pod["status"]["containerStatuses"][0]["state"]
    return state


# --- the environment ----------------------------------------------------------------------------------------


def test_the_container_gets_exactly_the_declared_environment_and_the_image_extras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBOPS_SENTINEL_FROM_PARENT", "must-not-leak")
    monkeypatch.setenv("DBOPS_ADMIN_PASSWORD", "from-the-parent")
    spec = pod_spec(
        ["python", "-c", PRINT_ENV],
        env=[
            {"name": "LITERAL", "value": "plain value"},
            {"name": "CA_FILE", "value": "/etc/tls/ca.crt"},
            {
                "name": "DBOPS_ADMIN_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "admin", "key": "password"}},
            },
            {
                "name": "ABSENT_OPTIONAL",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
            },
        ],
        volumes=[{"name": "tls", "secret": {"secretName": "tls"}}],
    )
    run = run_pod(
        spec, NAMESPACE, lookup(secret("admin", password="s3cret"), secret("tls", **{"ca.crt": "CA"})), 60
    )

    assert run.exit_code == 0, run.logs
    seen = json.loads(run.logs)
    env = seen["env"]
    extras = {"PATH", "HOME", "DBOPS_RESULT_FILE", *IMAGE_ENV}
    assert set(env) == {"LITERAL", "CA_FILE", "DBOPS_ADMIN_PASSWORD"} | extras
    assert "DBOPS_SENTINEL_FROM_PARENT" not in env
    assert env["LITERAL"] == "plain value"
    assert env["DBOPS_ADMIN_PASSWORD"] == "s3cret"  # from the Secret, not from this process
    assert {k: env[k] for k in IMAGE_ENV} == IMAGE_ENV
    # The path under the Secret volume's mount point was translated to the local copy of the volume.
    assert env["CA_FILE"].endswith("/volumes/tls/ca.crt") and seen["ca"] == "CA"


def test_a_declared_variable_wins_over_the_image_extras() -> None:
    spec = pod_spec(
        ["python", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env=[{"name": "HOME", "value": "/tmp"}, {"name": "LANG", "value": "C"}],
        volumes=[{"name": "tmp", "emptyDir": {}}],
    )
    spec["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    run = run_pod(spec, NAMESPACE, lookup(), 60)
    env = json.loads(run.logs)
    assert env["LANG"] == "C"
    assert env["HOME"].endswith("/volumes/tmp"), "HOME=/tmp is the emptyDir mounted there"


def test_field_refs_and_a_persistent_volume_claim_with_its_sub_path(tmp_path: Path) -> None:
    """The downward API's fieldRefs (a CronJob's run learns its name from the job-name label) and a
    PersistentVolumeClaim mounted from the directory the lookup names, its subPath created in it; paths under the
    mount point are translated, inside a JSON value (the worker's request) too."""
    spec = pod_spec(
        ["python", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env=[
            {"name": "JOB", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "REQUEST", "value": '{"storage":{"volume":{"path":"/var/lib/dbops/backups"}},"n":1}'},
        ],
        volumes=[{"name": "backups", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    spec["containers"][0]["volumeMounts"] = [
        {"name": "backups", "mountPath": "/var/lib/dbops/backups", "subPath": "a/b"}
    ]
    claims = {(NAMESPACE, "data"): tmp_path / "data"}

    def volume(namespace: str, claim: str) -> Path:
        if (namespace, claim) not in claims:
            raise PodCannotStart("ContainerCreating", f'persistentvolumeclaim "{claim}" not found')
        return claims[(namespace, claim)]

    done = run_job(job(spec), lookup(), lookup_volume=volume)
    assert done.status["succeeded"] == 1
    env = json.loads(next(iter(done.logs.values())))
    assert env["JOB"] == "job" and env["NS"] == NAMESPACE
    assert json.loads(env["REQUEST"]) == {
        "storage": {"volume": {"path": str(tmp_path / "data" / "a" / "b")}},
        "n": 1,
    }
    assert (tmp_path / "data" / "a" / "b").is_dir()

    claims.clear()
    waiting = run_job(job(spec), lookup(), lookup_volume=volume)
    assert waiting.status["active"] == 1 and not waiting.ran
    assert waiting.events == {"job-00000": 'Warning FailedMount: persistentvolumeclaim "data" not found'}


# --- a Pod that cannot start ----------------------------------------------------------------------------------


def test_a_missing_env_secret_is_create_container_config_error_and_a_missing_volume_secret_container_creating() -> (
    None
):
    by_env = run_job(
        job(
            pod_spec(
                ["true"], env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]
            )
        ),
        lookup(),
    )
    (pod,) = by_env.pods
    assert waiting_state(pod) == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "gone" not found'}
    }
    assert pod["status"]["phase"] == "Pending" and by_env.status["active"] == 1 and not by_env.ran

    missing_key = run_job(
        job(
            pod_spec(["true"], env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
        ),
        lookup(secret("s", other="v")),
    )
    assert (
        waiting_state(missing_key.pods[0])["waiting"]["message"]
        == f"couldn't find key k in Secret {NAMESPACE}/s"
    )

    # A Secret volume that cannot be mounted leaves the Pod ContainerCreating; the kubelet says why in an event.
    by_volume = run_job(
        job(pod_spec(["true"], env=[], volumes=[{"name": "tls", "secret": {"secretName": "gone"}}])), lookup()
    )
    (pod,) = by_volume.pods
    assert waiting_state(pod) == {"waiting": {"reason": "ContainerCreating"}}
    assert by_volume.events == {
        pod["metadata"][
            "name"
        ]: 'Warning FailedMount: MountVolume.SetUp failed for volume "tls" : secret "gone" not found'
    }
    items = {"secretName": "s", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    no_key = run_job(
        job(pod_spec(["true"], env=[], volumes=[{"name": "tls", "secret": items}])), lookup(secret("s"))
    )
    assert list(no_key.events.values()) == [
        'Warning FailedMount: MountVolume.SetUp failed for volume "tls" : references non-existent secret key: ca.crt'
    ]

    # An optional Secret volume that is missing is simply empty.
    optional = {"secretName": "gone", "optional": True}
    ran = run_job(job(pod_spec(["true"], env=[], volumes=[{"name": "tls", "secret": optional}])), lookup())
    assert ran.ran and ran.status["succeeded"] == 1


# --- activeDeadlineSeconds: for the whole Job ---------------------------------------------------------------


def test_the_active_deadline_ends_the_whole_job_not_each_pod() -> None:
    """A Pod killed at the deadline is not retried (backoffLimit 6 would re-run a failed Pod): the Job fails
    DeadlineExceeded and its Pod is gone, as the Job controller deletes it."""
    sleeper = pod_spec(["python", "-c", "import time; time.sleep(120)"], env=[])
    run = run_job(job(sleeper, activeDeadlineSeconds=1), lookup())
    assert [(c["type"], c["reason"], c["message"]) for c in run.status["conditions"]] == [
        ("FailureTarget", "DeadlineExceeded", DEADLINE_MESSAGE),
        ("Failed", "DeadlineExceeded", DEADLINE_MESSAGE),
    ]
    assert run.pods == [] and run.status["failed"] == 1 and run.status["active"] == 0
    (logs,) = run.logs.values()  # kept for inspection, though the Pod is gone
    assert logs.endswith("killed: the Job's activeDeadlineSeconds passed")


def test_a_pod_waiting_for_a_secret_counts_against_the_job_deadline_from_its_start_time() -> None:
    waiting = pod_spec(
        ["true"], env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]
    )
    started_long_ago = {"startTime": "2000-01-01T00:00:00Z", "active": 1}
    run = run_job(job(waiting, status=started_long_ago, activeDeadlineSeconds=600), lookup())
    assert run.status["startTime"] == "2000-01-01T00:00:00Z"
    assert run.status["conditions"][-1]["reason"] == "DeadlineExceeded" and not run.ran and run.pods == []


def test_the_loop_removes_the_waiting_pod_when_the_job_deadline_ends_it() -> None:
    # The Job controller deletes a Job's active Pods at its deadline; a stale waiting Pod would still be listed.
    cluster = OfflineCluster(client=None)  # type: ignore[arg-type]  # only Jobs are run here, no function
    env = [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]
    cluster.store.put(job(pod_spec(["true"], env=env), activeDeadlineSeconds=60))
    cluster._run_jobs()
    [waiting] = cluster.store.select("v1", "Pod")
    assert waiting["status"]["phase"] == "Pending"
    [started] = cluster.store.select("batch/v1", "Job")
    cluster.store.put({**started, "status": {**started["status"], "startTime": "2000-01-01T00:00:00Z"}})
    cluster._run_jobs()
    [ended] = cluster.store.select("batch/v1", "Job")
    assert {c["reason"] for c in ended["status"]["conditions"]} == {"DeadlineExceeded"}
    assert cluster.store.select("v1", "Pod") == []
