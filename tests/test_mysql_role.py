"""DatabaseRole on a real MariaDB: a role with its privileges, a member that logs in and uses them through its
default role, a grant removed from the spec revoked, the drop (memberships and default roles included), a role
dbops did not create refused. MySQL 8's statements are checked at plan level (no MySQL 8 server here)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_mysql_support import account, denied, query_as, writes_during
from worker.adapters.base import ServerInfo
from worker.adapters.mysql_account import AccountState
from worker.adapters.mysql_grants import GrantState
from worker.adapters.mysql_group_role import (
    DatabaseRoleHandler,
    GroupState,
    RoleState,
    check_server,
    member_parts,
)
from worker.errors import PermanentError

PASSWORD = "R0le-Member-Pa55word"


def world(maria: Server) -> str:
    db = unique("db")
    maria.query(f"CREATE DATABASE `{db}`")
    maria.query(f"CREATE TABLE `{db}`.t (a INT)")
    maria.query(f"CREATE TABLE `{db}`.t2 (a INT)")
    return db


def role_spec(name: str, db: str, *tables: str) -> dict[str, Any]:
    grants = [{"level": "table", "database": db, "table": t, "privileges": ["SELECT"]} for t in tables]
    return {"roleName": name, "mysql": {"grants": grants}}


@pytest.mark.mariadb
def test_role_members_privileges_shrink_noop_and_drop(maria: Server) -> None:
    db = world(maria)
    name = unique("readers")
    spec = role_spec(name, db, "t", "t2")
    first = apply_ok(maria, "DatabaseRole", spec)
    assert account(maria, name, "") is not None and account(maria, name, "")["is_role"] is True  # type: ignore[index]
    assert first.result["observed"]["members"] == []

    user = unique("member")
    apply_ok(maria, "DatabaseUser", {"username": user, "roles": [name]}, password=PASSWORD, owner="member")
    assert account(maria, user)["default_role"] == name  # type: ignore[index]
    # A real login: the default role is active, its privileges work, nothing else does.
    assert query_as(maria, user, PASSWORD, f"SELECT * FROM `{db}`.t") == []
    assert query_as(maria, user, PASSWORD, f"SELECT * FROM `{db}`.t2") == []
    assert denied(maria, user, PASSWORD, f"INSERT INTO `{db}`.t VALUES (1)")

    again, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseRole", spec))
    assert writes == []
    assert again.result["statements"]["writes"] == 0
    assert again.result["observed"] == {"roleName": name, "members": [f"{user}@%"], "privileges": 2}

    # t2 leaves the spec: revoked from the role (remembered minus desired); t stays.
    shrunk = role_spec(name, db, "t")
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseRole", shrunk))
    assert any("REVOKE" in w.text and "t2" in w.text for w in writes), [w.text for w in writes]
    assert denied(maria, user, PASSWORD, f"SELECT * FROM `{db}`.t2")
    assert query_as(maria, user, PASSWORD, f"SELECT * FROM `{db}`.t") == []
    _, writes = writes_during(maria, lambda: apply_ok(maria, "DatabaseRole", shrunk))
    assert writes == []

    # The drop: the role goes, with its memberships, and no account keeps it as its default role.
    dropped = run(maria, "drop", "DatabaseRole", shrunk)
    assert dropped.code == 0, dropped.result
    assert account(maria, name, "") is None
    assert maria.query("SELECT 1 FROM mysql.roles_mapping WHERE Role = %s", (name,)) == []
    assert account(maria, user).get("default_role", "") == ""  # type: ignore[union-attr]
    assert denied(maria, user, PASSWORD, f"SELECT * FROM `{db}`.t")
    assert maria.query("SELECT 1 FROM `_dbops`.`owners` WHERE object_name = %s", (name,)) == []
    assert run(maria, "drop", "DatabaseRole", shrunk).code == 0


@pytest.mark.mariadb
def test_a_role_dbops_did_not_create_is_refused(maria: Server) -> None:
    db = world(maria)
    by_hand = unique("byhand")
    maria.query(f"CREATE ROLE `{by_hand}`")
    refused = run(maria, "apply", "DatabaseRole", role_spec(by_hand, db, "t"))
    assert refused.code != 0 and refused.error["code"] == "UnmanagedObject", refused.result
    assert maria.query(f"SHOW GRANTS FOR `{by_hand}`") == [(f"GRANT USAGE ON *.* TO `{by_hand}`",)]

    # A user account of that name is not a role either.
    user = unique("user")
    apply_ok(maria, "DatabaseUser", {"username": user}, password=PASSWORD)
    clash = run(maria, "apply", "DatabaseRole", role_spec(user, db, "t"))
    assert clash.code != 0 and clash.error["code"] == "AlreadyExists", clash.result

    adopted = apply_ok(maria, "DatabaseRole", {**role_spec(by_hand, db, "t"), "adopt": True})
    assert adopted.result["observed"]["privileges"] == 1


class _Adapter:
    """Just what the handler reads from its adapter, for the MySQL 8 plans (no MySQL 8 server here)."""

    def __init__(self, version: tuple[int, ...]) -> None:
        self.server = ServerInfo("mysql", ".".join(map(str, version)), version)
        self.request = type("R", (), {"owner": {"kind": "DatabaseRole", "namespace": "ns", "name": "r"}})()
        self.secrets = type("S", (), {"admin_username": "admin"})()


def test_mysql8_statements_at_plan_level() -> None:
    adapter = _Adapter((8, 0, 36))
    handler = DatabaseRoleHandler(adapter)  # type: ignore[arg-type]
    parts = member_parts(adapter.server, "readers")
    assert "mysql.role_edges" in parts[0][0] and "mysql.default_roles" in parts[1][0]
    # What observe makes of a role the plan creates: its account, holding nothing yet.
    new = GroupState(RoleState(exists=False), GrantState(accounts={"%": AccountState("%", "")}))
    spec = {"roleName": "readers", "mysql": {"grants": []}}
    plan = handler.plan(spec, new)
    assert [s.summary for s in plan.steps if "owners" not in s.summary] == ["CREATE ROLE `readers`"]
    mine = "managed by dbops for DatabaseRole ns/r"
    existing = GroupState(
        RoleState(exists=True, marker=mine, default_of=[("u", "%")]),
        GrantState(accounts={"%": AccountState("%", "")}),
    )
    drop = [s.summary for s in handler.plan_drop(spec, existing).steps]
    # MySQL 8's DROP ROLE also removes it from mysql.default_roles: no statement of dbops' own for that.
    assert drop[0] == "DROP ROLE `readers`" and not any("DEFAULT ROLE" in s for s in drop)
    with pytest.raises(PermanentError, match=r"MySQL 5\.7\.44 has no roles"):
        check_server(ServerInfo("mysql", "5.7.44", (5, 7, 44)))


def test_adopting_an_existing_role_is_no_creation_step() -> None:
    """driftPolicy ignore runs only creation steps, and adoption changes an existing object: ignore never marks a role
    as it does not mark a user or a database (docs/worker.md, "Drift policy")."""
    adapter = _Adapter((8, 0, 36))
    handler = DatabaseRoleHandler(adapter)  # type: ignore[arg-type]
    existing = GroupState(
        RoleState(exists=True, catalog_exists=True), GrantState(accounts={"%": AccountState("%", "")})
    )
    plan = handler.plan({"roleName": "readers", "adopt": True, "mysql": {"grants": []}}, existing)
    assert [s.summary for s in plan.steps if "owners" in s.summary] != [], "adoption writes the role's row"
    assert not [s.summary for s in plan.steps if s.creates], "and that row creates nothing"
