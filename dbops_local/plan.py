"""`dbops-local --plan`: run every Job's worker with `plan` instead of `apply`, and collect what each would send.

The function composes the same Jobs as for a real run; only the worker's action changes, so each claim's plan
comes from the same observation of the real server that an apply would start from, and nothing is written. A
claim whose plan depends on another claim's planned change (a grant for a role that does not exist yet) is
planned against the server as it is, which is what an apply would meet if that other claim failed.
"""

from __future__ import annotations

import copy
import json

from dbops_local.store import Obj

KIND_LABEL = "dbops.dbprovision.io/kind"  # function/labels.py: the claim kind and name every Job carries
CLAIM_LABEL = "dbops.dbprovision.io/claim"
WRITING_ACTIONS = ("apply", "drop", "rotate")


class PlanRefused(Exception):
    """A Job that plan mode cannot run without writing (a drop: the worker has no plan for it)."""


def as_plan(job: Obj) -> Obj:
    """The Job with its worker action `apply` replaced by `plan`; `check` (read-only) is kept."""
    out = copy.deepcopy(job)
    container = out["spec"]["template"]["spec"]["containers"][0]
    for key in ("command", "args"):
        words = container.get(key) or []
        if "drop" in words:
            raise PlanRefused(
                f"Job {job['metadata'].get('name')} drops what a deleted claim managed; --plan shows what "
                "applying the claims would write and has no plan for a drop"
            )
        container[key] = ["plan" if word in ("apply", "rotate") else word for word in words]
    return out


def applies(job: Obj) -> bool:
    """Whether the Job's worker runs `apply` (an instance's `check` only reads and has no plan)."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return "apply" in words or "rotate" in words


def claim_of(job: Obj) -> str:
    labels = job.get("metadata", {}).get("labels", {})
    return f"{labels.get(KIND_LABEL, 'Job')}/{labels.get(CLAIM_LABEL, job['metadata'].get('name'))}"


def planned(logs: str) -> list[str] | str:
    """The statements a `dbops-worker plan` run printed (each `-- reason` line with its statement), or why the
    run reached no plan (the worker's error). The worker prints the plan before its one JSON result line, with
    secrets already masked."""
    lines = logs.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("{"):
            continue
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict) and "action" in result:
            error = result.get("error")
            if error:
                return f"{error.get('class', '')} error {error.get('code', '')}: {error.get('message', '')}"
            return [text for text in lines[:index] if text.strip()]
    return "the worker printed no result"
