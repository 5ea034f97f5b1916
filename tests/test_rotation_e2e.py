"""Password rotation end to end without a cluster (dbops_local: the real function over gRPC, the real worker per
Job, the private servers): on demand (`passwordRotation.trigger`), the Secret switches only after the Job proved the
new credential, the old one keeps working through the grace period, and is retired after it; a lost status
resumes from the Secrets (docs/function.md, "Password rotation")."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim
from tests.servers import Server


def _can_login(server: Server, user: str, password: str) -> bool:
    try:
        server.connect(user=user, password=password).close()
    except Exception:  # a refused login, whatever the driver calls it
        return False
    return True


def _rotation(c: Any) -> dict[str, Any]:
    found: dict[str, Any] = c.claim("DatabaseUser", "app").get("status", {}).get("rotation", {})
    return found


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_on_demand_rotation_switches_after_a_proved_login_and_retires_after_the_grace_period(
    function_client: FunctionClient, server: Server
) -> None:
    name = unique("rot")
    spec: dict[str, Any] = {
        "instanceRef": {"name": "server"},
        "username": name,
        "deletionProtection": False,
        "passwordRotation": {"enabled": True, "oldUserPolicy": {"gracePeriodDays": 1}},
    }
    user = claim("DatabaseUser", "app", spec)
    c = cluster(function_client)
    c.apply([admin_secret(server, "admin"), instance_claim(server, "server", "admin"), user])
    c.reconcile()
    assert c.claim("DatabaseUser", "app")["status"]["phase"] == "Ready"
    first = c.secret_data("app-credentials")
    assert first["username"] == name and _can_login(server, name, first["password"])
    assert _rotation(c)["phase"] == "Stable"

    # On demand: a trigger value. The new credential is created and proved by the Job, then the Secret switches.
    rotate = copy.deepcopy(user)
    rotate["spec"]["passwordRotation"]["trigger"] = "2026-12-07"
    c.apply([rotate])
    c.reconcile()
    second = c.secret_data("app-credentials")
    assert second["password"] != first["password"]
    expected = f"{name}_r1" if server.engine == "postgres" else name
    assert second["username"] == expected
    assert _rotation(c)["phase"] == "SecretSwitched" and _rotation(c)["generation"] == 1
    assert c.claim("DatabaseUser", "app")["status"]["phase"] == "Ready"
    # The grace period: both credentials work; new logins use the Secret's.
    assert _can_login(server, first["username"], first["password"])
    assert _can_login(server, second["username"], second["password"])
    # Re-running changes nothing (no new rotation: the trigger was consumed).
    c.reconcile()
    assert c.secret_data("app-credentials") == second

    # A lost status: the phase comes back from the Secrets, nothing is redone.
    obj = c.claim("DatabaseUser", "app")
    obj["status"].pop("rotation", None)
    c.store.put(obj)
    c.reconcile()
    assert _rotation(c)["phase"] == "SecretSwitched" and c.secret_data("app-credentials") == second

    # The grace period is over (here: shortened to 0): the old credential is retired.
    retire = copy.deepcopy(rotate)
    retire["spec"]["passwordRotation"]["oldUserPolicy"]["gracePeriodDays"] = 0
    c.apply([retire])
    c.reconcile()
    assert _rotation(c)["phase"] == "OldRetired"
    assert not _can_login(server, first["username"], first["password"])
    assert _can_login(server, second["username"], second["password"])
    assert c.secret_data("app-credentials") == second
    with pytest.raises(KeyError):
        c.secret_data("app-credentials-rotation")
    assert c.claim("DatabaseUser", "app")["status"]["phase"] == "Ready"


@pytest.mark.slow
def test_a_server_down_between_steps_leaves_the_step_where_it_was_and_the_rotation_resumes(
    function_client: FunctionClient,
) -> None:
    from tests.test_faults_support import dedicated

    with dedicated("postgres") as pg:
        name = unique("rot")
        spec: dict[str, Any] = {
            "instanceRef": {"name": "server"},
            "username": name,
            "deletionProtection": False,
            "passwordRotation": {"enabled": True, "oldUserPolicy": {"gracePeriodDays": 1}},
        }
        user = claim("DatabaseUser", "app", spec)
        c = cluster(function_client)
        c.apply([admin_secret(pg, "admin"), instance_claim(pg, "server", "admin"), user])
        c.reconcile()
        first = c.secret_data("app-credentials")

        # The server is down when the rotation starts: the Job that creates the new credential fails, the Secret
        # and the old credential stay as they were.
        rotate = copy.deepcopy(user)
        rotate["spec"]["passwordRotation"]["trigger"] = "now"
        pg.stop()
        try:
            c.apply([rotate])
            c.reconcile(max_wait=0)
            assert _rotation(c)["phase"] == "NewCredentialCreated"
            assert c.secret_data("app-credentials") == first
        finally:
            pg.start()
        assert _can_login(pg, name, first["password"])
        c.reconcile(max_wait=5)
        second = c.secret_data("app-credentials")
        assert _rotation(c)["phase"] == "SecretSwitched" and second["username"] == f"{name}_r1"
        assert _can_login(pg, name, first["password"]) and _can_login(pg, f"{name}_r1", second["password"])

        # Down again when the grace period ends: the retiring Job fails, both credentials still work after the
        # restart, and the next run retires the old one.
        retire = copy.deepcopy(rotate)
        retire["spec"]["passwordRotation"]["oldUserPolicy"]["gracePeriodDays"] = 0
        pg.stop()
        try:
            c.apply([retire])
            c.reconcile(max_wait=0)
            assert _rotation(c)["phase"] == "SecretSwitched"
        finally:
            pg.start()
        assert _can_login(pg, name, first["password"]) and _can_login(pg, f"{name}_r1", second["password"])
        c.reconcile(max_wait=5)
        assert _rotation(c)["phase"] == "OldRetired"
        assert not _can_login(pg, name, first["password"])
        assert _can_login(pg, f"{name}_r1", second["password"])
        assert c.secret_data("app-credentials") == second
