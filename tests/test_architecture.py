"""The shape of the code, as docs/architecture.md draws it: no import cycles between modules,
packages import only the layers below them, and the runtime, the artifact store and the spec
layer never import Airflow. Read from the source (``ast``), so function-level imports count too."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aq_airflow"

# Which aq_airflow packages each package may import (docs/architecture.md, "Layers").
ALLOWED: dict[str, set[str]] = {
    "artifacts": set(),
    "runtime": {"artifacts"},
    "pipeline_spec": {"artifacts", "runtime"},
    "plan": {"pipeline_spec"},
    "warehouse": {"artifacts"},
    # pipeline_spec: GX imported one way, by validate and the checks tasks (pipeline_spec.expectations)
    "quality": {"artifacts", "pipeline_spec", "plan", "results", "warehouse"},
    "results": {"artifacts", "plan", "warehouse"},
    "runners": {"artifacts", "plan", "runtime"},
    # the model layouts, signatures, Open Inference Protocol client and local model server of `serve:`
    "serving": {"artifacts", "plan"},
    "client": {"artifacts"},
    # client: the same step's earlier output, which a `schema_change` check compares with
    "operators": {"artifacts", "client", "plan", "quality", "results", "runners", "runtime", "serving", "warehouse"},
    "live_dags": {"operators", "pipeline_spec", "plan"},
    "codegen": {"operators", "plan"},
    "devstack": set(),
    "ui": {"artifacts", "client", "operators", "plan", "results", "warehouse"},  # operators: the plugin's extra link
}
# never Airflow: what a step image and the notebook client import
NO_AIRFLOW = ("artifacts", "runtime", "client", "serving", "warehouse/session.py")
# Airflow only inside functions (what `validate` and editors import; `validate --deep` imports a
# spec's operator classes when it is asked to)
NO_AIRFLOW_AT_IMPORT = ("pipeline_spec", "plan", "devstack")


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations
    only: never run, so never a cycle)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _top_level_imports(path: pathlib.Path) -> set[str]:
    """The modules a file imports when it is imported (not inside functions or TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
    return found


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """Every module ``name`` imports (top-level or inside a function); ``from p import m`` counts
    as importing ``p.m`` when that is a module, else ``p``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(module)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in graph:
                continue
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> str | None:
    """The aq_airflow package a module belongs to (None: not ours, or a top-level module)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "aq_airflow" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer):
    wrong = {
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if _layer(name) == layer
        for target in targets
        if _layer(target) not in (None, layer) and _layer(target) not in ALLOWED[layer]
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("place", NO_AIRFLOW)
def test_never_airflow(place):
    paths = [PACKAGE / place] if place.endswith(".py") else sorted((PACKAGE / place).rglob("*.py"))
    wrong = [
        f"{path.relative_to(ROOT)} imports {target}"
        for path in paths
        for name in [next(n for n, p in MODULES.items() if p == path)]
        for target in GRAPH[name]
        if target.split(".")[0] == "airflow"
    ]
    assert not wrong, wrong


@pytest.mark.parametrize("place", NO_AIRFLOW_AT_IMPORT)
def test_airflow_only_inside_functions(place):
    wrong = [
        f"{path.relative_to(ROOT)} imports {target} at import time"
        for path in sorted((PACKAGE / place).rglob("*.py"))
        for target in _top_level_imports(path)
        if target.split(".")[0] == "airflow"
    ]
    assert not wrong, wrong


def test_tests_and_bench_do_not_import_each_other():
    wrong = []
    for folder, other in (("tests", "bench"), ("bench", "tests")):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                wrong += [f"{path.relative_to(ROOT)} imports {n}" for n in names if n.split(".")[0] == other]
    assert not wrong, wrong
