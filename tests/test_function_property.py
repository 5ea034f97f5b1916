"""Property: whatever the spec, Input, observed Jobs and referenced claims, RunFunction answers with a response and
never hits its internal-error guard (every bad input is a status, a condition and a result, not a crash)."""

from __future__ import annotations

import asyncio
import copy
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from function.fn import FunctionRunner
from tests.function_cases import kube

NOW = datetime(2025, 6, 1, tzinfo=UTC)
RUNNER = FunctionRunner(clock=lambda: NOW, rng=random.Random(1))
QUICKSTART = {d["metadata"]["name"]: d for d in kube.load_yaml(kube.ROOT / "examples" / "quickstart.yaml")}
VALID = {
    "DatabaseInstance": QUICKSTART["postgres-server"]["spec"],
    "Database": QUICKSTART["myapp-db"]["spec"],
    "DatabaseUser": QUICKSTART["myapp-user"]["spec"],
    "DatabaseGrant": {"userRef": {"name": "myapp-user"}, "postgres": {"roles": ["readers"]}},
}
GOOD_REFS = {
    "instance": [kube.claim("DatabaseInstance", "postgres-server", VALID["DatabaseInstance"])],
    "database": [kube.claim("Database", "myapp-db", VALID["Database"])],
    "user": [kube.claim("DatabaseUser", "myapp-user", VALID["DatabaseUser"])],
}
FIELDS = [
    "engine",
    "connection",
    "tls",
    "healthCheck",
    "postgres",
    "mysql",
    "name",
    "owner",
    "instanceRef",
    "databaseRef",
    "userRef",
    "roleName",
    "username",
    "passwordSecret",
    "existingPasswordSecret",
    "roles",
    "ensure",
    "deletionPolicy",
    "deletionProtection",
    "secretTemplate",
    "grants",
    "host",
    "port",
    "secretRef",
    "data",
]

scalars = s.one_of(
    s.none(),
    s.booleans(),
    s.integers(min_value=-(2**40), max_value=2**40),
    s.floats(allow_nan=False, allow_infinity=False, width=32),
    s.text(max_size=40),
    s.sampled_from(
        ["postgres", "mariadb", "mysql", "Absent", "Delete", "{{ .Password }}", "{{", "pg_x", "%"]
    ),
)
json_values = s.recursive(
    scalars,
    lambda children: s.one_of(
        s.lists(children, max_size=4),
        s.dictionaries(s.one_of(s.sampled_from(FIELDS), s.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=25,
)


def _mutate(spec: dict[str, Any], data: s.DataObject) -> dict[str, Any]:
    """A valid spec with a few fields replaced (at any depth) by arbitrary JSON."""
    out = copy.deepcopy(spec)
    for _ in range(data.draw(s.integers(0, 3))):
        node: Any = out
        while isinstance(node, dict) and node and data.draw(s.booleans()):
            key = data.draw(s.sampled_from(sorted(node)))
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if isinstance(node, dict):
            node[data.draw(s.sampled_from(FIELDS))] = data.draw(json_values)
    return out


def _job(data: s.DataObject) -> dict[str, Any]:
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": data.draw(s.text(max_size=20)),
            "annotations": data.draw(
                s.dictionaries(
                    s.sampled_from(
                        [
                            "dbops.dbprovision.io/state-hash",
                            "dbops.dbprovision.io/attempt",
                            "dbops.dbprovision.io/resync-epoch",
                            "dbops.dbprovision.io/password-revision",
                        ]
                    ),
                    s.one_of(s.text(max_size=10), s.sampled_from(["1", "-3", "99999999999"])),
                )
            ),
        },
        "spec": data.draw(json_values),
        "status": data.draw(
            s.one_of(
                json_values,
                s.fixed_dictionaries(
                    {
                        "conditions": s.lists(
                            s.fixed_dictionaries(
                                {
                                    "type": s.sampled_from(
                                        ["Complete", "Failed", "FailureTarget", "Suspended"]
                                    ),
                                    "status": s.sampled_from(["True", "False"]),
                                    "reason": s.sampled_from(
                                        ["PodFailurePolicy", "BackoffLimitExceeded", "x"]
                                    ),
                                    "lastTransitionTime": s.sampled_from(
                                        ["2025-06-01T00:00:00Z", "garbage", ""]
                                    ),
                                }
                            ),
                            max_size=3,
                        )
                    }
                ),
            )
        ),
    }
    return job


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=s.data(), kind=s.sampled_from(sorted(VALID)))
def test_run_function_never_fails_whatever_it_is_given(data: s.DataObject, kind: str) -> None:
    spec = _mutate(VALID[kind], data) if data.draw(s.booleans()) else data.draw(json_values)
    xr = kube.xr_from_claim({"kind": kind, "metadata": {"name": "p"}, "spec": {}})
    xr["spec"] = spec
    if data.draw(s.booleans()):
        xr["status"] = data.draw(json_values)
    observed: dict[str, Any] = {}
    for i in range(data.draw(s.integers(0, 2))):
        observed[f"job-{i}"] = _job(data)
    if data.draw(s.booleans()):
        observed["credentials"] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "c"},
            "data": data.draw(json_values),
        }
    required: dict[str, Any] = {}
    for name in data.draw(
        s.lists(
            s.sampled_from(["instance", "database", "user", "pods", "existing-password-secret"]), max_size=3
        )
    ):
        required[name] = [
            data.draw(
                s.dictionaries(
                    s.sampled_from(["apiVersion", "kind", "metadata", "spec", "status", "data"]), json_values
                )
            )
        ]
    if data.draw(s.booleans()):
        # Plausible, Ready references get the spec past the lookups into request building and Jobs.
        required.update(GOOD_REFS)
    input_ = data.draw(s.one_of(s.none(), json_values.filter(lambda v: isinstance(v, dict))))
    req = kube.request(xr, observed, required, input_)
    rsp = asyncio.run(RUNNER.RunFunction(req))
    reasons = [r.reason for r in rsp.results]
    assert "InternalError" not in reasons, [r.message for r in rsp.results]
