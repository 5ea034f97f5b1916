"""`dbops-worker check` for a PostgreSQL DatabaseInstance, TLS modes and connection failures (real server)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import run, unique
from tests.servers import CertificateAuthority, Server, free_port
from tests.test_pg_support import admin_env, execute, log_text_during, make_role, one

pytestmark = pytest.mark.postgres


def check(pg: Server, env: dict[str, str] | None = None, **connection: object):  # type: ignore[no-untyped-def]
    return run(pg, "check", "DatabaseInstance", {}, env=env, **connection)


def test_check_reports_version_flavor_tls_and_admin_powers(pg: Server) -> None:
    result = check(pg, sslMode="disable")
    assert result.code == 0, result.result
    facts = result.result["observed"]
    assert facts["version"] == one(pg, "SHOW server_version").split(" ")[0]
    assert facts["flavor"] == "postgres"
    assert facts["tls"] is False
    assert facts == {**facts, "superuser": True, "canCreateDatabases": True, "canCreateRoles": True}
    assert result.result["statements"] == {"reads": 1, "writes": 0}


def test_check_verify_full_with_the_ca_uses_tls(pg: Server) -> None:
    if pg.ca is None:
        pytest.skip("no CA for an external server")
    result = check(pg, env={"DBOPS_TLS_CA": pg.ca.ca_path}, sslMode="verify-full")
    assert result.code == 0, result.result
    assert result.result["observed"]["tls"] is True


def test_check_with_a_client_certificate_and_no_password(pg: Server, tmp_path: Path) -> None:
    """Mutual TLS: the admin authenticates with a certificate (pg_hba `cert` for members of dbops_cert_login)."""
    if pg.ca is None:
        pytest.skip("no CA for an external server")
    admin, _ = make_role(pg, "certadmin", "LOGIN CREATEROLE IN ROLE dbops_cert_login")
    client = pg.ca.issue("client", admin, client=True, directory=tmp_path)
    env = {
        **admin_env(admin, "not-used"),
        "DBOPS_TLS_CA": client.ca,
        "DBOPS_TLS_CERT": client.cert,
        "DBOPS_TLS_KEY": client.key,
    }
    result = check(pg, env=env, sslMode="verify-full")
    assert result.code == 0, result.result
    facts = result.result["observed"]
    assert facts["tls"] is True
    assert facts["superuser"] is False
    assert facts["canCreateRoles"] is True
    assert facts["canCreateDatabases"] is False


def test_check_wrong_ca_is_a_permanent_tls_error(pg: Server, tmp_path: Path) -> None:
    other = CertificateAuthority(tmp_path / "other-ca", name="not the server's CA")
    result = check(pg, env={"DBOPS_TLS_CA": other.ca_path}, sslMode="verify-ca")
    assert result.code == 2
    assert result.error["code"] == "TLSError"
    assert "certificate verify failed" in result.error["message"]


def test_check_host_name_not_in_the_certificate_is_a_permanent_tls_error(pg: Server) -> None:
    if pg.ca is None:
        pytest.skip("no CA for an external server")
    alias = socket.gethostname()
    try:
        if socket.gethostbyname(alias) != "127.0.0.1" or alias in ("localhost",):
            pytest.skip("needs a host name other than localhost that resolves to 127.0.0.1")
    except OSError:
        pytest.skip("the host name does not resolve")
    result = check(pg, env={"DBOPS_TLS_CA": pg.ca.ca_path}, host=alias, sslMode="verify-full")
    assert result.code == 2
    assert result.error["code"] == "TLSError"
    assert "does not match host name" in result.error["message"]
    # verify-ca checks the chain only, so the same host name is fine there.
    assert check(pg, env={"DBOPS_TLS_CA": pg.ca.ca_path}, host=alias, sslMode="verify-ca").code == 0


def test_missing_ca_file_fails_verifying_modes_and_is_ignored_otherwise(pg: Server, tmp_path: Path) -> None:
    absent = str(tmp_path / "no-such-ca.crt")
    refused = check(pg, env={"DBOPS_TLS_CA": absent}, sslMode="verify-full")
    assert refused.code == 2
    assert refused.error["code"] == "TLSError"
    assert absent in refused.error["message"]
    assert refused.result["statements"] == {"reads": 0, "writes": 0}
    unset = check(pg, sslMode="verify-ca")
    assert unset.code == 2
    assert "DBOPS_TLS_CA is not set" in unset.error["message"]
    encrypted = check(pg, env={"DBOPS_TLS_CA": absent}, sslMode="require")
    assert encrypted.code == 0, encrypted.result
    assert encrypted.result["observed"]["tls"] is True


def test_client_certificate_without_key_is_refused(pg: Server, tmp_path: Path) -> None:
    if pg.ca is None:
        pytest.skip("no CA for an external server")
    client = pg.ca.issue("lonely", "someone", client=True, directory=tmp_path)
    result = check(pg, env={"DBOPS_TLS_CERT": client.cert, "DBOPS_TLS_KEY": str(tmp_path / "gone.key")})
    assert result.code == 2
    assert result.error["code"] == "TLSError"
    assert "no key" in result.error["message"]


def test_wrong_admin_password_is_permanent_and_not_echoed(pg: Server) -> None:
    wrong = "definitely-not-the-password-" + unique("x")
    result = check(pg, env={"DBOPS_ADMIN_PASSWORD": wrong})
    assert result.code == 2
    assert result.error["class"] == "permanent"
    assert result.error["code"] == "AuthenticationFailed"
    assert wrong not in result.stdout + result.stderr


def test_unreachable_server_is_transient(pg: Server) -> None:
    closed = check(pg, port=free_port(), connectTimeout=2)
    assert closed.code == 1
    assert closed.error == {**closed.error, "class": "transient", "code": "ConnectionRefused"}
    assert "connection.host" in closed.error["message"]
    unknown = check(pg, host="no-such-host.invalid", connectTimeout=2)
    assert unknown.code == 1
    assert unknown.error["code"] == "HostNotFound"


def test_an_admin_at_its_connection_limit_is_transient(pg: Server) -> None:
    # The message names the role ("too many connections for role ..."), which must not read as a bad user name.
    admin, password = make_role(pg, "busyadmin", "LOGIN CREATEROLE CONNECTION LIMIT 0")
    try:
        result = run(pg, "check", "DatabaseInstance", {}, env=admin_env(admin, password))
        assert result.code == 1
        assert result.error["class"] == "transient"
        assert result.error["code"] == "TooManyConnections"
        assert "connection limit" in result.error["message"]
        assert password not in result.stdout + result.stderr
    finally:
        execute(pg, f"DROP ROLE {admin}")


def test_missing_admin_database_is_permanent(pg: Server) -> None:
    result = check(pg, database=unique("nodb"))
    assert result.code == 2
    assert result.error["code"] == "DatabaseNotFound"
    assert "connection.database" in result.error["message"]


def test_bad_request_exits_2_before_connecting(pg: Server) -> None:
    name = unique("bad")
    request = {
        "kind": "Database",
        "engine": "postgres",
        "connection": {"host": pg.host, "port": pg.port},
        "spec": {"name": name, "postgres": {"connectionLimit": -5, "encoding": "UTF 8"}},
    }
    from tests.conftest import run_worker

    result, log = log_text_during(pg, lambda: run_worker(pg, "apply", json.dumps(request)))
    assert result.code == 2
    assert result.error["code"] == "InvalidRequest"
    assert "request.spec.postgres.connectionLimit" in result.error["message"]
    assert "request.spec.postgres.encoding" in result.error["message"]
    assert "app=dbops-worker" not in log  # no session was opened
    assert not pg.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,))


def test_privilege_for_the_wrong_object_type_is_a_request_error(pg: Server) -> None:
    result = run(
        pg,
        "apply",
        "DatabaseGrant",
        {"grantee": "someone", "database": "postgres", "postgres": {"grants": [{"privileges": ["SELECT"]}]}},
    )
    assert result.code == 2
    message = result.error["message"]
    assert "request.spec.postgres.grants[0].privileges" in message
    assert "'SELECT' is not a privilege of a database" in message


def test_admin_without_createrole_gets_a_hint(pg: Server) -> None:
    admin, password = make_role(pg, "weakadmin", "LOGIN")
    try:
        result = run(pg, "apply", "DatabaseUser", {"username": unique("u")}, env=admin_env(admin, password))
        assert result.code == 2
        assert result.error["code"] == "PermissionDenied"
        assert "CREATEROLE" in result.error["message"]
    finally:
        execute(pg, f"DROP ROLE {admin}")
