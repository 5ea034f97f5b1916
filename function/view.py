"""The decoded RunFunctionRequest: the XR, the step Input, observed and required resources, `now` and randomness.

Everything a `compose_<kind>` function may look at is here, decoded once. The clock and the random source are
injected so that composing is a pure function of the view (tests pass a fixed `now` and a seeded source).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbops_api.registry import LEGACY, XRShape, by_xr
from dbops_api.validation import FieldError
from function.objects import mapping, text

CLAIM_NAME_LABEL = "crossplane.io/claim-name"
CLAIM_NAMESPACE_LABEL = "crossplane.io/claim-namespace"

# Spec fields Crossplane owns on an XR or a claim (v1 style at the top of spec, v2 style under spec.crossplane).
# They are not part of the claim's API and never reach validation or the worker.
CROSSPLANE_SPEC_FIELDS = frozenset(
    {
        "resourceRef",
        "compositeDeletePolicy",
        "compositionRef",
        "compositionSelector",
        "compositionRevisionRef",
        "compositionRevisionSelector",
        "compositionUpdatePolicy",
        "resourceRefs",
        "claimRef",
        "writeConnectionSecretToRef",
        "publishConnectionDetailsTo",
        "environmentConfigRefs",
        "crossplane",
    }
)


@dataclass(frozen=True)
class View:
    """One call's inputs. `kind` is the claim kind (`DatabaseUser`), `xr_kind` the composite's (`XDatabaseUser`
    for a legacy XR, `DatabaseUser` for a namespaced one), `shape` the XRD shape it comes from."""

    xr_kind: str
    kind: str | None
    xr: dict[str, Any]
    spec: dict[str, Any]
    status: dict[str, Any]
    input: dict[str, Any]
    input_errors: list[FieldError]
    observed: dict[str, dict[str, Any]]
    required: dict[str, list[dict[str, Any]]]
    now: datetime
    rng: random.Random = field(repr=False)
    # The keys (never the values) of the XR's published connection details, as Crossplane read them from the XR's
    # connection Secret (`writeConnectionSecretsToNamespace`).
    connection_keys: tuple[str, ...] = ()
    # No API server validated the XR (`crossplane render`, dbops-local): the function checks what the XRD's schema
    # and CEL rules would have refused (function --offline).
    offline: bool = False

    # Read from the XR once, at decode: every builder asks for them.
    name: str = ""
    uid: str = ""
    # A cluster-scoped XR behind a claim (LegacyCluster); a v2 Namespaced XR has a namespace of its own.
    legacy: bool = True
    # Where composed Secrets and Jobs live and referenced objects are looked up.
    namespace: str | None = None
    # The claim's name (for a v2 Namespaced XR, its own): the default Secret name derives from it.
    claim_name: str = ""
    # Where the Jobs run and the Secrets they map in are read, when not `namespace`: the namespace of a
    # DatabaseInstance of another namespace that allows this claim's (docs/function.md#cross-namespace-instances).
    job_namespace: str | None = None

    # The XRD shape of the XR (legacy claims or v2 namespaced); unknown kinds are read as legacy.
    shape: XRShape = LEGACY

    def ref(self, claim_kind: str) -> tuple[str, str]:
        """The apiVersion and kind a reference resolves to: the claim for a legacy XR (what users name), the
        namespaced XR of the same shape otherwise, in both cases in the XR's namespace."""
        if self.shape.claims:
            return self.shape.api_version, claim_kind
        return self.shape.api_version, self.shape.xr_kind_named(claim_kind)

    @property
    def jobs_namespace(self) -> str | None:
        """Where this XR's Jobs run (and their Pods and the Secrets they map in are): the instance's namespace."""
        return self.job_namespace or self.namespace

    def resolved(self, requirement: str) -> bool:
        """Whether Crossplane answered this requirement (possibly with nothing found)."""
        return requirement in self.required

    def one(self, requirement: str) -> dict[str, Any] | None:
        items = self.required.get(requirement) or []
        return items[0] if items else None

    def owner(self) -> dict[str, str]:
        """The worker request's `owner`: the claim when there is one (what users know), else the XR."""
        out = {"kind": self.kind or self.xr_kind, "name": self.claim_name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.uid:
            out["uid"] = self.uid
        return out


def claim_spec(xr_spec: dict[str, Any]) -> dict[str, Any]:
    """An XR's or claim's spec without the fields Crossplane owns: what the user wrote in the claim."""
    return {k: v for k, v in xr_spec.items() if k not in CROSSPLANE_SPEC_FIELDS}


def decode(
    *,
    xr: dict[str, Any],
    input_: tuple[dict[str, Any], list[FieldError]],
    observed: dict[str, dict[str, Any]],
    required: dict[str, list[dict[str, Any]]],
    now: datetime,
    rng: random.Random,
    connection_keys: tuple[str, ...] = (),
    offline: bool = False,
) -> View:
    xr_kind = str(xr.get("kind", ""))
    known = by_xr(str(xr.get("apiVersion", "")), xr_kind)
    spec = xr.get("spec")
    status = xr.get("status")
    value, errors = input_
    name = text(xr, "metadata", "name")
    shape = known[0] if known is not None else LEGACY
    labels = mapping(xr, "metadata", "labels")
    claim_ref = mapping(xr, "spec", "claimRef")
    if shape.namespaced:
        # Everything lives in the XR's own namespace: never a claim's, never crossplane-system.
        namespace, claim_name = text(xr, "metadata", "namespace") or None, name
    else:
        namespace = text(labels, CLAIM_NAMESPACE_LABEL) or text(claim_ref, "namespace") or None
        claim_name = text(labels, CLAIM_NAME_LABEL) or text(claim_ref, "name") or name
    return View(
        xr_kind=xr_kind,
        kind=known[1].name if known is not None else None,
        shape=shape,
        xr=xr,
        spec=claim_spec(spec) if isinstance(spec, dict) else {},
        status=status if isinstance(status, dict) else {},
        input=value,
        input_errors=errors,
        observed=observed,
        required=required,
        now=now,
        rng=rng,
        connection_keys=connection_keys,
        offline=offline,
        name=name,
        uid=text(xr, "metadata", "uid"),
        legacy=shape.claims,
        namespace=namespace,
        claim_name=claim_name,
    )
