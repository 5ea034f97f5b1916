"""The step Input (`dbops.fn.dbprovision.io/v1alpha1 Input`): worker image, Job defaults, retries, resync, TTLs.

`package/input/` holds the CRD generated from INPUT_SCHEMA; `tests/test_api_sources.py` keeps them equal.
"""

from __future__ import annotations

import marshal
from functools import lru_cache
from typing import Any

from dbops_api.release import WORKER_IMAGE
from dbops_api.schema import Schema, boolean, enum, integer, obj, string, string_map
from dbops_api.validation import FieldError, normalize

INPUT_GROUP = "dbops.fn.dbprovision.io"
INPUT_VERSION = "v1alpha1"
# The worker of the function's own release: the request contract they speak is the same one.
DEFAULT_WORKER_IMAGE = WORKER_IMAGE

INPUT_SCHEMA: Schema = obj(
    "Settings of the function-dbops pipeline step.",
    {
        "apiVersion": string("dbops.fn.dbprovision.io/v1alpha1"),
        "kind": string("Input"),
        "metadata": {"type": "object", "description": "Ignored."},
        "worker": obj(
            "The worker container every Job runs.",
            {
                "image": string("Worker image.", minLength=1, maxLength=512, default=DEFAULT_WORKER_IMAGE),
                "imagePullPolicy": enum(
                    "Image pull policy.", ("Always", "IfNotPresent", "Never"), default="IfNotPresent"
                ),
                "serviceAccountName": string(
                    "Service account of the Job's Pods (its token is never mounted).", maxLength=253
                ),
                "resources": {
                    **obj(
                        "Container resources. The worker is one short-lived Python process.",
                        {
                            "requests": string_map("Requests.", max_len=64),
                            "limits": string_map("Limits.", max_len=64),
                        },
                    ),
                    "default": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                },
                "nodeSelector": string_map("Node selector of the Job's Pods.", max_len=63),
                "priorityClassName": string("Priority class of the Job's Pods.", maxLength=253),
            },
        ),
        "job": obj(
            "Job settings.",
            {
                "backoffLimit": integer(
                    "Pod retries inside one Job for transient failures (exit 1); exit 2 fails the Job at once.",
                    minimum=0,
                    maximum=10,
                    default=1,
                ),
                "activeDeadlineSeconds": integer(
                    "Longest a Job may run.", minimum=30, maximum=86400, default=600
                ),
            },
        ),
        "retry": obj(
            "Back-off between Jobs after a transient failure: base * 2^(attempt-1), capped.",
            {
                "baseSeconds": integer("First delay.", minimum=1, maximum=3600, default=30),
                "maxSeconds": integer("Longest delay.", minimum=1, maximum=86400, default=1800),
            },
        ),
        "ttl": obj(
            "How soon Crossplane calls the function again. Crossplane watches the Secret and the Jobs, so these only "
            "bound the wait for what it does not watch: referenced claims and Pods. Settled objects come back at "
            "their next resync or retry.",
            {
                "runningSeconds": integer(
                    "While a Job runs or is about to start.", minimum=1, maximum=600, default=10
                ),
                "waitingSeconds": integer(
                    "While waiting for a referenced claim to exist or become Ready.",
                    minimum=1,
                    maximum=3600,
                    default=30,
                ),
            },
        ),
        "status": obj(
            "Where the XR status comes from.",
            {
                "readPods": boolean(
                    "Opt-in: read the Pods of the Jobs for the worker's result: its message on failure and the facts "
                    "in status (status.instance, status.database, status.user, status.grant). Crossplane then lists "
                    "and watches every Pod in the cluster (it caches required resources cluster-wide) and needs the "
                    "Pod rule of deploy/rbac-pods.yaml; without that rule the step waits on a Pod cache that never "
                    "fills: the claim does not get Ready, and Synced=False names Pods only after Crossplane's "
                    "two-minute reconcile timeout. Off (the default), status comes from the Jobs alone: phase, the "
                    "failure's class (the exit code) and the Job whose log holds the worker's message; no facts.",
                    default=False,
                ),
            },
        ),
        "resync": obj(
            "Periodic re-run of the worker to correct drift.",
            {
                "enabled": boolean(
                    "Re-run converged objects periodically; false turns off every periodic re-run, "
                    "DatabaseInstance health checks included.",
                    default=True,
                ),
                "intervalSeconds": integer(
                    "Length of a resync epoch; each XR is offset within it so they do not fire together.",
                    minimum=60,
                    maximum=604800,
                    default=3600,
                ),
            },
        ),
    },
)


def parse_input(raw: dict[str, Any] | None) -> tuple[dict[str, Any], list[FieldError]]:
    """The Input with defaults filled in (also inside sections that are absent), and any violations (named
    `input.<field>`). The caller's own value."""
    blob, errors = _parsed(marshal.dumps(raw or {}))
    value: dict[str, Any] = marshal.loads(blob)  # noqa: S302 (our own bytes, from _parsed)
    return value, list(errors)


@lru_cache(maxsize=32)
def _parsed(raw: bytes) -> tuple[bytes, tuple[FieldError, ...]]:
    """Memoized by the Input's marshal bytes: every call of a Composition carries the same Input (no secrets)."""
    value, errors = normalize(INPUT_SCHEMA, marshal.loads(raw), "input")  # noqa: S302 (our own bytes)
    if isinstance(value, dict):
        for name, sub in INPUT_SCHEMA["properties"].items():
            if sub.get("type") == "object" and sub.get("properties") and name not in value:
                value[name], _ = normalize(sub, {}, f"input.{name}")
    return marshal.dumps(value), tuple(errors)
