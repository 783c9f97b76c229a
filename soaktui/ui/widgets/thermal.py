"""Thermal and fans: what the machine under test is doing, from the run's `telemetry` events.

CPU (all cores and per core), memory, swap and load come from psutil today. Temperatures, fans,
power, GPU and thermal pressure come with the hardware-telemetry work; until a reading exists the
pane says "unavailable" for it, never 0 (0 °C or 0 rpm would be a false measurement).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual.content import Content

from soaktui.ui import format as fmt
from soaktui.ui.widgets.pane import ACCENT, BAD, GOOD, MUTED, WARN, Pane, block, line

if TYPE_CHECKING:
    from soaktui.ui.app import SoakApp
    from soaktui.ui.state import LiveState

UNAVAILABLE = ("unavailable", MUTED)


def _load_style(pct: float) -> str:
    return BAD if pct >= 90 else WARN if pct >= 70 else GOOD


def _pct(x: Any) -> tuple[str, str]:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return UNAVAILABLE
    return (f"{x:.0f}%", "bold " + _load_style(float(x)))


def _mapping(x: Any, unit: str) -> str | None:
    """ "cpu 61°C, gpu 55°C" from {"cpu": 61, ...}; None when there is no reading."""
    if isinstance(x, dict) and x:
        items = [(k, v) for k, v in x.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return ", ".join(f"{k} {v:.0f}{unit}" for k, v in items) or None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:.0f}{unit}"
    return None


class ThermalPane(Pane):
    section = "telemetry"
    title = "Thermal & fans"

    def draw(self, app: SoakApp, live: LiveState, now: float) -> None:
        width = self.inner_width
        t = live.telemetry
        label = 9
        if t is None:
            out = [
                line(("No machine reading yet (the engine samples every few seconds).", MUTED)),
            ]
            self.show(block(out, width))
            return
        out: list[Content] = []
        cpu = t.get("cpu_pct")
        spark_w = max(0, width - label - 6)
        spark = fmt.sparkline(list(live.cpu_history), spark_w) if live.cpu_history else ""
        out.append(line((f"{'CPU':<{label}}", "bold"), _pct(cpu), " ", (spark, ACCENT)))
        cores = t.get("cpu_per_core_pct")
        if isinstance(cores, list) and cores:
            parts: list[str | tuple[str, str]] = [(f"{'cores':<{label}}", "bold")]
            for i, c in enumerate(cores):
                parts += [" " if i else "", _pct(c)]
            out.append(line(*parts))
        mem_parts: list[str | tuple[str, str]] = [(f"{'memory':<{label}}", "bold"), _pct(t.get("mem_pct"))]
        used, total = t.get("mem_used_bytes"), t.get("mem_total_bytes")
        if isinstance(used, (int, float)) and isinstance(total, (int, float)):
            mem_parts.append((f" {fmt.byte_size(used)} of {fmt.byte_size(total)}", MUTED))
        out.append(line(*mem_parts))
        if "swap_pct" in t:
            out.append(
                line(
                    (f"{'swap':<{label}}", "bold"),
                    _pct(t.get("swap_pct")),
                    (f" {fmt.byte_size(t.get('swap_used_bytes'))}", MUTED),
                )
            )
        else:
            out.append(line((f"{'swap':<{label}}", "bold"), ("none", MUTED)))
        load = t.get("load_avg")
        if isinstance(load, list) and len(load) == 3:
            out.append(
                line(
                    (f"{'load':<{label}}", "bold"),
                    " ".join(fmt.num(x, 2) for x in load),
                    (" (1/5/15 min)", MUTED),
                )
            )
        else:
            out.append(line((f"{'load':<{label}}", "bold"), UNAVAILABLE))
        readings: list[tuple[str, tuple[str, str] | None]] = []
        gpu = t.get("gpu_pct")
        readings.append(("GPU", _pct(gpu) if gpu is not None else None))
        for name, key, unit in (
            ("temps", "temperatures_c", "°C"),
            ("fans", "fans_rpm", " rpm"),
            ("power", "power_w", " W"),
        ):
            text = _mapping(t.get(key), unit)
            readings.append((name, (text, "") if text else None))
        pressure = t.get("thermal_pressure")
        readings.append(("pressure", (str(pressure), WARN) if pressure else None))
        missing = [name for name, value in readings if value is None]
        if self.inner_height - len(out) >= len(readings):
            for name, value in readings:
                out.append(line((f"{name:<{label}}", "bold"), value or UNAVAILABLE))
        else:  # a short pane: the readings it has, then one line for the rest
            for name, value in readings:
                if value is not None:
                    out.append(line((f"{name:<{label}}", "bold"), value))
            if missing:
                out.append(line(UNAVAILABLE, (": " + ", ".join(missing), "bold")))
        if live.telemetry_t is not None and self.inner_height > len(out):
            stamp = time.strftime("%H:%M:%S", time.localtime(live.telemetry_t))
            out.append(line((f"from {t.get('source') or 'telemetry'} at {stamp}", MUTED)))
        self.show(block(out, width))
