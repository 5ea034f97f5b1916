"""The Go operator's published examples as data: tests/compat/go_examples.yaml.

    python -m tools.compat.go_examples extract /path/to/db-provision-operator   # from a checkout (never committed)
    python -m tools.compat.go_examples refresh                                  # re-judge today's dbops only

`extract` reads every object of `config/samples/*.yaml`, `docs/examples/**/*.yaml` and the yaml blocks of
`docs/examples/*.md`, keeps the objects as written (their comments and prose are not ours and are left out) and
records, per object of the Go API group:

- `doc_only`: fields the Go docs use that its CRD does not have, each with the CRD path that holds it
  (`crd_path: null` when nothing does; the field is then dropped) and why;
- `go_crd_errors`: the Go CRD (unknown fields refused, then its CEL rules) on the object with those moves made,
  i.e. where the Go docs disagree with the Go operator beyond a misplaced field;
- `dbops` (and `dbops_moved` when there are moves): whether dbops accepts the spec today, and why not.

`refresh` recomputes only `dbops`/`dbops_moved` from the objects already in the file, so the verdicts can follow
dbops without the Go checkout. tests/test_compat_examples.py fails when they are stale.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.compat import dbops_api
from tools.compat.go_fields import crds, spec_schema
from tools.compat.locations import GO_EXAMPLES, GO_FIELDS

GROUP = "dbops.dbprovision.io"
SOURCES = ("config/samples/*.yaml", "docs/examples/**/*.yaml", "docs/examples/*.md")
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Move:
    """A field the Go docs write where the Go CRD has none, and where the CRD holds it (None: nowhere)."""

    kind: str
    doc_path: str
    crd_path: str | None
    why: str


# Our reading of the Go types and controllers at the pinned commit; see docs/compatibility.md.
MOVES = (
    Move(
        "DatabaseInstance",
        "spec.connection.sslMode",
        "spec.postgres.sslMode",
        "the Go operator takes libpq's sslmode from spec.postgres.sslMode (postgres and cockroachdb engines)",
    ),
    Move(
        "DatabaseInstance",
        "spec.connection.tls",
        "spec.tls",
        "the TLS block sits at spec.tls; the Go operator uses it only with spec.tls.enabled: true",
    ),
    Move(
        "DatabaseBackupSchedule",
        "spec.databaseRef",
        "spec.template.spec.databaseRef",
        "a schedule names its database inside the backup template",
    ),
    Move(
        "DatabaseBackupSchedule",
        "spec.backupTemplate",
        "spec.template.spec",
        "the backup template is spec.template, whose spec is a DatabaseBackup spec",
    ),
    Move(
        "DatabaseBackupSchedule",
        "spec.template.spec.storage.azure.secretRef.keys",
        None,
        "the Azure secret reference has only name and namespace; the Go operator reads the account key under "
        "fixed key names and the account from storage.azure.storageAccount",
    ),
    Move(
        "DatabaseRestore",
        "spec.targetDatabaseRef",
        "spec.target.databaseRef",
        "the target sits under spec.target; the Go operator uses target.databaseRef only with target.inPlace: "
        "true (a new database is target.instanceRef plus target.databaseName)",
    ),
    Move(
        "DatabaseRestore",
        "spec.createTarget",
        "spec.postgres.createDatabase",
        "creating the target database is an engine option (postgres or mysql block), true by default",
    ),
)


class _Loader(yaml.SafeLoader):
    """YAML as kubectl reads it, except that dates stay strings (they are strings in JSON)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def documents(text: str, first_line: int) -> list[tuple[int, Any]]:
    """(1-based line where the document starts, value) for each YAML document in `text`."""
    loader = _Loader(text)
    out: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                out.append((first_line + node.start_mark.line, loader.construct_document(node)))
    finally:
        loader.dispose()
    return out


def source_objects(checkout: Path) -> list[tuple[str, int, dict[str, Any]]]:
    """(source path, line, object) for every object with apiVersion and kind in the example sources."""
    out: list[tuple[str, int, dict[str, Any]]] = []
    files = sorted({p for pattern in SOURCES for p in checkout.glob(pattern)})
    for path in files:
        rel = path.relative_to(checkout).as_posix()
        text = path.read_text()
        if path.suffix == ".md":
            blocks = [(m.group(1), text.count("\n", 0, m.start(1)) + 1) for m in FENCE.finditer(text)]
        else:
            blocks = [(text, 1)]
        for block, line in blocks:
            for at, doc in documents(block, line):
                if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                    out.append((rel, at, doc))
    return out


# --- fields the Go CRD does not have ------------------------------------------------------------------------------


def go_paths() -> dict[str, dict[str, dict[str, Any]]]:
    """The pinned Go field list: kind -> path -> field."""
    data = json.loads(GO_FIELDS.read_text())
    return {kind: {f["path"]: f for f in info["fields"]} for kind, info in data["kinds"].items()}


def unknown_paths(value: Any, path: str, known: dict[str, dict[str, Any]]) -> list[str]:
    """The top-most paths in `value` that the Go field list lacks (maps and scalar lists are not entered)."""
    out: list[str] = []
    if isinstance(value, list):
        for item in value:
            out += [p for p in unknown_paths(item, path + "[]", known) if p not in out]
        return out
    if not isinstance(value, dict):
        return out
    for name, sub in value.items():
        child = f"{path}.{name}"
        if child not in known:
            out.append(child)
        elif known[child]["type"] in ("object", "[]object"):
            out += [p for p in unknown_paths(sub, child, known) if p not in out]
    return out


def _parts(path: str) -> list[str]:
    return path.split(".")[1:]


def _pop(spec: dict[str, Any], path: str) -> Any:
    *parents, last = _parts(path)
    node = spec
    for name in parents:
        node = node[name]
    return node.pop(last)


def _put(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = _parts(path)
    node = spec
    for name in parents:
        node = node.setdefault(name, {})
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        for key, item in value.items():
            _put(spec, f"{path}.{key}", item)
    elif last in node and node[last] != value:
        raise ValueError(f"{path}: the docs set it twice with different values")
    else:
        node[last] = value


def move_doc_only(kind: str, spec: dict[str, Any], known: dict[str, dict[str, Any]]) -> tuple[Any, list[Any]]:
    """The spec with every doc-only field at its CRD path, and the moves made (repeats until none is left)."""
    moved = copy.deepcopy(spec)
    done: list[dict[str, Any]] = []
    while unknown := unknown_paths(moved, "spec", known):
        path = unknown[0]
        rules = [m for m in MOVES if m.kind == kind and m.doc_path == path]
        if not rules:
            raise SystemExit(f"{kind} {path}: not in the Go CRD and no rule in MOVES says where it belongs")
        rule = rules[0]
        value = _pop(moved, path)
        target = rule.crd_path
        if target and target.endswith("postgres.createDatabase") and "mysql" in moved:
            target = target.replace("postgres.", "mysql.")
        if target:
            _put(moved, target, value)
        done.append({"path": _as_written(path, done), "crd_path": target, "why": rule.why})
    return moved, done


def _as_written(path: str, done: list[dict[str, Any]]) -> str:
    """Where a path found after earlier moves sits in the object as the docs write it."""
    for move in reversed(done):
        target = move["crd_path"]
        if target and path.startswith(target + "."):
            return _as_written(move["path"] + path[len(target) :], done)
    return path


# --- the data file ------------------------------------------------------------------------------------------------


def engine_of(entry: dict[str, Any], entries: list[dict[str, Any]]) -> str | None:
    """The engine of the instance an object refers to, following its references through the objects of the same
    page (Markdown) or folder (YAML files); the nearest earlier object of a name wins, as on the page."""
    scope = entry["source"] if entry["source"].endswith(".md") else entry["source"].rsplit("/", 1)[0]

    def find(kind: str, name: Any, before: dict[str, Any]) -> dict[str, Any] | None:
        found = [
            e
            for e in entries
            if e["kind"] == kind
            and e.get("name") == name
            and (e["source"] == scope or e["source"].rsplit("/", 1)[0] == scope)
        ]
        earlier = [e for e in found if (e["source"], e["line"]) <= (before["source"], before["line"])]
        candidates = earlier or found
        return candidates[-1] if candidates else None

    current: dict[str, Any] | None = entry
    for _ in range(4):
        if current is None:
            return None
        spec = current["object"].get("spec") or {}
        if current["kind"] == "DatabaseInstance":
            engine = spec.get("engine")
            return engine if isinstance(engine, str) else None
        refs = [(r, k) for r, k in REFERENCES if isinstance(spec.get(r), dict)]
        if not refs:
            return None
        ref, kind = refs[0]
        current = find(kind, spec[ref].get("name"), current)
    return None


REFERENCES = (
    ("instanceRef", "DatabaseInstance"),
    ("databaseRef", "Database"),
    ("userRef", "DatabaseUser"),
    ("roleRef", "DatabaseRole"),
)


def judge(entry: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """dbops' verdict today on the object as written (and with the doc-only fields moved)."""
    engine = engine_of(entry, entries)
    spec = entry["object"].get("spec")
    namespace = (entry["object"].get("metadata") or {}).get("namespace") or "default"
    errors = dbops_api.dbops_errors(entry["kind"], spec if spec is not None else {}, engine, namespace)
    verdicts: dict[str, Any] = {"dbops": {"applies": not errors, "engine": engine, "errors": errors}}
    if "moved_spec" in entry:
        moved = dbops_api.dbops_errors(entry["kind"], entry["moved_spec"], engine, namespace)
        verdicts["dbops_moved"] = {"applies": not moved, "errors": moved}
    return verdicts


def extract(checkout: Path) -> dict[str, Any]:
    from tools.compat.go_fields import checkout_commit

    commit = checkout_commit(checkout)
    pinned = json.loads(GO_FIELDS.read_text())["source"]["commit"]
    if commit != pinned:
        raise SystemExit(f"{checkout} is at {commit}; tests/compat/go_crd_fields.json pins {pinned}")
    known = go_paths()
    schemas = {kind: spec_schema(crd) for kind, crd in crds(checkout).items()}
    entries: list[dict[str, Any]] = []
    for source, line, obj in source_objects(checkout):
        entry: dict[str, Any] = {"source": source, "line": line, "kind": obj["kind"]}
        name = (obj.get("metadata") or {}).get("name")
        if name:
            entry["name"] = name
        entry["object"] = obj
        if obj["apiVersion"].split("/")[0] == GROUP:
            spec = obj.get("spec") or {}
            moved, moves = move_doc_only(obj["kind"], spec, known[obj["kind"]])
            if moves:
                entry["doc_only"] = moves
                entry["moved_spec"] = moved
            entry["go_crd_errors"] = dbops_api.crd_errors(schemas[obj["kind"]], moved)
        entries.append(entry)
    for entry in entries:
        if "go_crd_errors" in entry:
            entry.update(judge(entry, entries))
    return {"source": {"repo": "panteparak/db-provision-operator", "commit": commit}, "examples": entries}


def refresh(data: dict[str, Any]) -> dict[str, Any]:
    entries = data["examples"]
    for entry in entries:
        if "go_crd_errors" in entry:
            entry.update(judge(entry, entries))
    return data


HEADER = """\
# The Go operator's published example objects, as data (generated by tools/compat/go_examples.py; edit that).
# Each entry: where the object is published (source, line), the object as the Go docs write it, and for objects
# of the Go API group: doc_only (fields its CRD lacks, with the CRD path that holds them), moved_spec (the spec
# with them moved), go_crd_errors (the Go CRD on moved_spec), dbops / dbops_moved (does dbops accept it today).
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and value.strip() == value.rstrip("\n").strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any]) -> str:
    return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(GO_EXAMPLES.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract").add_argument("checkout", type=Path)
    sub.add_parser("refresh")
    args = parser.parse_args(argv)
    data = extract(args.checkout) if args.command == "extract" else refresh(load())
    GO_EXAMPLES.write_text(dump(data))
    ours = [e for e in data["examples"] if "dbops" in e]
    print(
        f"{GO_EXAMPLES}: {len(data['examples'])} objects, {len(ours)} of the Go API group, "
        f"{sum(e['dbops']['applies'] for e in ours)} accepted by dbops as written",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
