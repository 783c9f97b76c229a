"""Text drawn a line at a time (Textual's line API): a redraw costs the lines that changed.

A Static renders its whole text on every update: each line becomes styled segments again, and
every line of the widget is composed again with its border and padding. At 10 requests/s the panes
change every second, yet most of their lines do not (a counter moved, a feed gained an entry at
the top). `LineText.set_lines` compares the new lines with the shown ones and marks only the lines
that differ as dirty, and a line's strip is kept by its text and styles, so a line that only moved
(a feed's older entries going down) is not rendered again either.

The strips are kept for one width, one visual style and one theme (`_strips_for`): a resize or a theme
switch renders every line again, with the theme's colours.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content, Span
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual
from textual.widget import Widget

LineKey = tuple[str, tuple[Span, ...]]


def _key(line: Content) -> LineKey:
    return line.plain, tuple(line.spans)


class LineText(Widget):
    """Lines of `Content`, each at most the widget's width (longer ones are cut by Textual)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes=classes)
        self._shown_lines: list[Content] = []
        self._line_strips: dict[LineKey, Strip] = {}  # a line's text and styles -> its strip in _strips_for
        self._strips_for: tuple[Any, ...] | None = None

    @property
    def content(self) -> Content:
        """The text shown, as one Content (what a Static's `content` would be)."""
        return Content("\n").join(self._shown_lines)

    @property
    def line_count(self) -> int:
        return len(self._shown_lines)

    def set_lines(self, lines: list[Content], *, layout: bool = False) -> bool:
        """Show `lines`: only those that differ from the line shown at their place are drawn again.
        True when some line differed.

        `layout`: the widget's height follows its lines (height auto), so a new count needs a layout pass.
        """
        old, self._shown_lines = self._shown_lines, lines
        keep = {_key(line) for line in lines}
        self._line_strips = {k: s for k, s in self._line_strips.items() if k in keep}
        width = self.size.width
        changed = [
            Region(0, y, width, 1)
            for y in range(max(len(old), len(lines)))
            if y >= len(old) or y >= len(lines) or not old[y].is_same(lines[y])
        ]
        if not changed:
            return False
        if (layout and len(old) != len(lines)) or not self.is_mounted or width <= 0:
            self.refresh(layout=layout)
        else:
            self.refresh(*changed)
        return True

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.visual_style
        if y >= len(self._shown_lines) or width <= 0:
            return Strip.blank(max(0, width), style.rich_style)
        context = (width, style, self.app.theme)
        if context != self._strips_for:
            self._line_strips.clear()
            self._strips_for = context
        line = self._shown_lines[y]
        key = _key(line)
        strip = self._line_strips.get(key)
        if strip is None:
            strips = Visual.to_strips(self, line, width, 1, style)
            strip = strips[0] if strips else Strip.blank(width, style.rich_style)
            self._line_strips[key] = strip
        return strip

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._shown_lines)


__all__ = ["LineText"]
