"""DatabaseUser password rotation on MySQL/MariaDB (strategy dual-password; docs/worker.md, "Password rotation").

The account keeps its name; during the grace period it accepts two passwords:
- MariaDB (proved on 10.11): two authentications, `IDENTIFIED VIA <plugin> USING '<new hash>' OR <plugin> USING
  '<old hash>'` (mysql.global_priv's `auth_or`); retiring keeps only the new one.
- MySQL 8: `ALTER USER ... IDENTIFIED ... RETAIN CURRENT PASSWORD` (the old password becomes the secondary one);
  retiring is `ALTER USER ... DISCARD OLD PASSWORD`.
Hashes, never passwords, where the plugin allows (as for every password dbops sets: worker-mysql.md). The
statements are planned in `mysql_account.rotation_steps`; this module holds what needs no account state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.adapters.mysql_sql import Account
from worker.errors import PermanentError


def in_grace(rotation: dict[str, Any]) -> bool:
    """The old credential still works: generation N was created and not everything below it retired."""
    return "generation" in rotation and int(rotation["generation"]) > int(rotation.get("retireBefore", 0))


def require_verified(account: Account, verified: bool | None) -> None:
    if verified is not True:
        raise PermanentError(
            "CredentialNotVerified",
            f"rotation: {account} holds the new password, but a login with it from the worker "
            + ("was refused" if verified is False else "was not possible (host, TLS or network)")
            + "; dbops switches the credentials Secret only to a credential it has logged in with: let the "
            "worker's address log in as this account (mysql.allowedHosts)",
        )


def check_strategy(rotation: dict[str, Any]) -> None:
    if rotation.get("strategy") != "dual-password":
        raise PermanentError(
            "InvalidSpec",
            "spec.passwordRotation.strategy: on MySQL/MariaDB dbops rotates with dual passwords; use dual-password",
        )


def facts(rotation: dict[str, Any], accounts: Sequence[Any], verified: bool | None) -> dict[str, Any]:
    """`accounts`: the listed accounts' AccountState (credentials, secondary)."""
    generation = int(rotation.get("generation", 0))
    two = any(len(a.credentials) > 1 or a.secondary for a in accounts)
    active = (
        [int(rotation.get("retireBefore", 0)), generation] if two and in_grace(rotation) else [generation]
    )
    return {"generation": generation, "verified": verified is True, "active": active}
