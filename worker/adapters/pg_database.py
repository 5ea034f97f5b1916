"""Database on PostgreSQL: the database and its attributes, and inside it schemas, extensions and default
privileges.

`observe` costs one catalog query in the admin database (which also reads dbops' memory of the default privileges
this claim set, worker.adapters.pg_memory), plus one inside the database when the spec manages schemas,
extensions or default privileges there or the memory names default privileges to revoke. `plan` and `plan_drop`
are pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dbops_api import pg_privileges as privs
from worker.adapters import pg_memory
from worker.adapters.base import KindHandler, Plan, Step
from worker.adapters.pg_acl import (
    DEFAULT_ACLS_JSON,
    DefaultRule,
    Desired,
    Held,
    default_acl_params,
    default_acl_steps,
    merge,
    parse_default_acls,
)
from worker.adapters.pg_sql import Catalog, ident, step
from worker.errors import PermanentError, WorkerError
from worker.ownership import Claim, Owner, claim_object

DATABASE_SQL = """
SELECT d.oid IS NOT NULL, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate::text,
       d.datctype::text, t.spcname::text, d.datconnlimit, d.datistemplate, d.datallowconn,
       CASE WHEN %(encoding)s::text IS NULL THEN NULL
            ELSE pg_encoding_to_char(pg_char_to_encoding(%(encoding)s::text)) END,
       ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY (%(roles)s::text[])),
       %(tablespace)s::text IS NULL OR EXISTS (SELECT 1 FROM pg_tablespace WHERE spcname = %(tablespace)s::text),
       %(template)s::text IS NULL OR EXISTS (SELECT 1 FROM pg_database WHERE datname = %(template)s::text),
       shobj_description(d.oid, 'pg_database'),
       ARRAY(SELECT a.privilege_type::text FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
              WHERE a.grantee = 0),
       @MEMORY@
  FROM (SELECT 1) AS one
  LEFT JOIN pg_database d ON d.datname = %(name)s
  LEFT JOIN pg_tablespace t ON t.oid = d.dattablespace
"""

# With dbops' memory of the default privileges this claim set; without it until the table exists (pg_memory).
WITH_MEMORY = DATABASE_SQL.replace("@MEMORY@", pg_memory.CLAIM_READ_SQL)
WITHOUT_MEMORY = DATABASE_SQL.replace("@MEMORY@", pg_memory.MISSING_SQL)

INSIDE_SQL = f"""
SELECT (SELECT coalesce(json_object_agg(e.extname, json_build_object('schema', n.nspname, 'version', e.extversion)),
                        '{{}}')
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = ANY (%(extensions)s::text[])),
       (SELECT coalesce(json_object_agg(n.nspname, pg_get_userbyid(n.nspowner)), '{{}}')
          FROM pg_namespace n WHERE n.nspname = ANY (%(schemas)s::text[])),
       ({DEFAULT_ACLS_JSON})
"""


@dataclass
class DatabaseObserved:
    exists: bool = False
    owner: str | None = None
    encoding: str | None = None
    lc_collate: str | None = None
    lc_ctype: str | None = None
    tablespace: str | None = None
    connection_limit: int | None = None
    is_template: bool | None = None
    allow_connections: bool | None = None
    wanted_encoding: str | None = None  # the server's canonical name of spec.postgres.encoding ('' = unknown)
    existing_roles: frozenset[str] = frozenset()
    tablespace_exists: bool = True
    template_exists: bool = True
    marker: str | None = None  # the database's comment: dbops' ownership marker when dbops manages it
    public: frozenset[str] = frozenset()  # privileges PUBLIC holds on the database
    inside_observed: bool = False  # False: the database is new or refuses connections
    extensions: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (schema, version)
    schemas: dict[str, str] = field(default_factory=dict)  # name -> owner (of the schemas the spec names)
    # The rules the spec names, then those only the memory names (set by this claim, since removed from the spec).
    default_rules: list[DefaultRule] = field(default_factory=list)
    default_held: list[Held] = field(default_factory=list)
    # dbops' memory of the default privileges this claim set (pg_memory): by default an empty one.
    memory: pg_memory.ClaimMemory = field(default_factory=lambda: pg_memory.ClaimMemory(True, True, {}))
    remembered: frozenset[DefaultRule] = frozenset()  # the rules the memory names in this database


def same_locale(a: str, b: str) -> bool:
    """en_US.UTF-8 and en_US.utf8 name the same locale (glibc normalises the codeset part)."""

    def norm(text: str) -> tuple[str, str]:
        base, _, codeset = text.partition(".")
        return base, codeset.lower().replace("-", "")

    return norm(a) == norm(b)


def inside_wanted(pg: dict[str, Any]) -> bool:
    return bool(pg.get("extensions") or pg.get("schemas") or pg.get("defaultPrivileges"))


def default_rules(spec: dict[str, Any], owner: str) -> list[DefaultRule]:
    """One rule per distinct (forRole, schema, objectType, role); forRole defaults to the database owner."""
    seen: dict[DefaultRule, None] = {}
    for entry in spec["postgres"].get("defaultPrivileges", []):
        rule = DefaultRule(
            entry.get("forRole", owner), entry.get("schema"), entry["objectType"], entry["role"]
        )
        seen.setdefault(rule)
    return list(seen)


def referenced_schemas(pg: dict[str, Any]) -> list[str]:
    names = {s["name"] for s in pg.get("schemas", [])}
    names |= {e["schema"] for e in pg.get("extensions", []) if "schema" in e}
    names |= {d["schema"] for d in pg.get("defaultPrivileges", []) if "schema" in d}
    return sorted(names)


# What PUBLIC holds on a database PostgreSQL creates (acldefault): what a new database starts with.
PUBLIC_DEFAULT = frozenset({"CONNECT", "TEMPORARY"})


class DatabaseHandler(KindHandler[DatabaseObserved]):
    def __init__(self, catalog: Catalog, owner: Owner) -> None:
        self.catalog = catalog
        self.owner = owner

    def lock_key(self, spec: dict[str, Any]) -> str:
        return f"database:{spec['name']}"

    @property
    def claim(self) -> str:
        return pg_memory.claim_id(self.owner.namespace, self.owner.name) + pg_memory.DATABASE_SUFFIX

    def _owner(self, spec: dict[str, Any], observed: DatabaseObserved) -> str:
        return str(spec.get("owner") or observed.owner or self.catalog.admin_user)

    # --- observe ------------------------------------------------------------------------------------------------

    def observe(self, spec: dict[str, Any]) -> DatabaseObserved:
        pg = spec["postgres"]
        roles = {spec["owner"]} if "owner" in spec else set()
        roles |= {s["owner"] for s in pg.get("schemas", []) if "owner" in s}
        for entry in pg.get("defaultPrivileges", []):
            roles.add(entry["role"])
            if "forRole" in entry:
                roles.add(entry["forRole"])
        params = {
            "name": spec["name"],
            "encoding": pg.get("encoding"),
            "roles": sorted(roles),
            "tablespace": pg.get("tablespace"),
            "template": pg.get("template"),
            "claim": self.claim,
        }
        try:
            (row,) = self.catalog.query(WITH_MEMORY, params)
            memory = pg_memory.parse_claim(row[15])
        except WorkerError as exc:
            if exc.code not in ("UndefinedTable", "PermissionDenied"):
                raise
            # No memory table yet (the plan creates it, so this happens once), or one this admin may not read.
            (row,) = self.catalog.query(WITHOUT_MEMORY, params)
            memory = (
                pg_memory.claim_missing(row[15])
                if exc.code == "UndefinedTable"
                else pg_memory.claim_unreadable()
            )
        out = DatabaseObserved(
            exists=bool(row[0]),
            owner=row[1],
            encoding=row[2],
            lc_collate=row[3],
            lc_ctype=row[4],
            tablespace=row[5],
            connection_limit=row[6],
            is_template=row[7],
            allow_connections=row[8],
            wanted_encoding=row[9],
            existing_roles=frozenset(row[10] or ()),
            tablespace_exists=bool(row[11]),
            template_exists=bool(row[12]),
            marker=row[13],
            public=frozenset(row[14] or ()),
            memory=memory,
        )
        named = default_rules(spec, self._owner(spec, out))
        remembered = pg_memory.default_rules(memory, spec["name"])
        out.remembered = frozenset(remembered)
        out.default_rules = named + [r for r in remembered if r not in named]
        if out.exists and out.allow_connections and (inside_wanted(pg) or out.remembered):
            extensions, schemas, held = self.catalog.query(
                INSIDE_SQL,
                {
                    "extensions": [e["name"] for e in pg.get("extensions", [])],
                    "schemas": referenced_schemas(pg),
                    **default_acl_params(out.default_rules),
                },
                database=spec["name"],
            )[0]
            out.inside_observed = True
            for name, info in _json(extensions).items():
                out.extensions[name] = (info["schema"], info["version"])
            out.schemas = {str(k): str(v) for k, v in _json(schemas).items()}
            out.default_held = parse_default_acls(held)
        else:
            out.default_held = [{} for _ in out.default_rules]
        return out

    # --- plan ---------------------------------------------------------------------------------------------------

    def plan(self, spec: dict[str, Any], observed: DatabaseObserved) -> Plan:
        name = spec["name"]
        verdict = claim_object(
            f"database {name}", observed.exists, observed.marker, self.owner, bool(spec.get("adopt"))
        )
        self._check_references(spec, observed)
        pg = spec["postgres"]
        plan = Plan(creates=not observed.exists)
        if not observed.exists:
            plan.steps.append(self._create(spec))
            # CREATE DATABASE cannot run in a transaction, so the marker follows it (docs/worker-postgres.md), on
            # its own: were it part of the next transaction, a failure there (another worker creating dbops'
            # memory table at the same moment) would roll the marker back and leave a database this claim created
            # that it could no longer tell from one it did not.
            plan.steps.append(
                self._mark(
                    name, f"database {name} is new: it is marked as {self.owner}'s", transactional=False
                )
            )
        else:
            if verdict is Claim.MARK:
                plan.steps.append(
                    self._mark(name, f"spec.adopt: database {name} is taken over by {self.owner}")
                )
            plan.drift = self._drift(pg, observed)
            plan.steps += self._alter(spec, observed)
        plan.steps += self._public_steps(spec, observed)
        if observed.exists and not observed.allow_connections and inside_wanted(pg):
            if pg.get("allowConnections") is not True:
                raise PermanentError(
                    "DatabaseNotAcceptingConnections",
                    f"database {name} does not accept connections, so its extensions, schemas and default "
                    "privileges cannot be managed; set spec.postgres.allowConnections: true",
                )
            # The steps above allow connections again, but what is inside could not be observed: this run ends
            # NotConverged (the engine's final observation sees the difference) and the next run converges it.
            return plan
        if observed.exists and not observed.inside_observed and observed.remembered:
            # The database refuses connections and the spec names nothing inside: the default privileges this
            # claim set and the spec no longer names cannot be revoked now; the memory keeps them for a later run.
            return plan
        wanted = self._wanted_defaults(spec, observed)
        before, after = self._memory_steps(spec, observed, wanted, ensure_table=True)
        plan.steps += before + self._inside(spec, observed, wanted) + after
        if wanted and not observed.memory.writable:
            plan.warnings.append(
                pg_memory.warning(observed.memory.flags, self.catalog.admin_user, self.catalog.admin_database)
            )
        return plan

    def _memory_steps(
        self,
        spec: dict[str, Any],
        observed: DatabaseObserved,
        wanted: Iterable[DefaultRule],
        *,
        ensure_table: bool,
    ) -> tuple[list[Step], list[Step]]:
        """The memory writes around the default-privilege statements: afterwards this claim remembers exactly the
        rules the spec names in this database (keys of other databases, under the same claim name, are kept)."""
        name = spec["name"]
        after: dict[str, set[pg_memory.Key]] = {}
        for grantee, keys in observed.memory.rows.items():
            kept = {k for k in keys if k[0] != name or not k[1].startswith(pg_memory.DEFAULT_PREFIX)}
            if kept:
                after[grantee] = kept
        for rule in wanted:
            after.setdefault(rule.grantee, set()).add(pg_memory.default_key(name, rule))
        return pg_memory.claim_steps(
            observed.memory,
            self.claim,
            {g: frozenset(k) for g, k in after.items()},
            ensure_table=ensure_table,
        )

    def _mark(self, name: str, reason: str, *, transactional: bool = True) -> Step:
        return step(
            f"COMMENT ON DATABASE {ident(name)} IS %(marker)s",
            reason,
            {"marker": self.owner.marker},
            transactional=transactional,
        )

    def _public_steps(self, spec: dict[str, Any], observed: DatabaseObserved) -> list[Step]:
        """postgres.publicPrivileges: the exact set PUBLIC holds on the database (absent: not managed)."""
        wanted = spec["postgres"].get("publicPrivileges")
        if wanted is None:
            return []
        name = spec["name"]
        held = observed.public if observed.exists else PUBLIC_DEFAULT
        out: list[Step] = []
        revoke = [p for p in privs.PRIVILEGES[privs.DATABASE] if p in held and p not in wanted]
        grant = [p for p in privs.PRIVILEGES[privs.DATABASE] if p in wanted and p not in held]
        if revoke:
            out.append(
                step(
                    f"REVOKE {', '.join(revoke)} ON DATABASE {ident(name)} FROM PUBLIC",
                    "PUBLIC holds privileges spec.postgres.publicPrivileges does not list",
                )
            )
        if grant:
            out.append(
                step(
                    f"GRANT {', '.join(grant)} ON DATABASE {ident(name)} TO PUBLIC",
                    "spec.postgres.publicPrivileges lists privileges PUBLIC does not hold",
                )
            )
        return out

    def _check_references(self, spec: dict[str, Any], observed: DatabaseObserved) -> None:
        pg = spec["postgres"]
        problems: list[str] = []
        if "encoding" in pg and observed.wanted_encoding == "":
            problems.append(f"spec.postgres.encoding: {pg['encoding']!r} is not an encoding PostgreSQL knows")
        if "owner" in spec and spec["owner"] not in observed.existing_roles:
            problems.append(f"spec.owner: role {spec['owner']} does not exist; create it first")
        for i, schema in enumerate(pg.get("schemas", [])):
            if "owner" in schema and schema["owner"] not in observed.existing_roles:
                problems.append(f"spec.postgres.schemas[{i}].owner: role {schema['owner']} does not exist")
        for i, entry in enumerate(pg.get("defaultPrivileges", [])):
            for key in ("role", "forRole"):
                if key in entry and entry[key] not in observed.existing_roles:
                    problems.append(
                        f"spec.postgres.defaultPrivileges[{i}].{key}: role {entry[key]} does not exist"
                    )
            path = f"spec.postgres.defaultPrivileges[{i}].privileges"
            object_type = privs.DEFAULT_PRIVILEGE_TYPES[entry["objectType"]][0]
            problems += [
                str(e) for e in privs.version_errors(object_type, entry["privileges"], self._version(), path)
            ]
        if not observed.tablespace_exists:
            problems.append(f"spec.postgres.tablespace: tablespace {pg['tablespace']} does not exist")
        if not observed.exists and not observed.template_exists:
            problems.append(f"spec.postgres.template: database {pg['template']} does not exist")
        if observed.inside_observed:
            created = {s["name"] for s in pg.get("schemas", [])}
            for kind in ("extensions", "defaultPrivileges"):
                for i, entry in enumerate(pg.get(kind, [])):
                    schema = entry.get("schema")
                    if schema and schema not in created and schema not in observed.schemas:
                        problems.append(
                            f"spec.postgres.{kind}[{i}].schema: schema {schema} does not exist in database "
                            f"{spec['name']}; add it to spec.postgres.schemas"
                        )
        if problems:
            raise PermanentError("InvalidReference", "; ".join(problems))

    def _version(self) -> tuple[int, ...]:
        return self.catalog.info.version_tuple

    def _create(self, spec: dict[str, Any]) -> Step:
        pg = spec["postgres"]
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if "owner" in spec:
            clauses.append(f"OWNER = {ident(spec['owner'])}")
        if "template" in pg:
            clauses.append(f"TEMPLATE = {ident(pg['template'])}")
        for key, keyword in (("encoding", "ENCODING"), ("lcCollate", "LC_COLLATE"), ("lcCtype", "LC_CTYPE")):
            if key in pg:
                clauses.append(f"{keyword} = %({key})s")
                params[key] = pg[key]
        if "tablespace" in pg:
            clauses.append(f"TABLESPACE = {ident(pg['tablespace'])}")
        for key, keyword in (
            ("allowConnections", "ALLOW_CONNECTIONS"),
            ("connectionLimit", "CONNECTION LIMIT"),
            ("isTemplate", "IS_TEMPLATE"),
        ):
            if key in pg:
                clauses.append(f"{keyword} = %({key})s")
                params[key] = pg[key]
        sql = f"CREATE DATABASE {ident(spec['name'])}" + (" WITH " + " ".join(clauses) if clauses else "")
        return step(sql, f"database {spec['name']} does not exist", params or None, transactional=False)

    def _drift(self, pg: dict[str, Any], observed: DatabaseObserved) -> list[str]:
        drift: list[str] = []
        if "encoding" in pg and observed.wanted_encoding and observed.wanted_encoding != observed.encoding:
            drift.append(
                f"encoding is {observed.encoding}, spec.postgres.encoding says {pg['encoding']} (fixed at creation)"
            )
        for key, value in (("lcCollate", observed.lc_collate), ("lcCtype", observed.lc_ctype)):
            if key in pg and value is not None and not same_locale(pg[key], value):
                drift.append(f"{key} is {value}, spec.postgres.{key} says {pg[key]} (fixed at creation)")
        return drift

    def _alter(self, spec: dict[str, Any], observed: DatabaseObserved) -> list[Step]:
        name = spec["name"]
        pg = spec["postgres"]
        out: list[Step] = []
        if "owner" in spec and spec["owner"] != observed.owner:
            out.append(
                step(
                    f"ALTER DATABASE {ident(name)} OWNER TO {ident(spec['owner'])}",
                    f"database {name} is owned by {observed.owner}, spec.owner says {spec['owner']}",
                )
            )
        clauses: list[str] = []
        changed: list[str] = []
        params: dict[str, Any] = {}
        for key, keyword, current in (
            ("allowConnections", "ALLOW_CONNECTIONS", observed.allow_connections),
            ("connectionLimit", "CONNECTION LIMIT", observed.connection_limit),
            ("isTemplate", "IS_TEMPLATE", observed.is_template),
        ):
            if key in pg and pg[key] != current:
                clauses.append(f"{keyword} %({key})s")
                params[key] = pg[key]
                changed.append(f"{key} {current} -> {pg[key]}")
        if clauses:
            out.append(
                step(
                    f"ALTER DATABASE {ident(name)} WITH {' '.join(clauses)}",
                    f"database {name} differs: {', '.join(changed)}",
                    params,
                )
            )
        if "tablespace" in pg and pg["tablespace"] != observed.tablespace:
            out.append(
                step(
                    f"ALTER DATABASE {ident(name)} SET TABLESPACE {ident(pg['tablespace'])}",
                    f"database {name} is in tablespace {observed.tablespace}, spec says {pg['tablespace']}",
                    transactional=False,
                )
            )
        return out

    def _wanted_defaults(
        self, spec: dict[str, Any], observed: DatabaseObserved
    ) -> dict[DefaultRule, Desired]:
        """postgres.defaultPrivileges as rules, each with the union of the privileges its entries list."""
        owner = self._owner(spec, observed)
        wanted: dict[DefaultRule, Desired] = {}
        for entry in spec["postgres"].get("defaultPrivileges", []):
            rule = DefaultRule(
                entry.get("forRole", owner), entry.get("schema"), entry["objectType"], entry["role"]
            )
            object_type = privs.DEFAULT_PRIVILEGE_TYPES[entry["objectType"]][0]
            merge(
                wanted.setdefault(rule, {}),
                privs.expand(object_type, entry["privileges"], self._version()),
                False,
            )
        return wanted

    def _inside(
        self, spec: dict[str, Any], observed: DatabaseObserved, wanted: dict[DefaultRule, Desired]
    ) -> list[Step]:
        name = spec["name"]
        pg = spec["postgres"]
        owner = self._owner(spec, observed)
        out: list[Step] = []
        for schema in pg.get("schemas", []):
            current = observed.schemas.get(schema["name"])
            wanted_owner = schema.get("owner")
            if current is None:
                out.append(
                    step(
                        f"CREATE SCHEMA {ident(schema['name'])} AUTHORIZATION {ident(wanted_owner or owner)}",
                        f"schema {schema['name']} does not exist in database {name}",
                        database=name,
                    )
                )
            elif wanted_owner and wanted_owner != current:
                out.append(
                    step(
                        f"ALTER SCHEMA {ident(schema['name'])} OWNER TO {ident(wanted_owner)}",
                        f"schema {schema['name']} is owned by {current}, the spec says {wanted_owner}",
                        database=name,
                    )
                )
        for ext in pg.get("extensions", []):
            out += _extension_steps(name, ext, observed.extensions.get(ext["name"]))
        held = dict(zip(observed.default_rules, observed.default_held, strict=True))
        for rule, desired in wanted.items():
            out += default_acl_steps(rule, desired, held.get(rule, {}), name)
        # Set by this claim before and no longer in the spec: everything the grantee holds by that rule goes.
        # Default privileges the memory does not name (set by hand, or by another claim) are never read.
        for rule in sorted(observed.remembered - wanted.keys(), key=_rule_order):
            out += default_acl_steps(rule, {}, held.get(rule, {}), name)
        return out

    # --- drop ---------------------------------------------------------------------------------------------------

    def plan_drop(self, spec: dict[str, Any], observed: DatabaseObserved) -> Plan:
        name = spec["name"]
        # The database's default privileges go with it (pg_default_acl is per database): only the memory of the
        # ones this claim set is left to forget, after the drop.
        _, forget = self._memory_steps(spec, observed, (), ensure_table=False)
        if not observed.exists:
            return Plan(forget)
        claim_object(f"database {name}", True, observed.marker, self.owner, bool(spec.get("adopt")))
        if name == self.catalog.admin_database:
            raise PermanentError(
                "InvalidRequest",
                f"database {name} is the admin database (connection.database); it cannot be dropped",
            )
        db = ident(name)
        steps: list[Step] = []
        if observed.is_template:
            steps.append(
                step(
                    f"ALTER DATABASE {db} IS_TEMPLATE false",
                    f"database {name} is a template, which cannot be dropped",
                )
            )
        if self._version() >= (13,):
            # FORCE terminates the sessions on the database and keeps new ones out until it is gone.
            steps.append(
                step(
                    f"DROP DATABASE {db} WITH (FORCE)",
                    "the spec asks to drop the database",
                    transactional=False,
                )
            )
        else:
            steps.append(
                step(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(name)s "
                    "AND pid <> pg_backend_pid()",
                    f"sessions on database {name} would block the drop",
                    {"name": name},
                    transactional=False,
                )
            )
            steps.append(
                step(f"DROP DATABASE {db}", "the spec asks to drop the database", transactional=False)
            )
        return Plan(steps + forget)

    def facts(self, spec: dict[str, Any], observed: DatabaseObserved) -> dict[str, Any]:
        out: dict[str, Any] = {"name": spec["name"], "drift": self._drift(spec["postgres"], observed)}
        if observed.exists:
            out.update(
                {
                    "owner": observed.owner,
                    "encoding": observed.encoding,
                    "lcCollate": observed.lc_collate,
                    "lcCtype": observed.lc_ctype,
                }
            )
        return out


def _extension_steps(database: str, ext: dict[str, Any], current: tuple[str, str] | None) -> list[Step]:
    name = ext["name"]
    if current is None:
        clauses = ""
        params: dict[str, Any] = {}
        if "schema" in ext:
            clauses += f" SCHEMA {ident(ext['schema'])}"
        if "version" in ext:
            clauses += " VERSION %(version)s"
            params["version"] = ext["version"]
        return [
            step(
                f"CREATE EXTENSION {ident(name)} WITH{clauses} CASCADE",
                f"extension {name} is not installed in database {database}",
                params or None,
                database=database,
            )
        ]
    out: list[Step] = []
    schema, version = current
    if "schema" in ext and ext["schema"] != schema:
        out.append(
            step(
                f"ALTER EXTENSION {ident(name)} SET SCHEMA {ident(ext['schema'])}",
                f"extension {name} is in schema {schema}, the spec says {ext['schema']}",
                database=database,
            )
        )
    if "version" in ext and ext["version"] != version:
        out.append(
            step(
                f"ALTER EXTENSION {ident(name)} UPDATE TO %(version)s",
                f"extension {name} is at version {version}, the spec says {ext['version']}",
                {"version": ext["version"]},
                database=database,
            )
        )
    return out


def _rule_order(rule: DefaultRule) -> tuple[str, str, str, str]:
    return (rule.grantee, rule.for_role, rule.schema or "", rule.object_type)


def _json(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    return dict(json.loads(raw) if isinstance(raw, str) else raw)
