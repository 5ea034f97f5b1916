"""The offline control loop: reconcile claims and namespaced XRs through the function and local Jobs until nothing
changes."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from crossplane.function import resource

from dbops_local import crossplane as xp
from dbops_local import plan as plan_mode
from dbops_local.jobs import PodCannotStart, run_job, secret_value
from dbops_local.runtime import FunctionClient
from dbops_local.store import Obj, ObjectStore

ORDER = {kind: i for i, kind in enumerate(xp.CLAIM_KINDS)}
MAX_REQUIREMENT_ROUNDS = 5  # as Crossplane: call again while the function asks for new resources
FUNCTION_NAME = "dbprovision-function-dbops"  # as the Compositions call it (tools.apigen)
MAX_ROUNDS = 40
# `dbops-local --max-wait`: long enough for the first two retries at the default back-off (30 s, then 60 s).
DEFAULT_MAX_WAIT = 60.0


class UnsettledRequirements(Exception):
    """The function kept asking for different resources (Crossplane gives up after MAX_REQUIREMENT_ROUNDS)."""


def load_manifests(paths: Iterable[str | Path]) -> list[Obj]:
    out: list[Obj] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            out.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return out


CompositeType = tuple[str, str]  # (apiVersion, kind) of a composite resource


def load_compositions(*directories: str | Path) -> dict[CompositeType, xp.Composition]:
    """Composite type -> its Composition (name, the function-dbops step's Input, where connection details go),
    from every Composition under the directories (e.g. `apis` and `apis-namespaced`)."""
    found: dict[CompositeType, xp.Composition] = {}
    paths = [path for directory in directories for path in sorted(Path(directory).rglob("*.yaml"))]
    for path in paths:
        for doc in load_manifests([path]):
            if doc.get("kind") != "Composition":
                continue
            ref = doc["spec"]["compositeTypeRef"]
            steps = [s for s in doc["spec"].get("pipeline", []) if s["functionRef"]["name"] == FUNCTION_NAME]
            found[(ref["apiVersion"], ref["kind"])] = xp.Composition(
                doc["metadata"]["name"],
                steps[0].get("input") if steps else None,
                doc["spec"].get("writeConnectionSecretsToNamespace"),
            )
    return found


@dataclass
class Outcome:
    """What the last call for one XR produced, for reports and tests."""

    results: list[dict[str, str]] = field(default_factory=list)
    ttl: float | None = None
    events: list[str] = field(default_factory=list)


class OfflineCluster:
    """Claims, Secrets and composed resources in memory; the function over gRPC; Jobs run locally."""

    def __init__(
        self,
        client: FunctionClient,
        compositions: dict[CompositeType, xp.Composition] | None = None,
        input_overrides: Obj | None = None,
        namespace: str = "default",
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        plan_only: bool = False,
        volumes: Path | None = None,
    ) -> None:
        self.client = client
        # Where PersistentVolumeClaims' volumes live: `<volumes>/<namespace>/<claim>` (--volumes; None: a Pod that
        # mounts a claim cannot start).
        self.volumes = volumes
        self.sleep = sleep  # how the loop waits for a retry (tests count the waits)
        self.clock = clock
        self.compositions = compositions or {}
        self.input_overrides = input_overrides or {}
        self.namespace = namespace
        self.store = ObjectStore()
        # The last call's outcome per XR, by (namespace, name): namespaced XRs of one name may live in several.
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.jobs_run = 0
        self.settled = False
        self.next_retry: float | None = None  # seconds to a retry that was not waited for (after reconcile)
        self.pod_logs: dict[str, str] = {}  # Pod name -> its logs, for `kubectl logs`-style inspection
        self.pod_events: dict[str, str] = {}  # Pod name -> its last warning, as `kubectl describe pod` shows
        # --plan: workers plan instead of applying; each claim's planned statements ("Kind/name" -> lines, or
        # the worker's error when its run reached no plan).
        self.plan_only = plan_only
        self.plans: dict[str, list[str] | str] = {}
        self._planned: set[str] = set()  # Jobs run in this --plan invocation

    # --- what users do -------------------------------------------------------------------------------------

    def apply(self, manifests: Iterable[Obj]) -> None:
        """kubectl apply: claims and Secrets (status of existing claims is kept)."""
        for manifest in manifests:
            obj = copy.deepcopy(manifest)
            meta = obj.setdefault("metadata", {})
            if (obj.get("apiVersion"), obj.get("kind")) in xp.CLUSTER_SCOPED:
                meta.pop("namespace", None)  # as the API server: a cluster-scoped object has no namespace
                meta["namespace"] = ""
            else:
                meta.setdefault("namespace", self.namespace)
            existing = self.store.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])
            if existing is not None and "status" in existing:
                obj["status"] = existing["status"]
            if existing is not None:
                obj["metadata"]["uid"] = existing["metadata"]["uid"]
                # Fields Crossplane wrote, which an apply that does not name them keeps.
                for owned in ("resourceRef", "crossplane"):
                    if owned in existing.get("spec", {}) and owned not in obj.get("spec", {}):
                        obj.setdefault("spec", {})[owned] = existing["spec"][owned]
            self.store.put(xp.normalise_secret(obj))

    def delete(
        self, kind: str, name: str, namespace: str | None = None, api_version: str | None = None
    ) -> None:
        """kubectl delete of a claim, namespaced XR or Secret; a claim takes its XR and composed resources with
        it, an XR its composed resources (garbage collection), and the function is not called, as in Crossplane.
        Without `api_version`, a claim of that kind and name, else the namespaced XR."""
        namespace = namespace or self.namespace
        if api_version is not None:
            apis = [api_version]
        else:
            apis = ["v1"] if kind == "Secret" else [xp.API_VERSION, xp.NAMESPACED_API_VERSION]
        found = [o for api in apis if (o := self.store.get(api, kind, name, namespace)) is not None]
        if not found:
            raise KeyError(f"{kind} {namespace}/{name} not found")
        obj = found[0]
        gone = {obj["metadata"]["uid"]}
        if xp.is_claim(obj) or xp.is_namespaced_xr(obj):
            xr = self.composite(obj)
            if xr is not None:
                for composed in self._composed(xr).values():
                    self._delete_composed(composed)
                self.store.delete(xr)
                gone.add(xr["metadata"]["uid"])
        self.store.delete(obj)
        # Garbage collection of what they owned besides (the connection Secrets).
        for other in self.store.all():
            refs = other.get("metadata", {}).get("ownerReferences") or []
            if refs and all(ref.get("uid") in gone for ref in refs):
                self.store.delete(other)

    def reconcile(self, max_rounds: int = MAX_ROUNDS, max_wait: float = 0.0, deadline: float = 600) -> int:
        """Run rounds until one changes nothing. Then, if the function scheduled a retry (a claim failed
        transiently and its back-off ends within `max_wait` seconds), wait for it and go on; a round after such
        a wait that changes nothing settles too. Returns the number of rounds. `settled` says whether the last
        round changed nothing (False: stopped after `max_rounds` while things still changed); `next_retry`, the
        seconds to a retry left for later (beyond `max_wait` or `deadline`), or None.

        A change is a created or deleted object or an update that differs in more than its resourceVersion (the
        store keeps identical writes as no-ops). Nothing here writes a clock reading unless something happened
        (a Pod ran, a Job finished; a waiting Pod keeps its Job's startTime), so an idle round writes nothing.

        Only retries are waited for. The function's other TTLs poll for what Crossplane does not watch: a
        referenced claim (`ttl.waitingSeconds`) and a Pod (`ttl.runningSeconds`); here every round calls every
        claim and runs each Job to its end, so what they poll for can only change when you apply something, and
        waiting for them would change nothing (resync epochs are left for later too)."""
        started = self.clock()
        self.settled = False
        waited = False
        for rounds in range(1, max_rounds + 1):
            before = self.store.changes
            self._round()
            if self.store.changes != before:
                waited = False
                continue
            self.next_retry = self._next_retry()
            if (
                waited
                or self.next_retry is None
                or self.next_retry > max_wait
                or self.clock() - started + self.next_retry > deadline
                or rounds == max_rounds
            ):
                self.settled = True
                return rounds
            self.sleep(self.next_retry)
            waited = True
        self.next_retry = None
        return max_rounds

    # --- what users look at --------------------------------------------------------------------------------

    def claim(
        self, kind: str, name: str, namespace: str | None = None, api_version: str = xp.API_VERSION
    ) -> Obj:
        """A claim (or, with `api_version=xp.NAMESPACED_API_VERSION`, a namespaced XR) as it is now."""
        obj = self.store.get(api_version, kind, name, namespace or self.namespace)
        if obj is None:
            raise KeyError(f"{kind} {name} not found")
        return obj

    def claims(self) -> list[Obj]:
        """What users applied and look at: claims and namespaced XRs, in dependency order."""
        found = [o for o in self.store.all() if xp.is_claim(o) or xp.is_namespaced_xr(o)]
        return sorted(
            found,
            key=lambda o: (
                ORDER[o["kind"]],
                o["metadata"]["namespace"],
                o["metadata"]["name"],
                o["apiVersion"],
            ),
        )

    def composite(self, claim: Obj) -> Obj | None:
        """The XR behind a claim; a namespaced XR is its own."""
        if xp.is_namespaced_xr(claim):
            return self.store.get(
                claim["apiVersion"], claim["kind"], claim["metadata"]["name"], claim["metadata"]["namespace"]
            )
        labels = {
            "crossplane.io/claim-name": claim["metadata"]["name"],
            "crossplane.io/claim-namespace": claim["metadata"]["namespace"],
        }
        found = self.store.select(xp.API_VERSION, "X" + claim["kind"], labels=labels)
        return found[0] if found else None

    def composed_of(self, claim: Obj) -> dict[str, Obj]:
        xr = self.composite(claim)
        return self._composed(xr) if xr else {}

    def secret_data(self, name: str, namespace: str | None = None) -> dict[str, str]:
        secret = self.store.get("v1", "Secret", name, namespace or self.namespace)
        if secret is None:
            raise KeyError(f"Secret {name} not found")
        return {k: secret_value(secret, k) or "" for k in secret.get("data", {})}

    def run_cronjob(self, name: str, job_name: str, namespace: str = "default") -> Obj:
        """Start one run of a CronJob now, as `kubectl create job --from=cronjob/<name> <job_name>` does (dbops-local
        runs no CronJob on its schedule): a Job from its `jobTemplate`, which the next round (`reconcile`) runs. A
        CronJob's own runs are named `<name>-<scheduled time in minutes>`; pass such a name to stand in for one."""
        cronjob = self.store.get("batch/v1", "CronJob", name, namespace)
        if cronjob is None:
            raise KeyError(f"CronJob {namespace}/{name} not found")
        template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
        meta = template.get("metadata", {})
        job: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name,
                "namespace": namespace,
                "labels": meta.get("labels", {}),
                "annotations": {**meta.get("annotations", {}), "cronjob.kubernetes.io/instantiate": "manual"},
            },
            "spec": template["spec"],
        }
        self.store.put(job)
        return job

    def pods_of(self, job: Obj) -> list[Obj]:
        return self.store.select(
            "v1",
            "Pod",
            job["metadata"].get("namespace", ""),
            labels={"batch.kubernetes.io/job-name": job["metadata"]["name"]},
        )

    # --- one round -----------------------------------------------------------------------------------------

    def _round(self) -> None:
        for claim in self.claims():
            self._sync(claim)
        self._run_jobs()

    def _sync(self, claim: Obj) -> None:
        namespaced = xp.is_namespaced_xr(claim)
        xr_type = (
            (claim["apiVersion"], claim["kind"]) if namespaced else (xp.API_VERSION, "X" + claim["kind"])
        )
        xr_kind = xr_type[1]
        composition = self.compositions.get(xr_type) or xp.Composition(f"{xr_kind.lower()}-dbops", None)
        fn_input = _merge(copy.deepcopy(composition.input), self.input_overrides)
        if namespaced:
            self._sync_composite(self.store.put(xp.with_composition(claim, composition.name)), fn_input)
            return
        xr = self.store.put(xp.composite_for(claim, self.composite(claim), composition.name))
        if composition.connection_namespace and "writeConnectionSecretToRef" not in xr["spec"]:
            # Crossplane's configurator: a legacy XR writes its connection details to <namespace>/<its uid>.
            xr = copy.deepcopy(xr)
            ref = {"name": xr["metadata"]["uid"], "namespace": composition.connection_namespace}
            xr["spec"]["writeConnectionSecretToRef"] = ref
            xr = self.store.put(xr)
        if claim.get("spec", {}).get("resourceRef") is None:
            claim = copy.deepcopy(claim)
            claim.setdefault("spec", {})["resourceRef"] = {
                "apiVersion": xp.API_VERSION,
                "kind": xr_kind,
                "name": xr["metadata"]["name"],
            }
            claim = self.store.put(claim)
        self._sync_composite(xr, fn_input, claim)

    def _sync_composite(self, xr: Obj, fn_input: Obj | None, claim: Obj | None = None) -> None:
        """Call the function for an XR and apply what it returns; status goes to the XR and its claim if any."""
        observed = self._composed(xr)
        try:
            rsp = self._call(xr, observed, fn_input, self._connection_details(xr))
        except UnsettledRequirements as exc:
            # Crossplane's reconcile fails: nothing is applied and the XR and claim say why (Synced False).
            self.outcomes[_xr_key(xr)] = Outcome(results=[], ttl=None)
            self._mark_unsynced(xr, claim, str(exc))
            return
        outcome = Outcome(results=xp.results(rsp), ttl=xp.ttl_seconds(rsp))
        self.outcomes[_xr_key(xr)] = outcome
        fatal = next((r["message"] for r in outcome.results if r["severity"] == "Fatal"), None)
        desired = {} if fatal else xp.desired_resources(rsp)
        if not fatal:
            self._apply_desired(xr, observed, desired, outcome)
            self._publish_connection(xr, rsp, outcome)
        status = (
            copy.deepcopy(xr.get("status", {}))
            if fatal
            else resource.struct_to_dict(rsp.desired.composite.resource).get("status", {})
        )
        if rsp.desired.composite.ready != 0:
            ready = rsp.desired.composite.ready == 1
        else:
            ready = all(r for _, r in desired.values())
        xr_conds, claim_conds = xp.conditions(rsp, ready, fatal)
        xr = copy.deepcopy(xr)
        xr["status"] = {
            **{k: v for k, v in status.items() if k != "conditions"},
            "conditions": xp.merge_conditions(xr.get("status", {}).get("conditions", []), xr_conds),
        }
        self.store.put(xr)
        if claim is None:
            return
        claim = copy.deepcopy(
            self.claim(claim["kind"], claim["metadata"]["name"], claim["metadata"]["namespace"])
        )
        claim["status"] = {
            **{k: v for k, v in status.items() if k != "conditions"},
            "conditions": xp.merge_conditions(claim.get("status", {}).get("conditions", []), claim_conds),
        }
        self.store.put(claim)
        self._propagate_connection(claim, xr, outcome)

    def _call(
        self, xr: Obj, observed: dict[str, Obj], fn_input: Obj | None, connection: dict[str, bytes]
    ) -> Any:
        """As Crossplane: call, and while the requirements differ from the previous call's, fetch them and call
        again, at most MAX_REQUIREMENT_ROUNDS times more; requirements that never settle fail the reconcile."""
        required: dict[str, list[Obj]] = {}
        previous: dict[str, dict[str, Any]] | None = None
        for _ in range(MAX_REQUIREMENT_ROUNDS + 1):
            req = xp.request(xr["metadata"]["name"], xr, observed, fn_input, required, connection=connection)
            rsp = self.client.run(req)
            selectors = xp.selectors(rsp)
            if selectors == previous or any(r["severity"] == "Fatal" for r in xp.results(rsp)):
                return rsp
            previous = selectors
            required = {name: self._resolve(sel) for name, sel in selectors.items()}
        raise UnsettledRequirements(
            f"requirements didn't stabilize after the maximum number of iterations ({MAX_REQUIREMENT_ROUNDS})"
        )

    def _mark_unsynced(self, xr: Obj, claim: Obj | None, message: str) -> None:
        synced = {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": message}
        objects = [xr]
        if claim is not None:
            objects.append(
                self.claim(claim["kind"], claim["metadata"]["name"], claim["metadata"]["namespace"])
            )
        for original in objects:
            obj = copy.deepcopy(original)
            status = obj.setdefault("status", {})
            status["conditions"] = xp.merge_conditions(status.get("conditions", []), [synced])
            self.store.put(obj)

    def _resolve(self, sel: dict[str, Any]) -> list[Obj]:
        if "name" in sel:
            obj = self.store.get(sel["apiVersion"], sel["kind"], sel["name"], sel.get("namespace", ""))
            return [obj] if obj else []
        return self.store.select(
            sel["apiVersion"], sel["kind"], sel.get("namespace"), labels=sel.get("labels")
        )

    def _apply_desired(
        self, xr: Obj, observed: dict[str, Obj], desired: dict[str, tuple[Obj, bool]], outcome: Outcome
    ) -> None:
        for name, (wanted, _) in desired.items():
            obj = xp.normalise_secret(xp.composed_metadata(wanted, xr, name))
            meta = obj["metadata"]
            # As Crossplane's function composer: an observed resource keeps its namespace and name; a namespaced
            # XR's resources are composed in its own namespace, whatever the function says (a Warning event).
            if name in observed:
                meta["namespace"] = observed[name]["metadata"].get("namespace", "")
                meta["name"] = observed[name]["metadata"]["name"]
            xr_namespace = xr["metadata"].get("namespace")
            if xr_namespace and meta.get("namespace") != xr_namespace:
                if meta.get("namespace"):
                    outcome.events.append(
                        f"cannot create composed resource {name!r} in namespace {meta['namespace']!r}, using XR "
                        f"namespace {xr_namespace!r} instead"
                    )
                meta["namespace"] = xr_namespace
            if not meta.get("namespace"):
                outcome.events.append(
                    f"cannot apply {name}: a namespaced {obj.get('kind')} needs a namespace"
                )
                continue
            existing = self.store.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])
            refused = xp.apply_refusal(existing, obj)
            if refused:
                outcome.events.append(f"cannot apply composed resource {name}: {refused}")
                continue
            if existing is not None and xp.controller_uid(existing) is None:
                # Server-side apply with force takes over an object nobody controls, as Crossplane's does.
                obj = xp.force_applied(existing, obj)
            if (
                existing is not None
                and obj["kind"] == "Job"
                and existing["spec"].get("template") != obj["spec"].get("template")
            ):
                outcome.events.append(f"cannot apply {name}: Job spec.template is immutable")
                continue
            if existing is not None and "status" in existing and "status" not in obj:
                obj["status"] = existing["status"]
            self.store.put(obj)
        for name, old in observed.items():
            if name not in desired:
                self._delete_composed(old)

    def _delete_composed(self, obj: Obj) -> None:
        if obj.get("kind") == "Job":
            for pod in self.pods_of(obj):
                self.store.delete(pod)
        self.store.delete(obj)

    def _connection_secret_of(self, xr: Obj) -> Obj | None:
        ref = xr.get("spec", {}).get("writeConnectionSecretToRef")
        return self.store.get("v1", "Secret", ref["name"], ref["namespace"]) if ref else None

    def _connection_details(self, xr: Obj) -> dict[str, bytes]:
        """The XR's connection details as Crossplane reads them for the request: its connection Secret's data."""
        secret = self._connection_secret_of(xr)
        if secret is None or xp.controller_uid(secret) != xr["metadata"]["uid"]:
            return {}
        return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}

    def _publish_connection(self, xr: Obj, rsp: Any, outcome: Outcome) -> None:
        """Crossplane publishes a legacy XR's connection details to its writeConnectionSecretToRef: creating the
        Secret (empty when there are none) or merge-patching it, so keys the function leaves out stay."""
        ref = xr["spec"].get("writeConnectionSecretToRef")
        if not ref:
            return
        details = {
            k: base64.b64encode(v).decode() for k, v in rsp.desired.composite.connection_details.items()
        }
        existing = self._connection_secret_of(xr)
        refused = xp.connection_refusal(existing, xr["metadata"]["uid"])
        if refused:
            outcome.events.append(f"cannot publish connection details: {refused}")
            return
        data = {**(existing or {}).get("data", {}), **details}
        self.store.put(xp.connection_secret(ref["name"], ref["namespace"], xr, data))

    def _propagate_connection(self, claim: Obj, xr: Obj, outcome: Outcome) -> None:
        """The claim controller copies the XR's connection Secret to the claim's writeConnectionSecretToRef, in the
        claim's namespace, when the claim asks and the XR has one it controls."""
        ref = claim.get("spec", {}).get("writeConnectionSecretToRef")
        source = self._connection_secret_of(xr)
        if not ref or source is None or xp.controller_uid(source) != xr["metadata"]["uid"]:
            return
        namespace = claim["metadata"]["namespace"]
        existing = self.store.get("v1", "Secret", ref["name"], namespace)
        refused = xp.connection_refusal(existing, claim["metadata"]["uid"])
        if refused:
            outcome.events.append(f"cannot propagate connection details from composite resource: {refused}")
            return
        self.store.put(xp.connection_secret(ref["name"], namespace, claim, dict(source.get("data", {}))))

    def _composed(self, xr: Obj) -> dict[str, Obj]:
        out: dict[str, Obj] = {}
        for obj in self.store.all():
            meta = obj.get("metadata", {})
            if meta.get("labels", {}).get("crossplane.io/composite") != xr["metadata"]["name"]:
                continue
            name = meta.get("annotations", {}).get(xp.COMPOSITION_RESOURCE_NAME)
            # Crossplane ignores a resource its XR does not control ("pretend it doesn't exist").
            if xp.controller_uid(obj) != xr["metadata"].get("uid"):
                continue
            if name and obj.get("kind") != "Pod":
                out[name] = obj
        return out

    def _run_jobs(self) -> None:
        for job in self.store.select("batch/v1", "Job"):
            conditions = {
                c["type"] for c in job.get("status", {}).get("conditions", []) if c["status"] == "True"
            }
            # --plan runs every Job once, finished ones too (a Job from --state): the plan is of the server now.
            replan = self.plan_only and job["metadata"]["name"] not in self._planned
            if conditions & {"Complete", "Failed"} and not replan:
                continue
            if job.get("spec", {}).get("suspend"):
                continue
            # A Job whose Pod waits for a Secret is tried again every round; it keeps its startTime.
            runnable = plan_mode.as_plan(job) if self.plan_only else job
            run = run_job(
                runnable,
                lambda ns, name: self.store.get("v1", "Secret", name, ns),
                lookup_volume=self._volume,
            )
            if self.plan_only and run.ran:
                self._planned.add(job["metadata"]["name"])
            if self.plan_only and run.ran and plan_mode.applies(job):
                self.plans[plan_mode.claim_of(job)] = plan_mode.planned(list(run.logs.values())[-1])
            self.jobs_run += run.ran
            self.pod_logs.update(run.logs)
            self.pod_events.update(run.events)
            if not run.status.get("active"):
                # A Job that ended without running a Pod (its deadline passed while the Pod waited) leaves no
                # waiting Pod behind: the Job controller deletes the active ones.
                for pod in self.pods_of(job):
                    if pod.get("status", {}).get("phase") == "Pending":
                        self.store.delete(pod)
            for pod in run.pods:
                self.store.put(pod)
            updated = copy.deepcopy(job)
            updated["status"] = run.status
            self.store.put(updated)

    def _volume(self, namespace: str, claim: str) -> Path:
        """The directory of a PersistentVolumeClaim applied here (kind PersistentVolumeClaim, `kubectl apply`), as
        the kubelet would mount its volume; a claim not applied keeps the Pod waiting, as an unbound claim does."""
        if self.store.get("v1", "PersistentVolumeClaim", claim, namespace) is None:
            raise PodCannotStart("ContainerCreating", f'persistentvolumeclaim "{claim}" not found')
        if self.volumes is None:
            raise PodCannotStart(
                "ContainerCreating",
                f'persistentvolumeclaim "{claim}": dbops-local has no directory for volumes (--volumes DIR)',
            )
        directory = self.volumes / namespace / claim
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory

    def _next_retry(self) -> float | None:
        """Seconds until the earliest retry the function scheduled: its TTL for an XR in a back-off after a
        transient failure (`Provisioned` False, reason `TransientFailure`, as docs/function.md has it)."""
        waits = []
        xrs = [*self.store.select(xp.API_VERSION), *self.store.select(xp.NAMESPACED_API_VERSION)]
        for xr in xrs:
            outcome = self.outcomes.get(_xr_key(xr))
            if xp.is_claim(xr) or outcome is None or outcome.ttl is None:
                continue
            if any(
                c.get("type") == "Provisioned" and c.get("reason") == "TransientFailure"
                for c in xr.get("status", {}).get("conditions", [])
            ):
                waits.append(outcome.ttl)
        return min(waits) if waits else None


def _xr_key(xr: Obj) -> tuple[str, str]:
    return xr["metadata"].get("namespace", ""), xr["metadata"]["name"]


def _merge(base: Obj | None, overrides: Obj) -> Obj | None:
    if not overrides:
        return base
    out: Obj = (
        copy.deepcopy(base) if base else {"apiVersion": "dbops.fn.dbprovision.io/v1alpha1", "kind": "Input"}
    )
    for key, value in overrides.items():
        current = out.get(key)
        out[key] = _merge(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out
