"""The error log: classified errors from failed requests and `error` events, newest first, bounded.

A RichLog holding at most MAX_ERRORS lines; it is rewritten newest-first only when a new error
arrives, so the most recent failure is always the top line. Unfocused it writes only the errors
that fit on screen, so a failing server does not make the viewer expensive.
`e` focuses it to scroll. Colours come from the current theme, never from here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.widgets import RichLog

from soaktui.ui import format as fmt
from soaktui.ui.state import MAX_ERRORS
from soaktui.ui.widgets.pane import Redraws

MESSAGE_CHARS = 160  # a line of the log; the whole message is in errors.log
# RichLog prunes its *first* lines past max_lines, and the first lines are the newest here, so the
# bound is set above what MAX_ERRORS entries can wrap to; the real bound is LiveState's deque.
MAX_LINES = MAX_ERRORS * (2 + MESSAGE_CHARS // 16)

if TYPE_CHECKING:
    from soaktui.ui.app import SoakApp
    from soaktui.ui.state import LiveState


def _color(var: dict[str, str], *names: str) -> str | None:
    """The first of the theme's `names` that is a plain colour (some variables are "auto 60%")."""
    for name in names:
        try:
            return Color.parse(var[name]).hex
        except (KeyError, ColorParseError):
            continue
    return None


def _blend(fg: str, bg: str) -> str:
    return Color.parse(fg).blend(Color.parse(bg), 0.4).hex


class ErrorLog(Redraws, RichLog):
    section = "errors"
    min_interval = 0.5

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(
            id=id,
            classes="pane",
            max_lines=MAX_LINES,
            wrap=True,
            min_width=20,
            markup=False,
            auto_scroll=False,
        )
        self.border_title = "Errors"

    def on_focus(self) -> None:
        self._drawn_key = None  # the next tick writes every held error, to scroll through

    def on_blur(self) -> None:
        self._drawn_key = None

    def draw(self, app: SoakApp, live: LiveState, now: float) -> None:
        var = app.theme_variables
        cls_style = Style(color=_color(var, "text-error", "error"), bold=True)
        where_style = Style(color=_color(var, "text-primary", "primary"))
        fg, bg = _color(var, "foreground"), _color(var, "surface", "background")
        muted = Style(color=_blend(fg, bg) if fg and bg else None, dim=not (fg and bg))
        total = live.errors_total
        self.border_title = f"Errors · {total:,}, newest first" if total else "Errors"
        self.clear()
        if not live.errors:
            self.write(Text("No errors so far.", style=muted))
            return
        # Unfocused, only what can show is written (each error takes two lines or more): a full
        # rewrite of 200 wrapped errors costs ~90 ms of the viewer's loop. Focused (`e`, to
        # scroll), every held error is written.
        shown = list(live.errors)
        if not self.has_focus:
            shown = shown[-max(10, self.size.height) :]
        for e in reversed(shown):
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(e.t))
                if isinstance(e.t, (int, float))
                else "--:--:--"
            )
            head = Text.assemble(
                (stamp + " ", muted),
                (e.error_class, cls_style),
                " ",
                (e.where, where_style),
                (f" {fmt.short_model(None, e.model)}" if e.model else "", muted),
            )
            self.write(head)
            self.write(Text("  " + fmt.clip(e.message.replace("\n", " "), MESSAGE_CHARS)))
        self.scroll_home(animate=False)
