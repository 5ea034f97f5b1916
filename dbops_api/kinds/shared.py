"""Schema fragments several kinds share: lifecycle fields, references, the adopt switch, role rules."""

from __future__ import annotations

from dbops_api.schema import (
    INSTANCE_NAMESPACE_DESCRIPTION,
    Rule,
    Schema,
    array,
    boolean,
    enum,
    ident_set,
    object_ref,
    string,
)

LIFECYCLE: dict[str, Schema] = {
    "deletionPolicy": enum(
        "What `ensure: Absent` does in the server: `Retain` only stops managing the object; `Delete` drops it "
        "(revokes, for a DatabaseGrant). Deleting the claim never drops anything.",
        ("Retain", "Delete"),
        default="Retain",
    ),
    "deletionProtection": boolean(
        "While true, the admission policy refuses to delete the claim and the function refuses `ensure: Absent`.",
        default=True,
    ),
    "ensure": enum(
        "`Present` creates and converges the object; `Absent` drops it when `deletionPolicy: Delete` and "
        "`deletionProtection: false`, otherwise stops managing it.",
        ("Present", "Absent"),
        default="Present",
    ),
}

ENGINE_OPTION_RULE = Rule(
    "!(has(self.postgres) && has(self.mysql))",
    "set postgres or mysql options, not both",
    lambda s: not ("postgres" in s and "mysql" in s),
    ".mysql",
)


def admin_roles_listed(admin: list[str] | None, *role_lists: list[str] | None) -> bool:
    """Every adminRoles entry is one of the memberships the spec manages: the admin option qualifies a membership,
    it cannot stand alone."""
    listed = {r for roles in role_lists for r in roles or ()}
    return all(r in listed for r in admin or ())


ADOPT = boolean(
    "Take over an object of this name that already exists in the server and that dbops did not create for this "
    "claim (made by hand, or managed by another claim). dbops marks what it creates and otherwise refuses to "
    "touch an existing object; with `adopt: true` it manages it and marks it as this claim's. Default: false."
)

# DatabaseGrant's postgres and mysql blocks: adminRoles qualifies entries of that block's roles.
ADMIN_ROLES_RULE = Rule(
    "!has(self.adminRoles) || self.adminRoles.all(r, has(self.roles) && r in self.roles)",
    "adminRoles names a role that roles does not list; add it to roles or remove it from adminRoles",
    lambda b: admin_roles_listed(b.get("adminRoles"), b.get("roles")),
    ".adminRoles",
)

GRANT_ADMIN_ROLES = ident_set(
    "Roles from `roles` the grantee holds WITH ADMIN OPTION, so it may grant them to others; the other roles in "
    "`roles` are held without it."
)

INSTANCE_REF = object_ref(
    "The DatabaseInstance claim whose server holds this object (same namespace, or one whose instance allows "
    "this namespace).",
    INSTANCE_NAMESPACE_DESCRIPTION,
)


DRIFT = array(
    "Differences the worker found but must not fix (immutable attributes).",
    string("A difference."),
    maxItems=32,
)
