"""PostgreSQL privilege names per object type. Pure data and checks (no driver import): the function uses it too.

The names are the ones `aclexplode()` reports, so a spec, a plan and the catalog compare without translation.
`ALL` expands per server version (MAINTAIN exists from PostgreSQL 17), which only the worker knows; the function
accepts every privilege some supported version has, and the worker refuses one its server lacks.
"""

from __future__ import annotations

from typing import Any

from dbops_api.role_names import role_name_errors
from dbops_api.validation import FieldError

DATABASE = "database"
SCHEMA = "schema"
TABLE = "table"
SEQUENCE = "sequence"
FUNCTION = "function"
TYPE = "type"

PRIVILEGES: dict[str, tuple[str, ...]] = {
    DATABASE: ("CREATE", "CONNECT", "TEMPORARY"),
    SCHEMA: ("USAGE", "CREATE"),
    TABLE: ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"),
    SEQUENCE: ("USAGE", "SELECT", "UPDATE"),
    FUNCTION: ("EXECUTE",),
    TYPE: ("USAGE",),
}

# Privileges younger than the oldest server we support: (major version that introduced it).
SINCE: dict[str, tuple[int, ...]] = {"MAINTAIN": (17,)}

ALIASES = {"TEMP": "TEMPORARY", "ALL PRIVILEGES": "ALL"}
ALL = "ALL"

# `objectType` of a default-privilege rule -> the object type its privileges are checked against, and the
# `defaclobjtype` code PostgreSQL stores in pg_default_acl.
DEFAULT_PRIVILEGE_TYPES: dict[str, tuple[str, str]] = {
    "tables": (TABLE, "r"),
    "sequences": (SEQUENCE, "S"),
    "functions": (FUNCTION, "f"),
    "types": (TYPE, "T"),
    "schemas": (SCHEMA, "n"),
}

# What a DatabaseUser's `database` (databaseRef) gives the user with databaseAccess: Connect (the default): it may
# connect and use what others grant it, and create nothing but temporary tables. No CREATE on schema public: PostgreSQL
# 15 took it from PUBLIC on purpose (CVE-2018-1058); the owner pattern is databaseAccess: Owner.
DATABASE_ACCESS = ("CONNECT", "TEMPORARY")
PUBLIC_SCHEMA_ACCESS = ("USAGE",)

OBJECT_LISTS = (("tables", TABLE), ("sequences", SEQUENCE), ("functions", FUNCTION))


def canonical(name: str) -> str:
    """`select`, `Temp`, `all privileges` -> SELECT, TEMPORARY, ALL."""
    text = " ".join(name.split()).upper()
    return ALIASES.get(text, text)


def grant_object_type(grant: dict[str, Any]) -> str:
    """The object type a DatabaseGrant `postgres.grants[]` entry names: database, schema or an object list."""
    for key, object_type in OBJECT_LISTS:
        if key in grant:
            return object_type
    return SCHEMA if "schema" in grant else DATABASE


def available(object_type: str, version: tuple[int, ...]) -> tuple[str, ...]:
    """The privileges of an object type on a server of `version` (what ALL means there)."""
    return tuple(p for p in PRIVILEGES[object_type] if version >= SINCE.get(p, (0,)))


def expand(object_type: str, names: list[str], version: tuple[int, ...]) -> frozenset[str]:
    """Canonical privilege names with ALL expanded for the server version. Assumes `problems` found nothing."""
    out: set[str] = set()
    for name in names:
        privilege = canonical(name)
        out.update(available(object_type, version) if privilege == ALL else (privilege,))
    return frozenset(out)


def problems(object_type: str, names: list[str], version: tuple[int, ...] | None = None) -> list[str]:
    """Why each name is not a privilege of `object_type` (on `version`, when given). Empty when all are fine."""
    out: list[str] = []
    valid = PRIVILEGES[object_type]
    for name in names:
        privilege = canonical(name)
        if privilege == ALL:
            continue
        if privilege not in valid:
            where = [t for t, privs in PRIVILEGES.items() if privilege in privs]
            also = f" ({privilege} applies to {', '.join(where)})" if where else ""
            out.append(
                f"{name!r} is not a privilege of a {object_type}{also}; allowed: {', '.join(valid)}, ALL"
            )
        elif version is not None and version < SINCE.get(privilege, (0,)):
            need = ".".join(map(str, SINCE[privilege]))
            have = ".".join(map(str, version))
            out.append(f"{privilege} needs PostgreSQL {need} or later; the server is {have}")
    return out


def version_errors(
    object_type: str, names: list[str], version: tuple[int, ...], path: str
) -> list[FieldError]:
    """Errors for privileges the server in front of the worker does not have (e.g. MAINTAIN before 17)."""
    return [FieldError(path, p) for p in problems(object_type, names, version) if "needs PostgreSQL" in p]


def spec_errors(kind: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    """Privilege names that do not exist or do not apply to the object type they are granted on."""
    errors: list[FieldError] = []
    pg = spec.get("postgres") or {}
    if kind in ("Database", "DatabaseRole"):
        for i, rule in enumerate(pg.get("defaultPrivileges", [])):
            object_type, _ = DEFAULT_PRIVILEGE_TYPES[rule["objectType"]]
            path = f"{prefix}.postgres.defaultPrivileges[{i}].privileges"
            errors += [FieldError(path, p) for p in problems(object_type, rule["privileges"])]
    if kind == "DatabaseRole":
        for i, rule in enumerate(pg.get("defaultPrivileges", [])):
            if rule.get("forRole") is not None and rule.get("forRole") == spec.get("roleName"):
                errors.append(
                    FieldError(
                        f"{prefix}.postgres.defaultPrivileges[{i}].forRole",
                        "is the role itself, which holds every privilege on what it creates; name the role "
                        "whose future objects the role should reach, or remove forRole (the database owner)",
                    )
                )
    if kind == "Database":
        inner = [k for k in ("extensions", "schemas", "defaultPrivileges") if pg.get(k)]
        if pg.get("allowConnections") is False and inner:
            errors.append(
                FieldError(
                    f"{prefix}.postgres.allowConnections",
                    f"false leaves no way to manage {', '.join(inner)} inside the database; "
                    "set it to true or remove them",
                )
            )
    if kind == "DatabaseGrant":
        for i, role in enumerate(pg.get("roles", [])):
            errors += role_name_errors("postgres", f"{prefix}.postgres.roles[{i}]", role, membership=True)
        has_database = "database" in spec or "databaseRef" in spec
        for i, grant in enumerate(pg.get("grants", [])):
            path = f"{prefix}.postgres.grants[{i}]"
            object_type = grant_object_type(grant)
            errors += [
                FieldError(f"{path}.privileges", p) for p in problems(object_type, grant["privileges"])
            ]
            if "database" not in grant and not has_database:
                errors.append(
                    FieldError(f"{path}.database", "is required when the grant has no databaseRef; name one")
                )
    return errors
