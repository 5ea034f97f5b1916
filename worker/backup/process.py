"""Running the engines' client tools: the server's version, a private directory for their credentials files, a
minimal environment, their version, and what their last words on stderr mean."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

from worker.errors import PermanentError, TransientError, WorkerError
from worker.request import Request, Secrets

STDERR_LINES = 40
TOOL_EXIT_TIMEOUT = 60.0


def server_info(request: Request, secrets: Secrets) -> Any:
    from worker.adapters import load

    adapter = load(request.engine)(request, secrets)
    with adapter:
        info = adapter.connect()
    if request.engine != info.flavor and not (request.engine == "mysql" and info.flavor == "mariadb"):
        raise PermanentError(
            "EngineMismatch",
            f"the instance says engine {request.engine}, but the server is {info.flavor} {info.version}; "
            "fix spec.engine",
        )
    return info


@contextlib.contextmanager
def private_dir() -> Iterator[str]:
    """A directory only this process can read, on a memory-backed file system where there is one
    (DBOPS_SECRETS_DIR, else /dev/shm), removed on the way out whatever happens."""
    base = os.environ.get("DBOPS_SECRETS_DIR") or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)  # noqa: S108
    path = tempfile.mkdtemp(prefix="dbops-worker-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_private(path: str, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(content)


def version_of(binary: str) -> str:
    done = subprocess.run(
        [binary, "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
    )
    return done.stdout + done.stderr


def tool_env(private: str) -> dict[str, str]:
    """The dump tool's whole environment: no DBOPS_* variable, nothing the worker's own environment holds but its
    PATH."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": private, "TZ": "UTC"}


# What the dump tool's last words mean: (text, code, permanent).
TOOL_ERRORS = (
    ("password authentication failed", "AuthenticationFailed", True),
    ("Access denied for user", "AuthenticationFailed", True),
    ("does not exist", "ObjectNotFound", True),
    ("Unknown database", "ObjectNotFound", True),
    ("permission denied", "PermissionDenied", True),
    ("you need (at least one of)", "PermissionDenied", True),
    ("server version mismatch", "Unsupported", True),
    ("unsupported version", "Unsupported", True),
    ("certificate verify failed", "TLSError", True),
    ("Connection refused", "ConnectionRefused", False),
    ("Can't connect", "ConnectionRefused", False),
    ("Lost connection", "ConnectionLost", False),
    ("server closed the connection", "ConnectionLost", False),
    ("lock timeout", "LockTimeout", False),
    ("canceling statement due to lock timeout", "LockTimeout", False),
)


def tool_failed(
    name: str, code: int, lines: list[str], outcome: str = "nothing was published", failed: str = "DumpFailed"
) -> WorkerError:
    said = "; ".join(line for line in lines[-5:] if line)[-800:]
    if code < 0:
        return TransientError(
            failed,
            f"{name} was killed by signal {-code} before it finished; {outcome}"
            + (f" ({said})" if said else ""),
        )
    for text, error_code, permanent in TOOL_ERRORS:
        if text.lower() in said.lower():
            cls = PermanentError if permanent else TransientError
            return cls(error_code, f"{name} failed: {said}; {outcome}")
    return TransientError(failed, f"{name} exited {code}: {said or '(it said nothing)'}; {outcome}")
