"""XDatabaseGrant: resolves the grantee (userRef, roleRef or roleName), the database and the instance, then one
`dbops-worker apply|drop` Job per desired state (drop revokes)."""

from __future__ import annotations

from typing import Any

from dbops_api.validation import FieldError
from function.kinds.driver import Kind, Target, compose
from function.objects import mapping, text
from function.outcome import Outcome, Requirement
from function.spec.references import DATABASE, USER, Lookup, instance_spec
from function.spec.validation import schema_walk
from function.view import View, claim_spec


def _resolve(view: View, spec: dict[str, Any], lookup: Lookup) -> Target | None:
    # (namespace, instance name) -> the field that led to it; namespace "" is the claim's own.
    instances: dict[tuple[str, str], str] = {}
    if "instanceRef" in spec:
        instances.setdefault(_instance(view, spec), "spec.instanceRef")
    user: dict[str, Any] | None = None
    if "userRef" in spec:
        user = _claim_spec(lookup, USER, "DatabaseUser", spec["userRef"]["name"], "spec.userRef")
        if user is not None:
            instances.setdefault(_instance(view, user), "spec.userRef")
    role: dict[str, Any] | None = None
    if "roleRef" in spec:
        role = _claim_spec(lookup, ROLE, "DatabaseRole", spec["roleRef"]["name"], "spec.roleRef")
        if role is not None:
            instances.setdefault(_instance(view, role), "spec.roleRef")
    database: dict[str, Any] | None = None
    if "databaseRef" in spec:
        database = _claim_spec(lookup, DATABASE, "Database", spec["databaseRef"]["name"], "spec.databaseRef")
        if database is not None:
            instances.setdefault(_instance(view, database), "spec.databaseRef")
    if len(instances) > 1:
        shown = ", ".join(
            f"{field} -> {namespace + '/' if namespace else ''}{name}"
            for (namespace, name), field in instances.items()
        )
        lookup.errors.append(
            FieldError(
                "spec", f"the references lead to different DatabaseInstances ({shown}); use one instance"
            )
        )
    if not instances and not lookup.waiting:
        lookup.errors.append(
            FieldError(
                "spec.instanceRef",
                "is required when none of userRef, roleRef and databaseRef names an object on the instance",
            )
        )
    if lookup.errors or not instances:
        return None
    (namespace, instance_name), path = next(iter(instances.items()))
    instance = instance_spec(lookup, instance_name, path, namespace or None)
    if instance is None or lookup.waiting or lookup.errors:
        return None
    engine = str(instance["engine"])
    resolved: dict[str, Any] = {}
    renames: dict[str, str] = {}
    if user is not None:
        resolved["grantee"] = user["username"]
        renames["spec.grantee"] = "spec.userRef"
        if engine != "postgres":
            resolved["granteeHosts"] = list(user.get("mysql", {}).get("allowedHosts", ["%"]))
    elif role is not None:
        resolved["grantee"] = role["roleName"]
        renames["spec.grantee"] = "spec.roleRef"
        if engine != "postgres":
            resolved["granteeHosts"] = ["%"]
    else:
        resolved["grantee"] = spec["roleName"]
        renames["spec.grantee"] = "spec.roleName"
        if engine != "postgres":
            resolved["granteeHosts"] = ["%"]
    if database is not None:
        resolved["database"] = database["name"]
    conflicts: list[FieldError] = []
    if user is not None:
        conflicts = _access_conflicts(spec, user, spec["userRef"]["name"], database, engine, lookup=lookup)
    elif role is None:
        for user_claim, named in _users_named(view, lookup, spec, engine, (namespace, instance_name)):
            conflicts += _access_conflicts(spec, named, user_claim, database, engine, lookup=lookup)
    if conflicts or lookup.waiting:
        lookup.errors += conflicts
        return None
    return Target(instance_name, instance, resolved, renames, instance_namespace=namespace or None)


def _instance(view: View, spec: dict[str, Any]) -> tuple[str, str]:
    """The (namespace, name) of a spec's instanceRef; namespace "" when it is the claim's own."""
    ref = spec["instanceRef"]
    namespace = ref.get("namespace") or ""
    return ("" if namespace == view.namespace else namespace), ref["name"]


KIND = Kind("DatabaseGrant", _resolve)


def compose_grant(view: View) -> Outcome:
    return compose(view, KIND)


# The Database claim of the grantee's DatabaseUser's databaseRef, when it is not the grant's own databaseRef.
USER_DATABASE = "user-database"
# Every DatabaseUser of the grant's namespace: for a `roleName` grant whose entries could undo a databaseRef, the
# users whose username is that role on the same instance (the requirement is sent only then).
USERS = "users"
ROLE = "role"  # the DatabaseRole of roleRef
PG_DATABASE_ACCESS = {"CONNECT", "TEMPORARY"}


def _could_conflict(spec: dict[str, Any], engine: str) -> bool:
    block = "postgres" if engine == "postgres" else "mysql"
    return any(_entry_conflict(engine, g) for g in (spec.get(block) or {}).get("grants") or [])


def _users_named(
    view: View, lookup: Lookup, spec: dict[str, Any], engine: str, instance: tuple[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """The DatabaseUsers of the grant's namespace whose account is the one `roleName` names on the grant's
    instance, as (claim name, spec with defaults): a grant by roleName reaches the same account as one by userRef,
    so it meets the same databaseRef. Asked for only when an entry could undo a databaseRef. A grant may only act
    on users of its own namespace (the worker refuses others without `adopt`), so that is where they are looked
    for. Users being deleted or with `ensure: Absent` give nothing any more and are skipped. At most one: an
    account has one managing DatabaseUser (the worker refuses a second), and if several claim it, the Ready one."""
    if not _could_conflict(spec, engine):
        return []
    api_version, kind = view.ref("DatabaseUser")
    lookup.requirements[USERS] = Requirement(api_version, kind, view.namespace, match_labels={})
    if not view.resolved(USERS):
        lookup.waiting.append(f"looking up the DatabaseUsers named {spec['roleName']} in spec.roleName")
        return []
    found: list[tuple[bool, str, dict[str, Any]]] = []
    for item in view.required.get(USERS) or []:
        name = text(item, "metadata", "name")
        raw = item.get("spec")
        if not name or not isinstance(raw, dict) or mapping(item, "metadata").get("deletionTimestamp"):
            continue
        user, errors = schema_walk("DatabaseUser", claim_spec(raw))  # aliases resolved, defaults filled in
        if errors or not isinstance(user, dict):
            continue  # its own claim reports what is wrong with it
        if user.get("username") != spec["roleName"] or not isinstance(user.get("databaseRef"), dict):
            continue
        if user.get("ensure") == "Absent" or _instance(view, user) != instance:
            continue
        if engine != "postgres" and "%" not in (user.get("mysql") or {}).get("allowedHosts", ["%"]):
            continue  # a roleName grant is for 'name'@'%', which this user's accounts are not
        found.append((text(item, "status", "phase") != "Ready", name, user))
    return [(name, user) for _, name, user in sorted(found, key=lambda f: f[:2])[:1]]


def _access_conflicts(
    spec: dict[str, Any],
    user: dict[str, Any],
    user_claim: str,
    database: dict[str, Any] | None,
    engine: str,
    *,
    lookup: Lookup,
) -> list[FieldError]:
    """Database-level entries that would undo what the grantee's DatabaseUser's databaseRef gives it (MySQL and
    MariaDB: ALL PRIVILEGES on the database; PostgreSQL: CONNECT and TEMPORARY on it and USAGE on its schema
    public). A grant entry is an exact set, the user's databaseRef a minimum: left alone, each claim would revoke
    or re-grant what the other did on every run. Refused, naming both claims and the fix. The grantee is named by
    `userRef` or, by its username, `roleName` (`user_claim` is then the DatabaseUser found with that username)."""
    ref = user.get("databaseRef")
    if not isinstance(ref, dict) or ref.get("name") is None:
        return []
    if engine == "postgres" and (user.get("postgres") or {}).get("databaseAccess") == "Owner":
        return []  # the owner holds every privilege on its database whatever an ACL says
    block = "postgres" if engine == "postgres" else "mysql"
    grants = list((spec.get(block) or {}).get("grants") or [])
    if not any(_entry_conflict(engine, g) for g in grants):
        return []
    via = "spec.userRef" if "userRef" in spec else "spec.roleName"
    if database is not None and spec.get("databaseRef", {}).get("name") == ref["name"]:
        user_db: dict[str, Any] | None = database
    else:
        user_db = _claim_spec(lookup, USER_DATABASE, "Database", ref["name"], via)
    if user_db is None:
        return []
    name = user_db["name"]
    default = database["name"] if database is not None else None
    who = (
        f"DatabaseUser {user_claim}"
        if via == "spec.userRef"
        else f"DatabaseUser {user_claim} (username {spec['roleName']}, the role spec.roleName names)"
    )
    errors: list[FieldError] = []
    for i, grant in enumerate(grants):
        what = _entry_conflict(engine, grant)
        if what is None or (grant.get("database") or default) != name:
            continue
        errors.append(
            FieldError(
                f"spec.{block}.grants[{i}].privileges",
                f"{who} already gives its user {what} on database {name} (its databaseRef "
                f"{ref['name']}); this entry is an exact set without all of it, so the two claims would revoke "
                "and grant each other's privileges on every run. Grant the database's privileges in one place: "
                f"remove databaseRef from DatabaseUser {user_claim} (and list here all it needs), or remove this "
                f"entry, or make it include {what}",
            )
        )
    return errors


def _entry_conflict(engine: str, grant: dict[str, Any]) -> str | None:
    """What a databaseRef gives that this entry, on the same database, would revoke (None: no conflict)."""
    held = {p.upper() for p in grant.get("privileges") or []}
    if held & {"ALL", "ALL PRIVILEGES"}:
        return None
    if engine != "postgres":
        return "ALL PRIVILEGES" if grant.get("level") == "database" else None
    if any(k in grant for k in ("tables", "sequences", "functions")):
        return None
    if "schema" not in grant:
        held = {"TEMPORARY" if p == "TEMP" else p for p in held}
        return None if held >= PG_DATABASE_ACCESS else "CONNECT and TEMPORARY"
    if grant["schema"] == "public" and "USAGE" not in held:
        return "USAGE on schema public"
    return None


def _claim_spec(lookup: Lookup, requirement: str, kind: str, name: str, path: str) -> dict[str, Any] | None:
    found = lookup.claim(requirement, kind, name, path)
    return lookup.claim_spec(found, kind, path) if found is not None else None
