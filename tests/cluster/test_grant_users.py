"""A DatabaseGrant naming its account by `roleName` on the real control plane: the function asks Crossplane for every
DatabaseUser claim of the grant's namespace (required resource `users`, an empty label selector; docs/worker.md,
"Name each pair in one place"). Real Crossplane lists them with only deploy/'s RBAC: the grant whose
database-level subset would undo a DatabaseUser's databaseRef is refused on the claim, naming both claims, and the
server's statement log shows no REVOKE; a roleName grant without such a user gets Ready. Crossplane is never refused
a DatabaseUser list or watch (its audit log)."""

from __future__ import annotations

import time
from typing import Any

from tests.cluster.conftest import GROUP, MEASURED, claim, namespace, wait_claim
from tests.cluster.test_findings import admin, instance
from tests.conftest import unique
from tests.servers import Server
from tests.test_pg_support import writes_during
from tools.cluster.controlplane import ControlPlane, audited, refused
from tools.cluster.kube import Kube, Obj

CROSSPLANE = "system:serviceaccount:crossplane-system:crossplane"


def _claim(kind: str, name: str, ns: str, spec: Obj) -> Obj:
    return {"apiVersion": GROUP, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def held(pg: Server, username: str, db: str) -> set[str]:
    rows = pg.query(
        "SELECT p FROM unnest(ARRAY['CONNECT', 'TEMPORARY', 'CREATE']) p WHERE has_database_privilege(%s, %s, p)",
        (username, db),
    )
    return {str(r[0]) for r in rows}


def test_a_rolename_grant_meets_the_namespaces_database_users_on_real_crossplane(
    control_plane: ControlPlane, kube: Kube, pg: Server
) -> None:
    ns = namespace(kube, "grant-users")
    db, owner, other = unique("gudb"), unique("guapp"), unique("guother")
    server: dict[str, Any] = {"instanceRef": {"name": "server"}}
    # Each claim applied once what it names is Ready: a claim that finds its reference not Ready yet is looked at
    # again only at the TTL (30 s), since references are not watched.
    steps: list[list[Obj]] = [
        [admin(ns, pg), instance(ns, pg)],
        [
            # PUBLIC holds nothing on it, so what an account holds is what dbops gave it.
            _claim(
                "Database",
                "app",
                ns,
                {**server, "name": db, "deletionProtection": False, "postgres": {"publicPrivileges": []}},
            ),
            # Another account, with no databaseRef: a roleName grant for it conflicts with nothing.
            _claim("DatabaseUser", "other-user", ns, {**server, "username": other}),
        ],
        # Manages its account's use of the database (CONNECT, TEMPORARY) through its databaseRef.
        [
            _claim(
                "DatabaseUser", "app-user", ns, {**server, "username": owner, "databaseRef": {"name": "app"}}
            )
        ],
    ]
    t0 = time.monotonic()
    for docs in steps:
        kube.apply_all(docs)
        for doc in (d for d in docs if d["apiVersion"] == GROUP):
            wait_claim(kube, doc["kind"], doc["metadata"]["name"], ns, timeout=300)
    MEASURED["roleName grant scene Ready"] = time.monotonic() - t0
    before = held(pg, owner, db)
    assert {"CONNECT", "TEMPORARY"} <= before, before

    subset = {"postgres": {"grants": [{"privileges": ["CONNECT"]}]}}  # an exact set without TEMPORARY
    conflicting = _claim(
        "DatabaseGrant",
        "by-name",
        ns,
        {**server, "roleName": owner, "databaseRef": {"name": "app"}, **subset},
    )
    fine = _claim(
        "DatabaseGrant",
        "other-by-name",
        ns,
        {**server, "roleName": other, "databaseRef": {"name": "app"}, **subset},
    )

    def refused_and_ready() -> tuple[Obj, Obj]:
        t0 = time.monotonic()
        kube.apply_all([conflicting, fine])
        failed = wait_claim(
            kube,
            "DatabaseGrant",
            "by-name",
            ns,
            lambda o: o.get("status", {}).get("phase") == "Failed",
            what="refused",
        )
        MEASURED["roleName grant applied -> refused"] = time.monotonic() - t0
        ready = wait_claim(kube, "DatabaseGrant", "other-by-name", ns)
        MEASURED["roleName grant applied -> Ready"] = time.monotonic() - t0
        return failed, ready

    (failed, ready), writes = writes_during(pg, refused_and_ready)
    message = failed["status"]["message"]
    assert (
        f"DatabaseUser app-user (username {owner}, the role spec.roleName names) already gives" in message
    ), message
    assert "remove databaseRef from DatabaseUser app-user" in message, message
    assert "spec.postgres.grants[0].privileges" in message, message
    # No Job was composed for the refused grant, and its account kept what its databaseRef gives.
    assert not any(owner in w.text for w in writes), [w.text for w in writes]
    assert not any("REVOKE" in w.text.upper() for w in writes), [w.text for w in writes]
    assert held(pg, owner, db) == before
    assert ready["status"]["phase"] == "Ready", ready["status"]
    assert held(pg, other, db) == {"CONNECT"}
    # Still refused after all that (no later call of the function let it through).
    assert claim(kube, "DatabaseGrant", "by-name", ns)["status"]["phase"] == "Failed"
    # The audit log records Crossplane's DatabaseUser requests (so its silence on refusals means something), and
    # the API server refused none of them.
    seen = audited(control_plane.base, CROSSPLANE, "databaseusers")
    assert any(e.get("verb") in ("list", "watch") for e in seen), [e.get("verb") for e in seen]
    assert not refused(control_plane.base, CROSSPLANE, "databaseusers"), (
        "Crossplane may list DatabaseUser claims"
    )
