"""DatabaseUser spec.passwordRotation: the Go operator's shape, what dbops refuses with why, and the checks the
schema cannot make (dbops_api/rotation.py, docs/function.md "Password rotation")."""

from __future__ import annotations

from typing import Any

from dbops_api import rotation
from dbops_api.registry import SPECS
from dbops_api.validation import normalize, predicates
from function.kinds.user import _spec_errors
from function.spec.validation import schema_walk


def user(**rot: Any) -> dict[str, Any]:
    return {"instanceRef": {"name": "pg"}, "username": "app", "passwordRotation": {"enabled": True, **rot}}


def test_the_go_operators_rotation_block_is_accepted_with_defaults() -> None:
    spec = user(
        strategy="role-inheritance",
        maxAge="90d",
        trigger="2026-12-07",
        serviceRole={"name": "app", "autoCreate": True},
        userNaming="{{.Username}}_{{.Date}}",
        oldUserPolicy={"gracePeriodDays": 3, "ownershipCheck": True},
        mysql={"discardOldPasswordAfterDays": 2},
    )
    value, errors = schema_walk("DatabaseUser", spec)
    assert errors == []
    assert value["passwordRotation"]["oldUserPolicy"]["action"] == "delete"
    assert _spec_errors(value) == []


def with_rules(spec: dict[str, Any]) -> list[Any]:
    """The API server's verdict (schema and CEL rules, through their Python twins)."""
    return normalize(SPECS["DatabaseUser"], spec, "spec", rules=predicates)[1]


def test_schedule_and_retain_are_refused_saying_what_to_use() -> None:
    text = " ".join(str(e) for e in with_rules(user(schedule="0 3 * * *")))
    assert "spec.passwordRotation.schedule" in text and "maxAge" in text
    text = " ".join(str(e) for e in with_rules(user(oldUserPolicy={"action": "retain"})))
    assert "spec.passwordRotation.oldUserPolicy.action" in text and "use delete" in text
    errors = with_rules(user(maxAge="2160h0m0s"))
    assert [e.path for e in errors] == ["spec.passwordRotation.maxAge"]


def test_what_the_schema_cannot_say() -> None:
    value, _ = schema_walk("DatabaseUser", user(serviceRole={"name": "svc_app"}))
    assert [str(e) for e in _spec_errors(value)] == [
        f"spec.passwordRotation.serviceRole.name: {rotation.SERVICE_ROLE_MESSAGE}"
    ]
    value, _ = schema_walk("DatabaseUser", {**user(), "existingPasswordSecret": {"name": "mine"}})
    assert [e.path for e in _spec_errors(value)] == ["spec.passwordRotation.enabled"]
    disabled = {**user(), "passwordRotation": {"enabled": False}, "existingPasswordSecret": {"name": "mine"}}
    value, _ = schema_walk("DatabaseUser", disabled)
    assert _spec_errors(value) == []


def test_strategy_per_engine_and_login_role_names() -> None:
    assert rotation.strategy_error("postgres", {}) is None
    assert rotation.strategy_error("mariadb", {}) is None
    assert "role-inheritance" in (rotation.strategy_error("postgres", {"strategy": "dual-password"}) or "")
    assert "dual-password" in (rotation.strategy_error("mysql", {"strategy": "role-inheritance"}) or "")
    assert rotation.login_name("app", 0) == "app" and rotation.login_name("app", 12) == "app_r12"
    assert [
        rotation.generation_of("app", n) for n in ("app_r12", "app_r0", "app_r01", "app_rx", "apq_r1")
    ] == [
        12,
        None,
        None,
        None,
        None,
    ]
