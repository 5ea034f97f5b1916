"""TLS and mutual TLS through the whole path (issue 6): claim -> function -> Job with the instance's TLS Secret
mounted -> worker -> PostgreSQL / MariaDB.

This module runs its own servers whose certificates name `localhost` only (signed by a generated CA): connecting
to `localhost` verifies, connecting to `127.0.0.1` is a host-name mismatch that `verify-full` must refuse, on any
machine. The worker-level TLS tests are `test_pg_instance.py` and `test_mysql_instance.py`.

- `verify-full` with the CA in the instance's TLS Secret converges Ready, and so do a Database and a DatabaseUser
  on that instance: their Jobs mount the same Secret.
- A foreign CA, or a host name not in the server certificate, ends `Failed` with a permanent `TLSError` and is
  not retried; fixing the Secret (or the mode) converges.
- Client-certificate authentication: a PostgreSQL admin role in `dbops_cert_login` (pg_hba `hostssl ... cert`)
  and a MariaDB admin account `REQUIRE X509` converge with the client certificate and key from the instance's TLS
  Secret, through every kind, and fail clearly (permanent `AuthenticationFailed`) without them.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from function.jobs.job import TLS_DIR
from tests.conftest import unique
from tests.offline_support import claim, cluster, condition, kube_name
from tests.servers import CertificateAuthority, Server, TLSFiles, private_servers
from tests.test_faults_support import worker_runs

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb, pytest.mark.slow]

ENGINES = ("postgres", "mariadb")
SERVER_NAME = "localhost"  # the only name in the servers' certificates
PASSWORD_UNUSED = "not-used-cert-login"  # the PostgreSQL cert admin authenticates by its certificate alone


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    with private_servers(ENGINES, cert_hosts=(SERVER_NAME,)) as running:
        if any(s.ca is None for s in running.values()):
            pytest.skip("servers from DBOPS_TEST_*_URL: no CA we know of")
        yield running


@pytest.fixture(params=ENGINES)
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]


def ca_of(server: Server) -> CertificateAuthority:
    assert server.ca is not None
    return server.ca


# --- manifests --------------------------------------------------------------------------------------------------


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": encoded,
    }


def tls_secret(name: str, ca: str, client: TLSFiles | None = None) -> dict[str, Any]:
    """The instance's TLS Secret: `ca.crt`, and for mutual TLS `tls.crt` and `tls.key` (the keys' defaults)."""
    data = {"ca.crt": Path(ca).read_text()}
    if client is not None:
        data["tls.crt"] = Path(client.cert).read_text()
        data["tls.key"] = Path(client.key).read_text()
    return secret(name, data)


def instance(
    server: Server, name: str, admin: str, tls: str, mode: str = "verify-full", host: str = SERVER_NAME
) -> dict[str, Any]:
    """A DatabaseInstance with TLS from the Secret `tls`."""
    spec = {
        "engine": server.engine,
        "connection": {"host": host, "port": server.port, "secretRef": {"name": admin}},
        "tls": {"enabled": True, "mode": mode, "secretRef": {"name": tls}},
    }
    return claim("DatabaseInstance", name, spec)


def database_and_user(instance_name: str, prefix: str) -> tuple[list[dict[str, Any]], str, str]:
    """A Database and a DatabaseUser with full use of it on the instance: (claims, database, user)."""
    database, user = unique("tlsdb"), unique("tlsuser")
    claims = [
        claim("Database", f"{prefix}-db", {"instanceRef": {"name": instance_name}, "name": database}),
        claim(
            "DatabaseUser",
            f"{prefix}-user",
            {
                "instanceRef": {"name": instance_name},
                "databaseRef": {"name": f"{prefix}-db"},
                "username": user,
                "passwordSecret": {"secretName": f"{prefix}-creds"},
            },
        ),
    ]
    return claims, database, user


def phase(c: OfflineCluster, kind: str, name: str) -> str:
    return str(c.claim(kind, name).get("status", {}).get("phase"))


def assert_jobs_mount_the_tls_secret(c: OfflineCluster, claim_obj: dict[str, Any], secret_name: str) -> None:
    """The claim's Job carries the instance's TLS Secret as a volume and the DBOPS_TLS_* paths into it."""
    jobs = [o for o in c.composed_of(claim_obj).values() if o["kind"] == "Job"]
    assert jobs, f"{claim_obj['kind']} has no Job"
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == secret_name
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["DBOPS_TLS_CA"] == f"{TLS_DIR}/ca.crt"
        assert env["DBOPS_TLS_CERT"] == f"{TLS_DIR}/tls.crt"
        assert env["DBOPS_TLS_KEY"] == f"{TLS_DIR}/tls.key"


def assert_user_logs_in(c: OfflineCluster, server: Server, creds: str, database: str) -> None:
    data = c.secret_data(creds)
    conn = server.connect(user=data["username"], password=data["password"], database=data["database"])
    try:
        with conn.cursor() as cur:
            # What the user's databaseRef gives it on both engines (PostgreSQL: no CREATE in public).
            cur.execute("CREATE TEMPORARY TABLE tls_login (i int)")
    finally:
        conn.close()
    assert data["database"] == database


# --- verify-full with the right CA ------------------------------------------------------------------------------


def test_verify_full_with_the_instance_ca_converges_for_every_kind(
    server: Server, function_client: FunctionClient
) -> None:
    prefix = kube_name(f"tls-{server.engine}")
    c = cluster(function_client)
    dependents, database, _ = database_and_user(prefix, prefix)
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": server.admin_user, "password": server.admin_password}),
            tls_secret(f"{prefix}-tls", ca_of(server).ca_path),
            instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls"),
            *dependents,
        ]
    )
    c.reconcile(max_wait=3)
    ready = c.claim("DatabaseInstance", prefix)
    assert ready["status"]["phase"] == "Ready", ready["status"]
    assert ready["status"]["instance"]["tls"] is True
    assert " over TLS at localhost" in condition(ready, "Connected")["message"]
    assert phase(c, "Database", f"{prefix}-db") == "Ready"
    assert phase(c, "DatabaseUser", f"{prefix}-user") == "Ready"
    for kind, name in (
        ("DatabaseInstance", prefix),
        ("Database", f"{prefix}-db"),
        ("DatabaseUser", f"{prefix}-user"),
    ):
        assert_jobs_mount_the_tls_secret(c, c.claim(kind, name), f"{prefix}-tls")
    assert_user_logs_in(c, server, f"{prefix}-creds", database)


# --- a wrong CA, a wrong host name ------------------------------------------------------------------------------


def test_a_foreign_ca_fails_permanently_without_retry_and_the_right_one_converges(
    server: Server, function_client: FunctionClient, tmp_path: Path
) -> None:
    prefix = kube_name(f"tls-ca-{server.engine}")
    foreign = CertificateAuthority(tmp_path / "foreign", name="not the server's CA")
    c = cluster(function_client)
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": server.admin_user, "password": server.admin_password}),
            tls_secret(f"{prefix}-tls", foreign.ca_path),
            instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls"),
        ]
    )
    c.reconcile(max_wait=3)  # a transient failure would be retried within this wait
    failed = c.claim("DatabaseInstance", prefix)
    status = failed["status"]
    assert status["phase"] == "Failed", status
    assert "permanent" in status["message"]
    words = "certificate verify failed" if server.engine == "postgres" else "server certificate rejected"
    assert words in status["message"]
    assert condition(failed, "Connected")["reason"] == "TLSError"
    assert len(worker_runs(c, failed)) == 1  # permanent: no retry

    c.apply([tls_secret(f"{prefix}-tls", ca_of(server).ca_path)])  # fix the Secret: a new Job at once
    c.reconcile(max_wait=3)
    assert phase(c, "DatabaseInstance", prefix) == "Ready"


def test_a_host_name_not_in_the_certificate_fails_permanently_and_verify_ca_accepts_it(
    server: Server, function_client: FunctionClient
) -> None:
    prefix = kube_name(f"tls-host-{server.engine}")
    c = cluster(function_client)
    # 127.0.0.1 reaches the server, but its certificate names localhost only.
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": server.admin_user, "password": server.admin_password}),
            tls_secret(f"{prefix}-tls", ca_of(server).ca_path),
            instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls", host="127.0.0.1"),
        ]
    )
    c.reconcile(max_wait=3)
    failed = c.claim("DatabaseInstance", prefix)
    status = failed["status"]
    assert status["phase"] == "Failed", status
    assert "permanent" in status["message"]
    words = (
        'does not match host name "127.0.0.1"'
        if server.engine == "postgres"
        else "mismatch, certificate is not valid for '127.0.0.1'"
    )
    assert words in status["message"]
    assert condition(failed, "Connected")["reason"] == "TLSError"
    assert len(worker_runs(c, failed)) == 1

    # verify-ca checks the chain only: the same host converges.
    c.apply(
        [instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls", mode="verify-ca", host="127.0.0.1")]
    )
    c.reconcile(max_wait=3)
    assert phase(c, "DatabaseInstance", prefix) == "Ready"


# --- client certificates ----------------------------------------------------------------------------------------


def cert_admin(server: Server, directory: Path) -> tuple[str, str, TLSFiles]:
    """An admin that must present a client certificate: (user name, password for the admin Secret, its cert).

    PostgreSQL: a role in dbops_cert_login, authenticated by the certificate alone (pg_hba `hostssl ... cert`);
    it has CREATEDB and CREATEROLE but is no superuser. MariaDB: an account with every privilege that
    `REQUIRE X509` (a certificate signed by the server's CA, and the password)."""
    name = unique("certadm")
    client = ca_of(server).issue(name, name, client=True, directory=directory)
    if server.engine == "postgres":
        server.query(f"CREATE ROLE {name} LOGIN CREATEDB CREATEROLE IN ROLE dbops_cert_login")
        return name, PASSWORD_UNUSED, client
    password = unique("Pw-")
    server.query("CREATE USER %s@'%%' IDENTIFIED BY %s REQUIRE X509", (name, password))
    server.query(f"GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%' WITH GRANT OPTION")
    return name, password, client


def test_client_certificate_from_the_tls_secret_authenticates_every_kind(
    server: Server, function_client: FunctionClient
) -> None:
    prefix = kube_name(f"mtls-{server.engine}")
    with tempfile.TemporaryDirectory() as tmp:
        admin, password, client = cert_admin(server, Path(tmp))
        tls = tls_secret(f"{prefix}-tls", ca_of(server).ca_path, client)
    dependents, database, _ = database_and_user(prefix, prefix)
    c = cluster(function_client)
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": admin, "password": password}),
            tls,
            instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls"),
            *dependents,
        ]
    )
    c.reconcile(max_wait=3)
    ready = c.claim("DatabaseInstance", prefix)
    assert ready["status"]["phase"] == "Ready", ready["status"]
    assert ready["status"]["instance"]["tls"] is True
    if server.engine == "postgres":
        assert (
            ready["status"]["instance"]["superuser"] is False
        )  # the certificate's role, not the server admin
    # Every kind's Job could only log in with the certificate from the mounted Secret.
    assert phase(c, "Database", f"{prefix}-db") == "Ready"
    assert phase(c, "DatabaseUser", f"{prefix}-user") == "Ready"
    assert_user_logs_in(c, server, f"{prefix}-creds", database)


def test_without_the_client_certificate_a_cert_only_admin_fails_clearly(
    server: Server, function_client: FunctionClient
) -> None:
    prefix = kube_name(f"nocert-{server.engine}")
    with tempfile.TemporaryDirectory() as tmp:
        admin, password, _ = cert_admin(server, Path(tmp))
    c = cluster(function_client)
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": admin, "password": password}),
            tls_secret(f"{prefix}-tls", ca_of(server).ca_path),  # the CA only: no tls.crt, no tls.key
            instance(server, prefix, f"{prefix}-admin", f"{prefix}-tls"),
        ]
    )
    c.reconcile(max_wait=3)
    failed = c.claim("DatabaseInstance", prefix)
    status = failed["status"]
    assert status["phase"] == "Failed", status
    assert "permanent" in status["message"]
    assert condition(failed, "Connected")["reason"] == "AuthenticationFailed"
    if server.engine == "postgres":
        assert "connection requires a valid client certificate" in status["message"]
        assert "tls.crt and tls.key" in status["message"]
    else:
        assert "Access denied" in status["message"]
    assert len(worker_runs(c, failed)) == 1


def test_a_client_certificate_for_another_user_is_refused_permanently(
    servers: dict[str, Server], function_client: FunctionClient
) -> None:
    """PostgreSQL `cert` authentication maps the certificate's CN to the user: a certificate for someone else is
    an authentication failure (permanent), not a connection problem to retry."""
    pg = servers["postgres"]
    prefix = kube_name("othercert")
    with tempfile.TemporaryDirectory() as tmp:
        admin, password, _ = cert_admin(pg, Path(tmp))
        someone_else = ca_of(pg).issue("else", unique("someone"), client=True, directory=Path(tmp))
        tls = tls_secret(f"{prefix}-tls", ca_of(pg).ca_path, someone_else)
    c = cluster(function_client)
    c.apply(
        [
            secret(f"{prefix}-admin", {"username": admin, "password": password}),
            tls,
            instance(pg, prefix, f"{prefix}-admin", f"{prefix}-tls"),
        ]
    )
    c.reconcile(max_wait=3)
    failed = c.claim("DatabaseInstance", prefix)
    assert failed["status"]["phase"] == "Failed", failed["status"]
    assert f'certificate authentication failed for user "{admin}"' in failed["status"]["message"]
    assert "common name (CN) must be the admin user name" in failed["status"]["message"]
    assert condition(failed, "Connected")["reason"] == "AuthenticationFailed"
    assert len(worker_runs(c, failed)) == 1
