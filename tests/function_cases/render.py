"""What `crossplane render` does with one pipeline step, in Python, so tests can drive the served function the
same way (crossplane/crossplane cmd/crank/render and internal/xfn, v2):

- observed: the XR file as the observed composite; observed resources keyed by their
  `crossplane.io/composition-resource-name` annotation; desired starts empty; the step's Input; context `{}`.
- requirements: call, fetch what the response requires from the supplied required resources (match by apiVersion,
  kind and name or labels; namespaces are not compared), call again with `required_resources` filled in, until
  the requirements are equal twice in a row (at most 6 calls). A fatal result stops at once.
- output: the XR with the desired status, the custom conditions and a Ready condition (Available when the
  desired composite is Ready, else Creating when it is not Ready or any composed resource is unready).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import to_dict
from tests.function_cases.kube import COMPOSITION_RESOURCE_NAME

MAX_ITERATIONS = 5
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
    if selector.WhichOneof("match") == "match_name":
        return bool(meta.get("name") == selector.match_name)
    if selector.WhichOneof("match") == "match_labels":
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in selector.match_labels.labels.items())
    return True


def fetch(selector: fnv1.ResourceSelector, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = sorted((r for r in resources if _matches(selector, r)), key=lambda r: r["metadata"]["name"])
    if selector.WhichOneof("match") == "match_name":
        return found[:1]
    return found


def render(
    run: Runner,
    xr: dict[str, Any],
    input_: dict[str, Any] | None,
    observed_resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    required_resources: list[dict[str, Any]] = (),  # type: ignore[assignment]
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
    return _output(rsp, xr, observed, requests)


def _output(
    rsp: fnv1.RunFunctionResponse,
    xr: dict[str, Any],
    observed: dict[str, dict[str, Any]],
    requests: list[fnv1.RunFunctionRequest],
) -> Rendered:
    composed: dict[str, dict[str, Any]] = {}
    unready: list[str] = []
    for key, res in rsp.desired.resources.items():
        if res.ready != fnv1.READY_TRUE:
            unready.append(key)
        body = to_dict(res.resource)
        meta = body.setdefault("metadata", {})
        if key in observed:
            meta["name"] = observed[key]["metadata"].get("name")
            meta["namespace"] = observed[key]["metadata"].get("namespace")
        meta.setdefault("annotations", {})[COMPOSITION_RESOURCE_NAME] = key
        meta.setdefault("labels", {})["crossplane.io/composite"] = xr["metadata"]["name"]
        composed[key] = body
    out = to_dict(rsp.desired.composite.resource)
    out["apiVersion"] = xr["apiVersion"]
    out["kind"] = xr["kind"]
    out["metadata"] = {"name": xr["metadata"]["name"]}
    status = out.setdefault("status", {})
    if rsp.desired.composite.ready == fnv1.READY_FALSE:
        ready = {"type": "Ready", "status": "False", "reason": "Creating"}
    elif rsp.desired.composite.ready == fnv1.READY_UNSPECIFIED and unready:
        ready = {
            "type": "Ready",
            "status": "False",
            "reason": "Creating",
            "message": f"Unready resources: {', '.join(sorted(unready))}",
        }
    else:
        ready = {"type": "Ready", "status": "True", "reason": "Available"}
    names = {fnv1.STATUS_CONDITION_TRUE: "True", fnv1.STATUS_CONDITION_FALSE: "False"}
    conds = [ready]
    for c in rsp.conditions:
        if c.type in ("Ready", "Synced", "Healthy"):
            continue
        conds = [x for x in conds if x["type"] != c.type]
        conds.append(
            {
                "type": c.type,
                "status": names.get(c.status, "Unknown"),
                "reason": c.reason,
                "message": c.message,
            }
        )
    status["conditions"] = conds
    results = [{"severity": fnv1.Severity.Name(r.severity), "message": r.message} for r in rsp.results]
    return Rendered(copy.deepcopy(out), composed, results, rsp, len(requests), requests)
