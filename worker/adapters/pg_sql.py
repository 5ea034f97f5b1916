"""Building blocks of PostgreSQL plans: identifier quoting, statement summaries, and what a kind handler may ask
of the adapter (`Catalog`). No connection here, so plans built from these stay pure and unit-testable."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

from worker.adapters.base import ServerInfo, Step
from worker.adapters.pg_keywords import QUOTED_KEYWORDS
from worker.result import REDACTED

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")

Params = Sequence[Any] | dict[str, Any] | None


@cache
def _preparer() -> Any:
    # Imported on first use: SQLAlchemy's dialect is the largest import of the worker, and a converged object
    # (a no-op apply) never quotes an identifier, so it never pays for it.
    from sqlalchemy.dialects.postgresql.psycopg2 import dialect

    preparer = dialect().identifier_preparer  # type: ignore[no-untyped-call]
    # Every keyword of PostgreSQL 13 to 17 that an identifier must be quoted as (pg_keywords.py).
    preparer.reserved_words = preparer.reserved_words | QUOTED_KEYWORDS
    return preparer


def ident(name: str) -> str:
    """A quoted identifier (quotes only when PostgreSQL needs them, as the dialect decides)."""
    return str(_preparer().quote(name))


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def idents(names: Sequence[str]) -> str:
    return ", ".join(ident(n) for n in names)


def display(value: Any) -> str:
    """A value as it reads in a statement summary. Display only: execution binds values through psycopg2."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def render(sql: str, params: Params, secret_keys: frozenset[str] | None = None) -> str:
    """The statement with its parameters shown as literals; parameters named in `secret_keys` become ***."""
    hidden = secret_keys or frozenset()
    positional = iter(params) if isinstance(params, Sequence) and not isinstance(params, str) else iter(())

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is not None:
            assert isinstance(params, dict)
            key = match.group(1)
            return REDACTED if key in hidden else display(params[key])
        return display(next(positional))

    return _PLACEHOLDER.sub(substitute, sql) if params is not None else sql


def step(
    sql: str,
    reason: str,
    params: Params = None,
    *,
    transactional: bool = True,
    database: str | None = None,
    secret_params: dict[str, str] | None = None,
    also_secret: tuple[str, ...] = (),
    unverifiable: bool = False,
) -> Step:
    """A Step whose summary is the statement itself, with secret parameters shown as ***.

    `secret_params` are merged into the (dict) params for execution and never appear in the summary;
    `also_secret` names further secret strings the statement derives from (the password behind a verifier)."""
    bound: Params = params
    if secret_params:
        if params is not None and not isinstance(params, dict):
            raise TypeError("secret parameters need named (dict) parameters")
        named = dict(params or {})
        summary = render(sql, {**named, **dict.fromkeys(secret_params, "")}, frozenset(secret_params))
        bound = {**named, **secret_params}
    else:
        summary = render(sql, params)
    return Step(
        sql=sql,
        summary=summary,
        reason=reason,
        params=bound,
        transactional=transactional,
        database=database,
        secrets=(*(secret_params or {}).values(), *also_secret),
        unverifiable=unverifiable,
    )


class Catalog(Protocol):
    """What kind handlers need from the adapter: catalog reads and facts about the admin session."""

    info: ServerInfo
    admin_user: str
    admin_database: str
    admin_is_superuser: bool

    def query(self, sql: str, params: Params = None, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one read-only catalog query (counted as a read) in `database` (default: the admin database)."""
        ...

    def password_works(self, user: str, password: str) -> bool | None:
        """Try a login as `user`: True when the password was accepted, False when refused, None when unknown."""
        ...
