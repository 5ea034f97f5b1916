"""Statement building shared by the MySQL/MariaDB handlers: quoting, account names, flavor facts and `Step`s.

Every identifier goes through SQLAlchemy's MySQL identifier preparer (always back-quoted); every value, account
names included, is a bound `%s` parameter that PyMySQL escapes client-side. So the SQL text holds only keywords,
quoted identifiers and placeholders, and never a literal `%` that the driver could misread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pymysql.converters import escape_string

from worker.adapters.base import ServerInfo, Step

REDACTED = "'***'"

MIN_MARIADB: tuple[int, ...] = (10, 5)
MIN_MYSQL: tuple[int, ...] = (8, 0)


@cache
def _preparer() -> Any:
    # Imported on first use: SQLAlchemy's dialect is the largest import of the worker, and a converged object
    # (a no-op apply) never needs to quote an identifier, so it never pays for it.
    from sqlalchemy.dialects.mysql.pymysql import dialect

    return dialect().identifier_preparer


def ident(name: str) -> str:
    """A back-quoted identifier."""
    return str(_preparer().quote_identifier(name))


def is_mariadb(info: ServerInfo) -> bool:
    return info.flavor == "mariadb"


def parse_version(reported: str) -> ServerInfo:
    """ServerInfo from the handshake's version string. MariaDB prefixes `5.5.5-` for old clients' sake."""
    text = reported.removeprefix("5.5.5-")
    flavor = "mariadb" if "mariadb" in text.lower() else "mysql"
    numbers: list[int] = []
    for part in text.split("-", 1)[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return ServerInfo(flavor=flavor, version=text, version_tuple=tuple(numbers))


def unsupported(info: ServerInfo) -> str | None:
    """Why dbops cannot manage this server (None when it can)."""
    name, minimum = ("MariaDB", MIN_MARIADB) if is_mariadb(info) else ("MySQL", MIN_MYSQL)
    if info.version_tuple >= minimum:
        return None
    return (
        f"{name} {info.version} is not supported; dbops needs {name} {'.'.join(map(str, minimum))} or newer"
    )


def db_pattern(name: str, info: ServerInfo, partial_revokes: bool = False) -> str:
    """The database part of a database-level grant. `_` is a wildcard there, so `app_db`.* would also match
    `appXdb`; escaping it limits the grant to the one database. MySQL 8 with partial_revokes=ON reads names
    literally (an escape would become part of the name)."""
    if not is_mariadb(info) and partial_revokes:
        return name
    return name.replace("_", "\\_")


@dataclass(frozen=True, order=True)
class Account:
    """`'user'@'host'`, or a MariaDB role (no host part)."""

    user: str
    host: str | None

    @property
    def is_role(self) -> bool:
        return self.host is None

    def grantee(self) -> str:
        """How information_schema names it in GRANTEE columns."""
        return f"'{self.user}'@'{self.host or ''}'"

    def __str__(self) -> str:
        return self.grantee() if self.host is not None else f"'{self.user}'"


@dataclass
class Sql:
    """A statement under construction: text with `%s` placeholders and its parameters."""

    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def add(self, text: str) -> Sql:
        self.parts.append(text)
        return self

    def value(self, value: Any, secret: bool = False) -> Sql:
        self.parts.append("%s")
        self.params.append(value)
        if secret:
            self.secrets.append(str(value))
        return self

    def account(self, account: Account) -> Sql:
        if account.host is None:
            return self.add(ident(account.user))
        self.parts.append("%s@%s")
        self.params.extend((account.user, account.host))
        return self

    def accounts(self, accounts: Iterable[Account]) -> Sql:
        for i, account in enumerate(accounts):
            if i:
                self.add(",")
            self.account(account)
        return self

    def text(self) -> str:
        out = " ".join(self.parts)
        return out.replace(" ,", ",").replace("( ", "(").replace(" )", ")")

    def step(self, reason: str, secrets: Sequence[str] = ()) -> Step:
        sql = self.text()
        all_secrets = tuple(s for s in (*self.secrets, *secrets) if s)
        return Step(
            sql=sql,
            summary=render(sql, self.params, all_secrets),
            reason=reason,
            params=tuple(self.params) if self.params else None,
            secrets=all_secrets,
        )


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "'" + str(escape_string(str(value))) + "'"


def render(sql: str, params: Sequence[Any], secrets: Sequence[str] = ()) -> str:
    """The statement as a reader would type it, with every secret shown as '***'."""
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:
        raise ValueError(f"statement has {len(pieces) - 1} placeholders for {len(params)} parameters")
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:], strict=True):
        out.append(REDACTED if str(value) in secrets else literal(value))
        out.append(piece)
    return "".join(out)


def union(parts: Sequence[tuple[str, Sequence[Any]]]) -> tuple[str, list[Any]]:
    """One query from several `SELECT 'kind', c1..c5` parts (each observe is one round trip)."""
    params: list[Any] = []
    for _, values in parts:
        params.extend(values)
    return "\nUNION ALL ".join(sql for sql, _ in parts), params


WIDTH = 5  # value columns of every union part


def row(kind: str, columns: Sequence[str], source: str) -> str:
    """A union part: the kind tag, then `columns` converted to one character set (the catalogs mix ascii,
    utf8mb3 and binary columns, and UNION refuses to mix collations on MySQL), padded with NULLs."""
    if len(columns) > WIDTH:
        raise ValueError("too many columns for a union part")
    cols = [f"CONVERT({c} USING utf8mb4)" if c != "NULL" else "NULL" for c in columns]
    cols += ["NULL"] * (WIDTH - len(cols))
    return f"SELECT '{kind}', {', '.join(cols)} {source}"


def placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)
