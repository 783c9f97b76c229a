"""Headless output: concise progress on stderr, and `--json` events on stdout for jq.

stderr gets one line per finished test, model switches, errors, a stream silent for stall_s
(while it hangs, not only when it times out), a provider going down and coming back, and the
once-a-minute status line, each starting with the local clock time (HH:MM:SS), so `nohup.out` read in the morning and
`tail -f` say when things happened; models go by the report's short names. stdout stays clean for
`--json`, which writes every event as one JSON line (flushed, so `soaktui --no-ui --json | jq`
sees events as they happen). A closed pipe (jq exited) detaches the sink through the event bus;
the run goes on.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Any

import orjson

from soaktui.log import events as ev
from soaktui.report.names import short_names
from soaktui.sinks.textlogs import (
    describe_outage,
    describe_silence,
    describe_status,
    describe_switch,
    describe_test,
)


def stamped(text: str, t: float | None = None) -> str:
    """`text` with the local clock time of `t` (default now) in front of each of its lines."""
    clock = time.strftime("%H:%M:%S", time.localtime(t))
    return "\n".join(f"{clock} {line}" for line in text.split("\n"))


_STAMP = re.compile(r"\d\d:\d\d:\d\d ")


def unstamped(line: str) -> str:
    """`line` without the clock time `stamped` put in front (for code that reads a run's stderr)."""
    return line[9:] if _STAMP.match(line) else line


def say(text: str, t: float | None = None, stream: IO[str] | None = None) -> None:
    """Write `text` to stderr (or `stream`) time-stamped: every line of a headless run goes through here."""
    out = stream or sys.stderr
    try:
        out.write(stamped(text, t) + "\n")
        out.flush()
    except (OSError, ValueError):  # the terminal hung up (EIO) or stderr is closed: the run goes on
        pass


class ProgressPrinter:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._out = stream
        self._names: dict[str, str] = {}  # model key -> short name, over the run's selected models

    def handle(self, e: dict[str, Any]) -> None:
        kind = e["kind"]
        text: str | None = None
        if kind == ev.PROVIDERS_DISCOVERED:
            self._names = short_names(e.get("selected") or [])
        elif kind == ev.SCENARIO_RESULT:
            text = describe_test(e, self._names)
        elif kind == ev.STATUS:
            text = "status: " + describe_status(e, self._names)
        elif kind == ev.MODEL_SWITCHED:
            text = describe_switch(e, self._names)
        elif kind in (ev.PROVIDER_DOWN, ev.PROVIDER_UP):
            text = describe_outage(e)
        elif kind == ev.STREAM_SILENT:
            text = describe_silence(e, self._names)
        elif kind == ev.ERROR:
            text = f"error [{e.get('where')}]: {e.get('message')}"
        elif kind in (ev.THROTTLE_CHANGED, ev.PAUSED, ev.RESUMED, ev.QUIET_HOURS_CHANGED):
            detail = {k: e[k] for k in ("pct", "effective_pct", "enabled", "source") if k in e}
            text = f"{kind} {detail}"
        elif kind == ev.THERMAL_GUARD:
            cap = e.get("cap_pct")
            pace = "" if cap is None else f", duty capped at {cap}%"
            text = f"thermal guard: {e.get('previous')} -> {e.get('state')} ({e.get('reason')}{pace})"
        if text is not None:
            say(text, e.get("t"), self._out)

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
