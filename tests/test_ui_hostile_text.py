"""Server text is never markup in the viewer (issue 14, item 7): an error reading `[/INST]` used to kill
the viewer when `r` opened the report (DataTable parses str cells as Rich markup). Pilot drives the
real viewer on a log where every failure says `[/INST] [bold]x [link=x]y` among terminal escapes,
stored raw as a soaktui before the neutralising pass would have stored it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.content import Content
from textual.widgets import DataTable

from soaktui.ui.app import create_app
from soaktui.ui.screens.error_filter import ErrorFilterScreen
from soaktui.ui.screens.report import ReportScreen
from soaktui.ui.widgets.errors import ErrorLog
from tests.hostile import hostile_log

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"


async def until(pilot, done: Callable[[], bool], what: str) -> None:
    """Pause until `done()` holds (a bound, not a timing assertion: it normally holds at once)."""
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        await pilot.pause(0.02)


def on_hostile_log(tmp_path: Path, steps: Callable[[Any, App], Awaitable[Any]]) -> Any:
    """Run the viewer on the hostile log, then `steps(pilot, app)`; what the steps return. A markup
    error anywhere in drawing ends the app: it must still run after them."""

    async def main() -> Any:
        run_dir = tmp_path / "run"
        hostile_log(RECORDED, run_dir)
        app = create_app(run_dir, theme="dark")
        async with app.run_test(size=(160, 50)) as pilot:
            await until(pilot, lambda: app.loaded, "the viewer loaded the log")
            out = await steps(pilot, app)
            assert app.is_running
            return out

    return asyncio.run(asyncio.wait_for(main(), 120))


def test_the_report_screen_shows_markup_like_server_text_as_written(tmp_path):
    async def errors_table(pilot, app: App) -> list[str]:
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.snap is not None, "report")
        await pilot.pause(0.2)  # the tables are drawn
        table = app.screen.query_one("#errors", DataTable)
        return [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]  # the example column

    cells = on_hostile_log(tmp_path, errors_table)
    assert any("[/INST] [bold]x [link=x]y" in c and "\\x1b]0;pwned\\x07" in c for c in cells), cells


def test_the_error_filter_and_pane_titles_show_a_markup_like_model_id_as_written(tmp_path):
    """f lists the models (an OptionList); choosing one names it in the error pane's border title."""

    async def filter_by_model(pilot, app: App) -> Content:
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, ErrorFilterScreen), "the filter opened")
        screen = app.screen
        assert isinstance(screen, ErrorFilterScreen)
        index = next(i for i, m in enumerate(screen.model_choices) if m and "[/INST]" in m)
        await pilot.press(*["down"] * index, "enter")
        await until(pilot, lambda: not isinstance(app.screen, ErrorFilterScreen), "the filter closed")
        await pilot.pause(0.7)  # the error log redraws at most twice a second
        return app.screen.query_one(ErrorLog)._border_title

    title = on_hostile_log(tmp_path, filter_by_model)
    assert title is not None and "mistral[/INST][b]7b" in title.plain, title
