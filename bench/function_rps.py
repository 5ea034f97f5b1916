"""gRPC RunFunction throughput and latency of function-dbops against a function that only returns
`response.to(req)`, for a converged DatabaseUser (observed Secret and Job, required claims, its own among them, the
admin Secret and Pod), and the served function's resident memory afterwards. Prints numbers; asserts nothing.

    python bench/function_rps.py [--seconds 10] [--concurrency 8]

Both functions run as separate processes served by the SDK runtime (`--insecure`); the client drives them one
after the other over one channel: function-dbops with the same request again and again (Crossplane's steady
state, answered from its response memo) and with distinct requests (every call composed from scratch), the
trivial function with the same request. Each row also gives the serving process's CPU time per call (from /proc,
gRPC included), which other load on the machine changes much less than the calls per second. A distinct request is the same one with an XR label (which the function
ignores) set to a counter drawn at send time, so no request repeats however many the run sends, warm-up included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _serve_trivial(address: str) -> None:
    from crossplane.function import logging, response, runtime
    from crossplane.function.proto.v1 import run_function_pb2 as fnv1
    from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

    class Trivial(grpcv1.FunctionRunnerServiceServicer):
        async def RunFunction(self, req: fnv1.RunFunctionRequest, _: Any) -> fnv1.RunFunctionResponse:
            return response.to(req)

    logging.configure(logging.Level.INFO)
    runtime.serve(Trivial(), address, creds=None, insecure=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request() -> Any:
    """A converged Quick Start DatabaseUser as Crossplane sends it in the steady state: its credentials Secret and
    the Job of the current resync epoch, complete, observed; the claims, the instance's admin Secret and the Job's
    Pod (with the worker's result) required; the XR status what the function wrote last time."""
    from function.fn import FunctionRunner
    from function.spec.references import ADMIN_SECRET
    from function.wire import to_dict
    from tests.function_cases import kube
    from tests.function_cases.render import render

    files = {p.name: kube.load_yaml(p) for p in (ROOT / "examples" / "render" / "postgres").glob("*.yaml")}
    [xr] = files["user.yaml"]
    claims = [d for d in files["required.yaml"] if d["kind"] != "Pod"]
    inp = kube.composition_input("DatabaseUser")
    runner = FunctionRunner()

    def run(req: Any) -> Any:
        return asyncio.run(runner.RunFunction(req))

    secret = kube.observed(render(run, xr, inp, [], claims).composed["credentials"], "credentials")
    [(key, job)] = [
        (k, v) for k, v in render(run, xr, inp, [secret], claims).composed.items() if v["kind"] == "Job"
    ]
    finished = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = kube.job_complete(kube.observed(job, key), finished)
    facts = {"username": "myapp", "roles": [], "login": True}
    pod = kube.pod(done, 0, kube.worker_result("DatabaseUser", observed_facts=facts), finished)
    by_kind = {d["kind"]: d for d in claims}
    required = {
        "instance": [by_kind["DatabaseInstance"]],
        "database": [by_kind["Database"]],
        "claim": [by_kind["DatabaseUser"]],  # its own claim: does it ask for connection details?
        # The instance's admin Secret: its resourceVersion is part of the Job's state, so without it the state
        # would differ from the observed Job's and every call would compose a new Job instead of converging.
        ADMIN_SECRET: [by_kind["Secret"]],
        "pods": [pod],
    }
    observed = {"credentials": secret, key: done}
    rsp = run(kube.request(xr, observed, required, inp))
    xr = {**xr, "status": to_dict(rsp.desired.composite.resource)["status"]}
    req = kube.request(xr, observed, required, inp, tag="bench")
    phase = to_dict(run(req).desired.composite.resource)["status"].get("phase")
    if phase != "Ready":  # else every call would compose a new Job: not the steady state this measures
        raise SystemExit(f"the bench request does not converge (phase {phase!r})")
    return req


VARIANT_LABEL = "bench/variant"


class Requests:
    """What the client sends: the same request every time, or (`distinct`) a per-sender copy whose XR label is set
    to the next value of one shared counter just before each call. gRPC serializes the message when it is sent and a
    sender waits for its answer before the next call, so reusing its copy is safe, and no two calls are alike."""

    def __init__(self, base: Any, distinct: bool) -> None:
        self.base = base
        self.distinct = distinct
        self.sent = 0

    def sender(self) -> Callable[[], Any]:
        if not self.distinct:
            return lambda: self.base
        req = type(self.base)()
        req.CopyFrom(self.base)
        labels = req.observed.composite.resource.fields["metadata"].struct_value.fields["labels"].struct_value

        def next_request() -> Any:
            labels.fields[VARIANT_LABEL].string_value = str(self.sent)
            self.sent += 1
            return req

        return next_request


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    address: str, reqs: Requests, seconds: float, concurrency: int, pid: int
) -> tuple[int, list[float], float]:
    """Calls per second, their latencies, and the serving process's CPU time per call in microseconds (what the
    server spends on a call, gRPC included, whatever else the machine runs)."""
    import grpc
    from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stub = grpcv1.FunctionRunnerServiceStub(channel)
        warm_up = reqs.sender()
        for _ in range(50):
            await stub.RunFunction(warm_up())
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        cpu = _cpu_seconds(pid)

        async def worker() -> None:
            next_request = reqs.sender()
            while time.perf_counter() < deadline:
                req = next_request()
                started = time.perf_counter()
                rsp = await stub.RunFunction(req)
                latencies.append(time.perf_counter() - started)
                if rsp.results and rsp.results[0].severity == 1:
                    raise SystemExit(f"fatal result: {rsp.results[0].message}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu
    return int(len(latencies) / elapsed), latencies, cpu / len(latencies) * 1e6


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve-trivial", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        _serve_trivial(args.serve_trivial)
        return
    from crossplane.function import logging

    logging.configure(logging.Level.DISABLED)
    req = _request()
    same, distinct = Requests(req, distinct=False), Requests(req, distinct=True)
    function = shutil.which("function", path=os.path.dirname(sys.executable)) or "function"
    ours_addr, trivial_addr = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    ours = _start([function, "--insecure", "--address", ours_addr])
    trivial = _start([sys.executable, __file__, "--serve-trivial", trivial_addr])
    try:
        ours_rps, ours_lat, ours_cpu = asyncio.run(
            _drive(ours_addr, same, args.seconds, args.concurrency, ours.pid)
        )
        cold_rps, cold_lat, cold_cpu = asyncio.run(
            _drive(ours_addr, distinct, args.seconds, args.concurrency, ours.pid)
        )
        rss = _rss_mib(ours.pid)
        trivial_rps, trivial_lat, trivial_cpu = asyncio.run(
            _drive(trivial_addr, same, args.seconds, args.concurrency, trivial.pid)
        )
    finally:
        for proc in (ours, trivial):
            proc.terminate()
            proc.wait(timeout=15)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    print(f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(
        f"request: DatabaseUser with observed Secret + Job, required claims, admin Secret + Pod ({req.ByteSize()} bytes)"
    )
    print(f"load: {args.concurrency} concurrent calls for {args.seconds:g} s per function, one channel")
    print(f"{'function':<36}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'server CPU us':>15}")
    rows = (
        ("function-dbops, same request", ours_rps, ours_lat, ours_cpu),
        ("function-dbops, distinct requests", cold_rps, cold_lat, cold_cpu),
        ("response.to(req)", trivial_rps, trivial_lat, trivial_cpu),
    )
    for label, rps, lat, cpu in rows:
        print(f"{label:<36}{rps:>10}{_p(lat, 50):>10.2f}{_p(lat, 99):>10.2f}{cpu:>15.0f}")
    ratio = ours_rps / trivial_rps if trivial_rps else float("nan")
    cold = cold_rps / trivial_rps if trivial_rps else float("nan")
    print(
        f"throughput ratio, same request: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    print(
        f"throughput ratio, distinct requests (composed afresh, no response memo): {cold:.2f} "
        f"({distinct.sent} distinct requests sent, warm-up included, none repeated)"
    )
    print(
        f"server CPU ratio (the trivial function's CPU time per call to function-dbops'; what the throughput ratio "
        f"comes to when the server is the bottleneck): same {trivial_cpu / ours_cpu:.2f}, "
        f"distinct {trivial_cpu / cold_cpu:.2f}"
    )
    print(
        f"function-dbops resident memory after the run: {rss:.1f} MiB (target < 128: {'met' if rss < 128 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
