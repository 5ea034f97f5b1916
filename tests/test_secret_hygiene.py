"""No password leaks, end to end: claims -> the served function -> Jobs run locally -> the real servers, with full
statement logging (PostgreSQL `log_statement=all`, MariaDB's general log).

For each engine and each shape (claims; Crossplane v2 namespaced XRs, where nothing goes to crossplane-system) one
offline cluster runs the Quick Start, a user whose password comes from a Secret full of
characters that need escaping (with a secretTemplate putting it into a URL and a connection Secret), a rotation of
that password, the loss and regeneration of the Quick Start user's generated password, a user that fails
(its role does not exist), a user whose password PostgreSQL cannot take (SASLprep), and an instance whose admin
Secret holds a wrong password. Then every password used (admin, wrong admin, generated, regenerated, chosen,
rotated), raw and URL-encoded, base64- and JSON-escaped, is searched for in: the server's statement and error
logs, every worker Pod's logs and termination message, every response the function sent (results, conditions,
status, Jobs), the function's own log file, and every object in the store except the data of the Secrets whose
job is to hold a password. None may be found. The PostgreSQL log holds no SCRAM verifier either, and the MariaDB
general log no password hash (the worker switched logging off for those statements).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dbops_local.crossplane import NAMESPACED_API_VERSION
from dbops_local.loop import OfflineCluster, load_compositions, load_manifests
from dbops_local.runtime import FunctionClient, LocalFunction
from function.fn import FunctionRunner
from tests.function_cases import kube
from tests.offline_support import RecordingClient, claim
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()


@pytest.fixture(scope="module")
def function_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionClient, Path]]:
    log = tmp_path_factory.mktemp("function") / "function.log"
    # --debug: the most the function ever logs.
    with LocalFunction(debug=True, log_path=str(log)) as client:
        yield client, log


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 1000}h{next(_names)}"


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": data,
    }


def hostile_password() -> str:
    # Quote, backslash, URL delimiters, percent, a space and a non-ASCII letter: every escaping layer gets a turn.
    return f"Pa'ss\"w\\rd $%&@:/?#+ü-{secrets.token_hex(4)}"


def forms(password: str) -> set[str]:
    """The shapes a password takes when something serialises it."""
    out = {
        password,
        urllib.parse.quote(password, safe=""),
        urllib.parse.quote_plus(password),
        base64.b64encode(password.encode()).decode(),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
    }
    return {f for f in out if len(f) >= 6}


def native_hash(password: str) -> str:
    """mysql_native_password's stored form of a password."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


@dataclass
class Scenario:
    server: Server
    cluster: OfflineCluster
    client: RecordingClient
    function_log: Path
    marks: dict[str, int]
    passwords: dict[str, str] = field(default_factory=dict)  # what it is -> the password
    # (namespace, name) of the Secrets whose job is to hold a password
    holders: set[tuple[str, str]] = field(default_factory=set)
    url_user: str = ""
    shape: str = "claims"  # or "namespaced": the same objects as namespaced XRs


CREDENTIAL_STATEMENT = re.compile(
    r"^\s*(CREATE|ALTER)\s+(ROLE|USER)\b.*\b(PASSWORD|IDENTIFIED)\b", re.I | re.S
)


def _size(path: str | None) -> int:
    return os.path.getsize(path) if path and os.path.exists(path) else 0


def _read_since(path: str | None, mark: int) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as handle:
        handle.seek(mark)
        return handle.read().decode("utf-8", "replace")


QUICKSTARTS = {
    "postgres": (
        "examples/quickstart.yaml",
        "postgres-server",
        "myapp-db",
        "myapp-user",
        "myapp-db-credentials",
    ),
    "mariadb": (
        "examples/quickstart-mariadb.yaml",
        "mariadb-server",
        "shop-db",
        "shop-user",
        "shop-db-credentials",
    ),
}


def _as_shape(docs: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    """The claims as namespaced XRs (apiVersion changed; no writeConnectionSecretToRef, which namespaced XRs do
    not have), or as they are."""
    if shape == "claims":
        return docs
    out = []
    for doc in docs:
        if doc["kind"] == "Secret":
            out.append(doc)
            continue
        spec = {k: v for k, v in doc["spec"].items() if k != "writeConnectionSecretToRef"}
        out.append({**doc, "apiVersion": NAMESPACED_API_VERSION, "spec": spec})
    return out


def _run(server: Server, client: FunctionClient, log: Path, shape: str = "claims") -> Scenario:
    assert server.log is not None and server.server_log_path is not None
    recording = RecordingClient(client)
    cluster = OfflineCluster(
        recording,  # type: ignore[arg-type]
        load_compositions(ROOT / "apis", ROOT / "apis-namespaced"),
        input_overrides={"retry": {"baseSeconds": 1, "maxSeconds": 2}},
    )
    marks = {
        "statements": server.log.mark(),
        "server": _size(server.server_log_path),
        "function": _size(str(log)),
    }
    s = Scenario(server, cluster, recording, log, marks, shape=shape)
    path, instance, database, user, credentials = QUICKSTARTS[server.engine]

    # 1. The Quick Start as written, pointed at the private server and its admin.
    docs = load_manifests([ROOT / path])
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {"username": server.admin_user, "password": server.admin_password}
            s.holders.add(("default", doc["metadata"]["name"]))
        if doc["kind"] == "DatabaseInstance":
            doc["spec"]["connection"].update(host=server.host, port=server.port)
    s.passwords["admin"] = server.admin_password
    s.holders.add(("default", credentials))

    # 2. A user with a password chosen outside dbops, put into a URL by its template and into a connection Secret.
    chosen = hostile_password()
    s.passwords["chosen"] = chosen
    url_user = s.url_user = unique("url_u")
    scheme = "postgresql" if server.engine == "postgres" else "mysql"
    extra = [
        secret("app-password", password=chosen),
        claim(
            "DatabaseUser",
            "url-user",
            {
                "instanceRef": {"name": instance},
                "databaseRef": {"name": database},
                "username": url_user,
                "existingPasswordSecret": {"name": "app-password"},
                "passwordSecret": {
                    "secretName": "url-user-credentials",
                    "secretTemplate": {
                        "data": {
                            "DATABASE_URL": scheme
                            + "://{{ .Username }}:{{ .Password | urlquery }}@{{ .Host }}:{{ .Port }}/{{ .Database }}",
                            "PASSWORD_B64": "{{ .Password | b64enc }}",
                            "PASSWORD_JSON": "{{ .Password | quote }}",
                        }
                    },
                },
                "writeConnectionSecretToRef": {"name": "url-user-connection"},
            },
        ),
    ]
    s.holders |= {("default", "app-password"), ("default", "url-user-credentials")}
    if shape == "claims":
        s.holders.add(("default", "url-user-connection"))

    # 3. Failures with passwords in play: a role that does not exist, a password PostgreSQL refuses (SASLprep
    #    prohibits unassigned code points), and an admin Secret with the wrong password.
    failing = f"failing-{secrets.token_hex(6)}"
    unstorable = f"sm\U0001f642le-{secrets.token_hex(4)}"
    wrong_admin = f"wrong-admin-{secrets.token_hex(6)}"
    s.passwords |= {"failing": failing, "unstorable": unstorable, "wrong admin": wrong_admin}
    extra += [
        secret("failing-password", password=failing),
        claim(
            "DatabaseUser",
            "failing-user",
            {
                "instanceRef": {"name": instance},
                "username": unique("fail_u"),
                "roles": [unique("no_such_role")],
                "existingPasswordSecret": {"name": "failing-password"},
            },
        ),
        secret("unstorable-password", password=unstorable),
        claim(
            "DatabaseUser",
            "unstorable-user",
            {
                "instanceRef": {"name": instance},
                "username": unique("emoji_u"),
                "existingPasswordSecret": {"name": "unstorable-password"},
            },
        ),
        secret("wrong-admin", username=server.admin_user, password=wrong_admin),
        claim(
            "DatabaseInstance",
            "wrong-admin-server",
            {
                "engine": server.engine,
                "connection": {
                    "host": server.host,
                    "port": server.port,
                    "secretRef": {"name": "wrong-admin"},
                },
            },
        ),
        claim(
            "Database",
            "unreachable-db",
            {"instanceRef": {"name": "wrong-admin-server"}, "name": unique("nodb")},
        ),
    ]
    s.holders |= {
        ("default", "failing-password"),
        ("default", "unstorable-password"),
        ("default", "wrong-admin"),
        ("default", "failing-user-credentials"),
        ("default", "unstorable-user-credentials"),
    }

    cluster.apply(_as_shape(docs + extra, shape))
    cluster.reconcile(max_wait=3)
    phases = {
        f"{c['kind']}/{c['metadata']['name']}": c.get("status", {}).get("phase") for c in cluster.claims()
    }
    # The one claim that asks for a connection Secret has its copy in crossplane-system, where Crossplane keeps an
    # XR's connection details (named by the XR's uid); no other claim's password may be there.
    if shape == "claims":
        url_xr = cluster.composite(cluster.claim("DatabaseUser", "url-user"))
        assert url_xr is not None
        s.holders.add(("crossplane-system", url_xr["metadata"]["uid"]))
    assert phases[f"DatabaseUser/{user}"] == "Ready", phases
    assert phases["DatabaseUser/url-user"] == "Ready", phases
    assert phases["DatabaseUser/failing-user"] == "Failed", phases
    assert phases["DatabaseInstance/wrong-admin-server"] == "Failed", phases
    if server.engine == "postgres":
        assert phases["DatabaseUser/unstorable-user"] == "Failed", phases
    generated = cluster.secret_data(credentials)["password"]
    s.passwords["generated"] = generated
    _login(server, url_user, chosen)

    # 4. Rotation: the chosen password changes in its Secret; and the generated one is lost and regenerated.
    rotated = hostile_password()
    s.passwords["rotated"] = rotated
    cluster.apply([secret("app-password", password=rotated)])
    lost = cluster.store.get("v1", "Secret", credentials, "default")
    assert lost is not None
    cluster.store.delete(lost)
    cluster.reconcile(max_wait=3)
    regenerated = cluster.secret_data(credentials)["password"]
    assert regenerated != generated
    s.passwords["regenerated"] = regenerated
    _login(server, url_user, rotated)
    assert not _can_login(server, url_user, chosen), "the old password must stop working"
    username = next(c for c in cluster.claims() if c["metadata"]["name"] == user)["spec"]["username"]
    _login(server, username, regenerated)
    return s


def _can_login(server: Server, user: str, password: str) -> bool:
    # PyMySQL sends a str password as latin-1; the hash the worker stores is of the UTF-8 bytes, which is what
    # the mariadb/mysql clients and most connectors send.
    secret: Any = password.encode() if server.engine != "postgres" else password
    try:
        server.connect(user=user, password=secret).close()
    except Exception:
        return False
    return True


def _login(server: Server, user: str, password: str) -> None:
    assert _can_login(server, user, password), f"{user} cannot log in with its current password"


@pytest.fixture(
    scope="module",
    params=[
        ("postgres", "claims"),
        ("mariadb", "claims"),
        ("postgres", "namespaced"),
        ("mariadb", "namespaced"),
    ],
    ids="-".join,
)
def scenario(request: pytest.FixtureRequest, function_log: tuple[FunctionClient, Path]) -> Scenario:
    engine, shape = request.param
    server: Server = request.getfixturevalue("pg" if engine == "postgres" else "maria")
    if server.log is None or server.server_log_path is None:
        pytest.skip("needs the private servers' statement and error logs")
    client, log = function_log
    return _run(server, client, log, shape)


def _find(text: str, s: Scenario) -> list[str]:
    return sorted({what for what, pw in s.passwords.items() for form in forms(pw) if form in text})


def _without_held_data(obj: dict[str, Any], s: Scenario) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    if obj.get("kind") == "Secret" and (meta.get("namespace"), meta.get("name")) in s.holders:
        return {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    return obj


# --- the scans --------------------------------------------------------------------------------------------------


def test_the_scenario_ran_and_logged(scenario: Scenario) -> None:
    """The control: statements, Pods, responses and function logs exist to be scanned (the scans below are not
    vacuous), and every kind of password was in play."""
    server = scenario.server
    statements = server.log.since(scenario.marks["statements"])  # type: ignore[union-attr]
    text = "\n".join(st.text for st in statements).upper()
    granted = [st for st in text.splitlines() if st.startswith("GRANT") and scenario.url_user.upper() in st]
    assert granted, "the run's writes (the URL user's grants) are in the statement log"
    assert len(scenario.cluster.pod_logs) >= 6
    assert len(scenario.client.responses) >= 20
    assert _read_since(str(scenario.function_log), scenario.marks["function"]).count("\n") >= 10
    assert set(scenario.passwords) == {
        "admin",
        "chosen",
        "rotated",
        "generated",
        "regenerated",
        "failing",
        "unstorable",
        "wrong admin",
    }


def test_no_password_in_the_server_logs(scenario: Scenario) -> None:
    server = scenario.server
    statements = _read_since(server.log.path, scenario.marks["statements"])  # type: ignore[union-attr]
    errors = _read_since(server.server_log_path, scenario.marks["server"])
    assert not _find(statements, scenario), "statement log"
    assert not _find(errors, scenario), "error log"
    # The statements that set passwords ran with logging switched off: none of them is in the log at all.
    setting = [
        st.text
        for st in server.log.since(scenario.marks["statements"])  # type: ignore[union-attr]
        if CREDENTIAL_STATEMENT.search(st.text)
    ]
    assert not setting, f"statements setting a credential were logged: {setting[:3]}"
    if server.engine == "postgres":
        assert "SCRAM-SHA-256$" not in statements, "a verifier reached the log: logging was not suppressed"
    else:
        hashes = [what for what, pw in scenario.passwords.items() if native_hash(pw) in statements]
        assert not hashes, f"password hashes in the general log: {hashes}"


def test_no_password_in_pod_logs_or_termination_messages(scenario: Scenario) -> None:
    for pod, logs in scenario.cluster.pod_logs.items():
        assert not _find(logs, scenario), f"logs of Pod {pod}"
    for pod in scenario.cluster.store.select("v1", "Pod"):
        assert not _find(json.dumps(pod.get("status", {}), ensure_ascii=False), scenario), pod["metadata"][
            "name"
        ]


def test_no_password_in_any_response_of_the_function(scenario: Scenario) -> None:
    for rsp in scenario.client.responses:
        told = {
            "results": rsp.get("results", []),
            "conditions": rsp.get("conditions", []),
            "status": rsp.get("desired", {}).get("composite", {}).get("resource", {}).get("status", {}),
            "resources": [
                _without_held_data(r.get("resource", {}), scenario)
                for r in rsp.get("desired", {}).get("resources", {}).values()
            ],
        }
        found = _find(json.dumps(told, ensure_ascii=False), scenario)
        assert not found, f"{found} in a response: {json.dumps(told)[:2000]}"


def test_no_password_in_the_function_log(scenario: Scenario) -> None:
    assert not _find(_read_since(str(scenario.function_log), scenario.marks["function"]), scenario)


def test_no_password_in_any_object_but_the_secrets_that_hold_one(scenario: Scenario) -> None:
    held = 0
    for obj in scenario.cluster.store.all():
        shown = _without_held_data(obj, scenario)
        held += shown is not obj
        found = _find(json.dumps(shown, ensure_ascii=False), scenario)
        assert not found, f"{found} in {obj['kind']} {obj['metadata'].get('name')}"
    assert held >= 6, "the Secrets that hold passwords were seen"
    # crossplane-system: Crossplane's connection Secret of every legacy DatabaseUser XR exists, and only the one of
    # the claim that asked holds anything.
    published = {
        o["metadata"]["name"]: {k: v for k, v in o.get("data", {}).items() if v}
        for o in scenario.cluster.store.select("v1", "Secret", "crossplane-system")
    }
    users = [c for c in scenario.cluster.claims() if c["kind"] == "DatabaseUser"]
    if scenario.shape == "namespaced":
        # A namespaced XR has no connection Secret: nothing at all in crossplane-system, every Secret in default.
        assert len(users) >= 4 and all(u["apiVersion"] == NAMESPACED_API_VERSION for u in users)
        assert published == {}
        assert {o["metadata"].get("namespace") for o in scenario.cluster.store.all()} == {"default"}
    else:
        assert len(published) == len(users) >= 4
        assert [name for name, data in published.items() if data] == [
            uid for ns, uid in scenario.holders if ns == "crossplane-system"
        ]
        connection = scenario.cluster.secret_data("url-user-connection")
        assert connection["password"] == scenario.passwords["rotated"], (
            "the connection Secret holds the password"
        )
    url = scenario.cluster.secret_data("url-user-credentials")["DATABASE_URL"]
    assert urllib.parse.quote(scenario.passwords["rotated"], safe="") in url


# --- the function's own redaction, in isolation -----------------------------------------------------------------


def test_the_function_scrubs_a_password_from_worker_text_and_nothing_else() -> None:
    """A worker that failed to redact: its message and facts carry the user's password, and the admin password
    is a word that also occurs in names. Status, conditions and results lose the passwords; the phase, the Job's
    name and the credentials Secret stay intact."""
    docs = {d["metadata"]["name"]: d for d in load_manifests([ROOT / "examples" / "quickstart.yaml"])}
    admin = secret("postgres-admin-creds", username="postgres", password="postgres")
    admin["metadata"].update(namespace="default", resourceVersion="5")
    required = {
        "instance": [kube.claim("DatabaseInstance", "postgres-server", docs["postgres-server"]["spec"])],
        "database": [kube.claim("Database", "myapp-db", docs["myapp-db"]["spec"])],
        "admin-secret": [admin],
        "credentials-secret": [],
    }
    xr = kube.xr_from_claim(docs["myapp-user"])
    runner = FunctionRunner(clock=lambda: datetime(2025, 6, 1, tzinfo=UTC), rng=random.Random(5))
    fn_input = kube.composition_input("DatabaseUser")

    def call(observed: dict[str, Any], pods: list[dict[str, Any]] = ()) -> Any:  # type: ignore[assignment]
        return asyncio.run(
            runner.RunFunction(kube.request(xr, observed, {**required, "pods": list(pods)}, fn_input))
        )

    first = kube.desired(call({}))
    observed = {"credentials": kube.observed(first["credentials"], "credentials")}
    password = kube.secret_data(first["credentials"])["password"]
    [(key, job)] = kube.jobs(call(observed)).items()
    job = kube.observed(job, key)
    leak = kube.worker_result(
        "DatabaseUser",
        observed_facts={"username": "myapp", "roles": [password]},
        error={"class": "permanent", "code": "ServerError", "message": f"cannot set {password} on postgres"},
    )
    finished = "2025-06-01T00:00:00Z"
    rsp = call(
        {**observed, key: kube.job_failed(job, finished, "PodFailurePolicy")},
        [kube.pod(job, 2, leak, finished)],
    )
    status = kube.status(rsp)
    told = json.dumps([status, [c.message for c in rsp.conditions], [r.message for r in rsp.results]])
    assert password not in told and "cannot set *** on ***" in status["message"]
    assert status["phase"] == "Failed" and status["job"] == job["metadata"]["name"]
    assert kube.secret_data(kube.desired(rsp)["credentials"])["password"] == password, "the Secret keeps it"


def test_encodings_are_every_form_a_password_takes() -> None:
    """`encodings` skips the forms that cannot differ from others (form encoding without spaces, JSON of plain
    ASCII); it still yields exactly the six forms, for any text."""
    from function.secrets.redaction import encodings

    def every_form(value: str) -> set[str]:
        return {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            base64.b64encode(value.encode()).decode(),
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1],
        }

    rng = random.Random(7)
    printable = [chr(i) for i in range(32, 127)]
    anything = [chr(i) for i in range(0x250)] + ["\u2028", "\U0001f600", "\x7f"]
    for n in range(5000):
        value = "".join(rng.choice(anything if n % 2 else printable) for _ in range(rng.randint(0, 24)))
        assert encodings(value) == every_form(value), repr(value)
