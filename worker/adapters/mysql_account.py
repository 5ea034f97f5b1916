"""DatabaseUser on MySQL/MariaDB: one account per allowed host, its options, password, roles and database.

Passwords (docs/worker-mysql.md):
- mysql_native_password (both flavors): the hash `*` + upper hex SHA1(SHA1(password)) is computed here and sent
  as a hash; "unchanged" means the stored authentication string equals it.
- ed25519 (MariaDB): the public key MariaDB stores is computed here with libsodium (PyNaCl) and sent with
  `IDENTIFIED VIA ed25519 USING '<key>'`; "unchanged" compares it with the stored one.
- caching_sha2_password / sha256_password (MySQL 8): the stored hash is salted per account, so the password is
  sent (MySQL rewrites it out of its general and binary logs) and "unchanged" is decided by a login attempt.
Statements carrying a hash or password run with the general log switched off for the session where the admin may.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dbops_api.mysql_privileges import level_privileges
from worker.adapters import mysql_catalog as catalog
from worker.adapters import mysql_rotation
from worker.adapters.base import KindHandler, Plan, ServerInfo, Step, creating
from worker.adapters.mysql_login import client_host, login_decides
from worker.adapters.mysql_sql import (
    Account,
    Sql,
    db_pattern,
    ident,
    is_mariadb,
    placeholders,
    row,
)
from worker.errors import PermanentError
from worker.ownership import Claim, Owner, claim_object
from worker.ownership import parse as parse_marker

if TYPE_CHECKING:
    from worker.adapters.mysql import MySQLAdapter

NATIVE = "mysql_native_password"
ED25519 = "ed25519"
CACHING_SHA2 = "caching_sha2_password"
SHA256 = "sha256_password"

# Plugins whose password dbops can set, per flavor.
SETTABLE = {"mariadb": frozenset({NATIVE, ED25519}), "mysql": frozenset({NATIVE, CACHING_SHA2, SHA256})}
# Plugins where "unchanged" needs a login attempt (the stored hash is salted).
LOGIN_VERIFIED = frozenset({CACHING_SHA2, SHA256})

# Credentials no password can match, for accounts created while the password is not managed (an account without
# any credential would accept an empty password). MySQL uses the same for its own mysql.sys account.
NO_LOGIN = {
    "mariadb": (NATIVE, "invalid"),
    "mysql": (CACHING_SHA2, "$A$005$THISISACOMBINATIONOFINVALIDSALTANDPASSWORDTHATMUSTNEVERBRBEUSED"),
}

LIMITS = (
    ("maxQueriesPerHour", "max_questions", "MAX_QUERIES_PER_HOUR"),
    ("maxUpdatesPerHour", "max_updates", "MAX_UPDATES_PER_HOUR"),
    ("maxConnectionsPerHour", "max_connections", "MAX_CONNECTIONS_PER_HOUR"),
    ("maxUserConnections", "max_user_connections", "MAX_USER_CONNECTIONS"),
)
_MARIADB_SSL_TYPES = {0: "", 1: "ANY", 2: "X509", 3: "SPECIFIED"}
_REQUIRE = {"": "NONE", "ANY": "SSL", "X509": "X509"}


# --- password hashes ------------------------------------------------------------------------------------------------


def native_hash(password: str) -> str:
    """mysql_native_password's stored form: `*` + upper hex SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode()).digest()  # noqa: S324 (the plugin's algorithm, not our choice)
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def ed25519_hash(password: str) -> str:
    """MariaDB ed25519's stored form: base64 (unpadded) of the Ed25519 public key whose secret scalar is the
    clamped first half of SHA512(password)."""
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

    scalar = bytearray(hashlib.sha512(password.encode()).digest()[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    public = crypto_scalarmult_ed25519_base_noclamp(bytes(scalar))
    return base64.b64encode(public).decode().rstrip("=")


def stored_form(plugin: str, password: str) -> str | None:
    """What the server stores for `password` under `plugin`, when it can be computed here."""
    if plugin == NATIVE:
        return native_hash(password)
    if plugin == ED25519:
        return ed25519_hash(password)
    return None


# --- observed state ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountState:
    host: str
    plugin: str
    auth_string: str = field(default="", repr=False)
    ssl_type: str = ""  # "" | "ANY" | "X509" | "SPECIFIED"
    limits: tuple[int, ...] = (0, 0, 0, 0)  # in LIMITS order
    locked: bool = False
    is_role: bool = False
    default_roles: tuple[str, ...] = ()
    # MariaDB: every (plugin, authentication string) of an `IDENTIFIED VIA ... OR ...` chain, the primary first
    credentials: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    secondary: bool = False  # MySQL 8: a retained (secondary) password exists (read only for a rotation)


def account_from_json(host: str, data: dict[str, Any], flavor: str) -> AccountState:
    """One account from MariaDB's mysql.global_priv JSON or the JSON object built from MySQL's mysql.user."""
    plugin = str(data.get("plugin") or NATIVE)
    chain = data.get("auth_or")
    if isinstance(chain, list) and len(chain) > 1:
        plugin = " OR ".join(str(entry.get("plugin") or plugin) for entry in chain)
    ssl_type = data.get("ssl_type", 0)
    if flavor == "mariadb":
        ssl_type = _MARIADB_SSL_TYPES.get(int(ssl_type or 0), "SPECIFIED")
    locked = data.get("account_locked", False)
    default_role = str(data.get("default_role") or "")
    top = (str(data.get("plugin") or NATIVE), str(data.get("authentication_string") or ""))
    credentials = tuple(
        (str(e.get("plugin") or top[0]), str(e.get("authentication_string") or "")) if e else top
        for e in (chain if isinstance(chain, list) and chain else [{}])
        if isinstance(e, dict)
    )
    return AccountState(
        host=host,
        plugin=plugin,
        auth_string=str(data.get("authentication_string") or ""),
        ssl_type=str(ssl_type or "").upper(),
        limits=tuple(int(data.get(column) or 0) for _, column, _ in LIMITS),
        locked=locked is True or str(locked).upper() in ("Y", "1", "TRUE"),
        is_role=bool(data.get("is_role")),
        default_roles=(default_role,) if default_role else (),
        credentials=credentials,
        secondary=bool(data.get("secondary")),
    )


@dataclass(frozen=True)
class UserState:
    accounts: dict[str, AccountState]  # host -> account (roles excluded)
    is_role: bool = False  # the name is a MariaDB role
    roles: dict[str, frozenset[str]] = field(default_factory=dict)  # host -> roles granted
    # host -> the roles held WITH ADMIN OPTION
    admin_roles: dict[str, frozenset[str]] = field(default_factory=dict)
    known_roles: frozenset[str] = frozenset()  # which of the spec's roles exist
    db_privileges: dict[str, frozenset[str]] = field(
        default_factory=dict
    )  # host -> privileges on spec.database
    plugin_status: str | None = None  # information_schema.PLUGINS status of spec's authPlugin
    partial_revokes: bool = False
    login_ok: bool | None = (
        None  # MySQL: whether the password logs in (salted plugins; None: no login decides)
    )
    owners: dict[str, catalog.Entry] = field(default_factory=dict)  # host -> its row in dbops' catalog
    catalog_exists: bool = True
    rotation_login: bool | None = (
        None  # spec.rotation: a login with DBOPS_PASSWORD worked (None: not tried/unknown)
    )


# --- account queries shared with grants ---------------------------------------------------------------------------


def account_parts(info: ServerInfo, user: str, rotation: bool = False) -> list[tuple[str, list[Any]]]:
    """Union parts: the accounts named `user` ('account', host, json) and the roles granted to them."""
    if is_mariadb(info):
        return [
            (row("account", ["Host", "Priv"], "FROM mysql.global_priv WHERE User = %s"), [user]),
            (
                row("role", ["Host", "Role", "Admin_option"], "FROM mysql.roles_mapping WHERE User = %s"),
                [user],
            ),
        ]
    account_json = (
        "JSON_OBJECT('plugin', plugin, 'authentication_string', "
        f"IF(plugin = '{NATIVE}', authentication_string, ''), 'ssl_type', ssl_type, "
        "'max_questions', max_questions, 'max_updates', max_updates, 'max_connections', max_connections, "
        "'max_user_connections', max_user_connections, 'account_locked', account_locked"
        + (
            ", 'secondary', JSON_CONTAINS_PATH(User_attributes, 'one', '$.additional_password')"
            if rotation
            else ""
        )
        + ")"
    )
    return [
        (row("account", ["Host", account_json], "FROM mysql.user WHERE User = %s"), [user]),
        (
            row(
                "role",
                ["TO_HOST", "FROM_USER", "WITH_ADMIN_OPTION"],
                "FROM mysql.role_edges WHERE TO_USER = %s",
            ),
            [user],
        ),
        (
            row("default_role", ["HOST", "DEFAULT_ROLE_USER"], "FROM mysql.default_roles WHERE USER = %s"),
            [user],
        ),
        (row("var", ["'partial_revokes'", "@@global.partial_revokes"], ""), []),
    ]


def known_role_part(info: ServerInfo, roles: list[str]) -> tuple[str, list[Any]]:
    if is_mariadb(info):
        source = f"FROM mysql.global_priv WHERE Host = '' AND User IN ({placeholders(len(roles))})"
    else:
        # MySQL 8 roles are accounts; a role named without a host is `role`@`%`.
        source = f"FROM mysql.user WHERE Host = '%%' AND User IN ({placeholders(len(roles))})"
    return row("known_role", ["User"], source), list(roles)


@dataclass
class AccountRows:
    accounts: dict[str, AccountState] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)
    admin_roles: dict[str, set[str]] = field(default_factory=dict)
    known_roles: set[str] = field(default_factory=set)
    partial_revokes: bool = False
    rest: list[tuple[Any, ...]] = field(default_factory=list)

    @classmethod
    def parse(cls, rows: list[tuple[Any, ...]], info: ServerInfo) -> AccountRows:
        out = cls()
        defaults: dict[str, list[str]] = {}
        for r in rows:
            kind, a, b = r[0], r[1], r[2]
            if kind == "account":
                out.accounts[a] = account_from_json(a, json.loads(b or "{}"), info.flavor)
            elif kind == "role":
                out.roles.setdefault(a, set()).add(b)
                if len(r) > 3 and str(r[3] or "").upper() == "Y":
                    out.admin_roles.setdefault(a, set()).add(b)
            elif kind == "default_role":
                defaults.setdefault(a, []).append(b)
            elif kind == "known_role":
                out.known_roles.add(a)
            elif kind == "var" and a == "partial_revokes":
                out.partial_revokes = str(b) in ("1", "ON")
            else:
                out.rest.append(r)
        for host, names in defaults.items():
            if host in out.accounts:
                out.accounts[host] = replace(out.accounts[host], default_roles=tuple(sorted(names)))
        return out


# --- planning -----------------------------------------------------------------------------------------------------


def admin_dropped(
    have: frozenset[str], want: list[str], have_admin: frozenset[str], want_admin: frozenset[str] | None
) -> list[str]:
    """Roles that stay granted but lose their admin option."""
    if want_admin is None:
        return []
    return sorted(r for r in have_admin if r in have and r in want and r not in want_admin)


def role_steps(
    account: Account,
    have: frozenset[str],
    want: list[str],
    info: ServerInfo,
    *,
    have_admin: frozenset[str] = frozenset(),
    want_admin: frozenset[str] | None = frozenset(),
) -> list[Step]:
    """Make the roles granted to `account` exactly `want`, and the admin option exactly `want_admin` among them
    (None: leave the admin option of kept roles alone). Revokes first, so a failure leaves less access.

    `GRANT r TO a WITH ADMIN OPTION` both grants a missing role and upgrades a held one. Dropping only the admin
    option: MariaDB has `REVOKE ADMIN OPTION FOR r FROM a`; MySQL 8 has no such statement (its REVOKE takes roles
    only, and a plain GRANT never lowers an edge's admin option), so the role is revoked and granted again
    without it, in the same plan."""
    extra = sorted(have - set(want))
    lowered = admin_dropped(have, want, have_admin, want_admin)
    admin = want_admin or frozenset()
    mariadb = is_mariadb(info)
    # MySQL 8 re-grants the lowered roles without the option; MariaDB lowers them in place.
    plain = [r for r in want if (r not in have and r not in admin) or (not mariadb and r in lowered)]
    raised = [r for r in want if r in admin and r not in have_admin]
    groups = [
        ("REVOKE", extra, "FROM", "", "not in the spec's roles"),
        (
            "REVOKE ADMIN OPTION FOR" if mariadb else "REVOKE",
            lowered,
            "FROM",
            "",
            "held with admin option, which the spec's adminRoles does not list"
            + (
                ""
                if mariadb
                else " (MySQL 8 has no REVOKE ADMIN OPTION FOR: revoked, then granted without it)"
            ),
        ),
        ("GRANT", plain, "TO", "", "in the spec's roles"),
        ("GRANT", raised, "TO", "WITH ADMIN OPTION", "in the spec's adminRoles"),
    ]
    steps: list[Step] = []
    for verb, roles, preposition, tail, why in groups:
        # MariaDB grants and revokes one role per statement; MySQL 8 takes a list.
        for batch in [[r] for r in roles] if mariadb else [roles] if roles else []:
            sql = Sql().add(verb).add(", ".join(ident(r) for r in batch)).add(preposition).account(account)
            steps.append((sql.add(tail) if tail else sql).step(f"role(s) {', '.join(batch)}: {why}"))
    return steps


def default_role_steps(
    account: Account, current: tuple[str, ...], want: list[str], info: ServerInfo
) -> list[Step]:
    """Roles only act when active: MariaDB activates one default role per account (the first listed), MySQL 8
    activates every listed role by default."""
    if account.is_role:
        return []
    if is_mariadb(info):
        target = want[:1]
        if tuple(target) == current:
            return []
        sql = (
            Sql()
            .add("SET DEFAULT ROLE")
            .add(ident(target[0]) if target else "NONE")
            .add("FOR")
            .account(account)
        )
        return [sql.step(f"default role should be {target[0] if target else 'none'} (the first of roles)")]
    if tuple(sorted(want)) == tuple(sorted(current)):
        return []
    names = ", ".join(ident(r) for r in sorted(want)) if want else "NONE"
    return [
        Sql()
        .add("ALTER USER")
        .account(account)
        .add("DEFAULT ROLE")
        .add(names)
        .step("every role in the spec is active by default")
    ]


def membership_steps(
    account: Account,
    have: frozenset[str],
    want: list[str],
    info: ServerInfo,
    *,
    current_defaults: tuple[str, ...],
    have_admin: frozenset[str],
    want_admin: frozenset[str],
) -> list[Step]:
    """The roles granted to `account`, their admin option and its default roles, for a spec that manages roles."""
    steps = role_steps(account, have, want, info, have_admin=have_admin, want_admin=want_admin)
    if not is_mariadb(info):
        # MySQL 8 drops an admin option by revoking the role: the default roles are stated again in case the
        # revoke took the role out of them.
        lowered = admin_dropped(have, want, have_admin, want_admin)
        current_defaults = tuple(r for r in current_defaults if r not in lowered)
    return steps + default_role_steps(account, current_defaults, want, info)


def _require_clause(ssl_type: str) -> str:
    return _REQUIRE.get(ssl_type, "NONE")


def _desired_ssl(options: dict[str, Any]) -> str:
    if options.get("requireX509"):
        return "X509"
    return "ANY" if options.get("requireSSL") else ""


def _identified(sql: Sql, info: ServerInfo, plugin: str | None, password: str | None) -> Sql:
    """The IDENTIFIED clause: a hash where the plugin allows one, the password otherwise."""
    if password is None:
        fallback_plugin, credential = NO_LOGIN[info.flavor]
        if is_mariadb(info):
            return sql.add(f"IDENTIFIED VIA {fallback_plugin} USING").value(credential)
        return sql.add(f"IDENTIFIED WITH {fallback_plugin} AS").value(credential)
    if is_mariadb(info):
        chosen = plugin or NATIVE
        stored = stored_form(chosen, password)
        if stored is None:  # pragma: no cover - SETTABLE excludes it
            raise PermanentError("Unsupported", f"MariaDB accounts with {chosen} are not supported")
        return sql.add(f"IDENTIFIED VIA {chosen} USING").value(stored, secret=True)
    if plugin == NATIVE:
        return sql.add(f"IDENTIFIED WITH {NATIVE} AS").value(native_hash(password), secret=True)
    if plugin:
        return sql.add(f"IDENTIFIED WITH {plugin} BY").value(password, secret=True)
    return sql.add("IDENTIFIED BY").value(password, secret=True)


@dataclass(frozen=True)
class PasswordCheck:
    """What decides whether an account's password is DBOPS_PASSWORD (docs/worker-mysql.md)."""

    login_ok: bool | None = None  # a login that decides (mysql_login.login_decides); None: none was possible
    revision: str | None = None  # DBOPS_CREDENTIAL_REVISION
    stored_revision: str | None = None  # the revision dbops recorded when it last set this account's password


def _password_matches(current: AccountState, plugin: str, password: str, check: PasswordCheck) -> bool | None:
    """True/False, or None when nothing can tell (salted plugin, no deciding login, no revision to compare)."""
    if current.plugin != plugin:
        return False
    if plugin in LOGIN_VERIFIED:
        if check.login_ok is not None:
            return check.login_ok
        if check.revision is None:
            return None
        return check.stored_revision == check.revision
    stored = stored_form(plugin, password)
    return stored is not None and current.auth_string.upper() == stored.upper()


def check_plugin(info: ServerInfo, plugin: str | None) -> None:
    if plugin is None:
        return
    if plugin not in SETTABLE[info.flavor]:
        name = "MariaDB" if is_mariadb(info) else "MySQL"
        offered = ", ".join(sorted(SETTABLE[info.flavor]))
        raise PermanentError(
            "Unsupported",
            f"spec.mysql.authPlugin: {plugin} is not available on {name} {info.version}; use one of {offered}",
        )


@dataclass(frozen=True)
class Wish:
    """What the spec wants of every listed account."""

    plugin: str | None
    password: str | None = field(repr=False)
    ssl_type: str
    limits: tuple[int, ...]
    locked: bool

    @classmethod
    def from_spec(cls, spec: dict[str, Any], password: str | None) -> Wish:
        options = spec.get("mysql") or {}
        return cls(
            plugin=options.get("authPlugin"),
            password=password,
            ssl_type=_desired_ssl(options),
            limits=tuple(int(options.get(key, 0)) for key, _, _ in LIMITS),
            locked=bool(options.get("accountLocked")),
        )


def plan_user(
    spec: dict[str, Any],
    state: UserState,
    info: ServerInfo,
    password: str | None,
    revision: str | None = None,
    *,
    owner: Owner | None = None,
) -> Plan:
    """The statements that converge the accounts (ownership aside: `ownership_steps`). `revision`: which password
    DBOPS_PASSWORD is; recorded with the account whenever dbops sets it. With `owner`, accounts of hosts no longer
    listed that this claim's catalog rows name are dropped (after the listed ones converged); others are drift."""
    username = spec["username"]
    hosts: list[str] = list((spec.get("mysql") or {}).get("allowedHosts") or ["%"])
    wish = Wish.from_spec(spec, password)
    check_plugin(info, wish.plugin)
    if state.is_role:
        raise PermanentError(
            "NotAUser", f"spec.username: {username} is a role in the server, not a user; choose another name"
        )
    needs_plugin = wish.plugin is not None and any(
        h not in state.accounts or state.accounts[h].plugin != wish.plugin for h in hosts
    )
    if needs_plugin and state.plugin_status != "ACTIVE":
        raise PermanentError(
            "PluginNotLoaded",
            f"spec.mysql.authPlugin: the {wish.plugin} plugin is not active on the server "
            f"({state.plugin_status or 'not installed'}); an admin must load it"
            + (" (INSTALL SONAME 'auth_ed25519')" if wish.plugin == ED25519 else ""),
        )
    roles: list[str] | None = spec.get("roles")
    if roles is not None:
        unknown = [r for r in roles if r not in state.known_roles]
        if unknown:
            raise PermanentError(
                "RoleNotFound",
                f"spec.roles: {', '.join(unknown)} do not exist as roles in the server; create them first",
            )
    plan = Plan(drift=user_drift(spec, state, owner), creates=not state.accounts)
    for host in hosts:
        account = Account(username, host)
        current = state.accounts.get(host)
        first = len(plan.steps)
        if current is None:
            plan.steps.append(_create_step(account, info, wish))
            if password is None and wish.plugin not in (None, NO_LOGIN[info.flavor][0]):
                plan.drift.append(f"{account}: authPlugin {wish.plugin} needs the password (DBOPS_PASSWORD)")
        else:
            entry = state.owners.get(host)
            check = PasswordCheck(state.login_ok, revision, entry.password_revision if entry else None)
            rotated, handled = (
                rotation_steps(
                    account, current, info, wish, spec["rotation"], check=check, verified=state.rotation_login
                )
                if spec.get("rotation") is not None
                else ([], False)
            )
            plan.steps += rotated
            # A rotation step owns the password: the ordinary steps would replace both credentials with one.
            others = replace(wish, password=None, plugin=None) if handled else wish
            plan.steps += _alter_steps(account, current, info, others, check=check, drift=plan.drift)
        if roles is not None:
            plan.steps += membership_steps(
                account,
                state.roles.get(host, frozenset()),
                roles,
                info,
                current_defaults=current.default_roles if current else (),
                have_admin=state.admin_roles.get(host, frozenset()),
                want_admin=frozenset(spec.get("adminRoles") or ()),
            )
        if spec.get("database"):
            plan.steps += _database_steps(account, spec["database"], state, info)
        if current is None:  # a new account: what it gets with it is part of creating it
            plan.steps[first:] = creating(plan.steps[first:])
    removed = removed_hosts(spec, state, owner)
    if removed:
        # Last, once the listed accounts exist with their roles: no old password keeps working from a host the
        # spec no longer allows.
        dropped = [Account(username, h) for h in removed]
        shown = ", ".join(str(a) for a in dropped)
        plan.steps.append(
            Sql().add("DROP USER").accounts(dropped).step(f"mysql.allowedHosts no longer lists {shown}")
        )
        plan.steps.append(catalog.forget_step(catalog.ACCOUNT, username, removed, "the accounts are dropped"))
    return plan


def removed_hosts(spec: dict[str, Any], state: UserState, owner: Owner | None) -> list[str]:
    """Hosts of existing accounts the spec no longer lists and this claim's catalog rows name: dbops made them
    for this claim, so narrowing allowedHosts drops them."""
    if owner is None:
        return []
    hosts = set((spec.get("mysql") or {}).get("allowedHosts") or ["%"])
    return [
        h
        for h in sorted(set(state.accounts) - hosts)
        if (entry := state.owners.get(h)) is not None and _is_mine(entry, owner)
    ]


def ownership_steps(
    spec: dict[str, Any], state: UserState, owner: Owner, revision: str | None, password: str | None
) -> list[Step]:
    """The catalog rows of the listed accounts: written before an account is created (DDL commits on its own; a
    row without its account is harmless, an account without its row would lock its claim out) or adopted.
    Raises for an account that exists without this claim's marker, unless spec.adopt says to take it over."""
    username = spec["username"]
    adopt = bool(spec.get("adopt"))
    steps: list[Step] = []
    for host in (spec.get("mysql") or {}).get("allowedHosts") or ["%"]:
        account = Account(username, host)
        entry = state.owners.get(host)
        exists = host in state.accounts
        verdict = claim_object(f"account {account}", exists, entry.owner if entry else None, owner, adopt)
        if verdict is Claim.OWN:
            continue
        new = verdict is Claim.NEW
        reason = (
            f"account {account} is new: it is marked as {owner}'s"
            if new
            else (f"spec.adopt: {account} is taken over by {owner}")
        )
        # A new account gets its password at creation: the row records which one.
        known = revision if new and password is not None else None
        mark = catalog.mark_step(catalog.ACCOUNT, username, host, owner.marker, reason, revision=known)
        steps.append(replace(mark, creates=new))
    if steps and not state.catalog_exists:
        steps = [*creating(catalog.create_steps()), *steps]
    return steps


def user_drift(spec: dict[str, Any], state: UserState, owner: Owner | None = None) -> list[str]:
    hosts = set((spec.get("mysql") or {}).get("allowedHosts") or ["%"])
    ours = set(removed_hosts(spec, state, owner))
    return [
        f"mysql.allowedHosts: account '{spec['username']}'@'{host}' exists but is not listed, and dbops did not "
        "create it for this claim, so it never drops it (list the host, or DROP USER it by hand)"
        for host in sorted(set(state.accounts) - hosts - ours)
    ]


def _create_step(account: Account, info: ServerInfo, wish: Wish) -> Step:
    sql = _identified(Sql().add("CREATE USER").account(account), info, wish.plugin, wish.password)
    if wish.ssl_type:
        sql.add("REQUIRE").add(_require_clause(wish.ssl_type))
    with_limits = [
        (clause, value) for (_, _, clause), value in zip(LIMITS, wish.limits, strict=True) if value
    ]
    if with_limits:
        sql.add("WITH")
        for clause, value in with_limits:
            sql.add(clause).value(value)
    if wish.locked:
        sql.add("ACCOUNT LOCK")
    reason = f"account {account} does not exist"
    if wish.password is None:
        reason += "; the password is not managed, so it gets a credential no password matches"
    return sql.step(reason)


def _alter_steps(
    account: Account,
    current: AccountState,
    info: ServerInfo,
    wish: Wish,
    *,
    check: PasswordCheck,
    drift: list[str],
) -> list[Step]:
    steps: list[Step] = []
    target_plugin = wish.plugin or current.plugin
    if wish.password is not None:
        matches = (
            None
            if target_plugin not in SETTABLE[info.flavor]
            else _password_matches(current, target_plugin, wish.password, check)
        )
        if target_plugin not in SETTABLE[info.flavor]:
            drift.append(
                f"{account}: authenticates with {current.plugin}, which has no password dbops can set; "
                "set mysql.authPlugin to switch it"
            )
        elif not matches:
            if current.plugin != target_plugin:
                why = f"authPlugin is {current.plugin}, spec wants {target_plugin}"
            elif matches is False and target_plugin in LOGIN_VERIFIED and check.login_ok is None:
                why = f"the password was set at revision {check.stored_revision or '(none)'}, it is now {check.revision}"
            elif matches is False:
                why = "the password differs"
            else:
                why = (
                    "no login from here can check the password (see docs/worker-mysql.md) and no revision tells "
                    "which one was set: it is set again"
                )
            sql = _identified(Sql().add("ALTER USER").account(account), info, target_plugin, wish.password)
            # Unknown (None) is set on every run; the engine does not count it as left over.
            steps.append(replace(sql.step(why), unverifiable=matches is None))
            if check.revision is not None:
                steps.append(
                    catalog.revision_step(
                        account, check.revision, f"dbops set the password of {account} at this revision"
                    )
                )
    elif wish.plugin is not None and current.plugin != wish.plugin:
        drift.append(
            f"{account}: authPlugin is {current.plugin}, spec wants {wish.plugin}; changing it needs the password "
            "(DBOPS_PASSWORD)"
        )
    sql = Sql().add("ALTER USER").account(account)
    changed: list[str] = []
    if current.ssl_type != wish.ssl_type:
        sql.add("REQUIRE").add(_require_clause(wish.ssl_type))
        was = _REQUIRE.get(current.ssl_type, current.ssl_type)
        changed.append(f"REQUIRE {was} -> {_require_clause(wish.ssl_type)}")
    limit_changes = [
        (clause, want, have)
        for (_, _, clause), want, have in zip(LIMITS, wish.limits, current.limits, strict=True)
        if want != have
    ]
    if limit_changes:
        sql.add("WITH")
        for clause, want, have in limit_changes:
            sql.add(clause).value(want)
            changed.append(f"{clause} {have} -> {want}")
    if current.locked != wish.locked:
        sql.add("ACCOUNT LOCK" if wish.locked else "ACCOUNT UNLOCK")
        changed.append("locked" if wish.locked else "unlocked")
    if changed:
        steps.append(sql.step("; ".join(changed)))
    return steps


def _database_steps(account: Account, database: str, state: UserState, info: ServerInfo) -> list[Step]:
    need = level_privileges("database", info.flavor, info.version_tuple)
    have = state.db_privileges.get(account.host or "", frozenset())
    if need <= have:
        return []
    pattern = db_pattern(database, info, state.partial_revokes)
    sql = Sql().add("GRANT ALL PRIVILEGES ON").add(f"{ident(pattern)}.*").add("TO").account(account)
    return [sql.step(f"spec.database gives the user full use of {database}")]


def _identified_via(account: Account, plugin: str, stored: str) -> Sql:
    """MariaDB's `ALTER USER … IDENTIFIED VIA <plugin> USING <stored form>`, to which rotation may add the old one."""
    return (
        Sql()
        .add("ALTER USER")
        .account(account)
        .add(f"IDENTIFIED VIA {plugin} USING")
        .value(stored, secret=True)
    )


def rotation_steps(
    account: Account,
    current: AccountState,
    info: ServerInfo,
    wish: Wish,
    rotation: dict[str, Any],
    *,
    check: PasswordCheck,
    verified: bool | None,
) -> tuple[list[Step], bool]:
    """(steps, handled): `handled` means the password is this module's, and the ordinary password steps must not
    run (they would replace both credentials with one)."""
    password = wish.password
    mysql_rotation.check_strategy(rotation)
    if "generation" not in rotation or password is None:
        return [], False
    grace = mysql_rotation.in_grace(rotation)
    generation = int(rotation["generation"])
    if is_mariadb(info):
        plugin = wish.plugin or (current.credentials[0][0] if current.credentials else NATIVE)
        if plugin not in SETTABLE["mariadb"]:
            plugin = NATIVE
        new = stored_form(plugin, password)
        if new is None:  # pragma: no cover - SETTABLE plugins all have a stored form
            return [], False
        creds = current.credentials or ((current.plugin, current.auth_string),)
        has_new = any(p == plugin and a.upper() == new.upper() for p, a in creds)
        if grace:
            if has_new:
                mysql_rotation.require_verified(account, verified)
                return [], True
            old_plugin, old_auth = creds[0]
            sql = (
                _identified_via(account, plugin, new)
                .add(f"OR {old_plugin} USING")
                .value(old_auth, secret=True)
            )
            why = f"rotation: generation {generation}'s password is added; the current one works until it is retired"
            return [sql.step(why)], True
        if has_new and len(creds) > 1:
            why = f"rotation: the passwords before generation {generation} are past their grace period"
            return [_identified_via(account, plugin, new).step(why)], True
        return [], False  # one credential: the ordinary password steps keep it DBOPS_PASSWORD
    # MySQL 8
    plugin = wish.plugin or current.plugin
    if grace:
        matches = _password_matches(current, plugin, password, check)
        if matches:
            mysql_rotation.require_verified(account, verified)
            return [], True
        sql = _identified(Sql().add("ALTER USER").account(account), info, plugin, password)
        sql.add("RETAIN CURRENT PASSWORD")
        why = f"rotation: generation {generation}'s password is set; the current one stays as the secondary password"
        return [sql.step(why)], True
    if current.secondary:
        sql = Sql().add("ALTER USER").account(account).add("DISCARD OLD PASSWORD")
        return [
            sql.step(f"rotation: the password before generation {generation} is past its grace period")
        ], False
    return [], False


# --- the handler ----------------------------------------------------------------------------------------------------


class UserHandler(KindHandler[UserState]):
    def __init__(self, adapter: MySQLAdapter) -> None:
        self.adapter = adapter
        self.owner = Owner.of(adapter.request.owner)

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"account:{spec['username']}"

    def observe(self, spec: dict[str, Any]) -> UserState:
        info = self.adapter.server
        username = spec["username"]
        options = spec.get("mysql") or {}
        hosts = list(options.get("allowedHosts") or ["%"])
        parts = account_parts(info, username, rotation=spec.get("rotation") is not None)
        if spec.get("roles"):
            parts.append(known_role_part(info, spec["roles"]))
        if options.get("authPlugin"):
            parts.append(
                (
                    row(
                        "plugin",
                        ["PLUGIN_NAME", "PLUGIN_STATUS"],
                        "FROM information_schema.PLUGINS WHERE PLUGIN_NAME = %s",
                    ),
                    [options["authPlugin"]],
                )
            )
        if spec.get("database"):
            grantees = [Account(username, h).grantee() for h in hosts]
            # Both spellings of the name: the exact one may appear as a wildcard (_) or escaped (\_) pattern;
            # only the escaped one (or MySQL's literal one under partial_revokes) counts as "full use".
            parts.append(
                (
                    row(
                        "dbpriv",
                        ["GRANTEE", "TABLE_SCHEMA", "PRIVILEGE_TYPE"],
                        f"FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ({placeholders(len(grantees))})"
                        " AND TABLE_SCHEMA IN (%s, %s)",
                    ),
                    [*grantees, spec["database"], db_pattern(spec["database"], info)],
                )
            )
        # How the server sees the worker: a login from here proves something only for accounts matching that.
        parts.append((row("client", ["USER()"], ""), []))
        rows, catalog_exists = self.adapter.observe(
            parts, catalog.part(catalog.ACCOUNT, username), f"reading account {username}"
        )
        owners = catalog.entries(rows)
        client = next((client_host(str(r[1])) for r in rows if r[0] == "client"), None)
        rows = [r for r in rows if r[0] not in ("client", "catalog")]
        parsed = AccountRows.parse(rows, info)
        is_role = any(a.is_role for a in parsed.accounts.values())
        accounts = {h: a for h, a in parsed.accounts.items() if not a.is_role}
        plugin_status, db_privileges = None, {}
        by_grantee = {Account(username, h).grantee(): h for h in hosts}
        pattern = db_pattern(spec.get("database") or "", info, parsed.partial_revokes)
        collected: dict[str, set[str]] = {}
        for r in parsed.rest:
            if r[0] == "plugin":
                plugin_status = str(r[2]).upper()
            elif r[0] == "dbpriv" and r[2] == pattern and r[1] in by_grantee:
                collected.setdefault(by_grantee[r[1]], set()).add(str(r[3]).upper())
        db_privileges = {h: frozenset(p) for h, p in collected.items()}
        login_ok = None
        password = self.adapter.secrets.password
        if password is not None and not is_mariadb(info):
            plugin = options.get("authPlugin")
            salted = any(
                a.plugin in LOGIN_VERIFIED and plugin in (None, a.plugin)
                for h, a in accounts.items()
                if h in hosts
            )
            if salted and login_decides(
                {h: a.ssl_type for h, a in accounts.items()},
                hosts,
                client,
                info,
                tls=self.adapter.tls_requested,
                client_certificate=self.adapter.client_certificate,
            ):
                login_ok = self.adapter.try_login(username, password)
        rotation_login = None
        if spec.get("rotation") is not None and password is not None and accounts:
            # A real login with the new password: what the Secret switch waits for.
            rotation_login = self.adapter.try_login(username, password)
        return UserState(
            rotation_login=rotation_login,
            accounts=accounts,
            is_role=is_role,
            roles={h: frozenset(r) for h, r in parsed.roles.items()},
            admin_roles={h: frozenset(r) for h, r in parsed.admin_roles.items()},
            known_roles=frozenset(parsed.known_roles),
            db_privileges=db_privileges,
            plugin_status=plugin_status,
            partial_revokes=parsed.partial_revokes,
            login_ok=login_ok,
            owners=owners,
            catalog_exists=catalog_exists,
        )

    def plan(self, spec: dict[str, Any], observed: UserState) -> Plan:
        secrets = self.adapter.secrets
        marks = ownership_steps(spec, observed, self.owner, secrets.password_revision, secrets.password)
        plan = plan_user(
            spec, observed, self.adapter.server, secrets.password, secrets.password_revision, owner=self.owner
        )
        plan.steps = [*marks, *plan.steps]
        return plan

    def plan_drop(self, spec: dict[str, Any], observed: UserState) -> Plan:
        return plan_drop_user(spec, observed, self.owner)

    def facts(self, spec: dict[str, Any], observed: UserState) -> dict[str, Any]:
        hosts = set((spec.get("mysql") or {}).get("allowedHosts") or ["%"])
        listed = [a for h, a in observed.accounts.items() if h in hosts]
        roles = sorted({r for h, rs in observed.roles.items() if h in hosts for r in rs})
        out: dict[str, Any] = {
            "username": spec["username"],
            "hosts": sorted(observed.accounts),
            "roles": roles,
            "login": any(not a.locked for a in listed),
        }
        drift = user_drift(spec, observed, self.owner)
        if drift:
            out["drift"] = drift
        if spec.get("rotation") is not None:
            out["rotation"] = mysql_rotation.facts(spec["rotation"], listed, observed.rotation_login)
        return out


def _is_mine(entry: catalog.Entry, owner: Owner) -> bool:
    found = parse_marker(entry.owner)
    return found is not None and found.same(owner)


def plan_drop_user(spec: dict[str, Any], state: UserState, owner: Owner) -> Plan:
    username = spec["username"]
    hosts = (spec.get("mysql") or {}).get("allowedHosts") or ["%"]
    adopt = bool(spec.get("adopt"))
    for host in hosts:  # refuses before anything is dropped
        if host in state.accounts:
            entry = state.owners.get(host)
            marker = entry.owner if entry else None
            claim_object(f"account {Account(username, host)}", True, marker, owner, adopt)
    existing = [Account(username, h) for h in hosts if h in state.accounts]
    plan = Plan()
    if existing:
        plan.steps.append(Sql().add("DROP USER").accounts(existing).step("ensure: Absent"))
    # The rows of the accounts it drops go, and its own; another claim's row left without an account stays.
    marked = [
        h for h in hosts if h in state.owners and (h in state.accounts or _is_mine(state.owners[h], owner))
    ]
    if marked:
        plan.steps.append(catalog.forget_step(catalog.ACCOUNT, username, marked, "the accounts are dropped"))
    return plan
