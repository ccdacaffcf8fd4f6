"""The house's import rules, read from the source (issue 15): imports run one way, down the layers, and no module
imports itself back round a circle, except the deliberate numba dispatch of ``aetbench.structures``.

Every ``import`` / ``from ... import`` of an aetbench module in every file of ``aetbench/`` is counted, parsed
with :mod:`ast`: module-level imports (also inside ``try`` / ``if`` at module level) and function-level (lazy)
imports alike, since a lazy import runs too, only later.  Imports under ``if TYPE_CHECKING:`` are not counted
(they never run).  ``from pkg import name`` counts as an import of the module ``pkg.name`` when that is a
module, else of ``pkg``.  The package root ``aetbench/__init__.py`` is left out as an importer: it runs before
any submodule, re-exports the types and wires things up (numba's cache folder, the types' file readers); no
module imports it (:func:`test_nothing_imports_the_package_root`).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "aetbench"

#: layers, bottom up; a module may import its own layer and the layers below, never a higher one.
#: ``options`` (the one config engine) sits on the ground floor: the stages' own settings (``ADFConfig``,
#: ``PtychoConfig``, ...) are validated by it, so it may import nothing above the ground floor.
#: ``score`` is a stage (it computes); ``report`` only renders, so it may import score, never the reverse.
#: ``data`` (the package's own scenarios, recipes and benches) and ``_version`` import nothing of aetbench.
LAYERS = [
    ("ground", {"types", "geometry", "errors", "published", "optics", "options", "config", "data", "_version"}),
    ("io", {"io"}),
    ("stages", {"structures", "simulate", "ptycho", "preprocess", "reconstruct", "trace", "score"}),
    ("methods", {"methods", "scenario", "cache", "estimate", "measured", "provenance"}),
    ("pipeline", {"pipeline"}),
    ("report", {"report"}),
    ("commands", {"compare", "reproduce"}),   # commands that run scenarios and render their own reports
    ("cli", {"cli"}),
    ("benchmarks", {"benchmarks"}),           # benchmark tests shipped in the package: may use anything
]

#: modules placed on another layer than their package's, with the reason
PLACED = {
    # the `aetbench structure` and `aetbench score` commands: built on the stages, with the result cache and the
    # input checks of the application layer (the CLI and the pipeline call them)
    "aetbench.structures.command": "methods",
    "aetbench.score.command": "methods",
}

#: (importer, imported): the only upward imports, each with its reason
UPWARD_ALLOWED = {
    ("aetbench.pipeline", "aetbench.report.markdown"):
        "a run ends by handing its computed score tables to the renderer (write_report); nothing in the report "
        "computes, and the report never imports the pipeline",
    ("aetbench.pipeline", "aetbench.report.reference"):
        "the same hand-over for the measured-data reference section",
    ("aetbench.pipeline", "aetbench.report.html"):
        "the same hand-over: the rendered report.md as one self-contained HTML file",
}

#: the only import circles, each with its reason
CYCLES_ALLOWED = {
    frozenset({"aetbench.structures.md", "aetbench.structures.sw", "aetbench.structures.gupta",
               "aetbench.structures.eam"}):
        "numba dispatch: the MD loops of md.py call each potential's compiled kernel (_sw, _gupta, _eam) "
        "directly, and each potential module hands back an md.Potential (lazy import) for the loop to run",
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _targets(current: str, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "aetbench"]
    is_pkg = MODULES[current].name == "__init__.py"
    base = current if is_pkg else current.rsplit(".", 1)[0]
    if node.level:
        for _ in range(node.level - 1):
            base = base.rsplit(".", 1)[0]
        mod = base + ("." + node.module if node.module else "")
    else:
        mod = node.module or ""
        if mod.split(".")[0] != "aetbench":
            return []
    return [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]


def _is_type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, lazy) for every aetbench import in aetbench/, as described above."""
    found = []
    for mod, path in MODULES.items():
        if mod == "aetbench":
            continue

        def walk(node, lazy):
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    found.extend((mod, t, child.lineno, lazy) for t in _targets(mod, child))
                walk(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        walk(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def test_nothing_imports_the_package_root():
    """``from . import __version__`` and the like would make a circle through ``aetbench/__init__.py``."""
    bad = [f"{MODULES[a].relative_to(ROOT.parent)}:{line}" for a, b, line, _ in imports() if b == "aetbench"]
    assert not bad, f"imports of the package root: {bad}"


def layer_of(module: str) -> int:
    name = PLACED.get(module)
    part = module.split(".")[1]
    for i, (layer, members) in enumerate(LAYERS):
        if layer == name or (name is None and part in members):
            return i
    raise AssertionError(f"{module}: on no layer; add its top-level name to LAYERS in tests/test_layers.py")


def test_every_module_has_a_layer():
    for mod in MODULES:
        if mod != "aetbench":
            layer_of(mod)


def test_no_import_runs_up_a_layer():
    bad = []
    for a, b, line, lazy in imports():
        if b == "aetbench":  # the package root: test_nothing_imports_the_package_root
            continue
        if layer_of(b) > layer_of(a) and (a, b) not in UPWARD_ALLOWED:
            bad.append(f"{MODULES[a].relative_to(ROOT.parent)}:{line} imports {b}{' (lazily)' if lazy else ''}: "
                       f"{LAYERS[layer_of(a)][0]} -> {LAYERS[layer_of(b)][0]}")
    assert not bad, "imports up the layers:\n" + "\n".join(bad)


def test_upward_allow_list_is_used():
    """Every allowed upward import still exists (a stale entry would hide a future one)."""
    pairs = {(a, b) for a, b, _, _ in imports()}
    assert set(UPWARD_ALLOWED) <= pairs, set(UPWARD_ALLOWED) - pairs


def _cycles(edges) -> list[frozenset]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph = defaultdict(set)
    for a, b in edges:
        if a != b:
            graph[a].add(b)
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_cycle_finder_finds_a_circle():
    assert _cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [frozenset("abc")]
    assert _cycles([("a", "b"), ("b", "c")]) == []


def test_no_import_cycles_but_the_numba_dispatch():
    found = _cycles((a, b) for a, b, _, _ in imports())
    unexpected = [sorted(c) for c in found if c not in CYCLES_ALLOWED]
    assert not unexpected, f"import cycles: {unexpected}"
    assert set(CYCLES_ALLOWED) <= set(found), "an allowed cycle is gone: remove it from CYCLES_ALLOWED"


def test_types_import_no_io():
    """The shared types import nothing of aetbench but the ground floor (their file readers register from io)."""
    for a, b, line, _ in imports():
        if a == "aetbench.types" and b != "aetbench":
            assert layer_of(b) == 0, f"types.py:{line} imports {b}"
