"""Request parsing, validation and result rendering: the worker's answers before it touches a server."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.conftest import WORKER
from worker.errors import InvalidRequest, PermanentError
from worker.request import parse, secrets_from_env
from worker.result import RESULT_LIMIT, Result, render


def base(kind: str = "DatabaseUser", engine: str = "postgres", **spec: Any) -> dict[str, Any]:
    default_spec: dict[str, Any] = {
        "DatabaseUser": {"username": "app"},
        "Database": {"name": "app"},
        "DatabaseGrant": {"grantee": "app"},
        "DatabaseInstance": {},
    }[kind]
    return {
        "kind": kind,
        "engine": engine,
        "connection": {"host": "db.example.com", "port": 5432},
        "spec": {**default_spec, **spec},
        "owner": {"kind": kind, "namespace": "default", "name": "app"},
    }


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown kind", {**base(), "kind": "Table"}, "kind: must be one of"),
    (
        "unknown engine",
        {**base(), "engine": "oracle"},
        "request.engine: must be one of postgres, mysql, mariadb",
    ),
    ("missing spec", {k: v for k, v in base().items() if k != "spec"}, "request.spec: is required"),
    (
        "no owner",
        {k: v for k, v in base().items() if k != "owner"},
        "request.owner.kind: is required: dbops marks the objects it creates with their claim",
    ),
    (
        "port as string",
        {**base(), "connection": {"host": "h", "port": "5432"}},
        "request.connection.port: must be an integer",
    ),
    ("port out of range", {**base(), "connection": {"host": "h", "port": 70000}}, "between 1 and 65535"),
    (
        "host injection",
        {**base(), "connection": {"host": "h' OR 1=1", "port": 1}},
        "request.connection.host: must match",
    ),
    ("quote in username", base(username='a"b'), "request.spec.username: must match"),
    ("semicolon in name", base("Database", name="x;DROP DATABASE y"), "request.spec.name: must match"),
    ("overlong name", base("Database", name="a" * 64), "request.spec.name: must be at most 63 characters"),
    ("unicode name", base("Database", name="d\u0430ta"), "request.spec.name: must match"),
    ("reserved role", base(username="public"), "reserved in PostgreSQL"),
    ("pg_ role", base(username="pg_monitor2"), "starting with pg_ are reserved"),
    (
        "mysql options on postgres",
        base(mysql={"requireSSL": True}),
        "spec.mysql needs engine mysql or mariadb",
    ),
    (
        "postgres options on mariadb",
        base(engine="mariadb", postgres={"login": True}),
        "spec.postgres needs engine postgres",
    ),
    (
        "owner on mysql",
        base("Database", engine="mysql", owner="x"),
        "request.spec.owner: applies to PostgreSQL only",
    ),
    ("unknown field", base(superuser=True), "request.spec.superuser: unknown field"),
    ("wrong type bool", base(postgres={"login": "yes"}), "request.spec.postgres.login: must be a boolean"),
    (
        "prefer on mariadb",
        {**base(engine="mariadb"), "connection": {"host": "h", "port": 1, "sslMode": "prefer"}},
        "sslMode allow and prefer exist on PostgreSQL only",
    ),
    ("duplicate roles", base(roles=["a", "a"]), "request.spec.roles[1]: duplicate entry"),
    ("long mysql user", base(engine="mysql", username="u" * 33), "at most 32 characters on MySQL"),
    ("grant without grantee", base("DatabaseGrant", grantee=None), "request.spec.grantee: must be a string"),
    ("instance with apply", base("DatabaseInstance"), "supports only the check action"),
]


@pytest.mark.parametrize(("reason", "raw", "expected"), BAD, ids=[b[0] for b in BAD])
def test_invalid_requests_name_the_field(reason: str, raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(json.dumps(raw), "apply")
    assert expected in info.value.message
    assert info.value.exit_code == 2


def test_defaults_fill_the_engine_block() -> None:
    request = parse(json.dumps(base()), "apply")
    assert request.spec["postgres"]["login"] is True
    assert request.spec["postgres"]["inherit"] is True
    assert request.spec["postgres"]["superuser"] is False
    assert request.connection["statementTimeout"] == "60s"
    maria = parse(json.dumps(base(engine="mariadb")), "apply")
    assert maria.spec["mysql"]["allowedHosts"] == ["%"]
    assert "postgres" not in maria.spec


def test_not_json() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse("{kind: x", "apply")


def test_secrets_come_only_from_the_environment() -> None:
    request = parse(json.dumps(base()), "apply")
    with pytest.raises(InvalidRequest, match="DBOPS_ADMIN_PASSWORD"):
        secrets_from_env(request, {"DBOPS_ADMIN_USERNAME": "admin"})
    creds = secrets_from_env(
        request, {"DBOPS_ADMIN_USERNAME": "admin", "DBOPS_ADMIN_PASSWORD": "s3cret-value"}
    )
    assert "s3cret-value" not in repr(creds)


def test_result_is_bounded_and_redacted() -> None:
    secret = "Sup3r-Secret-Passw0rd"
    result = Result(
        kind="DatabaseGrant", action="apply", changes=[f"GRANT SELECT ON t{i} TO app" for i in range(500)]
    )
    result.error = PermanentError("Boom", f"failed near '{secret}'")
    line = render(result, [secret])
    assert len(line.encode()) <= RESULT_LIMIT
    data = json.loads(line)
    assert data["changes"][-1].startswith("... and ")
    assert secret not in line
    assert data["error"] == {"class": "permanent", "code": "Boom", "message": "failed near '***'"}


def test_cli_rejects_a_bad_request_before_connecting() -> None:
    """The bad request points at a listening socket; the worker must answer without ever connecting to it."""
    import subprocess

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        raw = base("Database", name="bad name")
        raw["connection"] = {"host": "127.0.0.1", "port": port}
        proc = subprocess.run(
            [WORKER, "apply"],
            env={
                "DBOPS_REQUEST": json.dumps(raw),
                "DBOPS_ADMIN_USERNAME": "a",
                "DBOPS_ADMIN_PASSWORD": "b",
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with pytest.raises(TimeoutError):
            listener.accept()
    assert proc.returncode == 2
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is False
    assert result["error"]["code"] == "InvalidRequest"
    assert "request.spec.name" in result["error"]["message"]
    assert "request.spec.name" in proc.stderr
