"""Helpers shared by the PostgreSQL adapter tests (no tests here): unique names, worker runs, catalog reads."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg2
import pytest

from tests.conftest import OWNER_NAME, unique
from tests.servers import Server, Statement, is_write
from worker.ownership import Owner


def require_log(pg: Server) -> None:
    if pg.log is None:
        pytest.skip("the server in DBOPS_TEST_POSTGRES_URL has no statement log we can read")


# An admin that may (superuser, or SET on the parameter) switches statement logging off for the one statement that
# carries a password verifier: the switch itself is still logged, so it stands for the hidden write (otherwise a
# password set again would look like "zero writes").
HIDDEN_WRITE = "SET LOCAL log_statement = 'none'"


def writes_during(pg: Server, action: Any) -> tuple[Any, list[Statement]]:
    """Run `action()` and return its value with the write statements the server logged meanwhile, a hidden
    (unlogged) password statement counted as its logging switch."""
    require_log(pg)
    assert pg.log is not None
    mark = pg.log.mark()
    value = action()
    logged = pg.log.since(mark)
    return value, [s for s in logged if is_write(s.text) or s.text.strip().startswith(HIDDEN_WRITE)]


def log_text_during(pg: Server, action: Any) -> tuple[Any, str]:
    require_log(pg)
    assert pg.log is not None
    mark = pg.log.mark()
    value = action()
    return value, pg.log.text_since(mark)


def one(pg: Server, sql: str, params: Any = None, database: str | None = None) -> Any:
    rows = pg.query(sql, params, database=database)
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def can_login(pg: Server, user: str, password: str, database: str | None = None) -> bool:
    try:
        conn = pg.connect(user=user, password=password, database=database)
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def as_user(pg: Server, user: str, password: str, sql: str, database: str | None = None) -> tuple[bool, str]:
    """Run a statement as a user: (succeeded, error message). A refused login counts as a failure."""
    try:
        conn = pg.connect(user=user, password=password, database=database)
    except psycopg2.OperationalError as exc:
        return False, str(exc)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return True, ""
    except psycopg2.Error as exc:
        return False, exc.diag.message_primary or str(exc)
    finally:
        conn.close()


def make_role(pg: Server, prefix: str, attributes: str = "LOGIN") -> tuple[str, str]:
    """A role created by hand (not by dbops), with a password."""
    name = unique(prefix)
    password = secrets.token_urlsafe(16)
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            # The session stops logging first, so the test password stays out of the statement log that the
            # leak tests read.
            cur.execute("SET log_statement = 'none'")
            cur.execute(f"CREATE ROLE {name} {attributes} PASSWORD %s", (password,))
    finally:
        conn.close()
    return name, password


def mark(pg: Server, kind: str, name: str, owner: str = OWNER_NAME) -> None:
    """Give a hand-made role (`kind` ROLE) or database (DATABASE) the marker dbops writes for the claim
    default/<owner>: the object then counts as one dbops created for that claim."""
    marker = Owner("DatabaseUser" if kind == "ROLE" else "Database", "default", owner).marker
    execute(pg, f"COMMENT ON {kind} {name} IS '{marker}'")


def comment(pg: Server, kind: str, name: str) -> str | None:
    """The comment on a role (`kind` pg_authid) or database (pg_database): dbops' ownership marker."""
    catalog, column = ("pg_authid", "rolname") if kind == "pg_authid" else ("pg_database", "datname")
    rows = pg.query(f"SELECT shobj_description(oid, '{catalog}') FROM {catalog} WHERE {column} = %s", (name,))
    return rows[0][0] if rows else None


def execute(pg: Server, *statements: str, database: str | None = None) -> None:
    """Statements run by hand as the admin (the 'someone changed it outside dbops' in tests)."""
    conn = pg.connect(database=database)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


def admin_env(user: str, password: str) -> dict[str, str]:
    return {"DBOPS_ADMIN_USERNAME": user, "DBOPS_ADMIN_PASSWORD": password}


def statements(writes: list[Statement]) -> list[str]:
    """The write statements' text without transaction control and without dbops' memory of what it granted
    (`memory_writes` shows those)."""
    return [w.text for w in writes if w.text not in ("BEGIN", "COMMIT") and "_dbops" not in w.text]


def memory_writes(writes: list[Statement]) -> list[str]:
    """The statements that wrote dbops' memory of what it granted (the `_dbops` schema)."""
    return [w.text for w in writes if "_dbops" in w.text]
