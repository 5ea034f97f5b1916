"""Role and user names an engine refuses or reads as something else: the checks a schema pattern cannot make,
because they depend on the engine."""

from __future__ import annotations

from dbops_api.validation import FieldError

# PostgreSQL refuses these as role names, or gives them a special meaning in GRANT/ALTER.
PG_RESERVED_ROLES = frozenset({"public", "none", "current_user", "session_user", "current_role"})
# MySQL and MariaDB refuse these as role names (SET ROLE NONE, GRANT ... TO PUBLIC); MariaDB even reads a quoted
# `none` in SET DEFAULT ROLE as NONE. User names are not affected.
MYSQL_RESERVED_ROLES = frozenset({"none", "public"})
MYSQL_USER_MAX = 32


def role_name_errors(engine: str, path: str, name: str, membership: bool = False) -> list[FieldError]:
    """Errors for a role or user name that the engine would refuse or misread. `membership`: the name is a role
    to be a member of, where PostgreSQL's predefined pg_* roles (pg_monitor, pg_read_all_data) are fine."""
    if engine == "postgres":
        if name.lower() in PG_RESERVED_ROLES:
            return [FieldError(path, f"{name!r} is reserved in PostgreSQL; choose another name")]
        if name.lower().startswith("pg_") and not membership:
            return [FieldError(path, f"{name!r}: role names starting with pg_ are reserved in PostgreSQL")]
    elif engine == "mysql" and len(name) > MYSQL_USER_MAX:
        return [FieldError(path, f"must be at most {MYSQL_USER_MAX} characters on MySQL, got {len(name)}")]
    elif membership and name.lower() in MYSQL_RESERVED_ROLES:
        return [
            FieldError(path, f"{name!r} is reserved in MySQL and MariaDB role names; choose another name")
        ]
    return []
