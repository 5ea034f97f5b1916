"""The `backup` and `restore` actions, start to result.

A backup:

1. reads the files the environment names (object-store keys, encryption key) and refuses a bad one before
   anything else; a backup whose manifest is already stored is reported as it is, not made again;
2. connects once to learn the server's version and refuses a dump tool older than the server;
3. writes the admin credentials into a 0600 file in a private directory (removed at exit) and starts the dump
   tool with a minimal environment that holds no secret;
4. streams the tool's stdout through the end-of-dump check, compression and encryption into the storage, hashing
   the stored bytes as they go (nothing is held but the pieces in flight);
5. publishes, by writing the manifest last, only when the tool exited 0, the end-of-dump evidence was seen and
   the stored object, read back, has the size and sha256 that were sent; otherwise it removes what it stored and
   ends with a classified error.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol, cast

from dbops_api.backup import DEFAULT_LEVEL
from worker.backup import codec, dump_mysql, dump_postgres, manifest
from worker.backup.process import (
    STDERR_LINES,
    TOOL_EXIT_TIMEOUT,
    private_dir,
    server_info,
    tool_env,
    tool_failed,
    version_of,
    write_private,
)
from worker.backup.storage import Storage, open_storage
from worker.errors import PermanentError, TransientError, WorkerError, internal_error
from worker.request import Request, Secrets
from worker.result import Result

READ_CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
DATA_NAME = "dump"


class Watch(Protocol):
    def feed(self, data: bytes) -> None: ...

    def complete(self) -> str | None: ...


@dataclass
class Tool:
    """One engine's dump tool, ready to run."""

    name: str
    version: str
    argv: list[str]
    env: dict[str, str]
    dump_format: str  # custom | sql
    extension: str
    evidence: str
    watch: Watch


@dataclass
class Streamed:
    dump_bytes: int = 0
    stored_bytes: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)
    failure: BaseException | None = None


def run(action: str, request: Request, secrets: Secrets, redact: list[str]) -> Result:
    """Carry out `backup` (or `restore`). Never raises a WorkerError: it ends up in the result. The secrets it
    reads (the object store's secret key) are added to `redact`."""
    started = time.monotonic()
    result = Result(kind=request.kind, action=action, warnings=list(request.warnings))
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        if action == "backup":
            _backup(request, secrets, result, redact)
        else:
            from worker.backup import restore

            restore.restore(request, secrets, result, redact)
    except WorkerError as exc:
        result.error = exc
    except Exception as exc:
        result.error = internal_error(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
        result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _terminated(signum: int, frame: FrameType | None) -> None:
    # A Job deadline or a deleted Pod: unwind, so the dump tool is stopped, what was stored removed and the
    # credentials file deleted; the result says so (never "complete").
    raise TransientError("Terminated", "the worker was stopped (SIGTERM) before the backup was published")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run_name(spec: dict[str, Any]) -> str:
    """The backup's name: `name`, or with `perRun` the name of the Job running it (a schedule's run)."""
    if not spec.get("perRun"):
        return str(spec["name"])
    job = os.environ.get("DBOPS_JOB_NAME", "")
    if not _JOB_NAME.fullmatch(job):
        raise PermanentError(
            "InvalidRequest",
            "environment: DBOPS_JOB_NAME must be the Job's name (request.spec.perRun names each run after its Job; "
            "the CronJob sets it from the Pod's job-name label)",
        )
    return job


_JOB_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _backup(request: Request, secrets: Secrets, result: Result, redact: list[str]) -> None:
    spec = request.spec
    compression = spec.get("compression") or {"algorithm": "zstd"}
    algorithm = compression["algorithm"]
    level = compression.get("level") or DEFAULT_LEVEL[algorithm]
    encryption = spec.get("encryption")
    encrypt = bool(encryption and encryption.get("enabled", True))
    key = None
    if encrypt:
        key_path = os.environ.get("DBOPS_BACKUP_KEY_FILE")
        if not key_path:
            raise PermanentError(
                "InvalidRequest",
                "environment: DBOPS_BACKUP_KEY_FILE not set (request.spec.encryption asks for encryption; the Job "
                "mounts the key's Secret)",
            )
        key = codec.read_key(key_path)
    storage = open_storage(spec["storage"])
    redact.extend(storage.secrets())
    base = _run_name(spec)
    manifest_key = f"{base}/{manifest.NAME}"

    existing = storage.read_small(manifest_key)
    if existing is not None:
        published = manifest.parse(existing, storage.uri(manifest_key))
        if published.database != spec["database"]:
            raise PermanentError(
                "AlreadyExists",
                f"{storage.uri(manifest_key)} is a published backup of database {published.database}, not "
                f"{spec['database']}; give this backup another name (request.spec.name)",
            )
        result.server = {"version": published.server_version, "flavor": published.engine}
        result.observed = published.facts(storage.uri(f"{base}/{published.object}"))
        _retention(storage, spec, base, result)  # a retried Pod of a run: its pruning may not have happened
        return

    server = server_info(request, secrets)
    result.server = {"version": server.version, "flavor": server.flavor}
    with private_dir() as private:
        tool = _dump_tool(request, secrets, server, private)
        name = DATA_NAME + tool.extension + codec.EXTENSIONS[algorithm] + (".enc" if encrypt else "")
        data_key = f"{base}/{name}"
        started_at = _now()
        transforms: list[codec.Transform] = [codec.compressor(algorithm, level)]
        if key is not None:
            transforms.append(codec.Encryptor(key))
        try:
            streamed = _stream_dump(tool, transforms, storage, data_key)
            _check_complete(tool, streamed)
            _verify(storage, data_key, streamed)
        except BaseException:
            _remove(storage, base)
            raise
    record = manifest.Manifest(
        engine=server.flavor,
        server_version=server.version,
        database=spec["database"],
        tool=tool.name,
        tool_version=tool.version,
        dump_format=tool.dump_format,
        object=name,
        dump_bytes=streamed.dump_bytes,
        stored_bytes=streamed.stored_bytes,
        sha256=streamed.sha256.hexdigest(),
        compression=algorithm,
        compression_level=level if algorithm != "none" else 0,
        encryption="aes-256-gcm" if encrypt else None,
        evidence=tool.evidence,
        started_at=started_at,
        finished_at=_now(),
        schedule=spec.get("schedule"),
    )
    try:
        storage.put_small(manifest_key, record.to_json())
    except BaseException:
        _remove(storage, base)
        raise
    result.changes = [
        f"stored {storage.uri(data_key)} ({streamed.stored_bytes} bytes, sha256 {record.sha256})",
        f"published {storage.uri(manifest_key)}",
    ]
    result.observed = record.facts(storage.uri(data_key))
    _retention(storage, spec, base, result)


def _retention(storage: Storage, spec: dict[str, Any], base: str, result: Result) -> None:
    """Prune the schedule's backups (worker/backup/retention.py) once this run's is published. A failure here is a
    warning: the backup stands, and the next run prunes again."""
    if not spec.get("retention"):
        return
    from worker.backup import retention

    try:
        retention.prune(storage, spec, base, result)
    except WorkerError as exc:
        result.warnings.append(
            f"retention: {exc.message} ({exc.code}); this run's backup is published, the next run prunes again"
        )


def _dump_tool(request: Request, secrets: Secrets, server: Any, private: str) -> Tool:
    conn = request.connection
    database = request.spec["database"]
    if server.flavor == "postgres":
        binary = dump_postgres.find(dump_postgres.TOOL)
        version = dump_postgres.tool_version(version_of(binary))
        dump_postgres.check_versions(version, server.version_tuple, server.version)
        pg, env = dump_postgres.tool_access(request, secrets, private)
        return Tool(
            name=os.path.basename(binary),
            version=".".join(map(str, version)),
            argv=dump_postgres.dump_argv(binary, pg, database),
            env=env,
            dump_format="custom",
            extension=".pgdump",
            evidence="custom-format archive parsed to its end: every data block its table of contents announces, "
            "each closed",
            watch=dump_postgres.ArchiveReader(),
        )
    binary = dump_mysql.find(dump_mysql.DUMP_TOOLS)
    my_version = dump_mysql.tool_version(version_of(binary))
    dump_mysql.check_versions(my_version, server.flavor, server.version_tuple, server.version)
    my = dump_mysql.Connection(
        host=conn["host"],
        port=conn["port"],
        ssl_mode=conn.get("sslMode"),
        tls_ca=secrets.tls_ca,
        tls_cert=secrets.tls_cert,
        tls_key=secrets.tls_key,
    )
    options = os.path.join(private, "client.cnf")
    write_private(options, dump_mysql.option_file(secrets.admin_username, secrets.admin_password))
    return Tool(
        name=os.path.basename(binary),
        version=str(my_version),
        argv=dump_mysql.dump_argv(binary, my, options, database),
        env=tool_env(private),
        dump_format="sql",
        extension=".sql",
        evidence="the dump tool's `-- Dump completed` trailer",
        watch=dump_mysql.TrailerWatch(),
    )


def _stream_dump(tool: Tool, transforms: list[codec.Transform], storage: Storage, key: str) -> Streamed:
    streamed = Streamed()
    errors: deque[str] = deque(maxlen=STDERR_LINES)
    proc = subprocess.Popen(
        tool.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool.env
    )
    assert proc.stdout is not None and proc.stderr is not None
    # A larger pipe: fewer wake-ups of either side per MiB (Linux; the default is 64 KiB).
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    stderr = proc.stderr
    reader = threading.Thread(
        target=lambda: errors.extend(line.decode("utf-8", "replace").rstrip() for line in stderr), daemon=True
    )
    reader.start()
    stdout = cast(io.BufferedReader, proc.stdout)  # unbuffered=False: read1 returns what is there

    def dump() -> Iterator[bytes]:
        while data := stdout.read1(READ_CHUNK):
            streamed.dump_bytes += len(data)
            tool.watch.feed(data)
            yield data

    def stored() -> Iterator[bytes]:
        # A failure while producing the bytes ends the stream instead of raising into the uploader: the upload
        # then completes with every part it started (none left pending), and the object, never published, is
        # removed. Raising would abort the upload while a part may still be in flight.
        try:
            for chunk in codec.chain(dump(), *transforms):
                streamed.stored_bytes += len(chunk)
                streamed.sha256.update(chunk)
                yield chunk
        except Exception as exc:
            streamed.failure = exc

    try:
        storage.put_stream(key, stored())
        if streamed.failure is not None:
            proc.kill()
        proc.wait(timeout=TOOL_EXIT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        stdout.close()
        stderr.close()
    if streamed.failure is not None:
        failure = streamed.failure
        if isinstance(failure, WorkerError):
            raise failure
        raise TransientError("DumpFailed", f"streaming the dump failed: {type(failure).__name__}: {failure}")
    if proc.returncode != 0:
        raise tool_failed(tool.name, proc.returncode, list(errors))
    return streamed


def _check_complete(tool: Tool, streamed: Streamed) -> None:
    why = tool.watch.complete()
    if why is not None:
        raise TransientError(
            "DumpIncomplete",
            f"{tool.name} exited 0 but the dump is not complete ({why}); nothing was published",
        )


def _verify(storage: Storage, key: str, streamed: Streamed) -> None:
    """Read the stored object back and compare its size and sha256 with what was sent."""
    digest = hashlib.sha256()
    size = 0
    for chunk in storage.read_stream(key):
        digest.update(chunk)
        size += len(chunk)
    if size != streamed.stored_bytes or digest.hexdigest() != streamed.sha256.hexdigest():
        raise TransientError(
            "ChecksumMismatch",
            f"{storage.uri(key)} read back as {size} bytes with sha256 {digest.hexdigest()}, but "
            f"{streamed.stored_bytes} bytes with sha256 {streamed.sha256.hexdigest()} were sent; nothing was "
            "published",
        )


def _remove(storage: Storage, base: str) -> None:
    """Remove every object of an unpublished backup; a failure to do so is not allowed to hide the first error."""
    with contextlib.suppress(WorkerError):
        storage.delete(storage.keys(base + "/"))
