"""The Go operator's published examples as data (tests/compat/go_examples.yaml, issue 17): their verdicts are
today's dbops, their doc-only fields are moved to Go CRD paths, and the data pins the Go field list's commit."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tools.compat import go_examples
from tools.compat.compat_doc import load_go_fields
from tools.compat.go_examples import go_paths, judge, load, move_doc_only, unknown_paths
from tools.compat.go_fields import KIND_ORDER

DATA = load()
ENTRIES: list[dict[str, Any]] = DATA["examples"]
OURS = [e for e in ENTRIES if "go_crd_errors" in e]


def ident(entry: dict[str, Any]) -> str:
    return f"{entry['source']}:{entry['line']}:{entry['kind']}/{entry.get('name', '')}"


def test_the_examples_pin_the_field_lists_commit() -> None:
    assert DATA["source"]["commit"] == load_go_fields()["source"]["commit"]


def test_every_object_of_the_go_group_is_judged() -> None:
    group = [e for e in ENTRIES if e["object"]["apiVersion"].startswith(go_examples.GROUP + "/")]
    assert group == OURS and {e["kind"] for e in OURS} <= set(KIND_ORDER)
    assert all("dbops" in e for e in OURS)
    assert all("dbops" not in e for e in ENTRIES if e not in OURS)


@pytest.mark.parametrize("entry", OURS, ids=ident)
def test_the_verdict_is_todays_dbops(entry: dict[str, Any]) -> None:
    assert judge(entry, ENTRIES) == {k: entry[k] for k in ("dbops", "dbops_moved") if k in entry}, (
        "run `python -m tools.compat.go_examples refresh` and review the diff"
    )


@pytest.mark.parametrize("entry", OURS, ids=ident)
def test_doc_only_fields_are_moved_to_go_crd_paths(entry: dict[str, Any]) -> None:
    known = go_paths()[entry["kind"]]
    spec = entry["object"].get("spec") or {}
    moved, moves = move_doc_only(entry["kind"], spec, known)
    assert unknown_paths(moved, "spec", known) == []
    assert moves == entry.get("doc_only", [])
    assert moved == entry.get("moved_spec", spec)
    for move in moves:  # each names a field the docs wrote
        node = spec
        for name in move["path"].split(".")[1:]:
            node = node[name]


def test_a_changed_example_changes_its_verdict() -> None:
    (entry,) = [e for e in OURS if e["source"] == "docs/examples/mysql/02-instance.yaml"]
    assert entry["dbops"]["applies"]
    broken = copy.deepcopy(entry)
    broken["object"]["spec"]["connection"]["sslMode"] = "require"
    assert judge(broken, ENTRIES)["dbops"] == {
        "applies": False,
        "engine": "mysql",
        "errors": ["spec.connection.sslMode: unknown field; allowed: host, port, database, secretRef"],
    }
    (user,) = [e for e in OURS if e["source"] == "docs/examples/mysql/04-user.yaml"]
    assert user["dbops"]["engine"] == "mysql"  # found through the instanceRef in the same folder
