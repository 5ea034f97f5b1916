"""The process node: the kubelet's part for the Jobs' Pods, as local processes.

It registers a Node, binds every unscheduled Pod to it, and runs the Pod's first container as a local process with
exactly the Pod's environment (literal values, `secretKeyRef`s resolved through the API server, Secret volumes
written to a private directory, paths translated; `dbops_local.jobs.pod_process`, shared with dbops-local).
It writes the Pod's status as a kubelet would (Pending with the waiting reason while a Secret is missing, Running,
then Succeeded/Failed with the container's exit code and termination message) and, for Pods being deleted, kills
the process and removes the Pod. Everything else (Job retries, podFailurePolicy, deadlines, garbage collection) is
the real kube-controller-manager's.

Logs: `kubectl logs` cannot reach this node; each container's output is kept in `<workdir>/logs/<ns>_<pod>.log`
only while its Pod exists, as a kubelet keeps a deleted Pod's logs no longer.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from dbops_local.jobs import PodCannotStart, pod_process
from tools.cluster.kube import ApiError, Kube, Obj

NODE_NAME = "dbops-process-node"
POLL_SECONDS = 0.2
RETRY_START_SECONDS = 2.0  # how often a Pod waiting for a Secret is tried again (the kubelet's sync loop)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProcessNode:
    def __init__(self, kube: Kube, workdir: Path, name: str = NODE_NAME) -> None:
        self.kube = kube
        self.name = name
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[str, subprocess.Popen[bytes]] = {}  # pod uid -> process
        self._handled: set[str] = set()  # pod uids with a runner thread
        self._lock = threading.Lock()
        self.errors: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name}},
            }
        )
        status = {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "process node"}
            ],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        }
        self.kube.patch("v1", "Node", self.name, {"status": status}, sub="status")
        self._thread = threading.Thread(target=self._loop, name="process-node", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            procs = list(self._running.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)

    # --- the sync loop ------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                pods = self.kube.list("v1", "Pod")
            except Exception as exc:  # the API server going away at teardown, or a hiccup
                self.errors.append(f"list pods: {exc}")
                continue
            for pod in pods:
                try:
                    self._sync(pod)
                except ApiError as exc:
                    if exc.status not in (404, 409):
                        self.errors.append(f"{pod['metadata']['name']}: {exc}")

    def _sync(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid, namespace, name = meta["uid"], meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            self._kill(uid)
            if spec.get("nodeName") in (None, self.name):
                self.kube.delete(
                    "v1", "Pod", name, namespace, gracePeriodSeconds=0, preconditions={"uid": uid}
                )
                (self.logs / f"{namespace}_{name}.log").unlink(missing_ok=True)
            return
        if not spec.get("nodeName"):
            self.kube.post(
                f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "namespace": namespace, "uid": uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
                },
            )
        elif spec["nodeName"] != self.name:
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        with self._lock:
            if uid in self._handled:
                return
            self._handled.add(uid)
        threading.Thread(target=self._run, args=(pod,), name=f"pod-{name}", daemon=True).start()

    def _kill(self, uid: str) -> None:
        with self._lock:
            proc = self._running.get(uid)
        if proc is not None and proc.poll() is None:
            proc.kill()

    # --- one Pod ------------------------------------------------------------------------------------------------

    def _lookup_secret(self, namespace: str, name: str) -> Obj | None:
        return self.kube.get("v1", "Secret", name, namespace)

    def _run(self, pod: Obj) -> None:
        meta = pod["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        tmp = Path(tempfile.mkdtemp(prefix="pod-", dir=self.workdir))
        try:
            process = None
            while process is None and not self._stop.is_set():
                try:
                    process = pod_process(pod["spec"], namespace, self._lookup_secret, tmp)
                except PodCannotStart as exc:
                    self._status(pod, "Pending", {"waiting": _waiting(exc)})
                    if exc.reason == "ContainerCreating":
                        self._event(pod, "FailedMount", exc.message)
                    if self._stop.wait(RETRY_START_SECONDS) or self._gone(namespace, name, uid):
                        return
            if process is None:
                return
            started = _now()
            self._status(pod, "Running", {"running": {"startedAt": started}}, start_time=started)
            log_path = self.logs / f"{namespace}_{name}.log"
            with open(log_path, "wb") as log:
                try:
                    proc = subprocess.Popen(
                        process.command, env=process.env, stdout=log, stderr=subprocess.STDOUT
                    )
                except OSError as exc:
                    log.write(f"cannot start container: {exc}\n".encode())
                    proc = None
                if proc is not None:
                    with self._lock:
                        self._running[uid] = proc
                    code = proc.wait()
                    with self._lock:
                        self._running.pop(uid, None)
                else:
                    code = 128
            # A killed process (negative return code) exits 128 + signal, as a container's would.
            code = 128 - code if code < 0 else code
            logs = log_path.read_text(errors="replace")
            terminated: dict[str, Any] = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": _now(),
            }
            message = process.termination_message(code, logs)
            if message:
                terminated["message"] = message
            with contextlib.suppress(ApiError):
                self._status(pod, "Succeeded" if code == 0 else "Failed", {"terminated": terminated})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _gone(self, namespace: str, name: str, uid: str) -> bool:
        current = self.kube.get("v1", "Pod", name, namespace)
        return (
            current is None
            or current["metadata"]["uid"] != uid
            or bool(current["metadata"].get("deletionTimestamp"))
        )

    def _status(self, pod: Obj, phase: str, state: Obj, start_time: str | None = None) -> None:
        container = pod["spec"]["containers"][0]
        status: Obj = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "started": phase == "Running",
                    "state": state,
                }
            ],
        }
        if start_time:
            status["startTime"] = start_time
        meta = pod["metadata"]
        self.kube.patch("v1", "Pod", meta["name"], {"status": status}, meta["namespace"], sub="status")

    def _event(self, pod: Obj, reason: str, message: str) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.kube.post(
                f"/api/v1/namespaces/{meta['namespace']}/events",
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                    "involvedObject": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "uid": meta["uid"],
                    },
                    "reason": reason,
                    "message": message,
                    "type": "Warning",
                    "source": {"component": "kubelet", "host": self.name},
                    "firstTimestamp": _now(),
                    "lastTimestamp": _now(),
                    "count": 1,
                },
            )


def _waiting(exc: PodCannotStart) -> Obj:
    state: Obj = {"reason": exc.reason}
    if exc.reason != "ContainerCreating":
        state["message"] = exc.message
    return state
