"""The engine runs without Textual: headless mode must not pay for the UI (docs/architecture.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import soaktui

pytestmark = pytest.mark.unit


@pytest.mark.integration
def test_every_module_outside_ui_imports_without_textual():
    names = [
        m.name
        for m in pkgutil.walk_packages(soaktui.__path__, "soaktui.")
        if not m.name.startswith("soaktui.ui") and m.name != "soaktui.__main__"
    ]
    assert "soaktui.engine.launch" in names and "soaktui.cli" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'textual_plotext')))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_every_subpackage_ships_in_the_wheel():
    """pyproject lists packages explicitly (prompts/ and themes/ are mapped in): none may be missing."""
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = tomllib.loads((Path(soaktui.__file__).parent.parent / "pyproject.toml").read_text())
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {"soaktui"} | {m.name for m in pkgutil.walk_packages(soaktui.__path__, "soaktui.") if m.ispkg}
    assert found <= listed, f"missing from pyproject's package list: {sorted(found - listed)}"


# -- the floors: who may import whom (docs/architecture.md) ---------------------------------------

# Each area of the package (a subpackage, or a top-level module) stands on a floor; an import may
# only go down to a lower floor. The log is the ground: every other area reads or writes runs
# through it, and it knows nothing of them.
FLOORS = {
    "soaktui": 0,  # the package itself (__version__)
    "errors": 0,
    "durations": 0,
    "hints": 0,
    "sketch": 0,
    "thermal": 0,
    "log": 0,
    "locations": 1,
    "datafiles": 1,
    "stats": 1,
    "config": 2,
    "toolcalls": 2,
    "providers": 3,
    "telemetry": 4,
    "scenarios": 4,
    "simulator": 4,
    "report": 4,
    "profiles": 5,
    "sinks": 5,
    "engine": 6,
    "ui": 7,
    "attach": 8,
    "cli": 9,
    "__main__": 10,
}


def _imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, kind) for every import in the package, module-level or
    inside a function; kind is "soaktui" or "external"."""
    import ast
    from pathlib import Path

    root = Path(soaktui.__file__).parent
    out = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root.parent).with_suffix("")
        mod = ".".join(rel.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "soaktui":
                # `from soaktui import errors` imports soaktui.errors; `__version__` is the package's own
                names = [f"soaktui.{a.name}" if a.name != "__version__" else "soaktui" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                out.append((mod, name, "soaktui" if name.split(".")[0] == "soaktui" else "external"))
    return out


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_import_goes_down_a_floor():
    imports = _imports()
    areas = {_area(m) for m, _, _ in imports}
    assert areas <= set(FLOORS), f"areas without a floor: {sorted(areas - set(FLOORS))}"
    up = sorted(
        f"{m} -> {n}"
        for m, n, kind in imports
        if kind == "soaktui" and _area(m) != _area(n) and FLOORS[_area(n)] >= FLOORS[_area(m)]
    )
    assert not up, "imports that do not go down a floor:\n" + "\n".join(up)


def test_the_report_knows_nothing_of_the_engine_servers_sinks_or_viewer():
    banned = ("engine", "providers", "scenarios", "simulator", "telemetry", "sinks", "profiles", "ui")
    bad = sorted(
        f"{m} -> {n}"
        for m, n, kind in _imports()
        if kind == "soaktui" and _area(m) == "report" and _area(n) in banned
    )
    assert not bad, bad


def test_the_log_imports_only_the_standard_library_and_orjson():
    allowed = set(sys.stdlib_module_names) | {"orjson", "__future__"}
    bad = sorted(
        f"{m} -> {n}"
        for m, n, kind in _imports()
        if _area(m) == "log" and (_area(n) != "log" if kind == "soaktui" else n.split(".")[0] not in allowed)
    )
    assert not bad, bad
