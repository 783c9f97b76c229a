"""Follow a run's `events.jsonl` as it grows, reading every byte exactly once.

The viewer attaches to logs of any size (a million lines after a long soak) and then keeps up with
a live run, so it never re-reads: it keeps a byte offset and the incomplete piece after the last
newline. A line the writer has only half written (a torn line) stays in that remainder until its
newline arrives; a complete line that is not a JSON object is counted and skipped, like
`soaktui report` does. Memory is bounded by the read size plus one line (capped: a "line" longer
than MAX_LINE_BYTES is dropped up to its newline).

If the path comes to name another file (events.jsonl deleted or replaced mid-run: the engine's
writer then reopens it, see writer.py), the follower finishes the old file and goes on with the
new one from its start, so a viewer sees the engine's `log_lost` error and what follows.

Events are neutralised as the reader's are (textsafe.from_log): the viewer never sees raw server
text, even from a log written before the engine sanitised it.

Textual-free on purpose: the viewer's thread worker drives it, and the tests drive it directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from soaktui.log.events import SCHEMA_VERSION
from soaktui.log.reader import MAX_LINE_BYTES, ReadStats, parse_clean
from soaktui.log.textsafe import from_log, suspect

READ_BYTES = 1 << 20  # one read: ~2,000-5,000 events, a few ms of parsing


@dataclass
class FollowStats(ReadStats):
    """What the follower has seen so far: ReadStats' fields, except that `torn_tail` means an
    incomplete last line is waiting for its newline right now."""


class LogFollower:
    """Incremental reader of one events.jsonl; `read()` returns the events completed since last call."""

    def __init__(self, path: str | os.PathLike[str], *, read_bytes: int = READ_BYTES) -> None:
        self.path = Path(path)
        self.read_bytes = read_bytes
        self.offset = 0  # bytes consumed from the file (complete lines + the remainder)
        self.stats = FollowStats()
        self._fh: IO[bytes] | None = None
        self._rest = b""
        self._skipping = False  # inside an overlong line: drop bytes until its newline
        self._lineno = 0
        self.switches = 0  # times the path came to name a new file and reading moved to it

    @property
    def exists(self) -> bool:
        return self._fh is not None or self.path.is_file()

    def size(self) -> int | None:
        """The file's current size in bytes (None before it exists)."""
        try:
            if self._fh is not None:
                return os.fstat(self._fh.fileno()).st_size
            return self.path.stat().st_size
        except OSError:
            return None

    def at_end(self) -> bool:
        size = self.size()
        return size is None or self.offset >= size

    def _open(self) -> bool:
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb", buffering=0)
            except FileNotFoundError:
                return False
            self._fh.seek(self.offset)
        return True

    def read(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """Parse up to `max_bytes` (default: read_bytes) of new data; [] when nothing new is complete."""
        if not self._open():
            return []
        assert self._fh is not None
        block = self._fh.read(max_bytes or self.read_bytes)
        if not block:
            if self._replaced():
                self._fh.close()
                self._fh, self.offset, self._rest, self._skipping = None, 0, b"", False
                self.switches += 1
            return []
        self.offset += len(block)
        st = self.stats
        st.bytes_read += len(block)
        if self._skipping:
            cut = block.find(b"\n")
            if cut < 0:
                return []
            block = block[cut + 1 :]
            self._skipping = False
            self._bad(self._next_line())
        elif self._rest:
            block = self._rest + block
        lines = block.split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE_BYTES:
            rest = b""
            self._skipping = True
        self._rest = rest
        st.torn_tail = bool(rest.strip()) or self._skipping
        dirty = suspect(block)  # server text stored raw (an old log): look at its lines
        clean = None if dirty else parse_clean(lines)
        if clean is not None:  # the usual block: every line an event, parsed in one pass
            self._lineno += len(lines)
            st.lines_ok += len(clean)
            return clean
        out: list[dict[str, Any]] = []
        append = out.append
        loads = orjson.loads
        for line in lines:
            n = self._next_line()
            if not line.strip():
                continue
            try:
                ev = loads(line)
            except orjson.JSONDecodeError:
                self._bad(n)
                continue
            if type(ev) is dict:
                if ev.get("v") != SCHEMA_VERSION:
                    st.note_version(ev)
                append(from_log(line, ev) if dirty else ev)
            else:
                self._bad(n)
        st.lines_ok += len(out)
        return out

    def _replaced(self) -> bool:
        """The path now names a different file than the one being read (not merely deleted)."""
        assert self._fh is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(self._fh.fileno())
        return (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino)

    def _next_line(self) -> int:
        self._lineno += 1
        return self._lineno

    def _bad(self, lineno: int) -> None:
        self.stats.lines_bad += 1
        if self.stats.first_bad_line is None:
            self.stats.first_bad_line = lineno

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            finally:
                self._fh = None


__all__ = ["READ_BYTES", "FollowStats", "LogFollower"]
