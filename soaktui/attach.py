"""`soaktui` with the dashboard: start the headless engine as a child process, then attach the viewer.

The engine runs in its own process (and its own session, so a closed terminal or a dropped SSH
connection does not take it down): timings measured on the same loop or beside it in a thread as a
Textual app are off by tens of milliseconds, in another process they are not (docs/architecture.md). The viewer
attaches to the run directory exactly as `soaktui watch` does: it follows events.jsonl and sends
its keys over the control socket. Textual is imported only here, lazily, never by the engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from soaktui.config import ENV_PREFIX
from soaktui.errors import SetupError
from soaktui.hints import command, program
from soaktui.locations import claim_out_dir, latest_run_dir, new_run_dir
from soaktui.log import rundir
from soaktui.log.safefiles import open_run_file
from soaktui.sinks.console import unstamped

ENGINE_LOG = "engine.log"  # the child's stderr: its progress lines and any setup error
START_TIMEOUT_S = 120.0  # discovery and a --demo simulator start well within this
KEY_FLAG = "--api-key"
KEY_ENV = ENV_PREFIX + "API_KEY"  # the setting's variable: the flag's value reaches the child here


def _is_key_flag(arg: str) -> bool:
    """`arg` names --api-key, as argparse reads it: whole, or abbreviated (--api), with or without =."""
    name = arg.split("=", 1)[0]
    return len(name) > 2 and KEY_FLAG.startswith(name)


def engine_argv(argv: list[str], run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The headless command line for the child (the user's flags, minus viewer-only ones, plus --out)
    and what its environment adds. An --api-key is moved from the command line to SOAKTUI_API_KEY:
    a command line is readable by every user (ps, /proc/PID/cmdline) for the whole run, an
    environment only by the run's owner."""
    out: list[str] = []
    env: dict[str, str] = {}
    skip_next = False
    for i, arg in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if arg == "--":  # the rest are not options
            out.extend(argv[i:])
            break
        if _is_key_flag(arg):
            if "=" in arg:
                env[KEY_ENV] = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                env[KEY_ENV] = argv[i + 1]
                skip_next = True
            continue
        if arg == "--theme":
            skip_next = i + 1 < len(argv)
            continue
        if arg.startswith("--theme=") or arg == "--no-ui":
            continue
        out.append(arg)
    has_out = any(a == "--out" or a.startswith("--out=") for a in out)
    cmd = [
        sys.executable,
        "-m",
        "soaktui",
        "run",
        "--no-ui",
        *out,
        *([] if has_out else ["--out", str(run_dir)]),
    ]
    return cmd, env


def start_engine(argv: list[str], run_dir: Path, created: bool) -> subprocess.Popen:
    """Start the engine child and wait until its events.jsonl exists; SetupError if it cannot start."""
    log_path = run_dir / ENGINE_LOG
    cmd, env = engine_argv(argv, run_dir)
    try:  # appended across attempts, but never through a planted link (log/safefiles.py)
        log = os.fdopen(open_run_file(log_path, new=False), "ab")
    except OSError as exc:
        raise SetupError(f"cannot write {log_path}: {exc.strerror or exc}") from None
    with log:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    events = run_dir / rundir.EVENTS
    while not events.exists():
        code = proc.poll()
        if code is not None:
            lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
            message = lines[-1] if lines else f"the engine exited with status {code}"
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise SetupError(unstamped(message).removeprefix("soaktui: "))
        if time.monotonic() > deadline:
            proc.terminate()
            raise SetupError(f"the engine did not start within {START_TIMEOUT_S:.0f}s (see {log_path})")
        time.sleep(0.05)
    return proc


def run_with_dashboard(argv: list[str], out: Path | None, theme: str) -> int:
    """`soaktui [options]`: engine child + viewer. Returns the exit code."""
    from soaktui.ui.app import create_app  # Textual only here

    if out is None:
        _, run_dir = new_run_dir()
        created = True
    else:
        # Checked here too: the engine would refuse it, and a viewer would show the old run as if new.
        run_dir, created = claim_out_dir(out)
    proc = start_engine(argv, run_dir, created)
    app = create_app(run_dir, theme=theme, engine=proc)
    code = app.run()
    if proc.poll() is None:
        sys.stderr.write(
            f"soaktui: the run goes on in the background; re-attach with: {command('watch', run_dir)}\n"
        )
    return int(code or 0)


def watch(run_dir: Path | None, theme: str) -> int:
    """`soaktui watch [RUN_DIR]`: attach the viewer to a run started earlier (the latest by default)."""
    from soaktui.ui.app import create_app

    if run_dir is None:
        run_dir = latest_run_dir()
        if run_dir is None:
            raise SetupError(f"no runs found; start one with `{program()}` or name a run directory")
    if not (Path(run_dir) / rundir.EVENTS).is_file():
        raise SetupError(f"{run_dir}: no events.jsonl here (is it a soaktui run directory?)")
    app = create_app(Path(run_dir), theme=theme)
    app.run()
    return 1 if app.return_code is None else int(app.return_code)
