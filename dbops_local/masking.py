"""What `dbops-local` prints never shows a secret: every value that holds one is masked, wherever it is printed
(the Secrets' keys, statuses and conditions, `-o yaml`) and in whatever form it takes there.

The secrets are the values of the keys that hold one: `password` in any Secret, the admin Secret's password key
and the TLS client key each DatabaseInstance names, and each DatabaseUser's `existingPasswordSecret` key. Their
forms: raw, percent-encoded, base64 and JSON-escaped (function.secrets.redaction.encodings), and what every action on
`.Password` in a DatabaseUser's `secretTemplate.data` renders them to, its pipes and functions applied (`urlquery`,
`urlEncode`, `b64enc`, `quote`, `upper`, `lower`, in any chain), so a templated key such as `DATABASE_URL` shows
`postgresql://app:********@host:5432/app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dbops_local import crossplane as xp
from dbops_local.store import Obj, ObjectStore
from function.objects import dig, mapping, text
from function.secrets import template as secret_template
from function.secrets.credentials import secret_value
from function.secrets.redaction import MIN_LENGTH, encodings, scrub

MASK = "********"
SECRET_KEYS = frozenset({"password"})  # keys a Secret's value is masked whole under


def _named(claim: Obj) -> list[tuple[str, str]]:
    """(Secret name, key) of the secrets a claim names."""
    spec = mapping(claim, "spec")
    out = []
    if claim.get("kind") == "DatabaseInstance":
        ref = mapping(spec, "connection", "secretRef")
        if text(ref, "name"):
            out.append((text(ref, "name"), text(ref, "keys", "password") or "password"))
        tls = mapping(spec, "tls", "secretRef")
        if text(tls, "name"):
            out.append((text(tls, "name"), text(tls, "keys", "key") or "tls.key"))
    if claim.get("kind") == "DatabaseUser" and text(spec, "existingPasswordSecret", "name"):
        ref = mapping(spec, "existingPasswordSecret")
        out.append((text(ref, "name"), text(ref, "key") or "password"))
    return out


def secrets_in_play(store: ObjectStore) -> set[str]:
    found: set[str] = set()
    for secret in store.select("v1", "Secret"):
        for key in SECRET_KEYS & set(secret.get("data", {})):
            found.add(secret_value(secret, key) or "")
    for claim in (o for o in store.all() if xp.is_claim(o)):
        namespace = text(claim, "metadata", "namespace")
        for name, key in _named(claim):
            named = store.get("v1", "Secret", name, namespace)
            if named is not None:
                found.add(secret_value(named, key) or "")
    return {value for value in found if value}


def forms(store: ObjectStore) -> list[str]:
    """Every form of every secret in play that is long enough to find safely, longest first."""
    templates = [
        source
        for claim in store.all()
        if xp.is_claim(claim) and claim.get("kind") == "DatabaseUser"
        for source in (dig(claim, "spec", "passwordSecret", "secretTemplate", "data") or {}).values()
        if isinstance(source, str)
    ]
    out: set[str] = set()
    for value in secrets_in_play(store):
        out |= encodings(value)
        out |= {value.upper(), value.lower()}
        for source in templates:
            out.update(secret_template.renderings(source, "Password", value))
    return sorted((f for f in out if len(f) >= MIN_LENGTH), key=len, reverse=True)


def masker(store: ObjectStore) -> Callable[[Any], Any]:
    """A function masking every secret form in text, or in lists and dicts of it."""
    found = forms(store)
    return lambda value: scrub(value, found, MASK)


def secret_lines(data: dict[str, str], mask: Callable[[Any], Any]) -> list[tuple[str, str]]:
    """A Secret's keys as printed: a secret key masked whole, any other value with the secrets in it masked."""
    return [(key, MASK if key in SECRET_KEYS else str(mask(value))) for key, value in sorted(data.items())]
