"""Time arithmetic: resync epochs (offset per XR so they do not all fire together) and retry back-off."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def offset(identity: str, interval: int) -> int:
    """A stable offset in [0, interval) derived from the XR's uid (or name)."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big") % interval


def epoch(now: datetime, interval: int, shift: int) -> int:
    return int((now.timestamp() + shift) // interval)


def epoch_start(number: int, interval: int, shift: int) -> float:
    """Unix time at which epoch `number` begins."""
    return float(number * interval - shift)


def seconds_to_next_epoch(now: datetime, interval: int, shift: int) -> float:
    return epoch_start(epoch(now, interval, shift) + 1, interval, shift) - now.timestamp()


def backoff(attempt: int, base: int, cap: int) -> timedelta:
    """Delay before attempt `attempt + 1` after `attempt` failed: base * 2^(attempt-1), at most cap."""
    exponent = min(max(attempt - 1, 0), 32)
    return timedelta(seconds=min(base * 2**exponent, cap))
