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


def duration(s: Any) -> str:
    """Seconds as a readable duration (see durations.format_duration)."""
    return NA if s is None else format_duration(float(s))


__all__ = ["NA", "cell", "duration", "num", "table"]
