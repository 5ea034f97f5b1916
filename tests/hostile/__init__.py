"""The hostile-input corpus: bad claim specs (one YAML file per kind) and the world they may reference.

A case is data: its claim `spec`, the `field` the function's answer must name, and, when the same mistake can
reach the worker, the worker request and the field the worker's InvalidRequest must name. `tests/test_hostile_input.py`
runs every case through the served function and the installed worker; `docs/security.md` quotes the corpus size,
which a test recomputes from these files.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
FILES = (
    "database_instance.yaml",
    "database.yaml",
    "database_user.yaml",
    "database_role.yaml",
    "database_grant.yaml",
    "database_backup.yaml",
    "database_restore.yaml",
)
CATEGORIES = (
    "injection",
    "quotes",
    "reserved",
    "overlong",
    "unicode",
    "wrong-type",
    "unknown-engine",
    "other-engine",
    "contradictory",
    "dangling",
    "takeover",
    "system-object",
    "server-wide",
    "impossible-value",
)
ACTIONS = {
    "DatabaseInstance": "check",
    "Database": "apply",
    "DatabaseUser": "apply",
    "DatabaseRole": "apply",
    "DatabaseGrant": "apply",
    "DatabaseBackup": "backup",
    "DatabaseRestore": "restore",
}


@dataclass(frozen=True)
class WorkerCase:
    """The request the worker would get for the same mistake, and the field its refusal must name."""

    kind: str
    engine: Any  # a string, or whatever hostile value the case puts there
    server: str  # "postgres" | "mariadb": the private server the connection block points at
    action: str
    spec: dict[str, Any]
    connection: dict[str, Any]
    field: str


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    category: str
    base: str
    spec: dict[str, Any]
    field: str
    says: str | None = None
    worker: WorkerCase | None = field(default=None)

    def __str__(self) -> str:
        return self.id


def _expand(value: Any) -> Any:
    """`{$repeat: [text, n]}` -> text * n (keeps overlong values readable in the files)."""
    if isinstance(value, dict):
        if set(value) == {"$repeat"}:
            text, times = value["$repeat"]
            return str(text) * int(times)
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _load(name: str) -> Any:
    with open(HERE / name, encoding="utf-8") as handle:
        return _expand(yaml.safe_load(handle))


@cache
def world() -> dict[str, Any]:
    return dict(_load("world.yaml"))


@cache
def cases() -> tuple[Case, ...]:
    bases = world()["bases"]
    out: list[Case] = []
    for name in FILES:
        doc = _load(name)
        kind = doc["kind"]
        for raw in doc["cases"]:
            base = bases[raw["base"]]
            worker = None
            if "worker" in raw:
                w = raw["worker"]
                worker = WorkerCase(
                    kind=kind,
                    engine=w.get("engine", base["engine"]),
                    server=base["server"],
                    action=w.get("action", ACTIONS[kind]),
                    spec=w["spec"],
                    connection=w.get("connection", {}),
                    field=w["field"],
                )
            out.append(
                Case(
                    id=raw["id"],
                    kind=kind,
                    category=raw["category"],
                    base=raw["base"],
                    spec=raw["spec"],
                    field=raw["field"],
                    says=raw.get("says"),
                    worker=worker,
                )
            )
    return tuple(out)


def sizes() -> dict[str, int]:
    """Cases per kind, plus `total` and `worker` (cases with a worker request): what docs/security.md quotes."""
    counts = Counter(c.kind for c in cases())
    return {**counts, "total": len(cases()), "worker": sum(c.worker is not None for c in cases())}


def summary_markdown() -> str:
    """The corpus in numbers, as docs/security.md shows it (a test keeps the two equal)."""
    lines = ["| kind | hostile specs | also sent to the worker |", "| --- | ---: | ---: |"]
    for kind in ACTIONS:
        of_kind = [c for c in cases() if c.kind == kind]
        lines.append(f"| {kind} | {len(of_kind)} | {sum(c.worker is not None for c in of_kind)} |")
    sized = sizes()
    lines.append(f"| **total** | **{sized['total']}** | **{sized['worker']}** |")
    by_category = Counter(c.category for c in cases())
    lines += ["", "By category: " + ", ".join(f"{cat} {by_category[cat]}" for cat in CATEGORIES) + "."]
    return "\n".join(lines)


def baseline(kind: str, base: str) -> dict[str, Any]:
    """A valid claim spec of `kind` on the base's instance: what a case's XR looked like before."""
    return copy.deepcopy(world()["baselines"][kind][base])
