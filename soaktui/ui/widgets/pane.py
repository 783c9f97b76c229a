"""The base of the dashboard's text panes: redraw only when their data or their size changed.

A pane names the LiveState section it draws (`section`); the dashboard's tick calls `maybe_draw`
for visible panes only, and a pane whose section version and size are unchanged does nothing.
The dashboard numbers the panes (ui/panes.py: key N maximises pane N), so a pane's border title is
its number and name, then what it shows now (`set_title`).
A pane draws from the live state and the clock alone (`draw(live, now)`), never from the app: what
else the header needs comes as a narrow view (ui/view.py).
Text is built as Textual `Content` lines with theme-variable styles ($primary, $error ...), so a
theme switch restyles it without a rebuild and no colour is written here; a pane draws a line at a
time (widgets/lines.py), so a redraw costs the lines that changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.content import Content

from soaktui.ui.widgets.lines import LineText

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState

Part = str | tuple[str, str]

MUTED = "$text-muted"
GOOD = "$text-success"
BAD = "$text-error"
WARN = "$text-warning"
ACCENT = "$text-primary"


def line(*parts: Part) -> Content:
    return Content.assemble(*parts)


def cut(lines: Iterable[Content], width: int) -> list[Content]:
    """Lines cut to `width` cells (with an ellipsis)."""
    return [c.truncate(max(1, width), ellipsis=True) for c in lines]


def wrap(lines: Iterable[Content], width: int) -> list[Content]:
    """Lines wrapped at `width` cells: a long one goes on over the next rows."""
    return [row for c in lines for row in c.wrap(max(1, width))]


def cell(text: str, width: int, *, right: bool = False) -> str:
    """`text` fitted to exactly `width` cells."""
    if width <= 0:
        return ""
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


SLOW_S = 2.0  # while the viewer catches up with a long log, panes redraw at most this often


class Redraws:
    """Mixin for panes: redraw only when the data, the size or the theme changed, and not too often.

    `min_interval` rate-limits panes that are costly to render (the plot); `slow` (set while the
    initial fold runs) applies SLOW_S to every pane, so folding a huge log gets the CPU.
    """

    section: ClassVar[str] = "header"
    min_interval: ClassVar[float] = 0.0
    label: str = ""  # "3 Throughput": the pane's number (its zoom key) and name
    detail: ClassVar[str] = ""  # what the title says after the label until the pane says otherwise
    _drawn_key: tuple[Any, ...] | None = None
    _drawn_at: float = 0.0

    def numbered(self, number: int, name: str) -> None:
        self.label = f"{number} {name}"
        self.set_title(self.detail)

    def set_title(self, detail: str = "") -> None:
        """The border title: the label, then what the pane shows now (`detail`), if anything. Content,
        not a str: a str would be parsed as markup, and `detail` can name a model."""
        widget: Any = self  # a Textual widget: Redraws is mixed into one
        widget.border_title = Content(f"{self.label} · {detail}" if detail else self.label)

    def maybe_draw(
        self, live: LiveState, now: float, theme: str, *, force: bool = False, slow: bool = False
    ) -> bool:
        """Redraw if due (`theme`: the app's theme name now); True when it drew."""
        size = self.size  # type: ignore[attr-defined]
        key = (live.versions[self.section], size.width, size.height, theme)
        old = self._drawn_key
        if not force and key == old:
            return False
        look_changed = old is None or key[1:] != old[1:]
        interval = max(self.min_interval, SLOW_S if slow else 0.0)
        t = time.monotonic()
        if not force and not look_changed and t - self._drawn_at < interval:
            return False
        self._drawn_key, self._drawn_at = key, t
        self.draw(live, now)
        return True

    def draw(self, live: LiveState, now: float) -> None:
        raise NotImplementedError


class Pane(Redraws, LineText):
    """A bordered text pane drawn from one LiveState section, a line at a time (widgets/lines.py):
    a redraw renders only the lines that changed. The grid fixes the pane's size: no layout pass."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, classes="pane")

    def show(self, lines: Iterable[Content]) -> None:
        """Show `lines`, each cut to the pane's width."""
        self.set_lines(cut(lines, self.inner_width))

    def show_wrapped(self, text: Content) -> None:
        """Show `text` wrapped at the pane's width (a message that must be read whole)."""
        self.set_lines(wrap(text.split("\n"), self.inner_width))

    @property
    def inner_width(self) -> int:
        return max(10, self.content_region.width or self.size.width or 40)

    @property
    def inner_height(self) -> int:
        return max(1, self.content_region.height or self.size.height or 8)
