"""Events are the spine of a run: every observation is one event, every file and view is derived.

An event is a plain dict (cheap to build, serialises straight through orjson). The bus stamps the
common fields (`v`, `kind`, `run_id`, `seq`, `t`, `mono_ns`) and hands the event to each sink in
order; the JSONL writer is always the first sink so the log holds an event before anything derived
from it does. Before that, the fields pass through the bus's sanitiser (textsafe.py): server text
with terminal escapes or a credential in it never reaches a sink, a file or a screen. A sink that raises is reported once as an `error` event and detached, so one broken
sink (a full disk under a text log, say) never stops the run or the other sinks.

The schema is documented in docs/events.md; bump SCHEMA_VERSION on incompatible changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from soaktui.log import textsafe

SCHEMA_VERSION = 1

Event = dict[str, Any]

# Kinds the engine emits (docs/events.md describes the fields of each).
RUN_STARTED = "run_started"
PROVIDERS_DISCOVERED = "providers_discovered"
MODEL_SWITCHED = "model_switched"
REQUEST = "request"
SCENARIO_RESULT = "scenario_result"
TEST_STARTED = "test_started"  # a test begins: what is in flight, for live views
STREAM_SILENT = "stream_silent"  # a streamed request in flight has been silent for stall_s
PROVIDER_DOWN = "provider_down"  # every request a test sent a provider failed as if it were down
PROVIDER_UP = "provider_up"  # a probe of a down provider was answered: the outage is over
MODEL_CONTEXT = "model_context"  # the server told the context a loaded model really runs with
THROTTLE_CHANGED = "throttle_changed"
QUIET_HOURS_CHANGED = "quiet_hours_changed"
PAUSED = "paused"
RESUMED = "resumed"
MODEL_SKIPPED = "model_skipped"
COMMAND = "command"
STATUS = "status"
TELEMETRY = "telemetry"
TOOL_CALL = "tool_call"  # one tool-calling attempt, scored (tool_calling scenario)
THERMAL_GUARD = "thermal_guard"  # the thermal guard changed the engine's pace
ERROR = "error"
RUN_FINISHED = "run_finished"

# `request.token_source` values: where the output token count came from. A `usage` with impossible
# counts is not believed, and the source then says why: "chunks (usage rejected: why)", or
# "unknown (usage rejected: why)" on a whole answer (providers/result.py judges the counts).
SOURCE_USAGE = "usage"
SOURCE_CHUNKS = "chunks"
SOURCE_UNKNOWN = "unknown"
USAGE_REJECTED = "usage rejected"


def token_source_kind(source: object) -> str:
    """SOURCE_USAGE, SOURCE_CHUNKS or SOURCE_UNKNOWN for a `token_source` value (None: unknown)."""
    head = source.split(" ", 1)[0] if isinstance(source, str) else None
    return head if head in (SOURCE_USAGE, SOURCE_CHUNKS) else SOURCE_UNKNOWN


def usage_was_rejected(source: object) -> bool:
    """True when a `token_source` says the server's usage was not believed."""
    return isinstance(source, str) and f"({USAGE_REJECTED}:" in source


class Sink(Protocol):
    """Anything that consumes events. `handle` must be quick: it runs on the engine's loop."""

    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...


class EventBus:
    """Stamps events and fans them out to sinks, in order, synchronously."""

    def __init__(
        self,
        run_id: str,
        *,
        wall_clock: Callable[[], float] = time.time,
        mono_clock: Callable[[], int] = time.perf_counter_ns,
        on_sink_failure: Callable[[Sink, BaseException], None] | None = None,
        sanitise: Callable[[Any], Any] = textsafe.neutralise,
    ) -> None:
        self.run_id = run_id
        self._seq = 0
        self._wall = wall_clock
        self._mono = mono_clock
        self._sinks: list[Sink] = []
        self.on_sink_failure = on_sink_failure
        self.sanitise = sanitise  # the engine's knows the API key (launch.py)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(self._sinks)

    def emit(self, kind: str, **fields: Any) -> Event:
        self._seq += 1
        event: Event = {
            "v": SCHEMA_VERSION,
            "kind": kind,
            "run_id": self.run_id,
            "seq": self._seq,
            "t": round(self._wall(), 6),
            "mono_ns": self._mono(),
        }
        event.update(self.sanitise(fields))
        failed: list[tuple[Sink, BaseException]] = []
        for sink in self._sinks:
            try:
                sink.handle(event)
            except Exception as exc:  # a sink must never take the run down
                failed.append((sink, exc))
        for sink, err in failed:
            self._detach(sink, err)
        return event

    def _detach(self, sink: Sink, exc: BaseException) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        if self.on_sink_failure is not None:
            self.on_sink_failure(sink, exc)
        self.emit(
            ERROR,
            error_class="sink_failed",
            where=type(sink).__name__,
            message=f"{type(sink).__name__} stopped: {type(exc).__name__}: {exc}",
        )

    def close(self) -> None:
        for sink in list(self._sinks):
            try:
                sink.close()
            except Exception as exc:
                if self.on_sink_failure is not None:
                    self.on_sink_failure(sink, exc)
        self._sinks.clear()
