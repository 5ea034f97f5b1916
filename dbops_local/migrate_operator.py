"""`dbops-local migrate-from-operator`: db-provision-operator (Go) YAML in, dbops claims out (docs/migrating.md).

The five kinds both projects have (DatabaseInstance, Database, DatabaseUser, DatabaseGrant, DatabaseRole, same API
group) are converted field by field: a field dbops has at the same path is carried over; a field in `RULES` is
moved, converted, left out or refused as the rule says; any other field is left out. Every field left out, every
value changed and every object refused is reported (to stderr), with the reason; a refused object is not in the
output. Databases, users, roles and grants get `adopt: true`: they exist already, and without it dbops refuses to
touch what it did not create (docs/worker.md, ownership).

The conversion itself (`convert`) is pure: documents in, a `Conversion` out. It never reads a cluster or a server.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dbops_api.registry import API_VERSION, SPECS
from dbops_api.schema import Schema
from dbops_api.validation import normalize

Obj = dict[str, Any]

GO_API_GROUP = API_VERSION.split("/")[0]  # the same group in both projects
CONVERTED = ("DatabaseInstance", "Database", "DatabaseUser", "DatabaseGrant", "DatabaseRole")
ADOPTED = ("Database", "DatabaseUser", "DatabaseGrant", "DatabaseRole")
# The Go operator writes the password here instead of a data key when the user has secretTemplate.data.
GO_PASSWORD_ANNOTATION = "dbops.dbprovision.io/managed-password"  # noqa: S105 (an annotation name)
COMPAT = "docs/compatibility.md"


class Unconvertible(ValueError):
    """A value a rule cannot carry over; the message says why."""


# Rules, per kind and Go spec path (list items as `[]`). A rule covers the path and everything below it.
@dataclass(frozen=True)
class Drop:
    """Left out, for this reason."""

    why: str


@dataclass(frozen=True)
class Move:
    """Carried to another dbops path of the same spec, its value converted by `convert` (which may raise
    `Unconvertible`); `how` is reported when the value or path changes."""

    to: str
    how: str = ""
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Defer:
    """Handled once every object is converted (it needs another object): the name of the step."""

    step: str


@dataclass(frozen=True)
class Refuse:
    """Carried over when its value is one of `accepted` (dbops takes it at the same path); any other value refuses
    the whole object (it is held back from the output), for this reason, which says what to do."""

    why: str
    accepted: tuple[Any, ...] = ()


Rule = Drop | Move | Defer | Refuse

SAME_NAMESPACE = "dbops resolves every reference in the claim's own namespace"
NEVER_READ = "the Go operator never read it"
DESTRUCTIVE_DRIFT = (
    "dbops has no such switch: driftPolicy.mode correct (carried over) also revokes what the spec does not list "
    "(lists are exact sets), with or without it; detect and ignore never revoke"
)
CLICKHOUSE = "dbops runs PostgreSQL, MySQL and MariaDB only"
PASSWORD_KEPT = "the password the Go operator set is kept (existingPasswordSecret); dbops draws none"  # noqa: S105


def go_seconds(value: Any) -> float:
    """A Go duration string ("10s", "1m30s", "500ms") or a number, in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    text = str(value).strip()
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Unconvertible(f"{value!r} is not a Go duration")
    return sum(float(n) * units[u] for n, u in parts)


def whole_seconds(value: Any) -> int:
    return max(1, math.ceil(go_seconds(value)))


STATEMENT_TIMEOUT = re.compile(r"^[0-9]{1,6}(ms|s|min|h)$")


def pg_duration(value: Any) -> str:
    """A Go-style duration as PostgreSQL's units (`1m` -> `1min`, `1m30s` -> `90s`); PostgreSQL's own kept."""
    if isinstance(value, str) and STATEMENT_TIMEOUT.match(value):
        return value
    ms = round(go_seconds(value) * 1000)
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    return f"{s // 3600}h" if s and s % 3600 == 0 else f"{s // 60}min" if s and s % 60 == 0 else f"{s}s"


MYSQL_TLS = {"disabled": "disable", "required": "require", "skip-verify": "require"}


def mysql_tls(value: Any) -> str:
    if value not in MYSQL_TLS:
        raise Unconvertible(
            f"{value!r} has no dbops equivalent (dbops: disable, require, verify-ca, verify-full)"
        )
    return MYSQL_TLS[value]


def at_least_30(value: Any) -> int:
    return max(30, int(value))


def auth_plugin(value: Any) -> Any:
    if value == "sha256_password":
        raise Unconvertible(
            "dbops does not manage sha256_password accounts; left out, the account keeps its plugin"
        )
    return value


def for_role_too(entries: Any) -> Any:
    """Go's Database default privileges use `role` as both creator and grantee (FOR ROLE r ... TO r)."""
    return [{**e, "forRole": e.get("forRole", e["role"])} if "role" in e else e for e in entries or []]


TABLE_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "ALL"}
OBJECTS = ("tables", "sequences", "functions")


def go_pg_grants(entries: Any) -> Any:
    """What the Go operator granted for each entry: nothing without a schema; for a schema without tables,
    sequences or functions, its table privileges on all tables in the schema and USAGE on the schema."""
    out = []
    for entry in entries or []:
        if not entry.get("schema"):
            continue
        if any(entry.get(k) for k in OBJECTS):
            out.append(entry)
            continue
        base = {k: v for k, v in entry.items() if k not in ("privileges", "withGrantOption")}
        tables = [p for p in entry.get("privileges", []) if p.upper() in TABLE_PRIVILEGES]
        if tables:
            out.append({**entry, "tables": ["*"], "privileges": tables})
        out.append({**base, "privileges": ["USAGE"]})
    return out


SCHEMA_PRIVILEGES = {"USAGE", "CREATE", "ALL", "ALL PRIVILEGES"}


def go_role_pg_grants(entries: Any) -> Any:
    """What the Go operator granted a DatabaseRole for each entry (its role adapter, not the DatabaseGrant one): an
    entry without tables granted its privileges on the schema too, so one with sequences or functions gets a schema
    entry beside it (when the privileges are a schema's; other ones failed in the Go operator)."""
    out = []
    for entry in entries or []:
        out.append(entry)
        privileges = [p.upper() for p in entry.get("privileges", [])]
        if (
            entry.get("schema")
            and not entry.get("tables")
            and any(entry.get(k) for k in ("sequences", "functions"))
            and privileges
            and set(privileges) <= SCHEMA_PRIVILEGES
        ):
            base = {k: v for k, v in entry.items() if k not in ("sequences", "functions", "withGrantOption")}
            out.append(base)
    return out


def go_role_mysql_grants(entries: Any) -> Any:
    """The Go operator granted a DatabaseRole's column, procedure and function entries on the whole database."""
    out = []
    for entry in entries or []:
        if entry.get("level") in ("column", "procedure", "function"):
            keep = {k: v for k, v in entry.items() if k not in ("table", "columns", "procedure", "function")}
            out.append({**keep, "level": "database"})
        else:
            out.append(entry)
    return out


ROLE_ATTRIBUTE = (
    "dbops' DatabaseRole never carries {attr} (a member may SET ROLE to the role and act with it), and adopting the "
    "role would remove it from the role in the server: the role is held back and stays as it is, unmanaged (a "
    "DatabaseGrant or DatabaseUser that named it names it by its server name). To manage it with dbops, give "
    "{attr} to one DatabaseUser instead (or drop it from the role in the server), remove it from the Go object and "
    "convert again"
)
HELD_BACK_ROLE = "the role is held back and stays as it is in the server, unmanaged"

DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")  # dbops' pattern for driftPolicy.interval


def drift_interval(value: Any) -> Any:
    """driftPolicy is carried over as it is (mode, interval); an interval dbops' schema would refuse is left out
    rather than refusing the object for a field dbops does not use."""
    if isinstance(value, str) and len(value) <= 64 and DURATION.match(value):
        return value
    raise Unconvertible(
        f"{value!r} is not a duration dbops accepts; dbops does not use interval (claims are re-checked at the "
        "Function Input's resync interval)"
    )


# driftPolicy itself is not in RULES: dbops has it at the same path with the Go CRD's meaning (docs/function.md).
DRIFT_INTERVAL = Move("spec.driftPolicy.interval", "", drift_interval)

RULES: dict[str, dict[str, Rule]] = {
    "DatabaseInstance": {
        "spec.connection.existingSecret": Move(
            "spec.connection.secretRef", "the Go operator read only connection.secretRef; same shape"
        ),
        "spec.connection.secretRef.namespace": Defer("namespace"),
        "spec.connection.sslMode": Move(
            "spec.postgres.sslMode", "the Go docs' path; the CRD path is postgres.sslMode"
        ),
        "spec.connection.tls": Move("spec.tls", "the Go docs' path; the CRD path is spec.tls"),
        "spec.healthCheck.intervalSeconds": Move(
            "spec.healthCheck.intervalSeconds", "dbops checks at most every 30 s", at_least_30
        ),
        "spec.postgres.statementTimeout": Move(
            "spec.postgres.statementTimeout", "PostgreSQL's units (ms, s, min, h)", pg_duration
        ),
        "spec.mysql.timeout": Move("spec.mysql.timeouts.connect", "whole seconds", whole_seconds),
        "spec.mysql.readTimeout": Move("spec.mysql.timeouts.read", "whole seconds", whole_seconds),
        "spec.mysql.writeTimeout": Move("spec.mysql.timeouts.write", "whole seconds", whole_seconds),
        "spec.mysql.tls": Move("spec.mysql.tls", "dbops' names for the modes", mysql_tls),
        "spec.mysql.parseTime": Drop("an option of the Go MySQL driver; dbops reads no table data"),
        "spec.driftPolicy.interval": DRIFT_INTERVAL,
        "spec.discovery": Drop("dbops adopts only what a claim names (adopt: true); " + NEVER_READ),
        "spec.resourceTracking": Drop("dbops writes no tracking metadata into the server; " + NEVER_READ),
        "spec.clickhouse": Drop(CLICKHOUSE),
    },
    "Database": {
        "spec.instanceRef.namespace": Defer("namespace"),
        "spec.clusterInstanceRef": Drop(
            "dbops has no cluster-scoped instance: name a DatabaseInstance claim of this namespace in instanceRef"
        ),
        "spec.deletionPolicy": Defer("deletion-policy"),
        "spec.driftPolicy.interval": DRIFT_INTERVAL,
        "spec.initSQL": Drop(
            "dbops runs no SQL from a claim (the Go operator ran it once, when it created the database)"
        ),
        "spec.postgres.ownership": Drop(
            "dbops creates no roles for a database on its own; the roles the Go operator made stay in the server "
            "(convert their DatabaseUser objects, if any)"
        ),
        "spec.postgres.defaultPrivileges": Move(
            "spec.postgres.defaultPrivileges", "forRole set to role, as the Go operator used it", for_role_too
        ),
        "spec.mysql.sqlMode": Drop("a database has no SQL mode of its own; " + NEVER_READ),
        "spec.mysql.defaultStorageEngine": Drop("a database has no storage engine of its own; " + NEVER_READ),
        "spec.clickhouse": Drop(CLICKHOUSE),
    },
    "DatabaseUser": {
        "spec.instanceRef.namespace": Defer("namespace"),
        "spec.clusterInstanceRef": Drop(
            "dbops has no cluster-scoped instance: name a DatabaseInstance claim of this namespace in instanceRef"
        ),
        "spec.passwordSecret": Defer("password"),
        "spec.existingPasswordSecret": Drop(
            NEVER_READ
            + " (it generated a password anyway); the password it set is taken from its credentials Secret"
        ),
        "spec.passwordRotation": Drop(
            "the Go operator's rotation users are not dbops' (<username>_r<N>) and its cron schedule has no dbops "
            "equivalent: after the move, turn on dbops' passwordRotation (maxAge or trigger) if wanted"
        ),
        "spec.roles": Drop(
            NEVER_READ
            + "; dbops would grant these roles now (and revoke others): add it after the move if wanted"
        ),
        "spec.postgres.defaultRole": Drop(NEVER_READ),
        "spec.mysql.authPlugin": Move("spec.mysql.authPlugin", "", auth_plugin),
        "spec.mysql.failedLoginAttempts": Drop(NEVER_READ),
        "spec.mysql.passwordLockTime": Drop(NEVER_READ),
        "spec.clickhouse": Drop(CLICKHOUSE),
        "spec.driftPolicy.interval": DRIFT_INTERVAL,
    },
    "DatabaseGrant": {
        "spec.userRef.namespace": Defer("namespace"),
        "spec.databaseRef.namespace": Defer("namespace"),
        "spec.roleRef": Defer("role"),
        "spec.postgres.grants": Move(
            "spec.postgres.grants",
            "what the Go operator granted: an entry without schema granted nothing; a schema without tables, "
            "sequences or functions meant its table privileges on all its tables, and USAGE on the schema",
            go_pg_grants,
        ),
        "spec.postgres.defaultPrivileges": Defer("default-privileges"),
        "spec.clickhouse": Drop(CLICKHOUSE),
        "spec.driftPolicy.interval": DRIFT_INTERVAL,
    },
    "DatabaseRole": {
        "spec.instanceRef.namespace": Defer("namespace"),
        "spec.clusterInstanceRef": Refuse(
            "dbops has no cluster-scoped instance: "
            + HELD_BACK_ROLE
            + ". Convert the ClusterDatabaseInstance to a "
            "DatabaseInstance of this namespace, name it in spec.instanceRef and convert again"
        ),
        "spec.postgres.login": Refuse(
            "true: a role that logs in is a DatabaseUser in dbops (a DatabaseRole never logs in); "
            + HELD_BACK_ROLE
            + " (a DatabaseGrant that named it names it by its server name). To manage it with dbops, write a "
            "DatabaseUser with its username, adopt: true and existingPasswordSecret naming a Secret with its "
            "password (docs/migrating.md)",
            (False,),
        ),
        "spec.postgres.superuser": Refuse(ROLE_ATTRIBUTE.format(attr="SUPERUSER"), (False,)),
        "spec.postgres.createRole": Refuse(ROLE_ATTRIBUTE.format(attr="CREATEROLE"), (False,)),
        "spec.postgres.replication": Refuse(ROLE_ATTRIBUTE.format(attr="REPLICATION"), (False,)),
        "spec.postgres.bypassRLS": Refuse(ROLE_ATTRIBUTE.format(attr="BYPASSRLS"), (False,)),
        "spec.postgres.grants": Move(
            "spec.postgres.grants",
            "what the Go operator granted a role: an entry without tables granted its privileges on the schema too",
            go_role_pg_grants,
        ),
        "spec.mysql.useNativeRoles": Refuse(
            "false: the Go operator made a locked account '<roleName>'@'%' for it, not a role, and dbops manages "
            "roles only (CREATE ROLE, granted to users); "
            + HELD_BACK_ROLE
            + ". To manage its privileges with dbops, write a DatabaseGrant per user that should have them",
            (True,),
        ),
        "spec.mysql.grants": Move(
            "spec.mysql.grants",
            "what the Go operator granted a role: column, procedure and function entries on the whole database",
            go_role_mysql_grants,
        ),
        "spec.clickhouse": Drop(CLICKHOUSE),
        "spec.driftPolicy.interval": DRIFT_INTERVAL,
    },
}

# Go kinds dbops does not have: why, and what to do instead.
NO_SUCH_KIND = {
    "DatabaseBackup": "a run of the Go operator's (its stored files are not a dbops backup, and converting it "
    "would back up again); write a dbops DatabaseBackup for a new backup",
    "DatabaseBackupSchedule": "not converted: write a dbops DatabaseBackupSchedule (CronJob; its retention deletes "
    "only its own runs' backups, never the Go operator's) so the Go operator's and dbops' runs do not both run",
    "DatabaseRestore": "a run of the Go operator's (converting it would restore again; dbops cannot read the Go "
    "operator's backups)",
    "ClusterDatabaseInstance": "dbops has no cluster-scoped instance: write one DatabaseInstance per namespace",
    "ClusterDatabaseRole": "dbops has no cluster-scoped roles",
    "ClusterDatabaseGrant": "dbops has no cluster-scoped grants: write a DatabaseGrant in the user's namespace",
}

# Go annotations (the operator's switches) and why none is carried.
GO_ANNOTATIONS = {
    "dbops.dbprovision.io/deletion-policy": "dbops never drops anything when a claim is deleted "
    "(spec.deletionPolicy acts only with spec.ensure: Absent)",
    "dbops.dbprovision.io/deletion-protection": "dbops' spec.deletionProtection (default true for a user)",
    "dbops.dbprovision.io/force-delete": "dbops never drops anything when a claim is deleted",
    "dbops.dbprovision.io/force-delete-confirm": "dbops never drops anything when a claim is deleted",
    "dbops.dbprovision.io/confirm-force-delete": "dbops never drops anything when a claim is deleted",
    "dbops.dbprovision.io/allow-destructive-drift": DESTRUCTIVE_DRIFT,
    "dbops.dbprovision.io/adopt-databases": "adoption is per claim in dbops (spec.adopt, set by this conversion)",
    "dbops.dbprovision.io/adopt-users": "adoption is per claim in dbops (spec.adopt, set by this conversion)",
    "dbops.dbprovision.io/adopt-roles": "adoption is per claim in dbops (spec.adopt, set by this conversion)",
}
KEPT_METADATA = ("name", "namespace", "labels", "annotations")
ENGINES = ("postgres", "mysql", "mariadb")
# Go secret template functions that dbops has as pipes: `{{ fn .Field }}` -> `{{ .Field | pipe }}` (the pipe
# `urlEncode` is Go's url.QueryEscape, a space becoming +, so a converted URL is byte for byte the Go operator's).
TEMPLATE_FUNCTIONS = {"urlEncode": "urlEncode", "upper": "upper", "lower": "lower", "base64Encode": "b64enc"}
TEMPLATE_FIELDS = ("Username", "Password", "Host", "Port", "Database", "SSLMode", "Namespace", "Name")


@dataclass(frozen=True)
class Note:
    """One line of the report: the object, the Go field (or `-` for the whole object) and what became of it."""

    obj: str
    path: str
    what: str  # "left out", "changed", "refused", "action"
    why: str

    def __str__(self) -> str:
        where = "" if self.path == "-" else f" {self.path}"
        return f"{self.obj}{where}: {self.what}: {self.why}"


@dataclass
class Conversion:
    documents: list[Obj] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def refused(self) -> list[Note]:
        return [n for n in self.notes if n.what == "refused"]

    def report(self) -> str:
        order = {"refused": 0, "left out": 1, "changed": 2, "action": 3}
        lines = [str(n) for n in sorted(self.notes, key=lambda n: (order[n.what], n.path != "-"))]
        head = (
            f"converted {sum(d['kind'] in CONVERTED for d in self.documents)} object(s), "
            f"refused {len({n.obj for n in self.refused})}, "
            f"left out {len({n.obj for n in self.notes if n.path == '-'})}; {len(self.notes)} note(s) (see {COMPAT})"
        )
        return "\n".join([head, *lines]) + "\n"


def label(doc: Obj) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def sub_schema(schema: Schema | None, key: str) -> Schema | None:
    if not schema:
        return None
    if key in schema.get("properties", {}):
        found: Schema = schema["properties"][key]
        return found
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def set_path(root: Obj, path: str, value: Any) -> bool:
    """Set `spec.a.b` in `root` (the spec, `spec.` stripped); False when something is there already."""
    keys = path.split(".")[1:]
    for key in keys[:-1]:
        root = root.setdefault(key, {})
    if keys[-1] in root:
        return False
    root[keys[-1]] = value
    return True


@dataclass
class _Object:
    """One Go object on its way: its converted spec, and what waits for the other objects."""

    doc: Obj
    spec: Obj = field(default_factory=dict)
    deferred: dict[str, Any] = field(default_factory=dict)
    moves: list[tuple[str, str, Any]] = field(default_factory=list)
    refused: bool = False
    checked: bool = False  # its spec went through dbops' schema (normalize) already
    grantee: str | None = None  # a DatabaseGrant's role, by its server name, when it names a DatabaseRole


class _Converter:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.out = Conversion()

    def note(self, obj: Obj, path: str, what: str, why: str) -> None:
        self.out.notes.append(Note(label(obj), path, what, why))

    # -- one object ---------------------------------------------------------------------------------------------
    def spec_of(self, doc: Obj) -> _Object:
        obj = _Object(doc)
        obj.spec = self.walk(obj, "spec", doc.get("spec") or {}, SPECS[doc["kind"]])
        for go_path, to, value in obj.moves:
            if not set_path(obj.spec, to, value):
                self.note(doc, go_path, "left out", f"{to} is set as well; that one is kept")
        return obj

    def walk(self, obj: _Object, path: str, value: Obj, schema: Schema | None) -> Obj:
        doc, kind = obj.doc, obj.doc["kind"]
        out: Obj = {}
        for key, sub in value.items():
            here = f"{path}.{key}"
            rule = RULES[kind].get(here)
            target = sub_schema(schema, key)
            if isinstance(rule, Drop):
                self.note(doc, here, "left out", rule.why)
            elif isinstance(rule, Refuse):
                if any(type(sub) is type(a) and sub == a for a in rule.accepted):
                    out[key] = sub
                else:
                    self.note(doc, here, "refused", rule.why)
                    obj.refused = True
            elif isinstance(rule, Defer):
                obj.deferred[here] = sub
            elif isinstance(rule, Move):
                try:
                    moved = rule.convert(sub) if rule.convert else sub
                except Unconvertible as e:
                    self.note(doc, here, "left out", str(e))
                    continue
                if moved != sub or rule.to != here:
                    moved_to = "" if rule.to == here else f"{rule.to} "
                    how = f" ({rule.how})" if rule.how else ""
                    self.note(doc, here, "changed", f"{sub!r} -> {moved_to}{moved!r}{how}")
                obj.moves.append((here, rule.to, moved))
            elif target is None:
                self.note(doc, here, "left out", f"dbops has no such field (see {COMPAT})")
            elif isinstance(sub, dict) and "properties" in target:
                out[key] = self.walk(obj, here, sub, target)
            elif isinstance(sub, list) and "properties" in (target.get("items") or {}):
                out[key] = [
                    self.walk(obj, here + "[]", item, target["items"]) if isinstance(item, dict) else item
                    for item in sub
                ]
            else:
                out[key] = sub
        return out

    def metadata(self, doc: Obj) -> Obj:
        meta = doc.get("metadata") or {}
        out = {k: meta[k] for k in KEPT_METADATA if meta.get(k)}
        out.setdefault("namespace", self.namespace)
        annotations = {}
        for key, value in (meta.get("annotations") or {}).items():
            if key.startswith(GO_API_GROUP + "/"):
                why = GO_ANNOTATIONS.get(key, "an annotation of the Go operator; dbops reads none")
                self.note(doc, f"metadata.annotations[{key}]", "left out", why)
            elif key != "kubectl.kubernetes.io/last-applied-configuration":
                annotations[key] = value
        if annotations:
            out["annotations"] = annotations
        else:
            out.pop("annotations", None)
        return out

    # -- deferred steps -----------------------------------------------------------------------------------------
    def namespaces(self, obj: _Object) -> None:
        own = obj.doc["metadata"].get("namespace", self.namespace)
        for path, value in obj.deferred.items():
            if path.endswith(".namespace") and value not in (None, "", own):
                self.note(
                    obj.doc,
                    path,
                    "refused",
                    f"{value!r} is another namespace; {SAME_NAMESPACE} (copy the object "
                    f"it names into {own!r}, or convert this object in {value!r})",
                )
                obj.refused = True

    def tls_mode(self, obj: _Object) -> None:
        tls = obj.spec.get("tls") or {}
        if tls.get("enabled") and "mode" not in tls:
            tls["mode"] = "disable"
            self.note(
                obj.doc,
                "spec.tls.mode",
                "changed",
                "written out as 'disable', the Go CRD's default (dbops would verify the server: verify-full)",
            )

    def deletion_policy(self, obj: _Object) -> None:
        value = obj.deferred.get("spec.deletionPolicy")
        if value is None:
            return
        if value == "Snapshot":
            self.note(
                obj.doc, "spec.deletionPolicy", "left out", "Snapshot: dbops takes no snapshots (Retain)"
            )
            return
        obj.spec["deletionPolicy"] = value
        if value == "Delete":
            self.note(
                obj.doc,
                "spec.deletionPolicy",
                "changed",
                "Delete: kept, but in dbops it acts only on spec.ensure: Absent, never on deleting the claim",
            )

    def password(self, obj: _Object) -> None:
        """Keep the password the Go operator set: dbops reads it from the Go credentials Secret, and writes its own
        Secret under another name (dbops never writes into a Secret it did not create)."""
        doc, spec = obj.doc, obj.spec
        go = obj.deferred.get("spec.passwordSecret") or {}
        username = spec.get("username") or doc["metadata"]["name"]
        go_secret = go.get("secretName") or f"{username}-credentials"
        template = go.get("secretTemplate") or {}
        for key in ("generate", "length", "includeSpecialChars", "excludeChars"):
            if key in go:
                self.note(doc, f"spec.passwordSecret.{key}", "left out", PASSWORD_KEPT)
        for key in ("secretNamespace", "format"):
            if key in go:
                self.note(
                    doc,
                    f"spec.passwordSecret.{key}",
                    "left out",
                    "dbops writes a Secret of the claim's namespace only; " + NEVER_READ,
                )
        if template.get("data"):
            source = f"{doc['metadata']['name']}-go-password"
            self.note(
                doc,
                "spec.passwordSecret",
                "action",
                f"the Go operator kept the password in annotation {GO_PASSWORD_ANNOTATION} of Secret {go_secret} "
                f"(it has secretTemplate.data): copy it into key password of a new Secret {source} before applying "
                "(docs/migrating.md)",
            )
        else:
            source = go_secret
        spec["existingPasswordSecret"] = {"name": source, "key": "password"}
        ours = f"{doc['metadata']['name']}-credentials"
        if ours == go_secret:
            ours = f"{doc['metadata']['name']}-dbops-credentials"
        out: Obj = {"secretName": ours}
        shape = {k: template[k] for k in ("type", "labels", "annotations") if k in template}
        data = self.template_data(doc, template.get("data") or {})
        if data:
            shape["data"] = data
        if shape:
            out["secretTemplate"] = shape
        spec["passwordSecret"] = out
        self.note(
            doc,
            "spec.passwordSecret.secretName",
            "action",
            f"Secret {source} is the password's source (existingPasswordSecret); remove the ownerReference of "
            f"Secret {go_secret} to the Go object before removing the Go CRDs, or Kubernetes deletes it with its "
            f"owner; dbops writes its own credentials to Secret {ours}",
        )

    def template_data(self, doc: Obj, data: dict[str, str]) -> dict[str, str]:
        out = {}
        call = re.compile(r"\{\{-?\s*(\w+)\s+\.(\w+)\s*-?\}\}")
        plain = re.compile(r"\{\{-?\s*\.(\w+)\s*(\|\s*\w+\s*)*-?\}\}")
        for key, text in data.items():
            converted = call.sub(
                lambda m: (
                    f"{{{{ .{m.group(2)} | {TEMPLATE_FUNCTIONS[m.group(1)]} }}}}"
                    if m.group(1) in TEMPLATE_FUNCTIONS
                    else m.group(0)
                ),
                text,
            )
            actions = re.findall(r"\{\{.*?\}\}", converted)
            bad = [
                a for a in actions if (m := plain.fullmatch(a)) is None or m.group(1) not in TEMPLATE_FIELDS
            ]
            where = f"spec.passwordSecret.secretTemplate.data[{key}]"
            if bad:
                self.note(
                    doc,
                    where,
                    "left out",
                    f"{', '.join(bad)}: dbops templates take {{{{ .Field }}}} or "
                    f"{{{{ .Field | pipe }}}} with fields {', '.join(TEMPLATE_FIELDS)} only",
                )
                continue
            if converted != text:
                self.note(doc, where, "changed", f"{text!r} -> {converted!r}")
            if ".Database" in converted:
                self.note(
                    doc,
                    where,
                    "changed",
                    ".Database is the user's spec.databaseRef database in dbops "
                    "(Go: the instance's connection database); add spec.databaseRef or write the name",
                )
            out[key] = converted
        if out:
            self.note(
                doc,
                "spec.passwordSecret.secretTemplate.data",
                "changed",
                "dbops adds these keys to username, password, host, port, database, uri (Go replaced them)",
            )
        return out

    def role(self, obj: _Object, roles: dict[tuple[str, str], _Object]) -> None:
        """A grant's roleRef names the converted DatabaseRole claim (the Go object's name); when that role is held
        back, the grant names the role by its server name (roleName) and the role's instance."""
        ref = obj.deferred.get("spec.roleRef")
        if ref is None:
            return
        own = obj.doc["metadata"].get("namespace", self.namespace)
        ns = ref.get("namespace") or own
        if ns != own:
            self.note(
                obj.doc, "spec.roleRef.namespace", "refused", f"{ns!r} is another namespace; {SAME_NAMESPACE}"
            )
            obj.refused = True
            return
        name = ref.get("name", "")
        role = roles.get((ns, name))
        go_spec = (role.doc.get("spec") or {}) if role is not None else {}
        if role is None or not go_spec.get("roleName"):
            self.note(
                obj.doc,
                "spec.roleRef",
                "refused",
                f"DatabaseRole {name!r} is not in the input: the grant needs it (as a DatabaseRole claim, or its "
                "role's server name when it is held back); add the DatabaseRole to the input",
            )
            obj.refused = True
            return
        obj.grantee = go_spec["roleName"]
        if self.valid(role):
            obj.spec["roleRef"] = {"name": name}
            return
        go_instance = go_spec.get("instanceRef") or {}
        elsewhere = go_instance.get("namespace") not in (None, "", own)
        if elsewhere or not (go_instance.get("name") or "databaseRef" in obj.spec):
            where = (
                f"its instance is in namespace {go_instance.get('namespace')!r}; {SAME_NAMESPACE}"
                if elsewhere
                else "it names no DatabaseInstance (spec.instanceRef) that the grant could use; add "
                "spec.databaseRef to the grant, or fix the DatabaseRole, and convert again"
            )
            self.note(
                obj.doc,
                "spec.roleRef",
                "refused",
                f"DatabaseRole {name!r} is held back (see its notes) and {where}",
            )
            obj.refused = True
            return
        obj.spec["roleName"] = go_spec["roleName"]
        if "databaseRef" not in obj.spec and go_instance.get("name"):
            obj.spec["instanceRef"] = {"name": go_instance["name"]}
        self.note(
            obj.doc,
            "spec.roleRef",
            "changed",
            f"-> spec.roleName {obj.grantee!r}: DatabaseRole {name!r} is held back (see its notes), so the grant "
            "names its role in the server",
        )

    def user_roles(self, obj: _Object, roles: dict[tuple[str, str, str], _Object]) -> None:
        """A user's postgres.inRoles entries that are converted DatabaseRoles of its instance become roleRefs to
        their claims (dbops adds their roleNames to the memberships: the same set)."""
        pg = obj.spec.get("postgres") or {}
        ns = obj.doc["metadata"].get("namespace", self.namespace)
        instance = (obj.spec.get("instanceRef") or {}).get("name", "")
        refs: list[str] = []
        moved: list[str] = []
        kept: list[str] = []
        for name in pg.get("inRoles") or []:
            role = roles.get((ns, instance, name))
            if role is not None and self.valid(role):
                refs.append(role.doc["metadata"]["name"])
                moved.append(name)
            else:
                kept.append(name)
        if not refs:
            return
        if kept:
            pg["inRoles"] = kept
        else:
            del pg["inRoles"]
        obj.spec["roleRefs"] = [{"name": r} for r in dict.fromkeys(refs)]
        self.note(
            obj.doc,
            "spec.postgres.inRoles",
            "changed",
            f"{', '.join(moved)} -> spec.roleRefs "
            f"{', '.join(dict.fromkeys(refs))} (the DatabaseRole claims of those roles; the memberships are the same)",
        )

    def default_privileges(
        self, obj: _Object, databases: dict[tuple[str, str], _Object], users: dict[tuple[str, str], Obj]
    ) -> None:
        entries = obj.deferred.get("spec.postgres.defaultPrivileges")
        if not entries:
            return
        ns = obj.doc["metadata"].get("namespace", self.namespace)
        grantee = obj.spec.get("roleName") or obj.grantee
        user = users.get((ns, (obj.spec.get("userRef") or {}).get("name", "")))
        if user is not None:
            grantee = (user.get("spec") or {}).get("username") or user["metadata"]["name"]
        for i, entry in enumerate(entries):
            where = f"spec.postgres.defaultPrivileges[{i}]"
            target = databases.get((ns, entry.get("database", "")))
            if target is None or grantee is None:
                missing = (
                    "the grantee's DatabaseUser"
                    if grantee is None
                    else f"a Database named {entry.get('database')!r}"
                )
                self.note(
                    obj.doc,
                    where,
                    "left out",
                    f"dbops keeps default privileges on the Database claim; {missing} is not in the input",
                )
                continue
            moved = {
                "role": grantee,
                "schema": entry.get("schema"),
                "objectType": entry.get("objectType"),
                "privileges": entry.get("privileges"),
            }
            if entry.get("grantedBy"):
                moved["forRole"] = entry["grantedBy"]
            moved = {k: v for k, v in moved.items() if v is not None}
            target.spec.setdefault("postgres", {}).setdefault("defaultPrivileges", []).append(moved)
            self.note(
                obj.doc, where, "changed", f"moved to {label(target.doc)} spec.postgres.defaultPrivileges"
            )

    def adopt(self, obj: _Object) -> None:
        phase = (obj.doc.get("status") or {}).get("phase")
        if phase not in (None, "Ready"):
            self.note(
                obj.doc,
                "spec.adopt",
                "action",
                f"not set: the Go status says {phase!r}, so the object may not "
                "exist; dbops refuses an existing one without adopt: true (set it by hand if it exists)",
            )
            return
        obj.spec["adopt"] = True

    def valid(self, obj: _Object) -> bool:
        """Whether the object is emitted: not refused by a rule or a step, and its spec one dbops' schema accepts
        (checked once; its refusals are reported)."""
        if not obj.checked:
            obj.checked = True
            if not obj.refused:
                _, errors = normalize(SPECS[obj.doc["kind"]], obj.spec, "spec")
                for error in errors:
                    self.note(
                        obj.doc, error.path, "refused", f"{error.message} (fix the input and convert again)"
                    )
                obj.refused = bool(errors)
        return not obj.refused

    # -- all objects --------------------------------------------------------------------------------------------
    def convert(self, docs: list[Obj]) -> Conversion:
        objs: list[_Object] = []
        for given in docs:
            if not isinstance(given, dict):
                continue
            meta = given.get("metadata") or {}
            doc = {**given, "metadata": {**meta, "namespace": meta.get("namespace") or self.namespace}}
            kind = doc.get("kind", "")
            group = str(doc.get("apiVersion", "")).split("/")[0]
            if group != GO_API_GROUP:
                self.out.documents.append(self.passed_through(doc))
                continue
            if kind not in CONVERTED:
                why = NO_SUCH_KIND.get(kind, "dbops has no such kind")
                self.note(doc, "-", "left out", why)
                continue
            engine = (doc.get("spec") or {}).get("engine")
            if kind == "DatabaseInstance" and engine not in ENGINES:
                self.note(doc, "spec.engine", "refused", f"{engine!r}: {CLICKHOUSE}")
                continue
            obj = self.spec_of(doc)
            obj.doc = {**doc, "metadata": self.metadata(doc)}
            objs.append(obj)
        databases = {
            (o.doc["metadata"]["namespace"], o.spec.get("name") or o.doc["metadata"]["name"]): o
            for o in objs
            if o.doc["kind"] == "Database"
        }
        users = {
            (o.doc["metadata"]["namespace"], o.doc["metadata"]["name"]): o.doc
            for o in objs
            if o.doc["kind"] == "DatabaseUser"
        }
        go_roles = [o for o in objs if o.doc["kind"] == "DatabaseRole"]
        roles = {(o.doc["metadata"]["namespace"], o.doc["metadata"]["name"]): o for o in go_roles}
        server_roles = {
            (
                o.doc["metadata"]["namespace"],
                (o.spec.get("instanceRef") or {}).get("name", ""),
                o.spec.get("roleName", ""),
            ): o
            for o in go_roles
        }
        # Each object on its own first; then the references, which need to know which roles are emitted.
        for obj in objs:
            self.namespaces(obj)
            kind = obj.doc["kind"]
            if kind == "DatabaseInstance":
                self.tls_mode(obj)
            if kind == "Database":
                self.deletion_policy(obj)
            if kind == "DatabaseUser":
                self.password(obj)
            if kind in ADOPTED:
                self.adopt(obj)
        for obj in objs:
            kind = obj.doc["kind"]
            if kind == "DatabaseUser":
                self.user_roles(obj, server_roles)
            if kind == "DatabaseGrant":
                self.role(obj, roles)
                self.default_privileges(obj, databases, users)
        for obj in objs:
            if self.valid(obj):
                self.out.documents.append(
                    {
                        "apiVersion": API_VERSION,
                        "kind": obj.doc["kind"],
                        "metadata": obj.doc["metadata"],
                        "spec": obj.spec,
                    }
                )
        return self.out

    def passed_through(self, doc: Obj) -> Obj:
        """Anything else (Secrets) as it is, without the server's bookkeeping and without owner references to Go
        objects (removing the Go CRDs would delete the Secret with its owner)."""
        meta = dict(doc.get("metadata") or {})
        for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink"):
            meta.pop(key, None)
        owners = meta.get("ownerReferences") or []
        kept = [o for o in owners if str(o.get("apiVersion", "")).split("/")[0] != GO_API_GROUP]
        if len(kept) != len(owners):
            self.note(
                doc,
                "metadata.ownerReferences",
                "action",
                "the reference to the Go object is removed here; "
                "remove it in the cluster too before removing the Go CRDs (docs/migrating.md)",
            )
        if kept:
            meta["ownerReferences"] = kept
        else:
            meta.pop("ownerReferences", None)
        return {**doc, "metadata": meta}


def convert(docs: list[Obj], namespace: str = "default") -> Conversion:
    """Go-operator objects (and Secrets) in, dbops claims out, with a note for everything not carried over."""
    return _Converter(namespace).convert(docs)


def main(argv: list[str] | None = None, out: Any = None, err: Any = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="dbops-local migrate-from-operator",
        description="Convert db-provision-operator YAML (DatabaseInstance, Database, DatabaseUser, DatabaseGrant, "
        "DatabaseRole) to dbops claims with adopt: true. The claims go to stdout (or -o FILE); the report of every "
        "field not carried over, and why, to stderr. Exit status 1 when an object of these five kinds was refused "
        "(it is not in the output); objects of kinds dbops lacks are left out and reported. See docs/migrating.md.",
    )
    parser.add_argument(
        "-f", "--filename", action="append", required=True, help="Go-operator YAML ('-': stdin)"
    )
    parser.add_argument("-o", "--output", help="write the claims here instead of stdout")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for objects without one")
    args = parser.parse_args(argv)
    docs: list[Obj] = []
    for name in args.filename:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        for doc in yaml.safe_load_all(text):
            # `kubectl get ... -o yaml` prints a List of the objects
            docs += (doc.get("items") or []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
    docs = [d for d in docs if d]
    result = convert(docs, args.namespace)
    text = yaml.safe_dump_all(result.documents, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text)
    else:
        out.write(text)
    err.write(result.report())
    return 1 if result.refused else 0
