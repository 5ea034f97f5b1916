"""The worker's `backup` action (worker/backup/) against the real servers, the real dump tools and the real
S3-compatible store (versitygw over TLS): what it stores, what it publishes and when, what it leaves behind when the
dump fails in the middle, and where the credentials are (never in the dump tool's argv or environment).

Every stored backup is restored here with the engine's own tool (pg_restore, the mariadb client) into a fresh
database, and the table compared row by row with the original."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.conftest import WORKER, WorkerRun, request_for, run_worker, unique
from tests.object_store import ObjectStore
from tests.servers import Server
from worker.backup import codec
from worker.backup.dump_postgres import ArchiveReader

pytestmark = pytest.mark.slow

KEY = bytes(range(32))
ROWS = 2000


# --- helpers --------------------------------------------------------------------------------------------------


def make_database(server: Server, rows: int = ROWS, width: int = 40) -> str:
    """A fresh database with one table `t` of `rows` rows (incompressible text of `width` hex digits per row)."""
    name = unique("bk")
    server.query(f"CREATE DATABASE {name}")
    if server.engine == "postgres":
        server.query(
            "CREATE TABLE t (id int PRIMARY KEY, body text, note text);"
            f"INSERT INTO t SELECT g, (SELECT string_agg(md5(random()::text || g || s), '') "
            f"FROM generate_series(1, {max(1, width // 32)}) s), 'row ' || g FROM generate_series(1, {rows}) g;"
            "CREATE SEQUENCE counter; SELECT setval('counter', 42);",
            database=name,
        )
    else:
        server.query(
            "CREATE TABLE t (id int PRIMARY KEY, body longtext, note varchar(40)) ENGINE=InnoDB",
            database=name,
        )
        server.query(
            f"INSERT INTO t SELECT seq, REPEAT(MD5(RAND()), {max(1, width // 32)}), CONCAT('row ', seq) "
            f"FROM seq_1_to_{rows}",
            database=name,
        )
    return name


def rows_of(server: Server, database: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in server.query("SELECT id, body, note FROM t ORDER BY id", database=database)]


def volume_request(server: Server, database: str, path: Path, **spec: Any) -> dict[str, Any]:
    body = {
        "database": database,
        "name": f"b-{uuid.uuid4().hex[:8]}",
        "storage": {"type": "volume", "volume": {"path": str(path)}},
    }
    body.update(spec)
    return request_for(server, "DatabaseBackup", body)


def s3_request(server: Server, database: str, store: ObjectStore, prefix: str, **spec: Any) -> dict[str, Any]:
    s3 = {
        "endpoint": store.endpoint,
        "bucket": store.bucket,
        "prefix": prefix,
        "region": store.region,
        "forcePathStyle": True,
    }
    if not store.tls:
        s3["allowHttp"] = True
    body = {"database": database, "name": f"b-{uuid.uuid4().hex[:8]}", "storage": {"type": "s3", "s3": s3}}
    body.update(spec)
    return request_for(server, "DatabaseBackup", body)


def s3_env(store: ObjectStore, tmp_path: Path, key: bytes | None = None) -> dict[str, str]:
    access = tmp_path / "access-key"
    secret = tmp_path / "secret-key"
    access.write_text(store.access_key)
    secret.write_text(store.secret_key + "\n")
    env = {"DBOPS_S3_ACCESS_KEY_FILE": str(access), "DBOPS_S3_SECRET_KEY_FILE": str(secret)}
    if store.ca_path:
        env["DBOPS_S3_CA_FILE"] = store.ca_path
    if key is not None:
        env.update(key_env(tmp_path, key))
    return env


def key_env(tmp_path: Path, key: bytes) -> dict[str, str]:
    path = tmp_path / "backup-key"
    path.write_bytes(key)
    return {"DBOPS_BACKUP_KEY_FILE": str(path)}


def decode(stored: bytes, compression: str, key: bytes | None) -> bytes:
    """The dump tool's bytes back from what was stored (the restore action's job, done here by hand)."""
    data = stored
    if key is not None:
        decryptor = codec.Decryptor(key)
        data = decryptor.update(data) + decryptor.finish()
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if compression == "gzip":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    return data


def restore_with_tool(server: Server, dump: bytes) -> str:
    """Restore a dump with the engine's own client into a fresh database; return its name."""
    target = unique("rs")
    server.query(f"CREATE DATABASE {target}")
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    if server.engine == "postgres":
        argv = ["pg_restore", "--exit-on-error", "--no-owner", "-h", server.host, "-p", str(server.port)]
        argv += ["-U", server.admin_user, "-d", target]
        env["PGPASSWORD"] = server.admin_password
    else:
        argv = [
            "mariadb",
            "-h",
            server.host,
            "-P",
            str(server.port),
            "--protocol=TCP",
            "-u",
            server.admin_user,
        ]
        argv += ["--skip-ssl", target]
        env["MYSQL_PWD"] = server.admin_password
    done = subprocess.run(argv, input=dump, env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return target


def stored_keys(store: ObjectStore, prefix: str) -> list[str]:
    root = store.object_path(prefix)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def manifest_of(result: dict[str, Any]) -> dict[str, Any]:
    return result["observed"]


# --- a good backup --------------------------------------------------------------------------------------------


def test_postgres_backup_to_a_volume_restores_every_row(pg: Server, tmp_path: Path) -> None:
    database = make_database(pg)
    request = volume_request(pg, database, tmp_path)
    done = run_worker(pg, "backup", request)
    assert done.code == 0, done.stdout + done.stderr
    name = request["spec"]["name"]
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["dump.pgdump.zst", "manifest.json"]
    stored = (tmp_path / name / "dump.pgdump.zst").read_bytes()
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["format"] == "dbops-backup/v1"
    assert manifest["engine"] == "postgres" and manifest["database"] == database
    assert manifest["server_version"].startswith("15.") and manifest["tool"] == "pg_dump"
    assert manifest["dump_format"] == "custom" and manifest["compression"] == "zstd"
    assert manifest["encryption"] is None
    assert manifest["stored_bytes"] == len(stored)
    assert manifest["sha256"] == hashlib.sha256(stored).hexdigest()
    dump = decode(stored, "zstd", None)
    assert manifest["dump_bytes"] == len(dump) and dump.startswith(b"PGDMP")

    observed = done.result["observed"]
    assert observed["uri"] == f"file://{tmp_path / name / 'dump.pgdump.zst'}"
    assert observed["sha256"] == manifest["sha256"] and observed["encryption"] == "none"
    assert done.result["server"]["flavor"] == "postgres" and done.result["error"] is None
    assert done.result["changes"][-1] == f"published file://{tmp_path / name / 'manifest.json'}"

    target = restore_with_tool(pg, dump)
    assert rows_of(pg, target) == rows_of(pg, database)
    assert len(rows_of(pg, target)) == ROWS
    assert pg.query("SELECT last_value FROM counter", database=target) == [(42,)]

    assert (tmp_path / name).stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / name).iterdir()} == {0o600}

    # The same request again: the published backup is reported as it is, nothing is dumped or written again.
    mtime = (tmp_path / name / "dump.pgdump.zst").stat().st_mtime_ns
    again = run_worker(pg, "backup", request)
    assert again.code == 0 and again.result["changes"] == []
    assert again.result["observed"] == observed
    assert (tmp_path / name / "dump.pgdump.zst").stat().st_mtime_ns == mtime
    # The same name for another database: refused, the published backup kept.
    other = {**request, "spec": {**request["spec"], "database": make_database(pg, rows=1)}}
    clash = run_worker(pg, "backup", other)
    assert clash.code == 2 and clash.error["code"] == "AlreadyExists", clash.stdout
    assert (tmp_path / name / "dump.pgdump.zst").stat().st_mtime_ns == mtime


def test_compression_level_is_the_one_asked_for(pg: Server, tmp_path: Path) -> None:
    # What the stored bytes themselves show of the level: zstd's window grows with it (512 KiB at 1, 2 MiB at 3,
    # 8 MiB at 19 for a stream of unknown size), gzip's header flags the fastest (4) and the best (2) level.
    database = make_database(pg, rows=200)
    cases = [
        ({"algorithm": "zstd", "level": 1}, 1, 512 << 10),
        ({"algorithm": "zstd"}, 3, 2 << 20),
        ({"algorithm": "zstd", "level": 19}, 19, 8 << 20),
        ({"algorithm": "gzip", "level": 1}, 1, 4),
        ({"algorithm": "gzip"}, 6, 0),
        ({"algorithm": "gzip", "level": 9}, 9, 2),
    ]
    for compression, level, shown in cases:
        request = volume_request(pg, database, tmp_path, compression=compression)
        done = run_worker(pg, "backup", request)
        assert done.code == 0, done.stdout + done.stderr
        name = request["spec"]["name"]
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["compression_level"] == level, compression
        (stored,) = (tmp_path / name).glob("dump.pgdump.*")
        data = stored.read_bytes()
        if compression["algorithm"] == "zstd":
            assert zstandard.get_frame_parameters(data).window_size == shown, compression
        else:
            assert data[:3] == b"\x1f\x8b\x08" and data[8] == shown, compression
        assert decode(data, compression["algorithm"], None).startswith(b"PGDMP")


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_backup_to_s3_encrypted_restores_every_row(
    server: Server, object_store_tls: ObjectStore, tmp_path: Path, compression: str
) -> None:
    store = object_store_tls
    database = make_database(server)
    prefix = f"backups/{uuid.uuid4().hex[:8]}"
    request = s3_request(
        server, database, store, prefix, compression={"algorithm": compression}, encryption={"enabled": True}
    )
    mark = store.access_log_mark()
    done = run_worker(server, "backup", request, env=s3_env(store, tmp_path, KEY))
    assert done.code == 0, done.stdout + done.stderr
    name = request["spec"]["name"]
    ext = {"postgres": ".pgdump", "mariadb": ".sql"}[server.engine] + codec.EXTENSIONS[compression] + ".enc"
    assert stored_keys(store, prefix) == [f"{name}/dump{ext}", f"{name}/manifest.json"]
    stored = store.object_path(f"{prefix}/{name}/dump{ext}").read_bytes()
    manifest = json.loads(store.object_path(f"{prefix}/{name}/manifest.json").read_bytes())
    assert manifest["sha256"] == hashlib.sha256(stored).hexdigest()
    assert manifest["encryption"] == "aes-256-gcm" and manifest["compression"] == compression
    assert done.result["observed"]["uri"] == f"s3://{store.bucket}/{prefix}/{name}/dump{ext}"
    # The manifest is the last thing written, after the data was read back.
    ops = [(e.operation, e.key) for e in store.access_log()[mark:] if e.key.startswith(prefix)]
    assert ops[-1] == ("s3_PutObject", f"{prefix}/{name}/manifest.json"), ops
    assert ("s3_GetObject", f"{prefix}/{name}/dump{ext}") in ops
    assert store.pending_multipart_uploads(f"{prefix}/{name}/dump{ext}") == []
    # Encrypted: nothing of the table is readable in what was stored.
    first_body = rows_of(server, database)[0][1]
    assert first_body.encode() not in stored and b"row 1" not in stored

    for text in (done.stdout, done.stderr, stored.decode("latin-1"), json.dumps(manifest)):
        assert server.admin_password not in text and store.secret_key not in text
    dump = decode(stored, compression, KEY)
    assert server.admin_password.encode() not in dump
    if server.engine == "mariadb":
        assert dump.rstrip().splitlines()[-1].startswith(b"-- Dump completed")
    target = restore_with_tool(server, dump)
    assert rows_of(server, target) == rows_of(server, database)

    with pytest.raises(Exception, match=r"cannot be decrypted"):
        decode(stored, compression, bytes(32))


# --- failures -------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _written(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_and_catch(server: Server, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start the worker; find its dump tool as it starts and hold it still (SIGSTOP)."""
    worker = subprocess.Popen([WORKER, "backup"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tool_name = "pg_dump" if server.engine == "postgres" else "mariadb-dump"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in _children(worker.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                # The dump itself, not the `--version` probe before it.
                if argv[0].endswith(tool_name.encode()) and b"--version" not in argv:
                    os.kill(child, signal.SIGSTOP)
                    return worker, child
        time.sleep(0.002)
    worker.kill()
    raise AssertionError("the dump tool never started")


def run_until_written(tool: int, amount: int) -> None:
    """Let the held tool run in short steps until it has written `amount` bytes; it is held again after."""
    deadline = time.monotonic() + 60
    while _written(tool) < amount and time.monotonic() < deadline:
        os.kill(tool, signal.SIGCONT)
        time.sleep(0.002)
        os.kill(tool, signal.SIGSTOP)
        time.sleep(0.01)
    assert _written(tool) >= amount, "the dump ended before it could be stopped halfway"


@pytest.mark.parametrize("fault", ["tool killed", "worker terminated"])
def test_a_dump_stopped_in_the_middle_publishes_nothing_and_leaves_nothing(
    server: Server, object_store_tls: ObjectStore, tmp_path: Path, fault: str
) -> None:
    store = object_store_tls
    # About 24 MiB of incompressible rows: the dump takes long enough to be caught halfway.
    database = make_database(server, rows=12000, width=2048)
    prefix = f"killed/{uuid.uuid4().hex[:8]}"
    request = s3_request(server, database, store, prefix, compression={"algorithm": "none"})
    env = server.worker_env(**s3_env(store, tmp_path), DBOPS_REQUEST=json.dumps(request))
    mark = store.access_log_mark()
    worker, tool = start_and_catch(server, env)

    # While it runs: no secret in its argv or environment; the password is in a 0600 file it was pointed at.
    cmdline = Path(f"/proc/{tool}/cmdline").read_bytes()
    environ = Path(f"/proc/{tool}/environ").read_bytes()
    for secret in (server.admin_password, store.secret_key):
        assert secret.encode() not in cmdline and secret.encode() not in environ
    variables = dict(v.split(b"=", 1) for v in environ.split(b"\0") if b"=" in v)
    assert not [k for k in variables if k.startswith(b"DBOPS_")]
    if server.engine == "postgres":
        secret_file = Path(variables[b"PGPASSFILE"].decode())
    else:
        (option,) = [a for a in cmdline.split(b"\0") if a.startswith(b"--defaults-file=")]
        secret_file = Path(option.split(b"=", 1)[1].decode())
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert secret_file.parent.stat().st_mode & 0o777 == 0o700
    assert server.admin_password in secret_file.read_text()

    # Halfway (more than one 8 MiB part out), the tool dies, or the worker is told to stop (a Job deadline).
    run_until_written(tool, 12 << 20)
    if fault == "tool killed":
        os.kill(tool, signal.SIGKILL)
    else:
        worker.send_signal(signal.SIGTERM)
        os.kill(tool, signal.SIGCONT)
    stdout, stderr = worker.communicate(timeout=120)
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert worker.returncode == 1, stdout.decode() + stderr.decode()
    assert result["ok"] is False and result["error"]["class"] == "transient"
    message = result["error"]["message"]
    if fault == "tool killed":
        assert result["error"]["code"] == "DumpFailed"
        assert "killed by signal 9" in message and "nothing was published" in message
    else:
        assert result["error"]["code"] == "Terminated" and "before the backup was published" in message
        assert not Path(f"/proc/{tool}").exists() or "zombie" in Path(f"/proc/{tool}/status").read_text()
    # Nothing published, nothing left: no manifest, no data object, no pending upload, no credentials file.
    assert stored_keys(store, prefix) == []
    # (Only this test's key: the session's bucket is shared, and tests/test_object_store.py may leave a pending
    # upload of its own behind, as it explains.)
    data_key = (
        f"{prefix}/{request['spec']['name']}/dump{'.pgdump' if server.engine == 'postgres' else '.sql'}"
    )
    assert store.pending_multipart_uploads(data_key) == []
    assert not secret_file.parent.exists()
    # It did upload parts before it failed (the test really caught it in the middle)...
    ops = [e.operation for e in store.access_log()[mark:] if e.key.startswith(prefix)]
    assert "s3_UploadPart" in ops and "s3_CompleteMultipartUpload" in ops
    # ... and removed what it had stored (one bulk delete of what it listed under the backup's name).
    assert "s3_DeleteObjects" in store.operations(since=mark)
    for text in (stdout.decode(), stderr.decode()):
        assert server.admin_password not in text and store.secret_key not in text


def test_a_dump_that_exits_0_without_its_end_is_not_published(server: Server, tmp_path: Path) -> None:
    # The real dump tool behind a wrapper that passes on only the first 50 000 bytes and then exits 0: the tool's
    # exit status alone would publish a truncated dump; the end-of-dump evidence does not.
    real = "pg_dump" if server.engine == "postgres" else "mariadb-dump"
    real_path = subprocess.run(["which", real], capture_output=True, text=True, check=True).stdout.strip()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / real).write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec {real_path} --version\n'
        f'{real_path} "$@" | head -c 50000\nexit 0\n'
    )
    (fake / real).chmod(0o755)
    volume = tmp_path / "volume"
    volume.mkdir()
    request = volume_request(server, make_database(server), volume)
    done = run_worker(server, "backup", request, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert done.code == 1, done.stdout + done.stderr
    assert done.error["code"] == "DumpIncomplete", done.stdout
    assert "exited 0 but the dump is not complete" in done.error["message"]
    assert [p for p in volume.rglob("*") if p.is_file()] == []


def test_object_store_down_is_transient(pg: Server, object_store_plain: ObjectStore, tmp_path: Path) -> None:
    request = s3_request(pg, make_database(pg, rows=10), object_store_plain, "down")
    with object_store_plain.down():
        done = run_worker(pg, "backup", request, env=s3_env(object_store_plain, tmp_path))
    assert done.code == 1, done.stdout + done.stderr
    assert done.error["code"] == "StorageUnavailable" and done.error["class"] == "transient"
    # Back up: the same request succeeds.
    assert run_worker(pg, "backup", request, env=s3_env(object_store_plain, tmp_path)).code == 0


def test_missing_database_is_permanent_and_leaves_nothing(pg: Server, tmp_path: Path) -> None:
    request = volume_request(pg, "no_such_db", tmp_path)
    done = run_worker(pg, "backup", request)
    assert done.code == 2, done.stdout + done.stderr
    assert done.error["code"] == "ObjectNotFound" and "no_such_db" in done.error["message"]
    assert list(tmp_path.rglob("*")) == [] or all(p.is_dir() for p in tmp_path.rglob("*"))


def test_dump_tool_older_than_the_server_is_refused_before_dumping(pg: Server, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    ran = tmp_path / "ran"
    (fake / "pg_dump").write_text(
        f"#!/bin/sh\n[ \"$1\" = --version ] && echo 'pg_dump (PostgreSQL) 14.12' && exit 0\ntouch {ran}\n"
    )
    (fake / "pg_dump").chmod(0o755)
    volume = tmp_path / "volume"
    volume.mkdir()
    request = volume_request(pg, make_database(pg, rows=1), volume)
    done = run_worker(pg, "backup", request, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert done.code == 2, done.stdout + done.stderr
    assert done.error["code"] == "Unsupported"
    assert "newer than this worker's pg_dump 14.12" in done.error["message"]
    assert not ran.exists() and list(volume.iterdir()) == []


def test_wrong_s3_secret_is_permanent_and_the_secret_is_not_shown(
    pg: Server, object_store_tls: ObjectStore, tmp_path: Path
) -> None:
    env = s3_env(object_store_tls, tmp_path)
    Path(env["DBOPS_S3_SECRET_KEY_FILE"]).write_text("wrong-" + object_store_tls.secret_key)
    request = s3_request(pg, make_database(pg, rows=1), object_store_tls, "refused")
    done = run_worker(pg, "backup", request, env=env)
    assert done.code == 2, done.stdout + done.stderr
    assert done.error["code"] == "StorageAccessDenied"
    assert object_store_tls.secret_key not in done.stdout + done.stderr


def test_missing_key_file_is_refused_before_anything_runs(pg: Server, tmp_path: Path) -> None:
    request = volume_request(pg, "whatever", tmp_path, encryption={})
    done = run_worker(pg, "backup", request)
    assert done.code == 2 and done.error["code"] == "InvalidRequest"
    assert "DBOPS_BACKUP_KEY_FILE" in done.error["message"]
    bad = tmp_path / "short-key"
    bad.write_bytes(b"too short")
    done = run_worker(pg, "backup", request, env={"DBOPS_BACKUP_KEY_FILE": str(bad)})
    assert done.code == 2 and "256-bit key" in done.error["message"] and "too short" not in done.stdout


def test_request_shape_is_validated(pg: Server, tmp_path: Path) -> None:
    request = volume_request(pg, "db", tmp_path)
    request["spec"]["storage"]["s3"] = {"bucket": "abc"}
    done: WorkerRun = run_worker(pg, "backup", request)
    assert done.code == 2 and "exactly the block its type names" in done.error["message"]
    request = volume_request(pg, "db", tmp_path, compression={"algorithm": "gzip", "level": 12})
    done = run_worker(pg, "backup", request)
    assert done.code == 2 and "request.spec.compression.level" in done.error["message"]
    done = run_worker(pg, "apply", volume_request(pg, "db", tmp_path))
    assert done.code == 2 and "supports only the backup action" in done.error["message"]


# --- the pieces -----------------------------------------------------------------------------------------------


def test_encryption_frames_detect_changes_and_truncation() -> None:
    plain = os.urandom(3 * codec.FRAME_SIZE + 123)
    encryptor = codec.Encryptor(KEY)
    sealed = b"".join(encryptor.update(plain[i : i + 99999]) for i in range(0, len(plain), 99999))
    sealed += encryptor.finish()
    decryptor = codec.Decryptor(KEY)
    assert decryptor.update(sealed) + decryptor.finish() == plain
    flipped = bytearray(sealed)
    flipped[len(sealed) // 2] ^= 1
    with pytest.raises(codec.PermanentError, match="changed"):
        codec.Decryptor(KEY).update(bytes(flipped))
    cut = codec.Decryptor(KEY)
    cut.update(sealed[: -(codec.FRAME_SIZE // 2)])
    with pytest.raises(codec.PermanentError, match="cut short"):
        cut.finish()


def test_zstd_output_is_one_standard_frame(tmp_path: Path) -> None:
    # libzstd compresses on a thread of its own; what it writes is still one ordinary frame for `zstd -d` and restore.
    plain = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(400_000))
    compressor = codec.compressor("zstd", 3)
    step = 99_999
    stored = b"".join(compressor.update(plain[i : i + step]) for i in range(0, len(plain), step))
    stored += compressor.finish()
    assert len(stored) < len(plain) * 0.7
    decompressor = codec.decompressor("zstd")
    assert b"".join(decompressor.update(stored[i : i + step]) for i in range(0, len(stored), step)) == plain
    assert decompressor.finish() == b""
    if shutil.which("zstd"):
        done = subprocess.run(["zstd", "-d", "-c"], input=stored, capture_output=True, check=True)
        assert done.stdout == plain
        (tmp_path / "dump.zst").write_bytes(stored)
        listed = subprocess.run(["zstd", "-lv", str(tmp_path / "dump.zst")], capture_output=True, text=True, check=True)
        assert "Zstandard Frames: 1\n" in listed.stdout, listed.stdout


def test_archive_reader_needs_every_data_block(pg: Server) -> None:
    database = make_database(pg, rows=300)
    env = {"PATH": os.environ["PATH"], "PGPASSWORD": pg.admin_password}
    argv = ["pg_dump", "-Fc", "-Z0", "-h", pg.host, "-p", str(pg.port), "-U", pg.admin_user, database]
    dump = subprocess.run(argv, env=env, capture_output=True, check=True).stdout
    # Pieces of any size, so chunk headers and rows are split at every place (the fast path over the rows included).
    for size in (1, 5, 6, 7, 1000, 4099, len(dump)):
        whole = ArchiveReader()
        for i in range(0, len(dump), size):
            whole.feed(dump[i : i + size])
        assert whole.complete() is None and whole.data_entries, size
    for cut in (len(dump) - 1, len(dump) - 6, len(dump) // 2, 10):
        reader = ArchiveReader()
        reader.feed(dump[:cut])
        assert reader.complete() is not None, cut
    extra = ArchiveReader()
    extra.feed(dump + b"\x01")
    assert extra.complete() is not None


def test_other_actions_do_not_load_the_backup_dependencies() -> None:
    # A no-op apply stays as fast as before: the object-store client and zstd load only for backup and restore.
    code = (
        "import sys, worker.cli, worker.engine, worker.adapters.postgres, worker.adapters.mysql\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "worker" in loaded
    assert loaded & {"obstore", "zstandard"} == set()


# --- restore --------------------------------------------------------------------------------------------------


def restore_request(backup: dict[str, Any], database: str, **spec: Any) -> dict[str, Any]:
    """The DatabaseRestore request for what `backup` stored, into `database`."""
    out = json.loads(json.dumps(backup))
    out["kind"] = "DatabaseRestore"
    out["owner"]["kind"] = "DatabaseRestore"
    out["spec"] = {
        "database": database,
        "name": backup["spec"]["name"],
        "storage": backup["spec"]["storage"],
        **spec,
    }
    return out


def empty_database(server: Server) -> str:
    name = unique("rt")
    server.query(f"CREATE DATABASE {name}")
    return name


@pytest.mark.parametrize("storage", ["s3", "volume"])
def test_round_trip_compressed_and_encrypted(
    server: Server, object_store_tls: ObjectStore, tmp_path: Path, storage: str
) -> None:
    store = object_store_tls
    database = make_database(server)
    if storage == "s3":
        backup = s3_request(server, database, store, f"rt/{uuid.uuid4().hex[:8]}", encryption={})
        env = s3_env(store, tmp_path, KEY)
    else:
        (tmp_path / "volume").mkdir()
        backup = volume_request(server, database, tmp_path / "volume", encryption={})
        env = key_env(tmp_path, KEY)
    assert run_worker(server, "backup", backup, env=env).code == 0
    original = rows_of(server, database)
    server.query(f"DROP DATABASE {database}")

    target = empty_database(server)
    done = run_worker(server, "restore", restore_request(backup, target), env=env)
    assert done.code == 0, done.stdout + done.stderr
    assert rows_of(server, target) == original
    observed = done.result["observed"]
    assert observed["database"] == target and observed["sourceDatabase"] == database
    assert observed["tables"] >= 1 and observed["sizeBytes"] > 0
    if server.engine == "postgres":
        assert server.query("SELECT last_value FROM counter", database=target) == [(42,)]

    # Into the same, now non-empty, database: refused, nothing written.
    server.query("DELETE FROM t WHERE id > 10", database=target)
    again = run_worker(server, "restore", restore_request(backup, target), env=env)
    assert again.code == 2 and again.error["code"] == "TargetNotEmpty", again.stdout
    assert "overwrite: true" in again.error["message"]
    assert len(rows_of(server, target)) == 10

    # With the wrong key: permanent, clear, nothing written.
    other = empty_database(server)
    (tmp_path / "wrong").mkdir()
    wrong = {**env, **key_env(tmp_path / "wrong", bytes(32))}
    done = run_worker(server, "restore", restore_request(backup, other), env=wrong)
    assert done.code == 2 and done.error["code"] == "DecryptionFailed", done.stdout
    assert "DBOPS_BACKUP_KEY_FILE" in done.error["message"]
    assert server.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
        + ("'public'" if server.engine == "postgres" else f"'{other}'"),
        database=other,
    ) == [(0,)]


def test_corrupted_backup_is_refused_before_anything_is_written(pg: Server, tmp_path: Path) -> None:
    database = make_database(pg, rows=200)
    backup = volume_request(pg, database, tmp_path, compression={"algorithm": "none"})
    assert run_worker(pg, "backup", backup).code == 0
    data = tmp_path / backup["spec"]["name"] / "dump.pgdump"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    target = empty_database(pg)
    done = run_worker(pg, "restore", restore_request(backup, target))
    assert done.code == 2 and done.error["code"] == "CorruptBackup", done.stdout
    assert "sha256" in done.error["message"] and "Nothing was written" in done.error["message"]
    assert pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", database=target) == [(0,)]


def test_restore_of_a_backup_that_does_not_exist(pg: Server, tmp_path: Path) -> None:
    backup = volume_request(pg, "whatever", tmp_path)
    done = run_worker(pg, "restore", restore_request(backup, empty_database(pg)))
    assert done.code == 2 and done.error["code"] == "BackupNotFound", done.stdout
    done = run_worker(pg, "restore", restore_request(backup, "postgres"))
    assert (
        done.code == 2
        and done.error["code"] == "InvalidRequest"
        and "system database" in done.error["message"]
    )


def test_mariadb_dump_version_rules() -> None:
    from worker.backup import dump_mysql
    from worker.errors import PermanentError

    tool = dump_mysql.tool_version(
        "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
    )
    assert tool == dump_mysql.ToolVersion((10, 11, 19), True)
    # MariaDB 11's clients (Debian trixie's 11.8) say it differently.
    eleven = dump_mysql.tool_version(
        "mariadb-dump from 11.8.9-MariaDB, client 10.20 for debian-linux-gnu (x86_64)"
    )
    assert eleven == dump_mysql.ToolVersion((11, 8, 9), True)
    dump_mysql.check_versions(eleven, "mariadb", (11, 8, 2), "11.8.2-MariaDB")
    dump_mysql.check_versions(eleven, "mariadb", (10, 11, 6), "10.11.6-MariaDB")
    with pytest.raises(PermanentError, match=r"newer than this worker.s dump tool 11\.8\.9-MariaDB"):
        dump_mysql.check_versions(eleven, "mariadb", (12, 0, 2), "12.0.2-MariaDB")
    dump_mysql.check_versions(tool, "mariadb", (10, 11, 6), "10.11.6-MariaDB")
    dump_mysql.check_versions(tool, "mariadb", (10, 6, 20), "10.6.20-MariaDB")
    with pytest.raises(PermanentError, match=r"newer than this worker.s dump tool 10\.11\.19-MariaDB"):
        dump_mysql.check_versions(tool, "mariadb", (11, 4, 2), "11.4.2-MariaDB")
    with pytest.raises(PermanentError, match="with mysql's own client"):
        dump_mysql.check_versions(tool, "mysql", (8, 0, 36), "8.0.36")
    mysql = dump_mysql.tool_version(
        "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
    )
    assert mysql == dump_mysql.ToolVersion((8, 0, 36), False)
    # Quotes and backslashes survive the option file; a line break cannot go in.
    assert dump_mysql.option_file("admin", 'p"w\\d') == '[client]\nuser="admin"\npassword="p\\"w\\\\d"\n'
    with pytest.raises(PermanentError):
        dump_mysql.option_file("admin", "two\nlines")


def test_mariadb_tools_get_the_tls_mode_spelled_out(tmp_path: Path) -> None:
    """MariaDB 11.4+ clients verify the server's certificate by default and 10.11's do not: every mode says what it
    wants, in options both accept; absent is require, as for the worker's own connection."""
    from worker.backup import dump_mysql

    ca = tmp_path / "ca.pem"
    ca.write_text("x")

    def tls(mode: str | None, tls_ca: str | None = None) -> list[str]:
        conn = dump_mysql.Connection("db", 3306, mode, tls_ca, None, str(tmp_path / "absent-key"))
        return [a for a in dump_mysql.dump_argv("mariadb-dump", conn, "/o", "d") if "ssl" in a]

    assert tls("disable", str(ca)) == ["--skip-ssl"]
    assert tls(None) == tls("require") == ["--ssl", "--skip-ssl-verify-server-cert"]
    assert tls("require", str(ca)) == ["--ssl", "--skip-ssl-verify-server-cert", f"--ssl-ca={ca}"]
    assert tls("verify-full", str(ca)) == ["--ssl", "--ssl-verify-server-cert", f"--ssl-ca={ca}"]


def test_a_dump_that_fails_at_once_leaves_nothing_in_the_bucket(
    maria: Server, object_store_tls: ObjectStore, tmp_path: Path
) -> None:
    prefix = f"missing/{uuid.uuid4().hex[:8]}"
    request = s3_request(maria, "no_such_db", object_store_tls, prefix)
    done = run_worker(maria, "backup", request, env=s3_env(object_store_tls, tmp_path))
    assert done.code == 2, done.stdout + done.stderr
    assert done.error["code"] == "ObjectNotFound" and "no_such_db" in done.error["message"]
    assert stored_keys(object_store_tls, prefix) == []
    assert (
        object_store_tls.pending_multipart_uploads(f"{prefix}/{request['spec']['name']}/dump.sql.zst") == []
    )


def test_postgres_restore_gives_the_objects_to_the_target_databases_owner(pg: Server, tmp_path: Path) -> None:
    database = make_database(pg, rows=50)
    backup = volume_request(pg, database, tmp_path)
    assert run_worker(pg, "backup", backup).code == 0
    owner = unique("owner")
    pg.query(f"CREATE ROLE {owner} NOLOGIN")
    target = unique("rt")
    pg.query(f"CREATE DATABASE {target} OWNER {owner}")
    done = run_worker(pg, "restore", restore_request(backup, target))
    assert done.code == 0, done.stdout + done.stderr
    assert rows_of(pg, target) == rows_of(pg, database)
    owners = pg.query(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public'",
        database=target,
    )
    assert owners == [(owner,)]
