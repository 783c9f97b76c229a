"""The cells every report surface writes figures with: one place, so every table says "n/a" and
formats numbers, durations and Markdown table rows the same way (markdown.py, hardware_markdown.py,
the profiles text and the dashboard's report screen)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from soaktui.durations import format_duration
from soaktui.stats import NA

WIDTH = 100  # a table line fits a terminal this wide: wider tables are split (see `table`)
MAX_CELL = 80  # a longer text cell is cut (with …); the full text is in report.json


def cell(x: Any) -> str:
    """A Markdown table cell: n/a for None, pipes escaped, one line, at most MAX_CELL characters."""
    s = NA if x is None else str(x)
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 1] + "…"


def column_groups(widths: list[int], width: int, keep: int = 1) -> list[list[int]]:
    """Column indexes in groups that each fit `width` (widths include each column's separator); every
    group repeats the first `keep` columns (the model). One group when the whole table fits."""
    if sum(widths) <= width or len(widths) <= keep + 1:
        return [list(range(len(widths)))]
    base = sum(widths[:keep])
    groups: list[list[int]] = []
    current: list[int] = []
    for i in range(keep, len(widths)):
        if current and base + sum(widths[j] for j in current) + widths[i] > width:
            groups.append(list(range(keep)) + current)
            current = []
        current.append(i)
    groups.append(list(range(keep)) + current)
    return groups


def table(headers: list[str], rows: list[list[Any]], *, keep: int = 1) -> list[str]:
    """A Markdown table (then a blank line) as lines. When its lines would be wider than WIDTH, the
    columns are split over several tables, each repeating the first `keep` columns (the model)."""
    cells = [[cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells if i < len(r)]) + 3 for i, h in enumerate(headers)]
    groups = column_groups(widths, WIDTH - 1, keep)  # - 1: the line's leading "|"
    out: list[str] = []
    for cols in groups:
        over = sum(widths[i] for i in cols) + 1 - WIDTH
        widest = max(cols, key=lambda i: widths[i])
        cap = max(20, widths[widest] - 3 - over) if over > 0 else None  # text that cannot be split: cut
        out.append("| " + " | ".join(headers[i] for i in cols) + " |")
        out.append("|" + "|".join("---" for _ in cols) + "|")
        for r in cells:
            row = [r[i] if i < len(r) else "" for i in cols]
            if cap is not None:
                k = cols.index(widest)
                row[k] = row[k] if len(row[k]) <= cap else row[k][: cap - 1] + "…"
            out.append("| " + " | ".join(row) + " |")
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
    if not isinstance(x, float):  # a log's value that is not a number, shown as it is
        return str(x)
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


def clock(t: Any, fmt: str, missing: str) -> str:
    """Epoch seconds as local wall-clock text in `fmt`; `missing` for no time, or one no clock shows
    (a log may hold text or an absurd number where a time belongs)."""
    if t is None:
        return missing
    try:
        return datetime.fromtimestamp(t).strftime(fmt)
    except (OverflowError, OSError, ValueError, TypeError):
        return missing


def clock_offset(seconds: float) -> str:
    """Seconds from the run's start as h:mm."""
    m = int(seconds // 60)
    return f"{m // 60}:{m % 60:02d}"


def duration(s: Any) -> str:
    """Seconds as a readable duration (see durations.format_duration)."""
    return NA if s is None else format_duration(float(s))


__all__ = ["NA", "cell", "clock_offset", "column_groups", "duration", "ms", "num", "pvalue", "table"]
