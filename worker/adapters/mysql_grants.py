"""DatabaseGrant on MySQL/MariaDB: exact privilege sets on the grantee/object pairs the spec names.

Ownership rule (docs/worker-mysql.md): on each pair the spec names, the privileges and the grant option become
exactly what it lists; shrinking the list revokes, a privilege added by hand on a named pair is revoked on the
next apply, `privileges: []` revokes everything there. Pairs the spec does not name are never touched.

Observation is one query over information_schema's *_PRIVILEGES views (the server's own names for every
privilege, per flavor and version), mysql.procs_priv for routines, the role tables, and the catalogs that prove
the named objects exist. Everything is validated before the first statement: DCL is not transactional.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dbops_api.mysql_privileges import ROUTINE_LEVELS, expand
from worker.adapters import mysql_catalog as catalog
from worker.adapters import mysql_memory
from worker.adapters.base import KindHandler, Plan, ServerInfo, Step
from worker.adapters.mysql_account import (
    AccountRows,
    AccountState,
    account_parts,
    default_role_steps,
    known_role_part,
    membership_steps,
    role_steps,
)
from worker.adapters.mysql_sql import Account, Sql, db_pattern, ident, is_mariadb, placeholders, row, union
from worker.errors import PermanentError
from worker.ownership import Owner, check_grantee

if TYPE_CHECKING:
    from worker.adapters.mysql import MySQLAdapter


@dataclass(frozen=True, order=True)
class Target:
    """One object a grant names. Routine and column names are lower case: the servers compare them so."""

    level: str
    database: str = ""
    name: str = ""  # table or routine
    column: str = ""


@dataclass(frozen=True)
class Wanted:
    target: Target
    privileges: frozenset[str]
    grant_option: bool
    name: str = ""  # table or routine as spelled in the spec
    column: str = ""
    index: int = 0  # position in spec.mysql.grants, for messages


@dataclass
class Held:
    privileges: set[str] = field(default_factory=set)
    grant_option: bool = False


@dataclass(frozen=True)
class GrantState:
    accounts: dict[str, AccountState]  # host ('' for a MariaDB role) -> account
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    # host -> the roles held WITH ADMIN OPTION
    admin_roles: dict[str, frozenset[str]] = field(default_factory=dict)
    known_roles: frozenset[str] = frozenset()
    held: dict[tuple[str, Target], Held] = field(default_factory=dict)
    # Database-level grants on the unescaped name: a wildcard pattern that also covers the named database.
    aliases: dict[tuple[str, Target], Held] = field(default_factory=dict)
    schemas: frozenset[str] = frozenset()
    tables: frozenset[tuple[str, str]] = frozenset()
    columns: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    routines: frozenset[tuple[str, str, str]] = frozenset()  # (database, lower name, PROCEDURE|FUNCTION)
    partial_revokes: bool = False
    owners: dict[str, catalog.Entry] = field(default_factory=dict)  # host ('' for a role) -> catalog row
    memory: mysql_memory.Memory = mysql_memory.NO_TABLE  # what dbops granted before (this claim and others)
    desired: frozenset[mysql_memory.Key] = frozenset()  # the pairs the spec names now, as memory keys
    # Pairs this claim's memory names and the spec (and no other claim's memory) no longer does, and what the
    # grantee holds on them (observed only when there are some).
    forgotten: frozenset[mysql_memory.Key] = frozenset()
    forgotten_state: GrantState | None = None


def _grants(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list((spec.get("mysql") or {}).get("grants") or [])


def _database_of(spec: dict[str, Any], grant: dict[str, Any]) -> str:
    return str(grant.get("database") or spec.get("database") or "")


def wanted_grants(spec: dict[str, Any], info: ServerInfo) -> tuple[list[Wanted], list[str]]:
    """The exact privilege set per named pair on this server, and every privilege problem (version-specific)."""
    out: list[Wanted] = []
    problems: list[str] = []
    for i, grant in enumerate(_grants(spec)):
        level = grant["level"]
        privileges, found = expand(
            list(grant.get("privileges") or []), level, info.flavor, info.version_tuple
        )
        problems += [f"spec.mysql.grants[{i}].privileges: {p}" for p in found]
        option = bool(grant.get("withGrantOption"))
        database = _database_of(spec, grant)
        if level == "global":
            out.append(Wanted(Target("global"), privileges, option, index=i))
        elif level == "database":
            out.append(Wanted(Target("database", database), privileges, option, index=i))
        elif level == "table":
            table = grant["table"]
            out.append(Wanted(Target("table", database, table), privileges, option, table, index=i))
        elif level == "column":
            table = grant["table"]
            for column in grant["columns"]:
                target = Target("column", database, table, column.lower())
                out.append(Wanted(target, privileges, False, table, column, index=i))
        else:
            name = grant[level]
            out.append(Wanted(Target(level, database, name.lower()), privileges, option, name, index=i))
    return out, problems


def missing_objects(wanted: list[Wanted], state: GrantState) -> list[str]:
    problems: list[str] = []
    for w in wanted:
        t, path = w.target, f"spec.mysql.grants[{w.index}]"
        if t.level == "global":
            continue
        if t.database not in state.schemas:
            problems.append(f"{path}.database: database {t.database} does not exist")
        elif t.level in ("table", "column") and (t.database, t.name) not in state.tables:
            problems.append(f"{path}.table: table {t.database}.{w.name} does not exist")
        elif t.level == "column" and t.column not in state.columns.get((t.database, t.name), frozenset()):
            problems.append(f"{path}.columns: table {t.database}.{w.name} has no column {w.column}")
        elif t.level in ROUTINE_LEVELS and (t.database, t.name, t.level.upper()) not in state.routines:
            problems.append(f"{path}.{t.level}: {t.level} {t.database}.{w.name} does not exist")
    return list(dict.fromkeys(problems))


def grant_accounts(spec: dict[str, Any], state: GrantState, info: ServerInfo) -> list[Account]:
    """The accounts that receive the grants: grantee@each of granteeHosts, or the MariaDB role `grantee`."""
    grantee = spec["grantee"]
    hosts = list(spec.get("granteeHosts") or ["%"])
    users = {h for h, a in state.accounts.items() if not a.is_role}
    missing = [h for h in hosts if h not in users]
    if not missing:
        return [Account(grantee, h) for h in hosts]
    role = state.accounts.get("")
    if is_mariadb(info) and role is not None and role.is_role and not (set(hosts) & users):
        return [Account(grantee, None)]
    shown = ", ".join(f"'{grantee}'@'{h}'" for h in missing)
    raise PermanentError(
        "GranteeNotFound",
        f"spec.grantee: {shown} does not exist; create the user first (a DatabaseUser whose allowedHosts "
        "include these hosts) or name an existing role",
    )


def _on(
    target: Target, name: str, info: ServerInfo, partial_revokes: bool, pattern: str | None = None
) -> str:
    if target.level == "global":
        return "*.*"
    if target.level == "database":
        return f"{ident(pattern or db_pattern(target.database, info, partial_revokes))}.*"
    if target.level in ROUTINE_LEVELS:
        return f"{target.level.upper()} {ident(target.database)}.{ident(name)}"
    return f"{ident(target.database)}.{ident(name)}"


def _names(privileges: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(privileges))


def _pair_steps(
    account: Account, w: Wanted, held: Held, info: ServerInfo, partial_revokes: bool
) -> list[Step]:
    on = _on(w.target, w.name, info, partial_revokes)
    what = f"{account} on {on}"
    steps: list[Step] = []
    extra = held.privileges - w.privileges
    if extra:
        steps.append(
            Sql()
            .add(f"REVOKE {_names(extra)} ON {on} FROM")
            .account(account)
            .step(f"{what}: {_names(extra)} not in the spec's list")
        )
    if held.grant_option and not w.grant_option:
        # Revoked on its own: `REVOKE ALL PRIVILEGES, GRANT OPTION` exists only without an ON clause.
        steps.append(
            Sql()
            .add(f"REVOKE GRANT OPTION ON {on} FROM")
            .account(account)
            .step(f"{what}: withGrantOption is false")
        )
    missing = w.privileges - held.privileges
    if missing or (w.grant_option and not held.grant_option):
        sql = Sql().add(f"GRANT {_names(missing or w.privileges)} ON {on} TO").account(account)
        reason = f"{what}: {_names(missing)} in the spec's list" if missing else f"{what}: withGrantOption"
        if w.grant_option:
            sql.add("WITH GRANT OPTION")
        steps.append(sql.step(reason))
    return steps


def _column_steps(
    account: Account, table_wants: list[Wanted], state: GrantState, host_key: str
) -> list[Step]:
    """Column pairs of one table, in one REVOKE and one GRANT: `SELECT (a, b), INSERT (a)`."""
    first = table_wants[0]
    on = f"{ident(first.target.database)}.{ident(first.name)}"
    revoke: dict[str, list[str]] = {}
    grant: dict[str, list[str]] = {}
    for w in table_wants:
        held = state.held.get((host_key, w.target), Held())
        for privilege in sorted(held.privileges - w.privileges):
            revoke.setdefault(privilege, []).append(w.column)
        for privilege in sorted(w.privileges - held.privileges):
            grant.setdefault(privilege, []).append(w.column)

    def clause(spec: dict[str, list[str]]) -> str:
        return ", ".join(f"{p} ({', '.join(ident(c) for c in cols)})" for p, cols in sorted(spec.items()))

    steps: list[Step] = []
    if revoke:
        steps.append(
            Sql()
            .add(f"REVOKE {clause(revoke)} ON {on} FROM")
            .account(account)
            .step(f"{account} on columns of {on}: not in the spec's list")
        )
    if grant:
        steps.append(
            Sql()
            .add(f"GRANT {clause(grant)} ON {on} TO")
            .account(account)
            .step(f"{account} on columns of {on}: in the spec's list")
        )
    return steps


def _alias_steps(account: Account, target: Target, held: Held) -> list[Step]:
    on = f"{ident(target.database)}.*"
    steps: list[Step] = []
    what = f"{account} on {on} (a wildcard pattern that covers database {target.database})"
    if held.privileges:
        steps.append(
            Sql()
            .add(f"REVOKE {_names(held.privileges)} ON {on} FROM")
            .account(account)
            .step(f"{what}: the spec owns this database's privileges")
        )
    if held.grant_option:
        steps.append(
            Sql()
            .add(f"REVOKE GRANT OPTION ON {on} FROM")
            .account(account)
            .step(f"{what}: the spec owns this database's grant option")
        )
    return steps


def plan_grants(spec: dict[str, Any], state: GrantState, info: ServerInfo, drop: bool = False) -> Plan:
    if drop:
        # Accounts already gone hold nothing to revoke: dropping stays idempotent.
        try:
            accounts = grant_accounts(spec, state, info)
        except PermanentError:
            hosts = spec.get("granteeHosts") or ["%"]
            accounts = [Account(spec["grantee"], h) for h in hosts if h in state.accounts]
    else:
        accounts = grant_accounts(spec, state, info)
    wanted, problems = wanted_grants(spec, info)
    roles: list[str] | None = (spec.get("mysql") or {}).get("roles")
    if drop:
        wanted = [Wanted(w.target, frozenset(), False, w.name, w.column, w.index) for w in wanted]
    else:
        if problems:
            raise PermanentError("InvalidPrivilege", "; ".join(problems))
        missing = missing_objects(wanted, state)
        if roles:
            missing += [
                f"spec.mysql.roles: role {r} does not exist" for r in roles if r not in state.known_roles
            ]
        if missing:
            raise PermanentError("ObjectNotFound", "; ".join(missing) + "; nothing was changed")
    plan = Plan()
    for account in accounts:
        key = account.host or ""
        columns: dict[tuple[str, str], list[Wanted]] = {}
        for w in wanted:
            if w.target.level == "column":
                columns.setdefault((w.target.database, w.target.name), []).append(w)
                continue
            held = state.held.get((key, w.target), Held())
            plan.steps += _pair_steps(account, w, held, info, state.partial_revokes)
            alias = state.aliases.get((key, w.target))
            if alias is not None:
                plan.steps += _alias_steps(account, w.target, alias)
        for table_wants in columns.values():
            plan.steps += _column_steps(account, table_wants, state, key)
        if roles is not None:
            have = state.roles.get(key, frozenset())
            if drop:
                # Roles the spec does not name stay, admin option included.
                kept = [r for r in have if r not in roles]
                plan.steps += role_steps(account, have, kept, info, want_admin=None)
                # A revoked role left as a default role dangles (MariaDB warns 1959 at every login).
                current = state.accounts[key].default_roles if key in state.accounts else ()
                if any(r in roles for r in current):
                    remaining = [r for r in current if r not in roles]
                    plan.steps += default_role_steps(account, current, remaining, info)
            else:
                plan.steps += membership_steps(
                    account,
                    have,
                    roles,
                    info,
                    current_defaults=state.accounts[key].default_roles if key in state.accounts else (),
                    have_admin=state.admin_roles.get(key, frozenset()),
                    want_admin=frozenset((spec.get("mysql") or {}).get("adminRoles") or ()),
                )
    return plan


# --- observation ----------------------------------------------------------------------------------------------------


def observe_parts(spec: dict[str, Any], info: ServerInfo) -> list[tuple[str, list[Any]]]:
    grantee = spec["grantee"]
    hosts = list(spec.get("granteeHosts") or ["%"])
    grantees = [Account(grantee, h).grantee() for h in hosts] + [Account(grantee, "").grantee()]
    in_grantees = f"GRANTEE IN ({placeholders(len(grantees))})"
    parts = account_parts(info, grantee)
    roles = (spec.get("mysql") or {}).get("roles")
    if roles:
        parts.append(known_role_part(info, roles))
    grants = _grants(spec)
    levels = {g["level"] for g in grants}

    def databases(*wanted_levels: str) -> list[str]:
        return sorted({_database_of(spec, g) for g in grants if g["level"] in wanted_levels})

    if "global" in levels:
        parts.append(
            (
                row(
                    "p_global",
                    ["GRANTEE", "PRIVILEGE_TYPE", "IS_GRANTABLE"],
                    f"FROM information_schema.USER_PRIVILEGES WHERE {in_grantees}",
                ),
                grantees,
            )
        )
        if not is_mariadb(info):
            # MySQL 8 dynamic privileges live in their own table.
            parts.append(
                (
                    row(
                        "p_global",
                        ["CONCAT('''', USER, '''@''', HOST, '''')", "PRIV", "WITH_GRANT_OPTION"],
                        "FROM mysql.global_grants WHERE USER = %s",
                    ),
                    [grantee],
                )
            )
    if "database" in levels:
        names = databases("database")
        patterns = sorted({*names, *(db_pattern(n, info) for n in names)})
        parts.append(
            (
                row(
                    "p_db",
                    ["GRANTEE", "TABLE_SCHEMA", "PRIVILEGE_TYPE", "IS_GRANTABLE"],
                    f"FROM information_schema.SCHEMA_PRIVILEGES WHERE {in_grantees} "
                    f"AND TABLE_SCHEMA IN ({placeholders(len(patterns))})",
                ),
                [*grantees, *patterns],
            )
        )
    if "table" in levels:
        names = databases("table")
        parts.append(
            (
                row(
                    "p_table",
                    ["GRANTEE", "TABLE_SCHEMA", "TABLE_NAME", "PRIVILEGE_TYPE", "IS_GRANTABLE"],
                    f"FROM information_schema.TABLE_PRIVILEGES WHERE {in_grantees} "
                    f"AND TABLE_SCHEMA IN ({placeholders(len(names))})",
                ),
                [*grantees, *names],
            )
        )
    if "column" in levels:
        names = databases("column")
        parts.append(
            (
                row(
                    "p_column",
                    ["GRANTEE", "TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME", "PRIVILEGE_TYPE"],
                    f"FROM information_schema.COLUMN_PRIVILEGES WHERE {in_grantees} "
                    f"AND TABLE_SCHEMA IN ({placeholders(len(names))})",
                ),
                [*grantees, *names],
            )
        )
    if levels & set(ROUTINE_LEVELS):
        names = databases(*ROUTINE_LEVELS)
        parts.append(
            (
                row(
                    "p_routine",
                    ["Host", "Db", "Routine_name", "Routine_type", "Proc_priv"],
                    f"FROM mysql.procs_priv WHERE User = %s AND Db IN ({placeholders(len(names))})",
                ),
                [grantee, *names],
            )
        )
    # Existence of everything named, so nothing is half-applied.
    named = databases("database", "table", "column", *ROUTINE_LEVELS)
    if named:
        parts.append(
            (
                row(
                    "x_schema",
                    ["SCHEMA_NAME"],
                    f"FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({placeholders(len(named))})",
                ),
                named,
            )
        )
    seen: set[tuple[str, ...]] = set()
    for g in grants:
        level, database = g["level"], _database_of(spec, g)
        if level in ("table", "column") and ("t", database, g["table"]) not in seen:
            seen.add(("t", database, g["table"]))
            parts.append(
                (
                    row(
                        "x_table",
                        ["TABLE_SCHEMA", "TABLE_NAME"],
                        "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    ),
                    [database, g["table"]],
                )
            )
        if level == "column" and ("c", database, g["table"]) not in seen:
            seen.add(("c", database, g["table"]))
            parts.append(
                (
                    row(
                        "x_column",
                        ["TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME"],
                        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    ),
                    [database, g["table"]],
                )
            )
        if level in ROUTINE_LEVELS and ("r", database, g[level].lower(), level) not in seen:
            seen.add(("r", database, g[level].lower(), level))
            parts.append(
                (
                    row(
                        "x_routine",
                        ["ROUTINE_SCHEMA", "ROUTINE_NAME", "ROUTINE_TYPE"],
                        "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s AND ROUTINE_NAME = %s "
                        "AND ROUTINE_TYPE = %s",
                    ),
                    [database, g[level], level.upper()],
                )
            )
    return parts


def _routine_privileges(text: str) -> tuple[set[str], bool]:
    names = {p.strip().upper() for p in (text or "").split(",") if p.strip()}
    return names - {"GRANT"}, "GRANT" in names


def state_from_rows(rows: list[tuple[Any, ...]], spec: dict[str, Any], info: ServerInfo) -> GrantState:
    parsed = AccountRows.parse(rows, info)
    grantee = spec["grantee"]
    hosts = list(spec.get("granteeHosts") or ["%"])
    by_grantee = {Account(grantee, h).grantee(): h for h in [*hosts, ""]}
    named_dbs = {_database_of(spec, g) for g in _grants(spec) if g["level"] == "database"}
    held: dict[tuple[str, Target], Held] = {}
    aliases: dict[tuple[str, Target], Held] = {}
    schemas: set[str] = set()
    tables: set[tuple[str, str]] = set()
    columns: dict[tuple[str, str], set[str]] = {}
    routines: set[tuple[str, str, str]] = set()

    def add(
        store: dict[tuple[str, Target], Held], host: str, target: Target, privilege: str, grantable: Any
    ) -> None:
        entry = store.setdefault((host, target), Held())
        if privilege != "USAGE":
            entry.privileges.add(privilege)
        if str(grantable or "").upper().startswith("Y"):
            entry.grant_option = True

    for kind, a, b, c, d, e in (tuple(r) + (None,) * (6 - len(r)) for r in parsed.rest):
        if kind == "p_global" and a in by_grantee:
            add(held, by_grantee[a], Target("global"), str(b).upper(), c)
        elif kind == "p_db" and a in by_grantee:
            for name in named_dbs:
                if b == db_pattern(name, info, parsed.partial_revokes):
                    add(held, by_grantee[a], Target("database", name), str(c).upper(), d)
                elif b == name:
                    add(aliases, by_grantee[a], Target("database", name), str(c).upper(), d)
        elif kind == "p_table" and a in by_grantee:
            add(held, by_grantee[a], Target("table", b, c), str(d).upper(), e)
        elif kind == "p_column" and a in by_grantee:
            add(held, by_grantee[a], Target("column", b, c, str(d).lower()), str(e).upper(), "NO")
        elif kind == "p_routine" and a in set(by_grantee.values()):
            privileges, option = _routine_privileges(str(e))
            entry = held.setdefault((a, Target(str(d).lower(), b, str(c).lower())), Held())
            entry.privileges |= privileges
            entry.grant_option = entry.grant_option or option
        elif kind == "x_schema":
            schemas.add(a)
        elif kind == "x_table":
            tables.add((a, b))
        elif kind == "x_column":
            columns.setdefault((a, b), set()).add(str(c).lower())
        elif kind == "x_routine":
            routines.add((a, str(b).lower(), str(c).upper()))
    return GrantState(
        accounts=parsed.accounts,
        roles={h: frozenset(r) for h, r in parsed.roles.items()},
        admin_roles={h: frozenset(r) for h, r in parsed.admin_roles.items()},
        known_roles=frozenset(parsed.known_roles),
        held=held,
        aliases=aliases,
        schemas=frozenset(schemas),
        tables=frozenset(tables),
        columns={k: frozenset(v) for k, v in columns.items()},
        routines=frozenset(routines),
        partial_revokes=parsed.partial_revokes,
    )


def memory_key(host: str, target: Target) -> mysql_memory.Key:
    return (host, target.level, target.database, target.name, target.column)


def present_accounts(spec: dict[str, Any], state: GrantState, info: ServerInfo) -> list[Account]:
    """The grant's accounts; when some are gone (a drop after the user), those left."""
    try:
        return grant_accounts(spec, state, info)
    except PermanentError:
        hosts = spec.get("granteeHosts") or ["%"]
        return [Account(spec["grantee"], h) for h in hosts if h in state.accounts]


def desired_keys(spec: dict[str, Any], state: GrantState, info: ServerInfo) -> frozenset[mysql_memory.Key]:
    wanted, _ = wanted_grants(spec, info)
    accounts = present_accounts(spec, state, info)
    return frozenset(memory_key(a.host or "", w.target) for a in accounts for w in wanted)


def forgotten_spec(grantee: str, keys: list[mysql_memory.Key]) -> dict[str, Any]:
    """A spec naming the remembered pairs `keys` with no privileges: observing it finds what the grantee holds
    there, and planning its drop revokes that."""
    entries: list[dict[str, Any]] = []
    for _, level, database, name, column in sorted(keys):
        entry: dict[str, Any] = {"level": level, "privileges": []}
        if level != "global":
            entry["database"] = database
        if level in ("table", "column"):
            entry["table"] = name
        if level == "column":
            entry["columns"] = [column]
        if level in ROUTINE_LEVELS:
            entry[level] = name
        entries.append(entry)
    hosts = sorted({k[0] for k in keys if k[0]}) or ["%"]
    return {"grantee": grantee, "granteeHosts": hosts, "mysql": {"grants": entries}}


def held_parts(spec: dict[str, Any], info: ServerInfo) -> list[tuple[str, list[Any]]]:
    """`exclusive: true`: every pair the grant's accounts hold in the databases the spec names (database, table,
    column and routine level), whatever the spec names."""
    grantee = spec["grantee"]
    hosts = list(spec.get("granteeHosts") or ["%"])
    grantees = [Account(grantee, h).grantee() for h in hosts] + [Account(grantee, "").grantee()]
    names = sorted({_database_of(spec, g) for g in _grants(spec) if g["level"] != "global"})
    if not names:
        return []
    patterns = sorted(
        {*names, *(db_pattern(n, info) for n in names), *(n.replace("_", "\\_") for n in names)}
    )
    in_grantees = f"GRANTEE IN ({placeholders(len(grantees))})"
    in_names = f"TABLE_SCHEMA IN ({placeholders(len(names))})"
    return [
        (
            row(
                "h_db",
                ["GRANTEE", "TABLE_SCHEMA"],
                f"FROM information_schema.SCHEMA_PRIVILEGES WHERE {in_grantees} "
                f"AND TABLE_SCHEMA IN ({placeholders(len(patterns))})",
            ),
            [*grantees, *patterns],
        ),
        (
            row(
                "h_table",
                ["GRANTEE", "TABLE_SCHEMA", "TABLE_NAME"],
                f"FROM information_schema.TABLE_PRIVILEGES WHERE {in_grantees} AND {in_names}",
            ),
            [*grantees, *names],
        ),
        (
            row(
                "h_column",
                ["GRANTEE", "TABLE_SCHEMA", "TABLE_NAME", "COLUMN_NAME"],
                f"FROM information_schema.COLUMN_PRIVILEGES WHERE {in_grantees} AND {in_names}",
            ),
            [*grantees, *names],
        ),
        (
            row(
                "h_routine",
                ["Host", "Db", "Routine_name", "Routine_type"],
                f"FROM mysql.procs_priv WHERE User = %s AND Db IN ({placeholders(len(names))})",
            ),
            [grantee, *names],
        ),
    ]


def held_keys(rows: list[tuple[Any, ...]], spec: dict[str, Any], info: ServerInfo) -> set[mysql_memory.Key]:
    grantee = spec["grantee"]
    hosts = list(spec.get("granteeHosts") or ["%"])
    by_grantee = {Account(grantee, h).grantee(): h for h in [*hosts, ""]}
    names = {_database_of(spec, g) for g in _grants(spec) if g["level"] != "global"}
    out: set[mysql_memory.Key] = set()
    for kind, a, b, c, d, *_ in rows:
        if kind == "h_routine":
            if a in by_grantee.values() and b in names:
                out.add((str(a), str(d).lower(), str(b), str(c).lower(), ""))
            continue
        host = by_grantee.get(a)
        if host is None:
            continue
        if kind == "h_db":
            for name in names:
                if b in (name, db_pattern(name, info), name.replace("_", "\\_")):
                    out.add((host, "database", name, "", ""))
        elif kind == "h_table":
            out.add((host, "table", str(b), str(c), ""))
        elif kind == "h_column":
            out.add((host, "column", str(b), str(c), str(d).lower()))
    return out


class GrantHandler(KindHandler[GrantState]):
    # A DatabaseRole's grants keep their memory row under a claim id of their own (a DatabaseGrant of the same
    # name may grant to the role too).
    memory_suffix = ""

    def __init__(self, adapter: MySQLAdapter) -> None:
        self.adapter = adapter
        self.owner = Owner.of(adapter.request.owner)

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"account:{spec['grantee']}"

    @property
    def claim(self) -> str:
        name = f"{self.owner.namespace}/{self.owner.name}" if self.owner.namespace else self.owner.name
        return name + self.memory_suffix

    def observe(self, spec: dict[str, Any]) -> GrantState:
        info = self.adapter.server
        grantee = spec["grantee"]
        rows, remembered = self.adapter.observe_with_memory(
            observe_parts(spec, info),
            catalog.part(catalog.ACCOUNT, grantee),
            mysql_memory.part(grantee),
            f"reading the grants of {grantee}",
        )
        memory = mysql_memory.parse(rows, self.claim) if remembered else mysql_memory.NO_TABLE
        state = state_from_rows([r for r in rows if r[0] not in ("catalog", "memory")], spec, info)
        state = replace(state, owners=catalog.entries(rows), memory=memory)
        desired = desired_keys(spec, state, info)
        forgotten = memory.remembered - desired - memory.others
        if (spec.get("mysql") or {}).get("exclusive") and (parts := held_parts(spec, info)):
            # Opt-in, one more query: what the grantee holds in the spec's databases that the spec does not name.
            sql, params = union(parts)
            forgotten |= held_keys(
                self.adapter.query(sql, params, f"reading the grants of {grantee}"), spec, info
            )
            forgotten -= desired
        forgotten_state = None
        if forgotten:
            # Only when the spec shrank: what the grantee still holds on the pairs it no longer names.
            sql, params = union(observe_parts(forgotten_spec(grantee, list(forgotten)), info))
            more = self.adapter.query(sql, params, f"reading the grants of {grantee} dbops made before")
            forgotten_state = state_from_rows(more, forgotten_spec(grantee, list(forgotten)), info)
        return replace(state, desired=desired, forgotten=forgotten, forgotten_state=forgotten_state)

    def _with_memory(self, spec: dict[str, Any], observed: GrantState, plan: Plan, drop: bool) -> Plan:
        """The plan with what the memory adds: the forgotten pairs revoked, and the memory's own writes (before
        the first GRANT, after the last REVOKE: GRANT and REVOKE commit on their own)."""
        info = self.adapter.server
        revokes: list[Step] = []
        if observed.forgotten_state is not None:
            for host in sorted({k[0] for k in observed.forgotten}):
                keys = [k for k in observed.forgotten if k[0] == host]
                pseudo = forgotten_spec(spec["grantee"], keys)
                revokes += plan_grants(pseudo, observed.forgotten_state, info, drop=True).steps
        after = frozenset() if drop else observed.desired
        before, last = mysql_memory.steps(observed.memory, self.claim, spec["grantee"], after)
        return Plan(before + plan.steps + revokes + last, drift=plan.drift, warnings=plan.warnings)

    def _check_grantee(self, spec: dict[str, Any], accounts: list[Account], observed: GrantState) -> None:
        if accounts:
            markers = [e.owner if (e := observed.owners.get(a.host or "")) else None for a in accounts]
            what = ", ".join(str(a) for a in accounts)
            check_grantee(f"grantee {what}", markers, self.owner, bool(spec.get("adopt")))

    def plan(self, spec: dict[str, Any], observed: GrantState) -> Plan:
        self._check_grantee(spec, grant_accounts(spec, observed, self.adapter.server), observed)
        plan = self._with_memory(spec, observed, plan_grants(spec, observed, self.adapter.server), drop=False)
        # This claim has granted nothing yet (no memory row): the whole plan creates its grants.
        plan.creates = observed.memory.mine is None
        return plan

    def plan_drop(self, spec: dict[str, Any], observed: GrantState) -> Plan:
        try:
            present = grant_accounts(spec, observed, self.adapter.server)
        except PermanentError:  # some accounts are gone: those left are checked
            hosts = spec.get("granteeHosts") or ["%"]
            present = [Account(spec["grantee"], h) for h in hosts if h in observed.accounts]
        self._check_grantee(spec, present, observed)
        return self._with_memory(
            spec, observed, plan_grants(spec, observed, self.adapter.server, drop=True), drop=True
        )

    def facts(self, spec: dict[str, Any], observed: GrantState) -> dict[str, Any]:
        info = self.adapter.server
        wanted, _ = wanted_grants(spec, info)
        try:
            accounts = grant_accounts(spec, observed, info)
        except PermanentError:
            accounts = []
        keys = [a.host or "" for a in accounts]
        count = sum(len(observed.held.get((k, w.target), Held()).privileges) for k in keys for w in wanted)
        roles = sorted({r for k in keys for r in observed.roles.get(k, frozenset())})
        return {
            "grantee": spec["grantee"],
            "hosts": [a.host for a in accounts if a.host is not None],
            "roles": roles,
            "privileges": count,
        }
