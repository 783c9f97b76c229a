"""Render a report snapshot as `report.json`: the same figures as the Markdown, for machines."""

from __future__ import annotations

from typing import Any

import orjson

from soaktui.report.snapshot import Snapshot

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def render_json(snap: Snapshot) -> bytes:
    """Pretty, key-sorted JSON bytes (ends with a newline). Non-string keys become strings; a whole
    number past 64 bits (a log's absurd count, carried into a figure) is written as a float."""
    try:
        return orjson.dumps(snap, option=OPTIONS)
    except TypeError:  # orjson writes ints of 64 bits at most
        return orjson.dumps(_no_big_ints(snap), option=OPTIONS)


def _no_big_ints(x: Any) -> Any:
    if type(x) is int and not -(1 << 63) <= x < 1 << 64:
        return float(x)
    if isinstance(x, dict):
        return {k: _no_big_ints(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_big_ints(v) for v in x]
    return x
