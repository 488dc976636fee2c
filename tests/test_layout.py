"""The package's layout: no import cycle among gan_lab's modules (module-level or inside
functions), none among its packages (``gan_lab.study`` -> ``gan_lab.evaluators`` ->
``gan_lab.metrics``, never back), `gan_lab.cli` only dispatches (nothing imports it), and the installed package imports
nothing from the developer tools in `benchmarks/` (which are not installed with it)."""

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


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto gan_lab's packages and top-level modules
    (``gan_lab.study.jobs`` -> ``gan_lab.study``); the package ``gan_lab`` itself left out.

    >>> package_graph({"gan_lab.a.x": {"gan_lab.b.y", "gan_lab.a.z"}, "gan_lab.b.y": {"gan_lab.c"}})
    {'gan_lab.a': {'gan_lab.b'}, 'gan_lab.b': {'gan_lab.c'}, 'gan_lab.c': set()}
    """

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "gan_lab":
            continue
        own = folded.setdefault(package(module), set())
        for t in targets:
            if t != "gan_lab" and package(t) != package(module):
                own.add(package(t))
                folded.setdefault(package(t), set())
    return folded


def test_package_graph_finds_a_cycle_between_packages_that_modules_alone_do_not_show():
    graph = {
        "gan_lab.a.x": {"gan_lab.b.y"},
        "gan_lab.b.z": {"gan_lab.a.w"},
        "gan_lab.b.y": set(),
        "gan_lab.a.w": set(),
    }
    assert cycles(graph) == []
    assert cycles(package_graph(graph)) == [["gan_lab.a", "gan_lab.b"]]


def test_no_import_cycle_between_gan_labs_packages():
    assert cycles(package_graph(import_graph())) == []


def test_nothing_imports_the_cli():
    assert [m for m, targets in import_graph().items() if "gan_lab.cli" in targets] == []


def imports_of(prefix: str, root: Path = ROOT) -> dict[str, set[str]]:
    """``file under root -> the modules it imports that are prefix or under it`` (absolute imports,
    module-level or inside functions)."""
    found = {}
    for path in root.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        hits = {n for n in names if n == prefix or n.startswith(prefix + ".")}
        if hits:
            found[path.relative_to(root).as_posix()] = hits
    return found


def test_imports_of_finds_the_imports_it_is_shown(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from benchmarks.bench import run_bench\n")
    (tmp_path / "b.py").write_text("import benchmarks\nimport benchmarks_x\nfrom . import benchmarks\n")
    assert imports_of("benchmarks", tmp_path) == {"a.py": {"benchmarks.bench"}, "b.py": {"benchmarks"}}


def test_gan_lab_imports_nothing_from_benchmarks():
    assert imports_of("benchmarks") == {}
