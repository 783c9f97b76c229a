"""The engine runs without Textual: headless mode must not pay for the UI (DESIGN.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import soaktui


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
