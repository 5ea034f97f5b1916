"""The gRPC servicer: decode the request once, dispatch on the XR kind, write the outcome into the response.

`RunFunction` never raises: every problem becomes a result and, where a status can carry it, a condition.
"""

from __future__ import annotations

import random
import secrets
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from crossplane.function import logging, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from dbops_api.registry import by_xr_kind, xr_kinds
from function import status as st
from function.audit import audit_fields
from function.input import parse_input
from function.kinds.backup import compose_backup, compose_restore, compose_schedule
from function.kinds.database import compose_database
from function.kinds.grant import compose_grant
from function.kinds.instance import compose_instance
from function.kinds.role import compose_role
from function.kinds.user import compose_user
from function.metrics import Metrics
from function.outcome import Outcome, Result
from function.response_cache import MemoPlan, ResponseCache, memo_plan, request_key, without_meta
from function.secrets.redaction import known_secrets, redacted
from function.view import View, decode
from function.wire import SECRET_VALUES, decoded, decoded_fields, encode, plain

COMPOSERS: dict[str, Callable[[View], Outcome]] = {
    "DatabaseInstance": compose_instance,
    "Database": compose_database,
    "DatabaseUser": compose_user,
    "DatabaseRole": compose_role,
    "DatabaseGrant": compose_grant,
    "DatabaseBackup": compose_backup,
    "DatabaseRestore": compose_restore,
    "DatabaseBackupSchedule": compose_schedule,
}
TARGET = fnv1.TARGET_COMPOSITE_AND_CLAIM
_SEVERITY = {"Normal": fnv1.SEVERITY_NORMAL, "Warning": fnv1.SEVERITY_WARNING, "Fatal": fnv1.SEVERITY_FATAL}
_STATUS = {
    "True": fnv1.STATUS_CONDITION_TRUE,
    "False": fnv1.STATUS_CONDITION_FALSE,
    "Unknown": fnv1.STATUS_CONDITION_UNKNOWN,
}
_READY = {True: fnv1.READY_TRUE, False: fnv1.READY_FALSE, None: fnv1.READY_UNSPECIFIED}


def compose(view: View) -> Outcome:
    """Dispatch on the XR kind. Errors no status can carry are fatal results."""
    if view.input_errors:
        message = "invalid step input: " + st.error_text(view.input_errors)
        return Outcome(results=[Result("Fatal", message, "InvalidInput")])
    if view.kind is None:
        known = ", ".join(xr_kinds())
        return Outcome(
            results=[
                Result("Fatal", f"function-dbops composes {known}; got kind {view.xr_kind!r}", "UnknownKind")
            ]
        )
    if view.namespace is None and not view.legacy:
        return st.failed(
            view,
            view.kind,
            f"{view.xr_kind} {view.name} has no namespace; dbops composes Secrets and Jobs in the namespace of a "
            "namespaced XR: give it metadata.namespace",
            "NoNamespace",
        )
    if view.namespace is None:
        return st.failed(
            view,
            view.kind,
            f"{view.xr_kind} {view.name} has neither a claim nor a namespace; dbops composes Secrets and Jobs in "
            f"the claim's namespace: create a {view.kind} claim instead",
            "NoNamespace",
        )
    return COMPOSERS[view.kind](view)


def run(
    req: fnv1.RunFunctionRequest, now: datetime, rng: random.Random, offline: bool = False
) -> tuple[fnv1.RunFunctionResponse, View, Outcome]:
    rsp, view, outcome, _ = run_memo(req, now, rng, offline, memo=False)
    return rsp, view, outcome


def run_memo(
    req: fnv1.RunFunctionRequest, now: datetime, rng: random.Random, offline: bool, memo: bool = True
) -> tuple[fnv1.RunFunctionResponse, View, Outcome, tuple[bytes, MemoPlan] | None]:
    """`run`, and the response's memo form with its plan when it may be memoized."""
    required: dict[str, list[dict[str, Any]]] = {}
    for source in (req.extra_resources, req.required_resources):
        for name, items in source.items():
            required[name] = [decoded(item.resource) for item in items.items]
    view = decode(
        xr=decoded_fields(req.observed.composite.resource),
        input_=parse_input(decoded(req.input) if req.HasField("input") else None),
        observed={key: decoded(res.resource) for key, res in req.observed.resources.items()},
        required=required,
        now=now,
        rng=rng,
        connection_keys=tuple(sorted(req.observed.composite.connection_details)),
        offline=offline,
    )
    # Whatever a worker reported, no password this call can see reaches status, conditions or events.
    outcome = redacted(st.unevaluated_conditions(view, compose(view)), known_secrets(view), view.kind)
    plan = memo_plan(req, outcome) if memo else None
    rsp, body = write(req, outcome, now, memo=plan is not None)
    return rsp, view, outcome, (body, plan) if body is not None and plan is not None else None


def write(
    req: fnv1.RunFunctionRequest, outcome: Outcome, now: datetime, memo: bool = False
) -> tuple[fnv1.RunFunctionResponse, bytes | None]:
    """The response, and (`memo`) its memo form: the same without `meta`, without the composed Secrets' values
    and without connection details (see function.response_cache)."""
    rsp = response.to(req, ttl=timedelta(seconds=outcome.ttl(now)))
    for result in outcome.results:
        rsp.results.append(
            fnv1.Result(
                severity=_SEVERITY[result.severity],
                message=result.message,
                reason=result.reason,
                target=TARGET,
            )
        )
    if outcome.fatal:
        return rsp, _without_meta(rsp) if memo else None
    secret_values: list[tuple[str, dict[str, Any]]] = []
    for key, composed in outcome.resources.items():
        target = rsp.desired.resources[key]
        resource = composed.resource
        if resource.get("kind") == "Secret":
            secret_values.append((key, {k: v for k, v in resource.items() if k in SECRET_VALUES}))
            resource = {k: v for k, v in resource.items() if k not in SECRET_VALUES}
        encode(resource, target.resource)
        target.ready = _READY[composed.ready]
    composite = rsp.desired.composite
    if outcome.status:
        # Earlier pipeline steps may have written a status already: keep what this function does not say.
        field = composite.resource.fields.get("status")
        previous = plain(field) if field is not None else None
        merged = {**(previous if isinstance(previous, dict) else {}), **outcome.status}
        encode({"status": merged}, composite.resource, merge=True)
    if outcome.ready is not None:
        composite.ready = _READY[outcome.ready]
    for cond in outcome.conditions:
        rsp.conditions.append(
            fnv1.Condition(
                type=cond.type,
                status=_STATUS[cond.status],
                reason=cond.reason,
                message=cond.message,
                target=TARGET,
            )
        )
    for name, want in outcome.requirements.items():
        selector = fnv1.ResourceSelector(api_version=want.api_version, kind=want.kind)
        if want.match_name is not None:
            selector.match_name = want.match_name
        if want.match_labels is not None:
            # Set even when empty: an empty selector lists every object of the kind in the namespace.
            selector.match_labels.SetInParent()
            selector.match_labels.labels.update(want.match_labels)
        if want.namespace is not None:
            selector.namespace = want.namespace
        rsp.requirements.resources[name].CopyFrom(selector)
    body = _without_meta(rsp) if memo else None
    # The values last, so the memo form never had them.
    for key, values in secret_values:
        rsp.desired.resources[key].resource.update(values)
    for key, value in outcome.connection_details.items():
        composite.connection_details[key] = value.encode()
    return rsp, body


def _without_meta(rsp: fnv1.RunFunctionResponse) -> bytes:
    return without_meta(rsp.SerializeToString())


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction. `clock` and `rng` are injected for tests; production reads the UTC clock once per
    call and draws passwords from the OS CSPRNG. Responses are memoized (function.response_cache). `offline`: no
    API server validated the XRs, so their specs are checked against the XRDs' schemas and CEL rules here.
    `metrics`: where calls and worker runs are counted (function.metrics; a registry of its own by default)."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        cache: ResponseCache | None = None,
        offline: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rng = rng or secrets.SystemRandom()
        self.cache = cache if cache is not None else ResponseCache()
        self.offline = offline
        self.metrics = metrics if metrics is not None else Metrics()
        self.log = logging.get_logger()

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        started = time.perf_counter()
        log = self.log.bind(tag=req.meta.tag)
        try:
            now = self.clock()
            key = request_key(req)
            cached = self.cache.get(key, req, now)
            if cached is not None:
                rsp, summary = cached
                log.debug("composed (memoized)", phase=summary.phase, job=summary.job)
                if summary.claim is not None:
                    self.metrics.claims.seen(summary.claim)
                    self.metrics.backups.seen(summary.claim)
                    self.metrics.rotations.seen(summary.claim)
                kind = summary.claim[0] if summary.claim is not None else None
                self.metrics.call(kind, "memoized", time.perf_counter() - started)
                return rsp
            rsp, view, outcome, memo = run_memo(req, now, self.rng, self.offline)
            claim = (view.kind, view.namespace, view.claim_name) if view.kind and view.namespace else None
            if memo is not None:
                self.cache.put(key, memo[0], memo[1], outcome, claim)
        except Exception as exc:  # never let a bug become a gRPC error: Crossplane would retry blindly
            frames = traceback.extract_tb(exc.__traceback__)
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
            log.error("internal error", error=type(exc).__name__, where=where)
            rsp = response.to(req)
            rsp.results.append(
                fnv1.Result(
                    severity=fnv1.SEVERITY_FATAL,
                    message=f"function-dbops internal error ({type(exc).__name__} at {where}); please report it",
                    reason="InternalError",
                    target=TARGET,
                )
            )
            self.metrics.call(_request_kind(req), "error", time.perf_counter() - started)
            return rsp
        # A decision that changes what the XR says is news (INFO); the same answer again is not (DEBUG).
        changed = any(outcome.status.get(k) != view.status.get(k) for k in ("phase", "job", "message"))
        emit = log.info if changed or outcome.results else log.debug
        emit(
            "composed",
            kind=view.xr_kind,
            xr=view.name,
            phase=outcome.status.get("phase", ""),
            job=outcome.status.get("job", ""),
            resources=len(rsp.desired.resources),
            results=[r.reason for r in outcome.results],
        )
        report = outcome.report
        if report is not None:
            self.metrics.report(view.kind, report)
        if report is not None and (report.changes or not report.ok):
            # The audit trail: one line per worker run that changed something or failed, its statements as the
            # worker summarized them (secrets `***`, and scrubbed again of every secret this call can see).
            log.info(
                "audit",
                time=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                claim=f"{view.namespace}/{view.claim_name}",
                kind=view.kind,
                xr=view.name,
                **audit_fields(report),
            )
        if claim is not None:
            phase = outcome.status.get("phase")
            if isinstance(phase, str):
                self.metrics.claims.set(*claim, phase)
            self.metrics.backups.set(*claim, outcome.status)
            self.metrics.rotations.set(*claim, outcome.status)
        self.metrics.call(view.kind, "fatal" if outcome.fatal else "composed", time.perf_counter() - started)
        return rsp


def _request_kind(req: fnv1.RunFunctionRequest) -> str | None:
    """The claim kind of the request's XR, for the metrics of a call that failed before decoding it."""
    fields = req.observed.composite.resource.fields
    kind, api_version = fields.get("kind"), fields.get("apiVersion")
    known = (
        by_xr_kind(api_version.string_value, kind.string_value)
        if kind is not None and api_version is not None
        else None
    )
    return known.name if known is not None else None
