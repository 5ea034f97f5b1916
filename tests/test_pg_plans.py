"""Pure parts of the PostgreSQL adapter: privilege data, verifiers, diffs, plans and error mapping (no server)."""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any

import pytest

from dbops_api import pg_privileges as privs
from worker.adapters import pg_memory, pg_password
from worker.adapters.base import ServerInfo
from worker.adapters.pg_acl import (
    DefaultRule,
    Membership,
    Pair,
    Target,
    acl_steps,
    default_acl_steps,
    delta,
    membership_steps,
)
from worker.adapters.pg_database import DatabaseHandler, DatabaseObserved, same_locale
from worker.adapters.pg_errors import classify, connect_error, statement_error
from worker.adapters.pg_group_role import DatabaseRoleHandler, DefaultsObserved
from worker.adapters.pg_role import RoleHandler, RoleObserved, setting_items
from worker.adapters.pg_sql import ident, render, step
from worker.adapters.postgres import advisory_key, version_tuple
from worker.errors import PermanentError, TransientError
from worker.ownership import Owner
from worker.request import parse

PG15 = (15, 20)
PG17 = (17, 2)
OWNER = Owner(
    "DatabaseUser", "default", "test"
)  # the claim these plans act for; its objects carry its marker


@dataclass
class FixedCatalog:
    """Plan inputs that come from the connection. Plans never query: `query` fails the test."""

    info: ServerInfo = field(default_factory=lambda: ServerInfo("postgres", "15.20", PG15))
    admin_user: str = "postgres"
    admin_database: str = "postgres"
    admin_is_superuser: bool = True

    def query(self, sql: str, params: Any = None, database: str | None = None) -> list[tuple[Any, ...]]:
        raise AssertionError("a plan must not query")

    def password_works(self, user: str, password: str) -> bool | None:
        raise AssertionError("a plan must not log in")


def spec_of(kind: str, spec: dict[str, Any], policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec as the worker sees it after request parsing (defaults filled in)."""
    import json

    request = {
        "kind": kind,
        "engine": "postgres",
        "connection": {"host": "h", "port": 5432},
        "spec": spec,
        "owner": {"kind": OWNER.kind, "namespace": OWNER.namespace, "name": OWNER.name},
        **({"policy": policy} if policy else {}),
    }
    return parse(json.dumps(request), "apply").spec


# --- privileges ---------------------------------------------------------------------------------------------------


def test_all_expands_per_server_version() -> None:
    assert privs.expand(privs.TABLE, ["ALL"], PG15) == {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
    }
    assert "MAINTAIN" in privs.expand(privs.TABLE, ["all privileges"], PG17)
    assert privs.expand(privs.DATABASE, ["temp", "Connect"], PG15) == {"TEMPORARY", "CONNECT"}


def test_privilege_problems_name_the_object_type_and_the_alternatives() -> None:
    (problem,) = privs.problems(privs.SCHEMA, ["SELECT"])
    assert problem.startswith("'SELECT' is not a privilege of a schema (SELECT applies to table, sequence)")
    assert "allowed: USAGE, CREATE, ALL" in problem
    assert privs.problems(privs.TABLE, ["FLY"])[0].startswith("'FLY' is not a privilege of a table; allowed")
    assert privs.problems(privs.TABLE, ["MAINTAIN"]) == []
    assert privs.problems(privs.TABLE, ["MAINTAIN"], PG15) == [
        "MAINTAIN needs PostgreSQL 17 or later; the server is 15.20"
    ]


def test_spec_errors_for_grants_and_default_privileges() -> None:
    grant = {
        "grantee": "app",
        "postgres": {
            "grants": [
                {"schema": "s", "tables": ["*"], "privileges": ["EXECUTE"]},
                {"privileges": ["CONNECT"]},
            ]
        },
    }
    errors = [str(e) for e in privs.spec_errors("DatabaseGrant", grant, "spec")]
    assert errors[0].startswith("spec.postgres.grants[0].privileges: 'EXECUTE' is not a privilege of a table")
    assert (
        "spec.postgres.grants[0].database: is required when the grant has no databaseRef; name one" in errors
    )
    assert privs.spec_errors("DatabaseGrant", {**grant, "databaseRef": {"name": "x"}}, "spec")[1:] == []
    database = {
        "name": "d",
        "postgres": {
            "allowConnections": False,
            "schemas": [{"name": "s"}],
            "defaultPrivileges": [{"role": "r", "objectType": "sequences", "privileges": ["EXECUTE"]}],
        },
    }
    errors = [str(e) for e in privs.spec_errors("Database", database, "spec")]
    assert errors[0].startswith(
        "spec.postgres.defaultPrivileges[0].privileges: 'EXECUTE' is not a privilege of a sequence"
    )
    assert errors[1].startswith(
        "spec.postgres.allowConnections: false leaves no way to manage schemas, defaultPrivileges"
    )


def test_predefined_roles_need_the_instances_consent_and_reserved_words_are_refused() -> None:
    from worker.errors import InvalidRequest

    spec = {"username": "app", "roles": ["pg_monitor"], "postgres": {"inRoles": ["pg_read_all_data"]}}
    with pytest.raises(InvalidRequest) as refused:
        spec_of("DatabaseUser", spec)
    assert "request.spec.roles[0]: membership in the predefined role pg_monitor" in refused.value.message
    assert "request.spec.postgres.inRoles[0]: membership in the predefined role pg_read_all_data" in (
        refused.value.message
    )
    assert "allowGlobalGrants: true" in refused.value.message
    user = spec_of("DatabaseUser", spec, policy={"allowGlobalGrants": True})
    assert user["roles"] == ["pg_monitor"]
    grant = {"grantee": "app", "postgres": {"roles": ["pg_monitor", "public"]}}
    assert [str(e) for e in privs.spec_errors("DatabaseGrant", grant, "spec")] == [
        "spec.postgres.roles[1]: 'public' is reserved in PostgreSQL; choose another name"
    ]


def test_request_parsing_runs_the_privilege_checks() -> None:
    import json

    from worker.errors import InvalidRequest

    request = {
        "kind": "DatabaseGrant",
        "engine": "postgres",
        "connection": {"host": "h", "port": 5432},
        "spec": {
            "grantee": "app",
            "database": "d",
            "postgres": {"grants": [{"schema": "s", "privileges": ["SELECT"]}]},
        },
    }
    with pytest.raises(
        InvalidRequest,
        match=r"request.spec.postgres.grants\[0\].privileges: 'SELECT' is not a privilege of a schema",
    ):
        parse(json.dumps(request), "apply")


# --- passwords ----------------------------------------------------------------------------------------------------


def test_verifier_format_and_matching() -> None:
    stored = pg_password.verifier("correct horse", salt=b"0123456789abcdef")
    assert stored.startswith(f"SCRAM-SHA-256$4096:{b64encode(b'0123456789abcdef').decode()}$")
    assert pg_password.matches(stored, "correct horse")
    assert not pg_password.matches(stored, "correct horse ")
    assert pg_password.verifier("x") != pg_password.verifier("x")  # a fresh salt each time
    assert not pg_password.matches("md5" + "0" * 32, "correct horse")
    assert not pg_password.matches(None, "correct horse")
    assert not pg_password.matches("SCRAM-SHA-256$garbage", "correct horse")
    weaker = pg_password.verifier("pw").replace("$4096:", "$1000:")
    assert not pg_password.matches(weaker, "pw")


def test_prohibited_password_is_refused_clearly() -> None:
    with pytest.raises(PermanentError, match="SASLprep"):
        pg_password.verifier("bad\u0007bell")


# --- ACL diffs ----------------------------------------------------------------------------------------------------


def test_delta_covers_grant_options_both_ways() -> None:
    change = delta(
        {"SELECT": False, "INSERT": True, "UPDATE": False}, {"SELECT": True, "INSERT": False, "DELETE": False}
    )
    assert change.revoke == {"DELETE"}
    assert change.revoke_grant_option == {"SELECT"}
    assert change.grant == {"UPDATE"}
    assert change.grant_with_option == {"INSERT"}
    assert not delta({"SELECT": True}, {"SELECT": True})


def test_acl_steps_group_objects_with_the_same_change() -> None:
    def table(name: str) -> Target:
        return Target(privs.TABLE, "TABLE", "s", name, None, "app")

    pairs = [
        Pair(table("a"), {"SELECT": False}, {}, ["g[0]"]),
        Pair(table("b"), {"SELECT": False}, {}, ["g[0]"]),
        Pair(table("c"), {"SELECT": False}, {"SELECT": False, "INSERT": False}, ["g[1]"]),
        Pair(table("d"), {}, {"DELETE": True}, ["g[2]"]),
    ]
    steps = acl_steps("User", pairs)
    assert [s.sql for s in steps] == [
        'REVOKE DELETE ON TABLE s.d FROM "User"',
        'REVOKE INSERT ON TABLE s.c FROM "User"',
        'GRANT SELECT ON TABLE s.a, s.b TO "User"',
    ]
    assert all(s.database == "app" and s.transactional for s in steps)
    assert "g[1]" in steps[1].reason


def test_default_acl_steps() -> None:
    rule = DefaultRule("owner", "app", "tables", "reader")
    steps = default_acl_steps(rule, {"SELECT": False}, {"SELECT": True, "INSERT": False}, "db")
    assert [s.sql for s in steps] == [
        "ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA app REVOKE INSERT ON TABLES FROM reader",
        "ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA app REVOKE GRANT OPTION FOR SELECT ON TABLES FROM reader",
    ]


def test_membership_revokes_per_grantor_from_postgres_16() -> None:
    held = [Membership("a", "admin1"), Membership("a", "admin2"), Membership("b", "postgres")]
    assert [s.sql for s in membership_steps("u", frozenset({"b", "c"}), held, (16, 1), "spec.roles")] == [
        "REVOKE a FROM u GRANTED BY admin1",
        "REVOKE a FROM u GRANTED BY admin2",
        "GRANT c TO u",
    ]
    assert [s.sql for s in membership_steps("u", frozenset(), held[2:], PG15, "spec.roles")] == [
        "REVOKE b FROM u"
    ]
    assert membership_steps("u", None, held, PG15, "spec.roles") == []


# --- roles --------------------------------------------------------------------------------------------------------


def test_list_settings_compare_by_element() -> None:
    assert setting_items("search_path", '"$user", public') == ["$user", "public"]
    assert setting_items("search_path", '"a,b" , "x""y"') == ["a,b", 'x"y']
    assert setting_items("search_path", '""') == [""]
    assert setting_items("DateStyle", "ISO, MDY") == ["ISO, MDY"]


def existing_role(**attributes: Any) -> RoleObserved:
    base = {
        "superuser": False,
        "createDB": False,
        "createRole": False,
        "inherit": True,
        "login": True,
        "replication": False,
        "bypassRLS": False,
    }
    return RoleObserved(
        exists=True,
        attributes={**base, **attributes},
        existing_roles=frozenset({"r1", "r2"}),
        marker=OWNER.marker,
    )


def test_role_plan_changes_only_what_differs() -> None:
    handler = RoleHandler(FixedCatalog(), password=None, owner=OWNER)
    spec = spec_of(
        "DatabaseUser",
        {
            "username": "app",
            "roles": ["r1"],
            "postgres": {
                "createDB": True,
                "validUntil": "2030-01-01T00:00:00Z",
                "configParameters": {"search_path": "a, b"},
            },
        },
    )
    observed = existing_role()
    observed.config = {"search_path": ("search_path", "a, c"), "work_mem": ("work_mem", "4MB")}
    observed.memberships = [Membership("r2", "postgres")]
    plan = handler.plan(spec, observed)
    assert [s.summary for s in plan.steps] == [
        "ALTER ROLE app WITH CREATEDB VALID UNTIL '2030-01-01T00:00:00Z'",
        "ALTER ROLE app RESET work_mem",
        "ALTER ROLE app SET search_path = 'a', 'b'",
        "REVOKE r2 FROM app",
        "GRANT r1 TO app",
    ]
    observed.valid_until = 1893456000.0
    observed.attributes["createDB"] = True
    observed.config = {"search_path": ("search_path", "a, b")}
    observed.memberships = [Membership("r1", "postgres")]
    assert handler.plan(spec, observed).steps == []


def test_valid_until_tolerates_rounding() -> None:
    from worker.adapters.pg_role import parse_valid_until, same_instant

    pg_rounded = parse_valid_until("2030-01-01T00:00:00.123457Z")
    assert same_instant(parse_valid_until("2030-01-01T00:00:00.1234567Z"), pg_rounded)
    assert not same_instant(parse_valid_until("2030-01-01T00:00:01Z"), pg_rounded)
    assert same_instant(parse_valid_until("infinity"), None)
    assert not same_instant(None, pg_rounded)


def test_password_step_is_redacted_and_carries_its_secrets() -> None:
    handler = RoleHandler(FixedCatalog(), password="s3cret-value", owner=OWNER)
    observed = existing_role()
    observed.password_matches = False
    (change,) = handler.plan(spec_of("DatabaseUser", {"username": "app"}), observed).steps
    assert change.summary == "ALTER ROLE app PASSWORD ***"
    assert "s3cret-value" in change.secrets
    verifier = change.params["password"]  # type: ignore[index]
    assert verifier in change.secrets and pg_password.matches(verifier, "s3cret-value")
    observed.password_matches = True
    assert handler.plan(spec_of("DatabaseUser", {"username": "app"}), observed).steps == []


def test_new_role_states_every_attribute() -> None:
    handler = RoleHandler(FixedCatalog(), password=None, owner=OWNER)
    create, mark = handler.plan(spec_of("DatabaseUser", {"username": "user"}), RoleObserved()).steps
    assert create.summary == (
        'CREATE ROLE "user" WITH NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT LOGIN NOREPLICATION NOBYPASSRLS '
        "CONNECTION LIMIT -1"
    )
    # In the same transaction: a role dbops creates is never left without its claim's marker.
    assert mark.summary == "COMMENT ON ROLE \"user\" IS 'managed by dbops for DatabaseUser default/test'"
    assert create.transactional and mark.transactional and create.database == mark.database is None


# --- databases ----------------------------------------------------------------------------------------------------


def test_locale_spellings() -> None:
    assert same_locale("en_US.UTF-8", "en_US.utf8")
    assert not same_locale("en_US.UTF-8", "de_DE.UTF-8")
    assert same_locale("C", "C")


def test_database_plan_reports_drift_and_alters_the_rest() -> None:
    handler = DatabaseHandler(FixedCatalog(), OWNER)
    spec = spec_of("Database", {"name": "app", "postgres": {"encoding": "LATIN1", "connectionLimit": 4}})
    observed = DatabaseObserved(
        exists=True,
        owner="postgres",
        encoding="UTF8",
        lc_collate="C",
        lc_ctype="C",
        connection_limit=-1,
        is_template=False,
        allow_connections=True,
        wanted_encoding="LATIN1",
        tablespace="pg_default",
        marker=OWNER.marker,
    )
    plan = handler.plan(spec, observed)
    assert [s.summary for s in plan.steps] == ["ALTER DATABASE app WITH CONNECTION LIMIT 4"]
    assert plan.drift == ["encoding is UTF8, spec.postgres.encoding says LATIN1 (fixed at creation)"]


def test_database_drop_plan() -> None:
    handler = DatabaseHandler(FixedCatalog(), OWNER)
    spec = spec_of("Database", {"name": "app"})
    plan = handler.plan_drop(spec, DatabaseObserved(exists=True, is_template=True, marker=OWNER.marker))
    assert [(s.summary, s.transactional) for s in plan.steps] == [
        ("ALTER DATABASE app IS_TEMPLATE false", True),
        ("DROP DATABASE app WITH (FORCE)", False),
    ]
    old = DatabaseHandler(FixedCatalog(info=ServerInfo("postgres", "12.1", (12, 1))), OWNER)
    assert [
        s.summary for s in old.plan_drop(spec, DatabaseObserved(exists=True, marker=OWNER.marker)).steps
    ] == [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid()",
        "DROP DATABASE app",
    ]
    assert handler.plan_drop(spec, DatabaseObserved()).steps == []
    ops = DatabaseHandler(FixedCatalog(admin_database="ops"), OWNER)
    with pytest.raises(PermanentError, match="admin database"):
        ops.plan_drop(
            spec_of("Database", {"name": "ops"}), DatabaseObserved(exists=True, marker=OWNER.marker)
        )
    with pytest.raises(PermanentError, match="dbops did not create it"):
        handler.plan_drop(spec, DatabaseObserved(exists=True))


def test_database_default_privilege_memory_plans() -> None:
    """The memory of a Database's default privileges (pg_memory.ClaimMemory): a drop forgets the rows of the dropped
    database after DROP DATABASE (keeping another database's, under the same claim name); a database refusing
    connections keeps them for a later run; a remembered rule the spec no longer names is revoked, then forgotten."""
    handler = DatabaseHandler(FixedCatalog(), OWNER)
    rows = {
        "r": frozenset({("app", "default tables", "s", "o", ""), ("other", "default tables", "", "o", "")})
    }
    memory = pg_memory.ClaimMemory(True, True, rows)
    spec = spec_of("Database", {"name": "app"})
    observed = DatabaseObserved(exists=True, marker=OWNER.marker, allow_connections=True, memory=memory)
    dropped = handler.plan_drop(spec, observed)
    assert [s.summary.split(" VALUES")[0] for s in dropped.steps] == [
        "DROP DATABASE app WITH (FORCE)",
        "INSERT INTO _dbops.grants (claim, grantee, targets)",
    ]
    assert dropped.steps[1].params == {
        "claim": "default/test Database",
        "grantee": "r",
        "targets": '[["other","default tables","","o",""]]',
    }
    assert dropped.steps[1].bookkeeping

    rule = DefaultRule("o", "s", "tables", "r")
    refusing = DatabaseObserved(
        exists=True, marker=OWNER.marker, allow_connections=False, memory=memory, remembered=frozenset({rule})
    )
    assert handler.plan(spec, refusing).steps == []

    held = DatabaseObserved(
        exists=True,
        marker=OWNER.marker,
        allow_connections=True,
        inside_observed=True,
        memory=memory,
        remembered=frozenset({rule}),
        default_rules=[rule],
        default_held=[{"SELECT": False}],
    )
    assert [s.summary.split(" VALUES")[0] for s in handler.plan(spec, held).steps] == [
        "ALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA s REVOKE SELECT ON TABLES FROM r",
        "INSERT INTO _dbops.grants (claim, grantee, targets)",
    ]


# A DatabaseRole "readers" (claim default/test) and a Database claim default/app whose defaultPrivileges entry names
# it: the rule (database app, forRole o, schema s, tables). The Database's memory row says it set that rule.
THEIR_RULE = DefaultRule("o", "s", "tables", "readers")
THEIR_ROWS = [
    ["default/app Database", [["app", "default tables", "s", "o", ""]]],
    ["default/zz Database", [["app", "default tables", "s", "o", ""]]],  # the first claim by id is named
    ["default/g", [["app", "table", "s", "t", ""]]],  # a DatabaseGrant's object: no default rule
]


@pytest.mark.parametrize(
    ("entries", "held", "expect"),
    [
        pytest.param(
            [], {THEIR_RULE: {"SELECT": False}}, [], id="no entry: the Database's rule is left alone"
        ),
        pytest.param(
            [],
            {
                THEIR_RULE: {"SELECT": False},
                DefaultRule("o", None, "functions", "readers"): {"EXECUTE": False},
            },
            ["ALTER DEFAULT PRIVILEGES FOR ROLE o REVOKE EXECUTE ON FUNCTIONS FROM readers"],
            id="a rule no claim remembers is still revoked",
        ),
        pytest.param(
            [{"database": "app", "objectType": "sequences", "privileges": ["USAGE"]}],
            {THEIR_RULE: {"SELECT": False}},
            ["ALTER DEFAULT PRIVILEGES FOR ROLE o GRANT USAGE ON SEQUENCES TO readers"],
            id="the role's own rule beside it",
        ),
        pytest.param(
            [{"database": "app", "schema": "t", "objectType": "tables", "privileges": ["SELECT"]}],
            {THEIR_RULE: {"SELECT": False}},
            ["ALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA t GRANT SELECT ON TABLES TO readers"],
            id="another schema is another rule",
        ),
        pytest.param(
            [{"database": "app", "schema": "s", "objectType": "tables", "privileges": ["SELECT"]}],
            {THEIR_RULE: {"SELECT": False}},
            "OwnedByAnotherClaim",
            id="the same rule: refused",
        ),
        pytest.param(
            [
                {
                    "database": "app",
                    "forRole": "o",
                    "schema": "s",
                    "objectType": "tables",
                    "privileges": ["INSERT"],
                }
            ],
            {},
            "OwnedByAnotherClaim",
            id="the same rule with forRole spelled out, not held yet: refused",
        ),
    ],
)
def test_a_database_role_leaves_the_default_privileges_a_database_claim_sets_for_it(
    entries: list[dict[str, Any]], held: dict[DefaultRule, dict[str, bool]], expect: list[str] | str
) -> None:
    memory = pg_memory.parse([THEIR_ROWS, True], "default/test DatabaseRole")
    theirs = pg_memory.others_default_rules(memory, "readers")
    assert theirs == {("app", THEIR_RULE): "default/app Database"}
    handler = DatabaseRoleHandler(FixedCatalog(), Owner("DatabaseRole", "default", "test"))
    spec = spec_of("DatabaseRole", {"roleName": "readers", "postgres": {"defaultPrivileges": entries}})
    observed = DefaultsObserved(
        usable=frozenset({"app"}),
        owners={"app": "o"},
        roles={"app": frozenset({"o"})},
        schemas={"app": frozenset({"s", "t"})},
        held={("app", rule): privileges for rule, privileges in held.items()},
        theirs=theirs,
    )
    if isinstance(expect, str):
        with pytest.raises(PermanentError) as refused:
            handler._default_steps(spec, observed)
        assert refused.value.code == expect
        message = str(refused.value)
        assert message.startswith("spec.postgres.defaultPrivileges[0]: Database default/app already sets"), (
            message
        )
        assert "DatabaseRole default/test and Database default/app would revoke each other's" in message, (
            message
        )
        assert "remove the entry with role readers from Database default/app" in message, message
    else:
        assert [s.summary for s in handler._default_steps(spec, observed)] == expect
    # The drop revokes every rule naming the role, the Database's too (DROP ROLE needs it).
    dropped = [s.summary for s in handler._default_steps(spec, observed, drop=True)]
    assert len(dropped) == len(held)


# --- statements, keys, errors -------------------------------------------------------------------------------------


def test_identifiers_and_summaries() -> None:
    assert ident("app") == "app"
    assert ident("App") == '"App"'
    assert ident("select") == '"select"'
    assert render("SET x = %(v)s, %(w)s", {"v": "it's", "w": 3}) == "SET x = 'it''s', 3"
    hidden = step(
        "ALTER ROLE a PASSWORD %(password)s",
        "why",
        secret_params={"password": "SCRAM..."},
        also_secret=("pw",),
    )
    assert hidden.summary == "ALTER ROLE a PASSWORD ***"
    assert hidden.secrets == ("SCRAM...", "pw")


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    key = advisory_key("role:app")
    assert key == advisory_key("role:app") != advisory_key("role:app2")
    assert -(2**63) <= key < 2**63
    assert version_tuple(150020) == (15, 20)
    assert version_tuple(90624) == (9, 6, 24)


@dataclass
class FakeDiag:
    message_primary: str
    message_detail: str | None = None
    message_hint: str | None = None


class FakeError(Exception):
    """What a psycopg2 error exposes to the mapping: pgcode and diag."""

    def __init__(self, pgcode: str, diag: FakeDiag) -> None:
        super().__init__(diag.message_primary)
        self.pgcode = pgcode
        self.diag = diag


def test_error_table() -> None:
    assert classify("55P03") == (True, "LockTimeout")
    assert classify("42501") == (False, "PermissionDenied")
    assert classify("08006") == (True, "ConnectionFailure")
    assert classify("53300") == (True, "InsufficientResources")
    assert classify("P0001") == (False, "DatabaseError")
    denied = statement_error(
        FakeError("42501", FakeDiag("permission denied to create role")), "CREATE ROLE app WITH LOGIN"
    )
    assert isinstance(denied, PermanentError)
    assert denied.message.endswith(
        "Hint: the admin role needs CREATEROLE; SUPERUSER, REPLICATION and BYPASSRLS need a superuser admin"
    )
    owner = statement_error(
        FakeError("42501", FakeDiag("must be able to SET ROLE")), "ALTER DATABASE d OWNER TO x"
    )
    assert "member of the new owner role" in owner.message
    leaked = statement_error(
        FakeError("22023", FakeDiag("bad value SCRAM-abc")), "ALTER ROLE a PASSWORD ***", ("SCRAM-abc",)
    )
    assert "SCRAM-abc" not in leaked.message
    assert isinstance(
        statement_error(FakeError("40P01", FakeDiag("deadlock detected")), "GRANT x"), TransientError
    )


@pytest.mark.parametrize(
    ("message", "transient", "code"),
    [
        (
            'connection to server at "h", port 1 failed: FATAL:  password authentication failed for user "x"',
            False,
            "AuthenticationFailed",
        ),
        ('could not translate host name "nope" to address: Name or service not known', True, "HostNotFound"),
        (
            'connection to server at "h" failed: Connection refused\n\tIs the server running',
            True,
            "ConnectionRefused",
        ),
        ("timeout expired", True, "ConnectTimeout"),
        ('connection to server at "h" failed: SSL error: certificate verify failed', False, "TLSError"),
        ('server certificate for "localhost" does not match host name "vm"', False, "TLSError"),
        ("FATAL:  the database system is starting up", True, "ServerStarting"),
        ("FATAL:  sorry, too many clients already", True, "TooManyConnections"),
        ('FATAL:  database "nope" does not exist', False, "DatabaseNotFound"),
        ("something nobody has seen", True, "ConnectionFailure"),
    ],
)
def test_connect_failures(message: str, transient: bool, code: str) -> None:
    error = connect_error(Exception(message), "h:1 database postgres")
    assert (error.transient, error.code) == (transient, code)
    assert error.message.startswith("connecting to h:1 database postgres: ")
