"""Headless output: concise progress on stderr, and `--json` events on stdout for jq.

stderr gets one line per finished test, model switches, errors, a stream silent for stall_s
(while it hangs, not only when it times out), and the once-a-minute status line. stdout stays clean for `--json`, which writes every event as one JSON line (flushed, so
`soaktui --no-ui --json | jq` sees events as they happen). A closed pipe (jq exited) detaches the
sink through the event bus; the run goes on.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import orjson

from soaktui.log import events as ev
from soaktui.sinks.textlogs import describe_outage, describe_silence, describe_status, describe_test


class ProgressPrinter:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._out = stream or sys.stderr

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def handle(self, e: dict[str, Any]) -> None:
        kind = e["kind"]
        if kind == ev.SCENARIO_RESULT:
            self._line(describe_test(e))
        elif kind == ev.STATUS:
            self._line("status: " + describe_status(e))
        elif kind == ev.MODEL_SWITCHED:
            self._line(f"model -> {e['key']} ({e['reason']}, {e['planned_tests']} tests planned)")
        elif kind in (ev.PROVIDER_DOWN, ev.PROVIDER_UP):
            self._line(describe_outage(e))
        elif kind == ev.STREAM_SILENT:
            self._line(describe_silence(e))
        elif kind == ev.ERROR:
            self._line(f"error [{e.get('where')}]: {e.get('message')}")
        elif kind in (ev.THROTTLE_CHANGED, ev.PAUSED, ev.RESUMED, ev.QUIET_HOURS_CHANGED):
            detail = {k: e[k] for k in ("pct", "effective_pct", "enabled", "source") if k in e}
            self._line(f"{kind} {detail}")
        elif kind == ev.THERMAL_GUARD:
            cap = e.get("cap_pct")
            pace = "" if cap is None else f", duty capped at {cap}%"
            self._line(f"thermal guard: {e.get('previous')} -> {e.get('state')} ({e.get('reason')}{pace})")

    def close(self) -> None:
        pass


class JsonStdout:
    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._out = stream or sys.stdout.buffer

    def handle(self, e: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE))
        self._out.flush()

    def close(self) -> None:
        pass
