"""`make demo`: the seed's Quick Start (and a MariaDB variant) from claims to a working login, without a cluster.

Starts private PostgreSQL and MariaDB servers, gives their admin the Quick Start's password (`supersecret`),
points each DatabaseInstance's host and port at them (the only change to the YAML), runs the claims through
`dbops-local`'s loop (the real function over gRPC, the real worker against the real servers), prints every claim's
status and the generated credentials Secret with the password masked, logs in as the application user with the
Secret's values, and cleans up. It always starts its own servers (DBOPS_TEST_POSTGRES_URL / DBOPS_TEST_MYSQL_URL,
which point the tests at an existing server, are ignored), since it changes the admin's password.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbops_local.cli import report  # noqa: E402
from dbops_local.loop import OfflineCluster, load_compositions, load_manifests  # noqa: E402
from dbops_local.runtime import LocalFunction  # noqa: E402
from tests.servers import Server, private_servers  # noqa: E402

QUICKSTART_PASSWORD = "supersecret"  # noqa: S105 (the seed's example admin password, on a throwaway server)
EXISTING_SERVER_VARIABLES = ("DBOPS_TEST_POSTGRES_URL", "DBOPS_TEST_MYSQL_URL")


def point_at(docs: list[dict[str, Any]], server: Server) -> list[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] == "DatabaseInstance":
            doc["spec"]["connection"]["host"] = server.host
            doc["spec"]["connection"]["port"] = server.port
    return docs


def prepare(server: Server) -> None:
    """Give the demo server's admin the Quick Start's password so its Secret applies unchanged."""
    if server.engine == "postgres":
        server.query(f"ALTER ROLE postgres PASSWORD '{QUICKSTART_PASSWORD}'")
    else:
        server.query(f"ALTER USER 'dbops_admin'@'%' IDENTIFIED BY '{QUICKSTART_PASSWORD}'")
    server.admin_password = QUICKSTART_PASSWORD


def prove_login(cluster: OfflineCluster, secret_name: str, server: Server) -> None:
    creds = cluster.secret_data(secret_name)
    conn = server.connect(user=creds["username"], password=creds["password"], database=creds["database"])
    with conn.cursor() as cur:
        if server.engine == "postgres":
            # databaseRef gives CONNECT and TEMPORARY, not CREATE in schema public (postgres.databaseAccess: Owner
            # is the owner pattern): a temporary table is what this user may create.
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS demo(id int)")
            cur.execute("SELECT current_user, current_database(), version()")
            made = "created temporary table demo"
        else:
            cur.execute("CREATE TABLE IF NOT EXISTS demo(id int)")
            cur.execute("SELECT current_user(), database(), version()")
            made = "created table demo"
        user, database, version = cur.fetchone()
    conn.close()
    print(f"\n  logged in with {secret_name}: user={user} database={database}; {made}")
    print(f"  server: {version.split(',')[0]}")


def main() -> int:
    compositions = load_compositions(ROOT / "apis")
    runs = [
        ("postgres", "examples/quickstart.yaml", "myapp-db-credentials"),
        ("mariadb", "examples/quickstart-mariadb.yaml", "shop-db-credentials"),
    ]
    # private_servers() would use the server these name, and prepare() would change its admin's password.
    for variable in EXISTING_SERVER_VARIABLES:
        os.environ.pop(variable, None)
    print("starting private PostgreSQL and MariaDB servers ...")
    failed = False
    with private_servers() as servers, LocalFunction() as client:
        for engine, path, secret in runs:
            server = servers[engine]
            prepare(server)
            print(
                f"\n=== {path} on {engine} at {server.host}:{server.port} "
                "(connection.host/port pointed at the demo server; Pod reads opted in, as docs/function.md "
                "describes, to show the worker's facts in status; everything else as written) ==="
            )
            cluster = OfflineCluster(client, compositions, input_overrides={"status": {"readPods": True}})
            cluster.apply(point_at(load_manifests([ROOT / path]), server))
            rounds = cluster.reconcile(max_wait=10)
            report(cluster, "table", show_secrets=False, rounds=rounds)
            for claim in cluster.claims():
                status = claim.get("status", {})
                facts = {
                    k: v
                    for k, v in status.items()
                    if k in ("instance", "database", "user", "grant") and isinstance(v, dict)
                }
                conditions = ", ".join(f"{c['type']}={c['status']}" for c in status.get("conditions", []))
                print(
                    f"\n  {claim['kind']}/{claim['metadata']['name']}: phase={status.get('phase')} [{conditions}]"
                )
                for key, value in facts.items():
                    print(f"    {key}: " + ", ".join(f"{k}={v}" for k, v in sorted(value.items())))
            phases = {c.get("status", {}).get("phase") for c in cluster.claims()}
            if phases != {"Ready"}:
                failed = True
                print(f"\n  not every claim is Ready: {sorted(p or '-' for p in phases)}")
                continue
            prove_login(cluster, secret, server)
    print("\nservers stopped and removed." if not failed else "\ndemo FAILED (see above); servers removed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
