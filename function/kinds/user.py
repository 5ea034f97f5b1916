"""XDatabaseUser: the credentials Secret (password generated once, then kept), XR connection details, and one
`dbops-worker apply|drop` Job per desired state once the instance (and database) are Ready and the Secret exists."""

from __future__ import annotations

from typing import Any

from dbops_api.registry import API_VERSION
from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import SecretKeyRef, server_access
from function.jobs.job import WorkerCall
from function.jobs.progress import carried_over, progress
from function.jobs.request import request_spec, worker_request
from function.kinds.lifecycle import action_for
from function.objects import mapping, text
from function.outcome import Composed, Outcome, Requirement, Result
from function.secrets import credentials as creds
from function.secrets import ownership
from function.secrets.password import alphabet_error
from function.spec.defaults import spec_with_defaults
from function.spec.references import (
    CLAIM,
    CREDENTIALS_SECRET,
    DATABASE,
    PASSWORD_SECRET,
    Lookup,
    instance_spec,
)
from function.spec.validation import engine_block_errors, request_errors, validate_spec
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


def compose_user(view: View) -> Outcome:
    out = _compose(view)
    if not view.legacy:
        return out  # a v2 Namespaced XR has no connection details
    # Connection details only for a claim that asks for them with writeConnectionSecretToRef: Crossplane writes
    # them to the XR's Secret in writeConnectionSecretsToNamespace (crossplane-system) and copies that to the
    # claim's namespace, so a password returned for every XR would sit in crossplane-system for every user.
    out.requirements[CLAIM] = Requirement(API_VERSION, KIND, view.namespace, match_name=view.claim_name)
    if not view.resolved(CLAIM):
        out.connection_details = {}
        return out
    if not mapping(view.one(CLAIM), "spec", "writeConnectionSecretToRef"):
        # Not asked (any more): blank whatever the XR's Secret still holds (a merge patch keeps absent keys).
        out.connection_details = dict.fromkeys(view.connection_keys, "")
        return out
    if not out.connection_details:
        # Whatever else happened, the claim's connection Secret keeps what the credentials Secret holds.
        observed = creds.observed_secret(view)
        if observed is not None:
            keys = {**mapping(observed, "data"), **mapping(observed, "stringData")}
            values = {k: creds.secret_value(observed, k) for k in keys}
            out.connection_details = {k: v for k, v in values.items() if v is not None}
    return out


def _compose(view: View) -> Outcome:
    spec, errors = validate_spec(view, KIND)
    if not errors:
        errors = _spec_errors(spec)
    if errors:
        return st.invalid(view, KIND, errors)
    action, settled = action_for(view, KIND, spec)
    if settled is not None:
        return settled
    lookup = Lookup(view)
    settings = spec_with_defaults(KIND, spec)["passwordSecret"]
    observed = creds.observed_secret(view)
    wanted_name = settings.get("secretName") or f"{view.claim_name}-credentials"
    secret_name = text(observed, "metadata", "name")
    if action == "apply" and secret_name != wanted_name:
        # Asked in the same round as the claims, so the first reconcile needs no extra call.
        lookup.requirements[CREDENTIALS_SECRET] = Requirement(
            "v1", "Secret", view.namespace, match_name=wanted_name
        )
    instance_name = spec["instanceRef"]["name"]
    instance = instance_spec(lookup, instance_name, "spec.instanceRef")
    database = ""
    if "databaseRef" in spec:
        database = _database_name(lookup, spec["databaseRef"]["name"], instance_name)
    existing = None
    if "existingPasswordSecret" in spec and action == "apply":
        ref = spec["existingPasswordSecret"]
        existing = lookup.require(PASSWORD_SECRET, "v1", "Secret", ref["name"], "spec.existingPasswordSecret")
    if lookup.errors:
        return lookup.invalid(KIND)
    if instance is None or lookup.waiting:
        reason = "WaitingForInstance" if instance is None else "WaitingForDependencies"
        return lookup.waiting_outcome(KIND, reason)
    access = lookup.credentials(server_access(instance))
    resolved = {"database": database} if database else {}
    request = worker_request(
        view, KIND, access.engine, access.connection, request_spec(KIND, spec, resolved), policy=access.policy
    )
    errors = engine_block_errors(spec, access.engine, instance_name) or request_errors(
        view, KIND, action, request
    )
    if errors:
        return lookup.invalid(KIND, errors)

    if action == "drop":
        # The password is not needed to drop; the Secret stays until the claim is deleted (docs/function.md).
        out = st.from_progress(view, KIND, progress(view, WorkerCall("drop", request, access, None, "")))
        out.resources.update({k: v for k, v in carried_over(view).items() if k == creds.SECRET_KEY})
        out.requirements.update(lookup.requirements)
        return lookup.annotate(out)

    if secret_name != wanted_name:
        found = ownership.existing_secret(
            view, CREDENTIALS_SECRET, wanted_name, _reserved_secrets(spec, instance_name, instance)
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
    warnings: list[Result] = []
    if secret_name != wanted_name:
        warnings.append(
            Result(
                "Warning",
                f"spec.passwordSecret.secretName is {wanted_name}, but the credentials Secret was created as "
                f"{secret_name} and a composed resource cannot be renamed; it keeps its name",
                "SecretNameFixed",
            )
        )
    if existing is not None:
        key = spec["existingPasswordSecret"]["key"]
        ref_name = spec["existingPasswordSecret"]["name"]
        value = creds.secret_value(existing, key)
        if value is None:
            message = (
                f"spec.existingPasswordSecret: Secret {ref_name} has no key {key!r} "
                "(or it is empty); add it or set existingPasswordSecret.key"
            )
            return lookup.annotate(
                st.failed(view, KIND, message, "PasswordSecretInvalid", lookup.requirements)
            )
        revision = "rv-" + (text(existing, "metadata", "resourceVersion") or "0")
        password = creds.Password(value, revision, generated_now=False)
        password_ref: SecretKeyRef | None = SecretKeyRef(ref_name, key)
        needs_secret = False
    elif _generates(spec):
        password = creds.generated_password(view, settings, observed)
        password_ref = SecretKeyRef(secret_name, "password")
        needs_secret = True
    else:
        password = creds.Password(None, "none", generated_now=False)
        password_ref = None
        needs_secret = False

    template = settings["secretTemplate"]
    endpoint = access.endpoint(database)
    data = creds.secret_data(view, endpoint, spec["username"], password.value, template)
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
    template = kept
    secret = creds.secret(view, secret_name, data, template, password.revision)
    secret_ready = observed is not None and not password.generated_now

    if needs_secret and not secret_ready:
        # The Pod must never start before its Secret exists (it would fail on the missing secretKeyRef), and a
        # password generated in this call is not yet the one the cluster holds.
        out = st.waiting(
            view,
            KIND,
            f"creating the credentials Secret {secret_name}; the Job starts once it exists",
            "WaitingForSecret",
            lookup.requirements,
        )
        out.resources = {k: v for k, v in out.resources.items() if k != creds.SECRET_KEY}
        out.ttl_seconds = float(view.input["ttl"]["runningSeconds"])
    else:
        call = WorkerCall("apply", request, access, password_ref, password.revision)
        out = st.from_progress(view, KIND, progress(view, call))
        out.requirements.update(lookup.requirements)
    out.resources[creds.SECRET_KEY] = Composed(secret, ready=True)
    # A password drawn in this call must not be handed out again for the same request: draw anew each time.
    out.cacheable = out.cacheable and not password.generated_now
    out.results.extend(warnings)
    if view.legacy:
        out.connection_details = data
    return lookup.annotate(out)


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


def _refused(view: View, lookup: Lookup, spec: dict[str, Any], why: str) -> Outcome:
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
    out.ttl_seconds = float(view.input["ttl"]["waitingSeconds"])
    return lookup.annotate(out)


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
