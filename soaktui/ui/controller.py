"""Send the viewer's keys to the engine over the run's control socket, one at a time, off the UI loop.

`send_command` is blocking (a Unix socket, up to its timeout), so it never runs on Textual's event
loop: the viewer runs `Controller.run` in a thread worker. Commands go through one bounded queue and
one connection attempt at a time, so replies arrive in the order the keys were pressed and a burst
of `+` presses cannot race. When nothing is queued the controller sends `status` now and then: the
reply says whether a live engine still listens (the viewer is read-only once it does not).

Textual-free: the viewer passes `on_reply`, which posts a message to the app.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soaktui.engine.control import ControlError, send_command

QUEUE_SIZE = 32  # keys pressed faster than the engine answers beyond this are refused, not queued forever
PROBE_INTERVAL_S = 1.0  # the now line's silence comes from the engine: read it every second
RETRY_S = 2.0  # probe interval while no engine answers
TIMEOUT_S = 5.0

Sender = Callable[..., dict[str, Any]]
_IDLE = object()  # the queue stayed empty for a while


@dataclass
class Reply:
    """What came back for one command: the engine's answer, or why nothing answered."""

    command: str
    arg: Any
    ok: bool
    message: str
    state: dict[str, Any] = field(default_factory=dict)
    reachable: bool = True  # False: no engine listens (ControlError)
    probe: bool = False  # a background status probe, not a key
    received_t: float = 0.0  # wall clock when the answer arrived

    @property
    def label(self) -> str:
        return self.command if self.arg is None else f"{self.command} {self.arg}"


class Controller:
    """A queue of commands for the run in `run_dir`, drained by `run()` on a worker thread."""

    def __init__(
        self,
        run_dir: Path,
        on_reply: Callable[[Reply], None],
        *,
        sender: Sender = send_command,
        timeout_s: float = TIMEOUT_S,
        probe_interval_s: float | None = PROBE_INTERVAL_S,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.on_reply = on_reply
        self.sender = sender
        self.timeout_s = timeout_s
        self.probe_interval_s = probe_interval_s
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=QUEUE_SIZE)

    def submit(self, command: str, arg: Any = None) -> bool:
        """Queue a command; False when the queue is full (the engine is not answering)."""
        try:
            self._queue.put_nowait((command, arg))
        except queue.Full:
            return False
        return True

    def wake(self) -> None:
        """Make `run()` look at its stop event now (used on exit)."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def send(self, command: str, arg: Any = None, *, probe: bool = False) -> Reply:
        """Send one command now (blocking) and return the reply."""
        try:
            r = self.sender(self.run_dir, command, arg, timeout_s=self.timeout_s)
        except ControlError as exc:
            return Reply(command, arg, False, str(exc), {}, False, probe, time.time())
        state = r.get("state")
        return Reply(
            command,
            arg,
            bool(r.get("ok")),
            str(r.get("message") or ""),
            state if isinstance(state, dict) else {},
            True,
            probe,
            time.time(),
        )

    def run(self, stop: threading.Event) -> None:
        """Drain the queue until `stop` is set; probe with `status` when idle.

        Probes come every probe_interval_s while an engine answers, and every RETRY_S while none
        does (an engine still starting up has no socket yet; a failed connect costs nothing).
        """
        reply = self.send("status", probe=True)
        self.on_reply(reply)
        reachable = reply.reachable
        last = time.monotonic()
        while not stop.is_set():
            interval = self.probe_interval_s
            if interval is not None and not reachable:
                interval = min(interval, RETRY_S)
            wait = 0.5 if interval is None else min(0.5, max(0.0, last + interval - time.monotonic()))
            item: Any
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = _IDLE
            if stop.is_set():
                return
            if item is None:
                continue
            if item is _IDLE:
                if interval is None or time.monotonic() - last < interval:
                    continue
                reply = self.send("status", probe=True)
            else:
                command, arg = item
                reply = self.send(command, arg)
            self.on_reply(reply)
            reachable = reply.reachable
            last = time.monotonic()


__all__ = ["PROBE_INTERVAL_S", "Controller", "Reply"]
