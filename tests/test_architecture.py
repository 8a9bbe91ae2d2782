"""The architecture of DESIGN.md holds: layers import only downward, no module imports back
into one that imports it, connectors and tracking stay free of what they must not know."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

ROOT = REPO
PACKAGES = ("flows", "forecasting", "nlp", "db")

FORBIDDEN = {
    "forecasting": {"db", "nlp", "flows", "prefect", "mlflow", "sqlalchemy"},
    "nlp": {"db", "forecasting", "flows", "prefect", "mlflow", "sqlalchemy"},
    "db": {"forecasting", "nlp", "flows", "prefect", "mlflow", "torch"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_what_design_allows(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN[package]
            ]
    assert offenders == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every project module -> the project modules it imports (function-level imports too)."""
    files = {
        _module_name(p): p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if "migrations" not in p.parts
    }
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                # Importing a package's own __init__ from inside it is how packages work.
                if target and target != module and not module.startswith(f"{target}."):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_among_project_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    graph = import_graph()
    graph["db.engine"].add("flows.cli.common")  # as if db imported the CLI back
    assert any("db.engine" in c and "flows.cli.common" in c for c in cycles(graph))


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("flows/sources", {"prefect", "mlflow"}), ("flows/tracking", {"prefect"})],
)
def test_connectors_and_tracking_stay_free_of_the_orchestrator(
    folder: str, forbidden: set[str]
) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in (ROOT / folder).rglob("*.py")
        for target in sorted(import_graph_external(path))
        if target.split(".")[0] in forbidden
    ]
    assert offenders == []


def import_graph_external(path: Path) -> set[str]:
    """Absolute module names one file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_tracking_imports_nothing_of_the_series_and_text_flows() -> None:
    offenders = [
        f"{module}: {target}"
        for module, targets in import_graph().items()
        if module.startswith("flows.tracking")
        for target in sorted(targets)
        if target.startswith(("flows.series", "flows.text"))
    ]
    assert offenders == []


MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 300


def test_flows_functions_and_files_stay_short() -> None:
    """No function in flows/ over 60 lines unless its docstring says why (``Long because``);
    no file over 300 lines."""
    long: list[str] = []
    for path in sorted((ROOT / "flows").rglob("*.py")):
        source = path.read_text()
        if source.count("\n") > MAX_FILE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                reason = "Long because" in (ast.get_docstring(node) or "")
                if lines > MAX_FUNCTION_LINES and not reason:
                    long.append(f"{path.relative_to(ROOT)}: {node.name} has {lines} lines")
    assert long == []
