"""What composing one XR produced, as plain data; `function.fn` writes it into the RunFunctionResponse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MIN_TTL = 1.0
Severity = Literal["Normal", "Warning", "Fatal"]
ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Composed:
    """A desired composed resource and whether the function considers it ready (None: let Crossplane decide)."""

    resource: dict[str, Any]
    ready: bool | None = None


@dataclass(frozen=True)
class Condition:
    """A custom condition on the XR, targeted at the claim too."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Result:
    """A result (an event on the XR and the claim). Fatal stops the pipeline: used only for errors no status can
    carry (unknown XR kind, invalid step Input, internal errors)."""

    severity: Severity
    message: str
    reason: str = ""


@dataclass(frozen=True)
class Requirement:
    """Ask Crossplane for resources: by name, or by labels, in a namespace."""

    api_version: str
    kind: str
    namespace: str | None
    match_name: str | None = None
    match_labels: dict[str, str] | None = None


@dataclass
class Outcome:
    resources: dict[str, Composed] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    requirements: dict[str, Requirement] = field(default_factory=dict)
    ttl_seconds: float = 60.0
    # When set, Crossplane should come back at this time (the TTL is what is left of it, at least MIN_TTL).
    ttl_at: datetime | None = None
    # The outcome is a function of the request alone until this time (None: forever); memoizable meanwhile.
    valid_until: datetime | None = None
    cacheable: bool = True
    # XR connection details (legacy XRs: what the claim's writeConnectionSecretToRef Secret receives).
    connection_details: dict[str, str] = field(default_factory=dict, repr=False)
    # Readiness of the XR itself; None leaves it to Crossplane (derived from the composed resources).
    ready: bool | None = None

    def ttl(self, now: datetime) -> float:
        if self.ttl_at is not None:
            return max((self.ttl_at - now).total_seconds(), MIN_TTL)
        return max(self.ttl_seconds, MIN_TTL)

    @property
    def fatal(self) -> bool:
        return any(r.severity == "Fatal" for r in self.results)
