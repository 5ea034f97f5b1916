"""DatabaseUser on a real PostgreSQL: role attributes, password, settings, memberships, database access, drop."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import pytest

from tests.conftest import apply_ok, run, unique
from tests.servers import Server
from tests.test_pg_support import (
    admin_env,
    as_user,
    can_login,
    execute,
    log_text_during,
    make_role,
    mark,
    one,
    statements,
    writes_during,
)
from worker.adapters import pg_password

pytestmark = pytest.mark.postgres

ROLE = """
SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin, rolreplication, rolbypassrls,
       rolconnlimit, rolvaliduntil, rolconfig,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
              WHERE m.member = r.oid ORDER BY 1)
  FROM pg_roles r WHERE rolname = %s
"""


def role(pg: Server, name: str) -> dict[str, Any] | None:
    rows = pg.query(ROLE, (name,))
    if not rows:
        return None
    keys = (
        "superuser",
        "createDB",
        "createRole",
        "inherit",
        "login",
        "replication",
        "bypassRLS",
        "connectionLimit",
        "validUntil",
        "config",
        "roles",
    )
    return dict(zip(keys, rows[0], strict=True))


def password() -> str:
    return secrets.token_urlsafe(24)


def test_create_with_every_attribute_then_reapply_writes_nothing(pg: Server) -> None:
    r1, _ = make_role(pg, "grp", "NOLOGIN")
    r2, _ = make_role(pg, "grp", "NOLOGIN")
    name = unique("user")
    secret = password()
    spec = {
        "username": name,
        "roles": [r1],
        "postgres": {
            "superuser": False,
            "createDB": True,
            "createRole": True,
            "inherit": False,
            "login": True,
            "replication": True,
            "bypassRLS": True,
            "connectionLimit": 3,
            "validUntil": "2031-02-03T04:05:06Z",
            "inRoles": [r2],
            "configParameters": {
                "search_path": '"$user", app',
                "statement_timeout": "30s",
                "dbops.note": "a b",
            },
        },
    }
    result, log = log_text_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    observed = role(pg, name)
    assert observed is not None
    valid_until = observed.pop("validUntil")
    assert valid_until.isoformat() == "2031-02-03T04:05:06+00:00"
    observed["config"] = sorted(observed["config"])
    assert observed == {
        "superuser": False,
        "createDB": True,
        "createRole": True,
        "inherit": False,
        "login": True,
        "replication": True,
        "bypassRLS": True,
        "connectionLimit": 3,
        "config": ["dbops.note=a b", 'search_path="$user", app', "statement_timeout=30s"],
        "roles": sorted([r1, r2]),
    }
    assert result.result["observed"] == {
        "username": name,
        "roles": sorted([r1, r2]),
        "login": True,
        "drift": [],
    }
    assert can_login(pg, name, secret)
    # The password and its verifier never reach the statement log, the result or the output.
    assert secret not in log
    assert "SCRAM-SHA-256$" not in log
    assert "ALTER ROLE" in log and f"ALTER ROLE {name} PASSWORD ***" in result.result["changes"]
    assert secret not in result.stdout + result.stderr

    second, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    assert writes == []
    assert second.result["statements"] == {"reads": 1, "writes": 0}


def test_changes_alter_only_the_delta(pg: Server) -> None:
    r1, _ = make_role(pg, "grp", "NOLOGIN")
    r2, _ = make_role(pg, "grp", "NOLOGIN")
    name = unique("user")
    secret = password()
    base = {
        "username": name,
        "roles": [r1, r2],
        "postgres": {"configParameters": {"work_mem": "8MB", "DateStyle": "ISO, MDY"}},
    }
    apply_ok(pg, "DatabaseUser", base, password=secret)
    changed = {
        "username": name,
        "roles": [r2],
        "postgres": {"connectionLimit": 7, "configParameters": {"datestyle": "ISO, MDY"}},
    }
    result, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", changed, password=secret))
    # The unchanged password is not set again: that statement would be unlogged, but its logging switch counts.
    assert statements(writes) == [
        f"ALTER ROLE {name} WITH CONNECTION LIMIT 7",
        f"ALTER ROLE {name} RESET work_mem",
        f"REVOKE {r1} FROM {name}",
    ]
    assert result.result["changes"] == statements(writes)
    assert result.result["statements"]["writes"] == 3
    observed = role(pg, name) or {}
    assert observed["connectionLimit"] == 7
    assert observed["config"] == ["DateStyle=ISO, MDY"]
    assert observed["roles"] == [r2]


def test_superuser_attribute_is_granted_and_taken_back(pg: Server) -> None:
    name = unique("user")
    spec = {"username": name, "postgres": {"superuser": True}}
    created = apply_ok(pg, "DatabaseUser", spec)
    assert "WITH SUPERUSER " in created.result["changes"][0]
    assert one(pg, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)) is True
    demoted = apply_ok(pg, "DatabaseUser", {"username": name, "postgres": {"superuser": False}})
    assert demoted.result["changes"] == [f"ALTER ROLE {name} WITH NOSUPERUSER"]
    assert one(pg, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)) is False
    promoted = apply_ok(pg, "DatabaseUser", spec)
    assert promoted.result["changes"] == [f"ALTER ROLE {name} WITH SUPERUSER"]
    assert one(pg, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)) is True
    assert run(pg, "drop", "DatabaseUser", spec).code == 0
    assert role(pg, name) is None


def test_memberships_are_unmanaged_when_roles_and_in_roles_are_absent(pg: Server) -> None:
    grp, _ = make_role(pg, "grp", "NOLOGIN")
    name = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": name})
    execute(pg, f"GRANT {grp} TO {name}")
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}))
    assert writes == []
    assert (role(pg, name) or {})["roles"] == [grp]
    # `roles: []` is an exact (empty) set: the hand-made membership goes.
    apply_ok(pg, "DatabaseUser", {"username": name, "roles": []})
    assert (role(pg, name) or {})["roles"] == []
    # Predefined roles are ordinary memberships where the instance allows server-wide privileges.
    spec = {"username": name, "postgres": {"inRoles": ["pg_read_all_data"]}}
    apply_ok(pg, "DatabaseUser", spec, policy={"allowGlobalGrants": True})
    assert (role(pg, name) or {})["roles"] == ["pg_read_all_data"]


def test_changed_password_is_set_and_the_old_one_stops_working(pg: Server) -> None:
    name = unique("user")
    old, new = password(), password()
    apply_ok(pg, "DatabaseUser", {"username": name}, password=old)
    result, log = log_text_during(pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}, password=new))
    assert result.result["changes"] == [f"ALTER ROLE {name} PASSWORD ***"]
    assert can_login(pg, name, new)
    assert not can_login(pg, name, old)
    assert new not in log and "SCRAM-SHA-256$" not in log


def test_plan_shows_the_password_statement_redacted_and_writes_nothing(pg: Server) -> None:
    name = unique("user")
    secret = password()
    result, log = log_text_during(
        pg, lambda: run(pg, "plan", "DatabaseUser", {"username": name}, password=secret)
    )
    assert result.code == 0, result.result
    assert f"ALTER ROLE {name} PASSWORD ***;" in result.stdout
    assert result.result["changes"][-1] == f"ALTER ROLE {name} PASSWORD ***"
    assert result.result["statements"]["writes"] == 0
    for text in (result.stdout, result.stderr, json.dumps(result.result), log):
        assert secret not in text
        assert "SCRAM-SHA-256$" not in text
    assert "CREATE ROLE" not in log
    assert role(pg, name) is None


def test_password_unset_means_unmanaged(pg: Server) -> None:
    name = unique("user")
    secret = password()
    apply_ok(pg, "DatabaseUser", {"username": name}, password=secret)
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}))
    assert writes == []
    assert can_login(pg, name, secret)


def test_md5_password_is_replaced_by_a_scram_verifier(pg: Server) -> None:
    name = unique("user")
    secret = password()
    apply_ok(pg, "DatabaseUser", {"username": name}, password=secret)
    execute(
        pg,
        "SET log_statement = 'none'",
        "SET password_encryption = 'md5'",
        f"ALTER ROLE {name} PASSWORD '{secret}'",
    )
    assert one(pg, "SELECT rolpassword LIKE 'md5%%' FROM pg_authid WHERE rolname = %s", (name,))
    result = apply_ok(pg, "DatabaseUser", {"username": name}, password=secret)
    assert result.result["changes"] == [f"ALTER ROLE {name} PASSWORD ***"]
    assert one(pg, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s", (name,))
    assert can_login(pg, name, secret)


def test_password_set_by_postgres_itself_is_recognised(pg: Server) -> None:
    """The verifier check agrees with PostgreSQL's own SCRAM computation (not only with ours)."""
    name = unique("user")
    secret = password() + "-ü"
    apply_ok(pg, "DatabaseUser", {"username": name})
    execute(pg, "SET log_statement = 'none'", f"ALTER ROLE {name} PASSWORD '{secret}'")
    same, writes = writes_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}, password=secret)
    )
    assert writes == []  # a password set again would show as its unlogged statement's logging switch
    assert same.result["changes"] == []
    assert same.result["statements"]["writes"] == 0
    changed = apply_ok(pg, "DatabaseUser", {"username": name}, password=secret + "x")
    assert changed.result["changes"] == [f"ALTER ROLE {name} PASSWORD ***"]


def test_non_superuser_admin_detects_an_unchanged_password_by_logging_in(pg: Server) -> None:
    admin, admin_password = make_role(pg, "roleadmin", "LOGIN CREATEROLE")
    env = admin_env(admin, admin_password)
    name = unique("user")
    secret = password()
    first, log = log_text_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}, password=secret, env=env)
    )
    assert first.result["changes"][-1] == f"ALTER ROLE {name} PASSWORD ***"
    assert can_login(pg, name, secret)
    # docs/security.md: an admin without superuser or SET on the logging parameters cannot switch statement
    # logging off, so the log gets the verifier, never the password.
    assert "SET LOCAL log_statement" not in log
    [verifier] = re.findall(rf"ALTER ROLE {name} PASSWORD '(SCRAM-SHA-256\$[^']+)'", log)
    assert pg_password.matches(verifier, secret)
    assert secret not in log
    _, writes = writes_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}, password=secret, env=env)
    )
    assert writes == []
    new = password()
    changed = apply_ok(pg, "DatabaseUser", {"username": name}, password=new, env=env)
    assert changed.result["changes"] == [f"ALTER ROLE {name} PASSWORD ***"]
    assert can_login(pg, name, new)
    # A NOLOGIN role still proves its password: PostgreSQL checks LOGIN only after the password.
    nologin = {"username": name, "postgres": {"login": False}}
    apply_ok(pg, "DatabaseUser", nologin, password=new, env=env)
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", nologin, password=new, env=env))
    assert writes == []


def test_an_expired_role_gets_its_password_set_on_every_run_and_still_converges(pg: Server) -> None:
    """A non-superuser admin cannot read pg_authid, and PostgreSQL refuses the password of a role whose validUntil
    has passed exactly like a wrong one: "unchanged" cannot be known, so the password is set on every run
    (docs/worker-postgres.md), and the run still converges instead of ending NotConverged."""
    admin, admin_password = make_role(pg, "roleadmin", "LOGIN CREATEROLE")
    env = admin_env(admin, admin_password)
    name = unique("user")
    secret = password()
    spec = {"username": name, "postgres": {"validUntil": "2001-02-03T04:05:06Z"}}
    first = run(pg, "apply", "DatabaseUser", spec, password=secret, env=env)
    assert first.code == 0, first.result
    assert first.result["changes"][-1] == f"ALTER ROLE {name} PASSWORD ***"
    for _ in range(2):
        again, writes = writes_during(
            pg, lambda: run(pg, "apply", "DatabaseUser", spec, password=secret, env=env)
        )
        assert again.code == 0, again.result
        assert again.result["changes"] == [f"ALTER ROLE {name} PASSWORD ***"]
        assert again.result["statements"]["writes"] == 1
        # This admin cannot switch statement logging off: the log shows the verifier of the password, the
        # one write of the run.
        [logged] = statements(writes)
        assert logged.startswith(f"ALTER ROLE {name} PASSWORD 'SCRAM-SHA-256$")
        assert pg_password.matches(logged.split("'")[1], secret)
        assert secret not in logged
    stored = one(pg, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,))
    assert pg_password.matches(stored, secret)
    # A superuser admin compares the stored verifier instead, which expiry does not affect: nothing to write.
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    assert writes == []


def test_admin_granted_set_on_logging_parameters_keeps_verifiers_out_of_the_log(pg: Server) -> None:
    """PostgreSQL 15+: a non-superuser admin with SET on the logging parameters suppresses statement logging
    for the password statement, also when that statement fails."""
    if int(one(pg, "SHOW server_version_num")) < 150000:
        pytest.skip("GRANT SET ON PARAMETER needs PostgreSQL 15")
    admin, admin_password = make_role(pg, "logadmin", "LOGIN CREATEROLE")
    execute(
        pg,
        "GRANT SET ON PARAMETER log_statement, log_min_duration_statement, log_min_error_statement "
        f"TO {admin}",
    )
    env = admin_env(admin, admin_password)
    name = unique("user")
    secret = password()
    result, log = log_text_during(
        pg, lambda: apply_ok(pg, "DatabaseUser", {"username": name}, password=secret, env=env)
    )
    assert result.result["changes"][-1] == f"ALTER ROLE {name} PASSWORD ***"
    assert "SET LOCAL log_statement = 'none'" in log
    assert "SCRAM-SHA-256$" not in log and secret not in log
    assert can_login(pg, name, secret)
    # CREATEROLE cannot change a superuser's password: the failure is reported without the statement text.
    boss, _ = make_role(pg, "boss", "LOGIN SUPERUSER")
    mark(pg, "ROLE", boss)  # a superuser role dbops manages for this claim
    failed, log = log_text_during(
        pg,
        lambda: run(
            pg,
            "apply",
            "DatabaseUser",
            {"username": boss, "postgres": {"superuser": True}},
            password=secret,
            env=env,
        ),
    )
    assert failed.code == 2
    assert failed.error["code"] == "PermissionDenied"
    assert "ALTER ROLE" in failed.error["message"] and "PASSWORD ***" in failed.error["message"]
    assert "SCRAM-SHA-256$" not in log and secret not in log
    assert "SCRAM-SHA-256$" not in failed.stdout + failed.stderr
    execute(
        pg,
        f"DROP ROLE {boss}",
        f"DROP ROLE {name}",
        "REVOKE SET ON PARAMETER log_statement, log_min_duration_statement, log_min_error_statement "
        f"FROM {admin}",
        f"DROP ROLE {admin}",
    )


PRIVILEGES = (
    "SELECT has_database_privilege(%(u)s, %(d)s, 'CONNECT'), has_database_privilege(%(u)s, %(d)s, 'CREATE'),"
    " has_database_privilege(%(u)s, %(d)s, 'TEMPORARY'), has_schema_privilege(%(u)s, 'public', 'USAGE'),"
    " has_schema_privilege(%(u)s, 'public', 'CREATE')"
)


def test_database_reference_lets_the_user_connect_but_create_nothing_in_public(pg: Server) -> None:
    """databaseAccess: Connect (the default): CONNECT and TEMPORARY, USAGE on public, no CREATE anywhere
    (CVE-2018-1058: a role that may create in public can plant objects other roles' queries pick up)."""
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    name = unique("user")
    secret = password()
    spec = {"username": name, "database": db}
    first = apply_ok(pg, "DatabaseUser", spec, password=secret)
    assert first.result["changes"][-2:] == [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {name}",
        f"GRANT USAGE ON SCHEMA public TO {name}",
    ]
    privileges = one(pg, PRIVILEGES, {"u": name, "d": db}, database=db)
    assert privileges == (True, False, True, True, False)
    # A real login: it connects and may create temporary tables, but nothing in public and no schema.
    assert as_user(pg, name, secret, "CREATE TEMP TABLE scratch (id int)", database=db) == (True, "")
    assert as_user(pg, name, secret, "CREATE TABLE public.t (id int)", database=db) == (
        False,
        "permission denied for schema public",
    )
    assert as_user(pg, name, secret, "CREATE SCHEMA mine", database=db) == (
        False,
        f"permission denied for database {db}",
    )
    second, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    assert writes == []
    assert second.result["statements"] == {"reads": 2, "writes": 0}
    # What a DatabaseGrant (or an older dbops) granted beyond it stays: the two never undo each other.
    execute(pg, f"GRANT CREATE ON SCHEMA public TO {name}", database=db)
    _, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    assert writes == []
    assert one(pg, PRIVILEGES, {"u": name, "d": db}, database=db)[4] is True


def test_database_access_owner_makes_the_user_own_the_database(pg: Server) -> None:
    """The owner pattern, asked for explicitly: the user owns the database, and on PostgreSQL 15 its schema
    public through pg_database_owner, so it creates tables and schemas there."""
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    name = unique("user")
    secret = password()
    spec = {"username": name, "database": db, "postgres": {"databaseAccess": "Owner"}}
    first = apply_ok(pg, "DatabaseUser", spec, password=secret)
    assert first.result["changes"][-1] == f"ALTER DATABASE {db} OWNER TO {name}"
    assert one(pg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,)) == name
    assert as_user(pg, name, secret, "CREATE TABLE public.t (id int); CREATE SCHEMA mine", database=db) == (
        True,
        "",
    )
    second, writes = writes_during(pg, lambda: apply_ok(pg, "DatabaseUser", spec, password=secret))
    assert writes == [] and second.result["statements"] == {"reads": 1, "writes": 0}
    # A database some other role owns is not taken from it.
    other_db = unique("db")
    other, _ = make_role(pg, "owner", "NOLOGIN")
    apply_ok(pg, "Database", {"name": other_db, "owner": other})
    refused = run(pg, "apply", "DatabaseUser", {**spec, "database": other_db}, password=secret)
    assert refused.code == 2 and refused.error["code"] == "DatabaseOwnerConflict", refused.result
    assert f"owned by role {other}" in refused.error["message"]


def test_missing_roles_or_database_are_permanent_and_change_nothing(pg: Server) -> None:
    name = unique("user")
    ghost = unique("ghost")
    result, writes = writes_during(
        pg, lambda: run(pg, "apply", "DatabaseUser", {"username": name, "roles": [ghost]})
    )
    assert result.code == 2
    assert result.error["code"] == "RoleNotFound"
    assert ghost in result.error["message"]
    assert writes == []
    missing_db = run(pg, "apply", "DatabaseUser", {"username": name, "database": unique("nodb")})
    assert missing_db.code == 2
    assert missing_db.error["code"] == "DatabaseNotFound"
    assert role(pg, name) is None


def test_reserved_names_are_request_errors(pg: Server) -> None:
    result = run(pg, "apply", "DatabaseUser", {"username": "current_user"})
    assert result.code == 2
    assert "request.spec.username" in result.error["message"]


def test_drop_refuses_a_role_that_owns_objects_and_drops_it_once_resolved(pg: Server) -> None:
    db = unique("db")
    apply_ok(pg, "Database", {"name": db})
    name = unique("user")
    secret = password()
    spec = {"username": name, "database": db}
    apply_ok(pg, "DatabaseUser", spec, password=secret)
    execute(pg, f"GRANT CREATE ON SCHEMA public TO {name}", database=db)  # the user creates tables there
    tables = ["owned", *(f"t{i}" for i in range(1, 7))]
    ok, error = as_user(
        pg, name, secret, "".join(f"CREATE TABLE public.{t} (id int);" for t in tables), database=db
    )
    assert ok, error
    owned_db = unique("ownerdb")
    execute(pg, f"CREATE DATABASE {owned_db} OWNER {name}")  # a shared object: named from the admin database
    refused, writes = writes_during(pg, lambda: run(pg, "drop", "DatabaseUser", spec))
    assert refused.code == 2
    assert refused.error["code"] == "DependentObjects"
    message = refused.error["message"]
    # Counts per kind and database, the first objects by name (schema-qualified), and how many more.
    assert f"owns 1 database(s) (database {owned_db})" in message
    assert f"owns 7 relation(s) in database {db} (table public.owned, table public.t1, " in message
    assert "and 2 more)" in message
    assert message.count(f"in database {db}") == 1  # the privileges dbops granted there do not block
    assert f"REASSIGN OWNED BY {name}" in message and f"DROP OWNED BY {name}" in message
    assert writes == []
    assert role(pg, name) is not None
    # The resolution the message gives, run where it says: the shared database moves with REASSIGN OWNED too.
    execute(pg, f"REASSIGN OWNED BY {name} TO {pg.admin_user}", f"DROP OWNED BY {name}", database=db)
    # What dbops granted for spec.database is revoked by the drop itself.
    dropped = run(pg, "drop", "DatabaseUser", spec)
    assert dropped.code == 0, dropped.error
    assert dropped.result["changes"][-1] == f"DROP ROLE {name}"
    assert role(pg, name) is None
    assert one(pg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (owned_db,)) == (
        pg.admin_user
    )
    execute(pg, f"DROP DATABASE {owned_db}")
    again = run(pg, "drop", "DatabaseUser", spec)
    assert again.code == 0 and again.result["changes"] == []


def test_drop_refuses_a_role_with_privileges_granted_by_hand(pg: Server) -> None:
    name = unique("user")
    apply_ok(pg, "DatabaseUser", {"username": name})
    execute(pg, f"GRANT SELECT ON pg_catalog.pg_class TO {name}")
    refused = run(pg, "drop", "DatabaseUser", {"username": name})
    assert refused.code == 2
    assert (
        f"holds privileges on 1 relation(s) in database {pg.admin_database or 'postgres'} "
        in (refused.error["message"])
    )
    assert "(table pg_catalog.pg_class)" in refused.error["message"]
    execute(pg, f"REVOKE SELECT ON pg_catalog.pg_class FROM {name}")
    assert run(pg, "drop", "DatabaseUser", {"username": name}).code == 0


def test_statement_error_names_the_statement_and_is_rolled_back(pg: Server) -> None:
    name = unique("user")
    spec = {"username": name, "postgres": {"configParameters": {"statement_timeout": "not-a-duration"}}}
    result = run(pg, "apply", "DatabaseUser", spec)
    assert result.code == 2
    assert result.error["code"] == "InvalidValue"
    assert "ALTER ROLE" in result.error["message"] and "statement_timeout" in result.error["message"]
    assert role(pg, name) is None  # CREATE ROLE went back with the failed transaction
    assert result.result["changes"] == []
