"""docs/packages.md, "Install", as written: the session's control plane installed the Configuration alone (its
dependency brings the Function) and then deploy/. Exactly one Function exists, named as every Composition calls
it, and deploy/function.yaml, applied afterwards to pin the version, is that same Function."""

from __future__ import annotations

from tools.cluster.controlplane import ROOT, ControlPlane
from tools.cluster.kube import load_yaml


def called_functions() -> set[str]:
    return {
        step["functionRef"]["name"]
        for doc in load_yaml(*sorted((ROOT / "apis").glob("*/composition.yaml")))
        for step in doc["spec"]["pipeline"]
    }


def test_the_configuration_installs_the_one_function_its_compositions_call(
    control_plane: ControlPlane,
) -> None:
    assert control_plane.function_names() == sorted(called_functions())


def test_deploy_function_yaml_is_that_same_function(control_plane: ControlPlane) -> None:
    before = control_plane.admin.list("pkg.crossplane.io/v1", "Function")
    control_plane.admin.apply_all(load_yaml(ROOT / "deploy/function.yaml"))
    assert control_plane.function_names() == sorted(called_functions())
    after = control_plane.admin.list("pkg.crossplane.io/v1", "Function")
    assert [f["metadata"]["uid"] for f in after] == [f["metadata"]["uid"] for f in before]
