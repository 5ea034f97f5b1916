"""The DatabaseUser's credentials Secret: its password (generated once, then reused), keys, template and revision."""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass
from typing import Any

from function.jobs.connection import Endpoint
from function.jobs.job import JOB_PREFIX, PASSWORD_REVISION_ANNOTATION
from function.labels import managed_labels
from function.objects import mapping, text
from function.secrets import password as passwords
from function.secrets import template as secret_template
from function.view import View

SECRET_KEY = "credentials"  # noqa: S105 (the desired-resource key, not a secret)
# A cross-namespace user's Job input: the password alone, in the instance's namespace, next to the Job.
JOB_PASSWORD_KEY = "job-password"  # noqa: S105 (the desired-resource key, not a secret)
REVISION_ANNOTATION = "dbops.dbprovision.io/password-revision"
STANDARD_KEYS = ("username", "password", "host", "port", "database", "uri")

# MySQL Shell / Connector URI spelling of our TLS modes.
_MYSQL_SSL_MODE = {
    "disable": "DISABLED",
    "require": "REQUIRED",
    "verify-ca": "VERIFY_CA",
    "verify-full": "VERIFY_IDENTITY",
}


@dataclass(frozen=True)
class Password:
    """The user's password and its revision (a counter, or `rv-<resourceVersion>` of an existing Secret).

    The revision, never the password, goes into Job hashes and annotations."""

    value: str | None
    revision: str
    generated_now: bool


def observed_secret(view: View) -> dict[str, Any] | None:
    secret = view.observed.get(SECRET_KEY)
    return secret if text(secret, "kind") == "Secret" and text(secret, "metadata", "name") else None


def secret_value(secret: dict[str, Any] | None, key: str) -> str | None:
    """A value of a Secret's `data` (base64) or, in hand-written fixtures, `stringData`; None when absent/empty."""
    if not secret:
        return None
    raw = mapping(secret, "data").get(key)
    if isinstance(raw, str) and raw:
        try:
            value = base64.b64decode(raw, validate=True).decode()
        except ValueError:  # not base64, or not UTF-8 (binascii.Error and UnicodeDecodeError are ValueErrors)
            return None
        return value or None
    plain = mapping(secret, "stringData").get(key)
    return plain if isinstance(plain, str) and plain else None


def previous_revision(view: View) -> int:
    """The highest numeric password revision any observed Job used (0 when none): after the Secret is lost, the
    regenerated password gets a higher revision, so the worker sets it."""
    highest = 0
    for key, res in view.observed.items():
        if not key.startswith(JOB_PREFIX):
            continue
        value = text(res, "metadata", "annotations", PASSWORD_REVISION_ANNOTATION)
        if value.isdigit():
            highest = max(highest, int(value))
    return highest


def generated_password(view: View, settings: dict[str, Any], secret: dict[str, Any] | None) -> Password:
    """Reuse the credentials Secret's password; generate one only when there is none."""
    current = secret_value(secret, "password")
    annotation = text(secret, "metadata", "annotations", REVISION_ANNOTATION)
    if current is not None:
        revision = annotation if annotation.isdigit() and int(annotation) > 0 else "1"
        return Password(current, revision, generated_now=False)
    floor = int(annotation) if annotation.isdigit() else 0
    revision = str(max(previous_revision(view), floor) + 1)
    value = passwords.generate(
        view.rng, settings["length"], settings["includeSpecialChars"], settings.get("excludeChars", "")
    )
    return Password(value, revision, generated_now=True)


def uri(endpoint: Endpoint, username: str, password: str | None) -> str:
    scheme = "postgresql" if endpoint.engine == "postgres" else "mysql"
    user = urllib.parse.quote(username, safe="")
    if password is not None:
        user += ":" + urllib.parse.quote(password, safe="")
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    text = f"{scheme}://{user}@{host}:{endpoint.port}/{urllib.parse.quote(endpoint.database, safe='')}"
    if endpoint.ssl_mode:
        if endpoint.engine == "postgres":
            text += f"?sslmode={endpoint.ssl_mode}"
        elif endpoint.ssl_mode in _MYSQL_SSL_MODE:
            text += f"?ssl-mode={_MYSQL_SSL_MODE[endpoint.ssl_mode]}"
    return text


def template_values(
    view: View, endpoint: Endpoint, username: str, password: str | None, ca: str = ""
) -> dict[str, str]:
    """`ca`: the CA certificate the instance's connection trusts (its TLS Secret's CA key), empty without one."""
    return {
        "CA": ca,
        "Username": username,
        "Password": password or "",
        "Host": endpoint.host,
        "Port": str(endpoint.port),
        "Database": endpoint.database,
        "SSLMode": endpoint.ssl_mode or "prefer",
        "Namespace": view.namespace or "",
        "Name": view.claim_name,
    }


def uses_ca(template: dict[str, Any]) -> bool:
    """Whether any key of `secretTemplate.data` renders `{{ .CA }}`."""
    return any(
        secret_template.renderings(source, "CA", "x")
        for source in (template.get("data") or {}).values()
        if isinstance(source, str)
    )


def template_errors(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(path suffix, message) for every secretTemplate.data value that does not parse or shadows `password`."""
    errors: list[tuple[str, str]] = []
    for key, value in (template.get("data") or {}).items():
        if key == "password":
            errors.append(
                (f"data[{key!r}]", "is reserved: the password key always holds the password; use another key")
            )
            continue
        try:
            secret_template.parse(value)
        except secret_template.TemplateError as exc:
            errors.append((f"data[{key!r}]", str(exc)))
    return errors


BASIC_AUTH = "kubernetes.io/basic-auth"
BASIC_AUTH_KEYS = ("username", "password")


def secret_type_errors(template: dict[str, Any], data: dict[str, str]) -> list[str]:
    """What the Secret's type needs from the rendered keys. The API server accepts a basic-auth Secret with either
    key; whoever reads one expects both, so a user without a managed password cannot have that type."""
    if template.get("type") != BASIC_AUTH:
        return []
    missing = [key for key in BASIC_AUTH_KEYS if not data.get(key)]
    if not missing:
        return []
    why = []
    if "password" in missing:
        why.append(
            "no password is managed (passwordSecret.generate is false and there is no existingPasswordSecret)"
        )
    if "username" in missing:
        why.append("secretTemplate.data['username'] renders empty")
    return [
        f"{BASIC_AUTH} needs non-empty keys username and password, but the Secret would have no "
        f"{' and no '.join(missing)}: {'; '.join(why)}; use type Opaque or give the user a password"
    ]


def secret_data(
    view: View,
    endpoint: Endpoint,
    username: str,
    password: str | None,
    template: dict[str, Any],
    *,
    ca: str = "",
) -> dict[str, str]:
    """The Secret's keys as text: the standard ones, then the rendered template keys (which may override all of
    them but `password`)."""
    data = {
        "username": username,
        "host": endpoint.host,
        "port": str(endpoint.port),
        "database": endpoint.database,
        "uri": uri(endpoint, username, password),
    }
    if password is not None:
        data["password"] = password
    values = template_values(view, endpoint, username, password, ca)
    for key, source in (template.get("data") or {}).items():
        data[key] = secret_template.render(source, values)
    return data


def secret(
    view: View,
    name: str,
    data: dict[str, str],
    template: dict[str, Any],
    revision: str,
) -> dict[str, Any]:
    annotations = {**(template.get("annotations") or {}), REVISION_ANNOTATION: revision}
    labels = {**(template.get("labels") or {}), **managed_labels(view)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": view.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "type": template.get("type", "Opaque"),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def job_password_secret(view: View, password: str, revision: str) -> dict[str, Any]:
    """The password the Job of a cross-namespace user maps in, in the Job's namespace (the instance's): only the
    `password` key, the password revision."""
    return job_input_secret(view, "password", {"password": password}, revision)


def job_input_secret(view: View, suffix: str, data: dict[str, str], revision: str) -> dict[str, Any]:
    """A copy, in the Job's namespace (the instance's), of the values of this namespace's Secrets that the Job of a
    cross-namespace claim reads (docs/function.md#cross-namespace-instances): only the keys the Job uses, dbops'
    labels, and the revision of what it copies (the Job waits until the observed copy carries it).

    Named by the XR's uid, not its name: a claim may choose its XR's name (`spec.resourceRef`), and Crossplane's
    server-side apply takes over a Secret of that name that has no controller, so a name a tenant can choose could
    overwrite a Secret of the instance's namespace that dbops did not create. A uid is never the tenant's choice."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"dbops-{view.uid or view.name}-{suffix}"[:253],
            "namespace": view.jobs_namespace,
            "labels": managed_labels(view),
            "annotations": {REVISION_ANNOTATION: revision},
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def job_input_current(view: View, key: str, revision: str) -> bool:
    """Whether the observed copy under `key` exists and carries `revision`: the Job may start."""
    seen = view.observed.get(key)
    return seen is not None and text(seen, "metadata", "annotations", REVISION_ANNOTATION) == revision
