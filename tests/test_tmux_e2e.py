"""The installed `soaktui --demo` in a real terminal (tmux): panes appear, keys act (a pane maximised and
restored with Esc among them), quit writes a report.

This is the whole product as a person uses it: the dashboard process, the engine child it starts,
the simulator child of the engine, keys typed into a terminal, the screen read back with
capture-pane. Skipped only where tmux is missing outside CI; in CI a missing tmux fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soaktui.engine.control import ControlError, send_command
from soaktui.log.reader import iter_events

pytestmark = pytest.mark.e2e

SESSION = "soaktui-e2e"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_screen(pred, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen()
        if pred(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"screen never matched; last screen:\n{text}")


def wait_events(path: Path, pred, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            events = list(iter_events(path))
            if pred(events):
                return events
        time.sleep(0.2)
    raise AssertionError("the events never showed it")


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tmux is required in CI for the end-to-end test")
        pytest.skip("tmux is not installed")
    soaktui = Path(sys.executable).with_name("soaktui")
    assert soaktui.exists(), "the soaktui console script is not installed in this environment"
    yield soaktui
    tmux("kill-session", "-t", SESSION)
    # The engine runs in its own session (it outlives a lost terminal by design): stop it if a
    # failed test left it going.
    try:
        send_command(tmp_path / "run", "stop", timeout_s=2.0)
    except ControlError:
        pass


def test_dashboard_in_a_real_terminal(terminal, tmp_path):
    run_dir = tmp_path / "run"
    done = tmp_path / "exit_code"
    env = (
        f"SOAKTUI_CONFIG_DIR={tmp_path / 'cfg'} SOAKTUI_DATA_DIR={tmp_path / 'data'} "
        "SOAKTUI_QUIET_HOURS__ENABLED=false TEXTUAL_ANIMATIONS=none"
    )
    cmd = (
        f"env -u COLUMNS -u LINES {env} {terminal} --demo --duration 10m --throttle 50 --seed 3 --out {run_dir}; "
        f"echo $? > {done}; sleep 60"
    )
    tmux("new-session", "-d", "-s", SESSION, "-x", "200", "-y", "60", cmd)

    panes = ("Model rotation", "Scenarios", "Throughput", "Thermal", "Tool calls", "Errors")
    wait_screen(lambda s: all(p in s for p in panes) and "throttle 50%" in s)
    log = run_dir / "events.jsonl"
    first = wait_events(log, lambda ev: any(e["kind"] == "model_switched" for e in ev))
    start_model = next(e["model"] for e in first if e["kind"] == "model_switched")

    tmux("send-keys", "-t", SESSION, "+")
    wait_screen(lambda s: "throttle 60%" in s, timeout=10)
    wait_events(log, lambda ev: any(e["kind"] == "throttle_changed" and e.get("pct") == 60 for e in ev))

    tmux("send-keys", "-t", SESSION, "s")
    events = wait_events(log, lambda ev: any(e["kind"] == "model_skipped" for e in ev))
    new_model = [e["model"] for e in events if e["kind"] == "model_switched"][-1]
    assert new_model != start_model
    wait_screen(lambda s: new_model[:20] in s, timeout=10)

    tmux("send-keys", "-t", SESSION, "3")  # the plot fills the screen; Esc brings every pane back
    wait_screen(lambda s: "3 Throughput" in s and "1 Model rotation" not in s, timeout=10)
    tmux("send-keys", "-t", SESSION, "Escape")
    wait_screen(lambda s: all(p in s for p in panes), timeout=10)

    tmux("send-keys", "-t", SESSION, "q")
    wait_screen(lambda s: "stop" in s.lower(), timeout=10)
    tmux("send-keys", "-t", SESSION, "y")
    deadline = time.monotonic() + 90
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done.exists(), screen()
    assert done.read_text().strip() == "0"
    events = list(iter_events(log))
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "stopped"
    assert (run_dir / "final_report.md").is_file() and (run_dir / "report.json").is_file()
    md = (run_dir / "final_report.md").read_text()
    assert md.splitlines()[2] == "## Verdict"  # the report opens with the verdict
    page = (run_dir / "report.html").read_text()
    assert 'id="over-time-tps"' in page and "<h2>Verdict</h2>" in page
