"""The package's layering (README "Layout"): imports at the head of each file, downward only, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dgn"

# low → high; a module may import its own layer and the ones below it
LAYERS = [
    ("", "errors"),  # "": the package's own __init__
    ("data", "storage", "timing", "cluster"),
    ("nets",),
    ("am",),
    ("metrics",),
    ("train",),
    ("quality",),
    ("tracking",),
    ("atlas", "sweep", "job"),
    ("cli",),
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it")


def _imports(path: Path) -> tuple[list[str], list[str]]:
    """(dgn modules imported at the top level, 'line: module' of dgn imports inside functions)."""
    tree = ast.parse(path.read_text())
    top, inner = [], []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dgn"):
            # `from dgn.data import shapes` imports the module dgn.data.shapes, not only the package
            subs = [f"{node.module}.{a.name}" for a in node.names if (ROOT.parent / f"{node.module}.{a.name}"
                                                                    .replace(".", "/")).with_suffix(".py").is_file()]
            top += subs or [node.module]
        elif isinstance(node, ast.Import):
            top += [a.name for a in node.names if a.name.startswith("dgn")]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("dgn"):
                    inner.append(f"{sub.lineno}: {sub.module}")
    return top, inner


def _graph() -> dict[str, list[str]]:
    return {_module(p): _imports(p)[0] for p in sorted(ROOT.rglob("*.py"))}


def test_every_dgn_import_is_at_the_head_of_its_file():
    inner = {str(p.relative_to(ROOT.parent)): _imports(p)[1] for p in sorted(ROOT.rglob("*.py"))}
    assert {k: v for k, v in inner.items() if v} == {}


def test_imports_go_down_the_layers():
    wrong = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
             for m, deps in _graph().items() for d in deps if _layer(d) > _layer(m)]
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()

    def resolve(name: str) -> str:  # `from dgn.data import x` is the package dgn.data
        while name not in graph and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in map(resolve, graph.get(m, [])):
            if d == m:
                continue
            if state.get(d) == 1:
                cycles.append(" → ".join(stack[stack.index(d):] + [d]) if d in stack else f"{m} → {d}")
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_layer_table_sees_a_violation():
    # the checks above would pass vacuously on an empty graph
    graph = _graph()
    assert len(graph) > 60 and _layer("dgn.job.run") > _layer("dgn.train.loops") > _layer("dgn.nets.caffenet")
