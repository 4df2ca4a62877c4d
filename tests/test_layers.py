"""The import graph points down the layers, and nothing imports the repository's folders by their generic names.

Every import statement is read with ``ast``: at module level, inside functions and under ``TYPE_CHECKING`` alike (a
cycle hidden behind a function-local import is still a cycle), with relative imports resolved. ``training/`` and
``demos/`` are read as the packages they install as (``reasonembed_rag.training``, ``reasonembed_rag.demos``).
A failure names the importing file and line and the module it imports.

Whether importing ``reasonembed_rag`` pulls in llama_index, langchain or chromadb is checked by running it, in
``tests/test_encoder.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .source_layout import ROOT, SOURCE_FOLDERS

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core: encoder, models, instructions, llm, retrieval, fusion, rerank, expansion, jsonl",
        ("reasonembed_rag",),  # every module of the package that no row below names
    ),
    (
        "store and framework integrations",
        # The package's own __init__ belongs here: its public API re-exports ChromaStore and the adapters.
        # distributed (Ray Data embedding) writes through ChromaStore.
        (
            "reasonembed_rag.__init__",
            "reasonembed_rag.store",
            "reasonembed_rag.integrations",
            "reasonembed_rag.distributed",
        ),
    ),
    (
        "evaluation and robustness",
        ("reasonembed_rag.evaluation", "reasonembed_rag.robustness"),
    ),
    (
        "training and demos",
        ("reasonembed_rag.training", "reasonembed_rag.demos"),
    ),
    (
        "command line",
        ("reasonembed_rag.cli",),
    ),
)
"""Layers from low to high, each with the modules it holds (a name covers its sub-modules; the longest name that
matches wins, so a module under ``reasonembed_rag`` that no other row names is core). A module may import its own
layer and the layers below it. ``reasonembed_rag.__init__`` names the package's ``__init__.py`` alone."""

INDEPENDENT_PACKAGES = ("reasonembed_rag.training", "reasonembed_rag.demos")
"""Packages of one layer that must not import each other: what both need belongs in a lower layer."""


@dataclass(frozen=True)
class Import:
    """One import statement's edge in the module graph."""

    importer: str
    imported: str
    file: Path
    line: int

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def _listing(edges: list[Import], describe=lambda module: module) -> str:
    """One line per import statement, in file and line order (``from x import a, b`` once)."""
    lines = {
        (str(edge.file), edge.line, edge.imported): (
            f"  {edge.where()}: {describe(edge.importer)} imports {describe(edge.imported)}"
        )
        for edge in edges
    }
    return "\n".join(lines[key] for key in sorted(lines))


def _modules() -> dict[str, Path]:
    """Every module of the three source folders, by its installed name (a package by ``pkg.__init__``)."""
    modules = {}
    for folder, package in SOURCE_FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted import name loads: ``pkg`` means ``pkg.__init__`` when ``pkg`` is a package of ours."""
    return f"{name}.__init__" if f"{name}.__init__" in MODULES else name


def _imports(module: str, path: Path) -> Iterator[Import]:
    package = module.rsplit(".", 1)[0]  # a package's __init__ and a plain module both resolve against their package
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, _resolve(alias.name), path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(package, node.level, node.module or "", f"{path}:{node.lineno}")
            for alias in node.names:
                # `from pkg import name` loads the sub-module pkg.name when there is one, else an attribute of pkg.
                candidate = f"{target}.{alias.name}"
                if candidate in MODULES or f"{candidate}.__init__" in MODULES:
                    yield Import(module, _resolve(candidate), path, node.lineno)
                else:
                    yield Import(module, _resolve(target), path, node.lineno)
        elif isinstance(node, ast.Call) and _called_name(node) in ("import_module", "__import__") and node.args:
            # A literal name passed to importlib.import_module / __import__ is an import too (a dispatch table of
            # module names is not: it has no literal at the call).
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value.lstrip(".")
                level = len(first.value) - len(name)
                target = _absolute(package, level, name, f"{path}:{node.lineno}")
                yield Import(module, _resolve(target), path, node.lineno)


def _absolute(package: str, level: int, name: str, where: str) -> str:
    """The absolute name of an import made ``level`` dots above ``package`` (0: already absolute)."""
    if not level:
        return name
    base = package.split(".")
    if level - 1 >= len(base):
        raise AssertionError(f"{where}: relative import goes above the top-level package.")
    return ".".join(base[: len(base) - (level - 1)] + ([name] if name else []))


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


IMPORTS: list[Import] = [edge for module, path in MODULES.items() for edge in _imports(module, path)]


def layer_of(module: str) -> int | None:
    """Index into :data:`LAYERS` of the row with the longest name covering ``module``; None outside the project."""
    best: tuple[int, int] | None = None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[0]:
                    best = (len(name), index)
    return None if best is None else best[1]


def _upward_imports() -> list[Import]:
    upward = []
    for edge in IMPORTS:
        source, target = layer_of(edge.importer), layer_of(edge.imported)
        if source is not None and target is not None and target > source:
            upward.append(edge)
    return upward


def test_the_layer_table_sees_the_whole_tree():
    """The graph was read (a broken walk would pass every check vacuously) and the table places known modules."""
    assert len(MODULES) > 40 and len(IMPORTS) > 200, (len(MODULES), len(IMPORTS))
    expected = {
        "reasonembed_rag.encoder": 0,
        "reasonembed_rag.models": 0,
        "reasonembed_rag.instructions": 0,
        "reasonembed_rag.__init__": 1,
        "reasonembed_rag.store": 1,
        "reasonembed_rag.integrations.chroma": 1,
        "reasonembed_rag.evaluation.runner": 2,
        "reasonembed_rag.robustness.poison": 2,
        "reasonembed_rag.training.loss": 3,
        "reasonembed_rag.demos.compare": 3,
        "reasonembed_rag.cli": 4,
        "reasonembed_rag.cli.bright": 4,
    }
    assert {module: layer_of(module) for module in expected} == expected
    assert layer_of("numpy") is None and layer_of("reasonembed_rag_other") is None


def test_relative_imports_resolve_to_installed_names():
    """Spot checks of the resolver on imports that exist in the tree, including the mapped training/ package."""
    edges = {(edge.importer, edge.imported) for edge in IMPORTS}
    assert ("reasonembed_rag.training.loss", "torch") in edges
    assert ("reasonembed_rag.encoder", "reasonembed_rag.instructions") in edges
    assert ("reasonembed_rag.__init__", "reasonembed_rag.integrations.chroma") in edges  # under TYPE_CHECKING
    remixer = [edge for edge in IMPORTS if edge.importer.startswith("reasonembed_rag.training.remixer.")]
    assert remixer and all(not edge.imported.startswith(("training", "remixer")) for edge in remixer)


def test_no_module_imports_a_higher_layer():
    upward = _upward_imports()
    assert not upward, (
        "A module imports a higher layer (move the shared piece down or the caller up; the layers are LAYERS in "
        "tests/test_layers.py):\n" + _listing(upward, lambda module: f"{module} [{LAYERS[layer_of(module)][0]}]")
    )


def test_independent_packages_do_not_import_each_other():
    def owner(module: str) -> str | None:
        return next((p for p in INDEPENDENT_PACKAGES if module == p or module.startswith(p + ".")), None)

    crossing = [
        edge
        for edge in IMPORTS
        if owner(edge.importer) and owner(edge.imported) and owner(edge.importer) != owner(edge.imported)
    ]
    assert not crossing, f"{' and '.join(INDEPENDENT_PACKAGES)} import each other:\n" + _listing(crossing)


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def import_cycles() -> list[frozenset[str]]:
    """Groups of two or more project modules that import each other, directly or through others."""
    graph: dict[str, set[str]] = {}
    for edge in IMPORTS:
        if edge.imported in MODULES and edge.imported != edge.importer:
            graph.setdefault(edge.importer, set()).add(edge.imported)
    reach = {module: _reachable(module, graph) for module in MODULES}
    cyclic = [module for module in MODULES if module in reach[module]]
    groups = {frozenset(other for other in reach[module] if module in reach[other]) for module in cyclic}
    return sorted(groups, key=sorted)


def test_no_import_cycles():
    report = [
        "cycle of " + ", ".join(sorted(group)) + ":\n"
        + _listing([edge for edge in IMPORTS if edge.importer in group and edge.imported in group])
        for group in import_cycles()
    ]
    assert not report, "Modules import each other (a function-local import still counts):\n" + "\n".join(report)


@pytest.mark.parametrize("generic", ["training", "demos"])
def test_nothing_imports_the_generic_top_level_names(generic):
    """``training`` and ``demos`` exist only as ``reasonembed_rag.training`` / ``reasonembed_rag.demos`` once
    installed, so an ``import training`` works from a checkout and breaks in a wheel."""
    found = [edge for edge in IMPORTS if edge.imported == generic or edge.imported.startswith(generic + ".")]
    assert not found, f"Import reasonembed_rag.{generic} instead:\n" + _listing(found)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a core module that imports training, inside a function, is reported with its line."""
    source = tmp_path / "encoder.py"
    source.write_text("import numpy\n\n\ndef f():\n    from .training import loss\n", encoding="utf-8")
    edges = list(_imports("reasonembed_rag.encoder", source))
    assert [(edge.imported, edge.line) for edge in edges] == [("numpy", 1), ("reasonembed_rag.training.loss", 5)]
    assert layer_of(edges[1].imported) > layer_of(edges[1].importer)


def test_a_literal_import_module_call_counts_as_an_import(tmp_path):
    source = tmp_path / "__init__.py"
    source.write_text("import importlib\nimportlib.import_module('.demos.compare', __name__)\n", encoding="utf-8")
    edges = list(_imports("reasonembed_rag.__init__", source))
    assert [(edge.imported, edge.line) for edge in edges] == [("importlib", 1), ("reasonembed_rag.demos.compare", 2)]


def test_the_command_line_package_points_down_inside():
    """In ``reasonembed_rag.cli`` the shared flags (``common``) import no other command-line module, the command
    modules import only ``common``, and only the package's ``__init__`` (``main``) gathers the commands."""
    package = "reasonembed_rag.cli"
    modules = {module for module in MODULES if module.startswith(package + ".")}
    assert {f"{package}.common", f"{package}.__init__", f"{package}.store", f"{package}.demo"} <= modules
    allowed = {
        f"{package}.common": set(),
        f"{package}.__init__": modules - {f"{package}.__init__", f"{package}.__main__"},
        f"{package}.__main__": {f"{package}.__init__"},
    }
    wrong = [
        edge
        for edge in IMPORTS
        if edge.importer in modules
        and edge.imported in modules
        and edge.imported not in allowed.get(edge.importer, {f"{package}.common"})
    ]
    assert not wrong, "Inside reasonembed_rag.cli, common is the bottom and __init__ the top:\n" + _listing(wrong)
