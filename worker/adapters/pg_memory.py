"""What dbops granted, per DatabaseGrant claim, on a PostgreSQL server: `_dbops.grants` in the admin database.
A Database claim's default privileges are kept in the same table (`ClaimMemory`, below).

One row per (claim, grantee): the objects the claim's grants named (concrete objects: `*` is stored as the
tables it matched), as a JSON array of [database, object type, schema, name, routine arguments]. The worker reads
it in the grantee query it already sends (no extra query on a converged grant), revokes what the row remembers and
the spec no longer names, and writes the row only when it changes. docs/worker.md ("Memory of what dbops
granted") says why a table and not status, comments or ACL grantors.

Until the table exists the grantee query fails with 42P01 and is read again without it (once, until the first
grant creates the table).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters.base import Step
from worker.adapters.pg_acl import DefaultRule, Target, Want
from worker.adapters.pg_sql import step as _step

SCHEMA = "_dbops"
TABLE = f"{SCHEMA}.grants"
WRITABLE_SQL = (
    f"has_table_privilege('{TABLE}', 'INSERT') AND has_table_privilege('{TABLE}', 'UPDATE') AND "
    f"has_table_privilege('{TABLE}', 'DELETE')"
)
# The grantee's rows of every claim: this claim's row is what to revoke, the others' say what not to touch.
READ_SQL = (
    f"json_build_array((SELECT coalesce(json_agg(json_build_array(claim, targets)), '[]') FROM {TABLE} "
    f"WHERE grantee = %(grantee)s), {WRITABLE_SQL})"
)
# Every row of one claim (one per grantee): a Database claim's default privileges.
CLAIM_READ_SQL = (
    f"json_build_array((SELECT coalesce(json_agg(json_build_array(grantee, targets)), '[]') FROM {TABLE} "
    f"WHERE claim = %(claim)s), {WRITABLE_SQL})"
)
# The databases this claim's row names, so the grantee query also says whether they exist.
DATABASES_SQL = (
    f"OR datname IN (SELECT t->>0 FROM {TABLE} g, jsonb_array_elements(g.targets) t "
    "WHERE g.grantee = %(grantee)s AND g.claim = %(claim)s)"
)
# Without the table: whether the schema exists (so the first write creates only what is missing; CREATE SCHEMA
# IF NOT EXISTS would still need CREATE on the admin database), and whether the admin may create what is missing
# (CREATE on the schema when it exists, else on the admin database). The oid form of has_schema_privilege is NULL
# for a missing schema.
MISSING_SQL = (
    f"json_build_array(to_regnamespace('{SCHEMA}') IS NOT NULL, "
    f"coalesce(has_schema_privilege(to_regnamespace('{SCHEMA}')::oid, 'CREATE'), "
    "has_database_privilege(current_database(), 'CREATE')))"
)


def step(sql: str, reason: str, params: dict[str, Any] | None = None) -> Step:
    return _replace(_step(sql, reason, params), bookkeeping=True)


Key = tuple[str, str, str, str, str]  # (database, object type, schema or '', name, routine arguments or '')


@dataclass(frozen=True)
class Memory:
    table: bool  # the table exists
    schema: bool  # the schema exists
    mine: frozenset[Key] | None  # this claim's row; None: no row
    others: frozenset[Key]  # what other claims remember for this grantee
    writable: bool = True  # the admin may create (or write) the table; if not, the grant runs without memory
    # Which other claim remembers each of `others` (the first by claim id, when several do).
    claims: Mapping[Key, str] = field(default_factory=dict, compare=False)

    @property
    def remembered(self) -> frozenset[Key]:
        return self.mine or frozenset()


NO_TABLE = Memory(False, False, None, frozenset())


def missing(raw: Any) -> Memory:
    """No table yet: the MISSING_SQL column."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    schema, can_create = data
    return Memory(False, bool(schema), None, frozenset(), bool(can_create))


def unreadable() -> Memory:
    """The table exists but the admin may not read it (another admin created it)."""
    return Memory(True, True, None, frozenset(), False)


def warning(memory: Memory, admin: str, database: str) -> str:
    """Why the grant ran without memory, and the fix (what the admin lacks depends on what exists already)."""
    if memory.table:
        fix = f"GRANT USAGE ON SCHEMA {SCHEMA} TO {admin}; GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {admin}"
    elif memory.schema:
        fix = f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {admin}"
    else:
        fix = (
            f"GRANT CREATE ON DATABASE {database} TO {admin}, or CREATE SCHEMA {SCHEMA} AUTHORIZATION {admin}"
        )
    return (
        f"dbops cannot keep its memory of what it granted (table {TABLE} in database {database}): the admin "
        f"{admin} may not create or write it, so privileges removed from the spec, or left by a deleted claim, "
        f"will not be revoked. Fix (as a superuser, in database {database}): {fix} "
        '(docs/worker.md, "Memory of what dbops granted")'
    )


def claim_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def parse(raw: Any, claim: str) -> Memory:
    """The READ_SQL column: every claim's row for the grantee, and whether the admin may write the table."""
    rows, writable = json.loads(raw) if isinstance(raw, str) else raw
    data = json.loads(rows) if isinstance(rows, str) else (rows or [])
    mine: frozenset[Key] | None = None
    others: dict[Key, str] = {}
    for owner, targets in sorted(data, key=lambda row: str(row[0])):
        keys = frozenset(
            _key(t) for t in (json.loads(targets) if isinstance(targets, str) else targets or [])
        )
        if owner == claim:
            mine = keys
        else:
            for k in keys:
                others.setdefault(k, str(owner))
    return Memory(True, True, mine, frozenset(others), bool(writable), others)


def _key(item: Any) -> Key:
    database, object_type, schema, name, args = (list(item) + [""] * 5)[:5]
    return (str(database), str(object_type), str(schema or ""), str(name), str(args or ""))


def key(database: str, target: Target) -> Key:
    """The memory key of an object found in `database` (a Target names the admin database as None)."""
    return (database, target.object_type, target.schema or "", target.name, target.args or "")


def want(k: Key) -> Want:
    """What to observe to find a remembered object again (a routine: every overload; `key` picks the one)."""
    database, object_type, schema, name, _ = k
    if object_type == privs.DATABASE:
        return Want(privs.DATABASE, None, database)
    if object_type == privs.SCHEMA:
        return Want(privs.SCHEMA, name, None)
    return Want(object_type, schema, name)


def encode(keys: Iterable[Key]) -> str:
    return json.dumps([list(k) for k in sorted(keys)], separators=(",", ":"))


def steps(memory: Memory, claim: str, grantee: str, after: frozenset[Key]) -> tuple[list[Step], list[Step]]:
    """The memory writes that go before the GRANT/REVOKE statements and after them.

    Before: the union of what is remembered and what is about to be granted, so a run that dies half-way still
    remembers everything it may have granted. After: exactly `after`, once the revokes went through (a row that
    becomes empty is deleted)."""
    before: list[Step] = []
    last: list[Step] = []
    if not memory.writable:
        return before, last
    remembered = memory.remembered
    grow = after - remembered
    shrink = remembered - after
    if not grow and not shrink:
        return before, last
    if grow:
        if not memory.table:
            before += create_steps(memory.schema)
        before.append(_upsert(claim, grantee, remembered | after, len(grow)))
    if shrink:
        last.append(
            _upsert(claim, grantee, after, 0, len(shrink)) if after else _delete(claim, grantee, len(shrink))
        )
    return before, last


def create_steps(schema_exists: bool) -> list[Step]:
    why = "dbops' memory of what it granted (docs/worker.md) does not exist yet in the admin database"
    out = [] if schema_exists else [step(f"CREATE SCHEMA {SCHEMA}", why)]
    out.append(
        step(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (claim text NOT NULL, grantee text NOT NULL, "
            "targets jsonb NOT NULL, PRIMARY KEY (claim, grantee))",
            why,
        )
    )
    out.append(step(f"REVOKE ALL ON {TABLE} FROM PUBLIC", why))
    return out


def _upsert(claim: str, grantee: str, keys: frozenset[Key], added: int, removed: int = 0) -> Step:
    if added:
        reason = f"remember the {added} object(s) about to be granted to {grantee} for claim {claim}"
    else:
        reason = f"forget the {removed} object(s) no longer granted to {grantee} for claim {claim}"
    return step(
        f"INSERT INTO {TABLE} (claim, grantee, targets) VALUES (%(claim)s, %(grantee)s, %(targets)s::jsonb) "
        "ON CONFLICT (claim, grantee) DO UPDATE SET targets = EXCLUDED.targets",
        reason,
        {"claim": claim, "grantee": grantee, "targets": encode(keys)},
    )


def _delete(claim: str, grantee: str, removed: int) -> Step:
    return step(
        f"DELETE FROM {TABLE} WHERE claim = %(claim)s AND grantee = %(grantee)s",
        f"forget the {removed} object(s) no longer granted to {grantee} for claim {claim}",
        {"claim": claim, "grantee": grantee},
    )


# --- a Database claim's default privileges ---------------------------------------------------------------------

# The claim id of a Database claim's rows (a DatabaseGrant of the same name keeps its own), one row per grantee of
# its postgres.defaultPrivileges, each key (database, 'default <objectType>', schema or '', forRole, '').
DATABASE_SUFFIX = " Database"
DEFAULT_PREFIX = "default "


@dataclass(frozen=True)
class ClaimMemory:
    """Every row of one claim: grantee -> the keys it remembers."""

    table: bool
    schema: bool
    rows: dict[str, frozenset[Key]]
    writable: bool = True

    @property
    def flags(self) -> Memory:
        """The table's state, for `warning`."""
        return Memory(self.table, self.schema, None, frozenset(), self.writable)


def parse_claim(raw: Any) -> ClaimMemory:
    """The CLAIM_READ_SQL column."""
    rows, writable = json.loads(raw) if isinstance(raw, str) else raw
    data = json.loads(rows) if isinstance(rows, str) else (rows or [])
    out: dict[str, frozenset[Key]] = {}
    for grantee, targets in data:
        items = json.loads(targets) if isinstance(targets, str) else targets or []
        out[str(grantee)] = frozenset(_key(t) for t in items)
    return ClaimMemory(True, True, out, bool(writable))


def claim_missing(raw: Any) -> ClaimMemory:
    """No table yet: the MISSING_SQL column."""
    flags = missing(raw)
    return ClaimMemory(False, flags.schema, {}, flags.writable)


def claim_unreadable() -> ClaimMemory:
    return ClaimMemory(True, True, {}, False)


def default_key(database: str, rule: DefaultRule) -> Key:
    return (database, DEFAULT_PREFIX + rule.object_type, rule.schema or "", rule.for_role, "")


def others_default_rules(memory: Memory, grantee: str) -> dict[tuple[str, DefaultRule], str]:
    """The default-privilege rules for `grantee` that other claims (Database claims) remember setting, as
    (database, rule) -> the claim id that remembers it: a DatabaseRole's exact set leaves them to that claim."""
    out: dict[tuple[str, DefaultRule], str] = {}
    for k in sorted(memory.others):
        database, object_type, schema, for_role, _ = k
        if object_type.startswith(DEFAULT_PREFIX):
            rule = DefaultRule(for_role, schema or None, object_type[len(DEFAULT_PREFIX) :], grantee)
            out[(database, rule)] = memory.claims.get(k, "")
    return out


def default_rules(memory: ClaimMemory, database: str) -> list[DefaultRule]:
    """The default-privilege rules the claim remembers setting in `database`, in a stable order."""
    out: list[DefaultRule] = []
    for grantee in sorted(memory.rows):
        for db, object_type, schema, for_role, _ in sorted(memory.rows[grantee]):
            if db == database and object_type.startswith(DEFAULT_PREFIX):
                out.append(DefaultRule(for_role, schema or None, object_type[len(DEFAULT_PREFIX) :], grantee))
    return out


def claim_steps(
    memory: ClaimMemory, claim: str, after: dict[str, frozenset[Key]], *, ensure_table: bool = False
) -> tuple[list[Step], list[Step]]:
    """`steps` for every grantee row of the claim, `after` being what each row must hold once the statements ran
    (a grantee missing from it: none). `ensure_table` creates the table even when nothing is to be remembered,
    so later runs read the memory in their one query instead of failing on a missing table and reading again.
    The table's creation is marked `creates` (driftPolicy ignore runs it: it creates something missing)."""
    if not memory.writable:
        return [], []
    before: list[Step] = []
    last: list[Step] = []
    for grantee in sorted(set(memory.rows) | set(after)):
        row = Memory(True, True, memory.rows.get(grantee), frozenset())
        grow, shrink = steps(row, claim, grantee, after.get(grantee, frozenset()))
        before += grow
        last += shrink
    if not memory.table and (before or ensure_table):
        before = [_replace(s, creates=True) for s in create_steps(memory.schema)] + before
    return before, last
