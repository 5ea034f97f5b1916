"""The Dockerfile's build, run without Docker: its COPY and RUN steps executed in order with the image's paths
(/src, /dist, /venv) mapped into a temporary directory per stage, then both entrypoints run from the resulting
venvs as the image's non-root user. A second group of tests checks what cannot be executed here: the stages,
targets, base images (one Python minor version), user and environment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PY_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
NONROOT = 65532

pytestmark = pytest.mark.slow


# --- a small reader for our Dockerfile ----------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.steps if ins == instruction]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out

    def entrypoint(self) -> list[str]:
        (args,) = self.all("ENTRYPOINT")
        value = json.loads(args)
        assert isinstance(value, list), "ENTRYPOINT must be in exec form so signals reach the process"
        return [str(v) for v in value]


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name, with global ARG defaults substituted into FROM lines."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and current is None:
            key, _, value = rest.partition("=")
            args[key] = value
        elif instruction == "FROM":
            match = re.match(r"(\S+)\s+AS\s+(\S+)$", rest, flags=re.I)
            assert match, f"every stage needs a name: FROM {rest}"
            image, name = match.groups()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            base = stages[image].base if image in stages else image
            current = stages[name] = Stage(name, base)
        else:
            assert current is not None, f"{instruction} before the first FROM"
            current.steps.append((instruction, rest))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def stage_deps(name: str) -> list[str]:
    """The stages `name` needs, in build order (its own last)."""
    out: list[str] = []
    for args in STAGES[name].all("COPY"):
        match = re.match(r"--from=(\S+)", args)
        if match:
            for dep in stage_deps(match.group(1)):
                if dep not in out:
                    out.append(dep)
    return [*out, name]


# --- executing the stages -----------------------------------------------------------------------------------------

# Absolute paths the image uses; each is mapped to <stage root>/<name> when a stage is executed.
IMAGE_DIRS = ("src", "dist", "venv")
_IMAGE_PATH = re.compile(r"(?<![\w.~-])/(" + "|".join(IMAGE_DIRS) + r")(?=[/\s\"'*:)]|$)")


_HOST_ENV_PREFIXES = (
    "PIP_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_",
)


def image_python() -> str:
    """A Python of the image's minor version that the non-root user can execute (the image's /usr/local/bin/python)."""
    candidates = [sys._base_executable, f"/usr/bin/python{PY_MINOR}", f"/usr/local/bin/python{PY_MINOR}"]  # type: ignore[attr-defined]
    for path in candidates:
        real = Path(path).resolve()
        if real.exists() and all(p.stat().st_mode & 0o001 for p in [real, *real.parents]):
            return str(path)
    pytest.fail(f"no Python {PY_MINOR} that uid {NONROOT} may run among {candidates}")


@dataclass
class Built:
    roots: dict[str, Path]
    log: list[str]


def run_stage(stage: Stage, roots: dict[str, Path], tmp: Path, base: Path, log: list[str]) -> None:
    root = tmp / stage.name
    root.mkdir(parents=True)
    env = {
        "PATH": f"{base}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
    }
    # How this machine reaches the package index (mirrors, certificates, proxies), as a build host would pass it.
    env.update({k: v for k, v in os.environ.items() if k.startswith(_HOST_ENV_PREFIXES)})
    workdir = root
    for instruction, args in stage.steps:
        if instruction == "ENV":
            for key, value in stage_env_pairs(args):
                env[key] = _map_paths(value.replace("$PATH", env["PATH"]), root)
        elif instruction == "WORKDIR":
            workdir = Path(_map_paths(args, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            copy_step(args, roots, root, workdir)
        elif instruction == "RUN":
            started = time.monotonic()
            done = subprocess.run(
                ["/bin/sh", "-c", _map_paths(args, root)],
                check=False,
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            log.append(f"[{stage.name}] {args} ({time.monotonic() - started:.1f} s)")
            assert done.returncode == 0, (
                f"RUN {args} failed in stage {stage.name}:\n{done.stdout}\n{done.stderr}"
            )
    roots[stage.name] = root


def stage_env_pairs(args: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (pair.partition("=") for pair in shlex.split(args))]


def copy_step(args: str, roots: dict[str, Path], root: Path, workdir: Path) -> None:
    words = shlex.split(args)
    source_root = ROOT
    if words[0].startswith("--from="):
        source_root = roots[words.pop(0).removeprefix("--from=")]
    *sources, dest = words
    target = Path(_map_paths(dest, root)) if dest.startswith("/") else workdir / dest
    for src in sources:
        origin = source_root / src.lstrip("/")
        assert origin.exists(), f"COPY {src}: not found (a docker build would fail the same way)"
        if origin.is_dir():
            # .dockerignore keeps __pycache__ out of the build context; other stages' files are copied as they are.
            if source_root == ROOT:
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True, ignore=ignore)
            else:  # hard links: the same bytes at the same place, without copying a venv
                shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True, copy_function=os.link)
        else:
            dest_file = target / origin.name if dest.endswith("/") else target
            dest_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, dest_file)


def _map_paths(text: str, root: Path) -> str:
    return _IMAGE_PATH.sub(lambda m: f"{root}/{m.group(1)}", text)


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    # Not under pytest's tmp_path: that lives in a directory only its owner may enter, and the non-root user must
    # reach the venvs, as in the image.
    tmp = Path(tempfile.mkdtemp(prefix="dbops-docker-"))
    tmp.chmod(0o755)
    # The base image's interpreter: a venv of a Python of the same minor version, so that `pip install` in a stage
    # does not touch the system.
    base = tmp / "image-python"
    subprocess.run([image_python(), "-m", "venv", str(base)], check=True)
    roots: dict[str, Path] = {}
    log: list[str] = []
    wanted = {name for target in ("worker", "function") for name in stage_deps(target)}
    # Stages whose inputs are ready run side by side, as BuildKit runs them.
    with ThreadPoolExecutor(max_workers=2) as pool:
        while wanted - roots.keys():
            ready = [n for n in wanted - roots.keys() if set(stage_deps(n)[:-1]) <= roots.keys()]
            for future in [pool.submit(run_stage, STAGES[n], roots, tmp, base, log) for n in sorted(ready)]:
                future.result()
    yield Built(roots, log)
    shutil.rmtree(tmp, ignore_errors=True)


def run_entrypoint(built: Built, target: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the target's ENTRYPOINT with its ENV, as its USER when we are root (so nothing in the venv is writable)."""
    stage = STAGES[target]
    root = built.roots[target]
    full_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    for key, value in stage_env_pairs(" ".join(stage.all("ENV"))):
        full_env[key] = _map_paths(value.replace("$PATH", full_env["PATH"]), root)
    full_env.update(env)
    entry = stage.entrypoint()
    exe = shutil.which(entry[0], path=full_env["PATH"])
    assert exe, f"{entry[0]} is not on the image's PATH {full_env['PATH']}"
    as_user = {"user": NONROOT, "group": NONROOT, "extra_groups": []} if os.geteuid() == 0 else {}
    return subprocess.run(
        [exe, *entry[1:], *args],
        check=False,
        env=full_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        **as_user,
    )


# --- what the images do -------------------------------------------------------------------------------------------


def test_worker_image_runs_its_entrypoint(built: Built) -> None:
    done = run_entrypoint(built, "worker", "--help")
    assert done.returncode == 0, done.stderr
    assert "apply" in done.stdout and "--request" in done.stdout


def test_worker_image_answers_a_bad_request_with_a_permanent_error(built: Built) -> None:
    done = run_entrypoint(built, "worker", "apply", DBOPS_REQUEST="{}", DBOPS_RESULT_FILE="/dev/null")
    assert done.returncode == 2, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is False and result["error"]["class"] == "permanent"


def test_worker_image_has_the_drivers_and_not_the_function_dependencies(built: Built) -> None:
    python = built.roots["worker"] / "venv/bin/python"
    drivers = subprocess.run(
        [python, "-c", "import sqlalchemy, psycopg2, pymysql, scramp, obstore, zstandard, cryptography"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert drivers.returncode == 0, drivers.stderr
    for module in ("grpc", "crossplane.function", "celpy", "yaml", "prometheus_client"):
        absent = subprocess.run(
            [python, "-c", f"import {module}"], check=False, capture_output=True, text=True
        )
        assert absent.returncode != 0, f"the worker image should not carry {module}"


def test_function_image_has_grpc_and_not_the_database_drivers(built: Built) -> None:
    python = built.roots["function"] / "venv/bin/python"
    sdk = subprocess.run(
        [python, "-c", "import grpc, crossplane.function, prometheus_client, function.fn"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert sdk.returncode == 0, sdk.stderr
    for module in ("sqlalchemy", "psycopg2", "pymysql", "scramp", "nacl"):
        absent = subprocess.run(
            [python, "-c", f"import {module}"], check=False, capture_output=True, text=True
        )
        assert absent.returncode != 0, f"the function image should not carry {module}"


def test_function_image_runs_its_entrypoint(built: Built) -> None:
    done = run_entrypoint(built, "function", "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--address", "--insecure", "--tls-certs-dir", "--debug", "--metrics-address"):
        assert flag in done.stdout


def test_images_install_the_one_wheel_built_once(built: Built) -> None:
    wheels = sorted(p.name for p in (built.roots["build"] / "dist").glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].startswith("dbops-")
    builds = [line for line in built.log if "-m build --wheel" in line]
    assert len(builds) == 1, built.log
    for target in ("worker-venv", "function-venv"):
        assert (built.roots[target] / "dist" / wheels[0]).exists()
        site = list((built.roots[target] / "venv/lib").glob("python*/site-packages/dbops-*.dist-info"))
        assert site, f"{target}: the dbops wheel is not installed in /venv"


def test_runtime_venvs_carry_no_installer(built: Built) -> None:
    for target in ("worker", "function"):
        venv = built.roots[target] / "venv"
        assert (venv / "bin/python").exists()
        assert not list(venv.glob("bin/pip*")) and not list(venv.glob("lib/python*/site-packages/pip"))


def test_bytecode_is_compiled_at_build_time(built: Built) -> None:
    # The root filesystem is read-only at run time, so imports must find ready .pyc files.
    site = next((built.roots["worker"] / "venv/lib").glob("python*/site-packages"))
    assert list((site / "worker").glob("__pycache__/*.pyc")), "pip did not compile the worker package"


# --- what the Dockerfile declares ---------------------------------------------------------------------------------


def test_dockerfile_has_the_two_targets_with_their_entrypoints() -> None:
    assert STAGES["worker"].entrypoint() == ["dbops-worker"]
    assert STAGES["function"].entrypoint() == ["function"]
    assert "9443" in STAGES["function"].all("EXPOSE")
    # The image serves /metrics (docs/operations.md#metrics); the command alone does not.
    assert "8080" in STAGES["function"].all("EXPOSE")
    assert STAGES["function"].env()["DBOPS_METRICS_ADDRESS"] == ":8080"


def test_every_stage_uses_the_python_minor_version_the_tests_ran() -> None:
    for stage in STAGES.values():
        match = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+)[.-]", stage.base)
        assert match, (
            f"stage {stage.name}: base {stage.base} is not an official python image with a version tag"
        )
        assert match.group(1) == PY_MINOR, (
            f"stage {stage.name} uses Python {match.group(1)}, tests use {PY_MINOR}"
        )
    assert len({s.base for s in STAGES.values()}) == 1, "build and runtime stages must share one base image"


def test_runtime_stages_run_as_non_root_without_bytecode_writes() -> None:
    for target in ("worker", "function"):
        stage = STAGES[target]
        assert stage.all("USER")[-1] == f"{NONROOT}:{NONROOT}"
        env = stage.env()
        assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
        assert env["PATH"].startswith("/venv/bin:")
        # The runtime stage only receives the venv: no compilers, sources or wheels.
        assert [a for a in stage.all("COPY")] == [f"--from={target}-venv /venv /venv"]
        assert not stage.all("RUN")


# Stages whose steps install the base's Debian packages: apt-get cannot run here, so the build fixture never executes
# them (no stage COPYs from them) and the test below checks their one step as written.
OS_STAGES = ("worker-os",)


def test_the_worker_image_carries_the_debian_dump_and_restore_clients() -> None:
    assert [" ".join(step.split()) for step in STAGES["worker-os"].all("RUN")] == [
        "apt-get update "
        "&& apt-get install -y --no-install-recommends postgresql-client mariadb-client "
        "&& rm -rf /var/lib/apt/lists/*"
    ]
    assert STAGES["worker-os"].base == STAGES["worker-venv"].base
    # The base's Debian release is the one whose clients tests/test_backup_clients.py proves against the servers.
    from tests.test_backup_clients import RELEASE

    assert STAGES["worker-os"].base.endswith(f"-slim-{RELEASE}"), STAGES["worker-os"].base
    # The runtime stage is built on it (its FROM), so the clients are in the worker image and not the function's.
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM worker-os AS worker$", text, flags=re.M)
    assert "worker-os" not in {d for name in ("function",) for d in stage_deps(name)}


def test_build_steps_are_the_ones_this_test_runs() -> None:
    build = STAGES["build"].all("RUN")
    assert any("python -m build --wheel" in r for r in build)
    venv = "python -m venv --without-pip /venv && python -m pip --python /venv/bin/python install"
    assert STAGES["worker-venv"].all("RUN") == [f'{venv} "$(echo /dist/*.whl)[worker]"']
    assert STAGES["function-venv"].all("RUN") == [f'{venv} "$(echo /dist/*.whl)[function]"']
    for stage in STAGES.values():
        if stage.name in OS_STAGES:
            continue
        for args in stage.all("RUN") + stage.all("COPY") + stage.all("WORKDIR"):
            for path in re.findall(r"(?<![\w.~$-])/[A-Za-z_][\w.-]*", args):
                assert path.lstrip("/") in IMAGE_DIRS, (
                    f"stage {stage.name} uses {path}, which the test cannot map"
                )


def test_build_log(built: Built) -> None:
    # Shown with -s: how long each RUN step took.
    print("\n".join(built.log))
    stages = sorted(line.split("]")[0].lstrip("[") for line in built.log)
    assert stages == ["build", "build", "function-venv", "worker-venv"]
