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
