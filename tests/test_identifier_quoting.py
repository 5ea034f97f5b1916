"""Identifiers named after keywords: quoted wherever a supported server version needs it, and created for real.

PostgreSQL needs quotes around every keyword that is not UNRESERVED; the worker's list (worker/adapters/
pg_keywords.py) covers PostgreSQL 13 to 17 and must include every such word the running server knows. MySQL and
MariaDB identifiers are always back-quoted, so every keyword of any version is safe there.
"""

from __future__ import annotations

import pytest

from tests.conftest import apply_ok
from tests.servers import Server
from worker.adapters import mysql_sql, pg_sql
from worker.adapters.pg_keywords import QUOTED_KEYWORDS


def test_every_keyword_the_postgres_server_reserves_is_quoted(pg: Server) -> None:
    rows = pg.query("SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'")
    server = {r[0] for r in rows}
    assert len(server) > 100
    assert server <= QUOTED_KEYWORDS, sorted(server - QUOTED_KEYWORDS)
    for word in sorted(server):
        assert pg_sql.ident(word) == f'"{word}"', word
    unreserved = pg.query("SELECT word FROM pg_get_keywords() WHERE catcode = 'U' AND word = 'database'")
    assert unreserved and pg_sql.ident("database") == "database", "unreserved keywords stay as they are"


@pytest.mark.parametrize("word", ["system_user", "json_table", "merge_action", "json_array"])
def test_keywords_of_newer_postgres_versions_are_quoted(word: str) -> None:
    """PostgreSQL 16 (system_user, json_array) and 17 (json_table, merge_action) reserve words the test server (15)
    does not: a role or database named so must still work there."""
    assert pg_sql.ident(word) == f'"{word}"'


@pytest.mark.parametrize("word", ["lateral", "system_user", "values"])
def test_postgres_objects_named_after_keywords_are_created(pg: Server, word: str) -> None:
    """`lateral` and `values` are keywords SQLAlchemy's own list misses; `system_user` is one from PostgreSQL 16."""
    pg.query(f'DROP DATABASE IF EXISTS "{word}"')
    try:
        apply_ok(pg, "Database", {"name": word})
        assert pg.query("SELECT 1 FROM pg_database WHERE datname = %s", (word,))
        spec = {"username": word, "database": word}
        apply_ok(pg, "DatabaseUser", spec, password="Keyword-Pass-1")
        assert pg.query("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (word,)) == [(True,)]
        assert apply_ok(pg, "DatabaseUser", spec, password="Keyword-Pass-1").result["changes"] == []
    finally:
        pg.query(f'DROP DATABASE IF EXISTS "{word}"')
        pg.query(f'DROP ROLE IF EXISTS "{word}"')


def test_every_mariadb_keyword_is_back_quoted(maria: Server) -> None:
    words = {r[0].lower() for r in maria.query("SELECT WORD FROM information_schema.KEYWORDS")}
    assert len(words) > 200
    for word in sorted(words):
        assert mysql_sql.ident(word) == f"`{word}`", word


@pytest.mark.parametrize("word", ["lateral", "window", "rank"])
def test_mariadb_databases_named_after_keywords_are_created(maria: Server, word: str) -> None:
    maria.query(f"DROP DATABASE IF EXISTS `{word}`")
    try:
        apply_ok(maria, "Database", {"name": word})
        assert maria.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (word,))
    finally:
        maria.query(f"DROP DATABASE IF EXISTS `{word}`")
