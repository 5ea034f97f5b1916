"""The MySQL/MariaDB adapter: one admin connection (PyMySQL, no SQLAlchemy engine), flavor from the handshake.

MySQL 8 and MariaDB differ in account options, password hashing, roles and grant catalogs; the handlers branch
on `ServerInfo.flavor` explicitly (docs/worker-mysql.md). DCL and DDL are not transactional on either, so each
Step runs on its own in autocommit mode, and everything that can be validated is validated before the first one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql

from worker.adapters import mysql_catalog
from worker.adapters.base import Adapter, KindHandler, ServerInfo, Step
from worker.adapters.mysql_errors import classify
from worker.adapters.mysql_sql import is_mariadb, parse_version, union, unsupported
from worker.errors import InvalidRequest, PermanentError, TransientError, WorkerError
from worker.request import Request, Secrets

LOCK_NAME_MAX = 64  # MySQL refuses longer GET_LOCK names
# Without connection.sslMode the admin session is encrypted (not verified): password hashes, and on MySQL 8 the
# passwords of salted plugins, travel in statements. `disable` must be asked for (docs/worker-mysql.md).
DEFAULT_SSL_MODE = "require"


def duration_seconds(text: str) -> float:
    """`500ms`, `30s`, `2min`, `1h` (the request schema's DURATION_PATTERN) in seconds."""
    for suffix, factor in (("ms", 0.001), ("min", 60.0), ("s", 1.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    raise InvalidRequest(f"connection: bad duration {text!r}")


def lock_name(key: str) -> str:
    name = f"dbops:{key}"
    if len(name) <= LOCK_NAME_MAX:
        return name
    return "dbops:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _present(path: str | None) -> str | None:
    # The Job mounts the TLS Secret with optional items: a key absent from the Secret is a file that is not there.
    return path if path and os.path.isfile(path) else None


def tls_context(mode: str, secrets: Secrets) -> ssl.SSLContext | None:
    """The TLS context for `connection.sslMode` (absent = require): `require` encrypts without checking the
    server; `verify-ca` checks the chain against DBOPS_TLS_CA; `verify-full` also checks the host name. A client
    certificate and key (DBOPS_TLS_CERT/KEY) turn on mutual TLS in any mode but disable. A file named in the
    environment but absent is left out, unless the mode needs it."""
    if mode == "disable":
        return None
    ca, cert, key = _present(secrets.tls_ca), _present(secrets.tls_cert), _present(secrets.tls_key)
    if mode in ("verify-ca", "verify-full") and ca is None:
        where = (
            f"DBOPS_TLS_CA names {secrets.tls_ca}, which does not exist"
            if secrets.tls_ca
            else ("DBOPS_TLS_CA is not set")
        )
        raise PermanentError(
            "TLSError",
            f"connection.sslMode {mode} verifies the server against a CA certificate, but {where}; add the CA "
            "to tls.secretRef (key ca) or use mode require",
        )
    if (cert is None) != (key is None):
        have, lack = ("certificate", "key") if cert else ("key", "certificate")
        raise PermanentError(
            "TLSError",
            f"mutual TLS needs a client certificate and key; the TLS Secret has the {have} but no {lack}",
        )
    try:
        if mode == "require":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=ca)
            context.check_hostname = mode == "verify-full"
            context.verify_mode = ssl.CERT_REQUIRED
        if cert and key:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentError("TLSError", f"cannot load the TLS files: {exc}") from None
    return context


class MySQLAdapter(Adapter):
    def __init__(self, request: Request, secrets: Secrets) -> None:
        super().__init__(request, secrets)
        self._conn: pymysql.connections.Connection[Any] | None = None
        self.info: ServerInfo | None = None
        self.lock_seconds = duration_seconds(request.connection.get("lockTimeout", "30s"))

    # --- connection ---------------------------------------------------------------------------------------------

    @property
    def ssl_mode(self) -> str:
        return str(self.request.connection.get("sslMode", DEFAULT_SSL_MODE))

    @property
    def tls_requested(self) -> bool:
        return self.ssl_mode != "disable"

    @property
    def client_certificate(self) -> bool:
        return self.tls_requested and bool(_present(self.secrets.tls_cert) and _present(self.secrets.tls_key))

    def connect_args(self, user: str, password: str) -> dict[str, Any]:
        conn = self.request.connection
        context = tls_context(self.ssl_mode, self.secrets)
        args: dict[str, Any] = {
            "host": conn["host"],
            "port": conn["port"],
            "user": user,
            "password": password,
            "connect_timeout": conn.get("connectTimeout", 10),
            # GET_LOCK waits on the socket: the read timeout must outlast the lock timeout.
            "read_timeout": max(conn.get("readTimeout", 60), math.ceil(self.lock_seconds) + 5),
            "write_timeout": conn.get("writeTimeout", 60),
            "charset": conn.get("charset", "utf8mb4"),
            "autocommit": True,
            "program_name": conn.get("applicationName", "dbops-worker"),
        }
        if conn.get("collation"):
            args["collation"] = conn["collation"]
        if context is None:
            args["ssl_disabled"] = True
        else:
            args["ssl"] = context
        return args

    def connect(self) -> ServerInfo:
        args = self.connect_args(self.secrets.admin_username, self.secrets.admin_password)
        try:
            self._conn = pymysql.connect(**args)
        except (pymysql.MySQLError, OSError) as exc:
            raise classify(exc, self.secrets.values(), "connecting as the admin") from None
        info = parse_version(self._conn.get_server_info())
        problem = unsupported(info)
        if problem:
            raise PermanentError("Unsupported", problem)
        self.info = info
        return info

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Already broken or not: the socket is closed either way.
            with contextlib.suppress(pymysql.MySQLError):
                conn.close()

    @property
    def server(self) -> ServerInfo:
        if self.info is None:
            raise RuntimeError("connect() first")
        return self.info

    def query(
        self, sql: str, params: Sequence[Any] | None = None, doing: str = "reading the catalog"
    ) -> list[tuple[Any, ...]]:
        """One read-only statement; counted as a read."""
        try:
            return self._read(sql, params)
        except pymysql.MySQLError as exc:
            raise classify(exc, self.secrets.values(), doing) from None

    def _read(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        if self._conn is None:
            raise RuntimeError("connect() first")
        self.reads += 1
        with self._conn.cursor() as cur:
            cur.execute(sql, tuple(params) if params is not None else None)
            return list(cur.fetchall())

    def observe(
        self, parts: list[tuple[str, list[Any]]], catalog: tuple[str, list[Any]], doing: str
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """One union of `parts` and the `catalog` part (worker.adapters.mysql_catalog): the rows, and whether
        dbops' catalog exists. Without it the union fails, and is read again without the catalog part: a second
        query only until the first object is created."""
        rows = self._union_if_present([*parts, catalog], doing)
        if rows is not None:
            return rows, True
        sql, params = union(parts)
        return self.query(sql, params, doing), False

    def observe_with_memory(
        self,
        parts: list[tuple[str, list[Any]]],
        catalog: tuple[str, list[Any]],
        memory: tuple[str, list[Any]],
        doing: str,
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """`observe` with one more part, dbops' memory of what it granted (worker.adapters.mysql_memory): the
        rows, and whether the memory's table exists. Without it (a server where dbops never granted yet) the
        union fails and is read again as `observe` does."""
        rows = self._union_if_present([*parts, catalog, memory], doing)
        if rows is not None:
            return rows, True
        rows, _ = self.observe(parts, catalog, doing)
        return rows, False

    def _union_if_present(
        self, parts: list[tuple[str, list[Any]]], doing: str
    ) -> list[tuple[Any, ...]] | None:
        """The union's rows, or None when it names a table of dbops' that does not exist (yet)."""
        sql, params = union(parts)
        try:
            return self._read(sql, params)
        except pymysql.MySQLError as exc:
            number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if number not in mysql_catalog.MISSING:
                raise classify(exc, self.secrets.values(), doing) from None
        return None

    def try_login(self, user: str, password: str) -> bool | None:
        """Whether `user` can log in with `password` from here: True, False (access denied), or None when the
        answer says nothing about the password (network trouble, account locked, TLS required...)."""
        try:
            conn = pymysql.connect(**{**self.connect_args(user, password), "read_timeout": 10})
        except pymysql.MySQLError as exc:
            number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            return False if number == 1045 else None
        except Exception:
            # Anything else (network, TLS, a missing optional crypto package for RSA key exchange) says nothing
            # about the password.
            return None
        conn.close()
        return True

    # --- DatabaseInstance ---------------------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        info = self.server
        rows = self.query(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = "
            "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
            doing="reading the admin's privileges",
        )
        privileges = {str(r[0]).upper() for r in rows}
        cipher = self.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'", doing="reading the TLS status")
        return {
            "version": info.version,
            "flavor": info.flavor,
            "tls": bool(cipher and cipher[0][1]),
            "canCreateDatabases": "CREATE" in privileges,
            "canCreateRoles": "CREATE USER" in privileges,
            "superuser": "SUPER" in privileges,
        }

    # --- kinds, locks, execution --------------------------------------------------------------------------------

    def handler(self, kind: str) -> KindHandler[Any]:
        if kind == "Database":
            from worker.adapters.mysql_database import DatabaseHandler

            return DatabaseHandler(self)
        if kind == "DatabaseUser":
            from worker.adapters.mysql_account import UserHandler

            return UserHandler(self)
        if kind == "DatabaseRole":
            from worker.adapters.mysql_group_role import DatabaseRoleHandler

            return DatabaseRoleHandler(self)
        if kind == "DatabaseGrant":
            from worker.adapters.mysql_grants import GrantHandler

            return GrantHandler(self)
        raise InvalidRequest(f"kind {kind} has no MySQL handler")

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        name = lock_name(key)
        seconds = max(0, math.ceil(self.lock_seconds))
        rows = self.query("SELECT GET_LOCK(%s, %s)", (name, seconds), doing=f"waiting for the lock on {key}")
        if not rows or rows[0][0] != 1:
            raise TransientError(
                "LockTimeout",
                f"another worker held the lock on {key} for longer than connection.lockTimeout ({seconds}s); "
                "retrying later",
            )
        try:
            self._session_limits()
            yield
        finally:
            if self._conn is not None and self._conn.open:
                # On failure the server releases it anyway when the session ends.
                with contextlib.suppress(WorkerError):
                    self.query("DO RELEASE_LOCK(%s)", (name,), doing="releasing the lock")

    def _session_limits(self) -> None:
        """Bound how long our writes wait on metadata locks (MySQL's default is a year) and run."""
        lock = max(1, math.ceil(self.lock_seconds))
        statement = duration_seconds(self.request.connection.get("statementTimeout", "60s"))
        if is_mariadb(self.server):
            self.query(
                "SET SESSION lock_wait_timeout = %s, max_statement_time = %s",
                (lock, statement),
                doing="setting session timeouts",
            )
        else:
            self.query(
                "SET SESSION lock_wait_timeout = %s, max_execution_time = %s",
                (lock, int(statement * 1000)),
                doing="setting session timeouts",
            )

    def execute(self, steps: Sequence[Step]) -> Iterator[Step]:
        if self._conn is None:
            raise RuntimeError("connect() first")
        for step in steps:
            quiet = bool(step.secrets) and self._general_log_off(True)
            try:
                self.writes += 1
                with self._conn.cursor() as cur:
                    cur.execute(step.sql, step.params)
            except pymysql.MySQLError as exc:
                raise classify(exc, [*self.secrets.values(), *step.secrets], step.summary) from None
            finally:
                if quiet:
                    # If this fails the session is gone, and its setting with it.
                    with contextlib.suppress(WorkerError):
                        self._general_log_off(False)
            yield step

    def _general_log_off(self, off: bool) -> bool:
        """Keep a statement carrying a password hash out of the general log, where the admin may (`sql_log_off`
        needs SUPER on both flavors). Returns whether it was switched."""
        try:
            self.query("SET SESSION sql_log_off = %s", (1 if off else 0,), doing="setting sql_log_off")
        except PermanentError:
            return False
        return True
