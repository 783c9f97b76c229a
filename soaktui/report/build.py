"""`soaktui report RUN_DIR`: rebuild the report of a run from its `events.jsonl` alone.

The end of a run and the CLI both come through here, so the files written are the same either way.
"""

from __future__ import annotations

import os
from pathlib import Path

from soaktui.log import rundir
from soaktui.log.reader import ReadStats
from soaktui.report.atomic import atomic_write_bytes
from soaktui.report.html import render_html
from soaktui.report.jsonout import render_json
from soaktui.report.markdown import render_markdown
from soaktui.report.snapshot import Snapshot, log_stats
from soaktui.report.split import fold_log


def build_report(run_dir: str | os.PathLike[str]) -> tuple[Snapshot, ReadStats]:
    """Fold `run_dir/events.jsonl` into a snapshot; the read statistics go into snapshot["log"] too.

    Raises FileNotFoundError when the run directory has no event log.
    """
    stats = ReadStats()
    agg = fold_log(Path(run_dir) / rundir.EVENTS, stats)  # in two processes when the log is long
    snap = agg.snapshot()
    snap["log"] = log_stats(stats)
    return snap, stats


FORMATS = ("md", "json", "html")


def write_report_files(
    run_dir: str | os.PathLike[str], snap: Snapshot, formats: tuple[str, ...] = FORMATS
) -> list[Path]:
    """Write final_report.md, report.json and report.html for `snap` into `run_dir` (those of
    `formats`), each atomically."""
    run_dir = Path(run_dir)
    writers = {
        "md": (rundir.REPORT_MD, lambda: render_markdown(snap).encode("utf-8")),
        "json": (rundir.REPORT_JSON, lambda: render_json(snap)),
        "html": (rundir.REPORT_HTML, lambda: render_html(snap)),
    }
    return [atomic_write_bytes(run_dir / writers[f][0], writers[f][1]()) for f in FORMATS if f in formats]


def write_report(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Rebuild and write the report of `run_dir`; returns the paths written."""
    snap, _ = build_report(run_dir)
    return write_report_files(run_dir, snap)
