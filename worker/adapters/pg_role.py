"""DatabaseUser on PostgreSQL: a role with its attributes, password, settings, memberships and database access.

`observe` costs one catalog query in the admin database, plus one in the user's database when `spec.database` is
set; `plan` and `plan_drop` are pure.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters import pg_password, pg_rotation
from worker.adapters.base import KindHandler, Plan, Step
from worker.adapters.pg_acl import (
    MEMBERSHIPS_SQL,
    Membership,
    ObjectsObserved,
    Pair,
    Want,
    acl_steps,
    membership_steps,
    observe_objects,
    parse_memberships,
)
from worker.adapters.pg_sql import Catalog, ident, step
from worker.errors import PermanentError, WorkerError
from worker.ownership import Claim, Owner, claim_object

# spec.postgres key -> (pg_roles column, keyword)
ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("superuser", "rolsuper", "SUPERUSER"),
    ("createDB", "rolcreatedb", "CREATEDB"),
    ("createRole", "rolcreaterole", "CREATEROLE"),
    ("inherit", "rolinherit", "INHERIT"),
    ("login", "rolcanlogin", "LOGIN"),
    ("replication", "rolreplication", "REPLICATION"),
    ("bypassRLS", "rolbypassrls", "BYPASSRLS"),
)

# Settings PostgreSQL stores as a list of quoted identifiers (GUC_LIST_QUOTE): `search_path = 'a', 'b'` is stored
# as `a, b`, while one literal 'a, b' would become the single name "a, b".
LIST_SETTINGS = frozenset(
    {"search_path", "temp_tablespaces", "session_preload_libraries", "local_preload_libraries"}
)

ROLE_SQL = """
SELECT r.oid IS NOT NULL, {columns}, r.rolconnlimit,
       CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
            ELSE extract(epoch FROM r.rolvaliduntil)::float8 END,
       r.rolconfig,
       ({memberships}),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(roles)s::text[])),
       (SELECT json_build_object('oid', oid, 'allowconn', datallowconn, 'owner', pg_get_userbyid(datdba))
          FROM pg_database WHERE datname = %(database)s),
       (SELECT coalesce(json_agg(json_build_object('db', d.datname, 'cls', x.cls, 'type', x.deptype,
                                                   'objid', x.objid, 'n', x.n)), '[]')
          FROM (SELECT s.dbid, s.classid::regclass::text AS cls, s.deptype::text AS deptype,
                       CASE WHEN s.deptype = 'a' AND s.classid IN ('pg_database'::regclass, 'pg_namespace'::regclass)
                            THEN s.objid END AS objid,
                       count(*) AS n
                  FROM pg_shdepend s
                 WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid
                 GROUP BY 1, 2, 3, 4) x
          LEFT JOIN pg_database d ON d.oid = x.dbid),
       {password},
       coalesce(r.rolvaliduntil < now(), false),
       shobj_description(r.oid, 'pg_authid'),
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(roles)s::text[]) AND rolsuper){extra}
  FROM (SELECT 1) AS one
  LEFT JOIN pg_roles r ON r.rolname = %(name)s
  {authid}
"""


# Drop path only: up to %(limit)s names per kind of dependency in the connected database (and, with %(shared)s,
# of the shared objects: databases, tablespaces). pg_identify_object names objects schema-qualified whatever the
# search_path; only the first rows by oid are named, so a role owning many objects costs little.
DEPENDENCY_NAMES_SQL = """
SELECT x.dbid = 0, x.classid::regclass::text, x.deptype::text,
       array_agg(concat_ws(' ', o.type, o.identity) ORDER BY x.objid, x.objsubid)
         FILTER (WHERE o.identity IS NOT NULL)
  FROM (SELECT s.dbid, s.classid, s.objid, s.objsubid, s.deptype,
               row_number() OVER (PARTITION BY s.dbid, s.classid, s.deptype ORDER BY s.objid, s.objsubid) AS n
          FROM pg_shdepend s
         WHERE s.refclassid = 'pg_authid'::regclass
           AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
           AND (s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                OR (%(shared)s AND s.dbid = 0))
           AND NOT (s.deptype = 'a' AND s.classid::regclass::text || ':' || s.objid = ANY (%(ours)s::text[]))
       ) x
 CROSS JOIN LATERAL pg_identify_object(x.classid, x.objid, x.objsubid) o
 WHERE x.n <= %(limit)s
 GROUP BY 1, 2, 3
"""
NAMES_SHOWN = 5  # per kind of dependency and database in a DependentObjects message

# (database or None for shared objects, catalog, deptype) -> names, as in Dependency
DependencyKey = tuple[str | None, str, str]
# The privileges dbops granted for spec.database: (catalog, database or None, objid); the drop revokes them itself.
Ours = set[tuple[str, str | None, int]]


@dataclass(frozen=True)
class Dependency:
    database: str | None  # None: a shared object (database, tablespace, role)
    catalog: str  # pg_class, pg_namespace, ...
    kind: str  # pg_shdepend.deptype: o owner, a privileges, r policy, i initial privileges
    objid: int | None  # only for privileges on databases and schemas (the ones dbops grants itself)
    count: int


@dataclass
class RoleObserved:
    exists: bool = False
    attributes: dict[str, bool] = field(default_factory=dict)
    connection_limit: int = -1
    valid_until: float | None = None  # epoch seconds; None: never expires
    config: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower name -> (name, value)
    memberships: list[Membership] = field(default_factory=list)
    existing_roles: frozenset[str] = frozenset()
    password_matches: bool | None = None  # None: unknown (or not managed, or no role yet)
    expired: bool = False  # validUntil has passed (by the server's clock): a login cannot prove the password
    database_oid: int | None = None
    database_allows_connections: bool = True
    database_owner: str | None = None
    marker: str | None = None  # the role's comment: dbops' ownership marker when dbops manages it
    superuser_roles: frozenset[str] = frozenset()  # which of the spec's roles are superusers
    access: ObjectsObserved | None = None  # the user's privileges on spec.database and its schema public
    dependencies: list[Dependency] = field(default_factory=list)
    dependency_names: dict[DependencyKey, tuple[str, ...]] = field(default_factory=dict)  # drop path only
    rotation: pg_rotation.RotationObserved | None = None  # spec.rotation: the login roles (pg_rotation)
    extra: tuple[Any, ...] = ()  # the values of the caller's `extra_columns`, in order


def desired_roles(spec: dict[str, Any]) -> frozenset[str] | None:
    """`roles` and `postgres.inRoles` together: the exact membership set, or None (unmanaged) when both are absent."""
    roles = spec.get("roles")
    in_roles = (spec.get("postgres") or {}).get("inRoles")
    if roles is None and in_roles is None:
        return None
    return frozenset([*(roles or []), *(in_roles or [])])


def parse_valid_until(text: str) -> float | None:
    if text == "infinity":
        return None
    return datetime.fromisoformat(text).timestamp()


def setting_items(name: str, value: str) -> list[str]:
    """A setting's value as PostgreSQL compares it: list settings as their elements, others as one string."""
    if name.lower() not in LIST_SETTINGS:
        return [value]
    items: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        char = value[i]
        if char == '"':
            if quoted and value[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    items.append("".join(current).strip())
    return items


def _same_setting(name: str, desired: str, observed: str) -> bool:
    return setting_items(name, desired) == setting_items(name, observed)


def _setting_ref(name: str) -> str:
    return ".".join(ident(part) for part in name.split("."))


class RoleHandler(KindHandler[RoleObserved]):
    def __init__(self, catalog: Catalog, password: str | None, owner: Owner) -> None:
        self.catalog = catalog
        self._password = password
        self.owner = owner
        # A caller's own columns (", expr, expr"), read in the same query (`extra_params` adds their parameters):
        # DatabaseRole reads its members this way. Their values land in RoleObserved.extra.
        self.extra_columns = ""
        self.extra_params: dict[str, Any] = {}

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"role:{spec['username']}"

    # --- observe ------------------------------------------------------------------------------------------------

    def _own_password(self, spec: dict[str, Any]) -> str | None:
        """DBOPS_PASSWORD when it is the user's own: with rotation past generation 0 it is a login role's."""
        rotation = spec.get("rotation")
        if rotation is None or pg_rotation.manages_base_password(rotation):
            return self._password
        return None

    def observe(self, spec: dict[str, Any]) -> RoleObserved:
        name = spec["username"]
        wanted = sorted(desired_roles(spec) or ())
        own_password = self._own_password(spec)
        read_password = own_password is not None and self.catalog.admin_is_superuser
        sql = ROLE_SQL.format(
            columns=", ".join(f"r.{column}" for _, column, _ in ATTRIBUTES),
            memberships=MEMBERSHIPS_SQL,
            password="a.rolpassword" if read_password else "NULL",
            authid="LEFT JOIN pg_authid a ON a.oid = r.oid" if read_password else "",
            extra=self.extra_columns,
        )
        params = {**self.extra_params, "name": name, "roles": wanted, "database": spec.get("database")}
        (row,) = self.catalog.query(sql, params)
        exists, *flags = row[: 1 + len(ATTRIBUTES)]
        base = 1 + len(ATTRIBUTES)
        limit, valid_until, config, memberships, existing, database, deps, stored, expired, marker, supers = (
            row[base : base + 11]
        )
        out = RoleObserved(
            extra=tuple(row[base + 11 :]),
            exists=bool(exists),
            existing_roles=frozenset(existing or ()),
            marker=marker,
            superuser_roles=frozenset(supers or ()),
        )
        if database is not None:
            data = json.loads(database) if isinstance(database, str) else database
            out.database_oid = int(data["oid"])
            out.database_allows_connections = bool(data["allowconn"])
            out.database_owner = str(data["owner"])
        if out.exists:
            out.attributes = {key: bool(v) for (key, _, _), v in zip(ATTRIBUTES, flags, strict=True)}
            out.connection_limit = int(limit)
            out.valid_until = valid_until
            out.expired = bool(expired)
            for entry in config or []:
                key, _, value = entry.partition("=")
                out.config[key.lower()] = (key, value)
            out.memberships = parse_memberships(memberships)
            out.dependencies = [
                Dependency(
                    d["db"], d["cls"], d["type"], None if d["objid"] is None else int(d["objid"]), int(d["n"])
                )
                for d in (json.loads(deps) if isinstance(deps, str) else deps)
            ]
            if own_password is not None:
                if read_password:
                    out.password_matches = pg_password.matches(stored, own_password)
                elif not out.expired:
                    out.password_matches = self.catalog.password_works(name, own_password)
                # else unknown: PostgreSQL refuses an expired role's password exactly like a wrong one.
        database_name = spec.get("database")
        # databaseAccess: Owner needs no privilege read: the owner holds every privilege on it.
        owner_access = (spec.get("postgres") or {}).get("databaseAccess") == "Owner"
        if database_name and out.database_oid is not None and not owner_access:
            if not out.database_allows_connections:
                raise PermanentError(
                    "DatabaseNotAcceptingConnections",
                    f"spec.database: database {database_name} does not accept connections "
                    "(allowConnections: false), so dbops cannot grant on its schema public",
                )
            out.access = observe_objects(
                self.catalog,
                database_name,
                name,
                [Want(privs.DATABASE, None, database_name), Want(privs.SCHEMA, "public", None)],
            )
        if spec.get("rotation") is not None and out.exists:
            pg_rotation.check_request(name, spec["rotation"])
            out.rotation = pg_rotation.observe(self.catalog, name, self._password, spec["rotation"])
        return out

    # --- plan ---------------------------------------------------------------------------------------------------

    def plan(self, spec: dict[str, Any], observed: RoleObserved) -> Plan:
        name = spec["username"]
        pg = spec["postgres"]
        rotation = spec.get("rotation")
        if rotation is not None:
            observed_login = bool(observed.attributes.get("login", pg["login"]))
            pg = {**pg, "login": pg_rotation.base_login(rotation, pg["login"], observed_login)}
        verdict = claim_object(
            f"role {name}", observed.exists, observed.marker, self.owner, bool(spec.get("adopt"))
        )
        self._check_references(spec, observed)
        steps: list[Step] = []
        if not observed.exists:
            clauses = [keyword if pg[key] else f"NO{keyword}" for key, _, keyword in ATTRIBUTES]
            sql = f"CREATE ROLE {ident(name)} WITH {' '.join(clauses)} CONNECTION LIMIT %(limit)s"
            params: dict[str, Any] = {"limit": pg["connectionLimit"]}
            if pg["validUntil"] != "infinity":
                sql += " VALID UNTIL %(until)s"
                params["until"] = pg["validUntil"]
            steps.append(step(sql, f"role {name} does not exist", params))
            steps.append(self._mark(name, f"role {name} is new: it is marked as {self.owner}'s"))
        else:
            if verdict is Claim.MARK:
                steps.append(self._mark(name, f"spec.adopt: role {name} is taken over by {self.owner}"))
            steps += self._alter_attributes(name, pg, observed)
        if self._own_password(spec) is not None:
            steps += self._password_steps(name, observed)
        steps += self._setting_steps(name, pg, observed)
        steps += membership_steps(
            name,
            desired_roles(spec),
            observed.memberships,
            self.catalog.info.version_tuple,
            "spec.roles/spec.postgres.inRoles",
            admin=frozenset(spec.get("adminRoles") or ()),
            admin_source="spec.adminRoles",
        )
        if spec.get("database"):
            if pg.get("databaseAccess") == "Owner":
                steps += self._ownership_steps(spec, observed)
            else:
                steps += acl_steps(name, self._access_pairs(spec, observed, revoke=False))
        warnings: list[str] = []
        if rotation is not None:
            # The login roles come after the user's role, which they join.
            more, warnings = pg_rotation.plan(
                name,
                rotation,
                observed.rotation or pg_rotation.RotationObserved(),
                self.owner,
                self._login_password,
            )
            steps += more
        return Plan(steps, warnings=warnings, creates=not observed.exists)

    def _login_password(self, name: str, matches: bool | None, exists: bool) -> list[Step]:
        """A rotation login role's password steps: set unless a login proved it (unverifiable when unknown)."""
        if self._password is None or matches:
            return []
        return [
            step(
                f"ALTER ROLE {ident(name)} PASSWORD %(password)s",
                f"role {name} is new"
                if not exists
                else f"the password of {name} differs from DBOPS_PASSWORD",
                secret_params={"password": pg_password.verifier(self._password)},
                also_secret=(self._password,),
                unverifiable=exists and matches is None,
            )
        ]

    def _mark(self, name: str, reason: str) -> Step:
        return step(f"COMMENT ON ROLE {ident(name)} IS %(marker)s", reason, {"marker": self.owner.marker})

    def _ownership_steps(self, spec: dict[str, Any], observed: RoleObserved) -> list[Step]:
        """databaseAccess: Owner: the user owns spec.database. Taken from the admin (who creates databases),
        never from another role: that would undo a Database claim's `owner` or a DBA's choice."""
        name, database, current = spec["username"], spec["database"], observed.database_owner
        if current == name:
            return []
        if current != self.catalog.admin_user:
            raise PermanentError(
                "DatabaseOwnerConflict",
                f"spec.postgres.databaseAccess: Owner: database {database} is owned by role {current}, not by the "
                f"admin ({self.catalog.admin_user}) nor by {name}; dbops does not take a database from its owner. "
                "Set the Database's owner to this user, or use databaseAccess: Connect",
            )
        return [
            step(
                f"ALTER DATABASE {ident(database)} OWNER TO {ident(name)}",
                f"spec.postgres.databaseAccess: Owner: database {database} is owned by {current}",
            )
        ]

    def _check_references(self, spec: dict[str, Any], observed: RoleObserved) -> None:
        missing = sorted((desired_roles(spec) or frozenset()) - observed.existing_roles)
        if missing:
            raise PermanentError(
                "RoleNotFound",
                f"spec.roles/spec.postgres.inRoles: role(s) {', '.join(missing)} do not exist; "
                "create them first (another DatabaseUser or by hand)",
            )
        supers = sorted((desired_roles(spec) or frozenset()) & observed.superuser_roles)
        if supers:
            raise PermanentError(
                "SystemObject",
                f"spec.roles/spec.postgres.inRoles: {', '.join(supers)} is a superuser role; a member may SET ROLE "
                "to it and act as a superuser, so dbops never grants membership in it",
            )
        if spec.get("database") and observed.database_oid is None:
            raise PermanentError(
                "DatabaseNotFound",
                f"spec.database: database {spec['database']} does not exist; create it first (a Database claim)",
            )

    def _alter_attributes(self, name: str, pg: dict[str, Any], observed: RoleObserved) -> list[Step]:
        clauses: list[str] = []
        changed: list[str] = []
        params: dict[str, Any] = {}
        for key, _, keyword in ATTRIBUTES:
            if observed.attributes[key] != pg[key]:
                clauses.append(keyword if pg[key] else f"NO{keyword}")
                changed.append(f"{key} {observed.attributes[key]} -> {pg[key]}")
        if observed.connection_limit != pg["connectionLimit"]:
            clauses.append("CONNECTION LIMIT %(limit)s")
            params["limit"] = pg["connectionLimit"]
            changed.append(f"connectionLimit {observed.connection_limit} -> {pg['connectionLimit']}")
        desired_until = parse_valid_until(pg["validUntil"])
        if not same_instant(desired_until, observed.valid_until):
            clauses.append("VALID UNTIL %(until)s")
            params["until"] = pg["validUntil"]
            changed.append(f"validUntil -> {pg['validUntil']}")
        if not clauses:
            return []
        return [
            step(
                f"ALTER ROLE {ident(name)} WITH {' '.join(clauses)}",
                f"role {name} differs: {', '.join(changed)}",
                params or None,
            )
        ]

    def _password_steps(self, name: str, observed: RoleObserved) -> list[Step]:
        if self._password is None or observed.password_matches:
            return []
        verifier = pg_password.verifier(self._password)
        # Unknown (None) for an existing role: neither pg_authid nor a login can tell, so the password is set on
        # every run, and the step is marked unverifiable so the engine does not report it as NotConverged.
        unknown = observed.exists and observed.password_matches is None
        if not observed.exists:
            reason = f"role {name} is new"
        elif not unknown:
            reason = "the password differs from DBOPS_PASSWORD"
        elif observed.expired:
            reason = (
                "validUntil has passed, so a login cannot confirm the password and the admin cannot read "
                "pg_authid: it is set again"
            )
        else:
            reason = "the password could not be confirmed by a login (pg_hba.conf, network): it is set again"
        return [
            step(
                f"ALTER ROLE {ident(name)} PASSWORD %(password)s",
                reason,
                secret_params={"password": verifier},
                also_secret=(self._password,),
                unverifiable=unknown,
            )
        ]

    def _setting_steps(self, name: str, pg: dict[str, Any], observed: RoleObserved) -> list[Step]:
        desired: dict[str, str] | None = pg.get("configParameters")
        if desired is None:
            return []
        out: list[Step] = []
        wanted = {k.lower(): (k, v) for k, v in desired.items()}
        for key, (stored_name, _) in sorted(observed.config.items()):
            if key not in wanted:
                out.append(
                    step(
                        f"ALTER ROLE {ident(name)} RESET {_setting_ref(stored_name)}",
                        f"setting {stored_name} is not in spec.postgres.configParameters",
                    )
                )
        for key, (setting, value) in sorted(wanted.items()):
            current = observed.config.get(key)
            if current is not None and _same_setting(setting, value, current[1]):
                continue
            items = setting_items(setting, value)
            placeholders = ", ".join(f"%(v{i})s" for i in range(len(items)))
            out.append(
                step(
                    f"ALTER ROLE {ident(name)} SET {_setting_ref(setting)} = {placeholders}",
                    f"setting {setting} is " + ("not set" if current is None else f"{current[1]!r}"),
                    {f"v{i}": item for i, item in enumerate(items)},
                )
            )
        return out

    def _access_pairs(self, spec: dict[str, Any], observed: RoleObserved, revoke: bool) -> list[Pair]:
        """The user's pairs on spec.database and its schema public: at least what databaseAccess: Connect gives
        (privileges held beyond it, e.g. CREATE granted by a DatabaseGrant or by an older dbops, are left alone,
        so the two never undo each other), or nothing when revoking."""
        if observed.access is None:
            return []
        pairs: list[Pair] = []
        for found in observed.access.found:
            if found.target.object_type == privs.DATABASE:
                # Database-level grants run with the role's own statements on the admin connection.
                target = dataclasses.replace(found.target, database=None)
                wanted: tuple[str, ...] = privs.DATABASE_ACCESS
            else:
                target = found.target
                wanted = privs.PUBLIC_SCHEMA_ACCESS
            desired = {} if revoke else {**found.held, **{p: found.held.get(p, False) for p in wanted}}
            pairs.append(Pair(target, desired, found.held, ["spec.database"]))
        return pairs

    # --- drop ---------------------------------------------------------------------------------------------------

    def observe_drop(self, spec: dict[str, Any]) -> RoleObserved:
        """`observe`, plus the names of what blocks the drop (one more query per database involved)."""
        out = self.observe(spec)
        if out.exists and out.rotation is None:
            # The login roles a rotation created go with the user, whether or not rotation is still on.
            out.rotation = pg_rotation.observe(self.catalog, spec["username"], None, {})
        ours = ours_for_drop(spec, out)
        blocking = blocking_dependencies(out, ours)
        if blocking:
            out.dependency_names = self._dependency_names(spec["username"], blocking, ours)
        return out

    def _dependency_names(
        self, name: str, blocking: list[Dependency], ours: Ours
    ) -> dict[DependencyKey, tuple[str, ...]]:
        admin = self.catalog.admin_database
        databases: list[str | None] = []
        if any(d.database in (None, admin) for d in blocking):
            databases.append(None)  # the admin database, which also names the shared objects
        databases += sorted({d.database for d in blocking if d.database not in (None, admin)})
        names: dict[DependencyKey, tuple[str, ...]] = {}
        for database in databases:
            here = database or admin
            read = {None, admin} if database is None else {database}  # None: the shared objects
            excluded = [f"{catalog}:{objid}" for catalog, db, objid in ours if db in read]
            # Best effort: a database that refuses connections still gets the refusal, with counts only.
            with suppress(WorkerError):
                rows = self.catalog.query(
                    DEPENDENCY_NAMES_SQL,
                    {"role": name, "shared": database is None, "ours": excluded, "limit": NAMES_SHOWN},
                    database,
                )
                for shared, catalog, kind, found in rows:
                    names[(None if shared else here, catalog, kind)] = tuple(sorted(found or ()))
        return names

    def plan_drop(self, spec: dict[str, Any], observed: RoleObserved) -> Plan:
        name = spec["username"]
        if not observed.exists:
            return Plan()
        claim_object(f"role {name}", True, observed.marker, self.owner, bool(spec.get("adopt")))
        blocking = blocking_dependencies(observed, ours_for_drop(spec, observed))
        if blocking:
            raise PermanentError(
                "DependentObjects", dependency_message(name, blocking, observed.dependency_names)
            )
        steps = acl_steps(name, self._access_pairs(spec, observed, revoke=True))
        steps += pg_rotation.drop_steps(name, observed.rotation, self.owner)
        steps.append(step(f"DROP ROLE {ident(name)}", "the spec asks to drop the role"))
        return Plan(steps)

    def facts(self, spec: dict[str, Any], observed: RoleObserved) -> dict[str, Any]:
        return {
            "username": spec["username"],
            "roles": sorted({m.role for m in observed.memberships}),
            "login": bool(observed.attributes.get("login", False)),
            "drift": [],
            **(
                {
                    "rotation": pg_rotation.facts(
                        spec["rotation"],
                        observed.rotation or pg_rotation.RotationObserved(),
                        bool(observed.attributes.get("login", False)),
                    )
                }
                if spec.get("rotation") is not None
                else {}
            ),
        }


def same_instant(a: float | None, b: float | None) -> bool:
    """PostgreSQL keeps microseconds (rounding), Python parses them (truncating): allow one microsecond."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1.5e-6


CATALOG_WORDS = {
    "pg_class": "relation(s)",
    "pg_namespace": "schema(s)",
    "pg_proc": "routine(s)",
    "pg_type": "type(s)",
    "pg_database": "database(s)",
    "pg_default_acl": "default privilege rule(s)",
    "pg_tablespace": "tablespace(s)",
    "pg_largeobject_metadata": "large object(s)",
    "pg_foreign_server": "foreign server(s)",
    "pg_foreign_data_wrapper": "foreign-data wrapper(s)",
    "pg_policy": "policy(ies)",
    "pg_parameter_acl": "parameter(s)",
}
DEPENDENCY_VERBS = {
    "o": "owns",
    "a": "holds privileges on",
    "r": "is named in",
    "i": "has initial privileges on",
}


def ours_for_drop(spec: dict[str, Any], observed: RoleObserved) -> Ours:
    """The privileges dbops itself granted for spec.database: the drop revokes them, so they do not block it."""
    ours: Ours = set()
    if observed.access is not None:
        for found in observed.access.found:
            if found.target.object_type == privs.DATABASE:
                ours.add(("pg_database", None, found.oid))
            else:
                ours.add(("pg_namespace", spec.get("database"), found.oid))
    return ours


def blocking_dependencies(observed: RoleObserved, ours: Ours) -> list[Dependency]:
    return [
        d
        for d in observed.dependencies
        if not (d.kind == "a" and d.objid is not None and (d.catalog, d.database, d.objid) in ours)
    ]


def dependency_message(
    role: str, deps: list[Dependency], names: dict[DependencyKey, tuple[str, ...]] | None = None
) -> str:
    """What blocks the drop, per kind and database, with up to NAMES_SHOWN object names each, and the fix."""
    counts: dict[DependencyKey, int] = {}
    for d in deps:  # privileges on databases and schemas come one row per object: one line per kind here
        counts[(d.database, d.catalog, d.kind)] = counts.get((d.database, d.catalog, d.kind), 0) + d.count
    parts = []
    databases = sorted({d.database for d in deps if d.database})
    for key in sorted(counts, key=lambda k: (k[0] or "", k[2], k[1])):
        database, catalog, kind = key
        count = counts[key]
        where = f" in database {database}" if database else ""
        what = CATALOG_WORDS.get(catalog, catalog)
        listed = (names or {}).get(key, ())[:NAMES_SHOWN]
        more = f" and {count - len(listed)} more" if count > len(listed) else ""
        detail = f" ({', '.join(listed)}{more})" if listed else ""
        parts.append(f"{DEPENDENCY_VERBS.get(kind, 'depends on')} {count} {what}{where}{detail}")
    scope = f"in database(s) {', '.join(databases)}" if databases else "in any database"
    return (
        f"role {role} cannot be dropped: it {'; '.join(parts)}. Resolve: {scope} run "
        f"REASSIGN OWNED BY {ident(role)} TO <another role>; DROP OWNED BY {ident(role)}; then drop again"
    )
