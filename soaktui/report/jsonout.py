"""Render a report snapshot as `report.json`: the same figures as the Markdown, for machines."""

from __future__ import annotations

import orjson

from soaktui.report.snapshot import Snapshot


def render_json(snap: Snapshot) -> bytes:
    """Pretty, key-sorted JSON bytes (ends with a newline). Non-string keys become strings."""
    return orjson.dumps(
        snap,
        option=orjson.OPT_INDENT_2
        | orjson.OPT_SORT_KEYS
        | orjson.OPT_NON_STR_KEYS
        | orjson.OPT_APPEND_NEWLINE,
    )
