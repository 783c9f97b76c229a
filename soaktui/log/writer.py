"""The append-only `events.jsonl` writer: the run's truth, written first and kept safe.

Each event is one `write()` system call of one complete line on an unbuffered file opened for
append, so a crash (even SIGKILL) loses at most the line being written, which readers skip as a
torn tail. `fsync` runs on a small background thread at least every second and once at the end:
it can take milliseconds on a busy disk, and the engine's loop must not stall while it times a
stream. A write error (a full disk) is raised to the event bus, which detaches the sink and lets
the engine stop the run with one clear message; nothing already written is touched.

The file must stay the one the run started: if `events.jsonl` is deleted or replaced mid-run, a
writer that kept its descriptor would go on appending to an unlinked inode and lose everything.
So the fsync thread also compares the path's device and inode with the descriptor's; on a
mismatch the next write reopens the path (a new file, or the replacement) and `on_lost` is called
with what happened, so the engine can say so in an `error` event and on every surface. `losses`
keeps the record; a run with losses never claims its log is intact.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from soaktui.log.events import Event
from soaktui.log.safefiles import open_run_file


class JsonlWriter:
    """Sink that appends events to a JSONL file and fsyncs it in the background."""

    def __init__(self, path: Path, *, fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self._fd = self._open(new=True)
        self._ident = self._identity(self._fd)
        self._lost: str | None = None  # set by the fsync thread: "deleted" | "replaced"
        self.losses: list[dict[str, Any]] = []  # each time the file was lost and reopened
        self.on_lost: Callable[[dict[str, Any]], None] | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._interval = fsync_interval_s
        self._lock = threading.Lock()  # fsync vs close
        self.lines_written = 0
        self._file_lines = 0  # lines in the file open now
        self.fsync_errors = 0
        self._thread = threading.Thread(target=self._sync_loop, name="soaktui-fsync", daemon=True)
        self._thread.start()

    def _open(self, *, new: bool) -> int:
        # A new run's log is a new file; a reopen takes a plain file of ours. A symlink or hard link
        # planted at the path is refused, never followed (log/safefiles.py).
        return open_run_file(self.path, new=new)

    @staticmethod
    def _identity(fd: int) -> tuple[int, int]:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino

    def check_identity(self) -> str | None:
        """"deleted" or "replaced" when the path no longer names the file being written, else None."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return "deleted"
        except OSError:
            return None  # cannot tell (permissions): keep writing
        return None if (st.st_dev, st.st_ino) == self._ident else "replaced"

    def _record_loss(self, why: str) -> dict[str, Any]:
        info = {"why": why, "path": str(self.path), "lines_in_lost_file": self._file_lines}
        self.losses.append(info)
        return info

    def _reopen(self, why: str) -> None:
        with self._lock:
            os.close(self._fd)
            self._fd = self._open(new=False)
            self._ident = self._identity(self._fd)
        info = self._record_loss(why)
        self._file_lines = 0
        self._lost = None
        if self.on_lost is not None:
            self.on_lost(info)

    def handle(self, event: Event) -> None:
        if self._lost is not None:
            self._reopen(self._lost)
        line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
        view = memoryview(line)
        while view:  # os.write may write less than asked (rare, e.g. a signal); finish the line
            n = os.write(self._fd, view)
            view = view[n:]
        self.lines_written += 1
        self._file_lines += 1
        self._dirty.set()

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0:
                try:
                    os.fsync(self._fd)
                except OSError:
                    self.fsync_errors += 1

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(timeout=self._interval):
                self._dirty.clear()
                self.sync()
                if self._lost is None:
                    self._lost = self.check_identity()
                self._stop.wait(self._interval)  # at most one fsync per interval

    def close(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._thread.join(timeout=5)
        self.sync()
        why = self._lost or self.check_identity()
        if why is not None:  # lost after the last write: nothing to reopen for, but never "intact"
            self._record_loss(why)
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
