"""DatabaseUser: a user (PostgreSQL role with LOGIN, MySQL/MariaDB account) and its credentials Secret."""

from __future__ import annotations

import re

from dbops_api.go_compat import CLUSTER_INSTANCE_REF, DRIFT_POLICY
from dbops_api.kind import MESSAGE_COLUMN, PHASE_COLUMN, Kind, column
from dbops_api.kinds.shared import (
    ADOPT,
    DRIFT,
    ENGINE_OPTION_RULE,
    INSTANCE_REF,
    LIFECYCLE,
    admin_roles_listed,
)
from dbops_api.rotation import PASSWORD_ROTATION, REQUEST_ROTATION, ROTATION_FACTS, ROTATION_STATUS
from dbops_api.schema import (
    _CALENDAR_TIME,
    CALENDAR_TIME_PATTERN,
    K8S_NAME_PATTERN,
    MYSQL_HOST_PATTERN,
    SECRET_KEY_PATTERN,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    ident,
    ident_set,
    immutable,
    integer,
    obj,
    object_ref,
    reference_namespace,
    secret_key,
    secret_name,
    string,
    string_map,
)
from dbops_api.system import SYSTEM_ACCOUNT_MESSAGE, SYSTEM_ACCOUNTS, system_member_rule, system_name_rule

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
                "namespace": reference_namespace(),
                "key": secret_key("Key holding the password.", "password"),
            },
            required=("name",),
        ),
        "passwordRotation": PASSWORD_ROTATION,
        "roles": ident_set(
            "Roles granted to the user (PostgreSQL role membership, MariaDB/MySQL 8 roles). When set, it is the "
            "exact set: memberships not listed are revoked."
        ),
        "roleRefs": array(
            "DatabaseRole claims (same namespace, on the same instance) whose roles the user joins: their "
            "`roleName`s are added to `roles` (the union is the exact set).",
            obj(
                "A DatabaseRole claim.",
                {"name": string("Name of the claim.", pattern=K8S_NAME_PATTERN, maxLength=253)},
                required=("name",),
            ),
            maxItems=64,
        ),
        "adminRoles": ident_set(
            "Roles from `roles` (or `postgres.inRoles`) the user holds WITH ADMIN OPTION, so it may grant them to "
            "others; the other managed memberships are held without it."
        ),
        "adopt": ADOPT,
        **LIFECYCLE,
        "driftPolicy": DRIFT_POLICY,
        "clusterInstanceRef": CLUSTER_INSTANCE_REF,
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


KIND = Kind(
    name="DatabaseUser",
    plural="databaseusers",
    folder="user",
    spec=DATABASE_USER,
    facts_key="user",
    facts=obj(
        "What the worker saw in the server after converging.",
        {
            "username": string("Name in the server."),
            "hosts": array("Accounts' hosts (MySQL/MariaDB).", string("A host.")),
            "roles": array("Roles the user is a member of.", string("A role.")),
            "login": boolean("Whether the user may log in."),
            "drift": DRIFT,
            "rotation": ROTATION_FACTS,
        },
    ),
    function_only=(
        "instanceRef",
        "databaseRef",
        "passwordSecret",
        "existingPasswordSecret",
        "deletionPolicy",
        "deletionProtection",
        "ensure",
        "driftPolicy",
        "clusterInstanceRef",
        "passwordRotation",
        "roleRefs",
    ),
    resolved={"database": ident("Database name resolved from databaseRef."), "rotation": REQUEST_ROTATION},
    status_extra={"rotation": ROTATION_STATUS},
    columns=(
        PHASE_COLUMN,
        column("USERNAME", ".spec.username", "Name of the user in the server."),
        column("INSTANCE", ".spec.instanceRef.name", "The DatabaseInstance claim."),
        column("SECRET", ".spec.passwordSecret.secretName", "The credentials Secret.", priority=1),
        MESSAGE_COLUMN,
    ),
)
