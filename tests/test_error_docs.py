"""Every error code the worker can emit is documented (docs/worker*.md), so users can look up what they see."""

from __future__ import annotations

import re
from pathlib import Path

from worker.adapters import mysql_errors, pg_errors

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "worker"


def emitted_codes() -> set[str]:
    codes = {code for _, code in [*pg_errors.SQLSTATES.values(), *pg_errors.CLASSES.values()]}
    codes |= {entry[2] for entry in pg_errors.CONNECT_FAILURES}
    codes |= {m.code for m in mysql_errors.ERRORS.values()}
    # Codes written out where an error is raised: XxxError("Code", ...) and `transient, code = ..., "Code"`.
    pattern = re.compile(r"(?:Transient|Permanent)Error\(\s*\"([A-Z]\w+)\"|code = (?:True|False), \"([A-Z]\w+)\"")
    for path in WORKER.rglob("*.py"):
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            codes.add(match.group(1) or match.group(2))
    return codes


def test_the_scan_finds_the_codes_it_should() -> None:
    codes = emitted_codes()
    assert {"InvalidRequest", "AuthenticationFailed", "ConnectionLost", "ConcurrentChange", "TLSError"} <= codes


def test_every_emitted_error_code_is_documented() -> None:
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("worker*.md"))
    missing = sorted(code for code in emitted_codes() if not re.search(rf"\b{code}\b", docs))
    assert missing == [], f"error codes the worker emits but docs/worker*.md never names: {missing}"
