"""DatabaseRole on PostgreSQL: a NOLOGIN role (DatabaseUser's role statements, worker.adapters.pg_role) with its
privileges (DatabaseGrant's, worker.adapters.pg_grants, the role as grantee), and its members in the facts.

`observe` costs the role query (which also reads the members and which databases `postgres.defaultPrivileges`
names exist), the grantee query (with dbops' memory of what it granted) plus one per database the grants name; with
default privileges one more per database the entries name or the role holds some in (pg_shdepend, from the role
query) that the grants do not already read (there they come with the grants' query); the drop path one more per database the role holds default privileges in. `plan` and `plan_drop` are
pure. The role is marked as the claim's like a DatabaseUser's role (a role dbops did not create is
refused unless `adopt: true`); the grants are remembered in `_dbops.grants` under the claim's own id, so removing one
from the spec revokes it. The role's default privileges are the exact set the spec names: the role is the claim's,
so any default privilege it holds that no entry names is revoked, but for the rules a Database claim remembers
setting for the role (its `_dbops.grants` rows, read with the grantee query), which are that claim's; an entry naming
one of those is refused. The drop revokes them all before DROP ROLE (PostgreSQL refuses to drop a role
pg_default_acl names).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters import pg_memory
from worker.adapters.base import KindHandler, Plan, Step, creating
from worker.adapters.pg_acl import (
    DefaultRule,
    Desired,
    Found,
    Held,
    Pair,
    Target,
    acl_steps,
    default_acl_steps,
    merge,
    target_for,
)
from worker.adapters.pg_grants import GrantHandler, GrantObserved
from worker.adapters.pg_role import Dependency, RoleHandler, RoleObserved
from worker.adapters.pg_sql import Catalog
from worker.errors import PermanentError
from worker.ownership import Owner

# Read with the role query (RoleHandler.extra_columns): the role's members, and which of the databases
# postgres.defaultPrivileges names exist and accept connections.
MEMBERS_COLUMNS = """,
       ARRAY(SELECT m.rolname::text
               FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member
              WHERE a.roleid = r.oid ORDER BY m.rolname),
       ARRAY(SELECT datname::text FROM pg_database
              WHERE datname = ANY (%(default_databases)s::text[]) AND datallowconn ORDER BY datname)"""

# The memory row of a DatabaseRole's grants: a claim id a DatabaseGrant's never is (claim names have no spaces).
MEMORY_SUFFIX = " DatabaseRole"

CATALOGS = {
    privs.DATABASE: "pg_database",
    privs.SCHEMA: "pg_namespace",
    privs.TABLE: "pg_class",
    privs.SEQUENCE: "pg_class",
    privs.FUNCTION: "pg_proc",
}


# In each database: its owner (forRole's default), which of the named roles and schemas exist, and every default
# privilege the role holds there (rows whose creator is the role itself hold its owner rights: not ours to manage).
DEFAULTS_COLUMNS = """
       (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(dp_roles)s::text[])),
       ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspname = ANY (%(dp_schemas)s::text[])),
       (SELECT coalesce(json_agg(json_build_array(pg_get_userbyid(da.defaclrole), n.nspname, da.defaclobjtype::text,
                                                  a.privilege_type, a.is_grantable)), '[]')
          FROM pg_default_acl da
          LEFT JOIN pg_namespace n ON n.oid = da.defaclnamespace
          CROSS JOIN LATERAL aclexplode(da.defaclacl) a
         WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(dp_role)s) AND a.grantee <> da.defaclrole)"""
# On its own, in a database the grants do not read; else folded into the grants' query there (GrantHandler.extra).
DEFAULTS_SQL = "SELECT" + DEFAULTS_COLUMNS + "\n"
# Drop path only: the objects the role's default privileges reached, i.e. what each held rule's creator owns in its
# scope (schema, or every schema) and the role holds privileges on, with the index of the rule that reached it.
COVERED_SQL = """
SELECT o.cat, o.oid, o.kind, o.nsp, o.name, o.args, r.i,
       ARRAY(SELECT a.privilege_type::text FROM aclexplode(o.acl) a
              WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s))
  FROM unnest(%(idx)s::int[], %(for)s::text[], %(nsp)s::text[], %(type)s::text[]) AS r(i, forrole, nsp, objtype)
  JOIN pg_roles f ON f.rolname = r.forrole
  CROSS JOIN LATERAL (
        SELECT 'pg_class' AS cat, c.oid, CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
               n.nspname::text AS nsp, c.relname::text AS name, NULL::text AS args, c.relacl AS acl
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE r.objtype IN ('r', 'S') AND c.relowner = f.oid AND (r.nsp = '' OR n.nspname = r.nsp)
           AND c.relkind = ANY (CASE WHEN r.objtype = 'S' THEN '{S}' ELSE '{r,p,v,m,f}' END::"char"[])
        UNION ALL
        SELECT 'pg_proc', p.oid, 'function', n.nspname::text, p.proname::text,
               pg_get_function_identity_arguments(p.oid), p.proacl
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE r.objtype = 'f' AND p.proowner = f.oid AND (r.nsp = '' OR n.nspname = r.nsp)
        UNION ALL
        SELECT 'pg_type', t.oid, 'type', n.nspname::text, t.typname::text, NULL, t.typacl
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE r.objtype = 'T' AND t.typowner = f.oid AND (r.nsp = '' OR n.nspname = r.nsp)
        UNION ALL
        SELECT 'pg_namespace', n.oid, 'schema', NULL, n.nspname::text, NULL, n.nspacl
          FROM pg_namespace n
         WHERE r.objtype = 'n' AND n.nspowner = f.oid
  ) o
 WHERE o.acl IS NOT NULL
"""
OBJECT_TYPES = {code: name for name, (_, code) in privs.DEFAULT_PRIVILEGE_TYPES.items()}

DefaultKey = tuple[str, DefaultRule]  # (database, rule)


@dataclass
class DefaultsObserved:
    usable: frozenset[str] = frozenset()  # databases the spec names that exist and accept connections
    owners: dict[str, str] = dataclasses.field(default_factory=dict)  # database -> owner
    roles: dict[str, frozenset[str]] = dataclasses.field(
        default_factory=dict
    )  # database -> existing forRoles
    schemas: dict[str, frozenset[str]] = dataclasses.field(
        default_factory=dict
    )  # database -> existing schemas
    held: dict[DefaultKey, Held] = dataclasses.field(default_factory=dict)
    # Rules another claim (a Database's postgres.defaultPrivileges entry naming this role) remembers setting for the
    # role, with that claim's memory id: left to it, not part of the role's exact set.
    theirs: dict[DefaultKey, str] = dataclasses.field(default_factory=dict)
    # Drop path only: objects the held rules reached that the role holds privileges on, with those privileges.
    covered: list[Covered] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Covered:
    catalog: str  # pg_class, pg_proc, pg_type, pg_namespace
    oid: int
    target: Target
    held: frozenset[str]  # what the role holds on the object
    revoke: frozenset[str]  # of those, what the rules that reached it give


@dataclass
class GroupObserved:
    role: RoleObserved
    grants: GrantObserved
    members: list[str]
    defaults: DefaultsObserved = dataclasses.field(default_factory=DefaultsObserved)


def role_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The DatabaseUser request spec of the role: no login, no password, no connection limit or expiry."""
    pg = spec.get("postgres") or {}
    out: dict[str, Any] = {
        "username": spec["roleName"],
        "adopt": bool(spec.get("adopt")),
        "postgres": {
            "superuser": False,
            "createDB": bool(pg.get("createDB", False)),
            "createRole": False,
            "inherit": bool(pg.get("inherit", True)),
            "login": False,
            "replication": False,
            "bypassRLS": False,
            "connectionLimit": -1,
            "validUntil": "infinity",
        },
    }
    if "inRoles" in pg:
        out["postgres"]["inRoles"] = list(pg["inRoles"])
    return out


def grant_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The DatabaseGrant request spec of the role's privileges. Ownership is the role's (checked on the role), so
    the grant part acts on it as adopted."""
    pg = spec.get("postgres") or {}
    return {"grantee": spec["roleName"], "adopt": True, "postgres": {"grants": list(pg.get("grants") or [])}}


class DatabaseRoleHandler(KindHandler[GroupObserved]):
    def __init__(self, catalog: Catalog, owner: Owner) -> None:
        self.catalog = catalog
        self.owner = owner
        self.roles = RoleHandler(catalog, None, owner)
        self.grants = GrantHandler(catalog, owner)
        self.grants.creates_grantee = True
        self.grants.memory_suffix = MEMORY_SUFFIX

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"role:{spec['roleName']}"

    def _read_members(self, spec: dict[str, Any]) -> None:
        entries = (spec.get("postgres") or {}).get("defaultPrivileges") or []
        self.roles.extra_columns = MEMBERS_COLUMNS
        self.roles.extra_params = {"default_databases": sorted({e["database"] for e in entries})}

    def observe(self, spec: dict[str, Any]) -> GroupObserved:
        self._read_members(spec)
        role = self.roles.observe(role_spec(spec))
        return self._rest(spec, role)

    def observe_drop(self, spec: dict[str, Any]) -> GroupObserved:
        self._read_members(spec)
        role = self.roles.observe_drop(role_spec(spec))
        observed = self._rest(spec, role)
        self._observe_covered(spec, observed.defaults)
        return observed

    def _observe_covered(self, spec: dict[str, Any], observed: DefaultsObserved) -> None:
        """The objects the held default privileges reached (the drop revokes those privileges on them too)."""
        for database in sorted({d for d, _ in observed.held}):
            rules = [(rule, held) for (d, rule), held in observed.held.items() if d == database]
            rows = self.catalog.query(
                COVERED_SQL,
                {
                    "idx": list(range(len(rules))),
                    "for": [r.for_role for r, _ in rules],
                    "nsp": [r.schema or "" for r, _ in rules],
                    "type": [privs.DEFAULT_PRIVILEGE_TYPES[r.object_type][1] for r, _ in rules],
                    "role": spec["roleName"],
                },
                database=database,
            )
            merged: dict[tuple[str, int], Covered] = {}
            for catalog, oid, kind, schema, name, args, index, held in rows:
                if not held:
                    continue
                if kind == privs.TYPE:
                    target = Target(privs.TYPE, "TYPE", schema, name, None, database)
                else:
                    target = target_for(kind, database, schema, name, args)
                revoke = frozenset(held) & frozenset(rules[index][1])
                before = merged.get((catalog, int(oid)))
                if before is not None:
                    revoke |= before.revoke
                merged[(catalog, int(oid))] = Covered(catalog, int(oid), target, frozenset(held), revoke)
            observed.covered += [c for c in merged.values() if c.revoke]

    def _rest(self, spec: dict[str, Any], role: RoleObserved) -> GroupObserved:
        found, usable = role.extra  # MEMBERS_COLUMNS
        members = list(found or ()) if role.exists else []
        defaults = DefaultsObserved(usable=frozenset(usable or ()))
        entries = (spec.get("postgres") or {}).get("defaultPrivileges") or []
        holding = {d.database for d in role.dependencies if d.catalog == "pg_default_acl" and d.kind == "a"}
        params = {
            database: _defaults_params(spec, [e for e in entries if e["database"] == database])
            for database in sorted(defaults.usable | {d for d in holding if d})
        }
        # Where the grants read a database anyway, its default privileges come with that query.
        self.grants.extra = {database: ("," + DEFAULTS_COLUMNS, p) for database, p in params.items()}
        grants = self.grants.observe(grant_spec(spec))
        defaults.theirs = pg_memory.others_default_rules(grants.memory, spec["roleName"])
        self._observe_defaults(spec, params, grants.extra, defaults)
        return GroupObserved(role, grants, members, defaults)

    def _observe_defaults(
        self,
        spec: dict[str, Any],
        params: dict[str, dict[str, Any]],
        read: dict[str, tuple[Any, ...]],
        out: DefaultsObserved,
    ) -> None:
        """The role's default privileges in the databases the spec names (`out.usable`) or it holds some in
        (`params`'s): those the grants' queries read (`read`), one query in each other."""
        for database, p in params.items():
            if database in read:
                owner, roles, schemas, held = read[database]
            else:
                ((owner, roles, schemas, held),) = self.catalog.query(DEFAULTS_SQL, p, database=database)
            out.owners[database] = str(owner)
            out.roles[database] = frozenset(roles or ())
            out.schemas[database] = frozenset(schemas or ())
            rows = json.loads(held) if isinstance(held, str) else (held or [])
            for for_role, schema, code, privilege, grantable in rows:
                rule = DefaultRule(str(for_role), schema, OBJECT_TYPES[code], spec["roleName"])
                into = out.held.setdefault((database, rule), {})
                into[str(privilege)] = into.get(str(privilege), False) or bool(grantable)

    def _default_steps(
        self, spec: dict[str, Any], observed: DefaultsObserved, drop: bool = False
    ) -> list[Step]:
        """ALTER DEFAULT PRIVILEGES that make the role's default privileges exactly the spec's (none on a drop)."""
        wanted: dict[DefaultKey, Desired] = {}
        if not drop:
            problems = self._default_problems(spec, observed)
            if problems:
                raise PermanentError("InvalidReference", "; ".join(problems))
            shared: list[str] = []
            for i, entry in enumerate((spec.get("postgres") or {}).get("defaultPrivileges") or []):
                database = entry["database"]
                rule = DefaultRule(
                    entry.get("forRole", observed.owners[database]),
                    entry.get("schema"),
                    entry["objectType"],
                    spec["roleName"],
                )
                if (database, rule) in observed.theirs:
                    shared.append(
                        _shared_rule(self.owner, i, database, rule, observed.theirs[(database, rule)])
                    )
                    continue
                object_type = privs.DEFAULT_PRIVILEGE_TYPES[entry["objectType"]][0]
                merge(
                    wanted.setdefault((database, rule), {}),
                    privs.expand(object_type, entry["privileges"], self.catalog.info.version_tuple),
                    False,
                )
            if shared:
                raise PermanentError("OwnedByAnotherClaim", "; ".join(shared))
        out: list[Step] = []
        # On a drop everything goes (PostgreSQL refuses DROP ROLE while a rule names it); else the rules a
        # Database claim sets for the role are that claim's.
        keys = set(wanted) | {k for k in observed.held if drop or k not in observed.theirs}
        for database, rule in sorted(
            keys, key=lambda k: (k[0], k[1].for_role, k[1].schema or "", k[1].object_type)
        ):
            out += default_acl_steps(
                rule, wanted.get((database, rule), {}), observed.held.get((database, rule), {}), database
            )
        return out

    def _default_problems(self, spec: dict[str, Any], observed: DefaultsObserved) -> list[str]:
        problems: list[str] = []
        version = self.catalog.info.version_tuple
        for i, entry in enumerate((spec.get("postgres") or {}).get("defaultPrivileges") or []):
            path = f"spec.postgres.defaultPrivileges[{i}]"
            database = entry["database"]
            if database not in observed.usable:
                problems.append(
                    f"{path}.database: database {database} does not exist or does not accept connections; "
                    "create it first (a Database claim)"
                )
                continue
            if "forRole" in entry and entry["forRole"] not in observed.roles[database]:
                problems.append(f"{path}.forRole: role {entry['forRole']} does not exist")
            if "schema" in entry and entry["schema"] not in observed.schemas[database]:
                problems.append(
                    f"{path}.schema: schema {entry['schema']} does not exist in database {database}; "
                    "add it to the Database claim's spec.postgres.schemas"
                )
            object_type = privs.DEFAULT_PRIVILEGE_TYPES[entry["objectType"]][0]
            problems += [
                str(e)
                for e in privs.version_errors(object_type, entry["privileges"], version, f"{path}.privileges")
            ]
        return problems

    def plan(self, spec: dict[str, Any], observed: GroupObserved) -> Plan:
        role = self.roles.plan(role_spec(spec), observed.role)  # refuses a role this claim may not manage
        grants = self.grants.plan(grant_spec(spec), observed.grants)
        defaults = self._default_steps(spec, observed.defaults)
        steps = role.steps + (creating(grants.steps) if grants.creates else grants.steps)
        steps += creating(defaults) if not observed.role.exists else defaults
        return Plan(steps, warnings=[*role.warnings, *grants.warnings], creates=role.creates)

    def plan_drop(self, spec: dict[str, Any], observed: GroupObserved) -> Plan:
        """Revoke what the role holds by this claim, then DROP ROLE (its memberships go with it). Privileges
        anyone else granted it, and objects it owns, block the drop (the role handler names them)."""
        grants = self.grants.plan_drop(grant_spec(spec), observed.grants)
        if not observed.role.exists:
            return grants
        defaults = self._default_steps(spec, observed.defaults, drop=True)
        revoked = self._revoked(observed.grants)
        granted = {(f.target.database or self.catalog.admin_database, f.oid) for f in revoked}
        covered = [c for c in observed.defaults.covered if (c.target.database, c.oid) not in granted]
        defaults += acl_steps(
            spec["roleName"],
            [
                Pair(c.target, {}, dict.fromkeys(c.revoke, False), ["spec.postgres.defaultPrivileges"])
                for c in covered
            ],
        )
        dropped = (
            _revoked_keys(revoked, self.catalog.admin_database)
            + _covered_keys([c for c in covered if c.held <= c.revoke])
            + _default_keys(observed.defaults)
        )
        role_observed = dataclasses.replace(
            observed.role, dependencies=_less(observed.role.dependencies, dropped)
        )
        role = self.roles.plan_drop(role_spec(spec), role_observed)
        return Plan(grants.steps + defaults + role.steps, warnings=grants.warnings)

    def _revoked(self, observed: GrantObserved) -> list[Found]:
        """The objects on which the drop's revokes leave the role nothing: what the spec names and what this
        claim remembers granting (unless another claim remembers it too)."""
        out = [f for _, f in observed.found if f.held]
        for f in observed.forgotten:
            key = pg_memory.key(f.target.database or self.catalog.admin_database, f.target)
            if f.held and key not in observed.memory.others:
                out.append(f)
        return out

    def facts(self, spec: dict[str, Any], observed: GroupObserved) -> dict[str, Any]:
        return {
            "roleName": spec["roleName"],
            "members": observed.members,
            "privileges": self.grants.facts(grant_spec(spec), observed.grants)["privileges"],
        }


def _shared_rule(owner: Owner, i: int, database: str, rule: DefaultRule, claim: str) -> str:
    """Why an entry naming a rule a Database claim sets for the role is refused, and the fix."""
    other = claim.removesuffix(pg_memory.DATABASE_SUFFIX)
    scope = f"in schema {rule.schema}" if rule.schema else "in every schema"
    return (
        f"spec.postgres.defaultPrivileges[{i}]: Database {other} already sets this rule for role {rule.grantee} "
        f"(its spec.postgres.defaultPrivileges entry with role {rule.grantee}: {rule.object_type} of "
        f"{rule.for_role} {scope}, database {database}); each claim's set for a rule is exact, so DatabaseRole "
        f"{pg_memory.claim_id(owner.namespace, owner.name)} and Database {other} would revoke each other's "
        "privileges on every run. Name the rule in one place: remove this entry (the Database's gives the role its "
        f"privileges), or remove the entry with role {rule.grantee} from Database {other} and list here all the "
        'privileges the role needs (docs/worker.md, "Name each pair in one place")'
    )


def _defaults_params(spec: dict[str, Any], mine: list[dict[str, Any]]) -> dict[str, Any]:
    """DEFAULTS_COLUMNS' parameters for the defaultPrivileges entries of one database."""
    return {
        "dp_roles": sorted({e["forRole"] for e in mine if "forRole" in e}),
        "dp_schemas": sorted({e["schema"] for e in mine if "schema" in e}),
        "dp_role": spec["roleName"],
    }


# A pg_shdepend privilege dependency's key: (database, catalog, objid), as pg_role.Dependency reads it.
DependencyKey = tuple[str | None, str, int | None]


def _less(deps: list[Dependency], dropped: Counter[DependencyKey]) -> list[Dependency]:
    """The role's pg_shdepend dependencies, less the privilege dependencies the drop's own revokes remove (one per
    object, or per pg_default_acl rule, counted in `dropped`): what is left blocks the drop."""
    counts = Counter(dropped)
    out: list[Dependency] = []
    for d in deps:
        left = d.count - (counts.pop((d.database, d.catalog, d.objid), 0) if d.kind == "a" else 0)
        if left > 0:
            out.append(dataclasses.replace(d, count=left))
    return out


def _covered_keys(covered: list[Covered]) -> Counter[DependencyKey]:
    """The objects the drop's revokes of what default privileges gave leave the role nothing on."""
    return Counter(
        (c.target.database, c.catalog, c.oid if c.catalog == "pg_namespace" else None) for c in covered
    )


def _default_keys(observed: DefaultsObserved) -> Counter[DependencyKey]:
    """One pg_default_acl row per default-privilege rule the drop revokes."""
    return Counter((database, "pg_default_acl", None) for database, _ in observed.held)


def _revoked_keys(revoked: list[Found], admin_database: str) -> Counter[DependencyKey]:
    """The objects the drop revokes everything on."""
    keys: Counter[DependencyKey] = Counter()
    for f in revoked:
        catalog = CATALOGS[f.target.object_type]
        database = None if catalog == "pg_database" else (f.target.database or admin_database)
        keys[(database, catalog, f.oid if catalog in ("pg_database", "pg_namespace") else None)] += 1
    return keys
