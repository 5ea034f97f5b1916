"""A move from db-provision-operator (Go) to dbops on a populated server (docs/migrating.md), end to end.

The server gets what the Go operator leaves behind, made with the statements its adapters send (read from its source,
panteparak/db-provision-operator e1bb779: internal/adapter/sqlbuilder, internal/adapter/{postgres,mysql}): two login
users with passwords, a role (a Go DatabaseRole, with privileges of its own), a database, privileges on its tables
for one user and for the role (a DatabaseGrant by roleRef), and the role granted to both users (on PostgreSQL one by
the user's postgres.inRoles, the other by a DatabaseGrant's roles). The Go objects, as `kubectl get -o yaml` shows them (status, finalizers, the credentials
Secrets the Go operator owns), go through `dbops-local migrate-from-operator`; its claims go through dbops-local.

What must hold: the DatabaseRole converted to a claim with adopt: true, the grant's roleRef and the user's membership
naming that claim; every claim Ready; the statement log shows nothing written but dbops' ownership markers and its
memory of what the grants cover (and the tables `_dbops` holding them on first use), and a second run writes
nothing at all; the catalog (roles and their attributes, memberships, privileges, passwords) is what it was; every
login works with the password it had, and a member still uses the role's privileges.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbops_api.registry import API_VERSION
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, cluster, condition, kube_name
from tests.servers import Server, Statement
from tests.test_mysql_support import can_login as maria_can_login
from tests.test_mysql_support import denied as maria_denied
from tests.test_mysql_support import query_as as maria_query_as
from tests.test_mysql_support import show_grants
from tests.test_mysql_support import writes_during as maria_writes_during
from tests.test_pg_support import as_user, can_login, execute
from tests.test_pg_support import writes_during as pg_writes_during

ROOT = Path(__file__).resolve().parent.parent
DBOPS_LOCAL = shutil.which("dbops-local", path=os.path.dirname(sys.executable))
APP_PASSWORD = "Go-generated-app-pw-1"
REPORT_PASSWORD = "Go-generated-report-pw-2"

# The only writes a migration may make: dbops' ownership markers (docs/migrating.md, "What the first run writes").
PG_MARKER = re.compile(
    r"^COMMENT ON (ROLE|DATABASE) \S+ IS 'managed by dbops for (DatabaseUser|DatabaseRole|Database) "
    # dbops' memory of what the grants cover (docs/worker.md, "Memory of what dbops granted")
    r"|^(CREATE SCHEMA _dbops$|CREATE TABLE IF NOT EXISTS _dbops\.grants |REVOKE ALL ON _dbops\.grants |INSERT INTO _dbops\.grants )"
)
MARIA_MARKER = re.compile(r"_dbops", re.IGNORECASE)
ADOPTED = ("Database", "DatabaseUser", "DatabaseGrant", "DatabaseRole")


class Names:
    def __init__(self) -> None:
        self.app, self.report, self.readers, self.db = (
            unique(p) for p in ("app", "report", "readers", "appdb")
        )
        self.k_inst, self.k_db, self.k_app, self.k_report, self.k_role = (
            kube_name(p) for p in ("inst", "db", "app", "report", "readers")
        )


# --- what the Go operator did in the server ------------------------------------------------------------------------


def go_pg_objects(pg: Server, n: Names) -> None:
    """The DatabaseRole first (postgres.CreateRole: PgCreateRole(...).Login(false).Superuser(false)...: every
    attribute written out, `CREATE ROLE "r" WITH NOLOGIN NOSUPERUSER ...`); PgCreateRole(...).WithPassword(p) for a
    user (`CREATE ROLE "u" WITH PASSWORD 'p' LOGIN NOSUPERUSER ... IN ROLE "r"` for postgres.inRoles);
    PgCreateDatabase with the CRD's template and encoding defaults; the role's own grants (applyGrant, run in the
    grant's database: an entry without schema and tables on the database, one with tables on each table);
    grantPrivileges for a DatabaseGrant's schema entry (ALL TABLES IN SCHEMA for table privileges, then USAGE on the
    schema), run in the database; GrantRole for postgres.roles."""
    attrs = "NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS"
    execute(
        pg,
        f'CREATE ROLE "{n.readers}" WITH NOLOGIN {attrs}',
        f'CREATE ROLE "{n.app}" WITH PASSWORD \'{APP_PASSWORD}\' LOGIN {attrs} IN ROLE "{n.readers}"',
        f"CREATE ROLE \"{n.report}\" WITH PASSWORD '{REPORT_PASSWORD}' LOGIN {attrs}",
        f'CREATE DATABASE "{n.db}" WITH TEMPLATE = "template0" ENCODING = \'UTF8\'',
    )
    execute(
        pg,
        "CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)",  # the application's own table
        f'GRANT CONNECT ON DATABASE "{n.db}" TO "{n.readers}"',  # the DatabaseRole's own grants
        f'GRANT SELECT ON TABLE "public"."orders" TO "{n.readers}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "{n.app}"',
        f'GRANT USAGE ON SCHEMA "public" TO "{n.app}"',
        f'GRANT USAGE ON SCHEMA "public" TO "{n.readers}"',  # the DatabaseGrant by roleRef
        database=n.db,
    )
    execute(pg, f'GRANT "{n.readers}" TO "{n.report}"')


def go_maria_objects(maria: Server, n: Names) -> None:
    """MySQLCreateUser(u, "%").IdentifiedBy(p): `CREATE USER IF NOT EXISTS 'u'@'%' IDENTIFIED BY 'p'`;
    MySQLCreateRole for the DatabaseRole (useNativeRoles, the CRD default) and its own grants (applyGrantToRole:
    a table entry on `db`.`table`, to the role as a literal); MySQLCreateDatabase with the CRD's charset and
    collation defaults; a DatabaseGrant's grants at database level; GrantRole(...).ToUser(u, "%")."""
    conn = maria.connect()
    try:
        with conn.cursor() as cur:
            for sql in (
                f"CREATE USER IF NOT EXISTS '{n.app}'@'%' IDENTIFIED BY '{APP_PASSWORD}'",
                f"CREATE USER IF NOT EXISTS '{n.report}'@'%' IDENTIFIED BY '{REPORT_PASSWORD}'",
                f"CREATE ROLE IF NOT EXISTS '{n.readers}'",
                f"CREATE DATABASE IF NOT EXISTS `{n.db}` CHARACTER SET `utf8mb4` COLLATE `utf8mb4_unicode_ci`",
                f"CREATE TABLE `{n.db}`.orders (id int PRIMARY KEY, total decimal(10,2))",
                f"GRANT SELECT ON `{n.db}`.`orders` TO '{n.readers}'",  # the DatabaseRole's own grant
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{n.db}`.* TO '{n.app}'@'%'",
                f"GRANT SELECT ON `{n.db}`.* TO '{n.readers}'",
                f"GRANT '{n.readers}' TO '{n.report}'@'%'",
            ):
                cur.execute(sql)
    finally:
        conn.close()


# --- the Go objects as the cluster holds them ----------------------------------------------------------------------


def go_object(kind: str, name: str, spec: dict[str, Any], finalizer: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "4711",
            "finalizers": [f"dbops.dbprovision.io/{finalizer}"],
            "annotations": {"dbops.dbprovision.io/deletion-policy": "Retain"}
            if kind == "DatabaseUser"
            else {},
        },
        "spec": spec,
        "status": {"phase": "Ready"},
    }


def go_secret(n: Names, claim: str, username: str, password: str, server: Server) -> dict[str, Any]:
    """The credentials Secret the Go operator writes (user controller: default keys, owned by the DatabaseUser)."""
    data = {"username": username, "password": password, "host": server.host, "port": str(server.port)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": f"{claim}-credentials",
            "namespace": "default",
            "uid": f"uid-secret-{claim}",
            "labels": {"app.kubernetes.io/managed-by": "db-provision-operator"},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "DatabaseUser",
                    "name": claim,
                    "uid": f"uid-{claim}",
                    "controller": True,
                }
            ],
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def go_manifests(server: Server, n: Names) -> list[dict[str, Any]]:
    engine = server.engine
    pg = engine == "postgres"
    connection = {
        "host": server.host,
        "port": server.port,
        "database": (server.admin_database or "postgres") if pg else "mysql",
        "secretRef": {"name": f"{n.k_inst}-admin"},
    }
    database_spec: dict[str, Any] = {
        "instanceRef": {"name": n.k_inst},
        "name": n.db,
        "deletionProtection": True,
    }
    database_spec.update(
        {"postgres": {"encoding": "UTF8", "template": "template0"}}
        if pg
        else {"mysql": {"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}}
    )

    def user(claim: str, username: str, **more: Any) -> dict[str, Any]:
        spec = {
            "instanceRef": {"name": n.k_inst},
            "username": username,
            "passwordSecret": {"secretName": f"{claim}-credentials"},
            **more,
        }
        return go_object("DatabaseUser", claim, spec, "user-protection")

    app_grants: dict[str, Any] = (
        {
            "postgres": {
                "grants": [
                    {
                        "database": n.db,
                        "schema": "public",
                        "privileges": ["SELECT", "INSERT", "UPDATE", "DELETE"],
                    }
                ]
            }
        }
        if pg
        else {
            "mysql": {
                "grants": [
                    {
                        "level": "database",
                        "database": n.db,
                        "privileges": ["SELECT", "INSERT", "UPDATE", "DELETE"],
                    }
                ]
            }
        }
    )
    role_grants: dict[str, Any] = (
        {"postgres": {"grants": [{"database": n.db, "schema": "public", "privileges": ["USAGE"]}]}}
        if pg
        else {"mysql": {"grants": [{"level": "database", "database": n.db, "privileges": ["SELECT"]}]}}
    )
    membership = {"postgres": {"roles": [n.readers]}} if pg else {"mysql": {"roles": [n.readers]}}
    # The DatabaseRole as `kubectl get -o yaml` shows it: the CRD's defaults filled in (inherit, useNativeRoles),
    # false attributes as written, its own privileges.
    role_spec: dict[str, Any] = {"instanceRef": {"name": n.k_inst}, "roleName": n.readers}
    if pg:
        role_spec["postgres"] = {
            "login": False,
            "inherit": True,
            "superuser": False,
            "createRole": False,
            "grants": [
                {"database": n.db, "privileges": ["CONNECT"]},
                {"database": n.db, "schema": "public", "tables": ["orders"], "privileges": ["SELECT"]},
            ],
        }
    else:
        role_spec["mysql"] = {
            "useNativeRoles": True,
            "grants": [{"level": "table", "database": n.db, "table": "orders", "privileges": ["SELECT"]}],
        }
    in_role = {"postgres": {"inRoles": [n.readers]}} if pg else {}
    return [
        admin_secret(server, f"{n.k_inst}-admin"),
        go_object(
            "DatabaseInstance", n.k_inst, {"engine": engine, "connection": connection}, "instance-protection"
        ),
        go_object("Database", n.k_db, database_spec, "database-protection"),
        user(n.k_app, n.app, **in_role),
        user(n.k_report, n.report),
        go_secret(n, n.k_app, n.app, APP_PASSWORD, server),
        go_secret(n, n.k_report, n.report, REPORT_PASSWORD, server),
        go_object("DatabaseRole", n.k_role, role_spec, "role-protection"),
        go_object(
            "DatabaseGrant",
            f"{n.k_app}-grant",
            {"userRef": {"name": n.k_app}, "databaseRef": {"name": n.k_db}, **app_grants},
            "grant-protection",
        ),
        go_object(
            "DatabaseGrant",
            f"{n.k_role}-grant",
            {"roleRef": {"name": n.k_role}, "databaseRef": {"name": n.k_db}, **role_grants},
            "grant-protection",
        ),
        go_object(
            "DatabaseGrant",
            f"{n.k_report}-grant",
            {"userRef": {"name": n.k_report}, "databaseRef": {"name": n.k_db}, **membership},
            "grant-protection",
        ),
    ]


# --- what the server holds (compared before and after) -------------------------------------------------------------


def pg_state(pg: Server, n: Names) -> dict[str, Any]:
    names = (n.app, n.report, n.readers)
    roles = pg.query(
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
        "rolbypassrls, rolconnlimit, rolvaliduntil, rolpassword FROM pg_authid WHERE rolname = ANY(%s) "
        "ORDER BY rolname",
        (list(names),),
    )
    members = pg.query(
        "SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = ANY(%s) ORDER BY 1, 2",
        (list(names),),
    )
    database = pg.query(
        "SELECT datdba::regrole::text, encoding, datacl::text[], datconnlimit, datallowconn FROM pg_database "
        "WHERE datname = %s",
        (n.db,),
    )
    acls = pg.query(
        "SELECT (SELECT nspacl::text[] FROM pg_namespace WHERE nspname = 'public'), "
        "(SELECT relacl::text[] FROM pg_class WHERE relname = 'orders' AND relnamespace = 'public'::regnamespace), "
        "(SELECT array_agg(defaclacl::text) FROM pg_default_acl)",
        database=n.db,
    )
    return {"roles": roles, "members": members, "database": database, "acls": acls}


def maria_state(maria: Server, n: Names) -> dict[str, Any]:
    return {
        "app": show_grants(maria, n.app),
        "report": show_grants(maria, n.report),
        "readers": show_grants(maria, n.readers, None),
        "accounts": [
            (user, host, json.loads(priv))
            for user, host, priv in maria.query(
                "SELECT User, Host, Priv FROM mysql.global_priv WHERE User IN (%s, %s, %s) ORDER BY User, Host",
                (n.app, n.report, n.readers),
            )
        ],
        "database": maria.query(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = %s",
            (n.db,),
        ),
    }


# --- the move ------------------------------------------------------------------------------------------------------


def migrate(
    tmp_path: Path, manifests: list[dict[str, Any]], status: int = 0
) -> tuple[list[dict[str, Any]], str]:
    """`dbops-local migrate-from-operator` as a user runs it: the claims (stdout) and the report (stderr); `status`:
    the exit status expected (1: an object was refused)."""
    assert DBOPS_LOCAL is not None, f"dbops-local is not installed next to {sys.executable}"
    given = tmp_path / "go-operator.yaml"
    given.write_text(yaml.safe_dump_all(manifests))
    done = subprocess.run(
        [DBOPS_LOCAL, "migrate-from-operator", "-f", str(given)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == status, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d], done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_migration_from_the_go_operator_writes_only_ownership_markers_and_every_login_still_works(
    function_client: FunctionClient, server: Server, tmp_path: Path
) -> None:
    n = Names()
    pg = server.engine == "postgres"
    (go_pg_objects if pg else go_maria_objects)(server, n)  # type: ignore[operator]
    state = pg_state if pg else maria_state
    writes_during = pg_writes_during if pg else maria_writes_during
    before = state(server, n)

    claims, report = migrate(tmp_path, go_manifests(server, n))
    assert ": refused:" not in report and f"DatabaseRole/default/{n.k_role}" not in report, report
    assert f"Secret/default/{n.k_app}-credentials metadata.ownerReferences: action:" in report
    assert APP_PASSWORD not in report and REPORT_PASSWORD not in report
    kinds = sorted(c["kind"] for c in claims)
    assert kinds == sorted(
        ["Secret", "DatabaseInstance", "Database", "DatabaseUser", "DatabaseUser", "Secret", "Secret"]
        + ["DatabaseGrant"] * 3
        + ["DatabaseRole"]
    )
    assert all(c["spec"]["adopt"] is True for c in claims if c["kind"] in ADOPTED)
    # The role is a DatabaseRole claim, and what named it names that claim.
    by_name = {(c["kind"], c["metadata"]["name"]): c for c in claims}
    assert by_name["DatabaseRole", n.k_role]["spec"]["roleName"] == n.readers
    assert by_name["DatabaseGrant", f"{n.k_role}-grant"]["spec"]["roleRef"] == {"name": n.k_role}
    if pg:
        assert by_name["DatabaseUser", n.k_app]["spec"]["roleRefs"] == [{"name": n.k_role}]
        assert f"DatabaseUser/default/{n.k_app} spec.postgres.inRoles: changed:" in report

    # `dbops-local --plan` first, as docs/migrating.md says: nothing is written, and every claim has a plan.
    planner = cluster(function_client, plan_only=True)

    def plan() -> dict[str, list[str] | str]:
        planner.apply(claims)
        planner.reconcile()
        return planner.plans

    plans, planned_writes = writes_during(server, plan)
    assert planned_writes == [], "a plan writes nothing"
    assert sorted(plans) == sorted(
        f"{c['kind']}/{c['metadata']['name']}" for c in claims if c["kind"] in ADOPTED
    )
    unplanned = {claim: why for claim, why in plans.items() if isinstance(why, str)}
    assert not unplanned, unplanned
    planned = [line for lines in plans.values() for line in lines if not line.startswith("-- ")]

    c = cluster(function_client)

    def converge() -> dict[str, tuple[str, str]]:
        c.apply(claims)
        c.reconcile()
        return {
            f"{o['kind']}/{o['metadata']['name']}": (o["status"]["phase"], o["status"].get("message", ""))
            for o in c.claims()
        }

    phases, first = writes_during(server, converge)
    assert {p for p, _ in phases.values()} == {"Ready"}, phases
    marker = PG_MARKER if pg else MARIA_MARKER
    others = [w.text for w in first if not marker.search(w.text) and w.text not in ("BEGIN", "COMMIT")]
    assert sorted(others) == sorted(expected_writes(server, n)), "\n".join(others)
    assert _markers(first, pg) != [], "adoption marks what the claims now manage"
    # The plan named exactly the statements the run then sent (a plan line is a statement with its `;`). Each
    # grant's plan creates dbops' memory while it does not exist; the run creates it once: compared as sets.
    sent = [w.text.rstrip(";") for w in first if w.text not in ("BEGIN", "COMMIT")]
    assert len(sent) == len(set(sent))
    assert sorted({line.rstrip(";") for line in planned}) == sorted(sent)

    after = state(server, n)
    assert after == (before if pg else maria_expected(before, n)), (
        "as the Go operator left it, but for those writes"
    )
    # The role's claim sees the role as the DBA does: its members are the two applications.
    role = c.claim("DatabaseRole", n.k_role)["status"]["role"]
    assert role["roleName"] == n.readers
    assert sorted(role["members"]) == sorted([n.app, n.report] if pg else [f"{n.report}@%"]), role

    _, second = writes_during(server, converge)
    assert second == [], "a second run writes nothing"

    # Every login works with the password it had, and does what it did.
    if pg:
        assert can_login(server, n.app, APP_PASSWORD, database=n.db)
        assert as_user(server, n.app, APP_PASSWORD, "INSERT INTO orders VALUES (1, 9.5)", database=n.db) == (
            True,
            "",
        )
        assert as_user(server, n.report, REPORT_PASSWORD, "SELECT count(*) FROM orders", database=n.db) == (
            True,
            "",
        )
        assert as_user(server, n.report, REPORT_PASSWORD, "DELETE FROM orders", database=n.db)[0] is False
    else:
        assert maria_can_login(server, n.app, APP_PASSWORD)
        assert maria_can_login(server, n.report, REPORT_PASSWORD)
        # The report user reads through the role (now its default role, see expected_writes), and only reads.
        assert maria_query_as(server, n.report, REPORT_PASSWORD, f"SELECT count(*) FROM `{n.db}`.orders") == [
            (0,)
        ]
        assert maria_denied(server, n.report, REPORT_PASSWORD, f"DELETE FROM `{n.db}`.orders")
    # The Go Secrets still hold those passwords; dbops wrote its own Secrets beside them.
    assert c.secret_data(f"{n.k_app}-credentials")["password"] == APP_PASSWORD
    assert c.secret_data(f"{n.k_app}-dbops-credentials")["password"] == APP_PASSWORD


def expected_writes(server: Server, n: Names) -> list[str]:
    """What the first run writes beyond the markers (docs/migrating.md, "What the first run writes"). PostgreSQL:
    nothing. MariaDB: the Go operator granted on `db_name`.* unescaped, and `_` there is a wildcard (the grant also
    covers `dbXname`); dbops grants on the literal name and revokes the pattern. dbops makes the roles of
    mysql.roles the grantee's default roles (the Go operator left them to SET ROLE)."""
    if server.engine == "postgres":
        return []
    literal = n.db.replace("_", "\\_")
    return [
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `{literal}`.* TO '{n.app}'@'%'",
        f"REVOKE DELETE, INSERT, SELECT, UPDATE ON `{n.db}`.* FROM '{n.app}'@'%'",
        f"GRANT SELECT ON `{literal}`.* TO `{n.readers}`",
        f"REVOKE SELECT ON `{n.db}`.* FROM `{n.readers}`",
        f"SET DEFAULT ROLE `{n.readers}` FOR '{n.report}'@'%'",
    ]


def maria_expected(before: dict[str, Any], n: Names) -> dict[str, Any]:
    """The MariaDB catalog after those writes: the same database-level grants on the literal name (a table-level
    grant names no pattern: unchanged), the report user's default role (SHOW GRANTS gains its SET DEFAULT ROLE line,
    mysql.global_priv its default_role)."""
    literal = n.db.replace("_", "\\_")
    out = {**before}
    for who in ("app", "readers"):
        out[who] = [line.replace(f"`{n.db}`.*", f"`{literal}`.*") for line in before[who]]
    out["report"] = [*before["report"], f"SET DEFAULT ROLE `{n.readers}` FOR `{n.report}`@`%`"]
    out["accounts"] = [
        (user, host, {**priv, "default_role": n.readers} if user == n.report else priv)
        for user, host, priv in before["accounts"]
    ]
    return out


def _markers(writes: list[Statement], pg: bool) -> list[str]:
    return [w.text for w in writes if (PG_MARKER if pg else MARIA_MARKER).search(w.text)]


def _with_mode(claims: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The claims with the DatabaseInstance's driftPolicy.mode set (the default of every claim on it)."""
    return [
        {**c, "spec": {**c["spec"], "driftPolicy": {**c["spec"].get("driftPolicy", {}), "mode": mode}}}
        if c["kind"] == "DatabaseInstance"
        else c
        for c in claims
    ]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_the_go_default_detect_is_carried_over_and_writes_nothing_not_even_the_adoption_markers(
    function_client: FunctionClient, server: Server, tmp_path: Path
) -> None:
    """A Go DatabaseInstance with its CRD's default driftPolicy (detect, 8h) gives claims that only plan, as the Go
    operator only detected: nothing is written, adoption included, until the mode is correct (docs/migrating.md)."""
    n = Names()
    pg = server.engine == "postgres"
    (go_pg_objects if pg else go_maria_objects)(server, n)  # type: ignore[operator]
    state = pg_state if pg else maria_state
    writes_during = pg_writes_during if pg else maria_writes_during
    before = state(server, n)
    manifests = go_manifests(server, n)
    for m in manifests:
        if m["kind"] == "DatabaseInstance":
            m["spec"]["driftPolicy"] = {"mode": "detect", "interval": "8h"}
    claims, report = migrate(tmp_path, manifests)
    assert "driftPolicy" not in report
    (instance,) = [c for c in claims if c["kind"] == "DatabaseInstance"]
    assert instance["spec"]["driftPolicy"] == {"mode": "detect", "interval": "8h"}
    managed = [c for c in claims if c["kind"] in ADOPTED]

    c = cluster(function_client)

    def converge(docs: list[dict[str, Any]]) -> Any:
        return writes_during(server, lambda: (c.apply(docs), c.reconcile()))[1]

    writes = converge(claims)
    assert writes == [], [w.text for w in writes]
    assert state(server, n) == before
    marker = re.compile(r"COMMENT ON (ROLE|DATABASE)" if pg else r"^INSERT INTO `_dbops`\.`owners`")
    for claim in managed:
        got = c.claim(claim["kind"], claim["metadata"]["name"])
        assert got["status"]["phase"] == "Ready", got["status"]
        drifted = condition(got, "Drifted")
        if claim["kind"] != "DatabaseGrant":  # detect reports the mark adoption would write
            assert (drifted.get("status"), drifted.get("reason")) == ("True", "Detected"), got["status"]
            assert any(marker.search(s) for s in got["status"]["driftPlan"]["statements"]), got["status"]
        elif pg:  # the Go grants are what the claims say
            assert (drifted.get("status"), drifted.get("reason")) == ("False", "InSync"), got["status"]
        else:  # the corrections of expected_writes
            assert (drifted.get("status"), drifted.get("reason")) == ("True", "Detected"), got["status"]

    # ignore adopts nothing either (adoption changes an existing object); but a grant with no memory of its own
    # is new to dbops, so its first run grants as correct would (expected_writes) and writes its memory.
    writes = [w.text for w in converge(_with_mode(claims, "ignore"))]
    assert not [w for w in writes if marker.search(w)], writes
    assert [w for w in writes if re.search(r"^INSERT INTO `?_dbops`?\.`?grants", w)] != [], writes
    for want in expected_writes(server, n):
        assert want in writes, writes

    # correct: the adoption markers, then nothing.
    writes = [w.text for w in converge(_with_mode(claims, "correct"))]
    # the database, the two users and the role
    assert len([w for w in writes if marker.search(w)]) == 4, writes
    assert {c.claim(d["kind"], d["metadata"]["name"])["status"]["phase"] for d in managed} == {"Ready"}
    assert converge(_with_mode(claims, "correct")) == []


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_a_go_role_dbops_cannot_take_over_as_it_is_is_held_back_and_left_as_it_is(
    function_client: FunctionClient, server: Server, tmp_path: Path
) -> None:
    """A Go DatabaseRole with a field dbops refuses (PostgreSQL: createRole true; MariaDB: useNativeRoles false, for
    which the Go operator made a locked account instead of a role) is held back with a report line saying why and
    what to do; the grant that named it by roleRef names it by its server name, and the run leaves the role as the
    Go operator made it (attributes, privileges) while the rest is adopted (docs/migrating.md, "DatabaseRoles")."""
    n = Names()
    pg = server.engine == "postgres"
    (go_pg_objects if pg else go_maria_objects)(server, n)  # type: ignore[operator]
    writes_during = pg_writes_during if pg else maria_writes_during
    held, k_held = unique("auditors"), kube_name("auditors")
    if pg:
        # postgres.CreateRole with createRole true, then its DatabaseGrant's schema entry (USAGE on the schema).
        attrs = "NOSUPERUSER NOCREATEDB CREATEROLE INHERIT NOREPLICATION NOBYPASSRLS"
        execute(server, f'CREATE ROLE "{held}" WITH NOLOGIN {attrs}')
        execute(server, f'GRANT USAGE ON SCHEMA "public" TO "{held}"', database=n.db)
        role_spec: dict[str, Any] = {"postgres": {"login": False, "createRole": True}}
        grant_spec: dict[str, Any] = {
            "postgres": {"grants": [{"database": n.db, "schema": "public", "privileges": ["USAGE"]}]}
        }
    else:
        # mysql.CreateRole with useNativeRoles false: MySQLCreateUser(name, "%").AccountLock(), then its grant on
        # a table (applyGrantToRole: to the name as a literal, i.e. 'name'@'%').
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER IF NOT EXISTS '{held}'@'%' ACCOUNT LOCK")
                cur.execute(f"GRANT SELECT ON `{n.db}`.`orders` TO '{held}'")
        finally:
            conn.close()
        role_spec = {"mysql": {"useNativeRoles": False}}
        grant_spec = {
            "mysql": {
                "grants": [{"level": "table", "database": n.db, "table": "orders", "privileges": ["SELECT"]}]
            }
        }
    go_role = go_object(
        "DatabaseRole",
        k_held,
        {"instanceRef": {"name": n.k_inst}, "roleName": held, **role_spec},
        "role-protection",
    )
    go_grant = go_object(
        "DatabaseGrant",
        f"{k_held}-grant",
        {"roleRef": {"name": k_held}, "databaseRef": {"name": n.k_db}, **grant_spec},
        "grant-protection",
    )

    def held_state() -> Any:
        if pg:
            return {
                "role": server.query(
                    "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
                    "rolbypassrls, shobj_description(oid, 'pg_authid') FROM pg_authid WHERE rolname = %s",
                    (held,),
                ),
                "schema": server.query(
                    "SELECT nspacl::text[] FROM pg_namespace WHERE nspname = 'public'", database=n.db
                ),
            }
        return {
            "grants": show_grants(server, held),
            "account": server.query(
                "SELECT Priv FROM mysql.global_priv WHERE User = %s AND Host = '%%'", (held,)
            ),
        }

    before = held_state()
    claims, report = migrate(tmp_path, [*go_manifests(server, n), go_role, go_grant], status=1)
    field = "spec.postgres.createRole" if pg else "spec.mysql.useNativeRoles"
    (line,) = [r for r in report.splitlines() if r.startswith(f"DatabaseRole/default/{k_held} ")]
    assert line.startswith(f"DatabaseRole/default/{k_held} {field}: refused: "), line
    assert "held back" in line and ("convert again" in line or "DatabaseGrant per user" in line), line
    assert report.splitlines()[0].startswith("converted 9 object(s), refused 1,"), report
    assert [c["metadata"]["name"] for c in claims if c["kind"] == "DatabaseRole"] == [n.k_role]
    (grant,) = [c for c in claims if c["metadata"]["name"] == f"{k_held}-grant"]
    assert grant["spec"]["roleName"] == held and "roleRef" not in grant["spec"], grant["spec"]
    assert f"DatabaseGrant/default/{k_held}-grant spec.roleRef: changed: -> spec.roleName" in report

    c = cluster(function_client)

    def converge() -> dict[str, str]:
        c.apply(claims)
        c.reconcile()
        return {f"{o['kind']}/{o['metadata']['name']}": o["status"]["phase"] for o in c.claims()}

    phases, first = writes_during(server, converge)
    assert set(phases.values()) == {"Ready"}, phases
    # Nothing marks, alters or grants to the held-back role: its grant only remembers what it covers.
    touching = [w.text for w in first if held in w.text and not re.search(r"_dbops", w.text)]
    assert touching == [], touching
    assert held_state() == before, "the held-back role is as the Go operator left it"
    _, second = writes_during(server, converge)
    assert second == [], "a second run writes nothing"
