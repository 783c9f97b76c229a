"""Read `events.jsonl` back, fast and in bounded memory, forgiving what a crash leaves behind.

The log is the run's truth and can be hundreds of megabytes after a long soak, so the reader
streams it in large binary blocks (never the whole file) and parses each line with orjson: the
lines of a clean stretch a few dozen at a time in one C-level pass (`parse_clean`), any other
line by line. A run
killed mid-write leaves at most one incomplete last line: it is skipped and reported as a torn
tail, never an error. A damaged line in the middle (disk trouble, a hand edit) is counted and
skipped so one bad byte cannot cost the whole report. Server text in a log written before the bus
sanitised events is neutralised here (textsafe.from_log), so no reader shows it raw.

A log written by a newer soaktui (events whose `v` is above SCHEMA_VERSION) is read for what this
version understands, and counted (`newer_schema`, `newer_events`) so that the report and `soaktui
report` warn once that some of it may be missed or misread; it is never refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import repeat
from typing import Any

import orjson

from soaktui.log.events import SCHEMA_VERSION
from soaktui.log.textsafe import from_log, suspect

BLOCK_SIZE = 4 << 20  # 4 MiB reads: few system calls, bounded memory
BATCH_LINES = 256  # lines parsed and handed on together (iter_event_batches)
MAX_LINE_BYTES = 64 << 20  # a "line" longer than this is garbage (no event is that big): skipped


@dataclass
class ReadStats:
    """What a pass over the log saw. `lines_ok` counts events yielded."""

    lines_ok: int = 0
    lines_bad: int = 0  # invalid lines before the last one (not JSON, or not a JSON object)
    torn_tail: bool = False  # the last line had no newline or did not parse: skipped
    bytes_read: int = 0
    first_bad_line: int | None = None  # 1-based line number of the first bad line, for a message
    newer_schema: int | None = None  # the highest schema version above SCHEMA_VERSION seen, if any
    newer_events: int = 0  # events with that kind of version
    lines: int = 0  # lines seen, blank and bad ones too (a later stretch's are numbered after them)
    open_bad_line: int | None = None  # a stretch's last non-blank line was bad: what follows decides

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def note_version(self, event: dict[str, Any]) -> None:
        """Count `event` if a newer soaktui wrote it (its `v` above SCHEMA_VERSION)."""
        v = event.get("v")
        if type(v) is int and v > SCHEMA_VERSION:
            self.newer_events += 1
            if self.newer_schema is None or v > self.newer_schema:
                self.newer_schema = v

    def merge(self, later: ReadStats) -> None:
        """Join the statistics of the rest of the log, read after this stretch (report/split.py),
        as if one pass had read both: its lines are numbered after this stretch's, and this
        stretch's open bad line is a bad line when any line follows it, else the torn tail."""
        if self.open_bad_line is not None:
            if later.lines_ok or later.lines_bad or later.torn_tail:
                _count_bad(self, self.open_bad_line)
            else:
                self.torn_tail = True
            self.open_bad_line = None
        if self.first_bad_line is None and later.first_bad_line is not None:
            self.first_bad_line = self.lines + later.first_bad_line
        self.lines_ok += later.lines_ok
        self.lines_bad += later.lines_bad
        self.bytes_read += later.bytes_read
        self.torn_tail = self.torn_tail or later.torn_tail
        if later.newer_schema is not None and (
            self.newer_schema is None or later.newer_schema > self.newer_schema
        ):
            self.newer_schema = later.newer_schema
        self.newer_events += later.newer_events
        self.lines += later.lines


def newer_schema_warning(stats: ReadStats) -> str | None:
    """The one warning for a log from a newer soaktui (None when there is nothing to say)."""
    if stats.newer_schema is None:
        return None
    return (
        f"{stats.newer_events:,} events were written by a newer soaktui (event schema v{stats.newer_schema}; "
        f"this one reads v{SCHEMA_VERSION}): read for what this version understands, some figures may be missing"
    )


def parse_clean(lines: list[bytes]) -> list[dict[str, Any]] | None:
    """The events of complete lines when every one is a JSON object of this schema version, parsed
    in one C-level pass; None when any is not (blank, damaged, not an object, another version):
    the caller then reads the lines one by one. Most blocks of a log are clean."""
    try:
        events = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        return None
    if set(map(type, events)) - {dict}:
        return None
    if list(map(dict.get, events, repeat("v"))).count(SCHEMA_VERSION) != len(events):
        return None
    return events


def _count_bad(st: ReadStats, lineno: int) -> None:
    st.lines_bad += 1
    if st.first_bad_line is None:
        st.first_bad_line = lineno


def iter_events(path: str | os.PathLike[str], stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Yield each complete event of the log in order; fill `stats` (if given) as it goes.

    A last line without a trailing newline is treated as torn even if it happens to parse: the
    writer always ends a line with its newline in the same write, so only a complete line is an
    event (the crash-safety contract: the report counts exactly the complete lines). Blank lines
    are ignored.
    """
    for batch in iter_event_batches(path, stats):
        yield from batch


def iter_event_batches(
    path: str | os.PathLike[str], stats: ReadStats | None = None, *, start: int = 0, end: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """`iter_events` a block at a time (lists of events, in order): for a caller that folds a whole
    log, one step per block instead of one per event.

    `start` and `end` read one stretch of the log (report/split.py): `start` at the beginning of a
    line, `end` (None: the end of the file) just after a newline. Lines are numbered from the
    stretch's start, and a stretch that stops before the end leaves its last bad line open
    (`ReadStats.open_bad_line`) for `ReadStats.merge` to decide."""
    st = stats if stats is not None else ReadStats()
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    lineno = 0
    n_ok = 0  # kept in a local on the hot path, stored into `st` after each block
    pending_bad: int | None = None  # a bad line is only "bad" once we know it is not the last
    skipping = False  # inside an overlong line, dropping bytes until its newline
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        left = end - start if end is not None else -1  # bytes of the stretch not read yet (-1: all)
        rest = b""
        while left:
            block = fh.read(BLOCK_SIZE if left < 0 else min(BLOCK_SIZE, left))
            if not block:
                break
            if left > 0:
                left -= len(block)
            st.bytes_read += len(block)
            if skipping:
                cut = block.find(b"\n")
                if cut < 0:
                    continue
                block = block[cut + 1 :]
                skipping = False
                lineno += 1
                if pending_bad is not None:
                    _count_bad(st, pending_bad)
                pending_bad = lineno
            elif rest:
                block = rest + block
            lines = block.split(b"\n")
            rest = lines.pop()  # the (possibly empty) piece after the last newline
            dirty = suspect(block)  # server text stored raw (an old log): look at its lines
            # a complete line longer than MAX_LINE_BYTES is bad too, wherever the reads fell
            overlong = len(block) > MAX_LINE_BYTES
            if len(rest) > MAX_LINE_BYTES:
                rest = b""
                skipping = True
            # A batch is a few hundred lines: its events are folded while they are still in the
            # CPU's cache (a whole block's would not be: the fold then runs at half speed). The
            # aggregate hands a batch to each fold in turn (RunAggregate._flush): 256 lines folded
            # the sensors log of bench/report_1m.py faster than 64 or 1024 did.
            for lo in range(0, len(lines), BATCH_LINES):
                chunk = lines[lo : lo + BATCH_LINES]
                clean = None if dirty or overlong else parse_clean(chunk)
                if clean is not None:
                    lineno += len(chunk)
                    if pending_bad is not None:
                        _count_bad(st, pending_bad)
                        pending_bad = None
                    n_ok += len(clean)
                    yield clean
                    continue
                out: list[dict[str, Any]] = []
                append = out.append
                for line in chunk:
                    lineno += 1
                    try:
                        if overlong and len(line) > MAX_LINE_BYTES:
                            raise decode_error("overlong", "", 0)
                        ev = loads(line)
                    except decode_error:
                        if not line.strip() and len(line) <= MAX_LINE_BYTES:
                            continue  # blank line (an overlong one is bad, as when its reads split it)
                        if pending_bad is not None:
                            _count_bad(st, pending_bad)
                        pending_bad = lineno
                        continue
                    if pending_bad is not None:
                        _count_bad(st, pending_bad)
                        pending_bad = None
                    if type(ev) is dict:
                        n_ok += 1
                        if ev.get("v") != SCHEMA_VERSION:
                            st.note_version(ev)
                        append(from_log(line, ev) if dirty else ev)
                    else:
                        pending_bad = lineno
                yield out
            st.lines_ok = n_ok
    st.lines = lineno
    if end is not None and left == 0:  # a stretch that stops before the end of the log
        st.open_bad_line = pending_bad
        return
    if skipping or rest.strip():
        # An unterminated last line: torn by a crash mid-write. A bad line just before it is a
        # genuine bad middle line.
        if pending_bad is not None:
            _count_bad(st, pending_bad)
        st.torn_tail = True
    elif pending_bad is not None:
        # The last complete line does not parse: the file ends in damage (e.g. a partly
        # flushed block after a power loss). Treat it as the torn tail, not a middle error.
        st.torn_tail = True


def read_all(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], ReadStats]:
    """Every event in memory, for small logs and tests. Large logs: use `iter_events`."""
    st = ReadStats()
    return list(iter_events(path, st)), st


__all__ = [
    "BLOCK_SIZE",
    "ReadStats",
    "iter_event_batches",
    "iter_events",
    "newer_schema_warning",
    "parse_clean",
    "read_all",
]
