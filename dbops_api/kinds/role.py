"""DatabaseRole: a role without login (PostgreSQL NOLOGIN role, MySQL 8/MariaDB role) with its privileges, that
users join by membership (DatabaseUser `roles`, DatabaseGrant `roles`).

Shapes follow db-provision-operator's DatabaseRole CRD (`roleName`, `postgres{login, inherit, createDB, createRole,
superuser, replication, bypassRLS, inRoles, grants[]}`, `mysql{useNativeRoles, grants[]}`); the `grants[]` items
are DatabaseGrant's. Refused with why: attributes a member could take on with SET ROLE (superuser, createRole,
replication, bypassRLS), `login: true` (a DatabaseUser is the kind for a role that logs in),
`useNativeRoles: false` (dbops makes real roles only) and `clusterInstanceRef`.
"""

from __future__ import annotations

from dbops_api.go_compat import CLUSTER_INSTANCE_REF, DRIFT_POLICY
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.kinds.database import DATABASE
from dbops_api.kinds.grant import DATABASE_GRANT
from dbops_api.kinds.shared import ADOPT, ENGINE_OPTION_RULE, INSTANCE_REF, LIFECYCLE
from dbops_api.schema import (
    CHECKS,
    Rule,
    Schema,
    array,
    boolean,
    ident,
    ident_set,
    immutable,
    integer,
    obj,
    string,
)
from dbops_api.system import (
    PG_SYSTEM_DATABASE_MESSAGE,
    PG_SYSTEM_DATABASES,
    SYSTEM_ACCOUNT_MESSAGE,
    SYSTEM_ACCOUNTS,
    pg_role_prefix_rule,
    pg_system_schema_rule,
    system_member_rule,
    system_name_rule,
)

GRANT_DATABASE_MESSAGE = (
    "a DatabaseRole has no databaseRef: every grant entry names its database; add database to the entry"
)


def _with_database(grants: Schema, rule: Rule | None) -> Schema:
    """DatabaseGrant's grants array, each entry naming its database (required, or by `rule`)."""
    item = dict(grants["items"])
    if rule is None:
        item["required"] = [*item.get("required", []), "database"]
    else:
        item["x-kubernetes-validations"] = [
            *item.get("x-kubernetes-validations", []),
            {"rule": rule.cel, "message": rule.message, "fieldPath": rule.field},
        ]
        item[CHECKS] = [*item.get(CHECKS, []), rule.check]
    return {**grants, "items": item}


def _role_default_privileges() -> Schema:
    """The Database claim's `postgres.defaultPrivileges` items with the role itself as grantee: no `role`, and a
    required `database` (a DatabaseRole has no databaseRef)."""
    base = DATABASE["properties"]["postgres"]["properties"]["defaultPrivileges"]["items"]["properties"]
    return array(
        "Privileges the role receives automatically on objects that `forRole` creates later in `database` "
        "(ALTER DEFAULT PRIVILEGES ... TO the role). The exact set: default privileges the role holds that no entry "
        "names are revoked (also in a database no entry names any more); dropping the role revokes them all first.",
        obj(
            "A default privilege rule whose grantee is the role.",
            {
                "database": ident("Database the rule applies in (a DatabaseRole has no databaseRef)."),
                "forRole": ident("Role whose future objects are covered; default: the owner of `database`."),
                "schema": base["schema"],
                "objectType": base["objectType"],
                "privileges": base["privileges"],
            },
            required=("database", "objectType", "privileges"),
            rules=(
                Rule(
                    "self.objectType != 'schemas' || !has(self.schema)",
                    "default privileges on schemas cannot be limited to a schema",
                    lambda d: d["objectType"] != "schemas" or "schema" not in d,
                    ".schema",
                ),
                system_name_rule("database", PG_SYSTEM_DATABASES, PG_SYSTEM_DATABASE_MESSAGE),
                pg_system_schema_rule("schema"),
                pg_role_prefix_rule("forRole"),
            ),
        ),
        maxItems=64,
    )


_PG_GRANTS = _with_database(DATABASE_GRANT["properties"]["postgres"]["properties"]["grants"], None)
_MYSQL_GRANTS = _with_database(
    DATABASE_GRANT["properties"]["mysql"]["properties"]["grants"],
    Rule(
        "self.level == 'global' || has(self.database)",
        GRANT_DATABASE_MESSAGE,
        lambda g: g["level"] == "global" or "database" in g,
        ".database",
    ),
)

MEMBER_ESCALATION_MESSAGE = (
    "a member of the role may SET ROLE to it and act with this attribute, so a DatabaseRole never carries it "
    "(dbops never grants membership in such a role either); give it to one DatabaseUser instead, or remove it"
)
LOGIN_MESSAGE = (
    "a DatabaseRole is a role without login (members log in as themselves); a role that logs in is a DatabaseUser: "
    "remove login or set it to false"
)
NATIVE_ROLES_MESSAGE = (
    "dbops manages MySQL 8/MariaDB roles only (CREATE ROLE, granted to users); useNativeRoles: false asked "
    "db-provision-operator to copy the privileges onto each user instead, which dbops does not do: remove "
    "useNativeRoles or set it to true, or grant to each user with a DatabaseGrant"
)


def _off(field: str, message: str) -> Rule:
    return Rule(f"!has(self.{field}) || !self.{field}", message, lambda p: not p.get(field), f".{field}")


DATABASE_ROLE: Schema = obj(
    "A role without login, with its privileges, that users join by membership.",
    {
        "instanceRef": INSTANCE_REF,
        "clusterInstanceRef": CLUSTER_INSTANCE_REF,
        "roleName": immutable(
            ident("Name of the role in the server (at most 32 characters on MySQL/MariaDB)."), "roleName"
        ),
        "adopt": ADOPT,
        **LIFECYCLE,
        "driftPolicy": DRIFT_POLICY,
        "postgres": obj(
            "PostgreSQL role attributes and privileges.",
            {
                "login": boolean("Refused when true: " + LOGIN_MESSAGE + ".", default=False),
                "inherit": boolean(
                    "INHERIT: the role uses the privileges of the roles it is a member of.", default=True
                ),
                "createDB": boolean("CREATEDB.", default=False),
                "createRole": boolean("Refused when true: " + MEMBER_ESCALATION_MESSAGE + ".", default=False),
                "superuser": boolean("Refused when true: " + MEMBER_ESCALATION_MESSAGE + ".", default=False),
                "replication": boolean(
                    "Refused when true: " + MEMBER_ESCALATION_MESSAGE + ".", default=False
                ),
                "bypassRLS": boolean("Refused when true: " + MEMBER_ESCALATION_MESSAGE + ".", default=False),
                "inRoles": ident_set("Roles this role is a member of; when set, the exact set."),
                "grants": {
                    **_PG_GRANTS,
                    "description": "Privileges on objects, as in DatabaseGrant's `postgres.grants`; each entry "
                    "names its database. The exact set: what this role was granted before and the spec no longer "
                    "names is revoked.",
                },
                "defaultPrivileges": _role_default_privileges(),
            },
            rules=(
                _off("login", LOGIN_MESSAGE),
                *(
                    _off(f, MEMBER_ESCALATION_MESSAGE)
                    for f in ("superuser", "createRole", "replication", "bypassRLS")
                ),
                system_member_rule("inRoles", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
            ),
        ),
        "mysql": obj(
            "MySQL 8/MariaDB role privileges.",
            {
                "useNativeRoles": boolean("Refused when false: " + NATIVE_ROLES_MESSAGE + ".", default=True),
                "grants": {
                    **_MYSQL_GRANTS,
                    "description": "Privileges at one level each, as in DatabaseGrant's `mysql.grants`; each entry "
                    "but a global one names its database. The exact set: what this role was granted before and "
                    "the spec no longer names is revoked.",
                },
            },
            rules=(
                Rule(
                    "!has(self.useNativeRoles) || self.useNativeRoles",
                    NATIVE_ROLES_MESSAGE,
                    lambda m: m.get("useNativeRoles", True) is not False,
                    ".useNativeRoles",
                ),
            ),
        ),
    },
    required=("instanceRef", "roleName"),
    rules=(ENGINE_OPTION_RULE, system_name_rule("roleName", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE)),
)


KIND = Kind(
    name="DatabaseRole",
    plural="databaseroles",
    folder="role",
    spec=DATABASE_ROLE,
    facts_key="role",
    facts=obj(
        "What the worker saw in the server after converging.",
        {
            "roleName": string("Name in the server."),
            "members": array(
                "Users and roles that are members of the role (on MySQL/MariaDB `user@host`).",
                string("A member."),
            ),
            "privileges": integer("Privileges the role holds on the objects its grants name."),
        },
    ),
    function_only=(
        "instanceRef",
        "clusterInstanceRef",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
        "driftPolicy",
    ),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("ROLE", ".spec.roleName", "Name of the role in the server."),
        column("INSTANCE", ".spec.instanceRef.name", "The DatabaseInstance claim."),
        MESSAGE_COLUMN,
    ),
)
