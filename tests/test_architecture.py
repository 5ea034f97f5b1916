"""The layout docs/architecture.md describes, kept true: who may import whom, no import cycles, and what each
runtime loads.

The import graph is read from the source (every `import` statement, at module level or inside a function), so a
local import cannot hide a cycle: an import placed in a function body to dodge one still counts here. Imports under
`if TYPE_CHECKING:` are left out: they never run, they only name a type for mypy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dbops_api", "function", "worker", "dbops_local", "tools")
# The cycle check reads the tests too ("no import cycle anywhere").
EVERYWHERE = (*PACKAGES, "tests")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in EVERYWHERE for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ours an import names: `a.b.c` may be a module, or a name inside module `a.b`."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> set[str]:
    """Our modules that `module` imports, wherever the import statement stands."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    return {m: imports(m) for m in modules()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each a cycle or a knot of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_anywhere() -> None:
    assert cycles(graph()) == []


def test_every_module_imports() -> None:
    """Each module on its own, in a fresh interpreter, in an order no other test imposes."""
    names = [m for m in modules() if m.split(".")[0] in PACKAGES]
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("package", "never"), [("function", "worker"), ("worker", "function")])
def test_the_function_and_the_worker_never_import_each_other(package: str, never: str) -> None:
    offenders = {
        m: sorted(t for t in targets if t.split(".")[0] in (never, "dbops_local", "tools"))
        for m, targets in graph().items()
        if m.split(".")[0] == package
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_contract_package_imports_only_itself_and_the_standard_library() -> None:
    for module, path in modules().items():
        if module.split(".")[0] != "dbops_api":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                assert top == "dbops_api" or top in sys.stdlib_module_names or top == "__future__", (
                    f"{module} imports {top}: dbops_api must stay standard library only (both images carry it)"
                )


def _loaded(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return {line.split(".")[0] for line in done.stdout.split()}


DRIVERS = {"sqlalchemy", "psycopg2", "pymysql", "scramp", "nacl", "worker"}
RPC = {
    "grpc",
    "google",
    "crossplane",
    "celpy",
    "structlog",
    "click",
    "yaml",
    "prometheus_client",
    "function",
    "dbops_local",
}


def test_the_function_loads_no_database_driver() -> None:
    loaded = _loaded("import function.fn, function.main")
    assert "grpc" in loaded, "the probe must see what the function loads"
    assert loaded & DRIVERS == set()


@pytest.mark.parametrize(
    "statement", ["import worker.cli", "import worker.cli, worker.engine, worker.adapters"]
)
def test_the_worker_loads_no_grpc(statement: str) -> None:
    loaded = _loaded(statement)
    assert "worker" in loaded
    assert loaded & RPC == set()


def test_an_outcome_cannot_change_once_built() -> None:
    """Builders make a new Outcome (`adding`, `dataclasses.replace`); none can change one another has built."""
    import dataclasses

    from function.outcome import Composed, Condition, Outcome, Result

    out = Outcome(
        resources={"a": Composed({"kind": "Job"})}, conditions=[Condition("Provisioned", "True", "Ok")]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.status = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        out.resources["b"] = Composed({})  # type: ignore[index]
    with pytest.raises(TypeError):
        out.requirements["pods"] = None  # type: ignore[index,assignment]
    assert isinstance(out.conditions, tuple) and isinstance(out.results, tuple)
    more = out.adding(results=[Result("Warning", "w")])
    assert out.results == () and [r.message for r in more.results] == ["w"]
    assert more.resources == out.resources
