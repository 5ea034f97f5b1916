"""PostgreSQL's tools: `pg_dump` (custom format) and `pg_restore`, and the evidence that a dump is complete.

The password reaches the tools only through a passfile (PGPASSFILE, mode 0600, in a private directory the worker
removes at exit); their argv holds host, port, user and database, their environment only PG* connection settings.

End-of-dump evidence: the custom format has no trailer, so the worker parses the archive as it streams by
(`ArchiveReader`): the header, the table of contents, then one data block for every entry the table of contents
marks as having data, each closed by its zero-length end chunk, and nothing after the last. A dump cut off
anywhere, or one whose tool wrote less than its own table of contents announced, does not pass.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Generator
from dataclasses import dataclass

from worker.backup.process import tool_env, write_private
from worker.errors import PermanentError
from worker.request import Request, Secrets

TOOL = "pg_dump"
RESTORE_TOOL = "pg_restore"
SQL_CLIENT = "psql"
# Settings pg_restore sets first on every connection (and writes first into its SQL) that older servers do not
# know, with the first major version that knows each: pg_restore 17 sets transaction_timeout even on a server
# of 15, which refuses it, so a restore into a server older than pg_restore goes through the SQL without them.
NEWER_SETTINGS = ((b"SET transaction_timeout = 0;\n", 17),)
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


def tool_version(text: str, name: str = TOOL) -> tuple[int, ...]:
    """`pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` -> (15, 18)."""
    match = _VERSION.search(text)
    if not match:
        raise PermanentError("Unsupported", f"cannot read the version of {name} from {text.strip()[:80]!r}")
    return tuple(int(g) for g in match.groups() if g is not None)


def check_versions(tool: tuple[int, ...], server: tuple[int, ...], server_text: str) -> None:
    """pg_dump dumps servers of its own major version and older, never newer."""
    if tool[0] < server[0]:
        raise PermanentError(
            "Unsupported",
            f"the server is PostgreSQL {server_text}, newer than this worker's {TOOL} {'.'.join(map(str, tool))}: "
            f"{TOOL} refuses to dump a server of a later major version. Run a worker image whose PostgreSQL "
            f'client is at least {server[0]} (docs/worker.md, "Backup and restore")',
        )


def passfile(user: str, password: str) -> str:
    """One line of a libpq password file, for any host, port and database."""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    if "\n" in user or "\n" in password or "\r" in password:
        raise PermanentError("InvalidRequest", "DBOPS_ADMIN_PASSWORD: a line break cannot go into a passfile")
    return f"*:*:*:{escape(user)}:{escape(password)}\n"


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    user: str
    ssl_mode: str | None
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None
    connect_timeout: int
    application_name: str


def environment(conn: Connection, passfile_path: str) -> dict[str, str]:
    env = {
        "PGPASSFILE": passfile_path,
        "PGCONNECT_TIMEOUT": str(conn.connect_timeout),
        "PGAPPNAME": conn.application_name,
    }
    if conn.ssl_mode:
        env["PGSSLMODE"] = conn.ssl_mode
    for key, value in (
        ("PGSSLROOTCERT", conn.tls_ca),
        ("PGSSLCERT", conn.tls_cert),
        ("PGSSLKEY", conn.tls_key),
    ):
        if value:
            env[key] = value
    return env


def _connection_argv(conn: Connection, database: str) -> list[str]:
    # No password option: the tools read the 0600 passfile named by PGPASSFILE.
    return [
        "--no-password",
        f"--host={conn.host}",
        f"--port={conn.port}",
        f"--username={conn.user}",
        f"--dbname={database}",
    ]


def dump_argv(binary: str, conn: Connection, database: str) -> list[str]:
    # -Z0: the worker compresses (zstd or gzip) after the archive is parsed for the evidence of completeness.
    return [binary, "--format=custom", "--compress=0", *_connection_argv(conn, database)]


def restore_argv(binary: str, conn: Connection, database: str) -> list[str]:
    return [binary, "--exit-on-error", "--no-owner", *_connection_argv(conn, database)]


def restore_script_argv(binary: str) -> list[str]:
    """pg_restore writing the SQL of the whole restore, in one transaction, to its stdout (no connection)."""
    return [binary, "--exit-on-error", "--no-owner", "--single-transaction", "--file=-"]


def sql_client_argv(binary: str, conn: Connection, database: str) -> list[str]:
    # psql runs the SQL from its stdin and stops at the first error (the transaction is then rolled back).
    return [binary, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", *_connection_argv(conn, database)]


def unknown_settings(server_major: int) -> tuple[bytes, ...]:
    """The lines of pg_restore's preamble a server of this major version refuses."""
    return tuple(line for line, since in NEWER_SETTINGS if server_major < since)


class PreambleFilter:
    """Removes the given lines from the preamble of pg_restore's SQL: from what comes before its first object
    (`\\n--\\n-- ` starts each object's comment), never from an object or its data. Holds back the first
    bytes until the preamble is complete."""

    HOLD = 16384

    def __init__(self, drop: tuple[bytes, ...]) -> None:
        self._drop = drop
        self._held: bytearray | None = bytearray() if drop else None

    def feed(self, data: bytes) -> bytes:
        if self._held is None:
            return data
        self._held += data
        if len(self._held) < self.HOLD and b"\n--\n-- " not in self._held:
            return b""
        return self._release()

    def finish(self) -> bytes:
        return b"" if self._held is None else self._release()

    def _release(self) -> bytes:
        held = bytes(self._held or b"")
        self._held = None
        end = held.find(b"\n--\n-- ")
        preamble, rest = (held, b"") if end < 0 else (held[:end], held[end:])
        for line in self._drop:
            if preamble.startswith(line):
                preamble = preamble[len(line) :]
            preamble = preamble.replace(b"\n" + line, b"\n", 1)
        return preamble + rest


def find(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise PermanentError(
            "Unsupported",
            f"{tool} is not installed in this worker image (the image installs postgresql-client; "
            'docs/worker.md, "Backup and restore")',
        )
    return path


# --- the custom-format archive ----------------------------------------------------------------------------------

BLK_DATA = 1
BLK_BLOBS = 3
K_VERS_1_15 = (1, 15)  # PostgreSQL 16: the compression algorithm as one byte instead of an int
K_VERS_1_16 = (1, 16)  # PostgreSQL 17: each TOC entry records its relkind


class ArchiveIncomplete(Exception):
    """The stream is not a complete custom-format archive (the message says where it stopped)."""


_Need = Generator[int, bytes, None]
# What the parser yields to say "a run of data chunks follows": `feed` passes over them itself (a tight loop, since a
# table's data comes as one chunk per row), and resumes the parser at the zero length that ends them.
_CHUNKS = -(1 << 62)


# A data chunk's header, its length as a pg_dump int: a sign byte, then the magnitude least significant byte first
# (struct for the usual int sizes; any other takes the general path).
_CHUNK_HEADERS = {4: struct.Struct("<BI"), 8: struct.Struct("<BQ")}


def _pass_chunks(header: struct.Struct, view: memoryview) -> tuple[memoryview, int, bool]:
    """Passes over whole data chunks at the start of `view`: (the rest of `view`, the bytes of the last chunk still
    to come (-1 for a negative length), whether the zero length that ends the run was read)."""
    unpack = header.unpack_from
    size = header.size
    end = len(view)
    pos = 0
    while pos + size <= end:
        sign, length = unpack(view, pos)
        pos += size
        if sign:
            return view[end:], -1, False
        if not length:
            return view[pos:], 0, True
        pos += length
    if pos > end:
        return view[end:], pos - end, False
    return view[pos:], 0, False


class ArchiveReader:
    """Parses a pg_dump custom-format archive fed in arbitrary pieces, holding only what the current field needs
    (a data chunk's bytes are counted and passed over, never kept). `complete()` says whether the archive ended
    exactly after its last announced data block."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0
        self._parser = self._parse()
        self._want: int | None = next(self._parser)
        self.entries = 0
        self.data_entries: set[int] = set()
        self.blocks_done: set[int] = set()
        self.server_version = ""
        self.tool_version = ""
        self.error: str | None = None
        self._finished = False
        self._chunk_mode = False
        self._int_size = 4
        self._chunk_header: struct.Struct | None = _CHUNK_HEADERS[4]

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        view = memoryview(data)
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            if self._chunk_mode and not self._buffer and self._chunk_header is not None:
                # The fast path over a table's rows: chunk headers read in place, no slice made per row.
                view, self._skip, ended = _pass_chunks(self._chunk_header, view)
                if ended:
                    self._chunk_mode = False
                    self._advance(b"")
                elif self._skip < 0:
                    self.error = "a data chunk of negative length"
                    return
                if len(view) >= self._chunk_header.size or self._skip or ended:
                    continue
            if self._chunk_mode:
                header = self._int_size + 1
                if not self._buffer and len(view) >= header:
                    raw = bytes(view[:header])
                    view = view[header:]
                else:
                    take = min(header - len(self._buffer), len(view))
                    self._buffer += view[:take]
                    view = view[take:]
                    if len(self._buffer) < header:
                        continue
                    raw = bytes(self._buffer)
                    self._buffer.clear()
                if raw[0]:
                    self.error = "a data chunk of negative length"
                    return
                length = int.from_bytes(raw[1:], "little")
                if length:
                    self._skip = length
                else:
                    self._chunk_mode = False
                    self._advance(b"")
                continue
            if self._want is None:
                self.error = "bytes after the end of the archive"
                return
            take = min(self._want - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) == self._want:
                piece = bytes(self._buffer)
                self._buffer.clear()
                self._advance(piece)

    def _advance(self, piece: bytes) -> None:
        try:
            want = self._parser.send(piece)
        except StopIteration:
            self._want = None
            self._finished = True
            return
        except ArchiveIncomplete as exc:
            self.error = str(exc)
            self._want = None
            return
        if want == _CHUNKS:
            self._chunk_mode = True
        elif want < 0:  # a request to pass over -want bytes
            self._skip = -want
            self._advance(b"")
        else:
            self._want = want

    def complete(self) -> str | None:
        """None when the archive is complete; otherwise why not."""
        if self.error is not None:
            return self.error
        if self._skip or self._buffer or self._chunk_mode or not self._at_boundary:
            return "the archive stops in the middle of a field or data block"
        missing = self.data_entries - self.blocks_done
        if missing:
            return (
                f"the archive stops before the data of {len(missing)} of its {len(self.data_entries)} tables"
            )
        return None

    _at_boundary = False

    def _parse(self) -> _Need:
        magic = yield 5
        if magic != b"PGDMP":
            raise ArchiveIncomplete("the dump does not start like a pg_dump custom-format archive")
        vmaj, vmin, _vrev, int_size, off_size, fmt = yield 6
        version = (vmaj, vmin)
        if fmt != 1 or int_size > 8 or off_size > 8 or version < (1, 14) or version > K_VERS_1_16:
            raise ArchiveIncomplete(f"unexpected archive format {fmt} version {vmaj}.{vmin}")
        self._int_size = int_size
        self._chunk_header = _CHUNK_HEADERS.get(int_size)

        def read_int() -> Generator[int, bytes, int]:
            # A sign byte, then the magnitude in int_size bytes, least significant first.
            raw = yield 1 + int_size
            value = int.from_bytes(raw[1:], "little")
            return -value if raw[0] else value

        def read_str() -> Generator[int, bytes, str | None]:
            length = yield from read_int()
            if length < 0:
                return None
            if length == 0:
                return ""
            raw = yield length
            return raw.decode("utf-8", "replace")

        if version >= K_VERS_1_15:
            yield 1  # compression algorithm
        else:
            yield from read_int()  # compression level
        for _ in range(7):  # creation time
            yield from read_int()
        yield from read_str()  # database name
        self.server_version = (yield from read_str()) or ""
        self.tool_version = (yield from read_str()) or ""
        count = yield from read_int()
        for _ in range(count):
            dump_id = yield from read_int()
            had_dumper = yield from read_int()
            for _field in range(2):  # table oid, oid
                yield from read_str()
            yield from read_str()  # tag
            yield from read_str()  # desc
            yield from read_int()  # section
            for _field in range(6):  # defn, dropStmt, copyStmt, namespace, tablespace, tableam
                yield from read_str()
            if version >= K_VERS_1_16:
                yield from read_int()  # relkind
            yield from read_str()  # owner
            yield from read_str()  # "false" (with oids)
            while (yield from read_str()) is not None:  # dependencies, ended by a null
                pass
            yield 1 + off_size  # the data's offset (its state flag and position)
            self.entries += 1
            if had_dumper:
                self.data_entries.add(dump_id)
        # The data blocks, in any order, each for an entry announced above.
        while True:
            self._at_boundary = True
            kind = (yield 1)[0]
            self._at_boundary = False
            dump_id = yield from read_int()
            if kind not in (BLK_DATA, BLK_BLOBS) or dump_id not in self.data_entries:
                raise ArchiveIncomplete(f"unexpected block {kind} for entry {dump_id}")
            if kind == BLK_BLOBS:
                while (yield from read_int()) != 0:  # each large object: its oid, then chunks
                    yield _CHUNKS
            else:
                yield _CHUNKS
            self.blocks_done.add(dump_id)


def tool_access(request: Request, secrets: Secrets, private: str) -> tuple[Connection, dict[str, str]]:
    """How pg_dump and pg_restore reach the server: the connection from the request, and the tool's whole
    environment, with the admin password only in a 0600 passfile under `private`."""
    conn = request.connection
    pg = Connection(
        host=conn["host"],
        port=conn["port"],
        user=secrets.admin_username,
        ssl_mode=conn.get("sslMode"),
        tls_ca=secrets.tls_ca,
        tls_cert=secrets.tls_cert,
        tls_key=secrets.tls_key,
        connect_timeout=conn.get("connectTimeout", 10),
        application_name=conn.get("applicationName", "dbops-worker"),
    )
    path = os.path.join(private, "pgpass")
    write_private(path, passfile(secrets.admin_username, secrets.admin_password))
    return pg, {**tool_env(private), **environment(pg, path)}
