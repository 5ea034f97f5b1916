"""Database on a real MariaDB: character set and collation on create and change, idempotence, plan, drop."""

from __future__ import annotations

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_mysql_support import writes_during

pytestmark = pytest.mark.mariadb


def schema(maria: Server, name: str) -> tuple[str, str] | None:
    rows = maria.query(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
        "WHERE SCHEMA_NAME = %s",
        (name,),
    )
    return (rows[0][0], rows[0][1]) if rows else None


MARKED = (
    "INSERT INTO `_dbops`.`owners` (object_type, object_name, host, owner, password_revision) VALUES "
    "('database', '{name}', '', 'managed by dbops for Database default/test', NULL) "
    "ON DUPLICATE KEY UPDATE owner = VALUES(owner)"
)


def test_create_then_reapply_writes_nothing(maria: Server) -> None:
    name = unique("db")
    spec = {"name": name, "mysql": {"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}}
    first, writes = writes_during(maria, lambda: apply_ok(maria, "Database", spec))
    assert [w.text for w in writes] == [
        MARKED.format(name=name),  # first: a database dbops creates never lacks its marker
        f"CREATE DATABASE `{name}` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_unicode_ci`",
    ]
    assert schema(maria, name) == ("utf8mb4", "utf8mb4_unicode_ci")
    assert first.result["observed"] == {"name": name, "charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}
    second, writes = writes_during(maria, lambda: apply_ok(maria, "Database", spec))
    assert writes == []
    assert second.result["changes"] == []
    assert second.result["statements"] == {"reads": 1, "writes": 0}


def test_changing_the_collation_alters_only_that(maria: Server) -> None:
    name = unique("db")
    apply_ok(maria, "Database", {"name": name, "mysql": {"charset": "latin1"}})
    assert schema(maria, name) == ("latin1", "latin1_swedish_ci")
    spec = {"name": name, "mysql": {"charset": "utf8mb4", "collation": "utf8mb4_bin"}}
    result, writes = writes_during(maria, lambda: apply_ok(maria, "Database", spec))
    assert [w.text for w in writes] == [
        f"ALTER DATABASE `{name}` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_bin`"
    ]
    assert schema(maria, name) == ("utf8mb4", "utf8mb4_bin")
    assert result.result["observed"]["collation"] == "utf8mb4_bin"


def test_a_charset_alone_leaves_a_fitting_collation_alone(maria: Server) -> None:
    name = unique("db")
    apply_ok(maria, "Database", {"name": name, "mysql": {"charset": "utf8mb4", "collation": "utf8mb4_bin"}})
    _, writes = writes_during(
        maria, lambda: apply_ok(maria, "Database", {"name": name, "mysql": {"charset": "utf8mb4"}})
    )
    assert writes == []
    assert schema(maria, name) == ("utf8mb4", "utf8mb4_bin")


def test_short_collation_names_converge(maria: Server) -> None:
    if (
        maria.query(
            "SELECT COUNT(*) FROM information_schema.COLLATIONS WHERE COLLATION_NAME = 'uca1400_ai_ci'"
        )[0][0]
        == 0
    ):
        pytest.skip("this server has no uca1400 collations")
    name = unique("db")
    spec = {"name": name, "mysql": {"charset": "utf8mb4", "collation": "uca1400_ai_ci"}}
    apply_ok(maria, "Database", spec)
    assert schema(maria, name) == ("utf8mb4", "utf8mb4_uca1400_ai_ci")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "Database", spec))
    assert writes == []


def test_without_options_the_server_defaults_are_kept(maria: Server) -> None:
    name = unique("db")
    apply_ok(maria, "Database", {"name": name})
    assert schema(maria, name) is not None
    _, writes = writes_during(maria, lambda: apply_ok(maria, "Database", {"name": name}))
    assert writes == []


def test_plan_prints_and_writes_nothing(maria: Server) -> None:
    name = unique("db")
    spec = {"name": name, "mysql": {"charset": "utf8mb4"}}
    result, writes = writes_during(maria, lambda: run(maria, "plan", "Database", spec))
    assert result.code == 0, result.result
    assert writes == []
    assert schema(maria, name) is None
    assert (
        f"-- database {name} does not exist\nCREATE DATABASE `{name}` CHARACTER SET `utf8mb4`;"
        in result.stdout
    )
    assert result.result["changes"] == [
        MARKED.format(name=name),
        f"CREATE DATABASE `{name}` CHARACTER SET `utf8mb4`",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"charset": "klingon"}, "spec.mysql.charset: the server has no character set 'klingon'"),
        ({"collation": "nope_ci"}, "spec.mysql.collation: the server has no collation 'nope_ci'"),
        (
            {"charset": "latin1", "collation": "utf8mb4_bin"},
            "'utf8mb4_bin' does not belong to character set 'latin1'",
        ),
    ],
)
def test_bad_encodings_exit_2_and_change_nothing(
    maria: Server, options: dict[str, str], message: str
) -> None:
    name = unique("db")
    result, writes = writes_during(
        maria, lambda: run(maria, "apply", "Database", {"name": name, "mysql": options})
    )
    assert result.code == 2
    assert result.error["code"] == "InvalidSpec"
    assert message in result.error["message"]
    assert writes == []
    assert schema(maria, name) is None


def test_an_invalid_request_exits_2_before_connecting(maria: Server) -> None:
    result, writes = writes_during(maria, lambda: run(maria, "apply", "Database", {"name": "bad-name!"}))
    assert result.code == 2
    assert result.error["code"] == "InvalidRequest"
    assert "request.spec.name" in result.error["message"]
    assert result.result["server"] == {}  # no connection was made
    assert writes == []


def test_drop_removes_the_database_and_is_idempotent(maria: Server) -> None:
    name = unique("db")
    apply_ok(maria, "Database", {"name": name})
    result = run(maria, "drop", "Database", {"name": name})
    assert result.code == 0, result.result
    assert result.result["changes"] == [
        f"DROP DATABASE `{name}`",
        f"DELETE FROM `_dbops`.`owners` WHERE object_type = 'database' AND object_name = '{name}' AND host IN ('')",
    ]
    assert schema(maria, name) is None
    again, writes = writes_during(maria, lambda: run(maria, "drop", "Database", {"name": name}))
    assert again.code == 0 and writes == []


def test_drop_revokes_every_grant_on_the_database_so_a_new_one_of_that_name_is_not_open(maria: Server) -> None:
    """DROP DATABASE keeps the grants on the database and its objects: a database created again under the name
    would be open to the old accounts at once. dbops' drop revokes them first (never the admin's own)."""
    name = unique("old_db")
    apply_ok(maria, "Database", {"name": name})
    maria.query(f"CREATE TABLE `{name}`.t (a INT, b INT)")
    maria.query(f"CREATE PROCEDURE `{name}`.p() SELECT 1")
    user, password = unique("u"), "Dr0p-Pa55word-Example"
    maria.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
    pattern = name.replace("_", "\\_")
    for grant in (
        f"GRANT SELECT, INSERT ON `{pattern}`.* TO '{user}'@'%' WITH GRANT OPTION",
        f"GRANT UPDATE ON `{name}`.* TO '{user}'@'%'",  # the unescaped pattern, typed by hand
        f"GRANT DELETE ON `{name}`.t TO '{user}'@'%'",
        f"GRANT UPDATE (a) ON `{name}`.t TO '{user}'@'%'",
        f"GRANT EXECUTE ON PROCEDURE `{name}`.p TO '{user}'@'%'",
    ):
        maria.query(grant)
    other = unique("keep")
    maria.query(f"CREATE DATABASE `{other}`")
    maria.query(f"GRANT SELECT ON `{other}`.* TO '{user}'@'%'")

    result = run(maria, "drop", "Database", {"name": name})
    assert result.code == 0, result.result
    assert result.result["changes"][-2] == f"DROP DATABASE `{name}`"
    assert sorted(r[0] for r in maria.query(f"SHOW GRANTS FOR '{user}'@'%'") if "USAGE" not in r[0]) == [
        f"GRANT SELECT ON `{other}`.* TO `{user}`@`%`"
    ]
    # A database created again under the name is not open to the old account.
    maria.query(f"CREATE DATABASE `{name}`")
    maria.query(f"CREATE TABLE `{name}`.t (a INT)")
    conn = maria.connect(user=user, password=password)
    try:
        with conn.cursor() as cur, pytest.raises(Exception, match="denied"):
            cur.execute(f"SELECT * FROM `{name}`.t")
    finally:
        conn.close()
    maria.query(f"DROP DATABASE `{name}`")
    again, writes = writes_during(maria, lambda: run(maria, "drop", "Database", {"name": name}))
    assert again.code == 0 and writes == []
