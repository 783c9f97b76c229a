"""The append-only `events.jsonl` writer: the run's truth, written first and kept safe.

Each event is one `write()` system call of one complete line on an unbuffered file opened for
append, so a crash (even SIGKILL) loses at most the line being written, which readers skip as a
torn tail. `fsync` runs on a small background thread at least every second and once at the end:
it can take milliseconds on a busy disk, and the engine's loop must not stall while it times a
stream. A write error (a full disk) is raised to the event bus, which detaches the sink and lets
the engine stop the run with one clear message; nothing already written is touched.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from soaktui.log.events import Event


class JsonlWriter:
    """Sink that appends events to a JSONL file and fsyncs it in the background."""

    def __init__(self, path: Path, *, fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._interval = fsync_interval_s
        self._lock = threading.Lock()  # fsync vs close
        self.lines_written = 0
        self.fsync_errors = 0
        self._thread = threading.Thread(target=self._sync_loop, name="soaktui-fsync", daemon=True)
        self._thread.start()

    def handle(self, event: Event) -> None:
        line = orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
        view = memoryview(line)
        while view:  # os.write may write less than asked (rare, e.g. a signal); finish the line
            n = os.write(self._fd, view)
            view = view[n:]
        self.lines_written += 1
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
                self._stop.wait(self._interval)  # at most one fsync per interval

    def close(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._thread.join(timeout=5)
        self.sync()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
