"""LineText (soaktui/ui/widgets/lines.py): a redraw renders only the lines that changed, a line that
only moved reuses its strip, what the screen shows is always the lines set last, and a mouse
selection works as on a Static."""

from __future__ import annotations

import asyncio

import pytest
from textual.app import App, ComposeResult
from textual.content import Content
from textual.pilot import Pilot
from textual.visual import Visual
from textual.widget import Widget
from textual.widgets import Static

from soaktui.ui.widgets.lines import LineText

pytestmark = pytest.mark.integration


class _One(App[None]):
    def compose(self) -> ComposeResult:
        yield LineText(id="text")


def _screen_rows(app: App[None], n: int) -> list[str]:
    """The first `n` rows of the screen as the terminal would show them."""
    strips = app.screen._compositor.render_strips()
    return [strip.text.rstrip() for strip in strips[:n]]


def test_only_changed_lines_are_rendered_and_moved_lines_reuse_their_strips(monkeypatch):
    rendered: list[str] = []  # the text of every line turned into a strip
    drawn: list[int] = []  # every line the widget was asked for
    to_strips = Visual.to_strips.__func__  # type: ignore[attr-defined]

    def spy_to_strips(cls, widget, visual, *args, **kwargs):
        if isinstance(widget, LineText):
            rendered.append(visual.plain)
        return to_strips(cls, widget, visual, *args, **kwargs)

    render_line = LineText.render_line

    def spy_render_line(self, y):
        drawn.append(y)
        return render_line(self, y)

    monkeypatch.setattr(Visual, "to_strips", classmethod(spy_to_strips))
    monkeypatch.setattr(LineText, "render_line", spy_render_line)

    async def main() -> None:
        app = _One()
        async with app.run_test(size=(30, 8)) as pilot:
            w = app.query_one(LineText)
            first = [Content(f"line {i}") for i in range(5)]
            w.set_lines(first)
            await pilot.pause(0.05)
            assert _screen_rows(app, 6) == ["line 0", "line 1", "line 2", "line 3", "line 4", ""]
            assert sorted(set(rendered)) == [f"line {i}" for i in range(5)]

            rendered.clear()
            drawn.clear()
            shown = [*first[:2], Content.styled("line 2!", "bold"), *first[3:]]
            w.set_lines(shown)
            await pilot.pause(0.05)
            assert rendered == ["line 2!"] and set(drawn) == {2}
            assert _screen_rows(app, 5)[2] == "line 2!"

            rendered.clear()
            drawn.clear()
            feed = [Content("new"), *shown]  # a feed: a new line on top, the others move down
            w.set_lines(feed)
            await pilot.pause(0.05)
            assert rendered == ["new"]  # the moved lines' strips were kept
            assert set(drawn) == set(range(6))
            assert _screen_rows(app, 7) == ["new", "line 0", "line 1", "line 2!", "line 3", "line 4", ""]

            rendered.clear()
            w.set_lines(feed[:2])  # shorter: the rest of the widget is blank again
            await pilot.pause(0.05)
            assert rendered == []
            assert _screen_rows(app, 4) == ["new", "line 0", "", ""]
            assert w.content.plain == "new\nline 0"

            rendered.clear()
            app.theme = "textual-light" if app.theme != "textual-light" else "nord"
            await pilot.pause(0.05)
            assert sorted(rendered) == ["line 0", "new"]  # a theme's colours: every line again
            assert _screen_rows(app, 2) == ["new", "line 0"]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_height_follows_the_lines_when_asked():
    """An auto-height LineText (the focused error log) is as tall as its lines after a layout pass."""

    class Auto(App[None]):
        CSS = "LineText { height: auto; }"

        def compose(self) -> ComposeResult:
            yield LineText(id="text")

    async def main() -> None:
        app = Auto()
        async with app.run_test(size=(30, 12)) as pilot:
            w = app.query_one(LineText)
            w.set_lines([Content(str(i)) for i in range(3)], layout=True)
            await pilot.pause(0.05)
            assert w.size.height == 3
            w.set_lines([Content(str(i)) for i in range(7)], layout=True)
            await pilot.pause(0.05)
            assert w.size.height == 7 and _screen_rows(app, 8)[6:] == ["6", ""]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_mouse_selection_copies_and_shows_as_on_a_static():
    """Dragging over a LineText selects what the same drag over a Static selects, and shows it the same."""
    rows = [Content(f"row {i} text") for i in range(4)]

    class Both(App[None]):
        CSS = "LineText, Static { height: 5; }"

        def compose(self) -> ComposeResult:
            yield LineText(id="lines")
            yield Static(Content("\n").join(rows), id="static")

    def drawn(app: App[None], widget: Widget) -> list[list[tuple[str, object, object]]]:
        strips = app.screen._compositor.render_strips()
        top = widget.region.y
        return [[(s.text, s.style and s.style.color, s.style and s.style.bgcolor) for s in strips[y]]
                for y in range(top, top + len(rows))]  # fmt: skip

    async def drag(pilot: Pilot[None], widget: Widget) -> None:
        await pilot.mouse_down(widget, offset=(0, 1))
        await pilot.hover(widget, offset=(5, 2))
        await pilot.mouse_up(widget, offset=(5, 2))
        await pilot.pause(0.05)

    async def main() -> tuple[list[object], list[object]]:
        app = Both()
        seen: list[object] = []
        async with app.run_test(size=(40, 12)) as pilot:
            lines, static = app.query_one(LineText), app.query_one(Static)
            lines.set_lines(list(rows))
            await pilot.pause(0.05)
            plain = drawn(app, lines)
            for widget in (lines, static):
                await drag(pilot, widget)
                seen.append((app.screen.get_selected_text(), drawn(app, widget)))
                app.screen.clear_selection()
                await pilot.pause(0.05)
            assert drawn(app, lines) == plain  # the selection gone, the rows as they were
        return seen[0], seen[1]  # type: ignore[return-value]

    on_lines, on_static = asyncio.run(asyncio.wait_for(main(), 60))
    assert on_lines[0] == on_static[0] == "row 1 text\nrow 2 "
    assert on_lines[1] == on_static[1]
