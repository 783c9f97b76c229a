"""SVG snapshots of the dashboard and the report screen, replayed from a recorded real run.

tests/data/ui/recorded_events.jsonl (see record.py beside it) is copied into a temp run directory
and the viewer attaches to it with a fixed clock, no animation, UTC local time and HOME set to the
temp directory, so every pixel is a function of the log. "Live" snapshots cut the log before its
end and put a real control socket in the run directory (a stub engine that answers `status`),
which is what a running engine looks like to the viewer. Update after an intended change with
`pytest tests/test_ui_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from soaktui.engine.control import ControlServer
from soaktui.log.reader import read_all
from soaktui.ui.app import SoakApp, create_app
from soaktui.ui.screens.error_filter import ErrorFilterScreen
from soaktui.ui.screens.help import HelpScreen
from soaktui.ui.screens.report import ReportScreen
from tests.hostile import hostile_log

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
EVENTS, _ = read_all(RECORDED)
STARTED_T = EVENTS[0]["t"]
CUT = 100  # the "live" run: the first 100 events, about half-way through


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch, tmp_path):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    yield
    monkeypatch.undo()
    time.tzset()


def replay(tmp_path: Path, n: int | None = None) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = RECORDED.read_bytes().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_bytes(b"".join(lines[:n]))
    return run_dir


@pytest.fixture
def stub_engine(tmp_path):
    """A control socket that answers like a running engine: with no state to change the header, or
    with the engine state given (the now line's test in flight)."""
    loop = asyncio.new_event_loop()
    servers: list[ControlServer] = []
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def listen(run_dir: Path, state: dict | None = None) -> None:
        reply = {"ok": True, "message": "status", "state": state or {}}
        server = ControlServer(run_dir, lambda command, arg: {**reply, "message": command})
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        servers.append(server)

    yield listen
    for server in servers:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def viewer(run_dir: Path, clock_t: float, theme: str = "dark") -> SoakApp:
    app = create_app(run_dir, theme=theme, clock=lambda: clock_t)
    app.animation_level = "none"
    return app


async def settle(pilot) -> None:
    app: SoakApp = pilot.app
    deadline = time.monotonic() + 30
    while not (app.loaded and app.reachable is not None and app.generation > 0):
        assert time.monotonic() < deadline, "the viewer never attached"
        await pilot.pause(0.02)
    await pilot.pause(0.3)  # a tick or two: every pane drawn


async def open_report(pilot) -> None:
    await settle(pilot)
    await pilot.press("r")
    deadline = time.monotonic() + 30
    while not (isinstance(pilot.app.screen, ReportScreen) and pilot.app.screen.snap is not None):
        assert time.monotonic() < deadline, "the report never appeared"
        await pilot.pause(0.02)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard_live(snap_compare, tmp_path, stub_engine, size):
    run_dir = replay(tmp_path, CUT)
    stub_engine(run_dir)
    assert snap_compare(viewer(run_dir, STARTED_T + 9.0), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("silent_s", [3.0, 12.0], ids=["amber", "red"])
def test_now_line_during_a_frozen_stream(snap_compare, tmp_path, stub_engine, silent_s):
    """The test in flight as the engine reports it: amber past half of stall_s, red past it."""
    run_dir = replay(tmp_path, CUT)
    key = next(e["key"] for e in EVENTS[:CUT] if e["kind"] == "model_switched")
    now = {"test_id": 42, "scenario": "streaming", "key": key, "elapsed_s": silent_s + 1.4, "requests": 1,
           "silent_s": silent_s, "no_byte_yet": False, "whole_wait_s": None, "stall_s": 5.0}
    stub_engine(run_dir, {"now": now})
    assert snap_compare(viewer(run_dir, STARTED_T + 9.0), terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (200, 60)], ids=["80x24", "200x60"])
def test_dashboard_finished(snap_compare, tmp_path, size):
    run_dir = replay(tmp_path)
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=size, run_before=settle)


def test_dashboard_light_theme(snap_compare, tmp_path):
    run_dir = replay(tmp_path)
    assert snap_compare(
        viewer(run_dir, STARTED_T + 3600, "light"), terminal_size=(120, 40), run_before=settle
    )


def test_dashboard_ended_without_finishing(snap_compare, tmp_path):
    run_dir = replay(tmp_path, CUT)  # no engine answers and no run_finished: a crashed run
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=(120, 40), run_before=settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_report_screen(snap_compare, tmp_path, size):
    run_dir = replay(tmp_path)
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=size, run_before=open_report)


def test_report_screen_with_markup_like_server_text(snap_compare, tmp_path):
    """Errors reading `[/INST] [bold]x [link=x]y` among terminal escapes, and a model id with `[/INST]`,
    stored raw by an older soaktui: the errors table shows them as written, escapes as `\\x1b`."""
    run_dir = hostile_log(RECORDED, tmp_path / "run").parent

    async def errors_in_view(pilot) -> None:
        await open_report(pilot)
        pilot.app.screen.query_one("#errors").scroll_visible(top=True, animate=False)
        await pilot.pause(0.3)

    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=(120, 40), run_before=errors_in_view)


def after_keys(*steps: tuple[tuple[str, ...], Callable[[SoakApp], bool]], pause_s: float = 0.3):
    """A run_before: settle, then for each step press its keys and wait until its condition holds."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        for keys, done in steps:
            await pilot.press(*keys)
            while not done(pilot.app):
                await pilot.pause(0.02)
        await pilot.pause(pause_s)

    return run_before


def test_help_screen(snap_compare, tmp_path):
    run_dir = replay(tmp_path)
    open_help = after_keys((("question_mark",), lambda app: isinstance(app.screen, HelpScreen)), pause_s=0.1)
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=(80, 24), run_before=open_help)


def test_dashboard_maximised_pane(snap_compare, tmp_path):
    """80x24 hides the plot; 3 maximises it all the same (y from 0, a legend of short names)."""
    run_dir = replay(tmp_path)
    zoom = after_keys((("3",), lambda app: app.screen.maximized is not None))
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=(80, 24), run_before=zoom)


def test_error_log_filtered(snap_compare, tmp_path):
    """f, then the first error class: the log shows that class only and its title says so."""
    run_dir = replay(tmp_path)
    pick = after_keys(
        (("f",), lambda app: isinstance(app.screen, ErrorFilterScreen)),
        (("tab", "down", "enter"), lambda app: not isinstance(app.screen, ErrorFilterScreen)),
        pause_s=0.6,  # the log redraws at most twice a second
    )
    assert snap_compare(viewer(run_dir, STARTED_T + 3600), terminal_size=(120, 40), run_before=pick)
