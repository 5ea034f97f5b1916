"""Checks the schema cannot express because they depend on the engine: name limits and reserved names.

Both the function (before composing a Job) and the worker (before connecting) run them, so the same spec gets
the same answer in both places.
"""

from __future__ import annotations

from typing import Any

from dbops_api import mysql_privileges, pg_privileges
from dbops_api.role_names import role_name_errors
from dbops_api.system import (
    MYSQL_SYSTEM_DATABASES,
    PG_SYSTEM_DATABASES,
    PG_SYSTEM_PREFIX,
    SYSTEM_ACCOUNTS,
    lower_ascii,
)
from dbops_api.validation import FieldError


def _pg_database_role_errors(spec: dict[str, Any], prefix: str) -> list[FieldError]:
    """The roles a Database names (owner, schema owners, default-privilege grantees and creators): existing roles,
    so PostgreSQL's predefined pg_* roles are fine, but not the names PostgreSQL reads as keywords."""
    pg = spec.get("postgres") or {}
    named = [("owner", spec.get("owner"))]
    named += [(f"postgres.schemas[{i}].owner", s.get("owner")) for i, s in enumerate(pg.get("schemas", []))]
    for i, rule in enumerate(pg.get("defaultPrivileges", [])):
        named += [(f"postgres.defaultPrivileges[{i}].{key}", rule.get(key)) for key in ("role", "forRole")]
    errors: list[FieldError] = []
    for path, name in named:
        if isinstance(name, str):
            errors += role_name_errors("postgres", f"{prefix}.{path}", name, membership=True)
    return errors


GLOBAL_GRANTS_HINT = (
    "reach every tenant's data on the server; the DatabaseInstance must set allowGlobalGrants: true before a claim "
    "may hand them out"
)


def system_databases(engine: str) -> tuple[str, ...]:
    return PG_SYSTEM_DATABASES if engine == "postgres" else MYSQL_SYSTEM_DATABASES


def system_errors(
    kind: str, engine: str, spec: dict[str, Any], prefix: str, allow_global: bool
) -> list[FieldError]:
    """System objects a request names (docs/security.md, "What a claim can never do"): the servers' own accounts,
    databases and predefined roles are refused; server-wide privileges only where the instance allows them.
    The claim's CEL rules refuse the same names engine by engine's union; these see resolved names too (a grant's
    grantee, a user's database) and know the engine."""
    errors: list[FieldError] = []
    named: list[tuple[str, Any]] = []  # (path, account or role name)
    members: list[tuple[str, Any]] = []  # (path, role a membership is granted in)
    databases: list[tuple[str, Any]] = []
    if kind == "DatabaseUser":
        named.append(("username", spec.get("username")))
        members += [(f"roles[{i}]", r) for i, r in enumerate(spec.get("roles") or [])]
        members += [
            (f"postgres.inRoles[{i}]", r)
            for i, r in enumerate((spec.get("postgres") or {}).get("inRoles") or [])
        ]
        databases.append(("database", spec.get("database")))
    elif kind == "DatabaseGrant":
        named.append(("grantee", spec.get("grantee")))
        databases.append(("database", spec.get("database")))
        for block in ("postgres", "mysql"):
            members += [
                (f"{block}.roles[{i}]", r) for i, r in enumerate((spec.get(block) or {}).get("roles") or [])
            ]
    elif kind == "Database":
        databases.append(("name", spec.get("name")))
    for path, name in named + members:
        if isinstance(name, str) and lower_ascii(name) in SYSTEM_ACCOUNTS:
            errors.append(
                FieldError(f"{prefix}.{path}", f"{name!r} is a server's own account; dbops never manages it")
            )
    for path, name in databases:
        if isinstance(name, str) and lower_ascii(name) in system_databases(engine):
            errors.append(
                FieldError(f"{prefix}.{path}", f"{name!r} is a system database; dbops never manages it")
            )
    if engine == "postgres" and not allow_global:
        for path, name in members:
            if isinstance(name, str) and lower_ascii(name).startswith(PG_SYSTEM_PREFIX):
                errors.append(
                    FieldError(
                        f"{prefix}.{path}",
                        f"membership in the predefined role {name} grants server-wide privileges, which "
                        + GLOBAL_GRANTS_HINT,
                    )
                )
    if engine != "postgres" and kind == "DatabaseGrant" and not allow_global:
        errors += _mysql_global_grant_errors(spec, prefix)
    return errors


def _mysql_global_grant_errors(spec: dict[str, Any], prefix: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, grant in enumerate((spec.get("mysql") or {}).get("grants") or []):
        path = f"{prefix}.mysql.grants[{i}]"
        if grant.get("level") == "global":
            errors.append(
                FieldError(f"{path}.level", "grants at the global level (*.*) " + GLOBAL_GRANTS_HINT)
            )
            continue
        database = grant.get("database", spec.get("database"))
        if isinstance(database, str) and lower_ascii(database) in MYSQL_SYSTEM_DATABASES:
            where = f"{path}.database" if "database" in grant else f"{prefix}.database"
            errors.append(FieldError(where, f"grants on the system schema {database} " + GLOBAL_GRANTS_HINT))
    return errors


def engine_errors(
    kind: str, engine: str, spec: dict[str, Any], prefix: str = "spec", allow_global: bool = False
) -> list[FieldError]:
    """Engine-dependent errors in a (defaulted) claim or request spec. `allow_global`: the instance lets claims
    hand out server-wide privileges (DatabaseInstance allowGlobalGrants)."""
    if kind == "DatabaseRole":
        return role_errors(engine, spec, prefix, allow_global)
    errors: list[FieldError] = system_errors(kind, engine, spec, prefix, allow_global)
    if kind == "DatabaseUser":
        errors += role_name_errors(engine, f"{prefix}.username", spec["username"])
        pg = spec.get("postgres", {})
        for i, role in enumerate(spec.get("roles", [])):
            errors += role_name_errors(engine, f"{prefix}.roles[{i}]", role, membership=True)
        for i, role in enumerate(pg.get("inRoles", [])):
            errors += role_name_errors(engine, f"{prefix}.postgres.inRoles[{i}]", role, membership=True)
    if kind == "Database" and engine != "postgres" and "owner" in spec:
        errors.append(
            FieldError(f"{prefix}.owner", "applies to PostgreSQL only; MySQL/MariaDB databases have no owner")
        )
    if kind == "Database" and engine == "postgres":
        errors += _pg_database_role_errors(spec, prefix)
    if kind == "DatabaseGrant" and "grantee" in spec:
        errors += role_name_errors(engine, f"{prefix}.grantee", spec["grantee"])
    if kind == "DatabaseGrant" and engine != "postgres":
        for i, role in enumerate((spec.get("mysql") or {}).get("roles", [])):
            errors += role_name_errors(engine, f"{prefix}.mysql.roles[{i}]", role, membership=True)
    if engine == "postgres":
        errors += pg_privileges.spec_errors(kind, spec, prefix)
    else:
        errors += mysql_privileges.spec_errors(kind, engine, spec, prefix)
    return errors


# A DatabaseRole is checked as the DatabaseGrant to itself its grants are: the role's name as the grantee, its
# inRoles as the grant's roles; errors name the role's own fields.
_ROLE_PATHS = ((".grantee", ".roleName"), (".postgres.roles", ".postgres.inRoles"))


def role_as_grant(spec: dict[str, Any]) -> dict[str, Any]:
    """A DatabaseRole spec as the DatabaseGrant spec that grants its privileges to it."""
    out: dict[str, Any] = {"grantee": spec.get("roleName")}
    pg = spec.get("postgres")
    if pg is not None:
        out["postgres"] = {"grants": pg.get("grants") or []}
        if "inRoles" in pg:
            out["postgres"]["roles"] = pg["inRoles"]
    if spec.get("mysql") is not None:
        out["mysql"] = {"grants": spec["mysql"].get("grants") or []}
    return out


def role_errors(engine: str, spec: dict[str, Any], prefix: str, allow_global: bool) -> list[FieldError]:
    errors = engine_errors("DatabaseGrant", engine, role_as_grant(spec), prefix, allow_global)
    out: list[FieldError] = []
    for e in errors:
        field = e.path
        for old, new in _ROLE_PATHS:
            if field.startswith(prefix + old):
                field = prefix + new + field[len(prefix + old) :]
        out.append(FieldError(field, e.message))
    if engine == "postgres":  # postgres.defaultPrivileges: a Database's, the role as grantee
        out += _pg_database_role_errors(spec, prefix) + pg_privileges.spec_errors(
            "DatabaseRole", spec, prefix
        )
    return out
