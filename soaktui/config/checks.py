"""Value checks: what each setting accepts, and how text from the environment or a flag is read.

A `Check` takes a value of the key's type and returns it normalised, or raises `Invalid` with the
"expected ..." half of the error message. Its `from_text` turns environment/flag text into that type
where it can and otherwise returns the text unchanged, so that the check reports it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from soaktui.config.registry import known_scenarios
from soaktui.durations import (
    CLOCK_EXPECTED,
    DurationError,
    duration_expected,
    format_clock,
    parse_clock,
    parse_duration,
)

MAX_TESTS_PER_TURN = 1000
MAX_CONCURRENCY = 64
MAX_TOKENS = 10_000_000


class Invalid(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


# --------------------------------------------------------------------------- text converters


def _same(s: str) -> Any:
    return s


def _text_int(s: str) -> Any:
    try:
        return int(s.strip())
    except ValueError:
        return s


def _text_float(s: str) -> Any:
    try:
        return float(s.strip())
    except ValueError:
        return s


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _text_bool(s: str) -> Any:
    low = s.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else s


def _text_list(item: Callable[[str], Any] = _same) -> Callable[[str], Any]:
    return lambda s: [item(x.strip()) for x in s.split(",") if x.strip()]


@dataclass(frozen=True)
class Check:
    """`check(value)` returns the value normalised or raises Invalid; `from_text` reads env/flag text."""

    check: Callable[[Any], Any]
    from_text: Callable[[str], Any] = _same

    def __call__(self, value: Any) -> Any:
        return self.check(value)


# --------------------------------------------------------------------------- the checks


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_range(lo: int, hi: int | None, what: str = "an integer") -> Check:
    expected = f"expected {what} from {lo} to {hi}" if hi is not None else f"expected {what} >= {lo}"

    def check(v: Any) -> int:
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            raise Invalid(expected)
        return v

    return Check(check, _text_int)


def _any_int(v: Any) -> int:
    if not _is_int(v):
        raise Invalid("expected an integer")
    return v


ANY_INT = Check(_any_int, _text_int)


def number(ok: Callable[[float], bool], expected: str) -> Check:
    def check(v: Any) -> float:
        if not _is_number(v) or not ok(float(v)):
            raise Invalid(expected)
        return float(v)

    return Check(check, _text_float)


def duration(default_unit: str, at_least_s: float | None = None, why: str = "") -> Check:
    """Float seconds from a bare number of `default_unit`, a string with units, or a timedelta;
    with `at_least_s`, no shorter than that (`why` says what a shorter one would cost)."""

    def check(v: Any) -> float:
        if isinstance(v, dt.timedelta):
            seconds = v.total_seconds()
            if seconds <= 0:
                raise Invalid(duration_expected(default_unit))
        else:
            try:
                seconds = parse_duration(v, default_unit=default_unit)
            except DurationError as exc:
                raise Invalid(duration_expected(default_unit)) from exc
        if at_least_s is not None and seconds < at_least_s:
            raise Invalid(f"expected at least {at_least_s:g}s" + (f" ({why})" if why else ""))
        return seconds

    return Check(check)


def _bool_check(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Invalid("expected true or false")
    return v


BOOL = Check(_bool_check, _text_bool)


def _clock_check(v: Any) -> str:
    if isinstance(v, dt.time) and not (v.second or v.microsecond):  # unquoted TOML: start = 22:00:00
        return format_clock((v.hour, v.minute))
    try:
        return format_clock(parse_clock(v))
    except (ValueError, AttributeError) as exc:
        raise Invalid(CLOCK_EXPECTED) from exc


CLOCK = Check(_clock_check)


def text(pattern: str, expected: str) -> Check:
    rx = re.compile(pattern)

    def check(v: Any) -> str:
        if not isinstance(v, str) or not rx.fullmatch(v.strip()):
            raise Invalid(expected)
        return v.strip()

    return Check(check)


def choice(*choices: str) -> Check:
    expected = "expected one of " + ", ".join(choices)

    def check(v: Any) -> str:
        if not isinstance(v, str) or v.strip().lower() not in choices:
            raise Invalid(expected)
        return v.strip().lower()

    return Check(check)


def _api_key_check(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or any(c.isspace() or ord(c) < 32 for c in v.strip()):
        raise Invalid("expected a non-empty string without spaces or control characters")
    return v.strip()


API_KEY = Check(_api_key_check)


def _path_check(v: Any) -> Path:
    if not isinstance(v, (str, os.PathLike)) or not os.fspath(v).strip():
        raise Invalid("expected a directory path")
    return Path(os.fspath(v).strip()).expanduser()


PATH = Check(_path_check)


def _url_check(v: Any) -> str:
    expected = "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:1234/v1"
    if not isinstance(v, str):
        raise Invalid(expected)
    text = v.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise Invalid(expected) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise Invalid(expected)
    return text


URL = Check(_url_check)


def _pattern_check(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise Invalid("expected a non-empty pattern such as 'qwen*'")
    return v.strip()


PATTERN = Check(_pattern_check)


def _scenario_check(v: Any) -> str:
    """A registered scenario's name (registry.py: the scenario classes declare their names)."""
    known = known_scenarios()
    name = v.strip() if isinstance(v, str) else v
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise Invalid(f"unknown scenario{hint}; known: {', '.join(known)}")
    return name


SCENARIO = Check(_scenario_check)


def list_of(item: Check, what: str, *, allow_empty: bool = True, empty_hint: str = "") -> Check:
    """A list of `item`s (de-duplicated, order kept) as a tuple; from text: comma-separated."""

    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)):
            raise Invalid(f"expected a list of {what}")
        if not v and not allow_empty:
            raise Invalid(f"expected at least one of {what}{empty_hint}")
        out: list[Any] = []
        for x in v:
            try:
                value = item(x)
            except Invalid as exc:
                raise Invalid(f"{x!r}: {exc.expected}") from None
            if value not in out:
                out.append(value)
        return tuple(out)

    return Check(check, _text_list(item.from_text))


def _concurrency_check(v: Any) -> tuple[int, ...]:
    expected = f"expected a non-empty ascending list of distinct integers from 1 to {MAX_CONCURRENCY}, e.g. [2, 4, 8]"
    if not isinstance(v, (list, tuple)) or not v:
        raise Invalid(expected)
    if not all(_is_int(x) and 1 <= x <= MAX_CONCURRENCY for x in v):
        raise Invalid(expected)
    if any(a >= b for a, b in zip(v, v[1:], strict=False)):
        raise Invalid(expected)
    return tuple(v)


CONCURRENCY = Check(_concurrency_check, _text_list(_text_int))

PERCENT = int_range(1, 100, "a whole-number percentage")
TESTS = int_range(1, MAX_TESTS_PER_TURN, "an integer")
TOKENS = int_range(1, MAX_TOKENS, "a token count")
SECONDS = duration("s")
# Output intervals: each tick writes something (an event, a file, an fsync), so a tiny interval
# turns the run into a writer of its own bookkeeping.
SUMMARY_INTERVAL = duration("s", 1.0, "each rewrites test_summary.json")
STATUS_INTERVAL = duration("s", 1.0, "each writes a status event")
TELEMETRY_INTERVAL = duration("s", 0.5, "each reads every sensor and server and writes an event")
FSYNC_INTERVAL = duration("s", 0.05, "each is a disk flush")
SECONDS_HELP = 'seconds, or a duration such as "30s", "2m"'
CELSIUS = number(lambda x: 30 <= x <= 150, "expected degrees Celsius from 30 to 150")
WEIGHT = number(lambda x: x >= 0, "expected a number >= 0")
