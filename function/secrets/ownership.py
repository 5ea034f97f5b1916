"""Whether an existing Secret may become this XR's composed Secret: this XR controls it, or it was released to it.

Crossplane composes with server-side apply and `force`: whatever a desired resource names, it takes over.
An existing object with another controller reference makes that apply fail (the API server allows one
controller), but one with none (an admin Secret made with kubectl, a TLS Secret, any unrelated Secret) is taken:
its keys are overwritten, it gains this XR as controller, and deleting the claim garbage-collects it. So before
a name is composed the first time, the function asks Crossplane for the Secret of that name and composes it only
when there is none, or this XR controls it (the test Crossplane itself applies to observed composed resources:
the controller reference's uid is the XR's), or it is a credentials Secret dbops composed for this same owner and
that was released to it (`released_to`: the migration from claims to namespaced XRs, docs/migrating.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function.labels import CLAIM_LABEL, KIND_LABEL, MANAGED_BY, managed_labels
from function.objects import items, mapping, text
from function.view import CLAIM_NAME_LABEL, View

COMPOSITE_LABEL = "crossplane.io/composite"


@dataclass(frozen=True)
class Existing:
    """What Crossplane found under a name this XR wants to compose a Secret with."""

    resolved: bool  # Crossplane answered the lookup (possibly: nothing there)
    ours: dict[str, Any] | None  # the Secret, when it exists and this XR controls it
    conflict: str  # why the name may not be used; "" when it may
    released: bool = False  # `ours` has no owner: released to this XR (`released_to`), taken over now


def controller(obj: Any) -> dict[str, Any] | None:
    """The owner reference with `controller: true`, if any."""
    for ref in items(obj, "metadata", "ownerReferences"):
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def controlled_by(obj: Any, view: View) -> bool:
    """Whether this XR is `obj`'s controller: by uid, as Crossplane checks; by kind and name only when the XR has
    no uid (`crossplane render` of an XR file that has none)."""
    ref = controller(obj)
    if ref is None:
        return False
    if view.uid:
        return ref.get("uid") == view.uid
    return ref.get("kind") == view.xr_kind and ref.get("name") == view.name


def released_to(obj: Any, view: View) -> bool:
    """Whether `obj` is a Secret dbops composed for an owner of this XR's namespace, name and kind, and that nothing
    owns any more: no owner reference at all, and dbops' labels (`managed-by: dbops`, and the claim name and kind
    dbops labels every composed resource with) naming this XR's name and kind, in this XR's namespace.

    Such a Secret exists only when someone removed its owner reference on purpose (a composed Secret is created
    with its XR as controller, and Kubernetes deletes it with the XR): the step of the claim-to-namespaced migration
    that keeps the credentials Secret, and its password, when the claim is deleted. Taking it over keeps the
    password the user has in the server. Any other Secret stays refused: one with an owner, without dbops' labels,
    or labelled for another name or kind. The labels are evidence against accidents, not against the namespace's
    own writers: whoever may write Secrets there may also set `existingPasswordSecret` to any of them."""
    if items(obj, "metadata", "ownerReferences"):
        return False
    labels = mapping(obj, "metadata", "labels")
    mine = managed_labels(view)
    return text(obj, "metadata", "namespace") == view.namespace and all(
        labels.get(key) == mine[key] for key in (MANAGED_BY, CLAIM_LABEL, KIND_LABEL)
    )


def _whose(obj: dict[str, Any]) -> str:
    ref = controller(obj)
    if ref is None:
        return "it has no controller: it was not created by dbops for this claim"
    owner = f"{text(ref, 'kind') or '?'} {text(ref, 'name') or '?'}"
    claim = text(obj, "metadata", "labels", CLAIM_NAME_LABEL)
    if claim and text(obj, "metadata", "labels", COMPOSITE_LABEL):
        return f"it belongs to {owner} (the claim {claim})"
    return f"it belongs to {owner}"


def existing_secret(view: View, requirement: str, name: str, reserved: dict[str, str]) -> Existing:
    """Judge the Secret `name` (looked up under `requirement`). `reserved` maps names the claim's own references
    use (the instance's admin and TLS Secrets, existingPasswordSecret) to what they are: never composable, even
    before they exist."""
    where = f"Secret {view.namespace}/{name}"
    if name in reserved:
        return Existing(view.resolved(requirement), None, f"{where} is {reserved[name]}")
    if not view.resolved(requirement):
        return Existing(False, None, "")
    found = view.one(requirement)
    if found is None or text(found, "metadata", "name") != name:
        return Existing(True, None, "")
    if controlled_by(found, view):
        return Existing(True, found, "")
    if released_to(found, view):
        return Existing(True, found, "", released=True)
    return Existing(True, None, f"{where} already exists and {_whose(found)}")
