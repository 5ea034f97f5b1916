"""What dbops granted, per DatabaseGrant claim, on a MySQL/MariaDB server: `_dbops`.`grants`, next to `owners`.

One row per (claim, grantee user name): the pairs the claim's grants named, as a JSON array of
[host, level, database, table or routine, column] (host '' for a MariaDB role). The worker reads every claim's row
for the grantee as one more part of the union it already sends (no extra query on a converged grant), revokes what
this claim's row names and the spec no longer does, and writes the row only when it changes. docs/worker.md
("Memory of what dbops granted") says why a table.

GRANT and REVOKE commit implicitly, so the memory cannot share their transaction. The order makes it safe instead:
the row grows (to remembered plus desired) before the first GRANT and shrinks (to exactly desired) after the last
REVOKE. A run that dies in between leaves the memory naming a superset of what was granted: the next run observes
those pairs and revokes what is still held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

from dbops_api.system import MYSQL_CATALOG
from worker.adapters import mysql_catalog as catalog
from worker.adapters.base import Step
from worker.adapters.mysql_sql import Sql, row

TABLE = f"`{MYSQL_CATALOG}`.`grants`"

Key = tuple[str, str, str, str, str]  # (host, level, database, table or routine, column)


@dataclass(frozen=True)
class Memory:
    table: bool  # the table exists
    mine: frozenset[Key] | None  # this claim's row; None: no row
    others: frozenset[Key]  # what other claims remember for this grantee

    @property
    def remembered(self) -> frozenset[Key]:
        return self.mine or frozenset()


NO_TABLE = Memory(False, None, frozenset())


def part(grantee: str) -> tuple[str, list[Any]]:
    """The union part reading every claim's row for the grantee."""
    return row("memory", ["claim", "targets"], f"FROM {TABLE} WHERE grantee = %s"), [grantee]


def parse(rows: list[tuple[Any, ...]], claim: str) -> Memory:
    mine: frozenset[Key] | None = None
    others: set[Key] = set()
    for r in rows:
        if r[0] != "memory":
            continue
        keys = frozenset(_key(item) for item in json.loads(r[2] or "[]"))
        if r[1] == claim:
            mine = keys
        else:
            others |= keys
    return Memory(True, mine, frozenset(others))


def _key(item: Any) -> Key:
    host, level, database, name, column = (list(item) + [""] * 5)[:5]
    return (str(host or ""), str(level), str(database or ""), str(name or ""), str(column or ""))


def encode(keys: frozenset[Key]) -> str:
    return json.dumps([list(k) for k in sorted(keys)], separators=(",", ":"))


def _step(sql: Sql, reason: str) -> Step:
    return _replace(sql.step(reason), bookkeeping=True)


def create_steps() -> list[Step]:
    """The memory's table, and the ownership catalog beside it (both no-ops when they exist): a handler reads the
    two in one union, which fails while either is missing, so they are created together."""
    why = "dbops' memory of what it granted (docs/worker.md) does not exist yet"
    return [
        *(_replace(s, bookkeeping=True) for s in catalog.create_steps()),
        _step(
            Sql().add(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "claim VARCHAR(320) NOT NULL, grantee VARCHAR(128) NOT NULL, targets LONGTEXT NOT NULL, "
                "PRIMARY KEY (claim, grantee)"
                ") ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ),
            why,
        ),
    ]


def steps(memory: Memory, claim: str, grantee: str, after: frozenset[Key]) -> tuple[list[Step], list[Step]]:
    """The memory writes before the GRANT/REVOKE statements and after them: before, the union of what is
    remembered and what is about to be granted; after, exactly `after` (a row that becomes empty is deleted)."""
    before: list[Step] = []
    last: list[Step] = []
    remembered = memory.remembered
    grow = after - remembered
    shrink = remembered - after
    if grow:
        if not memory.table:
            before += create_steps()
        reason = f"remember the {len(grow)} pair(s) about to be granted to {grantee} for claim {claim}"
        before.append(_upsert(claim, grantee, remembered | after, reason))
    if shrink:
        reason = f"forget the {len(shrink)} pair(s) no longer granted to {grantee} for claim {claim}"
        if after:
            last.append(_upsert(claim, grantee, after, reason))
        else:
            sql = (
                Sql()
                .add(f"DELETE FROM {TABLE} WHERE claim =")
                .value(claim)
                .add("AND grantee =")
                .value(grantee)
            )
            last.append(_step(sql, reason))
    return before, last


def _upsert(claim: str, grantee: str, keys: frozenset[Key], reason: str) -> Step:
    sql = Sql().add(f"INSERT INTO {TABLE} (claim, grantee, targets) VALUES (")
    sql.value(claim).add(",").value(grantee).add(",").value(encode(keys))
    return _step(sql.add(") ON DUPLICATE KEY UPDATE targets = VALUES(targets)"), reason)
