"""XDatabaseUser: the credentials Secret (password generated once, then kept), XR connection details, and one
`dbops-worker apply|drop` Job per desired state once the instance (and database) are Ready and the Secret exists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dbops_api.registry import API_VERSION
from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import SecretKeyRef
from function.jobs.job import WorkerCall
from function.jobs.progress import carried_over, progress
from function.kinds.driver import Kind, Ready, Target, compose, run_job
from function.objects import mapping, text
from function.outcome import Composed, Outcome, Requirement, Result
from function.secrets import credentials as creds
from function.secrets import ownership
from function.secrets.password import alphabet_error
from function.spec.defaults import block_with_defaults
from function.spec.references import (
    CLAIM,
    CREDENTIALS_SECRET,
    DATABASE,
    PASSWORD_SECRET,
    TLS_SECRET,
    Lookup,
    Resolution,
    instance_spec,
)
from function.view import View

KIND = "DatabaseUser"


def _spec_errors(spec: dict[str, Any]) -> list[FieldError]:
    """What the schema cannot say about passwordSecret: the template grammar and a usable alphabet."""
    settings = spec.get("passwordSecret", {})
    errors = [
        FieldError(f"spec.passwordSecret.secretTemplate.{where}", message)
        for where, message in creds.template_errors(settings.get("secretTemplate", {}))
    ]
    if _generates(spec):
        problem = alphabet_error(settings.get("includeSpecialChars", False), settings.get("excludeChars", ""))
        if problem:
            errors.append(FieldError("spec.passwordSecret.excludeChars", problem))
    return errors


def _generates(spec: dict[str, Any]) -> bool:
    generate = spec.get("passwordSecret", {}).get("generate")
    return bool(generate) if generate is not None else "existingPasswordSecret" not in spec


def _resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    """The instance, the database (its server-side name), the existing password Secret, and the credentials Secret
    under the name the spec wants (asked in the same round as the claims, so the first reconcile needs no extra
    call)."""
    applies = spec.get("ensure", "Present") == "Present"
    wanted = _wanted_secret_name(view, spec)
    if applies and _secret_name(view) != wanted:
        lookup.requirements[CREDENTIALS_SECRET] = Requirement(
            "v1", "Secret", view.namespace, match_name=wanted
        )
    instance_name = spec["instanceRef"]["name"]
    instance = instance_spec(lookup, instance_name, "spec.instanceRef")
    database = ""
    if "databaseRef" in spec:
        database = _database_name(lookup, spec["databaseRef"]["name"], instance_name)
    if "existingPasswordSecret" in spec and applies:
        ref = spec["existingPasswordSecret"]
        lookup.require(PASSWORD_SECRET, "v1", "Secret", ref["name"], "spec.existingPasswordSecret")
    roles = _role_names(spec, lookup, instance_name)
    if instance is None:
        return None
    resolved: dict[str, Any] = {"database": database} if database else {}
    if roles:
        # The claim's own roles first: on MariaDB the first is the default role.
        resolved["roles"] = list(dict.fromkeys([*(spec.get("roles") or []), *roles]))
    return Target(instance_name, instance, resolved)


def _role_names(spec: dict[str, Any], lookup: Lookup, instance_name: str) -> list[str]:
    """The server-side names of the DatabaseRole claims `roleRefs` names (each must be on the user's instance)."""
    names: list[str] = []
    for i, ref in enumerate(spec.get("roleRefs") or []):
        path = f"spec.roleRefs[{i}]"
        found = lookup.claim(f"role-{i}", "DatabaseRole", ref["name"], path)
        role = lookup.claim_spec(found, "DatabaseRole", path) if found is not None else None
        if role is None:
            continue
        if role["instanceRef"]["name"] != instance_name:
            lookup.errors.append(
                FieldError(
                    path,
                    f"DatabaseRole {ref['name']} is on DatabaseInstance {role['instanceRef']['name']}, not on "
                    f"this user's {instance_name}; a user joins roles of its own server",
                )
            )
            continue
        names.append(str(role["roleName"]))
    return names


def _wanted_secret_name(view: View, spec: dict[str, Any]) -> str:
    return str(
        block_with_defaults(KIND, spec, "passwordSecret").get("secretName")
        or f"{view.claim_name}-credentials"
    )


def _secret_name(view: View) -> str:
    return text(creds.observed_secret(view), "metadata", "name")


def _finish(ready: Ready) -> Outcome:
    if ready.action == "drop":
        # The password is not needed to drop; the Secret stays until the claim is deleted (docs/function.md).
        kept = {k: v for k, v in carried_over(ready.view).items() if k == creds.SECRET_KEY}
        return run_job(ready).adding(resources=kept)
    return _apply(ready)


def _apply(ready: Ready) -> Outcome:
    view, spec, lookup = ready.view, ready.spec, ready.lookup
    settings = block_with_defaults(KIND, spec, "passwordSecret")
    observed = creds.observed_secret(view)
    wanted_name = _wanted_secret_name(view, spec)
    secret_name = _secret_name(view)
    found_released = False
    if secret_name != wanted_name:
        found = ownership.existing_secret(
            view,
            CREDENTIALS_SECRET,
            wanted_name,
            _reserved_secrets(spec, ready.target.instance_name, ready.target.instance),
        )
        if found.conflict:
            return _refused(view, lookup, spec, found.conflict)
        if observed is None:
            if not found.resolved:
                message = f"looking up Secret {wanted_name} before creating it"
                return lookup.annotate(st.waiting(view, KIND, message, "LookingUp", lookup.requirements))
            # Ours but not among the observed resources (those come from the XR's resource references): keep its
            # password rather than drawing a new one.
            observed = found.ours
            secret_name = wanted_name
            found_released = found.released
    warnings: list[Result] = []
    if found_released:
        warnings.append(
            Result(
                "Normal",
                f"took over the credentials Secret {wanted_name}: it has no owner and dbops' labels for "
                f"{KIND} {view.namespace}/{view.claim_name}; its password is kept",
                "SecretTakenOver",
            )
        )
    if secret_name != wanted_name:
        warnings.append(
            Result(
                "Warning",
                f"spec.passwordSecret.secretName is {wanted_name}, but the credentials Secret was created as "
                f"{secret_name} and a composed resource cannot be renamed; it keeps its name",
                "SecretNameFixed",
            )
        )
    chosen = _password(ready, settings, observed, secret_name)
    if isinstance(chosen, Outcome):
        return chosen
    password, password_ref, needs_secret = chosen
    template = settings["secretTemplate"]
    endpoint = ready.access.endpoint(ready.target.resolved.get("database", ""))
    ca = ""
    tls = ready.access.tls
    if tls is not None and creds.uses_ca(template):
        # `{{ .CA }}`: the CA the instance's connection trusts, from its TLS Secret (asked for with the admin
        # Secret, for the revision). Not rendered before Crossplane has answered: an empty CA would be a lie.
        if not view.resolved(TLS_SECRET):
            message = f"looking up Secret {tls.secret} for the CA certificate ({{{{ .CA }}}})"
            return lookup.annotate(st.waiting(view, KIND, message, "LookingUp", lookup.requirements))
        ca = creds.secret_value(view.one(TLS_SECRET), tls.ca) or ""
    data = creds.secret_data(view, endpoint, spec["username"], password.value, template, ca=ca)
    type_errors = creds.secret_type_errors(template, data)
    if type_errors:
        return lookup.invalid(
            KIND, [FieldError("spec.passwordSecret.secretTemplate.type", e) for e in type_errors]
        )
    kept = _keep_secret_type(observed, template, secret_name, warnings)
    if kept is not template and creds.secret_type_errors(kept, data):
        return lookup.invalid(
            KIND,
            [
                FieldError(
                    "spec.passwordSecret.secretTemplate.type",
                    f"the credentials Secret {secret_name} exists with type {kept['type']}, which Kubernetes "
                    "cannot change, and would be left without username or password; delete the Secret so it is "
                    f"created again as {template.get('type', 'Opaque')}, or keep a managed password",
                )
            ],
        )
    secret = creds.secret(view, secret_name, data, kept, password.revision)
    if needs_secret and (observed is None or password.generated_now):
        # The Pod must never start before its Secret exists (it would fail on the missing secretKeyRef), and a
        # password generated in this call is not yet the one the cluster holds.
        waiting = st.waiting(
            view,
            KIND,
            f"creating the credentials Secret {secret_name}; the Job starts once it exists",
            "WaitingForSecret",
            lookup.requirements,
        )
        out = replace(
            waiting,
            resources={k: v for k, v in waiting.resources.items() if k != creds.SECRET_KEY},
            ttl_seconds=float(view.input["ttl"]["runningSeconds"]),
        )
    else:
        call = WorkerCall(ready.action, ready.request, ready.access, password_ref, password.revision)
        out = st.from_progress(view, KIND, progress(view, call), lookup.requirements)
    out = replace(
        out.adding(resources={creds.SECRET_KEY: Composed(secret, ready=True)}, results=warnings),
        # A password drawn in this call must not be handed out again for the same request: draw anew each time.
        cacheable=out.cacheable and not password.generated_now,
        connection_details=data if view.legacy else {},
    )
    return lookup.annotate(out)


def _password(
    ready: Ready, settings: dict[str, Any], observed: dict[str, Any] | None, secret_name: str
) -> tuple[creds.Password, SecretKeyRef | None, bool] | Outcome:
    """The password, the Secret key the Job maps it from, and whether the credentials Secret holds it; or the
    outcome when the existing password Secret is unusable."""
    view, spec = ready.view, ready.spec
    if "existingPasswordSecret" in spec:
        existing = view.one(PASSWORD_SECRET)
        key = spec["existingPasswordSecret"]["key"]
        ref_name = spec["existingPasswordSecret"]["name"]
        value = creds.secret_value(existing, key)
        if value is None:
            message = (
                f"spec.existingPasswordSecret: Secret {ref_name} has no key {key!r} "
                "(or it is empty); add it or set existingPasswordSecret.key"
            )
            lookup = ready.lookup
            return lookup.annotate(
                st.failed(view, KIND, message, "PasswordSecretInvalid", lookup.requirements)
            )
        revision = "rv-" + (text(existing, "metadata", "resourceVersion") or "0")
        return creds.Password(value, revision, generated_now=False), SecretKeyRef(ref_name, key), False
    if _generates(spec):
        password = creds.generated_password(view, settings, observed)
        return password, SecretKeyRef(secret_name, "password"), True
    return creds.Password(None, "none", generated_now=False), None, False


KIND_SPEC = Kind(KIND, _resolve, spec_errors=_spec_errors, finish=_finish)


def compose_user(view: View) -> Outcome:
    out = compose(view, KIND_SPEC)
    if not view.legacy:
        return out  # a v2 Namespaced XR has no connection details
    # Connection details only for a claim that asks for them with writeConnectionSecretToRef: Crossplane writes
    # them to the XR's Secret in writeConnectionSecretsToNamespace (crossplane-system) and copies that to the
    # claim's namespace, so a password returned for every XR would sit in crossplane-system for every user.
    out = out.adding(
        requirements={CLAIM: Requirement(API_VERSION, KIND, view.namespace, match_name=view.claim_name)}
    )
    if not view.resolved(CLAIM):
        return replace(out, connection_details={})
    if not mapping(view.one(CLAIM), "spec", "writeConnectionSecretToRef"):
        # Not asked (any more): blank whatever the XR's Secret still holds (a merge patch keeps absent keys).
        return replace(out, connection_details=dict.fromkeys(view.connection_keys, ""))
    if not out.connection_details:
        # Whatever else happened, the claim's connection Secret keeps what the credentials Secret holds.
        observed = creds.observed_secret(view)
        if observed is not None:
            keys = {**mapping(observed, "data"), **mapping(observed, "stringData")}
            values = {k: creds.secret_value(observed, k) for k in keys}
            return replace(out, connection_details={k: v for k, v in values.items() if v is not None})
    return out


def _reserved_secrets(spec: dict[str, Any], instance_name: str, instance: dict[str, Any]) -> dict[str, str]:
    """Secrets this claim's references use, by name: the credentials Secret may never be one of them."""
    out = {
        instance["connection"]["secretRef"]["name"]: f"the admin Secret of DatabaseInstance {instance_name}"
    }
    tls = instance.get("tls", {}).get("secretRef", {}).get("name")
    if tls:
        out[tls] = f"the TLS Secret of DatabaseInstance {instance_name}"
    if "existingPasswordSecret" in spec:
        out[spec["existingPasswordSecret"]["name"]] = "this claim's existingPasswordSecret"
    return out


def _refused(view: View, lookup: Resolution, spec: dict[str, Any], why: str) -> Outcome:
    """The credentials Secret would be a Secret dbops did not create for this claim: compose nothing new (above all
    not that Secret), keep what exists, and look again soon (the Secret may be deleted, or the name fixed)."""
    field = "spec.passwordSecret.secretName"
    if not spec.get("passwordSecret", {}).get("secretName"):
        field += f" (default {view.claim_name}-credentials)"
    message = (
        f"{field}: {why}; dbops never writes to a Secret it did not create for this claim: choose another "
        "secretName, or delete that Secret if nothing uses it"
    )
    out = st.failed(view, KIND, message, "SecretNotOwned", lookup.requirements)
    return lookup.annotate(replace(out, ttl_seconds=float(view.input["ttl"]["waitingSeconds"])))


def _keep_secret_type(
    observed: dict[str, Any] | None, template: dict[str, Any], secret_name: str, warnings: list[Result]
) -> dict[str, Any]:
    """The template with the observed Secret's type when it differs: the API server refuses any update that changes
    a Secret's type, so composing the new one would fail on every reconcile while the claim looked fine."""
    kept = text(observed, "type")
    wanted = template.get("type", "Opaque")
    if not kept or kept == wanted:
        return template
    warnings.append(
        Result(
            "Warning",
            f"spec.passwordSecret.secretTemplate.type is {wanted}, but the credentials Secret {secret_name} exists "
            f"with type {kept} and Kubernetes cannot change a Secret's type; it keeps its type. Delete the Secret "
            "to have it created again with the new type (a generated password is then regenerated and set by a "
            "new Job)",
            "SecretTypeFixed",
        )
    )
    return {**template, "type": kept}


def _database_name(lookup: Lookup, name: str, instance_name: str) -> str:
    """The server-side name of the referenced Database claim, checking it lives on the same instance."""
    found = lookup.claim(DATABASE, "Database", name, "spec.databaseRef")
    if found is None:
        return ""
    spec = lookup.claim_spec(found, "Database", "spec.databaseRef")
    if spec is None:
        return ""
    if spec["instanceRef"]["name"] != instance_name:
        lookup.errors.append(
            FieldError(
                "spec.databaseRef",
                f"Database {name} is on DatabaseInstance {spec['instanceRef']['name']}, but this user is on "
                f"{instance_name}; reference a Database on the same instance",
            )
        )
        return ""
    return str(spec["name"])
