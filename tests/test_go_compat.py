"""db-provision-operator fields dbops reads under its own names (aliases), and those it refuses with why
(dbops_api/go_compat.py, docs/compatibility.md)."""

from __future__ import annotations

from typing import Any

import pytest

from dbops_api.go_compat import go_duration_seconds, reference_namespace_errors, resolve_aliases
from dbops_api.registry import SPECS
from dbops_api.validation import normalize
from function.jobs.connection import server_access
from function.spec.validation import schema_walk


def mysql_instance(**mysql: Any) -> dict[str, Any]:
    return {
        "engine": "mariadb",
        "connection": {"host": "db", "port": 3306, "secretRef": {"name": "admin"}},
        "mysql": mysql,
    }


def test_go_durations_in_seconds() -> None:
    assert [go_duration_seconds(t) for t in ("10s", "1m30s", "2h", "1500ms")] == [10, 90, 7200, 1.5]
    with pytest.raises(ValueError):
        go_duration_seconds("10")


def test_the_go_mysql_timeouts_are_read_as_dbops_timeouts_in_whole_seconds() -> None:
    spec = mysql_instance(timeout="5s", readTimeout="1m", writeTimeout="30s", parseTime=True)
    value, errors = schema_walk("DatabaseInstance", spec)
    assert errors == []
    assert value["mysql"]["timeouts"] == {"connect": 5, "read": 60, "write": 30}
    assert "timeout" not in value["mysql"] and "readTimeout" not in value["mysql"]
    access = server_access(value)
    assert (access.connection["connectTimeout"], access.connection["readTimeout"]) == (5, 60)
    assert spec["mysql"]["timeout"] == "5s", "the caller's spec is left alone"


def test_an_alias_and_its_dbops_field_set_alike_are_fine_and_set_apart_are_refused_naming_both() -> None:
    assert (
        resolve_aliases("DatabaseInstance", mysql_instance(timeout="10s", timeouts={"connect": 10}))[1] == []
    )
    _, errors = resolve_aliases("DatabaseInstance", mysql_instance(timeout="5s", timeouts={"connect": 10}))
    assert [str(e) for e in errors] == [
        "spec.mysql.timeout: spec.mysql.timeout (5s) and spec.mysql.timeouts.connect (10) are both set and "
        "differ; set one of them (spec.mysql.timeouts.connect is dbops' name)"
    ]


@pytest.mark.parametrize("value", ["1500ms", "0s", "301s", "10m"])
def test_a_go_timeout_dbops_cannot_take_is_refused_saying_what_to_write(value: str) -> None:
    _, errors = schema_walk("DatabaseInstance", mysql_instance(timeout=value))
    assert [str(e) for e in errors] == [
        f"spec.mysql.timeout: dbops reads it as spec.mysql.timeouts.connect, whole seconds from 1 to 300; "
        f"'{value}' is not (write e.g. \"10s\", or spec.mysql.timeouts.connect: 10)"
    ]


def test_a_timeout_that_is_no_go_duration_is_refused_by_the_schema() -> None:
    _, errors = normalize(SPECS["DatabaseInstance"], mysql_instance(timeout="10 seconds"), "spec")
    assert [e.path for e in errors] == ["spec.mysql.timeout"]


SPEC_CASES = [
    ("DatabaseInstance", {"discovery": {"enabled": False, "interval": "30m"}}, []),
    (
        "DatabaseInstance",
        {"discovery": {"enabled": True}},
        ["spec.discovery.enabled: dbops discovers and adopts"],
    ),
    ("Database", {"driftPolicy": {"mode": "correct", "interval": "8h"}}, []),
    ("Database", {"driftPolicy": {"mode": "detect"}}, []),
    ("DatabaseUser", {"driftPolicy": {}}, []),  # no mode: detect, as in the Go CRD
    ("DatabaseGrant", {"driftPolicy": {"mode": "ignore"}}, []),
    ("DatabaseInstance", {"driftPolicy": {"mode": "sometimes"}}, ["spec.driftPolicy.mode: must be one of"]),
    ("Database", {"initSQL": {"inline": ["CREATE TABLE t (id int)"]}}, ["spec.initSQL: dbops runs no SQL"]),
    ("Database", {"initSQL": {"failurePolicy": "Block"}}, []),  # no SQL: nothing to run, nothing to refuse
    (
        "Database",
        {"deletionPolicy": "Snapshot"},
        ["spec.deletionPolicy: deletionPolicy Snapshot: dbops takes no"],
    ),
    (
        "DatabaseUser",
        {"clusterInstanceRef": {"name": "shared"}},
        ["spec.clusterInstanceRef.name: dbops has no cluster-scoped instance"],
    ),
]
BASE = {
    "DatabaseInstance": {
        "engine": "postgres",
        "connection": {"host": "db", "port": 5432, "secretRef": {"name": "a"}},
    },
    "Database": {"instanceRef": {"name": "i"}, "name": "app"},
    "DatabaseUser": {"instanceRef": {"name": "i"}, "username": "app"},
    "DatabaseGrant": {"roleName": "app", "instanceRef": {"name": "i"}},
}


@pytest.mark.parametrize(("kind", "extra", "want"), SPEC_CASES)
def test_go_fields_are_accepted_where_they_mean_what_dbops_does_and_refused_with_why(
    kind: str, extra: dict[str, Any], want: list[str]
) -> None:
    _, errors = normalize(SPECS[kind], {**BASE[kind], **extra}, "spec")
    assert len(errors) == len(want) and all(
        str(e).startswith(w) for e, w in zip(errors, want, strict=True)
    ), [str(e) for e in errors]


def test_a_reference_namespace_is_accepted_only_when_it_is_the_claims_own() -> None:
    spec = {"userRef": {"name": "u", "namespace": "team"}, "databaseRef": {"name": "d", "namespace": "team"}}
    assert reference_namespace_errors("DatabaseGrant", spec, "team") == []
    [error] = reference_namespace_errors(
        "DatabaseGrant", {**spec, "databaseRef": {"name": "d", "namespace": "x"}}, "team"
    )
    assert str(error) == (
        "spec.databaseRef.namespace: cross-namespace references are not supported yet: dbops looks databaseRef up "
        "in the claim's own namespace team, not in x; remove the namespace and create the Database claim in the "
        "claim's namespace team"
    )
    user = {"existingPasswordSecret": {"name": "pw", "namespace": "vault"}}
    assert [e.path for e in reference_namespace_errors("DatabaseUser", user, "team")] == [
        "spec.existingPasswordSecret.namespace"
    ]
    instance = {"connection": {"secretRef": {"name": "admin", "namespace": "db"}}}
    assert [e.path for e in reference_namespace_errors("DatabaseInstance", instance, "team")] == [
        "spec.connection.secretRef.namespace"
    ]
