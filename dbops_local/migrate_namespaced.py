"""`dbops-local migrate-to-namespaced`: dbops claims in, namespaced XRs (`ns.dbops.dbprovision.io`) out.

Each claim becomes the namespaced XR of the same kind, namespace and name (docs/migrating-namespaced.md). The spec is carried over unchanged but for the fields Crossplane owns on a claim: those a
namespaced XR has under `spec.crossplane` are moved there (when they still mean something for the namespaced
Compositions), the claim-only ones are left out; every field moved or left out is reported on stderr, with the
reason. Server bookkeeping (uid, resourceVersion, status, finalizers, owner references, ...) and what Crossplane fills in on
every claim (`resourceRef`, its defaults, dbops' Composition and its current revision) are left out silently:
Crossplane fills in the same for the namespaced XR.
Other documents (Secrets) pass through without their server bookkeeping; legacy XRs (`XDatabaseUser`, ...) are
left out (the claim is what is converted).

The namespaced XR has the claim's namespace and name, so the worker sees the same owner in the server's markers
(docs/worker.md, ownership): no `adopt` is needed, and the first converge writes nothing to the server. The
conversion is pure: it never reads a cluster or a server.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dbops_api.registry import API_VERSION, LEGACY, NAMESPACED, SPECS

Obj = dict[str, Any]

NAMESPACED_API_VERSION = f"{NAMESPACED.group}/{NAMESPACED.version}"
BOOKKEEPING = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "generation",
    "selfLink",
    "finalizers",
    "ownerReferences",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PAUSED = "crossplane.io/paused"
DEFAULT_COMPOSITION = {kind: f"x{kind.lower()}s.{LEGACY.group}" for kind in SPECS}
NAMESPACED_COMPOSITION = {kind: f"{kind.lower()}s.{NAMESPACED.group}" for kind in SPECS}
GUIDE = "docs/migrating-namespaced.md"

# Crossplane's fields at the top of a claim's spec that a namespaced XR has too, under spec.crossplane.
MOVED = ("compositionSelector", "compositionUpdatePolicy")
# Claim-only fields, and why they have no namespaced counterpart.
LEFT_OUT = {
    "compositeDeletePolicy": "a namespaced XR has no claim, so there is nothing to delete it through; Kubernetes "
    "deletes its Jobs and credentials Secret with it",
    "compositionRevisionRef": "with compositionUpdatePolicy Manual it pins a revision of the legacy Composition, "
    "which cannot compose a namespaced XR; Crossplane picks the namespaced Composition's current revision: set "
    "spec.crossplane.compositionRevisionRef to pin one of its revisions",
    "compositionRevisionSelector": "its labels select revisions of legacy Compositions; set "
    "spec.crossplane.compositionRevisionSelector by hand if you pin revisions of the namespaced ones",
    "writeConnectionSecretToRef": "a namespaced XR has no connection details; the credentials Secret (same namespace, "
    "spec.passwordSecret.secretName) holds the same keys: point readers of this Secret at it. This Secret is "
    "deleted with the claim",
    "publishConnectionDetailsTo": "a namespaced XR has no connection details; read the credentials Secret instead",
    "claimRef": "a namespaced XR has no claim",
    "environmentConfigRefs": "dbops' Compositions use no EnvironmentConfig",
}


@dataclass
class Conversion:
    documents: list[Obj] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, doc: Obj, path: str, what: str, why: str) -> None:
        meta = doc.get("metadata") or {}
        name = (
            f"{meta['namespace']}/{meta.get('name', '?')}" if meta.get("namespace") else meta.get("name", "?")
        )
        where = f"{doc.get('kind', '?')} {name}"
        self.notes.append(f"{where}: {path}: {what}: {why}")

    def report(self) -> str:
        return "".join(line + "\n" for line in self.notes)


def _metadata(doc: Obj, namespace: str) -> Obj:
    meta = {k: v for k, v in (doc.get("metadata") or {}).items() if k not in BOOKKEEPING}
    meta["namespace"] = meta.get("namespace") or namespace
    return meta


def _claim(doc: Obj, namespace: str, out: Conversion) -> Obj:
    kind = doc["kind"]
    meta = _metadata(doc, namespace)
    converted = {"apiVersion": NAMESPACED_API_VERSION, "kind": kind, "metadata": meta}
    annotations = dict(meta.get("annotations") or {})
    if annotations.pop(LAST_APPLIED, None) is not None:
        out.note(
            doc, f"metadata.annotations[{LAST_APPLIED!r}]", "left out", "it records the claim as last applied"
        )
    if annotations.get(PAUSED) == "true":
        out.note(
            doc,
            f"metadata.annotations[{PAUSED!r}]",
            "kept",
            "the claim is paused, so the namespaced XR will be too: remove the annotation once it is applied",
        )
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    spec = dict(doc.get("spec") or {})
    # What Crossplane fills in on every claim (the legacy XR it made, its defaults, dbops' own Composition and its
    # current revision) goes silently: Crossplane fills in the same for the namespaced XR.
    spec.pop("resourceRef", None)
    if spec.get("compositeDeletePolicy") == "Background":
        del spec["compositeDeletePolicy"]
    automatic = spec.get("compositionUpdatePolicy", "Automatic") == "Automatic"
    if automatic:
        spec.pop("compositionUpdatePolicy", None)
        spec.pop("compositionRevisionRef", None)
    crossplane: Obj = {}
    for name in MOVED:
        if name in spec:
            crossplane[name] = spec.pop(name)
            why = "a namespaced XR has Crossplane's fields under spec.crossplane"
            if name == "compositionSelector":
                why += "; its labels must now match a Composition of the namespaced XR's type"
            out.note(doc, f"spec.{name}", f"moved to spec.crossplane.{name}", why)
    if "compositionRef" in spec:
        ref = spec.pop("compositionRef")
        ref_name = ref.get("name") if isinstance(ref, dict) else None
        if ref_name != DEFAULT_COMPOSITION.get(kind):
            out.note(
                doc,
                "spec.compositionRef",
                "left out",
                f"{ref_name!r} is not dbops' Composition of the legacy XR and cannot compose a namespaced XR; "
                f"Crossplane picks {NAMESPACED_COMPOSITION[kind]} (set spec.crossplane.compositionRef by hand "
                "if you run a Composition of your own for the namespaced type)",
            )
        elif not automatic:
            crossplane["compositionRef"] = {"name": NAMESPACED_COMPOSITION[kind]}
            out.note(
                doc,
                "spec.compositionRef",
                "changed",
                f"{ref_name} composes only the legacy XR; spec.crossplane.compositionRef names dbops' Composition "
                f"of the namespaced XR, {NAMESPACED_COMPOSITION[kind]}",
            )
    for name, why in LEFT_OUT.items():
        if name in spec:
            spec.pop(name)
            out.note(doc, f"spec.{name}", "left out", why)
    existing = spec.get("crossplane")
    if crossplane:
        spec["crossplane"] = {**(existing if isinstance(existing, dict) else {}), **crossplane}
    if spec.get("deletionProtection") is False:
        out.note(
            doc,
            "spec.deletionProtection",
            "kept",
            "false here: if it was set only to delete the claim during the migration, export the claims before "
            f"that step or set it back to true ({GUIDE})",
        )
    converted["spec"] = spec
    return converted


def convert(docs: list[Obj], namespace: str = "default") -> Conversion:
    """Claims (and Secrets) in, namespaced XRs (and the Secrets) out, with a note for every field not carried
    over unchanged."""
    out = Conversion()
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        if api_version == API_VERSION and kind in SPECS:
            out.documents.append(_claim(doc, namespace, out))
        elif api_version.split("/", maxsplit=1)[0] == LEGACY.group:
            out.note(
                doc, "-", "left out", "a legacy XR (or another dbops.dbprovision.io kind): convert its claim"
            )
        elif api_version == NAMESPACED_API_VERSION:
            out.note(doc, "-", "kept", "already a namespaced XR")
            out.documents.append({**doc, "metadata": _metadata(doc, namespace)})
        else:
            passed = {k: v for k, v in doc.items() if k != "status"}
            out.documents.append({**passed, "metadata": _metadata(doc, namespace)})
    return out


def load(names: list[str]) -> list[Obj]:
    docs: list[Obj] = []
    for name in names:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        for doc in yaml.safe_load_all(text):
            # `kubectl get ... -o yaml` prints a List of the objects
            docs += (doc.get("items") or []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
    return [d for d in docs if d]


def main(argv: list[str] | None = None, out: Any = None, err: Any = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="dbops-local migrate-to-namespaced",
        description="Convert dbops claims (dbops.dbprovision.io) to the namespaced XRs (ns.dbops.dbprovision.io) of "
        "the same kind, namespace and name. The XRs go to stdout (or -o FILE); every claim-only field moved or left "
        f"out, and why, to stderr. Other documents (Secrets) pass through. The cluster steps are in {GUIDE}.",
    )
    parser.add_argument(
        "-f", "--filename", action="append", required=True, help="claims YAML or a List ('-': stdin)"
    )
    parser.add_argument("-o", "--output", help="write the namespaced XRs here instead of stdout")
    parser.add_argument("-n", "--namespace", default="default", help="namespace for objects without one")
    args = parser.parse_args(argv)
    result = convert(load(args.filename), args.namespace)
    text = yaml.safe_dump_all(result.documents, sort_keys=False)
    if args.output:
        Path(args.output).write_text(text)
    else:
        out.write(text)
    err.write(result.report())
    return 0
