"""The worker's request: what the function sends a Job (design section 5), as a schema per kind.

The request's `spec` is the claim spec without the fields only the function reads, plus the references the function
resolved (`Kind.function_only`, `Kind.resolved`).
"""

from __future__ import annotations

import copy

from dbops_api.registry import BY_NAME, KINDS
from dbops_api.schema import (
    CHECKS,
    ENGINES,
    HOST_PATTERN,
    PG_SSL_MODES,
    Rule,
    Schema,
    boolean,
    enum,
    ident,
    integer,
    obj,
    string,
)


def request_spec_schema(kind: str) -> Schema:
    """The schema of the worker request's `spec` for a kind: the claim spec without function-only fields, with
    resolved references, and with cross-field rules that mention removed fields dropped."""
    k = BY_NAME[kind]
    spec = copy.deepcopy(k.spec)
    for field in k.function_only:
        spec["properties"].pop(field, None)
    spec["properties"].update(copy.deepcopy(dict(k.resolved)))
    spec["required"] = [f for f in spec.get("required", []) if f in spec["properties"]]
    spec["required"] += [f for f in k.request_required if f not in spec["required"]]
    removed = k.function_only
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
