"""The PostgreSQL adapter: psycopg2 connections, catalog reads, advisory locks and step execution.

No SQLAlchemy Engine: its dialect initialisation costs several queries per connection, and a no-op apply has a
budget of three. The SQLAlchemy dialect is used for identifier quoting only (`worker.adapters.pg_sql`).
Kind handlers (observe/plan) live in pg_database, pg_role and pg_grants; errors are mapped in pg_errors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg2
import psycopg2.extensions

from worker.adapters.base import Adapter, KindHandler, ServerInfo, Step
from worker.adapters.pg_errors import connect_error, statement_error, ungranted_warning
from worker.adapters.pg_sql import Params
from worker.errors import PermanentError, WorkerError
from worker.ownership import Owner
from worker.request import Request, Secrets

VERIFYING_MODES = ("verify-ca", "verify-full")
# Statement logging a superuser (or, from 15, a role granted SET on them) may switch off for one transaction,
# so a password verifier never lands in the server log.
QUIET_LOGGING = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_error_statement", "panic"),
)
CLIENT_CHECK = "1s"  # client_connection_check_interval while the worker holds its object lock
# A login refused for one of these reasons got past the password check: the password is right.
AFTER_AUTHENTICATION = (
    "is not permitted to log in",
    "permission denied for database",
    "too many connections for role",
    "does not exist",  # the admin database; libpq checks it after authentication
    "is not currently accepting connections",
)


def advisory_key(key: str) -> int:
    """The signed 64-bit pg_advisory_lock key of a lock name (stable across processes and releases)."""
    digest = hashlib.blake2b(f"dbops:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def version_tuple(number: int) -> tuple[int, ...]:
    """psycopg2's server_version (150020, 90624) as (15, 20) / (9, 6, 24)."""
    if number >= 100000:
        return number // 10000, number % 10000
    return number // 10000, (number // 100) % 100, number % 100


class PostgresAdapter(Adapter):
    def __init__(self, request: Request, secrets: Secrets) -> None:
        super().__init__(request, secrets)
        self.admin_user = secrets.admin_username
        self.admin_database = str(request.connection.get("database") or "postgres")
        self.admin_is_superuser = False
        self.tls_in_use = False
        self.info = ServerInfo("postgres", "", ())
        self._admin: psycopg2.extensions.connection | None = None
        self._others: dict[str, psycopg2.extensions.connection] = {}
        self._quiet: list[tuple[str, str]] | None = None  # the logging settings this admin may set
        self._watching = False  # sessions check for a dead client (see _watch_client)

    # --- connections --------------------------------------------------------------------------------------------

    def _tls(self) -> dict[str, str]:
        """libpq TLS parameters from connection.sslMode and the DBOPS_TLS_* files.

        A file named in the environment but absent (a Secret without that key) is left out, unless the mode
        needs it: verify-ca and verify-full cannot work without the CA certificate."""
        mode = self.request.connection.get("sslMode")
        out: dict[str, str] = {}
        if mode:
            out["sslmode"] = mode
        files = {
            "sslrootcert": ("DBOPS_TLS_CA", self.secrets.tls_ca),
            "sslcert": ("DBOPS_TLS_CERT", self.secrets.tls_cert),
            "sslkey": ("DBOPS_TLS_KEY", self.secrets.tls_key),
        }
        for param, (_, path) in files.items():
            if path and os.path.isfile(path):
                out[param] = path
        if mode in VERIFYING_MODES and "sslrootcert" not in out:
            named = self.secrets.tls_ca
            where = (
                f"DBOPS_TLS_CA names {named}, which does not exist" if named else "DBOPS_TLS_CA is not set"
            )
            raise PermanentError(
                "TLSError",
                f"sslMode {mode} verifies the server against a CA certificate, but {where}; "
                "add the CA to tls.secretRef (key ca) or use mode require",
            )
        if ("sslcert" in out) != ("sslkey" in out):
            have, lack = ("certificate", "key") if "sslcert" in out else ("key", "certificate")
            raise PermanentError(
                "TLSError",
                f"mutual TLS needs a client certificate and key; the TLS Secret has the {have} but no {lack}",
            )
        return out

    def _parameters(self, database: str, user: str, password: str) -> dict[str, Any]:
        conn = self.request.connection
        return {
            "host": conn["host"],
            "port": conn["port"],
            "dbname": database,
            "user": user,
            "password": password,
            "connect_timeout": conn.get("connectTimeout", 10),
            "application_name": conn.get("applicationName", "dbops-worker"),
            "options": f"-c statement_timeout={conn.get('statementTimeout', '60s')} "
            f"-c lock_timeout={conn.get('lockTimeout', '30s')}",
            **self._tls(),
        }

    def _open(self, database: str) -> psycopg2.extensions.connection:
        where = f"{self.request.connection['host']}:{self.request.connection['port']} database {database}"
        try:
            conn = psycopg2.connect(
                **self._parameters(database, self.secrets.admin_username, self.secrets.admin_password)
            )
        except psycopg2.Error as exc:
            raise connect_error(exc, where) from None
        # Reads run in autocommit (no BEGIN/ROLLBACK round trips); `execute` opens transactions explicitly.
        conn.autocommit = True
        return conn

    def connect(self) -> ServerInfo:
        self._admin = self._open(self.admin_database)
        number = self._admin.server_version
        reported = (self._admin.get_parameter_status("server_version") or "").split(" ")[0]
        self.info = ServerInfo("postgres", reported or str(number), version_tuple(number))
        # Both come with the connection's start-up messages: no query needed.
        self.admin_is_superuser = self._admin.get_parameter_status("is_superuser") == "on"
        self.tls_in_use = bool(self._admin.info.ssl_in_use)
        return self.info

    def _connection(self, database: str | None) -> psycopg2.extensions.connection:
        if self._admin is None:
            raise RuntimeError("connect() first")
        if database is None or database == self.admin_database:
            return self._admin
        if database not in self._others:
            self._others[database] = self._open(database)
            if self._watching:
                self._set_client_check(database)
        return self._others[database]

    def _close_others(self) -> None:
        for conn in self._others.values():
            if not conn.closed:
                conn.close()
        self._others.clear()

    def close(self) -> None:
        self._close_others()
        if self._admin is not None and not self._admin.closed:
            self._admin.close()
        self._admin = None

    # --- what handlers use (worker.adapters.pg_sql.Catalog) ----------------------------------------------------

    def query(self, sql: str, params: Params = None, database: str | None = None) -> list[tuple[Any, ...]]:
        conn = self._connection(database)
        self.reads += 1
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        except psycopg2.Error as exc:
            where = f"reading the catalog of database {database or self.admin_database}"
            raise statement_error(exc, where) from None

    def password_works(self, user: str, password: str) -> bool | None:
        try:
            conn = psycopg2.connect(**self._parameters(self.admin_database, user, password))
        except psycopg2.Error as exc:
            # libpq keeps no SQLSTATE for a failed connection (pgcode is None), so the server's message is all
            # there is, in the server's lc_messages. Text not matched here (another language included) is
            # "unknown": the password is then set again, and that step does not count against convergence.
            text = str(exc)
            if "password authentication failed" in text:
                return False
            if any(reason in text for reason in AFTER_AUTHENTICATION):
                return True
            return None  # refused before the password was checked (pg_hba.conf, network): unknown
        conn.close()
        return True

    # --- Adapter ------------------------------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        ((superuser, createdb, createrole),) = self.query(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        return {
            "version": self.info.version,
            "flavor": self.info.flavor,
            "tls": self.tls_in_use,
            "canCreateDatabases": bool(superuser or createdb),
            "canCreateRoles": bool(superuser or createrole),
            "superuser": bool(superuser),
        }

    def handler(self, kind: str) -> KindHandler[Any]:
        if kind == "Database":
            from worker.adapters.pg_database import DatabaseHandler

            return DatabaseHandler(self, Owner.of(self.request.owner))
        if kind == "DatabaseUser":
            from worker.adapters.pg_role import RoleHandler

            return RoleHandler(self, self.secrets.password, Owner.of(self.request.owner))
        if kind == "DatabaseRole":
            from worker.adapters.pg_group_role import DatabaseRoleHandler

            return DatabaseRoleHandler(self, Owner.of(self.request.owner))
        if kind == "DatabaseGrant":
            from worker.adapters.pg_grants import GrantHandler

            return GrantHandler(self, Owner.of(self.request.owner))
        raise PermanentError("InvalidRequest", f"kind {kind} has no PostgreSQL handler")

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """A session advisory lock on the admin connection; the wait is bounded by lock_timeout (55P03 ->
        TransientError LockTimeout)."""
        number = advisory_key(key)
        self._watch_client()
        try:
            self.query("SELECT pg_advisory_lock(%s)", (number,))
        except WorkerError as exc:
            if exc.code == "LockTimeout":
                raise type(exc)(
                    "LockTimeout",
                    f"another worker holds the lock on {key} longer than connection.lockTimeout; retrying later",
                ) from None
            raise
        try:
            yield
        finally:
            # A failed unlock must not hide the error that ended the block; the lock dies with the session.
            if self._admin is not None and not self._admin.closed:
                with suppress(WorkerError):
                    self.query("SELECT pg_advisory_unlock(%s)", (number,))

    def _watch_client(self) -> None:
        """Let the server notice a worker that died (SIGKILL, node loss) while one of its statements waits or
        runs: PostgreSQL 14+ then ends the session within a second, which rolls back the transaction and frees
        the object lock, instead of finishing the statement first and holding both until then. Set on every
        session once the worker is about to write (on reads it would cost a statement per no-op run)."""
        if self.info.version_tuple < (14,):
            return
        self._watching = True
        for database in [None, *self._others]:
            self._set_client_check(database)

    def _set_client_check(self, database: str | None) -> None:
        # Best effort: some platforms refuse the setting, and nothing depends on it.
        with suppress(WorkerError):
            self.query(
                "SELECT set_config('client_connection_check_interval', %s, false)", (CLIENT_CHECK,), database
            )

    def _quiet_settings(self) -> list[tuple[str, str]]:
        """The logging settings this admin may change for a transaction (superuser, or PG15+ SET privilege)."""
        if self._quiet is None:
            if self.admin_is_superuser:
                self._quiet = list(QUIET_LOGGING)
            elif self.info.version_tuple >= (15,):
                names = [name for name, _ in QUIET_LOGGING]
                ((allowed,),) = self.query(
                    "SELECT array_agg(p) FROM unnest(%s::text[]) AS p WHERE has_parameter_privilege(p, 'SET')",
                    (names,),
                )
                self._quiet = [(n, v) for n, v in QUIET_LOGGING if n in (allowed or [])]
            else:
                self._quiet = []
        return self._quiet

    def execute(self, steps: Sequence[Step]) -> Iterator[Step]:
        """Consecutive transactional steps for the same database share a transaction; the steps are yielded once
        it commits, so the result never lists a change that was rolled back."""
        i = 0
        while i < len(steps):
            first = steps[i]
            if not first.transactional:
                # DROP DATABASE / SET TABLESPACE fail while any session (ours included) is on the database.
                self._close_others()
                self._run_one(self._connection(first.database), first)
                i += 1
                yield first
                continue
            group = [first]
            while (
                i + len(group) < len(steps)
                and steps[i + len(group)].transactional
                and self._same_database(steps[i + len(group)].database, first.database)
            ):
                group.append(steps[i + len(group)])
            self._run_transaction(self._connection(first.database), group)
            i += len(group)
            yield from group

    def _same_database(self, a: str | None, b: str | None) -> bool:
        return (a or self.admin_database) == (b or self.admin_database)

    def _run_one(self, conn: psycopg2.extensions.connection, step: Step) -> None:
        self.writes += 1
        del conn.notices[:]
        try:
            with conn.cursor() as cur:
                cur.execute(step.sql, step.params)
        except psycopg2.Error as exc:
            unknown = "whether it took effect is unknown; the next run observes the server and converges"
            raise statement_error(exc, step.summary, step.secrets, unknown) from None
        refused = ungranted_warning(list(conn.notices), step.summary)
        if refused is not None:
            raise refused

    def _run_transaction(self, conn: psycopg2.extensions.connection, group: list[Step]) -> None:
        current = group[0]
        committing = False
        conn.autocommit = False
        try:
            with conn.cursor() as cur:
                for current in group:
                    quiet = self._quiet_settings() if current.secrets else []
                    for name, value in quiet:
                        self.reads += 1
                        cur.execute(f"SET LOCAL {name} = %s", (value,))
                    self.writes += 1
                    del conn.notices[:]
                    cur.execute(current.sql, current.params)
                    refused = ungranted_warning(list(conn.notices), current.summary)
                    if refused is not None:
                        raise refused  # rolled back below: nothing of the transaction stays
                    for name, _ in quiet:
                        # Back to the server's setting for the rest of the transaction.
                        self.reads += 1
                        cur.execute(f"SET LOCAL {name} TO DEFAULT")
            committing = True
            conn.commit()
        except psycopg2.Error as exc:
            self._rollback(conn)
            outcome = (
                "whether its transaction committed is unknown; the next run observes the server and converges"
                if committing
                else f"its transaction ({len(group)} statement(s)) was rolled back, nothing of it is applied"
            )
            summary = f"COMMIT after {current.summary}" if committing else current.summary
            raise statement_error(exc, summary, current.secrets, outcome) from None
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            if not conn.closed:
                conn.autocommit = True

    @staticmethod
    def _rollback(conn: psycopg2.extensions.connection) -> None:
        if conn.closed:
            return
        try:
            conn.rollback()
        except psycopg2.Error:
            conn.close()
