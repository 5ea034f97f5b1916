"""DatabaseUser password rotation on MySQL/MariaDB (strategy dual-password; docs/worker.md, "Password rotation").

The account keeps its name; during the grace period it accepts two passwords:
- MariaDB (proved on 10.11): two authentications, `IDENTIFIED VIA <plugin> USING '<new hash>' OR <plugin> USING
  '<old hash>'` (mysql.global_priv's `auth_or`); retiring keeps only the new one.
- MySQL 8: `ALTER USER ... IDENTIFIED ... RETAIN CURRENT PASSWORD` (the old password becomes the secondary one);
  retiring is `ALTER USER ... DISCARD OLD PASSWORD`.
Hashes, never passwords, where the plugin allows (as for every password dbops sets: worker-mysql.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.adapters.base import ServerInfo, Step
from worker.adapters.mysql_sql import Account, Sql, is_mariadb
from worker.errors import PermanentError

if TYPE_CHECKING:
    from worker.adapters.mysql_account import AccountState, PasswordCheck, Wish


def in_grace(rotation: dict[str, Any]) -> bool:
    """The old credential still works: generation N was created and not everything below it retired."""
    return "generation" in rotation and int(rotation["generation"]) > int(rotation.get("retireBefore", 0))


def steps(
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
    from worker.adapters import mysql_account as acc

    password = wish.password
    if rotation.get("strategy") != "dual-password":
        raise PermanentError(
            "InvalidSpec",
            "spec.passwordRotation.strategy: on MySQL/MariaDB dbops rotates with dual passwords; use dual-password",
        )
    if "generation" not in rotation or password is None:
        return [], False
    grace = in_grace(rotation)
    generation = int(rotation["generation"])
    if is_mariadb(info):
        plugin = wish.plugin or (current.credentials[0][0] if current.credentials else acc.NATIVE)
        if plugin not in acc.SETTABLE["mariadb"]:
            plugin = acc.NATIVE
        new = acc.stored_form(plugin, password)
        if new is None:  # pragma: no cover - SETTABLE plugins all have a stored form
            return [], False
        creds = current.credentials or ((current.plugin, current.auth_string),)
        has_new = any(p == plugin and a.upper() == new.upper() for p, a in creds)
        if grace:
            if has_new:
                _require_verified(account, verified)
                return [], True
            old_plugin, old_auth = creds[0]
            sql = (
                Sql()
                .add("ALTER USER")
                .account(account)
                .add(f"IDENTIFIED VIA {plugin} USING")
                .value(new, secret=True)
                .add(f"OR {old_plugin} USING")
                .value(old_auth, secret=True)
            )
            why = f"rotation: generation {generation}'s password is added; the current one works until it is retired"
            return [sql.step(why)], True
        if has_new and len(creds) > 1:
            sql = (
                Sql()
                .add("ALTER USER")
                .account(account)
                .add(f"IDENTIFIED VIA {plugin} USING")
                .value(new, secret=True)
            )
            return [
                sql.step(
                    f"rotation: the passwords before generation {generation} are past their grace period"
                )
            ], True
        return [], False  # one credential: the ordinary password steps keep it DBOPS_PASSWORD
    # MySQL 8
    plugin = wish.plugin or current.plugin
    if grace:
        matches = acc._password_matches(current, plugin, password, check)
        if matches:
            _require_verified(account, verified)
            return [], True
        sql = acc._identified(Sql().add("ALTER USER").account(account), info, plugin, password)
        sql.add("RETAIN CURRENT PASSWORD")
        why = f"rotation: generation {generation}'s password is set; the current one stays as the secondary password"
        return [sql.step(why)], True
    if current.secondary:
        sql = Sql().add("ALTER USER").account(account).add("DISCARD OLD PASSWORD")
        return [
            sql.step(f"rotation: the password before generation {generation} is past its grace period")
        ], False
    return [], False


def _require_verified(account: Account, verified: bool | None) -> None:
    if verified is not True:
        raise PermanentError(
            "CredentialNotVerified",
            f"rotation: {account} holds the new password, but a login with it from the worker "
            + ("was refused" if verified is False else "was not possible (host, TLS or network)")
            + "; dbops switches the credentials Secret only to a credential it has logged in with: let the "
            "worker's address log in as this account (mysql.allowedHosts)",
        )


def facts(rotation: dict[str, Any], accounts: list[AccountState], verified: bool | None) -> dict[str, Any]:
    generation = int(rotation.get("generation", 0))
    two = any(len(a.credentials) > 1 or a.secondary for a in accounts)
    active = (
        [int(rotation.get("retireBefore", 0)), generation] if two and in_grace(rotation) else [generation]
    )
    return {"generation": generation, "verified": verified is True, "active": active}
