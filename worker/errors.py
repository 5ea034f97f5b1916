"""The worker's one error hierarchy. Every failure ends as a TransientError (exit 1) or a PermanentError (exit 2).

Adapters translate driver errors (SQLSTATE, MySQL error numbers) into these in one table each; nothing else
decides exit codes.
"""

from __future__ import annotations


class WorkerError(Exception):
    """A classified failure with a stable `code` and a message fit for a user (never a secret)."""

    transient: bool = False
    exit_code: int = 2

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def error_class(self) -> str:
        return "transient" if self.transient else "permanent"


class TransientError(WorkerError):
    """Retrying later may succeed: connection refused or reset, timeouts, lock waits, serialization failures."""

    transient = True
    exit_code = 1


class PermanentError(WorkerError):
    """Retrying the same request cannot succeed: bad request, authentication, permissions, immutable fields."""


class InvalidRequest(PermanentError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidRequest", message)
