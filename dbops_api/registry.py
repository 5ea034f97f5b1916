"""The kinds the API has, and the shapes of composite resource (XR) that carry them.

A kind is known by its claim name (`DatabaseUser`). Which XR kind Crossplane calls the function with depends on the
XRD shape: the legacy cluster-scoped XRs with claims (`XDatabaseUser` in `dbops.dbprovision.io`) today; a Crossplane
v2 namespaced XR in another API group is another `XRShape`, with the same kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbops_api.kind import Kind
from dbops_api.kinds import database, grant, instance, user
from dbops_api.schema import Schema

GROUP = "dbops.dbprovision.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# In dependency order: an instance before what lives on it, a user before what is granted to it.
ALL: tuple[Kind, ...] = (instance.KIND, database.KIND, user.KIND, grant.KIND)
BY_NAME: dict[str, Kind] = {k.name: k for k in ALL}
KINDS: tuple[str, ...] = tuple(BY_NAME)
SPECS: dict[str, Schema] = {k.name: k.spec for k in ALL}


@dataclass(frozen=True)
class XRShape:
    """How an XRD presents the kinds: the composite's API group and version, its kind and plural names."""

    group: str
    version: str
    kind_prefix: str
    plural_prefix: str
    scope: str
    claims: bool  # whether namespaced claims (`DatabaseUser`) front cluster-scoped XRs

    def xr_kind(self, kind: Kind) -> str:
        return self.kind_prefix + kind.name

    def xr_plural(self, kind: Kind) -> str:
        return self.plural_prefix + kind.plural

    def xrd_name(self, kind: Kind) -> str:
        return f"{self.xr_plural(kind)}.{self.group}"


LEGACY = XRShape(GROUP, VERSION, "X", "x", "LegacyCluster", claims=True)
SHAPES: tuple[XRShape, ...] = (LEGACY,)
_BY_XR_KIND: dict[str, Kind] = {shape.xr_kind(k): k for shape in SHAPES for k in ALL}


def by_xr_kind(xr_kind: str) -> Kind | None:
    """The kind a composite resource carries, whichever XRD shape it comes from."""
    return _BY_XR_KIND.get(xr_kind)


def xr_kinds() -> tuple[str, ...]:
    return tuple(_BY_XR_KIND)
