"""dbops_api.mysql_privileges: names per level, flavor and version; ALL expansion; spec checks (pure, no server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dbops_api.mysql_privileges import canonical, expand, level_privileges, resolve, spec_errors
from worker.errors import InvalidRequest
from worker.request import parse

MARIADB_10_11 = ("mariadb", (10, 11, 6))
MARIADB_11_4 = ("mariadb", (11, 4, 2))
MYSQL_8_0 = ("mysql", (8, 0, 36))
MYSQL_8_4 = ("mysql", (8, 4, 0))


def grant_spec(*grants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"grantee": "app", "database": "shop", "mysql": {"grants": list(grants)}, **extra}


def errors(engine: str, spec: dict[str, Any]) -> list[str]:
    return [str(e) for e in spec_errors("DatabaseGrant", engine, spec, "spec")]


def test_canonical_names_and_aliases() -> None:
    assert canonical("  create   view ") == "CREATE VIEW"
    assert canonical("all privileges") == "ALL"
    assert resolve("replication client", "mariadb") == "BINLOG MONITOR"
    assert resolve("replication client", "mysql") == "REPLICATION CLIENT"
    assert resolve("Replica Monitor", "mariadb") == "SLAVE MONITOR"


def test_database_level_all_differs_by_flavor() -> None:
    maria = level_privileges("database", *MARIADB_10_11)
    mysql = level_privileges("database", *MYSQL_8_0)
    assert "DELETE HISTORY" in maria and "DELETE HISTORY" not in mysql
    assert maria - {"DELETE HISTORY"} == mysql
    assert "SHOW CREATE ROUTINE" not in maria
    assert "SHOW CREATE ROUTINE" in level_privileges("database", *MARIADB_11_4)
    assert {"FILE", "SUPER", "PROCESS"}.isdisjoint(maria)


def test_level_sets_nest() -> None:
    for flavor, version in (MARIADB_10_11, MYSQL_8_0):
        column = level_privileges("column", flavor, version)
        table = level_privileges("table", flavor, version)
        database = level_privileges("database", flavor, version)
        glob = level_privileges("global", flavor, version)
        assert column == {"SELECT", "INSERT", "UPDATE", "REFERENCES"}
        assert column < table < database < glob
        assert level_privileges("procedure", flavor, version) == {"EXECUTE", "ALTER ROUTINE"}


def test_mysql_global_all_has_builtin_dynamic_privileges_only() -> None:
    glob = level_privileges("global", *MYSQL_8_0)
    assert {"BACKUP_ADMIN", "SYSTEM_VARIABLES_ADMIN", "CREATE ROLE"} <= glob
    assert "FIREWALL_ADMIN" not in glob  # a plugin's: nameable, never implied by ALL
    assert "SET_USER_ID" in glob and "SET_USER_ID" not in level_privileges("global", *MYSQL_8_4)
    assert "BINLOG ADMIN" not in glob  # MariaDB's spelling


def test_expand_all_and_names() -> None:
    names, problems = expand(["ALL"], "table", *MARIADB_10_11)
    assert problems == []
    assert names == level_privileges("table", *MARIADB_10_11)
    names, problems = expand(["select", "Replication Client"], "global", *MARIADB_10_11)
    assert names == {"SELECT", "BINLOG MONITOR"} and problems == []


@pytest.mark.parametrize(
    ("level", "names", "flavor", "message"),
    [
        ("table", ["FILE"], MARIADB_10_11, "FILE applies at level global, not at level table"),
        (
            "column",
            ["DELETE"],
            MYSQL_8_0,
            "DELETE applies at level global, database, table, not at level column",
        ),
        ("global", ["BACKUP_ADMIN"], MARIADB_10_11, "'BACKUP_ADMIN' is not a MariaDB privilege"),
        ("table", ["DELETE HISTORY"], MYSQL_8_0, "'DELETE HISTORY' is not a MySQL privilege"),
        (
            "database",
            ["SHOW CREATE ROUTINE"],
            MARIADB_10_11,
            "'SHOW CREATE ROUTINE' is not a MariaDB privilege",
        ),
        ("database", ["GRANT OPTION"], MARIADB_10_11, "set withGrantOption: true"),
        ("database", ["USAGE"], MYSQL_8_0, "use privileges: [] to hold none"),
    ],
)
def test_expand_reports_what_the_server_in_front_cannot_grant(
    level: str, names: list[str], flavor: tuple[str, tuple[int, ...]], message: str
) -> None:
    granted, problems = expand(names, level, *flavor)
    assert granted == frozenset()
    assert len(problems) == 1 and message in problems[0], problems


def test_spec_errors_accepts_a_valid_spec_on_both_engines() -> None:
    spec = grant_spec(
        {"level": "global", "privileges": ["PROCESS"]},
        {"level": "database", "privileges": ["ALL PRIVILEGES"], "withGrantOption": True},
        {"level": "table", "table": "orders", "privileges": ["SELECT", "DELETE HISTORY"]},
        {"level": "column", "table": "orders", "columns": ["id", "total"], "privileges": ["SELECT"]},
        {"level": "procedure", "procedure": "refund", "privileges": ["EXECUTE"]},
    )
    assert errors("mariadb", spec) == []
    # engine: mysql may front a MariaDB server, so MariaDB's names pass until the server is known.
    assert errors("mysql", spec) == []


@pytest.mark.parametrize(
    ("grant", "extra", "engine", "expected"),
    [
        (
            {"level": "table", "table": "t", "privileges": ["SELEKT"]},
            {},
            "mariadb",
            "spec.mysql.grants[0].privileges[0]: 'SELEKT' is not a MariaDB privilege; at level table use one of: ALL",
        ),
        (
            {"level": "global", "privileges": ["BACKUP_ADMIN"]},
            {},
            "mariadb",
            "'BACKUP_ADMIN' is not a MariaDB privilege",
        ),
        (
            {"level": "procedure", "procedure": "p", "privileges": ["SELECT"]},
            {},
            "mysql",
            "privileges[0]: SELECT applies at level global, database, table, column, not at level procedure",
        ),
        (
            {"level": "database", "privileges": ["ALL", "SELECT"]},
            {},
            "mysql",
            "spec.mysql.grants[0].privileges: ALL already includes every privilege; list ALL alone",
        ),
        (
            {"level": "database", "privileges": [], "withGrantOption": True},
            {},
            "mysql",
            "spec.mysql.grants[0].withGrantOption: needs at least one privilege",
        ),
        (
            {
                "level": "column",
                "table": "t",
                "columns": ["a"],
                "privileges": ["SELECT"],
                "withGrantOption": True,
            },
            {},
            "mariadb",
            "keep the grant option per table, not per column",
        ),
        (
            {"level": "database", "privileges": ["SELECT"]},
            {"database": None},
            "mariadb",
            "spec.mysql.grants[0].database: names no database and the grant has no databaseRef",
        ),
    ],
)
def test_spec_errors_name_the_field_and_the_fix(
    grant: dict[str, Any], extra: dict[str, Any], engine: str, expected: str
) -> None:
    spec = grant_spec(grant)
    for key, value in extra.items():
        if value is None:
            spec.pop(key)
    found = errors(engine, spec)
    assert any(expected in e for e in found), found


def test_two_entries_on_the_same_pair_are_refused() -> None:
    spec = grant_spec(
        {"level": "column", "table": "t", "columns": ["a", "B"], "privileges": ["SELECT"]},
        {"level": "column", "table": "t", "columns": ["b"], "privileges": ["UPDATE"]},
        {"level": "database", "database": "shop", "privileges": ["SELECT"]},
        {"level": "database", "privileges": ["INSERT"]},
    )
    found = errors("mariadb", spec)
    assert (
        "spec.mysql.grants[1]: names the same object as grants[0] (level column shop.t.b); merge the two entries"
        in found
    )
    assert any("grants[3]: names the same object as grants[2]" in e for e in found)


def test_claim_specs_use_databaseref_as_the_default_database() -> None:
    claim = {
        "userRef": {"name": "u"},
        "databaseRef": {"name": "db"},
        "mysql": {"grants": [{"level": "table", "table": "t", "privileges": ["SELECT"]}]},
    }
    assert errors("mariadb", claim) == []


def test_user_auth_plugin_must_exist_on_mariadb() -> None:
    spec = {"username": "u", "mysql": {"authPlugin": "caching_sha2_password"}}
    found = [str(e) for e in spec_errors("DatabaseUser", "mariadb", spec, "spec")]
    assert found == [
        "spec.mysql.authPlugin: caching_sha2_password is a MySQL 8 plugin; on MariaDB use "
        "mysql_native_password or ed25519"
    ]
    assert spec_errors("DatabaseUser", "mysql", spec, "spec") == []


def test_worker_request_validation_runs_the_privilege_checks() -> None:
    request = {
        "kind": "DatabaseGrant",
        "engine": "mariadb",
        "connection": {"host": "db", "port": 3306},
        "spec": grant_spec({"level": "table", "table": "t", "privileges": ["FILE"]}),
    }
    with pytest.raises(InvalidRequest) as info:
        parse(json.dumps(request), "apply")
    assert (
        "request.spec.mysql.grants[0].privileges[0]: FILE applies at level global, not at level table"
        in str(info.value)
    )
