"""Generated passwords: uniform over an alphabet chosen by `passwordSecret`, from an injected random source.

Production passes `secrets.SystemRandom()` (the OS CSPRNG); tests pass a seeded `random.Random` for exact results.
"""

from __future__ import annotations

import random
import string

# Punctuation that needs no escaping in a URL's userinfo, a shell's double quotes, a libpq connection string or a
# MySQL option file, so a password works wherever the app pastes it.
URL_SAFE_PUNCTUATION = "-._~"
LETTERS_AND_DIGITS = string.ascii_letters + string.digits
MIN_ALPHABET = 16  # below this a 32-character password has too little entropy; refuse rather than weaken


def alphabet(include_special: bool, exclude: str) -> str:
    chars = LETTERS_AND_DIGITS + (URL_SAFE_PUNCTUATION if include_special else "")
    excluded = set(exclude)
    return "".join(c for c in chars if c not in excluded)


def alphabet_error(include_special: bool, exclude: str) -> str | None:
    """Why `passwordSecret` cannot generate a password, or None."""
    size = len(alphabet(include_special, exclude))
    if size < MIN_ALPHABET:
        return (
            f"excludeChars leaves {size} usable characters; keep at least {MIN_ALPHABET} "
            "(letters, digits and, with includeSpecialChars, -._~)"
        )
    return None


def generate(rng: random.Random, length: int, include_special: bool, exclude: str) -> str:
    chars = alphabet(include_special, exclude)
    if include_special and length >= 2:
        # At least one letter-or-digit and one punctuation character, placed at random.
        specials = [c for c in URL_SAFE_PUNCTUATION if c in chars]
        if specials:
            body = [rng.choice(chars) for _ in range(length - 1)]
            body.insert(rng.randrange(length), rng.choice(specials))
            return "".join(body)
    return "".join(rng.choice(chars) for _ in range(length))
