"""Losing the terminal (an SSH drop) ends the viewer promptly instead of spinning a CPU.

The real viewer runs in a pseudo-terminal; the test closes the terminal's master side, as sshd
does when a connection drops. With the pty as its controlling terminal the viewer gets SIGHUP;
without one (e.g. a viewer in a background process group) it only sees its tty vanish, which
Textual alone answers by spinning on EOF at 100% CPU (measured: 13 s of CPU in 15 s), so the
viewer's watchdog must notice. Either way it exits with 129 (128 + SIGHUP).
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from soaktui.ui.app import HANGUP_EXIT

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
VIEWER = """
import fcntl, sys, termios
if sys.argv[2] == "ctty":
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes our controlling terminal: SIGHUP on hangup
from soaktui.ui.app import create_app
sys.exit(create_app(sys.argv[1]).run())
"""


@pytest.mark.parametrize("mode", ["ctty", "no-ctty"], ids=["sighup", "tty-vanishes"])
def test_a_dropped_terminal_ends_the_viewer(tmp_path, mode):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(RECORDED, run_dir / "events.jsonl")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", VIEWER, str(run_dir), mode],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    os.close(slave)
    try:
        screen = b""
        deadline = time.monotonic() + 30
        while b"finished" not in screen and time.monotonic() < deadline:  # the dashboard is up
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                screen += os.read(master, 65536)
        assert b"finished" in screen, screen[-500:]
        os.close(master)  # the SSH connection drops
        master = -1
        assert proc.wait(20) == HANGUP_EXIT
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_dashboard_on_a_directory_that_holds_a_run_says_so_and_starts_nothing(tmp_path):
    """`soaktui --out DIR` in a terminal, DIR holding a finished run: one line on the terminal and
    exit 2, no viewer showing the old run as if it were new, nothing written into DIR."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(RECORDED, run_dir / "events.jsonl")
    before = sorted(p.name for p in run_dir.iterdir())
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "soaktui", "--demo", "--out", str(run_dir), "--duration", "10s"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        env={**os.environ, "TERM": "xterm-256color", "SOAKTUI_DATA_DIR": str(tmp_path), "SOAKTUI_CONFIG_DIR": str(tmp_path)},
    )  # fmt: skip
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = out.decode(errors="replace")
    assert proc.returncode == 2, text
    assert "already holds a run" in text and "\x1b[?1049h" not in text  # no full-screen viewer started
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_hung_up_viewer_whose_exit_stalls_still_ends(tmp_path):
    """The safety net under the orderly exit: a viewer without a terminal never lingers. Here the
    orderly exit is made to do nothing, as a stuck write or worker would; the process still ends
    with 129 once the grace period is over."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(RECORDED, run_dir / "events.jsonl")
    script = (
        "import sys, time\n"
        "from soaktui.ui.app import create_app\n"
        "app = create_app(sys.argv[1])\n"
        "app.exit = lambda *a, **k: None\n"
        "app.hang_up()\n"
        "time.sleep(120)\n"
        "sys.exit(0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(run_dir)], timeout=60, capture_output=True)
    assert proc.returncode == HANGUP_EXIT, proc.stderr[-500:]
