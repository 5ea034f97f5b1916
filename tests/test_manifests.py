"""Every manifest we ship is valid where it will be applied:

- XRDs, Compositions and package metadata against Crossplane's own CRD schemas (jsonschema, unknown fields
  refused, their CEL rules evaluated), plus what Kubernetes demands of an XRD's schema (structural, CEL within the
  cost budget) and of the claim CRD Crossplane generates from it (kubernetes-validate);
- every example claim against its XRD's schema with the CEL rules evaluated, and through
  `dbops_api.validation.normalize` and `dbops_api.engine_rules` as the function validates it;
- deploy/ with kubernetes-validate (strict, Kubernetes 1.31), and the deletion-protection policy's CEL on
  admission requests.
"""

from __future__ import annotations

import copy
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from dbops_api import engine_rules as semantics
from dbops_api.go_compat import go_only
from dbops_api.registry import GROUP, KINDS, NAMESPACED, SHAPES, SPECS, VERSION
from dbops_api.schema import Schema
from dbops_api.status import status_schema
from dbops_api.validation import normalize, openapi_regex
from function.input import INPUT_GROUP, INPUT_VERSION, parse_input
from function.spec.cel import evaluate, is_transition_rule, rule_errors
from tools import apigen

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DBOPS_SHARED", ROOT / "tests" / "fixtures"))
CROSSPLANE_CRDS = SHARED / "crossplane-crds"
SEED = SHARED / "seed"
K8S_VERSION = "1.31"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def load_one(path: Path) -> dict[str, Any]:
    (doc,) = load_all(path)
    return doc


# --- Crossplane's CRD schemas as strict JSON Schemas --------------------------------------------------------------


@cache
def crd_schema(filename: str, version: str) -> Schema:
    path = CROSSPLANE_CRDS / filename
    if not path.exists():
        pytest.fail(
            f"{path} is missing: point DBOPS_SHARED at the directory holding crossplane-crds/ and seed/"
        )
    crd = load_one(path)
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: Schema = found["schema"]["openAPIV3Schema"]
    return schema


def strict(schema: Any) -> Any:
    """An OpenAPI v3 schema as a JSON Schema that refuses unknown fields, as `kubectl apply` (strict field
    validation) does."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def _pattern(validator: Any, pattern: str, instance: Any, schema: Schema) -> Any:
    if validator.is_type(instance, "string") and not openapi_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 7 with OpenAPI's patterns: RE2's `$` (the API server's) matches only at the end of the text, Python's also
# before a final newline. Found by `crossplane resource validate` (tests/test_crossplane_cli.py).
OpenAPIValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})


def with_defaults(schema: Schema, value: Any) -> Any:
    """`value` with the schema's defaults filled in, as the API server stores it before CEL rules run."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name in out:
                out[name] = with_defaults(sub, out[name])
            elif "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], v) for v in value]
    return value


def crd_errors(doc: dict[str, Any], filename: str, version: str) -> list[str]:
    """Schema and CEL violations of `doc` against one version of a CRD."""
    schema = crd_schema(filename, version)
    validator = OpenAPIValidator(strict(schema))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    if not errors:
        errors += [str(e) for e in rule_errors(schema, with_defaults(schema, doc), "")]
    return errors


def test_strict_validation_catches_unknown_fields_and_broken_rules() -> None:
    xrd = apigen.xrd("Database")
    typo = copy.deepcopy(xrd)
    typo["spec"]["claimName"] = typo["spec"].pop("claimNames")
    assert any("claimName" in e for e in crd_errors(typo, XRD_CRD, "v1"))
    cluster_with_claims = copy.deepcopy(xrd)
    cluster_with_claims["spec"]["scope"] = "Cluster"
    assert crd_errors(cluster_with_claims, XRD_CRD, "v1") == [
        ".spec: Only LegacyCluster composite resources can offer claims"
    ]
    upper = copy.deepcopy(xrd)
    upper["spec"]["claimNames"]["plural"] = "Databases"
    assert crd_errors(upper, XRD_CRD, "v1") == [".spec.claimNames: Plural name must be lowercase"]


def test_patterns_end_at_the_end_of_the_text_as_in_the_api_server() -> None:
    """`crossplane resource validate` refused a Database named "app\\n" that plain jsonschema let through."""
    schema = apigen.xrd("Database")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec = {"instanceRef": {"name": "pg"}, "name": "app\n"}
    assert not list(jsonschema.Draft7Validator(strict(schema)).iter_errors(spec)), "Python's `$` lets it pass"
    assert [list(e.absolute_path) for e in OpenAPIValidator(strict(schema)).iter_errors(spec)] == [["name"]]
    assert not list(OpenAPIValidator(strict(schema)).iter_errors({**spec, "name": "app"}))


# --- XRDs, Compositions, packages ---------------------------------------------------------------------------------

XRD_CRD = "apiextensions.crossplane.io_compositeresourcedefinitions.yaml"
COMPOSITION_CRD = "apiextensions.crossplane.io_compositions.yaml"
INFOS = [apigen.KIND_INFO[k] for k in KINDS]
# Both XRD shapes: the claims' (apis/) and the namespaced XRs' (apis-namespaced/).
ALL_INFOS = [apigen.SHAPE_INFO[shape][k] for shape in SHAPES for k in KINDS]
ALL_IDS = [f"{'claim' if i.shape.claims else 'namespaced'}-{i.kind}" for i in ALL_INFOS]
NAMESPACED_INFOS = [apigen.NAMESPACED_INFO[k] for k in KINDS]


def xrd_file(info: apigen.KindInfo) -> dict[str, Any]:
    return load_one(ROOT / info.directory / "definition.yaml")


def composition_file(info: apigen.KindInfo) -> dict[str, Any]:
    return load_one(ROOT / info.directory / "composition.yaml")


@pytest.mark.parametrize("info", ALL_INFOS, ids=ALL_IDS)
def test_xrd_validates_against_crossplane(info: apigen.KindInfo) -> None:
    xrd = xrd_file(info)
    version = xrd["apiVersion"].rsplit("/", 1)[1]
    assert version == ("v1" if info.shape.claims else "v2")
    assert crd_errors(xrd, XRD_CRD, version) == []


def test_v2_validation_refuses_claims_and_the_legacy_scope() -> None:
    """The checks above read the v2 schema of Crossplane's XRD CRD: claims and LegacyCluster are refused there."""
    xrd = apigen.xrd("Database", NAMESPACED)
    assert crd_errors(xrd, XRD_CRD, "v2") == []
    with_claims = copy.deepcopy(xrd)
    with_claims["spec"]["claimNames"] = {"kind": "Database", "plural": "databases"}
    assert crd_errors(with_claims, XRD_CRD, "v2") == [
        ".spec: Claims aren't supported in apiextensions.crossplane.io/v2"
    ]
    legacy = copy.deepcopy(xrd)
    legacy["spec"]["scope"] = "LegacyCluster"
    assert any("scope" in e for e in crd_errors(legacy, XRD_CRD, "v2"))


@pytest.mark.parametrize("info", NAMESPACED_INFOS, ids=KINDS)
def test_namespaced_xrd_names_scope_and_group(info: apigen.KindInfo) -> None:
    """The namespaced XR carries the claim's kind and plural in a group of its own, so neither its CRD nor its
    XRD can collide with the claim CRD (`<plural>.dbops.dbprovision.io`) or the legacy XRD."""
    xrd = xrd_file(info)
    spec = xrd["spec"]
    assert xrd["apiVersion"] == "apiextensions.crossplane.io/v2"
    assert xrd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}" == info.xrd_name
    assert spec["group"] == NAMESPACED.group != GROUP
    assert spec["names"]["kind"] == info.kind and spec["names"]["plural"] == info.plural
    assert "claimNames" not in spec and spec["scope"] == "Namespaced"
    legacy = apigen.KIND_INFO[info.kind]
    assert info.xrd_name not in (legacy.xrd_name, f"{legacy.plural}.{GROUP}")
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["referenceable"]
    # Same contract as the claim: the same spec and status schemas.
    assert version["schema"] == xrd_file(legacy)["spec"]["versions"][0]["schema"]
    assert (
        version["additionalPrinterColumns"]
        == xrd_file(legacy)["spec"]["versions"][0]["additionalPrinterColumns"]
    )


@pytest.mark.parametrize("info", INFOS, ids=KINDS)
def test_xrd_names_scope_and_claim(info: apigen.KindInfo) -> None:
    spec = xrd_file(info)["spec"]
    assert xrd_file(info)["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}" == info.xrd_name
    assert spec["group"] == GROUP
    assert spec["names"]["kind"] == "X" + info.kind and spec["claimNames"]["kind"] == info.kind
    assert spec["scope"] == "LegacyCluster"
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["served"] and version["referenceable"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"].get("required", []) == SPECS[info.kind].get("required", [])


@pytest.mark.parametrize("info", ALL_INFOS, ids=ALL_IDS)
def test_printer_columns_show_ready_phase_name_and_age_once(info: apigen.KindInfo) -> None:
    version = xrd_file(info)["spec"]["versions"][0]
    ours = [c["name"] for c in version["additionalPrinterColumns"]]
    # Crossplane appends its columns to the claim CRD, or to the CRD of a namespaced XR.
    theirs = apigen.CROSSPLANE_CLAIM_COLUMNS if info.shape.claims else apigen.CROSSPLANE_XR_COLUMNS
    shown = ours + list(theirs)
    assert len(shown) == len(set(shown)), f"duplicate columns: {shown}"
    assert {"READY", "PHASE", "AGE"} <= set(shown)
    assert ours[0] == "PHASE" and ours[1] in ("ENGINE", "DATABASE", "USERNAME", "ROLE", "GRANTEE")
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        node = schema
        for name in column["jsonPath"].strip(".").split("."):
            assert name in node.get("properties", {}), (
                f"{column['name']}: {column['jsonPath']} is not in the schema"
            )
            node = node["properties"][name]
        assert node["type"] == column["type"]


@pytest.mark.parametrize("info", ALL_INFOS, ids=ALL_IDS)
def test_composition_validates_and_calls_the_function_with_a_valid_input(info: apigen.KindInfo) -> None:
    composition = composition_file(info)
    assert crd_errors(composition, COMPOSITION_CRD, "v1") == []
    xrd = xrd_file(info)
    assert xrd["spec"]["defaultCompositionRef"]["name"] == composition["metadata"]["name"]
    assert composition["spec"]["compositeTypeRef"] == {
        "apiVersion": f"{xrd['spec']['group']}/{VERSION}",
        "kind": ("X" if info.shape.claims else "") + info.kind,
    }
    # Nothing of a namespaced XR goes to crossplane-system: it has no connection Secret to write there.
    if not info.shape.claims:
        assert "writeConnectionSecretsToNamespace" not in composition["spec"]
    assert composition["spec"]["mode"] == "Pipeline"
    (step,) = composition["spec"]["pipeline"]
    assert step["functionRef"]["name"] == dependency_name(), "the name Crossplane gives the dependency"
    step_input = step["input"]
    assert step_input["apiVersion"] == f"{INPUT_GROUP}/{INPUT_VERSION}" and step_input["kind"] == "Input"
    input_crd = load_one(ROOT / "package/input" / f"{INPUT_GROUP}_inputs.yaml")
    jsonschema.validate(
        step_input,
        strict(input_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]),
        cls=OpenAPIValidator,
    )
    _, errors = parse_input(step_input)
    assert errors == []


def dependency_name() -> str:
    """The name Crossplane v2 gives a package it installs as a dependency: the repository path of the package
    reference as a DNS label (`ghcr.io/dbprovision/function-dbops` -> `dbprovision-function-dbops`)."""
    (dependency,) = load_one(ROOT / "apis/crossplane.yaml")["spec"]["dependsOn"]
    (namespaced,) = load_one(ROOT / "apis-namespaced/crossplane.yaml")["spec"]["dependsOn"]
    assert namespaced == dependency, "both Configurations call the same Function"
    repository = dependency["package"].split("/", 1)[1]
    return re.sub(r"[^a-z0-9]+", "-", repository.lower()).strip("-")


def test_package_metadata_validates_against_crossplane() -> None:
    function = load_one(ROOT / "package/crossplane.yaml")
    assert crd_errors(function, "meta.pkg.crossplane.io_functions.yaml", "v1") == []
    assert function["metadata"]["name"] == "function-dbops"
    assert dependency_name() == apigen.FUNCTION_NAME
    assert function["spec"]["capabilities"] == ["composition"]
    assert function["spec"]["crossplane"]["version"] == ">=v2.0.0"
    configuration = load_one(ROOT / "apis/crossplane.yaml")
    assert crd_errors(configuration, "meta.pkg.crossplane.io_configurations.yaml", "v1") == []
    assert configuration["spec"]["crossplane"]["version"] == ">=v2.0.0"
    namespaced = load_one(ROOT / "apis-namespaced/crossplane.yaml")
    assert crd_errors(namespaced, "meta.pkg.crossplane.io_configurations.yaml", "v1") == []
    assert namespaced["spec"]["crossplane"]["version"] == ">=v2.0.0"  # v2 XRDs need Crossplane v2
    assert namespaced["metadata"]["name"] != configuration["metadata"]["name"]
    (dependency,) = configuration["spec"]["dependsOn"]
    assert (dependency["apiVersion"], dependency["kind"]) == ("pkg.crossplane.io/v1", "Function")
    # The Function the Compositions call is the one the Configuration depends on and deploy/ installs.
    installed = load_one(ROOT / "deploy/function.yaml")
    assert installed["metadata"]["name"] == apigen.FUNCTION_NAME
    assert installed["spec"]["package"].rsplit(":", 1)[0] == dependency["package"]
    assert crd_errors(installed, "pkg.crossplane.io_functions.yaml", "v1") == []


def test_input_crd_is_a_valid_kubernetes_crd() -> None:
    crd = load_one(ROOT / "package/input" / f"{INPUT_GROUP}_inputs.yaml")
    assert kubernetes_validate.validate(crd, K8S_VERSION, strict=True) == K8S_VERSION
    assert structural_problems(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "input") == []


def test_render_functions_file_uses_the_development_runtime() -> None:
    function = load_one(ROOT / "examples/functions.yaml")
    assert crd_errors(function, "pkg.crossplane.io_functions.yaml", "v1") == []
    assert function["metadata"]["name"] == apigen.FUNCTION_NAME
    annotations = function["metadata"]["annotations"]
    assert annotations["render.crossplane.io/runtime"] == "Development"
    assert annotations["render.crossplane.io/runtime-development-target"] == "localhost:9443"


# --- what Kubernetes demands of the XRD schemas ---------------------------------------------------------------------


def structural_problems(schema: Schema, path: str) -> list[str]:
    """Violations of Kubernetes' structural-schema rules that our generator could produce."""
    problems: list[str] = []
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    if "default" in schema:
        _, errors = normalize(schema, schema["default"], path)
        problems += [f"default: {e}" for e in errors]
    if schema.get("x-kubernetes-list-type") == "set" and schema["items"].get("type") in ("object", "array"):
        problems.append(f"{path}: list-type set needs scalar items")
    if schema.get("x-kubernetes-list-type") == "map":
        items = schema["items"]
        for key in schema.get("x-kubernetes-list-map-keys", []):
            if key not in items.get("required", []) and "default" not in items["properties"].get(key, {}):
                problems.append(f"{path}: map key {key} must be required or defaulted")
    if "pattern" in schema and re.search(r"\(\?[=!<]|\\[1-9]", schema["pattern"]):
        problems.append(
            f"{path}: pattern {schema['pattern']} uses lookaround or backreferences, which RE2 refuses"
        )
    for rule in schema.get("x-kubernetes-validations", []):
        if not rule.get("message"):
            problems.append(f"{path}: rule {rule['rule']} has no message")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += structural_problems(schema[key], f"{path}[]")
    return problems


def cost_problems(schema: Schema, path: str, in_unbounded_list: bool = False) -> list[str]:
    """What would make the API server's CEL cost estimate refuse a rule: a string it reads without maxLength or
    enum, or a rule inside a list without maxItems."""
    problems: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if in_unbounded_list:
            problems.append(f"{path}: rule inside a list without maxItems: {rule['rule']}")
        targets = [""] if re.search(r"\bself\b(?!\.)", rule["rule"]) else []
        targets += re.findall(r"\bself((?:\.\w+)+)", rule["rule"])
        for chain in targets:
            node = schema
            for name in [n for n in chain.split(".") if n]:
                node = node.get("properties", {}).get(name, {})
            if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
                problems.append(f"{path}{chain}: read by {rule['rule']!r} but has no maxLength")
            if node.get("type") == "array" and "maxItems" not in node:
                problems.append(f"{path}{chain}: read by {rule['rule']!r} but has no maxItems")
    for name, sub in schema.get("properties", {}).items():
        problems += cost_problems(sub, f"{path}.{name}", in_unbounded_list)
    if isinstance(schema.get("items"), dict):
        problems += cost_problems(schema["items"], f"{path}[]", in_unbounded_list or "maxItems" not in schema)
    if isinstance(schema.get("additionalProperties"), dict):
        unbounded = in_unbounded_list or "maxProperties" not in schema
        problems += cost_problems(schema["additionalProperties"], f"{path}{{}}", unbounded)
    return problems


@pytest.mark.parametrize("info", ALL_INFOS, ids=ALL_IDS)
def test_xrd_schema_is_structural_and_within_the_cel_cost_budget(info: apigen.KindInfo) -> None:
    schema = xrd_file(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema, "") == []
    assert cost_problems(SPECS[info.kind], "spec") == []


def test_cost_check_catches_an_unbounded_string() -> None:
    schema: Schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "m"}],
    }
    assert cost_problems(schema, "spec") == ["spec.a: read by \"self.a == 'x'\" but has no maxLength"]


def claim_crd(info: apigen.KindInfo) -> dict[str, Any]:
    """The claim CRD Crossplane generates from our XRD (internal/xcrd: base props, our spec and status, its own claim
    fields and printer columns)."""
    xrd = xrd_file(info)
    version = xrd["spec"]["versions"][0]
    ours = version["schema"]["openAPIV3Schema"]
    spec = copy.deepcopy(ours["properties"]["spec"])
    spec["properties"].update(
        {
            "compositionRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
            "writeConnectionSecretToRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        }
    )
    status = copy.deepcopy(ours["properties"]["status"])
    status["properties"]["conditions"] = {"type": "array", "items": {"type": "object"}}
    columns = [
        *version["additionalPrinterColumns"],
        *[
            {
                "name": name,
                "type": "date" if name == "AGE" else "string",
                "jsonPath": ".metadata.creationTimestamp",
            }
            for name in apigen.CROSSPLANE_CLAIM_COLUMNS
        ],
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": xrd["spec"]["claimNames"],
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version["name"],
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": columns,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.mark.parametrize("info", INFOS, ids=KINDS)
def test_generated_claim_crd_is_a_valid_kubernetes_crd(info: apigen.KindInfo) -> None:
    assert kubernetes_validate.validate(claim_crd(info), K8S_VERSION, strict=True) == K8S_VERSION


# --- example claims ------------------------------------------------------------------------------------------------

EXAMPLE_SETS = {
    "quickstart": [ROOT / "examples/quickstart.yaml"],
    "postgres": sorted((ROOT / "examples/postgres").glob("*.yaml")),
    "mysql": sorted((ROOT / "examples/mysql").glob("*.yaml")),
}


def example_docs(name: str) -> list[dict[str, Any]]:
    return [doc for path in EXAMPLE_SETS[name] for doc in load_all(path)]


def claims(name: str) -> list[dict[str, Any]]:
    return [d for d in example_docs(name) if d["apiVersion"] == f"{GROUP}/{VERSION}"]


def claim_ids() -> list[tuple[str, str, str]]:
    return [(s, c["kind"], c["metadata"]["name"]) for s in EXAMPLE_SETS for c in claims(s)]


def test_quickstart_is_the_seed_verbatim() -> None:
    seeds = sorted(SEED.glob("*.txt"))
    if not seeds:
        pytest.fail(f"no seed under {SEED}: point DBOPS_SHARED at the directory holding seed/")
    (block,) = re.findall(r"```yaml\n(.*?)```", seeds[0].read_text(encoding="utf-8"), re.S)
    ours = (ROOT / "examples/quickstart.yaml").read_text(encoding="utf-8")
    assert ours.endswith(block), (
        "examples/quickstart.yaml must end with the seed's Quick Start block, unchanged"
    )
    assert [d["kind"] for d in load_all(ROOT / "examples/quickstart.yaml")] == [
        "Secret",
        "DatabaseInstance",
        "Database",
        "DatabaseUser",
    ]


@pytest.mark.parametrize("name", ["quickstart.yaml", "quickstart-mariadb.yaml"])
def test_namespaced_quickstart_is_the_claims_one_with_only_the_api_version_changed(name: str) -> None:
    """Moving to namespaced XRs is changing `apiVersion`: the kinds, names and specs stay (issue 16)."""
    claims_docs = load_all(ROOT / "examples" / name)
    namespaced_docs = load_all(ROOT / "examples/namespaced" / name)
    renamed = [
        {**d, "apiVersion": NAMESPACED.api_version} if d["apiVersion"] == f"{GROUP}/{VERSION}" else d
        for d in claims_docs
    ]
    assert namespaced_docs == renamed
    for doc in namespaced_docs[1:]:
        info = apigen.NAMESPACED_INFO[doc["kind"]]
        assert doc["apiVersion"] == f"{xrd_file(info)['spec']['group']}/{VERSION}"
        schema = xrd_file(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        jsonschema.validate(doc["spec"], strict(schema), cls=OpenAPIValidator)
        assert rule_errors(schema, with_defaults(schema, doc["spec"]), "spec") == []


@pytest.mark.parametrize(("example_set", "kind", "name"), claim_ids())
def test_example_claim_is_valid(example_set: str, kind: str, name: str) -> None:
    (claim,) = [c for c in claims(example_set) if c["kind"] == kind and c["metadata"]["name"] == name]
    info = apigen.KIND_INFO[kind]
    assert set(claim) <= {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    schema = xrd_file(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    # 1. The API server: OpenAPI schema (unknown fields refused), then defaults, then the CEL rules.
    jsonschema.validate(claim["spec"], strict(schema), cls=OpenAPIValidator)
    assert rule_errors(schema, with_defaults(schema, claim["spec"]), "spec") == []
    # 2. The function: the same schema with the Python twins, then the engine-dependent checks.
    value, errors = normalize(SPECS[kind], claim["spec"], "spec")
    assert errors == []
    assert rule_errors(SPECS[kind], value, "spec") == []
    instance = instance_of(example_set, claim)
    allow_global = bool(instance.get("allowGlobalGrants"))
    assert semantics.engine_errors(kind, str(instance["engine"]), value, "spec", allow_global) == []


def instance_of(example_set: str, claim: dict[str, Any]) -> dict[str, Any]:
    """The spec of the instance a claim refers to, following its references within the example set."""
    by_name = {(c["kind"], c["metadata"]["name"]): c for c in claims(example_set)}
    current = claim
    for _ in range(4):
        spec = current["spec"]
        if current["kind"] == "DatabaseInstance":
            return dict(spec)
        if "target" in spec:  # a DatabaseRestore
            spec = spec["target"]
        if "template" in spec:  # a DatabaseBackupSchedule
            spec = spec["template"]["spec"]
        if "instanceRef" in spec:
            current = by_name[("DatabaseInstance", spec["instanceRef"]["name"])]
        elif "databaseRef" in spec:
            current = by_name[("Database", spec["databaseRef"]["name"])]
        elif "roleRef" in spec:
            current = by_name[("DatabaseRole", spec["roleRef"]["name"])]
        else:
            current = by_name[("DatabaseUser", spec["userRef"]["name"])]
    raise AssertionError(f"cannot find the instance of {claim['metadata']['name']}")


@pytest.mark.parametrize("example_set", list(EXAMPLE_SETS))
def test_example_references_and_secrets_resolve_within_their_set(example_set: str) -> None:
    docs = example_docs(example_set)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    refs = {
        "instanceRef": "DatabaseInstance",
        "databaseRef": "Database",
        "userRef": "DatabaseUser",
        "roleRef": "DatabaseRole",
    }
    for claim in claims(example_set):
        spec = claim["spec"]
        for field, kind in refs.items():
            if field in spec:
                assert (kind, spec[field]["name"]) in names, f"{claim['metadata']['name']}: {field} dangles"
        secret_refs = [spec.get("connection", {}).get("secretRef"), spec.get("tls", {}).get("secretRef")]
        secret_refs.append(spec.get("existingPasswordSecret"))
        for ref in filter(None, secret_refs):
            assert ("Secret", ref["name"]) in names, (
                f"{claim['metadata']['name']}: Secret {ref['name']} missing"
            )
    for doc in docs:
        if doc["kind"] == "Secret":
            assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def _paths(value: Any, path: str) -> set[str]:
    out = {path}
    if isinstance(value, dict):
        for k, v in value.items():
            out |= _paths(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            out |= _paths(v, f"{path}[]")
    return out


def test_examples_use_every_field_of_every_kind() -> None:
    used: dict[str, set[str]] = {k: set() for k in KINDS}
    for example_set in EXAMPLE_SETS:
        for claim in claims(example_set):
            used[claim["kind"]] |= _paths(claim["spec"], "spec")
    missing = {
        kind: [
            f.path
            for f in apigen.fields(SPECS[kind], "spec")[1:]
            if f.path not in used[kind] and not go_only(kind, f.path)
        ]
        for kind in KINDS
    }
    assert {k: v for k, v in missing.items() if v} == {}


# --- deploy/ --------------------------------------------------------------------------------------------------------

DEPLOY_K8S = ["rbac.yaml", "rbac-pods.yaml", "rbac-namespaces.yaml", "deletion-protection.yaml"]


@pytest.mark.parametrize("filename", DEPLOY_K8S)
def test_deploy_manifests_are_valid_kubernetes(filename: str) -> None:
    for doc in load_all(ROOT / "deploy" / filename):
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_kubernetes_validate_is_strict_about_fields() -> None:
    (role,) = load_all(ROOT / "deploy/rbac.yaml")
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, K8S_VERSION, strict=True)


def _rules(path: str) -> tuple[dict[str, Any], dict[tuple[tuple[str, ...], tuple[str, ...]], set[str]]]:
    (role,) = load_all(ROOT / path)
    assert role["kind"] == "ClusterRole"
    assert role["metadata"]["labels"]["rbac.crossplane.io/aggregate-to-crossplane"] == "true"
    return role, {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}


def test_crossplane_may_manage_jobs_and_only_opting_in_reads_pods() -> None:
    """deploy/rbac.yaml, required: Jobs and CronJobs only. deploy/rbac-pods.yaml, the opt-in that goes with the Input's
    status.readPods (off by default and in every shipped Composition): Pods, read only."""
    jobs_role, jobs = _rules("deploy/rbac.yaml")
    assert jobs == {
        (("batch",), ("jobs", "cronjobs")): {"get", "list", "watch", "create", "update", "patch", "delete"}
    }
    pods_role, pods = _rules("deploy/rbac-pods.yaml")
    assert pods == {(("",), ("pods",)): {"get", "list", "watch"}}
    assert jobs_role["metadata"]["name"] != pods_role["metadata"]["name"]
    assert parse_input({})[0]["status"]["readPods"] is False
    for path in sorted(
        [*(ROOT / "apis").glob("*/composition.yaml"), *(ROOT / "apis-namespaced").glob("*/composition.yaml")]
    ):
        (comp,) = load_all(path)
        for step in comp["spec"]["pipeline"]:
            assert not step["input"].get("status", {}).get("readPods", False), path


def test_reading_namespaces_is_an_opt_in_read_only_role_of_its_own() -> None:
    """deploy/rbac-namespaces.yaml: only for DatabaseInstances that allow namespaces by label selector."""
    role, rules = _rules("deploy/rbac-namespaces.yaml")
    assert rules == {(("",), ("namespaces",)): {"get", "list", "watch"}}
    assert role["metadata"]["name"] not in {_rules("deploy/rbac.yaml")[0]["metadata"]["name"]}


def policy() -> tuple[dict[str, Any], dict[str, Any]]:
    vap, binding = load_all(ROOT / "deploy/deletion-protection.yaml")
    return vap, binding


def test_policy_matches_every_claim_and_composite_on_delete_only() -> None:
    vap, binding = policy()
    assert (
        vap["kind"] == "ValidatingAdmissionPolicy" and binding["kind"] == "ValidatingAdmissionPolicyBinding"
    )
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    (rule, namespaced) = vap["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [GROUP] and rule["operations"] == ["DELETE"]
    # Backups, restores and schedules have no deletionProtection: deleting their claim deletes no stored backup.
    protected = [i for i in INFOS if "deletionProtection" in SPECS[i.kind]["properties"]]
    expected = {i.plural for i in protected} | {i.xr_plural for i in protected}
    assert set(rule["resources"]) == expected
    # The namespaced XRs are what users create in that shape: protected the same way.
    assert namespaced["apiGroups"] == [NAMESPACED.group] and namespaced["operations"] == ["DELETE"]
    assert set(namespaced["resources"]) == {
        i.xr_plural for i in NAMESPACED_INFOS if "deletionProtection" in SPECS[i.kind]["properties"]
    }
    assert vap["spec"]["failurePolicy"] == "Fail"
    # Every kind has the field the policy reads, defaulted to true.
    for kind in KINDS:
        if kind not in ("DatabaseBackup", "DatabaseRestore", "DatabaseBackupSchedule"):
            assert SPECS[kind]["properties"]["deletionProtection"]["default"] is True


def admission(
    operation: str,
    resource: str,
    name: str,
    namespace: str,
    old_spec: dict[str, Any] | None,
    new_spec: Any = None,
    user: str = "alice",
    namespace_deleting: bool = False,
    group: str = GROUP,
) -> tuple[bool, str]:
    """Run the policy's validation on one admission request: (allowed, message). A cluster-scoped request has no
    `namespace` field (as the API server sends it) and no namespace object."""
    vap, _ = policy()
    (validation,) = vap["spec"]["validations"]
    request: dict[str, Any] = {
        "operation": operation,
        "name": name,
        "resource": {"group": group, "version": VERSION, "resource": resource},
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
    }
    if namespace:
        request["namespace"] = namespace
    old = None if old_spec is None else {"metadata": {"name": name}, "spec": old_spec}
    new = None if new_spec is None else {"metadata": {"name": name}, "spec": new_spec}
    ns_object: dict[str, Any] | None = None
    if namespace:
        ns_object = {"metadata": {"name": namespace}}
        if namespace_deleting:
            ns_object["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    variables = {"request": request, "object": new, "oldObject": old, "namespaceObject": ns_object}
    allowed = bool(evaluate(validation["expression"], variables))
    message = "" if allowed else str(evaluate(validation["messageExpression"], variables))
    return allowed, message


@pytest.mark.parametrize("spec", [{"deletionProtection": True}, {}], ids=["true", "absent"])
def test_delete_of_a_protected_claim_is_refused_with_the_way_out(spec: dict[str, Any]) -> None:
    allowed, message = admission("DELETE", "databases", "myapp-db", "team-a", {"name": "myapp", **spec})
    assert not allowed
    assert message.startswith(
        "databases.dbops.dbprovision.io team-a/myapp-db has spec.deletionProtection: true"
    )
    assert (
        "kubectl patch databases.dbops.dbprovision.io myapp-db -n team-a --type merge "
        """-p '{"spec":{"deletionProtection":false}}'"""
    ) in message
    assert "would not drop anything in the database server" in message


@pytest.mark.parametrize("spec", [{"deletionProtection": True}, {}], ids=["true", "absent"])
def test_delete_of_a_protected_namespaced_xr_is_refused_with_the_way_out(spec: dict[str, Any]) -> None:
    allowed, message = admission(
        "DELETE", "databaseusers", "myapp-user", "team-a", spec, group=NAMESPACED.group
    )
    assert not allowed
    assert message.startswith("databaseusers.ns.dbops.dbprovision.io team-a/myapp-user has")
    assert (
        "kubectl patch databaseusers.ns.dbops.dbprovision.io myapp-user -n team-a --type merge "
        """-p '{"spec":{"deletionProtection":false}}'"""
    ) in message
    allowed, _ = admission(
        "DELETE",
        "databaseusers",
        "myapp-user",
        "team-a",
        {"deletionProtection": False},
        group=NAMESPACED.group,
    )
    assert allowed


def test_delete_of_a_protected_composite_points_at_its_claim() -> None:
    allowed, message = admission(
        "DELETE", "xdatabaseusers", "myapp-user-x7k2p", "", {"deletionProtection": True}
    )
    assert not allowed
    assert message.startswith("xdatabaseusers.dbops.dbprovision.io myapp-user-x7k2p has")
    assert "crossplane.io/claim-name" in message and " -n " not in message


@pytest.mark.parametrize("resource", sorted({i.plural for i in INFOS} | {i.xr_plural for i in INFOS}))
def test_delete_of_an_unprotected_object_is_allowed(resource: str) -> None:
    namespace = "" if resource.startswith("x") else "team-a"
    assert admission("DELETE", resource, "obj", namespace, {"deletionProtection": False}) == (True, "")


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "CONNECT"])
def test_other_operations_are_untouched(operation: str) -> None:
    old = None if operation == "CREATE" else {"deletionProtection": True}
    assert admission(operation, "databases", "db", "team-a", old, {"deletionProtection": True}) == (True, "")


def test_a_namespace_being_deleted_takes_its_protected_claims_with_it() -> None:
    assert admission("DELETE", "databases", "db", "team-a", {}, namespace_deleting=True) == (True, "")
    assert not admission("DELETE", "databases", "db", "team-a", {}, namespace_deleting=False)[0]


def test_crossplane_may_delete_what_an_uninstall_or_a_deleted_claim_leaves() -> None:
    crossplane = "system:serviceaccount:crossplane-system:crossplane"
    assert admission("DELETE", "xdatabases", "db-x1", "", {}, user=crossplane) == (True, "")
    assert admission("DELETE", "databases", "db", "team-a", {}, user=crossplane) == (True, "")
    assert not admission(
        "DELETE", "xdatabases", "db-x1", "", {}, user="system:serviceaccount:team-a:deployer"
    )[0]


def test_policy_expressions_only_read_fields_kubernetes_provides() -> None:
    vap, _ = policy()
    for validation in vap["spec"]["validations"]:
        for expression in (validation["expression"], validation["messageExpression"]):
            assert set(
                re.findall(
                    r"\b(request|object|oldObject|params|variables|authorizer|namespaceObject)\b", expression
                )
            ) <= {"request", "object", "oldObject", "namespaceObject"}
            assert not is_transition_rule(expression)


def test_status_schemas_carry_no_rules() -> None:
    # Status is written by the function through server-side apply; a rule there could wedge reconciliation.
    for kind in KINDS:
        assert "x-kubernetes-validations" not in str(status_schema(kind))
