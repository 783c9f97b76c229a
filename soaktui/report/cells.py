"""The cells every report surface writes figures with: one place, so every table says "n/a" and
formats numbers, durations and Markdown table rows the same way (markdown.py, hardware_markdown.py,
the profiles text and the dashboard's report screen)."""

from __future__ import annotations

from typing import Any

from soaktui.durations import format_duration
from soaktui.stats import NA


def cell(x: Any) -> str:
    """A Markdown table cell: n/a for None, pipes escaped, one line."""
    s = NA if x is None else str(x)
    return s.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table (then a blank line) as lines."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    out.append("")
    return out


def num(x: Any, nd: int = 1) -> str:
    """A number with thousands separators (ints as they are, floats to `nd` places); yes/no for bools."""
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{nd}f}"


def ms(x: Any) -> str:
    """Milliseconds with their unit, readable: "850 ms", "2.6 s", "1.5 min"; n/a for None."""
    if x is None:
        return NA
    v = float(x)
    if v < 1000:
        return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"
    if v < 60_000:
        return f"{v / 1000:.1f} s"
    return f"{v / 60_000:.1f} min"


def pvalue(p: float | None) -> str:
    """A p-value as people read it: "p<0.001", "p=0.03"; n/a for None."""
    if p is None:
        return NA
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def clock_offset(seconds: float) -> str:
    """Seconds from the run's start as h:mm."""
    m = int(seconds // 60)
    return f"{m // 60}:{m % 60:02d}"


def duration(s: Any) -> str:
    """Seconds as a readable duration (see durations.format_duration)."""
    return NA if s is None else format_duration(float(s))


__all__ = ["NA", "cell", "clock_offset", "duration", "ms", "num", "pvalue", "table"]
