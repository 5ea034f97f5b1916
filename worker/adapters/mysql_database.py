"""Database on MySQL/MariaDB: CREATE DATABASE with character set and collation, ALTER DATABASE on change."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from worker.adapters import mysql_catalog as catalog
from worker.adapters.base import KindHandler, Plan, Step
from worker.adapters.mysql_sql import Account, Sql, ident, is_mariadb, placeholders, row, union
from worker.errors import PermanentError
from worker.ownership import Claim, Owner, claim_object
from worker.ownership import parse as parse_marker

if TYPE_CHECKING:
    from worker.adapters.mysql import MySQLAdapter


@dataclass(frozen=True)
class DatabaseState:
    exists: bool
    charset: str | None = None
    collation: str | None = None
    # What the server knows of the spec's character set and collation (empty when the spec names none).
    charset_default_collation: str | None = None
    # (character set, full collation name) pairs the spec's collation name applies to.
    collation_targets: tuple[tuple[str, str], ...] = ()
    marker: str | None = None  # the owning claim's marker in dbops' catalog
    catalog_exists: bool = True
    # For a drop: the privileges accounts other than the admin hold on the database and the objects in it
    # (database-, table-, column- and routine-level), which DROP DATABASE leaves behind.
    leftover_grants: tuple[LeftoverGrant, ...] = ()


@dataclass(frozen=True)
class LeftoverGrant:
    account: Account
    on: str  # `db`.*, `db`.`t`, PROCEDURE `db`.`p`
    privileges: tuple[str, ...]  # column privileges as SELECT (`a`, `b`)
    grant_option: bool = False


def desired_encoding(spec: dict[str, Any], state: DatabaseState) -> tuple[str | None, str | None]:
    """The (character set, collation) the spec asks for, resolved by the server's catalogs; None = unmanaged.
    Raises a permanent error naming the field when the server does not know them or they do not fit."""
    options = spec.get("mysql") or {}
    charset, collation = options.get("charset"), options.get("collation")
    if charset and state.charset_default_collation is None:
        raise PermanentError(
            "InvalidSpec",
            f"spec.mysql.charset: the server has no character set {charset!r} "
            "(SHOW CHARACTER SET lists the ones it has)",
        )
    if not collation:
        return charset, None
    targets = state.collation_targets
    if not targets:
        raise PermanentError(
            "InvalidSpec",
            f"spec.mysql.collation: the server has no collation {collation!r} (SHOW COLLATION lists them)",
        )
    if charset:
        fitting = [t for t in targets if t[0] == charset]
        if not fitting:
            raise PermanentError(
                "InvalidSpec",
                f"spec.mysql.collation: {collation!r} does not belong to character set {charset!r}; "
                f"it belongs to {', '.join(sorted({t[0] for t in targets}))}",
            )
        return fitting[0]
    exact = [t for t in targets if t[1] == collation]
    if len(exact) == 1:
        return exact[0]
    if len({t[0] for t in targets}) == 1:
        return targets[0]
    raise PermanentError(
        "InvalidSpec",
        f"spec.mysql.collation: {collation!r} applies to several character sets; set spec.mysql.charset too",
    )


def _mark_steps(name: str, state: DatabaseState, owner: Owner, reason: str) -> list[Step]:
    steps = [] if state.catalog_exists else catalog.create_steps()
    return [*steps, catalog.mark_step(catalog.DATABASE, name, "", owner.marker, reason)]


def plan_database(spec: dict[str, Any], state: DatabaseState, owner: Owner) -> Plan:
    name = spec["name"]
    verdict = claim_object(f"database {name}", state.exists, state.marker, owner, bool(spec.get("adopt")))
    charset, collation = desired_encoding(spec, state)
    plan = Plan(creates=not state.exists)
    if not state.exists:
        # The marker first: DDL commits on its own, and a marker without its database (the worker died in
        # between) is harmless, while a database without its marker would lock its own claim out.
        plan.steps += _mark_steps(name, state, owner, f"database {name} is new: it is marked as {owner}'s")
        sql = Sql().add("CREATE DATABASE").add(ident(name))
        if charset:
            sql.add("CHARACTER SET").add(ident(charset))
        if collation:
            sql.add("COLLATE").add(ident(collation))
        plan.steps.append(sql.step(f"database {name} does not exist"))
        return plan
    if verdict is Claim.MARK:
        plan.steps += _mark_steps(name, state, owner, f"spec.adopt: database {name} is taken over by {owner}")
    wrong_charset = charset is not None and charset != state.charset
    wrong_collation = collation is not None and collation != state.collation
    if wrong_charset or wrong_collation:
        sql = Sql().add("ALTER DATABASE").add(ident(name))
        if charset:
            sql.add("CHARACTER SET").add(ident(charset))
        if collation:
            sql.add("COLLATE").add(ident(collation))
        was = f"{state.charset}/{state.collation}"
        want = f"{charset or state.charset}/{collation or '(default)'}"
        plan.steps.append(sql.step(f"database {name} defaults are {was}, spec wants {want}"))
    return plan


def plan_drop_database(spec: dict[str, Any], state: DatabaseState, owner: Owner) -> Plan:
    plan = Plan()
    name = spec["name"]
    if state.exists:  # raises unless the database is this claim's (or adopted)
        claim_object(f"database {name}", True, state.marker, owner, bool(spec.get("adopt")))
    found = parse_marker(state.marker)
    if state.exists or (found is not None and found.same(owner)):
        # Before the drop (a routine's privileges cannot be revoked once it is gone): DROP DATABASE keeps every
        # grant on the database and its objects, so a database created again under the name would be open to
        # the old accounts at once.
        plan.steps += leftover_revokes(name, state.leftover_grants)
    if state.exists:
        plan.steps.append(Sql().add("DROP DATABASE").add(ident(name)).step("ensure: Absent"))
    # Its row goes; another claim's row left without its database stays (that claim forgets it).
    if state.marker is not None and (state.exists or (found is not None and found.same(owner))):
        plan.steps.append(catalog.forget_step(catalog.DATABASE, name, [""], f"database {name} is dropped"))
    return plan


def leftover_revokes(name: str, grants: tuple[LeftoverGrant, ...]) -> list[Step]:
    steps: list[Step] = []
    why = f"database {name} is dropped, and DROP DATABASE keeps the grants on it"
    for g in grants:
        if g.privileges:
            sql = Sql().add(f"REVOKE {', '.join(g.privileges)} ON {g.on} FROM").account(g.account)
            steps.append(sql.step(why))
        if g.grant_option:
            steps.append(Sql().add(f"REVOKE GRANT OPTION ON {g.on} FROM").account(g.account).step(why))
    return steps


def _quoted(user: str, host: str) -> str:
    """SQL for `'user'@'host'`, as information_schema names accounts in GRANTEE columns."""
    return f"CONCAT('''', {user}, '''@''', {host}, '''')"


# The admin itself: its own grants are never revoked.
_ADMIN = _quoted("SUBSTRING_INDEX(CURRENT_USER(), '@', 1)", "SUBSTRING_INDEX(CURRENT_USER(), '@', -1)")


def leftover_parts(name: str) -> list[tuple[str, list[Any]]]:
    """Every grant on database `name` and what is in it, of every account but the admin."""
    patterns = sorted({name, name.replace("_", "\\_")})
    others = f"GRANTEE <> {_ADMIN}"
    return [
        (
            row(
                "g_db",
                ["GRANTEE", "TABLE_SCHEMA", "PRIVILEGE_TYPE", "IS_GRANTABLE"],
                "FROM information_schema.SCHEMA_PRIVILEGES "
                f"WHERE TABLE_SCHEMA IN ({placeholders(len(patterns))}) AND {others}",
            ),
            patterns,
        ),
        (
            row(
                "g_table",
                ["GRANTEE", "TABLE_NAME", "PRIVILEGE_TYPE", "IS_GRANTABLE"],
                f"FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = %s AND {others}",
            ),
            [name],
        ),
        (
            row(
                "g_column",
                ["GRANTEE", "TABLE_NAME", "COLUMN_NAME", "PRIVILEGE_TYPE"],
                f"FROM information_schema.COLUMN_PRIVILEGES WHERE TABLE_SCHEMA = %s AND {others}",
            ),
            [name],
        ),
        (
            row(
                "g_routine",
                [_quoted("User", "Host"), "Routine_name", "Routine_type", "Proc_priv"],
                f"FROM mysql.procs_priv WHERE Db = %s AND {_quoted('User', 'Host')} <> {_ADMIN}",
            ),
            [name],
        ),
    ]


def _account(grantee: str, mariadb: bool) -> Account | None:
    """An Account from information_schema's `'user'@'host'`; None for the servers' own accounts."""
    user, sep, host = grantee.rpartition("'@'")
    if not sep:
        return None
    user, host = user.removeprefix("'"), host.removesuffix("'")
    if user in ("root", "mysql", "mariadb.sys") or user.startswith("mysql."):
        return None
    return Account(user, None if (host == "" and mariadb) else host)


def _yes(value: Any) -> bool:
    return str(value or "").upper().startswith("Y")


def leftover_grants(rows: list[tuple[Any, ...]], name: str, mariadb: bool) -> tuple[LeftoverGrant, ...]:
    held: dict[tuple[Account, str], tuple[set[str], list[bool]]] = {}
    columns: dict[tuple[Account, str], dict[str, list[str]]] = {}

    def add(account: Account, on: str, privilege: str, grantable: bool) -> None:
        privileges, option = held.setdefault((account, on), (set(), [False]))
        if privilege == "GRANT":
            option[0] = True
        elif privilege != "USAGE":
            privileges.add(privilege)
        option[0] = option[0] or grantable

    for kind, a, b, c, d, *_ in rows:
        account = _account(str(a or ""), mariadb)
        if account is None:
            continue
        if kind == "g_db":
            add(account, f"{ident(str(b))}.*", str(c).upper(), _yes(d))
        elif kind == "g_table":
            add(account, f"{ident(name)}.{ident(str(b))}", str(c).upper(), _yes(d))
        elif kind == "g_column":
            on = f"{ident(name)}.{ident(str(b))}"
            columns.setdefault((account, on), {}).setdefault(str(d).upper(), []).append(ident(str(c)))
        elif kind == "g_routine":
            on = f"{str(c).upper()} {ident(name)}.{ident(str(b))}"
            for privilege in str(d or "").split(","):
                if privilege.strip():
                    add(account, on, privilege.strip().upper(), False)
    out: list[LeftoverGrant] = []
    for (account, on), (privileges, option) in sorted(held.items(), key=lambda i: (str(i[0][0]), i[0][1])):
        out.append(LeftoverGrant(account, on, tuple(sorted(privileges)), option[0]))
    for (account, on), by_privilege in sorted(columns.items(), key=lambda i: (str(i[0][0]), i[0][1])):
        clause = tuple(f"{p} ({', '.join(sorted(cols))})" for p, cols in sorted(by_privilege.items()))
        out.append(LeftoverGrant(account, on, clause))
    return tuple(out)


class DatabaseHandler(KindHandler[DatabaseState]):
    def __init__(self, adapter: MySQLAdapter) -> None:
        self.adapter = adapter
        self.owner = Owner.of(adapter.request.owner)

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"database:{spec['name']}"

    def observe(self, spec: dict[str, Any]) -> DatabaseState:
        options = spec.get("mysql") or {}
        parts = [
            (
                row(
                    "schema",
                    ["DEFAULT_CHARACTER_SET_NAME", "DEFAULT_COLLATION_NAME"],
                    "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                ),
                [spec["name"]],
            )
        ]
        if options.get("charset"):
            parts.append(
                (
                    row(
                        "charset",
                        ["CHARACTER_SET_NAME", "DEFAULT_COLLATE_NAME"],
                        "FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = %s",
                    ),
                    [options["charset"]],
                )
            )
        if options.get("collation"):
            info = self.adapter.server
            # MariaDB 10.10+ names collations without their character set (uca1400_ai_ci) and lists the full
            # names per character set.
            if is_mariadb(info) and info.version_tuple >= (10, 10):
                source = (
                    "FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY "
                    "WHERE COLLATION_NAME = %s OR FULL_COLLATION_NAME = %s"
                )
                parts.append(
                    (
                        row("collation", ["CHARACTER_SET_NAME", "FULL_COLLATION_NAME"], source),
                        [options["collation"], options["collation"]],
                    )
                )
            else:
                source = (
                    "FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY WHERE COLLATION_NAME = %s"
                )
                parts.append(
                    (
                        row("collation", ["CHARACTER_SET_NAME", "COLLATION_NAME"], source),
                        [options["collation"]],
                    )
                )
        rows, exists = self.adapter.observe(
            parts, catalog.part(catalog.DATABASE, spec["name"]), f"reading database {spec['name']}"
        )
        marker = catalog.entries(rows).get("")
        return replace(state_from_rows(rows), marker=marker.owner if marker else None, catalog_exists=exists)

    def observe_drop(self, spec: dict[str, Any]) -> DatabaseState:
        """`observe`, plus the grants DROP DATABASE would leave behind (one more query: drops are rare)."""
        state = self.observe(spec)
        name = spec["name"]
        sql, params = union(leftover_parts(name))
        rows = self.adapter.query(sql, params, f"reading the grants on database {name}")
        return replace(state, leftover_grants=leftover_grants(rows, name, is_mariadb(self.adapter.server)))

    def plan(self, spec: dict[str, Any], observed: DatabaseState) -> Plan:
        return plan_database(spec, observed, self.owner)

    def plan_drop(self, spec: dict[str, Any], observed: DatabaseState) -> Plan:
        return plan_drop_database(spec, observed, self.owner)

    def facts(self, spec: dict[str, Any], observed: DatabaseState) -> dict[str, Any]:
        out: dict[str, Any] = {"name": spec["name"]}
        if observed.exists:
            out["charset"] = observed.charset
            out["collation"] = observed.collation
        return out


def state_from_rows(rows: list[tuple[Any, ...]]) -> DatabaseState:
    exists, charset, collation, default = False, None, None, None
    targets: list[tuple[str, str]] = []
    for kind, a, b, *_ in rows:
        if kind == "catalog":
            continue
        if kind == "schema":
            exists, charset, collation = True, a, b
        elif kind == "charset":
            default = b
        elif kind == "collation" and a and b:
            targets.append((a, b))
    return DatabaseState(exists, charset, collation, default, tuple(sorted(targets)))
