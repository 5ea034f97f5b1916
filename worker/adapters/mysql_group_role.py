"""DatabaseRole on MariaDB and MySQL 8: a role (CREATE ROLE) with its privileges (DatabaseGrant's statements,
worker.adapters.mysql_grants, the role as grantee), its members in the facts, and on drop the default-role
settings that name it cleared (MariaDB keeps a dropped role as a user's default role and warns 1959 at each login).

A MariaDB role is the account `role` with no host (mysql.global_priv, is_role); a MySQL 8 role is the locked
account `role`@`%` (mysql.user, mysql.role_edges, mysql.default_roles). The MySQL 8 statements are chosen by the
server's flavor and version; this project's tests run MariaDB only, and the MySQL 8 paths at plan level.

`observe` costs one query for the role (its account, ownership row, members and default-role holders) and the
grants' one (with dbops' memory of what it granted); `plan` and `plan_drop` are pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from worker.adapters import mysql_catalog as catalog
from worker.adapters import mysql_memory
from worker.adapters.base import KindHandler, Plan, ServerInfo, Step, creating
from worker.adapters.mysql_account import AccountRows, AccountState, account_parts
from worker.adapters.mysql_grants import GrantHandler, GrantState, desired_keys
from worker.adapters.mysql_sql import Account, Sql, ident, is_mariadb, row
from worker.errors import PermanentError
from worker.ownership import Claim, Owner, claim_object
from worker.ownership import parse as parse_marker

if TYPE_CHECKING:
    from worker.adapters.mysql import MySQLAdapter

MEMORY_SUFFIX = " DatabaseRole"  # as worker.adapters.pg_group_role: a claim id no DatabaseGrant has


def role_key(info: ServerInfo) -> str:
    """The host part of a role's account: none on MariaDB, `%` on MySQL 8."""
    return "" if is_mariadb(info) else "%"


def role_account(info: ServerInfo, name: str) -> Account:
    return Account(name, None) if is_mariadb(info) else Account(name, "%")


def check_server(info: ServerInfo) -> None:
    if not is_mariadb(info) and info.version_tuple < (8, 0):
        raise PermanentError(
            "UnsupportedServer",
            f"MySQL {'.'.join(map(str, info.version_tuple))} has no roles (MySQL 8.0 added CREATE ROLE); a "
            "DatabaseRole needs MySQL 8 or MariaDB 10.0.5+: grant to each user with a DatabaseGrant instead",
        )


def member_parts(info: ServerInfo, name: str) -> list[tuple[str, list[Any]]]:
    """Who holds the role, and whose default role it is."""
    if is_mariadb(info):
        return [
            (
                row("member", ["User", "Host", "Admin_option"], "FROM mysql.roles_mapping WHERE Role = %s"),
                [name],
            ),
            (
                row(
                    "default_of",
                    ["User", "Host"],
                    "FROM mysql.global_priv WHERE JSON_VALUE(Priv, '$.default_role') = %s",
                ),
                [name],
            ),
        ]
    return [
        (
            row(
                "member",
                ["TO_USER", "TO_HOST", "WITH_ADMIN_OPTION"],
                "FROM mysql.role_edges WHERE FROM_USER = %s AND FROM_HOST = '%%'",
            ),
            [name],
        ),
        (
            row(
                "default_of",
                ["USER", "HOST"],
                "FROM mysql.default_roles WHERE DEFAULT_ROLE_USER = %s AND DEFAULT_ROLE_HOST = '%%'",
            ),
            [name],
        ),
    ]


@dataclass
class RoleState:
    exists: bool = False
    is_user: bool = False  # the name is a user account, not a role (MariaDB)
    marker: str | None = None
    catalog_exists: bool = True
    members: list[tuple[str, str, bool]] = field(default_factory=list)  # (user, host, admin option)
    default_of: list[tuple[str, str]] = field(default_factory=list)  # accounts whose default role it is


@dataclass
class GroupState:
    role: RoleState
    grants: GrantState


def grant_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The DatabaseGrant request spec of the role's privileges; ownership is the role's (checked on the role)."""
    mysql = spec.get("mysql") or {}
    return {
        "grantee": spec["roleName"],
        "granteeHosts": ["%"],
        "adopt": True,
        "mysql": {"grants": list(mysql.get("grants") or [])},
    }


def observe_role(info: ServerInfo, name: str, rows: list[tuple[Any, ...]], catalog_exists: bool) -> RoleState:
    owners = catalog.entries(rows)
    parsed = AccountRows.parse([r for r in rows if r[0] in ("account", "role", "default_role")], info)
    key = role_key(info)
    account = parsed.accounts.get(key)
    mariadb = is_mariadb(info)
    exists = account is not None and (account.is_role or not mariadb)
    entry = owners.get(key)
    members = [
        (str(r[1]), str(r[2] or ""), str(r[3] or "").upper() in ("Y", "1")) for r in rows if r[0] == "member"
    ]
    default_of = [(str(r[1]), str(r[2] or "")) for r in rows if r[0] == "default_of"]
    return RoleState(
        exists=exists,
        is_user=mariadb and any(not a.is_role for a in parsed.accounts.values()),
        marker=entry.owner if entry else None,
        catalog_exists=catalog_exists,
        members=sorted(members),
        default_of=sorted(default_of),
    )


class DatabaseRoleHandler(KindHandler[GroupState]):
    def __init__(self, adapter: MySQLAdapter) -> None:
        self.adapter = adapter
        self.owner = Owner.of(adapter.request.owner)
        self.grants = GrantHandler(adapter)
        self.grants.memory_suffix = MEMORY_SUFFIX

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"account:{spec['roleName']}"

    def observe(self, spec: dict[str, Any]) -> GroupState:
        info = self.adapter.server
        check_server(info)
        name = spec["roleName"]
        rows, catalog_exists = self.adapter.observe(
            [*account_parts(info, name)[:1], *member_parts(info, name)],
            catalog.part(catalog.ACCOUNT, name),
            f"reading role {name}",
        )
        role = observe_role(info, name, rows, catalog_exists)
        gspec = grant_spec(spec)
        grants = self.grants.observe(gspec)
        if not role.exists and not role.is_user:
            # The plan creates the role: its grants are planned against a role that holds nothing yet.
            key = role_key(info)
            empty = AccountState(host=key, plugin="", is_role=is_mariadb(info))
            grants = replace(grants, accounts={**grants.accounts, key: empty})
            grants = replace(grants, desired=desired_keys(gspec, grants, info))
        return GroupState(role, grants)

    def _claim(self, spec: dict[str, Any], role: RoleState) -> Claim:
        name = spec["roleName"]
        if role.is_user:
            raise PermanentError(
                "AlreadyExists",
                f"spec.roleName: {name} is a user account in the server, not a role; a role and a user cannot "
                "share a name on MariaDB: choose another roleName",
            )
        return claim_object(f"role {name}", role.exists, role.marker, self.owner, bool(spec.get("adopt")))

    def _mark(self, spec: dict[str, Any], role: RoleState, reason: str) -> list[Step]:
        info = self.adapter.server
        steps = [
            catalog.mark_step(catalog.ACCOUNT, spec["roleName"], role_key(info), self.owner.marker, reason)
        ]
        if not role.catalog_exists:
            steps = [*catalog.create_steps(), *steps]
        return steps

    def plan(self, spec: dict[str, Any], observed: GroupState) -> Plan:
        name = spec["roleName"]
        verdict = self._claim(spec, observed.role)
        steps: list[Step] = []
        if verdict is Claim.NEW:
            # The ownership row first: DDL commits on its own, and a role without its row would lock the claim out.
            steps += self._mark(spec, observed.role, f"role {name} is new: it is marked as {self.owner}'s")
            steps.append(Sql().add("CREATE ROLE").add(ident(name)).step(f"role {name} does not exist"))
        elif verdict is Claim.MARK:
            steps += self._mark(spec, observed.role, f"spec.adopt: role {name} is taken over by {self.owner}")
        grants = self.grants.plan(grant_spec(spec), observed.grants)
        if verdict is Claim.NEW:
            return Plan(steps + grants.steps, warnings=grants.warnings, creates=True)
        grant_steps = creating(grants.steps) if grants.creates else grants.steps
        # Adopting an existing role (its ownership row) is no creation: driftPolicy ignore does not adopt.
        return Plan(steps + grant_steps, drift=grants.drift, warnings=grants.warnings)

    def plan_drop(self, spec: dict[str, Any], observed: GroupState) -> Plan:
        """The default-role settings naming the role cleared, DROP ROLE (its privileges and memberships go with
        it), then dbops' memory of its grants and its ownership row forgotten."""
        info = self.adapter.server
        name = spec["roleName"]
        role = observed.role
        _, forget = mysql_memory.steps(observed.grants.memory, self.grants.claim, name, frozenset())
        steps: list[Step] = []
        if role.exists:
            self._claim(spec, role)
            # MySQL 8's DROP ROLE removes the role from mysql.default_roles itself; MariaDB's does not.
            for user, host in role.default_of if is_mariadb(info) else ():
                sql = Sql().add("SET DEFAULT ROLE NONE FOR").account(Account(user, host))
                steps.append(sql.step(f"role {name} is {user}@{host}'s default role; it is dropped"))
            steps.append(Sql().add("DROP ROLE").add(ident(name)).step("the spec asks to drop the role"))
        if role.marker is not None and (role.exists or self._mine(role.marker)):
            steps.append(
                catalog.forget_step(catalog.ACCOUNT, name, [role_key(info)], f"role {name} is dropped")
            )
        return Plan(steps + forget)

    def _mine(self, marker: str) -> bool:
        found = parse_marker(marker)
        return found is not None and found.same(self.owner)

    def facts(self, spec: dict[str, Any], observed: GroupState) -> dict[str, Any]:
        admin = self.adapter.secrets.admin_username
        # MariaDB's CREATE ROLE grants the role to its creator WITH ADMIN OPTION: the admin is not a member.
        members = [f"{u}@{h}" for u, h, adm in observed.role.members if not (u == admin and adm)]
        return {
            "roleName": spec["roleName"],
            "members": members,
            "privileges": self.grants.facts(grant_spec(spec), observed.grants)["privileges"],
        }
