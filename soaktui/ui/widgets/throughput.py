"""The throughput plot: output tokens/s of streamed requests over the run, one line per model.

Drawn with plotext through textual-plotext from the bounded, downsampled series in LiveState (each
point is the mean of a time bucket that widens as the run grows). Line colours are the theme's own
colours, so the plot follows the theme like everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.color import Color
from textual_plotext import PlotextPlot

from soaktui.ui import format as fmt

if TYPE_CHECKING:
    from soaktui.ui.app import SoakApp
    from soaktui.ui.state import LiveState

PALETTE = ("primary", "accent", "success", "secondary", "warning", "error")


def theme_colors(app: SoakApp) -> list[tuple[int, int, int]]:
    var = app.theme_variables
    out = []
    for name in PALETTE:
        value = var.get(name)
        if value:
            try:
                out.append(Color.parse(value).rgb)
            except Exception:
                continue
    return out or [(128, 128, 128)]


class ThroughputPlot(PlotextPlot):
    section = "throughput"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, classes="pane")
        self.border_title = "Throughput · output tokens/s (streamed), per model"
        self._drawn: tuple[int, str, int, int] | None = None

    def maybe_draw(self, app: SoakApp, live: LiveState, now: float, *, force: bool = False) -> bool:
        key = (live.versions[self.section], app.theme, self.size.width, self.size.height)
        if not force and key == self._drawn:
            return False
        self._drawn = key
        self.draw(app, live)
        return True

    def draw(self, app: SoakApp, live: LiveState) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        colors = theme_colors(app)
        series = [(k, s) for k in live.model_order() if (s := live.throughput.get(k)) is not None and len(s)]
        longest = max((s.points()[-1][0] for _, s in series), default=0.0)
        minutes = longest >= 180
        plt.xlabel("minutes" if minutes else "seconds")
        if not series:
            plt.title("no streamed request has finished yet")
        for i, (key, s) in enumerate(series):
            pts = s.points()
            xs = [x / 60 if minutes else x for x, _ in pts]
            ys = [y for _, y in pts]
            m = live.models.get(key)
            label = fmt.short_model(key, m.model if m else None)
            plt.plot(xs, ys, label=label, color=colors[i % len(colors)], marker="braille")
        self.refresh()
