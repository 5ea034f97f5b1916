"""What each of the function's memos buys: CPU time per call of a converged DatabaseUser request composed afresh
(an XR label changed, as bench/function_rps.py's distinct requests), in process, with every memo, then with each
memo turned off in turn, then with none. Prints numbers; asserts nothing.

    python bench/function_memos.py [--calls 1000] [--rounds 5]

The response memo is not in this table: a fresh request never hits it; bench/function_rps.py measures it (same
request against distinct requests).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _memos() -> dict[str, tuple[Any, str]]:
    from function import input as step_input
    from function import wire
    from function.jobs import job
    from function.spec import validation

    return {
        "Struct to dict (wire.decoded)": (wire, "_decoded"),
        "dict to Struct (wire.encode)": (wire, "_encoded"),
        "schema walk of a spec": (validation, "_schema_walk"),
        "verdict on a request": (validation, "_memo_request_errors"),
        "step Input": (step_input, "_parsed"),
        "canonical JSON (hashes, DBOPS_REQUEST)": (job, "_memo_canonical"),
    }


@contextmanager
def _without(names: list[str]) -> Iterator[None]:
    memos = _memos()
    saved = {n: getattr(memos[n][0], memos[n][1]) for n in names}
    try:
        for n in names:
            module, attr = memos[n]
            setattr(module, attr, saved[n].__wrapped__)
        yield
    finally:
        for n in names:
            module, attr = memos[n]
            setattr(module, attr, saved[n])


def _requests(count: int) -> list[Any]:
    spec = importlib.util.spec_from_file_location("function_rps", ROOT / "bench" / "function_rps.py")
    assert spec is not None and spec.loader is not None
    rps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rps)
    base = rps._request()
    out = []
    for i in range(count):
        req = type(base)()
        req.CopyFrom(base)
        req.observed.composite.resource["metadata"]["labels"][rps.VARIANT_LABEL] = str(i)
        out.append(req)
    return out


def _per_call(reqs: list[Any], rounds: int) -> float:
    """Best CPU time per call over `rounds` batches; every request is sent once (no batch repeats one), and the
    response memo is off (it never hits a fresh request, but filling it costs)."""
    from function.fn import FunctionRunner
    from function.response_cache import ResponseCache

    runner = FunctionRunner(cache=ResponseCache(max_entries=0))
    run: Callable[[Any], Any] = runner.RunFunction

    async def drive(batch: list[Any]) -> None:
        for req in batch:
            await run(req)

    size = len(reqs) // (rounds + 1)
    asyncio.run(drive(reqs[:size]))  # warm up with other requests
    best = float("inf")
    for r in range(1, rounds + 1):
        start = time.process_time()
        asyncio.run(drive(reqs[r * size : (r + 1) * size]))
        best = min(best, (time.process_time() - start) / size)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from crossplane.function import logging

    logging.configure(logging.Level.INFO)
    names = list(_memos())
    total = args.calls * (args.rounds + 1)
    base = _per_call(_requests(total), args.rounds)
    print(f"fresh DatabaseUser request, CPU time per call, best of {args.rounds} x {args.calls} calls")
    print(f"{'memo turned off':<34}{'us/call':>10}{'vs all memos':>14}")
    print(f"{'(none: every memo on)':<34}{base:>10.0f}{1.0:>14.2f}")
    for name in names:
        with _without([name]):
            value = _per_call(_requests(total), args.rounds)
        print(f"{name:<34}{value:>10.0f}{value / base:>14.2f}")
    with _without(names):
        value = _per_call(_requests(total), args.rounds)
    print(f"{'all of them':<34}{value:>10.0f}{value / base:>14.2f}")


if __name__ == "__main__":
    main()
