"""Which claim owns an object in a server, and whether a request may touch it (docs/worker.md, "Ownership").

dbops marks every role, account and database it creates with the claim it creates it for: on PostgreSQL a
`COMMENT ON ROLE/DATABASE`, on MySQL/MariaDB a row in dbops' catalog table (`worker.adapters.mysql_catalog`).
The marker lives in the server, so a worker that has nothing but the request (a lost XR status, a new Job)
still recognises its own objects. An object that exists without a marker, or with another claim's, is never
taken over silently: the claim must say `adopt: true`, and the marker then names it.

Pure: no I/O. The adapters read the markers in the queries they already send, so a no-op run costs no more.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from worker.errors import PermanentError

MARKER_PREFIX = "managed by dbops for "
ROLE_KIND = "DatabaseRole"
_MARKER = re.compile(re.escape(MARKER_PREFIX) + r"(\S+) (?:([^/\s]*)/)?(\S+)\Z")


@dataclass(frozen=True)
class Owner:
    """The claim a request acts for (the request's `owner`). Equal owners have the same namespace and name: the
    kind is shown, not compared, since only one kind marks each kind of object."""

    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, owner: dict[str, Any]) -> Owner:
        return cls(
            str(owner.get("kind") or ""), str(owner.get("namespace") or ""), str(owner.get("name") or "")
        )

    @property
    def marker(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{MARKER_PREFIX}{self.kind} {where}"

    def same(self, other: Owner) -> bool:
        # A DatabaseRole and a DatabaseUser of one name both mark roles: each is the other's foreign claim.
        if self.kind and other.kind and (self.kind == ROLE_KIND) != (other.kind == ROLE_KIND):
            return False
        return (self.namespace, self.name) == (other.namespace, other.name)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def parse(marker: str | None) -> Owner | None:
    """The owner a marker names; None for no marker, or a comment that is not ours."""
    if not marker:
        return None
    match = _MARKER.match(marker.strip())
    if match is None:
        return None
    return Owner(match.group(1), match.group(2) or "", match.group(3))


class Claim(enum.Enum):
    NEW = "new"  # the object does not exist: create it, with the marker
    OWN = "own"  # marked for this claim: nothing to write
    MARK = "mark"  # write (or rewrite) the marker: adopting, or the same claim under another spelling


def claim_object(what: str, exists: bool, marker: str | None, me: Owner, adopt: bool) -> Claim:
    """What a Database or DatabaseUser request may do with the object it manages (`what`, e.g. `role app`).
    Raises a PermanentError naming the owner and the way out when it may not touch it."""
    if not exists:
        return Claim.NEW
    found = parse(marker)
    if found is not None and found.same(me):
        return Claim.OWN if marker == me.marker else Claim.MARK
    if adopt:
        return Claim.MARK
    if found is None:
        raise PermanentError(
            "UnmanagedObject",
            f"{what} exists and dbops did not create it (it carries no dbops marker); dbops never takes over an "
            f"existing object by its name alone. Choose another name, or set spec.adopt: true to manage it from "
            f"this claim ({me}) from now on",
        )
    raise PermanentError(
        "OwnedByAnotherClaim",
        f"{what} is managed by {found}; two claims must not manage one object. Remove one of them, or set "
        f"spec.adopt: true on {me} to move it there",
    )


def check_grantee(what: str, markers: list[str | None], me: Owner, adopt: bool) -> None:
    """A DatabaseGrant acts on a grantee that a claim of its own namespace created (any kind: the grant never
    owns the grantee, it only names pairs on it), or on any grantee with `adopt: true`. `markers`: one per
    account of the grantee (MySQL/MariaDB hosts), or the role's."""
    if adopt:
        return
    owners = [parse(m) for m in markers]
    if any(o is None for o in owners):
        raise PermanentError(
            "UnmanagedObject",
            f"{what} was not created by dbops (it carries no dbops marker); a DatabaseGrant acts only on roles "
            "and users a DatabaseUser of its namespace manages. Create it with a DatabaseUser, or set "
            f"spec.adopt: true to grant to it anyway",
        )
    foreign = sorted({str(o) for o in owners if o is not None and o.namespace != me.namespace})
    if foreign:
        raise PermanentError(
            "OwnedByAnotherClaim",
            f"{what} is managed by {', '.join(foreign)} in another namespace; a DatabaseGrant acts only on roles "
            f"and users of its own namespace ({me.namespace or 'none'}). Set spec.adopt: true to grant to it "
            "anyway",
        )
