"""docs/compatibility.md stays true (issue 17): it is generated from the pinned Go field list
(tests/compat/go_crd_fields.json), our verdicts (tests/compat/verdicts.yaml) and dbops' generated XRDs, every Go
path has a verdict, and every verdict agrees with the two schemas. The checks are shown to fail on broken data.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tools.compat import compat_doc
from tools.compat.compat_doc import Verdict, load_examples, load_go_fields, load_verdicts, problems, render
from tools.compat.dbops_api import dbops_fields
from tools.compat.go_fields import KIND_ORDER
from tools.compat.locations import DOC


@pytest.fixture(scope="module")
def go() -> dict[str, Any]:
    return load_go_fields()


@pytest.fixture
def verdicts() -> dict[str, dict[str, Verdict]]:
    return load_verdicts()


def test_committed_doc_equals_the_generated_one() -> None:
    assert DOC.read_text() == compat_doc.generate(), (
        "run `python -m tools.compat.compat_doc write` and commit it"
    )


def test_every_go_path_has_a_verdict_that_agrees_with_both_schemas(go: dict[str, Any], verdicts: Any) -> None:
    assert problems(go, verdicts) == []


def test_check_command_exits_0_when_in_step() -> None:
    assert compat_doc.main(["check"]) == 0


def test_the_pinned_field_list_covers_every_go_kind_at_one_commit(go: dict[str, Any]) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", go["source"]["commit"])
    assert list(go["kinds"]) == list(KIND_ORDER)  # all eleven Go kinds, shared ones first
    for kind, info in go["kinds"].items():
        paths = [f["path"] for f in info["fields"]]
        assert len(paths) == len(set(paths)), kind
        read = {f["path"]: f["go_reads"] for f in info["fields"]} | {"spec": True}
        for field in info["fields"]:
            parent = field["path"].rsplit(".", 1)[0].removesuffix("[]")
            assert parent in read, (kind, field["path"])
            # read means read somewhere, and inside a block that is read itself
            assert not field["go_reads"] or (field["read_at"] and read[parent]), (kind, field["path"])


def test_one_row_per_go_field(go: dict[str, Any]) -> None:
    text = DOC.read_text()
    for kind, info in go["kinds"].items():
        section = text.split(f"\n## {kind}\n", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| `(spec[^`]*)` \|", section, re.MULTILINE)
        assert rows == [f["path"] for f in info["fields"]], kind


def test_dbops_fields_come_from_the_generated_xrds() -> None:
    grant = dbops_fields("DatabaseGrant")
    assert "spec.roleName" in grant and "spec.postgres.grants[].privileges" in grant
    assert "spec.clickhouse" not in grant and "spec.roleRef.name" in grant  # roleRef: the DatabaseRole claim
    assert grant["spec.userRef.name"][1] is True and grant["spec.userRef"][1] is False
    role = dbops_fields("DatabaseRole")
    assert "spec.roleName" in role and "spec.mysql.grants[].level" in role and "spec.clickhouse" not in role


# --- the checks fail on broken data ---------------------------------------------------------------------------------


def test_a_go_path_without_verdict_is_reported(go: dict[str, Any], verdicts: Any) -> None:
    del verdicts["DatabaseGrant"]["spec.mysql.grants[].table"]
    assert problems(go, verdicts) == ["verdicts.yaml DatabaseGrant spec.mysql.grants[].table: no verdict"]


def test_a_missing_parent_covers_its_children_but_a_same_one_does_not(
    go: dict[str, Any], verdicts: Any
) -> None:
    del verdicts["DatabaseInstance"]["spec.connection.existingSecret.name"]  # under a missing parent: covered
    assert problems(go, verdicts) == []
    del verdicts["DatabaseUser"]["spec.passwordSecret.excludeChars"]  # under a same parent: not covered
    assert problems(go, verdicts) == [
        "verdicts.yaml DatabaseUser spec.passwordSecret.excludeChars: no verdict"
    ]


def test_a_verdict_naming_a_dbops_path_that_does_not_exist_is_reported(
    go: dict[str, Any], verdicts: Any
) -> None:
    grant = verdicts["DatabaseGrant"]
    grant["spec.userRef"] = {"verdict": "alias", "to": "spec.roleNames"}
    grant["spec.postgres.defaultPrivileges"]["see"] = "Database:spec.postgres.defaultPrivilege"
    grant["spec.clickhouse"] = {"verdict": "same"}
    assert problems(go, verdicts) == [
        "verdicts.yaml DatabaseGrant spec.userRef: to: dbops has no DatabaseGrant spec.roleNames",
        "verdicts.yaml DatabaseGrant spec.postgres.defaultPrivileges: see: dbops has no Database "
        "spec.postgres.defaultPrivilege",
        "verdicts.yaml DatabaseGrant spec.clickhouse: says same, but dbops has no DatabaseGrant spec.clickhouse",
        "verdicts.yaml DatabaseGrant spec.clickhouse.roles: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants[].level: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants[].database: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants[].table: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants[].privileges: no verdict",
        "verdicts.yaml DatabaseGrant spec.clickhouse.grants[].withGrantOption: no verdict",
    ]


def test_missing_on_a_path_dbops_has_is_reported(go: dict[str, Any], verdicts: Any) -> None:
    verdicts["Database"]["spec.owner"] = {"verdict": "missing", "reason": "stale"}
    assert problems(go, verdicts) == [
        "verdicts.yaml Database spec.owner: says missing, but dbops has Database spec.owner "
        "(say same, different or alias)"
    ]


def test_same_over_a_computed_difference_is_reported(go: dict[str, Any], verdicts: Any) -> None:
    verdicts["DatabaseInstance"]["spec.healthCheck.intervalSeconds"] = {"verdict": "same"}
    assert problems(go, verdicts) == [
        "verdicts.yaml DatabaseInstance spec.healthCheck.intervalSeconds: says same, but default: Go 30, "
        "dbops 300 (say different, and how)"
    ]


def test_same_on_a_field_the_go_code_never_reads_is_reported(go: dict[str, Any], verdicts: Any) -> None:
    verdicts["DatabaseUser"]["spec.roles"] = {"verdict": "same"}
    (problem,) = problems(go, verdicts)
    assert problem.startswith(
        "verdicts.yaml DatabaseUser spec.roles: says same, but the Go operator never reads"
    )


def test_bad_verdict_entries_are_reported(go: dict[str, Any], verdicts: Any) -> None:
    verdicts["Database"]["spec.owner"] = {"verdict": "renamed"}
    verdicts["Database"]["spec.name"] = {"verdict": "different"}
    verdicts["Database"]["spec.nmae"] = {"verdict": "same"}
    verdicts["DatabaseSnapshot"] = {"spec": {"verdict": "missing", "reason": "x"}}
    assert problems(go, verdicts) == [
        "verdicts.yaml DatabaseSnapshot: not a kind of the Go API",
        "verdicts.yaml Database spec.name: a different verdict needs `how`",
        "verdicts.yaml Database spec.owner: verdict must be one of same, alias, different, refused, missing; "
        "got 'renamed'",
        "verdicts.yaml Database spec.nmae: not a path of the Go CRD",
    ]


def test_the_document_follows_the_verdicts_and_dbops(go: dict[str, Any], verdicts: Any) -> None:
    examples = load_examples()
    before = render(go, verdicts, examples)
    verdicts["DatabaseGrant"]["spec.roleRef"] = {"verdict": "alias", "to": "spec.roleName", "how": "by name"}
    after = render(go, verdicts, examples)
    row = next(line for line in after.splitlines() if line.startswith("| `spec.roleRef` |"))
    assert "| alias | `spec.roleName` (string) | by name; type: Go object, dbops string;" in row
    # roleRef.name and roleRef.namespace keep their own verdicts (same, different); roleRef moves from same to alias
    assert "| DatabaseGrant | 48 | 23 | 1 | 10 | 0 | 14 |" in after and after != before

    def template0_default(kind: str) -> dict[str, Any]:
        fields = dict(dbops_fields(kind))
        if kind == "Database":
            fields["spec.postgres.template"] = ({"type": "string", "default": "template0"}, False)
        return fields

    aligned = render(go, verdicts, examples, template0_default)
    (row,) = [
        r
        for r in aligned.split("\n## Database\n")[1].splitlines()
        if r.startswith("| `spec.postgres.template`")
    ]
    assert '(string, default "template0")' in row and "default: Go" not in row
