"""Provider outages: stop testing a server that is down, probe it with backoff, say when it is back.

Without this, a refused connection fails a test in about a millisecond and the duty cycle's idle
is proportional to the work, so the engine spun: a 20-second outage gave thousands of instant
`connection_refused` requests, a night-long one gigabytes of events that drowned the real figures.

A provider is **down** after a test in which every request it got failed the way an unavailable
server fails: refused or timed-out connections, or a connection dropped before any byte. A server
that answers with an HTTP 5xx status is alive, and may fail only some requests (a model error, a
503 while a model loads), so 5xx answers make it down only after SERVER_ERROR_TESTS tests in a row
failed that way. One `provider_down` event says so (with the failure that showed it). No test runs on
its models while it is down (the engine moves to a model of a provider that is up, or waits);
instead it is probed with one tiny chat request (the same kind a test sends, so a server that
accepts connections but fails every request stays down), after a delay that doubles from
BACKOFF_START_S to BACKOFF_MAX_S with jitter (each delay drawn uniformly from its upper half, so
several soaktui runs against one server do not probe in step). The first probe that gets an
answer ends the outage with one `provider_up` event: the downtime and how many probes failed.
Probes are not `request` events, so an outage of any length costs two events plus nothing else.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from soaktui import errors

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 60.0
PROBE_TOKENS = 4
PROBE_TIMEOUT_S = 30.0
PROBE = [{"role": "user", "content": "Reply with the single word: ready"}]

SERVER_ERROR_TESTS = 3  # tests in a row whose every request got a 5xx before the provider is down

_DOWN_CLASSES = frozenset({errors.CONNECTION_REFUSED, errors.CONNECT_TIMEOUT})


def _unreachable(e: dict[str, Any]) -> bool:
    """Nothing answered at all (as opposed to an HTTP error status)."""
    return e.get("error_class") != errors.HTTP_STATUS


def looks_down(e: dict[str, Any]) -> bool:
    """True when a failed `request` event looks like an unavailable server, not a model's answer."""
    cls = e.get("error_class")
    if cls in _DOWN_CLASSES:
        return True
    if cls == errors.CONNECTION_DROPPED:
        return e.get("first_byte_ms") is None  # dropped before answering
    status = e.get("http_status")
    return cls == errors.HTTP_STATUS and isinstance(status, int) and status >= 500


@dataclass
class Outage:
    provider: str
    since_t: float  # wall clock of provider_down
    since_mono: float
    delay_s: float = BACKOFF_START_S
    next_probe_mono: float = 0.0
    probes: int = 0
    last_error: str | None = None


@dataclass
class _Tally:
    ok: int = 0
    down: int = 0
    unreachable: int = 0  # of `down`: nothing answered (not a 5xx status)
    other: int = 0
    last: dict[str, Any] = field(default_factory=dict)


class Outages:
    """Per-provider health from the requests of each test, and the backoff of the down ones."""

    def __init__(self, rng: random.Random, clock: Any = time.monotonic, wall: Any = time.time) -> None:
        self._rng = rng
        self._clock = clock
        self._wall = wall
        self._tally: dict[str, _Tally] = {}
        self._streak: dict[str, int] = {}  # tests in a row whose every request failed as if down
        self.down: dict[str, Outage] = {}

    def observe(self, e: dict[str, Any]) -> None:
        """One `request` event of the test in flight."""
        t = self._tally.setdefault(str(e.get("provider")), _Tally())
        if e.get("ok"):
            t.ok += 1
        elif e.get("error_class") == errors.CANCELLED:
            return
        elif looks_down(e):
            t.down += 1
            t.unreachable += _unreachable(e)
            t.last = e
        else:
            t.other += 1

    def test_done(self) -> list[dict[str, Any]]:
        """The `provider_down` events this test shows (fields), and forget its tallies."""
        found = []
        for name, t in self._tally.items():
            if not (t.down and not t.ok and not t.other):
                self._streak.pop(name, None)
                continue
            streak = self._streak[name] = self._streak.get(name, 0) + 1
            if name not in self.down and (t.unreachable or streak >= SERVER_ERROR_TESTS):
                del self._streak[name]
                o = self.down[name] = Outage(name, self._wall(), self._clock())
                self._schedule(o)
                found.append(
                    {
                        "provider": name,
                        "error_class": t.last.get("error_class"),
                        "http_status": t.last.get("http_status"),
                        "message": t.last.get("error"),
                        "failed_requests": t.down,
                        "next_probe_s": round(o.delay_s, 3),
                    }
                )
        self._tally.clear()
        return found

    def _schedule(self, o: Outage) -> None:
        wait = self._rng.uniform(o.delay_s / 2, o.delay_s)
        o.next_probe_mono = self._clock() + wait
        o.delay_s = min(BACKOFF_MAX_S, o.delay_s * 2)

    def is_down(self, provider: str) -> bool:
        return provider in self.down

    def all_down(self, providers: Iterable[str]) -> bool:
        """True when every one of `providers` is down (the engine then waits for a probe)."""
        return bool(self.down) and all(p in self.down for p in providers)

    def due(self) -> list[Outage]:
        """The down providers whose next probe is due now."""
        now = self._clock()
        return [o for o in self.down.values() if o.next_probe_mono <= now]

    def seconds_to_next_probe(self) -> float | None:
        if not self.down:
            return None
        return max(0.0, min(o.next_probe_mono for o in self.down.values()) - self._clock())

    def probe_result(self, provider: str, ok: bool, error: str | None) -> dict[str, Any] | None:
        """Record a probe; the `provider_up` event fields when it answered, else None (and back off)."""
        o = self.down.get(provider)
        if o is None:
            return None
        if not ok:
            o.probes += 1
            o.last_error = error
            self._schedule(o)
            return None
        del self.down[provider]
        return {
            "provider": provider,
            "downtime_s": round(self._clock() - o.since_mono, 3),
            "down_since_t": o.since_t,
            "failed_probes": o.probes,
            "last_error": o.last_error,
        }

    def describe(self) -> str | None:
        """Why the engine waits, for the status line (None when nothing is down)."""
        if not self.down:
            return None
        names = ", ".join(sorted(self.down))
        since = min(o.since_t for o in self.down.values())
        nxt = self.seconds_to_next_probe()
        return (
            f"{names} down since {time.strftime('%H:%M:%S', time.localtime(since))}"
            + ("" if nxt is None else f", next probe in {nxt:.0f}s")
        )
