"""Cross-namespace instances on the real control plane (docs/function.md "Cross-namespace instances"): a
DatabaseInstance claim and its admin Secret in namespace `xns-platform`, a Database and a DatabaseUser claim in a
tenant namespace naming it. Real Crossplane composes the legacy XRs' Jobs (and the user's Job input) in the
instance's namespace; its RBAC (deploy/) suffices; the credentials Secret logs in; consent withdrawn turns the
claims Pending, keeps the login, and the server's statement log shows no write."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.cluster.conftest import GROUP, claim, namespace, wait_claim
from tests.conftest import unique
from tests.servers import Server
from tools.cluster.kube import Kube

PLATFORM = "xns-platform"


def secret_data(kube: Kube, name: str, ns: str) -> dict[str, str]:
    secret = kube.get("v1", "Secret", name, ns) or {}
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def mounted_secrets(pod_spec: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                out.add(ref["name"])
        out |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    for volume in pod_spec.get("volumes", []):
        if "secret" in volume:
            out.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources", []):
            if "secret" in source:
                out.add(source["secret"]["name"])
    return out


@pytest.mark.parametrize("server", ["postgres"], indirect=True)
def test_claims_of_another_namespace_run_their_jobs_next_to_the_admin_secret(
    kube: Kube, server: Server
) -> None:
    tenant = namespace(kube, "xns-team")
    namespace(kube, PLATFORM)
    username, dbname = unique("xu"), unique("xdb")
    connection = {"host": server.host, "port": server.port, "secretRef": {"name": "admin"}}
    instance = {
        "apiVersion": GROUP,
        "kind": "DatabaseInstance",
        "metadata": {"name": "shared", "namespace": PLATFORM},
        "spec": {"engine": "postgres", "connection": connection, "allowedNamespaces": {"names": [tenant]}},
    }
    ref = {"name": "shared", "namespace": PLATFORM}
    kube.apply_all(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "admin", "namespace": PLATFORM},
                "stringData": {"username": server.admin_user, "password": server.admin_password},
            },
            instance,
            {
                "apiVersion": GROUP,
                "kind": "Database",
                "metadata": {"name": "app", "namespace": tenant},
                "spec": {"instanceRef": ref, "name": dbname, "deletionProtection": False},
            },
            {
                "apiVersion": GROUP,
                "kind": "DatabaseUser",
                "metadata": {"name": "app-user", "namespace": tenant},
                "spec": {
                    "instanceRef": ref,
                    "databaseRef": {"name": "app"},
                    "username": username,
                    "deletionProtection": False,
                },
            },
        ]
    )
    for kind, name in (("Database", "app"), ("DatabaseUser", "app-user")):
        wait_claim(kube, kind, name, tenant, timeout=300)
    creds = secret_data(kube, "app-user-credentials", tenant)
    conn = server.connect(user=creds["username"], password=creds["password"], database=dbname)
    conn.close()

    # Every Job is in the platform namespace, and reads platform Secrets only; the tenant's namespace has no Job
    # and no Secret but its own credentials.
    assert kube.list("batch/v1", "Job", tenant) == []
    jobs = kube.list("batch/v1", "Job", PLATFORM)
    by_claim = {}
    for job in jobs:
        by_claim.setdefault(job["metadata"]["labels"].get("crossplane.io/claim-name"), set()).update(
            mounted_secrets(job["spec"]["template"]["spec"])
        )
    platform_secrets = {s["metadata"]["name"] for s in kube.list("v1", "Secret", PLATFORM)}
    [copy_] = [n for n in platform_secrets if n.endswith("-password")]
    assert by_claim == {"shared": {"admin"}, "app": {"admin"}, "app-user": {"admin", copy_}}, by_claim
    assert set(secret_data(kube, copy_, PLATFORM)) == {"password"}
    assert {s["metadata"]["name"] for s in kube.list("v1", "Secret", tenant)} == {"app-user-credentials"}

    # Consent withdrawn: the claims say so, nothing is written to the server, the login keeps working.
    mark = server.log.mark()  # type: ignore[union-attr]
    kube.patch(GROUP, "DatabaseInstance", "shared", {"spec": {"allowedNamespaces": None}}, PLATFORM)
    # Crossplane does not watch required resources: a converged claim looks at its instance again at its next
    # reconcile (the function's TTL, up to the resync interval). Any change to the XR brings that forward.
    for kind, name in (("Database", "app"), ("DatabaseUser", "app-user")):
        xr = claim(kube, kind, name, tenant)["spec"]["resourceRef"]["name"]
        kube.patch(GROUP, "X" + kind, xr, {"metadata": {"annotations": {"example.com/nudge": "1"}}})
    for kind, name in (("Database", "app"), ("DatabaseUser", "app-user")):
        obj = wait_claim(
            kube,
            kind,
            name,
            tenant,
            lambda o: "does not allow namespace" in o.get("status", {}).get("message", ""),
            timeout=180,
            what="says the consent is missing",
        )
        assert obj["status"]["phase"] == "Pending"
    assert claim(kube, "Database", "app", tenant)
    writes = [s.text for s in server.log.writes_since(mark)]  # type: ignore[union-attr]
    assert not [w for w in writes if w.lower().lstrip().startswith(("drop", "revoke", "alter"))], writes
    conn = server.connect(user=creds["username"], password=creds["password"], database=dbname)
    conn.close()
