"""DatabaseUser password rotation on PostgreSQL (strategy role-inheritance; docs/worker.md, "Password rotation").

The role `username` holds the privileges, memberships and objects. Each rotation creates a login role
`<username>_r<N>` (generation N): a member of `username` with INHERIT, `ALTER ROLE ... SET role = username` so
what it creates is owned by the shared role, dbops' ownership marker as comment, and the new password (a SCRAM
verifier, never the password). Older credentials (the user itself is generation 0) keep working until the
request's `retireBefore` passes them: then a login role is dropped (or set NOLOGIN when it owns objects or
`oldUserAction` is disable) and the user itself is set NOLOGIN (never dropped: it holds everything).

Everything is read back from the catalog (the generations are in the role names), so a lost status or a Job
killed between two statements is found and finished by the next run; a converged re-run writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbops_api.rotation import generation_of, login_name
from worker.adapters.base import Step
from worker.adapters.pg_sql import Catalog, ident, step
from worker.errors import PermanentError
from worker.ownership import Owner, claim_object
from worker.ownership import parse as parse_marker

LOGIN_ROLES_SQL = """
SELECT r.rolname::text, r.rolcanlogin, shobj_description(r.oid, 'pg_authid'),
       EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid AND m.roleid = b.oid),
       coalesce(r.rolconfig, '{}'),
       (SELECT count(*) FROM pg_shdepend s WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid),
       r.rolinherit
  FROM pg_roles r, pg_roles b
 WHERE b.rolname = %(base)s AND starts_with(r.rolname, %(prefix)s)
"""


@dataclass
class LoginRole:
    name: str
    generation: int
    login: bool
    marker: str | None
    member: bool  # a direct member of the user's role
    sets_role: bool  # ALTER ROLE ... SET role = <username>
    dependencies: int  # pg_shdepend rows: owns or holds something, so DROP ROLE would fail
    inherit: bool


@dataclass
class RotationObserved:
    roles: dict[int, LoginRole] = field(default_factory=dict)  # generation -> login role
    verified: bool | None = None  # a login with DBOPS_PASSWORD as the requested (or newest) generation


def observe(
    catalog: Catalog, username: str, password: str | None, rotation: dict[str, Any]
) -> RotationObserved:
    out = RotationObserved()
    rows = catalog.query(LOGIN_ROLES_SQL, {"base": username, "prefix": username + "_r"})
    for name, login, marker, member, config, deps, inherit in rows:
        generation = generation_of(username, name)
        if generation is None:
            continue
        sets_role = any(entry == f"role={username}" for entry in config or ())
        out.roles[generation] = LoginRole(
            name, generation, bool(login), marker, bool(member), sets_role, int(deps), bool(inherit)
        )
    generation = rotation.get("generation", max(out.roles, default=0))
    role = out.roles.get(generation)
    if password is not None and generation > 0 and role is not None and role.login:
        # A real login: what the Secret switch waits for (status.user.rotation.verified).
        out.verified = catalog.password_works(role.name, password)
    return out


def base_login(rotation: dict[str, Any], spec_login: bool, observed_login: bool) -> bool:
    """Whether the user's own role keeps LOGIN: until generation 0 is retired (read-only without a generation)."""
    if "generation" not in rotation:
        return observed_login
    return spec_login and rotation.get("retireBefore", 0) == 0


def manages_base_password(rotation: dict[str, Any]) -> bool:
    """DBOPS_PASSWORD is the user's own password only at generation 0."""
    return rotation.get("generation") == 0


def plan(
    username: str,
    rotation: dict[str, Any],
    observed: RotationObserved,
    owner: Owner,
    password_steps: Any,
) -> tuple[list[Step], list[str]]:
    """(steps, warnings). `password_steps(name, matches, exists)` gives the steps that set a role's password."""
    if "generation" not in rotation:
        return [], []
    steps: list[Step] = []
    warnings: list[str] = []
    generation = int(rotation["generation"])
    if generation > 0:
        steps += _login_role_steps(username, generation, observed, owner, password_steps)
    retire_before = min(int(rotation.get("retireBefore", 0)), generation)
    delete = rotation.get("oldUserAction", "delete") == "delete"
    for old in sorted(g for g in observed.roles if g < retire_before):
        role = observed.roles[old]
        claim_object(f"role {role.name}", True, role.marker, owner, False)
        if delete and role.dependencies == 0:
            steps.append(
                step(
                    f"DROP ROLE {ident(role.name)}",
                    f"rotation: generation {old} is past its grace period (oldUserPolicy.action delete)",
                )
            )
            continue
        if delete:
            warnings.append(
                f"rotation: login role {role.name} owns or holds {role.dependencies} object(s) or privilege(s), "
                f"so it is set NOLOGIN instead of dropped; REASSIGN OWNED BY {role.name} TO {username} and "
                "DROP OWNED, then it is dropped at the next run"
            )
        if role.login:
            steps.append(
                step(
                    f"ALTER ROLE {ident(role.name)} WITH NOLOGIN",
                    f"rotation: generation {old} is past its grace period",
                )
            )
    return steps, warnings


def _login_role_steps(
    username: str, generation: int, observed: RotationObserved, owner: Owner, password_steps: Any
) -> list[Step]:
    name = login_name(username, generation)
    role = observed.roles.get(generation)
    out: list[Step] = []
    if role is None:
        out.append(
            step(
                f"CREATE ROLE {ident(name)} WITH LOGIN INHERIT IN ROLE {ident(username)}",
                f"rotation: the login role of generation {generation} does not exist",
            )
        )
        out.append(
            step(
                f"COMMENT ON ROLE {ident(name)} IS %(marker)s",
                f"role {name} is new: it is marked as {owner}'s",
                {"marker": owner.marker},
            )
        )
        out.append(
            step(
                f"ALTER ROLE {ident(name)} SET role = {ident(username)}",
                f"role {name} is new: what it creates is owned by {username}",
            )
        )
        out += password_steps(name, False, False)
        return out
    claim_object(f"role {name}", True, role.marker, owner, False)
    if role.login and observed.verified is None and password_steps(name, None, True):
        # The Secret is switched only to a credential a login proved: a refusal before the password was checked
        # (pg_hba.conf, network) proves nothing, so the step fails rather than look done.
        raise PermanentError(
            "CredentialNotVerified",
            f"rotation: a login as {name} was refused before its password was checked (pg_hba.conf, network); "
            "dbops switches the credentials Secret only to a credential it has logged in with: let the worker "
            f"log in as {name} (pg_hba.conf)",
        )
    if not role.login or not role.inherit:
        out.append(step(f"ALTER ROLE {ident(name)} WITH LOGIN INHERIT", f"role {name} lost LOGIN or INHERIT"))
    if not role.member:
        out.append(
            step(f"GRANT {ident(username)} TO {ident(name)}", f"role {name} is not a member of {username}")
        )
    if not role.sets_role:
        out.append(
            step(f"ALTER ROLE {ident(name)} SET role = {ident(username)}", f"role {name} does not SET role")
        )
    out += password_steps(name, observed.verified, True)
    return out


def drop_steps(username: str, observed: RotationObserved | None, owner: Owner) -> list[Step]:
    """Dropping the user drops its rotation login roles first (those marked for this claim): left behind, they
    would still log in. One that owns anything blocks the drop, naming it and the fix."""
    out: list[Step] = []
    for generation, role in sorted((observed or RotationObserved()).roles.items()):
        found = parse_marker(role.marker)
        if found is None or not found.same(owner):
            continue
        if role.dependencies:
            raise PermanentError(
                "DependentObjects",
                f"role {username} cannot be dropped: its rotation login role {role.name} owns or holds "
                f"{role.dependencies} object(s) or privilege(s). Resolve: REASSIGN OWNED BY {role.name} TO "
                f"{username}; DROP OWNED BY {role.name} (in each database), then drop again",
            )
        out.append(
            step(
                f"DROP ROLE {ident(role.name)}",
                f"the login role of rotation generation {generation} goes with {username}",
            )
        )
    return out


def facts(rotation: dict[str, Any], observed: RotationObserved, base_can_login: bool) -> dict[str, Any]:
    active = sorted(g for g, r in observed.roles.items() if r.login)
    if base_can_login:
        active.insert(0, 0)
    newest = max(observed.roles, default=0)
    return {
        "generation": int(rotation.get("generation", newest)) if "generation" in rotation else newest,
        "verified": bool(observed.verified),
        "active": active,
    }


def check_request(username: str, rotation: dict[str, Any]) -> None:
    if rotation.get("strategy") != "role-inheritance":
        raise PermanentError(
            "InvalidSpec",
            "spec.passwordRotation.strategy: PostgreSQL keeps one password per role; use role-inheritance",
        )
    if len(login_name(username, int(rotation.get("generation", 0)))) > 63:
        raise PermanentError(
            "InvalidSpec",
            f"spec.username: {username}_r<N> must fit PostgreSQL's 63 bytes for rotation; use a shorter username",
        )
