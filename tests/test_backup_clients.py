"""The worker's backup and restore with the clients of the worker image's Debian release (trixie: pg_dump and
pg_restore 17, mariadb-dump and mariadb 11.8), against the test servers (PostgreSQL 15, MariaDB 10.11): newer
clients than the servers, as the image meets them in use.

The clients come from tools/clients/debian-clients.sh (Debian's packages unpacked into the tool cache; about 20 s
cold); without them the tests skip, or fail when DBOPS_REQUIRE_TOOLS=1 (CI, which builds them first).
DBOPS_DEBIAN_CLIENTS names another bin directory holding pg_dump, pg_restore, psql, mariadb-dump and mariadb."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import WORKER, run_worker, unique
from tests.servers import Server
from tests.test_backup import (
    KEY,
    _children,
    key_env,
    make_database,
    restore_request,
    rows_of,
    volume_request,
)

pytestmark = pytest.mark.slow

RELEASE = "trixie"
# What Debian trixie carries: the versions docs/worker.md ("The clients in the worker image") documents.
EXPECTED = {"pg_dump": "17", "pg_restore": "17", "psql": "17", "mariadb-dump": "11.8", "mariadb": "11.8"}


@pytest.fixture(scope="module")
def clients() -> str:
    cache = os.environ.get("DBOPS_TOOLS_CACHE") or str(Path.home() / ".cache" / "dbops-tools")
    bin_dir = os.environ.get("DBOPS_DEBIAN_CLIENTS") or f"{cache}/debian-clients-{RELEASE}/bin"
    missing = [tool for tool in EXPECTED if not os.access(f"{bin_dir}/{tool}", os.X_OK)]
    if missing:
        why = f"no {', '.join(missing)} in {bin_dir}: run tools/clients/debian-clients.sh {RELEASE}"
        if os.environ.get("DBOPS_REQUIRE_TOOLS") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    for tool, version in EXPECTED.items():
        said = subprocess.run([f"{bin_dir}/{tool}", "--version"], capture_output=True, text=True, check=True)
        assert re.search(rf"(\) |from ){re.escape(version)}\.", said.stdout), said.stdout
    return bin_dir


def test_backup_and_restore_with_the_newer_clients(server: Server, clients: str, tmp_path: Path) -> None:
    env = {"PATH": f"{clients}:{os.environ['PATH']}", **key_env(tmp_path, KEY)}
    database = make_database(server, rows=500)
    (tmp_path / "volume").mkdir()
    backup = volume_request(server, database, tmp_path / "volume", encryption={})
    done = run_worker(server, "backup", backup, env=env)
    assert done.code == 0, done.stdout + done.stderr
    tool = done.result["observed"]["tool"]
    assert tool.startswith(("pg_dump 17.", "mariadb-dump 11.8.")), tool
    original = rows_of(server, database)

    # Into a database of another owner (PostgreSQL: pg_restore's --role goes into the SQL psql runs).
    owner = unique("owner")
    target = unique("rt")
    if server.engine == "postgres":
        server.query(f"CREATE ROLE {owner} NOLOGIN")
        server.query(f"CREATE DATABASE {target} OWNER {owner}")
    else:
        server.query(f"CREATE DATABASE {target}")
    done = run_worker(server, "restore", restore_request(backup, target), env=env)
    assert done.code == 0, done.stdout + done.stderr
    assert rows_of(server, target) == original
    if server.engine == "postgres":
        assert server.query("SELECT last_value FROM counter", database=target) == [(42,)]
        owners = server.query(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname = 'public'",
            database=target,
        )
        assert owners == [(owner,)]


def test_a_failing_restore_into_an_older_postgres_writes_nothing(
    pg: Server, clients: str, tmp_path: Path
) -> None:
    """pg_restore 17's SQL runs in one transaction: when a statement fails, psql stops and nothing stays."""
    env = {"PATH": f"{clients}:{os.environ['PATH']}"}
    database = make_database(pg, rows=50)
    backup = volume_request(pg, database, tmp_path)
    assert run_worker(pg, "backup", backup, env=env).code == 0
    target = unique("rt")
    pg.query(f"CREATE DATABASE {target}")
    pg.query("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (7)", database=target)
    done = run_worker(pg, "restore", restore_request(backup, target, overwrite=True), env=env)
    assert done.code == 1 and done.error["code"] == "RestoreFailed", done.stdout + done.stderr
    assert "psql" in done.error["message"] and 'relation "t" already exists' in done.error["message"]
    assert pg.query("SELECT id FROM t", database=target) == [(7,)]
    assert pg.query("SELECT count(*) FROM pg_class WHERE relname = 'counter'", database=target) == [(0,)]


def test_only_the_preamble_loses_the_settings_the_server_does_not_know() -> None:
    """However pg_restore's SQL is cut into reads, the setting goes from the preamble and stays in an object's data."""
    from worker.backup.dump_postgres import PreambleFilter, unknown_settings

    assert unknown_settings(15) == unknown_settings(16) == (b"SET transaction_timeout = 0;\n",)
    assert unknown_settings(17) == ()
    sql = (
        b"--\n-- PostgreSQL database dump\n--\n\nBEGIN;\n\nSET statement_timeout = 0;\n"
        b"SET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\n\n--\n-- Name: t; Type: TABLE\n--\n\n"
        b"COPY public.t (body) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n\nCOMMIT;\n"
    )
    expected = sql.replace(b"SET transaction_timeout = 0;\n", b"", 1)
    for size in (1, 5, 64, len(sql)):
        kept = PreambleFilter(unknown_settings(15))
        out = b"".join(kept.feed(sql[i : i + size]) for i in range(0, len(sql), size)) + kept.finish()
        assert out == expected, size
        same = PreambleFilter(unknown_settings(17))
        assert b"".join(same.feed(sql[i : i + size]) for i in range(0, len(sql), size)) + same.finish() == sql


def test_psql_gets_no_secret_in_argv_or_environment(pg: Server, clients: str, tmp_path: Path) -> None:
    """The restore's second process holds the credentials as pg_restore does: a 0600 passfile it is pointed at."""
    env = {"PATH": f"{clients}:{os.environ['PATH']}"}
    database = make_database(pg, rows=50)
    backup = volume_request(pg, database, tmp_path)
    assert run_worker(pg, "backup", backup, env=env).code == 0
    target = unique("rt")
    pg.query(f"CREATE DATABASE {target}")
    full = pg.worker_env(**env, DBOPS_REQUEST=json.dumps(restore_request(backup, target)))
    worker = subprocess.Popen([WORKER, "restore"], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    psql = None
    deadline = time.monotonic() + 60
    while psql is None and time.monotonic() < deadline and worker.poll() is None:
        for child in _children(worker.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/psql"):
                    os.kill(child, signal.SIGSTOP)
                    psql = child
                    break
        time.sleep(0.002)
    assert psql is not None, "psql never started"
    try:
        cmdline = Path(f"/proc/{psql}/cmdline").read_bytes()
        environ = Path(f"/proc/{psql}/environ").read_bytes()
        assert pg.admin_password.encode() not in cmdline and pg.admin_password.encode() not in environ
        variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
        assert not [k for k in variables if k.startswith(b"DBOPS_")]
        passfile = Path(variables[b"PGPASSFILE"].decode())
        assert passfile.stat().st_mode & 0o777 == 0o600 and pg.admin_password in passfile.read_text()
    finally:
        os.kill(psql, signal.SIGCONT)
    stdout, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stdout.decode() + stderr.decode()
    assert not passfile.parent.exists()
    assert rows_of(pg, target) == rows_of(pg, database)


def test_trixies_pg_dump_refuses_postgres_18_and_dumps_17() -> None:
    from worker.backup import dump_postgres
    from worker.errors import PermanentError

    tool = dump_postgres.tool_version("pg_dump (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)")
    assert tool == (17, 12)
    dump_postgres.check_versions(tool, (17, 2), "17.2")
    dump_postgres.check_versions(tool, (9, 6, 24), "9.6.24")
    with pytest.raises(PermanentError, match=r"PostgreSQL 18\.1, newer than this worker's pg_dump 17\.12"):
        dump_postgres.check_versions(tool, (18, 1), "18.1")
