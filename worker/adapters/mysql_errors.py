"""MySQL/MariaDB error numbers -> transient or permanent worker errors, in one table (design section 5).

The message keeps the server's words (secrets removed) and adds what to do about it: for the access errors, the
privilege the admin lacks.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbops_api.system import MYSQL_CATALOG
from worker.errors import PermanentError, TransientError, WorkerError
from worker.result import redact


@dataclass(frozen=True)
class Mapping:
    transient: bool
    code: str
    hint: str = ""


_ADMIN_GRANTS = (
    "the admin account needs CREATE, DROP, ALTER, CREATE USER and the privileges it hands out WITH GRANT OPTION, "
    "plus SELECT on the mysql schema to read the grant tables (docs/worker-mysql.md)"
)

ERRORS: dict[int, Mapping] = {
    # Access and authentication.
    1045: Mapping(
        False,
        "AuthenticationFailed",
        "check the admin Secret's username and password; an account with REQUIRE SSL or X509 also refuses a "
        "login without TLS or without a client certificate (tls.secretRef keys tls.crt and tls.key)",
    ),
    1698: Mapping(False, "AuthenticationFailed", "the admin account does not accept a password login"),
    1044: Mapping(False, "PermissionDenied", _ADMIN_GRANTS),
    1142: Mapping(False, "PermissionDenied", _ADMIN_GRANTS),
    1143: Mapping(False, "PermissionDenied", _ADMIN_GRANTS),
    1227: Mapping(False, "PermissionDenied", "the admin account lacks the privilege named above"),
    1370: Mapping(False, "PermissionDenied", "the admin needs ALTER ROUTINE/EXECUTE WITH GRANT OPTION on it"),
    1410: Mapping(
        False, "PermissionDenied", "the admin may only pass on privileges it holds WITH GRANT OPTION"
    ),
    1131: Mapping(False, "PermissionDenied", _ADMIN_GRANTS),
    1132: Mapping(False, "PermissionDenied", "the admin needs UPDATE on the mysql schema or CREATE USER"),
    3118: Mapping(False, "AccountLocked", "unlock the admin account"),
    4151: Mapping(False, "AccountLocked", "unlock the admin account"),
    1862: Mapping(False, "PasswordExpired", "the admin account's password has expired; set a new one"),
    1820: Mapping(False, "PasswordExpired", "the admin account's password has expired; set a new one"),
    # Connection trouble: retry later.
    2002: Mapping(True, "Unreachable", "nothing listens on connection.host:port yet; the server may be down"),
    2003: Mapping(True, "Unreachable", "nothing listens on connection.host:port yet; the server may be down"),
    2005: Mapping(True, "HostNotFound", "check connection.host"),
    2006: Mapping(True, "ConnectionLost"),
    2013: Mapping(True, "ConnectionLost"),
    2055: Mapping(True, "ConnectionLost"),
    1040: Mapping(True, "TooManyConnections"),
    1203: Mapping(True, "TooManyConnections"),
    1226: Mapping(True, "ResourceLimit", "the admin account hit one of its MAX_* limits"),
    1053: Mapping(True, "ServerShutdown"),
    1077: Mapping(True, "ServerShutdown"),
    1927: Mapping(True, "ConnectionLost"),
    # 1290 names the option that refuses the statement: only --read-only/--super-read-only pass (failover);
    # see classify().
    1290: Mapping(True, "ReadOnly", "the server runs read-only (a replica, or during failover)"),
    1836: Mapping(True, "ReadOnly", "the server runs read-only (a replica, or during failover)"),
    # Lock and statement timeouts: retry later.
    1205: Mapping(True, "LockTimeout"),
    1213: Mapping(True, "Deadlock"),
    3024: Mapping(True, "StatementTimeout"),
    1969: Mapping(True, "StatementTimeout"),
    1317: Mapping(True, "Interrupted"),
    3572: Mapping(True, "LockTimeout"),
    # The request asks for something the server refuses.
    1049: Mapping(False, "ObjectNotFound"),
    1146: Mapping(False, "ObjectNotFound"),
    1305: Mapping(False, "ObjectNotFound"),
    1054: Mapping(False, "ObjectNotFound"),
    1141: Mapping(False, "GrantNotFound"),
    1147: Mapping(False, "GrantNotFound"),
    1403: Mapping(False, "GrantNotFound"),
    1115: Mapping(False, "InvalidSpec", "check spec.mysql.charset"),
    1273: Mapping(False, "InvalidSpec", "check spec.mysql.collation"),
    1253: Mapping(False, "InvalidSpec", "the collation does not belong to the character set"),
    1524: Mapping(False, "PluginNotLoaded", "an admin must install the plugin (MariaDB: INSTALL SONAME)"),
    1819: Mapping(False, "PasswordPolicy", "the server's password policy refused the password"),
    1396: Mapping(False, "AccountConflict"),
    1959: Mapping(False, "RoleNotFound"),
    3523: Mapping(False, "RoleNotFound"),
    1007: Mapping(False, "AlreadyExists"),
    1008: Mapping(False, "ObjectNotFound"),
    1064: Mapping(False, "InternalError", "this is a dbops bug; please report it with the plan output"),
    1149: Mapping(False, "InternalError", "this is a dbops bug; please report it with the plan output"),
    1221: Mapping(False, "InternalError", "this is a dbops bug; please report it with the plan output"),
    2026: Mapping(
        False,
        "TLSError",
        "the server does not offer TLS, or the TLS handshake failed; dbops encrypts MySQL/MariaDB connections by "
        "default: enable TLS on the server, or set the instance's mysql.tls: disable to send statements in clear",
    ),
}


# For the access errors: what the admin lacks, by what the worker was doing (the statement summary, or the
# `reading ...` of a catalog query). First match wins; without one, the general list above.
PERMISSION_HINTS: tuple[tuple[str, str], ...] = (
    ("CREATE DATABASE", "the admin account needs the CREATE privilege (GRANT CREATE ON *.* TO <admin>)"),
    (
        "ALTER DATABASE",
        "the admin account needs the ALTER privilege on the database (GRANT ALTER ON *.* ...)",
    ),
    ("DROP DATABASE", "the admin account needs the DROP privilege on the database (GRANT DROP ON *.* ...)"),
    (
        "CREATE USER",
        "the admin account needs the CREATE USER privilege (GRANT CREATE USER ON *.* TO <admin>)",
    ),
    ("ALTER USER", "the admin account needs the CREATE USER privilege (GRANT CREATE USER ON *.* TO <admin>)"),
    ("DROP USER", "the admin account needs the CREATE USER privilege (GRANT CREATE USER ON *.* TO <admin>)"),
    (
        "SET PASSWORD",
        "the admin account needs the CREATE USER privilege (GRANT CREATE USER ON *.* TO <admin>)",
    ),
    ("SET DEFAULT ROLE", "the admin account needs the CREATE USER privilege, or ADMIN OPTION on the role"),
    (
        "GRANT",
        "the admin account may only pass on privileges it holds WITH GRANT OPTION at that level or above "
        "(GRANT <privileges> ON <level> TO <admin> WITH GRANT OPTION), and roles it holds WITH ADMIN OPTION",
    ),
    (
        "REVOKE",
        "the admin account needs GRANT OPTION and the privileges it revokes (or the CREATE USER privilege), "
        "and ADMIN OPTION on the roles it revokes",
    ),
    ("reading", "the admin account needs SELECT on the mysql schema to read the grant tables"),
)


CATALOG_HINT = (
    f"dbops keeps which claim owns each account and database in its catalog `{MYSQL_CATALOG}`: the admin account "
    f"needs CREATE on it once and SELECT, INSERT, UPDATE, DELETE on `{MYSQL_CATALOG}`.* "
    f"(GRANT CREATE, SELECT, INSERT, UPDATE, DELETE ON `{MYSQL_CATALOG}`.* TO <admin>)"
)


def _permission_hint(doing: str, fallback: str) -> str:
    for prefix, hint in PERMISSION_HINTS:
        if doing.startswith(prefix):
            return hint
    return fallback


# How our own timeouts and a lost connection read to a user: appended to the server's words.
SITUATION_HINTS: dict[str, str] = {
    "LockTimeout": "another session held a lock this statement needs for longer than connection.lockTimeout "
    "(MariaDB waits on its grant tables up to connection.statementTimeout instead); retrying later",
    "StatementTimeout": "the statement ran longer than connection.statementTimeout; retrying later",
    "ConnectionLost": "the connection to the server was lost (the server stopped or restarted, or the network "
    "failed); DDL and DCL are not transactional here: statements before this one are applied, whether this one "
    "took effect is unknown; the next run observes the server and applies the rest",
    "ServerShutdown": "the server is shutting down; statements before this one are applied, the next run "
    "applies the rest",
}


def _number_and_text(exc: BaseException) -> tuple[int | None, str]:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return None, str(exc)


def classify(exc: BaseException, secrets: Sequence[str] = (), doing: str = "") -> WorkerError:
    """The worker error for a PyMySQL (or socket/TLS) exception. `secrets` are removed from the message."""
    number, text = _number_and_text(exc)
    original = getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__
    if isinstance(original, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        # The peer closed the TLS stream (a server stopping or restarting, a proxy cut): not a TLS problem.
        return TransientError(
            "ConnectionLost",
            _message(
                f"the server closed the TLS connection ({original.reason or original})",
                doing,
                secrets,
                SITUATION_HINTS["ConnectionLost"] if doing[:1].isupper() else "retrying later",
            ),
        )
    if number == 1290 and not _read_only(text):
        return PermanentError(
            "ServerOptionPrevents",
            _message(
                f"server error {number}: {text}",
                doing,
                secrets,
                "a server option that is not about failover forbids this statement (e.g. --skip-grant-tables); "
                "retrying cannot help until the server runs without it",
            ),
        )
    if isinstance(original, ssl.SSLCertVerificationError):
        return PermanentError(
            "TLSError",
            _message(
                f"server certificate rejected: {original.verify_message}",
                doing,
                secrets,
                "check DBOPS_TLS_CA (the CA that signed the server certificate) and that connection.host "
                "is a name in the certificate (verify-full)",
            ),
        )
    if isinstance(original, ssl.SSLError):
        return PermanentError(
            "TLSError",
            _message(
                f"TLS handshake failed: {original.reason or original}",
                doing,
                secrets,
                "check the TLS mode and the client certificate and key",
            ),
        )
    if isinstance(original, socket.gaierror):
        return TransientError(
            "HostNotFound",
            _message(
                f"host name does not resolve ({original.strerror})", doing, secrets, "check connection.host"
            ),
        )
    if isinstance(original, TimeoutError | socket.timeout):
        return TransientError("Timeout", _message("timed out connecting to the server", doing, secrets, ""))
    if number is None:
        return TransientError("ConnectionError", _message(text, doing, secrets, ""))
    mapping = ERRORS.get(number)
    if mapping is None:
        # Unknown client-side errors (2xxx) are about the connection; unknown server errors are not retryable.
        mapping = Mapping(True, "ConnectionError") if 2000 <= number < 3000 else Mapping(False, "ServerError")
    hint = mapping.hint
    if mapping.code == "PermissionDenied" and MYSQL_CATALOG in text:
        hint = CATALOG_HINT
    elif mapping.code == "PermissionDenied" and number in (1044, 1142, 1143, 1227):
        hint = _permission_hint(doing, hint)
    elif mapping.code in SITUATION_HINTS and doing[:1].isupper():
        # `doing` is a statement summary (SQL keywords first), not `connecting ...` / `reading ...`.
        hint = SITUATION_HINTS[mapping.code]
    message = _message(f"server error {number}: {text}", doing, secrets, hint)
    if mapping.transient:
        return TransientError(mapping.code, message)
    return PermanentError(mapping.code, message)


def _read_only(text: str) -> bool:
    """Whether a 1290 names --read-only or --super-read-only (a replica, or a primary during failover)."""
    low = text.lower()
    return "read-only" in low or "read_only" in low


def _message(text: str, doing: str, secrets: Sequence[str], hint: str) -> str:
    out = f"{doing}: {text}" if doing else text
    if hint:
        out += f" ({hint})"
    return redact(out, list(secrets))
