"""Deletion protection on the real control plane: the API server's ValidatingAdmissionPolicy (deploy/) refuses to
delete a protected claim or XR, yet deleting a whole namespace of claims goes through, protected or not."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import GROUP, namespace, wait_claim
from tests.servers import Server
from tools.cluster.kube import ApiError, Kube, Obj, wait


def instance(ns: str, server: Server, protected: bool | None) -> list[Obj]:
    spec: Obj = {
        "engine": "postgres",
        "connection": {"host": server.host, "port": server.port, "secretRef": {"name": "admin"}},
    }
    if protected is not None:
        spec["deletionProtection"] = protected
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "admin", "namespace": ns},
            "stringData": {"username": server.admin_user, "password": server.admin_password},
        },
        {
            "apiVersion": GROUP,
            "kind": "DatabaseInstance",
            "metadata": {"name": "server", "namespace": ns},
            "spec": spec,
        },
    ]


def xr_name(kube: Kube, ns: str) -> str:
    def probe() -> str | None:
        obj = kube.get(GROUP, "DatabaseInstance", "server", ns) or {}
        return obj.get("spec", {}).get("resourceRef", {}).get("name")

    return wait(probe, 60, f"the XR of {ns}/server")


def test_deleting_a_protected_claim_or_its_xr_is_refused_by_the_policy(kube: Kube, pg: Server) -> None:
    ns = namespace(kube, "del-refused")
    kube.apply_all(instance(ns, pg, protected=None))
    xr = xr_name(kube, ns)
    with pytest.raises(ApiError) as refused:
        kube.delete(GROUP, "DatabaseInstance", "server", ns)
    assert refused.value.status == 403
    assert "has spec.deletionProtection: true (the default)" in refused.value.message
    assert (
        "kubectl patch databaseinstances.dbops.dbprovision.io server -n del-refused" in refused.value.message
    )
    with pytest.raises(ApiError) as refused_xr:
        kube.delete(GROUP, "XDatabaseInstance", xr)
    assert (
        refused_xr.value.status == 403
        and f"xdatabaseinstances.dbops.dbprovision.io {xr} has" in refused_xr.value.message
    )
    assert kube.get(GROUP, "DatabaseInstance", "server", ns) and kube.get(GROUP, "XDatabaseInstance", xr)

    # The way out the message names: turn protection off, then delete.
    kube.patch(GROUP, "DatabaseInstance", "server", {"spec": {"deletionProtection": False}}, ns)
    wait(
        lambda: (
            (kube.get(GROUP, "XDatabaseInstance", xr) or {}).get("spec", {}).get("deletionProtection")
            is False
        ),
        60,
        "protection off on the XR",
    )
    kube.delete(GROUP, "DatabaseInstance", "server", ns)
    wait(lambda: kube.get(GROUP, "XDatabaseInstance", xr) is None, 120, "the XR gone")


@pytest.mark.parametrize("protected", [False, True], ids=["unprotected", "protected"])
def test_a_namespace_with_claims_can_be_deleted(kube: Kube, pg: Server, protected: bool) -> None:
    ns = namespace(kube, f"del-ns-{'on' if protected else 'off'}")
    kube.apply_all(instance(ns, pg, protected=protected))
    xr = xr_name(kube, ns)
    # Settled first (its Job and Pod exist and finished), as a namespace in use is when someone deletes it.
    wait_claim(kube, "DatabaseInstance", "server", ns)
    kube.delete("v1", "Namespace", ns)
    try:
        wait(lambda: kube.get("v1", "Namespace", ns) is None, 180, f"namespace {ns} gone")
    except TimeoutError:
        left = {
            kind: [
                (
                    o["metadata"]["name"],
                    o["metadata"].get("finalizers"),
                    o["metadata"].get("deletionTimestamp"),
                )
                for o in kube.list(av, kind, None if kind.startswith("X") else ns)
            ]
            for av, kind in (
                (GROUP, "DatabaseInstance"),
                (GROUP, "XDatabaseInstance"),
                ("batch/v1", "Job"),
                ("v1", "Pod"),
                ("v1", "Secret"),
            )
        }
        raise AssertionError(
            f"{ns} not deleted: {(kube.get('v1', 'Namespace', ns) or {}).get('status')}; left: {left}"
        ) from None
    wait(lambda: kube.get(GROUP, "XDatabaseInstance", xr) is None, 60, "the XR gone")
