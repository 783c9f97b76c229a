"""Commands soaktui suggests (watch, stop, rebuild a report) written so they work when pasted.

A hint is only useful if the user can type it as printed, from the directory they are in: a
`soaktui` that is not on PATH (a venv not activated, a source checkout run with `python -m`)
becomes this interpreter with `-m soaktui`, and paths are shell-quoted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def program() -> str:
    """`soaktui` when the shell finds it, else the command line that starts this installation."""
    if shutil.which("soaktui"):
        return "soaktui"
    return f"{shlex.quote(sys.executable)} -m soaktui"


def shell_arg(a: str | os.PathLike[str]) -> str:
    """One argument quoted for a POSIX shell; a leading ~/ stays outside the quotes, so it still expands."""
    text = os.fspath(a)
    if text.startswith("~/"):
        return "~/" + shlex.quote(text[2:])
    return shlex.quote(text)


def command(*args: str | os.PathLike[str]) -> str:
    """`soaktui ARGS...` as the user can type it here, e.g. command("watch", run_dir)."""
    return " ".join([program(), *(shell_arg(a) for a in args)])


__all__ = ["command", "program", "shell_arg"]
