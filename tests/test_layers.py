"""graphc's modules form one-way layers (DESIGN.md): a module imports only from its own layer or lower
ones, there are no import cycles (imports inside functions count), and no module imports another
module's private (``_name``) names."""

from __future__ import annotations

import ast
import pathlib

import networkx as nx

ROOT = pathlib.Path(__file__).parent.parent
PACKAGE = ROOT / "graphc"

LAYERS: list[tuple[str, ...]] = [
    ("graphc.version", "graphc.errors", "graphc.dtypes", "graphc.nest"),
    ("graphc.ir",),
    ("graphc.ops",),
    ("graphc.autodiff", "graphc.passes", "graphc.control"),
    ("graphc.lower",),
    ("graphc.codegen",),
    ("graphc.backends",),
    ("graphc.runtime", "graphc.optimizers", "graphc.testing"),
    ("graphc.aot", "graphc.inspect", "graphc.graphfile", "graphc.checkpoint"),
    ("graphc.nn",),
    ("graphc.cli", "graphc", "graphc.__main__"),
]
"""Lowest first.  A module belongs to the layer of its longest matching prefix; ``graphc`` itself (the
package's ``__init__``, the public API) is the top."""


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _layer(module: str) -> int:
    best, rank = -1, None
    for k, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), k
    if rank is None:
        raise AssertionError(f"module {module} is in no layer of tests/test_layers.py: add it to LAYERS")
    return rank


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every graphc import in ``module``, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.startswith("graphc")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("graphc"):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.append((submodule, None, node.lineno) if submodule in MODULES
                             else (target, alias.name, node.lineno))
    return found


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for module in MODULES:
        for target, _, line in _imports(module):
            if target in MODULES and target != module:
                graph.add_edge(module, target, line=line)
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            parent = target.rpartition(".")[0]
            while parent and parent != module and not module.startswith(parent + "."):
                if parent in MODULES:
                    graph.add_edge(module, parent, line=line)
                parent = parent.rpartition(".")[0]
    return graph


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [f"{MODULES[a].relative_to(ROOT)}:{data['line']} imports {b} ({_layer(a)} < {_layer(b)})"
              for a, b, data in _graph().edges(data=True) if _layer(b) > _layer(a)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles among: {cycles}"


def test_no_private_names_are_imported_from_another_module() -> None:
    private = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {name} from {target}"
               for m in MODULES for target, name, line in _imports(m)
               if name and name.startswith("_") and not name.startswith("__") and target != m]
    assert not private, "private names imported:\n" + "\n".join(private)


def test_the_checker_sees_imports_inside_functions() -> None:
    graph = _graph()
    assert graph.has_edge("graphc.aot", "graphc.aot.compiler")  # gc.aot imports its compiler on first use
    assert graph.has_edge("graphc.lower.program", "graphc.lower.registry")
