"""`ensure`, `deletionPolicy` and `deletionProtection` (design section 6): which worker action, if any, runs.

ensure: Present                                   -> apply
ensure: Absent, deletionProtection: true          -> refused (Failed; set deletionProtection: false first)
ensure: Absent, deletionPolicy: Retain            -> nothing runs; phase Ready, "not managed"
ensure: Absent, deletionPolicy: Delete            -> drop; phase Dropped once the Job completes
"""

from __future__ import annotations

from typing import Any

from function.jobs.progress import carried_over
from function.outcome import Outcome
from function.secrets.credentials import SECRET_KEY
from function.status import failed, not_managed
from function.view import View


def action_for(view: View, kind: str, spec: dict[str, Any]) -> tuple[str, Outcome | None]:
    """("apply" | "drop", None), or ("", the outcome) when no worker runs."""
    if spec.get("ensure", "Present") == "Present":
        return "apply", None
    if spec.get("deletionProtection", True):
        return "", failed(
            view,
            kind,
            "ensure: Absent is refused while spec.deletionProtection is true; set spec.deletionProtection: false "
            "first (with deletionPolicy: Delete to drop the object, Retain to stop managing it)",
            "DeletionProtected",
        )
    if spec.get("deletionPolicy", "Retain") == "Retain":
        # The credentials Secret stays: the user still exists in the server and apps may still use it.
        keep = {k: v for k, v in carried_over(view).items() if k == SECRET_KEY}
        return "", not_managed(view, kind, keep)
    return "drop", None
