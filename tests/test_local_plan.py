"""`dbops-local --plan` as a user runs it before letting claims loose on a server (docs/offline.md, docs/migrating.md):
every claim's statements are printed, the server receives no write, and once the claims are applied the same
command reports nothing to change. Real PostgreSQL and MariaDB, the installed console script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import unique
from tests.offline_support import admin_secret, claim, instance_claim
from tests.servers import Server
from tests.test_faults_support import server_writes
from tests.test_offline_cli import dbops_local, rows

PLANNED_CHANGES = 3


def _claims(server: Server, dbname: str, username: str) -> list[dict[str, Any]]:
    return [
        admin_secret(server, "admin"),
        instance_claim(server, "server", "admin"),
        claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
        claim(
            "DatabaseUser",
            "user",
            {"instanceRef": {"name": "server"}, "databaseRef": {"name": "db"}, "username": username},
        ),
    ]


def _plan_section(stdout: str) -> dict[str, list[str]]:
    """The plan printed after the status table: `Kind/name` -> its lines (a one-line verdict, or statements)."""
    lines = stdout.split("\nPlan (nothing was written):\n", 1)[1].splitlines()
    out: dict[str, list[str]] = {}
    current = ""
    for line in lines:
        if line.startswith("  "):
            out[current].append(line.strip())
        elif line.strip():
            current, _, verdict = line.partition(":")
            out[current] = [verdict.strip()] if verdict.strip() else []
    return out


def test_plan_prints_every_statement_writes_nothing_and_is_empty_once_applied(
    server: Server, tmp_path: Path
) -> None:
    assert server.log is not None
    dbname, username = unique("plan"), unique("plan_u")
    every = _claims(server, dbname, username)
    all_file, database_file = tmp_path / "all.yaml", tmp_path / "database.yaml"
    all_file.write_text(yaml.safe_dump_all(every))
    database_file.write_text(yaml.safe_dump_all(every[:3]))

    # 1. Nothing exists yet: the database is planned. On PostgreSQL the user's plan needs the database (its
    # grants are read inside it), which is only planned, so the user has none and says why; MySQL grants on a
    # database name that does not exist yet, so there the user's plan is complete. Nothing reaches the server.
    mark = server.log.mark()
    run = dbops_local("-f", str(all_file), "--plan")
    plans = _plan_section(run.stdout)
    assert any(line.startswith("CREATE DATABASE") and dbname in line for line in plans["Database/db"]), plans
    if server.engine == "postgres":
        assert run.returncode == 1, run.stdout + run.stderr
        assert plans["DatabaseUser/user"][0].startswith("no plan: permanent error"), plans
        assert dbname in plans["DatabaseUser/user"][0], plans
    else:
        assert run.returncode == PLANNED_CHANGES, run.stdout + run.stderr
        assert any(line.startswith(f"CREATE USER '{username}'") for line in plans["DatabaseUser/user"]), plans
    assert "DatabaseInstance/server" not in plans  # an instance check only reads; it has no plan
    assert not server_writes(server, mark), "a plan wrote to the server"
    assert not _exists(server, "database", dbname)

    # 2. With the database applied, the user's plan is complete: its role, its password masked, its grants.
    # (--state keeps the Secrets between runs, the generated password included; a plan reads it, never writes it.)
    state = tmp_path / "state.json"
    assert dbops_local("-f", str(database_file), "--state", str(state)).returncode == 0
    kept = state.read_bytes()
    mark = server.log.mark()
    run = dbops_local("-f", str(all_file), "--plan", "--state", str(state))
    assert run.returncode == PLANNED_CHANGES, run.stdout + run.stderr
    plans = _plan_section(run.stdout)
    assert plans["Database/db"] == ["no changes"], plans
    user_plan = "\n".join(plans["DatabaseUser/user"])
    assert (
        f"CREATE USER {username}" in user_plan
        or f"CREATE USER '{username}'" in user_plan
        or (f"CREATE ROLE {username}" in user_plan)
    ), user_plan
    assert "***" in user_plan, user_plan
    assert not server_writes(server, mark), "a plan wrote to the server"
    assert not _exists(server, "user", username)
    assert state.read_bytes() == kept

    # 3. Applied, the same plan has nothing left to do (the password too: it is the one in the state), and still
    # writes nothing.
    applied = dbops_local("-f", str(all_file), "--state", str(state))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert {phase for phase, _ in rows(applied.stdout).values()} == {"Ready"}
    mark = server.log.mark()
    again = dbops_local("-f", str(all_file), "--plan", "--state", str(state))
    assert again.returncode == 0, again.stdout + again.stderr
    assert _plan_section(again.stdout) == {"Database/db": ["no changes"], "DatabaseUser/user": ["no changes"]}
    assert not server_writes(server, mark)


def _exists(server: Server, what: str, name: str) -> bool:
    queries = {
        ("postgres", "database"): "SELECT 1 FROM pg_database WHERE datname = %s",
        ("postgres", "user"): "SELECT 1 FROM pg_roles WHERE rolname = %s",
        ("mariadb", "database"): "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
        ("mariadb", "user"): "SELECT 1 FROM mysql.user WHERE user = %s",
    }
    return bool(server.query(queries[(server.engine, what)], (name,)))


def test_plan_refuses_a_delete(pg: Server, tmp_path: Path) -> None:
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump_all(_claims(pg, unique("plan"), unique("plan_u"))))
    run = dbops_local("-f", str(claims_file), "--plan", "--delete", "Database/db")
    assert run.returncode == 2
    assert "--plan shows what applying the claims would write; it has no plan for --delete" in run.stderr
