"""Database on a real PostgreSQL: create, converge, drift, extensions, schemas, plan and drop."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import apply_ok, request_for, run, run_worker, unique
from tests.servers import IS_ROOT, Server
from tests.test_pg_support import (
    comment,
    execute,
    make_role,
    memory_writes,
    one,
    statements,
    writes_during,
)

pytestmark = pytest.mark.postgres

CATALOG = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, t.spcname,
       d.datconnlimit, d.datistemplate, d.datallowconn
  FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
 WHERE d.datname = %s
"""


def database(pg: Server, name: str) -> dict[str, object] | None:
    rows = pg.query(CATALOG, (name,))
    if not rows:
        return None
    keys = (
        "owner",
        "encoding",
        "lcCollate",
        "lcCtype",
        "tablespace",
        "connectionLimit",
        "isTemplate",
        "allow",
    )
    return dict(zip(keys, rows[0], strict=True))


def test_create_with_every_attribute_then_reapply_writes_nothing(pg: Server) -> None:
    owner, _ = make_role(pg, "dbowner", "NOLOGIN")
    name = unique("db")
    spec = {
        "name": name,
        "owner": owner,
        "postgres": {
            "encoding": "LATIN1",
            "lcCollate": "C",
            "lcCtype": "C",
            "template": "template0",
            "tablespace": "pg_default",
            "connectionLimit": 5,
            "isTemplate": False,
            "allowConnections": True,
        },
    }
    first = apply_ok(pg, "Database", spec)
    assert first.result["changes"] == [
        f"CREATE DATABASE {name} WITH OWNER = {owner} TEMPLATE = template0 ENCODING = 'LATIN1' "
        "LC_COLLATE = 'C' LC_CTYPE = 'C' TABLESPACE = pg_default ALLOW_CONNECTIONS = true "
        "CONNECTION LIMIT = 5 IS_TEMPLATE = false",
        f"COMMENT ON DATABASE {name} IS 'managed by dbops for Database default/test'",
    ]
    assert comment(pg, "pg_database", name) == "managed by dbops for Database default/test"
    assert database(pg, name) == {
        "owner": owner,
        "encoding": "LATIN1",
        "lcCollate": "C",
        "lcCtype": "C",
        "tablespace": "pg_default",
        "connectionLimit": 5,
        "isTemplate": False,
        "allow": True,
    }
    assert first.result["observed"] == {
        "name": name,
        "owner": owner,
        "encoding": "LATIN1",
        "lcCollate": "C",
        "lcCtype": "C",
        "drift": [],
    }
    second, writes = writes_during(pg, lambda: apply_ok(pg, "Database", spec))
    assert writes == []
    assert second.result["changes"] == []
    assert second.result["statements"] == {"reads": 1, "writes": 0}


def test_change_alters_only_the_delta(pg: Server) -> None:
    owner, _ = make_role(pg, "dbowner", "NOLOGIN")
    new_owner, _ = make_role(pg, "dbowner2", "NOLOGIN")
    name = unique("db")
    spec = {"name": name, "owner": owner, "postgres": {"connectionLimit": 5, "isTemplate": False}}
    apply_ok(pg, "Database", spec)
    changed = {"name": name, "owner": new_owner, "postgres": {"connectionLimit": 9, "isTemplate": False}}
    _result, writes = writes_during(pg, lambda: apply_ok(pg, "Database", changed))
    assert [w.text for w in writes] == [
        f"ALTER DATABASE {name} OWNER TO {new_owner}",
        f"ALTER DATABASE {name} WITH CONNECTION LIMIT 9",
    ]
    assert database(pg, name) == {**(database(pg, name) or {}), "owner": new_owner, "connectionLimit": 9}


def test_unmanaged_attributes_are_left_alone(pg: Server) -> None:
    name = unique("db")
    apply_ok(pg, "Database", {"name": name})
    execute(pg, f"ALTER DATABASE {name} CONNECTION LIMIT 3")
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", {"name": name}))
    assert writes == []
    assert (database(pg, name) or {})["connectionLimit"] == 3


def test_template_and_connections_flags(pg: Server) -> None:
    name = unique("db")
    apply_ok(pg, "Database", {"name": name, "postgres": {"isTemplate": True, "allowConnections": False}})
    assert (database(pg, name) or {})["isTemplate"] is True
    assert (database(pg, name) or {})["allow"] is False
    _result, writes = writes_during(
        pg,
        lambda: apply_ok(
            pg, "Database", {"name": name, "postgres": {"isTemplate": False, "allowConnections": True}}
        ),
    )
    assert [w.text for w in writes] == [
        f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true IS_TEMPLATE false"
    ]
    assert (database(pg, name) or {})["allow"] is True


def test_immutable_difference_is_reported_and_the_mutable_delta_still_applied(pg: Server) -> None:
    name = unique("db")
    apply_ok(pg, "Database", {"name": name, "postgres": {"encoding": "UTF8", "connectionLimit": 2}})
    spec = {
        "name": name,
        "postgres": {"encoding": "latin-1", "lcCollate": "C", "lcCtype": "POSIX", "connectionLimit": 4},
    }
    result = run(pg, "apply", "Database", spec)
    assert result.code == 2
    assert result.error["code"] == "ImmutableFieldChanged"
    assert "encoding is UTF8" in result.error["message"]
    assert "lcCollate is C.UTF-8" in result.error["message"]
    assert "lcCtype is C.UTF-8" in result.error["message"]
    assert result.result["changes"] == [f"ALTER DATABASE {name} WITH CONNECTION LIMIT 4"]
    assert len(result.result["observed"]["drift"]) == 3, result.result["observed"]["drift"]
    assert database(pg, name) == {**(database(pg, name) or {}), "encoding": "UTF8", "connectionLimit": 4}
    # Equivalent spellings are not drift: UTF-8 is UTF8 and C.utf8 is C.UTF-8.
    same = {"name": name, "postgres": {"encoding": "utf-8", "lcCtype": "C.utf8", "connectionLimit": 4}}
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", same))
    assert writes == []


def test_schemas_and_extensions_inside_the_database(pg: Server) -> None:
    owner, _ = make_role(pg, "schemaowner", "NOLOGIN")
    other, _ = make_role(pg, "schemaowner2", "NOLOGIN")
    name = unique("db")
    spec = {
        "name": name,
        "postgres": {
            "schemas": [{"name": "app", "owner": owner}, {"name": "ext"}],
            "extensions": [{"name": "hstore", "schema": "ext", "version": "1.5"}, {"name": "citext"}],
        },
    }
    first = apply_ok(pg, "Database", spec)
    assert len(first.result["changes"]) == 6  # with the marker
    schemas = dict(
        pg.query(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('app', 'ext')",
            database=name,
        )
    )
    assert schemas == {"app": owner, "ext": pg.admin_user}
    extensions = {
        row[0]: row[1:]
        for row in pg.query(
            "SELECT extname, extnamespace::regnamespace::text, extversion FROM pg_extension", database=name
        )
    }
    assert extensions["hstore"] == ("ext", "1.5")
    assert extensions["citext"][0] == "public"
    _, writes = writes_during(pg, lambda: apply_ok(pg, "Database", spec))
    assert writes == []

    moved = {
        "name": name,
        "postgres": {
            "schemas": [{"name": "app", "owner": other}, {"name": "ext"}],
            "extensions": [{"name": "hstore", "schema": "app", "version": "1.8"}, {"name": "citext"}],
        },
    }
    _result, writes = writes_during(pg, lambda: apply_ok(pg, "Database", moved))
    assert [w.text for w in writes if not w.text.startswith(("BEGIN", "COMMIT"))] == [
        f"ALTER SCHEMA app OWNER TO {other}",
        "ALTER EXTENSION hstore SET SCHEMA app",
        "ALTER EXTENSION hstore UPDATE TO '1.8'",
    ]
    assert (
        one(
            pg,
            "SELECT extnamespace::regnamespace::text || ' ' || extversion FROM pg_extension "
            "WHERE extname = 'hstore'",
            database=name,
        )
        == "app 1.8"
    )
    # Reading the inside costs one more query, in the database itself.
    again = apply_ok(pg, "Database", moved)
    assert again.result["statements"] == {"reads": 2, "writes": 0}


def test_tablespace_move_runs_outside_a_transaction(pg: Server) -> None:
    if pg.log is None or not IS_ROOT:
        pytest.skip("needs a private server whose postgres user can own a new directory")
    location = Path(tempfile.mkdtemp(prefix="dbops-ts-"))
    location.chmod(0o700)
    entry = pwd.getpwnam("postgres")
    os.chown(location, entry.pw_uid, entry.pw_gid)
    tablespace = unique("ts")
    execute(pg, f"CREATE TABLESPACE {tablespace} LOCATION '{location}'")
    name = unique("db")
    try:
        apply_ok(pg, "Database", {"name": name, "postgres": {"schemas": [{"name": "s"}]}})
        moved = {"name": name, "postgres": {"tablespace": tablespace, "schemas": [{"name": "s"}]}}
        result, writes = writes_during(pg, lambda: apply_ok(pg, "Database", moved))
        assert statements(writes) == [f"ALTER DATABASE {name} SET TABLESPACE {tablespace}"]
        assert (database(pg, name) or {})["tablespace"] == tablespace
        assert result.result["statements"]["writes"] == 1
    finally:
        execute(pg, f"DROP DATABASE IF EXISTS {name}", f"DROP TABLESPACE IF EXISTS {tablespace}")
        shutil.rmtree(location, ignore_errors=True)


def test_missing_references_fail_before_anything_changes(pg: Server) -> None:
    name = unique("db")
    spec = {
        "name": name,
        "owner": unique("ghost"),
        "postgres": {"encoding": "KLINGON", "tablespace": "nowhere"},
    }
    result, writes = writes_during(pg, lambda: run(pg, "apply", "Database", spec))
    assert result.code == 2
    message = result.error["message"]
    assert "spec.owner: role" in message
    assert "spec.postgres.encoding: 'KLINGON' is not an encoding" in message
    assert "spec.postgres.tablespace: tablespace nowhere does not exist" in message
    assert writes == []
    assert database(pg, name) is None


def test_unavailable_extension_is_permanent_and_rolled_back(pg: Server) -> None:
    name = unique("db")
    apply_ok(pg, "Database", {"name": name})
    spec = {"name": name, "postgres": {"schemas": [{"name": "s1"}], "extensions": [{"name": "no_such_ext"}]}}
    result = run(pg, "apply", "Database", spec)
    assert result.code == 2
    assert "no_such_ext" in result.error["message"]
    assert result.result["changes"] == []
    # One transaction inside the database: the schema created before the failure is gone too.
    assert not pg.query("SELECT 1 FROM pg_namespace WHERE nspname = 's1'", database=name)


def test_plan_prints_statements_and_writes_nothing(pg: Server) -> None:
    name = unique("db")
    result, writes = writes_during(
        pg, lambda: run(pg, "plan", "Database", {"name": name, "postgres": {"connectionLimit": 3}})
    )
    assert result.code == 0
    assert writes == []
    assert result.result["changes"] == [
        f"CREATE DATABASE {name} WITH CONNECTION LIMIT = 3",
        f"COMMENT ON DATABASE {name} IS 'managed by dbops for Database default/test'",
    ]
    assert f"CREATE DATABASE {name} WITH CONNECTION LIMIT = 3;" in result.stdout
    assert database(pg, name) is None


def test_first_run_creates_the_memory_table_so_a_converged_database_costs_one_query(pg: Server) -> None:
    """A Database reads dbops' memory of the default privileges it set (`_dbops.grants` in the admin database) in
    its one catalog query; on a server without the table that query fails and is sent again without it, so the
    first run creates the table (bookkeeping, not a change), even with no default privileges to remember."""
    admin_db, name = unique("admindb"), unique("db")
    execute(pg, f"CREATE DATABASE {admin_db}")

    def apply() -> Any:
        result = run_worker(pg, "apply", request_for(pg, "Database", {"name": name}, database=admin_db))
        assert result.code == 0, result.result
        return result

    first, writes = writes_during(pg, apply)
    assert first.result["changes"] == [
        f"CREATE DATABASE {name}",
        f"COMMENT ON DATABASE {name} IS 'managed by dbops for Database default/test'",
    ]
    assert memory_writes(writes) == [
        "CREATE SCHEMA _dbops",
        "CREATE TABLE IF NOT EXISTS _dbops.grants (claim text NOT NULL, grantee text NOT NULL, targets jsonb NOT "
        "NULL, PRIMARY KEY (claim, grantee))",
        "REVOKE ALL ON _dbops.grants FROM PUBLIC",
    ]
    assert one(pg, "SELECT count(*) FROM _dbops.grants", database=admin_db) == 0
    again, writes = writes_during(pg, apply)
    assert writes == []
    assert again.result["statements"] == {"reads": 1, "writes": 0}


def test_a_new_database_keeps_its_marker_when_the_memory_table_is_created_by_another_worker_at_once(
    pg: Server,
) -> None:
    """Two Databases created at the same moment on a server without dbops' memory table: both create it, and one
    of them is refused ("already exists"). The worker observes again and converges, which needs the marker of the
    database it has just created to be committed already: before, the marker was part of the transaction that
    failed, and the retry found an unmarked database and refused it for good (UnmanagedObject), which the real
    control plane showed. Here the other worker is a session holding `CREATE SCHEMA _dbops` uncommitted until the
    worker waits on it."""
    admin_db, name = unique("admindb"), unique("db")
    execute(pg, f"CREATE DATABASE {admin_db}")
    other = pg.connect(database=admin_db)
    outcome: dict[str, Any] = {}
    try:
        other.autocommit = False
        with other.cursor() as cur:
            cur.execute("CREATE SCHEMA _dbops")
        worker = threading.Thread(
            target=lambda: outcome.update(
                run=run_worker(pg, "apply", request_for(pg, "Database", {"name": name}, database=admin_db))
            )
        )
        worker.start()
        deadline = time.monotonic() + 60
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE SCHEMA%%'"
        while one(pg, waiting) == 0:
            assert worker.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.1)
        other.commit()
    finally:
        other.close()
    worker.join(timeout=120)
    run = outcome["run"]
    assert run.code == 0, run.result
    assert comment(pg, "pg_database", name) == "managed by dbops for Database default/test"
    assert one(pg, "SELECT to_regclass('_dbops.grants') IS NOT NULL", database=admin_db)
    again = run_worker(pg, "apply", request_for(pg, "Database", {"name": name}, database=admin_db))
    assert again.result["statements"]["writes"] == 0, again.result


def test_drop_terminates_sessions_and_is_idempotent(pg: Server) -> None:
    name = unique("db")
    apply_ok(pg, "Database", {"name": name, "postgres": {"isTemplate": True}})
    session = pg.connect(database=name)
    try:
        dropped = run(pg, "drop", "Database", {"name": name})
        assert dropped.code == 0, dropped.result
        assert database(pg, name) is None
        assert session.closed or _is_dead(session)
    finally:
        session.close()
    again, writes = writes_during(pg, lambda: run(pg, "drop", "Database", {"name": name}))
    assert again.code == 0
    assert writes == []


def _is_dead(conn: object) -> bool:
    import psycopg2

    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error:
        return True
    return False
