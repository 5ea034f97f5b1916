"""Pin the Go operator's API: every spec path of its CRDs, and whether its code reads it.

    python -m tools.compat.go_fields /path/to/db-provision-operator [--out tests/compat/go_crd_fields.json]

The argument is a git checkout of panteparak/db-provision-operator (never committed here). The field list comes
from its generated CRDs (`config/crd/bases/*.yaml`), which the Go types generate; whether the operator reads a
field comes from `tools/compat/goreads` (a standard-library Go program that type-checks the checkout, see its
doc comment). A path counts as read only when its parent is read too: a field inside a block nobody looks at
does nothing, whoever reads the same Go type elsewhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tools.compat.locations import GO_FIELDS, ROOT
from tools.compat.openapi import Field, Schema, describe, fields

GO_REPO = "panteparak/db-provision-operator"
CRD_DIR = "config/crd/bases"
# The kinds dbops shares first, then the rest as a user meets them; a kind not listed comes last.
KIND_ORDER = (
    "DatabaseInstance",
    "Database",
    "DatabaseUser",
    "DatabaseGrant",
    "DatabaseRole",
    "DatabaseBackup",
    "DatabaseBackupSchedule",
    "DatabaseRestore",
    "ClusterDatabaseInstance",
    "ClusterDatabaseRole",
    "ClusterDatabaseGrant",
)
GOREADS = ROOT / "tools/compat/goreads"
READS_METHOD = (
    "tools/compat/goreads: a selector expression resolving to the field (type-checked), outside api/, "
    "*_test.go, test/ and testutil/, not an assignment target; calls to hand-written api/ functions count "
    "as reads of the fields they read; a path is read only when its parent is"
)


def checkout_commit(checkout: Path) -> str:
    """The commit the checkout is at; refuses a checkout with local changes (the pin would lie)."""
    git = ["git", "-C", str(checkout)]
    dirty = subprocess.run([*git, "status", "--porcelain"], check=True, capture_output=True, text=True).stdout
    if dirty.strip():
        raise SystemExit(f"{checkout} has local changes; pin a clean commit")
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def crds(checkout: Path) -> dict[str, Schema]:
    """The CRDs of the checkout, by kind."""
    out: dict[str, Schema] = {}
    for path in sorted((checkout / CRD_DIR).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                out[doc["spec"]["names"]["kind"]] = doc
    if not out:
        raise SystemExit(f"no CRDs under {checkout / CRD_DIR}")
    return out


def spec_schema(crd: Schema) -> Schema:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage", True)]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def go_reads(checkout: Path) -> dict[str, list[Field]]:
    """tools/compat/goreads on the checkout: per kind, spec paths in Go field order with their read sites."""
    done = subprocess.run(
        ["go", "run", ".", str(checkout.resolve())], cwd=GOREADS, check=True, capture_output=True, text=True
    )
    kinds: dict[str, list[Field]] = json.loads(done.stdout)["kinds"]
    return kinds


def kind_fields(crd: Schema, reads: list[Field]) -> list[Field]:
    """The CRD's spec paths in the Go types' order, each with its Go field and who reads it."""
    from_crd = {f["path"]: f for f in fields(spec_schema(crd))}
    by_path = {r["path"]: r for r in reads}
    if set(from_crd) != set(by_path):
        kind = crd["spec"]["names"]["kind"]
        raise SystemExit(
            f"{kind}: the CRD and the Go types disagree: only in the CRD {sorted(set(from_crd) - set(by_path))}, "
            f"only in Go {sorted(set(by_path) - set(from_crd))}"
        )
    out: list[Field] = []
    read: dict[str, bool] = {"spec": True}
    for r in reads:
        parent = r["path"].rsplit(".", 1)[0].removesuffix("[]")
        read[r["path"]] = bool(r["read_at"]) and read[parent]
        go = {
            "go_field": r["field"],
            "go_type": r["go_type"],
            **({"go_zero": r["zero"]} if "zero" in r else {}),
        }
        out.append({**from_crd[r["path"]], **go, "go_reads": read[r["path"]], "read_at": r["read_at"]})
    return out


def pinned(checkout: Path) -> dict[str, Any]:
    commit = checkout_commit(checkout)
    reads = go_reads(checkout)
    kinds: dict[str, Any] = {}
    found = crds(checkout)
    for kind in sorted(found, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k)):
        crd = found[kind]
        spec = spec_schema(crd)
        kinds[kind] = {
            "crd": crd["metadata"]["name"],
            "scope": crd["spec"]["scope"],
            "short_names": crd["spec"]["names"].get("shortNames", []),
            "spec_rules": describe("spec", spec, True).get("rules", []),
            "fields": kind_fields(crd, reads[kind]),
        }
    return {
        "source": {"repo": GO_REPO, "commit": commit, "crds": CRD_DIR, "reads": READS_METHOD},
        "kinds": kinds,
    }


def dump(data: dict[str, Any]) -> str:
    """JSON with one field per line, so a change to the Go API shows as a one-line diff."""
    lines = ["{", f' "source": {json.dumps(data["source"])},', ' "kinds": {']
    kinds = list(data["kinds"].items())
    for i, (kind, info) in enumerate(kinds):
        lines.append(f"  {json.dumps(kind)}: {{")
        for key in ("crd", "scope", "short_names", "spec_rules"):
            lines.append(f"   {json.dumps(key)}: {json.dumps(info[key])},")
        lines.append('   "fields": [')
        fields = info["fields"]
        lines += [f"    {json.dumps(f)}" + ("," if j < len(fields) - 1 else "") for j, f in enumerate(fields)]
        lines.append("   ]")
        lines.append("  }" + ("," if i < len(kinds) - 1 else ""))
    lines += [" }", "}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkout", type=Path, help="git checkout of " + GO_REPO)
    parser.add_argument("--out", type=Path, default=GO_FIELDS)
    args = parser.parse_args(argv)
    data = pinned(args.checkout)
    args.out.write_text(dump(data))
    count = sum(len(k["fields"]) for k in data["kinds"].values())
    print(
        f"{args.out}: {len(data['kinds'])} kinds, {count} paths at {data['source']['commit']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
