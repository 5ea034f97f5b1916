"""docs/compatibility.md: every field of the Go operator's API, and what dbops does with it.

    python -m tools.compat.compat_doc write    # regenerate the document
    python -m tools.compat.compat_doc check    # exit 1 when the document or the verdicts are out of step

Sources: the pinned Go field list (tests/compat/go_crd_fields.json, tools/compat/go_fields.py), our verdict per Go
path (tests/compat/verdicts.yaml, written by hand), dbops' own fields from its generated XRDs (through
`tools.compat.dbops_api.dbops_fields`) and the Go examples' verdicts (tests/compat/go_examples.yaml). The facts
that can be computed (types, enums, defaults, required, bounds, whether the Go code reads a field, whether a dbops
path exists) are computed, so the verdicts only carry what a person must judge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from tools.compat.locations import DOC, GO_FIELDS, ROOT, VERDICTS
from tools.compat.openapi import CONSTRAINTS, Field, Schema, describe

VERDICTS_ORDER = ("same", "alias", "different", "refused", "missing")
# The text each verdict needs, and the verdicts whose Go path dbops must (or must not) have at the same path.
TEXT_KEY = {"alias": "how", "different": "how", "refused": "why", "missing": "reason"}
REQUIRED_TEXT = {"different", "refused", "missing"}
SAME_PATH = {"same", "different"}
INHERITED = {"refused", "missing"}

Verdict = dict[str, Any]
DbopsFields = Callable[[str], dict[str, tuple[Schema, bool]]]


def load_go_fields() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GO_FIELDS.read_text())
    return data


def load_verdicts() -> dict[str, dict[str, Verdict]]:
    """The verdict file, with the short form `path: same` spelled out."""
    data: dict[str, dict[str, Any]] = yaml.safe_load(VERDICTS.read_text())
    return {
        kind: {path: {"verdict": v} if isinstance(v, str) else v for path, v in (entries or {}).items()}
        for kind, entries in data.items()
    }


def load_examples() -> list[dict[str, Any]]:
    from tools.compat.go_examples import load

    return [e for e in load()["examples"] if "dbops" in e]


def default_dbops_fields(kind: str) -> dict[str, tuple[Schema, bool]]:
    from tools.compat.dbops_api import dbops_fields

    return dbops_fields(kind)


# --- one row -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    kind: str
    go: Field
    verdict: Verdict
    inherited_from: str | None  # the ancestor whose missing/refused verdict covers this path


def verdict_for(
    kind: str, path: str, verdicts: dict[str, dict[str, Verdict]]
) -> tuple[Verdict | None, str | None]:
    """The verdict of a Go path: its own, else the nearest ancestor's missing/refused one (with its path)."""
    own = verdicts.get(kind, {})
    if path in own:
        return own[path], None
    parent = path
    while "." in parent:
        parent = parent.rsplit(".", 1)[0].removesuffix("[]")
        if parent in own and own[parent]["verdict"] in INHERITED:
            return own[parent], parent
    return None, None


def split_ref(kind: str, ref: str) -> tuple[str, str]:
    """`Kind:spec.path` or `spec.path` (this kind) -> (kind, path)."""
    other, sep, path = ref.partition(":")
    return (other, path) if sep else (kind, ref)


def dbops_target(kind: str, path: str, verdict: Verdict) -> tuple[str, str] | None:
    """The dbops field a verdict compares the Go field with: the same path, or the alias target."""
    if verdict["verdict"] in SAME_PATH:
        return kind, path
    if verdict["verdict"] == "alias":
        return split_ref(kind, verdict["to"])
    return None


def differences(go: Field, dbops: Field) -> list[tuple[bool, str]]:
    """(breaks, text) for every computed difference between a Go field and a dbops field. `breaks`: a manifest
    valid for the Go CRD can be refused by dbops or act differently (another type, a Go enum value dbops lacks,
    another default for a field the Go CRD lets one omit, a field dbops requires and Go does not). The rest (a
    wider enum, a field dbops lets one omit, bounds) is listed but does not make a field different."""
    out: list[tuple[bool, str]] = []
    if go["type"] != dbops["type"]:
        out.append((True, f"type: Go {go['type']}, dbops {dbops['type']}"))
    go_enum, our_enum = go.get("enum"), dbops.get("enum")
    if sorted(map(str, go_enum or [])) != sorted(map(str, our_enum or [])):
        breaks = our_enum is not None and (go_enum is None or any(v not in our_enum for v in go_enum))
        out.append((breaks, f"enum: Go {_enum(go)}, dbops {_enum(dbops)}"))
    if go.get("default") != dbops.get("default") and not _zero_default(go, dbops):
        out.append((not go["required"], f"default: Go {_default(go)}, dbops {_default(dbops)}"))
    if go["required"] != dbops["required"]:
        out.append(
            (dbops["required"], f"required: Go {_yes(go['required'])}, dbops {_yes(dbops['required'])}")
        )
    go_bounds, our_bounds = go.get("constraints", {}), dbops.get("constraints", {})
    for key in (*CONSTRAINTS, "items"):
        if go_bounds.get(key) != our_bounds.get(key):
            out.append((False, f"{key}: Go {_bound(go_bounds, key)}, dbops {_bound(our_bounds, key)}"))
    return out


def _zero_default(go: Field, dbops: Field) -> bool:
    """dbops' default is what the Go operator sees for the unset field anyway (a plain Go bool or number)."""
    return "default" not in go and "go_zero" in go and dbops.get("default") == go["go_zero"]


def _enum(field: Field) -> str:
    return "|".join(map(str, field["enum"])) if "enum" in field else "any"


def _default(field: Field) -> str:
    return json.dumps(field["default"]) if "default" in field else "none"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _bound(bounds: dict[str, Any], key: str) -> str:
    return json.dumps(bounds[key]) if key in bounds else "none"


def dbops_field(kind: str, path: str, dbops_fields: DbopsFields) -> Field | None:
    found = dbops_fields(kind).get(path)
    return describe(path, *found) if found else None


# --- checks --------------------------------------------------------------------------------------------------------


def problems(
    go: dict[str, Any],
    verdicts: dict[str, dict[str, Verdict]],
    dbops_fields: DbopsFields = default_dbops_fields,
) -> list[str]:
    """Everything that makes the verdict table untrue or incomplete; empty when it is in step."""
    out: list[str] = []
    go_kinds = go["kinds"]
    for kind in sorted(set(verdicts) - set(go_kinds)):
        out.append(f"verdicts.yaml {kind}: not a kind of the Go API")
    for kind, info in go_kinds.items():
        paths = {f["path"] for f in info["fields"]}
        for path, verdict in (verdicts.get(kind) or {}).items():
            where = f"verdicts.yaml {kind} {path}"
            if path not in paths and path != "spec":
                out.append(f"{where}: not a path of the Go CRD")
                continue
            out += [f"{where}: {p}" for p in verdict_problems(kind, path, verdict, dbops_fields)]
        for field in info["fields"]:
            found, _ = verdict_for(kind, field["path"], verdicts)
            if found is None:
                out.append(f"verdicts.yaml {kind} {field['path']}: no verdict")
                continue
            verdict = found
            target = dbops_target(kind, field["path"], verdict)
            ours = dbops_field(*target, dbops_fields) if target else None
            if verdict["verdict"] == "same" and not field["go_reads"]:
                out.append(
                    f"verdicts.yaml {kind} {field['path']}: says same, but the Go operator never reads it "
                    "(dbops acts on it: say different, and how)"
                )
            if verdict["verdict"] == "same" and ours is not None:
                semantic = [text for breaks, text in differences(field, ours) if breaks]
                if semantic:
                    out.append(
                        f"verdicts.yaml {kind} {field['path']}: says same, but {'; '.join(semantic)} "
                        "(say different, and how)"
                    )
    return out


def verdict_problems(kind: str, path: str, verdict: Verdict, dbops_fields: DbopsFields) -> list[str]:
    """What is wrong with one verdict entry on its own."""
    name = verdict.get("verdict")
    if name not in VERDICTS_ORDER:
        return [f"verdict must be one of {', '.join(VERDICTS_ORDER)}; got {name!r}"]
    out: list[str] = []
    text = TEXT_KEY.get(name)
    if name in REQUIRED_TEXT and not verdict.get(text or ""):
        out.append(f"a {name} verdict needs `{text}`")
    allowed = {"verdict", "see", *([text] if text else []), *(["to"] if name == "alias" else [])}
    out += [f"unknown key {k!r} for a {name} verdict" for k in sorted(set(verdict) - allowed)]
    exists = path == "spec" or path in dbops_fields(kind)
    if name in SAME_PATH and not exists:
        out.append(f"says {name}, but dbops has no {kind} {path}")
    if name == "missing" and exists and dbops_fields(kind):
        out.append(f"says missing, but dbops has {kind} {path} (say same, different or alias)")
    if name == "alias" and "to" not in verdict:
        out.append("an alias verdict needs `to` (the dbops path it reads the field as)")
    for key in ("to", "see"):
        if key in verdict:
            other, target = split_ref(kind, verdict[key])
            if not (target == "spec" and dbops_fields(other)) and target not in dbops_fields(other):
                out.append(f"{key}: dbops has no {other} {target}")
    return out


# --- the document --------------------------------------------------------------------------------------------------


def rows(go: dict[str, Any], verdicts: dict[str, dict[str, Verdict]]) -> list[Row]:
    out: list[Row] = []
    for kind, info in go["kinds"].items():
        for field in info["fields"]:
            verdict, inherited = verdict_for(kind, field["path"], verdicts)
            if verdict is not None:
                out.append(Row(kind, field, verdict, inherited))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def go_summary(field: Field) -> str:
    parts = [field["type"]]
    if field["required"]:
        parts.append("required")
    if "enum" in field:
        parts.append("enum " + _enum(field))
    if "default" in field:
        parts.append("default " + _default(field))
    return ", ".join(parts)


def row_line(row: Row, dbops_fields: DbopsFields) -> str:
    path, verdict = row.go["path"], row.verdict
    reads = "yes" if row.go["go_reads"] else "no"
    name = verdict["verdict"]
    target = None if row.inherited_from else dbops_target(row.kind, path, verdict)
    ours_text = ""
    notes: list[str] = []
    if row.inherited_from:
        notes.append(f"as `{row.inherited_from}`")
    else:
        text = verdict.get(TEXT_KEY.get(name, ""), "")
        if text:
            notes.append(text)
        if "see" in verdict:
            notes.append(f"see `{verdict['see']}`")
    if target:
        ours = dbops_field(*target, dbops_fields)
        ref = target[1] if target[0] == row.kind else f"{target[0]}:{target[1]}"
        ours_text = f"`{ref}`" + (f" ({go_summary(ours)})" if ours else "")
        if ours:
            notes += [text for _, text in differences(row.go, ours)]
    cells = [f"`{path}`", go_summary(row.go), reads, name, ours_text, "; ".join(notes)]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def dbops_only(kind: str, kind_rows: list[Row], dbops_fields: DbopsFields) -> list[str]:
    """dbops paths of a kind that no Go path maps to (same path, alias target or `see`)."""
    claimed: set[str] = set()
    for row in kind_rows:
        claimed.add(row.go["path"])
        for key in ("to", "see"):
            if key in row.verdict and not row.inherited_from:
                other, path = split_ref(kind, row.verdict[key])
                if other == kind:
                    claimed.add(path)
    return [p for p in dbops_fields(kind) if p not in claimed]


def counts_table(all_rows: list[Row], go: dict[str, Any]) -> list[str]:
    lines = [
        "| Kind | Go fields | " + " | ".join(VERDICTS_ORDER) + " | Go code reads |",
        "| --- | --- | " + " | ".join("---" for _ in VERDICTS_ORDER) + " | --- |",
    ]
    total: Counter[str] = Counter()
    for kind in go["kinds"]:
        kind_rows = [r for r in all_rows if r.kind == kind]
        c = Counter(r.verdict["verdict"] for r in kind_rows)
        reads = sum(r.go["go_reads"] for r in kind_rows)
        total.update(c)
        total["_fields"] += len(kind_rows)
        total["_reads"] += reads
        cells = [kind, str(len(kind_rows)), *(str(c[v]) for v in VERDICTS_ORDER), str(reads)]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**all**", str(total["_fields"]), *(str(total[v]) for v in VERDICTS_ORDER), str(total["_reads"])]
    lines.append("| " + " | ".join(cells) + " |")
    return lines


INTRO = """\
<!-- Generated by `python -m tools.compat.compat_doc write` from tests/compat/go_crd_fields.json,
tests/compat/verdicts.yaml, tests/compat/go_examples.yaml and apis/*/definition.yaml. Do not edit by hand:
change the verdicts (or dbops) and regenerate; tests/test_compatibility_doc.py fails when this file is stale. -->
# Compatibility with db-provision-operator

dbops serves the API group `dbops.dbprovision.io/v1alpha1` that the Go operator
[db-provision-operator](https://github.com/panteparak/db-provision-operator) defined, and its four kinds have the
Go CRDs' names. This page lists every spec field of the Go operator's CRDs (at commit `{commit}`) and
what dbops does today when a manifest written for the Go operator sets it. It is generated; the rows change as
dbops does.

How to read a row:

- **Go**: the field as the Go CRD declares it (type, required, enum, default).
- **Go code reads it**: whether any non-test code of the Go operator reads the field (and, for a nested field,
  its parent). A field nobody reads did nothing under the Go operator either, so losing it costs no behaviour.
- **Verdict**:
  - **same**: dbops has the same path with the same type, enum, default and requiredness (bounds may differ;
    they are listed);
  - **alias**: dbops accepts the Go path and reads it as the dbops path shown;
  - **different**: dbops has the same path, but it can refuse a value the Go operator took, or do something
    else with it (how is said, and the computed differences follow);
  - **refused**: dbops knows the field and refuses it with a message that says why and what to use instead;
  - **missing**: dbops does not have the field today; a manifest that sets it is refused as an unknown field
    (kubectl's default strict validation) or has it pruned. The reason says why, and `see` where dbops keeps
    the nearest equivalent.
- **Notes**: the verdict's explanation, then the differences computed from the two schemas.

A nested field under a missing or refused field shares its verdict ("as `parent`").
"""


def render(
    go: dict[str, Any],
    verdicts: dict[str, dict[str, Verdict]],
    examples: list[dict[str, Any]],
    dbops_fields: DbopsFields = default_dbops_fields,
) -> str:
    all_rows = rows(go, verdicts)
    lines = [INTRO.format(commit=go["source"]["commit"][:12]), "## Summary", ""]
    lines += counts_table(all_rows, go)
    lines.append("")
    for kind, info in go["kinds"].items():
        ours = bool(dbops_fields(kind))
        lines += [f"## {kind}", ""]
        scope = "cluster-scoped" if info["scope"] == "Cluster" else "namespaced"
        lines.append(
            f"Go CRD `{info['crd']}` ({scope}). "
            + ("dbops has this kind (a Crossplane claim)." if ours else "dbops has no such kind.")
        )
        lines += [
            "",
            "| Go path | Go | Go code reads it | Verdict | dbops | Notes |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        kind_rows = [r for r in all_rows if r.kind == kind]
        lines += [row_line(r, dbops_fields) for r in kind_rows]
        extra = dbops_only(kind, kind_rows, dbops_fields) if ours else []
        if extra:
            lines += [
                "",
                f"dbops fields of {kind} that no Go field maps to: " + ", ".join(f"`{p}`" for p in extra),
            ]
        lines.append("")
    lines += examples_section(examples)
    return "\n".join(lines).rstrip("\n") + "\n"


def examples_section(examples: list[dict[str, Any]]) -> list[str]:
    as_written = sum(e["dbops"]["applies"] for e in examples)
    moved = [e for e in examples if "dbops_moved" in e]
    lines = [
        "## The Go project's examples",
        "",
        f"Every object of the Go API group in the Go project's `config/samples` and `docs/examples`: {len(examples)} "
        f"objects, of which dbops accepts {as_written} as written. {len(moved)} of them use fields the Go CRD "
        f"itself does not have (the Go docs are out of step with the Go API); with those moved to the Go CRD's "
        f'paths, dbops accepts {sum(e["dbops_moved"]["applies"] for e in moved)} of those. "Accepts" is the '
        "schema, its rules and the function's own checks (secret templates, engine rules); the data, with each "
        "object, is tests/compat/go_examples.yaml. Beyond acceptance, tests/test_compat_examples_e2e.py runs every "
        "object of the five kinds dbops has with the Go operator through dbops-local against real PostgreSQL and MariaDB servers (only "
        "host, port and the Secrets they name rewritten); each reaches Ready unless "
        "tests/compat/go_examples_e2e.yaml lists what dbops answers instead, and why.",
        "",
        "| Example | Object | dbops today | Why not |",
        "| --- | --- | --- | --- |",
    ]
    for e in examples:
        verdict = e["dbops"]
        outcome = "accepted" if verdict["applies"] else "refused"
        if "dbops_moved" in e:
            outcome += "; with doc-only fields moved: " + (
                "accepted" if e["dbops_moved"]["applies"] else "refused"
            )
        why = "; ".join(_short(e) for e in verdict["errors"][:2]) + (
            " …" if len(verdict["errors"]) > 2 else ""
        )
        cells = [f"`{e['source']}` line {e['line']}", f"{e['kind']}/{e.get('name', '')}", outcome, why]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    moves = sorted(
        {(e["kind"], m["path"], str(m["crd_path"]), m["why"]) for e in moved for m in e["doc_only"]}
    )
    if moves:
        lines += [
            "Fields the Go docs use that the Go CRD does not have, and where the Go CRD holds them:",
            "",
            "| Kind | In the Go docs | Go CRD path | Why |",
            "| --- | --- | --- | --- |",
        ]
        for kind, path, crd_path, why in moves:
            target = f"`{crd_path}`" if crd_path != "None" else "none (dropped)"
            lines.append("| " + " | ".join(_cell(c) for c in (kind, f"`{path}`", target, why)) + " |")
        lines.append("")
    return lines


def _short(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def generate() -> str:
    return render(load_go_fields(), load_verdicts(), load_examples())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("write", "check"))
    args = parser.parse_args(argv)
    found = problems(load_go_fields(), load_verdicts())
    text = generate()
    if args.command == "write":
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    elif not DOC.exists() or DOC.read_text() != text:
        found.append(f"{DOC.relative_to(ROOT)} is stale: run python -m tools.compat.compat_doc write")
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
