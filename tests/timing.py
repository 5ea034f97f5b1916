"""How long each test file takes, for handing files out to `make test`'s processes longest first (docs/testing.md).

`tests/durations.json` holds the seconds each file took (setup, call and teardown of its tests, summed) in one run.
In an xdist process `order()` puts the files in that order, longest first, files it does not list before all of them
(a new file is most often an end-to-end one); `make test` passes `--no-loadscope-reorder` so xdist keeps the order.
Then no long file is handed out last, leaving the other process idle while it runs. The figures only order; no
test depends on them.

    python -m tests.timing run.xml    # rewrite tests/durations.json from a run's `--junitxml=run.xml`
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parent / "durations.json"


def load(path: Path = DURATIONS) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): float(v) for k, v in data.items()}


def order(items: list[pytest.Item], seconds: dict[str, float]) -> None:
    """Sort `items` in place by their file: unlisted files first, then the longest; a file's tests keep their
    order, and files of equal weight keep theirs."""
    position = {item: i for i, item in enumerate(items)}

    def weight(item: pytest.Item) -> tuple[float, int]:
        path = item.nodeid.split("::", 1)[0]
        return (-seconds.get(path, float("inf")), position[item])

    items.sort(key=weight)


def from_junit(xml: Path) -> dict[str, float]:
    """Seconds per test file (`tests/test_x.py`) from a junit XML report (pytest's `time` is setup, call and
    teardown together)."""
    out: dict[str, float] = {}
    for case in ET.parse(xml).iter("testcase"):
        classname = case.get("classname") or ""
        parts = classname.split(".")
        # classname is the module path with dots, then classes: tests.test_x[.TestClass]
        for end in range(len(parts), 0, -1):
            candidate = "/".join(parts[:end]) + ".py"
            if (DURATIONS.parent.parent / candidate).exists():
                out[candidate] = out.get(candidate, 0.0) + float(case.get("time") or 0)
                break
    return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    seconds = from_junit(Path(argv[0]))
    DURATIONS.write_text(json.dumps(seconds, indent=1) + "\n", encoding="utf-8")
    print(f"{DURATIONS}: {len(seconds)} files, {sum(seconds.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
