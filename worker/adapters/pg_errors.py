"""Every PostgreSQL failure -> TransientError (exit 1) or PermanentError (exit 2), decided here and nowhere else.

Statement errors carry a SQLSTATE: the table below maps it (exact code first, then its two-character class).
Connection errors come from libpq without one, so `connect_error` reads libpq's message instead.
"""

from __future__ import annotations

from typing import Any

from worker.errors import PermanentError, TransientError, WorkerError
from worker.result import redact

# SQLSTATE -> (transient, code). https://www.postgresql.org/docs/current/errcodes-appendix.html
SQLSTATES: dict[str, tuple[bool, str]] = {
    "28P01": (False, "AuthenticationFailed"),
    "28000": (False, "AuthenticationFailed"),
    "42501": (False, "PermissionDenied"),
    "55P03": (True, "LockTimeout"),
    "57014": (True, "StatementTimeout"),
    "40001": (True, "SerializationFailure"),
    "40P01": (True, "Deadlock"),
    "55006": (True, "ObjectInUse"),
    "55000": (False, "ObjectNotInPrerequisiteState"),
    "2BP01": (False, "DependentObjects"),
    "42704": (False, "UndefinedObject"),
    "3D000": (False, "DatabaseNotFound"),
    "3F000": (False, "SchemaNotFound"),
    "42P01": (False, "UndefinedTable"),
    "42883": (False, "UndefinedFunction"),
    # "Already exists": somebody created the object between our observation and our statement, or something else
    # of that name is in the way. The engine observes again: if the plan still has the statement, it ends
    # permanent AlreadyExists (worker.engine); otherwise the retry finds the work done.
    "42710": (True, "ConcurrentChange"),
    "42P04": (True, "ConcurrentChange"),
    "42P06": (True, "ConcurrentChange"),
    "42P07": (True, "ConcurrentChange"),
    "23505": (True, "ConcurrentChange"),
    "XX000": (False, "InternalError"),
    "25006": (True, "ReadOnlyServer"),  # a standby (e.g. mid-failover): the primary will answer later
    "0A000": (False, "Unsupported"),
    "58P01": (False, "FileNotFound"),  # e.g. an extension's control file: not installed on the server
    "22023": (False, "InvalidValue"),
    "0LP01": (False, "InvalidGrant"),
    "42601": (False, "SyntaxError"),
}
CLASSES: dict[str, tuple[bool, str]] = {
    "08": (True, "ConnectionFailure"),
    "22": (False, "InvalidValue"),
    "28": (False, "AuthenticationFailed"),
    "40": (True, "TransactionRollback"),
    "42": (False, "InvalidStatement"),
    "53": (True, "InsufficientResources"),
    "57": (True, "OperatorIntervention"),
    "58": (True, "SystemError"),
}

# For 42501: what the admin role lacks, by how the refused statement starts (first match wins).
PERMISSION_HINTS: tuple[tuple[str, str], ...] = (
    ("CREATE DATABASE", "the admin role needs CREATEDB (ALTER ROLE <admin> CREATEDB)"),
    ("ALTER DATABASE", "the admin must own the database (or be a member of its owner role, or a superuser)"),
    ("DROP DATABASE", "the admin must own the database (or be a member of its owner role, or a superuser)"),
    (
        "CREATE EXTENSION",
        "untrusted extensions need a superuser admin; trusted ones need CREATE on the database",
    ),
    ("ALTER EXTENSION", "the admin must own the extension (or be a superuser)"),
    ("CREATE SCHEMA", "the admin needs CREATE on the database and membership in the schema's owner role"),
    ("ALTER SCHEMA", "the admin must own the schema (or be a superuser)"),
    ("ALTER DEFAULT PRIVILEGES", "the admin must be a member of the FOR ROLE role (or a superuser)"),
    (
        "CREATE ROLE",
        "the admin role needs CREATEROLE; SUPERUSER, REPLICATION and BYPASSRLS need a superuser admin",
    ),
    ("DROP ROLE", "the admin role needs CREATEROLE (a superuser admin to drop a superuser)"),
    (
        "ALTER ROLE",
        "the admin role needs CREATEROLE; SUPERUSER, REPLICATION and BYPASSRLS need a superuser admin",
    ),
    (
        "GRANT",
        "the admin must own the object, hold the privilege WITH GRANT OPTION, have ADMIN OPTION on the "
        "role, or be a superuser",
    ),
    ("REVOKE", "the admin must own the object, have ADMIN OPTION on the role, or be a superuser"),
    ("SELECT PG_TERMINATE_BACKEND", "the admin needs membership in pg_signal_backend (or superuser)"),
)
PARAMETER_HINT = (
    "setting this parameter needs a superuser admin (or, on PostgreSQL 15+, GRANT SET ON PARAMETER)"
)
OWNER_HINT = "the admin must be a member of the new owner role (or a superuser)"


def _hint_for(statement: str) -> str:
    upper = statement.upper()
    if " OWNER TO " in upper:
        return OWNER_HINT
    if upper.startswith("ALTER ROLE") and (" SET " in upper or " RESET " in upper):
        return PARAMETER_HINT
    for prefix, hint in PERMISSION_HINTS:
        if upper.startswith(prefix):
            return hint
    return "the admin role lacks a privilege this statement needs"


# Connection-level SQLSTATEs a session ends with when the server stops or the link breaks (psycopg2 reports a
# broken socket without any SQLSTATE).
CONNECTION_LOST = ("57P01", "57P02", "57P03")
# Two sessions updating the same catalog row (two GRANTs on one object for different grantees): PostgreSQL raises
# XX000 with this text once the other transaction commits. A re-run observes the committed state and succeeds.
CONCURRENT_UPDATE = "tuple concurrently updated"
# What the worker's own timeouts mean, for the messages of 55P03 and 57014.
TIMEOUT_HINTS = {
    "55P03": "another session held a lock this statement needs for longer than connection.lockTimeout; "
    "retrying later",
    "57014": "the statement ran longer than connection.statementTimeout (the instance's "
    "postgres.statementTimeout), or an operator cancelled it; retrying later",
}


ALREADY_EXISTS = frozenset({"42710", "42P04", "42P06", "42P07", "23505"})


def classify(sqlstate: str | None) -> tuple[bool, str]:
    """(transient, code) for a SQLSTATE; unknown codes are permanent so a broken request does not loop."""
    if sqlstate is None:
        return True, "ConnectionFailure"
    if sqlstate in SQLSTATES:
        return SQLSTATES[sqlstate]
    return CLASSES.get(sqlstate[:2], (False, "DatabaseError"))


def connection_lost(exc: Any) -> bool:
    """Whether a statement failed because the session ended (server stopped, restarted, network broken)."""
    sqlstate: str | None = getattr(exc, "pgcode", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in CONNECTION_LOST


def statement_error(exc: Any, summary: str, secrets: tuple[str, ...] = (), outcome: str = "") -> WorkerError:
    """A classified error for a failed statement. `summary` is the redacted statement; `exc` a psycopg2 Error;
    `outcome` says what became of the statement's transaction when the connection was lost."""
    sqlstate: str | None = getattr(exc, "pgcode", None)
    transient, code = classify(sqlstate)
    diag = getattr(exc, "diag", None)
    lines = str(exc).strip().splitlines()
    text = getattr(diag, "message_primary", None) or (lines[0] if lines else type(exc).__name__)
    if sqlstate == "XX000" and CONCURRENT_UPDATE in text:
        transient, code = True, "ConcurrentChange"
    elif connection_lost(exc):
        transient, code = True, "ConnectionLost"  # the same code as on MySQL/MariaDB
    parts = [f"{summary}: {text}"]
    detail = getattr(diag, "message_detail", None)
    hint = getattr(diag, "message_hint", None)
    if detail:
        parts.append(detail.replace("\n", "; "))
    if connection_lost(exc):
        parts.append(
            "The connection to the server was lost (the server stopped or restarted, or the network failed)"
            + (f"; {outcome}" if outcome else "")
            + "; retrying later"
        )
    elif code == "ConcurrentChange":
        parts.append("Another session changed the same object at the same time; retrying")
    elif sqlstate in TIMEOUT_HINTS:
        parts.append(f"Hint: {TIMEOUT_HINTS[sqlstate]}")
    elif sqlstate == "42501":
        parts.append(f"Hint: {_hint_for(summary)}")
    elif hint:
        parts.append(f"Hint: {hint}")
    if sqlstate == "2BP01" and summary.upper().startswith("DROP ROLE"):
        parts.append(
            "Resolve: in each database named, REASSIGN OWNED BY the role TO another role and DROP OWNED BY it, "
            "then drop again"
        )
    message = redact(". ".join(p.rstrip(".") for p in parts), list(secrets))
    # For "already exists" the engine needs the statement, to see whether observing again still plans it.
    statement = summary if sqlstate in ALREADY_EXISTS else None
    return (TransientError if transient else PermanentError)(code, message, statement)


# PostgreSQL answers a GRANT/REVOKE of privileges the admin holds without grant option with a WARNING (SQLSTATE
# 01007/01006), not an error, and changes nothing (or only part). The English texts, as psycopg2 hands notices over
# as text only; on a server with translated messages the final observation still reports `NotConverged`.
UNGRANTED = (
    "no privileges were granted",
    "not all privileges were granted",
    "no privileges could be revoked",
    "not all privileges could be revoked",
)
UNGRANTED_HINT = (
    "the admin holds the privilege without GRANT OPTION (or not at all): grant it to the admin WITH GRANT OPTION, "
    "make the admin the object's owner (or a member of the owner role), or use a superuser admin"
)


def ungranted_warning(notices: list[str], summary: str) -> WorkerError | None:
    """A PermissionDenied for a GRANT/REVOKE the server only partly carried out, from the session's notices."""
    for notice in notices:
        text = notice.strip().split(":", 1)[-1].strip()
        if any(text.startswith(prefix) for prefix in UNGRANTED):
            return PermanentError("PermissionDenied", f"{summary}: {text}. Hint: {UNGRANTED_HINT}")
    return None


# libpq connection failures: (substring of the message, transient, code, advice). First match wins, so the
# connection-limit messages come before `role "`, which "too many connections for role "x"" also contains.
CONNECT_FAILURES: tuple[tuple[str, bool, str, str], ...] = (
    (
        # Before `database "`: the database exists, the admin may not connect to it (no CONNECT, e.g. revoked
        # from PUBLIC by spec.postgres.publicPrivileges).
        "permission denied for database",
        False,
        "PermissionDenied",
        "the admin lacks CONNECT on this database: GRANT CONNECT ON DATABASE <name> TO <admin>, make the admin "
        "its owner, or list CONNECT in the Database's postgres.publicPrivileges",
    ),
    (
        "too many connections for role",
        True,
        "TooManyConnections",
        "the admin role is at its connection limit (ALTER ROLE ... CONNECTION LIMIT); retried later",
    ),
    ("too many", True, "TooManyConnections", "the server has no free connection slots"),
    ("remaining connection slots", True, "TooManyConnections", "the server has no free connection slots"),
    (
        "password authentication failed",
        False,
        "AuthenticationFailed",
        "check the admin Secret's username and password",
    ),
    (
        "no pg_hba.conf entry",
        False,
        "AuthenticationFailed",
        "the server's pg_hba.conf refuses this client; allow it or use TLS if only hostssl lines match",
    ),
    ("is not permitted to log in", False, "AuthenticationFailed", "the admin role lacks LOGIN"),
    (
        "connection requires a valid client certificate",
        False,
        "AuthenticationFailed",
        "pg_hba.conf authenticates the admin by client certificate: put the certificate and key in the "
        "instance's tls.secretRef (keys tls.crt and tls.key)",
    ),
    (
        "certificate authentication failed",
        False,
        "AuthenticationFailed",
        "the client certificate's common name (CN) must be the admin user name, or map it in pg_ident.conf",
    ),
    ('role "', False, "AuthenticationFailed", "check the admin Secret's username"),
    ('database "', False, "DatabaseNotFound", "fix connection.database (the admin database)"),
    ("could not translate host name", True, "HostNotFound", "check connection.host; DNS may not know it yet"),
    ("SSL SYSCALL error", True, "ConnectionFailure", "the connection dropped during the TLS handshake"),
    (
        "SSL connection has been closed unexpectedly",
        True,
        "ConnectionFailure",
        "the server closed the connection",
    ),
    (
        "certificate verify failed",
        False,
        "TLSError",
        "the server's certificate is not signed by the CA in tls.secretRef",
    ),
    (
        "does not match host name",
        False,
        "TLSError",
        "connection.host is not a name in the server's certificate; connect by a name it lists or use verify-ca",
    ),
    (
        "root certificate file",
        False,
        "TLSError",
        "the TLS mode verifies the server and needs the CA certificate (tls.secretRef key ca)",
    ),
    (
        "server does not support SSL",
        False,
        "TLSError",
        "the server has TLS off; enable it there or lower the TLS mode",
    ),
    (
        "private key file",
        False,
        "TLSError",
        "the client key is unusable (libpq needs mode 0600 or 0640 owned by root)",
    ),
    (
        "certificate present, but not private key",
        False,
        "TLSError",
        "mutual TLS needs both the client certificate and key",
    ),
    ("SSL error", False, "TLSError", "the TLS handshake failed"),
    ("Connection refused", True, "ConnectionRefused", "nothing listens on connection.host:port yet"),
    ("timeout expired", True, "ConnectTimeout", "the server did not answer within connection.connectTimeout"),
    ("timed out", True, "ConnectTimeout", "the server did not answer within connection.connectTimeout"),
    ("starting up", True, "ServerStarting", "the server is starting"),
    ("shutting down", True, "ServerStopping", "the server is shutting down"),
)


def connect_error(exc: Exception, target: str) -> WorkerError:
    """Classify a failed connection attempt (psycopg2 OperationalError without SQLSTATE) by libpq's message."""
    lines: list[str] = []
    for line in str(exc).splitlines():
        text = line.strip()
        if " failed: " in text:
            text = text.split(" failed: ", 1)[1]
        text = text.removeprefix("FATAL:").strip()
        if text and text not in lines:
            lines.append(text)
    message = "; ".join(lines) or type(exc).__name__
    for needle, transient, code, advice in CONNECT_FAILURES:
        if needle in message:
            return (TransientError if transient else PermanentError)(
                code, f"connecting to {target}: {message} ({advice})"
            )
    return TransientError("ConnectionFailure", f"connecting to {target}: {message}")
