"""`crossplane composition render` on `examples/render/`: the real CLI (crossplane/cli v2.5) and the real render
engine (Crossplane core v2.3, `--crossplane-binary`) calling the `function` console script over gRPC, and the
expected output committed next to each set (`examples/render/<set>/expected-<xr>[-observed].yaml`).

    python -m tests.crossplane_render      # regenerate the expected files (needs tools/cluster/build-tools.sh cli core)

Two renders per XR file: a new XR (no observed resources) and the XR after the worker ran (`observed-<xr>.yaml`).
Both pass `--xrd` (dbops XRDs are LegacyCluster: without it the engine takes the XR for a modern one) and the
set's `required.yaml`. The function's address is given with `-a render.crossplane.io/runtime-development-target=`
so a test can serve it on a free port; `examples/functions.yaml` itself says localhost:9443.

What changes from run to run is normalised (`normalise`), nothing else:
- a Job composed by this render is named after the resync epoch of the current time (`job_digest`): its digest
  becomes `<digest>` wherever it appears (name, composition-resource-name, status.job, messages, resourceRefs) and
  its `resync-epoch` annotation `<epoch>`;
- a password the function generated (no observed Secret holds it) becomes `<generated>`, in `password` and in
  every other key that embeds it (`uri`); the values stay base64 as render prints them;
- the events "Composed resource ... is not yet ready", which Crossplane emits in Go's random map order, are
  sorted among themselves.
The CLI itself replaces condition timestamps with 2024-01-01T00:00:00Z; the XR files carry their uid.
"""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools import apigen

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "examples" / "render"
FUNCTIONS = "examples/functions.yaml"
TARGET = "render.crossplane.io/runtime-development-target"
EPOCH = "dbops.dbprovision.io/resync-epoch"
DIGEST = "<digest>"
GENERATED = "<generated>"
UNREADY = re.compile(r'Composed resource ".*" is not yet ready')
# The XR files of a set, named as the folders under apis/: instance.yaml and apis/instance/, ...
XR_FILES = tuple(info.folder for info in apigen.KIND_INFO.values())


@dataclass(frozen=True)
class Example:
    set: str  # examples/render/<set>/
    xr: str  # <xr>.yaml, rendered with apis/<xr>/composition.yaml and apis/<xr>/definition.yaml
    observed: bool  # with observed-<xr>.yaml: the XR after the worker ran

    def __str__(self) -> str:
        return f"{self.set}-{self.xr}" + ("-observed" if self.observed else "")

    @property
    def package_root(self) -> str:
        """Where its XRD and Composition are: apis/, or apis-namespaced/ for a set of namespaced XRs."""
        return "apis-namespaced" if self.set.startswith("namespaced-") else "apis"

    @property
    def required(self) -> str:
        """Its required resources: `required-<xr>.yaml` in a set of namespaced XRs (without the XR itself),
        else the set's `required.yaml`."""
        own = f"required-{self.xr}.yaml"
        return own if (RENDER / self.set / own).exists() else "required.yaml"

    @property
    def expected(self) -> Path:
        return RENDER / self.set / f"expected-{self.xr}{'-observed' if self.observed else ''}.yaml"

    def observed_docs(self) -> list[dict[str, Any]]:
        return load(RENDER / self.set / f"observed-{self.xr}.yaml") if self.observed else []


def examples() -> list[Example]:
    return [
        Example(path.name, xr, observed)
        for path in sorted(p for p in RENDER.iterdir() if p.is_dir())
        for xr in XR_FILES
        if (path / f"{xr}.yaml").exists()
        for observed in (False, True)
    ]


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def command(
    ex: Example, cli: Path, core: Path, target: str | None = None, xr: Path | None = None
) -> list[str]:
    """The render command, with paths relative to the repository root (run it there); `xr` replaces the
    example's XR file (an XR carrying the status of an earlier render, say)."""
    base = f"examples/render/{ex.set}"
    args = [
        str(cli), "composition", "render",
        str(xr) if xr else f"{base}/{ex.xr}.yaml", f"{ex.package_root}/{ex.xr}/composition.yaml", FUNCTIONS,
        f"--crossplane-binary={core}", f"--xrd={ex.package_root}/{ex.xr}/definition.yaml",
        f"--required-resources={base}/{ex.required}",
        *([f"--observed-resources={base}/observed-{ex.xr}.yaml"] if ex.observed else []),
        "--include-full-xr", "--include-function-results", "--include-context",
    ]  # fmt: skip
    if target is not None:
        args += ["--function-annotations", f"{TARGET}={target}"]
    return args


def run(ex: Example, cli: Path, core: Path, target: str, xr: Path | None = None) -> list[dict[str, Any]]:
    """Render and parse the output (the XR, the composed resources by name, Results, the Context)."""
    done = subprocess.run(
        command(ex, cli, core, target, xr), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"render of {ex} failed ({done.returncode}): {done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def new_jobs(ex: Example, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Jobs this render composed (not among the observed resources)."""
    seen = {d["metadata"]["name"] for d in ex.observed_docs() if d["kind"] == "Job"}
    return [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] not in seen]


def generated_passwords(ex: Example, docs: list[dict[str, Any]]) -> dict[str, str]:
    """Secret name -> a password the function generated in this render (no observed Secret held it)."""
    kept = {
        d["metadata"]["name"]: d.get("data", {}).get("password")
        for d in ex.observed_docs()
        if d["kind"] == "Secret"
    }
    return {
        d["metadata"]["name"]: _unb64(d["data"]["password"])
        for d in docs
        if d["kind"] == "Secret"
        and "password" in d.get("data", {})
        and kept.get(d["metadata"]["name"]) != d["data"]["password"]
    }


def normalise(ex: Example, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(docs)
    for job in new_jobs(ex, docs):
        digest = job["metadata"]["name"].rsplit("-", 1)[1]
        if not re.fullmatch(r"[0-9a-f]{10}", digest):
            raise ValueError(f"Job {job['metadata']['name']} does not end in a digest")
        out = _replace(out, digest, DIGEST)
        for doc in out:
            if doc["kind"] == "Job" and DIGEST in doc["metadata"]["name"]:
                doc["metadata"]["annotations"][EPOCH] = "<epoch>"
    for doc in out:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] in generated_passwords(ex, docs):
            password = _unb64(doc["data"]["password"])
            doc["data"] = {k: _b64(_unb64(v).replace(password, GENERATED)) for k, v in doc["data"].items()}
    # Crossplane reports unready composed resources in Go map order: sort those events among themselves.
    unready = [
        i for i, d in enumerate(out) if d["kind"] == "Result" and UNREADY.fullmatch(str(d.get("message")))
    ]
    for i, doc in zip(
        unready, sorted((out[i] for i in unready), key=lambda d: str(d["message"])), strict=True
    ):
        out[i] = doc
    return out


def header(ex: Example) -> str:
    given = (
        f"observed-{ex.xr}.yaml (after the worker ran)" if ex.observed else "no observed resources (a new XR)"
    )
    return (
        f"# crossplane composition render of {ex.xr}.yaml with {ex.package_root}/{ex.xr}/, {ex.required} and "
        f"{given}.\n"
        "# Crossplane CLI v2.5.0, render engine Crossplane core v2.3.4; flags -x -r -c. Generated by\n"
        "# `python -m tests.crossplane_render`, checked by tests/test_crossplane_cli.py. Normalised: <digest> and\n"
        "# <epoch> of a Job this render composed (they follow the clock), a <generated> password.\n"
    )


def dump(ex: Example, docs: list[dict[str, Any]]) -> str:
    return header(ex) + yaml.safe_dump_all(docs, sort_keys=True, explicit_start=True, width=120)


def write() -> None:
    from dbops_local.runtime import LocalFunction
    from tests.upstream_tools import tool_path

    cli, core = tool_path("crossplane"), tool_path("crossplane-core")
    if cli is None or core is None:
        raise SystemExit(
            "build the tools first: tools/cluster/build-tools.sh cli && tools/cluster/build-tools.sh core"
        )
    with LocalFunction() as fn:
        for ex in examples():
            ex.expected.write_text(dump(ex, normalise(ex, run(ex, cli, core, fn.address))), encoding="utf-8")
            print(f"wrote {ex.expected.relative_to(ROOT)}")


if __name__ == "__main__":
    write()
