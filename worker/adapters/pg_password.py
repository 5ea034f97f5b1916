"""SCRAM-SHA-256 verifiers for PostgreSQL, computed client-side so the password itself never reaches the server.

PostgreSQL stores `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts) in
pg_authid.rolpassword. A verifier recomputed with the stored salt and iteration count equals the stored one exactly
when the password is the same, which is how an unchanged password is recognised without setting it again.
"""

from __future__ import annotations

import hmac
from base64 import b64decode, b64encode
from functools import cache
from typing import Any

from worker.errors import PermanentError

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


@cache
def _mechanism() -> Any:
    # scramp's package start-up costs tens of milliseconds (importlib.metadata, asn1crypto); only runs that
    # compute a verifier pay for it.
    from scramp import ScramMechanism

    return ScramMechanism("SCRAM-SHA-256")


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The rolpassword value for `password` (a fresh random salt unless one is given)."""
    from scramp import ScramException

    try:
        salt_out, stored_key, server_key, count = _mechanism().make_auth_info(
            password, iteration_count=iterations, salt=salt
        )
    except ScramException:
        # scramp refuses strings SASLprep prohibits; PostgreSQL would take the raw bytes instead. Refusing keeps
        # our verifier and the server's login check in agreement.
        raise PermanentError(
            "InvalidPassword",
            "the password contains characters SASLprep prohibits (control or unassigned code points); "
            "use another password",
        ) from None
    return (
        f"SCRAM-SHA-256${count}:{b64encode(salt_out).decode()}"
        f"${b64encode(stored_key).decode()}:{b64encode(server_key).decode()}"
    )


def matches(stored: str | None, password: str) -> bool:
    """Whether `stored` (a rolpassword value) is a SCRAM verifier of `password`.

    An MD5 hash or a missing password count as different: setting the password again stores a SCRAM verifier."""
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head, keys = stored[len("SCRAM-SHA-256$") :].split("$", 1)
        iterations_text, salt_text = head.split(":", 1)
        salt = b64decode(salt_text, validate=True)
        iterations = int(iterations_text)
    except ValueError:
        return False
    if iterations < ITERATIONS:
        return False  # scramp refuses weaker counts; setting the password again stores the default count
    expected = verifier(password, salt=salt, iterations=iterations)
    return hmac.compare_digest(expected.split("$", 2)[2], keys)
