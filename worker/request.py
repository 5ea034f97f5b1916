"""Parse and validate a worker request (design section 5) before any connection is opened."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dbops_api.request import validate
from worker.errors import InvalidRequest


@dataclass(frozen=True)
class Request:
    kind: str
    engine: str
    connection: dict[str, Any]
    spec: dict[str, Any]
    owner: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    drift_mode: str = "correct"  # "ignore": apply runs only the steps that create something missing
    # What the worker says about the request itself (a newer minor version's fields it ignored).
    warnings: tuple[str, ...] = ()

    @property
    def allow_global_grants(self) -> bool:
        return bool(self.policy.get("allowGlobalGrants"))


@dataclass(frozen=True)
class Secrets:
    """Credentials from the environment only. repr() never shows them."""

    admin_username: str = field(repr=False)
    admin_password: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    # Which password DBOPS_PASSWORD is (a counter or a Secret's resourceVersion, never the password itself).
    password_revision: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def values(self) -> list[str]:
        """Every secret string, for the last-line-of-defence redaction of output."""
        return [v for v in (self.admin_password, self.password) if v]


def parse(text: str, action: str) -> Request:
    """Parse the request JSON; raise InvalidRequest naming every bad field and what is allowed."""
    checked = validate(text, action)
    if checked.value is None:
        raise InvalidRequest("; ".join(str(e) for e in checked.errors))
    value = checked.value
    return Request(
        value["kind"],
        value["engine"],
        value["connection"],
        value["spec"],
        value.get("owner", {}),
        value.get("policy", {}),
        value.get("driftMode", "correct"),
        tuple(checked.warnings),
    )


def admin_errors(request: Request, secrets: Secrets) -> list[str]:
    """The request's fields that name the account the worker connects as. Altering, dropping or revoking from
    that account, or making another role a member of it (PostgreSQL members may SET ROLE to it), would lock dbops
    out or hand its power over. Only the worker knows the admin's name (from its Secret), so only it can check,
    and it does so before connecting."""
    admin = secrets.admin_username
    spec = request.spec
    named: list[tuple[str, Any]] = []
    if request.kind == "DatabaseUser":
        named.append(("username", spec.get("username")))
        named += [(f"roles[{i}]", r) for i, r in enumerate(spec.get("roles") or [])]
        named += [
            (f"postgres.inRoles[{i}]", r)
            for i, r in enumerate((spec.get("postgres") or {}).get("inRoles") or [])
        ]
    elif request.kind == "DatabaseRole":
        named.append(("roleName", spec.get("roleName")))
        named += [
            (f"postgres.inRoles[{i}]", r)
            for i, r in enumerate((spec.get("postgres") or {}).get("inRoles") or [])
        ]
    elif request.kind == "DatabaseGrant":
        named.append(("grantee", spec.get("grantee")))
        for block in ("postgres", "mysql"):
            named += [
                (f"{block}.roles[{i}]", r) for i, r in enumerate((spec.get(block) or {}).get("roles") or [])
            ]
    return [
        f"request.spec.{path}: {admin!r} is the admin account dbops connects as; dbops does not manage it "
        "(choose another name)"
        for path, name in named
        if name == admin
    ]


def secrets_from_env(request: Request, env: os._Environ[str] | dict[str, str] = os.environ) -> Secrets:
    """Read the credentials the Job's spec maps in from Secrets (never from the request)."""
    missing = [k for k in ("DBOPS_ADMIN_USERNAME", "DBOPS_ADMIN_PASSWORD") if k not in env]
    if missing:
        raise InvalidRequest(
            f"environment: {', '.join(missing)} not set (the Job maps them from the admin Secret)"
        )
    password = env.get("DBOPS_PASSWORD")
    if password is not None and not password:
        raise InvalidRequest("environment: DBOPS_PASSWORD is empty; the credentials Secret has no password")
    return Secrets(
        admin_username=env["DBOPS_ADMIN_USERNAME"],
        admin_password=env["DBOPS_ADMIN_PASSWORD"],
        password=password,
        password_revision=(env.get("DBOPS_CREDENTIAL_REVISION") or None) if password is not None else None,
        tls_ca=env.get("DBOPS_TLS_CA") or None,
        tls_cert=env.get("DBOPS_TLS_CERT") or None,
        tls_key=env.get("DBOPS_TLS_KEY") or None,
    )
