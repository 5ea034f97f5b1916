"""What a no-op `dbops-worker apply` costs: wall time against the import floor, statements, writes, peak memory.

    python bench/worker_noop.py [--engine postgres|mariadb|all] [--runs N]

Starts private servers (tests.servers), converges one Database, DatabaseUser, DatabaseGrant and DatabaseRole (with
grants and, on PostgreSQL, default privileges) per engine, then
runs the same requests again N times as a Job would (fresh process, request and secrets from the environment) and
prints, per kind: median and best wall time from process start to exit, the import floor (`python -c "import
sqlalchemy, <driver>"`), statements the worker reported and the server logged, writes, and peak RSS. Targets: within
1.5x of the floor, at most 3 queries of the worker's own after connecting, zero writes, under 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import Server, is_write, private_servers

WORKER = str(Path(sys.executable).with_name("dbops-worker"))
DRIVER = {"postgres": "psycopg2", "mariadb": "pymysql"}
# Runs a command and prints its own children's peak RSS (KiB), so the figure is the worker's alone.
MEASURE = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    return elapsed, proc.stdout


def peak_rss_mib(cmd: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip()) / 1024


def requests(server: Server, engine: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(kind, spec, password) for a database, a user with full use of it, a grant on one table, and a role with
    privileges (and on PostgreSQL default privileges) in the database."""
    suffix = str(os.getpid())
    db, user = f"bench_db_{suffix}", f"bench_user_{suffix}"
    grant_spec: dict[str, Any]
    if engine == "postgres":
        grant_spec = {
            "grantee": user,
            "database": db,
            "postgres": {"grants": [{"schema": "public", "tables": ["t"], "privileges": ["SELECT"]}]},
        }
    else:
        grant_spec = {
            "grantee": user,
            "database": db,
            "mysql": {"grants": [{"level": "table", "database": db, "table": "t", "privileges": ["SELECT"]}]},
        }
    role = f"bench_role_{suffix}"
    role_spec: dict[str, Any]
    if engine == "postgres":
        role_spec = {
            "roleName": role,
            "postgres": {
                "grants": [
                    {"database": db, "privileges": ["CONNECT"]},
                    {"database": db, "schema": "public", "tables": ["t"], "privileges": ["SELECT"]},
                ],
                "defaultPrivileges": [
                    {"database": db, "schema": "public", "objectType": "tables", "privileges": ["SELECT"]}
                ],
            },
        }
    else:
        role_spec = {
            "roleName": role,
            "mysql": {"grants": [{"level": "table", "database": db, "table": "t", "privileges": ["SELECT"]}]},
        }
    return [
        ("Database", {"name": db}, None),
        ("DatabaseUser", {"username": user, "database": db}, "bench-password-" + suffix),
        ("DatabaseGrant", grant_spec, None),
        ("DatabaseRole", role_spec, None),
    ]


def worker_env(
    server: Server, engine: str, kind: str, spec: dict[str, Any], password: str | None
) -> dict[str, str]:
    request = {
        "kind": kind,
        "engine": engine,
        "connection": server.connection(),
        "spec": spec,
        "owner": {"kind": kind, "name": "bench", "namespace": "bench", "uid": "0"},
    }
    extra = {"DBOPS_REQUEST": json.dumps(request), "DBOPS_RESULT_FILE": os.devnull}
    if password:
        extra["DBOPS_PASSWORD"] = password
    return server.worker_env(**extra)


def logged_statements(server: Server, mark: int) -> list[str]:
    """Statements the worker's sessions sent, from the server's own log."""
    assert server.log is not None
    if server.engine == "postgres":
        text = server.log.text_since(mark)
        return [
            line.split("statement: ", 1)[1]
            for line in text.splitlines()
            if "app=dbops-worker" in line and "statement: " in line
        ]
    return [s.text for s in server.log.since(mark)]


def make_table(server: Server, db: str) -> None:
    if server.engine == "postgres":
        server.query("CREATE TABLE IF NOT EXISTS public.t (id int)", database=db)
    else:
        server.query(f"CREATE TABLE IF NOT EXISTS `{db}`.t (id int)")


def bench_engine(engine: str, server: Server, runs: int) -> bool:
    floor_cmd = [sys.executable, "-c", f"import sqlalchemy, {DRIVER[engine]}"]
    floor = statistics.median(timed(floor_cmd)[0] for _ in range(runs))
    floor_rss = peak_rss_mib(floor_cmd, dict(os.environ))
    print(f"\n== {engine} {server.port}  import floor: {floor * 1000:.0f} ms, {floor_rss:.1f} MiB")
    print(
        f"{'kind':<14} {'median':>8} {'best':>8} {'x floor':>8} {'reads':>6} {'logged':>7} {'writes':>7} {'peak MiB':>9}"
    )
    ok = True
    wire = "mysql" if engine == "mariadb" else engine
    for kind, spec, password in requests(server, engine):
        env = worker_env(server, wire, kind, spec, password)
        _, out = timed([WORKER, "apply"], env)
        setup = json.loads(out.strip().splitlines()[-1])
        if not setup.get("ok"):
            print(f"{kind:<14} setup failed: {setup.get('error')}")
            ok = False
            continue
        if kind == "Database":
            make_table(server, spec["name"])
        times: list[float] = []
        result: dict[str, Any] = {}
        logged: list[str] = []
        for _ in range(runs):
            mark = server.log.mark() if server.log else 0
            elapsed, out = timed([WORKER, "apply"], env)
            times.append(elapsed)
            result = json.loads(out.strip().splitlines()[-1])
            logged = logged_statements(server, mark) if server.log else []
        rss = peak_rss_mib([WORKER, "apply"], env)
        median = statistics.median(times)
        reads = result["statements"]["reads"]
        writes = result["statements"]["writes"] + sum(is_write(s) for s in logged)
        ratio = median / floor
        print(
            f"{kind:<14} {median * 1000:>6.0f}ms {min(times) * 1000:>6.0f}ms {ratio:>8.2f} {reads:>6} "
            f"{len(logged):>7} {writes:>7} {rss:>9.1f}"
        )
        met = result.get("ok") and ratio <= 1.5 and reads <= 3 and writes == 0 and rss < 64
        ok = ok and bool(met)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("postgres", "mariadb", "all"), default="all")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    engines = ("postgres", "mariadb") if args.engine == "all" else (args.engine,)
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, {args.runs} runs per figure"
    )
    met = True
    with private_servers(engines) as servers:
        for engine in engines:
            try:
                met = bench_engine(engine, servers[engine], args.runs) and met
            except Exception as exc:  # one engine failing must not hide the other's numbers
                print(f"{engine}: failed: {exc}")
                met = False
    print("\ntargets (<=1.5x floor, <=3 reads, 0 writes, <64 MiB):", "met" if met else "NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
