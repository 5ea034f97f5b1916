"""One adapter per engine family; `load` imports only the one a request needs (start-up time is product cost)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.adapters.base import Adapter


def load(engine: str) -> type[Adapter]:
    if engine == "postgres":
        from worker.adapters.postgres import PostgresAdapter

        return PostgresAdapter
    from worker.adapters.mysql import MySQLAdapter

    return MySQLAdapter
