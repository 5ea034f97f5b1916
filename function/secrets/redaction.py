"""The function's last line of defence: no password it can see ends up in status, conditions or results.

Status, conditions and results carry text the function did not write itself: the worker's messages and facts from
a Pod's termination message. The worker redacts its own output, but a worker that failed to (an older image, a
bug, a crash whose logs became the termination message) must not turn a password into a Kubernetes event that
anyone who can read the claim sees. So every password this call has in hand is removed from that text: the user's
password in the observed credentials Secret and in `existingPasswordSecret`, and the admin password in the
instance's Secret. Composed resources and connection details keep their values: holding them is their job.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from dataclasses import replace
from typing import Any

from function.objects import dig, mapping, text
from function.outcome import Outcome
from function.status import facts, facts_key
from function.view import View

REDACTED = "***"
# Shorter values would blank out ordinary words; generated passwords have at least 12 characters.
MIN_LENGTH = 4


def _value(secret: Any, key: str) -> str | None:
    if not isinstance(secret, dict) or text(secret, "kind") != "Secret":
        return None
    raw = mapping(secret, "data").get(key)
    if isinstance(raw, str) and raw:
        try:
            return base64.b64decode(raw, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    plain = mapping(secret, "stringData").get(key)
    return plain if isinstance(plain, str) else None


def _key(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def known_secrets(view: View) -> list[str]:
    """The passwords in this call's observed and required resources (and their URL-encoded forms)."""
    found: list[str | None] = [_value(view.observed.get("credentials"), "password")]
    # The Secret under the credentials Secret's name (looked up before it is first composed).
    found.append(_value(view.one("credentials-secret"), "password"))
    existing = view.one("existing-password-secret")
    found.append(_value(existing, _key(dig(view.spec, "existingPasswordSecret", "key"), "password")))
    # The admin Secret's password key is named by the instance: the XR itself, or the referenced instance claim.
    instance = view.spec if view.kind == "DatabaseInstance" else mapping(view.one("instance"), "spec")
    admin_key = _key(dig(instance, "connection", "secretRef", "keys", "password"), "password")
    found.append(_value(view.one("admin-secret"), admin_key))
    out: set[str] = set()
    for value in found:
        if value and len(value) >= MIN_LENGTH:
            out |= encodings(value)
    return sorted(out, key=len, reverse=True)


def encodings(value: str) -> set[str]:
    """`value` as text may carry it: raw, percent-encoded (for a URL's user or password, and as a form value),
    base64, and JSON-escaped. The form encoding differs from the URL one only in spaces, and JSON escapes nothing
    in printable ASCII but quotes and backslashes: those are worked out only when they can differ."""
    quoted = urllib.parse.quote(value, safe="")
    out = {value, quoted, base64.b64encode(value.encode()).decode()}
    if " " in value:
        out.add(urllib.parse.quote_plus(value))
    if not _JSON_AS_IS.fullmatch(value):
        out.add(json.dumps(value, ensure_ascii=False)[1:-1])
        out.add(json.dumps(value)[1:-1])
    return out


# Printable ASCII but `"` and `\`: what JSON writes as it is.
_JSON_AS_IS = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def scrub(value: Any, secrets: list[str], mask: str = REDACTED) -> Any:
    """`value` (text, or lists and dicts of it) with every occurrence of each of `secrets` (longest first) masked."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, mask)
        return value
    if isinstance(value, list):
        return [scrub(v, secrets, mask) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, secrets, mask) for k, v in value.items()}
    return value


def redacted(outcome: Outcome, secrets: list[str], kind: str | None) -> Outcome:
    """`outcome` with every secret removed from the text it reports: the status message and the worker's facts,
    conditions and results. Fields the function itself derives (phase, job, hashes, times) are left alone: they
    hold no worker text, and blanking part of a hash would change what the next call decides."""
    if not secrets:
        return outcome
    status = dict(outcome.status)
    if isinstance(status.get("message"), str):
        status["message"] = scrub(status["message"], secrets)
    if kind is not None and facts_key(kind) in status:
        # A fact that no longer fits its schema once scrubbed (an enum, say) is dropped, as any invalid fact is.
        key = facts_key(kind)
        status[key] = facts(kind, scrub(status[key], secrets))
    messages = [c.message for c in outcome.conditions] + [r.message for r in outcome.results]
    if outcome.report is not None:
        messages += outcome.report.changes
    if status == outcome.status and not any(s in m for m in messages for s in secrets):
        return outcome  # nothing to scrub: the same outcome, not a copy of it
    return replace(
        outcome,
        status=status,
        conditions=[replace(c, message=scrub(c.message, secrets)) for c in outcome.conditions],
        results=[replace(r, message=scrub(r.message, secrets)) for r in outcome.results],
        report=(
            replace(outcome.report, changes=tuple(scrub(c, secrets) for c in outcome.report.changes))
            if outcome.report is not None
            else None
        ),
    )
