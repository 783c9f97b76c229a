"""The thermal guard: from the latest hardware reading, decide whether the soak must slow down or pause.

People soak models overnight on laptops and desktops; hours at full duty can cook a machine that
was never built for it. The guard reads the summary keys of a telemetry reading (cpu_temp_c,
gpu_temp_c, thermal_pressure, gpu_throttle_reasons) against the `[thermal]` limits and answers with
a state: `ok` (no cap), `reduced` (the duty cycle is capped at reduce_to_pct), `paused` (no new test
starts). It is a pure decision object (no I/O, no threads, an injectable clock), so its decisions
are tested against scripted temperature curves; the engine applies them.

Rules:
- Over a limit (a temperature above it, thermal pressure at or above pressure_limit, a GPU thermal
  throttle reason reported) means `reduced`; far over (a temperature at limit + pause_margin_c or
  more, pressure trapping or sleeping) means `paused`. Stepping up happens at once.
- Stepping back needs every reading that put the guard in its state to be known again and back
  under its limit minus hysteresis_c (pressure below its limit, no thermal throttle reason), and
  the state to have lasted min_hold_s, so it does not flap. `paused` returns straight to `ok`.
- A reading that is absent is unknown: it never raises the state and never lowers it (the guard
  does not guess). A reading with none of the four gives no decision at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from soaktui.config import Thermal
from soaktui.thermal import OK, PAUSED, READING_KEYS, REDUCED, judge


@dataclass(frozen=True)
class Change:
    """A state change: what the engine emits as a `thermal_guard` event."""

    state: str
    previous: str
    cap_pct: int | None
    reason: str
    reading: dict[str, Any]
    held_s: float  # how long the previous state lasted

    def event_fields(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "previous": self.previous,
            "cap_pct": self.cap_pct,
            "reason": self.reason,
            "reading": self.reading,
            "held_s": round(self.held_s, 3),
        }


class ThermalGuard:
    def __init__(self, limits: Thermal, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self.state = OK
        self.reason = ""
        self._since = clock()
        self._causes: set[str] = set()  # families that were over the limit during this state
        self._thermal_reasons = frozenset(limits.gpu_throttle_reasons)

    @property
    def cap_pct(self) -> int | None:
        """The duty-cycle cap the state imposes: None (no cap), reduce_to_pct, or 0 while paused."""
        if self.state == REDUCED:
            return self.limits.reduce_to_pct
        if self.state == PAUSED:
            return 0
        return None

    @property
    def paused(self) -> bool:
        return self.state == PAUSED

    # -- deciding -----------------------------------------------------------------------------------
    def update(self, reading: Mapping[str, Any] | None) -> Change | None:
        """Consider one reading; returns the Change when the state changed, else None."""
        if not reading:
            return None
        verdicts = judge(reading, self.limits, self._thermal_reasons)
        if not verdicts:
            return None  # nothing the guard can judge: no decision
        now = self._clock()
        pausing = [why for v, why in verdicts.values() if v == "pause"]
        over = [why for v, why in verdicts.values() if v == "over"]
        hot = {f for f, (v, _) in verdicts.items() if v in ("pause", "over")}
        target: str | None = None
        reason = ""
        if pausing and self.state != PAUSED:
            target, reason = PAUSED, "; ".join(pausing + over)
        elif over and self.state == OK:
            target, reason = REDUCED, "; ".join(over)
        self._causes |= hot
        if target is None and self.state != OK:
            causes_clear = all(verdicts.get(f, ("unknown", ""))[0] == "clear" for f in self._causes)
            if causes_clear and not hot and now - self._since >= self.limits.min_hold_s:
                target = OK
                reason = "back under the limits: " + "; ".join(why for _, why in verdicts.values())
        if target is None:
            return None
        previous, held = self.state, now - self._since
        self.state, self.reason, self._since = target, reason, now
        if target == OK:
            self._causes = set()
        return Change(
            state=target,
            previous=previous,
            cap_pct=self.cap_pct,
            reason=reason,
            reading={k: reading[k] for k in READING_KEYS if reading.get(k) is not None},
            held_s=held,
        )


__all__ = ["Change", "ThermalGuard"]
