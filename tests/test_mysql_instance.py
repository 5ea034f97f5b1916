"""`check` of a MariaDB DatabaseInstance: TLS modes, mutual TLS, and how connection failures end (real server)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import request_for, run_worker
from tests.servers import CertificateAuthority, Server, free_port
from tests.test_mysql_support import log_text_during

pytestmark = pytest.mark.mariadb


def check(maria: Server, env: dict[str, str] | None = None, **connection: object):  # type: ignore[no-untyped-def]
    return run_worker(maria, "check", request_for(maria, "DatabaseInstance", {}, **connection), env=env)


def require_ca(maria: Server) -> CertificateAuthority:
    if maria.ca is None:
        pytest.skip("the server in DBOPS_TEST_MYSQL_URL has no CA we know of")
    return maria.ca


def test_check_reports_version_flavor_and_admin_powers(maria: Server) -> None:
    run = check(maria, sslMode="disable")
    assert run.code == 0, run.result
    version = maria.query("SELECT VERSION()")[0][0]
    assert run.result["observed"] == {
        "version": version,
        "flavor": "mariadb",
        "tls": False,
        "canCreateDatabases": True,
        "canCreateRoles": True,
        "superuser": True,
    }
    assert run.result["server"] == {"version": version, "flavor": "mariadb"}


def test_a_limited_admin_is_reported_as_such(maria: Server) -> None:
    user, password = "dbops_limited_admin", "limited-Admin-pw1"
    maria.query(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
    maria.query(f"GRANT SELECT ON mysql.* TO '{user}'@'%'")
    env = {"DBOPS_ADMIN_USERNAME": user, "DBOPS_ADMIN_PASSWORD": password}
    run = check(maria, env=env)
    assert run.code == 0, run.result
    observed = run.result["observed"]
    assert (observed["canCreateDatabases"], observed["canCreateRoles"], observed["superuser"]) == (
        False,
        False,
        False,
    )


def test_require_encrypts(maria: Server) -> None:
    require_ca(maria)
    run = check(maria, sslMode="require")
    assert run.code == 0, run.result
    assert run.result["observed"]["tls"] is True


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verify_modes_check_the_server_certificate(maria: Server, mode: str) -> None:
    ca = require_ca(maria)
    run = check(maria, env={"DBOPS_TLS_CA": ca.ca_path}, sslMode=mode)
    assert run.code == 0, run.result
    assert run.result["observed"]["tls"] is True


def test_a_foreign_ca_is_a_permanent_tls_error(maria: Server, tmp_path: Path) -> None:
    require_ca(maria)
    other = CertificateAuthority(tmp_path / "other", name="not the server's CA")
    run = check(maria, env={"DBOPS_TLS_CA": other.ca_path}, sslMode="verify-ca")
    assert run.code == 2, run.result
    assert run.error["code"] == "TLSError"
    assert "server certificate rejected" in run.error["message"]


def _other_name_for_localhost() -> str | None:
    for name in (socket.gethostname(), "vm", "runsc"):
        try:
            if name != "localhost" and socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    return None


def test_verify_full_checks_the_host_name(maria: Server) -> None:
    ca = require_ca(maria)
    name = _other_name_for_localhost()
    if name is None:
        pytest.skip("no second name resolves to 127.0.0.1 here")
    env = {"DBOPS_TLS_CA": ca.ca_path}
    assert check(maria, env=env, sslMode="verify-ca", host=name).code == 0
    run = check(maria, env=env, sslMode="verify-full", host=name)
    assert run.code == 2, run.result
    assert run.error["code"] == "TLSError"
    assert "certificate" in run.error["message"]


def test_verify_modes_need_the_ca(maria: Server, tmp_path: Path) -> None:
    run = check(maria, sslMode="verify-full")
    assert run.code == 2 and run.error["code"] == "TLSError"
    assert "verifies the server against a CA certificate, but DBOPS_TLS_CA is not set" in run.error["message"]
    missing = str(tmp_path / "ca.crt")
    run = check(maria, env={"DBOPS_TLS_CA": missing}, sslMode="verify-ca")
    assert run.code == 2
    assert f"DBOPS_TLS_CA names {missing}, which does not exist" in run.error["message"]


def test_tls_files_absent_from_the_secret_are_left_out(maria: Server, tmp_path: Path) -> None:
    require_ca(maria)
    # The Job names all three files; a TLS Secret with only some keys leaves the others absent.
    env = {f"DBOPS_TLS_{k}": str(tmp_path / k.lower()) for k in ("CA", "CERT", "KEY")}
    run = check(maria, env=env, sslMode="require")
    assert run.code == 0, run.result
    assert run.result["observed"]["tls"] is True


def test_mutual_tls_presents_the_client_certificate(maria: Server, tmp_path: Path) -> None:
    ca = require_ca(maria)
    client = ca.issue("admin-client", maria.admin_user, client=True, directory=tmp_path)
    user, password = "dbops_x509_admin", "x509-Admin-pw1"
    maria.query(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}' REQUIRE X509")
    env = {"DBOPS_ADMIN_USERNAME": user, "DBOPS_ADMIN_PASSWORD": password, "DBOPS_TLS_CA": ca.ca_path}
    without = check(maria, env=env, sslMode="verify-ca")
    assert without.code == 2 and without.error["code"] == "AuthenticationFailed", without.result
    run = check(
        maria, env={**env, "DBOPS_TLS_CERT": client.cert, "DBOPS_TLS_KEY": client.key}, sslMode="verify-ca"
    )
    assert run.code == 0, run.result
    assert run.result["observed"]["tls"] is True


def test_wrong_admin_password_is_permanent_and_secret_free(maria: Server) -> None:
    wrong = "definitely-Wrong-pw-123"
    run, log = log_text_during(maria, lambda: check(maria, env={"DBOPS_ADMIN_PASSWORD": wrong}))
    assert run.code == 2
    assert run.error["code"] == "AuthenticationFailed"
    assert "check the admin Secret" in run.error["message"]
    assert wrong not in run.stdout + run.stderr + log


def test_unreachable_server_is_transient(maria: Server) -> None:
    run = check(maria, port=free_port())
    assert run.code == 1, run.result
    assert run.error == {
        "class": "transient",
        "code": "Unreachable",
        "message": run.error["message"],
    }
    assert "connecting as the admin" in run.error["message"]


def test_unknown_host_is_transient(maria: Server) -> None:
    run = check(maria, host="no-such-host.invalid", connectTimeout=3)
    assert run.code == 1, run.result
    assert run.error["code"] == "HostNotFound"
    assert "does not resolve" in run.error["message"]


def test_engine_mysql_accepts_a_mariadb_server_and_says_so(maria: Server) -> None:
    request = request_for(maria, "DatabaseInstance", {})
    request["engine"] = "mysql"
    run = run_worker(maria, "check", request)
    assert run.code == 0, run.result
    assert run.result["observed"]["flavor"] == "mariadb"
