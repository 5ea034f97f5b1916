"""What the opt-in Pod reads (`status.readPods: true`) cost Crossplane: its memory, and CPU, with idle Pods elsewhere.

    tools/cluster/netns.sh .venv/bin/python bench/pod_cache_cost.py [--pods 0,500,2000] [--settle 30]

Crossplane caches required resources cluster-wide: once the function asks for the Pods of a Job, Crossplane core
lists and watches every Pod in the cluster. For each setting (`readPods` false, as shipped; true, with
deploy/rbac-pods.yaml) this starts a real control plane (tools/cluster: etcd, kube-apiserver, the Job controller,
Crossplane core v2 with dbops installed as docs/packages.md says), applies one DatabaseInstance claim (its admin
Secret; the host is a closed port, so each Job fails transient and the function keeps calling), waits until its Job
exists, then creates idle Pods in another namespace up to each count and reports Crossplane core's resident memory
(VmRSS from /proc/<pid>/status, the median of samples over the settle time) and the CPU time it used meanwhile.
The idle Pods name a node that does not exist, so nothing runs them (the harness's process node only runs Pods
bound to itself, and no Pod garbage collector runs) and they stay Pending: the size of a small Deployment's Pod
without the status a kubelet adds, so a real cluster's Pods weigh more than these.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.cluster.controlplane import READ_PODS, ControlPlane, tools_dir
from tools.cluster.kube import Kube, wait

GROUP = "dbops.dbprovision.io/v1alpha1"
IDLE_NAMESPACE = "idle"
CLAIMS_NAMESPACE = "bench"
NOWHERE = "no-such-node"  # nothing binds or runs a Pod bound here


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def namespace(kube: Kube, name: str) -> None:
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait(lambda: kube.get("v1", "ServiceAccount", "default", name), 60, f"ServiceAccount {name}/default")


def idle_pod(i: int) -> dict[str, Any]:
    app = f"app-{i // 10}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"idle-{i:05d}",
            "labels": {"app.kubernetes.io/name": app, "pod-template-hash": f"{i // 10:08x}"},
        },
        "spec": {
            "nodeName": NOWHERE,
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example.com/team/{app}:1.2.3",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "SERVICE_NAME", "value": app},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                }
            ],
        },
    }


def instance_claim() -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "admin"},
        "stringData": {"username": "postgres", "password": "unused"},
    }
    claim = {
        "apiVersion": GROUP,
        "kind": "DatabaseInstance",
        "metadata": {"name": "server"},
        "spec": {
            "engine": "postgres",
            # A closed port: every Job fails transient, and the function keeps calling.
            "connection": {"host": "127.0.0.1", "port": 1, "secretRef": {"name": "admin"}},
        },
    }
    return [secret, claim]


def sample(pid: int, settle: float) -> tuple[int, float]:
    """The median VmRSS (KiB) over `settle` seconds, and the CPU seconds used in them."""
    cpu0, samples = cpu_seconds(pid), []
    end = time.monotonic() + settle
    while time.monotonic() < end:
        samples.append(rss_kib(pid))
        time.sleep(2)
    return int(statistics.median(samples)), cpu_seconds(pid) - cpu0


def run(read_pods: bool, counts: list[int], settle: float) -> list[tuple[int, int, float, float]]:
    """(pods, VmRSS KiB, CPU seconds over the settle time, seconds to create them) per count."""
    tools = tools_dir()
    out = []
    with ControlPlane.start(tools, step_input=READ_PODS if read_pods else None) as cp:
        cp.install(pod_rule=read_pods)
        kube = cp.admin
        [core] = [c for c in cp.procs.children if c.name == "crossplane"]
        pid = core.proc.pid
        namespace(kube, CLAIMS_NAMESPACE)
        namespace(kube, IDLE_NAMESPACE)
        kube.apply_all(instance_claim(), CLAIMS_NAMESPACE)
        wait(
            lambda: (
                (kube.get(GROUP, "DatabaseInstance", "server", CLAIMS_NAMESPACE) or {})
                .get("status", {})
                .get("job")
            ),
            240,
            "the instance's first Job",
        )
        created = 0
        for count in counts:
            t0 = time.monotonic()
            while created < count:
                kube.create(idle_pod(created), IDLE_NAMESPACE)
                created += 1
            took = time.monotonic() - t0
            rss, cpu = sample(pid, settle)
            out.append((count, rss, cpu, took))
            print(
                f"readPods={str(read_pods).lower():<5} pods={count:>5}  crossplane VmRSS {rss / 1024:7.1f} MiB  "
                f"CPU {cpu:5.2f} s in {settle:.0f} s  (created in {took:.0f} s)",
                flush=True,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pods", default="0,500,2000", help="idle Pod counts, ascending (default 0,500,2000)"
    )
    parser.add_argument("--settle", type=float, default=30, help="seconds sampled at each count (default 30)")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.pods.split(","))
    print(
        f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    results = {flag: run(flag, counts, args.settle) for flag in (False, True)}
    print("\n| idle Pods | readPods false: VmRSS MiB | readPods true: VmRSS MiB | CPU s (false / true) |")
    print("| --- | --- | --- | --- |")
    for (count, rss_f, cpu_f, _), (_, rss_t, cpu_t, _) in zip(results[False], results[True], strict=True):
        print(f"| {count} | {rss_f / 1024:.1f} | {rss_t / 1024:.1f} | {cpu_f:.2f} / {cpu_t:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
