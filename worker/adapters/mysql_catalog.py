"""dbops' catalog on a MySQL/MariaDB server: which claim owns each account and database dbops manages.

MariaDB 10.11 keeps no comment or attribute on an account (MySQL 8.0.21+ has `ATTRIBUTE`, MariaDB nothing), and
MySQL 8 databases have no comment (MariaDB 10.5+ has one). One small table serves both flavors the same way:
`_dbops.owners`, one row per account (`user`@`host`) or database, naming the owning claim and, for accounts, the
revision of the password dbops last set (MySQL 8 needs it where no login can check a password). docs/worker-mysql.md
says why a table and what it costs.

Reading it is one more part of the union each handler already sends (no extra query on a converged object). The
table is created on first use; until then the union fails with 1146/1049 and the handler reads again without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dbops_api.system import MYSQL_CATALOG
from worker.adapters.base import Step
from worker.adapters.mysql_sql import Account, Sql, row

# Constant, so the no-op path needs no identifier quoting (which loads SQLAlchemy's dialect).
TABLE = f"`{MYSQL_CATALOG}`.`owners`"
MISSING = (1146, 1049)  # no such table / database: the catalog was never created (or was dropped)
ACCOUNT = "account"
DATABASE = "database"


@dataclass(frozen=True)
class Entry:
    owner: str
    password_revision: str | None = None


def part(object_type: str, name: str) -> tuple[str, list[Any]]:
    """The union part reading the catalog rows of one account name (every host) or one database."""
    return (
        row(
            "catalog",
            ["host", "owner", "password_revision"],
            f"FROM {TABLE} WHERE object_type = %s AND object_name = %s",
        ),
        [object_type, name],
    )


def entries(rows: list[tuple[Any, ...]]) -> dict[str, Entry]:
    """Catalog rows of a union result by host ('' for a database)."""
    return {
        str(r[1] or ""): Entry(str(r[2]), None if r[3] is None else str(r[3]))
        for r in rows
        if r[0] == "catalog"
    }


def create_steps() -> list[Step]:
    """The catalog itself, before its first row (both statements are no-ops when it exists)."""
    return [
        Sql()
        .add(f"CREATE DATABASE IF NOT EXISTS `{MYSQL_CATALOG}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        .step("dbops' catalog of the accounts and databases it manages does not exist yet"),
        Sql()
        .add(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "object_type VARCHAR(16) NOT NULL, object_name VARCHAR(128) NOT NULL, "
            "host VARCHAR(255) NOT NULL DEFAULT '', owner VARCHAR(600) NOT NULL, "
            "password_revision VARCHAR(64) NULL, PRIMARY KEY (object_type, object_name, host)"
            ") ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
        .step("dbops' catalog of the accounts and databases it manages does not exist yet"),
    ]


def mark_step(
    object_type: str, name: str, host: str, owner: str, reason: str, *, revision: str | None = None
) -> Step:
    """Record `owner` (and the password revision, when one was set) for an account or database."""
    sql = Sql().add(
        f"INSERT INTO {TABLE} (object_type, object_name, host, owner, password_revision) VALUES ("
    )
    sql.value(object_type).add(",").value(name).add(",").value(host).add(",").value(owner).add(",")
    sql.value(revision).add(") ON DUPLICATE KEY UPDATE owner = VALUES(owner)")
    if revision is not None:
        sql.add(", password_revision = VALUES(password_revision)")
    return sql.step(reason)


def revision_step(account: Account, revision: str, reason: str) -> Step:
    return (
        Sql()
        .add(f"UPDATE {TABLE} SET password_revision =")
        .value(revision)
        .add("WHERE object_type =")
        .value(ACCOUNT)
        .add("AND object_name =")
        .value(account.user)
        .add("AND host =")
        .value(account.host or "")
        .step(reason)
    )


def forget_step(object_type: str, name: str, hosts: list[str], reason: str) -> Step:
    """Remove the rows of objects dbops dropped."""
    sql = Sql().add(f"DELETE FROM {TABLE} WHERE object_type =").value(object_type)
    sql.add("AND object_name =").value(name).add("AND host IN (")
    for i, host in enumerate(hosts):
        if i:
            sql.add(",")
        sql.value(host)
    return sql.add(")").step(reason)
