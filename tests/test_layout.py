"""The package's layout holds: no import circle (function-level imports included), and no module named like a
function of the Python API (once imported it would replace the function on the package)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "ftaudit").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> nx.DiGraph:
    """Module -> module it imports, from every import statement (at module level or inside a function). ``from .
    import x`` where ``x`` is a submodule is an edge to ``x``, not to the package."""
    mods = _modules()
    graph = nx.DiGraph()
    for name, path in mods.items():
        graph.add_node(name)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                targets = subs if subs and len(subs) == len(node.names) else [target, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in mods and t != name)
    return graph


def test_no_module_imports_one_that_imports_it_back():
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert circles == []


def test_the_graph_sees_function_level_imports(tmp_path):
    """The check above is only as good as its graph: a known function-level import must be an edge."""
    graph = import_graph()
    assert graph.has_edge("ftaudit.api", "ftaudit.eval_run")  # imported inside api.evaluate
    assert graph.has_edge("ftaudit.cli", "ftaudit.cli.training")  # `from . import training`


def test_no_module_is_named_like_an_api_function():
    import ftaudit

    top_level = {name.split(".")[1] for name in _modules() if name.count(".") >= 1}
    assert not top_level & set(ftaudit._API)


def test_every_import_of_an_ftaudit_module_names_one_that_exists():
    """A function-level import runs only when its function does: a module that moved must not leave one behind
    pointing where it used to live (``from ..metrics`` in a module that moved up a level)."""
    mods = _modules()
    missing = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                parts = package.split(".")
                if node.level > len(parts):
                    missing.append(f"{name}:{node.lineno} goes above the package")
                    continue
                target = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").startswith("ftaudit"):
                target = node.module
            else:
                continue
            if target not in mods:
                missing.append(f"{name}:{node.lineno} imports {target}")
    assert missing == []
