"""How `dbops-local` applies what the function returns, as Crossplane v2.3.4 and the API server do (docs/offline.md):
server-side apply with force takes over an object nobody controls, a second controller reference is refused,
observed resources are those the XR controls, and connection details are merge-patched into the XR's connection
Secret and copied to the claim's only where Crossplane would. No function and no database needed."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

from dbops_local import crossplane as xp
from dbops_local.loop import OfflineCluster, Outcome
from dbops_local.store import Obj

XR: Obj = {
    "apiVersion": xp.API_VERSION,
    "kind": "XDatabaseUser",
    "metadata": {
        "name": "app-x1b2c",
        "uid": "uid-xr",
        "labels": {
            "crossplane.io/composite": "app-x1b2c",
            "crossplane.io/claim-name": "app",
            "crossplane.io/claim-namespace": "default",
        },
    },
    "spec": {"writeConnectionSecretToRef": {"name": "uid-xr", "namespace": "crossplane-system"}},
}


def secret(name: str, namespace: str = "default", controller: str | None = None, **data: str) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": {"team": "a"}}
    if controller:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "X", "name": "x", "uid": controller, "controller": True}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def cluster(*objects: Obj) -> OfflineCluster:
    c = OfflineCluster(client=None)  # type: ignore[arg-type]  # nothing here calls the function
    for obj in objects:
        c.store.put(obj)
    return c


def desired_secret(**data: str) -> dict[str, tuple[Obj, bool]]:
    wanted = secret("taken", **data)
    del wanted["metadata"]["labels"]
    return {"credentials": (wanted, True)}


def test_an_uncontrolled_secret_is_taken_over_as_server_side_apply_with_force_does() -> None:
    c = cluster(secret("taken", password="admin-password", username="admin", other="kept"))
    outcome = Outcome()
    c._apply_desired(XR, {}, desired_secret(password="generated"), outcome)
    taken = c.store.get("v1", "Secret", "taken", "default")
    assert taken is not None and outcome.events == []
    assert c.secret_data("taken") == {"password": "generated", "username": "admin", "other": "kept"}
    assert taken["metadata"]["labels"]["team"] == "a"
    assert xp.controller_uid(taken) == "uid-xr"
    assert c._composed(XR) == {"credentials": taken}, "from now on the XR observes it as its own"


def test_a_secret_another_owner_controls_is_refused_and_not_observed() -> None:
    theirs = secret("taken", controller="uid-other", password="their-password")
    theirs["metadata"]["labels"]["crossplane.io/composite"] = "app-x1b2c"  # a label proves nothing
    theirs["metadata"]["annotations"] = {xp.COMPOSITION_RESOURCE_NAME: "credentials"}
    c = cluster(theirs)
    before = c.store.get("v1", "Secret", "taken", "default")
    outcome = Outcome()
    c._apply_desired(XR, {}, desired_secret(password="generated"), outcome)
    assert c.store.get("v1", "Secret", "taken", "default") == before
    assert outcome.events == [
        "cannot apply composed resource credentials: Secret default/taken is invalid: metadata.ownerReferences: "
        "Only one reference can have Controller set to true"
    ]
    assert c._composed(XR) == {}


def _response(**details: str) -> Any:
    return SimpleNamespace(
        desired=SimpleNamespace(
            composite=SimpleNamespace(connection_details={k: v.encode() for k, v in details.items()})
        )
    )


def test_connection_details_are_merge_patched_and_copied_only_to_a_claim_that_asks() -> None:
    c = cluster()
    outcome = Outcome()
    c._publish_connection(XR, _response(), outcome)
    assert c.secret_data("uid-xr", "crossplane-system") == {}, "created, empty, for every XR"
    c._publish_connection(XR, _response(password="pw-1", username="app"), outcome)
    c._publish_connection(XR, _response(username="app"), outcome)
    assert c.secret_data("uid-xr", "crossplane-system") == {"password": "pw-1", "username": "app"}, (
        "a merge patch keeps what is left out"
    )
    c._publish_connection(XR, _response(password="", username=""), outcome)
    assert c.secret_data("uid-xr", "crossplane-system") == {"password": "", "username": ""}

    claim: Obj = {
        "apiVersion": xp.API_VERSION,
        "kind": "DatabaseUser",
        "metadata": {"name": "app", "namespace": "default", "uid": "uid-claim"},
        "spec": {},
    }
    c._propagate_connection(claim, XR, outcome)
    assert c.store.get("v1", "Secret", "app-conn", "default") is None
    claim["spec"]["writeConnectionSecretToRef"] = {"name": "app-conn"}
    c._publish_connection(XR, _response(password="pw-2"), outcome)
    c._propagate_connection(claim, XR, outcome)
    assert c.secret_data("app-conn")["password"] == "pw-2"
    # An existing Secret the claim does not control and that is not a connection Secret is never written.
    c.store.put(secret("admin", password="admin-password"))
    claim["spec"]["writeConnectionSecretToRef"] = {"name": "admin"}
    c._propagate_connection(claim, XR, outcome)
    assert c.secret_data("admin") == {"password": "admin-password"}
    assert outcome.events[-1] == (
        "cannot propagate connection details from composite resource: refusing to modify uncontrolled secret of "
        "type 'Opaque'"
    )
