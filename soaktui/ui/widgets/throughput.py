"""The throughput plot: output tokens/s of streamed requests over the run, one line per model.

Drawn with plotext through textual-plotext from the bounded, downsampled series in LiveState (each
point is the mean of a time bucket that widens as the run grows). Line colours are the theme's own
colours, so the plot follows the theme like everything else.

plotext builds the whole plot as one ANSI string, and textual-plotext rebuilds it on every render
call, which Textual makes whenever any part of the screen above or below is repainted. The plot
here is built once per draw (at most every `min_interval`) and repainted from that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static
from textual_plotext import PlotextPlot

from soaktui.ui import format as fmt
from soaktui.ui.themes import theme_colors
from soaktui.ui.widgets.pane import Redraws

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState


class CachedPlot(PlotextPlot):
    """A PlotextPlot that builds its plot only after `rebuild()` or a size or theme change."""

    _built: tuple[tuple[object, ...], object] | None = None

    def on_mount(self) -> None:
        # No plotext canvas colours: the pane's own background and text colour show through, and
        # the plot is a third cheaper to turn into screen lines (fewer styled segments).
        self.theme = "clear"

    def rebuild(self) -> None:
        self._built = None
        self.refresh()

    def render(self):  # noqa: ANN201 - Textual's RenderResult
        key = (self.size, self.app.theme)
        if self._built is None or self._built[0] != key:
            self._built = (key, super().render())
        return self._built[1]


def pack(items: list[Content], width: int, max_lines: int, gap: int = 2) -> Content:
    """Legend entries in at most `max_lines` lines of `width` cells, never split inside an entry."""
    lines: list[list[Content]] = [[]]
    used = 0
    shown = 0
    for item in items:
        w = item.cell_length
        if lines[-1] and used + gap + w > width:
            if len(lines) == max_lines:
                break
            lines.append([])
            used = 0
        used += (gap if lines[-1] else 0) + w
        lines[-1].append(item.truncate(width, ellipsis=True))
        shown += 1
    if shown < len(items):
        lines[-1].append(Content.styled(f"+{len(items) - shown} more", "$text-muted"))
    return Content("\n").join(Content(" " * gap).join(line).truncate(width, ellipsis=True) for line in lines)


class ThroughputPane(Redraws, Vertical):
    """The plot plus a legend of its own (plotext drops its legend when the labels do not fit)."""

    section = "throughput"
    min_interval = 5.0  # ~15 ms to render at 200x60, the costliest pane; a soak plot needs no faster
    detail = "output tok/s, streamed"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="pane")

    _legend_lines = 0

    def compose(self) -> ComposeResult:
        yield CachedPlot(id="throughput-plot")
        yield Static("", id="throughput-legend", markup=False)

    def draw(self, live: LiveState, now: float) -> None:
        chart = self.query_one(CachedPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        colors = theme_colors(self.app)
        series = [(k, s) for k in live.model_order() if (s := live.throughput.get(k)) is not None and len(s)]
        longest = max((s.points()[-1][0] for _, s in series), default=0.0)
        minutes = longest >= 180
        plt.xlabel("minutes" if minutes else "seconds")
        legend: list[Content] = []
        if not series:
            plt.title("no streamed request has finished yet")
        for i, (key, s) in enumerate(series):
            pts = s.points()
            color = colors[i % len(colors)]
            m = live.models.get(key)
            label = fmt.short_model(key, m.model if m else None)
            plt.plot(
                [x / 60 if minutes else x for x, _ in pts], [y for _, y in pts], color=color, marker="braille"
            )
            legend.append(Content.assemble(("■ ", Color(*color).hex), label))
        room = self.content_region
        text = pack(legend, max(10, room.width), 1 if room.height < 16 else 3)
        lines = text.plain.count("\n") + 1
        # the legend's height follows its line count: a layout pass only when that changes
        self.query_one("#throughput-legend", Static).update(text, layout=lines != self._legend_lines)
        self._legend_lines = lines
        chart.rebuild()
