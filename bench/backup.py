"""What `dbops-worker backup` costs against the plain pipeline `pg_dump -Fc -Z0 | zstd -3 > file` on the same machine.

    python bench/backup.py [--engine postgres|mariadb] [--size-mib N] [--runs N] [--s3] [--also DIR ...]

Starts a private PostgreSQL or MariaDB (tests.servers; DBOPS_TEST_POSTGRES_URL / DBOPS_TEST_MYSQL_URL names a running
one instead, whose filled database is then reused), fills one database with about N MiB of table data (default
1024), then times, alternately, the plain pipeline (`pg_dump -Fc -Z0`, or `mariadb-dump` with the worker's options,
into `zstd -3`) and the worker backing the same database up to a directory (zstd level 3, and with --s3 also to a
private versitygw over TLS). It prints each run with the load average at its end, then the median wall times, the
ratio (the goal: the worker at least 0.8x the pipeline's throughput), the CPU time each used (with the dump tool's,
without the server's) and the worker's own peak RSS (its VmHWM, without the dump tool's; goal under 128 MiB).
`--also DIR` also times the worker of another checkout (e.g. `git archive` of an older commit unpacked in DIR), to a
directory, in the same rounds, labelled with DIR's name. On a shared machine the wall times follow the load; the
CPU times much less. The worker does more than the pipeline: it checks the dump's end (PostgreSQL: it parses the
archive), hashes the stored bytes and reads them back to verify before it publishes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.object_store import ObjectStore, private_object_store
from tests.servers import Server, private_servers

WORKER = str(Path(sys.executable).with_name("dbops-worker"))
MiB = 1 << 20


def fill(server: Server, size_mib: int) -> str:
    """Database bench_backup with one table of `size_mib` x 1024 rows of ~1 KiB of hexadecimal text (compresses about
    2:1, like much real data); a server named by DBOPS_TEST_*_URL keeps it between runs: reused when it has the size."""
    rows = size_mib * 1024
    postgres = server.engine == "postgres"
    exists = (
        server.query("SELECT 1 FROM pg_database WHERE datname = 'bench_backup'")
        if postgres
        else server.query("SHOW DATABASES LIKE 'bench_backup'")
    )
    if exists:
        if server.query("SELECT count(*) FROM t", database="bench_backup")[0][0] == rows:
            return "bench_backup"
        server.query("DROP DATABASE bench_backup")
    server.query("CREATE DATABASE bench_backup")
    batch = 100_000
    if postgres:
        server.query("CREATE TABLE t (id bigint PRIMARY KEY, body text)", database="bench_backup")
        body = "(SELECT string_agg(md5(g::text || s), '') FROM generate_series(1, 32) s)"
        source = "generate_series({first}, {last}) g"
    else:
        server.query(
            "CREATE TABLE t (id bigint PRIMARY KEY, body longtext) ENGINE=InnoDB", database="bench_backup"
        )
        body = "CONCAT(" + ", ".join(f"MD5(CONCAT(g, '-', {s}))" for s in range(1, 33)) + ")"
        source = "(SELECT seq AS g FROM seq_{first}_to_{last}) s"
    for first in range(1, rows + 1, batch):
        last = min(rows, first + batch - 1)
        server.query(
            f"INSERT INTO t SELECT g, {body} FROM {source.format(first=first, last=last)}",
            database="bench_backup",
        )
    return "bench_backup"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def plain(server: Server, out: Path) -> tuple[float, float]:
    """The pipeline's wall time and CPU time (the dump tool's and zstd's). The dump tool gets the options the worker
    gives it (dump_postgres.dump_argv, dump_mysql.dump_argv)."""
    if server.engine == "postgres":
        env = {"PATH": os.environ["PATH"], "PGPASSWORD": server.admin_password}
        dump = f"pg_dump -Fc -Z0 -h {server.host} -p {server.port} -U {server.admin_user} bench_backup"
    else:
        env = {"PATH": os.environ["PATH"], "MYSQL_PWD": server.admin_password}
        dump = (
            f"mariadb-dump -h {server.host} -P {server.port} --protocol=TCP -u {server.admin_user} "
            "--single-transaction --quick --routines --triggers --events --hex-blob --no-tablespaces "
            "--default-character-set=utf8mb4 bench_backup"
        )
    command = f"{dump} | zstd -3 -q -o {out} -f"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["/bin/bash", "-o", "pipefail", "-c", command], env=env, check=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def worker(
    pg: Server, request: dict[str, object], env: dict[str, str], source: Path | None = None
) -> tuple[float, float, int, dict[str, Any]]:
    """The worker's wall time, CPU time (its own and pg_dump's), peak RSS (KiB, its own) and result; `source`: run
    the worker of that checkout instead of this one."""
    full = pg.worker_env(**env, DBOPS_REQUEST=json.dumps(request))
    argv = [WORKER, "backup"]
    if source is not None:
        argv = [sys.executable, "-c", "import sys; from worker.cli import main; sys.exit(main())", "backup"]
        full["PYTHONPATH"] = str(source)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=source)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    # The pipes are read after the exit: the worker writes only its one-line result and a little stderr.
    while True:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(code)
    stdout, stderr = proc.communicate()
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"the worker failed: {result['error']}\n{stderr.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime, peak, result


def _request(
    base: dict[str, object], database: str, target: str, run: int, work: Path, store: ObjectStore | None
) -> tuple[dict[str, object], dict[str, str]]:
    """The request and extra environment of one backup to `target` (a fresh directory, or the object store)."""
    if target == "volume":
        volume = work / "volume"
        volume.mkdir(exist_ok=True)
        storage: dict[str, object] = {"type": "volume", "volume": {"path": str(volume)}}
        env: dict[str, str] = {}
    else:
        assert store is not None
        (work / "access").write_text(store.access_key)
        (work / "secret").write_text(store.secret_key)
        s3 = {"endpoint": store.endpoint, "bucket": store.bucket, "prefix": "bench", "forcePathStyle": True}
        storage = {"type": "s3", "s3": s3}
        env = {"DBOPS_S3_ACCESS_KEY_FILE": str(work / "access"), "DBOPS_S3_SECRET_KEY_FILE": str(work / "secret"),
               "DBOPS_S3_CA_FILE": str(store.ca_path)}  # fmt: skip
    # A new name every time: a name already published would be reported, not backed up again.
    spec = {"database": database, "name": f"run{run}-{uuid.uuid4().hex[:8]}", "storage": storage}
    return {**base, "spec": spec}, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgres", "mariadb"), default="postgres")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also back up to a private versitygw over TLS")
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="also time the worker of this checkout (repeatable)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbops-bench-backup-"))
    try:
        with private_servers((args.engine,)) as servers:
            pg = servers[args.engine]
            started = time.perf_counter()
            database = fill(pg, args.size_mib)
            size = pg.query(
                f"SELECT pg_database_size('{database}')"
                if args.engine == "postgres"
                else "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                f"WHERE table_schema = '{database}'"
            )[0][0]
            print(f"database: {size / MiB:.0f} MiB on disk, filled in {time.perf_counter() - started:.0f} s")
            connection = pg.connection()
            base: dict[str, object] = {"kind": "DatabaseBackup", "engine": args.engine, "connection": connection,
                    "owner": {"kind": "DatabaseBackup", "name": "bench", "namespace": "default"}}  # fmt: skip
            variants: list[tuple[str, Path | None]] = [("this", None)]
            variants += [(path.resolve().name, path.resolve()) for path in args.also]
            targets = ["volume", "s3"] if args.s3 else ["volume"]
            rows: dict[str, list[tuple[float, float, int]]] = {"plain": []}
            ratios: dict[str, list[float]] = {}
            dump_bytes = 0
            store_ctx = private_object_store(tls=True) if args.s3 else None
            store = store_ctx.__enter__() if store_ctx else None
            try:
                for run in range(args.runs):
                    elapsed, cpu = plain(pg, work / "plain.pgdump.zst")
                    rows["plain"].append((elapsed, cpu, 0))
                    print(
                        f"run {run + 1} pipeline: {elapsed:.1f} s, CPU {cpu:.1f} s (load {load()})",
                        flush=True,
                    )
                    for label, source in variants:
                        for target in targets if source is None else targets[:1]:
                            name = f"{label} to {target}"
                            seconds, cpu, peak, result = worker(
                                pg, *_request(base, database, target, run, work, store), source
                            )
                            rows.setdefault(name, []).append((seconds, cpu, peak))
                            ratios.setdefault(name, []).append(elapsed / seconds)
                            dump_bytes = int(result["observed"]["sizeBytes"])
                            print(
                                f"run {run + 1} worker ({name}): {seconds:.1f} s, CPU {cpu:.1f} s, peak RSS "
                                f"{peak / 1024:.0f} MiB, {elapsed / seconds:.2f}x (load {load()})",
                                flush=True,
                            )
                    shutil.rmtree(work / "volume", ignore_errors=True)
            finally:
                if store_ctx is not None:
                    store_ctx.__exit__(None, None, None)
        what = "pg_dump custom format" if args.engine == "postgres" else "mariadb-dump SQL"
        print(f"dump: {dump_bytes / MiB:.0f} MiB ({what}, uncompressed); {args.runs} runs each")
        base_time = statistics.median(r[0] for r in rows["plain"])
        base_cpu = statistics.median(r[1] for r in rows["plain"])
        print(
            f"{'pg_dump -Fc -Z0' if args.engine == 'postgres' else 'mariadb-dump'} | zstd -3 > file: {base_time:.1f} s ({dump_bytes / MiB / base_time:.0f} MiB/s), "
            f"CPU {base_cpu:.1f} s"
        )
        for name, measured in rows.items():
            if name == "plain":
                continue
            median = statistics.median(r[0] for r in measured)
            print(
                f"dbops-worker ({name}): {median:.1f} s ({dump_bytes / MiB / median:.0f} MiB/s), "
                f"{base_time / median:.2f}x the pipeline's throughput (median of the runs' own ratios "
                f"{statistics.median(ratios[name]):.2f}x), CPU {statistics.median(r[1] for r in measured):.1f} s, "
                f"worker peak RSS {max(r[2] for r in measured) / 1024:.0f} MiB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
