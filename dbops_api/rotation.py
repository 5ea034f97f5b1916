"""DatabaseUser `spec.passwordRotation` (issue 15): the shape of db-provision-operator's field of that name, what
dbops does with each part, and the worker request's `rotation` block (docs/function.md, "Password rotation").

Shapes follow the Go CRD; meanings:
- `enabled` turns rotation on; `maxAge` (`90d`, `36h`) rotates when the active credential is older; `trigger`
  (dbops' own) rotates on demand when its value changes. `schedule` (cron) is refused: dbops rotates by age.
- `strategy`: `role-inheritance` (PostgreSQL: login roles `<username>_r<N>` that are members of the role
  `username`, which holds the privileges and owns the objects) or `dual-password` (MySQL 8 `RETAIN CURRENT
  PASSWORD`; MariaDB a second authentication `IDENTIFIED VIA ... OR ...`). Absent: the engine's only strategy.
- `serviceRole.name`: the role holding the privileges is `username` itself (grants name it); another name is
  refused. `userNaming` is accepted and not used (login roles are `<username>_r<N>`, the generation N is what
  lets a worker with a lost status find the newest credential in the server).
- `oldUserPolicy.action`: `delete` (default) drops the old login role (PostgreSQL; kept, with NOLOGIN, while it
  owns objects) or discards the old password (MySQL/MariaDB); `disable` sets NOLOGIN on PostgreSQL; `retain` is
  refused (a credential that never stops working is no rotation). `gracePeriodDays` (default 7) is how long both
  work. `mysql.discardOldPasswordAfterDays` is the grace period on MySQL/MariaDB when set.
"""

from __future__ import annotations

from typing import Any

from dbops_api.schema import Rule, Schema, boolean, enum, ident, integer, obj, string

STRATEGIES = ("role-inheritance", "dual-password")
OLD_USER_ACTIONS = ("retain", "disable", "delete")
MAX_AGE_PATTERN = r"^[1-9][0-9]{0,4}(d|h)$"
LOGIN_SUFFIX = "_r"  # PostgreSQL login role of generation N: <username>_r<N>
MAX_GENERATION_DIGITS = 6
PHASES = ("Stable", "NewCredentialCreated", "SecretSwitched", "OldRetired")

SCHEDULE_MESSAGE = (
    "passwordRotation.schedule (cron) is not supported: dbops rotates when the credential is older than "
    "passwordRotation.maxAge (e.g. 90d), or on demand when passwordRotation.trigger changes; remove schedule"
)
RETAIN_MESSAGE = (
    "passwordRotation.oldUserPolicy.action retain would leave the old credential working for ever; use delete "
    "(drop the old login role / discard the old password) or disable (NOLOGIN, PostgreSQL)"
)
SERVICE_ROLE_MESSAGE = (
    "passwordRotation.serviceRole.name must be the user's own username (or be left out): dbops keeps the "
    "privileges on the role `username`, which grants name, and rotates the login roles that are its members"
)

PASSWORD_ROTATION: Schema = obj(
    'Zero-downtime password rotation (docs/function.md, "Password rotation"): a new credential is created and '
    "proved by a real login, the credentials Secret is then switched to it, and the old credential keeps working "
    "for `oldUserPolicy.gracePeriodDays` before it is retired. Needs a generated password (passwordSecret).",
    {
        "enabled": boolean("Rotate this user's password.", default=False),
        "schedule": string("Refused: " + SCHEDULE_MESSAGE + ".", maxLength=128),
        "maxAge": string(
            "Rotate when the active credential is older than this: days (`90d`) or hours (`36h`). Without it, "
            "only `trigger` starts a rotation.",
            pattern=MAX_AGE_PATTERN,
            maxLength=6,
        ),
        "trigger": string(
            "Rotate now: any value different from the one of the last rotation (status.rotation.trigger), e.g. "
            "the date. Setting it for the first time also starts a rotation.",
            maxLength=63,
        ),
        "strategy": enum(
            "`role-inheritance` (PostgreSQL only) or `dual-password` (MySQL 8, MariaDB). Default: the engine's.",
            STRATEGIES,
        ),
        "serviceRole": obj(
            "The role holding the privileges: always the user's own `username` in dbops.",
            {
                "name": ident("Only the user's username is accepted."),
                "autoCreate": boolean(
                    "Accepted; the role is the user itself, created by dbops.", default=True
                ),
            },
        ),
        "userNaming": string(
            "Accepted, not used: dbops names login roles `<username>_r<N>` (N: the rotation's generation).",
            maxLength=128,
        ),
        "oldUserPolicy": obj(
            "What happens to the old credential once the grace period is over.",
            {
                "action": enum(
                    "`delete` (default): drop the old login role (kept with NOLOGIN while it owns objects) or, "
                    "with dual passwords, discard the old password. `disable`: NOLOGIN (PostgreSQL; the same as "
                    "delete with dual passwords). `retain` is refused.",
                    OLD_USER_ACTIONS,
                    default="delete",
                ),
                "gracePeriodDays": integer(
                    "Days the old and new credentials both work after the Secret is switched; 0 retires the old "
                    "one at the next run.",
                    minimum=0,
                    maximum=365,
                    default=7,
                ),
                "ownershipCheck": boolean(
                    "Accepted; dbops always checks: a login role that owns objects is disabled, never dropped.",
                    default=True,
                ),
            },
            rules=(
                Rule(
                    "!has(self.action) || self.action != 'retain'",
                    RETAIN_MESSAGE,
                    lambda p: p.get("action") != "retain",
                    ".action",
                ),
            ),
        ),
        "mysql": obj(
            "MySQL/MariaDB dual passwords.",
            {
                "discardOldPasswordAfterDays": integer(
                    "Grace period on MySQL/MariaDB (days); default: oldUserPolicy.gracePeriodDays.",
                    minimum=0,
                    maximum=365,
                ),
            },
        ),
    },
    rules=(Rule("!has(self.schedule)", SCHEDULE_MESSAGE, lambda r: "schedule" not in r, ".schedule"),),
)


def spec_errors(spec: dict[str, Any], generates: bool) -> list[tuple[str, str]]:
    """(field, message) for what the schema cannot say about passwordRotation (it would read fields across the
    spec): the service role's name, and a password dbops generates."""
    rotation = spec.get("passwordRotation") or {}
    out: list[tuple[str, str]] = []
    name = (rotation.get("serviceRole") or {}).get("name")
    if name is not None and name != spec.get("username"):
        out.append(("spec.passwordRotation.serviceRole.name", SERVICE_ROLE_MESSAGE))
    if rotation.get("enabled") and not generates:
        out.append(
            (
                "spec.passwordRotation.enabled",
                "rotation needs a password dbops generates (passwordSecret, without existingPasswordSecret or "
                "generate: false); rotate that Secret yourself, or let dbops generate the password",
            )
        )
    return out


# The worker request's spec.rotation: which credential the Job sets and which it retires.
REQUEST_ROTATION: Schema = obj(
    "Password rotation (function-derived from spec.passwordRotation and status.rotation).",
    {
        "strategy": enum("How two credentials coexist.", STRATEGIES),
        "generation": integer(
            "The credential DBOPS_PASSWORD belongs to: 0 is the user itself, N the login role "
            "`<username>_r<N>` (role-inheritance) or the N-th password (dual-password). Absent: the worker only "
            "reports the newest generation the server holds (a lost status).",
            minimum=0,
            maximum=10**MAX_GENERATION_DIGITS - 1,
        ),
        "retireBefore": integer(
            "Credentials of generations below this one are retired (after the grace period).",
            minimum=0,
            maximum=10**MAX_GENERATION_DIGITS - 1,
            default=0,
        ),
        "oldUserAction": enum(
            "What retiring means (oldUserPolicy.action).", ("disable", "delete"), default="delete"
        ),
    },
    required=("strategy",),
)


def login_name(username: str, generation: int) -> str:
    """The PostgreSQL login role of a generation (0: the user itself)."""
    return username if generation == 0 else f"{username}{LOGIN_SUFFIX}{generation}"


def generation_of(username: str, name: str) -> int | None:
    """The generation a login role name stands for, or None when it is not one of `username`'s."""
    prefix = username + LOGIN_SUFFIX
    tail = name[len(prefix) :]
    if not name.startswith(prefix) or not tail.isdigit() or tail.startswith("0"):
        return None
    return int(tail) if len(tail) <= MAX_GENERATION_DIGITS else None


def default_strategy(engine: str) -> str:
    return "role-inheritance" if engine == "postgres" else "dual-password"


def strategy_error(engine: str, rotation: dict[str, Any]) -> str | None:
    """Why the chosen strategy cannot run on the engine, or None."""
    strategy = rotation.get("strategy") or default_strategy(engine)
    if engine == "postgres" and strategy != "role-inheritance":
        return (
            "PostgreSQL keeps one password per role: use strategy role-inheritance (or leave strategy out), which "
            "rotates between login roles that are members of the user"
        )
    if engine != "postgres" and strategy != "dual-password":
        return (
            f"on {engine} dbops rotates with dual passwords (MySQL 8 RETAIN CURRENT PASSWORD, MariaDB a second "
            "authentication): use strategy dual-password (or leave strategy out)"
        )
    return None


ROTATION_FACTS: Schema = obj(
    "Password rotation as the worker found it in the server.",
    {
        "generation": integer("Newest credential generation the server holds (0: none rotated yet)."),
        "verified": boolean("A login with DBOPS_PASSWORD as that generation succeeded in this run."),
        "active": {
            "type": "array",
            "description": "Login roles (PostgreSQL) or passwords (MySQL/MariaDB) that still work, by generation.",
            "items": integer("A generation."),
        },
    },
)


ROTATION_STATUS: Schema = obj(
    "Password rotation (spec.passwordRotation), as the function works it out from the credentials Secret, the "
    "`<secretName>-rotation` Secret and the clock.",
    {
        "phase": enum(
            "`Stable` (never rotated), `NewCredentialCreated` (the next credential is being created and proved by "
            "a login), `SecretSwitched` (the Secret holds the new credential; the old one works until graceEndsAt), "
            "`OldRetired` (the old credential no longer works).",
            PHASES,
        ),
        "generation": integer("The generation the credentials Secret holds (0: never rotated)."),
        "username": string("The login name in the credentials Secret."),
        "rotatedAt": string(
            "When the Secret last switched to a new credential (never rotated: when it got its first).",
            format="date-time",
        ),
        "graceEndsAt": string("When the old credential is retired.", format="date-time"),
        "nextRotationAt": string("When maxAge starts the next rotation.", format="date-time"),
        "trigger": string("The passwordRotation.trigger value the status reflects."),
    },
)
