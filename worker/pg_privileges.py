"""PostgreSQL privilege names per object type. Pure data and checks (no driver import): the function uses it too."""

from __future__ import annotations

from typing import Any

from worker.validation import FieldError


def spec_errors(kind: str, spec: dict[str, Any], prefix: str) -> list[FieldError]:
    """Privilege names that do not exist or do not apply to the object type they are granted on."""
    return []
