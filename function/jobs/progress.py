"""One worker Job per desired state: which Job to compose, when to retry or resync, and the status it yields.

The function keeps no memory of its own. Everything it needs is on what it observes: each Job's annotations say
which desired state (`state-hash`), resync epoch and attempt it carries; the XR's status says what converged last.

    no Job for the state       -> compose one (attempt 1)
    Job running                -> keep it                                    Provisioning (Ready on a resync)
    Job complete               -> keep it; in a later epoch compose a resync  Ready / Dropped
    Job failed, exit 2         -> keep it; next epoch (or a spec change) retries            Failed
    Job failed, transient      -> keep it until back-off has passed, then attempt + 1       Failed
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from function.jobs import schedule
from function.jobs.job import (
    ATTEMPT_ANNOTATION,
    EPOCH_ANNOTATION,
    JOB_PREFIX,
    STATE_HASH_ANNOTATION,
    WorkerCall,
    job,
    job_digest,
    job_name,
    job_spec,
    state_hash,
)
from function.jobs.job_state import JobState, job_state
from function.labels import XR_LABEL, label_value
from function.objects import mapping, text
from function.outcome import Composed, Requirement
from function.view import View

PODS_REQUIREMENT = "pods"
SETTLED_PHASE = {
    "apply": "Ready",
    "check": "Ready",
    "drop": "Dropped",
    "plan": "Ready",
    "backup": "Ready",
    "restore": "Ready",
    "rotate": "Ready",
}


@dataclass
class Progress:
    phase: str
    reason: str
    message: str
    job_key: str
    job_name: str
    resources: dict[str, Composed]
    state: str
    reported: JobState | None  # the finished or running Job whose outcome the status reports
    attempts: int
    pods: Requirement | None  # None: the Input's status.readPods is off
    fresh: bool  # the reported Job converged the current state just now: its result is current
    ttl_seconds: float = 0.0  # come back after this long, unless ttl_at is set
    ttl_at: datetime | None = None  # come back at this time (the next resync epoch or retry)
    # This decision holds until then (None: until the inputs change); then time alone changes it.
    valid_until: datetime | None = None
    cacheable: bool = True
    # Which server the Job talks to: the request's engine and host:port (metrics and the audit trail).
    engine: str = ""
    server: str = ""
    action: str = ""  # the worker action of the call (`plan`: driftPolicy detect)

    @property
    def settled(self) -> bool:
        return self.phase in ("Ready", "Dropped")


def observed_jobs(view: View) -> dict[str, dict[str, Any]]:
    return {
        key: res
        for key, res in view.observed.items()
        if key.startswith(JOB_PREFIX) and text(res, "kind") == "Job" and text(res, "metadata", "name")
    }


def _annotation_int(res: dict[str, Any], key: str) -> int:
    value = text(res, "metadata", "annotations", key)
    return int(value) if value.isdigit() and len(value) < 12 else 0


def resync_interval(view: View, override: int | None = None) -> tuple[bool, int]:
    """(enabled, seconds). A DatabaseInstance's enabled health check sets its own interval; the Input's
    `resync.enabled: false` is the platform-wide switch that turns every periodic re-run off, health checks
    included (maintenance windows, tests)."""
    resync = view.input["resync"]
    if not resync["enabled"]:
        return False, int(override or resync["intervalSeconds"])
    if override is not None:
        return True, override
    return True, int(resync["intervalSeconds"])


def progress(
    view: View, call: WorkerCall, interval_override: int | None = None, *, resync: bool = True
) -> Progress:
    """`resync: False`: a run that happens once (a backup, a restore): a finished Job is never re-run."""
    prog = _progress(view, call, interval_override, resync)
    prog.action = call.action
    prog.engine = str(call.request.get("engine", ""))
    conn = call.request.get("connection")
    if isinstance(conn, dict):
        prog.server = f"{conn.get('host', '')}:{conn.get('port', '')}"
    if (
        prog.reported is not None
        and prog.reported.phase == "complete"
        and prog.reported.name == prog.job_name
    ):
        return prog
    kept = last_failed_job(view, exclude=prog.job_key)
    if kept is not None:
        key, res = kept
        # Crossplane deletes a Job that leaves the desired set, and its Pod with it: the failed attempt's logs
        # (`kubectl logs job/<name>`) would go with it. Keep the latest failed Job until a Job succeeds.
        prog.resources[key] = Composed(_sanitized(res), ready=True)
        prog.message += f"; the last failed Job's logs: kubectl logs -n {view.jobs_namespace} job/{text(res, 'metadata', 'name')}"
    return prog


def last_failed_job(view: View, exclude: str) -> tuple[str, dict[str, Any]] | None:
    """The most recently finished failed worker Job other than `exclude`, if any."""
    failed = []
    for key, res in observed_jobs(view).items():
        if key == exclude:
            continue
        st = job_state(res, [])
        if st.phase == "failed":
            when = st.finished_at.isoformat() if st.finished_at else ""
            failed.append((when, key, res))
    if not failed:
        return None
    _, key, res = max(failed, key=lambda f: (f[0], f[1]))
    return key, res


def _progress(view: View, call: WorkerCall, interval_override: int | None, resync: bool = True) -> Progress:
    enabled, interval = resync_interval(view, interval_override)
    enabled = enabled and resync
    shift = schedule.offset(view.uid or view.name, interval)
    current_epoch = schedule.epoch(view.now, interval, shift) if enabled else 0
    state = state_hash(call)
    spec = job_spec(view, call)
    ttl_cfg = view.input["ttl"]

    def epoch_of(when: datetime | None, fallback: int) -> int:
        if when is None or not enabled:
            return fallback
        return schedule.epoch(when, interval, shift)

    next_epoch_at = (
        datetime.fromtimestamp(schedule.epoch_start(current_epoch + 1, interval, shift), UTC)
        if enabled
        else None
    )
    # Settled objects come back at the next epoch (always within an interval), or after an interval when
    # resync is off.
    settled: dict[str, Any] = {
        "ttl_at": next_epoch_at,
        "ttl_seconds": float(interval),
        "valid_until": next_epoch_at,
    }
    running: dict[str, Any] = {"ttl_seconds": float(ttl_cfg["runningSeconds"]), "valid_until": next_epoch_at}

    candidates = [
        (key, res)
        for key, res in observed_jobs(view).items()
        if text(res, "metadata", "annotations", STATE_HASH_ANNOTATION) == state
    ]
    candidates.sort(
        key=lambda kv: (_annotation_int(kv[1], EPOCH_ANNOTATION), _annotation_int(kv[1], ATTEMPT_ANNOTATION))
    )
    pods = view.required.get(PODS_REQUIREMENT) or []
    settled_phase = SETTLED_PHASE[call.action]
    was_settled = view.status.get("lastAppliedHash") == state and view.status.get("phase") == settled_phase

    def compose(attempt: int, reported: JobState | None) -> Progress:
        digest = job_digest(state, spec, current_epoch, attempt)
        name = job_name(view.name, digest)
        key = JOB_PREFIX + digest
        resources = {
            key: Composed(
                job(view, name, spec, call, state=state, epoch=current_epoch, attempt=attempt), ready=False
            )
        }
        if was_settled or (reported is not None and reported.phase == "complete"):
            phase, reason = settled_phase, "Resync"
            message = f"converged; Job {name} re-checks the server (resync)"
        elif attempt > 1:
            phase, reason = "Provisioning", "Retrying"
            message = f"attempt {attempt}: Job {name} started"
        else:
            phase, reason = "Provisioning", "JobCreated"
            message = f"Job {name} started"
        return Progress(
            phase=phase,
            reason=reason,
            message=message,
            job_key=key,
            job_name=name,
            resources=resources,
            state=state,
            reported=reported,
            attempts=attempt - 1,
            pods=pods_requirement(view),
            # A resync after a success: that success is still news (its facts and time) for this one call.
            fresh=reported is not None and reported.phase == "complete",
            **running,
        )

    if not candidates:
        return compose(1, None)
    key, observed = candidates[-1]
    attempt = max(_annotation_int(observed, ATTEMPT_ANNOTATION), 1)
    job_epoch = _annotation_int(observed, EPOCH_ANNOTATION)
    st = job_state(observed, pods)
    if st.phase == "failed" and st.result is None:
        # No worker result (Pods not read, or the worker died first): say where its own words are.
        st = replace(
            st, message=f"{st.message}; the worker's log: kubectl logs -n {view.jobs_namespace} job/{st.name}"
        )
    fresh = job(view, st.name, spec, call, state=state, epoch=job_epoch, attempt=attempt)
    same = job_name(view.name, job_digest(state, spec, job_epoch, attempt)) == st.name
    # Re-emit exactly what we composed when we can; an older template (e.g. another worker image) is carried over.
    kept = {key: Composed(fresh if same else _sanitized(observed), ready=st.phase == "complete")}
    common: dict[str, Any] = {
        "job_key": key,
        "job_name": st.name,
        "resources": kept,
        "state": state,
        "reported": st,
        "pods": pods_requirement(view),
    }
    if st.phase == "running":
        if was_settled:
            return Progress(
                phase=settled_phase,
                reason="Resync",
                message=f"converged; Job {st.name} re-checks the server (resync)",
                attempts=attempt - 1,
                fresh=False,
                **running,
                **common,
            )
        return Progress(
            phase="Provisioning",
            reason="JobRunning",
            message=f"Job {st.name} is running" + (f" (attempt {attempt})" if attempt > 1 else ""),
            attempts=attempt - 1,
            fresh=False,
            **running,
            **common,
        )
    if st.phase == "complete":
        if epoch_of(st.finished_at, job_epoch) < current_epoch:
            return compose(1, st)
        return Progress(
            phase=settled_phase,
            reason="Dropped" if call.action == "drop" else "Converged",
            message=_converged_message(call.action, st),
            attempts=0,
            fresh=True,
            **settled,
            **common,
        )
    if st.permanent:
        if epoch_of(st.finished_at, job_epoch) < current_epoch:
            return compose(1, st)
        # Crossplane does not watch the Secrets this call read (they are required resources, not composed ones):
        # it calls the function again only at the TTL. Come back soon enough to notice a fixed admin Secret; a
        # changed Secret changes the state and starts a Job, an unchanged one returns this same answer.
        waiting = float(ttl_cfg["waitingSeconds"])
        recheck = view.now + timedelta(seconds=waiting)
        return Progress(
            phase="Failed",
            reason="PermanentFailure",
            message=(
                f"{st.message} (permanent: a change of the spec or of the Secrets it names is picked up within "
                f"{waiting:.0f} s" + ("; a fix in the server alone, at the next resync)" if resync else ")")
            ),
            attempts=attempt,
            fresh=False,
            ttl_seconds=waiting,
            ttl_at=min(recheck, next_epoch_at) if next_epoch_at else recheck,
            valid_until=next_epoch_at,
            **common,
        )
    retry = view.input["retry"]
    failed_at = st.finished_at or view.now
    retry_at = failed_at + schedule.backoff(attempt, retry["baseSeconds"], retry["maxSeconds"])
    if retry_at <= view.now:
        return compose(attempt + 1, st)
    wake = min(retry_at, next_epoch_at) if next_epoch_at else retry_at
    return Progress(
        phase="Failed",
        reason="TransientFailure",
        message=(
            f"{st.message} (transient: attempt {attempt + 1} at {retry_at.strftime('%Y-%m-%dT%H:%M:%SZ')})"
        ),
        attempts=attempt,
        fresh=False,
        ttl_at=wake,
        valid_until=wake,
        # Without a failure time the back-off counts from `now`, which moves with every call.
        cacheable=st.finished_at is not None,
        **common,
    )


def _converged_message(action: str, st: JobState) -> str:
    if action == "drop":
        return f"dropped by Job {st.name}"
    if action == "plan":
        return detect_message(st.name, st.result)
    changes = (st.result or {}).get("changes")
    if isinstance(changes, list) and changes:
        return f"converged by Job {st.name}: {len(changes)} change(s)"
    if st.result is None:
        return f"converged by Job {st.name}"
    return f"converged by Job {st.name}: no changes needed"


def pods_requirement(view: View) -> Requirement | None:
    """None unless the Input's status.readPods asks for Pods (Crossplane would cache every Pod in the cluster).
    The Pods of this XR's Jobs, by the label their template carries. Selecting by the XR rather than by the
    current Job's name keeps the requirement stable while the Job name is still being worked out (it depends on
    resources required in the same reconcile), so Crossplane needs one round of requirements less;
    `job_status` picks the current Job's Pods by their job-name label."""
    if not view.input["status"]["readPods"]:
        return None
    return Requirement(
        api_version="v1",
        kind="Pod",
        namespace=view.jobs_namespace,
        match_labels={XR_LABEL: label_value(view.name)},
    )


# Fields the API server owns; re-applying them would conflict or be refused.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
    "generateName",
)
_CONTROLLER_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)


def _sanitized(res: dict[str, Any]) -> dict[str, Any]:
    """An observed resource as desired state: what we wrote, without status and server-set fields."""
    out = {k: v for k, v in res.items() if k != "status"}
    meta = {k: v for k, v in mapping(res, "metadata").items() if k not in _SERVER_METADATA}
    out["metadata"] = meta
    if out.get("kind") == "Job" and isinstance(out.get("spec"), dict):
        spec = dict(out["spec"])
        spec.pop("selector", None)
        template = dict(mapping(spec, "template"))
        tmeta = dict(mapping(template, "metadata"))
        labels = {k: v for k, v in mapping(tmeta, "labels").items() if k not in _CONTROLLER_LABELS}
        tmeta["labels"] = labels
        template["metadata"] = tmeta
        spec["template"] = template
        out["spec"] = spec
    return out


def carried_over(view: View) -> dict[str, Composed]:
    """Every observed composed resource, unchanged, so nothing is deleted while the function cannot decide."""
    return {key: Composed(_sanitized(res), ready=None) for key, res in view.observed.items()}


def detect_message(job: str, result: dict[str, Any] | None) -> str:
    """The message of a driftPolicy detect run (the `plan` action): what it found, and that it wrote nothing."""
    head = f"driftPolicy detect: Job {job} planned and wrote nothing"
    if result is None:
        return f"{head}; its plan is in its log (kubectl logs job/{job}), or turn on status.readPods"
    changes = result.get("changes")
    count = drift_count(changes)
    if result.get("missing"):
        return (
            f"{head}: the object does not exist, and detect does not create it ({count} statement(s) would); "
            "set driftPolicy.mode to correct or ignore to create it"
        )
    if count:
        return f"{head}: the server differs from the spec, {count} statement(s) would correct it (status.driftPlan)"
    return f"{head}: the server matches the spec"


def drift_count(changes: Any) -> int:
    """How many statements a plan's `changes` stand for (the worker shortens a long list to `... and N more`)."""
    if not isinstance(changes, list):
        return 0
    count = len(changes)
    if changes and isinstance(changes[-1], str):
        m = re.fullmatch(r"\.\.\. and ([0-9]+) more", changes[-1])
        if m:
            count += int(m.group(1)) - 1
    return count
