"""The engine-neutral contract every adapter implements, and the plan data it produces.

An adapter owns one open admin connection (and may open short-lived ones to other databases). Per request kind
it offers a `KindHandler`: `observe` reads the catalogs into plain data, `plan` (pure: no I/O) turns desired spec
plus observed state into `Step`s, `facts` summarises the observed state for the result. The engine
(`worker.engine`) drives them: observe -> plan -> (lock -> observe -> plan -> execute -> observe) -> result.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from worker.request import Request, Secrets

Observed = TypeVar("Observed")


@dataclass(frozen=True)
class ServerInfo:
    flavor: str  # "postgres" | "mysql" | "mariadb"
    version: str  # as the server reports it, e.g. "15.19" or "10.11.19-MariaDB"
    version_tuple: tuple[int, ...]  # (15, 19) / (10, 11, 19): compare with this, never with strings


@dataclass(frozen=True)
class Step:
    """One statement of a plan.

    `sql` uses the driver's `%(name)s` / `%s` placeholders with `params`; identifiers are already quoted by the
    dialect's identifier preparer. `summary` is what users see (results, `plan` output): secrets are `***`.
    `secrets` lists every secret-derived string in sql/params (password, verifier, hash) so output is redacted
    and, where the engine allows, statement logging is suppressed for this statement.
    `unverifiable` marks a step whose effect no observation can confirm (a password the worker can neither read
    nor prove by logging in): it runs whenever it is planned, and the engine's final convergence check does not
    count it as left over (otherwise every such run would end NotConverged).
    `bookkeeping` marks a write to dbops' own memory of what it granted (docs/worker.md): it runs and counts in
    `statements.writes` and `plan` prints it, but the result's `changes` list only what changed for users.
    `creates` marks a step that creates something missing (an object, an account, its marker, what a new object
    gets with it) rather than correcting something that exists: under `driftPolicy: ignore` only these run.
    """

    sql: str
    summary: str
    reason: str
    params: Sequence[Any] | dict[str, Any] | None = None
    transactional: bool = True  # False: must run outside a transaction (PG CREATE/DROP DATABASE, ...)
    database: str | None = None  # PG: run in this database instead of the admin database
    secrets: tuple[str, ...] = field(default=(), repr=False)
    unverifiable: bool = False
    bookkeeping: bool = False
    creates: bool = False


def creating(steps: Sequence[Step]) -> list[Step]:
    """`steps` marked as creation steps (Step.creates)."""
    return [replace(s, creates=True) for s in steps]


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    # Differences the worker must not fix (immutable attributes): reported, and the run ends permanent.
    drift: list[str] = field(default_factory=list)
    # Things the run could not do that the user should fix (the result's `warnings`); the run still converges.
    warnings: list[str] = field(default_factory=list)
    # The object the plan is for does not exist yet (a grant: this claim never granted anything): every step
    # creates it (driftPolicy ignore runs them all). Else only the steps marked `creates` count as creation.
    creates: bool = False

    def creation_steps(self) -> list[Step]:
        """What `driftPolicy: ignore` runs: every step of a plan that creates its object, else the steps that
        create something missing."""
        return list(self.steps) if self.creates else [s for s in self.steps if s.creates]

    def __bool__(self) -> bool:
        return bool(self.steps)


class KindHandler(abc.ABC, Generic[Observed]):
    """Observe and plan one kind of object on one adapter."""

    @abc.abstractmethod
    def lock_key(self, spec: dict[str, Any]) -> str:
        """A stable key naming the server-side object, e.g. `role:app`; workers on the same key serialise."""

    @abc.abstractmethod
    def observe(self, spec: dict[str, Any]) -> Observed:
        """Read the catalogs (as few queries as possible: a no-op apply has a budget of 3)."""

    @abc.abstractmethod
    def plan(self, spec: dict[str, Any], observed: Observed) -> Plan:
        """Statements that make the server match `spec`, each with its reason. Pure."""

    @abc.abstractmethod
    def plan_drop(self, spec: dict[str, Any], observed: Observed) -> Plan:
        """Statements that remove the object (section 6 of the design). Pure."""

    def observe_drop(self, spec: dict[str, Any]) -> Observed:
        """What `plan_drop` needs; the engine calls it instead of `observe` for `drop`. By default the same
        reads; a handler may read more here (e.g. names for a refusal), since drops are rare."""
        return self.observe(spec)

    @abc.abstractmethod
    def facts(self, spec: dict[str, Any], observed: Observed) -> dict[str, Any]:
        """The result's `observed` object (keys of the kind's status block in the kind's `facts` in dbops_api.kinds)."""


class Adapter(abc.ABC):
    """One engine family. Construct, then `connect()`; use as a context manager to close connections."""

    def __init__(self, request: Request, secrets: Secrets) -> None:
        self.request = request
        self.secrets = secrets
        self.reads = 0  # statements sent that change nothing (the engine reports them)
        self.writes = 0  # statements sent that may change something

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abc.abstractmethod
    def connect(self) -> ServerInfo:
        """Open the admin connection honouring the TLS mode; raise classified errors (worker.errors)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; idempotent."""

    @abc.abstractmethod
    def check(self) -> dict[str, Any]:
        """DatabaseInstance facts (KIND_STATUS["DatabaseInstance"]): version, flavor, tls, privileges."""

    @abc.abstractmethod
    def handler(self, kind: str) -> KindHandler[Any]:
        """The handler for Database, DatabaseUser or DatabaseGrant."""

    @abc.abstractmethod
    def lock(self, key: str) -> AbstractContextManager[None]:
        """Hold a server-side lock on `key` (PG advisory lock, MySQL GET_LOCK) until the context exits; waiting
        longer than the request's lockTimeout raises a TransientError."""

    @abc.abstractmethod
    def execute(self, steps: Sequence[Step]) -> Iterator[Step]:
        """Run the steps in order, yielding each after it succeeds. Consecutive transactional steps for the same
        database run in one transaction; a failure rolls it back and raises a classified error."""
