"""The function's Prometheus metrics and its audit trail, from the outside: the `function` console script serves
`--metrics-address`, dbops-local drives real RunFunction calls through the PostgreSQL Quick Start (plus a user
that fails, a DatabaseBackup of the Quick Start's database into the private S3 store, and a DatabaseBackupSchedule)
with real worker Jobs against the private server, and the test scrapes /metrics as Prometheus would. dbops-local
does not run CronJobs: the test writes the CronJob status Kubernetes' CronJob controller would write.

Checked: every metric named by the dashboard's and the alerts' PromQL (parsed with promql-parser) is exported;
every metric docs/operations.md documents is exported with a real value; the values say what happened (claims
Ready and Failed, worker runs counted once however often the function is called); each change the worker reported
is one event on its claim and one JSON audit line, with no password in either.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dbops_local.loop import OfflineCluster, load_compositions, load_manifests
from dbops_local.runtime import LocalFunction
from function.audit import EVENT_REASON
from function.metrics import BackupTimes, backup_success
from tests.object_store import ObjectStore
from tests.offline_support import RecordingClient, claim
from tests.servers import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
OPERATIONS = ROOT / "docs" / "operations.md"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCHEDULE_RAN, SCHEDULE_SUCCEEDED = "2026-01-02T03:00:00Z", "2026-01-02T03:04:05Z"


@dataclass
class Run:
    url: str
    cluster: OfflineCluster
    client: RecordingClient
    log: Path
    passwords: list[str]

    def scrape(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Sample name -> [(labels, value)] as Prometheus reads the endpoint."""
        with urllib.request.urlopen(self.url, timeout=10) as rsp:
            text = rsp.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out


@pytest.fixture(scope="module")
def run(
    pg: Server, object_store_plain: ObjectStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    # The server is the session's: another test may have run the Quick Start on it already, and the counts below
    # are of a first run (CREATE ROLE, CREATE DATABASE).
    pg.query("DROP DATABASE IF EXISTS myapp WITH (FORCE)")
    pg.query("DROP ROLE IF EXISTS myapp")
    log = tmp_path_factory.mktemp("function") / "function.log"
    address = f"127.0.0.1:{free_port()}"
    with LocalFunction(log_path=str(log), metrics_address=address) as inner:
        client = RecordingClient(inner)
        cluster = OfflineCluster(
            client,  # type: ignore[arg-type]
            load_compositions(ROOT / "apis"),
            # Pod reads opted in: the worker's code and changes reach the function only through its Pods.
            input_overrides={"retry": {"baseSeconds": 1, "maxSeconds": 2}, "status": {"readPods": True}},
        )
        docs = load_manifests([ROOT / "examples/quickstart.yaml"])
        for doc in docs:
            if doc["kind"] == "Secret":
                doc["stringData"] = {"username": pg.admin_user, "password": pg.admin_password}
            if doc["kind"] == "DatabaseInstance":
                doc["spec"]["connection"].update(host=pg.host, port=pg.port)
        failing = claim(
            "DatabaseUser",
            "metrics-failing-user",
            {
                "instanceRef": {"name": "postgres-server"},
                "username": "metrics_failing_u",
                "roles": ["no_such_role_for_metrics"],
            },
        )
        rotating = claim(
            "DatabaseUser",
            "metrics-rotating-user",
            {
                "instanceRef": {"name": "postgres-server"},
                "username": "metrics_rotating_u",
                "passwordRotation": {"enabled": True, "maxAge": "90d"},
            },
        )
        pg.query("DROP ROLE IF EXISTS metrics_rotating_u")
        store = object_store_plain
        storage = {
            "type": "s3",
            "s3": {
                "endpoint": store.endpoint,
                "bucket": store.bucket,
                "prefix": f"metrics-{free_port()}",
                "region": store.region,
                "forcePathStyle": True,
                "secretRef": {"name": "metrics-s3-keys"},
                "allowHttp": True,
            },
        }
        keys = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "metrics-s3-keys"},
            "stringData": {"AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key},
        }
        backup = claim(
            "DatabaseBackup", "metrics-backup", {"databaseRef": {"name": "myapp-db"}, "storage": storage}
        )
        schedule = claim(
            "DatabaseBackupSchedule",
            "metrics-nightly",
            {
                "schedule": "0 3 * * *",
                "template": {"spec": {"databaseRef": {"name": "myapp-db"}, "storage": storage}},
            },
        )
        cluster.apply([*docs, failing, rotating, keys, backup, schedule])
        cluster.reconcile(max_wait=3)
        # What Kubernetes' CronJob controller writes once one of the schedule's Jobs completed.
        cronjob = cluster.store.get("batch/v1", "CronJob", "metrics-nightly", "default")
        assert cronjob is not None, [c.get("status") for c in cluster.claims()]
        cronjob["status"] = {"lastScheduleTime": SCHEDULE_RAN, "lastSuccessfulTime": SCHEDULE_SUCCEEDED}
        cluster.store.put(cronjob)
        cluster.reconcile(max_rounds=2)
        passwords = [
            pg.admin_password,
            cluster.secret_data("myapp-db-credentials")["password"],
            store.secret_key,
        ]
        yield Run(f"http://{address}/metrics", cluster, client, log, passwords)


def _phase(run: Run, kind: str, name: str) -> str:
    return str(run.cluster.claim(kind, name).get("status", {}).get("phase"))


def _value(samples: dict[str, list[tuple[dict[str, str], float]]], metric: str, **labels: str) -> float:
    return sum(v for have, v in samples.get(metric, []) if all(have.get(k) == w for k, w in labels.items()))


# --- what the dashboard, the alerts and the docs name -------------------------------------------------------------


def _selectors(node: Any) -> Iterator[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        for matcher in node.matchers.matchers if node.matchers is not None else []:
            if matcher.name == "__name__":
                yield matcher.value
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            yield from _selectors(child)
    for child in getattr(node, "args", None) or []:
        yield from _selectors(child)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_expressions() -> list[str]:
    (rule,) = yaml.safe_load_all((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    assert rule["kind"] == "PrometheusRule"
    return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def documented_metrics() -> list[str]:
    """The metric names in the first column of docs/operations.md's metrics table."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(dbops_\w+)", section, flags=re.M)


def test_the_files_name_metrics_and_parse() -> None:
    exprs = dashboard_expressions() + alert_expressions()
    assert len(exprs) >= 10
    for expr in exprs:
        names = set(_selectors(promql_parser.parse(expr)))
        assert names, f"{expr}: selects no metric"
        assert all(n.startswith("dbops_") for n in names), expr
    assert len(documented_metrics()) >= 7


def test_every_metric_of_the_dashboard_and_the_alerts_is_exported(run: Run) -> None:
    exported = set(run.scrape())
    for expr in dashboard_expressions() + alert_expressions():
        missing = set(_selectors(promql_parser.parse(expr))) - exported
        assert not missing, f"{expr} uses {sorted(missing)}, which the function does not export"


def test_every_documented_metric_has_a_real_value(run: Run) -> None:
    samples = run.scrape()
    for metric in documented_metrics():
        names = [n for n in (metric, f"{metric}_total", f"{metric}_count") if n in samples]
        assert names, f"docs/operations.md documents {metric}; the function does not export it"
        assert any(v > 0 for _, v in samples[names[0]]), f"{metric} has no real value: {samples[names[0]]}"


def test_the_values_say_what_happened(run: Run) -> None:
    assert _phase(run, "DatabaseUser", "myapp-user") == "Ready"
    assert _phase(run, "DatabaseUser", "metrics-failing-user") == "Failed"
    samples = run.scrape()
    phase = "dbops_claim_phase"
    assert (
        _value(samples, phase, kind="DatabaseUser", namespace="default", name="myapp-user", phase="Ready")
        == 1
    )
    assert _value(samples, phase, kind="DatabaseUser", name="myapp-user", phase="Failed") == 0
    assert _value(samples, phase, kind="DatabaseUser", name="metrics-failing-user", phase="Failed") == 1
    assert _value(samples, phase, kind="DatabaseInstance", name="postgres-server", phase="Ready") == 1
    ok = _value(
        samples, "dbops_worker_results_total", kind="DatabaseUser", engine="postgres", **{"class": "ok"}
    )
    assert ok == 2, "two converged user runs: the Quick Start's and metrics-rotating-user's"
    failed = _value(samples, "dbops_worker_results_total", kind="DatabaseUser", **{"class": "permanent"})
    assert failed == 1, samples["dbops_worker_results_total"]
    codes = {labels["code"] for labels, _ in samples["dbops_worker_results_total"] if labels["class"] != "ok"}
    assert codes and "" not in codes and "Other" not in codes
    assert _value(samples, "dbops_worker_changes_total", kind="DatabaseUser", engine="postgres") >= 3
    calls = _value(samples, "dbops_function_calls_total", kind="DatabaseUser", outcome="composed")
    assert calls >= 4
    count = _value(samples, "dbops_function_call_duration_seconds_count", kind="DatabaseUser")
    assert count == _value(samples, "dbops_function_calls_total", kind="DatabaseUser")
    assert (
        _value(samples, "dbops_provisioning_duration_seconds_count", kind="Database", engine="postgres") == 1
    )


def test_the_backup_times_are_the_published_backups(run: Run) -> None:
    status = run.cluster.claim("DatabaseBackup", "metrics-backup")["status"]
    assert status["phase"] == "Completed", status
    schedule = run.cluster.claim("DatabaseBackupSchedule", "metrics-nightly")["status"]
    assert schedule["schedule"]["lastSuccessfulTime"] == SCHEDULE_SUCCEEDED, schedule
    samples = run.scrape()
    metric = "dbops_backup_last_success_timestamp_seconds"
    published = datetime.fromisoformat(status["lastSuccessfulTime"]).timestamp()
    job = run.cluster.store.get("batch/v1", "Job", status["job"], "default")
    assert job is not None
    assert (
        _value(samples, metric, kind="DatabaseBackup", namespace="default", name="metrics-backup")
        == published
    )
    assert job["status"]["completionTime"] >= status["lastSuccessfulTime"] >= job["status"]["startTime"]
    assert (
        _value(samples, metric, kind="DatabaseBackupSchedule", namespace="default", name="metrics-nightly")
        == datetime.fromisoformat(SCHEDULE_SUCCEEDED).timestamp()
    )
    assert len(samples[metric]) == 2, samples[metric]
    # The schedule's last backup is months old: the overdue alert's expression holds for it.
    assert time.time() - _value(samples, metric, kind="DatabaseBackupSchedule") > 26 * 3600


def test_only_a_published_backup_has_a_time() -> None:
    done = {"phase": "Completed", "lastSuccessfulTime": "2026-01-02T03:04:05Z"}
    assert backup_success("DatabaseBackup", done) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    # A backup whose Job failed, or one still running, has published nothing.
    assert backup_success("DatabaseBackup", {**done, "phase": "Failed"}) is None
    assert backup_success("DatabaseBackup", {"phase": "Provisioning"}) is None
    assert backup_success("DatabaseBackupSchedule", {"phase": "Ready", "schedule": {"cronJob": "x"}}) is None
    assert backup_success("DatabaseRestore", done) is None
    clock = [0.0]
    times = BackupTimes(ttl=10, clock=lambda: clock[0])
    times.set("DatabaseBackup", "ns", "b", done)
    times.set("DatabaseBackup", "ns", "running", {"phase": "Provisioning"})
    assert [s.labels["name"] for f in times.collect() for s in f.samples] == ["b"]
    clock[0] = 11.0
    assert [s for f in times.collect() for s in f.samples] == [], "forgotten after its TTL without a call"


def test_a_run_is_counted_once_however_often_the_function_is_called(run: Run) -> None:
    before = run.scrape()
    for _ in range(3):
        run.cluster.reconcile(max_rounds=2)  # every claim called again, with the status its last call wrote
    after = run.scrape()
    assert _value(after, "dbops_function_calls_total") > _value(before, "dbops_function_calls_total")
    assert _value(after, "dbops_worker_results_total") == _value(before, "dbops_worker_results_total")
    assert _value(after, "dbops_worker_changes_total") == _value(before, "dbops_worker_changes_total")


# --- the audit trail ----------------------------------------------------------------------------------------------


def _audit_lines(run: Run) -> list[dict[str, Any]]:
    lines = [
        json.loads(line) for line in run.log.read_text(encoding="utf-8").splitlines() if line.startswith("{")
    ]
    return [line for line in lines if line.get("msg") == "audit"]


def test_each_change_is_one_audit_line_with_the_statements_masked(run: Run) -> None:
    lines = _audit_lines(run)
    users = [line for line in lines if line["claim"] == "default/myapp-user"]
    assert len(users) == 1, users
    (user,) = users
    assert user["kind"] == "DatabaseUser" and user["engine"] == "postgres"
    assert user["server"].endswith(
        f":{run.cluster.claim('DatabaseInstance', 'postgres-server')['spec']['connection']['port']}"
    )
    assert user["outcome"] == "converged"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", user["time"])
    assert any(s.startswith("CREATE ROLE") for s in user["statements"])
    assert any("PASSWORD ***" in s for s in user["statements"]), user["statements"]
    (failing,) = [line for line in lines if line["claim"] == "default/metrics-failing-user"]
    assert failing["outcome"] == "failed (permanent RoleNotFound)"
    assert not [line for line in lines if line["kind"] == "DatabaseInstance"], "a check that changed nothing"
    text = run.log.read_text(encoding="utf-8")
    assert not [p for p in run.passwords if p in text]


def test_each_change_is_one_event_on_its_claim(run: Run) -> None:
    events = [
        r for rsp in run.client.responses for r in rsp.get("results", []) if r.get("reason") == EVENT_REASON
    ]
    users = [e for e in events if "CREATE ROLE myapp" in e["message"]]
    assert len(users) == 1, events
    (user,) = users
    assert user.get("severity", "SEVERITY_NORMAL") == "SEVERITY_NORMAL"
    assert user["target"] == "TARGET_COMPOSITE_AND_CLAIM"
    assert "PASSWORD ***" in user["message"]
    assert not [p for p in run.passwords if p in json.dumps(events)]


def test_the_rotation_metrics_say_where_each_rotation_is(run: Run) -> None:
    samples = run.scrape()
    labels = {"namespace": "default", "name": "metrics-rotating-user"}
    assert _value(samples, "dbops_password_rotation_phase", phase="Stable", **labels) == 1
    assert _value(samples, "dbops_password_rotation_phase", phase="SecretSwitched", **labels) == 0
    status = run.cluster.claim("DatabaseUser", "metrics-rotating-user")["status"]["rotation"]
    due = datetime.fromisoformat(status["nextRotationAt"].replace("Z", "+00:00")).timestamp()
    assert _value(samples, "dbops_password_rotation_next_step_timestamp_seconds", **labels) == due
    # Users without passwordRotation have no series.
    assert _value(samples, "dbops_password_rotation_phase", name="myapp-user") == 0
    assert not [s for s, _ in samples.get("dbops_password_rotation_phase", []) if s["name"] == "myapp-user"]
