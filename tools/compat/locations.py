"""Where the compatibility data and document live in this repository."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests/compat"
GO_FIELDS = DATA / "go_crd_fields.json"
GO_EXAMPLES = DATA / "go_examples.yaml"
VERDICTS = DATA / "verdicts.yaml"
DOC = ROOT / "docs/compatibility.md"
