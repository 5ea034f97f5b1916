"""What composing one XR produced, as plain data; `function.fn` writes it into the RunFunctionResponse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
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


@dataclass(frozen=True)
class WorkerReport:
    """A finished worker run that this call's status takes in for the first time (so once per run, not once per
    call): what the metrics count and the audit trail records. `changes` are the worker's statement summaries, its
    secrets already `***` (and scrubbed again by function.secrets.redaction)."""

    job: str
    action: str
    engine: str
    server: str  # host:port the Job connected to
    ok: bool
    error_class: str  # "" when ok, else transient | permanent
    code: str  # "" when ok, else the worker's error code
    changes: tuple[str, ...] = ()
    version: str = ""  # the server version the worker reported
    seconds: float | None = None  # the Job's start to its finish
    finished: float | None = None  # the Job's finish, Unix time


@dataclass(frozen=True)
class Outcome:
    """One value, built once: a builder that wants to say more makes a new one (`adding`, `dataclasses.replace`)."""

    resources: Mapping[str, Composed] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    conditions: Sequence[Condition] = ()  # a tuple once built
    results: Sequence[Result] = ()  # a tuple once built
    requirements: Mapping[str, Requirement] = field(default_factory=dict)
    ttl_seconds: float = 60.0
    # When set, Crossplane should come back at this time (the TTL is what is left of it, at least MIN_TTL).
    ttl_at: datetime | None = None
    # The outcome is a function of the request alone until this time (None: forever); memoizable meanwhile.
    valid_until: datetime | None = None
    cacheable: bool = True
    # XR connection details (legacy XRs: what the claim's writeConnectionSecretToRef Secret receives).
    connection_details: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Readiness of the XR itself; None leaves it to Crossplane (derived from the composed resources).
    ready: bool | None = None
    # The worker run this call reports for the first time, if any (metrics, audit log).
    report: WorkerReport | None = None

    def __post_init__(self) -> None:
        # Read-only views and tuples: nothing can change an outcome once it is built.
        for name in ("resources", "status", "requirements", "connection_details"):
            value = getattr(self, name)
            if type(value) is not MappingProxyType:
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        if type(self.conditions) is not tuple:
            object.__setattr__(self, "conditions", tuple(self.conditions))
        if type(self.results) is not tuple:
            object.__setattr__(self, "results", tuple(self.results))

    def adding(
        self,
        *,
        resources: Mapping[str, Composed] | None = None,
        conditions: Iterable[Condition] = (),
        results: Iterable[Result] = (),
        requirements: Mapping[str, Requirement] | None = None,
    ) -> Outcome:
        """This outcome with more resources, conditions, results and requirements."""
        return replace(
            self,
            resources={**self.resources, **(resources or {})},
            conditions=(*self.conditions, *conditions),
            results=(*self.results, *results),
            requirements={**self.requirements, **(requirements or {})},
        )

    def ttl(self, now: datetime) -> float:
        if self.ttl_at is not None:
            return max((self.ttl_at - now).total_seconds(), MIN_TTL)
        return max(self.ttl_seconds, MIN_TTL)

    @property
    def fatal(self) -> bool:
        return any(r.severity == "Fatal" for r in self.results)
