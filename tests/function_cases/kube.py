"""Kubernetes objects for function tests: XRs from claims, Ready claims, observed Secrets, Jobs and Pods, and a
RunFunctionRequest builder. Shapes follow what Crossplane and Kubernetes really send (see docs/function.md)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.wire import to_dict

ROOT = Path(__file__).resolve().parents[2]
API = "dbops.dbprovision.io/v1alpha1"
NS_API = "ns.dbops.dbprovision.io/v1alpha1"
NAMESPACE = "default"
COMPOSITION_RESOURCE_NAME = "crossplane.io/composition-resource-name"


def load_yaml(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def composition_input(kind: str) -> dict[str, Any] | None:
    """The step Input of the committed Composition for a claim kind (what `crossplane render` would send)."""
    folder = {
        "DatabaseInstance": "instance",
        "Database": "database",
        "DatabaseUser": "user",
        "DatabaseRole": "role",
        "DatabaseGrant": "grant",
        "DatabaseBackup": "databasebackup",
        "DatabaseRestore": "databaserestore",
        "DatabaseBackupSchedule": "databasebackupschedule",
    }
    path = ROOT / "apis" / folder[kind] / "composition.yaml"
    if not path.exists():
        return None
    comp = load_yaml(path)[0]
    step: dict[str, Any] = comp["spec"]["pipeline"][0]["input"]
    return step


def reading_pods(step_input: dict[str, Any] | None) -> dict[str, Any]:
    """A step Input that opts in to Pod reads (`status.readPods: true`; the shipped Compositions leave it off)."""
    return {**(step_input or {}), "status": {**(step_input or {}).get("status", {}), "readPods": True}}


def xr_uid(claim_name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"xr/{claim_name}"))


def xr_from_claim(claim: dict[str, Any], namespace: str = NAMESPACE, suffix: str = "x7k2p") -> dict[str, Any]:
    """The legacy (cluster-scoped) XR Crossplane creates for a claim."""
    name = claim["metadata"]["name"]
    return {
        "apiVersion": API,
        "kind": "X" + claim["kind"],
        "metadata": {
            "name": f"{name}-{suffix}",
            "uid": xr_uid(name),
            "labels": {
                "crossplane.io/claim-name": name,
                "crossplane.io/claim-namespace": namespace,
                "crossplane.io/composite": f"{name}-{suffix}",
            },
        },
        "spec": {
            **copy.deepcopy(claim["spec"]),
            "claimRef": {"apiVersion": API, "kind": claim["kind"], "name": name, "namespace": namespace},
            "compositionRef": {"name": f"x{claim['kind'].lower()}s.dbops.dbprovision.io"},
        },
    }


def namespaced_xr(
    kind: str, name: str, spec: dict[str, Any], phase: str | None = None, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """A Crossplane v2 namespaced XR (`ns.dbops.dbprovision.io`) as the API server returns it: the claim's kind
    name, in a namespace of its own, Crossplane's fields under `spec.crossplane`."""
    out: dict[str, Any] = {
        "apiVersion": NS_API,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": xr_uid(f"{namespace}/{name}")},
        "spec": {
            **copy.deepcopy(spec),
            "crossplane": {
                "compositionRef": {"name": f"{kind.lower()}s.ns.dbops.dbprovision.io"},
                "compositionUpdatePolicy": "Automatic",
            },
        },
    }
    if phase is not None:
        out["status"] = {"phase": phase, "message": f"{phase.lower()} for the test"}
    return out


def claim(
    kind: str, name: str, spec: dict[str, Any], phase: str | None = "Ready", namespace: str = NAMESPACE
) -> dict[str, Any]:
    """A claim as the API server returns it: with the fields Crossplane adds to its spec."""
    out: dict[str, Any] = {
        "apiVersion": API,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**copy.deepcopy(spec), **crossplane_claim_fields(kind, name)},
    }
    if phase is not None:
        out["status"] = {"phase": phase, "message": f"{phase.lower()} for the test"}
    return out


def crossplane_claim_fields(kind: str, name: str) -> dict[str, Any]:
    return {
        "compositeDeletePolicy": "Background",
        "compositionRef": {"name": f"x{kind.lower()}s.dbops.dbprovision.io"},
        "compositionUpdatePolicy": "Automatic",
        "resourceRef": {"apiVersion": API, "kind": "X" + kind, "name": f"{name}-x7k2p"},
    }


def with_status(xr: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {**xr, "status": copy.deepcopy(status)}


def observed(resource: dict[str, Any], key: str) -> dict[str, Any]:
    """A composed resource as observed: annotated with its composition resource name, with server metadata."""
    out = copy.deepcopy(resource)
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})[COMPOSITION_RESOURCE_NAME] = key
    meta.setdefault("uid", f"uid-{meta.get('name', key)}")
    meta.setdefault("resourceVersion", "4711")
    meta.setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
    return out


def job_complete(job: dict[str, Any], finished: str) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["status"] = {
        "startTime": finished,
        "completionTime": finished,
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": finished},
            {"type": "Complete", "status": "True", "lastTransitionTime": finished},
        ],
    }
    return out


def job_failed(job: dict[str, Any], finished: str, reason: str = "BackoffLimitExceeded") -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["status"] = {
        "startTime": finished,
        "failed": 1,
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": reason, "lastTransitionTime": finished},
            {"type": "Failed", "status": "True", "reason": reason, "lastTransitionTime": finished},
        ],
    }
    return out


def job_running(job: dict[str, Any], started: str) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["status"] = {"startTime": started, "active": 1, "ready": 1}
    return out


def pod(job: dict[str, Any], exit_code: int, message: str, finished: str) -> dict[str, Any]:
    """A Pod of `job` whose worker container terminated with `exit_code` and termination `message`."""
    name = job["metadata"]["name"]
    # The Job controller gives its Pods the template's labels plus the job-name labels.
    template_labels = job.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-abcde",
            "namespace": job["metadata"].get("namespace", NAMESPACE),
            "labels": {**template_labels, "batch.kubernetes.io/job-name": name, "job-name": name},
        },
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": "worker",
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "message": message,
                            "finishedAt": finished,
                        }
                    },
                }
            ],
        },
    }


def worker_result(
    kind: str,
    action: str = "apply",
    observed_facts: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    server: dict[str, str] | None = None,
    changes: list[str] | None = None,
) -> str:
    return json.dumps(
        {
            "ok": error is None,
            "kind": kind,
            "action": action,
            "changes": changes or [],
            "observed": observed_facts or {},
            "server": server or {"version": "15.4", "flavor": "postgres"},
            "statements": {"reads": 2, "writes": 1},
            "durationMs": 40,
            "error": error,
        },
        separators=(",", ":"),
    )


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def request(
    xr: dict[str, Any],
    observed_resources: dict[str, dict[str, Any]] | None = None,
    required: dict[str, list[dict[str, Any]]] | None = None,
    input_: dict[str, Any] | None = None,
    tag: str = "test",
) -> fnv1.RunFunctionRequest:
    req = fnv1.RunFunctionRequest()
    req.meta.tag = tag
    req.observed.composite.resource.update(xr)
    for key, res in (observed_resources or {}).items():
        req.observed.resources[key].resource.update(res)
    for name, items in (required or {}).items():
        bucket = req.required_resources[name]
        for item in items:
            bucket.items.add().resource.update(item)
    if input_ is not None:
        req.input.update(input_)
    return req


def desired(rsp: fnv1.RunFunctionResponse) -> dict[str, dict[str, Any]]:
    return {key: to_dict(res.resource) for key, res in rsp.desired.resources.items()}


def status(rsp: fnv1.RunFunctionResponse) -> dict[str, Any]:
    value = to_dict(rsp.desired.composite.resource).get("status", {})
    return value if isinstance(value, dict) else {}


def conditions(rsp: fnv1.RunFunctionResponse) -> dict[str, tuple[str, str, str]]:
    names = {fnv1.STATUS_CONDITION_TRUE: "True", fnv1.STATUS_CONDITION_FALSE: "False"}
    return {c.type: (names.get(c.status, "Unknown"), c.reason, c.message) for c in rsp.conditions}


def jobs(rsp: fnv1.RunFunctionResponse) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in desired(rsp).items() if v.get("kind") == "Job"}


def job_env(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def job_request(job: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(job_env(job)["DBOPS_REQUEST"]["value"])
    return value
