"""The move from claims to namespaced XRs on the real control plane, as docs/migrating-namespaced.md writes it: the
seed's Quick Start converges as claims; then the legacy XRs are paused, the claims' deletion protection lifted, the
credentials Secret released (owner reference removed), the claims deleted, the XRs unpaused until they are gone,
and the namespaced XRs from `dbops-local migrate-to-namespaced` applied. The real Crossplane (pause, deletion,
server-side apply) and Kubernetes (garbage collection, the admission policy) do their parts.

What must hold: while paused, Crossplane does not put the owner reference back; the released Secret outlives the
claims; the namespaced XRs reach Ready, the DatabaseUser controls the Secret, which still holds the pre-migration
password, and that password logs in; the server's statement log shows no write from the start of the move to the
end."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from dbops_local.migrate_namespaced import NAMESPACED_API_VERSION, convert
from tests.cluster.conftest import GROUP, conditions, namespace, prepare_quickstart_server, quickstart
from tests.servers import Server
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import writes_during as pg_writes_during
from tools.cluster.controlplane import ControlPlane
from tools.cluster.kube import Kube, Obj, wait

CLAIM_KINDS = ("DatabaseGrant", "DatabaseUser", "Database", "DatabaseInstance")
CREDENTIALS = "app.kubernetes.io/managed-by=dbops,dbops.dbprovision.io/kind=DatabaseUser"


@pytest.fixture(scope="module")
def namespaced(control_plane: ControlPlane) -> Kube:
    control_plane.install_namespaced()
    return control_plane.admin


@pytest.fixture(params=["postgres", "mariadb"])
def engine_server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue("pg" if request.param == "postgres" else "maria")
    prepare_quickstart_server(server)
    return server


def ready(obj: Obj | None) -> bool:
    return bool(
        obj
        and obj.get("status", {}).get("phase") == "Ready"
        and conditions(obj).get("Ready", {}).get("status") == "True"
    )


def wait_ready(kube: Kube, api_version: str, docs: list[Obj], ns: str) -> dict[str, Obj]:
    out: dict[str, Obj] = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        last: dict[str, Any] = {}

        def probe(kind: str = kind, name: str = name, last: dict[str, Any] = last) -> Obj | None:
            last["obj"] = obj = kube.get(api_version, kind, name, ns)
            return obj if ready(obj) else None

        try:
            out[name] = wait(probe, 300, f"{kind} {ns}/{name} Ready", interval=0.5)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last status: {(last.get('obj') or {}).get('status')}") from None
    return out


def legacy_xrs(kube: Kube, ns: str) -> list[Obj]:
    return [
        xr
        for kind in CLAIM_KINDS
        for xr in kube.list(GROUP, "X" + kind, labels=f"crossplane.io/claim-namespace={ns}")
    ]


def test_a_move_from_claims_to_namespaced_xrs_keeps_the_password_and_writes_nothing(
    namespaced: Kube, engine_server: Server
) -> None:
    kube, server = namespaced, engine_server
    ns = namespace(kube, f"mig-{server.engine}")
    docs = quickstart(server)
    claims = [d for d in docs if d["kind"] != "Secret"]
    kube.apply_all(docs, ns)
    wait_ready(kube, GROUP, claims, ns)
    (secret,) = kube.list("v1", "Secret", ns, labels=CREDENTIALS)
    secret_name = secret["metadata"]["name"]
    password = base64.b64decode(secret["data"]["password"]).decode()
    username = base64.b64decode(secret["data"]["username"]).decode()
    database = base64.b64decode(secret["data"]["database"]).decode()

    # 2. Export (before step 3) and convert.
    exported = [o for kind in CLAIM_KINDS for o in kube.list(GROUP, kind, ns)]
    conversion = convert(exported)
    assert conversion.notes == [], conversion.notes
    xrs = conversion.documents

    def move() -> dict[str, Obj]:
        # 3. Pause the legacy XRs; lift the claims' deletion protection.
        xr_names = [(xr["kind"], xr["metadata"]["name"]) for xr in legacy_xrs(kube, ns)]
        assert len(xr_names) == len(claims)
        for kind, name in xr_names:
            kube.patch(GROUP, kind, name, {"metadata": {"annotations": {"crossplane.io/paused": "true"}}})
        for claim in claims:
            kube.patch(
                GROUP, claim["kind"], claim["metadata"]["name"], {"spec": {"deletionProtection": False}}, ns
            )
        for kind, name in xr_names:

            def paused(kind: str = kind, name: str = name) -> bool | None:
                xr = kube.get(GROUP, kind, name) or {}
                return conditions(xr).get("Synced", {}).get("reason") == "ReconcilePaused" or None

            wait(paused, 60, f"{kind} {name} ReconcilePaused")
        # 4. Release the credentials Secret. Paused, its XR does not put the owner reference back.
        kube.patch("v1", "Secret", secret_name, {"metadata": {"ownerReferences": None}}, ns)
        time.sleep(5)
        kept = kube.get("v1", "Secret", secret_name, ns) or {}
        assert not kept["metadata"].get("ownerReferences"), "a paused XR composes nothing"
        # 5. Delete the claims; unpause their XRs, which are then deleted; the released Secret stays.
        for claim in claims:
            kube.delete(GROUP, claim["kind"], claim["metadata"]["name"], ns)
        wait(
            lambda: all(not kube.get(GROUP, c["kind"], c["metadata"]["name"], ns) for c in claims) or None,
            120,
            "the claims gone",
        )
        for kind, name in xr_names:
            kube.patch(GROUP, kind, name, {"metadata": {"annotations": {"crossplane.io/paused": None}}})
        wait(lambda: legacy_xrs(kube, ns) == [] or None, 120, "the legacy XRs gone")
        assert kube.get("v1", "Secret", secret_name, ns) is not None, "the released Secret outlives its XR"
        # 6. The namespaced XRs.
        kube.apply_all(xrs, ns)
        return wait_ready(kube, NAMESPACED_API_VERSION, xrs, ns)

    writes_during = pg_writes_during if server.engine == "postgres" else maria_writes_during
    _, writes = writes_during(server, move)
    assert [w.text for w in writes] == [], "the namespaced XRs are the same owner: nothing to write"

    secret = kube.get("v1", "Secret", secret_name, ns) or {}
    (owner,) = [r for r in secret["metadata"]["ownerReferences"] if r.get("controller")]
    assert (owner["apiVersion"], owner["kind"]) == (NAMESPACED_API_VERSION, "DatabaseUser")
    assert base64.b64decode(secret["data"]["password"]).decode() == password, "no new password"
    conn = server.connect(user=username, password=password, database=database)
    conn.close()
    assert legacy_xrs(kube, ns) == [] and not [o for k in CLAIM_KINDS for o in kube.list(GROUP, k, ns)]
