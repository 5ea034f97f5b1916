"""`dbops-local migrate-to-namespaced` (dbops_local/migrate_namespaced.py, docs/migrating-namespaced.md): claims in, the
namespaced XRs of the same namespace and name out, every claim-only field reported with its reason. No server
needed; tests/test_migrate_namespaced_e2e.py runs the result against real servers."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from dbops_api.registry import API_VERSION, SPECS
from dbops_api.validation import normalize
from dbops_local import cli
from dbops_local.migrate_namespaced import NAMESPACED_API_VERSION, convert

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_start_converts_to_the_namespaced_quick_start() -> None:
    claims = list(yaml.safe_load_all((ROOT / "examples/quickstart.yaml").read_text()))
    expected = list(yaml.safe_load_all((ROOT / "examples/namespaced/quickstart.yaml").read_text()))
    result = convert(claims)
    assert result.notes == []
    assert result.documents == [
        {**d, "metadata": {**d["metadata"], "namespace": "default"}} for d in expected
    ]


def test_claim_only_fields_are_moved_or_left_out_with_the_reason() -> None:
    claim = {
        "apiVersion": API_VERSION,
        "kind": "DatabaseUser",
        "metadata": {
            "name": "app",
            "namespace": "team-a",
            "uid": "1234",
            "resourceVersion": "7",
            "finalizers": ["finalizer.apiextensions.crossplane.io"],
            "labels": {"team": "a"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "kept"},
        },
        "spec": {
            "instanceRef": {"name": "pg"},
            "username": "app",
            "compositionRef": {"name": "xdatabaseusers.dbops.dbprovision.io"},
            "compositionSelector": {"matchLabels": {"tier": "db"}},
            "compositionUpdatePolicy": "Manual",
            "compositionRevisionRef": {"name": "xdatabaseusers.dbops.dbprovision.io-1a2b3c4"},
            "compositeDeletePolicy": "Foreground",
            "resourceRef": {"apiVersion": API_VERSION, "kind": "XDatabaseUser", "name": "app-x1"},
            "writeConnectionSecretToRef": {"name": "app-conn"},
        },
        "status": {"phase": "Ready"},
    }
    result = convert([claim])
    (xr,) = result.documents
    assert xr == {
        "apiVersion": NAMESPACED_API_VERSION,
        "kind": "DatabaseUser",
        "metadata": {
            "name": "app",
            "namespace": "team-a",
            "labels": {"team": "a"},
            "annotations": {"note": "kept"},
        },
        "spec": {
            "instanceRef": {"name": "pg"},
            "username": "app",
            "crossplane": {
                "compositionSelector": {"matchLabels": {"tier": "db"}},
                "compositionUpdatePolicy": "Manual",
                "compositionRef": {"name": "databaseusers.ns.dbops.dbprovision.io"},
            },
        },
    }
    _, errors = normalize(
        SPECS["DatabaseUser"], {k: v for k, v in xr["spec"].items() if k != "crossplane"}, "spec"
    )
    assert errors == []
    where = "DatabaseUser team-a/app: "
    by_path = {n[len(where) :].split(":")[0]: n for n in result.notes}
    assert set(by_path) == {
        "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']",
        "spec.compositionSelector",
        "spec.compositionUpdatePolicy",
        "spec.compositionRef",
        "spec.compositeDeletePolicy",
        "spec.compositionRevisionRef",
        "spec.writeConnectionSecretToRef",
    }
    assert "credentials Secret" in by_path["spec.writeConnectionSecretToRef"]
    assert "deleted with the claim" in by_path["spec.writeConnectionSecretToRef"]
    assert "changed" in by_path["spec.compositionRef"]


def test_what_crossplane_fills_in_on_every_claim_goes_silently() -> None:
    claim = {
        "apiVersion": API_VERSION,
        "kind": "DatabaseInstance",
        "metadata": {"name": "pg", "namespace": "default"},
        "spec": {
            "engine": "postgres",
            "compositionRef": {"name": "xdatabaseinstances.dbops.dbprovision.io"},
            "compositionRevisionRef": {"name": "xdatabaseinstances.dbops.dbprovision.io-1a2b3c4"},
            "compositionUpdatePolicy": "Automatic",
            "compositeDeletePolicy": "Background",
            "resourceRef": {"apiVersion": API_VERSION, "kind": "XDatabaseInstance", "name": "pg-x1"},
        },
    }
    result = convert([claim])
    assert result.notes == []
    assert result.documents[0]["spec"] == {"engine": "postgres"}


def test_a_composition_of_ones_own_is_left_out_and_legacy_xrs_are_not_converted() -> None:
    claim = {
        "apiVersion": API_VERSION,
        "kind": "Database",
        "metadata": {"name": "db"},
        "spec": {"instanceRef": {"name": "pg"}, "compositionRef": {"name": "mine"}},
    }
    legacy_xr = {"apiVersion": API_VERSION, "kind": "XDatabase", "metadata": {"name": "db-x1"}, "spec": {}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "team-a", "uid": "u", "resourceVersion": "1"},
        "data": {"password": "cA=="},
    }
    result = convert([claim, legacy_xr, secret], namespace="team-b")
    assert [d["kind"] for d in result.documents] == ["Database", "Secret"]
    assert result.documents[0]["metadata"] == {"name": "db", "namespace": "team-b"}
    assert "crossplane" not in result.documents[0]["spec"]
    assert result.documents[1]["metadata"] == {"name": "s", "namespace": "team-a"}
    assert any("'mine' is not dbops' Composition" in n for n in result.notes)
    assert any(n.startswith("XDatabase db-x1: -: left out") for n in result.notes)


def test_cli_reads_a_kubectl_list_and_reports_on_stderr(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": API_VERSION,
                "kind": "DatabaseUser",
                "metadata": {"name": "u", "namespace": "ns1"},
                "spec": {
                    "instanceRef": {"name": "pg"},
                    "username": "u",
                    "writeConnectionSecretToRef": {"name": "c"},
                },
            }
        ],
    }
    source = tmp_path / "claims.yaml"
    source.write_text(yaml.safe_dump(listing))
    target = tmp_path / "xrs.yaml"
    assert cli.main(["migrate-to-namespaced", "-f", str(source), "-o", str(target)]) == 0
    (xr,) = list(yaml.safe_load_all(target.read_text()))
    assert xr["apiVersion"] == NAMESPACED_API_VERSION
    assert xr["metadata"] == {"name": "u", "namespace": "ns1"}
    err = capsys.readouterr().err
    assert err.startswith("DatabaseUser ns1/u: spec.writeConnectionSecretToRef: left out: ")
    out, errs = io.StringIO(), io.StringIO()
    from dbops_local.migrate_namespaced import main

    assert main(["-f", str(source)], out=out, err=errs) == 0
    assert list(yaml.safe_load_all(out.getvalue())) == [xr]
