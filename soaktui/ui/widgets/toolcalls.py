"""The tool-call feed: the latest tool-call detections, newest first, the verdict first.

Until the run has `tool_call` events the pane says so instead of sitting empty. Each line starts
with the verdict as a coloured mark (MARKS: ✓ correct, ? a call in a syntax soaktui cannot read,
✗ anything else, named after the mark), then the time, the model (its short name, elided in the
middle to fit: report/names.py), the prompt kind and the format detected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.content import Content

from soaktui.report.names import MAX_NAME, elide, short_names
from soaktui.ui import format as fmt
from soaktui.ui.state import model_key
from soaktui.ui.widgets.pane import BAD, GOOD, MUTED, WARN, Pane, Part, line

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState

MARKS = {"correct": ("✓", GOOD), "unparsed_call": ("?", WARN)}
WRONG = ("✗", BAD)
MIN_NAME = 8


def _first(ev: dict[str, Any], *names: str) -> str:
    for n in names:
        v = ev.get(n)
        if v is not None and v != "":
            return str(v)
    return fmt.NA


def mark(ev: dict[str, Any]) -> tuple[str, str]:
    """The verdict's mark and its colour."""
    verdict = ev.get("verdict")
    if verdict is None and ev.get("correct") is True:
        verdict = "correct"
    return MARKS.get(str(verdict), WRONG)


class ToolCallPane(Pane):
    section = "toolcalls"
    min_interval = 1.0

    def draw(self, live: LiveState, now: float) -> None:
        width, height = self.inner_width, self.inner_height
        if not live.toolcalls:
            self.show_wrapped(  # wrapped, not cut: the pane is narrow at 120 columns
                Content.styled(
                    "No tool-calling test has finished yet (or the run leaves the tool_calling "
                    "scenario out). Each attempt shows here: the verdict (✓/✗), the model, the "
                    "prompt kind and the format detected.",
                    MUTED,
                )
            )
            return
        shown = list(live.toolcalls)[-height:]
        keys = [str(ev.get("key") or model_key(ev.get("provider"), ev.get("model"))) for ev in shown]
        names = short_names(keys)
        w_name = max(MIN_NAME, min(MAX_NAME, width // 3))
        out: list[Content] = [line((f"{live.toolcalls_total:,} detections, newest first", MUTED))]
        for ev, key in zip(reversed(shown), reversed(keys), strict=True):
            if len(out) >= height:
                break
            t = ev.get("t")
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "--:--:--"
            )
            sign, style = mark(ev)
            verdict = _first(ev, "verdict")
            why: list[Part] = [] if sign == "✓" else [" ", (verdict, style)]  # ✓ needs no words
            out.append(
                line(
                    (sign, f"bold {style}"),
                    " ",
                    (stamp + " ", MUTED),
                    (elide(names[key], w_name), "bold"),
                    " ",
                    _first(ev, "prompt_kind", "category", "prompt_id"),
                    " ",
                    (_first(ev, "format", "format_detected"), MUTED),
                    *why,
                )
            )
            if verdict == "unparsed_call" and ev.get("detail") and len(out) < height:
                # a call in a syntax soaktui cannot read: show what the model wrote, not a refusal
                out.append(line(("  " + str(ev["detail"]), WARN)))
        self.show(out)
