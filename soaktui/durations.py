"""Durations and clock times as people type them, parsed in one place so every flag agrees.

The original script took `--duration 4` to mean four hours, and people have that habit, so a bare
number is hours by default; `90s`, `30m`, `4h`, `1d` and combinations like `1h30m` also work.
Settings that are naturally short (timeouts, intervals) parse with `default_unit="s"` instead.
"""

from __future__ import annotations

import math
import re

UNIT_SECONDS = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0}
_UNIT_WORDS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(rf"[+-]?{_NUMBER}")
_PART = re.compile(rf"({_NUMBER})\s*([dhms])", re.IGNORECASE)
_WHOLE = re.compile(rf"(?:{_NUMBER}\s*[dhms]\s*)+", re.IGNORECASE)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")

CLOCK_EXPECTED = "expected HH:MM (00:00-23:59)"


class DurationError(ValueError):
    """A duration that cannot be used; `expected` says what is allowed (without the bad value)."""

    def __init__(self, text: object, expected: str) -> None:
        super().__init__(f"invalid duration {text!r}: {expected}")
        self.expected = expected


def duration_expected(default_unit: str = "h") -> str:
    """What a duration may look like, for error messages and help texts."""
    examples = "4, 2.5, 0.5" if default_unit == "h" else "30, 2.5"
    return (
        f"expected a bare number of {_UNIT_WORDS[default_unit]} ({examples}) or a number with a unit "
        "s, m, h or d (90s, 30m, 4h, 1d, 1h30m), greater than 0"
    )


def parse_duration(text: str | int | float, default_unit: str = "h") -> float:
    """Seconds in `text`: "4" / 4 = 4 hours (with the default unit "h"), "90s", "30m", "1h30m".

    Raises `DurationError` (a ValueError) for garbage, zero, negative and non-finite values.
    """
    if default_unit not in UNIT_SECONDS:
        raise ValueError(f"default_unit must be one of {', '.join(UNIT_SECONDS)}, not {default_unit!r}")
    expected = duration_expected(default_unit)
    if isinstance(text, bool):
        raise DurationError(text, expected)
    if isinstance(text, (int, float)):
        seconds = float(text) * UNIT_SECONDS[default_unit]
    elif isinstance(text, str):
        s = text.strip()
        if _BARE.fullmatch(s):
            seconds = float(s) * UNIT_SECONDS[default_unit]
        elif _WHOLE.fullmatch(s):
            seconds = _sum_parts(text, s, expected)
        else:
            raise DurationError(text, expected)
    else:
        raise DurationError(text, expected)
    if not math.isfinite(seconds):
        raise DurationError(text, expected)
    if seconds <= 0:
        raise DurationError(text, "must be greater than 0")
    return seconds


def _sum_parts(original: str, s: str, expected: str) -> float:
    parts = [(float(n), u.lower()) for n, u in _PART.findall(s)]
    sizes = [UNIT_SECONDS[u] for _, u in parts]
    if any(a <= b for a, b in zip(sizes, sizes[1:], strict=False)):
        raise DurationError(original, "units must go from largest to smallest, each once, as in 1h30m")
    return sum(n * UNIT_SECONDS[u] for n, u in parts)


def format_duration(seconds: float, *, compact: bool = False) -> str:
    """ "1h 02m 03s", "4m 05s", "42s", "2.5s" (under ten seconds keeps a tenth).

    `compact` is for lines people scan in a log (the headless output, the text logs): "2h05m",
    "4m10s", "12.3s", "850ms" (a unit step drops the finest part, which a log line does not need).
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration: {seconds!r}")
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if compact:
        return sign + _compact(s)
    if s < 10 and round(s, 1) != round(s) and round(s, 1) < 10:
        return f"{sign}{s:.1f}s"
    total = round(s)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def _compact(s: float) -> str:
    if s == 0:
        return "0s"
    if round(s * 1000) < 1000:
        return f"{round(s * 1000)}ms"
    if round(s, 1) < 60:
        return f"{s:.1f}s"
    if round(s) < 3600:
        minutes, secs = divmod(round(s), 60)
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(round(s / 60), 60)
    return f"{hours}h{minutes:02d}m"


def parse_clock(text: str) -> tuple[int, int]:
    """(hour, minute) from "22:00" or "6:30"; ValueError unless 00:00-23:59."""
    m = _CLOCK.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"invalid time {text!r}: {CLOCK_EXPECTED}")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid time {text!r}: {CLOCK_EXPECTED}")
    return hour, minute


def format_clock(hm: tuple[int, int]) -> str:
    """ "06:00" from (6, 0)."""
    return f"{hm[0]:02d}:{hm[1]:02d}"
