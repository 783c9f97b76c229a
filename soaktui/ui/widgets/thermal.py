"""Thermal and fans: what the machine under test is doing, from the run's `telemetry` events.

The latest reading with short histories (sparklines of CPU load, CPU and GPU temperature, power
and fan speed, each a bounded deque in LiveState), the GPU, macOS thermal pressure, the LLM
server's process and the thermal guard's state when it has stepped in. A reading the machine
cannot give shows "unavailable (why)" with the sampler's reason, never 0 (0 °C or 0 rpm would be a
false measurement). When the pane is short, the unavailable readings share one line and the least
important lines go first. The sparklines have fixed scales (SCALES), so a steady machine reads as
steady: load 0-100%, temperatures 20-100 °C, fans and power from 0.
"""

from __future__ import annotations

import textwrap
import time
from typing import TYPE_CHECKING, Any

from textual.content import Content

from soaktui.ui import format as fmt
from soaktui.ui.widgets.pane import ACCENT, BAD, GOOD, MUTED, WARN, Pane, line

if TYPE_CHECKING:
    from soaktui.ui.state import LiveState

UNAVAILABLE = ("unavailable", MUTED)
LABEL = 9
HOT_PRESSURE = ("heavy", "trapping", "sleeping")
# (lo, hi) per history; None: the highest reading held. Room temperature to where CPUs throttle.
SCALES: dict[str, tuple[float, float | None]] = {
    "cpu_pct": (0.0, 100.0),
    "cpu_temp_c": (20.0, 100.0),
    "gpu_temp_c": (20.0, 100.0),
    "fan_rpm": (0.0, None),
    "power_w": (0.0, None),
}

Part = str | tuple[str, str]


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _load_style(pct: float) -> str:
    return BAD if pct >= 90 else WARN if pct >= 70 else GOOD


def _pct(x: Any) -> tuple[str, str]:
    if not _is_num(x):
        return UNAVAILABLE
    return (f"{x:.0f}%", "bold " + _load_style(float(x)))


def _label(name: str) -> tuple[str, str]:
    return (f"{name:<{LABEL}}", "bold")


class _Rows:
    """The pane's lines with a priority each (0 = keep longest).

    A line may carry a wrapped form (its text over several lines) used only when the pane has rows
    to spare; "unavailable" lines fold into one when the pane is short.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[tuple[int, Content, str | None, list[Content] | None]] = []

    def add(
        self,
        prio: int,
        content: Content,
        unavailable: str | None = None,
        wrapped: list[Content] | None = None,
    ) -> None:
        self.rows.append((prio, content, unavailable, wrapped))

    def fit(self, height: int) -> list[Content]:
        rows = self.rows
        if len(rows) > height:  # fold "unavailable" rows into one line where the first one was
            missing = [r[2] for r in rows if r[2]]
            if missing:
                first = next(i for i, r in enumerate(rows) if r[2])
                names = ", ".join(missing)
                summary = line(UNAVAILABLE, (": " + names, "bold"))
                chunks = textwrap.wrap(f"unavailable: {names}", max(16, self.width))
                wrapped = [line(UNAVAILABLE, (chunks[0][len("unavailable") :], "bold"))]
                wrapped += [line((c, "bold")) for c in chunks[1:]]
                rows = [r for r in rows if not r[2]]
                rows.insert(first, (2, summary, None, wrapped))
        while len(rows) > height:  # then drop the least important, latest first
            worst = max(range(len(rows)), key=lambda i: (rows[i][0], i))
            rows = rows[:worst] + rows[worst + 1 :]
        spare = height - len(rows)
        out: list[Content] = []
        for _, content, _, wrapped in rows:
            if wrapped and len(wrapped) - 1 <= spare:
                out += wrapped
                spare -= len(wrapped) - 1
            else:
                out.append(content)
        return out


def _wrapped(head: list[Part], text: str, style: str, width: int) -> list[Content] | None:
    """`head` then `text` over as many lines as it needs (indented under the label); None when
    it fits on one line."""
    used = sum(len(p) if isinstance(p, str) else len(p[0]) for p in head)
    if used + len(text) <= width:
        return None
    room = max(8, width - LABEL)
    first = max(8, width - used)
    chunks = textwrap.wrap(text, first, break_long_words=True, break_on_hyphens=False)
    if not chunks:
        return None
    rest = textwrap.wrap(text[len(chunks[0]) :].strip(), room, break_long_words=True, break_on_hyphens=False)
    return [line(*head, (chunks[0], style)), *(line(" " * LABEL, (c, style)) for c in rest)]


class ThermalPane(Pane):
    section = "telemetry"

    def draw(self, live: LiveState, now: float) -> None:
        width = self.inner_width
        t = live.telemetry
        if t is None:
            self.show([line(("No machine reading yet (the engine samples every few seconds).", MUTED))])
            return
        why = t.get("unavailable") if isinstance(t.get("unavailable"), dict) else {}
        hot = live.thermal is not None and live.thermal.get("state") not in (None, "ok")
        rows = _Rows(width)

        def spark(key: str, used: int) -> tuple[str, tuple[str, str]]:
            history = live.histories.get(key) if key != "cpu_pct" else live.cpu_history
            w = max(0, width - LABEL - used - 1)
            return " ", (fmt.sparkline(list(history), w, *SCALES[key]) if history else "", ACCENT)

        def missing(prio: int, name: str, family: str) -> None:
            reason = why.get(family)
            text = f"unavailable ({reason})" if reason else "unavailable"
            rows.add(
                prio, line(_label(name), (text, MUTED)), name, _wrapped([_label(name)], text, MUTED, width)
            )

        if hot:
            g = live.thermal or {}
            cap = "paused" if g.get("state") == "paused" else f"duty {g.get('duty_pct') or g.get('cap_pct')}%"
            head: list[Part] = [_label("guard"), (f"HOT: {cap}", "bold reverse " + BAD), " "]
            reason = str(g.get("reason") or "")
            rows.add(0, line(*head, (reason, WARN)), None, _wrapped(head, reason, WARN, width))
        cpu = _pct(t.get("cpu_pct"))
        freq = t.get("cpu_freq_mhz")
        freq_s = f" {freq / 1000:.1f} GHz" if _is_num(freq) else ""
        rows.add(0, line(_label("CPU"), cpu, (freq_s, MUTED), *spark("cpu_pct", len(cpu[0]) + len(freq_s))))
        cores = t.get("cpu_per_core_pct")
        if isinstance(cores, list) and cores:
            parts: list[Part] = [_label("cores")]
            for i, c in enumerate(cores):
                parts += [" " if i else "", _pct(c)]
            rows.add(3, line(*parts))
        mem: list[Part] = [_label("memory"), _pct(t.get("mem_pct"))]
        used, total = t.get("mem_used_bytes"), t.get("mem_total_bytes")
        if _is_num(used) and _is_num(total):
            mem.append((f" {fmt.byte_size(used)} of {fmt.byte_size(total)}", MUTED))
        rows.add(2, line(*mem))
        if "swap_pct" in t:
            rows.add(
                4,
                line(
                    _label("swap"),
                    _pct(t.get("swap_pct")),
                    (f" {fmt.byte_size(t.get('swap_used_bytes'))}", MUTED),
                ),
            )
        else:
            rows.add(4, line(_label("swap"), ("none", MUTED)))
        load = t.get("load_avg")
        if isinstance(load, list) and len(load) == 3:
            rows.add(3, line(_label("load"), " ".join(fmt.num(x, 2) for x in load), (" (1/5/15 min)", MUTED)))
        else:
            rows.add(3, line(_label("load"), UNAVAILABLE))
        self._gpu(rows, t, missing)
        temp_style = "bold " + (BAD if hot else "")
        any_temp = False
        for name, key in (("cpu temp", "cpu_temp_c"), ("gpu temp", "gpu_temp_c")):
            v = t.get(key)
            if _is_num(v):
                any_temp = True
                text = f"{v:.0f}°C"
                rows.add(0, line(_label(name), (text, temp_style.strip()), *spark(key, len(text))))
        if not any_temp:
            missing(1, "temps", "temps")
        fan = t.get("fan_rpm")
        if _is_num(fan):
            text = f"{fan:,.0f} rpm"
            rows.add(1, line(_label("fans"), (text, "bold"), *spark("fan_rpm", len(text))))
        else:
            missing(1, "fans", "fans")
        power = t.get("power_w")
        if _is_num(power):
            text = f"{power:,.1f} W"
            parts_s = t.get("power_w_parts")
            what = f" {'+'.join(map(str, parts_s))}" if isinstance(parts_s, list) and parts_s else ""
            if width - LABEL - len(text) - len(what) < 9:  # the history matters more than the sources
                what = ""
            sp = spark("power_w", len(text) + len(what))
            rows.add(1, line(_label("power"), (text, "bold"), (what, MUTED), *sp))
        else:
            missing(1, "power", "power")
        pressure = t.get("thermal_pressure")
        if isinstance(pressure, str) and pressure:
            style = "bold " + (
                BAD if pressure.lower() in HOT_PRESSURE else GOOD if pressure == "nominal" else WARN
            )
            rows.add(1, line(_label("pressure"), (pressure, style)))
        else:
            missing(2, "pressure", "thermal_pressure")
        procs = t.get("server_procs")
        if isinstance(procs, list) and procs and isinstance(procs[0], dict):
            p = procs[0]
            more = f" +{len(procs) - 1}" if len(procs) > 1 else ""
            cpu_s = f" {p['cpu_pct']:.0f}%" if _is_num(p.get("cpu_pct")) else ""
            rows.add(
                3,
                line(
                    _label("server"),
                    (str(p.get("name") or "?"), "bold"),
                    cpu_s,
                    (f" {fmt.byte_size(p.get('rss_bytes'))}{more}", MUTED),
                ),
            )
        if live.telemetry_t is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(live.telemetry_t))
            rows.add(5, line((f"from {t.get('source') or 'telemetry'} at {stamp}", MUTED)))
        self.show(rows.fit(self.inner_height))

    @staticmethod
    def _gpu(rows: _Rows, t: dict[str, Any], missing: Any) -> None:
        gpus = t.get("gpus")
        if not (isinstance(gpus, list) and gpus and isinstance(gpus[0], dict)):
            missing(1, "GPU", "gpu")
            return
        g = gpus[0]
        parts: list[Part] = [_label("GPU")]
        if _is_num(g.get("util_pct")):
            parts.append(_pct(g["util_pct"]))
        used, total = g.get("mem_used_bytes"), g.get("mem_total_bytes")
        if _is_num(used) and _is_num(total):
            parts.append((f" {fmt.byte_size(used)} of {fmt.byte_size(total)}", MUTED))
        reasons = [r for r in g.get("throttle_reasons") or [] if r != "gpu_idle"]
        if reasons:
            parts.append((" " + ",".join(map(str, reasons)), WARN))
        name = g.get("name")
        more = f" +{len(gpus) - 1}" if len(gpus) > 1 else ""
        if name or more:
            parts.append((f" {name or ''}{more}", MUTED))
        rows.add(1, line(*parts))
