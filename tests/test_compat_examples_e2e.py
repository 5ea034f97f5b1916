"""The Go operator's published examples through dbops-local on real servers (issue 17, item 4).

Every object of the five kinds both projects have (DatabaseInstance, Database, DatabaseUser, DatabaseRole,
DatabaseGrant) in
tests/compat/go_examples.yaml, with its doc-only fields moved to the Go CRD's paths (`moved_spec`), goes through
the offline loop (the real function, real worker Jobs) against the private PostgreSQL and MariaDB servers. Only
what belongs to an environment is rewritten, as tests/compat/go_examples_e2e.yaml says: the instance's host and
port become the private server's, and the Secrets the examples name (admin credentials, the CA) are created with
the private server's credentials and CA. Each example must reach Ready, unless that file lists the refusal or the
wait dbops answers with (an engine dbops does not run, a kind it lacks, a field it refuses): then the claim must
say exactly that, so the test fails when dbops starts or stops accepting an example.

Objects are run page by page (a Markdown page or a folder of YAML files, as a reader applies them): a page's
objects in order, a new unit whenever a name comes back (the page shows an alternative), each unit with what it
refers to from earlier on the page, in its own namespace. The objects a unit made in the server are dropped
before the next unit, since pages reuse server-side names (`myapp`, `app_user`). Those names are the examples'
own, so the examples run on servers of this module's own: on the session's servers another file's claims may hold
them (tests/test_offline_cli.py runs the quick start as written, in namespace default).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml

from dbops_api.registry import API_VERSION
from dbops_local.loop import OfflineCluster
from dbops_local.runtime import FunctionClient
from tests.offline_support import cluster
from tests.servers import Server, private_servers
from tests.test_mysql_support import can_login as maria_can_login
from tests.test_pg_support import can_login
from tools.compat.go_examples import engine_of, load
from worker.adapters import mysql_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
PLAN = yaml.safe_load((HERE / "compat" / "go_examples_e2e.yaml").read_text())
SHARED = ("DatabaseInstance", "Database", "DatabaseUser", "DatabaseRole", "DatabaseGrant")
REFS = (("instanceRef", "DatabaseInstance"), ("databaseRef", "Database"), ("userRef", "DatabaseUser"))
ENTRIES: list[dict[str, Any]] = load()["examples"]
OURS = [e for e in ENTRIES if e["kind"] in SHARED and "dbops" in e]


def ident(entry: dict[str, Any]) -> str:
    return f"{entry['source']}:{entry['line']}:{entry['kind']}/{entry.get('name', '')}"


def scope(entry: dict[str, Any]) -> str:
    source: str = entry["source"]
    return source if source.endswith(".md") else source.rsplit("/", 1)[0]


def spec_of(entry: dict[str, Any]) -> dict[str, Any]:
    spec = entry.get("moved_spec", entry["object"].get("spec"))
    return dict(spec or {})


def server_of(entry: dict[str, Any]) -> str:
    """The private server an example runs on: its instance's engine's (tests/compat/go_examples_e2e.yaml)."""
    engine = engine_of(entry, ENTRIES)
    return str(PLAN["servers"].get(engine) or PLAN["pages"].get(scope(entry), "postgres"))


@dataclass
class Unit:
    """Objects applied together: `own` are judged here, `context` are earlier objects of the page they name."""

    scope: str
    server: str
    own: list[dict[str, Any]] = field(default_factory=list)
    context: list[dict[str, Any]] = field(default_factory=list)


def units() -> list[Unit]:
    """Per page and server, the page's objects in order; a new unit whenever a kind and name come back."""
    out: list[Unit] = []
    for page in dict.fromkeys(scope(e) for e in OURS):
        entries = [e for e in OURS if scope(e) == page]
        current: dict[str, Unit] = {}
        for entry in entries:
            server = server_of(entry)
            unit = current.get(server)
            key = (entry["kind"], entry.get("name"))
            if unit is None or any((e["kind"], e.get("name")) == key for e in unit.own):
                unit = current[server] = Unit(page, server)
                out.append(unit)
            unit.own.append(entry)
    for unit in out:
        unit.context = context(unit, [e for e in OURS if scope(e) == unit.scope])
    return out


def context(unit: Unit, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects a unit refers to that it does not hold: the nearest earlier of that kind and name on the page
    (else the first later one), and what those refer to."""
    have = {(e["kind"], e.get("name")) for e in unit.own}
    out: list[dict[str, Any]] = []
    todo = list(unit.own)
    while todo:
        entry = todo.pop()
        for ref, kind in REFS:
            name = (spec_of(entry).get(ref) or {}).get("name")
            if name is None or (kind, name) in have:
                continue
            found = [e for e in page if e["kind"] == kind and e.get("name") == name]
            earlier = [e for e in found if (e["source"], e["line"]) < (entry["source"], entry["line"])]
            if found:
                pick = (earlier or found)[-1] if earlier else found[0]
                have.add((kind, name))
                out.append(pick)
                todo.append(pick)
    return out


# --- what is rewritten: the environment ---------------------------------------------------------------------------


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def manifests(unit: Unit, server: Server) -> list[dict[str, Any]]:
    """The unit's objects as claims, with the environment rewritten, and the Secrets they name."""
    out: list[dict[str, Any]] = []
    secrets: dict[str, dict[str, str]] = {}
    for entry in sorted(unit.context + unit.own, key=lambda e: SHARED.index(e["kind"])):
        spec = spec_of(entry)
        if entry["kind"] == "DatabaseInstance":
            spec = environment(spec, server, secrets)
        elif server.engine == "mariadb":
            spec = on_mariadb(spec)
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": entry["kind"],
                "metadata": {"name": entry["name"]},
                "spec": spec,
            }
        )
    return [secret(name, data) for name, data in secrets.items()] + out


def environment(spec: dict[str, Any], server: Server, secrets: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Host and port of the private server; the admin Secret the example names holds its admin credentials under
    the keys the example names; the TLS Secret it names holds the private servers' CA."""
    rewrite = PLAN["rewrite"]
    spec = yaml.safe_load(yaml.safe_dump(spec))
    connection = spec.get("connection") or {}
    connection["host"], connection["port"] = server.host, server.port
    if server.engine == "postgres" and rewrite["postgres_admin_database"] and server.admin_database:
        connection["database"] = server.admin_database
    ref = connection.get("secretRef")
    if isinstance(ref, dict) and "name" in ref:
        keys = ref.get("keys") or {}
        secrets[ref["name"]] = {
            keys.get("username", "username"): server.admin_user,
            keys.get("password", "password"): server.admin_password,
        }
    tls = (spec.get("tls") or {}).get("secretRef")
    if isinstance(tls, dict) and "name" in tls and server.ca is not None:
        ca_key = (tls.get("keys") or {}).get("ca", "ca.crt")
        secrets[tls["name"]] = {ca_key: Path(server.ca.ca_path).read_text()}
    return spec


def on_mariadb(spec: dict[str, Any]) -> dict[str, Any]:
    """An example written for MySQL, on the MariaDB server we have: MySQL's own authentication plugins become
    the one both servers have (tests/compat/go_examples_e2e.yaml, `mysql_on_mariadb`)."""
    plugins: dict[str, str] = PLAN["rewrite"]["mysql_on_mariadb"]["authPlugin"]
    mysql = spec.get("mysql")
    if isinstance(mysql, dict) and mysql.get("authPlugin") in plugins:
        spec = {**spec, "mysql": {**mysql, "authPlugin": plugins[mysql["authPlugin"]]}}
    return spec


# --- cleaning the server between units ----------------------------------------------------------------------------


def drop_namespace(server: Server, namespace: str) -> None:
    """Drop every database, role and account dbops marked for a claim of `namespace`."""
    marker = f"managed by dbops for % {namespace}/%"
    if server.engine == "postgres":
        admin = server.admin_database or "postgres"
        dbs = server.query(
            "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE %s", (marker,)
        )
        roles = server.query(
            "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE %s", (marker,)
        )
        conn = server.connect(database=admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for (name,) in dbs:
                    cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                for (name,) in roles:
                    cur.execute(f'DROP OWNED BY "{name}"')
                    cur.execute(f'DROP ROLE "{name}"')
        finally:
            conn.close()
        return
    rows = (
        server.query(
            "SELECT object_type, object_name, host FROM _dbops.owners WHERE owner LIKE %s", (marker,)
        )
        if server.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '_dbops'")
        else []
    )
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            for kind, name, host in rows:
                if kind == "database":
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                elif host:
                    cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
                else:
                    cur.execute(f"DROP ROLE IF EXISTS `{name}`")
            cur.execute("DELETE FROM _dbops.owners WHERE owner LIKE %s", (marker,))
    finally:
        conn.close()


# --- the test -----------------------------------------------------------------------------------------------------


def ca_keys_wrong(c: OfflineCluster, entry: dict[str, Any], server: Server) -> list[str]:
    """A Ready user whose template writes `{{ .CA }}` holds the CA its instance trusts: the private servers'."""
    spec = spec_of(entry)
    secret = spec.get("passwordSecret") or {}
    keys = [
        k for k, v in ((secret.get("secretTemplate") or {}).get("data") or {}).items() if "{{ .CA }}" in v
    ]
    if not keys or server.ca is None:
        return []
    data = c.secret_data(secret.get("secretName") or f"{entry['name']}-credentials", c.namespace)
    ca = Path(server.ca.ca_path).read_text()
    return [f"{ident(entry)}: {key} is not the instance's CA" for key in keys if data.get(key) != ca]


def outcome(claim: dict[str, Any]) -> dict[str, str]:
    status = claim.get("status") or {}
    return {"phase": str(status.get("phase", "")), "message": str(status.get("message", ""))}


def expected(entry: dict[str, Any]) -> dict[str, str]:
    return dict(PLAN["outcomes"].get(ident(entry), {"phase": "Ready"}))


def matches(found: dict[str, str], want: dict[str, str]) -> bool:
    return found["phase"] == want["phase"] and want.get("message", "") in found["message"]


UNITS = units()


@pytest.fixture(scope="module")
def own_server() -> Iterator[Callable[[str], Server]]:
    """This module's own server of an engine, started on first use (see the module docstring)."""
    started: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:

        def get(engine: str) -> Server:
            if engine not in started:
                started.update(stack.enter_context(private_servers((engine,))))
                if engine == "mariadb":
                    # dbops' catalog, as on the session's server (tests/conftest.py): drop_namespace reads it even
                    # when no example got as far as creating it.
                    for step in mysql_catalog.create_steps():
                        started[engine].query(step.sql)
            return started[engine]

        yield get


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    spent: dict[str, float] = {}
    yield spent
    print("\nexample runs:", {k: round(v, 1) for k, v in spent.items()})


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_every_go_example_reaches_ready_or_is_refused_as_listed(
    function_client: FunctionClient,
    engine: str,
    own_server: Callable[[str], Server],
    timings: dict[str, float],
) -> None:
    server = own_server(engine)
    started = time.monotonic()
    mine = [u for u in UNITS if u.server == engine]
    assert mine, f"no example runs on {engine}"
    wrong: list[str] = []
    for number, unit in enumerate(mine):
        namespace = f"go-example-{number}"
        c = cluster(function_client)
        c.namespace = namespace
        try:
            c.apply(manifests(unit, server))
            c.reconcile()
            for entry in unit.own:
                found = outcome(c.claim(entry["kind"], entry["name"], namespace))
                want = expected(entry)
                if not matches(found, want):
                    wrong.append(f"{ident(entry)}: expected {want}, got {found}")
                elif found["phase"] == "Ready":
                    wrong += ca_keys_wrong(c, entry, server)
        finally:
            drop_namespace(server, namespace)
    timings[engine] = time.monotonic() - started
    assert not wrong, "\n".join(wrong)


def test_the_plan_names_only_examples_that_exist() -> None:
    known = {ident(e) for e in OURS}
    assert set(PLAN["outcomes"]) <= known
    for name, want in PLAN["outcomes"].items():
        assert set(want) == {"phase", "message", "why"} and want["phase"] != "Ready", name
    assert {u.server for u in UNITS} <= {"postgres", "mariadb"}


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_the_go_fields_dbops_accepts_converge_on_a_real_server(
    function_client: FunctionClient, engine: str, request: pytest.FixtureRequest
) -> None:
    """Go-operator fields that mean what dbops does (dbops_api/go_compat.py), together: `driftPolicy.mode:
    correct`, references that name the claim's own namespace, the MySQL timeouts as Go durations, `parseTime`,
    `{{ urlEncode .X }}` and `{{ .CA }}` in the secret template. Everything is Ready, the user logs in with the
    password of its Secret, and the rendered values are the Go operator's."""
    server: Server = request.getfixturevalue("pg" if engine == "postgres" else "maria")
    namespace = "go-fields"
    pg = engine == "postgres"
    suffix = str(int(time.monotonic() * 1000) % 1_000_000)
    username, database = f"gofields_{suffix}", f"gofields_db_{suffix}"
    drift = {"mode": "correct", "interval": "8h"}
    instance: dict[str, Any] = {
        "engine": engine,
        "connection": {
            "host": server.host,
            "port": server.port,
            "secretRef": {"name": "admin", "namespace": namespace},
        },
        "driftPolicy": drift,
        "discovery": {"enabled": False},
    }
    if pg:
        instance["connection"]["database"] = server.admin_database or "postgres"
    else:
        instance["mysql"] = {"timeout": "5s", "readTimeout": "1m", "writeTimeout": "30s", "parseTime": True}
    ca_key = {}
    if server.ca is not None:
        instance["tls"] = {"enabled": True, "mode": "verify-ca", "secretRef": {"name": "server-ca"}}
        ca_key = {"ca.crt": "{{ .CA }}"}
    ref = {"name": "inst", "namespace": namespace}
    template = {
        "DATABASE_URL": "scheme://{{ urlEncode .Username }}:{{ urlEncode .Password }}@{{ .Host }}/{{ .Database }}",
        **ca_key,
    }
    claims = [
        secret("admin", {"username": server.admin_user, "password": server.admin_password}),
        claim_of("DatabaseInstance", "inst", instance),
        claim_of("Database", "db", {"instanceRef": ref, "name": database, "driftPolicy": drift}),
        claim_of(
            "DatabaseUser",
            "user",
            {
                "instanceRef": ref,
                "databaseRef": {"name": "db", "namespace": namespace},
                "username": username,
                "driftPolicy": drift,
                "passwordSecret": {"secretName": "user-creds", "secretTemplate": {"data": template}},
            },
        ),
    ]
    if server.ca is not None:
        claims.insert(0, secret("server-ca", {"ca.crt": Path(server.ca.ca_path).read_text()}))
    c = cluster(function_client)
    c.namespace = namespace
    try:
        c.apply(claims)
        c.reconcile()
        phases = {o["kind"]: outcome(o) for o in c.claims()}
        assert {k: v["phase"] for k, v in phases.items()} == dict.fromkeys(SHARED[:3], "Ready"), phases
        data = c.secret_data("user-creds", namespace)
        password = data["password"]
        assert data["DATABASE_URL"] == (
            f"scheme://{quote_plus(username)}:{quote_plus(password)}@{server.host}/{database}"
        )
        if server.ca is not None:
            assert data["ca.crt"] == Path(server.ca.ca_path).read_text()
        if pg:
            assert can_login(server, username, password, database=database)
        else:
            assert maria_can_login(server, username, password)
    finally:
        drop_namespace(server, namespace)


def claim_of(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
