"""The claim API of dbops: one OpenAPI v3 schema per kind, the single source of truth.

`apis/*/definition.yaml` (the XRDs), the function's spec validation, the worker's request validation and
`docs/reference.md` are all generated from or checked against these dicts (see `tests/test_api_sources.py`).
This module is plain data and a few builders so the worker can import it at start-up for a few milliseconds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

GROUP = "dbops.dbprovision.io"
VERSION = "v1alpha1"
KINDS = ("DatabaseInstance", "Database", "DatabaseUser", "DatabaseGrant")
ENGINES = ("postgres", "mysql", "mariadb")

# Identifiers we create or name in a server. Quoting makes any name safe, but a conservative pattern keeps names
# portable across engines and free of surprises (case folding, quotes, whitespace, Unicode look-alikes).
IDENT_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
IDENT_MAX = 63
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern for Secret keys)
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$"
MYSQL_HOST_PATTERN = r"^[A-Za-z0-9%_.:-]+(/[0-9.]+)?$"
PRIVILEGE_PATTERN = r"^[A-Za-z_]+( [A-Za-z_]+)*$"  # MariaDB READ_ONLY ADMIN, MySQL 8 dynamic privileges
TABLE_OR_ALL_PATTERN = r"^([a-zA-Z_][a-zA-Z0-9_]*|\*)$"
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
PG_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PHASES = ("Pending", "Provisioning", "Ready", "Failed", "Dropped")

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
# An RFC 3339 time whose calendar date exists (no 2030-02-30, no February 29 outside leap years) and whose clock
# reads 00:00:00 to 23:59:59: the API server checks it with RE2, the worker and the function with Python's re.
_YEAR = "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_CLOCK = "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
CALENDAR_TIME_PATTERN = f"^({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_CLOCK}$"
_CALENDAR_TIME = re.compile(CALENDAR_TIME_PATTERN[:-1] + r"\Z")


# Private schema keys (prefix `x-dbops-`): the XRD generator strips them, `dbops_api.validation` honours them.
KEY_PATTERN = "x-dbops-key-pattern"
CHECKS = "x-dbops-checks"


@dataclass(frozen=True)
class Rule:
    """A cross-field rule: CEL for the API server, the same predicate in Python for the worker and function.

    `tests/test_api_sources.py` evaluates both on generated objects and fails when they disagree."""

    cel: str
    message: str
    check: Callable[[dict[str, Any]], bool]
    # The field the error is reported at (Kubernetes `fieldPath`, relative to the node carrying the rule, e.g.
    # `.mysql`), so the API server and our validators name the field to fix, not just the object around it.
    field: str = ""


# --- builders -------------------------------------------------------------------------------------------------


def string(description: str, **kw: Any) -> Schema:
    return {"type": "string", "description": description, **kw}


def ident(description: str, **kw: Any) -> Schema:
    return string(description, pattern=IDENT_PATTERN, minLength=1, maxLength=IDENT_MAX, **kw)


def integer(description: str, **kw: Any) -> Schema:
    return {"type": "integer", "description": description, **kw}


def boolean(description: str, **kw: Any) -> Schema:
    return {"type": "boolean", "description": description, **kw}


def enum(description: str, values: tuple[str, ...] | list[str], **kw: Any) -> Schema:
    return string(description, enum=list(values), **kw)


def array(description: str, items: Schema, **kw: Any) -> Schema:
    return {"type": "array", "description": description, "items": items, **kw}


def ident_set(description: str, max_items: int = 64) -> Schema:
    return array(description, ident("A name."), maxItems=max_items, **{"x-kubernetes-list-type": "set"})


def string_map(
    description: str, key_rule: str | None = None, max_props: int = 64, max_len: int = 1024
) -> Schema:
    out: Schema = {
        "type": "object",
        "description": description,
        "maxProperties": max_props,
        "additionalProperties": {"type": "string", "maxLength": max_len},
    }
    if key_rule:
        # Not CEL: a rule over unbounded map keys would exceed the API server's cost budget.
        out[KEY_PATTERN] = key_rule
    return out


def obj(
    description: str,
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    rules: tuple[Rule, ...] = (),
) -> Schema:
    out: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        out["required"] = list(required)
    if rules:
        out["x-kubernetes-validations"] = [
            {"rule": r.cel, "message": r.message, **({"fieldPath": r.field} if r.field else {})}
            for r in rules
        ]
        out[CHECKS] = [r.check for r in rules]
    return out


def immutable(schema: Schema, field: str) -> Schema:
    out = dict(schema)
    out["x-kubernetes-validations"] = [
        *schema.get("x-kubernetes-validations", []),
        {"rule": "self == oldSelf", "message": f"{field} is immutable; create a new object to change it"},
    ]
    return out


def object_ref(description: str) -> Schema:
    return obj(
        description,
        {"name": string("Name of the claim in the same namespace.", pattern=K8S_NAME_PATTERN, maxLength=253)},
        required=("name",),
    )


def secret_name(description: str) -> Schema:
    return string(description, pattern=K8S_NAME_PATTERN, minLength=1, maxLength=253)


def secret_key(description: str, default: str) -> Schema:
    return string(description, pattern=SECRET_KEY_PATTERN, maxLength=253, default=default)


# --- fields shared by several kinds ---------------------------------------------------------------------------

LIFECYCLE: dict[str, Schema] = {
    "deletionPolicy": enum(
        "What `ensure: Absent` does in the server: `Retain` only stops managing the object; `Delete` drops it "
        "(revokes, for a DatabaseGrant). Deleting the claim never drops anything.",
        ("Retain", "Delete"),
        default="Retain",
    ),
    "deletionProtection": boolean(
        "While true, the admission policy refuses to delete the claim and the function refuses `ensure: Absent`.",
        default=True,
    ),
    "ensure": enum(
        "`Present` creates and converges the object; `Absent` drops it when `deletionPolicy: Delete` and "
        "`deletionProtection: false`, otherwise stops managing it.",
        ("Present", "Absent"),
        default="Present",
    ),
}

ENGINE_OPTION_RULE = Rule(
    "!(has(self.postgres) && has(self.mysql))",
    "set postgres or mysql options, not both",
    lambda s: not ("postgres" in s and "mysql" in s),
    ".mysql",
)


def admin_roles_listed(admin: list[str] | None, *role_lists: list[str] | None) -> bool:
    """Every adminRoles entry is one of the memberships the spec manages: the admin option qualifies a membership,
    it cannot stand alone."""
    listed = {r for roles in role_lists for r in roles or ()}
    return all(r in listed for r in admin or ())


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

ADOPT = boolean(
    "Take over an object of this name that already exists in the server and that dbops did not create for this "
    "claim (made by hand, or managed by another claim). dbops marks what it creates and otherwise refuses to "
    "touch an existing object; with `adopt: true` it manages it and marks it as this claim's. Default: false."
)

# DatabaseGrant's postgres and mysql blocks: adminRoles qualifies entries of that block's roles.
ADMIN_ROLES_RULE = Rule(
    "!has(self.adminRoles) || self.adminRoles.all(r, has(self.roles) && r in self.roles)",
    "adminRoles names a role that roles does not list; add it to roles or remove it from adminRoles",
    lambda b: admin_roles_listed(b.get("adminRoles"), b.get("roles")),
    ".adminRoles",
)

GRANT_ADMIN_ROLES = ident_set(
    "Roles from `roles` the grantee holds WITH ADMIN OPTION, so it may grant them to others; the other roles in "
    "`roles` are held without it."
)

INSTANCE_REF = object_ref("The DatabaseInstance claim (same namespace) whose server holds this object.")


# --- DatabaseInstance -----------------------------------------------------------------------------------------

DATABASE_INSTANCE: Schema = obj(
    "A database server that dbops manages objects in, and the admin credentials it uses.",
    {
        "engine": immutable(enum("The server's engine.", ENGINES), "engine"),
        "connection": obj(
            "How to reach the server.",
            {
                "host": string("Host name or IP address of the server.", pattern=HOST_PATTERN, maxLength=253),
                "port": integer("TCP port of the server.", minimum=1, maximum=65535),
                "database": ident(
                    "Database the admin connects to. Defaults to `postgres` on PostgreSQL; unused on MySQL/MariaDB."
                ),
                "secretRef": obj(
                    "Secret (same namespace) holding the admin credentials.",
                    {
                        "name": secret_name("Name of the Secret."),
                        "keys": obj(
                            "Keys of the Secret.",
                            {
                                "username": secret_key("Key holding the admin user name.", "username"),
                                "password": secret_key("Key holding the admin password.", "password"),
                            },
                        ),
                    },
                    required=("name",),
                ),
            },
            required=("host", "port", "secretRef"),
        ),
        "tls": obj(
            "TLS for the admin connection. A client certificate and key in the Secret turn on mutual TLS.",
            {
                "enabled": boolean("Use TLS.", default=False),
                "mode": enum(
                    "How strictly to check the server: `require` encrypts only; `verify-ca` checks the chain; "
                    "`verify-full` also checks the host name. Defaults to `verify-full` when enabled.",
                    SSL_MODES,
                ),
                "secretRef": obj(
                    "Secret (same namespace) with the CA certificate and, for mutual TLS, a client certificate "
                    "and key. Keys that are absent from the Secret are not used.",
                    {
                        "name": secret_name("Name of the Secret."),
                        "keys": obj(
                            "Keys of the Secret.",
                            {
                                "ca": secret_key("Key holding the CA certificate (PEM).", "ca.crt"),
                                "cert": secret_key("Key holding the client certificate (PEM).", "tls.crt"),
                                "key": secret_key("Key holding the client private key (PEM).", "tls.key"),
                            },
                        ),
                    },
                    required=("name",),
                ),
            },
            rules=(
                Rule(
                    "!has(self.mode) || self.enabled || self.mode == 'disable'",
                    "tls.mode needs tls.enabled: true",
                    lambda t: "mode" not in t or t["enabled"] or t["mode"] == "disable",
                    ".mode",
                ),
                Rule(
                    "!(self.enabled && has(self.mode) && (self.mode == 'verify-ca' || self.mode == 'verify-full'))"
                    " || has(self.secretRef)",
                    "tls.mode verify-ca and verify-full need tls.secretRef with the CA certificate",
                    lambda t: (
                        not (t["enabled"] and t.get("mode") in ("verify-ca", "verify-full"))
                        or "secretRef" in t
                    ),
                    ".secretRef",
                ),
                Rule(
                    "!self.enabled || has(self.mode) || has(self.secretRef)",
                    "tls.enabled defaults to mode verify-full, which needs tls.secretRef; set it or tls.mode: require",
                    lambda t: not t["enabled"] or "mode" in t or "secretRef" in t,
                    ".secretRef",
                ),
            ),
        ),
        "healthCheck": obj(
            "Periodic re-check of the connection and the admin's privileges.",
            {
                "enabled": boolean("Re-run the check periodically.", default=True),
                "intervalSeconds": integer("Seconds between checks.", minimum=30, maximum=86400, default=300),
                "timeoutSeconds": integer("Seconds a check may take.", minimum=1, maximum=300, default=10),
            },
        ),
        "postgres": obj(
            "PostgreSQL connection options.",
            {
                "sslMode": enum(
                    "libpq sslmode for the admin connection when `tls` is not enabled.", PG_SSL_MODES
                ),
                "connectTimeout": integer("Connect timeout in seconds.", minimum=1, maximum=300, default=10),
                "statementTimeout": string(
                    "Statement timeout for the worker's session, e.g. `30s`, `500ms`, `2min`.",
                    pattern=r"^[0-9]{1,6}(ms|s|min|h)$",
                    default="60s",
                ),
                "applicationName": string(
                    "application_name the worker reports.",
                    pattern=r"^[A-Za-z0-9._-]{1,63}$",
                    default="dbops-worker",
                ),
            },
        ),
        "mysql": obj(
            "MySQL/MariaDB connection options.",
            {
                "charset": string(
                    "Connection character set.", pattern=r"^[a-z0-9_]{1,32}$", default="utf8mb4"
                ),
                "collation": string("Connection collation.", pattern=r"^[a-z0-9_]{1,64}$"),
                "tls": enum("TLS mode for the admin connection when `tls` is not enabled.", SSL_MODES),
                "timeouts": obj(
                    "Timeouts in seconds.",
                    {
                        "connect": integer("Connect timeout.", minimum=1, maximum=300, default=10),
                        "read": integer("Read timeout.", minimum=1, maximum=3600, default=60),
                        "write": integer("Write timeout.", minimum=1, maximum=3600, default=60),
                    },
                ),
            },
        ),
        "allowGlobalGrants": boolean(
            "Let claims on this instance hand out server-wide privileges: MySQL/MariaDB grants at the global level "
            "(`*.*`) or on a system schema (`mysql`, `sys`, `performance_schema`, `information_schema`), and "
            "PostgreSQL membership in a predefined `pg_*` role (`pg_read_all_data`, `pg_monitor`, ...). Refused "
            "while false: such privileges reach every tenant's data on the server. Default: false.",
        ),
        "deletionProtection": LIFECYCLE["deletionProtection"],
    },
    required=("engine", "connection"),
    rules=(
        Rule(
            "!has(self.postgres) || self.engine == 'postgres'",
            "postgres options need engine: postgres",
            lambda s: "postgres" not in s or s["engine"] == "postgres",
            ".postgres",
        ),
        Rule(
            "!has(self.mysql) || self.engine != 'postgres'",
            "mysql options need engine: mysql or mariadb",
            lambda s: "mysql" not in s or s["engine"] != "postgres",
            ".mysql",
        ),
        Rule(
            "!(has(self.tls) && self.tls.enabled && has(self.postgres) && has(self.postgres.sslMode))",
            "set the TLS mode once: tls.mode or postgres.sslMode, not both",
            lambda s: not (s.get("tls", {}).get("enabled") and "sslMode" in s.get("postgres", {})),
            ".postgres.sslMode",
        ),
        Rule(
            "!(has(self.tls) && self.tls.enabled && has(self.mysql) && has(self.mysql.tls))",
            "set the TLS mode once: tls.mode or mysql.tls, not both",
            lambda s: not (s.get("tls", {}).get("enabled") and "tls" in s.get("mysql", {})),
            ".mysql.tls",
        ),
    ),
)


# --- Database ---------------------------------------------------------------------------------------------------

PG_DEFAULT_PRIVILEGE_TYPES = ("tables", "sequences", "functions", "types", "schemas")

DATABASE: Schema = obj(
    "A database inside a DatabaseInstance's server.",
    {
        "instanceRef": INSTANCE_REF,
        "name": immutable(ident("Name of the database in the server."), "name"),
        "owner": ident("PostgreSQL only: the role that owns the database (it must exist)."),
        "adopt": ADOPT,
        **LIFECYCLE,
        "postgres": obj(
            "PostgreSQL options.",
            {
                "encoding": string(
                    "Character encoding, e.g. `UTF8`. Fixed at creation; a difference is reported, not changed.",
                    pattern=r"^[A-Za-z0-9_-]{1,32}$",
                ),
                "lcCollate": string(
                    "LC_COLLATE, e.g. `C` or `en_US.UTF-8`. Fixed at creation.",
                    pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                ),
                "lcCtype": string(
                    "LC_CTYPE, e.g. `C` or `en_US.UTF-8`. Fixed at creation.",
                    pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                ),
                "tablespace": ident(
                    "Default tablespace. Changing it moves the database (ALTER DATABASE SET TABLESPACE)."
                ),
                "template": ident("Template to copy at creation, e.g. `template0`. Fixed at creation."),
                "connectionLimit": integer("Maximum concurrent connections; -1 means no limit.", minimum=-1),
                "isTemplate": boolean("Mark the database as a template."),
                "allowConnections": boolean("Allow connections to the database."),
                "publicPrivileges": array(
                    "The privileges every role holds on the database through PUBLIC, as an exact set: e.g. `[]` "
                    "revokes CONNECT and TEMPORARY from PUBLIC, so only roles granted CONNECT (a DatabaseUser's "
                    "databaseRef, a DatabaseGrant) or the owner may connect. Absent: left as the server has it "
                    "(PostgreSQL gives PUBLIC CONNECT and TEMPORARY on a new database).",
                    enum("A database privilege.", ("CONNECT", "TEMPORARY", "CREATE")),
                    maxItems=3,
                    **{"x-kubernetes-list-type": "set"},
                ),
                "extensions": array(
                    "Extensions to install in the database.",
                    obj(
                        "An extension.",
                        {
                            "name": string("Extension name.", pattern=r"^[a-z0-9_-]{1,63}$"),
                            "schema": ident("Schema to install into (moved there if installed elsewhere)."),
                            "version": string(
                                "Version to install or update to; default: the server's default version.",
                                pattern=r"^[A-Za-z0-9._-]{1,32}$",
                            ),
                        },
                        required=("name",),
                        rules=(pg_system_schema_rule("schema"),),
                    ),
                    maxItems=64,
                    **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                ),
                "schemas": array(
                    "Schemas to create in the database.",
                    obj(
                        "A schema.",
                        {
                            "name": ident("Schema name."),
                            "owner": ident(
                                "Role that owns the schema; `pg_database_owner` means whoever owns the database."
                            ),
                        },
                        required=("name",),
                        rules=(
                            pg_system_schema_rule("name"),
                            pg_role_prefix_rule("owner", ("pg_database_owner",)),
                        ),
                    ),
                    maxItems=128,
                    **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
                ),
                "defaultPrivileges": array(
                    "Privileges granted automatically on objects that `forRole` creates later "
                    "(ALTER DEFAULT PRIVILEGES). Each entry owns the exact privilege set of its "
                    "(forRole, schema, objectType, role) tuple; `privileges: []` revokes them all.",
                    obj(
                        "A default privilege rule.",
                        {
                            "role": ident("Role that receives the privileges (the grantee)."),
                            "forRole": ident(
                                "Role whose future objects are covered; default: the database owner."
                            ),
                            "schema": ident("Schema the rule is limited to; default: all schemas."),
                            "objectType": enum("Kind of future object.", PG_DEFAULT_PRIVILEGE_TYPES),
                            "privileges": array(
                                "Privileges, e.g. SELECT, INSERT; ALL expands to every privilege of the object type.",
                                string("A privilege.", pattern=PRIVILEGE_PATTERN, maxLength=40),
                                maxItems=16,
                            ),
                        },
                        required=("role", "objectType", "privileges"),
                        rules=(
                            Rule(
                                "self.objectType != 'schemas' || !has(self.schema)",
                                "default privileges on schemas cannot be limited to a schema",
                                lambda d: d["objectType"] != "schemas" or "schema" not in d,
                                ".schema",
                            ),
                            pg_system_schema_rule("schema"),
                            pg_role_prefix_rule("role"),
                            pg_role_prefix_rule("forRole"),
                        ),
                    ),
                    maxItems=64,
                ),
            },
        ),
        "mysql": obj(
            "MySQL/MariaDB options.",
            {
                "charset": string("Default character set, e.g. `utf8mb4`.", pattern=r"^[a-z0-9_]{1,32}$"),
                "collation": string(
                    "Default collation, e.g. `utf8mb4_unicode_ci`.", pattern=r"^[a-z0-9_]{1,64}$"
                ),
            },
        ),
    },
    required=("instanceRef", "name"),
    rules=(
        ENGINE_OPTION_RULE,
        system_name_rule("name", SYSTEM_DATABASES, SYSTEM_DATABASE_MESSAGE),
        pg_role_prefix_rule("owner"),
    ),
)


# --- DatabaseUser -----------------------------------------------------------------------------------------------

MYSQL_AUTH_PLUGINS = ("mysql_native_password", "caching_sha2_password", "ed25519")
PG_DATABASE_ACCESS = ("Connect", "Owner")

# secretTemplate.type: the built-in types other than these need keys we never write (tls.crt, .dockerconfigjson,
# ...) or are filled in by controllers (service-account-token, bootstrap tokens), so the API server would refuse the
# Secret or it would be useless, and the claim would wait for it forever. Custom types are `<DNS subdomain>/<path>`,
# the convention Kubernetes documents, outside the kubernetes.io and k8s.io domains it reserves for itself.
SECRET_TYPES = ("Opaque", "kubernetes.io/basic-auth")
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_PATH_SEGMENT = "[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
CUSTOM_SECRET_TYPE_PATTERN = f"^{_DNS_LABEL}([.]{_DNS_LABEL})*(/{_PATH_SEGMENT})+$"
RESERVED_SECRET_TYPE_PATTERN = "^([^/]*[.])?(kubernetes|k8s)[.]io/"  # noqa: S105 (a pattern for Secret types)
_CUSTOM_SECRET_TYPE = re.compile(CUSTOM_SECRET_TYPE_PATTERN[:-1] + r"\Z")
_RESERVED_SECRET_TYPE = re.compile(RESERVED_SECRET_TYPE_PATTERN)


def _allowed_secret_type(value: str) -> bool:
    return value in SECRET_TYPES or (
        _CUSTOM_SECRET_TYPE.search(value) is not None and _RESERVED_SECRET_TYPE.search(value) is None
    )


SECRET_TYPE_RULE = Rule(
    "!has(self.type) || self.type in ['Opaque', 'kubernetes.io/basic-auth'] || "
    f"(self.type.matches('{CUSTOM_SECRET_TYPE_PATTERN}') && !self.type.matches('{RESERVED_SECRET_TYPE_PATTERN}'))",
    "secretTemplate.type must be Opaque, kubernetes.io/basic-auth or a custom type <domain>/<name> (e.g. "
    "example.com/db-credentials) outside kubernetes.io and k8s.io: other built-in types need keys dbops does not "
    "write",
    lambda t: "type" not in t or _allowed_secret_type(t["type"]),
    ".type",
)

DATABASE_USER: Schema = obj(
    "A user (PostgreSQL role with LOGIN, MySQL/MariaDB account) and its credentials Secret.",
    {
        "instanceRef": INSTANCE_REF,
        "databaseRef": object_ref(
            "A Database claim (same namespace) the user gets the use of: on PostgreSQL CONNECT and TEMPORARY on the "
            "database and USAGE on its schema public (no CREATE: see `postgres.databaseAccess` for the owner "
            "pattern); on MySQL/MariaDB ALL PRIVILEGES ON `db`.*."
        ),
        "username": immutable(
            ident("Name of the user in the server (at most 32 characters on MySQL/MariaDB)."), "username"
        ),
        "passwordSecret": obj(
            "The credentials Secret dbops writes in the claim's namespace.",
            {
                "generate": boolean(
                    "Generate a password once and keep it. Default: true unless existingPasswordSecret is set."
                ),
                "length": integer("Length of a generated password.", minimum=12, maximum=128, default=32),
                "includeSpecialChars": boolean(
                    "Include punctuation in a generated password (URL-safe set).", default=False
                ),
                "excludeChars": string("Characters never used in a generated password.", maxLength=64),
                "secretName": secret_name(
                    "Name of the credentials Secret; default: `<claim name>-credentials`. Never an existing Secret "
                    "dbops did not create for this claim (refused, `SecretNotOwned`)."
                ),
                "secretTemplate": obj(
                    "Shape of the credentials Secret.",
                    {
                        "type": string(
                            "Secret type: `Opaque`, `kubernetes.io/basic-auth` (the user must have a password: "
                            "the Secret then holds both `username` and `password`) or a custom "
                            "`<DNS subdomain>/<name>` outside kubernetes.io and k8s.io, e.g. "
                            "`example.com/db-credentials`.",
                            maxLength=253,
                            default="Opaque",
                        ),
                        "labels": string_map("Extra labels.", max_len=63),
                        "annotations": string_map("Extra annotations.", max_len=4096),
                        "data": {
                            **string_map(
                                "Extra keys whose values are templates with `{{ .Username }}`, `{{ .Password }}`, "
                                "`{{ .Host }}`, `{{ .Port }}`, `{{ .Database }}`, `{{ .SSLMode }}`, "
                                "`{{ .Namespace }}`, `{{ .Name }}` and the pipes in docs/reference.md.",
                                key_rule=SECRET_KEY_PATTERN,
                                max_len=4096,
                            ),
                        },
                    },
                    rules=(SECRET_TYPE_RULE,),
                ),
            },
        ),
        "existingPasswordSecret": obj(
            "Take the password from this Secret (same namespace) instead of generating one.",
            {
                "name": secret_name("Name of the Secret."),
                "key": secret_key("Key holding the password.", "password"),
            },
            required=("name",),
        ),
        "roles": ident_set(
            "Roles granted to the user (PostgreSQL role membership, MariaDB/MySQL 8 roles). When set, it is the "
            "exact set: memberships not listed are revoked."
        ),
        "adminRoles": ident_set(
            "Roles from `roles` (or `postgres.inRoles`) the user holds WITH ADMIN OPTION, so it may grant them to "
            "others; the other managed memberships are held without it."
        ),
        "adopt": ADOPT,
        **LIFECYCLE,
        "postgres": obj(
            "PostgreSQL role attributes.",
            {
                "connectionLimit": integer(
                    "Maximum concurrent connections; -1 means no limit.", minimum=-1, default=-1
                ),
                "validUntil": string(
                    "Password expiry as an RFC 3339 time whose date exists (e.g. `2030-02-28T00:00:00Z`), or "
                    "`infinity`.",
                    pattern=r"^(infinity|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))$",
                    maxLength=64,
                    default="infinity",
                ),
                "superuser": boolean("SUPERUSER.", default=False),
                "createDB": boolean("CREATEDB.", default=False),
                "createRole": boolean("CREATEROLE.", default=False),
                "inherit": boolean("INHERIT.", default=True),
                "login": boolean("LOGIN.", default=True),
                "replication": boolean("REPLICATION.", default=False),
                "bypassRLS": boolean("BYPASSRLS.", default=False),
                "inRoles": ident_set(
                    "Roles the user is a member of (CREATE ROLE ... IN ROLE); merged with `roles`, exact set."
                ),
                "configParameters": string_map(
                    "Per-role settings (ALTER ROLE ... SET). When set, it is the exact set: others are reset.",
                    key_rule=r"^[a-zA-Z_][a-zA-Z0-9_.]{0,62}$",
                    max_len=1024,
                ),
                "databaseAccess": enum(
                    "What `databaseRef` gives the user on PostgreSQL. `Connect` (default): CONNECT and TEMPORARY "
                    "on the database and USAGE on its schema public, so it uses what others grant it but creates "
                    "nothing there (PostgreSQL 15 took CREATE on public away from everyone: CVE-2018-1058). "
                    "`Owner`: the user becomes the database's owner (ALTER DATABASE ... OWNER TO), with every "
                    "privilege on it and, on PostgreSQL 15+, on its schema public; leave the Database's `owner` "
                    "unset. Ignored without databaseRef.",
                    PG_DATABASE_ACCESS,
                ),
            },
            rules=(
                Rule(
                    f"self.validUntil == 'infinity' || self.validUntil.matches('{CALENDAR_TIME_PATTERN}')",
                    "is not a time that exists: the date must be in the calendar (2030-02-30 is not, nor is "
                    "February 29 outside a leap year) and the clock between 00:00:00 and 23:59:59; e.g. "
                    "2030-02-28T00:00:00Z, or infinity",
                    lambda p: (
                        p["validUntil"] == "infinity" or _CALENDAR_TIME.search(p["validUntil"]) is not None
                    ),
                    ".validUntil",
                ),
                system_member_rule("inRoles", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
            ),
        ),
        "mysql": obj(
            "MySQL/MariaDB account options.",
            {
                "maxQueriesPerHour": integer("MAX_QUERIES_PER_HOUR; 0 means no limit.", minimum=0, default=0),
                "maxUpdatesPerHour": integer("MAX_UPDATES_PER_HOUR; 0 means no limit.", minimum=0, default=0),
                "maxConnectionsPerHour": integer(
                    "MAX_CONNECTIONS_PER_HOUR; 0 means no limit.", minimum=0, default=0
                ),
                "maxUserConnections": integer(
                    "MAX_USER_CONNECTIONS; 0 means no limit.", minimum=0, default=0
                ),
                "authPlugin": enum(
                    "Authentication plugin; default: the server's default (mysql_native_password on MariaDB, "
                    "caching_sha2_password on MySQL 8).",
                    MYSQL_AUTH_PLUGINS,
                ),
                "requireSSL": boolean("REQUIRE SSL.", default=False),
                "requireX509": boolean("REQUIRE X509 (a client certificate).", default=False),
                "allowedHosts": array(
                    "Hosts the account may connect from; one account `user`@`host` per entry.",
                    string(
                        "A host, e.g. `%`, `10.0.0.%`, `app.example.com`.",
                        pattern=MYSQL_HOST_PATTERN,
                        maxLength=255,
                    ),
                    minItems=1,
                    maxItems=32,
                    default=["%"],
                    **{"x-kubernetes-list-type": "set"},
                ),
                "accountLocked": boolean("ACCOUNT LOCK.", default=False),
            },
        ),
    },
    required=("instanceRef", "username"),
    rules=(
        ENGINE_OPTION_RULE,
        system_name_rule("username", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
        system_member_rule("roles", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
        Rule(
            "!(has(self.existingPasswordSecret) && has(self.passwordSecret) && has(self.passwordSecret.generate)"
            " && self.passwordSecret.generate)",
            "existingPasswordSecret and passwordSecret.generate: true contradict; choose one",
            lambda s: (
                not ("existingPasswordSecret" in s and s.get("passwordSecret", {}).get("generate") is True)
            ),
            ".passwordSecret.generate",
        ),
        Rule(
            "!has(self.adminRoles) || self.adminRoles.all(r, (has(self.roles) && r in self.roles) || "
            "(has(self.postgres) && has(self.postgres.inRoles) && r in self.postgres.inRoles))",
            "adminRoles names a role that neither roles nor postgres.inRoles lists; add it there or remove it "
            "from adminRoles",
            lambda s: admin_roles_listed(
                s.get("adminRoles"), s.get("roles"), s.get("postgres", {}).get("inRoles")
            ),
            ".adminRoles",
        ),
    ),
)


# --- DatabaseGrant ----------------------------------------------------------------------------------------------

MYSQL_GRANT_LEVELS = ("global", "database", "table", "column", "procedure", "function")

PRIVILEGES = array(
    "Privileges; the exact set for this grantee and object (an empty list revokes everything on it). "
    "ALL expands to every privilege of the object type on the server in front of it.",
    string("A privilege, e.g. SELECT.", pattern=PRIVILEGE_PATTERN, maxLength=40),
    maxItems=40,
)

DATABASE_GRANT: Schema = obj(
    "Exact, revocable privileges and role memberships for a user or role.",
    {
        "userRef": object_ref("The DatabaseUser claim (same namespace) that receives the grants."),
        "roleName": ident("Name of a role (or user) in the server that receives the grants."),
        "instanceRef": object_ref(
            "The DatabaseInstance claim; needed only when neither userRef nor databaseRef leads to it."
        ),
        "databaseRef": object_ref("Database claim whose database is the default for grants that name none."),
        "adopt": boolean(
            "Act on a grantee that no DatabaseUser of this namespace created: a role or account made by hand, or "
            "one another namespace manages. Without it such a grantee is refused (dbops marks the roles and "
            "accounts it creates, and a grant never takes one over). The grant never marks the grantee. Default: "
            "false."
        ),
        **LIFECYCLE,
        "postgres": obj(
            "PostgreSQL privileges.",
            {
                "roles": ident_set("Roles the grantee is a member of; when set, the exact set."),
                "adminRoles": GRANT_ADMIN_ROLES,
                "grants": array(
                    "Privileges on objects. Database level when only `database` is given, schema level with "
                    "`schema`, object level with `tables`, `sequences` or `functions` (`*` means all in the schema).",
                    obj(
                        "Privileges on one object or set of objects.",
                        {
                            "database": ident("Database; default: the database of databaseRef."),
                            "schema": ident("Schema."),
                            "tables": array(
                                "Table names or `*`.",
                                string("A table.", pattern=TABLE_OR_ALL_PATTERN, maxLength=63),
                                maxItems=256,
                                **{"x-kubernetes-list-type": "set"},
                            ),
                            "sequences": array(
                                "Sequence names or `*`.",
                                string("A sequence.", pattern=TABLE_OR_ALL_PATTERN, maxLength=63),
                                maxItems=256,
                                **{"x-kubernetes-list-type": "set"},
                            ),
                            "functions": array(
                                "Function or procedure names (all overloads) or `*`.",
                                string("A function.", pattern=TABLE_OR_ALL_PATTERN, maxLength=63),
                                maxItems=256,
                                **{"x-kubernetes-list-type": "set"},
                            ),
                            "privileges": PRIVILEGES,
                            "withGrantOption": boolean("WITH GRANT OPTION.", default=False),
                        },
                        required=("privileges",),
                        rules=(
                            Rule(
                                "[has(self.tables), has(self.sequences), has(self.functions)]"
                                ".filter(x, x).size() <= 1",
                                "a grant names tables, sequences or functions, not several; split it",
                                lambda g: sum(k in g for k in ("tables", "sequences", "functions")) <= 1,
                            ),
                            Rule(
                                "!(has(self.tables) || has(self.sequences) || has(self.functions)) || has(self.schema)",
                                "tables, sequences and functions need a schema",
                                lambda g: (
                                    not any(k in g for k in ("tables", "sequences", "functions"))
                                    or "schema" in g
                                ),
                                ".schema",
                            ),
                            system_name_rule("database", PG_SYSTEM_DATABASES, PG_SYSTEM_DATABASE_MESSAGE),
                            pg_system_schema_rule("schema"),
                        ),
                    ),
                    maxItems=128,
                ),
            },
            rules=(ADMIN_ROLES_RULE, system_member_rule("roles", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE)),
        ),
        "mysql": obj(
            "MySQL/MariaDB privileges.",
            {
                "roles": ident_set("Roles granted to the grantee; when set, the exact set."),
                "adminRoles": GRANT_ADMIN_ROLES,
                "grants": array(
                    "Privileges at one level each.",
                    obj(
                        "Privileges at one level.",
                        {
                            "level": enum("Level of the grant.", MYSQL_GRANT_LEVELS),
                            "database": ident("Database; default: the database of databaseRef."),
                            "table": ident("Table (levels table and column)."),
                            "columns": ident_set("Columns (level column).", max_items=256),
                            "procedure": ident("Stored procedure (level procedure)."),
                            "function": ident("Stored function (level function)."),
                            "privileges": PRIVILEGES,
                            "withGrantOption": boolean("WITH GRANT OPTION.", default=False),
                        },
                        required=("level", "privileges"),
                        rules=(
                            Rule(
                                "self.level != 'global' || !(has(self.database) || has(self.table))",
                                "a global grant names no database or table",
                                lambda g: g["level"] != "global" or not ("database" in g or "table" in g),
                                ".level",
                            ),
                            Rule(
                                "!(self.level == 'table' || self.level == 'column') || has(self.table)",
                                "table and column grants need table",
                                lambda g: g["level"] not in ("table", "column") or "table" in g,
                                ".table",
                            ),
                            Rule(
                                "self.level != 'column' || has(self.columns)",
                                "column grants need columns",
                                lambda g: g["level"] != "column" or "columns" in g,
                                ".columns",
                            ),
                            Rule(
                                "self.level == 'column' || !has(self.columns)",
                                "columns belong to column grants",
                                lambda g: g["level"] == "column" or "columns" not in g,
                                ".columns",
                            ),
                            Rule(
                                "self.level != 'procedure' || has(self.procedure)",
                                "procedure grants need procedure",
                                lambda g: g["level"] != "procedure" or "procedure" in g,
                                ".procedure",
                            ),
                            Rule(
                                # `function` is a CEL reserved word: Kubernetes exposes the field as __function__.
                                "self.level != 'function' || has(self.__function__)",
                                "function grants need function",
                                lambda g: g["level"] != "function" or "function" in g,
                                ".function",
                            ),
                            Rule(
                                "(self.level == 'table' || self.level == 'column') || !has(self.table)",
                                "table belongs to table and column grants",
                                lambda g: g["level"] in ("table", "column") or "table" not in g,
                                ".table",
                            ),
                        ),
                    ),
                    maxItems=128,
                ),
            },
            rules=(ADMIN_ROLES_RULE, system_member_rule("roles", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE)),
        ),
    },
    rules=(
        ENGINE_OPTION_RULE,
        Rule(
            "has(self.userRef) != has(self.roleName)",
            "set exactly one of userRef and roleName",
            lambda s: ("userRef" in s) != ("roleName" in s),
            ".roleName",
        ),
        system_name_rule("roleName", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
    ),
)

SPECS: dict[str, Schema] = {
    "DatabaseInstance": DATABASE_INSTANCE,
    "Database": DATABASE,
    "DatabaseUser": DATABASE_USER,
    "DatabaseGrant": DATABASE_GRANT,
}


# --- status -----------------------------------------------------------------------------------------------------

DRIFT = array(
    "Differences the worker found but must not fix (immutable attributes).",
    string("A difference."),
    maxItems=32,
)

COMMON_STATUS: dict[str, Schema] = {
    "phase": enum("Where the object is in its life.", PHASES),
    "message": string("What happened last, in words; the worker's error message when Failed."),
    "job": string("Name of the Job that carries the current desired state."),
    "lastAppliedHash": string("Hash of the last desired state the worker converged."),
    "lastSuccessfulTime": string("When the worker last converged the object.", format="date-time"),
    "attempts": integer("Failed attempts at the current desired state (retries back off exponentially)."),
}

KIND_STATUS: dict[str, tuple[str, Schema]] = {
    "DatabaseInstance": (
        "instance",
        obj(
            "What the last check saw.",
            {
                "version": string("Server version."),
                "flavor": enum("Server flavor.", ENGINES),
                "tls": boolean("Whether the admin connection used TLS."),
                "canCreateDatabases": boolean("Whether the admin may create databases."),
                "canCreateRoles": boolean("Whether the admin may create roles/users."),
                "superuser": boolean(
                    "Whether the admin is a superuser (PostgreSQL) or has SUPER/ALL (MySQL)."
                ),
            },
        ),
    ),
    "Database": (
        "database",
        obj(
            "What the worker saw in the server after converging.",
            {
                "name": string("Name in the server."),
                "owner": string("Owner role (PostgreSQL)."),
                "encoding": string("Encoding (PostgreSQL)."),
                "lcCollate": string("LC_COLLATE (PostgreSQL)."),
                "lcCtype": string("LC_CTYPE (PostgreSQL)."),
                "charset": string("Default character set (MySQL/MariaDB)."),
                "collation": string("Default collation (MySQL/MariaDB)."),
                "drift": DRIFT,
            },
        ),
    ),
    "DatabaseUser": (
        "user",
        obj(
            "What the worker saw in the server after converging.",
            {
                "username": string("Name in the server."),
                "hosts": array("Accounts' hosts (MySQL/MariaDB).", string("A host.")),
                "roles": array("Roles the user is a member of.", string("A role.")),
                "login": boolean("Whether the user may log in."),
                "drift": DRIFT,
            },
        ),
    ),
    "DatabaseGrant": (
        "grant",
        obj(
            "What the worker saw in the server after converging.",
            {
                "grantee": string("Role or user that holds the grants."),
                "hosts": array("Accounts' hosts (MySQL/MariaDB).", string("A host.")),
                "roles": array("Roles the grantee is a member of.", string("A role.")),
                "privileges": integer("Privileges held on the objects the grant names."),
            },
        ),
    ),
}


def status_schema(kind: str) -> Schema:
    key, facts = KIND_STATUS[kind]
    return obj(f"Observed state of the {kind}, written by the function.", {**COMMON_STATUS, key: facts})


# --- the worker's request ---------------------------------------------------------------------------------------

# Fields of a claim spec that the function consumes and does not pass to the worker.
FUNCTION_ONLY: dict[str, tuple[str, ...]] = {
    "DatabaseInstance": (
        "engine",
        "connection",
        "tls",
        "healthCheck",
        "postgres",
        "mysql",
        "allowGlobalGrants",
        "deletionProtection",
    ),
    "Database": ("instanceRef", "deletionPolicy", "deletionProtection", "ensure"),
    "DatabaseUser": (
        "instanceRef",
        "databaseRef",
        "passwordSecret",
        "existingPasswordSecret",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
    ),
    "DatabaseGrant": (
        "userRef",
        "instanceRef",
        "databaseRef",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
    ),
}

# Fields the function adds to the worker's request spec after resolving references.
RESOLVED: dict[str, dict[str, Schema]] = {
    "DatabaseInstance": {},
    "Database": {},
    "DatabaseUser": {"database": ident("Database name resolved from databaseRef.")},
    "DatabaseGrant": {
        "grantee": ident("Role or user name resolved from userRef (or roleName)."),
        "granteeHosts": array(
            "MySQL/MariaDB: the user's allowedHosts.",
            string("A host.", pattern=MYSQL_HOST_PATTERN, maxLength=255),
            minItems=1,
            maxItems=32,
            default=["%"],
        ),
        "database": ident("Database name resolved from databaseRef."),
    },
}


def request_spec_schema(kind: str) -> Schema:
    """The schema of the worker request's `spec` for a kind: the claim spec without function-only fields, with
    resolved references, and with cross-field rules that mention removed fields dropped."""
    spec = copy.deepcopy(SPECS[kind])
    for field in FUNCTION_ONLY[kind]:
        spec["properties"].pop(field, None)
    spec["properties"].update(copy.deepcopy(RESOLVED[kind]))
    spec["required"] = [f for f in spec.get("required", []) if f in spec["properties"]]
    if kind == "DatabaseGrant":
        spec["properties"].pop("roleName", None)
        spec["required"] = ["grantee"]
    removed = (*FUNCTION_ONLY[kind], "roleName", "userRef")
    pairs = [
        (rule, check)
        for rule, check in zip(spec.pop("x-kubernetes-validations", []), spec.pop(CHECKS, []), strict=True)
        if not any(f"self.{f}" in rule["rule"] for f in removed)
    ]
    if pairs:
        spec["x-kubernetes-validations"] = [p[0] for p in pairs]
        spec[CHECKS] = [p[1] for p in pairs]
    if not spec["required"]:
        del spec["required"]
    return spec


DURATION_PATTERN = r"^[0-9]{1,6}(ms|s|min|h)$"

REQUEST_CONNECTION: Schema = obj(
    "How the worker reaches the server: the instance's connection and TLS modes (never secrets).",
    {
        "host": string("Host name or IP address.", pattern=HOST_PATTERN, maxLength=253),
        "port": integer("TCP port.", minimum=1, maximum=65535),
        "database": ident("Admin database (PostgreSQL); default `postgres`."),
        "sslMode": enum("TLS mode; `allow` and `prefer` exist on PostgreSQL only.", PG_SSL_MODES),
        "connectTimeout": integer("Connect timeout in seconds.", minimum=1, maximum=300, default=10),
        "statementTimeout": string("Per-statement timeout.", pattern=DURATION_PATTERN, default="60s"),
        "lockTimeout": string(
            "How long to wait for a lock (our object lock or a catalog lock).",
            pattern=DURATION_PATTERN,
            default="30s",
        ),
        "applicationName": string(
            "Name the worker reports to the server.",
            pattern=r"^[A-Za-z0-9._-]{1,63}$",
            default="dbops-worker",
        ),
        "charset": string(
            "MySQL/MariaDB connection character set.", pattern=r"^[a-z0-9_]{1,32}$", default="utf8mb4"
        ),
        "collation": string("MySQL/MariaDB connection collation.", pattern=r"^[a-z0-9_]{1,64}$"),
        "readTimeout": integer("MySQL/MariaDB read timeout in seconds.", minimum=1, maximum=3600, default=60),
        "writeTimeout": integer(
            "MySQL/MariaDB write timeout in seconds.", minimum=1, maximum=3600, default=60
        ),
    },
    required=("host", "port"),
)

REQUEST_OWNER: Schema = obj(
    "The claim (or XR) the request acts for; used in lock keys, comments and logs.",
    {
        "kind": string("Kind.", maxLength=63),
        "name": string("Name.", maxLength=253),
        "namespace": string("Namespace.", maxLength=63),
        "uid": string("UID.", maxLength=64),
    },
)


REQUEST_POLICY: Schema = obj(
    "What the instance's platform team lets claims do (the DatabaseInstance's settings of that name).",
    {
        "allowGlobalGrants": boolean(
            "Server-wide privileges may be granted (DatabaseInstance allowGlobalGrants)."
        )
    },
)


def request_schema(kind: str) -> Schema:
    """The whole worker request for a kind (docs/worker.md)."""
    return obj(
        f"A worker request for a {kind}.",
        {
            "kind": enum("Kind of the object.", KINDS),
            "engine": enum("Engine of the server.", ENGINES),
            "connection": REQUEST_CONNECTION,
            "spec": request_spec_schema(kind),
            "owner": REQUEST_OWNER,
            "policy": REQUEST_POLICY,
        },
        required=("kind", "engine", "connection", "spec"),
        rules=(
            Rule(
                "self.engine == 'postgres' || !has(self.spec.postgres)",
                "spec.postgres needs engine postgres",
                lambda r: r["engine"] == "postgres" or "postgres" not in r["spec"],
                ".spec.postgres",
            ),
            Rule(
                "self.engine != 'postgres' || !has(self.spec.mysql)",
                "spec.mysql needs engine mysql or mariadb",
                lambda r: r["engine"] != "postgres" or "mysql" not in r["spec"],
                ".spec.mysql",
            ),
            Rule(
                "self.engine == 'postgres' || !has(self.connection.sslMode) || "
                "!(self.connection.sslMode in ['allow', 'prefer'])",
                "connection.sslMode allow and prefer exist on PostgreSQL only",
                lambda r: (
                    r["engine"] == "postgres" or r["connection"].get("sslMode") not in ("allow", "prefer")
                ),
                ".connection.sslMode",
            ),
        ),
    )
