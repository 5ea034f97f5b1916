"""What `crossplane composition render` does with one pipeline step, in Python, so tests can drive the served
function the same way. Modelled on Crossplane core v2.3 (internal/render, internal/xfn and the composite
reconciler it runs) and checked against it: tests/test_crossplane_cli.py renders every example through the real
CLI and engine and compares.

- observed: the XR file as the observed composite; observed resources keyed by their
  `crossplane.io/composition-resource-name` annotation; desired starts empty; the step's Input; context `{}`.
- requirements: call, fetch what the response requires from the supplied required resources (match by apiVersion,
  kind, namespace and name or labels, as the API server would; a list sorts by namespace/name), call again with
  `required_resources` filled in, until the requirements are equal twice in a row (at most 6 calls). A fatal
  result stops at once.
- output: the XR's status as the function desires it (it replaces the XR's, but for the conditions), conditions
  merged into the XR's existing ones the way Crossplane merges them (same type replaced in place, new types
  appended, none removed): Responsive, the function's conditions, Synced, then Ready (Available when the desired composite is Ready, else Creating when
  it is not Ready or any composed resource is unready); `claimConditionTypes` for conditions targeting the claim.
  Composed resources carry Crossplane's labels and the XR as controller owner. `events` are what render prints
  with -r: the function's results as events of the step, and one per unready composed resource.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.wire import to_dict
from tests.function_cases.kube import COMPOSITION_RESOURCE_NAME

MAX_ITERATIONS = 5
# Condition types Crossplane keeps to itself (crossplane/apis v2 IsSystemConditionType): a function cannot set them.
SYSTEM_CONDITIONS = frozenset({"Ready", "Synced", "Healthy", "UpToDate", "Responsive"})
COMPOSITE_LABEL = "crossplane.io/composite"
CLAIM_LABELS = ("crossplane.io/claim-name", "crossplane.io/claim-namespace")
Runner = Callable[[fnv1.RunFunctionRequest], fnv1.RunFunctionResponse]


class RenderError(Exception):
    pass


@dataclass
class Rendered:
    xr: dict[str, Any]
    composed: dict[str, dict[str, Any]]
    results: list[dict[str, Any]]
    response: fnv1.RunFunctionResponse
    calls: int
    requests: list[fnv1.RunFunctionRequest] = field(default_factory=list)
    events: list[dict[str, str]] = field(default_factory=list)  # render -r: {"severity", "reason", "message"}

    @property
    def ready(self) -> str:
        for cond in self.xr["status"].get("conditions", []):
            if cond["type"] == "Ready":
                return str(cond["status"])
        return "Unknown"

    def condition(self, kind: str) -> dict[str, Any]:
        for cond in self.xr["status"].get("conditions", []):
            if cond["type"] == kind:
                return dict(cond)
        return {}


def _matches(selector: fnv1.ResourceSelector, res: dict[str, Any]) -> bool:
    if res.get("apiVersion") != selector.api_version or res.get("kind") != selector.kind:
        return False
    meta = res.get("metadata", {})
    namespace = meta.get("namespace", "")
    if selector.WhichOneof("match") == "match_name":
        # A Get: the namespace is part of the key (empty for a cluster-scoped object).
        return bool(meta.get("name") == selector.match_name and namespace == selector.namespace)
    if selector.namespace and namespace != selector.namespace:
        return False  # a List in one namespace; an empty namespace lists all of them
    if selector.WhichOneof("match") == "match_labels":
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in selector.match_labels.labels.items())
    return True


def fetch(selector: fnv1.ResourceSelector, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = sorted(
        (r for r in resources if _matches(selector, r)),
        key=lambda r: f"{r['metadata'].get('namespace', '')}/{r['metadata']['name']}",
    )
    if selector.WhichOneof("match") == "match_name":
        return found[:1]
    return found


def render(
    run: Runner,
    xr: dict[str, Any],
    input_: dict[str, Any] | None,
    observed_resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    required_resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    step: str = "dbops",
) -> Rendered:
    req = fnv1.RunFunctionRequest()
    req.meta.capabilities.extend(
        [
            fnv1.CAPABILITY_CAPABILITIES,
            fnv1.CAPABILITY_REQUIRED_RESOURCES,
            fnv1.CAPABILITY_CREDENTIALS,
            fnv1.CAPABILITY_CONDITIONS,
            fnv1.CAPABILITY_REQUIRED_SCHEMAS,
        ]
    )
    req.observed.composite.resource.update(xr)
    observed: dict[str, dict[str, Any]] = {}
    for res in observed_resources:
        key = res["metadata"]["annotations"][COMPOSITION_RESOURCE_NAME]
        observed[key] = res
        req.observed.resources[key].resource.update(res)
    req.desired.SetInParent()
    if input_ is not None:
        req.input.update(input_)
    req.context.SetInParent()
    requests: list[fnv1.RunFunctionRequest] = []
    previous: fnv1.Requirements | None = None
    rsp = None
    for _ in range(MAX_ITERATIONS + 1):
        sent = fnv1.RunFunctionRequest()
        sent.CopyFrom(req)
        requests.append(sent)
        rsp = run(sent)
        if any(r.severity == fnv1.SEVERITY_FATAL for r in rsp.results):
            msg = "; ".join(r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL)
            raise RenderError(f"pipeline step returned a fatal result: {msg}")
        if previous is None and not rsp.HasField("requirements"):
            break  # Go sees nil == nil: nothing was ever required
        if previous is not None and rsp.requirements == previous:
            break
        previous = fnv1.Requirements()
        previous.CopyFrom(rsp.requirements)
        req.ClearField("required_resources")
        for name, selector in rsp.requirements.resources.items():
            bucket = req.required_resources[name]
            for item in fetch(selector, list(required_resources)):
                bucket.items.add().resource.update(item)
        req.context.CopyFrom(rsp.context)
    else:
        raise RenderError(
            f"requirements didn't stabilize after the maximum number of iterations ({MAX_ITERATIONS})"
        )
    assert rsp is not None
    return _output(rsp, xr, observed, requests, step)


def xr_uid(xr: dict[str, Any]) -> str:
    """The XR's uid, or the one render gives an XR without it (uuid5 of its GVK, namespace and name)."""
    meta = xr["metadata"]
    if meta.get("uid"):
        return str(meta["uid"])
    group, _, version = xr["apiVersion"].rpartition("/")
    gvk = f"{group}/{version}, Kind={xr['kind']}" if group else f"/{version}, Kind={xr['kind']}"
    name = f"{gvk}\x00{meta.get('namespace', '')}\x00{meta['name']}"
    return str(uuid.uuid5(uuid.UUID(int=0), name))


def merge_conditions(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Crossplane's SetConditions: a condition of a type already there replaces it in place, a new type is
    appended; nothing is ever removed."""
    out = [dict(c) for c in existing]
    for cond in new:
        at = [i for i, c in enumerate(out) if c["type"] == cond["type"]]
        for i in at:
            out[i] = dict(cond)
        if not at:
            out.append(dict(cond))
    return out


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    cond = {"type": kind, "status": status, "reason": reason}
    return {**cond, "message": message} if message else cond


def _event(result: fnv1.Result, step: str) -> dict[str, str]:
    """The event Crossplane records for a (non-fatal) result of pipeline step `step`."""
    reason = result.reason or "ComposeResources"
    detail = f'Pipeline step "{step}"'
    if result.severity == fnv1.SEVERITY_NORMAL:
        return {"severity": "Normal", "reason": reason, "message": f"{detail}: {result.message}"}
    if result.severity == fnv1.SEVERITY_WARNING:
        return {"severity": "Warning", "reason": reason, "message": f"{detail}: {result.message}"}
    unknown = f"{detail} returned a result of unknown severity (assuming warning): {result.message}"
    return {"severity": "Warning", "reason": reason, "message": unknown}


def _output(
    rsp: fnv1.RunFunctionResponse,
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    requests: list[fnv1.RunFunctionRequest],
    step: str,
) -> Rendered:
    composed: dict[str, dict[str, Any]] = {}
    unready: list[str] = []
    xr_labels = xr["metadata"].get("labels") or {}
    owner = {
        "apiVersion": xr["apiVersion"],
        "kind": xr["kind"],
        "name": xr["metadata"]["name"],
        "uid": xr_uid(xr),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for key, res in rsp.desired.resources.items():
        if res.ready != fnv1.READY_TRUE:
            unready.append(key)
        body = to_dict(res.resource)
        meta = body.setdefault("metadata", {})
        if key in observed:
            meta["name"] = observed[key]["metadata"].get("name")
            meta["namespace"] = observed[key]["metadata"].get("namespace")
        meta.setdefault("annotations", {})[COMPOSITION_RESOURCE_NAME] = key
        labels = meta.setdefault("labels", {})
        labels[COMPOSITE_LABEL] = xr_labels.get(COMPOSITE_LABEL, xr["metadata"]["name"])
        if all(xr_labels.get(k) for k in CLAIM_LABELS):
            labels.update({k: xr_labels[k] for k in CLAIM_LABELS})
        refs = [r for r in meta.get("ownerReferences", []) if not r.get("controller")]
        meta["ownerReferences"] = [*refs, owner]
        composed[key] = body
    out = to_dict(rsp.desired.composite.resource)
    out["apiVersion"] = xr["apiVersion"]
    out["kind"] = xr["kind"]
    out["metadata"] = {"name": xr["metadata"]["name"]}
    status = out.setdefault("status", {})
    before = xr.get("status") or {}
    if rsp.desired.composite.ready == fnv1.READY_FALSE:
        ready = _condition("Ready", "False", "Creating")
    elif rsp.desired.composite.ready == fnv1.READY_UNSPECIFIED and unready:
        ready = _condition("Ready", "False", "Creating", f"Unready resources: {', '.join(sorted(unready))}")
    else:
        ready = _condition("Ready", "True", "Available")
    names = {fnv1.STATUS_CONDITION_TRUE: "True", fnv1.STATUS_CONDITION_FALSE: "False"}
    conds = merge_conditions(
        before.get("conditions", []), [_condition("Responsive", "True", "WatchCircuitClosed")]
    )
    # The render engine replaces the XR's status with the function's desired status, keeping only its conditions,
    # so claimConditionTypes start afresh. (On a cluster the status Update that writes them is not the function's
    # server-side apply, so earlier types survive there.)
    claim_types: list[str] = []
    for c in rsp.conditions:
        if c.type in SYSTEM_CONDITIONS:
            continue
        conds = merge_conditions(
            conds, [_condition(c.type, names.get(c.status, "Unknown"), c.reason, c.message)]
        )
        if c.target == fnv1.TARGET_COMPOSITE_AND_CLAIM and c.type not in claim_types:
            claim_types.append(c.type)
    status["conditions"] = merge_conditions(conds, [_condition("Synced", "True", "ReconcileSuccess"), ready])
    # Only legacy (cluster-scoped) XRs have claims; a v2 namespaced XR gets no claimConditionTypes.
    if claim_types and not xr["metadata"].get("namespace"):
        status["claimConditionTypes"] = claim_types
    results = [{"severity": fnv1.Severity.Name(r.severity), "message": r.message} for r in rsp.results]
    events = [_event(r, step) for r in rsp.results] + [
        {
            "severity": "Normal",
            "reason": "ComposeResources",
            "message": f'Composed resource "{k}" is not yet ready',
        }
        for k in unready
    ]
    return Rendered(copy.deepcopy(out), composed, results, rsp, len(requests), requests, events)
