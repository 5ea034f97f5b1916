"""Where the pinned upstream tools are (the Crossplane CLI, Crossplane core, kube-apiserver, ...): the binaries
`tools/cluster/build-tools.sh` builds from the Go module proxy into a cache directory keyed by their versions.

    tool_path(name)     the binary if it is in the cache, else None (builds it first when DBOPS_BUILD_TOOLS=1)
    require_tool(name)  the binary; when it is missing the calling test is skipped, or fails when
                        DBOPS_REQUIRE_TOOLS=1 (CI, where a silently skipped suite would prove nothing)

Names: the binaries (`crossplane`, `crossplane-core`, `kube-apiserver`, `kube-controller-manager`, `etcd`) and
`crossplane-crds`, the directory of Crossplane's own CRDs that the core build links next to `bin/`.

The cache directory is found without running the script: its key is the script's own `key=` template filled in
with the script's version pins, so the two cannot disagree. Building only happens when asked, through the script
itself, inside the test that first needs the tool: a cold build (about 5 minutes for the CLI and core on 2 cores)
outlasts pytest-timeout's limit per test, so `make test-crossplane-cli` runs the script before pytest instead.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "cluster" / "build-tools.sh"

# The script's argument that builds each tool.
GROUPS = {
    "crossplane": "cli",
    "crossplane-core": "core",
    "crossplane-crds": "core",
    "kube-apiserver": "kube",
    "kube-controller-manager": "kube",
    "etcd": "kube",
}
_PIN = re.compile(r"^([A-Z_]+_VERSION)=(\S+)", re.M)
_KEY = re.compile(r'^key="([^"]+)"', re.M)
_VAR = re.compile(r"\$\{?([A-Z_]+)\}?")


def cache_dir() -> Path:
    """The version-keyed directory the script builds into (it may not exist yet)."""
    text = SCRIPT.read_text(encoding="utf-8")
    pins = dict(_PIN.findall(text))
    found = _KEY.search(text)
    if found is None:
        raise RuntimeError(f'{SCRIPT} has no key="..." line to find its cache directory by')
    key = _VAR.sub(lambda m: pins[m.group(1)], found.group(1))
    root = os.environ.get("DBOPS_TOOLS_CACHE") or str(Path.home() / ".cache" / "dbops-tools")
    return Path(root) / key


def _where(name: str, directory: Path) -> Path:
    return directory / name if name == "crossplane-crds" else directory / "bin" / name


def _present(path: Path) -> bool:
    return path.is_dir() if path.name == "crossplane-crds" else path.is_file() and os.access(path, os.X_OK)


@cache
def _build(group: str) -> Path:
    """Run the script for one group (once per process); it prints the cache directory."""
    done = subprocess.run(
        ["bash", str(SCRIPT), group], capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} {group} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def tool_path(name: str) -> Path | None:
    if name not in GROUPS:
        raise KeyError(f"unknown upstream tool {name!r}; known: {', '.join(sorted(GROUPS))}")
    path = _where(name, cache_dir())
    if not _present(path) and os.environ.get("DBOPS_BUILD_TOOLS") == "1":
        path = _where(name, _build(GROUPS[name]))
    return path if _present(path) else None


def require_tool(name: str) -> Path:
    path = tool_path(name)
    if path is not None:
        return path
    why = (
        f"{name} is not built: run `tools/cluster/build-tools.sh {GROUPS[name]}` (or set DBOPS_BUILD_TOOLS=1); "
        f"looked in {cache_dir()}"
    )
    if os.environ.get("DBOPS_REQUIRE_TOOLS") == "1":
        pytest.fail(why + " and DBOPS_REQUIRE_TOOLS=1")
    pytest.skip(why)
