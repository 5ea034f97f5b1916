"""The `dbops-local` command as a user runs it (docs/offline.md): the installed console script, a claims file,
the private PostgreSQL server. Three runs: a wrong admin password, the fixed Secret, a deleted claim."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbops_local.cli import MASK
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, instance_claim
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent
DBOPS_LOCAL = shutil.which("dbops-local", path=os.path.dirname(sys.executable))
WRONG = "not-the-admin-password"


def dbops_local(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command from the repository (its default --compositions is `apis`), with no DBOPS_* variables.
    The timeout only guards against a hang; nothing here depends on how long a run takes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    assert DBOPS_LOCAL is not None, f"dbops-local is not installed next to {sys.executable}"
    return subprocess.run(
        [DBOPS_LOCAL, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False
    )


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The status table: `KIND/NAME` -> (PHASE, MESSAGE)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("KIND "))
    out: dict[str, tuple[str, str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        kind, name, phase, *message = line.split(maxsplit=3)
        out[f"{kind}/{name}"] = (phase, message[0] if message else "")
    return out


def state_secret(state: Path, name: str) -> dict[str, str]:
    for obj in json.loads(state.read_text()):
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == name:
            return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    raise KeyError(name)


def test_dbops_local_fails_on_a_wrong_password_converges_once_fixed_and_deletes_a_claim(
    pg: Server, tmp_path: Path
) -> None:
    dbname, username = unique("cli"), unique("cli_u")
    claims: list[dict[str, Any]] = [
        instance_claim(pg, "server", "admin"),
        claim("Database", "db", {"instanceRef": {"name": "server"}, "name": dbname}),
        claim(
            "DatabaseUser",
            "user",
            {"instanceRef": {"name": "server"}, "databaseRef": {"name": "db"}, "username": username},
        ),
    ]
    claims_file, state = tmp_path / "claims.yaml", tmp_path / "state.json"

    # 1. A wrong admin password: the instance fails with the worker's message, the rest waits; exit status 1.
    # With the default --max-wait the run settles without waiting for the claims that poll their instance.
    claims_file.write_text(yaml.safe_dump_all([admin_secret(pg, "admin", password=WRONG), *claims]))
    run = dbops_local("-f", str(claims_file), "--state", str(state))
    assert run.returncode == 1, run.stdout + run.stderr
    first_line = run.stdout.splitlines()[0]
    assert first_line.startswith("settled after ") and "retry" not in first_line, first_line
    table = rows(run.stdout)
    assert table["DatabaseInstance/server"][0] == "Failed"
    # The shipped Compositions do not read Pods (status.readPods false): the message is the Job's.
    assert "(PodFailurePolicy)" in table["DatabaseInstance/server"][1], table
    assert table["Database/db"][0] == table["DatabaseUser/user"][0] == "Pending"
    assert WRONG not in run.stdout + run.stderr
    # Opting in (--input) reads the Pods: the worker's message.
    opt_in = tmp_path / "read-pods.yaml"
    opt_in.write_text("status:\n  readPods: true\n")
    run = dbops_local("-f", str(claims_file), "--state", str(state), "--input", str(opt_in))
    assert run.returncode == 1, run.stdout + run.stderr
    message = rows(run.stdout)["DatabaseInstance/server"][1]
    assert f'password authentication failed for user "{pg.admin_user}"' in message
    assert WRONG not in run.stdout + run.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o600, "the state file holds Secrets"

    # 2. The Secret fixed, the same state: everything converges, exit status 0, the credentials Secret is shown
    # with its password masked, and it logs in.
    claims_file.write_text(yaml.safe_dump_all([admin_secret(pg, "admin"), *claims]))
    run = dbops_local("-f", str(claims_file), "--state", str(state))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("settled after ")
    assert {phase for phase, _ in rows(run.stdout).values()} == {"Ready"}, run.stdout
    creds = state_secret(state, "user-credentials")
    assert f"  password: {MASK}" in run.stdout
    assert f"  uri: postgresql://{username}:{MASK}@{pg.host}:{pg.port}/{dbname}" in run.stdout
    assert creds["password"] not in run.stdout + run.stderr
    assert pg.admin_password not in run.stdout + run.stderr
    conn = pg.connect(user=username, password=creds["password"], database=dbname)
    conn.close()

    # 3. --delete: the claim goes with its XR and composed resources (its credentials Secret); as in Crossplane,
    # nothing is dropped in the server.
    run = dbops_local("-f", str(claims_file), "--state", str(state), "--delete", "DatabaseUser/user")
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(rows(run.stdout)) == {"DatabaseInstance/server", "Database/db"}
    assert "user-credentials" not in run.stdout
    with pytest.raises(KeyError):
        state_secret(state, "user-credentials")
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)) == [(1,)]


def test_dbops_local_runs_the_namespaced_quickstart_as_written_but_for_the_server(
    pg: Server, tmp_path: Path
) -> None:
    """examples/namespaced/quickstart.yaml (namespaced XRs, ns.dbops.dbprovision.io) through the command with its
    default Compositions (apis and apis-namespaced): Ready, the credentials Secret in the XRs' namespace, and
    `--delete` of a namespaced XR takes its composed Secret and drops nothing."""
    docs = list(yaml.safe_load_all((ROOT / "examples/namespaced/quickstart.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {"username": pg.admin_user, "password": pg.admin_password}
        if doc["kind"] == "DatabaseInstance":
            doc["spec"]["connection"].update(host=pg.host, port=pg.port)
    xrs = [d for d in docs if d["kind"] != "Secret"]
    assert {d["apiVersion"] for d in xrs} == {"ns.dbops.dbprovision.io/v1alpha1"}
    # The namespace the e2e Quick Start uses too: dbops' ownership marker in the server names namespace/name, so
    # the same role and database stay this XR's whichever test of the session ran first.
    namespace = "default"
    file, state = tmp_path / "quickstart.yaml", tmp_path / "state.json"
    file.write_text(yaml.safe_dump_all(docs))
    run = dbops_local("-f", str(file), "--state", str(state), "-n", namespace)
    assert run.returncode == 0, run.stdout + run.stderr
    assert rows(run.stdout) == {
        "DatabaseInstance/postgres-server": (
            "Ready",
            rows(run.stdout)["DatabaseInstance/postgres-server"][1],
        ),
        "Database/myapp-db": ("Ready", rows(run.stdout)["Database/myapp-db"][1]),
        "DatabaseUser/myapp-user": ("Ready", rows(run.stdout)["DatabaseUser/myapp-user"][1]),
    }
    assert f"Secret {namespace}/myapp-db-credentials:" in run.stdout
    objects = json.loads(state.read_text())
    assert not [o for o in objects if o["apiVersion"] == "dbops.dbprovision.io/v1alpha1"], "no claim, no XR"
    assert {o["metadata"].get("namespace") for o in objects} == {namespace}, "nothing in crossplane-system"
    creds = state_secret(state, "myapp-db-credentials")
    pg.connect(user="myapp", password=creds["password"], database="myapp").close()
    # --plan on the converged namespaced XRs: nothing to change, nothing written.
    plan = dbops_local("-f", str(file), "--state", str(state), "-n", namespace, "--plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr

    run = dbops_local(
        "-f", str(file), "--state", str(state), "-n", namespace, "--delete", "DatabaseUser/myapp-user"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert set(rows(run.stdout)) == {"DatabaseInstance/postgres-server", "Database/myapp-db"}
    with pytest.raises(KeyError):
        state_secret(state, "myapp-db-credentials")
    assert pg.query("SELECT 1 FROM pg_roles WHERE rolname = 'myapp'") == [(1,)]


# --- every form of every secret is masked, in every output format ------------------------------------------------

TEMPLATE = {
    "DATABASE_URL": "{scheme}://{{{{ .Username }}}}:{{{{ .Password | urlquery }}}}@{{{{ .Host }}}}:{{{{ .Port }}}}/db",
    "PASSWORD_B64": "{{ .Password | b64enc }}",
    "PASSWORD_JSON": '{"user": "{{ .Username }}", "password": {{ .Password | quote }}}',
    "SHOUTED": "{{ .Password | upper }}",
    "CHAINED": "{{ .Password | lower | urlquery | b64enc }}",
    "PLAIN_DSN": "user={{ .Username }} password={{ .Password }}",
}


def password_forms(password: str) -> set[str]:
    """Every form of `password` the template above renders, and the plain encodings, computed here apart from
    the code under test."""
    quoted = urllib.parse.quote(password, safe="")
    return {
        password,
        quoted,
        base64.b64encode(password.encode()).decode(),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
        password.upper(),
        base64.b64encode(urllib.parse.quote(password.lower(), safe="").encode()).decode(),
    }


@pytest.mark.parametrize("server", ["postgres", "mariadb"], indirect=True)
def test_dbops_local_masks_every_form_of_every_password_in_table_and_yaml(
    server: Server, tmp_path: Path
) -> None:
    chosen = f"Pa'ss\"w\\rd $%&@:/?#+ü-{uuid.uuid4().hex[:8]}"
    scheme = "postgresql" if server.engine == "postgres" else "mysql"
    template = {k: v.format(scheme=scheme) if k == "DATABASE_URL" else v for k, v in TEMPLATE.items()}
    chosen_user, generated_user = unique("mask_c"), unique("mask_g")
    docs: list[dict[str, Any]] = [
        admin_secret(server, "admin"),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chosen"}, "stringData": {"pw": chosen}},
        instance_claim(server, "server", "admin"),
        claim(
            "DatabaseUser",
            "chosen",
            {
                "instanceRef": {"name": "server"},
                "username": chosen_user,
                "existingPasswordSecret": {"name": "chosen", "key": "pw"},
                "passwordSecret": {"secretTemplate": {"data": template}},
            },
        ),
        claim(
            "DatabaseUser",
            "generated",
            {
                "instanceRef": {"name": "server"},
                "username": generated_user,
                "passwordSecret": {"secretTemplate": {"data": template}},
            },
        ),
    ]
    claims_file, state = tmp_path / "claims.yaml", tmp_path / "state.json"
    claims_file.write_text(yaml.safe_dump_all(docs))
    table = dbops_local("-f", str(claims_file), "--state", str(state))
    assert table.returncode == 0, table.stdout + table.stderr
    assert {phase for phase, _ in rows(table.stdout).values()} == {"Ready"}, table.stdout
    generated = state_secret(state, "generated-credentials")["password"]
    passwords = {"chosen": chosen, "generated": generated, "admin": server.admin_password}
    yaml_run = dbops_local("-f", str(claims_file), "--state", str(state), "-o", "yaml")
    assert yaml_run.returncode == 0, yaml_run.stderr
    for output in (table, yaml_run):
        text = output.stdout + output.stderr
        leaked = {who: form for who, pw in passwords.items() for form in password_forms(pw) if form in text}
        assert not leaked, leaked
    # The templated keys are shown with the password's part masked, the rest readable.
    for who, user in (("chosen", chosen_user), ("generated", generated_user)):
        assert f"  DATABASE_URL: {scheme}://{user}:{MASK}@{server.host}:{server.port}/db\n" in table.stdout
        assert f"  PLAIN_DSN: user={user} password={MASK}\n" in table.stdout
        assert f'  PASSWORD_JSON: {{"user": "{user}", "password": {MASK}}}\n' in table.stdout
        for key in ("PASSWORD_B64", "SHOUTED", "CHAINED", "password"):
            assert f"  {key}: {MASK}\n" in table.stdout, key
        assert who in passwords
    # The control: the values are there, and --show-secrets prints them.
    shown = dbops_local("-f", str(claims_file), "--state", str(state), "--show-secrets")
    assert urllib.parse.quote(chosen, safe="") in shown.stdout
    assert base64.b64encode(urllib.parse.quote(generated.lower(), safe="").encode()).decode() in shown.stdout
