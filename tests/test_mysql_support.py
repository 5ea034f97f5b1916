"""Helpers shared by the MySQL/MariaDB adapter tests (no tests here): unique names, worker runs, catalog reads."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from tests.conftest import OWNER_NAME
from tests.servers import Server, Statement, is_write
from worker.adapters import mysql_catalog
from worker.ownership import Owner


def require_log(maria: Server) -> None:
    if maria.log is None:
        pytest.skip("the server in DBOPS_TEST_MYSQL_URL has no statement log we can read")


# The worker switches the general log off around a statement that carries a password hash: the switch itself
# is logged, so it stands for the hidden write (otherwise a re-set password would look like "zero writes").
HIDDEN_WRITE = "SET SESSION sql_log_off = 1"


def writes_during(maria: Server, action: Callable[[], Any]) -> tuple[Any, list[Statement]]:
    """Run `action()` and return its value with the write statements the server logged meanwhile."""
    require_log(maria)
    assert maria.log is not None
    mark = maria.log.mark()
    value = action()
    statements = maria.log.since(mark)
    return value, [s for s in statements if is_write(s.text) or s.text.strip().startswith(HIDDEN_WRITE)]


def log_text_during(maria: Server, action: Callable[[], Any]) -> tuple[Any, str]:
    require_log(maria)
    assert maria.log is not None
    mark = maria.log.mark()
    value = action()
    return value, maria.log.text_since(mark)


def account(maria: Server, user: str, host: str = "%") -> dict[str, Any] | None:
    """The account's mysql.global_priv entry (MariaDB), or None when it does not exist."""
    rows = maria.query("SELECT Priv FROM mysql.global_priv WHERE User = %s AND Host = %s", (user, host))
    return json.loads(rows[0][0]) if rows else None


def hosts_of(maria: Server, user: str) -> list[str]:
    return sorted(r[0] for r in maria.query("SELECT Host FROM mysql.global_priv WHERE User = %s", (user,)))


_IDENTIFIED = re.compile(r" IDENTIFIED (BY PASSWORD|VIA \S+ USING) '[^']*'")


def show_grants(maria: Server, user: str, host: str | None = "%") -> list[str]:
    """SHOW GRANTS lines, without the credential MariaDB appends to the global line."""
    target = f"'{user}'@'{host}'" if host is not None else f"'{user}'"
    return [_IDENTIFIED.sub("", r[0]) for r in maria.query(f"SHOW GRANTS FOR {target}")]


def login(maria: Server, user: str, password: str, **kwargs: Any) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return maria.connect(user=user, password=password, **kwargs)


def can_login(maria: Server, user: str, password: str, **kwargs: Any) -> bool:
    try:
        login(maria, user, password, **kwargs).close()
    except pymysql.MySQLError:
        return False
    return True


def query_as(maria: Server, user: str, password: str, sql: str) -> list[tuple[Any, ...]]:
    conn = login(maria, user, password)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def denied(maria: Server, user: str, password: str, sql: str) -> bool:
    """Whether the server refuses `sql` for this user with an access error."""
    try:
        query_as(maria, user, password, sql)
    except pymysql.MySQLError as exc:
        if exc.args[0] in (1044, 1142, 1143, 1227, 1370):
            return True
        raise
    return False


def mark_account(maria: Server, user: str, host: str = "%", owner: str = OWNER_NAME) -> None:
    """Record a hand-made account in dbops' catalog as the claim default/<owner>'s: the account then counts as
    one dbops created for that claim."""
    _mark(maria, "account", user, host, Owner("DatabaseUser", "default", owner))


def mark_database(maria: Server, name: str, owner: str = OWNER_NAME) -> None:
    """Record a hand-made database in dbops' catalog as the claim default/<owner>'s."""
    _mark(maria, "database", name, "", Owner("Database", "default", owner))


def _mark(maria: Server, object_type: str, name: str, host: str, owner: Owner) -> None:
    for step in mysql_catalog.create_steps():  # a server of a test's own may not have the catalog yet
        maria.query(step.sql)
    maria.query(
        f"INSERT INTO {mysql_catalog.TABLE} (object_type, object_name, host, owner) VALUES (%s, %s, %s, %s)"
        " ON DUPLICATE KEY UPDATE owner = VALUES(owner)",
        (object_type, name, host, owner.marker),
    )


def catalog_rows(maria: Server, object_type: str, name: str) -> dict[str, tuple[str, str | None]]:
    """dbops' catalog rows of an account name (host -> (owner marker, password revision)) or database ('')."""
    rows = maria.query(
        f"SELECT host, owner, password_revision FROM {mysql_catalog.TABLE} WHERE object_type = %s AND "
        "object_name = %s",
        (object_type, name),
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def ensure_ed25519(maria: Server) -> None:
    rows = maria.query("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'")
    if not rows:
        maria.query("INSTALL SONAME 'auth_ed25519'")
