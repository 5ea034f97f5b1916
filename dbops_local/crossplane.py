"""What Crossplane does around a function call: claims to XRs, requests, and applying the response.

Two shapes of XR (docs/packages.md): a claim in `dbops.dbprovision.io` becomes a cluster-scoped `X<kind>` XR; a
namespaced XR in `ns.dbops.dbprovision.io` is composed as it is, with Crossplane's fields under `spec.crossplane`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from dbops_local.store import Obj

API_VERSION = "dbops.dbprovision.io/v1alpha1"
NAMESPACED_API_VERSION = "ns.dbops.dbprovision.io/v1alpha1"
# Kinds users may apply that have no namespace (a function may ask for a Namespace's labels).
CLUSTER_SCOPED = frozenset({("v1", "Namespace")})
CLAIM_KINDS = (
    "DatabaseInstance",
    "Database",
    "DatabaseRole",
    "DatabaseUser",
    "DatabaseGrant",
    "DatabaseBackup",
    "DatabaseRestore",
    "DatabaseBackupSchedule",
)
COMPOSITION_RESOURCE_NAME = "crossplane.io/composition-resource-name"
CONNECTION_SECRET_TYPE = "connection.crossplane.io/v1alpha1"  # noqa: S105 (a Secret type)
# Claim fields Crossplane keeps on the claim instead of copying them to the XR.
CLAIM_ONLY_SPEC = ("writeConnectionSecretToRef", "resourceRef", "compositeDeletePolicy")


@dataclass(frozen=True)
class Composition:
    name: str
    input: Obj | None  # the function-dbops step's Input
    connection_namespace: str | None = None  # spec.writeConnectionSecretsToNamespace


def is_claim(obj: Obj) -> bool:
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") in CLAIM_KINDS


def is_namespaced_xr(obj: Obj) -> bool:
    """A Crossplane v2 namespaced XR: what users apply instead of a claim, and what the function composes."""
    return obj.get("apiVersion") == NAMESPACED_API_VERSION and obj.get("kind") in CLAIM_KINDS


def with_composition(xr: Obj, composition: str) -> Obj:
    """A namespaced XR as Crossplane keeps it: its Composition chosen under `spec.crossplane`."""
    if xr.get("spec", {}).get("crossplane", {}).get("compositionRef", {}).get("name") == composition:
        return xr
    out = copy.deepcopy(xr)
    out.setdefault("spec", {}).setdefault("crossplane", {})["compositionRef"] = {"name": composition}
    return out


def xr_name(claim: Obj) -> str:
    """Crossplane names an XR `<claim>-<5 random characters>`; derive them from the claim's uid to stay stable."""
    digest = hashlib.sha256(claim["metadata"]["uid"].encode()).hexdigest()
    suffix = "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:5])
    return f"{claim['metadata']['name']}-{suffix}"[:253]


def composite_for(claim: Obj, existing: Obj | None, composition: str) -> Obj:
    """The XR for a claim: the claim's spec, claim labels and reference; status kept from the existing XR."""
    meta = claim["metadata"]
    name = existing["metadata"]["name"] if existing else xr_name(claim)
    spec = {k: copy.deepcopy(v) for k, v in claim.get("spec", {}).items() if k not in CLAIM_ONLY_SPEC}
    spec["claimRef"] = {
        "apiVersion": API_VERSION,
        "kind": claim["kind"],
        "name": meta["name"],
        "namespace": meta.get("namespace", "default"),
    }
    spec["compositionRef"] = {"name": composition}
    if existing and "writeConnectionSecretToRef" in existing.get("spec", {}):
        spec["writeConnectionSecretToRef"] = copy.deepcopy(existing["spec"]["writeConnectionSecretToRef"])
    xr: Obj = {
        "apiVersion": API_VERSION,
        "kind": "X" + claim["kind"],
        "metadata": {
            "name": name,
            "labels": {
                "crossplane.io/claim-name": meta["name"],
                "crossplane.io/claim-namespace": meta.get("namespace", "default"),
                "crossplane.io/composite": name,
            },
        },
        "spec": spec,
    }
    if existing:
        xr["metadata"]["uid"] = existing["metadata"]["uid"]
        xr["metadata"]["creationTimestamp"] = existing["metadata"].get("creationTimestamp")
        if "status" in existing:
            xr["status"] = copy.deepcopy(existing["status"])
    return xr


def request(
    tag: str,
    xr: Obj,
    observed: dict[str, Obj],
    fn_input: Obj | None,
    required: dict[str, list[Obj]],
    *,
    connection: dict[str, bytes] | None = None,
) -> Any:
    req = fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(
            tag=tag,
            capabilities=[
                fnv1.CAPABILITY_CAPABILITIES,
                fnv1.CAPABILITY_REQUIRED_RESOURCES,
                fnv1.CAPABILITY_CONDITIONS,
            ],
        )
    )
    req.observed.composite.resource.update(xr)
    for key, value in (connection or {}).items():
        req.observed.composite.connection_details[key] = value
    for name, obj in observed.items():
        req.observed.resources[name].resource.update(obj)
    if fn_input is not None:
        req.input.update(fn_input)
    for name, items in required.items():
        bucket = req.required_resources[name]
        for item in items:
            bucket.items.add().resource.update(item)
    return req


def selectors(rsp: Any) -> dict[str, dict[str, Any]]:
    """The response's resource requirements as plain dicts (comparable between calls)."""
    out: dict[str, dict[str, Any]] = {}
    for name, sel in rsp.requirements.resources.items():
        item: dict[str, Any] = {"apiVersion": sel.api_version, "kind": sel.kind}
        if sel.HasField("match_name"):
            item["name"] = sel.match_name
        else:
            item["labels"] = dict(sel.match_labels.labels)
        if sel.HasField("namespace"):
            item["namespace"] = sel.namespace
        out[name] = item
    return out


def desired_resources(rsp: Any) -> dict[str, tuple[Obj, bool]]:
    """Composed resources the function wants, with whether it marked each ready."""
    return {
        name: (resource.struct_to_dict(r.resource), r.ready == fnv1.READY_TRUE)
        for name, r in rsp.desired.resources.items()
    }


def composed_metadata(obj: Obj, xr: Obj, name: str) -> Obj:
    """Labels, annotation and owner reference Crossplane puts on every composed resource."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    xr_labels = xr["metadata"].get("labels", {})
    labels["crossplane.io/composite"] = xr["metadata"]["name"]
    for key in ("crossplane.io/claim-name", "crossplane.io/claim-namespace"):
        if key in xr_labels:
            labels[key] = xr_labels[key]
    meta.setdefault("annotations", {})[COMPOSITION_RESOURCE_NAME] = name
    meta["ownerReferences"] = [controller_reference(xr)]
    if not meta.get("name"):
        meta["name"] = f"{xr['metadata']['name']}-{hashlib.sha256(name.encode()).hexdigest()[:5]}"
    return obj


def controller_reference(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"].get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Obj) -> str | None:
    """The uid in the object's controller owner reference (None: no controller)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return str(ref.get("uid", ""))
    return None


def apply_refusal(existing: Obj | None, desired: Obj) -> str:
    """Why the API server refuses Crossplane's server-side apply of `desired` over `existing` ("" when it does not):
    a second controller reference, or a Secret's type changed."""
    if existing is None:
        return ""
    ours = controller_uid(desired)
    theirs = controller_uid(existing)
    what = (
        f"{existing.get('kind')} {existing['metadata'].get('namespace')}/{existing['metadata'].get('name')}"
    )
    if theirs is not None and theirs != ours:
        return (
            f"{what} is invalid: metadata.ownerReferences: Only one reference can have Controller set to true"
        )
    if existing.get("kind") == "Secret" and existing.get("type", "Opaque") != desired.get("type", "Opaque"):
        return f"{what} is invalid: type: field is immutable"
    return ""


def force_applied(existing: Obj, desired: Obj) -> Obj:
    """`existing` after a server-side apply of `desired` with force by a new field manager: the applied fields win,
    every other field (other keys of `data`, labels, owner references) stays."""

    def merge(old: Any, new: Any, path: str) -> Any:
        if isinstance(old, dict) and isinstance(new, dict):
            return {**old, **{k: merge(old.get(k), v, f"{path}.{k}") for k, v in new.items()}}
        if path == ".metadata.ownerReferences" and isinstance(old, list) and isinstance(new, list):
            uids = {ref.get("uid") for ref in new}
            return [ref for ref in old if ref.get("uid") not in uids] + new
        return copy.deepcopy(new)

    out: Obj = merge(existing, desired, "")
    return out


def connection_secret(name: str, namespace: str, owner: Obj, data: dict[str, str]) -> Obj:
    """A connection Secret as Crossplane writes it: its type, the owner as controller, base64 `data`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": CONNECTION_SECRET_TYPE,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [controller_reference(owner)],
        },
        "data": data,
    }


def connection_refusal(existing: Obj | None, owner_uid: str) -> str:
    """crossplane-runtime's ConnectionSecretMustBeControllableBy: an existing Secret is written only when the
    owner controls it, or nobody does and it is a connection Secret ("" when it may be written)."""
    if existing is None:
        return ""
    theirs = controller_uid(existing)
    if theirs is None and existing.get("type") != CONNECTION_SECRET_TYPE:
        return f"refusing to modify uncontrolled secret of type {existing.get('type', 'Opaque')!r}"
    if theirs is not None and theirs != owner_uid:
        return f"existing secret is not controlled by UID {owner_uid!r}"
    return ""


def normalise_secret(obj: Obj) -> Obj:
    """The API server folds stringData into data (base64)."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    obj = copy.deepcopy(obj)
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    return obj


def merge_conditions(existing: list[Obj], new: list[Obj]) -> list[Obj]:
    """As Crossplane sets conditions: each new one replaces the one of its type, and none is ever removed (a
    condition the function stops returning keeps its last value)."""
    by_type = {c["type"]: c for c in existing if isinstance(c, dict) and "type" in c}
    for cond in new:
        by_type[cond["type"]] = cond
    return list(by_type.values())


def conditions(rsp: Any, ready: bool, fatal: str | None) -> tuple[list[Obj], list[Obj]]:
    """(XR conditions, claim conditions): Crossplane's Synced and Ready plus the function's custom ones."""
    now = "1970-01-01T00:00:00Z"
    synced: Obj = {
        "type": "Synced",
        "status": "True",
        "reason": "ReconcileSuccess",
        "lastTransitionTime": now,
    }
    if fatal:
        synced = {
            "type": "Synced",
            "status": "False",
            "reason": "ReconcileError",
            "message": fatal,
            "lastTransitionTime": now,
        }
    ready_cond: Obj = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "Available" if ready else "Creating",
        "lastTransitionTime": now,
    }
    xr_conds, claim_conds = [synced, ready_cond], [dict(synced), dict(ready_cond)]
    status_names = {
        fnv1.STATUS_CONDITION_TRUE: "True",
        fnv1.STATUS_CONDITION_FALSE: "False",
        fnv1.STATUS_CONDITION_UNKNOWN: "Unknown",
    }
    for cond in rsp.conditions:
        item: Obj = {
            "type": cond.type,
            "status": status_names.get(cond.status, "Unknown"),
            "reason": cond.reason,
            "lastTransitionTime": now,
        }
        if cond.HasField("message"):
            item["message"] = cond.message
        xr_conds.append(item)
        if cond.HasField("target") and cond.target == fnv1.TARGET_COMPOSITE_AND_CLAIM:
            claim_conds.append(dict(item))
    return xr_conds, claim_conds


def results(rsp: Any) -> list[dict[str, str]]:
    names = {fnv1.SEVERITY_FATAL: "Fatal", fnv1.SEVERITY_WARNING: "Warning", fnv1.SEVERITY_NORMAL: "Normal"}
    return [{"severity": names.get(r.severity, "Normal"), "message": r.message} for r in rsp.results]


def ttl_seconds(rsp: Any) -> float | None:
    if not rsp.meta.HasField("ttl"):
        return None
    return float(rsp.meta.ttl.seconds) + float(rsp.meta.ttl.nanos) / 1e9
