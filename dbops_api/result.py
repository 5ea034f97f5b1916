"""The worker's result (design section 5): what a Job reports, and how the function reads it back.

The worker prints one JSON object as the last line of stdout and writes it to the termination-log file:
`{"ok", "kind", "action", "changes", "observed", "server", "statements", "durationMs", "error": {"class", "code",
"message"}}`, plus `"warnings"` when there is something to say about the request itself (fields of a newer minor
version it ignored). Kubernetes keeps at most RESULT_LIMIT bytes of a termination message.
"""

from __future__ import annotations

import json
from typing import Any

RESULT_LIMIT = 4096
EXIT_CONVERGED = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = 2
ERROR_CLASSES = ("transient", "permanent")

# Error codes that say the server could not be reached, or refused the admin's connection: a problem of the instance,
# not of the claim whose Job met it (docs/worker.md, "Exit codes and error classes").
UNREACHABLE = frozenset(
    {
        "ConnectionRefused",
        "Unreachable",
        "HostNotFound",
        "ConnectTimeout",
        "ConnectionLost",
        "ServerStarting",
        "ServerStopping",
        "TooManyConnections",
        "AuthenticationFailed",
        "TLSError",
    }
)


def read_result(message: Any) -> dict[str, Any] | None:
    """The worker's result in a termination message, or its last JSON line when Kubernetes fell back to logs."""
    if not isinstance(message, str):
        return None
    for line in reversed(message.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None
