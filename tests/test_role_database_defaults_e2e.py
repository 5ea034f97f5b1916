"""A Database claim whose `postgres.defaultPrivileges` entry gives default privileges to a DatabaseRole's role, beside
that DatabaseRole (whose default privileges are an exact set): through dbops-local and the real function, both
claims get Ready, the rule is in the catalog, and the role's next run writes nothing. Before, the role's run revoked the
rule and the Database's set it again on every round (docs/worker.md, "Name each pair in one place")."""

from __future__ import annotations

import pytest

from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, instance_claim, kube_name
from tests.servers import Server
from tests.test_pg_support import make_role, one, statements, writes_during

pytestmark = pytest.mark.postgres


def test_a_databases_default_privileges_for_a_database_role_stay(
    function_client: FunctionClient, pg: Server
) -> None:
    instance, db_obj, role_obj = kube_name("inst"), kube_name("db"), kube_name("role")
    owner, _ = make_role(pg, "owner", "NOLOGIN")
    db, role = unique("db"), unique("readers")
    c = cluster(function_client)
    c.apply(
        [
            admin_secret(pg, f"{instance}-admin"),
            instance_claim(pg, instance, f"{instance}-admin"),
            claim("DatabaseRole", role_obj, {"instanceRef": {"name": instance}, "roleName": role}),
        ]
    )
    c.reconcile()  # the role first: the Database's rule names it
    c.apply(
        [
            claim(
                "Database",
                db_obj,
                {
                    "instanceRef": {"name": instance},
                    "name": db,
                    "owner": owner,
                    "postgres": {
                        "schemas": [{"name": "app"}],
                        "defaultPrivileges": [
                            {"role": role, "schema": "app", "objectType": "tables", "privileges": ["SELECT"]}
                        ],
                    },
                },
            ),
        ]
    )
    c.reconcile()
    for kind, name in (("DatabaseRole", role_obj), ("Database", db_obj)):
        assert c.claim(kind, name)["status"]["phase"] == "Ready", c.claim(kind, name)["status"]
    sql = (
        "SELECT count(*) FROM pg_default_acl d, aclexplode(d.defaclacl) a"
        " WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s) AND a.privilege_type = 'SELECT'"
    )
    assert one(pg, sql, (role,), database=db) == 1
    # The role's spec changes (its default privileges now managed, as an empty set): a new Job runs it, and it
    # leaves the Database's rule alone. Before, it revoked it, and the Database's next run set it again.
    job = c.claim("DatabaseRole", role_obj)["status"]["job"]
    empty = {"instanceRef": {"name": instance}, "roleName": role, "postgres": {"defaultPrivileges": []}}
    _, writes = writes_during(pg, lambda: (c.apply([claim("DatabaseRole", role_obj, empty)]), c.reconcile()))
    after = c.claim("DatabaseRole", role_obj)["status"]
    assert after["phase"] == "Ready" and after["job"] != job, after
    assert writes == [], statements(writes)
    assert one(pg, sql, (role,), database=db) == 1
