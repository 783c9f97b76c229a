"""What "too hot" means, defined once: thermal states, macOS pressure levels, GPU thermal reasons,
and the judgement of one hardware reading against the `[thermal]` limits.

The engine's thermal guard (engine/thermal_guard.py) acts on these verdicts, the report's hardware
section (report/hardware.py) counts time over the limits with the same ones, and the dashboard shows
them, so "over a limit" means the same everywhere. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Limits(Protocol):
    """The `[thermal]` limits a reading is judged against (config.Thermal has these fields)."""

    @property
    def cpu_temp_limit_c(self) -> float: ...
    @property
    def gpu_temp_limit_c(self) -> float: ...
    @property
    def pause_margin_c(self) -> float: ...
    @property
    def hysteresis_c(self) -> float: ...
    @property
    def pressure_limit(self) -> str: ...
    @property
    def gpu_throttle_reasons(self) -> Sequence[str]: ...

# macOS thermal pressure levels, mildest first (the telemetry contract's names).
THERMAL_PRESSURE_LEVELS = ("nominal", "moderate", "heavy", "trapping", "sleeping")
# NVML clocks-event reasons that mean "too hot" (the GPU slows itself to cool down).
THERMAL_GPU_REASONS = ("hw_thermal_slowdown", "sw_thermal_slowdown", "hw_power_brake_slowdown")

OK, REDUCED, PAUSED = "ok", "reduced", "paused"
STATE_RANK = {OK: 0, REDUCED: 1, PAUSED: 2}
PAUSE_PRESSURE = "trapping"  # macOS is throttling hard: always a pause
# Names macOS uses elsewhere (ProcessInfo.thermalState) for the same levels.
_PRESSURE_ALIASES = {"fair": "moderate", "serious": "heavy", "critical": "trapping"}
READING_KEYS = ("cpu_temp_c", "gpu_temp_c", "thermal_pressure", "gpu_throttle_reasons")


def _temp(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def pressure_level(x: Any) -> int | None:
    """Index of a thermal pressure level in THERMAL_PRESSURE_LEVELS; None when not a known level."""
    if not isinstance(x, str):
        return None
    name = x.strip().lower()
    name = _PRESSURE_ALIASES.get(name, name)
    return THERMAL_PRESSURE_LEVELS.index(name) if name in THERMAL_PRESSURE_LEVELS else None


def judge(
    reading: Mapping[str, Any],
    limits: Limits,
    thermal_reasons: frozenset[str] | None = None,
    *,
    explain: bool = True,
) -> dict[str, tuple[str, str]]:
    """{family: (verdict, why)} for each family of `limits` the reading has (cpu, gpu, pressure,
    gpu_throttle); the report uses it too, so "over a limit" means the same in both.

    verdict: "pause" (far over), "over" (over the limit), "band" (under the limit but inside the
    hysteresis band), "clear" (under limit - hysteresis). `explain=False` (the report, once per
    reading of a long log) leaves the temperature `why` texts empty.
    """
    out: dict[str, tuple[str, str]] = {}
    for family, key, limit in (
        ("cpu", "cpu_temp_c", limits.cpu_temp_limit_c),
        ("gpu", "gpu_temp_c", limits.gpu_temp_limit_c),
    ):
        c = _temp(reading.get(key))
        if c is None:
            continue
        pause_at = limit + limits.pause_margin_c
        back_at = limit - limits.hysteresis_c
        if not explain:
            out[family] = (
                "pause" if c >= pause_at else "over" if c > limit else "band" if c >= back_at else "clear",
                "",
            )
            continue
        if c >= pause_at:
            why = f"{family} {c:.1f}°C >= {pause_at:g}°C (limit {limit:g} + {limits.pause_margin_c:g})"
            out[family] = ("pause", why)
        elif c > limit:
            out[family] = ("over", f"{family} {c:.1f}°C > limit {limit:g}°C")
        elif c >= back_at:
            out[family] = ("band", f"{family} {c:.1f}°C, not yet under {back_at:g}°C")
        else:
            out[family] = ("clear", f"{family} {c:.1f}°C < {back_at:g}°C")
    level = pressure_level(reading.get("thermal_pressure"))
    if level is not None and limits.pressure_limit in THERMAL_PRESSURE_LEVELS:
        limit_level = THERMAL_PRESSURE_LEVELS.index(limits.pressure_limit)
        name = THERMAL_PRESSURE_LEVELS[level]
        if level >= THERMAL_PRESSURE_LEVELS.index(PAUSE_PRESSURE):
            out["pressure"] = ("pause", f"thermal pressure {name}")
        elif level >= limit_level:
            out["pressure"] = ("over", f"thermal pressure {name} >= limit {limits.pressure_limit}")
        else:
            out["pressure"] = ("clear", f"thermal pressure {name}")
    if thermal_reasons is None:
        thermal_reasons = frozenset(limits.gpu_throttle_reasons)
    reasons = reading.get("gpu_throttle_reasons")
    if isinstance(reasons, list) and thermal_reasons:
        hot = sorted(str(r) for r in reasons if r in thermal_reasons)
        if hot:
            out["gpu_throttle"] = ("over", "gpu throttled: " + ", ".join(hot))
        else:
            out["gpu_throttle"] = ("clear", "no gpu thermal throttling")
    return out
