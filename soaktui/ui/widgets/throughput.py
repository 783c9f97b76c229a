"""The throughput plot: output tokens/s of streamed requests over the run, one line per model.

Drawn with plotext through textual-plotext from the bounded, downsampled series in LiveState (each
point is the mean of a time bucket that widens as the run grows). Line colours are the theme's own
colours, so the plot follows the theme like everything else. The y axis starts at 0 (a 5% dip must
not look like a collapse), and a model's line breaks where it has no samples (while the rotation
tests other models, or the run is paused) instead of joining across the gap (`segments`); a lone
sample is a dot. The legend names each line by the model's short name (report/names.py, the
report's rule).

plotext builds the whole plot as one ANSI string, and textual-plotext rebuilds it on every render
call, which Textual makes whenever any part of the screen above or below is repainted. The plot
here is built once per draw (at most every `min_interval`) and repainted from that.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static
from textual_plotext import PlotextPlot

from soaktui.report.names import short_names
from soaktui.ui.themes import theme_colors
from soaktui.ui.widgets.pane import Redraws

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState

GAP_STEPS = 4  # a step this many times the series' usual one (its median) is a gap: the line breaks

Points = list[tuple[float, float]]


def segments(points: Points, others: Iterable[float] = ()) -> list[Points]:
    """`points` (in time order) cut where samples are missing: where another model has a sample in
    between (`others`: their times; the rotation had moved on), or where the step to the next point
    exceeds GAP_STEPS times the median step, the usual pace of this model's samples (a pause)."""
    if not points:
        return []
    steps = sorted(b[0] - a[0] for a, b in pairwise(points))
    limit = GAP_STEPS * steps[len(steps) // 2] if len(steps) >= 2 else math.inf
    marks = sorted(others)
    out: list[Points] = [[points[0]]]
    for prev, point in pairwise(points):
        i = bisect_right(marks, prev[0])
        if (i < len(marks) and marks[i] < point[0]) or point[0] - prev[0] > limit:
            out.append([])
        out[-1].append(point)
    return out


def y_axis(top: float, steps: int = 5) -> list[float]:
    """Ticks from 0 in round steps (1, 2 or 5 times a power of ten) up to the first at or above
    `top`: the plot's fixed scale, about `steps` steps high."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / steps
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


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
        found = ((k, live.throughput.get(k)) for k in live.model_order())
        points = {k: s.points() for k, s in found if s is not None and len(s)}
        names = short_names(points)
        longest = max((pts[-1][0] for pts in points.values()), default=0.0)
        minutes = longest >= 180
        plt.xlabel("minutes" if minutes else "seconds")
        legend: list[Content] = []
        if not points:
            plt.title("no streamed request has finished yet")
        top = 0.0
        for i, key in enumerate(points):
            color = colors[i % len(colors)]
            others = [x for k, pts in points.items() if k != key for x, _ in pts]
            for run in segments(points[key], others):
                xs = [x / 60 if minutes else x for x, _ in run]
                ys = [y for _, y in run]
                top = max(top, *ys)
                plt.plot(xs, ys, color=color, marker="braille")
            legend.append(Content.assemble(("■ ", Color(*color).hex), names[key]))
        ticks = y_axis(top)
        plt.ylim(0, ticks[-1])
        plt.yticks(ticks, [f"{t:g}" for t in ticks])
        room = self.content_region
        text = pack(legend, max(10, room.width), 1 if room.height < 16 else 3)
        lines = text.plain.count("\n") + 1
        # the legend's height follows its line count: a layout pass only when that changes
        self.query_one("#throughput-legend", Static).update(text, layout=lines != self._legend_lines)
        self._legend_lines = lines
        chart.rebuild()
