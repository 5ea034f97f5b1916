"""Compose N distinct DatabaseUser requests afresh in process (bench/function_rps.py's distinct requests, the
response memo on, logging at INFO as served) and nothing else: the workload to run under a profiler. Prints only
the log lines of the calls that build the request.

    py-spy record -f raw -o fresh.txt -- python bench/function_fresh.py 6000
    valgrind --tool=callgrind python bench/function_fresh.py 10    # then 210: the difference / 200 is the
                                                                   # instructions of one fresh call

Building the requests and the first calls (imports, memos filling) cost the same in both valgrind runs, so the
difference is what the extra calls cost, independent of the machine's load.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from crossplane.function import logging

    from function.fn import FunctionRunner

    spec = importlib.util.spec_from_file_location("function_memos", ROOT / "bench" / "function_memos.py")
    assert spec is not None and spec.loader is not None
    memos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memos)
    logging.configure(logging.Level.INFO)
    reqs: list[Any] = memos._requests(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    runner = FunctionRunner()

    async def drive() -> None:
        for req in reqs:
            await runner.RunFunction(req)

    asyncio.run(drive())


if __name__ == "__main__":
    main()
