"""Referenced claims (instance, database, user) and Secrets: ask Crossplane for them, then judge what came back.

A referenced object is usable when Crossplane answered the requirement, the object exists, and (for claims) its
`status.phase` is `Ready` (Crossplane copies the XR's status, which this function writes, to the claim).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import ServerAccess
from function.objects import mapping, text
from function.outcome import Condition, Outcome, Requirement, Result
from function.spec.validation import schema_walk
from function.status import INSTANCE_READY
from function.view import View, claim_spec

INSTANCE = "instance"
DATABASE = "database"
USER = "user"
PASSWORD_SECRET = "existing-password-secret"  # noqa: S105 (a requirement name)
ADMIN_SECRET = "admin-secret"  # noqa: S105 (a requirement name)
TLS_SECRET = "tls-secret"  # noqa: S105 (a requirement name)
CREDENTIALS_SECRET = "credentials-secret"  # noqa: S105 (a requirement name)
CLAIM = "claim"  # the XR's own claim (a DatabaseUser's writeConnectionSecretToRef)
NAMESPACE = (
    "namespace"  # the XR's own Namespace, when a selector of another namespace's instance may allow it
)
NOT_ALLOWED = "NamespaceNotAllowed"


@dataclass
class Lookup:
    """Collects, while a kind's references are resolved, what Crossplane must be asked for and what is missing or
    wrong; then `resolution()` freezes it into the one value the rest of the call reads."""

    view: View
    requirements: dict[str, Requirement] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    # References to objects that do not exist (yet): the call waits for them, and says so in a Warning result
    # naming the field, since a typo in a name looks exactly like this.
    missing: list[FieldError] = field(default_factory=list)
    # The referenced DatabaseInstance is missing or not Ready (instance_spec found none usable).
    instance_unavailable: bool = False
    # A DatabaseInstance of another namespace that does not allow this claim's: the consent that is missing.
    not_allowed: list[FieldError] = field(default_factory=list)

    def require(
        self,
        name: str,
        api_version: str,
        kind: str,
        match_name: str,
        path: str = "",
        *,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        namespace = namespace or self.view.namespace
        self.requirements[name] = Requirement(api_version, kind, namespace, match_name=match_name)
        if not self.view.resolved(name):
            self.waiting.append(f"looking up {kind} {match_name}")
            return None
        found = self.view.one(name)
        if found is None or text(found, "metadata", "name") not in ("", match_name):
            what = f"{kind} {match_name} not found in namespace {namespace}"
            self.waiting.append(f"{path}: {what}" if path else what)
            if path:
                self.missing.append(FieldError(path, f"{what}; waiting for it (create it, or fix the name)"))
            return None
        return found

    def claim(
        self, name: str, claim_kind: str, match_name: str, path: str = "", namespace: str | None = None
    ) -> dict[str, Any] | None:
        """A referenced claim, or None (recorded as waiting) while it is missing or not Ready."""
        api_version, kind = self.view.ref(claim_kind)
        found = self.require(name, api_version, kind, match_name, path, namespace=namespace)
        if found is None:
            return None
        status = mapping(found, "status")
        if status.get("phase") != "Ready":
            detail = f"phase {status['phase']}" if status.get("phase") else "no status yet"
            if status.get("message"):
                detail += f": {status['message']}"
            self.waiting.append(f"{kind} {match_name} is not Ready ({detail})")
            return None
        return found

    def claim_spec(self, found: dict[str, Any], claim_kind: str, path: str) -> dict[str, Any] | None:
        """The referenced claim's spec with defaults, or None with an error when it does not validate."""
        spec = found.get("spec")
        # A referenced claim's own validity was judged when its XR was composed (and it is Ready); this reads it
        # with its defaults, and guards against a shape the code cannot read.
        value, errors = schema_walk(claim_kind, claim_spec(spec if isinstance(spec, dict) else {}))
        if errors:
            name = text(found, "metadata", "name") or "?"
            self.errors.append(FieldError(path, f"{claim_kind} {name} has an invalid spec: {errors[0]}"))
            return None
        return value if isinstance(value, dict) else None

    def credentials(self, access: ServerAccess, namespace: str | None = None) -> ServerAccess:
        """`access` with the revision of the Secrets its Job maps in. Only `metadata.resourceVersion` is read: a
        fixed admin password or a renewed certificate then yields a new Job at once, instead of at the next resync
        epoch. A Secret that is missing does not block (its Pod waits for it, as Kubernetes does)."""
        parts = []
        wanted = [(ADMIN_SECRET, access.admin_password.name)]
        if access.tls is not None:
            wanted.append((TLS_SECRET, access.tls.secret))
        for requirement, name in wanted:
            self.requirements[requirement] = Requirement(
                "v1", "Secret", namespace or self.view.namespace, match_name=name
            )
            found = self.view.one(requirement)
            parts.append(text(found, "metadata", "resourceVersion") if found else "-")
        return replace(access, revision="/".join(parts))

    @property
    def blocked(self) -> bool:
        return bool(self.waiting or self.errors)

    def resolution(self) -> Resolution:
        return Resolution(
            view=self.view,
            requirements=MappingProxyType(dict(self.requirements)),
            waiting=tuple(self.waiting),
            errors=tuple(self.errors),
            conditions=tuple(self.conditions),
            missing=tuple(self.missing),
            instance_unavailable=self.instance_unavailable,
            not_allowed=tuple(self.not_allowed),
        )


@dataclass(frozen=True)
class Resolution:
    """What resolving the references came to: requirements, what is missing or wrong, the InstanceReady
    condition; and the outcomes that follow from it."""

    view: View
    requirements: Mapping[str, Requirement]
    waiting: tuple[str, ...]
    errors: tuple[FieldError, ...]
    conditions: tuple[Condition, ...]
    missing: tuple[FieldError, ...]
    instance_unavailable: bool
    not_allowed: tuple[FieldError, ...] = ()

    def results(self) -> list[Result]:
        return [Result("Warning", str(e), "ReferenceNotFound") for e in self.missing] + [
            Result("Warning", str(e), NOT_ALLOWED) for e in self.not_allowed
        ]

    def annotate(self, out: Outcome) -> Outcome:
        """`out` with what resolving the references produced: InstanceReady and any reference results."""
        have = {c.type for c in out.conditions}  # the outcome's own word wins (a Job that met no server)
        return out.adding(
            conditions=[c for c in self.conditions if c.type not in have], results=self.results()
        )

    def invalid(self, kind: str, errors: Sequence[FieldError] | None = None) -> Outcome:
        """Failed with `errors` (default: the references' own), keeping the requirements asked for."""
        return self.annotate(
            st.invalid(
                self.view, kind, list(self.errors if errors is None else errors), dict(self.requirements)
            )
        )

    def waiting_outcome(self, kind: str, reason: str) -> Outcome:
        """Pending while a referenced object is missing or not Ready; but while the instance is unavailable, a
        claim that converged before keeps its last result (status.kept)."""
        requirements = dict(self.requirements)
        if self.instance_unavailable and st.converged_before(self.view):
            return self.annotate(st.kept(self.view, kind, requirements, self.waiting_message()))
        return self.annotate(st.waiting(self.view, kind, self.waiting_message(), reason, requirements))

    def waiting_message(self) -> str:
        return "waiting: " + "; ".join(self.waiting)


def instance_spec(
    lookup: Lookup, name: str, path: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """Resolve the DatabaseInstance claim `name` (in `namespace`, default the claim's own; another one only when
    that instance allows the claim's namespace); record the InstanceReady condition."""
    before = len(lookup.waiting)
    own = lookup.view.namespace
    namespace = namespace or own
    allowed = True
    if namespace != own:
        api_version, kind = lookup.view.ref("DatabaseInstance")
        present = lookup.require(INSTANCE, api_version, kind, name, path, namespace=namespace)
        allowed = present is None or _allows(lookup, present, f"{path}.namespace", f"{namespace}/{name}")
    present_first = namespace == own or (allowed and lookup.view.one(INSTANCE) is not None)
    found = lookup.claim(INSTANCE, "DatabaseInstance", name, path, namespace) if present_first else None
    if found is None:
        message = "; ".join(lookup.waiting[before:])
        if not allowed:
            reason = NOT_ALLOWED
        elif not lookup.view.resolved(INSTANCE):
            reason = "LookingUp"
        elif lookup.view.one(INSTANCE) is None:
            reason = "InstanceNotFound"
        else:
            reason = "InstanceNotReady"
        lookup.conditions.append(Condition(INSTANCE_READY, "False", reason, message))
        lookup.instance_unavailable = allowed
        return None
    where = f"{namespace}/{name}" if namespace != own else name
    lookup.conditions.append(
        Condition(INSTANCE_READY, "True", "InstanceReady", f"DatabaseInstance {where} is Ready")
    )
    return lookup.claim_spec(found, "DatabaseInstance", path)


def _allows(lookup: Lookup, instance: dict[str, Any], path: str, shown: str) -> bool:
    """Whether a DatabaseInstance of another namespace allows the claim's namespace (its spec.allowedNamespaces:
    the name listed, or the Namespace's labels matching the selector); when not, or while the Namespace is looked
    up, records why (naming the consent that is missing) and returns False."""
    own = lookup.view.namespace or ""
    allowed = mapping(instance, "spec", "allowedNamespaces")
    names = allowed.get("names")
    if isinstance(names, list) and own in names:
        return True
    selector = mapping(allowed, "selector", "matchLabels")
    if selector:
        lookup.requirements[NAMESPACE] = Requirement("v1", "Namespace", None, match_name=own)
        if not lookup.view.resolved(NAMESPACE):
            lookup.waiting.append(f"looking up Namespace {own}")
            return False
        labels = mapping(lookup.view.one(NAMESPACE) or {}, "metadata", "labels")
        if all(labels.get(k) == v for k, v in selector.items()):
            return True
    why = (
        f"DatabaseInstance {shown} does not allow namespace {own}: its spec.allowedNamespaces "
        + ("matches neither by name nor by labels" if selector else "does not list it")
        + f"; the owner of the instance must add {own} to spec.allowedNamespaces.names"
        + (" or label the namespace to match spec.allowedNamespaces.selector" if selector else "")
    )
    lookup.waiting.append(f"{path}: {why}")
    lookup.not_allowed.append(FieldError(path, why))
    return False
