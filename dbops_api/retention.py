"""Retention of a DatabaseBackupSchedule's backups: the policy's shape, its durations, and the plan.

`plan` is pure: given the policy, the schedule's published backups (name and publication time) and the time now,
it says for each backup whether it is kept or deleted, and why. The worker (`worker.backup.retention`) lists the
store, keeps only what this schedule published, asks `plan`, and deletes (or, with `dryRun`, only reports).

Rules (docs/worker.md, "Retention"):

- `keepLast: N` keeps the N newest backups.
- `keepHourly`/`keepDaily`/`keepWeekly`/`keepMonthly`/`keepYearly: N` keep the newest backup of each of the N most
  recent hours/days/ISO weeks (Monday to Sunday)/months/years *that have a backup*, in the schedule's time zone.
- The rules are applied independently and their selections united (a backup one rule keeps also fills its slot of
  every other rule). Without any keep rule every backup is selected (only `maxAge` deletes).
- `maxAge`: a backup published longer ago than this is deleted even if a rule selects it.
- `minAge`: a backup published less long ago than this is kept whatever the rules say (it wins over `maxAge`).
- The newest backup is always kept, whatever the rules (`keepLast: 0` included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dbops_api.schema import Schema, boolean, integer, obj, string

# Go's time.ParseDuration, restricted to what a retention needs: hours, minutes, seconds (`720h`, `1h30m`, `90s`).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0}

# The keep rules: (claim field, plan label, bucket key of a local time).
BUCKETS: tuple[tuple[str, str, Any], ...] = (
    # The hour with its UTC offset: the hour repeated when DST ends is two hours, not one.
    ("keepHourly", "hourly", lambda t: t.strftime("%Y-%m-%dT%H") + t.strftime("%z")),
    ("keepDaily", "daily", lambda t: t.strftime("%Y-%m-%d")),
    ("keepWeekly", "weekly", lambda t: f"{t.isocalendar()[0]:04d}-W{t.isocalendar()[1]:02d}"),
    ("keepMonthly", "monthly", lambda t: t.strftime("%Y-%m")),
    ("keepYearly", "yearly", lambda t: t.strftime("%Y")),
)
KEEP_FIELDS = ("keepLast", *(b[0] for b in BUCKETS))


def parse_duration(value: str) -> timedelta:
    """A Go duration of hours, minutes and seconds (`720h`, `1h30m`); ValueError otherwise."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration like 720h or 1h30m (Go's: no `d`; 30 days is 720h)")
    return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in _PART.findall(value)))


def duration(description: str) -> Schema:
    return string(description, pattern=DURATION_PATTERN, maxLength=32)


def _count(description: str) -> Schema:
    return integer(description, minimum=0, maximum=10000)


# The claim's `spec.retention` (DatabaseBackupSchedule): the seed's RetentionPolicy plus `maxAge` and `dryRun`.
CLAIM_RETENTION: Schema = obj(
    "Which of this schedule's published backups to keep; the others are deleted from the store by the next run, "
    "after it published its own backup. Only backups this schedule published are considered, and the newest is "
    'never deleted. Rules are united; see docs/worker.md, "Retention".',
    {
        "keepLast": _count("Keep the N newest backups."),
        "keepHourly": _count("Keep the newest backup of each of the N most recent hours that have one."),
        "keepDaily": _count(
            "Keep the newest backup of each of the N most recent days that have one (days in `timezone`)."
        ),
        "keepWeekly": _count(
            "Keep the newest backup of each of the N most recent ISO weeks (Monday to Sunday)."
        ),
        "keepMonthly": _count("Keep the newest backup of each of the N most recent months that have one."),
        "keepYearly": _count("Keep the newest backup of each of the N most recent years that have one."),
        "maxAge": duration(
            "Delete backups published longer ago than this (a Go duration: `720h`, not `30d`), whatever the keep "
            "rules say (the newest backup excepted). dbops's addition to the seed's policy."
        ),
        "minAge": duration(
            "Never delete a backup published less long ago than this (a Go duration), whatever the other rules "
            "say; it wins over maxAge."
        ),
        "dryRun": boolean(
            "Delete nothing: the schedule's status.schedule.retention shows what a run would delete.",
            default=False,
        ),
    },
)

# The worker request's `spec.retention` (DatabaseBackup with perRun): durations in seconds, the time zone resolved.
REQUEST_RETENTION: Schema = obj(
    "Prune this schedule's earlier backups after publishing this one.",
    {
        **{name: _count(f"As the schedule's retention.{name}.") for name in KEEP_FIELDS},
        "maxAgeSeconds": integer("As retention.maxAge, in seconds.", minimum=1),
        "minAgeSeconds": integer("As retention.minAge, in seconds.", minimum=0),
        "timeZone": string(
            "IANA time zone the hour/day/week/month/year buckets are counted in (the schedule's).",
            pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
            maxLength=64,
            default="UTC",
        ),
        "dryRun": boolean("Delete nothing; report what would be deleted.", default=False),
    },
)


def request_retention(claim: Mapping[str, Any], timezone: str) -> dict[str, Any]:
    """The request's retention from the claim's (durations in whole seconds, rounded up)."""
    out: dict[str, Any] = {name: int(claim[name]) for name in KEEP_FIELDS if name in claim}
    for name in ("maxAge", "minAge"):
        if name in claim:
            seconds = parse_duration(str(claim[name])).total_seconds()
            out[name + "Seconds"] = max(int(-(-seconds // 1)), 1 if name == "maxAge" else 0)
    out["timeZone"] = timezone
    out["dryRun"] = bool(claim.get("dryRun", False))
    return out


@dataclass(frozen=True)
class Backup:
    """One published backup of the schedule: its name (directory) and when its manifest was written."""

    name: str
    published: datetime  # timezone-aware


@dataclass(frozen=True)
class Decision:
    name: str
    published: datetime
    keep: bool
    reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "published": _iso(self.published), "why": "; ".join(self.reasons)}


def _iso(when: datetime) -> str:
    return when.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(policy: Mapping[str, Any], backups: Iterable[Backup], now: datetime) -> list[Decision]:
    """Keep or delete each backup (newest first), with the reasons. `policy` is the request's retention."""
    ordered = sorted(backups, key=lambda b: (b.published, b.name), reverse=True)
    zone = ZoneInfo(str(policy.get("timeZone") or "UTC"))
    selected: dict[str, list[str]] = {b.name: [] for b in ordered}
    has_rule = False
    last = policy.get("keepLast")
    if last is not None:
        has_rule = True
        for b in ordered[: int(last)]:
            selected[b.name].append(f"one of the last {last}")
    for name, label, key in BUCKETS:
        count = policy.get(name)
        if count is None:
            continue
        has_rule = True
        seen: list[str] = []
        for b in ordered:
            if len(seen) >= int(count):
                break
            bucket = key(b.published.astimezone(zone))
            if bucket not in seen:
                seen.append(bucket)
                selected[b.name].append(f"{label} {bucket}")
    max_age = policy.get("maxAgeSeconds")
    min_age = policy.get("minAgeSeconds")
    out: list[Decision] = []
    for index, b in enumerate(ordered):
        age = now - b.published
        if index == 0:
            out.append(Decision(b.name, b.published, True, ("the newest backup (never deleted)",)))
        elif min_age is not None and age < timedelta(seconds=int(min_age)):
            out.append(Decision(b.name, b.published, True, (f"younger than minAge ({int(min_age)} s)",)))
        elif max_age is not None and age > timedelta(seconds=int(max_age)):
            out.append(Decision(b.name, b.published, False, (f"older than maxAge ({int(max_age)} s)",)))
        elif selected[b.name]:
            out.append(Decision(b.name, b.published, True, tuple(selected[b.name])))
        elif has_rule:
            out.append(Decision(b.name, b.published, False, ("selected by no keep rule",)))
        else:
            out.append(Decision(b.name, b.published, True, ("no keep rule: kept until maxAge",)))
    return out
