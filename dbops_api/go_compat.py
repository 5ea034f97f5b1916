"""Fields of db-provision-operator's CRDs (the Go operator dbops replaces, same API group and kinds) that dbops
accepts so that its manifests apply, and refuses with why where it cannot do what they meant (issue 17;
docs/compatibility.md lists every Go field and what dbops does with it).

- `driftPolicy` (every kind): `correct`, `detect` and `ignore` as in the Go CRD (no mode: detect); the
  instance's is the default of its claims (function.kinds.driver.drift_mode); `interval` is not used.
- `initSQL` (Database): refused, dbops runs no SQL from a claim.
- `deletionPolicy: Snapshot` (Database): refused, dbops takes no backup on deletion (a DatabaseBackup claim does).
- `discovery` (DatabaseInstance): `enabled: false` accepted, `enabled: true` refused (the Go operator never read it).
- `clusterInstanceRef` (Database, DatabaseUser, DatabaseRole): refused, dbops has no cluster-scoped instance yet.
- `mysql.timeout`, `mysql.readTimeout`, `mysql.writeTimeout` (DatabaseInstance): aliases of
  `mysql.timeouts.connect/read/write`, Go durations in whole seconds (`resolve_aliases`, run by whatever reads a
  spec: the function and the compatibility tools).
- `mysql.parseTime` (DatabaseInstance): an option of the Go MySQL driver, accepted and not used.
- `passwordRotation` (DatabaseUser): its own module, `dbops_api.rotation` (`schedule` and `oldUserPolicy.action:
  retain` refused, `serviceRole.name` only the username, `userNaming` accepted and not used).
- `namespace` in a reference: accepted when it is the claim's own namespace, refused otherwise
  (`reference_namespace_errors`, checked by the function, which knows the claim's namespace); except
  `instanceRef.namespace` of a Database, DatabaseUser or DatabaseGrant claim, accepted when that instance's
  `spec.allowedNamespaces` allows the claim's namespace (the function checks it).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from dbops_api.schema import Rule, Schema, array, boolean, enum, obj, string
from dbops_api.validation import FieldError

GO_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"

DRIFT_POLICY = obj(
    "What dbops does when the server differs from the spec (db-provision-operator's driftPolicy). `correct` "
    "(the default without driftPolicy) makes the server match the spec on every run, exact sets included. `detect` "
    "(also a driftPolicy without a mode, as in the Go CRD) runs `dbops-worker plan`: it writes nothing, not even a "
    "missing object, and shows the statements it would run in status.driftPlan and the `Drifted` condition. "
    "`ignore` creates what is missing and never corrects what exists (spec changes to an existing object "
    "included). On a DatabaseInstance it is the default of the claims on it that set none. `interval` is not used: "
    "claims are re-checked at the platform's interval (Function Input `resync`).",
    {
        "mode": enum(
            "`correct`, `detect` or `ignore` (absent: detect, as in the Go CRD).",
            ("ignore", "detect", "correct"),
        ),
        "interval": string(
            "Not used (a Go duration such as `8h`); see the Function Input `resync`.",
            pattern=GO_DURATION_PATTERN,
            maxLength=64,
        ),
    },
)

INIT_SQL_MESSAGE = (
    "dbops runs no SQL from a claim: it would run with the instance admin's privileges on a server other tenants "
    "share. Create schemas, extensions and owners with spec.postgres.schemas, spec.postgres.extensions and "
    "spec.owner, and run the application's DDL from its own migrations, as its own user"
)


def _source_ref(what: str) -> Schema:
    return obj(
        f"Refused (see initSQL): a {what} holding SQL.",
        {
            "name": string("Name.", maxLength=253),
            "namespace": string("Namespace.", maxLength=63),
            "key": string("Key.", maxLength=253),
        },
    )


INIT_SQL = obj(
    "Refused: db-provision-operator ran this SQL when it created the database. " + INIT_SQL_MESSAGE + ".",
    {
        "inline": array("Refused.", string("A statement.", maxLength=65536), maxItems=256),
        "configMapRef": _source_ref("ConfigMap"),
        "secretRef": _source_ref("Secret"),
        "failurePolicy": enum("Refused with the SQL it applies to.", ("Continue", "Block")),
    },
    rules=(
        Rule(
            "!has(self.inline) && !has(self.configMapRef) && !has(self.secretRef)",
            INIT_SQL_MESSAGE,
            lambda i: not any(k in i for k in ("inline", "configMapRef", "secretRef")),
        ),
    ),
)

SNAPSHOT_MESSAGE = (
    "deletionPolicy Snapshot: dbops takes no backup on deletion; use Retain (the database stays) or Delete (dropped "
    "only with ensure: Absent and deletionProtection: false), and back the database up first with a DatabaseBackup"
)

SNAPSHOT_RULE = Rule(
    "!has(self.deletionPolicy) || self.deletionPolicy != 'Snapshot'",
    SNAPSHOT_MESSAGE,
    lambda s: s.get("deletionPolicy") != "Snapshot",
    ".deletionPolicy",
)

# Per kind: the references that may carry a namespace, and what the claim would need in its own namespace.
DISCOVERY_MESSAGE = (
    "dbops discovers and adopts nothing on its own (the Go operator never read this field either): write a claim "
    "for each existing database, user or role you want managed, with adopt: true; remove discovery or set "
    "enabled: false"
)

DISCOVERY = obj(
    "db-provision-operator's discovery switch, which it never read: `enabled: false` is accepted, `enabled: true` "
    "refused with why (dbops adopts what a claim names with `adopt: true`).",
    {
        "enabled": boolean("Only false is accepted."),
        "interval": string("Not used (a Go duration).", pattern=GO_DURATION_PATTERN, maxLength=64),
    },
    rules=(
        Rule(
            "!has(self.enabled) || !self.enabled",
            DISCOVERY_MESSAGE,
            lambda d: not d.get("enabled"),
            ".enabled",
        ),
    ),
)

CLUSTER_INSTANCE_MESSAGE = (
    "dbops has no cluster-scoped instance (ClusterDatabaseInstance); name a DatabaseInstance of another namespace "
    "in spec.instanceRef (name and namespace) once its spec.allowedNamespaces allows this namespace, or one of "
    "this namespace"
)

CLUSTER_INSTANCE_REF = obj(
    "Refused: db-provision-operator's reference to a ClusterDatabaseInstance. "
    + CLUSTER_INSTANCE_MESSAGE
    + ".",
    {"name": string("Name of the ClusterDatabaseInstance.", maxLength=253)},
    rules=(Rule("!has(self.name)", CLUSTER_INSTANCE_MESSAGE, lambda r: "name" not in r, ".name"),),
)

REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "DatabaseInstance": (("connection.secretRef", "the admin Secret"),),
    "Database": (("instanceRef", "a DatabaseInstance claim"),),
    "DatabaseUser": (
        ("instanceRef", "a DatabaseInstance claim"),
        ("databaseRef", "the Database claim"),
        ("existingPasswordSecret", "the password Secret (a copy of it)"),
    ),
    "DatabaseRole": (("instanceRef", "a DatabaseInstance claim"),),
    "DatabaseGrant": (
        ("userRef", "the DatabaseUser claim"),
        ("roleRef", "the DatabaseRole claim"),
        ("instanceRef", "a DatabaseInstance claim"),
        ("databaseRef", "the Database claim"),
    ),
    "DatabaseBackup": (
        ("databaseRef", "the Database claim"),
        ("encryption.secretRef", "the encryption key's Secret (a copy of it)"),
    ),
    "DatabaseRestore": (
        ("backupRef", "the DatabaseBackup claim"),
        ("target.databaseRef", "the Database claim"),
        ("fromPath.encryption.secretRef", "the encryption key's Secret (a copy of it)"),
    ),
    "DatabaseBackupSchedule": (
        ("template.spec.databaseRef", "the Database claim"),
        ("template.spec.encryption.secretRef", "the encryption key's Secret (a copy of it)"),
    ),
}


# Spec paths (and what is below them) that exist only so db-provision-operator manifests apply: dbops' own examples
# need not use them (tests/test_manifests.py); the Go examples' test does (tests/test_compat_examples_e2e.py).
GO_ONLY_PATHS: dict[str, tuple[str, ...]] = {
    kind: ("spec.driftPolicy.interval", *(f"spec.{path}.namespace" for path, _ in refs))
    for kind, refs in REFERENCES.items()
}
GO_ONLY_PATHS["DatabaseInstance"] += ("spec.discovery",)
GO_ONLY_PATHS["Database"] += ("spec.initSQL", "spec.clusterInstanceRef")
GO_ONLY_PATHS["DatabaseUser"] += (
    "spec.clusterInstanceRef",
    "spec.passwordRotation.schedule",
    "spec.passwordRotation.serviceRole",
    "spec.passwordRotation.userNaming",
    "spec.passwordRotation.oldUserPolicy.ownershipCheck",
)
GO_ONLY_PATHS["DatabaseRole"] += ("spec.clusterInstanceRef",)
# Storage types accepted by the schema only to be refused with a clear message.
GO_ONLY_PATHS["DatabaseBackup"] += ("spec.storage.gcs", "spec.storage.azure", "spec.ttl")
GO_ONLY_PATHS["DatabaseRestore"] += ("spec.fromPath.storage.gcs", "spec.fromPath.storage.azure")
GO_ONLY_PATHS["DatabaseBackupSchedule"] += (
    "spec.template.spec.storage.gcs",
    "spec.template.spec.storage.azure",
    "spec.template.spec.ttl",
)
GO_ONLY_PATHS["DatabaseInstance"] += tuple(
    f"spec.mysql.{name}" for name in ("timeout", "readTimeout", "writeTimeout", "parseTime")
)


def go_only(kind: str, path: str) -> bool:
    """Whether a spec path of a kind exists only for db-provision-operator manifests (GO_ONLY_PATHS)."""
    return any(path == p or path.startswith((p + ".", p + "[]")) for p in GO_ONLY_PATHS.get(kind, ()))


# The references that may name another namespace: a DatabaseInstance whose spec.allowedNamespaces allows the
# claim's namespace (checked by the function, which reads the instance and the Namespace). Only a claim (a legacy
# cluster-scoped XR) can: its Jobs run in the instance's namespace. Crossplane composes everything of a v2
# namespaced XR in the XR's own namespace, where a Job cannot read the instance's admin Secret.
CROSS_NAMESPACE_REFERENCES: dict[str, str] = {
    "Database": "instanceRef",
    "DatabaseUser": "instanceRef",
    "DatabaseGrant": "instanceRef",
}


def namespaced_xr_message(given: str, namespace: str) -> str:
    return (
        f"a namespaced {namespace} object cannot use a DatabaseInstance of namespace {given}: Crossplane composes its "
        f"Jobs only in namespace {namespace}, where they cannot read the instance's admin Secret; use a claim "
        f"(group dbops.dbprovision.io), whose Jobs run in the instance's namespace once its "
        f"spec.allowedNamespaces allows {namespace}, or a DatabaseInstance in namespace {namespace}"
    )


def reference_namespace_errors(
    kind: str, spec: dict[str, Any], namespace: str | None, claims: bool = True
) -> list[FieldError]:
    """A reference's `namespace` other than the claim's own (`namespace`; None: unknown): refused, saying what to
    do instead; except a CROSS_NAMESPACE_REFERENCES reference of a claim (`claims`: a legacy XR), whose consent
    the function checks."""
    out: list[FieldError] = []
    own = f"namespace {namespace}" if namespace else "namespace"
    for path, needed in REFERENCES.get(kind, ()):
        node: Any = spec
        for name in path.split("."):
            node = node.get(name) if isinstance(node, dict) else None
        given = node.get("namespace") if isinstance(node, dict) else None
        if given is None or given == namespace:
            continue
        if CROSS_NAMESPACE_REFERENCES.get(kind) == path:
            if not claims:
                out.append(
                    FieldError(f"spec.{path}.namespace", namespaced_xr_message(given, namespace or "?"))
                )
            continue
        message = (
            f"cross-namespace references are not supported yet: dbops looks {path} up in the claim's own "
            f"{own}, not in {given}; remove the namespace and create {needed} in the claim's {own}"
        )
        out.append(FieldError(f"spec.{path}.namespace", message))
    return out


# --- aliases: a Go path read as the dbops path ---------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float:
    """A Go duration string (`10s`, `1m30s`, `500ms`) in seconds; ValueError when it is not one."""
    if not re.fullmatch(GO_DURATION_PATTERN[1:-1], text):
        raise ValueError(text)
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


@dataclass(frozen=True)
class Alias:
    """A Go field (`go`, under `block` of the spec) that dbops reads as `ours` (under the same block)."""

    kind: str
    block: str
    go: str
    ours: tuple[str, ...]
    maximum: int


ALIASES = (
    Alias("DatabaseInstance", "mysql", "timeout", ("timeouts", "connect"), 300),
    Alias("DatabaseInstance", "mysql", "readTimeout", ("timeouts", "read"), 3600),
    Alias("DatabaseInstance", "mysql", "writeTimeout", ("timeouts", "write"), 3600),
)


def go_timeout(description: str) -> Schema:
    return string(description, pattern=GO_DURATION_PATTERN, maxLength=32)


def resolve_aliases(kind: str, spec: Any) -> tuple[Any, list[FieldError]]:
    """The spec with every Go alias moved to the dbops path it stands for (a copy; `spec` is left alone), and
    what is wrong with them: a value dbops cannot take, or an alias and its dbops path both set to different
    values."""
    aliases = [a for a in ALIASES if a.kind == kind]
    if not aliases or not isinstance(spec, dict):
        return spec, []
    out = copy.deepcopy(spec)
    errors: list[FieldError] = []
    for alias in aliases:
        block = out.get(alias.block)
        if not isinstance(block, dict) or alias.go not in block:
            continue
        given = block.pop(alias.go)
        go_path = f"spec.{alias.block}.{alias.go}"
        ours_path = f"spec.{alias.block}.{'.'.join(alias.ours)}"
        try:
            seconds = go_duration_seconds(given) if isinstance(given, str) else -1.0
        except ValueError:
            seconds = -1.0
        if seconds != int(seconds) or not 1 <= seconds <= alias.maximum:
            errors.append(
                FieldError(
                    go_path,
                    f"dbops reads it as {ours_path}, whole seconds from 1 to {alias.maximum}; {given!r} is not "
                    f'(write e.g. "10s", or {ours_path}: 10)',
                )
            )
            continue
        parent = block.setdefault(alias.ours[0], {})
        if not isinstance(parent, dict):
            continue  # the schema walk reports the wrong type
        last = alias.ours[1]
        if last in parent and parent[last] != int(seconds):
            errors.append(
                FieldError(
                    go_path,
                    f"{go_path} ({given}) and {ours_path} ({parent[last]}) are both set and differ; set one of "
                    f"them ({ours_path} is dbops' name)",
                )
            )
            continue
        parent[last] = int(seconds)
    return out, errors
