"""Provider outages as periods: each `provider_down` with the `provider_up` that ended it.

The engine stops testing a down provider and probes it with backoff (engine/outages.py), so an
outage is two events, not thousands of failed requests; this fold turns them back into periods
for the report ("lmstudio was down 02:14-02:31, 17 min"). An outage with no `provider_up` was
still going when the log ended.
"""

from __future__ import annotations

from typing import Any, ClassVar

from soaktui.report.snapshot import Outage

MAX_OUTAGES = 500  # periods kept (the newest are dropped past this; an outage costs two events)


class OutageFold:
    KINDS: ClassVar[dict[str, str]] = {"provider_down": "on_down", "provider_up": "on_up"}

    def __init__(self) -> None:
        self._periods: list[Outage] = []
        self._open: dict[str, Outage] = {}

    def on_down(self, ev: dict[str, Any]) -> None:
        name = str(ev.get("provider"))
        if name in self._open or len(self._periods) >= MAX_OUTAGES:
            return
        status = ev.get("http_status")
        period: Outage = {
            "provider": name,
            "down_t": ev.get("t"),
            "up_t": None,
            "downtime_s": None,
            "error_class": ev.get("error_class"),
            "http_status": status if isinstance(status, int) else None,
            "message": ev.get("message"),
            "failed_probes": None,
        }
        self._periods.append(period)
        self._open[name] = period

    def on_up(self, ev: dict[str, Any]) -> None:
        period = self._open.pop(str(ev.get("provider")), None)
        if period is None:
            return
        period["up_t"] = ev.get("t")
        down = ev.get("downtime_s")
        period["downtime_s"] = float(down) if isinstance(down, (int, float)) else None
        probes = ev.get("failed_probes")
        period["failed_probes"] = probes if isinstance(probes, int) else None

    def snapshot(self) -> list[Outage]:
        return [Outage(**p) for p in self._periods]  # copies: open periods still change
