"""Reading Kubernetes objects the function did not write itself (observed, required) without trusting their shape:
a malformed object reads as absent instead of crashing the call."""

from __future__ import annotations

from typing import Any


def dig(obj: Any, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None as soon as a step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def mapping(obj: Any, *path: str) -> dict[str, Any]:
    value = dig(obj, *path)
    return value if isinstance(value, dict) else {}


def items(obj: Any, *path: str) -> list[Any]:
    value = dig(obj, *path)
    return value if isinstance(value, list) else []


def text(obj: Any, *path: str) -> str:
    value = dig(obj, *path)
    return value if isinstance(value, str) else ""
