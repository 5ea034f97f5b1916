"""What `dbops-worker backup` costs against the plain pipeline `pg_dump -Fc -Z0 | zstd -3 > file` on the same machine.

    python bench/backup.py [--size-mib N] [--runs N] [--s3]

Starts a private PostgreSQL (tests.servers), fills one database with about N MiB of table data (default 1024), then
times, alternately, the plain pipeline and the worker backing the same database up to a directory (zstd level 3,
and with --s3 also to a private versitygw over TLS), and prints the median wall times, the ratio (the goal: the
worker at least 0.8x the pipeline's throughput) and the worker's own peak RSS (its VmHWM, without the dump tool's;
goal under 128 MiB). The worker does more than the pipeline: it parses the archive, hashes the stored bytes and reads
them back to verify before it publishes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.object_store import private_object_store
from tests.servers import Server, private_servers

WORKER = str(Path(sys.executable).with_name("dbops-worker"))
MiB = 1 << 20


def fill(pg: Server, size_mib: int) -> str:
    rows = size_mib * 1024
    if pg.query("SELECT 1 FROM pg_database WHERE datname = 'bench_backup'"):
        # A server named by DBOPS_TEST_POSTGRES_URL keeps its database between runs: reuse it when it has the size.
        if pg.query("SELECT count(*) FROM t", database="bench_backup")[0][0] == rows:
            return "bench_backup"
        pg.query("DROP DATABASE bench_backup")
    pg.query("CREATE DATABASE bench_backup")
    # ~1 KiB rows of hexadecimal text (compresses about 2:1, like much real data), in batches.
    pg.query("CREATE TABLE t (id bigint PRIMARY KEY, body text)", database="bench_backup")
    batch = 100_000
    for start in range(0, rows, batch):
        pg.query(
            "INSERT INTO t SELECT g, (SELECT string_agg(md5(g::text || s), '') FROM generate_series(1, 32) s) "
            f"FROM generate_series({start + 1}, {min(rows, start + batch)}) g",
            database="bench_backup",
        )
    return "bench_backup"


def plain(pg: Server, out: Path) -> float:
    env = {"PATH": os.environ["PATH"], "PGPASSWORD": pg.admin_password}
    command = (
        f"pg_dump -Fc -Z0 -h {pg.host} -p {pg.port} -U {pg.admin_user} bench_backup | zstd -3 -q -o {out} -f"
    )
    started = time.perf_counter()
    subprocess.run(["/bin/bash", "-o", "pipefail", "-c", command], env=env, check=True)
    return time.perf_counter() - started


def worker(
    pg: Server, request: dict[str, object], env: dict[str, str]
) -> tuple[float, int, dict[str, object]]:
    full = pg.worker_env(**env, DBOPS_REQUEST=json.dumps(request))
    started = time.perf_counter()
    proc = subprocess.Popen([WORKER, "backup"], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    stdout, stderr = proc.communicate()
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    if proc.returncode != 0:
        raise RuntimeError(f"the worker failed: {result['error']}\n{stderr.decode()}")
    return elapsed, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also back up to a private versitygw over TLS")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbops-bench-backup-"))
    try:
        with private_servers(("postgres",)) as servers:
            pg = servers["postgres"]
            started = time.perf_counter()
            database = fill(pg, args.size_mib)
            size = pg.query(f"SELECT pg_database_size('{database}')")[0][0]
            print(f"database: {size / MiB:.0f} MiB on disk, filled in {time.perf_counter() - started:.0f} s")
            connection = pg.connection()
            base = {"kind": "DatabaseBackup", "engine": "postgres", "connection": connection,
                    "owner": {"kind": "DatabaseBackup", "name": "bench", "namespace": "default"}}  # fmt: skip
            times: dict[str, list[float]] = {"plain": [], "volume": [], "s3": []}
            peaks: dict[str, list[int]] = {"volume": [], "s3": []}
            dump_bytes = 0
            store_ctx = private_object_store(tls=True) if args.s3 else None
            store = store_ctx.__enter__() if store_ctx else None
            try:
                for run in range(args.runs):
                    times["plain"].append(plain(pg, work / "plain.pgdump.zst"))
                    volume = work / "volume"
                    shutil.rmtree(volume, ignore_errors=True)
                    volume.mkdir()
                    spec = {"database": database, "name": f"run{run}",
                            "storage": {"type": "volume", "volume": {"path": str(volume)}}}  # fmt: skip
                    elapsed, peak, result = worker(pg, {**base, "spec": spec}, {})
                    times["volume"].append(elapsed)
                    peaks["volume"].append(peak)
                    dump_bytes = int(result["observed"]["sizeBytes"])
                    if store is not None:
                        (work / "access").write_text(store.access_key)
                        (work / "secret").write_text(store.secret_key)
                        s3 = {"endpoint": store.endpoint, "bucket": store.bucket, "prefix": "bench",
                              "forcePathStyle": True}  # fmt: skip
                        spec = {
                            "database": database,
                            "name": f"run{run}",
                            "storage": {"type": "s3", "s3": s3},
                        }
                        env = {"DBOPS_S3_ACCESS_KEY_FILE": str(work / "access"),
                               "DBOPS_S3_SECRET_KEY_FILE": str(work / "secret"),
                               "DBOPS_S3_CA_FILE": str(store.ca_path)}  # fmt: skip
                        elapsed, peak, _ = worker(pg, {**base, "spec": spec}, env)
                        times["s3"].append(elapsed)
                        peaks["s3"].append(peak)
            finally:
                if store_ctx is not None:
                    store_ctx.__exit__(None, None, None)
        print(
            f"dump: {dump_bytes / MiB:.0f} MiB (pg_dump custom format, uncompressed); {args.runs} runs each"
        )
        base_time = statistics.median(times["plain"])
        print(
            f"pg_dump -Fc -Z0 | zstd -3 > file: {base_time:.1f} s ({dump_bytes / MiB / base_time:.0f} MiB/s)"
        )
        for target in ("volume", "s3"):
            if not times[target]:
                continue
            median = statistics.median(times[target])
            print(
                f"dbops-worker backup to {target}: {median:.1f} s ({dump_bytes / MiB / median:.0f} MiB/s), "
                f"{base_time / median:.2f}x the pipeline's throughput, worker peak RSS "
                f"{max(peaks[target]) / 1024:.0f} MiB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
