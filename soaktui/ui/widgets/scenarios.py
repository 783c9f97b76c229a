"""Per-scenario sparklines: each scenario's recent latency at a glance, with its count and success.

One row per scenario: the end-to-end latency of its latest successful requests as a sparkline
(scaled per row from 0 to that row's max, so jitter does not look like a swing; the row prints its
min and max), then tests passed out of tests run. A scenario whose latency climbs or whose success
drops shows it within a few tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content

from soaktui.ui import format as fmt
from soaktui.ui.state import NO_COUNTS, SPARK_POINTS
from soaktui.ui.widgets.pane import ACCENT, BAD, GOOD, MUTED, WARN, Pane, cell, line

if TYPE_CHECKING:
    from soaktui.ui.state import Counts, LiveState


def _style(s: Counts) -> str:
    if not s.tests:
        return MUTED
    r = s.ok_tests / s.tests
    return GOOD if r >= 0.9 else WARN if r >= 0.5 else BAD


def _ms(x: float) -> str:
    return f"{x / 1000:.1f}s" if x >= 1000 else f"{x:.0f}ms"


class ScenarioPane(Pane):
    section = "scenarios"
    min_interval = 1.0

    def draw(self, live: LiveState, now: float) -> None:
        width = self.inner_width
        out: list[Content] = []
        if not live.scenarios:
            out.append(line(("No test has finished yet.", MUTED)))
            self.show(out)
            return
        w_name = min(18, max(8, max(len(n) for n in live.scenarios)))
        w_rate = 12
        w_range = 14 if width >= 60 else 0  # the min-max column only where there is room
        w_spark = max(4, width - w_name - w_rate - w_range - (3 if w_range else 2))
        counts = live.scenario_counts()
        for name in sorted(live.scenarios):
            lat = list(live.scenarios[name].latency)
            s = counts.get(name) or NO_COUNTS
            spark = fmt.sparkline(lat, w_spark, lo=0.0) if lat else ""
            span = f"{_ms(min(lat[-w_spark:]))}-{_ms(max(lat[-w_spark:]))}" if lat else fmt.NA
            rate = f"{s.ok_tests}/{s.tests} {fmt.percent(s.ok_tests, s.tests)}" if s.tests else "0 tests"
            out.append(
                line(
                    (cell(name, w_name), "bold"),
                    " ",
                    (cell(spark, w_spark), ACCENT),
                    " ",
                    *([(cell(span, w_range, right=True), MUTED), " "] if w_range else []),
                    (cell(rate, w_rate, right=True), _style(s)),
                )
            )
        if self.inner_height > len(out):
            out.append(line((f"e2e latency, last {SPARK_POINTS} ok requests · tests passed", MUTED)))
        self.show(out)
