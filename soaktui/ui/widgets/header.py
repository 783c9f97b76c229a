"""The header: what the run is doing right now, and the effect of every key within a tick.

Four lines: the run and its state (running, paused, stopping, finished, ended without finishing,
read-only; "HOT: duty 50%" or "HOT: paused" while the thermal guard holds the engine back), the
steerable settings (throttle, quiet hours) with the counters, and the current model with the run
directory and how to leave or re-attach, and the test in flight with how long its streams have
been silent (the "now" line). A key's effect shows here at once: the
pending command is written immediately, the engine's reply replaces it, the events confirm it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from textual.content import Content

from soaktui.durations import parse_clock
from soaktui.engine.throttle import in_window
from soaktui.ui import format as fmt
from soaktui.ui.widgets.lines import LineText
from soaktui.ui.widgets.pane import ACCENT, BAD, GOOD, MUTED, WARN, cut, line

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState
    from soaktui.ui.view import RunStatus


def quiet_active(live: LiveState, now: float) -> bool | None:
    """Inside the quiet-hours window now (local time), when they are on; None when unknown."""
    if not live.quiet_enabled:
        return False
    if live.quiet_window is None:
        return live.quiet_active_event
    try:
        start, end = parse_clock(live.quiet_window[0]), parse_clock(live.quiet_window[1])
    except ValueError:
        return live.quiet_active_event
    return in_window(dt.datetime.fromtimestamp(now).time(), start, end)


class RunHeader(LineText):
    """Drawn a line at a time (widgets/lines.py): a tick that moves a counter redraws its line only."""

    @property
    def text(self) -> str:
        """The header as plain text (what the tests read)."""
        return self.content.plain

    def draw(self, run: RunStatus, live: LiveState, now: float) -> bool:
        """Redraw the lines whose text changed (the clock moves one once a second while live)."""
        return self.set_lines(self.build(run, live, now))  # fixed height: no layout pass

    def build(self, run: RunStatus, live: LiveState, now: float) -> list[Content]:
        phase = run.phase
        is_live = phase in ("live", "stopping")
        width = max(20, self.size.width or 80)
        state = self._state(run, live, phase)
        elapsed = live.elapsed_s(now, is_live)
        remaining = live.remaining_s(now, is_live)
        if live.started_t is None:
            times: list[str | tuple[str, str]] = []
        elif is_live and live.planned_duration_s:
            times = ["  elapsed ", fmt.duration(elapsed), " · left ", fmt.duration(remaining)]
        elif is_live:
            times = ["  elapsed ", fmt.duration(elapsed), (" · until stopped", MUTED)]
        else:
            times = ["  ran ", fmt.duration(elapsed)]
        l1 = line(
            ("soaktui ", "bold " + ACCENT),
            (live.run_id or run.run_dir.name, "bold"),
            "  ",
            state,
            *(self._thermal(live) if is_live else ()),
            *times,
        )
        action = run.action_feedback()
        if action:
            l1 = l1.append("  ").append(Content.styled(action[0], action[1]))

        thr = live.throttle_pct
        eff = live.effective_pct
        throttle: list[str | tuple[str, str]] = [
            "throttle ",
            (f"{thr}%" if thr is not None else fmt.NA, "bold"),
        ]
        if eff is not None and eff != thr:
            throttle += [" (effective ", (f"{eff}%", "bold " + WARN), ")"]
        if live.pace_reason:
            throttle += [" ", (live.pace_reason, WARN)]
        qa = quiet_active(live, now)
        if live.quiet_enabled is None:
            quiet: list[str | tuple[str, str]] = ["quiet hours ", (fmt.NA, MUTED)]
        elif live.quiet_enabled:
            window = f" {live.quiet_window[0]}-{live.quiet_window[1]}" if live.quiet_window else ""
            quiet = ["quiet hours ", ("on", "bold"), (window, MUTED)]
            if qa:
                quiet.append((" active", "bold " + WARN))
        else:
            quiet = ["quiet hours ", ("off", "bold")]
        tests = [
            "tests ",
            (fmt.rate(live.ok_tests, live.tests) if live.tests else "0", "bold"),
            (f" · requests {live.requests:,}", MUTED),
        ]
        if live.failed_requests:
            tests.append((f" ({live.failed_requests:,} failed)", BAD))
        if live.cancelled_tests:
            tests.append((f" · {live.cancelled_tests:,} cancelled", MUTED))
        l2 = line(*tests, "  ", *throttle, "  ", *quiet)  # the success rate first: it survives 80 columns

        model = fmt.short_model(live.current, live.current_model) if live.current else "none yet"
        turn = ""
        if live.current and live.finished is None:
            turn = f" test {live.turn_tests}/{live.planned_tests}" if live.planned_tests else ""
        hint: tuple[str, str]
        if phase in ("live", "connecting", "waiting"):
            hint = ("d detach, the run goes on", MUTED)
        elif phase == "stopping":
            hint = ("d leave now, the run finishes on its own", MUTED)
        else:
            hint = ("read-only", WARN)
        l3 = line(
            "model ",
            (model, "bold " + ACCENT),
            (turn, MUTED),
            "  ",
            hint,
            "  ",
            (fmt.display_path(run.run_dir), MUTED),
        )
        return cut([l1, l2, l3, self._now(live, now, is_live)], width)

    @staticmethod
    def _now(live: LiveState, now: float, is_live: bool) -> Content:
        """The test in flight: scenario, model, elapsed, and how long its streams have been silent,
        amber past half of stall_s and red past it (a hang shows while it happens)."""
        f = live.in_flight(now) if is_live else None
        if f is None:
            return line("now ", ("between tests" if is_live else "-", MUTED))
        parts: list[str | tuple[str, str]] = [
            "now ",
            (f"#{f.test_id} {f.scenario}", "bold"),
            " on ",
            (fmt.short_model(f.key), ACCENT),
            f" · {fmt.duration(f.elapsed_s)}",
        ]
        if f.requests is not None and f.requests > 1:
            parts.append((f" · {f.requests} requests", MUTED))
        if f.silent_s is not None:
            level = f.silence_level()
            style = {"red": "bold reverse " + BAD, "amber": "bold " + WARN}.get(level, MUTED)
            said = "no byte yet, waiting " if f.no_byte_yet else "last byte "
            tail = "" if f.no_byte_yet else " ago"
            parts += [" · ", (f"{said}{fmt.duration(f.silent_s)}{tail}", style)]
            if level == "red":
                parts.append((f" (stall limit {fmt.duration(f.stall_s)})", BAD))
        elif f.whole_wait_s is not None:
            parts.append((f" · whole answer, waiting {fmt.duration(f.whole_wait_s)}", MUTED))
        return line(*parts)

    @staticmethod
    def _thermal(live: LiveState) -> list[str | tuple[str, str]]:
        """ "HOT: duty 50%" / "HOT: paused" while the thermal guard holds the engine back."""
        g = live.thermal
        if not g or g.get("state") in (None, "ok"):
            return []
        if g.get("state") == "paused":
            text = "HOT: paused"
        else:
            duty = g.get("duty_pct") if g.get("duty_pct") is not None else g.get("cap_pct")
            text = f"HOT: duty {duty}%"
        return ["  ", (text, "bold reverse " + BAD)]

    @staticmethod
    def _state(run: RunStatus, live: LiveState, phase: str) -> tuple[str, str]:
        if phase == "loading":
            pct = run.load_pct
            return (f"loading {pct:.0f}%" if pct is not None else "loading", "bold " + WARN)
        if phase == "waiting":
            return ("waiting for the run to start", "bold " + WARN)
        if phase == "connecting":
            return ("connecting", MUTED)
        if phase == "stopping":
            return ("stopping, writing report…", "bold " + WARN)
        if phase == "live":
            if live.paused:
                return ("❚❚ paused", "bold reverse " + WARN)
            return ("● running", "bold " + GOOD)
        if phase == "finished":
            reason = (live.finished or {}).get("reason") or "?"
            return (f"■ finished ({reason})", "bold " + ACCENT)
        if phase == "engine_exited":
            return (f"engine exited (code {run.engine_code}) without finishing", "bold " + BAD)
        return ("ended without finishing", "bold " + BAD)
