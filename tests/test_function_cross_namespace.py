"""Cross-namespace instances at the function: a claim in namespace `team` names a DatabaseInstance of namespace
`platform` (spec.instanceRef.namespace). Allowed only when the instance's spec.allowedNamespaces allows `team`
(by name or by the Namespace's labels); its Jobs then run in `platform` and map in only `platform`'s Secrets;
refused references name the missing consent; consent withdrawn keeps everything (docs/function.md)."""

from __future__ import annotations

import asyncio
import base64
import copy
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from tests.function_cases import kube

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PLATFORM, TEAM = "platform", "team"
QUICKSTART = {d["metadata"]["name"]: d for d in kube.load_yaml(kube.ROOT / "examples" / "quickstart.yaml")}
REF = {"name": "postgres-server", "namespace": PLATFORM}
DB_SPEC = {**QUICKSTART["myapp-db"]["spec"], "instanceRef": REF}
DB_XR = kube.xr_from_claim(kube.claim("Database", "myapp-db", DB_SPEC, namespace=TEAM), namespace=TEAM)
GRANT_SPEC = {
    "roleName": "reporting",
    "instanceRef": REF,
    "postgres": {"grants": [{"database": "myapp", "privileges": ["CONNECT"]}]},
}
INPUT = kube.reading_pods(kube.composition_input("Database"))


def instance(allowed: dict[str, Any] | None, phase: str = "Ready") -> dict[str, Any]:
    spec = copy.deepcopy(QUICKSTART["postgres-server"]["spec"])
    if allowed is not None:
        spec["allowedNamespaces"] = allowed
    return kube.claim("DatabaseInstance", "postgres-server", spec, phase=phase, namespace=PLATFORM)


def namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEAM, "labels": labels}}


def call(
    xr: dict[str, Any], required: dict[str, list[dict[str, Any]]], **kw: Any
) -> fnv1.RunFunctionResponse:
    runner = FunctionRunner(clock=lambda: NOW, rng=random.Random(7))
    return asyncio.run(runner.RunFunction(kube.request(xr, required=required, input_=INPUT, **kw)))


def selectors(rsp: fnv1.RunFunctionResponse) -> dict[str, tuple[str, str, str]]:
    return {
        name: (sel.kind, sel.namespace, sel.match_name) for name, sel in rsp.requirements.resources.items()
    }


def mounted_secrets(job: dict[str, Any]) -> set[str]:
    """Every Secret a Job's Pod can read: env secretKeyRefs, envFrom, secret volumes (and projected ones)."""
    pod = job["spec"]["template"]["spec"]
    out: set[str] = set()
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                out.add(ref["name"])
        out |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            out.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                out.add(source["secret"]["name"])
    return out


@pytest.mark.parametrize(
    ("allowed", "ns_labels"),
    [
        ({"names": [TEAM]}, None),
        ({"selector": {"matchLabels": {"dbops.example/tenant": "true"}}}, {"dbops.example/tenant": "true"}),
        ({"names": ["other"], "selector": {"matchLabels": {"tier": "db"}}}, {"tier": "db", "x": "y"}),
    ],
    ids=["by-name", "by-selector", "selector-among-others"],
)
def test_consent_given_runs_the_job_in_the_instances_namespace_with_only_its_secrets(
    allowed: dict[str, Any], ns_labels: dict[str, str] | None
) -> None:
    required: dict[str, list[dict[str, Any]]] = {"instance": [instance(allowed)]}
    if ns_labels is not None:
        required["namespace"] = [namespace(ns_labels)]
    rsp = call(DB_XR, required)
    [job] = kube.jobs(rsp).values()
    assert job["metadata"]["namespace"] == PLATFORM
    assert mounted_secrets(job) == {
        "postgres-admin-creds"
    }  # the admin Secret, read in platform; nothing of team
    request = kube.job_request(job)
    assert request["owner"]["namespace"] == TEAM, "what the worker marks: the claim, in its own namespace"
    asked = selectors(rsp)
    assert asked["instance"] == ("DatabaseInstance", PLATFORM, "postgres-server")
    assert asked["admin-secret"] == ("Secret", PLATFORM, "postgres-admin-creds")
    assert asked["pods"][:2] == ("Pod", PLATFORM)
    if ns_labels is not None:
        assert asked["namespace"] == ("Namespace", "", TEAM)
    assert kube.conditions(rsp)["InstanceReady"][:2] == ("True", "InstanceReady")


@pytest.mark.parametrize(
    ("allowed", "ns_labels", "want"),
    [
        (None, None, "does not list it"),
        ({"names": ["other"]}, None, "does not list it"),
        (
            {"selector": {"matchLabels": {"tier": "db"}}},
            {"tier": "web"},
            "matches neither by name nor by labels",
        ),
        ({"selector": {"matchLabels": {"tier": "db"}}}, {}, "matches neither by name nor by labels"),
        ({"selector": {}}, None, "does not list it"),
        ({"names": []}, None, "does not list it"),
    ],
    ids=[
        "no-consent",
        "other-name",
        "selector-mismatch",
        "namespace-unlabelled",
        "empty-selector",
        "empty-names",
    ],
)
def test_no_consent_composes_nothing_and_names_the_missing_consent(
    allowed: dict[str, Any] | None, ns_labels: dict[str, str] | None, want: str
) -> None:
    required: dict[str, list[dict[str, Any]]] = {"instance": [instance(allowed)]}
    if ns_labels is not None:
        required["namespace"] = [namespace(ns_labels)]
    rsp = call(DB_XR, required)
    assert not kube.jobs(rsp)
    status = kube.status(rsp)
    assert status["phase"] == "Pending"
    assert f"DatabaseInstance {PLATFORM}/postgres-server does not allow namespace {TEAM}" in status["message"]
    assert want in status["message"] and f"add {TEAM} to spec.allowedNamespaces.names" in status["message"]
    conditions = kube.conditions(rsp)
    assert conditions["InstanceReady"][:2] == ("False", "NamespaceNotAllowed")
    assert conditions["Provisioned"][:2] == ("False", "NamespaceNotAllowed")
    [warning] = [r for r in rsp.results if r.reason == "NamespaceNotAllowed"]
    assert warning.message.startswith("spec.instanceRef.namespace: DatabaseInstance platform/postgres-server")
    assert "admin-secret" not in rsp.requirements.resources, "no Secret of platform is even read"
    assert rsp.desired.composite.ready == fnv1.READY_FALSE


def test_a_selector_first_asks_for_the_namespace_and_waits() -> None:
    rsp = call(DB_XR, {"instance": [instance({"selector": {"matchLabels": {"tier": "db"}}})]})
    assert selectors(rsp)["namespace"] == ("Namespace", "", TEAM)
    assert "looking up Namespace team" in kube.status(rsp)["message"] and not kube.jobs(rsp)


def test_consent_withdrawn_keeps_every_composed_resource_and_says_so() -> None:
    allowed = {"names": [TEAM]}
    first = call(DB_XR, {"instance": [instance(allowed)]})
    [(key, job)] = kube.jobs(first).items()
    done = kube.job_complete(job, "2026-12-06T11:59:00Z")
    xr = kube.with_status(
        DB_XR, {**kube.status(first), "phase": "Ready", "lastSuccessfulTime": "2026-12-06T11:59:00Z"}
    )
    rsp = call(xr, {"instance": [instance(None)]}, observed_resources={key: done})
    assert kube.desired(rsp)[key]["metadata"]["name"] == job["metadata"]["name"], (
        "the Job is kept, not deleted"
    )
    assert kube.desired(rsp)[key]["metadata"]["namespace"] == PLATFORM
    assert kube.status(rsp)["phase"] == "Pending"
    assert "does not allow namespace team" in kube.status(rsp)["message"]
    assert rsp.desired.composite.ready == fnv1.READY_FALSE


def test_consent_withdrawn_runs_no_drop() -> None:
    spec = {**DB_SPEC, "ensure": "Absent", "deletionPolicy": "Delete", "deletionProtection": False}
    xr = kube.xr_from_claim(kube.claim("Database", "myapp-db", spec, namespace=TEAM), namespace=TEAM)
    rsp = call(xr, {"instance": [instance(None)]})
    assert not kube.jobs(rsp) and kube.status(rsp)["phase"] == "Pending"
    allowed = call(xr, {"instance": [instance({"names": [TEAM]})]})
    [job] = kube.jobs(allowed).values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "drop"]
    assert job["metadata"]["namespace"] == PLATFORM


def test_the_instance_not_ready_is_reported_after_consent() -> None:
    rsp = call(DB_XR, {"instance": [instance({"names": [TEAM]}, phase="Provisioning")]})
    assert kube.conditions(rsp)["InstanceReady"][:2] == ("False", "InstanceNotReady")
    assert not kube.jobs(rsp)


def test_a_missing_instance_of_another_namespace_says_where_it_was_looked_for() -> None:
    rsp = call(DB_XR, {"instance": []})
    assert "DatabaseInstance postgres-server not found in namespace platform" in kube.status(rsp)["message"]
    assert kube.conditions(rsp)["InstanceReady"][:2] == ("False", "InstanceNotFound")


def test_adopt_is_refused_across_namespaces() -> None:
    xr = kube.xr_from_claim(
        kube.claim("Database", "myapp-db", {**DB_SPEC, "adopt": True}, namespace=TEAM), namespace=TEAM
    )
    rsp = call(xr, {"instance": [instance({"names": [TEAM]})]})
    assert kube.status(rsp)["phase"] == "Failed" and not kube.jobs(rsp)
    assert "spec.adopt: adopt is refused for an instance of another namespace" in kube.status(rsp)["message"]


def test_a_grant_by_role_name_runs_in_the_instances_namespace() -> None:
    xr = kube.xr_from_claim(
        kube.claim("DatabaseGrant", "reporting", GRANT_SPEC, namespace=TEAM), namespace=TEAM
    )
    # `users`: the namespace's DatabaseUsers, asked for since the entry could undo a user's databaseRef (none here).
    rsp = call(xr, {"instance": [instance({"names": [TEAM]})], "users": []})
    [job] = kube.jobs(rsp).values()
    assert job["metadata"]["namespace"] == PLATFORM and mounted_secrets(job) == {"postgres-admin-creds"}


@pytest.mark.parametrize("kind", ["Database", "DatabaseGrant"])
def test_a_namespaced_xr_is_refused_naming_the_claim_as_the_alternative(kind: str) -> None:
    spec = DB_SPEC if kind == "Database" else GRANT_SPEC
    xr = kube.namespaced_xr(kind, "x", spec, namespace=TEAM)
    rsp = call(xr, {"instance": [instance({"names": [TEAM]})]})
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and not kube.jobs(rsp)
    assert (
        "spec.instanceRef.namespace: a namespaced team object cannot use a DatabaseInstance of namespace"
        in (status["message"])
    )
    assert "use a claim (group dbops.dbprovision.io)" in status["message"]


USER_SPEC = {**QUICKSTART["myapp-user"]["spec"], "instanceRef": REF}
USER_XR = kube.xr_from_claim(
    kube.claim("DatabaseUser", "myapp-user", USER_SPEC, namespace=TEAM), namespace=TEAM
)
USER_DATABASE = kube.claim("Database", "myapp-db", DB_SPEC, namespace=TEAM)


def user_call(
    observed: dict[str, dict[str, Any]], allowed: dict[str, Any] | None
) -> fnv1.RunFunctionResponse:
    required = {"instance": [instance(allowed)], "database": [USER_DATABASE], "credentials-secret": []}
    return call(USER_XR, required, observed_resources=observed)


def test_a_claim_choosing_its_xr_name_cannot_name_a_job_input_copy_after_a_secret_of_the_instances_namespace() -> (
    None
):
    """A claim may name its XR (spec.resourceRef), and Crossplane's server-side apply takes over an uncontrolled
    Secret of the composed name: a copy named after the XR could overwrite `postgres-admin-password` in A. The copy
    is named by the XR's uid, which no tenant chooses."""
    spec = copy.deepcopy(USER_SPEC)
    xr = kube.xr_from_claim(kube.claim("DatabaseUser", "u", spec, namespace=TEAM), namespace=TEAM)
    xr["metadata"]["name"] = "postgres-admin"
    rsp = call(
        xr, {"instance": [instance({"names": [TEAM]})], "database": [USER_DATABASE], "credentials-secret": []}
    )
    copy_ = kube.desired(rsp)["job-password"]
    assert copy_["metadata"]["name"] == f"dbops-{xr['metadata']['uid']}-password"
    assert "postgres-admin" not in copy_["metadata"]["name"]


def test_a_user_keeps_its_credentials_in_its_namespace_and_its_job_reads_a_password_copy_in_the_instances() -> (
    None
):
    allowed = {"names": [TEAM]}
    first = user_call({}, allowed)
    desired = kube.desired(first)
    assert not kube.jobs(first), "the Job waits until its password Secret exists"
    credentials, copy_ = desired["credentials"], desired["job-password"]
    assert credentials["metadata"]["namespace"] == TEAM
    assert copy_["metadata"]["namespace"] == PLATFORM
    assert set(copy_["data"]) == {"password"}, "the Job's input holds the password alone"
    password = kube.secret_data(credentials)["password"]
    assert kube.secret_data(copy_)["password"] == password
    observed = {k: kube.observed(v, k) for k, v in desired.items()}
    second = user_call(observed, allowed)
    [job] = kube.jobs(second).values()
    assert job["metadata"]["namespace"] == PLATFORM
    assert mounted_secrets(job) == {"postgres-admin-creds", copy_["metadata"]["name"]}
    assert kube.job_env(job)["DBOPS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": copy_["metadata"]["name"],
        "key": "password",
    }
    assert kube.secret_data(kube.desired(second)["credentials"])["password"] == password
    # Consent withdrawn: both Secrets and the Job are kept as they are.
    withdrawn = user_call(
        {**observed, **{k: kube.observed(v, k) for k, v in kube.jobs(second).items()}}, None
    )
    assert set(kube.desired(withdrawn)) == {"credentials", "job-password", *kube.jobs(second)}
    assert kube.status(withdrawn)["phase"] == "Pending"


def test_a_user_template_may_not_copy_the_ca_of_another_namespace() -> None:
    spec = {
        **USER_SPEC,
        "passwordSecret": {"secretName": "x", "secretTemplate": {"data": {"ca.crt": "{{ .CA }}"}}},
    }
    xr = kube.xr_from_claim(kube.claim("DatabaseUser", "u", spec, namespace=TEAM), namespace=TEAM)
    tls_instance = instance({"names": [TEAM]})
    tls_instance["spec"]["tls"] = {"enabled": True, "mode": "verify-full", "secretRef": {"name": "pg-tls"}}
    rsp = call(xr, {"instance": [tls_instance], "database": [USER_DATABASE], "credentials-secret": []})
    assert kube.status(rsp)["phase"] == "Failed" and not kube.jobs(rsp)
    assert "{{ .CA }} is refused for an instance of another namespace" in kube.status(rsp)["message"]


def test_password_rotation_is_refused_for_an_instance_of_another_namespace() -> None:
    spec = {**USER_SPEC, "passwordRotation": {"enabled": True, "maxAge": "90d"}}
    xr = kube.xr_from_claim(kube.claim("DatabaseUser", "u", spec, namespace=TEAM), namespace=TEAM)
    rsp = call(
        xr, {"instance": [instance({"names": [TEAM]})], "database": [USER_DATABASE], "credentials-secret": []}
    )
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and not kube.jobs(rsp), status
    assert "spec.passwordRotation.enabled" in status["message"]
    assert "password rotation is not offered for an instance of another namespace" in status["message"]


BACKUP_SPEC = {
    "databaseRef": {"name": "myapp-db"},
    "storage": {
        "type": "s3",
        "s3": {
            "endpoint": "https://s3.team.example:9000",
            "bucket": "team-backups",
            "secretRef": {"name": "team-s3", "keys": {"accessKey": "id", "secretKey": "key"}},
            "caSecretRef": {"name": "team-ca", "key": "bundle.pem"},
        },
    },
    "encryption": {"enabled": True, "secretRef": {"name": "team-key", "key": "k"}},
}
BACKUP_XR = kube.xr_from_claim(kube.claim("DatabaseBackup", "b", BACKUP_SPEC, namespace=TEAM), namespace=TEAM)


def team_secret(name: str, data: dict[str, str], version: str = "1") -> dict[str, Any]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": TEAM}}
    secret["metadata"]["resourceVersion"] = version
    return {**secret, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


TEAM_SECRETS = {
    "s3-secret": [team_secret("team-s3", {"id": "AKID", "key": "s3cr3t", "unused": "not-copied"})],
    "s3-ca-secret": [team_secret("team-ca", {"bundle.pem": "-----CA-----", "other.pem": "x"})],
    "backup-key-secret": [team_secret("team-key", {"k": "0" * 64})],
}


def backup_call(
    observed: dict[str, dict[str, Any]],
    allowed: dict[str, Any] | None,
    xr: dict[str, Any] = BACKUP_XR,
    **more: Any,
) -> fnv1.RunFunctionResponse:
    required = {"database": [USER_DATABASE], "instance": [instance(allowed)], **TEAM_SECRETS, **more}
    return call(xr, required, observed_resources=observed)


def test_a_backup_runs_in_the_instances_namespace_reading_a_copy_of_the_keys_it_uses() -> None:
    allowed = {"names": [TEAM]}
    first = backup_call({}, allowed)
    asked = selectors(first)
    assert asked["s3-secret"] == ("Secret", TEAM, "team-s3")
    assert asked["s3-ca-secret"] == ("Secret", TEAM, "team-ca")
    assert asked["backup-key-secret"] == ("Secret", TEAM, "team-key")
    assert asked["admin-secret"] == ("Secret", PLATFORM, "postgres-admin-creds")
    assert not kube.jobs(first), "the Job waits until the copy exists"
    desired = kube.desired(first)
    copy_ = desired["job-secrets"]
    assert copy_["metadata"]["namespace"] == PLATFORM
    assert copy_["metadata"]["name"] == f"dbops-{BACKUP_XR['metadata']['uid']}-backup-secrets"
    assert kube.secret_data(copy_) == {
        "access-key": "AKID",
        "secret-key": "s3cr3t",
        "ca.crt": "-----CA-----",
        "key": "0" * 64,
    }, "only the keys the Job reads"
    assert "copying the keys the Job reads" in kube.status(first)["message"]
    observed = {k: kube.observed(v, k) for k, v in desired.items()}
    second = backup_call(observed, allowed)
    [job] = kube.jobs(second).values()
    assert job["metadata"]["namespace"] == PLATFORM
    assert mounted_secrets(job) == {"postgres-admin-creds", copy_["metadata"]["name"]}
    assert all(r["metadata"]["namespace"] == PLATFORM for r in kube.desired(second).values()), (
        "nothing of platform is composed in team"
    )
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DBOPS_S3_CA_FILE"] == "/etc/dbops/backup/s3-ca/ca.crt"
    assert env["DBOPS_BACKUP_KEY_FILE"] == "/etc/dbops/backup/key/key"
    assert kube.job_request(job)["owner"]["namespace"] == TEAM
    # Completed: the Job is kept, the copy of the team's keys is not (it lives no longer than the Job needs it).
    done = {
        **observed,
        **{k: kube.job_complete(v, "2026-12-06T11:59:00Z") for k, v in kube.jobs(second).items()},
    }
    completed = backup_call(
        done, allowed, xr=kube.with_status(BACKUP_XR, {"phase": "Completed", "message": "ok"})
    )
    assert set(kube.desired(completed)) == set(kube.jobs(second)), "the Job stays, the copy goes"
    # The team's Secret changes: the copy follows, with the new revision.
    changed = {**TEAM_SECRETS, "s3-secret": [team_secret("team-s3", {"id": "AKID2", "key": "new"}, "2")]}
    third = call(
        BACKUP_XR,
        {"database": [USER_DATABASE], "instance": [instance(allowed)], **changed},
        observed_resources=observed,
    )
    assert kube.secret_data(kube.desired(third)["job-secrets"])["access-key"] == "AKID2"
    assert not kube.jobs(third), "a Job starts only on a copy of the current revision"
    # Consent withdrawn: nothing runs, the copy is kept as it is, the team's Secrets are not even read.
    withdrawn = backup_call(observed, None)
    assert not kube.jobs(withdrawn) and kube.status(withdrawn)["phase"] == "Pending"
    assert set(kube.desired(withdrawn)) == {"job-secrets"}
    assert "s3-secret" not in rsp_requirements(withdrawn)


def rsp_requirements(rsp: fnv1.RunFunctionResponse) -> set[str]:
    return set(rsp.requirements.resources)


def test_a_backup_waits_for_a_missing_secret_of_its_namespace() -> None:
    rsp = backup_call({}, {"names": [TEAM]}, **{"s3-secret": []})
    assert not kube.jobs(rsp) and "job-secrets" not in kube.desired(rsp)
    assert "Secret team-s3 not found in namespace team" in kube.status(rsp)["message"]


def test_a_backup_to_a_volume_of_its_namespace_is_refused_naming_s3() -> None:
    spec = {"databaseRef": {"name": "myapp-db"}, "storage": {"type": "pvc", "pvc": {"claimName": "backups"}}}
    xr = kube.xr_from_claim(kube.claim("DatabaseBackup", "b", spec, namespace=TEAM), namespace=TEAM)
    rsp = backup_call({}, {"names": [TEAM]}, xr=xr)
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and not kube.jobs(rsp), status
    assert (
        "spec.storage.type: a PersistentVolumeClaim of this namespace cannot be mounted" in status["message"]
    )
    assert "use storage type s3" in status["message"]


RESTORE_FROM_PATH = {
    "target": {"databaseRef": {"name": "myapp-db"}},
    "fromPath": {
        "backupPath": "b",
        "storage": BACKUP_SPEC["storage"],
        "encryption": BACKUP_SPEC["encryption"],
    },
}
RESTORE_FROM_BACKUP = {"target": {"databaseRef": {"name": "myapp-db"}}, "backupRef": {"name": "b"}}


@pytest.mark.parametrize("spec", [RESTORE_FROM_PATH, RESTORE_FROM_BACKUP], ids=["fromPath", "backupRef"])
def test_a_restore_runs_in_the_instances_namespace_reading_a_copy_of_the_keys_it_uses(
    spec: dict[str, Any],
) -> None:
    xr = kube.xr_from_claim(kube.claim("DatabaseRestore", "r", spec, namespace=TEAM), namespace=TEAM)
    done = kube.claim("DatabaseBackup", "b", BACKUP_SPEC, phase="Completed", namespace=TEAM)
    allowed = {"names": [TEAM]}
    first = backup_call({}, allowed, xr=xr, backup=[done])
    assert not kube.jobs(first)
    copy_ = kube.desired(first)["job-secrets"]
    assert copy_["metadata"]["namespace"] == PLATFORM
    assert set(kube.secret_data(copy_)) == {"access-key", "secret-key", "ca.crt", "key"}
    observed = {k: kube.observed(v, k) for k, v in kube.desired(first).items()}
    second = backup_call(observed, allowed, xr=xr, backup=[done])
    [job] = kube.jobs(second).values()
    assert job["metadata"]["namespace"] == PLATFORM
    assert mounted_secrets(job) == {"postgres-admin-creds", copy_["metadata"]["name"]}
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["dbops-worker", "restore"]
    withdrawn = backup_call(observed, None, xr=xr, backup=[done])
    assert not kube.jobs(withdrawn) and kube.status(withdrawn)["phase"] == "Pending"


def test_a_restore_from_a_volume_of_its_namespace_is_refused_naming_s3() -> None:
    spec = {
        **RESTORE_FROM_PATH,
        "fromPath": {"backupPath": "b", "storage": {"type": "pvc", "pvc": {"claimName": "backups"}}},
    }
    xr = kube.xr_from_claim(kube.claim("DatabaseRestore", "r", spec, namespace=TEAM), namespace=TEAM)
    status = kube.status(backup_call({}, {"names": [TEAM]}, xr=xr))
    assert status["phase"] == "Failed", status
    assert (
        "spec.fromPath.storage.type: a PersistentVolumeClaim of this namespace cannot be mounted"
        in (status["message"])
    )


def cronjobs(rsp: fnv1.RunFunctionResponse) -> list[dict[str, Any]]:
    return [r for r in kube.desired(rsp).values() if r["kind"] == "CronJob"]


def test_a_schedule_creates_its_cronjob_in_the_instances_namespace_once_the_copy_exists() -> None:
    spec = {"schedule": "0 3 * * *", "template": {"spec": BACKUP_SPEC}}
    xr = kube.xr_from_claim(kube.claim("DatabaseBackupSchedule", "s", spec, namespace=TEAM), namespace=TEAM)
    allowed = {"names": [TEAM]}
    first = backup_call({}, allowed, xr=xr)
    assert not cronjobs(first), "no run before the copy exists"
    copy_ = kube.desired(first)["job-secrets"]
    assert copy_["metadata"]["namespace"] == PLATFORM
    assert selectors(first)["s3-secret"] == ("Secret", TEAM, "team-s3")
    observed = {k: kube.observed(v, k) for k, v in kube.desired(first).items()}
    second = backup_call(observed, allowed, xr=xr)
    [cronjob] = cronjobs(second)
    assert cronjob["metadata"]["namespace"] == PLATFORM
    assert kube.status(second)["message"].startswith("CronJob platform/s created: backups at 0 3 * * *")
    assert mounted_secrets(cronjob["spec"]["jobTemplate"]) == {
        "postgres-admin-creds",
        copy_["metadata"]["name"],
    }
    assert all(r["metadata"]["namespace"] == PLATFORM for r in kube.desired(second).values())
    # The team's Secret changes: the CronJob stays, the copy follows (same name).
    observed = {**observed, **{k: kube.observed(v, k) for k, v in kube.desired(second).items()}}
    changed = {**TEAM_SECRETS, "s3-secret": [team_secret("team-s3", {"id": "AKID2", "key": "new"}, "2")]}
    third = call(
        xr,
        {"database": [USER_DATABASE], "instance": [instance(allowed)], **changed},
        observed_resources=observed,
    )
    assert cronjobs(third) == [cronjob]
    assert kube.secret_data(kube.desired(third)["job-secrets"])["access-key"] == "AKID2"
    withdrawn = backup_call(observed, None, xr=xr)
    assert kube.status(withdrawn)["phase"] == "Pending" and "s3-secret" not in rsp_requirements(withdrawn)


def test_a_namespaced_backup_of_a_database_on_another_namespaces_instance_is_refused() -> None:
    xr = kube.namespaced_xr("DatabaseBackup", "b", BACKUP_SPEC, namespace=TEAM)
    database = kube.namespaced_xr("Database", "myapp-db", DB_SPEC, namespace=TEAM)
    database["status"] = {"phase": "Ready"}
    rsp = call(xr, {"database": [database], "instance": [instance({"names": [TEAM]})], **TEAM_SECRETS})
    status = kube.status(rsp)
    assert status["phase"] == "Failed" and not kube.jobs(rsp), status
    assert "of another namespace: a namespaced object cannot use it" in status["message"]
    assert "job-secrets" not in kube.desired(rsp)


def test_a_user_on_the_same_named_instance_of_its_own_namespace_is_not_on_the_databases() -> None:
    spec = dict(QUICKSTART["myapp-user"]["spec"])
    xr = kube.xr_from_claim(kube.claim("DatabaseUser", "u", spec, namespace=TEAM), namespace=TEAM)
    own = kube.claim(
        "DatabaseInstance", "postgres-server", QUICKSTART["postgres-server"]["spec"], namespace=TEAM
    )
    database = kube.claim("Database", "myapp-db", DB_SPEC, namespace=TEAM)
    rsp = call(xr, {"instance": [own], "database": [database], "credentials-secret": []})
    assert kube.status(rsp)["phase"] == "Failed"
    assert (
        "Database myapp-db is on DatabaseInstance platform/postgres-server, but this user is on"
        in (kube.status(rsp)["message"])
    )


def test_consent_is_not_part_of_the_instances_check() -> None:
    """Giving or withdrawing consent re-runs nothing on the server: the instance's Job stays the same."""
    names = []
    for allowed in (None, {"names": [TEAM]}, {"selector": {"matchLabels": {"tier": "db"}}}):
        claim_ = instance(allowed)
        xr = kube.xr_from_claim(claim_, namespace=PLATFORM)
        rsp = call(xr, {})
        [job] = kube.jobs(rsp).values()
        assert "allowedNamespaces" not in kube.job_request(job)["spec"]
        names.append(job["metadata"]["name"])
    assert len(set(names)) == 1, names
