"""The commands soaktui suggests work when pasted into a shell, whether or not `soaktui` is on PATH."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from soaktui.hints import command, shell_arg

pytestmark = pytest.mark.unit


def _path_with_soaktui(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "soaktui"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return str(bin_dir)


def test_soaktui_on_path_is_named_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_with_soaktui(tmp_path))
    assert command("ctl", "/runs/it's mine", "stop") == "soaktui ctl '/runs/it'\"'\"'s mine' stop"


def test_without_soaktui_on_path_this_interpreter_runs_the_module(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a directory with no soaktui in it
    assert command("watch", "/runs/a") == f"{shlex.quote(sys.executable)} -m soaktui watch /runs/a"


def test_home_stays_expandable():
    assert shell_arg("~/runs/a b") == "~/'runs/a b'"
    assert shell_arg("RUN_DIR") == "RUN_DIR"  # a placeholder reads as one


@pytest.mark.integration
def test_the_printed_command_runs_in_a_shell(tmp_path, monkeypatch):
    """Pasted as printed into sh, from this directory: a path with a space and a quote arrives whole."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # soaktui not on it: the interpreter form
    odd = tmp_path / "it's a run"
    odd.mkdir()
    out = subprocess.run(["sh", "-c", command("ctl", odd, "status")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"no running soaktui run listens in {odd} " in out.stderr
