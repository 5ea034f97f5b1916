"""Reaching the function: start the `function` console script locally (as the Development runtime) and call it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

import grpc
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1


class FunctionClient:
    """A gRPC client of a function served with --insecure, as `crossplane render` talks to it."""

    def __init__(self, address: str, timeout: float = 30) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address)
        self.stub = grpcv1.FunctionRunnerServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def wait_ready(self, deadline: float = 30) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=deadline)

    def run(self, req: Any) -> Any:
        return self.stub.RunFunction(req, timeout=self.timeout)

    def close(self) -> None:
        self.channel.close()


class LocalFunction:
    """Serve the function from this installation on a free local port for the life of the context."""

    def __init__(self, debug: bool = False, log_path: str | None = None, metrics_address: str = "") -> None:
        self.debug = debug
        self.log_path = log_path  # where the function's JSON logs go (default: discarded)
        self.metrics_address = metrics_address  # serve /metrics there (default: not served)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: FunctionClient | None = None

    def __enter__(self) -> FunctionClient:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        exe = shutil.which("function", path=os.path.dirname(sys.executable)) or "function"
        args = [
            exe,
            "--insecure",
            "--offline",
            "--address",
            f"127.0.0.1:{port}",
            *(["--debug"] if self.debug else []),
            # Explicit either way: an inherited DBOPS_METRICS_ADDRESS must not make two functions fight for a port.
            "--metrics-address",
            self.metrics_address,
        ]
        if self.log_path:
            with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        else:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = FunctionClient(f"127.0.0.1:{port}")
        try:
            self.client.wait_ready()
        except grpc.FutureTimeoutError:
            self.__exit__(None, None, None)
            raise RuntimeError("the function did not start serving within 30 s") from None
        time.sleep(0.05)
        return self.client

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
