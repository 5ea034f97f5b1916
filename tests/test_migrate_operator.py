"""`dbops-local migrate-from-operator` (dbops_local/migrate_operator.py, docs/migrating.md): Go-operator YAML in, dbops
claims out. Each case is a Go object (or a few), the claim spec expected, and the report lines expected: every field
not carried over is named with its reason. No server needed; tests/test_migrate_operator_e2e.py runs the result."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbops_api.registry import API_VERSION, SPECS
from dbops_api.validation import normalize
from dbops_local import cli
from dbops_local.migrate_operator import RULES, Defer, Drop, Move, Note, Refuse, convert

ROOT = Path(__file__).resolve().parent.parent
GO_FIELDS = json.loads((ROOT / "tests/compat/go_crd_fields.json").read_text())["kinds"]


def go(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}


INSTANCE = go(
    "DatabaseInstance",
    "pg",
    {
        "engine": "postgres",
        "connection": {"host": "db", "port": 5432, "database": "postgres", "secretRef": {"name": "a"}},
    },
)
MARIA = go(
    "DatabaseInstance",
    "maria",
    {
        "engine": "mariadb",
        "connection": {"host": "db", "port": 3306, "database": "mysql", "secretRef": {"name": "a"}},
    },
)
USER = go("DatabaseUser", "app", {"instanceRef": {"name": "pg"}, "username": "app"})
DATABASE = go("Database", "appdb", {"instanceRef": {"name": "pg"}, "name": "appdb"})
ROLE = go("DatabaseRole", "readers", {"instanceRef": {"name": "pg"}, "roleName": "readers_role"})
MARIA_ROLE = go("DatabaseRole", "readers", {"instanceRef": {"name": "maria"}, "roleName": "readers_role"})


@dataclass(frozen=True)
class Case:
    reason: str
    given: list[dict[str, Any]]
    kind: str  # the object whose converted spec is checked
    name: str
    spec: dict[str, Any] | None  # a subset of the converted spec; None: refused
    notes: list[tuple[str, str]] = field(default_factory=list)  # (Go path, what), all the object's notes


def with_spec(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**obj, "spec": {**obj["spec"], **spec}}


CASES = [
    Case(
        "fields at the same path are carried as they are",
        [INSTANCE],
        "DatabaseInstance",
        "pg",
        INSTANCE["spec"],
    ),
    Case(
        "the Go docs' connection.sslMode moves to postgres.sslMode",
        [with_spec(INSTANCE, connection={**INSTANCE["spec"]["connection"], "sslMode": "require"})],
        "DatabaseInstance",
        "pg",
        {"postgres": {"sslMode": "require"}},
        [("spec.connection.sslMode", "changed")],
    ),
    Case(
        "existingSecret becomes secretRef",
        [
            with_spec(
                INSTANCE,
                connection={
                    "host": "db",
                    "port": 5432,
                    "database": "postgres",
                    "existingSecret": {"name": "x"},
                },
            )
        ],
        "DatabaseInstance",
        "pg",
        {"connection": {"host": "db", "port": 5432, "database": "postgres", "secretRef": {"name": "x"}}},
        [("spec.connection.existingSecret", "changed")],
    ),
    Case(
        "Go durations become seconds and PostgreSQL units; too short a health check interval is raised",
        [
            with_spec(INSTANCE, postgres={"statementTimeout": "1m"}, healthCheck={"intervalSeconds": 5}),
            with_spec(
                MARIA,
                mysql={"timeout": "10s", "readTimeout": "1m30s", "writeTimeout": "500ms", "tls": "required"},
            ),
        ],
        "DatabaseInstance",
        "maria",
        {"mysql": {"timeouts": {"connect": 10, "read": 90, "write": 1}, "tls": "require"}},
        [
            ("spec.mysql.timeout", "changed"),
            ("spec.mysql.readTimeout", "changed"),
            ("spec.mysql.writeTimeout", "changed"),
            ("spec.mysql.tls", "changed"),
        ],
    ),
    Case(
        "statementTimeout 1m is 1min; the interval is at least 30",
        [with_spec(INSTANCE, postgres={"statementTimeout": "1m"}, healthCheck={"intervalSeconds": 5})],
        "DatabaseInstance",
        "pg",
        {"postgres": {"statementTimeout": "1min"}, "healthCheck": {"intervalSeconds": 30}},
        [("spec.postgres.statementTimeout", "changed"), ("spec.healthCheck.intervalSeconds", "changed")],
    ),
    Case(
        "tls.enabled without mode keeps the Go default, disable",
        [with_spec(INSTANCE, tls={"enabled": True})],
        "DatabaseInstance",
        "pg",
        {"tls": {"enabled": True, "mode": "disable"}},
        [("spec.tls.mode", "changed")],
    ),
    Case(
        "mysql.tls preferred has no dbops value: left out; discovery, parseTime left out; drift policy carried",
        [
            with_spec(
                MARIA,
                mysql={"tls": "preferred", "parseTime": True},
                driftPolicy={"mode": "detect"},
                discovery={"enabled": True},
            )
        ],
        "DatabaseInstance",
        "maria",
        {"engine": "mariadb", "driftPolicy": {"mode": "detect"}},
        [
            ("spec.mysql.tls", "left out"),
            ("spec.mysql.parseTime", "left out"),
            ("spec.discovery", "left out"),
        ],
    ),
    *[
        Case(
            f"a {kind}'s driftPolicy is carried as it is (the Go default detect stays detect)",
            [go(kind, "x", {**spec, "driftPolicy": {"mode": mode, "interval": "8h"}})],
            kind,
            "x",
            {"driftPolicy": {"mode": mode, "interval": "8h"}},
            notes,
        )
        for kind, spec, mode, notes in [
            ("DatabaseInstance", INSTANCE["spec"], "correct", []),
            ("Database", DATABASE["spec"], "detect", []),
            ("DatabaseUser", USER["spec"], "ignore", [("spec.passwordSecret.secretName", "action")]),
            ("DatabaseRole", ROLE["spec"], "detect", []),
            (
                "DatabaseGrant",
                {
                    "userRef": {"name": "app"},
                    "mysql": {"grants": [{"level": "global", "privileges": ["SELECT"]}]},
                },
                "detect",
                [],
            ),
        ]
    ],
    Case(
        "a driftPolicy without mode stays without (detect in both projects); an interval dbops refuses is left out",
        [with_spec(DATABASE, driftPolicy={"interval": "1d"})],
        "Database",
        "appdb",
        {"driftPolicy": {}},
        [("spec.driftPolicy.interval", "left out")],
    ),
    Case(
        "allow-destructive-drift is left out: dbops' correct always revokes what the spec does not list",
        [
            {
                **with_spec(USER, driftPolicy={"mode": "correct"}),
                "metadata": {
                    "name": "app",
                    "annotations": {"dbops.dbprovision.io/allow-destructive-drift": "true"},
                },
            }
        ],
        "DatabaseUser",
        "app",
        {"driftPolicy": {"mode": "correct"}},
        [
            ("metadata.annotations[dbops.dbprovision.io/allow-destructive-drift]", "left out"),
            ("spec.passwordSecret.secretName", "action"),
        ],
    ),
    Case(
        "an engine dbops lacks refuses the instance",
        [with_spec(INSTANCE, engine="cockroachdb")],
        "DatabaseInstance",
        "pg",
        None,
        [("spec.engine", "refused")],
    ),
    Case(
        "a database is adopted; initSQL, ownership and a Snapshot policy are left out, with the Go annotations",
        [
            {
                **with_spec(
                    DATABASE,
                    deletionPolicy="Snapshot",
                    initSQL={"inline": ["CREATE TABLE t (id int)"]},
                    postgres={"ownership": {"autoOwnership": True}},
                ),
                "metadata": {
                    "name": "appdb",
                    "annotations": {"dbops.dbprovision.io/deletion-policy": "Retain", "team": "a"},
                    "finalizers": ["dbops.dbprovision.io/database-protection"],
                },
                "status": {"phase": "Ready"},
            }
        ],
        "Database",
        "appdb",
        {"instanceRef": {"name": "pg"}, "name": "appdb", "adopt": True},
        [
            ("spec.deletionPolicy", "left out"),
            ("spec.initSQL", "left out"),
            ("spec.postgres.ownership", "left out"),
            ("metadata.annotations[dbops.dbprovision.io/deletion-policy]", "left out"),
        ],
    ),
    Case(
        "a database the Go status says was never created is not adopted",
        [{**DATABASE, "status": {"phase": "Failed"}}],
        "Database",
        "appdb",
        {"name": "appdb"},
        [("spec.adopt", "action")],
    ),
    Case(
        "Go Database default privileges: role is the creator too",
        [
            with_spec(
                DATABASE,
                postgres={
                    "defaultPrivileges": [
                        {"role": "app", "schema": "public", "objectType": "tables", "privileges": ["SELECT"]}
                    ]
                },
            )
        ],
        "Database",
        "appdb",
        {
            "postgres": {
                "defaultPrivileges": [
                    {
                        "role": "app",
                        "forRole": "app",
                        "schema": "public",
                        "objectType": "tables",
                        "privileges": ["SELECT"],
                    }
                ]
            }
        },
        [("spec.postgres.defaultPrivileges", "changed")],
    ),
    Case(
        "a reference to another namespace refuses the object",
        [with_spec(DATABASE, instanceRef={"name": "pg", "namespace": "infra"})],
        "Database",
        "appdb",
        None,
        [("spec.instanceRef.namespace", "refused")],
    ),
    Case(
        "a user keeps its Go password: read from the Go Secret, dbops writes another one; roles are left out",
        [
            with_spec(
                USER,
                roles=["readers"],
                passwordSecret={"generate": True, "length": 8, "secretName": "app-credentials"},
            )
        ],
        "DatabaseUser",
        "app",
        {
            "username": "app",
            "adopt": True,
            "existingPasswordSecret": {"name": "app-credentials", "key": "password"},
            "passwordSecret": {"secretName": "app-dbops-credentials"},
        },
        [
            ("spec.roles", "left out"),
            ("spec.passwordSecret.generate", "left out"),
            ("spec.passwordSecret.length", "left out"),
            ("spec.passwordSecret.secretName", "action"),
        ],
    ),
    Case(
        "without passwordSecret the Go Secret is <username>-credentials",
        [with_spec(USER, username="legacy")],
        "DatabaseUser",
        "app",
        {
            "existingPasswordSecret": {"name": "legacy-credentials", "key": "password"},
            "passwordSecret": {"secretName": "app-credentials"},
        },
        [("spec.passwordSecret.secretName", "action")],
    ),
    Case(
        "with secretTemplate.data the password is in an annotation: the report says to copy it; templates convert",
        [
            with_spec(
                USER,
                passwordSecret={
                    "secretName": "app-secret",
                    "secretTemplate": {
                        "type": "Opaque",
                        "data": {
                            "URL": "postgres://{{ .Username }}:{{ urlEncode .Password }}@{{ .Host }}",
                            "CA": "{{ .CA }}",
                        },
                    },
                },
            )
        ],
        "DatabaseUser",
        "app",
        {
            "existingPasswordSecret": {"name": "app-go-password", "key": "password"},
            "passwordSecret": {
                "secretName": "app-credentials",
                "secretTemplate": {
                    "type": "Opaque",
                    "data": {"URL": "postgres://{{ .Username }}:{{ .Password | urlEncode }}@{{ .Host }}"},
                },
            },
        },
        [
            ("spec.passwordSecret", "action"),
            ("spec.passwordSecret.secretName", "action"),
            ("spec.passwordSecret.secretTemplate.data[URL]", "changed"),
            ("spec.passwordSecret.secretTemplate.data[CA]", "left out"),
            ("spec.passwordSecret.secretTemplate.data", "changed"),
        ],
    ),
    Case(
        "sha256_password is left out (the account keeps its plugin); rotation and never-read fields too",
        [
            go(
                "DatabaseUser",
                "app",
                {
                    "instanceRef": {"name": "maria"},
                    "username": "app",
                    "mysql": {"authPlugin": "sha256_password", "failedLoginAttempts": 3},
                    "passwordRotation": {"enabled": True},
                },
            )
        ],
        "DatabaseUser",
        "app",
        {"username": "app"},
        [
            ("spec.mysql.authPlugin", "left out"),
            ("spec.mysql.failedLoginAttempts", "left out"),
            ("spec.passwordRotation", "left out"),
            ("spec.passwordSecret.secretName", "action"),
        ],
    ),
    Case(
        "a DatabaseRole is adopted with its fields as they are; the Go annotations are left out",
        [
            {
                **with_spec(
                    ROLE,
                    postgres={
                        "login": False,
                        "inherit": True,
                        "createDB": True,
                        "superuser": False,
                        "createRole": False,
                        "replication": False,
                        "bypassRLS": False,
                        "inRoles": ["base"],
                        "grants": [
                            {"database": "appdb", "privileges": ["CONNECT"]},
                            {"database": "appdb", "schema": "public", "privileges": ["USAGE"]},
                            {
                                "database": "appdb",
                                "schema": "public",
                                "tables": ["t"],
                                "privileges": ["SELECT"],
                            },
                        ],
                    },
                ),
                "metadata": {
                    "name": "readers",
                    "annotations": {"dbops.dbprovision.io/deletion-policy": "Retain"},
                    "finalizers": ["dbops.dbprovision.io/role-protection"],
                },
                "status": {"phase": "Ready"},
            }
        ],
        "DatabaseRole",
        "readers",
        {
            "instanceRef": {"name": "pg"},
            "roleName": "readers_role",
            "adopt": True,
            "postgres": {
                "login": False,
                "inherit": True,
                "createDB": True,
                "superuser": False,
                "inRoles": ["base"],
                "grants": [
                    {"database": "appdb", "privileges": ["CONNECT"]},
                    {"database": "appdb", "schema": "public", "privileges": ["USAGE"]},
                    {"database": "appdb", "schema": "public", "tables": ["t"], "privileges": ["SELECT"]},
                ],
            },
        },
        [("metadata.annotations[dbops.dbprovision.io/deletion-policy]", "left out")],
    ),
    Case(
        "a role's sequences entry also granted its privileges on the schema in the Go operator",
        [
            with_spec(
                ROLE,
                postgres={
                    "grants": [{"database": "d", "schema": "s", "sequences": ["q"], "privileges": ["USAGE"]}]
                },
            )
        ],
        "DatabaseRole",
        "readers",
        {
            "postgres": {
                "grants": [
                    {"database": "d", "schema": "s", "sequences": ["q"], "privileges": ["USAGE"]},
                    {"database": "d", "schema": "s", "privileges": ["USAGE"]},
                ]
            }
        },
        [("spec.postgres.grants", "changed")],
    ),
    Case(
        "a role's MySQL column and procedure entries were granted on the whole database by the Go operator",
        [
            with_spec(
                MARIA_ROLE,
                mysql={
                    "useNativeRoles": True,
                    "grants": [
                        {"level": "procedure", "database": "d", "procedure": "p", "privileges": ["EXECUTE"]},
                        {"level": "table", "database": "d", "table": "t", "privileges": ["SELECT"]},
                    ],
                },
            )
        ],
        "DatabaseRole",
        "readers",
        {
            "mysql": {
                "useNativeRoles": True,
                "grants": [
                    {"level": "database", "database": "d", "privileges": ["EXECUTE"]},
                    {"level": "table", "database": "d", "table": "t", "privileges": ["SELECT"]},
                ],
            }
        },
        [("spec.mysql.grants", "changed")],
    ),
    *[
        Case(
            f"a role with {attribute} true is refused (held back): adopting it would take the attribute away",
            [with_spec(ROLE, postgres={attribute: True, "inherit": True})],
            "DatabaseRole",
            "readers",
            None,
            [(f"spec.postgres.{attribute}", "refused")],
        )
        for attribute in ("superuser", "createRole", "replication", "bypassRLS", "login")
    ],
    Case(
        "a role the Go operator emulated with a locked account (useNativeRoles false) is refused",
        [with_spec(MARIA_ROLE, mysql={"useNativeRoles": False})],
        "DatabaseRole",
        "readers",
        None,
        [("spec.mysql.useNativeRoles", "refused")],
    ),
    Case(
        "a role on a cluster-scoped instance is refused",
        [go("DatabaseRole", "readers", {"clusterInstanceRef": {"name": "shared"}, "roleName": "r"})],
        "DatabaseRole",
        "readers",
        None,
        [("spec.clusterInstanceRef", "refused")],
    ),
    Case(
        "a role on an instance of another namespace is refused",
        [with_spec(ROLE, instanceRef={"name": "pg", "namespace": "infra"})],
        "DatabaseRole",
        "readers",
        None,
        [("spec.instanceRef.namespace", "refused")],
    ),
    Case(
        "a role the Go status says was never created is not adopted",
        [{**ROLE, "status": {"phase": "Failed"}}],
        "DatabaseRole",
        "readers",
        {"roleName": "readers_role"},
        [("spec.adopt", "action")],
    ),
    Case(
        "a grant by roleRef names the converted DatabaseRole claim; its default privileges move to the Database",
        [
            DATABASE,
            ROLE,
            go(
                "DatabaseGrant",
                "g",
                {
                    "roleRef": {"name": "readers", "namespace": "default"},
                    "postgres": {
                        "defaultPrivileges": [
                            {
                                "database": "appdb",
                                "schema": "public",
                                "objectType": "tables",
                                "privileges": ["SELECT"],
                            }
                        ],
                    },
                },
            ),
        ],
        "DatabaseGrant",
        "g",
        {"roleRef": {"name": "readers"}, "adopt": True},
        [("spec.postgres.defaultPrivileges[0]", "changed")],
    ),
    Case(
        "a grant by roleRef to a held-back role names the role in the server; default privileges to the Database",
        [
            DATABASE,
            with_spec(ROLE, postgres={"superuser": True}),
            go(
                "DatabaseGrant",
                "g",
                {
                    "roleRef": {"name": "readers"},
                    "postgres": {
                        "grants": [
                            {
                                "database": "appdb",
                                "schema": "public",
                                "tables": ["*"],
                                "privileges": ["SELECT"],
                            }
                        ],
                        "defaultPrivileges": [
                            {
                                "database": "appdb",
                                "schema": "public",
                                "objectType": "tables",
                                "privileges": ["SELECT"],
                                "grantedBy": "owner",
                            }
                        ],
                    },
                },
            ),
        ],
        "DatabaseGrant",
        "g",
        {"roleName": "readers_role", "instanceRef": {"name": "pg"}, "adopt": True},
        [("spec.roleRef", "changed"), ("spec.postgres.defaultPrivileges[0]", "changed")],
    ),
    Case(
        "a grant by roleRef to a role held back for its instance's namespace is refused too",
        [
            with_spec(ROLE, instanceRef={"name": "pg", "namespace": "infra"}),
            go("DatabaseGrant", "g", {"roleRef": {"name": "readers"}, "postgres": {"roles": ["x"]}}),
        ],
        "DatabaseGrant",
        "g",
        None,
        [("spec.roleRef", "refused")],
    ),
    Case(
        "a grant by roleRef to a role held back for its cluster-scoped instance, without databaseRef, is refused",
        [
            go("DatabaseRole", "readers", {"clusterInstanceRef": {"name": "shared"}, "roleName": "r"}),
            go("DatabaseGrant", "g", {"roleRef": {"name": "readers"}, "postgres": {"roles": ["x"]}}),
        ],
        "DatabaseGrant",
        "g",
        None,
        [("spec.roleRef", "refused")],
    ),
    Case(
        "a user's postgres.inRoles that are converted roles of its instance become roleRefs; the others stay",
        [
            ROLE,
            go(
                "DatabaseRole",
                "admins",
                {"instanceRef": {"name": "pg"}, "roleName": "admins", "postgres": {"superuser": True}},
            ),
            go("DatabaseRole", "elsewhere", {"instanceRef": {"name": "other"}, "roleName": "other_role"}),
            with_spec(USER, postgres={"inRoles": ["readers_role", "admins", "other_role", "by_hand"]}),
        ],
        "DatabaseUser",
        "app",
        {"roleRefs": [{"name": "readers"}], "postgres": {"inRoles": ["admins", "other_role", "by_hand"]}},
        [("spec.postgres.inRoles", "changed"), ("spec.passwordSecret.secretName", "action")],
    ),
    Case(
        "Go PostgreSQL grants as the Go operator applied them: schema entries mean all tables plus USAGE",
        [
            go(
                "DatabaseGrant",
                "g",
                {
                    "userRef": {"name": "app"},
                    "postgres": {
                        "grants": [
                            {"database": "appdb", "privileges": ["CONNECT"]},
                            {
                                "database": "appdb",
                                "schema": "public",
                                "privileges": ["SELECT", "INSERT", "CREATE"],
                            },
                            {"database": "appdb", "schema": "s", "sequences": ["q"], "privileges": ["USAGE"]},
                        ]
                    },
                },
            )
        ],
        "DatabaseGrant",
        "g",
        {
            "postgres": {
                "grants": [
                    {
                        "database": "appdb",
                        "schema": "public",
                        "tables": ["*"],
                        "privileges": ["SELECT", "INSERT"],
                    },
                    {"database": "appdb", "schema": "public", "privileges": ["USAGE"]},
                    {"database": "appdb", "schema": "s", "sequences": ["q"], "privileges": ["USAGE"]},
                ]
            }
        },
        [("spec.postgres.grants", "changed")],
    ),
    Case(
        "a grant whose DatabaseRole is not in the input is refused",
        [go("DatabaseGrant", "g", {"roleRef": {"name": "readers"}, "postgres": {"roles": ["x"]}})],
        "DatabaseGrant",
        "g",
        None,
        [("spec.roleRef", "refused")],
    ),
    Case(
        "a field dbops lacks and no rule names is left out, never passed on",
        [with_spec(USER, futureField={"a": 1})],
        "DatabaseUser",
        "app",
        {"username": "app"},
        [("spec.futureField", "left out"), ("spec.passwordSecret.secretName", "action")],
    ),
    Case(
        "a converted spec dbops refuses (a value out of bounds) is refused with dbops' message",
        [with_spec(USER, postgres={"connectionLimit": -5})],
        "DatabaseUser",
        "app",
        None,
        [("spec.postgres.connectionLimit", "refused"), ("spec.passwordSecret.secretName", "action")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.reason for c in CASES])
def test_conversion(case: Case) -> None:
    result = convert(case.given)
    label = f"{case.kind}/default/{case.name}"
    found = [d for d in result.documents if d["kind"] == case.kind and d["metadata"]["name"] == case.name]
    notes = sorted((n.path, n.what) for n in result.notes if n.obj == label)
    assert notes == sorted(case.notes), result.report()
    if case.spec is None:
        assert found == [], "a refused object is not in the output"
        return
    (doc,) = found
    assert doc["apiVersion"] == API_VERSION
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    assert _subset(case.spec, doc["spec"]), (case.spec, doc["spec"])
    _, errors = normalize(SPECS[case.kind], doc["spec"], "spec")
    assert errors == [], "every claim in the output is one dbops accepts"


def test_default_privileges_moved_from_a_grant_land_on_the_database_with_the_grantee() -> None:
    grant = go(
        "DatabaseGrant",
        "g",
        {
            "userRef": {"name": "app"},
            "postgres": {
                "defaultPrivileges": [
                    {
                        "database": "appdb",
                        "schema": "s",
                        "objectType": "sequences",
                        "privileges": ["USAGE"],
                        "grantedBy": "owner",
                    }
                ]
            },
        },
    )
    result = convert([DATABASE, with_spec(USER, username="app_login"), grant])
    (database,) = [d for d in result.documents if d["kind"] == "Database"]
    assert database["spec"]["postgres"]["defaultPrivileges"] == [
        {
            "role": "app_login",
            "schema": "s",
            "objectType": "sequences",
            "privileges": ["USAGE"],
            "forRole": "owner",
        }
    ]


def test_adopt_is_set_on_databases_users_and_grants_never_on_an_instance() -> None:
    grant = go("DatabaseGrant", "g", {"userRef": {"name": "app"}, "postgres": {"roles": ["readers"]}})
    result = convert([INSTANCE, DATABASE, USER, grant])
    adopted = {d["kind"]: d["spec"].get("adopt") for d in result.documents}
    assert adopted == {
        "DatabaseInstance": None,
        "Database": True,
        "DatabaseUser": True,
        "DatabaseGrant": True,
    }


def test_go_only_kinds_are_refused_with_the_reason_and_secrets_lose_their_go_owner() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-credentials",
            "namespace": "default",
            "uid": "u",
            "resourceVersion": "7",
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "DatabaseUser",
                    "name": "app",
                    "uid": "x",
                    "controller": True,
                }
            ],
        },
        "data": {"password": "c2VjcmV0"},
    }
    result = convert([secret, go("ClusterDatabaseInstance", "shared", {})])
    assert result.documents == [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-credentials", "namespace": "default"},
            "data": {"password": "c2VjcmV0"},
        }
    ]
    assert {(n.obj, n.what) for n in result.notes} == {
        ("ClusterDatabaseInstance/default/shared", "left out"),
        ("Secret/default/app-credentials", "action"),
    }
    assert "c2VjcmV0" not in result.report() and "secret" not in result.report().lower().split("secret/")[0]


def test_every_rule_names_a_go_field_of_the_pinned_crds_or_a_path_the_go_docs_use() -> None:
    """The table speaks of real Go fields: a typo would silently never match."""
    docs_only = {
        "spec.connection.sslMode",
        "spec.connection.tls",
    }  # the Go docs' own paths (docs/compatibility.md)
    for kind, rules in RULES.items():
        go_paths = {f["path"] for f in GO_FIELDS[kind]["fields"]}
        for path, rule in rules.items():
            assert path in go_paths or path in docs_only, f"{kind} {path}"
            assert isinstance(rule, Drop | Move | Defer | Refuse)
            if isinstance(rule, Refuse):
                assert path in {p for p, *_ in _dbops_paths(kind)}, f"{kind} {path}: refused, so dbops has it"
            if isinstance(rule, Move):
                assert rule.to in {p for p, *_ in _dbops_paths(kind)}, f"{kind} {path} -> {rule.to}"


def test_the_command_prints_claims_to_stdout_and_the_report_to_stderr(tmp_path: Path) -> None:
    given = tmp_path / "go.yaml"
    given.write_text(
        yaml.safe_dump_all([INSTANCE, with_spec(USER, roles=["r"]), go("DatabaseBackup", "b", {})])
    )
    out, err = io.StringIO(), io.StringIO()
    from dbops_local import migrate_operator

    status = migrate_operator.main(["-f", str(given)], out, err)
    assert status == 0, "a kind dbops lacks is left out, not refused"
    kinds = [d["kind"] for d in yaml.safe_load_all(out.getvalue())]
    assert kinds == ["DatabaseInstance", "DatabaseUser"]
    report = err.getvalue().splitlines()
    assert report[0] == "converted 2 object(s), refused 0, left out 1; 3 note(s) (see docs/compatibility.md)"
    assert report[1].startswith("DatabaseBackup/default/b: left out: a run of the Go operator's")
    assert any(
        line.startswith("DatabaseUser/default/app spec.roles: left out: the Go operator never read it")
        for line in report
    )


def test_a_kubectl_list_is_read_as_its_items(tmp_path: Path) -> None:
    given = tmp_path / "go.yaml"
    given.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [INSTANCE, DATABASE]}))
    out, err = io.StringIO(), io.StringIO()
    from dbops_local import migrate_operator

    assert migrate_operator.main(["-f", str(given)], out, err) == 0
    assert [d["kind"] for d in yaml.safe_load_all(out.getvalue())] == ["DatabaseInstance", "Database"]


def test_dbops_local_dispatches_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    given = tmp_path / "go.yaml"
    given.write_text(yaml.safe_dump(INSTANCE))
    assert cli.main(["migrate-from-operator", "-f", str(given)]) == 0
    captured = capsys.readouterr()
    assert next(yaml.safe_load_all(captured.out))["kind"] == "DatabaseInstance"
    assert captured.err.startswith("converted 1 object(s), refused 0, left out 0; 0 note(s)")


def test_notes_read_as_one_line_each() -> None:
    assert (
        str(Note("Database/default/d", "spec.initSQL", "left out", "why"))
        == "Database/default/d spec.initSQL: left out: why"
    )
    assert (
        str(Note("DatabaseBackup/default/b", "-", "refused", "why"))
        == "DatabaseBackup/default/b: refused: why"
    )


def _dbops_paths(kind: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(schema: Any, path: str) -> None:
        out.append((path, schema))
        for key, sub in (schema.get("properties") or {}).items():
            walk(sub, f"{path}.{key}")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], path + "[]")

    walk(SPECS[kind], "spec")
    return out


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in want.items())
    return bool(want == got)


def test_default_privileges_of_a_grant_by_role_ref_name_the_role_in_the_server() -> None:
    grant = go(
        "DatabaseGrant",
        "g",
        {
            "roleRef": {"name": "readers"},
            "postgres": {
                "defaultPrivileges": [
                    {"database": "appdb", "schema": "s", "objectType": "tables", "privileges": ["SELECT"]}
                ]
            },
        },
    )
    result = convert([DATABASE, ROLE, grant])
    (database,) = [d for d in result.documents if d["kind"] == "Database"]
    assert database["spec"]["postgres"]["defaultPrivileges"] == [
        {"role": "readers_role", "schema": "s", "objectType": "tables", "privileges": ["SELECT"]}
    ]


def test_a_held_back_role_is_reported_with_why_and_what_to_do_and_the_command_fails(tmp_path: Path) -> None:
    given = tmp_path / "go.yaml"
    given.write_text(yaml.safe_dump_all([INSTANCE, with_spec(ROLE, postgres={"superuser": True})]))
    out, err = io.StringIO(), io.StringIO()
    from dbops_local import migrate_operator

    assert migrate_operator.main(["-f", str(given)], out, err) == 1
    assert [d["kind"] for d in yaml.safe_load_all(out.getvalue())] == ["DatabaseInstance"]
    report = err.getvalue().splitlines()
    assert report[0].startswith("converted 1 object(s), refused 1, left out 0;")
    (line,) = [r for r in report if r.startswith("DatabaseRole/default/readers")]
    assert line.startswith(
        "DatabaseRole/default/readers spec.postgres.superuser: refused: dbops' DatabaseRole never"
    )
    assert "held back" in line and "convert again" in line


def test_every_go_database_role_field_is_converted_as_the_compatibility_table_says() -> None:
    """docs/compatibility.md's rows for DatabaseRole: a refused field holds the role back (a Refuse rule, its value
    dbops accepts carried over), a missing one is left out with its reason, an alias is moved to its target, and a
    field at the same path is carried (possibly converted) and never left out."""
    from tools.compat.compat_doc import load_go_fields, load_verdicts, rows

    rules = RULES["DatabaseRole"]

    def rule_at_or_above(path: str) -> tuple[str, Any] | None:
        while True:
            if path in rules:
                return path, rules[path]
            if "." not in path:
                return None
            path = path.rsplit(".", 1)[0].removesuffix("[]")

    kind_rows = [r for r in rows(load_go_fields(), load_verdicts()) if r.kind == "DatabaseRole"]
    assert len(kind_rows) == len(GO_FIELDS["DatabaseRole"]["fields"])
    for row in kind_rows:
        path, verdict = row.go["path"], row.verdict["verdict"]
        found = rule_at_or_above(path)
        rule = found[1] if found else None
        if verdict == "refused":
            assert isinstance(rule, Refuse), path
        elif verdict == "missing":
            assert isinstance(rule, Drop), path
        elif verdict == "alias":
            assert isinstance(rule, Move) and found is not None and rule.to != found[0], path
        else:
            assert verdict in ("same", "different"), (path, verdict)
            assert not isinstance(rule, Drop | Refuse), path
            if isinstance(rule, Move) and found is not None:
                assert rule.to == found[0], path  # converted in place, never moved elsewhere
