"""MySQL/MariaDB privilege names per grant level, flavor and version. Pure data and checks (no driver import):
the function imports this module too.

The worker validates twice: `spec_errors` runs before any connection (the flavor may still be unknown when the
request says `engine: mysql`, so a name valid on either flavor passes), and `expand` runs in the adapter's plan
against the server actually in front of it (flavor and version known), before the first statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dbops_api.validation import FieldError

Version = tuple[int, ...]

LEVELS = ("global", "database", "table", "column", "procedure", "function")
ROUTINE_LEVELS = ("procedure", "function")
ALL = "ALL"

_G = frozenset({"global"})
_D = _G | {"database"}
_T = _D | {"table"}
_C = _T | {"column"}
_R = _D | set(ROUTINE_LEVELS)


@dataclass(frozen=True)
class Privilege:
    name: str  # as the server names it in information_schema and SHOW GRANTS
    levels: frozenset[str]
    mariadb: Version | None = (
        10,
        5,
    )  # first MariaDB version that has it; None: MariaDB has no such privilege
    mysql: Version | None = (8, 0)  # first MySQL version that has it; None: MySQL has no such privilege
    mysql_until: Version | None = None  # first MySQL version that no longer has it
    in_all: bool = True  # part of ALL (False: registered by a plugin, so it exists only on some servers)

    def exists(self, flavor: str, version: Version) -> bool:
        if flavor == "mariadb":
            return self.mariadb is not None and version >= self.mariadb
        if self.mysql is None or version < self.mysql:
            return False
        return self.mysql_until is None or version < self.mysql_until


def _mariadb_only(name: str, levels: frozenset[str], since: Version = (10, 5)) -> Privilege:
    return Privilege(name, levels, mariadb=since, mysql=None)


def _mysql_dynamic(
    name: str, since: Version = (8, 0), until: Version | None = None, builtin: bool = True
) -> Privilege:
    return Privilege(name, _G, mariadb=None, mysql=since, mysql_until=until, in_all=builtin)


PRIVILEGES: tuple[Privilege, ...] = (
    # Column level and up.
    Privilege("SELECT", _C),
    Privilege("INSERT", _C),
    Privilege("UPDATE", _C),
    Privilege("REFERENCES", _C),
    # Table level and up.
    Privilege("DELETE", _T),
    Privilege("CREATE", _T),
    Privilege("DROP", _T),
    Privilege("INDEX", _T),
    Privilege("ALTER", _T),
    Privilege("CREATE VIEW", _T),
    Privilege("SHOW VIEW", _T),
    Privilege("TRIGGER", _T),
    _mariadb_only("DELETE HISTORY", _T),
    # Database level and up.
    Privilege("CREATE TEMPORARY TABLES", _D),
    Privilege("LOCK TABLES", _D),
    Privilege("EVENT", _D),
    Privilege("CREATE ROUTINE", _D),
    # Routine level and up.
    Privilege("EXECUTE", _R),
    Privilege("ALTER ROUTINE", _R),
    _mariadb_only("SHOW CREATE ROUTINE", _R, since=(11, 3)),
    # Global only, both flavors.
    Privilege("FILE", _G),
    Privilege("PROCESS", _G),
    Privilege("RELOAD", _G),
    Privilege("SHUTDOWN", _G),
    Privilege("SUPER", _G),
    Privilege("SHOW DATABASES", _G),
    Privilege("CREATE USER", _G),
    Privilege("CREATE TABLESPACE", _G),
    Privilege("REPLICATION SLAVE", _G),
    # MariaDB 10.5 split SUPER; REPLICATION CLIENT became an alias of BINLOG MONITOR there.
    Privilege("REPLICATION CLIENT", _G, mariadb=None),
    _mariadb_only("BINLOG ADMIN", _G),
    _mariadb_only("BINLOG MONITOR", _G),
    _mariadb_only("BINLOG REPLAY", _G),
    _mariadb_only("CONNECTION ADMIN", _G),
    _mariadb_only("FEDERATED ADMIN", _G),
    _mariadb_only("READ_ONLY ADMIN", _G),
    _mariadb_only("REPLICATION MASTER ADMIN", _G),
    _mariadb_only("REPLICATION SLAVE ADMIN", _G),
    _mariadb_only("SET USER", _G),
    _mariadb_only("SLAVE MONITOR", _G, since=(10, 5, 9)),
    # MySQL 8 static privileges that MariaDB lacks.
    Privilege("CREATE ROLE", _G, mariadb=None),
    Privilege("DROP ROLE", _G, mariadb=None),
    # MySQL 8 dynamic privileges built into the server.
    _mysql_dynamic("APPLICATION_PASSWORD_ADMIN", (8, 0, 14)),
    _mysql_dynamic("AUTHENTICATION_POLICY_ADMIN", (8, 0, 27)),
    _mysql_dynamic("BACKUP_ADMIN"),
    _mysql_dynamic("BINLOG_ADMIN"),
    _mysql_dynamic("BINLOG_ENCRYPTION_ADMIN"),
    _mysql_dynamic("CONNECTION_ADMIN"),
    _mysql_dynamic("ENCRYPTION_KEY_ADMIN"),
    _mysql_dynamic("FLUSH_OPTIMIZER_COSTS", (8, 0, 23)),
    _mysql_dynamic("FLUSH_STATUS", (8, 0, 23)),
    _mysql_dynamic("FLUSH_TABLES", (8, 0, 23)),
    _mysql_dynamic("FLUSH_USER_RESOURCES", (8, 0, 23)),
    _mysql_dynamic("GROUP_REPLICATION_ADMIN"),
    _mysql_dynamic("GROUP_REPLICATION_STREAM", (8, 0, 23)),
    _mysql_dynamic("INNODB_REDO_LOG_ARCHIVE", (8, 0, 17)),
    _mysql_dynamic("INNODB_REDO_LOG_ENABLE", (8, 0, 21)),
    _mysql_dynamic("PASSWORDLESS_USER_ADMIN", (8, 0, 27)),
    _mysql_dynamic("PERSIST_RO_VARIABLES_ADMIN"),
    _mysql_dynamic("REPLICATION_APPLIER", (8, 0, 18)),
    _mysql_dynamic("REPLICATION_SLAVE_ADMIN"),
    _mysql_dynamic("RESOURCE_GROUP_ADMIN"),
    _mysql_dynamic("RESOURCE_GROUP_USER"),
    _mysql_dynamic("ROLE_ADMIN"),
    _mysql_dynamic("SENSITIVE_VARIABLES_OBSERVER", (8, 0, 29)),
    _mysql_dynamic("SERVICE_CONNECTION_ADMIN", (8, 0, 14)),
    _mysql_dynamic("SESSION_VARIABLES_ADMIN", (8, 0, 14)),
    _mysql_dynamic("SET_USER_ID", until=(8, 4)),
    _mysql_dynamic("SET_ANY_DEFINER", (8, 2)),
    _mysql_dynamic("ALLOW_NONEXISTENT_DEFINER", (8, 2)),
    _mysql_dynamic("SHOW_ROUTINE", (8, 0, 20)),
    _mysql_dynamic("SYSTEM_USER", (8, 0, 16)),
    _mysql_dynamic("SYSTEM_VARIABLES_ADMIN"),
    _mysql_dynamic("TABLE_ENCRYPTION_ADMIN", (8, 0, 16)),
    _mysql_dynamic("XA_RECOVER_ADMIN"),
    _mysql_dynamic("FLUSH_PRIVILEGES", (8, 4)),
    # Registered by plugins or components: nameable, never part of ALL.
    _mysql_dynamic("AUDIT_ADMIN", builtin=False),
    _mysql_dynamic("AUDIT_ABORT_EXEMPT", (8, 0, 28), builtin=False),
    _mysql_dynamic("CLONE_ADMIN", (8, 0, 17), builtin=False),
    _mysql_dynamic("FIREWALL_ADMIN", builtin=False),
    _mysql_dynamic("FIREWALL_EXEMPT", (8, 0, 34), builtin=False),
    _mysql_dynamic("FIREWALL_USER", builtin=False),
    _mysql_dynamic("MASKING_DICTIONARIES_ADMIN", (8, 0, 33), builtin=False),
    _mysql_dynamic("NDB_STORED_USER", (8, 0, 18), builtin=False),
    _mysql_dynamic("SKIP_QUERY_REWRITE", (8, 0, 31), builtin=False),
    _mysql_dynamic("TELEMETRY_LOG_ADMIN", (8, 0, 30), builtin=False),
    _mysql_dynamic("TP_CONNECTION_ADMIN", builtin=False),
    _mysql_dynamic("VERSION_TOKEN_ADMIN", builtin=False),
)

BY_NAME: dict[str, Privilege] = {p.name: p for p in PRIVILEGES}

# Other spellings the servers accept, per flavor -> the name the server reports.
ALIASES: dict[str, dict[str, str]] = {
    "mariadb": {
        "REPLICATION CLIENT": "BINLOG MONITOR",
        "REPLICA MONITOR": "SLAVE MONITOR",
        "REPLICATION REPLICA": "REPLICATION SLAVE",
        "REPLICATION REPLICA ADMIN": "REPLICATION SLAVE ADMIN",
        "READ ONLY ADMIN": "READ_ONLY ADMIN",
    },
    "mysql": {"REPLICATION REPLICA": "REPLICATION SLAVE"},
}

# Versions assumed when the flavor is known but the version is not (spec checks before connecting): the newest.
_ANY_VERSION: Version = (99,)


def canonical(name: str) -> str:
    """Upper case with single spaces: `select`, ` Create  View` -> `SELECT`, `CREATE VIEW`."""
    text = " ".join(name.split()).upper()
    return ALL if text == "ALL PRIVILEGES" else text


def resolve(name: str, flavor: str) -> str:
    """The server's own name for `name` on `flavor` (aliases resolved); unknown names come back canonical."""
    text = canonical(name)
    return ALIASES.get(flavor, {}).get(text, text)


def level_privileges(level: str, flavor: str, version: Version) -> frozenset[str]:
    """What ALL means at `level` on this flavor and version."""
    return frozenset(
        p.name for p in PRIVILEGES if level in p.levels and p.in_all and p.exists(flavor, version)
    )


def _problem(name: str, level: str, flavors: Iterable[str], version: Version) -> str | None:
    """Why `name` cannot be granted at `level` on any of `flavors` (None when it can on at least one)."""
    text = canonical(name)
    if text == "GRANT OPTION":
        return "GRANT OPTION is not a privilege here; set withGrantOption: true"
    if text == "USAGE":
        return "USAGE means no privileges; use privileges: [] to hold none"
    if text == "PROXY":
        return "PROXY grants are not managed by dbops"
    flavors = tuple(flavors)
    found = [BY_NAME.get(resolve(text, f)) for f in flavors]
    existing = [(f, p) for f, p in zip(flavors, found, strict=True) if p is not None and p.exists(f, version)]
    if not existing:
        where = " or ".join(_flavor_name(f) for f in flavors)
        known = sorted(
            p.name for p in PRIVILEGES if level in p.levels and any(p.exists(f, version) for f in flavors)
        )
        return f"{name!r} is not a {where} privilege; at level {level} use one of: ALL, {', '.join(known)}"
    if not any(level in p.levels for _, p in existing):
        levels = sorted({lv for _, p in existing for lv in p.levels}, key=LEVELS.index)
        return f"{canonical(name)} applies at level {', '.join(levels)}, not at level {level}"
    return None


def _flavor_name(flavor: str) -> str:
    return "MariaDB" if flavor == "mariadb" else "MySQL"


def expand(names: list[str], level: str, flavor: str, version: Version) -> tuple[frozenset[str], list[str]]:
    """The exact privilege set `names` means at `level` on the server in front of us, and every problem found."""
    problems: list[str] = []
    out: set[str] = set()
    for name in names:
        if canonical(name) == ALL:
            out |= level_privileges(level, flavor, version)
            continue
        problem = _problem(name, level, (flavor,), version)
        if problem:
            problems.append(problem)
        else:
            out.add(resolve(name, flavor))
    return frozenset(out), problems


# --- spec checks (before any connection) ------------------------------------------------------------------------


def spec_errors(kind: str, engine: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    """Privilege names that do not exist or do not apply at the level they are granted at, and other MySQL
    rules the schema cannot express. `spec` is a claim spec or a worker request spec (both shapes work)."""
    if engine == "postgres":
        return []
    if kind == "DatabaseUser":
        return _user_errors(engine, spec, prefix)
    if kind == "DatabaseGrant":
        return _grant_errors(engine, spec, prefix)
    return []


def _user_errors(engine: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    plugin = (spec.get("mysql") or {}).get("authPlugin")
    if engine == "mariadb" and plugin == "caching_sha2_password":
        return [
            FieldError(
                f"{prefix}.mysql.authPlugin",
                "caching_sha2_password is a MySQL 8 plugin; on MariaDB use mysql_native_password or ed25519",
            )
        ]
    return []


def pair_key(grant: dict[str, Any], default_database: str | None) -> list[tuple[str, ...]]:
    """The grantee/object pairs one grant entry names (one per column at level column). Routine and column
    names compare case-insensitively, as the servers do."""
    level = grant.get("level", "")
    database = grant.get("database", default_database) or ""
    if level == "global":
        return [("global",)]
    if level == "database":
        return [("database", database)]
    if level == "table":
        return [("table", database, grant.get("table", ""))]
    if level == "column":
        return [("column", database, grant.get("table", ""), c.lower()) for c in grant.get("columns", [])]
    return [(level, database, str(grant.get(level, "")).lower())]


_DEFAULT_DB = "\x00default"  # stands for "the grant's databaseRef" in claim specs


def _grant_errors(engine: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    errors: list[FieldError] = []
    flavors = ("mariadb",) if engine == "mariadb" else ("mysql", "mariadb")
    has_default = "database" in spec or "databaseRef" in spec
    default_db = spec.get("database", _DEFAULT_DB if "databaseRef" in spec else None)
    seen: dict[tuple[str, ...], int] = {}
    for i, grant in enumerate((spec.get("mysql") or {}).get("grants", [])):
        path = f"{prefix}.mysql.grants[{i}]"
        level = grant.get("level", "")
        names = grant.get("privileges", [])
        canon = [canonical(n) for n in names]
        if ALL in canon and len(set(canon)) > 1:
            errors.append(
                FieldError(f"{path}.privileges", "ALL already includes every privilege; list ALL alone")
            )
        for j, name in enumerate(names):
            if canonical(name) == ALL:
                continue
            problem = _problem(name, level, flavors, _ANY_VERSION)
            if problem:
                errors.append(FieldError(f"{path}.privileges[{j}]", problem))
        if grant.get("withGrantOption") and not names:
            errors.append(
                FieldError(f"{path}.withGrantOption", "needs at least one privilege to pass on; list them")
            )
        if level == "column" and grant.get("withGrantOption"):
            errors.append(
                FieldError(
                    f"{path}.withGrantOption",
                    "MySQL/MariaDB keep the grant option per table, not per column; grant it at level table",
                )
            )
        if level != "global" and "database" not in grant and not has_default:
            errors.append(
                FieldError(f"{path}.database", "names no database and the grant has no databaseRef; set one")
            )
        for key in pair_key(grant, default_db):
            if key in seen:
                errors.append(
                    FieldError(
                        path,
                        f"names the same object as grants[{seen[key]}] ({_describe(key)}); merge the two entries",
                    )
                )
            else:
                seen[key] = i
    return errors


def _describe(key: tuple[str, ...]) -> str:
    level, *rest = key
    shown = [("databaseRef" if part == _DEFAULT_DB else part) for part in rest]
    return f"level {level}" + (f" {'.'.join(shown)}" if shown else "")
