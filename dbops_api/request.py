"""The worker's request: what the function sends a Job (design section 5), its schema per kind, its version, and
the validation both sides run on it.

The request's `spec` is the claim spec without the fields only the function reads, plus the references the function
resolved (`Kind.function_only`, `Kind.resolved`).

Versions: the function stamps `apiVersion: request.dbops.dbprovision.io/v<MAJOR>.<MINOR>` on every request. A minor
version adds optional fields only, so a worker given a newer minor version ignores the fields it does not know and
says so in its result (`warnings`); a newer major version may change meanings, so the worker refuses it. A request
without `apiVersion` is version 1.0 (Jobs composed before the field existed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from dbops_api import backup
from dbops_api.engine_rules import engine_errors
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
from dbops_api.validation import FieldError, RuleCheck, normalize, predicates

API_GROUP = "request.dbops.dbprovision.io"
MAJOR, MINOR = (
    1,
    2,
)  # 1.1: driftMode; 1.2: DatabaseUser spec.rotation, DatabaseBackup spec.schedule and spec.retention
API_VERSION = f"{API_GROUP}/v{MAJOR}.{MINOR}"
_VERSION = re.compile(r"^" + re.escape(API_GROUP) + r"/v([0-9]{1,4})\.([0-9]{1,4})\Z")
# `rotate`: `apply` for the step of a DatabaseUser password rotation that creates the next credential (request
# 1.2); a worker that predates it refuses the action, so its Job fails and the credentials Secret is not switched.
ACTIONS = ("apply", "plan", "check", "drop", "backup", "restore", "rotate")
# Every kind a request may carry: the claim kinds (the backup kinds among them, with request specs of their own).
# A DatabaseBackupSchedule's runs carry DatabaseBackup requests: it is no request kind of its own.
REQUEST_KINDS: tuple[str, ...] = (
    *(k for k in KINDS if k != "DatabaseBackupSchedule"),
    *(k for k in backup.BACKUP_KINDS if k not in KINDS),
)


def request_spec_schema(kind: str) -> Schema:
    """The schema of the worker request's `spec` for a kind: the claim spec without function-only fields, with
    resolved references, and with cross-field rules that mention removed fields dropped. It shares the claim
    schema's nested parts (schemas are never changed once built)."""
    k = BY_NAME[kind]
    spec = dict(k.spec)
    spec["properties"] = {
        name: sub for name, sub in k.spec["properties"].items() if name not in k.function_only
    }
    spec["properties"].update(k.resolved)
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


@cache
def request_schema(kind: str) -> Schema:
    """The whole worker request for a kind (docs/worker.md). Built once per kind: a constant of the contract,
    shared and never changed."""
    return obj(
        f"A worker request for a {kind}.",
        {
            "apiVersion": string(
                f"Version of the request contract, {API_GROUP}/v<major>.<minor>; absent means v1.0.",
                maxLength=64,
            ),
            "kind": enum("Kind of the object.", REQUEST_KINDS),
            "engine": enum("Engine of the server.", ENGINES),
            "connection": REQUEST_CONNECTION,
            "spec": backup.SPECS[kind] if kind in backup.BACKUP_KINDS else request_spec_schema(kind),
            "owner": REQUEST_OWNER,
            "policy": REQUEST_POLICY,
            "driftMode": enum(
                "What `apply` does with an object that exists (the claim's driftPolicy.mode, else its instance's): "
                "`correct` (absent: the default) makes it match the spec; `ignore` only creates what is missing and "
                "corrects nothing. (`detect` is not sent: the function runs the `plan` action instead.)",
                ("correct", "ignore"),
            ),
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


@dataclass(frozen=True)
class Checked:
    """A validated request: `value` with defaults filled in (None when `errors`), and the fields a newer minor
    version added that this version ignores (`ignored`)."""

    value: dict[str, Any] | None
    errors: tuple[FieldError, ...]
    ignored: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        if not self.ignored:
            return []
        return [
            f"the request is of a newer minor version than this worker ({API_VERSION}); ignored the fields it does "
            f"not know: {', '.join(self.ignored)}. Run the worker image of the function's version to use them"
        ]


def version_of(raw: dict[str, Any]) -> tuple[int, int] | FieldError:
    value = raw.get("apiVersion", f"{API_GROUP}/v1.0")
    match = _VERSION.match(value) if isinstance(value, str) else None
    if match is None:
        return FieldError(
            "request.apiVersion",
            f"must be {API_GROUP}/v<major>.<minor> (this worker: {API_VERSION}); got {value!r}",
        )
    return int(match.group(1)), int(match.group(2))


def validate(text: str, action: str, rules: RuleCheck | None = predicates) -> Checked:
    """Everything the worker checks on a request before connecting, as field errors: the JSON, the version, the
    kind and action, the schema, the engine rules and the owner. `rules` decides the cross-field rules (the worker:
    their Python predicates)."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return _refused(FieldError("", f"request is not valid JSON: {exc}"))
    return validate_value(raw, action, rules)


def validate_value(raw: Any, action: str, rules: RuleCheck | None = predicates) -> Checked:
    """`validate` for a request already decoded from JSON (the function checks the request it composes). `raw` is
    not changed."""
    if not isinstance(raw, dict):
        return _refused(
            FieldError("", "request must be a JSON object with kind, engine, connection and spec")
        )
    version = version_of(raw)
    if isinstance(version, FieldError):
        return _refused(version)
    if version[0] != MAJOR:
        newer = version[0] > MAJOR
        return _refused(
            FieldError(
                "request.apiVersion",
                f"{raw['apiVersion']} is a {'newer' if newer else 'older'} major version than this worker's "
                f"{API_VERSION}; "
                + (
                    "run the worker image of the function's version (the step Input's worker.image)"
                    if newer
                    else "upgrade the function, or run a worker image of the function's version"
                ),
            )
        )
    kind = raw.get("kind")
    if kind not in REQUEST_KINDS:
        return _refused(FieldError("kind", f"must be one of {', '.join(REQUEST_KINDS)}; got {kind!r}"))
    wanted = backup.ACTION_KIND.get(action)
    if wanted is not None and kind != wanted:
        return _refused(FieldError("", f"the {action} action takes {wanted} requests, not {kind}"))
    if wanted is None and kind in backup.BACKUP_KINDS:
        return _refused(FieldError("", f"a {kind} request supports only the {_action_of(kind)} action"))
    if action == "check" and kind != "DatabaseInstance":
        return _refused(FieldError("", f"check applies to DatabaseInstance requests, not {kind}"))
    if action != "check" and kind == "DatabaseInstance":
        return _refused(FieldError("", "a DatabaseInstance request supports only the check action"))
    schema = request_schema(kind)
    ignored: list[str] | None = [] if version[1] > MINOR else None
    value, errors = normalize(schema, raw, "request", ignored, rules)
    if not errors and kind not in backup.BACKUP_KINDS:
        allow_global = bool(value.get("policy", {}).get("allowGlobalGrants"))
        errors = engine_errors(kind, value["engine"], value["spec"], "request.spec", allow_global)
    if not errors and kind != "DatabaseInstance":
        errors = owner_errors(value.get("owner") or {})
    if not errors and action == "rotate" and "generation" not in (value["spec"].get("rotation") or {}):
        errors = [
            FieldError(
                "request.spec.rotation.generation",
                "the rotate action creates a rotation's next credential: a DatabaseUser request with "
                "spec.rotation.generation",
            )
        ]
    if errors:
        return Checked(None, tuple(errors), tuple(ignored or ()))
    # Fill the engine block's defaults even when it is absent, so adapters see one complete shape.
    block = "postgres" if value["engine"] == "postgres" else "mysql"
    block_schema = schema["properties"]["spec"]["properties"].get(block)
    if block_schema is not None and block not in value["spec"]:
        value["spec"][block], _ = normalize(block_schema, {}, f"request.spec.{block}")
    return Checked(value, (), tuple(ignored or ()))


def _action_of(kind: str) -> str:
    return next(a for a, k in backup.ACTION_KIND.items() if k == kind)


def _refused(error: FieldError) -> Checked:
    return Checked(None, (error,))


def owner_errors(owner: dict[str, Any]) -> list[FieldError]:
    """The claim a request acts for must be named: dbops marks what it creates with it, and refuses to touch what
    another claim (or nobody) owns (docs/worker.md, "Ownership")."""
    return [
        FieldError(f"request.owner.{key}", "is required: dbops marks the objects it creates with their claim")
        for key in ("kind", "name")
        if not owner.get(key)
    ]
