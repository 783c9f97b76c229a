"""Render the report's hardware section (snapshot["hardware"], see hardware.py) as Markdown.

Text charts are plotext figures built at a fixed size without colour, inside code fences, so the
morning report reads the same in a terminal, an editor and a Markdown viewer. Every reading the
machine could not give is written as "unavailable (why)", never as 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from soaktui.report.cells import NA, num, table
from soaktui.report.cells import duration as _dur
from soaktui.report.snapshot import Hardware, ModelEnergy

CHART_W, CHART_H = 100, 18
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAMILY_LABELS = {
    "temps": "temperatures",
    "fans": "fans",
    "power": "power",
    "gpu": "GPU",
    "thermal_pressure": "thermal pressure (macOS)",
    "cpu_throttle": "CPU throttle counters",
}
STATE_LABELS = {"ok": "ok (no cap)", "reduced": "reduced", "paused": "paused"}


def _num(x: Any, nd: int = 1, unit: str = "") -> str:
    return NA if x is None else num(x, nd) + unit


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n:,} times"


def unavailable_text(hw: Hardware, family: str) -> str:
    """ "unavailable (why)", or a plain "not reported" when the sampler gave no reason."""
    why = hw["families"][family]["unavailable"]
    return f"unavailable ({why})" if why else "not reported by the sampler"


def plot_series(
    fig: Any, series: list[tuple[str, list[Any], list[Any], str]], style: Callable[[int], dict[str, Any]]
) -> int:
    """Plot each (label, xs, ys, side) that has two known points on a plotext figure, None gaps
    skipped; `style(i)` gives the i-th drawn line's marker and colour. Returns how many were drawn.

    Each y axis starts at 0 (every series here is a count, a rate, watts or degrees): an axis fitted
    to the data's own span makes a flat line 0.1 wide look like a cliff."""
    drawn = 0
    tops: dict[str, float] = {}
    for label, xs, ys, side in series:
        pts = [(x, y) for x, y in zip(xs, ys or (), strict=False) if x is not None and y is not None]
        if len(pts) < 2:
            continue
        fig.plot([x for x, _ in pts], [y for _, y in pts], label=label, yside=side, **style(drawn))
        tops[side] = max(tops.get(side, 0.0), max(y for _, y in pts))
        drawn += 1
    for side, top in tops.items():
        if top > 0:
            fig.ylim(0, top * 1.05, yside=side)
    return drawn


def text_chart(
    title: str,
    series: list[tuple[str, list[Any], list[Any], str]],
    *,
    xlabel: str = "minutes since the start",
    width: int = CHART_W,
    height: int = CHART_H,
) -> str | None:
    """A colourless plotext chart; series are (label, xs, ys, side) with None gaps skipped.

    side is "left" or "right" (a second y axis). None when no series has two points.
    """
    from plotext._figure import (  # type: ignore[import-untyped]  # plotext ships no types
        _figure_class as Figure,  # a private figure: no global plotext state
    )

    fig = Figure()
    fig.plot_size(width, height)
    fig.theme("clear")
    markers = "*+ox#"
    if not plot_series(fig, series, lambda i: {"marker": markers[i % len(markers)]}):
        return None
    fig.title(title)
    fig.xlabel(xlabel)
    text = _ANSI.sub("", fig.build())
    return "\n".join(line.rstrip() for line in text.splitlines())


def _charts(hw: Hardware) -> list[str]:
    s = hw.get("series")
    if not s or not s["minutes"]:
        return []
    x = s["minutes"]
    tps = ("output tokens/s (right)", x, s["gen_tps"], "right")
    out = [
        "### Time series",
        "",
        f"Buckets of {_dur(s['bucket_s'])}: {hw['methods']['series']}. Right axis: mean generation tokens/s.",
        "",
    ]
    charts = [
        (
            "CPU / GPU temperature (°C) against output tokens/s",
            [("cpu °C", x, s["cpu_temp_c"], "left"), ("gpu °C", x, s["gpu_temp_c"], "left"), tps],
        ),
        ("power (W) against output tokens/s", [("power W", x, s["power_w"], "left"), tps]),
        ("fan speed (rpm) against output tokens/s", [("fan rpm", x, s["fan_rpm"], "left"), tps]),
    ]
    sensors = {"cpu °C": "temps", "gpu °C": "temps", "power W": "power", "fan rpm": "fans"}
    for title, series in charts:
        has_sensor = any(
            sum(v is not None for v in ys) >= 2 for label, _, ys, _ in series if label in sensors
        )
        if not has_sensor:
            family = sensors[series[0][0]]
            out += [f"{title.split(' against')[0].capitalize()}: {unavailable_text(hw, family)}.", ""]
            continue
        chart = text_chart(title, series)
        if chart:
            out += ["```text", chart, "```", ""]
    duty_chart = text_chart(
        "measured duty cycle (%) against output tokens/s", [("duty %", x, s["duty_pct"], "left"), tps]
    )
    if duty_chart and hw["guard"]["intervened"]:
        out += ["```text", duty_chart, "```", ""]
    return out


def _readings(hw: Hardware) -> list[str]:
    rows = []
    for fam, label in FAMILY_LABELS.items():
        f = hw["families"][fam]
        if f["readings"]:
            status = f"{f['readings']:,} readings" + (
                f" from {', '.join(f['sources'])}" if f["sources"] else ""
            )
            if f["unavailable"]:
                status += f"; at the end unavailable ({f['unavailable']})"
        else:
            status = unavailable_text(hw, fam)
        rows.append([label, status])
    interval = hw["mean_interval_s"]
    head = f"{hw['readings']:,} telemetry readings" + (
        f", one every {interval:g} s on average" if interval else ""
    )
    return [head + ".", ""] + table(["reading", "what the machine gave"], rows)


def _limits(hw: Hardware) -> list[str]:
    lim, temps, sus = hw["limits"], hw["temperatures"], hw["sustained"]
    out = ["### Thermal limits for continuous operation", ""]
    if not sus["readings_known"]:
        out += [
            "No temperature or thermal-pressure reading: how the machine held up is unknown "
            f"(temperatures: {unavailable_text(hw, 'temps')}; thermal pressure: "
            f"{unavailable_text(hw, 'thermal_pressure')}).",
            "",
        ]
    else:
        out += [verdict(hw), ""]
    rows: list[list[Any]] = []
    for fam, label in (("cpu", "CPU"), ("gpu", "GPU")):
        d = temps[fam]
        if not d["n"]:
            rows.append([label, f"{d['limit_c']:g}", NA, NA, NA, NA, NA])
            continue
        rows.append(
            [
                label,
                f"{d['limit_c']:g}",
                _num(d["peak"]),
                _num(d["p95"]),
                _num(d["mean"]),
                _dur(d["time_over_s"]),
                _dur(d["time_known_s"]),
            ]
        )
    if any(temps[f]["n"] for f in ("cpu", "gpu")):
        out += table(
            [
                "temperature",
                "limit °C",
                "peak °C",
                "p95 °C",
                "mean °C",
                "time over the limit",
                "time with readings",
            ],
            rows,
        )
    else:
        out += [f"Temperatures: {unavailable_text(hw, 'temps')}.", ""]
    pr = hw["thermal_pressure"]
    if pr["time_s"]:
        out += [f"Thermal pressure (limit {pr['limit']}):", ""]
        out += table(["level", "time"], [[k, _dur(v)] for k, v in pr["time_s"].items()])
    readings: list[list[Any]] = []
    for hist, label, unit, family, nd in (
        (hw["power_w"], "power", " W", "power", 1),
        (hw["fan_rpm"], "fan", " rpm", "fans", 0),
    ):
        if hist["n"]:
            readings.append(
                [
                    label,
                    _num(hist["peak"], nd, unit),
                    _num(hist["p95"], nd, unit),
                    _num(hist["mean"], nd, unit),
                    num(hist["n"]),
                ]
            )
        else:
            readings.append([label, unavailable_text(hw, family), "", "", 0])
    out += table(["reading", "peak", "p95", "mean", "readings"], readings)
    out += [
        f"Limits ({hw['limits_source']}): CPU {lim['cpu_temp_limit_c']:g} °C, GPU {lim['gpu_temp_limit_c']:g} °C, "
        f"pause at limit + {lim['pause_margin_c']:g} °C, back under limit - {lim['hysteresis_c']:g} °C, "
        f"thermal pressure {lim['pressure_limit']}, GPU reasons {', '.join(lim['gpu_throttle_reasons']) or 'none'}; "
        f"over a limit the duty cycle is capped at {lim['reduce_to_pct']}%.",
        "",
    ]
    return out


def verdict(hw: Hardware, bold: str = "**") -> str:
    """How the machine held up over the run, in one sentence (`bold` marks the key figures)."""
    sus, guard = hw["sustained"], hw["guard"]
    duty = sus["run_duty_pct"]
    if not sus["exceeded"]:
        return (
            f"{bold}Held{bold}: no reading went over a limit and the guard never intervened; measured duty "
            f"{_num(duty, 0, '%')} over {_dur(sus['run_s'])}."
        )
    parts = [f"{bold}Limits exceeded{bold} for {_dur(hw['over_limits']['time_any_over_s'])} in all"]
    if guard["intervened"]:
        e = guard["entries"]
        parts.append(
            f"the guard intervened (reduced {_times(e['reduced'])}, paused {_times(e['paused'])}; "
            f"{_dur(guard['time_s']['reduced'])} reduced, {_dur(guard['time_s']['paused'])} paused)"
        )
        if guard["duty_pct"]["reduced"] is not None:
            parts.append(f"measured duty while reduced {_num(guard['duty_pct']['reduced'], 0, '%')}")
    elif not guard["enabled"]:
        parts.append("the guard was off")
    if sus["longest_s"]:
        parts.append(
            f"longest stretch under the limits {_dur(sus['longest_s'])} at a measured duty of "
            f"{_num(sus['longest_duty_pct'], 0, '%')}"
        )
    if sus["best_duty_pct"] is not None:
        parts.append(
            f"{bold}highest duty sustained under the limits: {_num(sus['best_duty_pct'], 0, '%')}{bold} "
            f"(over {_dur(sus['best_s'])})"
        )
    else:
        parts.append(f"no stretch under the limits lasted {_dur(sus['min_stretch_s'])}")
    return "; ".join(parts) + "."


def _guard(hw: Hardware) -> list[str]:
    g = hw["guard"]
    out = ["### Thermal guard", ""]
    if not g["enabled"]:
        out += ["The guard was off (`thermal.enabled = false`).", ""]
    rows = [
        [
            STATE_LABELS[s],
            g["entries"][s] if s != "ok" else "",
            _dur(g["time_s"][s]),
            _num(g["duty_pct"][s], 0, "%"),
        ]
        for s in ("ok", "reduced", "paused")
    ]
    out += table(["state", "times entered", "time", "measured duty"], rows)
    if g["history"]:
        shown = g["history"][-20:]
        if g["changes"] > len(shown):
            out += [f"The last {len(shown)} of {g['changes']} changes:", ""]
        out += table(
            ["time", "state", "cap", "reason"],
            [[_clock(h["t"]), h["state"], _num(h["cap_pct"], 0, "%"), h["reason"]] for h in shown],
        )
    elif g["enabled"]:
        out += ["No intervention.", ""]
    return out


def _clock(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return NA
    return time.strftime("%H:%M:%S", time.localtime(t))


def _throttling(hw: Hardware) -> list[str]:
    out = ["### Throttling", ""]
    gt = hw["gpu_throttle"]
    if gt:
        out += table(
            ["GPU clock reason", "counts as thermal", "readings", "time"],
            [
                [r, "yes" if v["thermal"] else "no", num(v["readings"]), _dur(v["time_s"])]
                for r, v in gt.items()
            ],
        )
    elif hw["families"]["gpu"]["readings"]:
        out += ["GPU: no clock-throttle reason reported.", ""]
    else:
        out += [f"GPU throttle reasons: {unavailable_text(hw, 'gpu')}.", ""]
    ct = hw["cpu_throttle"]
    if ct:
        out += [
            "CPU thermal-throttle events during the run (Linux counters): "
            + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in ct.items())
            + ".",
            "",
        ]
    else:
        out += [f"CPU thermal-throttle counters: {unavailable_text(hw, 'cpu_throttle')}.", ""]
    return out


def _energy(hw: Hardware) -> list[str]:
    e = hw["energy"]
    out = ["### Energy per output token", "", f"Method: {hw['methods']['energy']}.", ""]
    if e["total_j"] is None:
        return out + [f"Power: {unavailable_text(hw, 'power')}.", ""]
    out += [
        f"Energy over the {_dur(e['covered_s'])} with power readings: {e['total_j'] / 3600:,.2f} Wh "
        f"(mean {_num(e['mean_power_w'], 1, ' W')}).",
        "",
    ]
    rows = [energy_cells(key, m) for key, m in e["per_model"].items()]
    if rows:
        out += table(
            [
                "model",
                "energy (Wh)",
                "output tokens",
                "J per output token",
                "mean power (W)",
                "tests with power",
            ],
            rows,
        )
    return out


def energy_cells(label: str, m: ModelEnergy) -> list[str]:
    """One model's energy row: Wh, output tokens, J per token, mean W, tests with power / all."""
    return [
        label,
        _num(m["energy_wh"], 3),
        _num(m["output_tokens"]),
        _num(m["j_per_token"], 3),
        _num(m["mean_power_w"]),
        f"{m['tests_with_power']}/{m['tests_with_power'] + m['tests_without_power']}",
    ]


def render_hardware(hw: Hardware | None) -> list[str]:
    """The `## Hardware` section as Markdown lines."""
    out = ["## Hardware", ""]
    if not hw:
        return out + ["No hardware data in this report.", ""]
    if not hw["readings"]:
        return out + [
            "No telemetry reading in the log: temperatures, fans, power and throttling are unknown.",
            "",
        ]
    out += _readings(hw)
    out += _limits(hw)
    out += _guard(hw)
    out += _throttling(hw)
    out += _energy(hw)
    out += _charts(hw)
    out += [f"Readings: {hw['methods']['hold']}; {hw['methods']['over']}; {hw['methods']['sustained']}.", ""]
    return out


__all__ = [
    "FAMILY_LABELS",
    "energy_cells",
    "plot_series",
    "render_hardware",
    "text_chart",
    "unavailable_text",
    "verdict",
]
