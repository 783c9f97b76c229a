"""A simulator on its own event loop in a daemon thread, inside the caller's process (the tests).

`soaktui simulate` serves in the foreground and `--demo` starts it in a child process
(launcher.py); a test wants one in its own process instead, on a free port, started and stopped in
a line. Its loop cannot be the caller's (a test's client or engine has a loop of its own, or none),
so it runs on a thread, and whatever touches the server's state (the request log, an outage) is
done on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from soaktui.simulator.server import SimConfig, SimServer


class SimHandle:
    """A simulator running on its own event loop in a daemon thread."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = SimServer(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, port), name="soaktui-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start(host, port))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self.server.stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def requests_log(self, last: int | None = None) -> list[dict[str, Any]]:
        """A copy of the request log, taken on the simulator's own thread."""
        return self._call(lambda: self.server.requests_log(last))

    def set_outage(self, down_for_s: float, mode: str = "503") -> None:
        self._call(lambda: self.server.set_outage(down_for_s, mode))

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(config: SimConfig | None = None, port: int = 0, host: str = "127.0.0.1") -> SimHandle:
    """Start a simulator on a daemon thread; returns once it listens. Use as a context manager."""
    return SimHandle(config or SimConfig(), host, port)
