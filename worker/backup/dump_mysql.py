"""MySQL's and MariaDB's tools: `mariadb-dump` (or `mysqldump`) and the `mariadb` (or `mysql`) client, and the
evidence that a dump is complete.

The user and password reach the tools only through an option file given as `--defaults-file` (mode 0600, in a
private directory the worker removes at exit), so no other option file is read either; their argv holds host, port,
TLS files and the database.

End-of-dump evidence: the dump tool writes `-- Dump completed` as its last line only after everything else was
written; the worker keeps the last bytes of the stream and looks for it there.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from worker.errors import PermanentError

DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")
TRAILER = re.compile(rb"\n-- Dump completed( on [0-9: -]+)?\n\Z")
TAIL_BYTES = 256
# MariaDB before 11: `Ver 10.19 Distrib 10.11.19-MariaDB`; MariaDB 11: `from 11.8.3-MariaDB, client 10.20`.
_DISTRIB = re.compile(r"(?:Distrib|from) (\d+)\.(\d+)\.(\d+)(-MariaDB)?")
_MYSQL_VERSION = re.compile(r"Ver (\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class ToolVersion:
    version: tuple[int, ...]
    mariadb: bool

    def __str__(self) -> str:
        return ".".join(map(str, self.version)) + ("-MariaDB" if self.mariadb else "")


def tool_version(text: str) -> ToolVersion:
    """`mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, ...` and `mariadb-dump from 11.8.3-MariaDB, client 10.20
    ...` -> that MariaDB version; MySQL 8's `mysqldump  Ver 8.0.36 for Linux ...` -> 8.0.36."""
    match = _DISTRIB.search(text)
    if match:
        return ToolVersion(tuple(int(g) for g in match.groups()[:3]), bool(match.group(4)))
    match = _MYSQL_VERSION.search(text)
    if match and int(match.group(1)) >= 8:
        return ToolVersion(tuple(int(g) for g in match.groups()), False)
    raise PermanentError("Unsupported", f"cannot read the dump tool's version from {text.strip()[:80]!r}")


def check_versions(tool: ToolVersion, flavor: str, server: tuple[int, ...], server_text: str) -> None:
    """A dump tool older than the server (major.minor) is refused: it may not know the server's syntax, and
    would write a dump that does not restore. MariaDB's tool against a MySQL server (and the other way round) is
    refused too: the two have diverged (MySQL 8's column statistics and GTIDs, MariaDB's sequences)."""
    if tool.mariadb != (flavor == "mariadb"):
        raise PermanentError(
            "Unsupported",
            f"the server is {flavor} {server_text}, but this worker's dump tool is {tool}: dump a {flavor} server "
            f'with {flavor}\'s own client (docs/worker.md, "Backup and restore")',
        )
    if tool.version[:2] < server[:2]:
        raise PermanentError(
            "Unsupported",
            f"the server is {flavor} {server_text}, newer than this worker's dump tool {tool}: a dump tool older "
            f"than the server is refused. Run a worker image whose client is at least {server[0]}.{server[1]} "
            '(docs/worker.md, "Backup and restore")',
        )


def option_file(user: str, password: str) -> str:
    """A `[client]` option group with the credentials, values quoted and escaped as the option-file reader
    expects."""

    def quote(value: str) -> str:
        if any(c in value for c in "\n\r\0"):
            raise PermanentError(
                "InvalidRequest", "admin credentials: a line break cannot go into an option file"
            )
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[client]\nuser={quote(user)}\npassword={quote(password)}\n"


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    ssl_mode: str | None
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None


def _connection_args(conn: Connection) -> list[str]:
    """Host, port and TLS as `connection.sslMode` says (absent = require, as for the worker's own connection):
    `disable` turns TLS off; `require` encrypts without checking the server's certificate; `verify-ca` and
    `verify-full` check it against the CA file. Spelled out for every mode because the clients' defaults differ:
    MariaDB 11.4 and later verify the server's certificate unless told not to, 10.11 does not. A TLS file the Job
    names but does not hold (an optional Secret key) is left out."""
    args = [f"--host={conn.host}", f"--port={conn.port}", "--protocol=TCP"]
    mode = conn.ssl_mode or "require"
    if mode == "disable":
        return [*args, "--skip-ssl"]
    args.append("--ssl")
    if mode in ("verify-ca", "verify-full"):
        args.append("--ssl-verify-server-cert")
    else:
        args.append("--skip-ssl-verify-server-cert")
    for flag, value in (
        ("--ssl-ca", conn.tls_ca),
        ("--ssl-cert", conn.tls_cert),
        ("--ssl-key", conn.tls_key),
    ):
        if value and os.path.isfile(value):
            args.append(f"{flag}={value}")
    return args


def dump_argv(binary: str, conn: Connection, option_path: str, database: str) -> list[str]:
    # --defaults-file must come first. One database without CREATE DATABASE/USE, so it restores under any name;
    # one consistent snapshot of InnoDB tables without locking them (--single-transaction), rows streamed (--quick).
    return [
        binary,
        f"--defaults-file={option_path}",
        *_connection_args(conn),
        "--single-transaction",
        "--quick",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
        database,
    ]


def restore_argv(binary: str, conn: Connection, option_path: str, database: str) -> list[str]:
    return [
        binary,
        f"--defaults-file={option_path}",
        *_connection_args(conn),
        "--default-character-set=utf8mb4",
        "--batch",
        database,
    ]


def find(tools: tuple[str, ...]) -> str:
    for tool in tools:
        path = shutil.which(tool)
        if path:
            return path
    raise PermanentError(
        "Unsupported",
        f"none of {', '.join(tools)} is installed in this worker image (the image installs mariadb-client; "
        'docs/worker.md, "Backup and restore")',
    )


class TrailerWatch:
    """Keeps the last bytes of the dump to find the trailer the tool writes last."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> None:
        self._tail = (self._tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]

    def complete(self) -> str | None:
        if TRAILER.search(self._tail):
            return None
        return "the dump does not end with the dump tool's `-- Dump completed` line"
