"""The docs cite tests as proof; every test they name must exist, so a renamed or deleted test cannot leave a
claim without its evidence."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_test_the_docs_name_exists() -> None:
    files = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    source = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    defined = set(re.findall(r"^\s*(?:async )?def (test_\w+)", source, re.M))
    cited: dict[str, set[str]] = {}
    for doc in DOCS:
        for name in re.findall(r"\btest_\w+", doc.read_text()):
            cited.setdefault(name, set()).add(doc.name)
    assert len(cited) > 50, "the docs cite the tests that prove them"
    unknown = {
        name: sorted(where)
        for name, where in cited.items()
        if name not in defined and name not in files and not any(f.startswith(name) for f in files | defined)
    }
    assert not unknown, f"docs name tests that do not exist: {unknown}"
