"""DatabaseUser password rotation on a real MariaDB (strategy dual-password: `IDENTIFIED VIA ... OR ...`, docs/worker.md
"Password rotation"): an application's connection and logins with the old password keep working through the grace
period, the new one works from its first step, the old one fails once retired; a re-run writes nothing; passwords
never reach the general log."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_mysql_support import can_login, ensure_ed25519, log_text_during, login, writes_during

pytestmark = pytest.mark.mariadb


def _spec(name: str, rotation: dict[str, Any], **mysql: Any) -> dict[str, Any]:
    return {"username": name, "mysql": mysql, "rotation": {"strategy": "dual-password", **rotation}}


def _old_login(maria: Server, name: str, password: str, plugin: str | None) -> bool:
    """A login with the second credential of the chain. PyMySQL follows one authentication switch only, so for
    ed25519 (whose second credential needs a second switch) the check uses the MariaDB client (libmariadb), as an
    application on Connector/C or Connector/J would."""
    if plugin != "ed25519":
        return can_login(maria, name, password)
    client = shutil.which("mariadb")
    if client is None:
        pytest.skip("no mariadb client to log in with the second ed25519 credential")
    args = [client, "-h", maria.host, "-P", str(maria.port), "-u", name, "--skip-ssl", "-e", "SELECT 1"]
    done = subprocess.run(args, env={"MYSQL_PWD": password}, capture_output=True, text=True, check=False)
    return done.returncode == 0


def _credentials(maria: Server, name: str) -> int:
    row = maria.query(
        "SELECT JSON_LENGTH(Priv, '$.auth_or') FROM mysql.global_priv WHERE User = %s AND Host = '%%'",
        (name,),
    )
    return int(row[0][0] or 1)


@pytest.mark.parametrize("plugin", [None, "ed25519"])
def test_dual_password_rotation(maria: Server, plugin: str | None) -> None:
    if plugin == "ed25519":
        ensure_ed25519(maria)
    options = {"authPlugin": plugin} if plugin else {}
    name = unique("rot")
    p0, p1, p2 = (secrets.token_urlsafe(24) for _ in range(3))
    apply_ok(maria, "DatabaseUser", _spec(name, {"generation": 0}, **options), password=p0)
    app = login(maria, name, p0)  # the application's long-lived connection

    # Generation 1 added next to the current password, proved by a real login.
    grace = _spec(name, {"generation": 1}, **options)
    result, log = log_text_during(maria, lambda: apply_ok(maria, "DatabaseUser", grace, password=p1))
    assert result.result["observed"]["rotation"] == {"generation": 1, "verified": True, "active": [0, 1]}
    assert p1 not in log and p0 not in log and p1 not in result.stdout + result.stderr
    assert _old_login(maria, name, p0, plugin) and can_login(maria, name, p1)
    assert _credentials(maria, name) == 2
    with app.cursor() as cur:
        cur.execute("SELECT 1")

    # The same step again (the Secret switched to p1, or a Job re-run): nothing to write.
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", grace, password=p1))
    assert writes == []

    # Grace period over: only the new password is left.
    retired = _spec(name, {"generation": 1, "retireBefore": 1}, **options)
    done = apply_ok(maria, "DatabaseUser", retired, password=p1)
    assert done.result["observed"]["rotation"]["active"] == [1]
    assert not _old_login(maria, name, p0, plugin) and can_login(maria, name, p1)
    assert _credentials(maria, name) == 1
    with app.cursor() as cur:  # an open session is not cut
        cur.execute("SELECT 1")
    app.close()
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseUser", retired, password=p1))
    assert writes == []

    # The next rotation; a run killed before it (nothing written) and a run repeated after it both converge.
    nxt = _spec(name, {"generation": 2, "retireBefore": 1}, **options)
    apply_ok(maria, "DatabaseUser", nxt, password=p2)
    apply_ok(maria, "DatabaseUser", nxt, password=p2)
    assert _old_login(maria, name, p1, plugin) and can_login(maria, name, p2)


def test_a_rotation_that_cannot_log_in_fails_and_keeps_the_old_password(maria: Server) -> None:
    name = unique("rot")
    p0, p1 = (secrets.token_urlsafe(24) for _ in range(2))
    # The account exists only for a host the worker does not connect from: no login can prove the password.
    apply_ok(
        maria, "DatabaseUser", _spec(name, {"generation": 0}, allowedHosts=["10.255.255.%"]), password=p0
    )
    failed = run(
        maria,
        "apply",
        "DatabaseUser",
        _spec(name, {"generation": 1}, allowedHosts=["10.255.255.%"]),
        password=p1,
    )
    assert failed.code != 0
    assert failed.result["error"]["code"] == "CredentialNotVerified", failed.result["error"]


def test_role_inheritance_is_refused_on_mariadb(maria: Server) -> None:
    name = unique("rot")
    apply_ok(maria, "DatabaseUser", {"username": name}, password=secrets.token_urlsafe(24))
    spec = {"username": name, "rotation": {"strategy": "role-inheritance", "generation": 1}}
    failed = run(maria, "apply", "DatabaseUser", spec, password=secrets.token_urlsafe(24))
    assert failed.result["error"]["code"] == "InvalidSpec"
    assert "dual-password" in failed.result["error"]["message"]
