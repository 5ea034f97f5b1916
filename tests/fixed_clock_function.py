"""The function served as `function --insecure --offline` serves it, but with a fixed clock and a seeded random generator:
what the function would answer at another time. tests/test_crossplane_cli.py renders the examples with it to show
that the normalised render output (tests/crossplane_render.py) depends on nothing else.

    python -m tests.fixed_clock_function --address 127.0.0.1:9444 --at 2027-03-01T12:00:00+00:00 --seed 7
"""

from __future__ import annotations

import argparse
import random
from datetime import datetime

from crossplane.function import runtime

from function.fn import FunctionRunner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--at", required=True, type=datetime.fromisoformat, help="the time the function sees")
    parser.add_argument("--seed", required=True, type=int, help="seed of the password generator")
    args = parser.parse_args(argv)
    if args.at.tzinfo is None:
        parser.error("--at needs a UTC offset, e.g. 2027-03-01T12:00:00+00:00")
    runner = FunctionRunner(clock=lambda: args.at, rng=random.Random(args.seed), offline=True)
    runtime.serve(runner, args.address, creds=None, insecure=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
