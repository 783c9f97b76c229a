"""The error log: classified errors from failed requests and `error` events, newest first, bounded.

A scrollable pane holding one text block, rebuilt newest-first only when a new error arrives (and
at most twice a second), so the most recent failure is always the top line. Unfocused it renders
only the errors that fit on screen, so a failing server does not make the viewer expensive; `e`
focuses it and every held error (LiveState keeps MAX_ERRORS) is rendered, to scroll through.
One `Content` block costs a fraction of writing line by line to a RichLog (which renders each
write through Rich), and its styles are theme variables, so a theme switch needs no redraw.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from soaktui.ui import format as fmt
from soaktui.ui.widgets.pane import ACCENT, BAD, MUTED, Redraws, line

MESSAGE_CHARS = 160  # a line of the log; the whole message is in errors.log

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState


class ErrorLog(Redraws, VerticalScroll):
    section = "errors"
    min_interval = 0.5

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="pane")

    _fixed: int | None = None  # the text's fixed height while unfocused

    def compose(self) -> ComposeResult:
        yield Static("", id="errors-text", markup=False)

    def on_focus(self) -> None:
        self._drawn_key = None  # the next tick renders every held error, to scroll through

    def on_blur(self) -> None:
        self._drawn_key = None

    @property
    def text(self) -> str:
        """The log as plain text (what the tests read)."""
        return str(self.query_one("#errors-text", Static).render())

    def draw(self, live: LiveState, now: float) -> None:
        total = live.errors_total
        self.set_title(f"{total:,}, newest first" if total else "")
        body = self.query_one("#errors-text", Static)
        shown = list(live.errors)
        if not self.has_focus:
            shown = shown[-max(10, self.size.height) :]
        lines: list[Content] = []
        for e in reversed(shown):
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(e.t))
                if isinstance(e.t, (int, float))
                else "--:--:--"
            )
            lines.append(
                line(
                    (stamp + " ", MUTED),
                    (e.error_class, f"bold {BAD}"),
                    " ",
                    (e.where, ACCENT),
                    (f" {fmt.short_model(None, e.model)}" if e.model else "", MUTED),
                )
            )
            lines.append(Content("  " + fmt.clip(e.message.replace("\n", " "), MESSAGE_CHARS)))
        text = Content("\n").join(lines) if lines else line(("No errors so far.", MUTED))
        if self.has_focus:  # every held error, as tall as it needs: a layout pass sizes the scroll
            self._fixed = None
            body.styles.height = "auto"
            body.update(text)
        else:  # the pane's own height: the text changes, the layout does not
            height = max(1, self.scrollable_content_region.height)
            if self._fixed != height:
                self._fixed = height
                body.styles.height = height
            body.update(text, layout=False)
        if self.scroll_y:
            self.scroll_home(animate=False)
