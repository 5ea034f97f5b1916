"""tools/compat/go_fields.py and its Go helper on a small Go operator written here: the pinned field list follows
the CRD, and "the Go code reads it" means a read in operator code (not an assignment, not api/, not tests), through
a hand-written api/ helper too, inside a block that is read itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.compat import go_fields

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")

TYPES = """\
package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type Widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WidgetSpec `json:"spec,omitempty"`
}

type WidgetSpec struct {
	Size      int32  `json:"size"`
	Color     string `json:"color,omitempty"`
	Unused    *Extra `json:"unused,omitempty"`
	Extra     Extra  `json:"extra"`
	Items     []Item `json:"items,omitempty"`
	Written   string `json:"written,omitempty"`
	TestOnly  bool   `json:"testOnly,omitempty"`
	ViaHelper bool   `json:"viaHelper,omitempty"`
}

type Extra struct {
	Deep string `json:"deep,omitempty"`
}

type Item struct {
	Name string `json:"name"`
}

func (s *WidgetSpec) Helper() bool { return s.ViaHelper }
"""

CONTROLLER = """\
package ctrl

import "example.com/op/api/v1alpha1"

func Reconcile(w *v1alpha1.Widget) int {
	w.Spec.Written = "set by the controller, never read"
	extra := w.Spec.Extra
	n := int(w.Spec.Size) + len(w.Spec.Color) + len(extra.Deep)
	for _, item := range w.Spec.Items {
		n += len(item.Name)
	}
	if w.Spec.Helper() {
		n++
	}
	return n
}
"""

TEST_ONLY = """\
package ctrl

import "example.com/op/api/v1alpha1"

func readInTest(w *v1alpha1.Widget) bool { return w.Spec.TestOnly && w.Spec.Unused != nil }
"""

PROPS: dict[str, Any] = {
    "size": {"type": "integer", "format": "int32", "minimum": 1},
    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
    "unused": {"type": "object", "properties": {"deep": {"type": "string"}}},
    "extra": {"type": "object", "properties": {"deep": {"type": "string"}}},
    "items": {
        "type": "array",
        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    },
    "written": {"type": "string"},
    "testOnly": {"type": "boolean"},
    "viaHelper": {"type": "boolean"},
}


def crd(props: dict[str, Any]) -> dict[str, Any]:
    spec = {"type": "object", "required": ["size", "extra"], "properties": props}
    schema = {"type": "object", "properties": {"spec": spec}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wdg"]},
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha1", "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def operator(root: Path, props: dict[str, Any]) -> Path:
    files = {
        "go.mod": "module example.com/op\n\ngo 1.24\n",
        "api/v1alpha1/widget_types.go": TYPES,
        "internal/ctrl/ctrl.go": CONTROLLER,
        "internal/ctrl/ctrl_test.go": TEST_ONLY,
        "test/e2e/e2e.go": TEST_ONLY.replace("package ctrl", "package e2e"),
        "config/crd/bases/example.com_widgets.yaml": yaml.safe_dump(crd(props)),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "operator"], check=True)
    return root


def test_the_pinned_field_list_of_a_small_operator(tmp_path: Path) -> None:
    data = go_fields.pinned(operator(tmp_path, PROPS))
    commit = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    assert data["source"]["commit"] == commit.stdout.strip()
    widget = data["kinds"]["Widget"]
    assert (widget["crd"], widget["scope"], widget["short_names"]) == (
        "widgets.example.com",
        "Namespaced",
        ["wdg"],
    )
    fields = {f["path"]: f for f in widget["fields"]}
    assert list(fields) == [  # the Go struct's order, not the CRD's
        "spec.size",
        "spec.color",
        "spec.unused",
        "spec.unused.deep",
        "spec.extra",
        "spec.extra.deep",
        "spec.items",
        "spec.items[].name",
        "spec.written",
        "spec.testOnly",
        "spec.viaHelper",
    ]
    assert {p for p, f in fields.items() if f["go_reads"]} == {
        "spec.size",
        "spec.color",
        "spec.extra",
        "spec.extra.deep",
        "spec.items",
        "spec.items[].name",
        "spec.viaHelper",
    }
    # Extra.Deep is read (through spec.extra), but nothing reads spec.unused: its deep does nothing
    assert fields["spec.unused.deep"]["read_at"] == ["internal/ctrl/ctrl.go:8"]
    assert fields["spec.viaHelper"]["read_at"] == ["internal/ctrl/ctrl.go:12"]
    assert fields["spec.size"] | {"read_at": []} == {
        "path": "spec.size",
        "type": "integer",
        "required": True,
        "constraints": {"minimum": 1},
        "leaf": True,
        "go_field": "WidgetSpec.Size",
        "go_type": "int32",
        "go_zero": 0,
        "go_reads": True,
        "read_at": [],
    }
    assert fields["spec.color"]["enum"] == ["red", "blue"] and fields["spec.color"]["default"] == "red"
    assert fields["spec.items"]["type"] == "[]object" and not fields["spec.items"]["leaf"]
    assert fields["spec.testOnly"]["go_zero"] is False and "go_zero" not in fields["spec.unused"]


def test_a_crd_that_disagrees_with_the_go_types_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"only in the CRD \['spec.shade'\], only in Go \['spec.written'\]"):
        go_fields.pinned(
            operator(
                tmp_path, {**{k: v for k, v in PROPS.items() if k != "written"}, "shade": {"type": "string"}}
            )
        )


def test_a_checkout_with_local_changes_is_refused(tmp_path: Path) -> None:
    root = operator(tmp_path, PROPS)
    (root / "internal/ctrl/ctrl.go").write_text(CONTROLLER + "\n// edited\n")
    with pytest.raises(SystemExit, match="local changes"):
        go_fields.pinned(root)
