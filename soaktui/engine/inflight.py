"""What is in flight now: the test the engine runs, and how long its requests have been silent.

The log says when a request ends, never while it hangs, so a frozen stream is invisible there until
the read timeout (a dashboard showed a green "running" through a 100-second freeze). The engine's
clients keep the requests on the wire (`ChatClient.in_flight`, each with the stamp of its newest
body bytes); this module reads them:

- `now()` is the `now` field of the engine's status (the dashboard's now line, `ctl status`): the
  test, its elapsed time, and the longest silence of its streamed requests;
- `check()` runs once a second and emits one `stream_silent` event when a streamed request has
  been silent for `thresholds.stall_s` (the headless output prints it), once per silence: a new byte
  followed by a new silence is a new event.

Silence counts from the newest byte, or from when the request went on the wire while nothing has
come back yet (a cold load or a long prompt looks the same from outside, and is said as "no byte
yet"). A whole (non-streamed) answer is silent by design until it is complete: it is reported as a
wait, never as a silence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from soaktui.log import events as ev
from soaktui.providers.client import ChatClient
from soaktui.providers.result import RequestResult


def _since_ns(r: RequestResult) -> int | None:
    """When this request last showed life: its newest byte, else when it went out."""
    return r.last_byte_ns or r.sent_ns or r.submit_ns


class InFlight:
    """The engine's test in flight and its requests, read from the clients; one per engine."""

    def __init__(self, clients: Mapping[str, ChatClient], stall_s: float) -> None:
        self.clients = clients
        self.stall_s = stall_s
        self._test: dict[str, Any] | None = None  # tags of the test in flight
        self._started_ns = 0
        self._told: dict[int, int | None] = {}  # id(result) -> the last byte its silence was told from

    def begin(self, tags: dict[str, Any]) -> None:
        """A test starts (its `test_started` tags)."""
        self._test = dict(tags)
        self._started_ns = time.perf_counter_ns()

    def end(self) -> None:
        self._test = None
        self._told.clear()

    def _requests(self) -> list[RequestResult]:
        return [r for c in self.clients.values() for r in c.in_flight.values()]

    def now(self, now_ns: int | None = None) -> dict[str, Any] | None:
        """The test in flight and its longest silence (None between tests)."""
        if self._test is None:
            return None
        t = time.perf_counter_ns() if now_ns is None else now_ns
        silent_s: float | None = None
        no_byte_yet = False
        whole_s: float | None = None
        reqs = self._requests()
        for r in reqs:
            since = _since_ns(r)
            if since is None:
                continue
            gap = max(0.0, (t - since) / 1e9)
            if not r.stream:
                whole_s = gap if whole_s is None else max(whole_s, gap)
            elif silent_s is None or gap > silent_s:
                silent_s, no_byte_yet = gap, r.first_byte_ns is None
        return {
            **self._test,
            "elapsed_s": round((t - self._started_ns) / 1e9, 3),
            "requests": len(reqs),
            "silent_s": None if silent_s is None else round(silent_s, 3),
            "no_byte_yet": no_byte_yet,
            "whole_wait_s": None if whole_s is None else round(whole_s, 3),
            "stall_s": self.stall_s,
        }

    def check(self, emit: Callable[..., Any], now_ns: int | None = None) -> int:
        """Emit `stream_silent` for each streamed request newly silent for stall_s; returns how many."""
        if self._test is None:
            return 0
        t = time.perf_counter_ns() if now_ns is None else now_ns
        told = 0
        alive: dict[int, int | None] = {}
        for r in self._requests():
            key = id(r)
            if key in self._told:
                alive[key] = self._told[key]
            since = _since_ns(r)
            if not r.stream or since is None:
                continue
            gap = (t - since) / 1e9
            if gap < self.stall_s or (key in self._told and self._told[key] == r.last_byte_ns):
                continue
            alive[key] = r.last_byte_ns
            told += 1
            emit(
                ev.STREAM_SILENT,
                **self._test,
                request_model=r.model,
                silent_s=round(gap, 3),
                stall_s=self.stall_s,
                no_byte_yet=r.first_byte_ns is None,
                output_chunks=len(r.token_ns),
            )
        self._told = alive  # finished requests are forgotten
        return told
