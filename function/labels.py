"""Labels dbops puts on everything it composes, and the label-value rules they must obey."""

from __future__ import annotations

import hashlib
import re

from function.view import View

MANAGED_BY = "app.kubernetes.io/managed-by"
XR_LABEL = "dbops.dbprovision.io/xr"
KIND_LABEL = "dbops.dbprovision.io/kind"
CLAIM_LABEL = "dbops.dbprovision.io/claim"
LABEL_MAX = 63
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def label_value(text: str) -> str:
    """`text` as a valid label value: unchanged when it fits, else a prefix plus a short hash (still unique)."""
    if len(text) <= LABEL_MAX and not _EDGE.search(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    prefix = _EDGE.sub("", text[: LABEL_MAX - len(digest) - 1])
    return f"{prefix}-{digest}" if prefix else digest


def managed_labels(view: View) -> dict[str, str]:
    return {
        MANAGED_BY: "dbops",
        XR_LABEL: label_value(view.name),
        CLAIM_LABEL: label_value(view.claim_name),
        KIND_LABEL: view.kind or view.xr_kind,
    }
