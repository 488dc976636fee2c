"""The package's layout: no import cycle among gan_lab's modules (module-level or inside
functions), and `gan_lab.cli` only dispatches (nothing imports it)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gan_lab"


def import_graph() -> dict[str, set[str]]:
    """``module -> modules of gan_lab it imports`` (a package and its own submodules aside)."""
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("gan_lab", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        mods[name] = path
    graph = {}
    for name, path in mods.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gan_lab"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("gan_lab")}
        graph[name] = {
            t
            for t in targets
            if t in mods and t != name and not (t.startswith(name + ".") or name.startswith(t + "."))
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_cycle_it_is_shown():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_gan_lab():
    assert cycles(import_graph()) == []


def test_nothing_imports_the_cli():
    assert [m for m, targets in import_graph().items() if "gan_lab.cli" in targets] == []
