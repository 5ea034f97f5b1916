"""Database: a database inside a DatabaseInstance's server."""

from __future__ import annotations

from dbops_api.go_compat import CLUSTER_INSTANCE_REF, DRIFT_POLICY, INIT_SQL, SNAPSHOT_RULE
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.kinds.shared import ADOPT, DRIFT, ENGINE_OPTION_RULE, INSTANCE_REF, LIFECYCLE
from dbops_api.schema import (
    PRIVILEGE_PATTERN,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    ident,
    immutable,
    integer,
    obj,
    string,
)
from dbops_api.system import (
    SYSTEM_DATABASE_MESSAGE,
    SYSTEM_DATABASES,
    pg_role_prefix_rule,
    pg_system_schema_rule,
    system_name_rule,
)

PG_DEFAULT_PRIVILEGE_TYPES = ("tables", "sequences", "functions", "types", "schemas")

DATABASE: Schema = obj(
    "A database inside a DatabaseInstance's server.",
    {
        "instanceRef": INSTANCE_REF,
        "name": immutable(ident("Name of the database in the server."), "name"),
        "owner": ident("PostgreSQL only: the role that owns the database (it must exist)."),
        "adopt": ADOPT,
        **LIFECYCLE,
        "deletionPolicy": enum(
            LIFECYCLE["deletionPolicy"]["description"]
            + " `Snapshot` (db-provision-operator) is refused: dbops "
            "takes no backup on deletion; make a DatabaseBackup first.",
            ("Retain", "Delete", "Snapshot"),
            default="Retain",
        ),
        "driftPolicy": DRIFT_POLICY,
        "initSQL": INIT_SQL,
        "clusterInstanceRef": CLUSTER_INSTANCE_REF,
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
                    "(forRole, schema, objectType, role) tuple; `privileges: []` revokes them all. An entry "
                    "removed from the list is revoked too (dbops remembers the tuples it named); default "
                    "privileges no entry ever named, such as ones set by hand, are never touched.",
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
        SNAPSHOT_RULE,
    ),
)


KIND = Kind(
    name="Database",
    plural="databases",
    folder="database",
    spec=DATABASE,
    facts_key="database",
    facts=obj(
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
    function_only=(
        "instanceRef",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
        "driftPolicy",
        "initSQL",
        "clusterInstanceRef",
    ),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("DATABASE", ".spec.name", "Name of the database in the server."),
        column("INSTANCE", ".spec.instanceRef.name", "The DatabaseInstance claim."),
        MESSAGE_COLUMN,
    ),
)
