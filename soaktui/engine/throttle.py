"""The duty cycle: how much of wall time the engine spends working, and quiet hours.

At 100% tests run back to back; at 60% the engine idles after each test so that work is 60% of
wall time (idle = work x (100 - pct) / pct). During quiet hours (a local-time window, default
22:00-06:00) the effective duty cycle is the lower of the user's setting and the quiet-hours
setting. Both can change live; the idle time is recomputed when they do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field


def in_window(now: dt.time, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """True when `now` is inside [start, end), a window that may wrap past midnight."""
    s = dt.time(*start)
    e = dt.time(*end)
    if s == e:
        return False
    if s < e:
        return s <= now < e
    return now >= s or now < e


def idle_seconds(work_s: float, pct: int) -> float:
    """Idle time that makes `work_s` be `pct` percent of the cycle."""
    if pct >= 100 or work_s <= 0:
        return 0.0
    pct = max(1, pct)
    return work_s * (100 - pct) / pct


@dataclass
class Throttle:
    pct: int = 100
    quiet_enabled: bool = True
    quiet_start: tuple[int, int] = (22, 0)
    quiet_end: tuple[int, int] = (6, 0)
    quiet_pct: int = 30
    clock: Callable[[], dt.datetime] = field(default=dt.datetime.now, repr=False)

    def quiet_active(self) -> bool:
        return self.quiet_enabled and in_window(self.clock().time(), self.quiet_start, self.quiet_end)

    def effective(self) -> int:
        if self.quiet_active():
            return min(self.pct, self.quiet_pct)
        return self.pct
