"""The real Crossplane CLI (crossplane/cli v2.5.0) and render engine (Crossplane core v2.3.4) on this project's
function, packages and examples. `tools/cluster/build-tools.sh cli` and `... core` build them from the Go module
proxy (docs/packages.md, "Pinned upstream tools"); without them these tests are skipped, or fail when
DBOPS_REQUIRE_TOOLS=1. `make test-crossplane-cli` builds what is missing and runs them.

- render: every examples/render set, as a new XR and after the worker ran, through `crossplane composition
  render --crossplane-binary` against the `function` console script, equals the committed expected output
  (normalised, tests/crossplane_render.py); rendered at another time with other random numbers it still does;
  a generated password has the shape the spec asks for and appears only in the Secret; the Python stand-in
  (tests/function_cases/render.py) gives what the real engine gives; the command docs/packages.md shows works.
- validate: the XRDs, the Input CRD, the Compositions with their step Inputs, the package metadata, every
  example and the rendered output pass `crossplane resource validate` (the API server's validation, cel-go);
  on the hostile corpus the real validator and our jsonschema + cel-python checks agree case by case.
- packages: both packages build with the `crossplane xpkg build` commands docs/packages.md shows and hold
  exactly the XRDs, Compositions, Input CRD, metadata and examples they should.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import re
import shlex
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbops_local.runtime import FunctionClient
from function.spec.cel import rule_errors
from tests import crossplane_render as cr
from tests import hostile
from tests.function_cases import kube
from tests.function_cases.render import render
from tests.servers import free_port
from tests.test_manifests import OpenAPIValidator, strict, with_defaults
from tests.upstream_tools import cache_dir, require_tool
from tools import apigen

pytestmark = pytest.mark.crossplane_cli

ROOT = cr.ROOT
EXAMPLES = cr.examples()
KIND_OF = {info.folder: kind for kind, info in apigen.KIND_INFO.items()}  # "user" -> "DatabaseUser"
XRDS = [ROOT / "apis" / folder / "definition.yaml" for folder in cr.XR_FILES]
COMPOSITIONS = [ROOT / "apis" / folder / "composition.yaml" for folder in cr.XR_FILES]
# The namespaced shape (apiextensions.crossplane.io/v2 XRDs, scope Namespaced), generated beside them.
NS_XRDS = [ROOT / "apis-namespaced" / folder / "definition.yaml" for folder in cr.XR_FILES]
NS_COMPOSITIONS = [ROOT / "apis-namespaced" / folder / "composition.yaml" for folder in cr.XR_FILES]
INPUT_CRDS = sorted((ROOT / "package" / "input").glob("*.yaml"))
PACKAGE_GROUPS = ("pkg.crossplane.io", "meta.pkg.crossplane.io")
Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cli() -> Path:
    return require_tool("crossplane")


@pytest.fixture(scope="module")
def core() -> Path:
    return require_tool("crossplane-core")


def load_all(path: Path) -> Docs:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _group(doc: dict[str, Any]) -> str:
    return str(doc.get("apiVersion", "")).rpartition("/")[0]


# --- validate ---------------------------------------------------------------------------------------------------


def validate(cli: Path, extensions: list[Path], resources: list[Path], tmp: Path) -> dict[str, Any]:
    """`crossplane resource validate` with every file named (never a directory: validate downloads the packages
    of any pkg.crossplane.io object or Configuration metadata it finds there) and without Crossplane's own image
    (`--crossplane-image=`: its schemas come from a registry). The JSON report; the cache must stay empty."""
    cache = tmp / "validate-cache"
    done = subprocess.run(
        [
            str(cli), "resource", "validate",
            ",".join(str(p) for p in extensions), ",".join(str(p) for p in resources),
            "--crossplane-image=", f"--cache-dir={cache}", "--output=json",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"validate printed no report (exit {done.returncode}): {done.stdout}{done.stderr}")
    assert not cache.exists() or not any(cache.iterdir()), "validate downloaded something"
    return report


def problems(report: dict[str, Any]) -> list[Any]:
    return [r for r in report["resources"] if r["status"] != "valid"]


def example_files() -> list[Path]:
    """Every YAML file under examples/ but the expected render output (placeholders; the raw output is validated
    below) and files holding package objects (validate would try to download their packages)."""
    out = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        if path.name.startswith("expected-"):
            continue
        if any(_group(d) in PACKAGE_GROUPS for d in load_all(path)):
            continue
        out.append(path)
    return out


def test_every_example_claim_and_fixture_validates(cli: Path, tmp_path: Path) -> None:
    files = example_files()
    skipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*.yaml")} - {
        p.relative_to(ROOT).as_posix() for p in files
    }
    assert skipped == {"examples/functions.yaml"} | {
        ex.expected.relative_to(ROOT).as_posix() for ex in EXAMPLES
    }
    report = validate(cli, [*XRDS, *NS_XRDS, *INPUT_CRDS], files, tmp_path)
    assert problems(report) == []
    docs = [d for p in files for d in load_all(p)]
    assert report["summary"]["total"] == len(docs), "every document was validated"
    kinds = {(r["kind"]) for r in report["resources"]}
    assert {"DatabaseInstance", "Database", "DatabaseUser", "DatabaseGrant"} <= kinds  # claims
    namespaced = {d["kind"] for d in docs if _group(d) == "ns.dbops.dbprovision.io"}
    assert {"DatabaseInstance", "Database", "DatabaseUser"} <= namespaced  # the namespaced Quick Starts
    assert {"XDatabaseInstance", "XDatabase", "XDatabaseUser", "XDatabaseGrant"} <= kinds  # the render XRs
    assert {"Secret", "Job", "Pod"} <= kinds  # observed and required fixtures, against Kubernetes' own types


def test_compositions_xrds_and_step_inputs_validate_against_crossplane(cli: Path, tmp_path: Path) -> None:
    """The XRDs and Compositions against Crossplane core's own CRDs (from the module the core was built from),
    each Composition's step Input against the Input CRD, the Input CRD as a Kubernetes CRD."""
    crds = require_tool("crossplane-crds")
    extensions = [
        crds / "apiextensions.crossplane.io_compositions.yaml",
        crds / "apiextensions.crossplane.io_compositeresourcedefinitions.yaml",
        *INPUT_CRDS,  # validate follows each pipeline step's embedded Input to its CRD
    ]
    report = validate(
        cli, extensions, [*XRDS, *COMPOSITIONS, *NS_XRDS, *NS_COMPOSITIONS, *INPUT_CRDS], tmp_path
    )
    assert problems(report) == []
    assert sorted(r["kind"] for r in report["resources"]) == sorted(
        ["CompositeResourceDefinition", "Composition", "Input"] * (len(XRDS) + len(NS_XRDS))
        + ["CustomResourceDefinition"] * len(INPUT_CRDS)
    ), "a step Input per Composition"


def test_package_metadata_validates_against_crossplane(cli: Path, tmp_path: Path) -> None:
    meta = require_tool("crossplane-crds").resolve().parent / "meta"
    report = validate(
        cli,
        [meta / "meta.pkg.crossplane.io_functions.yaml", meta / "meta.pkg.crossplane.io_configurations.yaml"],
        [
            ROOT / "package/crossplane.yaml",
            ROOT / "apis/crossplane.yaml",
            ROOT / "apis-namespaced/crossplane.yaml",
        ],
        tmp_path,
    )
    assert problems(report) == [] and report["summary"]["total"] == 3


def test_validate_refuses_what_the_api_server_refuses(cli: Path, tmp_path: Path) -> None:
    """The validator is not a rubber stamp: an unknown field, a broken pattern and a broken CEL rule fail."""
    claim = {
        "apiVersion": kube.API,
        "kind": "DatabaseUser",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"instanceRef": {"name": "pg"}, "username": "x; DROP", "pasword": "typo"},
    }
    instance = {
        "apiVersion": kube.API,
        "kind": "DatabaseInstance",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {
            "engine": "postgres",
            "connection": {"host": "db", "port": 5432, "secretRef": {"name": "admin"}},
            "mysql": {"charset": "utf8mb4"},
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([claim, instance]), encoding="utf-8")
    report = validate(cli, XRDS, [path], tmp_path)
    errors = {(e["type"], e.get("field")) for r in report["resources"] for e in r.get("errors", [])}
    assert errors == {("schema", "spec.username"), ("unknownField", "spec.pasword"), ("cel", "spec.mysql")}


def _claim_name(case_id: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", case_id.lower())[:63].strip("-")


def _our_verdict(case: hostile.Case) -> tuple[list[str], set[tuple[str, str]]]:
    """What our own checks make of a claim spec: the OpenAPI schema errors (jsonschema, unknown fields refused,
    patterns anchored as RE2 anchors them), and the CEL rule errors (cel-python)."""
    schema = apigen.xrd(case.kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    validator = OpenAPIValidator(strict(schema))
    schema_errors = [".".join(map(str, e.absolute_path)) for e in validator.iter_errors(case.spec)]
    cel = {(e.path, e.message) for e in rule_errors(schema, with_defaults(schema, case.spec), "spec")}
    return schema_errors, cel


def test_real_validator_and_our_checks_agree_on_every_hostile_claim(cli: Path, tmp_path: Path) -> None:
    """Each case of tests/hostile as a claim: refused by both or by neither, the refusal naming the case's field,
    and exactly the same CEL rule messages from cel-go as from cel-python."""
    cases = {_claim_name(c.id): c for c in hostile.cases()}
    assert len(cases) == len(hostile.cases())
    path = tmp_path / "hostile.yaml"
    claims = [
        {
            "apiVersion": kube.API,
            "kind": c.kind,
            "metadata": {"name": n, "namespace": "default"},
            "spec": c.spec,
        }
        for n, c in cases.items()
    ]
    path.write_text(yaml.safe_dump_all(claims), encoding="utf-8")
    report = validate(cli, XRDS, [path], tmp_path)
    assert report["summary"]["total"] == len(cases) and report["summary"]["missingSchemas"] == 0
    disagreements = []
    for res in report["resources"]:
        case = cases[res["name"]]
        schema_errors, cel = _our_verdict(case)
        errors = res.get("errors", [])
        real_cel = {
            (e["field"], e["message"].split(": Invalid value: ", 1)[1]) for e in errors if e["type"] == "cel"
        }
        if schema_errors:
            # A rule over a field of the wrong type cannot evaluate: cel-go says "invalid data", cel-python "no
            # such overload". Both refuse the claim on the type already; the evaluation noise is not compared.
            real_cel = {c for c in real_cel if "invalid data" not in c[1]}
            cel = {c for c in cel if not c[1].startswith("no such overload")}
        refused, we_refuse = res["status"] == "invalid", bool(schema_errors or cel)
        if refused != we_refuse or real_cel != cel:
            disagreements.append((case.id, [e["message"] for e in errors], schema_errors, sorted(cel)))
        if refused and not any(_same_field(e.get("field", ""), case.field) for e in errors):
            disagreements.append((case.id, "names another field", case.field, errors))
    assert disagreements == []
    assert sum(r["status"] == "invalid" for r in report["resources"]) >= 100, (
        "most cases are schema/CEL cases"
    )


def _same_field(real: str, ours: str) -> bool:
    """`spec.a[0].b` and `spec.a[0].b`, or one inside the other (the API server names a list, we its item)."""

    def plain(path: str) -> str:
        return re.sub(r"\[[^\]]*\]", "", path)

    return bool(real) and (plain(real).startswith(plain(ours)) or plain(ours).startswith(plain(real)))


# --- render -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(cli: Path, core: Path, function_client: FunctionClient) -> Callable[[cr.Example], Docs]:
    """The raw render of an example against the `function` console script (once per example)."""
    done: dict[cr.Example, Docs] = {}

    def get(ex: cr.Example) -> Docs:
        if ex not in done:
            done[ex] = cr.run(ex, cli, core, function_client.address)
        return done[ex]

    return get


@pytest.fixture(scope="module")
def later(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The function as it would answer 40 days and a bit from now, with seeded random numbers: its address."""
    at = (datetime.now(UTC) + timedelta(days=40, seconds=1234)).isoformat()
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("later") / "function.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fixed_clock_function",
                "--address",
                address,
                "--at",
                at,
                "--seed",
                "7",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    client = FunctionClient(address)
    try:
        client.wait_ready()
        yield address
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=15)


def _diff(expected: Docs, got: Docs) -> str:
    dump = yaml.safe_dump_all
    return "\n".join(
        line
        for line in difflib.unified_diff(
            dump(expected, sort_keys=True).splitlines(),
            dump(got, sort_keys=True).splitlines(),
            lineterm="",
            n=2,
        )
    )


@pytest.mark.parametrize("ex", EXAMPLES, ids=str)
def test_render_equals_the_committed_output(ex: cr.Example, rendered: Callable[[cr.Example], Docs]) -> None:
    got = cr.normalise(ex, rendered(ex))
    expected = load_all(ex.expected)
    assert got == expected, (
        f"{ex.expected.relative_to(ROOT)} differs from the render; if the change is intended, regenerate it with "
        f"`python -m tests.crossplane_render` and review the diff:\n{_diff(expected, got)}"
    )


NAMESPACED_EXAMPLES = [ex for ex in EXAMPLES if ex.package_root == "apis-namespaced"]


@pytest.mark.parametrize("ex", NAMESPACED_EXAMPLES, ids=str)
def test_a_namespaced_xr_composes_only_in_its_own_namespace(
    ex: cr.Example, rendered: Callable[[cr.Example], Docs]
) -> None:
    """The real engine on a v2 namespaced XR: its Crossplane fields under spec.crossplane, no claim conditions,
    every composed Secret and Job in the XR's namespace and controlled by it; Ready once the worker ran."""
    docs = rendered(ex)
    [xr] = [d for d in docs if d["apiVersion"] == "ns.dbops.dbprovision.io/v1alpha1"]
    namespace = xr["metadata"]["namespace"]
    assert "claimConditionTypes" not in xr["status"] and "compositionRef" not in xr["spec"]
    assert (
        xr["spec"]["crossplane"]["compositionRef"]["name"] == f"{xr['kind'].lower()}s.ns.dbops.dbprovision.io"
    )
    composed = [d for d in docs if d["kind"] in ("Secret", "Job")]
    assert composed
    for doc in composed:
        assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
        [owner] = doc["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            xr["kind"],
            xr["metadata"]["name"],
            True,
        )
    if ex.observed:
        assert xr["status"]["phase"] == "Ready"


@pytest.mark.parametrize("ex", EXAMPLES, ids=str)
def test_render_at_another_time_differs_only_where_normalised(
    ex: cr.Example, cli: Path, core: Path, later: str, rendered: Callable[[cr.Example], Docs]
) -> None:
    other = cr.run(ex, cli, core, later)
    assert other != rendered(ex), "the clock and the random generator do reach the output"
    assert cr.normalise(ex, other) == load_all(ex.expected)


USERS = [ex for ex in EXAMPLES if ex.xr == "user"]


@pytest.mark.parametrize("ex", USERS, ids=str)
def test_generated_password_has_the_asked_shape_and_stays_in_its_secret(
    ex: cr.Example, rendered: Callable[[cr.Example], Docs]
) -> None:
    docs = rendered(ex)
    xr = docs[0]
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    password = base64.b64decode(secret["data"]["password"]).decode()
    observed = [d for d in ex.observed_docs() if d["kind"] == "Secret"]
    if observed:
        assert secret["data"]["password"] == observed[0]["data"]["password"], "an existing password is kept"
        assert cr.generated_passwords(ex, docs) == {}
    else:
        wanted = xr["spec"]["passwordSecret"]  # with the XRD's defaults, as render applies them
        assert len(password) == wanted["length"] == 32
        assert password.isascii() and password.isalnum(), "includeSpecialChars: false"
        assert cr.generated_passwords(ex, docs) == {secret["metadata"]["name"]: password}
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert {k for k, v in decoded.items() if password in v} <= {"password", "uri"}
    others = [d for d in docs if d is not secret]
    assert password not in json.dumps(others), (
        "the password reaches nothing but its Secret (Jobs refer to it)"
    )


def _stand_in_agrees(
    ex: cr.Example, xr: dict[str, Any], real: Docs, function_client: FunctionClient
) -> tuple[Docs, Docs]:
    """The stand-in's render of `xr` and the real one, in one shape (XR status without the times the CLI pins,
    composed resources by name, events), normalised."""
    out = render(
        function_client.run,
        xr,
        kube.composition_input(KIND_OF[ex.xr]),
        ex.observed_docs(),
        load_all(cr.RENDER / ex.set / ex.required),
    )
    ours = [
        {"kind": xr["kind"], "status": out.xr["status"]},
        *(out.composed[k] for k in sorted(out.composed)),
        *({"kind": "Result", **e} for e in out.events),
    ]
    theirs = [
        {"kind": real[0]["kind"], "status": real[0]["status"]},
        *(d for d in real[1:] if d["kind"] not in ("Result", "Context")),
        *({k: v for k, v in d.items() if k != "apiVersion"} for d in real if d["kind"] == "Result"),
    ]
    for docs in (ours, theirs):
        for cond in docs[0]["status"]["conditions"]:
            cond.pop("lastTransitionTime", None)  # the CLI pins it to 2024-01-01; the stand-in has no clock
    return cr.normalise(ex, ours), cr.normalise(ex, theirs)


@pytest.mark.parametrize("ex", EXAMPLES, ids=str)
def test_python_stand_in_renders_what_the_real_engine_renders(
    ex: cr.Example, rendered: Callable[[cr.Example], Docs], function_client: FunctionClient
) -> None:
    """tests/function_cases/render.py, which the fast suite uses in place of `crossplane render`, gives the real
    engine's XR status (conditions merged and ordered as Crossplane does, claimConditionTypes), composed
    resources (labels, controller owner) and events, for every example."""
    [xr] = load_all(cr.RENDER / ex.set / f"{ex.xr}.yaml")
    ours, theirs = _stand_in_agrees(ex, xr, json.loads(json.dumps(rendered(ex))), function_client)
    assert ours == theirs


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e.observed], ids=str)
def test_python_stand_in_keeps_earlier_conditions_as_the_real_engine_does(
    ex: cr.Example,
    cli: Path,
    core: Path,
    rendered: Callable[[cr.Example], Docs],
    function_client: FunctionClient,
    tmp_path: Path,
) -> None:
    """The next reconcile of a converged XR whose spec turned invalid: the XR carries the status of the render
    before. Crossplane keeps every condition the XR had, also those the function no longer sets, and rebuilds
    the rest of the status from the function's answer; the stand-in does the same."""
    xr = json.loads(json.dumps(rendered(ex)[0]))
    xr["spec"]["deletionPolicy"] = "Sometimes"  # not an enum value: the function refuses the spec
    path = tmp_path / "xr.yaml"
    path.write_text(yaml.safe_dump(xr), encoding="utf-8")
    real = cr.run(ex, cli, core, function_client.address, xr=path)
    before = [c["type"] for c in xr["status"]["conditions"]]
    assert [c["type"] for c in real[0]["status"]["conditions"]][: len(before)] == before
    assert real[0]["status"]["phase"] == "Failed"
    ours, theirs = _stand_in_agrees(ex, xr, real, function_client)
    assert ours == theirs


def test_rendered_output_validates(cli: Path, rendered: Callable[[cr.Example], Docs], tmp_path: Path) -> None:
    """The full XRs render prints (-x: spec with the XRD's defaults, status) against their XRDs, the composed
    Secrets and Jobs against Kubernetes' types."""
    files = []
    for ex in EXAMPLES:
        path = tmp_path / f"{ex}.yaml"
        docs = [d for d in rendered(ex) if d["kind"] not in ("Result", "Context")]
        path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
        files.append(path)
    report = validate(cli, [*XRDS, *NS_XRDS], files, tmp_path)
    assert problems(report) == []
    assert report["summary"]["total"] == sum(
        1 for ex in EXAMPLES for d in rendered(ex) if d["kind"] not in ("Result", "Context")
    )


def _documented(section: str, starts: str) -> list[list[str]]:
    """The commands starting with `starts` in the sh blocks of a docs/packages.md section, continuation lines
    joined, comments dropped; a pipeline is one command with "|" among its words."""
    text = (ROOT / "docs" / "packages.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in body.split("```sh\n")[1:]]
    lines = [line for b in blocks for line in re.sub(r"\\\n\s*", " ", b).splitlines()]
    tools = str(cache_dir())
    return [
        [a.replace("$tools", tools) for a in shlex.split(line, comments=True)]
        for line in lines
        if line.startswith(starts)
    ]


def test_documented_render_command_renders_the_expected_output(
    cli: Path, core: Path, function_client: FunctionClient
) -> None:
    """docs/packages.md, "Render without a cluster", as written: the pinned tools from the build script's
    cache, the function served, the render. Only the function's port differs (the test cannot own 9443)."""
    text = (ROOT / "docs" / "packages.md").read_text(encoding="utf-8")
    section = text.split("\n## Render without a cluster\n", 1)[1].split("\n## ", 1)[0]
    assert "tools=$(tools/cluster/build-tools.sh core)" in section
    assert "function --insecure --offline &" in section
    render_commands = _documented("Render without a cluster", '"$tools/bin/crossplane" composition render')
    [argv] = [a for a in render_commands if "|" not in a]
    assert argv[0] == str(cli) and f"--crossplane-binary={core}" in argv
    [ex] = [
        e
        for e in EXAMPLES
        if f"examples/render/{e.set}/{e.xr}.yaml" == argv[3]
        and e.observed == any(a.startswith("--observed-resources") for a in argv)
    ]
    assert sorted(argv) == sorted(cr.command(ex, cli, core)), "the documented command is the tested one"
    done = subprocess.run(
        [*argv, "--function-annotations", f"{cr.TARGET}={function_client.address}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert cr.normalise(ex, [d for d in yaml.safe_load_all(done.stdout) if d]) == load_all(ex.expected)


def test_documented_validate_pipeline_validates_the_render(
    core: Path, function_client: FunctionClient
) -> None:
    """docs/packages.md: render piped into `crossplane resource validate`, as written but for the port."""
    [pipeline] = [
        a
        for a in _documented("Render without a cluster", '"$tools/bin/crossplane" composition render')
        if "|" in a
    ]
    bar = pipeline.index("|")
    render_argv, validate_argv = pipeline[:bar], pipeline[bar + 1 :]
    target = ["--function-annotations", f"{cr.TARGET}={function_client.address}"]
    rendered = subprocess.run(
        [*render_argv, *target], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    assert validate_argv[1:3] == ["resource", "validate"] and validate_argv[-1] == "-"
    checked = subprocess.run(
        validate_argv,
        cwd=ROOT,
        input=rendered.stdout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 missing schemas, 2 success cases, 0 failure cases" in checked.stdout  # the XR and its Secret


# --- packages ---------------------------------------------------------------------------------------------------


def _build(cli: Path, tmp_path: Path, package_root: str) -> Path:
    """The documented `crossplane xpkg build` of a package, into a temporary file. No Docker engine here, so the
    Function package is built without `--embed-runtime-image` (the runtime image is the Dockerfile's)."""
    [argv] = [
        a for a in _documented("Build", "crossplane xpkg build") if f"--package-root={package_root}" in a
    ]
    out = tmp_path / f"{package_root}.xpkg"
    args = [a for a in argv[1:] if not a.startswith(("--embed-runtime-image", "--package-file"))]
    done = subprocess.run(
        [str(cli), *args, f"--package-file={out}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return out


def _layers(xpkg: Path) -> dict[str, Docs]:
    """The package's layers by their xpkg label (`base`: package.yaml, `upbound`: the examples), parsed."""
    with tarfile.open(xpkg) as tar:
        [manifest] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        labels = config["config"]["Labels"]
        out: dict[str, Docs] = {}
        for layer in manifest["Layers"]:
            label = labels[f"io.crossplane.xpkg:sha256:{layer.removesuffix('.tar.gz')}"]
            raw = tar.extractfile(layer).read()  # type: ignore[union-attr]
            with tarfile.open(fileobj=io.BytesIO(zlib.decompress(raw, 31))) as inner:
                [member] = inner.getmembers()
                text = inner.extractfile(member).read().decode()  # type: ignore[union-attr]
            out[label] = [d for d in yaml.safe_load_all(text) if d]
    return out


def _extracted(cli: Path, xpkg: Path) -> Docs:
    """package.yaml as Crossplane's package cache holds it (`crossplane xpkg extract --from-xpkg`)."""
    out = xpkg.with_suffix(".gz")
    done = subprocess.run(
        [str(cli), "xpkg", "extract", "--from-xpkg", str(xpkg), f"--output={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The builder re-serialises typed objects, which adds an empty `status` to CRDs and XRDs.
    docs = [d for d in yaml.safe_load_all(zlib.decompress(out.read_bytes(), 31).decode()) if d]
    return [{k: v for k, v in d.items() if k != "status"} for d in docs]


def _key(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def test_namespaced_configuration_package_builds_with_v2_xrds_and_namespaced_examples(
    cli: Path, tmp_path: Path
) -> None:
    xpkg = _build(cli, tmp_path, "apis-namespaced")
    wanted = [
        *load_all(ROOT / "apis-namespaced" / "crossplane.yaml"),
        *(d for p in NS_XRDS + NS_COMPOSITIONS for d in load_all(p)),
    ]
    extracted = _extracted(cli, xpkg)
    assert sorted(extracted, key=_key) == sorted(wanted, key=_key)
    assert {d["apiVersion"] for d in extracted if d["kind"] == "CompositeResourceDefinition"} == {
        "apiextensions.crossplane.io/v2"
    }
    examples = [d for p in sorted((ROOT / "examples/namespaced").glob("*.yaml")) for d in load_all(p)]
    assert sorted(_layers(xpkg)["upbound"], key=_key) == sorted(examples, key=_key)
    assert {_group(d) for d in examples} == {"", "ns.dbops.dbprovision.io"}  # Secrets and namespaced XRs


def test_function_package_builds_with_its_input_crd_and_no_examples(cli: Path, tmp_path: Path) -> None:
    xpkg = _build(cli, tmp_path, "package")
    wanted = [*load_all(ROOT / "package" / "crossplane.yaml"), *(d for p in INPUT_CRDS for d in load_all(p))]
    assert sorted(_extracted(cli, xpkg), key=_key) == sorted(wanted, key=_key)
    assert set(_layers(xpkg)) == {"base"}, "no examples layer: the claims belong to the Configuration"


def test_configuration_package_builds_with_xrds_compositions_and_claim_examples(
    cli: Path, tmp_path: Path
) -> None:
    xpkg = _build(cli, tmp_path, "apis")
    wanted = [
        *load_all(ROOT / "apis" / "crossplane.yaml"),
        *(d for p in XRDS + COMPOSITIONS for d in load_all(p)),
    ]
    assert sorted(_extracted(cli, xpkg), key=_key) == sorted(wanted, key=_key)
    layers = _layers(xpkg)
    # The examples a registry shows: the claims and the Secrets they name, not the render fixtures (Pods,
    # Jobs, XRs, expected output) nor the Function object examples/functions.yaml holds for render.
    claims = [
        d
        for p in sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples").glob("*/*.yaml"))
        for d in load_all(p)
        if _group(d) not in PACKAGE_GROUPS and p.parent.name != "namespaced"
    ]
    assert not [d for d in claims if _group(d) == "ns.dbops.dbprovision.io"]
    assert sorted(layers["upbound"], key=_key) == sorted(claims, key=_key)
    assert {d["kind"] for d in claims} == {
        "Secret",
        "DatabaseInstance",
        "Database",
        "DatabaseUser",
        "DatabaseRole",
        "DatabaseGrant",
        "DatabaseBackup",
        "DatabaseRestore",
        "DatabaseBackupSchedule",
    }
