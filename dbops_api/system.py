"""The servers' own objects, which no claim may name as something dbops manages (docs/security.md, "What a claim
can never do"), and the rules that refuse them in a claim's schema."""

from __future__ import annotations

from dbops_api.schema import Rule

# System objects no claim may name as something dbops manages (docs/security.md, "What a claim can never do").
# Names compare case-insensitively (ASCII), so `Postgres` or `MYSQL` (the same database under MySQL's
# lower_case_table_names) are refused too.
PG_SYSTEM_DATABASES = ("postgres", "template0", "template1")
# `_dbops` is the catalog dbops keeps on MySQL/MariaDB servers (who owns which account and database).
MYSQL_CATALOG = "_dbops"
MYSQL_SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys", MYSQL_CATALOG)
SYSTEM_DATABASES = (*PG_SYSTEM_DATABASES, *MYSQL_SYSTEM_DATABASES)
# Accounts the servers themselves run on (`mariadb.sys` and `mysql.*` cannot pass the identifier pattern).
SYSTEM_ACCOUNTS = ("mysql", "postgres", "root")
PG_SYSTEM_PREFIX = "pg_"
PG_SYSTEM_SCHEMAS = ("information_schema",)  # and every schema whose name starts with pg_


def lower_ascii(text: str) -> str:
    """CEL's `lowerAscii()` (Kubernetes' strings library): only ASCII letters change case."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


def system_name_rule(field: str, names: tuple[str, ...], message: str) -> Rule:
    """The node's string property `field`, when present, is none of `names` (case-insensitively)."""
    return Rule(
        f"!has(self.{field}) || !(self.{field}.lowerAscii() in {_cel_list(names)})",
        message,
        lambda s: field not in s or lower_ascii(s[field]) not in names,
        f".{field}",
    )


def system_member_rule(field: str, names: tuple[str, ...], message: str) -> Rule:
    """No entry of the node's list property `field` is one of `names` (case-insensitively)."""
    return Rule(
        f"!has(self.{field}) || !self.{field}.exists(r, r.lowerAscii() in {_cel_list(names)})",
        message,
        lambda s: not any(lower_ascii(r) in names for r in s.get(field) or ()),
        f".{field}",
    )


def pg_system_schema(name: str) -> bool:
    low = lower_ascii(name)
    return low.startswith(PG_SYSTEM_PREFIX) or low in PG_SYSTEM_SCHEMAS


def pg_system_schema_rule(field: str) -> Rule:
    """The node's schema-name property `field` is not a PostgreSQL system schema (pg_*, information_schema)."""
    return Rule(
        f"!has(self.{field}) || !(self.{field}.lowerAscii().startsWith('{PG_SYSTEM_PREFIX}') || "
        f"self.{field}.lowerAscii() in {_cel_list(PG_SYSTEM_SCHEMAS)})",
        "pg_* schemas and information_schema belong to PostgreSQL itself; dbops never manages them: choose "
        "another schema",
        lambda s: field not in s or not pg_system_schema(s[field]),
        f".{field}",
    )


def pg_role_prefix_rule(field: str, allowed: tuple[str, ...] = ()) -> Rule:
    """The node's role-name property `field` is not one of PostgreSQL's predefined pg_* roles (except `allowed`)."""
    exempt = "".join(f" || self.{field} == '{a}'" for a in allowed)
    return Rule(
        f"!has(self.{field}) || !self.{field}.lowerAscii().startsWith('{PG_SYSTEM_PREFIX}'){exempt}",
        "pg_* roles are PostgreSQL's predefined roles; dbops never makes them own or receive anything here"
        + (f" (only {', '.join(allowed)} is allowed)" if allowed else ""),
        lambda s: (
            field not in s or not lower_ascii(s[field]).startswith(PG_SYSTEM_PREFIX) or s[field] in allowed
        ),
        f".{field}",
    )


SYSTEM_ACCOUNT_MESSAGE = (
    f"{', '.join(SYSTEM_ACCOUNTS)} are the servers' own accounts; dbops never manages them or hands them out: "
    "choose another name"
)
SYSTEM_DATABASE_MESSAGE = (
    f"{', '.join(SYSTEM_DATABASES)} are system databases (the servers' own, or dbops' catalog on MySQL/MariaDB); "
    "dbops never manages them: choose another name"
)
PG_SYSTEM_DATABASE_MESSAGE = (
    f"{', '.join(PG_SYSTEM_DATABASES)} are PostgreSQL's own databases; dbops never grants on them: choose another "
    "database"
)
