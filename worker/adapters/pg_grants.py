"""DatabaseGrant on PostgreSQL: exact privilege sets on databases, schemas, tables, sequences and routines, and
exact role membership, for one grantee.

`observe` costs one query in the admin database plus one per database the grants name; `plan` and `plan_drop` are
pure. Every grantee/object pair the spec names ends with exactly the listed privileges (docs/worker-postgres.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters import pg_memory
from worker.adapters.base import KindHandler, Plan, Step
from worker.adapters.pg_acl import (
    MEMBERSHIPS_SQL,
    Found,
    Membership,
    Pair,
    Target,
    Want,
    acl_steps,
    membership_steps,
    merge,
    observe_objects,
    parse_memberships,
)
from worker.adapters.pg_sql import Catalog
from worker.errors import PermanentError, WorkerError
from worker.ownership import Owner, check_grantee

GRANTEE_SQL = f"""
SELECT r.oid IS NOT NULL,
       ({MEMBERSHIPS_SQL}),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(roles)s::text[])),
       (SELECT coalesce(json_object_agg(datname, datallowconn), '{{}}')
          FROM pg_database WHERE datname = ANY (%(databases)s::text[]) @DATABASES@),
       shobj_description(r.oid, 'pg_authid'),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(roles)s::text[]) AND rolsuper),
       @MEMORY@
  FROM (SELECT 1) AS one
  LEFT JOIN pg_roles r ON r.rolname = %(grantee)s
"""
# With dbops' memory (worker.adapters.pg_memory): its row, and the databases it names, in the same query.
WITH_MEMORY = GRANTEE_SQL.replace("@MEMORY@", pg_memory.READ_SQL).replace(
    "@DATABASES@", pg_memory.DATABASES_SQL
)
WITHOUT_MEMORY = GRANTEE_SQL.replace("@MEMORY@", pg_memory.MISSING_SQL).replace("@DATABASES@", "")

# `exclusive: true`: every object of the current database the grantee holds privileges on directly (an ACL entry
# naming it), but not what it owns and not PostgreSQL's own schemas. As pg_memory keys, without the database.
HELD_SQL = """
WITH g AS (SELECT oid FROM pg_roles WHERE rolname = %(grantee)s)
SELECT 'database', '', d.datname::text, ''
  FROM pg_database d, g WHERE d.datname = current_database() AND d.datdba <> g.oid
   AND EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = g.oid)
UNION
SELECT 'schema', '', n.nspname::text, ''
  FROM pg_namespace n, g WHERE n.nspowner <> g.oid AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = g.oid)
UNION
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text, ''
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, g
 WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S') AND c.relowner <> g.oid
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = g.oid)
UNION
SELECT 'function', n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, g
 WHERE p.proowner <> g.oid AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = g.oid)
"""


@dataclass(frozen=True)
class Named:
    """One object (or `*`) a grant entry names, with where it sits in the spec."""

    entry: int
    path: str  # e.g. spec.postgres.grants[2].tables[0]
    database: str
    want: Want


@dataclass
class GrantObserved:
    grantee_exists: bool = False
    memberships: list[Membership] = field(default_factory=list)
    existing_roles: frozenset[str] = frozenset()
    databases: dict[str, bool] = field(default_factory=dict)  # existing database -> accepts connections
    found: list[tuple[Named, Found]] = field(default_factory=list)
    missing: list[Named] = field(default_factory=list)
    missing_schema: list[Named] = field(default_factory=list)
    marker: str | None = None  # the grantee's comment: dbops' ownership marker when dbops manages it
    superuser_roles: frozenset[str] = frozenset()  # which of the spec's roles are superusers
    memory: pg_memory.Memory = pg_memory.NO_TABLE  # what dbops granted before (this claim and others)
    desired: frozenset[pg_memory.Key] = frozenset()  # the objects the spec names now, as memory keys
    # Objects the memory names and the spec no longer does, with what the grantee holds there.
    forgotten: list[Found] = field(default_factory=list)
    unreachable: frozenset[pg_memory.Key] = frozenset()  # remembered, in a database refusing connections
    # `exclusive: true`: objects in the spec's databases the grantee holds privileges on that nothing remembers.
    unnamed: frozenset[pg_memory.Key] = frozenset()
    # The values of `GrantHandler.extra` per database, for those read with the grants (pg_acl.observe_objects).
    extra: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def entry_database(spec: dict[str, Any], grant: dict[str, Any]) -> str:
    return str(grant.get("database") or spec["database"])


def named_objects(spec: dict[str, Any]) -> list[Named]:
    out: list[Named] = []
    for i, grant in enumerate(spec["postgres"].get("grants", [])):
        database = entry_database(spec, grant)
        base = f"spec.postgres.grants[{i}]"
        object_type = privs.grant_object_type(grant)
        if object_type == privs.DATABASE:
            out.append(Named(i, base, database, Want(privs.DATABASE, None, database)))
        elif object_type == privs.SCHEMA:
            out.append(Named(i, f"{base}.schema", database, Want(privs.SCHEMA, grant["schema"], None)))
        else:
            key = next(k for k, t in privs.OBJECT_LISTS if t == object_type)
            for j, name in enumerate(grant[key]):
                out.append(Named(i, f"{base}.{key}[{j}]", database, Want(object_type, grant["schema"], name)))
    return out


class GrantHandler(KindHandler[GrantObserved]):
    # A DatabaseRole's grants: the grantee is the role the same plan creates, so a missing grantee is not an error,
    # and the memory row is kept under a claim id of its own (a DatabaseGrant of the same name may grant to it too).
    creates_grantee = False
    memory_suffix = ""

    def __init__(self, catalog: Catalog, owner: Owner) -> None:
        self.catalog = catalog
        self.owner = owner
        # A caller's own columns and parameters per database, read with the grants there when the grants read that
        # database (GrantObserved.extra): a DatabaseRole's default privileges.
        self.extra: dict[str, tuple[str, dict[str, Any]]] = {}

    def lock_key(self, spec: dict[str, Any]) -> str:
        # The same key as the grantee's DatabaseUser: both change the role's memberships and privileges.
        return f"role:{spec['grantee']}"

    @property
    def claim(self) -> str:
        return pg_memory.claim_id(self.owner.namespace, self.owner.name) + self.memory_suffix

    def observe(self, spec: dict[str, Any]) -> GrantObserved:
        grantee = spec["grantee"]
        named = named_objects(spec)
        databases = sorted({n.database for n in named})
        params = {
            "grantee": grantee,
            "roles": sorted(spec["postgres"].get("roles") or ()),
            "databases": databases,
            "claim": self.claim,
        }
        try:
            (row,) = self.catalog.query(WITH_MEMORY, params)
            memory = pg_memory.parse(row[6], self.claim)
        except WorkerError as exc:
            if exc.code not in ("UndefinedTable", "PermissionDenied"):
                raise
            # No memory yet (only until the first grant creates the table), or one this admin may not read:
            # read again without it.
            (row,) = self.catalog.query(WITHOUT_MEMORY, params)
            memory = pg_memory.missing(row[6]) if exc.code == "UndefinedTable" else pg_memory.unreadable()
        out = GrantObserved(
            grantee_exists=bool(row[0]),
            memberships=parse_memberships(row[1]) if row[0] else [],
            existing_roles=frozenset(row[2] or ()),
            databases={
                str(k): bool(v)
                for k, v in (json.loads(row[3]) if isinstance(row[3], str) else row[3]).items()
            },
            marker=row[4],
            superuser_roles=frozenset(row[5] or ()),
            memory=memory,
        )
        if not out.grantee_exists and not self.creates_grantee:
            return out
        remembered = sorted(memory.remembered)
        desired: set[pg_memory.Key] = set()
        recalled: dict[pg_memory.Key, Found] = {}
        unreachable: set[pg_memory.Key] = set()
        exclusive = bool(spec["postgres"].get("exclusive"))
        unnamed: set[pg_memory.Key] = set()
        for database in sorted({*databases, *(k[0] for k in remembered)}):
            mine = [n for n in named if n.database == database]
            theirs = [k for k in remembered if k[0] == database]
            if exclusive and database in databases and out.databases.get(database):
                run_in = None if database == self.catalog.admin_database else database
                held = {
                    (database, str(t), str(sch), str(name), str(args or ""))
                    for t, sch, name, args in self.catalog.query(
                        HELD_SQL, {"grantee": grantee}, database=run_in
                    )
                }
                unnamed |= held - memory.remembered
                theirs += sorted(held - memory.remembered)
            if not out.databases.get(database):
                # Missing (its grants went with it) or refusing connections (plan reports it when the spec
                # names it; what the memory names there is kept for a later run).
                if database in out.databases:
                    unreachable.update(theirs)
                continue
            run_in = None if database == self.catalog.admin_database else database
            wants = [n.want for n in mine] + [pg_memory.want(k) for k in theirs]
            result = observe_objects(self.catalog, run_in, grantee, wants, self.extra.get(database))
            if result.extra is not None:
                out.extra[database] = result.extra
            for f in result.found:
                if f.want_index < len(mine):
                    out.found.append((mine[f.want_index], f))
                    desired.add(pg_memory.key(database, f.target))
                else:
                    k = pg_memory.key(database, f.target)
                    if k in memory.remembered or k in unnamed:
                        recalled[k] = f
            out.missing += [mine[i] for i in result.missing if i < len(mine)]
            out.missing_schema += [mine[i] for i in result.missing_schema if i < len(mine)]
        out.desired = frozenset(desired)
        out.forgotten = [f for k, f in sorted(recalled.items()) if k not in desired]
        out.unreachable = frozenset(unreachable - desired)
        out.unnamed = frozenset(unnamed)
        return out

    def _memory_pairs(self, observed: GrantObserved) -> list[Pair]:
        """Objects dbops granted on for this claim that the spec no longer names: everything the grantee holds
        there goes, unless another claim remembers granting on the same object. With `exclusive: true` also
        every other object of the spec's databases the grantee holds privileges on, whoever granted them."""
        out: list[Pair] = []
        for f in observed.forgotten:
            k = pg_memory.key(f.target.database or self.catalog.admin_database, f.target)
            if k in observed.unnamed:
                out.append(Pair(f.target, {}, f.held, ["exclusive: true, and the spec does not name it"]))
            elif k not in observed.memory.others:
                out.append(
                    Pair(f.target, {}, f.held, ["granted by this claim before, no longer in the spec"])
                )
        return out

    def _with_memory(
        self, spec: dict[str, Any], observed: GrantObserved, steps: list[Step], acl: list[Step]
    ) -> Plan:
        before, after = pg_memory.steps(
            observed.memory, self.claim, spec["grantee"], observed.desired | observed.unreachable
        )
        return Plan(steps + before + acl + after, warnings=self._memory_warnings(observed))

    def _memory_warnings(self, observed: GrantObserved) -> list[str]:
        if observed.memory.writable:
            return []
        return [pg_memory.warning(observed.memory, self.catalog.admin_user, self.catalog.admin_database)]

    def plan(self, spec: dict[str, Any], observed: GrantObserved) -> Plan:
        self._check(spec, observed)
        grantee = spec["grantee"]
        roles = spec["postgres"].get("roles")
        steps: list[Step] = membership_steps(
            grantee,
            None if roles is None else frozenset(roles),
            observed.memberships,
            self.catalog.info.version_tuple,
            "spec.postgres.roles",
            admin=frozenset(spec["postgres"].get("adminRoles") or ()),
            admin_source="spec.postgres.adminRoles",
        )
        acl = acl_steps(grantee, self._pairs(spec, observed, revoke=False) + self._memory_pairs(observed))
        plan = self._with_memory(spec, observed, steps, acl)
        # This claim has granted nothing yet (no memory row): the whole plan creates its grants.
        plan.creates = observed.memory.mine is None
        return plan

    def _check(self, spec: dict[str, Any], observed: GrantObserved) -> None:
        grantee = spec["grantee"]
        if not observed.grantee_exists and not self.creates_grantee:
            raise PermanentError(
                "RoleNotFound",
                f"grantee {grantee} (spec.userRef/roleName) does not exist in the server; create the user first",
            )
        check_grantee(f"grantee role {grantee}", [observed.marker], self.owner, bool(spec.get("adopt")))
        supers = sorted(observed.superuser_roles)
        if supers:
            raise PermanentError(
                "SystemObject",
                f"spec.postgres.roles: {', '.join(supers)} is a superuser role; a member may SET ROLE to it and act "
                "as a superuser, so dbops never grants membership in it",
            )
        problems: list[str] = []
        missing_roles = sorted(set(spec["postgres"].get("roles") or ()) - observed.existing_roles)
        if missing_roles:
            problems.append(f"spec.postgres.roles: role(s) {', '.join(missing_roles)} do not exist")
        for i, grant in enumerate(spec["postgres"].get("grants", [])):
            database = entry_database(spec, grant)
            path = f"spec.postgres.grants[{i}]"
            if database not in observed.databases:
                where = f"{path}.database" if "database" in grant else "spec.databaseRef"
                problems.append(f"{where}: database {database} does not exist")
            elif not observed.databases[database]:
                problems.append(
                    f"{path}: database {database} does not accept connections (allowConnections: false)"
                )
            object_type = privs.grant_object_type(grant)
            problems += [
                str(e)
                for e in privs.version_errors(
                    object_type, grant["privileges"], self.catalog.info.version_tuple, f"{path}.privileges"
                )
            ]
        for n in observed.missing_schema:
            problems.append(f"{n.path}: schema {n.want.schema} does not exist in database {n.database}")
        for n in observed.missing:
            problems.append(
                f"{n.path}: {n.want.kind} {n.want.schema}.{n.want.name} does not exist in database {n.database}"
            )
        if problems:
            raise PermanentError("InvalidReference", "; ".join(problems))

    def _pairs(self, spec: dict[str, Any], observed: GrantObserved, revoke: bool) -> list[Pair]:
        grants = spec["postgres"].get("grants", [])
        version = self.catalog.info.version_tuple
        pairs: dict[Target, Pair] = {}
        for named, found in observed.found:
            grant = grants[named.entry]
            pair = pairs.setdefault(found.target, Pair(found.target, {}, found.held))
            pair.sources.append(f"spec.postgres.grants[{named.entry}]")
            if not revoke:
                wanted = privs.expand(found.target.object_type, grant["privileges"], version)
                merge(pair.desired, wanted, bool(grant.get("withGrantOption")))
        return list(pairs.values())

    def plan_drop(self, spec: dict[str, Any], observed: GrantObserved) -> Plan:
        if not observed.grantee_exists:
            # Its privileges went with the role; only the memory is left to forget.
            _, forget = pg_memory.steps(observed.memory, self.claim, spec["grantee"], frozenset())
            return Plan(forget, warnings=self._memory_warnings(observed))
        grantee = spec["grantee"]
        check_grantee(f"grantee role {grantee}", [observed.marker], self.owner, bool(spec.get("adopt")))
        listed = frozenset(spec["postgres"].get("roles") or ())
        keep = frozenset(m.role for m in observed.memberships) - listed
        # Memberships the spec does not name stay, admin option included.
        steps = membership_steps(
            grantee,
            keep,
            observed.memberships,
            self.catalog.info.version_tuple,
            "the drop of this grant",
            admin=None,
        )
        acl = acl_steps(grantee, self._pairs(spec, observed, revoke=True) + self._memory_pairs(observed))
        observed = replace(observed, desired=frozenset())
        return self._with_memory(spec, observed, steps, acl)

    def facts(self, spec: dict[str, Any], observed: GrantObserved) -> dict[str, Any]:
        counted: dict[Target, int] = {}
        for _, found in observed.found:
            counted[found.target] = len(found.held)
        return {
            "grantee": spec["grantee"],
            "roles": sorted({m.role for m in observed.memberships}),
            "privileges": sum(counted.values()),
        }
