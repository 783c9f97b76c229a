"""The base of the dashboard's text panes: redraw only when their data or their size changed.

A pane names the LiveState section it draws (`section`); the dashboard's tick calls `maybe_draw`
for visible panes only, and a pane whose section version and size are unchanged does nothing.
Text is built as Textual `Content` with theme-variable styles ($primary, $error ...), so a theme
switch restyles it without a redraw and no colour is written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.content import Content
from textual.widgets import Static

if TYPE_CHECKING:
    from soaktui.ui.app import SoakApp
    from soaktui.ui.state import LiveState

Part = str | tuple[str, str]

MUTED = "$text-muted"
GOOD = "$text-success"
BAD = "$text-error"
WARN = "$text-warning"
ACCENT = "$text-primary"


def line(*parts: Part) -> Content:
    return Content.assemble(*parts)


def block(lines: Iterable[Content], width: int) -> Content:
    """Lines cut to `width` cells (with an ellipsis), joined."""
    return Content("\n").join(c.truncate(max(1, width), ellipsis=True) for c in lines)


def cell(text: str, width: int, *, right: bool = False) -> str:
    """`text` fitted to exactly `width` cells."""
    if width <= 0:
        return ""
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


class Pane(Static):
    """A bordered text pane drawn from one LiveState section."""

    section: ClassVar[str] = "header"
    title: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, classes="pane", markup=False)
        self.border_title = self.title
        self._drawn: tuple[int, int, int] | None = None

    def maybe_draw(self, app: SoakApp, live: LiveState, now: float, *, force: bool = False) -> bool:
        """Redraw when the section changed or the pane was resized; True when it drew."""
        key = (live.versions[self.section], self.size.width, self.size.height)
        if not force and key == self._drawn:
            return False
        self._drawn = key
        self.draw(app, live, now)
        return True

    def draw(self, app: SoakApp, live: LiveState, now: float) -> None:
        raise NotImplementedError

    @property
    def inner_width(self) -> int:
        return max(10, self.content_region.width or self.size.width or 40)

    @property
    def inner_height(self) -> int:
        return max(1, self.content_region.height or self.size.height or 8)
