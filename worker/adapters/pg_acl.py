"""Exact privilege sets on PostgreSQL objects, default-privilege rules and role memberships: catalog reads and the
pure diff that turns (desired, held) into GRANT/REVOKE steps.

The ownership rule (docs/worker-postgres.md): a spec owns the grantee/object pairs it names. On each such pair the
privileges (and their grant option) become exactly the listed set; pairs the spec does not name are not touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters.base import Step
from worker.adapters.pg_sql import Catalog, ident, idents, qualified, step

Held = dict[str, bool]  # privilege -> held WITH GRANT OPTION
Desired = dict[str, bool]  # privilege -> wanted WITH GRANT OPTION


@dataclass(frozen=True)
class Delta:
    revoke: frozenset[str] = frozenset()  # held, not wanted
    revoke_grant_option: frozenset[str] = frozenset()  # wanted without grant option, held with it
    grant: frozenset[str] = frozenset()  # wanted without grant option, not held
    grant_with_option: frozenset[str] = frozenset()  # wanted with grant option, not held with it

    def __bool__(self) -> bool:
        return bool(self.revoke or self.revoke_grant_option or self.grant or self.grant_with_option)


def delta(desired: Desired, held: Held) -> Delta:
    return Delta(
        revoke=frozenset(p for p in held if p not in desired),
        revoke_grant_option=frozenset(p for p, go in desired.items() if not go and held.get(p)),
        grant=frozenset(p for p, go in desired.items() if not go and p not in held),
        grant_with_option=frozenset(p for p, go in desired.items() if go and not held.get(p)),
    )


def merge(into: Desired, privileges: Iterable[str], grant_option: bool) -> None:
    """Union of privilege sets: a pair named by several entries gets every privilege any of them lists."""
    for p in privileges:
        into[p] = into.get(p, False) or grant_option


def ordered(object_type: str, names: Iterable[str]) -> list[str]:
    order = {p: i for i, p in enumerate(privs.PRIVILEGES[object_type])}
    return sorted(names, key=lambda p: (order.get(p, 99), p))


@dataclass(frozen=True)
class Target:
    """An object privileges are granted on. Quoting waits until a statement needs the name."""

    object_type: str  # a pg_privileges type: database, schema, table, sequence, function
    keyword: str  # DATABASE, SCHEMA, TABLE, SEQUENCE, ROUTINE
    schema: str | None  # None for databases and schemas
    name: str
    args: str | None  # a routine's identity arguments, as pg_get_function_identity_arguments gives them
    database: str | None  # where the statement runs; None: the admin connection

    @property
    def sql(self) -> str:
        """The quoted name, e.g. `app`, `s.t`, `s.f(integer, text)`."""
        if self.schema is None:
            return ident(self.name)
        if self.object_type == privs.FUNCTION:
            return f"{qualified(self.schema, self.name)}({self.args or ''})"
        return qualified(self.schema, self.name)

    @property
    def label(self) -> str:
        """For messages: `table s.t`."""
        if self.schema is None:
            return f"{self.object_type} {self.name}"
        if self.object_type == privs.FUNCTION:
            return f"routine {self.schema}.{self.name}({self.args or ''})"
        return f"{self.object_type} {self.schema}.{self.name}"


@dataclass
class Pair:
    target: Target
    desired: Desired = field(default_factory=dict)
    held: Held = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # spec paths that name the pair


def acl_steps(grantee: str, pairs: Sequence[Pair]) -> list[Step]:
    """REVOKE/GRANT statements that make every pair's privileges exactly its desired set.

    Targets of the same keyword and database with the same change share one statement (GRANT SELECT ON TABLE
    a, b TO g), so `*` over a large schema stays a handful of statements."""
    groups: dict[tuple[str | None, str, str, int, tuple[str, ...]], list[Pair]] = {}
    for pair in pairs:
        change = delta(pair.desired, pair.held)
        for action, names in enumerate(
            (change.revoke, change.revoke_grant_option, change.grant, change.grant_with_option)
        ):
            if names:
                key = (
                    pair.target.database,
                    pair.target.keyword,
                    pair.target.object_type,
                    action,
                    tuple(ordered(pair.target.object_type, names)),
                )
                groups.setdefault(key, []).append(pair)
    steps: list[Step] = []
    if not groups:
        return steps
    who = ident(grantee)
    for (database, keyword, _, action, privileges), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][3], kv[0][1], kv[0][4])
    ):
        objects = ", ".join(m.target.sql for m in members)
        listed = ", ".join(privileges)
        labels = ", ".join(m.target.label for m in members[:3]) + (
            f" and {len(members) - 3} more" if len(members) > 3 else ""
        )
        sources = sorted({s for m in members for s in m.sources})
        where = f" ({', '.join(sources[:3])})" if sources else ""
        if action == 0:
            sql = f"REVOKE {listed} ON {keyword} {objects} FROM {who}"
            reason = f"{grantee} holds {listed} on {labels}, which the spec does not list{where}"
        elif action == 1:
            sql = f"REVOKE GRANT OPTION FOR {listed} ON {keyword} {objects} FROM {who}"
            reason = (
                f"{grantee} holds {listed} on {labels} with grant option; the spec lists it without{where}"
            )
        elif action == 2:
            sql = f"GRANT {listed} ON {keyword} {objects} TO {who}"
            reason = f"the spec lists {listed} on {labels} for {grantee}{where}"
        else:
            sql = f"GRANT {listed} ON {keyword} {objects} TO {who} WITH GRANT OPTION"
            reason = f"the spec lists {listed} on {labels} for {grantee} with grant option{where}"
        steps.append(step(sql, reason, database=database))
    return steps


# --- objects ----------------------------------------------------------------------------------------------------

# One round trip per database: every named object (or every object of a schema for `*`) with the privileges the
# grantee holds on it. `want` rows: (index, kind, schema, name). A NULL `name` on the result means not found.
OBJECTS_SQL = """
WITH want(i, kind, nsp, name) AS (
    SELECT * FROM unnest(%(idx)s::int[], %(kinds)s::text[], %(nsps)s::text[], %(names)s::text[])
), grantee AS (
    SELECT oid FROM pg_roles WHERE rolname = %(grantee)s
)
SELECT w.i, o.nsp, o.name, o.args, o.oid,
       w.nsp IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = w.nsp) AS schema_exists,
       (SELECT json_object_agg(x.privilege_type, x.grantable)
          FROM (SELECT a.privilege_type, bool_or(a.is_grantable) AS grantable
                  FROM aclexplode(o.acl) a
                 WHERE a.grantee = (SELECT oid FROM grantee)
                 GROUP BY a.privilege_type) x) AS held@EXTRA@
  FROM want w
  LEFT JOIN LATERAL (
        SELECT d.oid, NULL::text AS nsp, d.datname::text AS name, NULL::text AS args,
               coalesce(d.datacl, acldefault('d', d.datdba)) AS acl
          FROM pg_database d
         WHERE w.kind = 'database' AND d.datname = w.name
        UNION ALL
        SELECT n.oid, n.nspname::text, n.nspname::text, NULL, coalesce(n.nspacl, acldefault('n', n.nspowner))
          FROM pg_namespace n
         WHERE w.kind = 'schema' AND n.nspname = w.nsp
        UNION ALL
        SELECT c.oid, n.nspname::text, c.relname::text, NULL,
               coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE w.kind IN ('table', 'sequence') AND n.nspname = w.nsp
           AND c.relkind = ANY (CASE WHEN w.kind = 'sequence' THEN '{S}' ELSE '{r,p,v,m,f}' END::"char"[])
           AND (w.name = '*' OR c.relname = w.name)
        UNION ALL
        SELECT p.oid, n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
               coalesce(p.proacl, acldefault('f', p.proowner))
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE w.kind = 'function' AND n.nspname = w.nsp AND (w.name = '*' OR p.proname = w.name)
  ) o ON true
 ORDER BY w.i, o.nsp, o.name, o.args
"""


@dataclass(frozen=True)
class Want:
    """An object (or `*`) a spec names: kind is a pg_privileges type; `name` is None for schema level."""

    kind: str
    schema: str | None
    name: str | None


@dataclass(frozen=True)
class Found:
    want_index: int
    target: Target
    held: Held
    oid: int


@dataclass
class ObjectsObserved:
    found: list[Found] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # indexes of wants that matched nothing (not `*`)
    missing_schema: list[int] = field(default_factory=list)  # indexes of wants whose schema is absent
    extra: tuple[Any, ...] | None = None  # the values of the caller's `extra` columns (None: not read)


KEYWORDS = {
    privs.DATABASE: "DATABASE",
    privs.SCHEMA: "SCHEMA",
    privs.TABLE: "TABLE",
    privs.SEQUENCE: "SEQUENCE",
    privs.FUNCTION: "ROUTINE",  # functions, procedures and aggregates alike (PostgreSQL 11+)
}


def target_for(kind: str, database: str | None, schema: str | None, name: str, args: str | None) -> Target:
    if kind in (privs.DATABASE, privs.SCHEMA):
        return Target(kind, KEYWORDS[kind], None, name, None, database)
    return Target(kind, KEYWORDS[kind], schema, name, args if kind == privs.FUNCTION else None, database)


def observe_objects(
    catalog: Catalog,
    run_in: str | None,
    grantee: str,
    wants: Sequence[Want],
    extra: tuple[str, dict[str, Any]] | None = None,
) -> ObjectsObserved:
    """Read the objects `wants` name (in database `run_in`; None: the admin database) and the grantee's
    privileges on them. A database-level want names the database in `name`. `extra`: a caller's own columns
    (", expr, ...", not correlated with the rows) and their parameters, read in the same query into `out.extra`."""
    out = ObjectsObserved()
    if not wants:
        return out
    columns, params = extra if extra is not None else ("", {})
    rows = catalog.query(
        OBJECTS_SQL.replace("@EXTRA@", columns),
        {
            **params,
            "idx": list(range(len(wants))),
            "kinds": [w.kind for w in wants],
            "nsps": [w.schema for w in wants],
            "names": [w.name for w in wants],
            "grantee": grantee,
        },
        database=run_in,
    )
    if extra is not None and rows:
        out.extra = tuple(rows[0][7:])
    for index, schema, name, args, oid, schema_exists, held, *_ in rows:
        want = wants[index]
        if name is None:
            if not schema_exists:
                out.missing_schema.append(index)
            elif want.name != "*":
                out.missing.append(index)
            continue
        held_map = _held(held)
        out.found.append(Found(index, target_for(want.kind, run_in, schema, name, args), held_map, int(oid)))
    return out


def _held(raw: Any) -> Held:
    if raw is None:
        return {}
    data = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): bool(v) for k, v in data.items()}


# --- default privileges -----------------------------------------------------------------------------------------

# A scalar subquery (one JSON array, in rule order) so a caller can fold it into its own catalog query.
DEFAULT_ACLS_JSON = """
SELECT coalesce(json_agg(json_build_array(
           fr.oid IS NOT NULL, gr.oid IS NOT NULL, w.nsp = '' OR n.oid IS NOT NULL,
           (SELECT json_object_agg(x.privilege_type, x.grantable)
              FROM (SELECT a.privilege_type, bool_or(a.is_grantable) AS grantable
                      FROM pg_default_acl da, aclexplode(da.defaclacl) a
                     WHERE da.defaclrole = fr.oid
                       AND da.defaclnamespace = CASE WHEN w.nsp = '' THEN 0 ELSE n.oid END
                       AND da.defaclobjtype = w.objtype::"char"
                       AND a.grantee = gr.oid
                     GROUP BY a.privilege_type) x)) ORDER BY w.i), '[]')
  FROM unnest(%(dacl_idx)s::int[], %(dacl_for)s::text[], %(dacl_nsp)s::text[], %(dacl_type)s::text[],
              %(dacl_grantee)s::text[]) AS w(i, forrole, nsp, objtype, grantee)
  LEFT JOIN pg_roles fr ON fr.rolname = w.forrole
  LEFT JOIN pg_roles gr ON gr.rolname = w.grantee
  LEFT JOIN pg_namespace n ON n.nspname = w.nsp
"""


@dataclass(frozen=True)
class DefaultRule:
    """One (forRole, schema, objectType, grantee) tuple of ALTER DEFAULT PRIVILEGES."""

    for_role: str
    schema: str | None
    object_type: str  # tables, sequences, functions, types, schemas
    grantee: str


def default_acl_params(rules: Sequence[DefaultRule]) -> dict[str, list[Any]]:
    return {
        "dacl_idx": list(range(len(rules))),
        "dacl_for": [r.for_role for r in rules],
        "dacl_nsp": [r.schema or "" for r in rules],
        "dacl_type": [privs.DEFAULT_PRIVILEGE_TYPES[r.object_type][1] for r in rules],
        "dacl_grantee": [r.grantee for r in rules],
    }


def parse_default_acls(raw: Any) -> list[Held]:
    """The grantee's held default privileges per rule, in rule order, from DEFAULT_ACLS_JSON."""
    data = json.loads(raw) if isinstance(raw, str) else (raw or [])
    return [_held(item[3]) for item in data]


def default_acl_steps(rule: DefaultRule, desired: Desired, held: Held, database: str | None) -> list[Step]:
    """ALTER DEFAULT PRIVILEGES statements that make the rule's privileges exactly `desired`."""
    change = delta(desired, held)
    if not change:
        return []
    object_type = privs.DEFAULT_PRIVILEGE_TYPES[rule.object_type][0]
    head = f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(rule.for_role)}"
    if rule.schema:
        head += f" IN SCHEMA {ident(rule.schema)}"
    what = rule.object_type.upper()
    scope = f"{rule.object_type} {rule.for_role} creates" + (
        f" in schema {rule.schema}" if rule.schema else ""
    )
    who = ident(rule.grantee)
    out: list[Step] = []
    if change.revoke:
        names = ", ".join(ordered(object_type, change.revoke))
        out.append(
            step(
                f"{head} REVOKE {names} ON {what} FROM {who}",
                f"{rule.grantee} holds default {names} on {scope}, which the spec does not list",
                database=database,
            )
        )
    if change.revoke_grant_option:
        names = ", ".join(ordered(object_type, change.revoke_grant_option))
        out.append(
            step(
                f"{head} REVOKE GRANT OPTION FOR {names} ON {what} FROM {who}",
                f"{rule.grantee} holds default {names} on {scope} with grant option; the spec lists it without",
                database=database,
            )
        )
    if change.grant:
        names = ", ".join(ordered(object_type, change.grant))
        out.append(
            step(
                f"{head} GRANT {names} ON {what} TO {who}",
                f"the spec gives {rule.grantee} {names} on {scope}",
                database=database,
            )
        )
    return out


# --- role membership --------------------------------------------------------------------------------------------

# One row per (role, grantor): from PostgreSQL 16 a member can hold the same role from several grantors, each grant
# with its own admin option.
MEMBERSHIPS_SQL = """
SELECT coalesce(json_agg(json_build_object('role', g.rolname, 'grantor', gr.rolname,
                                           'admin', m.admin_option)), '[]')
  FROM pg_auth_members m
  JOIN pg_roles g ON g.oid = m.roleid
  LEFT JOIN pg_roles gr ON gr.oid = m.grantor
 WHERE m.member = r.oid
"""


@dataclass(frozen=True)
class Membership:
    role: str
    grantor: str | None
    admin: bool = False  # held WITH ADMIN OPTION (from this grantor)


def parse_memberships(raw: Any) -> list[Membership]:
    data = json.loads(raw) if isinstance(raw, str) else (raw or [])
    return [Membership(str(m["role"]), m.get("grantor"), bool(m.get("admin"))) for m in data]


def _granted_by(version: tuple[int, ...], grantor: str | None) -> str:
    # From PostgreSQL 16 a membership is per grantor, and REVOKE without GRANTED BY only acts on the one the
    # current user granted (superusers: the bootstrap superuser's).
    return f" GRANTED BY {ident(grantor)}" if version >= (16,) and grantor else ""


def membership_steps(
    member: str,
    desired: frozenset[str] | None,
    held: Sequence[Membership],
    version: tuple[int, ...],
    source: str,
    *,
    admin: frozenset[str] | None = frozenset(),
    admin_source: str = "",
) -> list[Step]:
    """GRANT/REVOKE role statements that make `member`'s memberships exactly `desired` (None: unmanaged), and the
    admin option exactly `admin` among them (None: the admin option of kept memberships is left as it is).

    A role counts as held with admin option when any grantor's grant carries it; revoking the option revokes it
    from every grantor's grant (no CASCADE: a grant the member passed on makes the revoke fail instead)."""
    if desired is None:
        return []
    have = {m.role for m in held}
    have_admin = {m.role for m in held if m.admin}
    who = ident(member)
    out: list[Step] = []
    for m in sorted(held, key=lambda m: (m.role, m.grantor or "")):
        if m.role in desired:
            continue
        out.append(
            step(
                f"REVOKE {ident(m.role)} FROM {who}{_granted_by(version, m.grantor)}",
                f"{member} is a member of {m.role}, which {source} does not list",
            )
        )
    if admin is not None:
        # Before 16 there is one grant per role, and the statement names no grantor: one statement each.
        lowered = {
            f"REVOKE ADMIN OPTION FOR {ident(m.role)} FROM {who}{_granted_by(version, m.grantor)}": m.role
            for m in sorted(held, key=lambda m: (m.role, m.grantor or ""))
            if m.role in desired and m.admin and m.role not in admin
        }
        out += [
            step(sql, f"{member} holds {role} with admin option, which {admin_source} does not list")
            for sql, role in lowered.items()
        ]
    plain = sorted(desired - have - (admin or frozenset()))
    if plain:
        out.append(step(f"GRANT {idents(plain)} TO {who}", f"{source} lists {', '.join(plain)} for {member}"))
    # WITH ADMIN OPTION both adds a missing membership and upgrades a held one (PostgreSQL 16+: the grant of the
    # current user, or a new one by it beside another grantor's).
    with_admin = sorted(((admin or frozenset()) & desired) - have_admin)
    if with_admin:
        out.append(
            step(
                f"GRANT {idents(with_admin)} TO {who} WITH ADMIN OPTION",
                f"{admin_source} lists {', '.join(with_admin)} for {member}",
            )
        )
    return out
