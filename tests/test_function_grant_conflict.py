"""A DatabaseUser's databaseRef (a minimum: CONNECT and TEMPORARY, USAGE on schema public; MySQL/MariaDB: ALL
PRIVILEGES) and a DatabaseGrant's database-level entry for the same account (an exact set) would revoke each other's
privileges on every run. The function refuses such a grant whether it names the account with `userRef` or by its
name with `roleName` (docs/worker.md, "Name each pair in one place"): table-driven, at the function, with the
claims Crossplane would return."""

from __future__ import annotations

import asyncio
import copy
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function.fn import FunctionRunner
from tests.function_cases import kube

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
EXAMPLES = {
    d["metadata"]["name"]: d
    for path in ("quickstart.yaml", "quickstart-mariadb.yaml")
    for d in kube.load_yaml(kube.ROOT / "examples" / path)
}
INPUT = kube.composition_input("DatabaseGrant")
ENGINE_OBJECTS = {
    # engine: (instance claim, Database claim, DatabaseUser claim) of the quick starts
    "postgres": ("postgres-server", "myapp-db", "myapp-user"),
    "mariadb": ("mariadb-server", "shop-db", "shop-user"),
}


def example(name: str, **changes: Any) -> dict[str, Any]:
    doc = EXAMPLES[name]
    spec = {**copy.deepcopy(doc["spec"]), **changes}
    return kube.claim(doc["kind"], name, spec)


@dataclass
class Case:
    id: str
    engine: str
    grant: dict[str, Any]  # the DatabaseGrant's spec
    user: dict[str, Any] = field(default_factory=dict)  # changes to the quick start's DatabaseUser spec
    user_meta: dict[str, Any] = field(default_factory=dict)  # metadata added to the DatabaseUser
    refused: str | None = None  # a part of the message when refused


PG_CONNECT = {"database": "myapp", "privileges": ["CONNECT"]}
PG_INSTANCE = {"instanceRef": {"name": "postgres-server"}}
MARIA_SELECT = {"level": "database", "database": "shop", "privileges": ["SELECT"]}
MARIA_INSTANCE = {"instanceRef": {"name": "mariadb-server"}}
BY_NAME = "DatabaseUser myapp-user (username myapp, the role spec.roleName names) already gives its user"

CASES = [
    Case(
        "userRef-connect-only",
        "postgres",
        {"userRef": {"name": "myapp-user"}, "postgres": {"grants": [PG_CONNECT]}},
        refused="DatabaseUser myapp-user already gives its user CONNECT and TEMPORARY on database myapp",
    ),
    Case(
        "roleName-connect-only",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        refused=f"{BY_NAME} CONNECT and TEMPORARY on database myapp",
    ),
    Case(
        "roleName-database-from-databaseRef",
        "postgres",
        {
            "roleName": "myapp",
            "databaseRef": {"name": "myapp-db"},
            "postgres": {"grants": [{"privileges": []}]},
        },
        refused=f"{BY_NAME} CONNECT and TEMPORARY on database myapp",
    ),
    Case(
        "roleName-schema-public-without-usage",
        "postgres",
        {
            "roleName": "myapp",
            **PG_INSTANCE,
            "postgres": {"grants": [{"database": "myapp", "schema": "public", "privileges": ["CREATE"]}]},
        },
        refused=f"{BY_NAME} USAGE on schema public on database myapp",
    ),
    Case(
        "roleName-includes-what-databaseRef-gives",
        "postgres",
        {
            "roleName": "myapp",
            **PG_INSTANCE,
            "postgres": {"grants": [{"database": "myapp", "privileges": ["CONNECT", "TEMP", "CREATE"]}]},
        },
    ),
    Case(
        "roleName-table-level-only",
        "postgres",
        {
            "roleName": "myapp",
            **PG_INSTANCE,
            "postgres": {
                "grants": [
                    {"database": "myapp", "schema": "public", "tables": ["t"], "privileges": ["SELECT"]}
                ]
            },
        },
    ),
    Case(
        "roleName-another-account",
        "postgres",
        {"roleName": "reporting", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
    ),
    Case(
        "roleName-another-database",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [{**PG_CONNECT, "database": "other"}]}},
    ),
    Case(
        "roleName-user-on-another-instance",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        user={"instanceRef": {"name": "postgres-two"}},
    ),
    Case(
        "roleName-user-owns-the-database",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        user={"postgres": {"databaseAccess": "Owner"}},
    ),
    Case(
        "roleName-user-without-databaseRef",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        user={"databaseRef": None},
    ),
    Case(
        "roleName-user-absent",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        user={"ensure": "Absent", "deletionProtection": False},
    ),
    Case(
        "roleName-user-being-deleted",
        "postgres",
        {"roleName": "myapp", **PG_INSTANCE, "postgres": {"grants": [PG_CONNECT]}},
        user_meta={"deletionTimestamp": "2026-12-07T02:59:00Z"},
    ),
    Case(
        "mariadb-userRef-subset",
        "mariadb",
        {"userRef": {"name": "shop-user"}, "mysql": {"grants": [MARIA_SELECT]}},
        refused="DatabaseUser shop-user already gives its user ALL PRIVILEGES on database shop",
    ),
    Case(
        "mariadb-roleName-subset",
        "mariadb",
        {"roleName": "shop", **MARIA_INSTANCE, "mysql": {"grants": [MARIA_SELECT]}},
        refused="DatabaseUser shop-user (username shop, the role spec.roleName names) already gives its user "
        "ALL PRIVILEGES on database shop",
    ),
    Case(
        "mariadb-roleName-all",
        "mariadb",
        {
            "roleName": "shop",
            **MARIA_INSTANCE,
            "mysql": {"grants": [{**MARIA_SELECT, "privileges": ["ALL"]}]},
        },
    ),
    Case(
        "mariadb-roleName-user-not-on-percent",
        "mariadb",
        {"roleName": "shop", **MARIA_INSTANCE, "mysql": {"grants": [MARIA_SELECT]}},
        user={"mysql": {"allowedHosts": ["10.0.0.%"]}},
    ),
]


def call(xr: dict[str, Any], required: dict[str, list[dict[str, Any]]]) -> fnv1.RunFunctionResponse:
    runner = FunctionRunner(clock=lambda: NOW, rng=random.Random(7))
    return asyncio.run(runner.RunFunction(kube.request(xr, required=required, input_=INPUT)))


def scene(case: Case) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    instance, database, user_name = ENGINE_OBJECTS[case.engine]
    changes = {k: v for k, v in case.user.items() if v is not None}
    user = example(user_name, **changes)
    for key in (k for k, v in case.user.items() if v is None):
        user["spec"].pop(key)
    user["metadata"].update(case.user_meta)
    other_user = kube.claim(
        "DatabaseUser", "someone", {"username": "someone", "instanceRef": {"name": instance}}
    )
    xr = kube.xr_from_claim(kube.claim("DatabaseGrant", "g", case.grant))
    required = {
        "instance": [example(instance)],
        "user": [user],
        "database": [example(database)],
        "user-database": [example(database)],
        "users": [other_user, user],
    }
    return xr, required


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_grant_undoing_a_users_database_access_is_refused_however_it_names_the_user(case: Case) -> None:
    xr, required = scene(case)
    rsp = call(xr, required)
    status = kube.status(rsp)
    if case.refused is None:
        assert status.get("phase") != "Failed", status
        assert kube.jobs(rsp), status  # composed: a Job runs the grant
        return
    assert status["phase"] == "Failed", status
    message = status["message"]
    assert case.refused in message, message
    user_claim = ENGINE_OBJECTS[case.engine][2]
    # Both claims and the fix are named.
    assert f"remove databaseRef from DatabaseUser {user_claim}" in message
    assert "or remove this entry, or make it include" in message
    assert not kube.jobs(rsp)


def test_a_role_name_grant_asks_for_the_users_only_when_an_entry_could_undo_a_database_ref() -> None:
    could = next(c for c in CASES if c.id == "roleName-connect-only")
    xr, required = scene(could)
    del required["users"]
    rsp = call(xr, required)
    selector = rsp.requirements.resources["users"]
    assert (selector.kind, selector.namespace) == ("DatabaseUser", kube.NAMESPACE)
    assert selector.WhichOneof("match") == "match_labels" and dict(selector.match_labels.labels) == {}
    assert not kube.jobs(rsp)  # it waits for the answer

    cannot = next(c for c in CASES if c.id == "roleName-includes-what-databaseRef-gives")
    xr, required = scene(cannot)
    del required["users"]
    rsp = call(xr, required)
    assert "users" not in rsp.requirements.resources
    assert kube.jobs(rsp)
