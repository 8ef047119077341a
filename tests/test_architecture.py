"""The shape of the code: no import cycles, data flowing one way, thin interfaces.

Read from the source (every import, also those inside functions), not from what happens to
be imported at run time."""

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sashie"

# Lower layers never import higher ones (sources -> regions -> vectors -> search -> library
# -> interfaces). Each key may import only the packages of its own layer and those below;
# the middle is ordered too, so that an upward import (regions reaching into ingest) fails.
LAYERS = [
    {"errors", "extras"},
    {"store", "sources", "classify", "filter"},
    {"regions", "encoders"},
    {"adapt"},
    {"ingest", "search", "printings", "map"},
    {"compose"},
    {"library"},
    {"app", "eval"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The sashie modules `name` imports: `from pkg import sub` counts as importing the
    submodule when there is one, else the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("sashie")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if not origin.startswith("sashie"):
                continue
            for alias in node.names:
                sub = f"{origin}.{alias.name}"
                found.add(sub if sub in known else origin)
    return {m for m in found if m in known and m != name}


@cache
def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_relative_lazy_and_submodule_imports():
    graph = import_graph()
    assert "sashie.regions.layout" in graph["sashie.regions.registry"]  # inside a function
    assert "sashie.sources.pages" in graph["sashie.regions.base"]  # from ..sources.pages
    assert "sashie.eval.bench_adapt" in graph["sashie.eval.bench"]  # from . import bench_adapt


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for number, layer in enumerate(LAYERS):
        if top in layer:
            return number
    return len(LAYERS)  # sashie/__init__.py, __main__.py: the top


@pytest.mark.parametrize("module", sorted(modules()))
def test_data_flows_one_way(module):
    graph = import_graph()
    upward = [m for m in graph[module] if layer_of(m) > layer_of(module)]
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_the_interfaces_use_only_the_library_verbs():
    """The CLI, the server, the demo and the experiments never touch the catalog or another
    object's private members: what they need is a public verb of `Library`."""
    offences = []
    for folder in ("app", "eval"):
        for path in (PACKAGE / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute):
                    owner = node.value.id if isinstance(node.value, ast.Name) else None
                    private = node.attr.startswith("_") and not node.attr.startswith("__")
                    if node.attr == "catalog" or (private and owner not in ("self", "cls")):
                        offences.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
                if isinstance(node, ast.ImportFrom) and "store" in (node.module or ""):
                    offences.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports store")
    assert not offences, offences


def test_the_runtime_does_not_import_the_research_tooling():
    """`sashie.eval` (the world, the benches, the demo, the trainers) is loaded by the
    commands that need it through `sashie.extras.research`, never imported by the runtime."""
    graph = import_graph()
    offences = [
        f"{module} imports {imported}"
        for module, imports in graph.items()
        if not module.startswith("sashie.eval")
        for imported in imports
        if imported.startswith("sashie.eval")
    ]
    assert not offences, offences
