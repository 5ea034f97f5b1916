"""MySQL 8 dual-password rotation at plan (SQL) level: no MySQL 8 server runs here (docs/worker-mysql.md), so the
statements are checked from a MySQL 8 `ServerInfo` and observed state (worker/adapters/mysql_rotation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.adapters.base import ServerInfo
from worker.adapters.mysql_account import AccountState, UserState, account_parts, native_hash, plan_user
from worker.errors import PermanentError

MYSQL = ServerInfo("mysql", "8.0.36", (8, 0, 36))
NEW = "n3w-Pa55word-for-rotation"


def spec(rotation: dict[str, Any], **mysql: Any) -> dict[str, Any]:
    options = {"allowedHosts": ["%"], **mysql}
    return {"username": "app", "mysql": options, "rotation": {"strategy": "dual-password", **rotation}}


def state(plugin: str, auth: str = "", *, login: bool | None = None, secondary: bool = False) -> UserState:
    account = AccountState(host="%", plugin=plugin, auth_string=auth, secondary=secondary)
    return UserState({"%": account}, plugin_status="ACTIVE", login_ok=login, rotation_login=login)


def summaries(s: dict[str, Any], st: UserState) -> list[str]:
    return [step.summary for step in plan_user(s, st, MYSQL, NEW).steps]


def test_the_new_password_is_set_retaining_the_current_one_as_a_hash_or_password() -> None:
    grace = spec({"generation": 1}, authPlugin="mysql_native_password")
    plan = plan_user(grace, state("mysql_native_password", native_hash("old")), MYSQL, NEW)
    [step] = plan.steps
    assert (
        step.summary
        == "ALTER USER 'app'@'%' IDENTIFIED WITH mysql_native_password AS '***' RETAIN CURRENT PASSWORD"
    )
    assert step.params is not None and native_hash(NEW) in step.params and NEW not in step.summary
    sha2 = spec({"generation": 1}, authPlugin="caching_sha2_password")
    assert summaries(sha2, state("caching_sha2_password", login=False)) == [
        "ALTER USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY '***' RETAIN CURRENT PASSWORD"
    ]


def test_a_converged_grace_step_writes_nothing_and_needs_a_proving_login() -> None:
    grace = spec({"generation": 1}, authPlugin="caching_sha2_password")
    assert summaries(grace, state("caching_sha2_password", login=True, secondary=True)) == []
    with pytest.raises(PermanentError) as refused:
        native = spec({"generation": 1}, authPlugin="mysql_native_password")
        plan_user(native, state("mysql_native_password", native_hash(NEW), login=None), MYSQL, NEW)
    assert refused.value.code == "CredentialNotVerified"


def test_retiring_discards_the_old_password_once() -> None:
    retired = spec({"generation": 1, "retireBefore": 1}, authPlugin="mysql_native_password")
    current = state("mysql_native_password", native_hash(NEW), login=True, secondary=True)
    assert summaries(retired, current) == ["ALTER USER 'app'@'%' DISCARD OLD PASSWORD"]
    done = state("mysql_native_password", native_hash(NEW), login=True)
    assert summaries(retired, done) == []


def test_the_secondary_password_is_read_only_for_a_rotation() -> None:
    plain = " ".join(sql for sql, _ in account_parts(MYSQL, "app"))
    rotating = " ".join(sql for sql, _ in account_parts(MYSQL, "app", rotation=True))
    assert "additional_password" not in plain and "additional_password" in rotating
