"""XDatabaseUser: the credentials Secret (password generated once, then kept), XR connection details, and one
`dbops-worker apply|drop` Job per desired state once the instance (and database) are Ready and the Secret exists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dbops_api import rotation
from dbops_api.registry import API_VERSION
from dbops_api.validation import FieldError
from function import status as st
from function.jobs.connection import SecretKeyRef
from function.jobs.job import WorkerCall
from function.jobs.progress import carried_over, progress
from function.kinds import user_rotation as rot
from function.kinds.driver import Kind, Ready, Target, compose, run_job
from function.objects import mapping, text
from function.outcome import Composed, Outcome, Requirement, Result
from function.secrets import credentials as creds
from function.secrets import ownership
from function.secrets import password as passwords
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
    errors += [FieldError(path, message) for path, message in rotation.spec_errors(spec, _generates(spec))]
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
    namespace = spec["instanceRef"].get("namespace")
    instance = instance_spec(lookup, instance_name, "spec.instanceRef", namespace)
    database = ""
    if "databaseRef" in spec:
        database = _database_name(lookup, spec["databaseRef"]["name"], spec["instanceRef"])
    if "existingPasswordSecret" in spec and applies:
        ref = spec["existingPasswordSecret"]
        lookup.require(PASSWORD_SECRET, "v1", "Secret", ref["name"], "spec.existingPasswordSecret")
    roles = _role_names(spec, lookup)
    if instance is None:
        return None
    resolved: dict[str, Any] = {"database": database} if database else {}
    if rot.enabled(spec) and applies:
        problem = rotation.strategy_error(instance["engine"], spec["passwordRotation"])
        if namespace and namespace != view.namespace:
            lookup.errors.append(FieldError("spec.passwordRotation.enabled", CROSS_NAMESPACE_ROTATION))
        elif problem:
            lookup.errors.append(FieldError("spec.passwordRotation.strategy", problem))
        elif instance["engine"] == "postgres" and len(rotation.login_name(spec["username"], 999999)) > 63:
            lookup.errors.append(
                FieldError(
                    "spec.passwordRotation.enabled",
                    f"rotation names login roles {spec['username']}_r<N>, which must fit PostgreSQL's 63 bytes: "
                    "use a username of at most 55 characters",
                )
            )
        else:
            found = rot.step(view, spec, instance["engine"])
            resolved["rotation"] = found.request
            if found.start:
                # Before a -rotation Secret is composed, what else has its name (never taken over: ownership).
                staging = rot.staging_name(_secret_name(view) or wanted)
                lookup.requirements[rot.REQUIREMENT] = Requirement(
                    "v1", "Secret", view.namespace, match_name=staging
                )
    if roles:
        # The claim's own roles first: on MariaDB the first is the default role.
        resolved["roles"] = list(dict.fromkeys([*(spec.get("roles") or []), *roles]))
    return Target(instance_name, instance, resolved, instance_namespace=namespace)


def _role_names(spec: dict[str, Any], lookup: Lookup) -> list[str]:
    """The server-side names of the DatabaseRole claims `roleRefs` names (each must be on the user's instance)."""
    names: list[str] = []
    for i, ref in enumerate(spec.get("roleRefs") or []):
        path = f"spec.roleRefs[{i}]"
        found = lookup.claim(f"role-{i}", "DatabaseRole", ref["name"], path)
        role = lookup.claim_spec(found, "DatabaseRole", path) if found is not None else None
        if role is None:
            continue
        if _where(lookup, role["instanceRef"]) != _where(lookup, spec["instanceRef"]):
            lookup.errors.append(
                FieldError(
                    path,
                    f"DatabaseRole {ref['name']} is on DatabaseInstance {_shown(lookup, role['instanceRef'])}, not "
                    f"on this user's {_shown(lookup, spec['instanceRef'])}; a user joins roles of its own server",
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
    engine = ready.access.engine
    rotating = rot.step(view, spec, engine) if "rotation" in ready.request["spec"] else None
    secret_user = spec["username"] if rotating is None else rot.username(spec, engine, rotating.generation)
    job_password, job_ref = password, password_ref
    next_revision = str(int(password.revision) + 1) if password.revision.isdigit() else "1"
    staged = creds.secret_value(rotating.staging, "password") if rotating is not None else None
    if rotating is not None and rotating.uses_staging_password and staged is not None:
        # The next generation's password, from the -rotation Secret: the credentials Secret is not touched
        # before a login proved it.
        job_password = creds.Password(staged, next_revision, generated_now=False)
        job_ref = SecretKeyRef(rot.staging_name(secret_name), "password")
    template = settings["secretTemplate"]
    endpoint = ready.access.endpoint(ready.target.resolved.get("database", ""))
    ca = ""
    tls = ready.access.tls
    if tls is not None and creds.uses_ca(template) and view.job_namespace:
        # The CA sits in a Secret of the instance's namespace: nothing of it reaches this namespace.
        return lookup.invalid(
            KIND, [FieldError("spec.passwordSecret.secretTemplate.data", CROSS_NAMESPACE_CA)]
        )
    if tls is not None and creds.uses_ca(template):
        # `{{ .CA }}`: the CA the instance's connection trusts, from its TLS Secret (asked for with the admin
        # Secret, for the revision). Not rendered before Crossplane has answered: an empty CA would be a lie.
        if not view.resolved(TLS_SECRET):
            message = f"looking up Secret {tls.secret} for the CA certificate ({{{{ .CA }}}})"
            return lookup.annotate(st.waiting(view, KIND, message, "LookingUp", lookup.requirements))
        ca = creds.secret_value(view.one(TLS_SECRET), tls.ca) or ""
    data = creds.secret_data(view, endpoint, secret_user, password.value, template, ca=ca)
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
    if rotating is not None:
        _keep_rotation_memory(view, secret, observed, rotating, spec)
    extra: dict[str, Composed] = {}
    job_input_missing = False
    if view.job_namespace and job_ref is not None and job_password.value is not None:
        # The Job runs in the instance's namespace and reads the password there: a Secret with that one key,
        # composed next to the Job (docs/function.md#cross-namespace-instances). Rotation is refused there.
        job_input = creds.job_password_secret(view, job_password.value, job_password.revision)
        extra[creds.JOB_PASSWORD_KEY] = Composed(job_input, ready=True)
        job_ref = SecretKeyRef(job_input["metadata"]["name"], "password")
        job_input_missing = not creds.job_input_current(
            view, creds.JOB_PASSWORD_KEY, str(job_password.revision)
        )
    if (needs_secret and (observed is None or password.generated_now)) or job_input_missing:
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
            resources={
                k: v
                for k, v in waiting.resources.items()
                if k not in (creds.SECRET_KEY, creds.JOB_PASSWORD_KEY)
            },
            ttl_seconds=float(view.input["ttl"]["runningSeconds"]),
        )
    else:
        action = ready.action
        if rotating is not None and rotating.uses_staging_password and action == "apply":
            # A worker that predates rotation does not know `rotate`: its Job fails instead of completing without
            # the new credential, which would switch the Secret to a login that does not exist.
            action = "rotate"
        call = WorkerCall(action, ready.request, ready.access, job_ref, job_password.revision)
        prog = progress(view, call)
        out = st.from_progress(view, KIND, prog, lookup.requirements)
        if rotating is not None:
            done = prog.reported is not None and prog.reported.phase == "complete"
            current = _Credentials(secret_name, secret, data, kept, ca, staged, next_revision)
            out, secret, data = _rotate(ready, out, rotating, current, done=done)
    out = replace(
        out.adding(resources={creds.SECRET_KEY: Composed(secret, ready=True), **extra}, results=warnings),
        # A password drawn in this call must not be handed out again for the same request: draw anew each time.
        cacheable=out.cacheable and not password.generated_now,
        connection_details=data if view.legacy else {},
    )
    return lookup.annotate(out)


CROSS_NAMESPACE_CA = (
    "{{ .CA }} is refused for an instance of another namespace: the CA is read from that namespace's TLS Secret, "
    "and nothing of its Secrets is copied here; take the CA from where the platform team publishes it"
)
CROSS_NAMESPACE_ROTATION = (
    "password rotation is not offered for an instance of another namespace yet: its Job runs in the instance's "
    "namespace and would need the next password there as well; rotate by deleting the credentials Secret's "
    "password key, or use a DatabaseInstance in this namespace"
)


@dataclass(frozen=True)
class _Credentials:
    """The credentials Secret as this call composes it, and what a rotation step needs to rewrite it."""

    name: str
    secret: dict[str, Any]
    data: dict[str, str]
    template: dict[str, Any]
    ca: str
    staged: str | None  # the -rotation Secret's password
    next_revision: str


def _keep_rotation_memory(
    view: View, secret: dict[str, Any], observed: dict[str, Any] | None, found: rot.Step, spec: dict[str, Any]
) -> None:
    """Carry the rotation's annotations over from the observed Secret; a new Secret records the current trigger
    (setting a trigger on a new user starts no rotation). The credential's age counts from `rotated-at`: the
    Secret's creation, or the first call with rotation on for a Secret that does not say when it was created."""
    notes = mapping(observed, "metadata", "annotations") if observed is not None else {}
    trigger = str((spec.get("passwordRotation") or {}).get("trigger") or "")
    kept = {
        key: str(notes[key])
        for key in (rot.GENERATION_ANNOTATION, rot.ROTATED_AT_ANNOTATION, rot.TRIGGER_ANNOTATION)
        if key in notes
    }
    if observed is None and trigger:
        kept[rot.TRIGGER_ANNOTATION] = trigger
    if rot.ROTATED_AT_ANNOTATION not in kept:
        since = found.rotated_at or view.now
        kept[rot.ROTATED_AT_ANNOTATION] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    secret["metadata"]["annotations"].update(kept)
    secret["metadata"]["annotations"].setdefault(rot.GENERATION_ANNOTATION, str(found.generation))


def _rotate(
    ready: Ready, out: Outcome, found: rot.Step, current: _Credentials, *, done: bool
) -> tuple[Outcome, dict[str, Any], dict[str, str]]:
    """One rotation step's effect on what this call composes: the -rotation Secret, the Secret switch, the status
    and when to come back (docs/function.md, "Password rotation")."""
    view, spec = ready.view, ready.spec
    engine = ready.access.engine
    settings = block_with_defaults(KIND, spec, "passwordSecret")
    staging_name = rot.staging_name(current.name)
    secret, data = current.secret, current.data
    phase = found.phase
    resources: dict[str, Composed] = {}
    results: list[Result] = []
    cacheable = out.cacheable
    wake: list[Any] = [t for t in (found.grace_ends, found.next_rotation) if t is not None and t > view.now]
    blocked = ""
    if found.start:
        existing = ownership.existing_secret(
            view,
            rot.REQUIREMENT,
            staging_name,
            _reserved_secrets(spec, ready.target.instance_name, ready.target.instance),
        )
        blocked = existing.conflict or ("" if existing.resolved else "waiting")
        if existing.conflict:
            results.append(
                Result(
                    "Warning",
                    f"password rotation: {existing.conflict}; dbops never writes to a Secret it did not create for "
                    f"this claim, so no rotation starts: delete or rename that Secret",
                    "SecretNotOwned",
                )
            )
    if found.start and not blocked:
        fresh = passwords.generate(
            view.rng, settings["length"], settings["includeSpecialChars"], settings.get("excludeChars", "")
        )
        staging = rot.staging_secret(
            view, staging_name, fresh, found.generation + 1, found.generation, template=current.template
        )
        resources[rot.SECRET_KEY] = Composed(staging, ready=True)
        phase, cacheable = "NewCredentialCreated", False
        results.append(
            Result(
                "Normal", f"password rotation: generation {found.generation + 1} is being created", "Rotating"
            )
        )
    elif found.staging is not None and current.staged is not None:
        new = found.new_generation
        if found.uses_staging_password and done:
            # The Job created generation N and logged in with it: the Secret now gives it to new logins.
            username = rot.username(spec, engine, new)
            endpoint = ready.access.endpoint(ready.target.resolved.get("database", ""))
            data = creds.secret_data(
                view, endpoint, username, current.staged, current.template, ca=current.ca
            )
            secret = creds.secret(view, current.name, data, current.template, current.next_revision)
            notes = mapping(current.secret, "metadata", "annotations")
            rot.annotate(secret, new, view.now, str(notes.get(rot.TRIGGER_ANNOTATION, "")))
            trigger = str((spec.get("passwordRotation") or {}).get("trigger") or "")
            if trigger:
                secret["metadata"]["annotations"][rot.TRIGGER_ANNOTATION] = trigger
            phase = "SecretSwitched"
            wake.append(view.now + rot.grace(spec, engine))
            results.append(
                Result(
                    "Normal",
                    f"password rotation: the credentials Secret switched to generation {new} ({username}); the "
                    f"old credential works until the grace period ends",
                    "SecretSwitched",
                )
            )
        if found.retiring and done:
            phase = "OldRetired"  # the -rotation Secret is left out: Crossplane deletes it
            results.append(Result("Normal", "password rotation: the old credential is retired", "OldRetired"))
        else:
            kept = rot.staging_secret(
                view,
                staging_name,
                current.staged,
                new if found.uses_staging_password else found.generation,
                int(found.request["retireBefore"]) if found.uses_staging_password else 0,
                template=current.template,
            )
            kept["metadata"]["annotations"] = {
                k: v
                for k, v in mapping(found.staging, "metadata", "annotations").items()
                if k in (rot.GENERATION_ANNOTATION, rot.RETIRE_BEFORE_ANNOTATION)
            }
            resources[rot.SECRET_KEY] = Composed(kept, ready=True)
    shown = rot.status(found, spec, engine, phase)
    if phase == "SecretSwitched" and found.uses_staging_password:
        new = found.new_generation
        shown.update(generation=new, username=rot.username(spec, engine, new))
        shown["rotatedAt"] = view.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        shown["graceEndsAt"] = (view.now + rot.grace(spec, engine)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {**out.status, "rotation": shown}
    ttl_at = out.ttl_at
    if wake:
        ttl_at = min([*wake, *([ttl_at] if ttl_at is not None else [])])
    out = replace(
        out.adding(resources=resources, results=results),
        status=status,
        cacheable=cacheable,
        ttl_at=ttl_at,
        valid_until=min(ttl_at, out.valid_until) if ttl_at and out.valid_until else out.valid_until,
    )
    return out, secret, data


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


def _database_name(lookup: Lookup, name: str, instance_ref: dict[str, Any]) -> str:
    """The server-side name of the referenced Database claim, checking it lives on the same instance."""
    found = lookup.claim(DATABASE, "Database", name, "spec.databaseRef")
    if found is None:
        return ""
    spec = lookup.claim_spec(found, "Database", "spec.databaseRef")
    if spec is None:
        return ""
    if _where(lookup, spec["instanceRef"]) != _where(lookup, instance_ref):
        lookup.errors.append(
            FieldError(
                "spec.databaseRef",
                f"Database {name} is on DatabaseInstance {_shown(lookup, spec['instanceRef'])}, but this user is on "
                f"{_shown(lookup, instance_ref)}; reference a Database on the same instance",
            )
        )
        return ""
    return str(spec["name"])


def _where(lookup: Lookup, ref: dict[str, Any]) -> tuple[str, str]:
    """An instanceRef as (namespace, name), the claim's own namespace filled in."""
    return str(ref.get("namespace") or lookup.view.namespace or ""), str(ref["name"])


def _shown(lookup: Lookup, ref: dict[str, Any]) -> str:
    namespace = ref.get("namespace")
    return (
        f"{namespace}/{ref['name']}" if namespace and namespace != lookup.view.namespace else str(ref["name"])
    )
