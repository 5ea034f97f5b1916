"""The worker's result: one JSON object, last line of stdout and the termination-log file (design section 5)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from dbops_api.result import EXIT_CONVERGED, RESULT_LIMIT
from worker.errors import WorkerError

DEFAULT_RESULT_FILE = "/dev/termination-log"
REDACTED = "***"


@dataclass
class Result:
    kind: str
    action: str
    changes: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    server: dict[str, str] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=lambda: {"reads": 0, "writes": 0})
    duration_ms: int = 0
    error: WorkerError | None = None
    warnings: list[str] = field(default_factory=list)
    # `plan`: the object does not exist yet, so the plan creates it (the function's driftPolicy detect says so).
    missing: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        return EXIT_CONVERGED if self.error is None else self.error.exit_code

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "kind": self.kind,
            "action": self.action,
            "changes": self.changes,
            "observed": self.observed,
            "server": self.server,
            "statements": self.statements,
            "durationMs": self.duration_ms,
            "error": None
            if self.error is None
            else {"class": self.error.error_class, "code": self.error.code, "message": self.error.message},
        }
        if self.warnings:
            out["warnings"] = self.warnings
        if self.missing:
            out["missing"] = True
        return out


def redact(text: str, secrets: list[str]) -> str:
    """Last line of defence: no secret value leaves the process, whatever produced the text."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _redacted(value: Any, secrets: list[str]) -> Any:
    """Every string in a JSON-like value redacted. Done before serialising: in the JSON text a secret with a quote,
    a backslash or a control character is escaped and would no longer match, and cutting a message short could
    leave half a secret behind."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redacted(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_redacted(k, secrets): _redacted(v, secrets) for k, v in value.items()}
    return value


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def render(result: Result, secrets: list[str]) -> str:
    """Serialise to one line of at most RESULT_LIMIT bytes, shortening the change list and messages if needed."""
    data = _redacted(result.to_dict(), secrets)
    line = _dumps(data)
    changes = list(data["changes"])
    while len(line.encode()) > RESULT_LIMIT and changes:
        keep = max(0, len(changes) // 2)
        dropped = len(result.changes) - keep
        changes = changes[:keep]
        data["changes"] = [*changes, f"... and {dropped} more"]
        line = _dumps(data)
        if keep == 0:
            break
    if len(line.encode()) > RESULT_LIMIT and data["error"]:
        data["error"]["message"] = data["error"]["message"][:1024] + " ..."
        line = _dumps(data)
    if len(line.encode()) > RESULT_LIMIT:
        data["observed"] = {"truncated": True}
        line = _dumps(data)
    return line


def write_result_file(line: str, env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Write the termination message. Returns a warning when an explicitly requested file cannot be written."""
    path = env.get("DBOPS_RESULT_FILE")
    explicit = path is not None
    path = path or DEFAULT_RESULT_FILE
    if not explicit and not os.path.exists(path):
        return None  # not in a Pod: Kubernetes mounts the file; never create one in /dev
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(line)
    except OSError as exc:
        if explicit:
            return f"could not write the result to {path}: {exc.strerror}"
    return None
