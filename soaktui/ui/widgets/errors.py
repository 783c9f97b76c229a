"""The error log: classified errors from failed requests and `error` events, newest first, bounded.

A scrollable pane holding the errors' lines, rebuilt newest-first only when a new error arrives (and
at most twice a second), so the most recent failure is always the top line. Unfocused it renders
only the errors that fit on screen, so a failing server does not make the viewer expensive; `e`
(or the mouse wheel, or maximising it) focuses it and every held error (LiveState keeps
MAX_ERRORS) is rendered, to scroll back through. Scrolled back, the view stays on the errors being
read while new ones arrive above them.
`f` filters it to one model and/or one error class (an ErrorFilter, chosen among the held errors;
the title says which). The filter is a view of LiveState's bounded deque, not a second store.
The lines are wrapped here at the pane's width (so scrolling back knows each error's height) and
drawn by a LineText (widgets/lines.py): a new error renders its own lines only, the older ones
move down with the strips they had. Styles are theme variables: a theme switch needs no rebuild.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content

from soaktui.report.names import elide, short_names
from soaktui.ui import format as fmt
from soaktui.ui.widgets.lines import LineText
from soaktui.ui.widgets.pane import ACCENT, BAD, MUTED, Redraws, line, wrap

MESSAGE_CHARS = 160  # a line of the log; the whole message is in errors.log
TITLE_NAME = 20  # a model's name in the pane's title, elided in the middle

if TYPE_CHECKING:
    from soaktui.ui.state import ErrorLine, LiveState


@dataclass(frozen=True)
class ErrorFilter:
    """Which errors the log shows: one model's (its id) and/or one class's; None is all."""

    model: str | None = None
    error_class: str | None = None

    def __bool__(self) -> bool:
        return self.model is not None or self.error_class is not None

    def matches(self, e: ErrorLine) -> bool:
        return (self.model is None or e.model == self.model) and (
            self.error_class is None or e.error_class == self.error_class
        )


def held(errors: Iterable[ErrorLine]) -> tuple[Counter[str], Counter[str]]:
    """The held errors counted per model and per class: what the filter can choose from."""
    models: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    for e in errors:
        if e.model is not None:
            models[e.model] += 1
        classes[e.error_class] += 1
    return models, classes


class ErrorLog(Redraws, VerticalScroll):
    section = "errors"
    min_interval = 0.5

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="pane")
        self.error_filter = ErrorFilter()

    _fixed: int | None = None  # the text's fixed height while unfocused
    _top: ErrorLine | None = None  # the newest error drawn: how far new ones push the view down

    def compose(self) -> ComposeResult:
        yield LineText(id="errors-text")

    def on_focus(self) -> None:
        self._drawn_key = None  # the next tick renders every held error, to scroll through

    def on_blur(self) -> None:
        self._drawn_key = None

    def on_mouse_scroll_down(self) -> None:
        if not self.has_focus:
            self.focus()  # the wheel means "read back": render every held error

    def set_filter(self, choice: ErrorFilter | None) -> None:
        """Show only the errors `choice` matches (None: keep the current filter)."""
        if choice is None or choice == self.error_filter:
            return
        self.error_filter = choice
        self._drawn_key = None
        self._top = None
        self.scroll_home(animate=False)

    @property
    def text(self) -> str:
        """The log as plain text (what the tests read)."""
        return self.query_one("#errors-text", LineText).content.plain

    def _title(self, live: LiveState, shown: int) -> str:
        f = self.error_filter
        if not f:
            return f"{live.errors_total:,}, newest first" if live.errors_total else ""
        parts = [f"{shown} of {len(live.errors)} held"]  # first: a narrow pane cuts the title's end
        if f.error_class:
            parts.append(f.error_class)
        if f.model:
            parts.append(elide(short_names([f.model])[f.model], TITLE_NAME))
        return " · ".join(parts)

    def draw(self, live: LiveState, now: float) -> None:
        body = self.query_one("#errors-text", LineText)
        f = self.error_filter
        shown = [e for e in live.errors if f.matches(e)] if f else list(live.errors)
        self.set_title(self._title(live, len(shown)))
        if not self.has_focus:
            shown = shown[-max(10, self.size.height) :]
        names = short_names({e.model for e in shown if e.model})
        # Focused, the text outgrows the pane and a scrollbar takes a column: that column is kept
        # from the first draw on, so a line is never wrapped at one width and shown at another.
        bar = self.styles.scrollbar_size_vertical if self.has_focus else 0
        width = max(10, self.content_region.width - bar)
        lines: list[Content] = []
        heights: list[int] = []  # each error's lines, newest first, once wrapped at the pane's width
        for e in reversed(shown):
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(e.t))
                if isinstance(e.t, (int, float))
                else "--:--:--"
            )
            head = line(
                (stamp + " ", MUTED),
                (e.error_class, f"bold {BAD}"),
                " ",
                (e.where, ACCENT),
                (f" {names[e.model]}" if e.model else "", MUTED),
            )
            message = Content("  " + fmt.clip(e.message.replace("\n", " "), MESSAGE_CHARS))
            rows = wrap([head, message], width)
            lines += rows
            heights.append(len(rows))
        if not lines:
            empty = "No errors so far." if not f else "No held error matches the filter (f changes it)."
            lines = wrap([line((empty, MUTED))], width)
        if self.has_focus:  # every held error, as tall as it needs: a layout pass sizes the scroll
            self._fixed = None
            body.styles.height = "auto"
            body.set_lines(lines, layout=True)
            self._hold_view(shown, heights)
        else:  # the pane's own height: the text changes, the layout does not
            height = max(1, self.scrollable_content_region.height)
            if self._fixed != height:
                self._fixed = height
                body.styles.height = height
            body.set_lines(lines)
            if self.scroll_y:
                self.scroll_home(animate=False)
        self._top = shown[-1] if shown else None

    def _hold_view(self, shown: list[ErrorLine], heights: list[int]) -> None:
        """Scrolled back, keep the lines being read in place: move down by the lines added above
        (`heights`: each shown error's lines, newest first)."""
        top, y = self._top, self.scroll_y
        if top is None or not y:
            return
        for i, e in enumerate(reversed(shown)):
            if e is top:
                if i:
                    self.call_after_refresh(self.scroll_to, y=y + sum(heights[:i]), animate=False)
                return
        # the error at the top of the view has left the bounded history: stay where we are
