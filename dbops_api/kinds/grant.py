"""DatabaseGrant: exact, revocable privileges and role memberships for a user or role."""

from __future__ import annotations

from dbops_api.go_compat import DRIFT_POLICY
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.kinds.shared import ADMIN_ROLES_RULE, ENGINE_OPTION_RULE, GRANT_ADMIN_ROLES, LIFECYCLE
from dbops_api.schema import (
    MYSQL_HOST_PATTERN,
    PRIVILEGE_PATTERN,
    TABLE_OR_ALL_PATTERN,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    ident,
    ident_set,
    integer,
    obj,
    object_ref,
    string,
)
from dbops_api.system import (
    MYSQL_CATALOG,
    PG_SYSTEM_DATABASE_MESSAGE,
    PG_SYSTEM_DATABASES,
    SYSTEM_ACCOUNT_MESSAGE,
    SYSTEM_ACCOUNTS,
    pg_system_schema_rule,
    system_member_rule,
    system_name_rule,
)

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
            "The DatabaseInstance claim; needed only when none of userRef, roleRef and databaseRef leads to it."
        ),
        "databaseRef": object_ref("Database claim whose database is the default for grants that name none."),
        "adopt": boolean(
            "Act on a grantee that no DatabaseUser of this namespace created: a role or account made by hand, or "
            "one another namespace manages. Without it such a grantee is refused (dbops marks the roles and "
            "accounts it creates, and a grant never takes one over). The grant never marks the grantee. Default: "
            "false."
        ),
        **LIFECYCLE,
        "driftPolicy": DRIFT_POLICY,
        "roleRef": object_ref(
            "The DatabaseRole claim (same namespace) that receives the grants; its instance is the grant's."
        ),
        "postgres": obj(
            "PostgreSQL privileges.",
            {
                "roles": ident_set("Roles the grantee is a member of; when set, the exact set."),
                "adminRoles": GRANT_ADMIN_ROLES,
                "exclusive": boolean(
                    "The grantee's own privileges in the databases `grants` names become exactly `grants`: every "
                    "privilege it holds directly on those databases and on the schemas, tables, sequences and "
                    "routines in them that `grants` does not name is revoked, whoever granted it (objects the "
                    "grantee owns excepted). Without it only what `grants` names, and what this claim granted "
                    "before, is managed. Default: false."
                ),
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
                            system_name_rule(
                                "schema",
                                (MYSQL_CATALOG,),
                                "_dbops is dbops' own schema (its memory of what it granted, in the admin "
                                "database); dbops never grants on it: choose another schema",
                            ),
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
                "exclusive": boolean(
                    "The privileges of the grantee's accounts in the databases `grants` names become exactly "
                    "`grants`: every database-, table-, column- and routine-level privilege they hold there that "
                    "`grants` does not name is revoked, whoever granted it. Without it only what `grants` names, "
                    "and what this claim granted before, is managed. Default: false."
                ),
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
            "[has(self.userRef), has(self.roleRef), has(self.roleName)].filter(x, x).size() == 1",
            "set exactly one of userRef, roleRef and roleName",
            lambda s: sum(k in s for k in ("userRef", "roleRef", "roleName")) == 1,
            ".roleName",
        ),
        system_name_rule("roleName", SYSTEM_ACCOUNTS, SYSTEM_ACCOUNT_MESSAGE),
    ),
)


KIND = Kind(
    name="DatabaseGrant",
    plural="databasegrants",
    folder="grant",
    spec=DATABASE_GRANT,
    facts_key="grant",
    facts=obj(
        "What the worker saw in the server after converging.",
        {
            "grantee": string("Role or user that holds the grants."),
            "hosts": array("Accounts' hosts (MySQL/MariaDB).", string("A host.")),
            "roles": array("Roles the grantee is a member of.", string("A role.")),
            "privileges": integer("Privileges held on the objects the grant names."),
        },
    ),
    function_only=(
        "userRef",
        "instanceRef",
        "databaseRef",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
        "roleName",
        "driftPolicy",
        "roleRef",
    ),
    resolved={
        "grantee": ident("Role or user name resolved from userRef or roleRef (or roleName)."),
        "granteeHosts": array(
            "MySQL/MariaDB: the user's allowedHosts.",
            string("A host.", pattern=MYSQL_HOST_PATTERN, maxLength=255),
            minItems=1,
            maxItems=32,
            default=["%"],
        ),
        "database": ident("Database name resolved from databaseRef."),
    },
    request_required=("grantee",),
    columns=(
        PHASE_COLUMN,
        column("GRANTEE", ".status.grant.grantee", "Role or user in the server that holds the grants."),
        column("USER", ".spec.userRef.name", "The DatabaseUser claim, if any.", priority=1),
        MESSAGE_COLUMN,
    ),
)
