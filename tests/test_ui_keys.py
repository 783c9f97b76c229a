"""Every viewer key against a real engine: the effect in the header, and in the run's events.

A real `soaktui --no-ui` engine runs in a subprocess against the built-in simulator (on a thread of
this process, over loopback); the viewer attaches to its run directory exactly as `soaktui watch`
does (Textual's Pilot drives it headless). Quitting must stop the run and wait for its report;
detaching must leave it going; a finished run is read-only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable

from soaktui.engine.control import send_command
from soaktui.hints import command
from soaktui.log.reader import read_all
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.ui.app import SoakApp, create_app
from soaktui.ui.screens.confirm import QuitConfirm, StoppingScreen
from soaktui.ui.screens.help import HelpScreen
from soaktui.ui.screens.report import ReportScreen
from soaktui.ui.widgets.errors import ErrorLog
from soaktui.ui.widgets.header import RunHeader
from tests.helpers import WAIT_S, stop_process, wait_for_events

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
ENGINE_ENV = {
    "SOAKTUI_QUIET_HOURS__ENABLED": "false",
    "SOAKTUI_THRESHOLDS__SIMPLE_MIN_TOKENS": "20",
    "SOAKTUI_THRESHOLDS__SIMPLE_MAX_TOKENS": "80",
    "SOAKTUI_THRESHOLDS__STREAM_MAX_TOKENS": "60",
    "SOAKTUI_TIMEOUTS__GRACE": "2",
    "SOAKTUI_OUTPUT__TELEMETRY_INTERVAL": "1s",
    "SOAKTUI_ROTATION__MIN_TESTS": "50",
    "SOAKTUI_ROTATION__MAX_TESTS": "60",
}


@pytest.fixture(scope="module")
def sim():
    with run_in_thread(SimConfig(flavor="lmstudio", seed=1, speed=20.0)) as handle:
        yield handle


def start_engine(run_dir: Path, base_url: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", base_url, "--out", str(run_dir)]
    cmd += [
        "--seed",
        "1",
        "--duration",
        "2m",
        "--throttle",
        "50",
        "--scenarios",
        "streaming,simple_inference",
    ]
    return subprocess.Popen(
        cmd,
        env={**os.environ, **ENGINE_ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # as the real viewer starts it: a terminal's signals never reach it
    )


def events(run_dir: Path) -> list[dict]:
    return read_all(run_dir / "events.jsonl")[0] if (run_dir / "events.jsonl").exists() else []


@pytest.fixture(scope="module")
def engine_run(sim, tmp_path_factory):
    """One live run shared by the tests that steer it without ending it."""
    run_dir = tmp_path_factory.mktemp("live") / "run"
    proc = start_engine(run_dir, sim.base_url)
    try:
        wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "scenario_result" for e in ev))
        yield run_dir
    finally:
        stop_process(proc)


async def until(pilot, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {what}")
        await pilot.pause(0.02)


def header(app: SoakApp) -> str:
    return app.screen_stack[0].query_one(RunHeader).text


async def attached(pilot, app: SoakApp) -> None:
    """Wait until the log is folded and the control socket has answered (or not)."""
    await until(pilot, lambda: app.loaded and app.reachable is not None, "attached")
    await until(pilot, lambda: header(app) != "", "header drawn")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_steering_keys_reach_the_engine_and_show_in_the_header(engine_run):
    run_dir = engine_run

    async def main():
        app = create_app(run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await attached(pilot, app)
            assert app.phase == "live" and "● running" in header(app)
            start = send_command(run_dir, "status")["state"]["throttle_pct"]

            await pilot.press("plus")
            await pilot.pause()  # one trip through the event loop: the key shows (pending or answered)
            assert "→ throttle +10…" in header(app) or f"throttle {start + 10}%" in header(app)
            await until(pilot, lambda: f"throttle {start + 10}%" in header(app), "throttle up in the header")
            wait_for_events(run_dir / "events.jsonl",
                lambda ev: any(e["kind"] == "throttle_changed" and e.get("pct") == start + 10 for e in ev),
            )
            await pilot.press("minus")
            await until(pilot, lambda: f"throttle {start}%" in header(app), "throttle down in the header")
            wait_for_events(run_dir / "events.jsonl",
                lambda ev: (
                    [e["pct"] for e in ev if e["kind"] == "throttle_changed" and e["source"] == "command"][
                        -1:
                    ]
                    == [start]
                ),
            )

            before = app.live.current
            await pilot.press("s")
            await until(pilot, lambda: app.live.current not in (None, before), "skip moved the current model")
            new_model = app.live.current.rsplit("/", 1)[-1]
            await until(pilot, lambda: f"model {new_model}" in header(app), "new model in the header")
            wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "model_skipped" and e["key"] == before for e in ev)
            )

            await pilot.press("p")
            await until(pilot, lambda: "paused" in header(app), "paused in the header")
            wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "paused" for e in ev))
            await pilot.press("p")
            await until(pilot, lambda: "● running" in header(app), "running again")
            wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "resumed" for e in ev))

            await pilot.press("n")
            await until(pilot, lambda: "quiet hours on" in header(app), "quiet hours on in the header")
            wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "quiet_hours_changed" and e["enabled"] for e in ev)
            )
            await pilot.press("n")
            await until(pilot, lambda: "quiet hours off" in header(app), "quiet hours off again")

            # the command palette offers the same actions by name
            skips = sum(e["kind"] == "model_skipped" for e in events(run_dir))
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"skip model")
            await pilot.pause(0.3)
            await pilot.press("enter")
            wait_for_events(run_dir / "events.jsonl", lambda ev: sum(e["kind"] == "model_skipped" for e in ev) > skips)

    run(main())


def test_report_errors_and_help_keys(engine_run):
    run_dir = engine_run
    for name in ("final_report.md", "report.json"):
        (run_dir / name).unlink(missing_ok=True)

    async def main():
        app = create_app(run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await attached(pilot, app)
            await pilot.press("r")
            await until(
                pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.snap is not None, "report"
            )
            snap = app.screen.snap
            assert not snap["run"]["finished"] and snap["totals"]["tests"] > 0  # the report so far
            assert app.screen.query_one("#profiles", DataTable).row_count >= 1  # drawn as tables
            await pilot.press("w")
            await until(pilot, lambda: (run_dir / "report.json").exists(), "report.json written on demand")
            assert (run_dir / "final_report.md").read_text().startswith("# soaktui report")
            await pilot.press("r")
            await until(pilot, lambda: not isinstance(app.screen, ReportScreen), "back to the dashboard")

            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.focused, ErrorLog)

            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")

    run(main())


def test_detach_leaves_the_run_going(engine_run):
    run_dir = engine_run

    async def main():
        app = create_app(run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await attached(pilot, app)
            assert "d detach" in header(app)
            await pilot.press("d")
            await pilot.pause()
        return app

    app = run(main())
    assert app.return_value == 0
    again = command("watch", run_dir)  # as typed from here: `soaktui` only when it is on PATH
    assert app.exit_message == f"soaktui: detached; the run goes on. Re-attach with: {again}"
    assert app.follow_done.wait(5)  # the follower thread closed the log
    reply = send_command(run_dir, "status")
    assert reply["ok"]
    assert not any(e["kind"] == "run_finished" for e in events(run_dir))


@pytest.mark.parametrize("with_handle", [True, False], ids=["engine-child", "attached"])
def test_quit_stops_the_run_and_waits_for_the_report(sim, tmp_path, with_handle):
    run_dir = tmp_path / "run"
    proc = start_engine(run_dir, sim.base_url)
    try:
        wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "scenario_result" for e in ev))

        async def main():
            app = create_app(run_dir, engine=proc if with_handle else None)
            async with app.run_test(size=(80, 24)) as pilot:
                await attached(pilot, app)
                await pilot.press("q")
                await until(pilot, lambda: isinstance(app.screen, QuitConfirm), "the confirmation")
                await pilot.press("n")
                await until(pilot, lambda: not isinstance(app.screen, QuitConfirm), "back")
                assert proc.poll() is None
                await pilot.press("q")
                await until(pilot, lambda: isinstance(app.screen, QuitConfirm), "the confirmation again")
                await pilot.press("y")
                await until(
                    pilot, lambda: isinstance(app.screen, StoppingScreen) or not app.is_running, "stopping"
                )
                # the engine may have logged run_finished already (it writes the report after it)
                shown = header(app)
                assert "stopping, writing report" in shown or "finished" in shown or not app.is_running
                await until(pilot, lambda: not app.is_running, "the viewer exits once the report is written")
            return app

        app = run(main())
        assert app.return_value == 0
        evs = events(run_dir)
        assert evs[-1]["kind"] == "run_finished" and evs[-1]["reason"] == "stopped"
        assert (run_dir / "report.json").exists() and (run_dir / "final_report.md").exists()
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)


def test_a_finished_run_is_read_only(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(RECORDED, run_dir / "events.jsonl")

    async def main():
        app = create_app(run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await attached(pilot, app)
            assert app.phase == "finished" and app.read_only
            assert "■ finished (duration)" in header(app) and "read-only" in header(app)
            for key in ("plus", "s", "p", "n"):
                await pilot.press(key)
            await pilot.pause()
            notes = [n.message for n in app._notifications]
            assert len(notes) == 4 and all("read-only: the run has finished" in m for m in notes)
            await pilot.press("ctrl+c")  # the same as q; nothing to stop: no confirmation
            await pilot.pause()
        return app

    app = run(main())
    assert app.return_value == 0


def test_attach_before_the_run_writes_then_follow_it(tmp_path):
    """`soaktui watch` on a directory whose engine has not logged yet: wait, then follow as it grows."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    raw = RECORDED.read_bytes()

    async def main():
        app = create_app(run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await attached(pilot, app)
            assert app.phase == "waiting" and "waiting for the run to start" in header(app)
            cut = raw.index(b"\n", len(raw) // 2) + 20  # stop inside a line: a torn tail
            with open(run_dir / "events.jsonl", "ab", buffering=0) as out:
                out.write(raw[:cut])
                await until(pilot, lambda: app.live.run_id == "soak_recorded", "the first half folded")
                await pilot.pause(0.3)
                half = app.live.events
                assert half == raw[:cut].count(b"\n") and app.follower.stats.torn_tail
                out.write(raw[cut:])
            await until(pilot, lambda: app.live.finished is not None, "the rest, torn line completed")
            assert app.live.events == raw.count(b"\n") and app.follower.stats.lines_bad == 0
            await until(pilot, lambda: "■ finished" in header(app), "finished in the header")

    run(main())


def test_a_killed_engine_reads_as_exited_without_finishing_only_after_its_log_is_read(
    sim, tmp_path, monkeypatch
):
    """The viewer says "engine exited ... without finishing" for a child killed mid-run, and never for
    one that wrote run_finished and exited before the viewer had read the end of its log (the
    follower polls: with a slow poll the window is wide open)."""
    run_dir = tmp_path / "run"
    proc = start_engine(run_dir, sim.base_url)
    wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "scenario_result" for e in ev))
    proc.kill()
    proc.wait(timeout=10)

    async def main() -> str:
        app = create_app(run_dir, engine=proc)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "without finishing" in header(app), "the crash shown")
            return header(app)

    assert "engine exited (code -9) without finishing" in run(main())

    import soaktui.ui.app as app_module

    monkeypatch.setattr(app_module, "POLL_S", 1.5)
    clean_dir = tmp_path / "clean"
    clean = start_engine(clean_dir, sim.base_url)
    wait_for_events(clean_dir / "events.jsonl", lambda ev: any(e["kind"] == "scenario_result" for e in ev))

    async def seen() -> list[str]:
        app = create_app(clean_dir, engine=clean)
        shown: list[str] = []
        async with app.run_test(size=(80, 24)) as pilot:
            await attached(pilot, app)
            send_command(clean_dir, "stop")
            for _ in range(200):
                shown.append(header(app))
                if "finished" in shown[-1] and "without" not in shown[-1]:
                    break
                await pilot.pause(0.05)
        return shown

    try:
        shown = run(seen())
    finally:
        stop_process(clean)
    assert not any("without finishing" in h for h in shown), [h for h in shown if "without" in h][:1]
    assert "finished" in shown[-1]
