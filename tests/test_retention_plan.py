"""The retention planner (dbops_api.retention.plan): which of a schedule's backups are kept and why, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dbops_api.retention import Backup, parse_duration, plan, request_retention


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def daily(start: str, days: int, hour: int = 3) -> list[Backup]:
    first = at(start).replace(hour=hour)
    return [Backup(f"s-{i}", first + timedelta(days=i)) for i in range(days)]


def kept(policy: dict[str, Any], backups: list[Backup], now: str) -> list[str]:
    return sorted(d.name for d in plan(policy, backups, at(now)) if d.keep)


NOW = "2026-12-06T12:00:00Z"
TEN_DAYS = daily("2026-11-27T00:00:00Z", 10)  # s-0 (Nov 27) .. s-9 (Dec 6)


@pytest.mark.parametrize(
    ("policy", "backups", "expected"),
    [
        # No rule at all: everything stays.
        ({}, TEN_DAYS, [f"s-{i}" for i in range(10)]),
        ({"keepLast": 3}, TEN_DAYS, ["s-7", "s-8", "s-9"]),
        # keepLast 0 still keeps the newest.
        ({"keepLast": 0}, TEN_DAYS, ["s-9"]),
        # Overlapping rules are united: the last 2 and the days of the last 4.
        ({"keepLast": 2, "keepDaily": 4}, TEN_DAYS, ["s-6", "s-7", "s-8", "s-9"]),
        # Weeks are ISO weeks: Nov 27-29 (W48), Nov 30-Dec 6 (W49): 2 weeks -> newest of each.
        ({"keepWeekly": 2}, TEN_DAYS, ["s-2", "s-9"]),
        ({"keepMonthly": 2}, TEN_DAYS, ["s-3", "s-9"]),
        ({"keepYearly": 5}, TEN_DAYS, ["s-9"]),
        # maxAge deletes even what a rule selects; the newest survives anything.
        ({"keepLast": 10, "maxAgeSeconds": 3 * 86400}, TEN_DAYS, ["s-7", "s-8", "s-9"]),
        ({"maxAgeSeconds": 3600}, TEN_DAYS, ["s-9"]),
        # minAge wins over maxAge and the keep rules.
        ({"keepLast": 1, "minAgeSeconds": 2 * 86400 + 1}, TEN_DAYS, ["s-8", "s-9"]),
        ({"maxAgeSeconds": 60, "minAgeSeconds": 10 * 86400}, TEN_DAYS, [f"s-{i}" for i in range(10)]),
        ({"keepLast": 3}, [], []),
        ({"keepLast": 0}, TEN_DAYS[:1], ["s-0"]),
    ],
)
def test_plan_table(policy: dict[str, Any], backups: list[Backup], expected: list[str]) -> None:
    assert kept(policy, backups, NOW) == expected


def test_several_backups_a_day_keep_the_newest_of_each_day() -> None:
    backups = [
        Backup(f"b-{d}-{h}", at(f"2026-12-0{d}T{h:02d}:00:00Z")) for d in (1, 2, 3) for h in (1, 9, 17)
    ]
    decisions = plan({"keepDaily": 2}, backups, at(NOW))
    assert [d.name for d in decisions] == [b.name for b in sorted(backups, key=lambda b: b.published)][::-1]
    assert sorted(d.name for d in decisions if d.keep) == ["b-2-17", "b-3-17"]
    why = {d.name: d.reasons for d in decisions}
    assert why["b-3-17"] == ("the newest backup (never deleted)",)
    assert why["b-2-17"] == ("daily 2026-12-02",)
    assert why["b-1-17"] == ("selected by no keep rule",)


def test_days_are_counted_in_the_schedules_time_zone() -> None:
    # 23:30 UTC on Dec 1 and 00:30 UTC on Dec 2 are the same day in New York (18:30, 19:30) and two in UTC;
    # in Tokyo (08:30, 09:30 on Dec 2) the same day again.
    backups = [
        Backup("a", at("2026-12-01T23:30:00Z")),
        Backup("b", at("2026-12-02T00:30:00Z")),
        Backup("c", at("2026-12-03T12:00:00Z")),
    ]
    utc = {"keepDaily": 3, "timeZone": "UTC"}
    assert kept(utc, backups, NOW) == ["a", "b", "c"]
    assert kept({**utc, "timeZone": "America/New_York"}, backups, NOW) == ["b", "c"]
    assert kept({**utc, "timeZone": "Asia/Tokyo"}, backups, NOW) == ["b", "c"]


def test_daylight_saving_time_changes() -> None:
    # Europe/Berlin leaves DST on 2026-10-25 at 03:00 CEST -> 02:00 CET: 02:30 happens twice (00:30 and 01:30
    # UTC). Hourly buckets keep them apart (two hours); daily buckets see one day of 25 hours.
    backups = [
        Backup("first-0230", at("2026-10-25T00:30:00Z")),
        Backup("second-0230", at("2026-10-25T01:30:00Z")),
        Backup("day-before", at("2026-10-24T21:00:00Z")),  # 23:00 CEST on Oct 24
        Backup("late", at("2026-10-25T22:30:00Z")),  # 23:30 CET, still Oct 25
    ]
    zone = {"timeZone": "Europe/Berlin"}
    now = "2026-10-26T00:00:00Z"
    assert kept({**zone, "keepHourly": 3}, backups, now) == ["first-0230", "late", "second-0230"]
    assert kept({**zone, "keepDaily": 2}, backups, now) == ["day-before", "late"]
    # In spring (2026-03-29, 02:00 CET -> 03:00 CEST) the day has 23 hours; 01:59 and 03:01 are one day apart
    # by neither rule.
    spring = [Backup("x", at("2026-03-29T00:59:00Z")), Backup("y", at("2026-03-29T01:01:00Z"))]
    assert kept({**zone, "keepDaily": 1, "keepLast": 0}, spring, "2026-03-30T00:00:00Z") == ["y"]
    assert kept({**zone, "keepHourly": 2}, spring, "2026-03-30T00:00:00Z") == ["x", "y"]


def test_ties_are_ordered_by_name_and_the_plan_is_newest_first() -> None:
    same = at("2026-12-01T00:00:00Z")
    decisions = plan({"keepLast": 1}, [Backup("a", same), Backup("b", same)], at(NOW))
    assert [(d.name, d.keep) for d in decisions] == [("b", True), ("a", False)]
    assert decisions[1].as_dict() == {
        "name": "a",
        "published": "2026-12-01T00:00:00Z",
        "why": "selected by no keep rule",
    }


@pytest.mark.parametrize(
    ("text", "seconds"), [("720h", 720 * 3600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("0s", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["30d", "1w", "", "h", "-1h", "1 h", "10"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_request_retention_from_the_claims() -> None:
    claim = {"keepLast": 3, "keepDaily": 7, "maxAge": "720h", "minAge": "0.5s", "dryRun": True}
    assert request_retention(claim, "Europe/Berlin") == {
        "keepLast": 3,
        "keepDaily": 7,
        "maxAgeSeconds": 720 * 3600,
        "minAgeSeconds": 1,
        "timeZone": "Europe/Berlin",
        "dryRun": True,
    }
    assert request_retention({}, "UTC") == {"timeZone": "UTC", "dryRun": False}
    assert plan({}, [], datetime.now(UTC)) == []
