"""The tool-call feed: the latest tool-call detections, newest first.

Tool-calling scenarios come in a later release; until the run has `tool_call` events the pane says
so instead of sitting empty. Each line: model, prompt kind, the format detected, the verdict.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.content import Content

from soaktui.ui import format as fmt
from soaktui.ui.widgets.pane import BAD, GOOD, MUTED, WARN, Pane, block, line

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState


def _first(ev: dict[str, Any], *names: str) -> str:
    for n in names:
        v = ev.get(n)
        if v is not None and v != "":
            return str(v)
    return fmt.NA


class ToolCallPane(Pane):
    section = "toolcalls"
    min_interval = 1.0

    def draw(self, live: LiveState, now: float) -> None:
        width, height = self.inner_width, self.inner_height
        if not live.toolcalls:
            self.show(  # wrapped, not cut: the pane is narrow at 120 columns
                Content.styled(
                    "No tool-calling test has finished yet (or the run leaves the tool_calling "
                    "scenario out). Each attempt shows here: model, prompt kind, the format "
                    "detected and the verdict.",
                    MUTED,
                )
            )
            return
        out: list[Content] = [line((f"{live.toolcalls_total:,} detections, newest first", MUTED))]
        for ev in reversed(live.toolcalls):
            if len(out) >= height:
                break
            t = ev.get("t")
            stamp = (
                time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "--:--:--"
            )
            verdict = _first(ev, "verdict", "ok")
            good = verdict.lower() in ("ok", "true", "valid", "correct", "pass")
            out.append(
                line(
                    (stamp + " ", MUTED),
                    (fmt.short_model(_first(ev, "key"), ev.get("model")), "bold"),
                    " ",
                    _first(ev, "prompt_kind", "category", "prompt_id"),
                    " ",
                    (_first(ev, "format", "format_detected"), MUTED),
                    " ",
                    (verdict, GOOD if good else BAD),
                )
            )
            if verdict == "unparsed_call" and ev.get("detail") and len(out) < height:
                # a call in a syntax soaktui cannot read: show what the model wrote, not a refusal
                out.append(line(("  " + str(ev["detail"]), WARN)))
        self.show(block(out, width))
