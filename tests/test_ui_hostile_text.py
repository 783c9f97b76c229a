"""Server text is never markup in the viewer (issue 14, item 7): an error reading `[/INST]` used to kill
the viewer when `r` opened the report (DataTable parses str cells as Rich markup). Pilot drives the
real viewer on a log where every failure says `[/INST] [bold]x [link=x]y` among terminal escapes,
stored raw as a soaktui before the neutralising pass would have stored it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.content import Content
from textual.widgets import DataTable

from soaktui.ui.app import create_app
from soaktui.ui.screens.error_filter import ErrorFilterScreen
from soaktui.ui.screens.report import ReportScreen
from soaktui.ui.widgets.errors import ErrorLog
from tests.hostile import hostile_log

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"


def test_the_report_screen_shows_markup_like_server_text_as_written(tmp_path):
    cells = asyncio.run(asyncio.wait_for(open_report(tmp_path), 120))
    assert any("[/INST] [bold]x [link=x]y" in c and "\\x1b]0;pwned\\x07" in c for c in cells), cells


async def open_report(tmp_path: Path) -> list[str]:
    """Open the report on the hostile log with `r`; the errors table's example cells as shown."""
    run_dir = tmp_path / "run"
    hostile_log(RECORDED, run_dir)
    app = create_app(run_dir, theme="dark")
    async with app.run_test(size=(160, 50)) as pilot:
        deadline = time.monotonic() + 30
        while not app.loaded:
            assert time.monotonic() < deadline, "the viewer never loaded the log"
            await pilot.pause(0.02)
        await pilot.press("r")
        while not (isinstance(app.screen, ReportScreen) and app.screen.snap is not None):
            assert time.monotonic() < deadline, "the report never appeared"
            await pilot.pause(0.02)
        await pilot.pause(0.2)  # the tables are drawn: a markup error would have ended the app here
        table = app.screen.query_one("#errors", DataTable)
        cells = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
        assert app.is_running and isinstance(app.screen, ReportScreen)
    return cells


def test_the_error_filter_and_pane_titles_show_a_markup_like_model_id_as_written(tmp_path):
    """f lists the models (an OptionList); choosing one names it in the error pane's border title."""
    title = asyncio.run(asyncio.wait_for(filter_by_model(tmp_path), 120))
    assert "mistral[/INST][b]7b" in title.plain, title


async def filter_by_model(tmp_path: Path) -> Content:
    run_dir = tmp_path / "run"
    hostile_log(RECORDED, run_dir)
    app = create_app(run_dir, theme="dark")
    async with app.run_test(size=(160, 50)) as pilot:
        deadline = time.monotonic() + 30
        while not app.loaded:
            assert time.monotonic() < deadline, "the viewer never loaded the log"
            await pilot.pause(0.02)
        await pilot.press("f")
        while not isinstance(app.screen, ErrorFilterScreen):
            assert time.monotonic() < deadline, "the filter never opened"
            await pilot.pause(0.02)
        screen = app.screen
        index = next(i for i, m in enumerate(screen.model_choices) if m and "[/INST]" in m)
        await pilot.press(*["down"] * index, "enter")
        while isinstance(app.screen, ErrorFilterScreen):
            assert time.monotonic() < deadline, "the filter never closed"
            await pilot.pause(0.02)
        await pilot.pause(0.7)  # the error log redraws at most twice a second
        pane = app.screen.query_one(ErrorLog)
        assert app.is_running
        return pane._border_title
