"""DatabaseRole on PostgreSQL: a NOLOGIN role (DatabaseUser's role statements, worker.adapters.pg_role) with its
privileges (DatabaseGrant's, worker.adapters.pg_grants, the role as grantee), and its members in the facts.

`observe` costs the role query, the grantee query (with dbops' memory of what it granted) plus one per database the
grants name, and one query for the members; `plan` and `plan_drop` are pure. The role is marked as the claim's like
a DatabaseUser's role (a role dbops did not create is refused unless `adopt: true`); the grants are remembered in
`_dbops.grants` under the claim's own id, so removing one from the spec revokes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters import pg_memory
from worker.adapters.base import KindHandler, Plan, creating
from worker.adapters.pg_acl import Found
from worker.adapters.pg_grants import GrantHandler, GrantObserved
from worker.adapters.pg_role import Dependency, RoleHandler, RoleObserved
from worker.adapters.pg_sql import Catalog
from worker.ownership import Owner

MEMBERS_SQL = """
SELECT coalesce(array_agg(m.rolname::text ORDER BY m.rolname), '{}')
  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
 WHERE r.rolname = %(name)s
"""

# The memory row of a DatabaseRole's grants: a claim id a DatabaseGrant's never is (claim names have no spaces).
MEMORY_SUFFIX = " DatabaseRole"

CATALOGS = {
    privs.DATABASE: "pg_database",
    privs.SCHEMA: "pg_namespace",
    privs.TABLE: "pg_class",
    privs.SEQUENCE: "pg_class",
    privs.FUNCTION: "pg_proc",
}


@dataclass
class GroupObserved:
    role: RoleObserved
    grants: GrantObserved
    members: list[str]


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
        self.roles = RoleHandler(catalog, None, owner)
        self.grants = GrantHandler(catalog, owner)
        self.grants.creates_grantee = True
        self.grants.memory_suffix = MEMORY_SUFFIX

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"role:{spec['roleName']}"

    def observe(self, spec: dict[str, Any]) -> GroupObserved:
        role = self.roles.observe(role_spec(spec))
        return self._rest(spec, role)

    def observe_drop(self, spec: dict[str, Any]) -> GroupObserved:
        role = self.roles.observe_drop(role_spec(spec))
        return self._rest(spec, role)

    def _rest(self, spec: dict[str, Any], role: RoleObserved) -> GroupObserved:
        grants = self.grants.observe(grant_spec(spec))
        members: list[str] = []
        if role.exists:
            ((found,),) = self.catalog.query(MEMBERS_SQL, {"name": spec["roleName"]})
            members = list(found or ())
        return GroupObserved(role, grants, members)

    def plan(self, spec: dict[str, Any], observed: GroupObserved) -> Plan:
        role = self.roles.plan(role_spec(spec), observed.role)  # refuses a role this claim may not manage
        grants = self.grants.plan(grant_spec(spec), observed.grants)
        steps = role.steps + (creating(grants.steps) if grants.creates else grants.steps)
        return Plan(steps, warnings=[*role.warnings, *grants.warnings], creates=role.creates)

    def plan_drop(self, spec: dict[str, Any], observed: GroupObserved) -> Plan:
        """Revoke what the role holds by this claim, then DROP ROLE (its memberships go with it). Privileges
        anyone else granted it, and objects it owns, block the drop (the role handler names them)."""
        grants = self.grants.plan_drop(grant_spec(spec), observed.grants)
        if not observed.role.exists:
            return grants
        revoked = self._revoked(observed.grants)
        role_observed = dataclasses.replace(
            observed.role,
            dependencies=_without(observed.role.dependencies, revoked, self.catalog.admin_database),
        )
        role = self.roles.plan_drop(role_spec(spec), role_observed)
        return Plan(grants.steps + role.steps, warnings=grants.warnings)

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


def _without(deps: list[Dependency], revoked: list[Found], admin_database: str) -> list[Dependency]:
    """pg_shdepend's privilege dependencies of the role, less one per object the drop revokes everything on."""
    counts: dict[tuple[str | None, str, int | None], int] = {}
    for f in revoked:
        catalog = CATALOGS[f.target.object_type]
        database = None if catalog == "pg_database" else (f.target.database or admin_database)
        objid = f.oid if catalog in ("pg_database", "pg_namespace") else None
        counts[(database, catalog, objid)] = counts.get((database, catalog, objid), 0) + 1
    out: list[Dependency] = []
    for d in deps:
        left = d.count
        if d.kind == "a":
            left -= counts.pop((d.database, d.catalog, d.objid), 0)
        if left > 0:
            out.append(dataclasses.replace(d, count=left))
    return out
