"""How the dashboard writes figures: one place, so every pane says "n/a" and rates the same way.

Rules from the report carry over: a figure that was not measured is "n/a" (never 0), a rate shows
its counts ("22/23 96%"), durations read like the report's. Textual-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soaktui.durations import format_duration
from soaktui.stats import NA

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return NA
    return format_duration(float(int(max(0.0, seconds))))  # whole seconds: a header ticks once a second


def num(x: Any, nd: int = 1) -> str:
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return NA
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{nd}f}"


def rate(k: int, n: int) -> str:
    """ "22/23 96%"; "0/0" reads "n/a" (nothing counted, not 0%)."""
    if n <= 0:
        return NA
    return f"{k}/{n} {100 * k / n:.0f}%"


def percent(k: int, n: int) -> str:
    return NA if n <= 0 else f"{100 * k / n:.0f}%"


def short_model(key: str | None, model: str | None = None) -> str:
    """The model id without its provider prefix (keys are `provider/model`)."""
    if model:
        return str(model)
    if not key:
        return NA
    head, sep, tail = key.partition("/")
    return tail if sep and "@" in head else key


def clip(text: str, width: int) -> str:
    """`text` cut to `width` cells with an ellipsis (ASCII-width approximation)."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def sparkline(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None) -> str:
    """The last `width` values as block characters on the scale `lo`..`hi` (values beyond it are
    clamped). A bound left None is the values' own min or max: give both for a fixed scale (CPU
    load 0-100), `lo` alone for one from a floor (latency from 0), so noise does not look like a swing."""
    if width <= 0 or not values:
        return ""
    vals = list(values)[-width:]
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    top = len(SPARK_CHARS) - 1
    if hi <= lo:
        return SPARK_CHARS[top // 2] * len(vals)
    scale = top / (hi - lo)
    return "".join(SPARK_CHARS[int(round((min(max(v, lo), hi) - lo) * scale))] for v in vals)


def display_path(path: str | os.PathLike[str]) -> str:
    """An absolute path with the home directory written as ~ (short in a header, exact to paste)."""
    p = Path(path).expanduser().absolute()
    try:
        home = Path.home()
        rel = p.relative_to(home)
    except (ValueError, RuntimeError):
        return str(p)
    return "~" if str(rel) == "." else f"~/{rel}"


def byte_size(n: Any) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return NA
    return f"{n / 1e9:.1f} GB"


__all__ = [
    "NA",
    "byte_size",
    "clip",
    "display_path",
    "duration",
    "num",
    "percent",
    "rate",
    "short_model",
    "sparkline",
]
