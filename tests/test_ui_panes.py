"""Panes you can work with: 1-6 maximise a pane and Esc restores the grid.

The viewer attaches to a run directory as `soaktui watch` does (the recorded run of tests/data/ui)
and Pilot presses the real keys; each test then reads what the panes show.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from soaktui.ui.app import SoakApp, create_app
from soaktui.ui.screens.help import HelpScreen
from soaktui.ui.widgets.errors import ErrorLog
from soaktui.ui.widgets.rotation import RotationPane
from soaktui.ui.widgets.throughput import ThroughputPane
from soaktui.ui.widgets.toolcalls import ToolCallPane
from tests.test_ui_keys import RECORDED, attached, run, until
from tests.test_ui_snapshots import _deterministic  # noqa: F401 - fixture: TZ=UTC, HOME, no animation

pytestmark = pytest.mark.e2e

T0 = 1_800_000_000.0


def write_run(tmp_path: Path, events: list[dict], *, recorded: bool = False) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    head = RECORDED.read_bytes() if recorded else orjson.dumps(event("run_started", 0)) + b"\n"
    (run_dir / "events.jsonl").write_bytes(head + b"".join(orjson.dumps(e) + b"\n" for e in events))
    return run_dir


def event(kind: str, i: int, **fields: object) -> dict:
    return {"v": 1, "kind": kind, "run_id": "soak_panes", "t": T0 + i, "mono_ns": i, **fields}


@contextlib.asynccontextmanager
async def watching(run_dir: Path, size: tuple[int, int]) -> AsyncIterator[tuple[SoakApp, Pilot]]:
    """The viewer on `run_dir` in a terminal of `size`, attached (the log folded)."""
    app = create_app(run_dir, clock=lambda: T0 + 3600)
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await attached(pilot, app)
        yield app, pilot


# -- 1-6 and Esc -----------------------------------------------------------------------------------


def test_a_number_maximises_its_pane_even_one_the_small_layout_hides_and_esc_restores(tmp_path):
    run_dir = write_run(tmp_path, [], recorded=True)

    async def main():
        async with watching(run_dir, (80, 24)) as (app, pilot):
            screen = app.screen
            plot, rotation = screen.query_one(ThroughputPane), screen.query_one(RotationPane)
            assert not plot.display and rotation.region.width == 40  # 80x24: a 2x2 grid, no plot

            await pilot.press("3")
            await until(pilot, lambda: plot.region.width == 80, "the plot fills the width")
            assert screen.maximized is plot and rotation.region.area == 0
            assert str(plot.border_title).startswith("3 Throughput")

            await pilot.press("escape")
            await until(pilot, lambda: screen.maximized is None, "restored")
            await until(pilot, lambda: rotation.region.width == 40, "the grid is back")
            assert not plot.display

    run(main())


def test_esc_closes_a_dialog_first_and_the_same_number_toggles(tmp_path):
    run_dir = write_run(tmp_path, [], recorded=True)

    async def main():
        async with watching(run_dir, (120, 40)) as (app, pilot):
            screen = app.screen
            await pilot.press("2")
            await until(pilot, lambda: screen.maximized is not None, "maximised")
            assert screen.maximized.id == "scenarios"

            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            body = str(app.screen.query_one("#help-body", Static).render())
            for text in ("1-6", "Maximise pane", "Esc", "Restore layout"):
                assert text in body, text
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "help closed")
            assert screen.maximized.id == "scenarios"  # that Esc was the dialog's

            await pilot.press("2")
            await until(pilot, lambda: screen.maximized is None, "the same number restores")
            await pilot.press("6")
            await until(pilot, lambda: screen.maximized is not None, "the error log maximised")
            assert isinstance(screen.maximized, ErrorLog) and app.focused is screen.maximized

    run(main())


def test_the_command_palette_maximises_by_pane_name(tmp_path):
    run_dir = write_run(tmp_path, [], recorded=True)

    async def main():
        async with watching(run_dir, (80, 24)) as (app, pilot):
            screen = app.screen
            await pilot.press("ctrl+p")
            await pilot.press(*"maximise pane tool calls")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: screen.maximized is not None, "maximised from the palette")
            assert isinstance(screen.maximized, ToolCallPane) and screen.maximized.region.width == 80

    run(main())
