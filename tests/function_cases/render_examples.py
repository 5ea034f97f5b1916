"""Build `examples/render/`: XRs, required resources and observed fixtures that `crossplane render` turns into a
converged status. Run `python -m tests.function_cases.render_examples` after a change to the function that alters
Jobs (the fixtures carry the Job names and state hashes it computes); `tests/test_function_grpc.py` checks that
the committed files still converge.

Each set: the XRs Crossplane would create from the claims, `required.yaml` (the referenced claims, Ready, and
the Pods of the completed Jobs with the worker's result as termination message) and one `observed-<xr>.yaml` per
XR (its credentials Secret and completed Job).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from function.fn import FunctionRunner
from tests.function_cases import kube
from tests.function_cases.render import render

OUT = kube.ROOT / "examples" / "render"
FINISHED = "2025-01-15T09:30:00Z"
CLOCK = datetime(2025, 1, 15, 9, 29, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Example:
    file: str  # examples/render/<set>/<file>.yaml
    claim: dict[str, Any]
    facts: dict[str, Any]  # the worker's `observed` in the completed Job's result


def _claim(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": kube.API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def quickstart() -> list[Example]:
    claims = {d["metadata"]["name"]: d for d in kube.load_yaml(kube.ROOT / "examples" / "quickstart.yaml")}
    return [
        Example(
            "instance",
            claims["postgres-server"],
            {
                "version": "15.10",
                "flavor": "postgres",
                "tls": False,
                "canCreateDatabases": True,
                "canCreateRoles": True,
                "superuser": True,
            },
        ),
        Example(
            "database",
            claims["myapp-db"],
            {
                "name": "myapp",
                "owner": "postgres",
                "encoding": "UTF8",
                "lcCollate": "C.UTF-8",
                "lcCtype": "C.UTF-8",
            },
        ),
        Example("user", claims["myapp-user"], {"username": "myapp", "roles": [], "login": True}),
    ]


def mariadb() -> list[Example]:
    return [
        Example(
            "instance",
            _claim(
                "DatabaseInstance",
                "mariadb-main",
                {
                    "engine": "mariadb",
                    "connection": {
                        "host": "mariadb.databases.svc.cluster.local",
                        "port": 3306,
                        "secretRef": {"name": "mariadb-admin"},
                    },
                    "mysql": {"charset": "utf8mb4", "tls": "require"},
                },
            ),
            {
                "version": "10.11.10-MariaDB",
                "flavor": "mariadb",
                "tls": True,
                "canCreateDatabases": True,
                "canCreateRoles": True,
                "superuser": True,
            },
        ),
        Example(
            "database",
            _claim(
                "Database",
                "shop-db",
                {
                    "instanceRef": {"name": "mariadb-main"},
                    "name": "shop",
                    "mysql": {"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"},
                },
            ),
            {"name": "shop", "charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"},
        ),
        Example(
            "user",
            _claim(
                "DatabaseUser",
                "shop-app",
                {
                    "instanceRef": {"name": "mariadb-main"},
                    "databaseRef": {"name": "shop-db"},
                    "username": "shop_app",
                    "passwordSecret": {
                        "secretName": "shop-app-credentials",
                        "secretTemplate": {
                            "data": {
                                "JDBC_URL": "jdbc:mariadb://{{ .Host }}:{{ .Port }}/{{ .Database }}?user={{ .Username }}"
                            }
                        },
                    },
                    "mysql": {"allowedHosts": ["10.0.%"], "maxUserConnections": 30},
                },
            ),
            {"username": "shop_app", "hosts": ["10.0.%"], "roles": [], "login": True},
        ),
        Example(
            "grant",
            _claim(
                "DatabaseGrant",
                "shop-app-grants",
                {
                    "userRef": {"name": "shop-app"},
                    "databaseRef": {"name": "shop-db"},
                    "mysql": {
                        "grants": [
                            {
                                "level": "table",
                                "table": "orders",
                                "privileges": ["SELECT", "INSERT", "UPDATE", "DELETE"],
                            }
                        ]
                    },
                },
            ),
            {"grantee": "shop_app", "hosts": ["10.0.%"], "roles": [], "privileges": 4},
        ),
    ]


SETS = {"postgres": quickstart, "mariadb": mariadb, "namespaced-postgres": quickstart}
# Sets of Crossplane v2 namespaced XRs (ns.dbops.dbprovision.io): the XR files are the XRs users apply, and the
# required resources the XRs they refer to; no claim anywhere.
NAMESPACED_SETS = ("namespaced-postgres",)
ENGINE = {"postgres": "postgres", "mariadb": "mariadb", "namespaced-postgres": "postgres"}


def _secret(name: str, username: str, password: str) -> dict[str, Any]:
    """An admin Secret as the API server returns it (only its resourceVersion reaches the Job's hash)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": kube.NAMESPACE, "resourceVersion": "1001"},
        "type": "Opaque",
        "data": {
            "username": base64.b64encode(username.encode()).decode(),
            "password": base64.b64encode(password.encode()).decode(),
        },
    }


ADMIN_SECRETS = {
    "postgres": lambda: [_secret("postgres-admin-creds", "postgres", "supersecret")],
    "mariadb": lambda: [_secret("mariadb-admin", "root", "change-me-admin-password")],
    "namespaced-postgres": lambda: [_secret("postgres-admin-creds", "postgres", "supersecret")],
}
SERVER_VERSION = {"postgres": "15.10", "mariadb": "10.11.10-MariaDB"}


def _runner() -> FunctionRunner:
    return FunctionRunner(clock=lambda: CLOCK, rng=random.Random(20250115))


def _ready_claim(claim: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(claim)
    out["metadata"] = {"name": claim["metadata"]["name"], "namespace": kube.NAMESPACE}
    out["spec"].update(kube.crossplane_claim_fields(claim["kind"], claim["metadata"]["name"]))
    out["status"] = {"phase": "Ready", "message": "converged"}
    return out


def build(set_name: str) -> dict[str, list[dict[str, Any]]]:
    """The documents of every file of a set, keyed by file name."""
    runner = _runner()

    def run(req: Any) -> Any:
        return asyncio.run(runner.RunFunction(req))

    examples = SETS[set_name]()
    namespaced = set_name in NAMESPACED_SETS
    if namespaced:
        referenced = [
            kube.namespaced_xr(e.claim["kind"], e.claim["metadata"]["name"], e.claim["spec"], "Ready")
            for e in examples
        ]
        claims = [*referenced, *ADMIN_SECRETS[set_name]()]
    else:
        claims = [_ready_claim(e.claim) for e in examples] + ADMIN_SECRETS[set_name]()
    files: dict[str, list[dict[str, Any]]] = {}
    pods: list[dict[str, Any]] = []
    for example in examples:
        kind = example.claim["kind"]
        if namespaced:
            xr = kube.namespaced_xr(kind, example.claim["metadata"]["name"], example.claim["spec"])
        else:
            xr = kube.xr_from_claim(example.claim)
        observed: list[dict[str, Any]] = []
        for _ in range(3):  # Secret first (users), then the Job
            out = render(run, xr, kube.composition_input(kind), observed, claims)
            jobs = {k: v for k, v in out.composed.items() if v["kind"] == "Job"}
            secret = out.composed.get("credentials")
            if secret is not None and not any(o["kind"] == "Secret" for o in observed):
                observed.append(_observed(secret, "credentials"))
                continue
            [(key, job)] = jobs.items()
            done = kube.job_complete(_observed(job, key), FINISHED)
            observed.append(done)
            action = job["spec"]["template"]["spec"]["containers"][0]["command"][1]
            engine = ENGINE[set_name]
            server = {"version": SERVER_VERSION[engine], "flavor": engine}
            result = kube.worker_result(kind, action, example.facts, server=server)
            pods.append(kube.pod(done, 0, result, FINISHED))
            break
        files[f"{example.file}.yaml"] = [xr]
        files[f"observed-{example.file}.yaml"] = observed
    if not namespaced:
        files["required.yaml"] = claims + pods
        return files
    # A namespaced XR and the XRs it refers to are the same kind of object in one namespace: render loads the
    # required resources into its cluster, where a copy of the XR being rendered would stand in for it. So each
    # XR gets the required resources without itself.
    for example in examples:
        name = example.claim["metadata"]["name"]
        files[f"required-{example.file}.yaml"] = [
            d
            for d in claims + pods
            if (d["apiVersion"], d["kind"], d["metadata"]["name"])
            != (kube.NS_API, example.claim["kind"], name)
        ]
    return files


def _observed(res: dict[str, Any], key: str) -> dict[str, Any]:
    out = kube.observed(res, key)
    meta = out["metadata"]
    meta["uid"] = kube.xr_uid(meta["name"])
    meta["creationTimestamp"] = FINISHED
    return out


HEADER = {
    "required.yaml": "# Required resources: the referenced claims (Ready), the instance's admin Secret (only its\n"
    "# resourceVersion is used) and the Pods of the completed Jobs, whose termination message is the worker's\n"
    "# JSON result.\n",
    "observed": "# Observed composed resources of one XR: what Crossplane would pass after the Job completed.\n",
    "xr": "# The XR Crossplane creates for the claim of the same name (legacy, cluster-scoped).\n",
    "namespaced-xr": "# A namespaced XR (ns.dbops.dbprovision.io, Crossplane v2), as applied, with the Composition\n"
    "# Crossplane chose under spec.crossplane.\n",
    "namespaced-required": "# Required resources: the referenced namespaced XRs (Ready), the instance's admin\n"
    "# Secret (only its resourceVersion is used) and the Pods of the completed Jobs, whose termination message is\n"
    "# the worker's JSON result.\n",
}


ORDER = ("apiVersion", "kind", "metadata", "type", "data", "spec", "status")


def ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys in the order people read Kubernetes objects, sorted below, for stable, readable files."""
    keys = [k for k in ORDER if k in doc] + sorted(k for k in doc if k not in ORDER)
    return {k: _sorted(doc[k]) for k in keys}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def write() -> None:
    for set_name in SETS:
        for name, docs in build(set_name).items():
            path = OUT / set_name / name
            path.parent.mkdir(parents=True, exist_ok=True)
            prefix = "namespaced-" if set_name in NAMESPACED_SETS else ""
            header = (
                HEADER.get(prefix + name.split("-", 1)[0])
                or HEADER.get(name)
                or (HEADER["observed"] if name.startswith("observed-") else HEADER[prefix + "xr"])
            )
            body = yaml.safe_dump_all(
                [ordered(d) for d in docs], sort_keys=False, explicit_start=True, width=120
            )
            if prefix:
                # No "---" before the first document: the render engine would read the comment above it as an
                # empty observed resource, and refuses one outside a namespaced XR's namespace.
                body = body.removeprefix("---\n")
            Path(path).write_text(header + body, encoding="utf-8")
            print(f"wrote {path.relative_to(kube.ROOT)}")


if __name__ == "__main__":
    write()
