"""Prometheus metrics of the function (prometheus-client), served with `--metrics-address` (docs/operations.md).

Every label has a bounded set of values: kinds and engines come from the schema, outcomes, phases and classes are
fixed here, and a worker's error code that is not a plain identifier counts as `Other`. The one exception is
`dbops_claim_phase`, one series per claim and phase, and `dbops_backup_last_success_timestamp_seconds`, one series
per backup and schedule: their claims are forgotten CLAIM_TTL after their last call.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dbops_api.registry import KINDS
from dbops_api.release import VERSION
from dbops_api.rotation import PHASES as ROTATION_PHASES
from dbops_api.status import PHASES
from function.outcome import WorkerReport

# A claim called at least once per resync interval (1 h by default; Crossplane polls more often) is never forgotten.
CLAIM_TTL = 3 * 3600.0
KIND_NAMES = frozenset(KINDS)
ENGINES = frozenset({"postgres", "mysql", "mariadb"})
CALL_OUTCOMES = ("composed", "memoized", "fatal", "error")
_CODE = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")
_CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_RUN_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def kind_label(kind: str | None) -> str:
    return kind if kind in KIND_NAMES else "unknown"


def engine_label(engine: str) -> str:
    return engine if engine in ENGINES else "unknown"


def code_label(code: str) -> str:
    if not code:
        return ""
    return code if _CODE.fullmatch(code) else "Other"


Claim = tuple[str, str, str]  # kind, namespace, name
V = TypeVar("V")


class _LastCalls(Collector, Generic[V]):
    """A value per claim as of the function's last call for it; claims not called for `ttl` are forgotten, so a
    deleted claim's series goes away without the function learning of the deletion."""

    def __init__(self, ttl: float = CLAIM_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._claims: dict[Claim, tuple[V, float]] = {}

    def _put(self, claim: Claim, value: V) -> None:
        with self._lock:
            self._claims[claim] = (value, self.clock())

    def _forget(self, claim: Claim) -> None:
        with self._lock:
            self._claims.pop(claim, None)

    def seen(self, claim: Claim) -> None:
        """A memoized answer: the value is the one the claim had, only the time of the call is new."""
        with self._lock:
            if claim in self._claims:
                self._claims[claim] = (self._claims[claim][0], self.clock())

    def _live(self) -> list[tuple[Claim, V]]:
        cutoff = self.clock() - self.ttl
        with self._lock:
            for key in [k for k, (_, at) in self._claims.items() if at < cutoff]:
                del self._claims[key]
            return [
                (claim, value) for claim, (value, _) in sorted(self._claims.items(), key=lambda kv: kv[0])
            ]


class ClaimPhases(_LastCalls[str]):
    """`dbops_claim_phase{kind, namespace, name, phase}`: 1 for the phase the claim's last call wrote, 0 for the
    other phases (so `== 1` and `sum by (phase)` both work). Claims not called for CLAIM_TTL are dropped."""

    def set(self, kind: str, namespace: str, name: str, phase: str) -> None:
        if phase in PHASES:
            self._put((kind, namespace, name), phase)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "dbops_claim_phase",
            "Phase of each claim as of the function's last call: 1 for its phase, 0 for the others.",
            labels=["kind", "namespace", "name", "phase"],
        )
        for (kind, namespace, name), current in self._live():
            for phase in PHASES:
                family.add_metric([kind, namespace, name, phase], 1.0 if phase == current else 0.0)
        yield family


BACKUP_KINDS = frozenset({"DatabaseBackup", "DatabaseBackupSchedule"})


def backup_success(kind: str, status: Mapping[str, Any]) -> float | None:
    """When a backup claim last published a backup, as its status says (Unix time), or None.

    DatabaseBackup: the finish of its Job once the claim is Completed (`status.lastSuccessfulTime`; the worker exits
    0 only after the manifest is published). DatabaseBackupSchedule: the CronJob's `status.lastSuccessfulTime` as the
    function observed it (`status.schedule.lastSuccessfulTime`; Kubernetes sets it when one of its Jobs completes)."""
    if kind == "DatabaseBackup":
        when = status.get("lastSuccessfulTime") if status.get("phase") == "Completed" else None
    elif kind == "DatabaseBackupSchedule":
        schedule = status.get("schedule")
        when = schedule.get("lastSuccessfulTime") if isinstance(schedule, Mapping) else None
    else:
        return None
    return _timestamp(when)


class BackupTimes(_LastCalls[float]):
    """`dbops_backup_last_success_timestamp_seconds{kind, namespace, name}`: per DatabaseBackup and
    DatabaseBackupSchedule, when it last published a backup (absent until it has). Forgotten like ClaimPhases."""

    def set(self, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        when = backup_success(kind, status)
        if when is not None:
            self._put((kind, namespace, name), when)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "dbops_backup_last_success_timestamp_seconds",
            "When each DatabaseBackup and DatabaseBackupSchedule last published a backup (Unix time), as its status "
            "said at the function's last call.",
            labels=["kind", "namespace", "name"],
        )
        for (kind, namespace, name), when in self._live():
            family.add_metric([kind, namespace, name], when)
        yield family


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Rotations(_LastCalls[tuple[str, float | None]]):
    """Per DatabaseUser with `passwordRotation` (status.rotation): `dbops_password_rotation_phase{namespace, name,
    phase}` (1 for its phase, 0 for the others) and `dbops_password_rotation_next_step_timestamp_seconds`: when
    its next step is due (the end of the grace period while `SecretSwitched`, else the next rotation by maxAge;
    absent when nothing is scheduled). Forgotten like ClaimPhases."""

    def set(self, kind: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        rotation = status.get("rotation") if kind == "DatabaseUser" else None
        if not isinstance(rotation, Mapping) or rotation.get("phase") not in ROTATION_PHASES:
            self._forget((kind, namespace, name))
            return
        phase = str(rotation["phase"])
        due = _timestamp(rotation.get("graceEndsAt" if phase == "SecretSwitched" else "nextRotationAt"))
        self._put((kind, namespace, name), (phase, due))

    def collect(self) -> Iterator[Metric]:
        phases = GaugeMetricFamily(
            "dbops_password_rotation_phase",
            "Password rotation phase of each DatabaseUser with passwordRotation, as of the function's last call: 1 "
            "for its phase (Stable, NewCredentialCreated, SecretSwitched, OldRetired), 0 for the others.",
            labels=["namespace", "name", "phase"],
        )
        due = GaugeMetricFamily(
            "dbops_password_rotation_next_step_timestamp_seconds",
            "When a DatabaseUser's rotation is due to take its next step (Unix time): the end of the grace period "
            "while SecretSwitched, else the next rotation by maxAge.",
            labels=["namespace", "name"],
        )
        for (_, namespace, name), (current, when) in self._live():
            for phase in ROTATION_PHASES:
                phases.add_metric([namespace, name, phase], 1.0 if phase == current else 0.0)
            if when is not None:
                due.add_metric([namespace, name], when)
        yield phases
        yield due


class Metrics:
    """The function's metrics in a registry of their own (one per FunctionRunner, so tests can make several)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, claim_ttl: float = CLAIM_TTL, process: bool = False
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            # The served process's own: CPU, memory, open files (process_*), the Python version and GC.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.calls = Counter(
            "dbops_function_calls",
            "RunFunction calls by XR kind and outcome (composed, memoized, fatal, error).",
            ["kind", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "dbops_function_call_duration_seconds",
            "Time to answer a RunFunction call, by XR kind and outcome.",
            ["kind", "outcome"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.results = Counter(
            "dbops_worker_results",
            "Finished worker runs by kind, engine, class (ok, transient, permanent) and error code, each counted "
            "once, by the call whose status first takes it in.",
            ["kind", "engine", "class", "code"],
            registry=r,
        )
        self.changes = Counter(
            "dbops_worker_changes",
            "Statements the worker reported changing the server (its `changes`), by kind and engine.",
            ["kind", "engine"],
            registry=r,
        )
        self.duration = Histogram(
            "dbops_provisioning_duration_seconds",
            "A worker Job's run from its start to its finish, by kind, engine and class (ok, transient, permanent).",
            ["kind", "engine", "class"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "dbops_worker_last_success_timestamp_seconds",
            "When a worker Job of this kind and engine last converged (Unix time of its finish as reported).",
            ["kind", "engine"],
            registry=r,
        )
        self.info = Gauge("dbops_function_info", "The function's release.", ["version"], registry=r)
        self.info.labels(VERSION).set(1)
        self.claims = ClaimPhases(claim_ttl)
        r.register(self.claims)
        self.backups = BackupTimes(claim_ttl)
        r.register(self.backups)
        self.rotations = Rotations(claim_ttl)
        r.register(self.rotations)

    def call(self, kind: str | None, outcome: str, seconds: float) -> None:
        k = kind_label(kind)
        self.calls.labels(k, outcome).inc()
        self.latency.labels(k, outcome).observe(seconds)

    def report(self, kind: str | None, report: WorkerReport) -> None:
        k, engine = kind_label(kind), engine_label(report.engine)
        klass = "ok" if report.ok else report.error_class or "transient"
        self.results.labels(k, engine, klass, code_label(report.code)).inc()
        if report.changes:
            self.changes.labels(k, engine).inc(len(report.changes))
        if report.seconds is not None:
            self.duration.labels(k, engine, klass).observe(report.seconds)
        if report.ok and report.finished is not None:
            self.last_success.labels(k, engine).set(report.finished)

    def serve(self, address: str) -> Any:
        """Serve /metrics on `address` (`host:port`, `:port` for every interface) in a thread; returns the server."""
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"--metrics-address {address!r}: expected host:port or :port")
        host = host.strip("[]") or "0.0.0.0"  # noqa: S104 (the metrics port is meant to be scraped)
        server, _thread = start_http_server(int(port), addr=host, registry=self.registry)
        return server
