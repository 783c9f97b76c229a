"""A golden test of the report's head: what a user reads first, byte for byte, on a recorded run.

Regenerate after a deliberate change with SOAKTUI_TEST_UPDATE_GOLDEN=1 and read the diff before
committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soaktui.log.reader import iter_events
from soaktui.report import fold, render_markdown

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden" / "report_head.md"


def test_the_report_opens_with_the_verdict_and_the_legend(utc):
    md = render_markdown(fold(iter_events(DATA / "ui" / "recorded_events.jsonl")).snapshot())
    head = md[: md.index("\n## Run\n") + 1]
    if os.environ.get("SOAKTUI_TEST_UPDATE_GOLDEN"):
        GOLDEN.write_text(head)
    assert head == GOLDEN.read_text()
    verdict = head.split("\n\n")[2].splitlines()  # title, "## Verdict", then the verdict's lines
    assert 1 <= len(verdict) <= 8 and all(line.startswith("- ") for line in verdict)
    assert all(len(line) <= 100 for line in head.splitlines() if line.startswith("|"))
