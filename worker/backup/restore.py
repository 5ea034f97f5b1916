"""The `restore` action: a published backup back into a database.

1. The manifest is read first (no manifest: `BackupNotFound`), then a lease is taken on the backup so a schedule's
   retention keeps it while it is read (`retention.take_lease`, removed at the end); the backup's engine must be
   the server's.
2. The target database must exist (a Database claim creates it, with its owner) and must not be a system database;
   it must be empty (no table, view, sequence or routine) unless `overwrite: true`. A refusal writes nothing.
3. The stored object is read once to check its size and sha256 against the manifest (`CorruptBackup` if they
   differ, before anything reaches the server), then streamed again through decryption and decompression into the
   engine's client (`pg_restore --single-transaction`, the `mariadb` client), hashed again on the way; the last
   piece is held back until that second hash matches, so on PostgreSQL a change between the two reads commits
   nothing.
4. The credentials reach the client as for the dump tools (a 0600 file, never argv or environment).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dbops_api.system import SYSTEM_DATABASES
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
from worker.errors import InvalidRequest, PermanentError, TransientError, WorkerError
from worker.request import Request, Secrets
from worker.result import Result

OUTCOME = "the target database may hold part of the backup: restore again with overwrite: true, or drop and recreate it"


def restore(request: Request, secrets: Secrets, result: Result, redact: list[str]) -> None:
    spec = request.spec
    database = spec["database"]
    if database.lower() in SYSTEM_DATABASES:
        raise InvalidRequest(
            f"request.spec.database: {database!r} is a system database; dbops never restores into it"
        )
    storage = open_storage(spec["storage"])
    redact.extend(storage.secrets())
    base = spec["name"]
    manifest_key = f"{base}/{manifest.NAME}"
    raw = storage.read_small(manifest_key)
    if raw is None:
        raise PermanentError(
            "BackupNotFound",
            f"{storage.uri(manifest_key)} does not exist: there is no published backup named {base!r} there",
        )
    record = manifest.parse(raw, storage.uri(manifest_key))
    lease = _lease(storage, base, request, result)
    try:
        _restore(request, secrets, result, storage=storage, base=base, record=record)
    finally:
        if lease is not None:
            with contextlib.suppress(WorkerError):
                storage.delete([lease])


def _lease(storage: Storage, base: str, request: Request, result: Result) -> str | None:
    """A lease on the backup so a schedule's retention does not delete it while it is read (retention.py); a store
    that refuses the write (read-only keys) leaves a warning, and the restore goes on without one."""
    from worker.backup import retention

    try:
        key = retention.take_lease(
            storage, base, {k: request.owner.get(k) for k in ("kind", "namespace", "name")}
        )
    except PermanentError as exc:
        if exc.code == "BackupNotFound":
            raise
        key = None
    except WorkerError:
        key = None
    if key is None:
        result.warnings.append(
            f"could not write a restore lease under {storage.uri(base + '/')}: a schedule's retention may delete "
            "this backup while it is read"
        )
        return None
    # Retention may have unpublished it between the first read and the lease.
    if storage.read_small(f"{base}/{manifest.NAME}") is None:
        storage.delete([key])
        raise PermanentError(
            "BackupNotFound",
            f"{storage.uri(base + '/' + manifest.NAME)} was deleted (by retention) meanwhile",
        )
    return key


def _restore(
    request: Request,
    secrets: Secrets,
    result: Result,
    *,
    storage: Storage,
    base: str,
    record: manifest.Manifest,
) -> None:
    spec = request.spec
    database = spec["database"]
    key = None
    if record.encryption:
        key_path = os.environ.get("DBOPS_BACKUP_KEY_FILE")
        if not key_path:
            raise InvalidRequest(
                "environment: DBOPS_BACKUP_KEY_FILE not set; the backup is encrypted (the Job mounts the key's Secret)"
            )
        key = codec.read_key(key_path)
    data_key = f"{base}/{record.object}"

    server = server_info(request, secrets)
    result.server = {"version": server.version, "flavor": server.flavor}
    if (record.engine == "postgres") != (server.flavor == "postgres") or (
        record.engine in ("mysql", "mariadb") and record.engine != server.flavor
    ):
        raise PermanentError(
            "EngineMismatch",
            f"the backup is of a {record.engine} server; the target server is {server.flavor}",
        )
    owner = _check_target(request, secrets, database, bool(spec.get("overwrite")))

    _verify(storage, data_key, record)
    with private_dir() as private:
        client = _client(request, secrets, server, private, database, owner=owner)
        restored = _stream_restore(client, storage, data_key, record, encryption_key=key)
    tables, _ = _count_objects(request, secrets, database)
    result.changes = [f"restored {storage.uri(data_key)} into database {database} ({restored} bytes of dump)"]
    result.observed = {
        "uri": storage.uri(data_key),
        "database": database,
        "sourceDatabase": record.database,
        "sha256": record.sha256,
        "sizeBytes": restored,
        "tables": tables,
    }


_PG_OBJECTS = (
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)
_MY_OBJECTS = (
    "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s) + "
    "(SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = %s)"
)


def _count_objects(request: Request, secrets: Secrets, database: str) -> tuple[int, str | None]:
    """How many tables, views, sequences (and on MySQL/MariaDB routines) the database holds (-1: it does not
    exist), and on PostgreSQL its owner."""
    from worker.adapters import load

    adapter: Any = load(request.engine)(request, secrets)
    with adapter:
        adapter.connect()
        if request.engine == "postgres":
            found = adapter.query(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
            )
            if not found:
                return -1, None
            return int(adapter.query(_PG_OBJECTS, database=database)[0][0]), str(found[0][0])
        if not adapter.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (database,)):
            return -1, None
        return int(adapter.query(_MY_OBJECTS, (database, database))[0][0]), None


def _check_target(request: Request, secrets: Secrets, database: str, overwrite: bool) -> str | None:
    """Refuse a target that does not exist or (without overwrite) is not empty; return its PostgreSQL owner."""
    count, owner = _count_objects(request, secrets, database)
    if count < 0:
        raise PermanentError(
            "ObjectNotFound",
            f"the target database {database} does not exist; create it first (a Database claim), then restore",
        )
    if count and not overwrite:
        raise PermanentError(
            "TargetNotEmpty",
            f"the target database {database} is not empty ({count} tables, views, sequences or routines); restore "
            "into an empty database, or set overwrite: true to restore over what is there. Nothing was written",
        )
    return owner


def _verify(storage: Storage, key: str, record: manifest.Manifest) -> None:
    digest = hashlib.sha256()
    size = 0
    for chunk in storage.read_stream(key):
        digest.update(chunk)
        size += len(chunk)
    if size != record.stored_bytes or digest.hexdigest() != record.sha256:
        raise PermanentError(
            "CorruptBackup",
            f"{storage.uri(key)} is {size} bytes with sha256 {digest.hexdigest()}, but its manifest says "
            f"{record.stored_bytes} bytes with sha256 {record.sha256}: the stored backup was changed or damaged. "
            "Nothing was written",
        )


@dataclass(frozen=True)
class Client:
    """The restore's client process, and on PostgreSQL older than pg_restore a second one: pg_restore then writes
    SQL, the worker removes from it the settings the server does not know (`drop`), and psql runs it."""

    argv: list[str]
    env: dict[str, str]
    sql_argv: list[str] | None = None
    drop: tuple[bytes, ...] = ()


def _client(
    request: Request, secrets: Secrets, server: Any, private: str, database: str, *, owner: str | None
) -> Client:
    conn = request.connection
    if server.flavor == "postgres":
        binary = dump_postgres.find(dump_postgres.RESTORE_TOOL)
        pg, env = dump_postgres.tool_access(request, secrets, private)
        role = [f"--role={owner}"] if owner and owner != secrets.admin_username else []
        # Ownership follows the target: everything restored is created as the database's owner (the admin must be
        # able to SET ROLE to it), not as the admin.
        tool = dump_postgres.tool_version(version_of(binary), dump_postgres.RESTORE_TOOL)
        if tool[0] > server.version_tuple[0]:
            psql = dump_postgres.find(dump_postgres.SQL_CLIENT)
            return Client(
                [*dump_postgres.restore_script_argv(binary), *role],
                env,
                dump_postgres.sql_client_argv(psql, pg, database),
                dump_postgres.unknown_settings(server.version_tuple[0]),
            )
        return Client([*dump_postgres.restore_argv(binary, pg, database), "--single-transaction", *role], env)
    binary = dump_mysql.find(dump_mysql.CLIENT_TOOLS)
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
    return Client(dump_mysql.restore_argv(binary, my, options, database), tool_env(private))


def _stream_restore(
    client: Client,
    storage: Storage,
    key: str,
    record: manifest.Manifest,
    *,
    encryption_key: bytes | None,
) -> int:
    transforms: list[codec.Transform] = []
    if encryption_key is not None:
        transforms.append(codec.Decryptor(encryption_key))
    transforms.append(codec.decompressor(record.compression))
    sql: _SqlClient | None = None
    if client.sql_argv is not None:
        sql = _SqlClient(client.sql_argv, client.env)
    errors: deque[str] = deque(maxlen=STDERR_LINES)
    proc = subprocess.Popen(
        client.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL if sql is None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=client.env,
    )
    assert proc.stdin is not None and proc.stderr is not None
    stderr = proc.stderr
    reader = threading.Thread(
        target=lambda: errors.extend(line.decode("utf-8", "replace").rstrip() for line in stderr), daemon=True
    )
    reader.start()
    if sql is not None:
        assert proc.stdout is not None
        sql.feed_from(proc.stdout, client.drop)
    digest = hashlib.sha256()
    written = 0

    def hashed() -> Iterator[bytes]:
        for chunk in storage.read_stream(key):
            digest.update(chunk)
            yield chunk

    held = b""
    done = False
    try:
        try:
            for piece in codec.chain(hashed(), *transforms):
                if held:
                    proc.stdin.write(held)
                    written += len(held)
                held = piece
            if digest.hexdigest() != record.sha256:
                raise PermanentError(
                    "CorruptBackup",
                    f"{storage.uri(key)} changed while it was being restored (sha256 {digest.hexdigest()}, manifest "
                    f"{record.sha256}); {OUTCOME}",
                )
            proc.stdin.write(held)
            written += len(held)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped reading: its exit code and words say why
        proc.wait(timeout=TOOL_EXIT_TIMEOUT)
        done = proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        stderr.close()
        if sql is not None:
            # pg_restore writes the COMMIT last, after reading all its input, which it gets only once the
            # checksum matched (the last piece is held until then). If pg_restore failed, psql is killed before
            # any COMMIT and the server rolls the transaction back.
            sql.end(commit=done)
    if proc.returncode != 0:
        raise tool_failed(
            os.path.basename(client.argv[0]), proc.returncode, list(errors), OUTCOME, "RestoreFailed"
        )
    if sql is not None and sql.returncode != 0:
        raise tool_failed(
            os.path.basename(sql.argv[0]), sql.returncode, list(sql.errors), OUTCOME, "RestoreFailed"
        )
    if written != record.dump_bytes:
        raise TransientError(
            "RestoreFailed", f"restored {written} bytes, the manifest says {record.dump_bytes}"
        )
    return written


class _SqlClient:
    """psql, fed pg_restore's SQL by a thread, with the settings the server does not know removed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.errors: deque[str] = deque(maxlen=STDERR_LINES)
        self.returncode = -1
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        assert self._proc.stderr is not None
        stderr = self._proc.stderr
        self._reader = threading.Thread(
            target=lambda: self.errors.extend(line.decode("utf-8", "replace").rstrip() for line in stderr),
            daemon=True,
        )
        self._reader.start()
        self._copier: threading.Thread | None = None

    def feed_from(self, source: IO[bytes], drop: tuple[bytes, ...]) -> None:
        sink = self._proc.stdin
        assert sink is not None

        def copy() -> None:
            preamble = dump_postgres.PreambleFilter(drop)
            alive = True
            # Read to the end even after psql stopped, so pg_restore never blocks on a full pipe.
            for chunk in iter(lambda: source.read1(1 << 16), b""):  # type: ignore[attr-defined]
                out = preamble.feed(chunk)
                if out and alive:
                    try:
                        sink.write(out)
                    except (BrokenPipeError, ValueError):
                        alive = False
            out = preamble.finish()
            if out and alive:
                with contextlib.suppress(BrokenPipeError, ValueError):
                    sink.write(out)

        self._copier = threading.Thread(target=copy, daemon=True)
        self._copier.start()

    def end(self, *, commit: bool) -> None:
        if self._copier is not None:
            self._copier.join(timeout=TOOL_EXIT_TIMEOUT if commit else 5)
            commit = commit and not self._copier.is_alive()
        if not commit:
            self._proc.kill()
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=TOOL_EXIT_TIMEOUT)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._reader.join(timeout=5)
            assert self._proc.stderr is not None
            self._proc.stderr.close()
        self.returncode = self._proc.returncode if commit else -9
