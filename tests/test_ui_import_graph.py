"""The viewer has no import circle: ui/ imports go one way (ui/view.py says which).

Every import counts, module-level, inside a function or under `if TYPE_CHECKING:`: a circle that
only the type checker follows still ties the modules together. The panes and screens used to
import ui/app.py for typing, which made twelve modules of the viewer one circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import soaktui.ui

pytestmark = pytest.mark.unit

UI = Path(soaktui.ui.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(UI.parent.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _graph() -> dict[str, set[str]]:
    """ui module -> the ui modules it imports (a `from X import Y` names X, or X.Y if that is a module)."""
    modules = {_module(f): f for f in UI.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[mod] |= {n for n in names if n in modules and n != mod}
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_viewer_has_no_import_circle():
    graph = _graph()
    assert "soaktui.ui.app" in graph and "soaktui.ui.widgets.pane" in graph
    reach = {m: _reach(graph, m) for m in graph}
    circles = sorted(f"{a} <-> {b}" for a in graph for b in reach[a] if a < b and a in reach[b])
    assert not circles, "modules of the viewer that import each other (directly or not):\n" + "\n".join(
        circles
    )


def test_panes_and_screens_never_import_the_app():
    graph = _graph()
    bad = sorted(
        m
        for m, deps in graph.items()
        if m.startswith(("soaktui.ui.widgets", "soaktui.ui.screens")) and "soaktui.ui.app" in deps
    )
    assert not bad, bad
