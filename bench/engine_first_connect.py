"""What a SQLAlchemy Engine sends to a server on its first connection, against the worker's no-op budget (at most
3 statements of its own after connecting). Starts the private test servers, connects once per engine family with
`create_engine(URL.create(...), poolclass=NullPool)` as a worker run would (one Engine per run, so every run pays the
first connection), and prints the statements each server logged and what the dialect detected. Asserts nothing.

    python bench/engine_first_connect.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    from tests.servers import private_servers

    with private_servers(("postgres", "mariadb")) as servers:
        for name, server in servers.items():
            conn = server.connection()
            env = server.worker_env()
            user, password = env["DBOPS_ADMIN_USERNAME"], env["DBOPS_ADMIN_PASSWORD"]
            driver = "postgresql+psycopg2" if name == "postgres" else "mysql+pymysql"
            database = "postgres" if name == "postgres" else None
            url = URL.create(driver, user, password, str(conn["host"]), int(str(conn["port"])), database)
            assert server.log is not None
            mark = server.log.mark()
            engine = create_engine(url, poolclass=NullPool)
            with engine.connect():
                dialect = engine.dialect
                detected = f"server_version_info {dialect.server_version_info}"
                if name != "postgres":
                    detected += f", is_mariadb {getattr(dialect, 'is_mariadb', None)}"
            engine.dispose()
            logged = server.log.since(mark)
            print(f"== {name}: {detected}; {len(logged)} statements on the first connection")
            for statement in logged:
                print("   ", " ".join(statement.text.split())[:100])


if __name__ == "__main__":
    main()
