"""How the run was steered: throttle and quiet hours, pauses, commands, skips and model switches,
and the engine's last status."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from soaktui.report.folds.common import is_int, is_num, model_key
from soaktui.report.snapshot import Control, PaceChange, Skip, ThrottleChange
from soaktui.stats import bounded_inc

MAX_HISTORY = 100  # throttle changes / skips kept verbatim (all are counted)
MAX_COMMANDS = 50  # distinct command names counted


class ControlFold:
    KINDS: ClassVar[dict[str, str]] = {
        "run_started": "on_run_started",
        "model_switched": "on_model_switched",
        "model_skipped": "on_model_skipped",
        "throttle_changed": "on_throttle",
        "quiet_hours_changed": "on_quiet",
        "paused": "on_paused",
        "resumed": "on_resumed",
        "command": "on_command",
        "status": "on_status",
    }

    def __init__(self) -> None:
        self.throttle_start: Any = None
        self.turns: dict[str, int] = {}  # model key -> turns in the rotation
        self._skips: deque[Skip] = deque(maxlen=MAX_HISTORY)
        self._skip_count = 0
        self._throttle_hist: deque[ThrottleChange] = deque(maxlen=MAX_HISTORY)
        self._throttle_changes = 0
        self._throttle_last: ThrottleChange | None = None
        self._pace_last: PaceChange | None = None
        self._quiet_changes = 0
        self._pauses = 0
        self._paused_ns = 0
        self._paused_since: tuple[int | None, float | None] | None = None
        self._commands: dict[str, int] = {}
        self.max_rss: int | None = None
        self._last_status: dict[str, Any] | None = None

    def on_run_started(self, ev: dict[str, Any]) -> None:
        self.throttle_start = ev.get("throttle_pct")

    def on_model_switched(self, ev: dict[str, Any]) -> None:
        key = ev.get("key") or model_key(ev.get("provider"), ev.get("model"))
        self.turns[key] = self.turns.get(key, 0) + 1

    def on_model_skipped(self, ev: dict[str, Any]) -> None:
        self._skip_count += 1
        self._skips.append({"t": ev.get("t"), "model": ev.get("key"), "tests_done": ev.get("tests_done")})

    def on_throttle(self, ev: dict[str, Any]) -> None:
        self._throttle_changes += 1
        rec: ThrottleChange = {
            "t": ev.get("t"),
            "pct": ev.get("pct"),
            "effective_pct": ev.get("effective_pct"),
            "source": ev.get("source"),
        }
        self._throttle_last = rec
        self._throttle_hist.append(rec)
        self._pace(ev, f"throttle set to {ev.get('pct')}% ({ev.get('source') or 'unknown'})")

    def on_quiet(self, ev: dict[str, Any]) -> None:
        self._quiet_changes += 1
        state = "on" if ev.get("enabled") else "off"
        self._pace(ev, f"quiet hours switched {state}" + (", in the quiet window" if ev.get("active") else ""))

    def _pace(self, ev: dict[str, Any], why: str) -> None:
        """The duty cycle in force after this event, and what set it (the last word wins: a later
        quiet_hours_changed says what a throttle_changed before it no longer does)."""
        if ev.get("effective_pct") is not None:
            self._pace_last = {"t": ev.get("t"), "effective_pct": ev.get("effective_pct"), "why": why}

    def on_paused(self, ev: dict[str, Any]) -> None:
        if self._paused_since is None:
            self._pauses += 1
            self._paused_since = (ev.get("mono_ns"), ev.get("t"))

    def on_resumed(self, ev: dict[str, Any]) -> None:
        if self._paused_since is not None:
            self._paused_ns += self._pause_ns(self._paused_since, ev.get("mono_ns"), ev.get("t"))
            self._paused_since = None

    @staticmethod
    def _pause_ns(since: tuple[int | None, float | None], mono: Any, t: Any) -> int:
        """A pause's length: on the monotonic clock when both ends have it, else on the wall clock."""
        m0, t0 = since
        if is_int(m0) and is_int(mono):
            return max(0, mono - m0)
        if is_num(t0) and is_num(t):
            ns = max(0.0, t - t0) * 1e9
            return int(ns) if math.isfinite(ns) else 0  # a log's absurd times: unknown
        return 0

    def on_command(self, ev: dict[str, Any]) -> None:
        bounded_inc(self._commands, str(ev.get("command")), MAX_COMMANDS)

    def on_status(self, ev: dict[str, Any]) -> None:
        self._last_status = {k: v for k, v in ev.items() if k not in ("kind", "run_id", "v")}
        rss = ev.get("rss_bytes")
        if is_int(rss) and (self.max_rss is None or rss > self.max_rss):
            self.max_rss = rss

    def snapshot(self, last_mono: Any, last_t: Any) -> Control:
        """`last_mono`, `last_t`: the newest event's clocks (a pause still open runs until then)."""
        paused_ns = self._paused_ns
        if self._paused_since is not None:
            paused_ns += self._pause_ns(self._paused_since, last_mono, last_t)
        return {
            "throttle_start_pct": self.throttle_start,
            "throttle_changes": self._throttle_changes,
            "throttle_last": self._throttle_last,
            "pace_last": self._pace_last,
            "throttle_history": list(self._throttle_hist),
            "quiet_hours_changes": self._quiet_changes,
            "pauses": self._pauses,
            "paused_s": round(paused_ns / 1e9, 3),
            "paused_at_end": self._paused_since is not None,
            "commands": dict(sorted(self._commands.items())),
            "models_skipped": self._skip_count,
            "skips": list(self._skips),
            "model_switches": sum(self.turns.values()),
            "last_status": self._last_status,
        }
