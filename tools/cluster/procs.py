"""Child processes of the control plane: started with their output in a log file, each in its own process group,
and stopped all at once (SIGTERM, a short grace, then SIGKILL for each whole group) so that nothing outlives the run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ProcessGroup:
    """The processes of one control plane, in start order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def wait_until(self, child: Child, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it holds; fail with the child's log tail if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode} before {what}:\n{child.tail()}"
                )
            try:
                if ready():
                    return
            except Exception:  # noqa: S110 (not up yet: the probe's own errors mean "try again")
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{child.name}: no {what} within {timeout:.0f} s:\n{child.tail()}")

    def check_running(self) -> None:
        """Fail if a child has exited: a server that could not bind its port exits at once, while a probe of that
        port may have been answered by somebody else's server."""
        for child in self.children:
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")

    def stop(self, child: Child, grace: float = 10) -> None:
        if child.proc.poll() is None:
            _signal_group(child.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=grace)
        # Whatever the child started itself goes too.
        _signal_group(child.proc.pid, signal.SIGKILL)
        if child.proc.poll() is None:
            child.proc.wait(timeout=grace)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self, grace: float = 3) -> None:
        """Everything at once: SIGTERM to every group, `grace` seconds shared by all of them, then SIGKILL. The
        control plane is thrown away (its data is on tmpfs and removed), so nothing needs an orderly shutdown, and
        one child at a time (the API server alone drains for seconds) made each teardown take tens of seconds."""
        children = list(reversed(self.children))
        for child in children:
            if child.proc.poll() is None:
                _signal_group(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for child in children:
            self.stop(child, grace=10)  # SIGKILL for what is left, and for whatever a child started itself


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
