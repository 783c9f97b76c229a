"""Panes you can work with: 1-6 maximise a pane and Esc restores the grid, `f` filters the error
log and it scrolls back, the tool-call feed leads with its verdict, the plots keep fixed scales.

The viewer attaches to a run directory as `soaktui watch` does (the recorded run of tests/data/ui,
or one written here: errors from two models in two classes, tool-call verdicts) and Pilot presses
the real keys; each test then reads what the panes show.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from soaktui.ui.app import SoakApp, create_app
from soaktui.ui.format import sparkline
from soaktui.ui.screens.error_filter import ErrorFilterScreen
from soaktui.ui.screens.help import HelpScreen
from soaktui.ui.state import MAX_ERRORS
from soaktui.ui.widgets.errors import ErrorLog
from soaktui.ui.widgets.lines import LineText
from soaktui.ui.widgets.rotation import RotationPane
from soaktui.ui.widgets.throughput import CachedPlot, ThroughputPane, segments, y_axis
from soaktui.ui.widgets.toolcalls import ToolCallPane
from tests.test_ui_keys import RECORDED, attached, run, until
from tests.test_ui_snapshots import _deterministic  # noqa: F401 - fixture: TZ=UTC, HOME, no animation

pytestmark = pytest.mark.e2e

T0 = 1_800_000_000.0
PROVIDER = "lmstudio@127.0.0.1:1234"
LONG = "deepseek-r1-distill-qwen-14b-instruct-abliterated-Q4_K_M"  # 56 characters: elided


def write_run(tmp_path: Path, events: list[dict], *, recorded: bool = False) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    head = RECORDED.read_bytes() if recorded else orjson.dumps(event("run_started", 0)) + b"\n"
    (run_dir / "events.jsonl").write_bytes(head + b"".join(orjson.dumps(e) + b"\n" for e in events))
    return run_dir


def event(kind: str, i: int, **fields: object) -> dict:
    return {"v": 1, "kind": kind, "run_id": "soak_panes", "t": T0 + i, "mono_ns": i, **fields}


def failure(i: int, model: str, error_class: str) -> dict:
    return event("request", i, provider=PROVIDER, model=model, scenario="streaming", stream=True,
                 ok=False, error_class=error_class,
                 error=f"{error_class} number {i} from {model}")  # fmt: skip


def tool_call(i: int, model: str, verdict: str, **fields: object) -> dict:
    return event("tool_call", i, provider=PROVIDER, model=model, key=f"{PROVIDER}/{model}",
                 scenario="tool_calling", prompt_kind="simple", format="hermes", verdict=verdict,
                 correct=verdict == "correct", **fields)  # fmt: skip


@contextlib.asynccontextmanager
async def watching(run_dir: Path, size: tuple[int, int]) -> AsyncIterator[tuple[SoakApp, Pilot]]:
    """The viewer on `run_dir` in a terminal of `size`, attached (the log folded)."""
    app = create_app(run_dir, clock=lambda: T0 + 3600)
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await attached(pilot, app)
        yield app, pilot


def shown_lines(log: ErrorLog) -> list[str]:
    """The error log's headline of each error shown, as the screen shows it: a headline starts with
    its time and may wrap onto the next lines; the message under it starts indented, and may wrap."""
    heads: list[str] = []
    in_head = False
    for row in log.text.splitlines():
        if re.match(r"(\d\d:\d\d:\d\d|--:--:--) ", row):
            heads.append(row)
            in_head = True
        elif row.startswith("  "):
            in_head = False
        elif in_head:
            heads[-1] += " " + row
    return heads


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
            chart = str(plot.query_one(CachedPlot).render())
            ticks = [row.split("┤")[0].strip() for row in chart.splitlines() if "┤" in row]
            assert float(ticks[-1]) == 0  # tokens/s from 0, not from the slowest model
            legend = str(plot.query_one("#throughput-legend", Static).render())
            assert "sim-qwen2.5-7b-instruct" in legend and "■" in legend

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
            for text in ("1-6", "Maximise pane", "Esc", "Restore layout", "f", "Filter errors"):
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


# -- the error log ---------------------------------------------------------------------------------


def two_by_two() -> list[dict]:
    """8 errors: m-alpha 3 timeouts and 2 http_status, m-beta 2 timeouts and 1 http_status."""
    cells = [("m-alpha", "timeout")] * 3 + [("m-alpha", "http_status")] * 2
    cells += [("m-beta", "timeout")] * 2 + [("m-beta", "http_status")]
    order = [0, 5, 3, 1, 6, 7, 4, 2]  # interleaved in time
    return [failure(i + 1, *cells[j]) for i, j in enumerate(order)]


def test_the_error_log_filters_by_model_and_class(tmp_path):
    run_dir = write_run(tmp_path, two_by_two())

    async def main():
        async with watching(run_dir, (120, 40)) as (app, pilot):
            log = app.screen.query_one(ErrorLog)
            await until(pilot, lambda: len(shown_lines(log)) == 8, "all eight errors")

            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, ErrorFilterScreen), "the picker")
            await pilot.press("down", "tab", "down", "enter")  # m-alpha (5 errors), timeout (5)
            await until(pilot, lambda: len(shown_lines(log)) == 3, "the filter applied")
            assert all("timeout" in s and s.endswith("m-alpha") for s in shown_lines(log))
            assert str(log.border_title) == "6 Errors · 3 of 8 held · timeout · m-alpha"

            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, ErrorFilterScreen), "the picker again")
            await pilot.press("down", "tab", "up", "enter")  # m-beta, all classes
            await until(pilot, lambda: len(shown_lines(log)) == 3 and "m-beta" in log.text, "m-beta's")
            assert {s.split()[1] for s in shown_lines(log)} == {"timeout", "http_status"}
            assert "m-alpha" not in log.text

            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, ErrorFilterScreen), "the picker")
            await pilot.press("escape")  # cancel: the filter stays
            await until(pilot, lambda: not isinstance(app.screen, ErrorFilterScreen), "cancelled")
            assert str(log.border_title) == "6 Errors · 3 of 8 held · m-beta"

            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, ErrorFilterScreen), "the picker")
            await pilot.press("home", "tab", "home", "enter")
            await until(pilot, lambda: len(shown_lines(log)) == 8, "every error again")
            assert str(log.border_title) == "6 Errors · 8, newest first"

    run(main())


def test_the_error_log_scrolls_back_through_its_bounded_history_and_holds_the_view(tmp_path):
    errors = [failure(i, "m-alpha" if i % 2 else "m-beta", "timeout") for i in range(1, MAX_ERRORS + 51)]
    run_dir = write_run(tmp_path, errors)

    async def main():
        async with watching(run_dir, (120, 40)) as (app, pilot):
            log = app.screen.query_one(ErrorLog)
            await pilot.press("e")  # focused: every held error, the oldest 50 gone
            await until(pilot, lambda: len(shown_lines(log)) == MAX_ERRORS, "the whole bounded history")
            assert shown_lines(log)[-1].endswith("m-alpha") and "number 51 " in log.text.splitlines()[-1]

            await pilot.press("end", "pageup")  # back in the middle of the history
            await until(pilot, lambda: 0 < log.scroll_y < log.max_scroll_y - 6, "scrolled back")
            y = log.scroll_y
            rows = log.text.splitlines()
            reading, newest = rows[int(y)], rows[:2]
            more = [failure(1000 + i, "m-alpha", "http_status") for i in range(3)]
            with open(run_dir / "events.jsonl", "ab") as f:
                f.write(b"".join(orjson.dumps(e) + b"\n" for e in more))
            await until(pilot, lambda: "number 1002 " in log.text, "the new errors above")
            rows = log.text.splitlines()
            added = next(i for i in range(len(rows)) if rows[i : i + 2] == newest)  # their rows, wrapped
            assert added >= 6  # three errors, at least two rows each
            await until(pilot, lambda: log.scroll_y == y + added, "the view moved down with its lines")
            assert log.text.splitlines()[int(log.scroll_y)] == reading

    run(main())


def test_a_focused_error_log_wraps_long_messages_at_the_width_they_are_shown_at(tmp_path):
    """Focused, every held error is shown and a scrollbar takes a column: the lines are wrapped for
    the width left, never cut by it (before, the first draw wrapped one column too wide)."""
    errors = [failure(i, "m-alpha", "timeout") for i in range(1, 80)]
    for e in errors:
        e["error"] = f"timeout {e['t']} " + "0123456789" * 12  # wraps over several rows
    run_dir = write_run(tmp_path, errors)

    async def main():
        async with watching(run_dir, (120, 40)) as (app, pilot):
            log = app.screen.query_one(ErrorLog)
            await pilot.press("e")
            await until(pilot, lambda: len(shown_lines(log)) == len(errors), "every held error")
            await pilot.pause(0.3)
            body = log.query_one("#errors-text", LineText)
            assert log.max_scroll_y > 0 and body.size.width == log.scrollable_content_region.width
            rows = log.text.splitlines()
            assert max(len(r) for r in rows) == body.size.width  # full rows fill it, none is longer
            assert "".join(rows[1:5]).replace(" ", "").startswith("timeout") and "0123456789" * 3 in "".join(rows[1:5])

    run(main())


# -- the tool-call feed ----------------------------------------------------------------------------


def test_the_feed_leads_with_a_coloured_verdict_and_elides_long_names(tmp_path):
    calls = [
        tool_call(1, "m-alpha", "correct"),
        tool_call(2, "m-beta", "wrong_values", detail="unit: expected celsius"),
        tool_call(3, LONG, "unparsed_call", detail="a call soaktui cannot read: <call>f()</call>"),
    ]
    run_dir = write_run(tmp_path, calls)

    async def main():
        async with watching(run_dir, (200, 60)) as (app, pilot):
            pane = app.screen.query_one(ToolCallPane)
            await until(pilot, lambda: "3 detections" in str(pane.content), "the feed drawn")
            return pane.content

    content = asyncio.run(asyncio.wait_for(main(), 120))
    rows = content.plain.splitlines()
    assert rows[0] == "3 detections, newest first"
    unparsed, wrong, correct = rows[1], rows[3], rows[4]  # newest first; the unparsed call's text under it
    assert correct.startswith("✓ ") and correct.endswith("m-alpha simple hermes")  # ✓ needs no words
    assert wrong.startswith("✗ ") and wrong.endswith("m-beta simple hermes wrong_values")
    assert unparsed.startswith("? ") and unparsed.endswith("unparsed_call")
    assert LONG not in content.plain and "deepseek" in unparsed and "…" in unparsed  # cut in the middle
    assert rows[2].strip().startswith("a call soaktui cannot read")
    starts = {content.plain.index(row) for row in (correct, wrong, unparsed)}
    marks = {span.start: str(span.style) for span in content.spans if span.start in starts}
    assert sorted(marks.values()) == ["bold $text-error", "bold $text-success", "bold $text-warning"]


# -- plot scales and gaps --------------------------------------------------------------------------


@pytest.mark.unit
def test_a_line_breaks_where_a_model_has_no_samples():
    turn = [(float(t), 40.0) for t in range(0, 20, 2)]  # a sample every 2 s during its turn
    later = [(float(t), 38.0) for t in range(120, 140, 2)]  # its next turn, after 100 s of pause
    assert segments(turn + later) == [turn, later]
    steady = [(t, 40.0) for t, _ in turn] + [(22.0, 41.0), (26.0, 39.0)]  # a slower request or two
    assert segments(steady) == [steady]
    # sparse samples, but the rotation tested another model in between: a dot, then a line
    sparse = [(1.0, 420.0), (7.0, 420.0), (9.0, 421.0)]
    assert segments(sparse, others=[3.0, 5.0, 7.0]) == [sparse[:1], sparse[1:]]
    assert segments(sparse) == [sparse]
    assert segments([]) == [] and segments(turn[:2]) == [turn[:2]]


@pytest.mark.unit
def test_the_throughput_axis_starts_at_0_in_round_steps():
    assert y_axis(473.5) == [0, 100, 200, 300, 400, 500]
    assert y_axis(26.0) == [0, 10, 20, 30]
    assert y_axis(1000.0) == [0, 200, 400, 600, 800, 1000]
    assert y_axis(0.0) == [0, 1]  # nothing measured yet: an axis all the same


@pytest.mark.unit
def test_sparklines_on_a_fixed_scale_do_not_magnify_noise():
    steady = [55.0, 56.0, 55.0, 57.0]
    assert sparkline(steady, 4) == "▁▅▁█"  # its own min-max: a swing from 2 points of noise
    assert sparkline(steady, 4, 0.0, 100.0) == "▅▅▅▅"  # CPU load on 0-100%: steady
    assert sparkline([120.0, -5.0], 2, 0.0, 100.0) == "█▁"  # clamped to the scale
    assert sparkline([900.0, 1000.0], 2, lo=0.0) == "▇█"  # latency from 0
    assert sparkline([], 4) == "" and sparkline(steady, 0) == ""
