"""Listening ports for the servers the tests start, reserved across processes.

`make test` runs two pytest processes and the cluster suite seven at once, each starting servers (PostgreSQL,
MariaDB, etcd, kube-apiserver, Crossplane, the function, an object store) on ports it picks itself. Asking the
kernel for a free port (`bind(("127.0.0.1", 0))`) and closing it hands out a port that is free *now*: another process
can be handed the same one before either binds it, and then a health probe of one process's etcd is answered by the
other's, and two API servers share one store. So a port here is one no other process of ours has taken (a file
named after it, created exclusively, in a directory every process shares) and one that is free when picked, chosen
below the kernel's ephemeral range so that no outgoing connection takes it before the server binds it. A
reservation is dropped when its process exits, or found stale when that process is gone."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import random
import socket
from pathlib import Path

# Shared by every process of every run on the machine (a CI run beside a developer's `make test` as well).
RESERVATIONS = Path(os.environ.get("DBOPS_PORT_DIR", "/tmp/dbops-ports"))  # noqa: S108 (one machine-wide directory)
_LOWEST = 10000
_mine: set[Path] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reserve(path: Path) -> bool:
    """Create the reservation file; take over one whose process is gone."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = int(path.read_text() or "0")
            except (OSError, ValueError):
                return False  # being written by its owner right now
            if owner and _alive(owner):
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        _mine.add(path)
        return True
    return False


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free and that no other process using this function has been given."""
    RESERVATIONS.mkdir(mode=0o1777, parents=True, exist_ok=True)
    high = _ephemeral_low() - 1
    for _ in range(500):
        port = random.randint(_LOWEST, high)  # noqa: S311 (not a secret)
        path = RESERVATIONS / str(port)
        # A port in use by something else keeps its reservation, so that nobody tries it again while we run.
        if _reserve(path) and _bindable(port):
            return port
    raise RuntimeError(f"no free port in {_LOWEST}-{high} after 500 tries (reservations in {RESERVATIONS})")


@atexit.register
def _release() -> None:
    for path in _mine:
        with contextlib.suppress(OSError):
            if path.read_text() == str(os.getpid()):
                path.unlink()
