"""The kinds the API has, and the shapes of composite resource (XR) that carry them.

A kind is known by its claim name (`DatabaseUser`). Which XR Crossplane calls the function with depends on the XRD
shape: `LEGACY`, the cluster-scoped XRs behind namespaced claims (`XDatabaseUser` in `dbops.dbprovision.io`), or
`NAMESPACED`, Crossplane v2 namespaced XRs with the claim's kind name in their own API group (`DatabaseUser` in
`ns.dbops.dbprovision.io`). A composite is recognised by its API group and kind together, never by an `X` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbops_api.kind import Kind
from dbops_api.kinds import backup, database, grant, instance, role, user
from dbops_api.schema import Schema

GROUP = "dbops.dbprovision.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# In dependency order: an instance before what lives on it, a role before the users that join it, a user before
# what is granted to it.
ALL: tuple[Kind, ...] = (
    instance.KIND,
    database.KIND,
    role.KIND,
    user.KIND,
    grant.KIND,
    backup.BACKUP_KIND,
    backup.RESTORE_KIND,
    backup.SCHEDULE_KIND,
)
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

    def xr_kind_named(self, claim_kind: str) -> str:
        return self.kind_prefix + claim_kind

    def xr_plural(self, kind: Kind) -> str:
        return self.plural_prefix + kind.plural

    def xrd_name(self, kind: Kind) -> str:
        return f"{self.xr_plural(kind)}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def namespaced(self) -> bool:
        return self.scope == "Namespaced"


# The namespaced XRs need a group of their own: their kinds and plurals are the claims' (`DatabaseUser`,
# `databaseusers`), and the claim CRDs Crossplane generates already own `databaseusers.dbops.dbprovision.io`. A
# subdomain of the claims' group stays in the domain dbops owns and says what differs (docs/packages.md).
NAMESPACED_GROUP = f"ns.{GROUP}"

LEGACY = XRShape(GROUP, VERSION, "X", "x", "LegacyCluster", claims=True)
NAMESPACED = XRShape(NAMESPACED_GROUP, VERSION, "", "", "Namespaced", claims=False)
SHAPES: tuple[XRShape, ...] = (LEGACY, NAMESPACED)
_BY_XR: dict[tuple[str, str], tuple[XRShape, Kind]] = {
    (shape.group, shape.xr_kind(k)): (shape, k) for shape in SHAPES for k in ALL
}


def by_xr(api_version: str, xr_kind: str) -> tuple[XRShape, Kind] | None:
    """The XRD shape and kind of a composite resource, from its `apiVersion` (any version of the group) and kind."""
    return _BY_XR.get((api_version.split("/", 1)[0], xr_kind))


def by_xr_kind(api_version: str, xr_kind: str) -> Kind | None:
    """The kind a composite resource carries, whichever XRD shape it comes from."""
    found = by_xr(api_version, xr_kind)
    return found[1] if found is not None else None


def xr_kinds() -> tuple[str, ...]:
    """Every composite this function composes, as `kind.group`."""
    return tuple(f"{kind}.{group}" for group, kind in _BY_XR)
