"""dbops-local does what Crossplane does where a difference once hid a bug (docs/offline.md, "Where it differs"):
conditions are merged, never dropped; requirements that never settle fail the reconcile."""

from __future__ import annotations

from typing import Any

from dbops_local.loop import MAX_REQUIREMENT_ROUNDS, OfflineCluster, Outcome
from dbops_local.runtime import FunctionClient
from tests.conftest import unique
from tests.offline_support import admin_secret, claim, cluster, condition, instance_claim
from tests.servers import Server


def test_a_condition_the_function_stops_evaluating_is_not_dropped_but_unknown(
    function_client: FunctionClient, pg: Server
) -> None:
    c = cluster(function_client)
    db = unique("merge")
    c.apply([admin_secret(pg, "admin"), instance_claim(pg, "server", "admin")])
    c.apply([claim("Database", "db", {"instanceRef": {"name": "server"}, "name": db})])
    c.reconcile()
    assert condition(c.claim("Database", "db"), "InstanceReady")["status"] == "True"
    # No longer managed: the function does not look at the instance any more.
    c.apply(
        [
            claim(
                "Database",
                "db",
                {
                    "instanceRef": {"name": "server"},
                    "name": db,
                    "ensure": "Absent",
                    "deletionProtection": False,
                },
            )
        ]
    )
    c.reconcile()
    got = condition(c.claim("Database", "db"), "InstanceReady")
    assert (got["status"], got["reason"]) == ("Unknown", "NotEvaluated"), got


class Restless(FunctionClient):
    """A function that asks for a different Secret on every call, as a buggy one could."""

    def __init__(self, wrapped: FunctionClient) -> None:
        self.wrapped = wrapped
        self.calls = 0

    def run(self, req: Any) -> Any:
        rsp = self.wrapped.run(req)
        self.calls += 1
        sel = rsp.requirements.resources["restless"]
        sel.api_version, sel.kind, sel.match_name = "v1", "Secret", f"s{self.calls}"
        return rsp


def test_requirements_that_never_settle_fail_the_reconcile_as_in_crossplane(
    function_client: FunctionClient, pg: Server
) -> None:
    restless = Restless(function_client)
    c = OfflineCluster(restless, cluster(function_client).compositions)  # type: ignore[arg-type]
    c.apply([admin_secret(pg, "admin"), instance_claim(pg, "server", "admin")])
    c.reconcile(max_wait=0)
    synced = condition(c.claim("DatabaseInstance", "server"), "Synced")
    assert synced["status"] == "False"
    assert (
        f"requirements didn't stabilize after the maximum number of iterations ({MAX_REQUIREMENT_ROUNDS})"
        in synced["message"]
    )
    assert not c.store.select("batch/v1", "Job"), "nothing is applied"


class Forgetful(FunctionClient):
    """Returns no InstanceReady condition once `forget` is set, as a function with the stale-condition bug did."""

    def __init__(self, wrapped: FunctionClient) -> None:
        self.wrapped = wrapped
        self.forget = False

    def run(self, req: Any) -> Any:
        rsp = self.wrapped.run(req)
        if self.forget:
            kept = [c for c in rsp.conditions if c.type != "InstanceReady"]
            del rsp.conditions[:]
            rsp.conditions.extend(kept)
        return rsp


def test_conditions_are_merged_as_crossplane_merges_them(function_client: FunctionClient, pg: Server) -> None:
    """Crossplane never removes a condition: one the function stops returning keeps its last value on the claim
    (which is why the function must return every condition it ever set)."""
    forgetful = Forgetful(function_client)
    c = OfflineCluster(forgetful, cluster(function_client).compositions)  # type: ignore[arg-type]
    c.apply([admin_secret(pg, "admin"), instance_claim(pg, "server", "admin")])
    c.apply([claim("Database", "db", {"instanceRef": {"name": "server"}, "name": unique("kept")})])
    c.reconcile(max_wait=0)
    assert condition(c.claim("Database", "db"), "InstanceReady")["status"] == "True"
    forgetful.forget = True
    c.apply(
        [
            claim(
                "DatabaseInstance",
                "server",
                {**c.claim("DatabaseInstance", "server")["spec"], "healthCheck": {"intervalSeconds": 120}},
            )
        ]
    )
    c.reconcile(max_wait=0)
    assert condition(c.claim("Database", "db"), "InstanceReady")["status"] == "True", "kept, not dropped"


def test_composed_namespaces_follow_crossplanes_rules(function_client: FunctionClient) -> None:
    """As Crossplane's function composer: a legacy XR's resource goes where the function says; a namespaced XR's
    always to the XR's namespace (a Warning event); an existing composed resource keeps its namespace and name."""
    c = cluster(function_client)

    def secret(ns: str, name: str = "s") -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": {}}

    legacy = {
        "apiVersion": "dbops.dbprovision.io/v1alpha1",
        "kind": "XDatabase",
        "metadata": {"name": "l", "uid": "1"},
    }
    out = Outcome()
    c._apply_desired(legacy, {}, {"a": (secret("elsewhere"), True)}, out)
    assert c.store.get("v1", "Secret", "s", "elsewhere") is not None and out.events == []

    namespaced = {
        "apiVersion": "ns.dbops.dbprovision.io/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "n", "namespace": "team", "uid": "2"},
    }
    out = Outcome()
    c._apply_desired(namespaced, {}, {"b": (secret("platform", "t"), True)}, out)
    assert c.store.get("v1", "Secret", "t", "platform") is None
    assert c.store.get("v1", "Secret", "t", "team") is not None
    assert out.events == [
        "cannot create composed resource 'b' in namespace 'platform', using XR namespace 'team' instead"
    ]

    observed = {"a": c.store.get("v1", "Secret", "s", "elsewhere")}
    c._apply_desired(legacy, observed, {"a": (secret("moved", "other"), True)}, Outcome())
    assert c.store.get("v1", "Secret", "other", "moved") is None, (
        "an observed resource is never moved or renamed"
    )
    assert c.store.get("v1", "Secret", "s", "elsewhere") is not None
