"""The worker's one error hierarchy. Every failure ends as a TransientError (exit 1) or a PermanentError (exit 2).

Adapters translate driver errors (SQLSTATE, MySQL error numbers) into these in one table each; nothing else
decides exit codes.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from dbops_api.result import EXIT_PERMANENT, EXIT_TRANSIENT


class WorkerError(Exception):
    """A classified failure with a stable `code` and a message fit for a user (never a secret). `statement`: the
    summary of the statement that failed, where the adapter knows it (the engine compares it with a new plan)."""

    transient: bool = False
    exit_code: int = EXIT_PERMANENT

    def __init__(self, code: str, message: str, statement: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.statement = statement

    @property
    def error_class(self) -> str:
        return "transient" if self.transient else "permanent"


class TransientError(WorkerError):
    """Retrying later may succeed: connection refused or reset, timeouts, lock waits, serialization failures."""

    transient = True
    exit_code = EXIT_TRANSIENT


class PermanentError(WorkerError):
    """Retrying the same request cannot succeed: bad request, authentication, permissions, immutable fields."""


class InvalidRequest(PermanentError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidRequest", message)


def internal_error(exc: BaseException) -> PermanentError:
    """An exception nothing classified: a dbops bug. Permanent, so the Job is not retried with the same request
    (exit 1 would retry it forever), with the exception type and where it was raised. The caller redacts."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return PermanentError(
        "InternalError",
        f"unexpected {type(exc).__name__}{where}"
        + (f": {text}" if text else "")
        + "; this is a dbops bug, please "
        "report it with this message and the `plan` output. It is not retried: the same request would fail the "
        "same way",
    )
