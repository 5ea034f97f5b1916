"""DatabaseUser password rotation: which step the rotation is at, worked out on every call from the spec, the
clock and two Secrets (docs/function.md, "Password rotation"). The function keeps no memory: the step lives in
the credentials Secret's annotations (generation, switch time, trigger) and in the Secret `<secretName>-rotation`
that holds the next generation's password until the old credential is retired.

    Stable / OldRetired     no -rotation Secret; the credentials Secret holds generation G
      -- due (maxAge since the switch, or trigger changed) --> compose the -rotation Secret (generation G+1)
    NewCredentialCreated    -rotation generation N > G: Job {generation N, retireBefore G} with its password;
                            once that Job completed (it proved a login), the credentials Secret switches to N
    SecretSwitched          -rotation generation N == G: Job {generation N, retireBefore <old>}; after the grace
                            period Job {generation N, retireBefore N}; once that completed, -rotation is deleted
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dbops_api import rotation as api
from function.jobs.job_state import parse_time
from function.objects import text
from function.secrets import credentials as creds
from function.view import View

SECRET_KEY = "credentials-rotation"  # noqa: S105 (the desired-resource key, not a secret)
REQUIREMENT = (
    "rotation-secret"  # the required resource: what has the -rotation Secret's name before it is composed
)
GENERATION_ANNOTATION = "dbops.dbprovision.io/rotation-generation"
ROTATED_AT_ANNOTATION = "dbops.dbprovision.io/rotated-at"
TRIGGER_ANNOTATION = "dbops.dbprovision.io/rotation-trigger"
RETIRE_BEFORE_ANNOTATION = "dbops.dbprovision.io/rotation-retire-before"
PHASE_NUMBER = {phase: i for i, phase in enumerate(api.PHASES)}


@dataclass(frozen=True)
class Step:
    phase: str  # Stable, NewCredentialCreated, SecretSwitched, OldRetired
    generation: int  # the generation the credentials Secret holds (G)
    request: dict[str, Any]  # the worker request's spec.rotation
    staging: dict[str, Any] | None  # the observed -rotation Secret
    start: bool = False  # a rotation is due: compose the -rotation Secret now
    retiring: bool = False  # SecretSwitched past its grace period: the Job retires the old credential
    rotated_at: datetime | None = None
    grace_ends: datetime | None = None
    next_rotation: datetime | None = None

    @property
    def uses_staging_password(self) -> bool:
        return self.phase == "NewCredentialCreated"

    @property
    def new_generation(self) -> int:
        return int(self.request["generation"])


def enabled(spec: dict[str, Any]) -> bool:
    return bool((spec.get("passwordRotation") or {}).get("enabled"))


def staging_name(secret_name: str) -> str:
    return f"{secret_name}-rotation"[:253]


def _int(value: str) -> int:
    return int(value) if value.isdigit() and len(value) < 7 else 0


def _max_age(spec: dict[str, Any]) -> timedelta | None:
    value = str((spec.get("passwordRotation") or {}).get("maxAge") or "")
    if not value:
        return None
    amount = int(value[:-1])
    return timedelta(days=amount) if value.endswith("d") else timedelta(hours=amount)


def grace(spec: dict[str, Any], engine: str) -> timedelta:
    rotation = spec.get("passwordRotation") or {}
    days = (rotation.get("oldUserPolicy") or {}).get("gracePeriodDays", 7)
    mysql_days = (rotation.get("mysql") or {}).get("discardOldPasswordAfterDays")
    if engine != "postgres" and mysql_days is not None:
        days = mysql_days
    return timedelta(days=int(days))


def step(view: View, spec: dict[str, Any], engine: str) -> Step:
    rotation = spec.get("passwordRotation") or {}
    strategy = rotation.get("strategy") or api.default_strategy(engine)
    action = (rotation.get("oldUserPolicy") or {}).get("action", "delete")
    base = {"strategy": strategy, "oldUserAction": "disable" if action == "disable" else "delete"}
    current = creds.observed_secret(view)
    generation = _int(text(current, "metadata", "annotations", GENERATION_ANNOTATION))
    rotated_at = parse_time(text(current, "metadata", "annotations", ROTATED_AT_ANNOTATION)) or parse_time(
        text(current, "metadata", "creationTimestamp")
    )
    staging = view.observed.get(SECRET_KEY)
    staging = staging if text(staging, "kind") == "Secret" else None
    max_age = _max_age(spec)
    next_rotation = rotated_at + max_age if rotated_at is not None and max_age is not None else None
    if staging is None:
        phase = "Stable" if generation == 0 else "OldRetired"
        trigger = str(rotation.get("trigger") or "")
        recorded = text(current, "metadata", "annotations", TRIGGER_ANNOTATION)
        due = (
            current is not None
            and creds.secret_value(current, "password") is not None
            and (trigger not in ("", recorded) or (next_rotation is not None and view.now >= next_rotation))
        )
        request = {**base, "generation": generation, "retireBefore": generation}
        return Step(
            phase, generation, request, None, start=due, rotated_at=rotated_at, next_rotation=next_rotation
        )
    pending = _int(text(staging, "metadata", "annotations", GENERATION_ANNOTATION))
    old = _int(text(staging, "metadata", "annotations", RETIRE_BEFORE_ANNOTATION))
    if pending > generation:
        request = {**base, "generation": pending, "retireBefore": min(old, generation)}
        return Step("NewCredentialCreated", generation, request, staging, rotated_at=rotated_at)
    ends = (rotated_at or view.now) + grace(spec, engine)
    retiring = view.now >= ends
    request = {
        **base,
        "generation": generation,
        "retireBefore": generation if retiring else min(old, generation),
    }
    return Step(
        "SecretSwitched",
        generation,
        request,
        staging,
        retiring=retiring,
        rotated_at=rotated_at,
        grace_ends=ends,
        next_rotation=next_rotation,
    )


def username(spec: dict[str, Any], engine: str, generation: int) -> str:
    """The login name the credentials Secret gives for a generation."""
    if engine == "postgres":
        return api.login_name(spec["username"], generation)
    return str(spec["username"])


def staging_secret(
    view: View, name: str, password: str, generation: int, retire_before: int, *, template: dict[str, Any]
) -> dict[str, Any]:
    """The -rotation Secret: the next generation's password, before any login proved it."""
    out = creds.secret(view, name, {"password": password}, {"labels": template.get("labels") or {}}, "0")
    out["metadata"]["annotations"] = {
        GENERATION_ANNOTATION: str(generation),
        RETIRE_BEFORE_ANNOTATION: str(retire_before),
    }
    return out


def annotate(secret: dict[str, Any], generation: int, rotated_at: datetime | None, trigger: str) -> None:
    """The rotation's memory on the credentials Secret."""
    notes = secret["metadata"]["annotations"]
    notes[GENERATION_ANNOTATION] = str(generation)
    if rotated_at is not None:
        notes[ROTATED_AT_ANNOTATION] = rotated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if trigger:
        notes[TRIGGER_ANNOTATION] = trigger


def status(found: Step, spec: dict[str, Any], engine: str, phase: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": phase or found.phase,
        "generation": found.generation,
        "username": username(spec, engine, found.generation),
    }
    if found.rotated_at is not None:
        out["rotatedAt"] = found.rotated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if found.grace_ends is not None:
        out["graceEndsAt"] = found.grace_ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    if found.next_rotation is not None:
        out["nextRotationAt"] = found.next_rotation.strftime("%Y-%m-%dT%H:%M:%SZ")
    trigger = (spec.get("passwordRotation") or {}).get("trigger")
    if trigger:
        out["trigger"] = str(trigger)
    return out
