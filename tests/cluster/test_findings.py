"""What only the real control plane shows, each fixed: Crossplane never removes a condition, and it deletes a Job
that leaves the desired set together with its Pod (and the failed worker's log)."""

from __future__ import annotations

from tests.cluster.conftest import GROUP, conditions, namespace, wait_claim
from tests.conftest import unique
from tests.servers import Server, free_port
from tools.cluster.kube import Kube, Obj, wait

ATTEMPT = "dbops.dbprovision.io/attempt"


def admin(ns: str, server: Server) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "admin", "namespace": ns},
        "stringData": {"username": server.admin_user, "password": server.admin_password},
    }


def instance(ns: str, server: Server, port: int | None = None) -> Obj:
    return {
        "apiVersion": GROUP,
        "kind": "DatabaseInstance",
        "metadata": {"name": "server", "namespace": ns},
        "spec": {
            "engine": server.engine,
            "connection": {"host": server.host, "port": port or server.port, "secretRef": {"name": "admin"}},
        },
    }


def test_a_condition_no_longer_evaluated_does_not_stay_true_on_the_claim(kube: Kube, pg: Server) -> None:
    ns = namespace(kube, "stale-condition")
    spec: Obj = {"name": unique("stale"), "instanceRef": {"name": "server"}}
    database = {
        "apiVersion": GROUP,
        "kind": "Database",
        "metadata": {"name": "db", "namespace": ns},
        "spec": spec,
    }
    kube.apply_all([admin(ns, pg), instance(ns, pg), database])
    ready = wait_claim(kube, "Database", "db", ns)
    assert conditions(ready)["InstanceReady"]["status"] == "True"
    # Stop managing it: the function no longer looks at the instance.
    kube.patch(GROUP, "Database", "db", {"spec": {"ensure": "Absent", "deletionProtection": False}}, ns)
    after = wait_claim(
        kube,
        "Database",
        "db",
        ns,
        lambda o: conditions(o).get("Provisioned", {}).get("reason") == "NotManaged",
        what="not managed",
    )
    stale = conditions(after)["InstanceReady"]
    assert (stale["status"], stale["reason"]) == ("Unknown", "NotEvaluated"), stale


def test_a_failed_attempts_job_and_pod_stay_while_the_next_attempt_runs(kube: Kube, pg: Server) -> None:
    ns = namespace(kube, "failed-logs")
    kube.apply_all([admin(ns, pg), instance(ns, pg, port=free_port())])  # nothing listens: transient, retried

    def jobs_by_attempt() -> dict[str, Obj]:
        return {j["metadata"]["annotations"][ATTEMPT]: j for j in kube.list("batch/v1", "Job", ns)}

    # The first attempt fails (connection refused, exit 1), and after the back-off (30 s) a second one starts.
    wait(lambda: "2" in jobs_by_attempt(), 240, "a second attempt", interval=1)
    first = jobs_by_attempt()["1"]
    name = first["metadata"]["name"]
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in first["status"].get("conditions", []))
    pods = kube.list("v1", "Pod", ns, labels=f"batch.kubernetes.io/job-name={name}")
    assert pods, "the failed attempt's Pods (and so its logs) are still there"
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    # The claim shows the running attempt's status once Crossplane has copied it from the XR: the Job it composed
    # in the same call can be seen first (on a loaded machine, for seconds).
    pointer = f"kubectl logs -n {ns} job/{name}"

    def message() -> str:
        return str(kube.get(GROUP, "DatabaseInstance", "server", ns)["status"].get("message", ""))

    try:
        wait(
            lambda: pointer in message(),
            60,
            "the claim's message naming the failed attempt's log",
            interval=1,
        )
    except TimeoutError:
        raise AssertionError(f"{pointer!r} not in {message()!r}") from None
