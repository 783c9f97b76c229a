"""Text drawn a line at a time (Textual's line API): a redraw costs the lines that changed.

A Static renders its whole text on every update: each line becomes styled segments again, and
every line of the widget is composed again with its border and padding. At 10 requests/s the panes
change every second, yet most of their lines do not (a counter moved, a feed gained an entry at
the top). `LineText.set_lines` compares the new lines with the shown ones and marks only the lines
that differ as dirty, and a line's strip is kept by its text and styles, so a line that only moved
(a feed's older entries going down) is not rendered again either.

The strips are kept for one width, one visual style and one theme (`_strips_for`): a resize or a theme
switch renders every line again, with the theme's colours. A mouse selection works as on a Static:
each row carries its own offsets (what the screen maps a click to), `render()` is the whole text
(what a copy extracts), and while a selection is on the widget its text is rendered whole, with the
selection's colours.
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
        self._version = 0  # set_lines calls: what a selection's render was made of
        self._selected: tuple[Any, list[Strip]] | None = None  # (what, strips) while a selection is on

    @property
    def content(self) -> Content:
        """The text shown, as one Content (what a Static's `content` would be)."""
        return Content("\n").join(self._shown_lines)

    def set_lines(self, lines: list[Content], *, layout: bool = False) -> bool:
        """Show `lines`: only those that differ from the line shown at their place are drawn again.
        True when some line differed.

        `layout`: the widget's height follows its lines (height auto), so a new count needs a layout pass.
        """
        old, self._shown_lines = self._shown_lines, lines
        self._version += 1
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

    def render(self) -> Content:
        """The whole text, as a Static renders it: what a mouse selection copies (`get_selection`)."""
        return self.content

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.visual_style
        if y >= len(self._shown_lines) or width <= 0:
            return Strip.blank(max(0, width), style.rich_style)
        context = (width, style, self.app.theme)
        if self.text_selection is not None:
            return self._selected_line(y, context)
        self._selected = None
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
        return strip.apply_offsets(0, y)  # the row a click maps to (kept by the strip, per row)

    def _selected_line(self, y: int, context: tuple[Any, ...]) -> Strip:
        """Row `y` of the whole text rendered at once with the selection, as a Static would."""
        what = (context, self.text_selection, self._version)
        if self._selected is None or self._selected[0] != what:
            lines = self._shown_lines
            self._selected = what, Visual.to_strips(self, self.content, context[0], len(lines), context[1])
        strips = self._selected[1]
        return strips[y] if y < len(strips) else Strip.blank(context[0], context[1].rich_style)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._shown_lines)


__all__ = ["LineText"]
