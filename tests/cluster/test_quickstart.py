"""The seed's Quick Start on the real control plane: claims applied with a Kubernetes client reach Ready with the
real Job controller, the credentials Secret logs in, and a spec change converges."""

from __future__ import annotations

import base64
import time

import pytest

from tests.cluster.conftest import (
    GROUP,
    MEASURED,
    claim,
    namespace,
    prepare_quickstart_server,
    quickstart,
    wait_all_ready,
    wait_claim,
)
from tests.servers import Server
from tools.cluster.kube import Kube, wait

SECRETS = {"postgres": "myapp-db-credentials", "mariadb": "shop-db-credentials"}
USERS = {"postgres": "myapp-user", "mariadb": "shop-user"}


@pytest.fixture(params=["postgres", "mariadb"])
def engine_server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue("pg" if request.param == "postgres" else "maria")
    prepare_quickstart_server(server)
    return server


def secret_data(kube: Kube, name: str, ns: str) -> dict[str, str]:
    secret = kube.get("v1", "Secret", name, ns) or {}
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def test_quickstart_reaches_ready_and_logs_in(kube: Kube, engine_server: Server) -> None:
    ns = namespace(kube, f"qs-{engine_server.engine}")
    docs = quickstart(engine_server)
    t0 = time.monotonic()
    kube.apply_all(docs, ns)
    claims = wait_all_ready(kube, docs, ns)
    MEASURED[f"quickstart {engine_server.engine}: apply to all Ready"] = time.monotonic() - t0

    # The real Job controller ran a Pod per Job, and the worker's result reached the claim.
    for name, obj in claims.items():
        assert obj["status"]["message"].startswith("converged by Job"), obj["status"]

        def succeeded(kind: str = obj["kind"], name: str = name) -> bool:
            # Read again: a health check or resync epoch may have begun meanwhile and named a newer Job.
            job = kube.get("batch/v1", "Job", claim(kube, kind, name, ns)["status"]["job"], ns)
            return job is not None and job["status"].get("succeeded") == 1

        wait(succeeded, 120, f"the Job of {name} succeeded")
    creds = secret_data(kube, SECRETS[engine_server.engine], ns)
    assert creds["host"] == engine_server.host and int(creds["port"]) == engine_server.port
    conn = engine_server.connect(
        user=creds["username"], password=creds["password"], database=creds["database"]
    )
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    conn.close()


def test_spec_change_converges(kube: Kube, engine_server: Server) -> None:
    ns = f"qs-{engine_server.engine}"
    user = USERS[engine_server.engine]
    before = claim(kube, "DatabaseUser", user, ns)
    assert before, "runs after the Quick Start test"
    if engine_server.engine == "postgres":
        patch = {"spec": {"postgres": {"connectionLimit": 7}}}
    else:
        patch = {"spec": {"mysql": {"maxUserConnections": 7}}}
    t0 = time.monotonic()
    kube.patch(GROUP, "DatabaseUser", user, patch, ns)
    old_hash = before["status"]["lastAppliedHash"]
    after = wait_claim(
        kube,
        "DatabaseUser",
        user,
        ns,
        lambda o: o["status"].get("lastAppliedHash") != old_hash and o["status"].get("phase") == "Ready",
        what="Ready with the new spec",
    )
    MEASURED[f"spec change {engine_server.engine}: patch to Ready"] = time.monotonic() - t0
    assert after["status"]["message"].startswith("converged by Job")
    if engine_server.engine == "postgres":
        rows = engine_server.query("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'myapp'")
    else:
        rows = engine_server.query("SELECT max_user_connections FROM mysql.user WHERE user = 'shop'")
    assert rows[0][0] == 7
