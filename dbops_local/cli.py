"""`dbops-local`: run claims against real database servers without a cluster. See docs/offline.md."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from dbops_local import migrate_namespaced, migrate_operator
from dbops_local import plan as plan_mode
from dbops_local.crossplane import Composition
from dbops_local.loop import (
    DEFAULT_MAX_WAIT,
    CompositeType,
    OfflineCluster,
    load_compositions,
    load_manifests,
)
from dbops_local.masking import MASK, masker, secret_lines
from dbops_local.runtime import FunctionClient, LocalFunction
from dbops_local.store import Obj

__all__ = ["MASK", "main", "report"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate-from-operator"]:
        return migrate_operator.main(argv[1:])
    if argv[:1] == ["migrate-to-namespaced"]:
        return migrate_namespaced.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="dbops-local",
        description="Apply dbops claims or namespaced XRs and Secrets, call the function as Crossplane would, run "
        "the Jobs' worker commands locally against the real servers, and print each one's status. "
        "`dbops-local migrate-from-operator -f FILE` converts db-provision-operator YAML to dbops claims "
        "(docs/migrating.md); `dbops-local migrate-to-namespaced -f FILE` converts dbops claims to namespaced XRs.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        help="YAML with claims (dbops.dbprovision.io) or namespaced XRs (ns.dbops.dbprovision.io) and Secrets",
    )
    parser.add_argument(
        "--state", help="JSON file keeping the objects between runs (holds Secrets: mode 0600)"
    )
    parser.add_argument(
        "--delete",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="delete a claim, namespaced XR or Secret before reconciling, e.g. DatabaseUser/myapp-user (a claim "
        "of that name first)",
    )
    parser.add_argument(
        "--compositions",
        action="append",
        help="directory with Compositions, repeatable (default: apis and apis-namespaced)",
    )
    parser.add_argument("--input", help="YAML merged into the function's Input (e.g. retry settings)")
    parser.add_argument("--function-address", help="call a function already serving here (--insecure)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=DEFAULT_MAX_WAIT,
        help="longest wait for a retry the function schedules after a transient failure "
        f"(seconds, default {DEFAULT_MAX_WAIT:g})",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="write nothing: each Job's worker plans instead of applying, and the statements each claim would "
        "send are printed (exit 0: nothing to change, 3: changes planned, 1: a claim failed); --state is read, "
        "never written",
    )
    parser.add_argument(
        "--volumes",
        metavar="DIR",
        help="directory holding PersistentVolumeClaims' volumes, <DIR>/<namespace>/<claim> (kept between runs): "
        "a claim applied with -f (kind PersistentVolumeClaim) is mounted from there, e.g. for backups to a pvc",
    )
    parser.add_argument("--show-secrets", action="store_true", help="print Secret values unmasked")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("-o", "--output", choices=("table", "yaml"), default="table")
    args = parser.parse_args(argv)
    if args.plan and args.delete:
        parser.error("--plan shows what applying the claims would write; it has no plan for --delete")

    directories = args.compositions or ["apis", "apis-namespaced"]
    compositions = load_compositions(*(d for d in directories if Path(d).is_dir()))
    overrides = yaml.safe_load(Path(args.input).read_text()) if args.input else None
    manifests = load_manifests(args.filename)
    if args.function_address:
        client = FunctionClient(args.function_address)
        client.wait_ready()
        return _run(client, compositions, overrides, manifests, args)
    with LocalFunction() as client:
        return _run(client, compositions, overrides, manifests, args)


def _run(
    client: FunctionClient,
    compositions: dict[CompositeType, Composition],
    overrides: Obj | None,
    manifests: list[Obj],
    args: argparse.Namespace,
) -> int:
    cluster = OfflineCluster(
        client,
        compositions,
        overrides,
        namespace=args.namespace,
        plan_only=args.plan,
        volumes=Path(args.volumes).resolve() if args.volumes else None,
    )
    if args.state and os.path.exists(args.state):
        cluster.store.load(json.loads(Path(args.state).read_text()))
    cluster.apply(manifests)
    for item in args.delete:
        kind, _, name = item.partition("/")
        cluster.delete(kind, name)
    try:
        rounds = cluster.reconcile(max_wait=args.max_wait)
    except plan_mode.PlanRefused as exc:
        print(f"dbops-local: {exc}", file=sys.stderr)
        return 1
    if args.state and not args.plan:
        fd = os.open(args.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(cluster.store.dump(), handle)
    report(cluster, args.output, args.show_secrets, rounds)
    failed = [c for c in cluster.claims() if c.get("status", {}).get("phase") == "Failed"]
    if args.plan:
        changes = print_plans(cluster, masker(cluster.store) if not args.show_secrets else _shown)
        return 1 if failed else PLANNED_CHANGES if changes else 0
    return 1 if failed else 0


PLANNED_CHANGES = 3  # --plan: the exit code when some claim would write (1 stays "a claim failed")


def print_plans(cluster: OfflineCluster, hide: Any, out: Any = sys.stdout) -> bool:
    """Each claim's planned statements; True when any claim would write something."""
    print("\nPlan (nothing was written):", file=out)
    changes = False
    for claim, lines in sorted(cluster.plans.items()):
        if isinstance(lines, str):
            print(f"{claim}: no plan: {hide(lines)}", file=out)
        elif not lines:
            print(f"{claim}: no changes", file=out)
        else:
            changes = True
            print(f"{claim}:", file=out)
            for line in lines:
                print(f"  {hide(line)}", file=out)
    return changes


def report(
    cluster: OfflineCluster, output: str, show_secrets: bool, rounds: int, out: Any = sys.stdout
) -> None:
    claims = cluster.claims()
    secrets = [s for s in cluster.store.select("v1", "Secret") if _composed(s)]
    # Everything printed goes through `hide`: a claim's status or message may quote a secret too.
    hide = _shown if show_secrets else masker(cluster.store)
    if output == "yaml":
        docs = [*(hide(c) for c in claims), *(hide(_masked(s, show_secrets)) for s in secrets)]
        yaml.safe_dump_all(docs, out, sort_keys=False)
        return
    print(summary(cluster, rounds), file=out)
    print(f"{'KIND':<18} {'NAME':<24} {'PHASE':<13} MESSAGE", file=out)
    for claim in claims:
        status = claim.get("status", {})
        print(
            f"{claim['kind']:<18} {claim['metadata']['name']:<24} {status.get('phase', '-'):<13} "
            f"{hide(status.get('message', ''))}",
            file=out,
        )
    for secret in secrets:
        print(f"\nSecret {secret['metadata']['namespace']}/{secret['metadata']['name']}:", file=out)
        data = cluster.secret_data(secret["metadata"]["name"], secret["metadata"]["namespace"])
        lines = sorted(data.items()) if show_secrets else secret_lines(data, hide)
        for key, value in lines:
            print(f"  {key}: {value}", file=out)
    for pod, why in waiting_pods(cluster):
        print(f"\nPod {pod} cannot start: {hide(why)}", file=out)


def summary(cluster: OfflineCluster, rounds: int) -> str:
    """The first line: whether the last round changed nothing, and a retry left for a later run."""
    if not cluster.settled:
        return f"still changing after {rounds} round(s) (stopped at the limit), {cluster.jobs_run} Job(s) run"
    line = f"settled after {rounds} round(s), {cluster.jobs_run} Job(s) run"
    if cluster.next_retry is not None:
        line += f"; a retry is due in {math.ceil(cluster.next_retry)} s, beyond the wait (run again then)"
    return line


def waiting_pods(cluster: OfflineCluster) -> list[tuple[str, str]]:
    """Pods that wait for a Secret: the container's waiting reason and message, or the kubelet's event."""
    out = []
    for pod in cluster.store.select("v1", "Pod"):
        for status in pod.get("status", {}).get("containerStatuses", []):
            waiting = status.get("state", {}).get("waiting")
            if waiting is None:
                continue
            name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            detail = waiting.get("message") or cluster.pod_events.get(pod["metadata"]["name"], "")
            out.append((name, f"{waiting['reason']}: {detail}" if detail else waiting["reason"]))
    return out


def _composed(obj: Obj) -> bool:
    return "crossplane.io/composite" in obj.get("metadata", {}).get("labels", {})


def _shown(value: Any) -> Any:
    return value


def _masked(secret: Obj, show: bool) -> Obj:
    if show:
        return secret
    out: Obj = json.loads(json.dumps(secret))
    out["data"] = dict.fromkeys(out.get("data", {}), MASK)
    return out


if __name__ == "__main__":
    sys.exit(main())
