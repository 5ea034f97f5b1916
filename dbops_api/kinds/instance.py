"""DatabaseInstance: a database server dbops manages objects in, and the admin credentials it uses."""

from __future__ import annotations

from dbops_api.go_compat import DISCOVERY, DRIFT_POLICY, go_timeout
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.kinds.shared import LIFECYCLE
from dbops_api.schema import (
    ENGINES,
    HOST_PATTERN,
    NAMESPACE_PATTERN,
    PG_SSL_MODES,
    SSL_MODES,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    ident,
    immutable,
    integer,
    obj,
    reference_namespace,
    secret_key,
    secret_name,
    string,
    string_map,
)

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
                        "namespace": reference_namespace(),
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
                "timeout": go_timeout(
                    "db-provision-operator's name for `timeouts.connect`, a Go duration in whole seconds (`10s`)."
                ),
                "readTimeout": go_timeout(
                    "db-provision-operator's name for `timeouts.read`, a Go duration in whole seconds (`30s`)."
                ),
                "writeTimeout": go_timeout(
                    "db-provision-operator's name for `timeouts.write`, a Go duration in whole seconds (`30s`)."
                ),
                "parseTime": boolean(
                    "Accepted for db-provision-operator manifests and not used: an option of its Go MySQL driver "
                    "(DATE and DATETIME columns as Go time values)."
                ),
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
        "allowedNamespaces": obj(
            "Other namespaces whose Database, DatabaseUser and DatabaseGrant claims may name this instance in "
            "`spec.instanceRef` (with `namespace`). Their Jobs run in this instance's namespace, so the admin "
            "Secret is never copied to, nor readable from, theirs. A namespace is allowed when it is listed in "
            "`names` or its labels match `selector`. Default: none (same-namespace claims only). Removing a "
            "namespace stops its claims (they say so in their status); nothing is dropped.",
            {
                "names": array(
                    "Namespaces allowed by name.",
                    string("A namespace.", pattern=NAMESPACE_PATTERN, maxLength=63),
                    maxItems=256,
                    **{"x-kubernetes-list-type": "set"},
                ),
                "selector": obj(
                    "Namespaces allowed by their labels (all of `matchLabels` must match). An empty selector "
                    "matches nothing.",
                    {"matchLabels": string_map("Labels a namespace must carry.", max_props=16, max_len=63)},
                ),
            },
        ),
        "deletionProtection": LIFECYCLE["deletionProtection"],
        "driftPolicy": DRIFT_POLICY,
        "discovery": DISCOVERY,
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


KIND = Kind(
    name="DatabaseInstance",
    plural="databaseinstances",
    folder="instance",
    spec=DATABASE_INSTANCE,
    facts_key="instance",
    facts=obj(
        "What the last check saw.",
        {
            "version": string("Server version."),
            "flavor": enum("Server flavor.", ENGINES),
            "tls": boolean("Whether the admin connection used TLS."),
            "canCreateDatabases": boolean("Whether the admin may create databases."),
            "canCreateRoles": boolean("Whether the admin may create roles/users."),
            "superuser": boolean("Whether the admin is a superuser (PostgreSQL) or has SUPER/ALL (MySQL)."),
        },
    ),
    function_only=(
        "engine",
        "connection",
        "tls",
        "healthCheck",
        "postgres",
        "mysql",
        "allowGlobalGrants",
        "allowedNamespaces",
        "deletionProtection",
        "driftPolicy",
        "discovery",
    ),
    resolved={},
    columns=(
        PHASE_COLUMN,
        column("ENGINE", ".spec.engine", "The server's engine."),
        column("HOST", ".spec.connection.host", "The server's host."),
        column("VERSION", ".status.instance.version", "Server version the last check saw."),
        MESSAGE_COLUMN,
    ),
)
