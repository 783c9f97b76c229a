"""The files of a run directory, named once.

Every file a run writes is derived from `events.jsonl` (see log/events.py); this module only names
them, so the engine, the sinks, the report, the viewer and the control socket agree on where a
run's pieces are.
"""

from __future__ import annotations

from pathlib import Path

EVENTS = "events.jsonl"  # the truth: one event per line (log/writer.py)
SUMMARY = "test_summary.json"  # live summary, rewritten every output.summary_interval (sinks/summary.py)
REPORT_MD = "final_report.md"  # the report (report/build.py)
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"  # the same report as one offline page with charts (report/html.py)
CONTROL_SOCKET = "control.sock"  # commands to the engine (engine/control.py)
CONTROL_POINTER = "control.path"  # where the socket is when the run directory's path is too long for one
TEXT_LOGS = (  # the human-readable logs people `tail -f` (sinks/textlogs.py)
    "main_test.log",
    "performance_metrics.log",
    "model_profiling.log",
    "tool_calling.log",
    "integration_events.log",
    "errors.log",
)


def holds_run(out: Path) -> str | None:
    """Why `out` cannot take a new run (it already holds one), or None: one rule for the engine
    and for the dashboard, which must not start a viewer on the old run."""
    if (Path(out) / EVENTS).exists():
        return f"--out {out} already holds a run ({EVENTS}); choose a new directory"
    return None
