"""The report: fold a run's events into figures (aggregate), render them (markdown, jsonout).

`soaktui report`, the end of a run, `test_summary.json` and the dashboard share these reducers.
"""

from __future__ import annotations

from soaktui.report.aggregate import RunAggregate, fold
from soaktui.report.build import build_report, write_report, write_report_files
from soaktui.report.jsonout import render_json
from soaktui.report.markdown import render_markdown

__all__ = [
    "RunAggregate",
    "build_report",
    "fold",
    "render_json",
    "render_markdown",
    "write_report",
    "write_report_files",
]
