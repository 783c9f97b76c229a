"""`test_summary.json`: a periodic, atomically replaced digest of a running soak.

People `cat` this file during a run (and the original script crashed writing it), so it comes
from the same reducer as the final report (a RunAggregate fed every event, in its bounded live mode:
percentiles within 1% of the report's) and is replaced in one step: a temporary file in the run directory, fsync, `os.replace`. A write error (a full disk)
propagates out of `handle()` so the event bus detaches this sink and reports it once; the previous
summary stays whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from soaktui.log import rundir
from soaktui.log.events import Event
from soaktui.report.aggregate import RunAggregate
from soaktui.report.atomic import atomic_write_bytes
from soaktui.stats import Describe


def _trim_stat(d: Describe) -> dict[str, Any]:
    return {"n": d["n"], "mean": d["mean"], "p50": d["p50"], "p95": d["p95"]}


def trimmed_summary(agg: RunAggregate, *, now: float | None = None) -> dict[str, Any]:
    """The content of test_summary.json: a trimmed report snapshot with a timestamp."""
    snap = agg.snapshot()
    totals = snap["totals"]
    per_model = {
        key: {
            "tests": m["tests"],
            "ok_tests": m["ok_tests"],
            "success": m["success"],
            "requests_ok": m["requests_ok"],
            "requests_failed": m["requests_failed"],
            "e2e_ms": _trim_stat(m["e2e_ms"]),
            "ttft_ms": _trim_stat(m["ttft_ms"]),
            "itl_p50_ms": _trim_stat(m["itl_p50_ms"]),
            "gen_tps": _trim_stat(m["gen_tps"]),
            "errors": m["errors"],
        }
        for key, m in snap["models"].items()
    }
    per_scenario = {
        name: {
            "tests": s["tests"],
            "ok_tests": s["ok_tests"],
            "success": s["success"],
            "requests_ok": s["requests_ok"],
            "requests_failed": s["requests_failed"],
            "e2e_ms": _trim_stat(s["e2e_ms"]),
            "failure_reasons": s["failure_reasons"],
        }
        for name, s in snap["scenarios"].items()
    }
    wall = time.time() if now is None else now
    return {
        "generated_at": datetime.fromtimestamp(wall, tz=timezone.utc)
        .astimezone()
        .isoformat(timespec="seconds"),
        "run_id": snap["run"]["run_id"],
        "elapsed_s": agg.elapsed_s(),
        "finished": snap["run"]["finished"],
        "tests": totals["tests"],
        "ok_tests": totals["ok_tests"],
        "success": totals["success"],
        "requests": totals["requests"],
        "requests_failed": totals["requests_failed"],
        "per_model": per_model,
        "per_scenario": per_scenario,
        "errors_by_class": {
            cls: {"requests": r["requests"], "tests": r["tests"]}
            for cls, r in snap["errors"]["by_class"].items()
        },
        "definitions": {
            k: snap["definitions"][k] for k in ("e2e_ms", "ttft_ms", "itl_p50_ms", "gen_tps", "success")
        },
    }


class SummarySink:
    """Event sink that keeps a RunAggregate and rewrites test_summary.json every `interval_s`."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        interval_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(run_dir) / rundir.SUMMARY
        self.interval_s = interval_s
        self._clock = clock
        self._last_write = clock()
        # bounded (sketches): the engine keeps this aggregate for the whole run, and the digest's
        # percentiles may differ from the report's by sketch.ALPHA (1%); the final report is rebuilt
        # exactly from events.jsonl (engine/launch.py, report/build.py)
        self.aggregate = RunAggregate(exact=False)
        self.writes = 0

    def handle(self, event: Event) -> None:
        self.aggregate.feed(event)
        if self._clock() - self._last_write >= self.interval_s:
            self.flush()

    def flush(self) -> Path:
        """Write the summary now (atomically). Raises OSError on failure; the old file stays whole."""
        # Whatever happens, wait a full interval before the next attempt: a failing disk must not
        # turn every event into a snapshot-and-write.
        self._last_write = self._clock()
        data = orjson.dumps(
            trimmed_summary(self.aggregate), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        )
        atomic_write_bytes(self.path, data + b"\n")
        self.writes += 1
        return self.path

    def close(self) -> None:
        self.flush()
