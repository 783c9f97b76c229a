"""The model rotation pane: the current model and its turn, what comes next, one line per model.

Per-model lines show tests with their success rate and the median output tokens/s over the
model's latest streamed requests (the window is stated under the table), so a slow or failing
model stands out while the run goes on. Models skipped with `s` are marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content

from soaktui.ui import format as fmt
from soaktui.ui.state import MODEL_TPS_WINDOW, NO_COUNTS
from soaktui.ui.widgets.pane import ACCENT, BAD, GOOD, MUTED, WARN, Pane, cell, line

if TYPE_CHECKING:
    from soaktui.ui.state import Counts, LiveState


def _rate_style(m: Counts) -> str:
    if not m.tests:
        return MUTED
    r = m.ok_tests / m.tests
    return GOOD if r >= 0.9 else WARN if r >= 0.5 else BAD


class RotationPane(Pane):
    section = "rotation"
    min_interval = 1.0

    def draw(self, live: LiveState, now: float) -> None:
        width, height = self.inner_width, self.inner_height
        out: list[Content] = []
        if live.current is None:
            out.append(line(("No model yet: waiting for the engine's first model_switched event.", MUTED)))
            self.show(out)
            return
        cur = live.models.get(live.current)
        name = fmt.short_model(live.current, live.current_model)
        turn = ""
        if live.finished is None and live.planned_tests:
            turn = f"  test {live.turn_tests} of {live.planned_tests} this turn"
        out.append(line(("▶ ", ACCENT), (name, "bold " + ACCENT), (turn, MUTED)))
        provider = live.current_provider or (cur.provider if cur else None)
        if provider and height >= 9:
            out.append(line(("  on ", MUTED), (str(provider), MUTED)))
        nxt: list[str | tuple[str, str]] = [("next ", MUTED)]
        if live.upcoming:
            for i, key in enumerate(live.upcoming):
                m = live.models.get(key)
                nxt += [(" › " if i else "", MUTED), fmt.short_model(key, m.model if m else None)]
                if m is not None and m.skipped:
                    nxt.append((" (skipped)", WARN))
        else:
            nxt.append(("none (one model in the rotation)", MUTED))
        out.append(line(*nxt))

        # the table: model | tests passed (k/n %) | median tok/s
        w_rate, w_tps = 10, 6
        w_name = max(8, width - 2 - w_rate - w_tps - 2)
        head = "  " + cell("model", w_name) + " " + cell("tests ok", w_rate, right=True)
        out.append(line((head + " " + cell("tok/s", w_tps, right=True), "bold " + MUTED)))
        order = live.model_order()
        room = max(1, height - len(out) - 1)
        if len(order) > room:  # keep the current model visible in a short pane
            i = order.index(live.current) if live.current in order else 0
            start = min(max(0, i - room // 2), len(order) - room)
            order = order[start : start + room]
        counts = live.model_counts()
        for key in order:
            m = live.models[key]
            is_cur = key == live.current
            label = fmt.short_model(key, m.model)
            if m.skipped:
                label += " ⏭" if m.skipped == 1 else f" ⏭{m.skipped}"
            c = counts.get(key) or NO_COUNTS
            rate = fmt.percent(c.ok_tests, c.tests)
            tps = m.median_tps()
            out.append(
                line(
                    ("▶ " if is_cur else "  ", ACCENT),
                    (cell(label, w_name), ("bold " + ACCENT) if is_cur else ""),
                    " ",
                    (
                        cell(f"{c.ok_tests}/{c.tests} {rate}" if c.tests else "0", w_rate, right=True),
                        _rate_style(c),
                    ),
                    " ",
                    (cell(fmt.num(tps), w_tps, right=True), "" if tps is not None else MUTED),
                )
            )
        if height > len(out):
            out.append(
                line((f"tok/s: median of each model's last {MODEL_TPS_WINDOW} streamed requests", MUTED))
            )
        self.show(out)
