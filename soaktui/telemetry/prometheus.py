"""A small reader of the Prometheus text format, enough for llama.cpp's and vLLM's `/metrics`.

Servers expose their queue and cache state as Prometheus text; soaktui needs a handful of gauges
from it, not a client library. Handles `# HELP`/`# TYPE`/other comments, labels (quoted values with
escapes, commas and spaces inside), optional timestamps and the special values NaN, +Inf and -Inf.
A line that does not parse is skipped: one odd line must not cost the rest of the scrape.
"""

from __future__ import annotations

import math
import re

Labels = dict[str, str]
Samples = dict[str, list[tuple[Labels, float]]]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(text: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _ESCAPES[m.group(0)], text)


def _value(text: str) -> float | None:
    word = text.strip()
    special = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
    if word.lower() in special:
        return special[word.lower()]
    try:
        return float(word)
    except ValueError:
        return None


def _labels(rest: str) -> tuple[Labels, int] | None:
    """The label set opening `rest` (`{a="b",c="d"}`) and the index just after it; None if malformed."""
    labels: Labels = {}
    pos = 1
    while True:
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
        if rest.startswith("}", pos):  # empty set, or a trailing comma before the brace
            return labels, pos + 1
        m = _LABEL.match(rest, pos)
        if m is None:
            return None
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
        if m.group(3) == "}":
            return labels, pos


def parse(text: str) -> Samples:
    """{metric name: [(labels, value), ...]} for every sample line of an exposition text."""
    out: Samples = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if m is None:
            continue
        name, rest = m.group(0), line[m.end() :]
        labels: Labels = {}
        if rest.startswith("{"):
            parsed = _labels(rest)
            if parsed is None:
                continue
            labels, after = parsed
            rest = rest[after:]
        parts = rest.split()
        value = _value(parts[0]) if parts else None
        if value is None:
            continue
        out.setdefault(name, []).append((labels, value))
    return out


def total(samples: Samples, name: str) -> float | None:
    """Sum of a metric over its label sets (e.g. vLLM's engines), NaN samples left out; None if absent."""
    values = [v for _, v in samples.get(name, ()) if not math.isnan(v)]
    return sum(values) if values else None


def largest(samples: Samples, name: str) -> float | None:
    """Largest value of a metric over its label sets, NaN left out; None if absent."""
    values = [v for _, v in samples.get(name, ()) if not math.isnan(v)]
    return max(values) if values else None
