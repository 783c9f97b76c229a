"""The report of a varied generated log is byte for byte what the code before the report's
optimisations made (issue 15, item 5: every figure stays what it was).

tests/report_log.py writes the log (every fold, every hot-path branch, malformed events, a dirty
line, a torn tail). tests/data/golden/report_varied.json is its report.json; report_varied.sha256
holds the digests of its Markdown and HTML and of the report of the same log without the dirty
line (no sanitising pass). Regenerate only after a deliberate change to a figure, with
SOAKTUI_TEST_UPDATE_GOLDEN=1, and read the diff before committing it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import orjson
import pytest

from soaktui.log import reader
from soaktui.log.follow import LogFollower
from soaktui.log.reader import ReadStats, iter_events
from soaktui.report import build_report
from soaktui.report.aggregate import RunAggregate
from soaktui.report.html import render_html
from soaktui.report.jsonout import render_json
from soaktui.report.markdown import render_markdown
from soaktui.report.snapshot import log_stats
from tests.report_log import write_varied_log

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_JSON = GOLDEN / "report_varied.json"
GOLDEN_SHA = GOLDEN / "report_varied.sha256"
UPDATE = bool(os.environ.get("SOAKTUI_TEST_UPDATE_GOLDEN"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digests() -> dict[str, str]:
    return dict(line.split("  ", 1)[::-1] for line in GOLDEN_SHA.read_text().splitlines())


def test_the_report_of_a_varied_log_is_unchanged(tmp_path: Path, utc) -> None:
    write_varied_log(tmp_path / "events.jsonl")
    snap, _ = build_report(tmp_path)
    got = render_json(snap)
    shas = {
        "report.json": _sha(got),
        "final_report.md": _sha(render_markdown(snap).encode()),
        "report.html": _sha(render_html(snap)),
    }
    clean = tmp_path / "clean"
    clean.mkdir()
    write_varied_log(clean / "events.jsonl", dirty=False)
    shas["clean/report.json"] = _sha(render_json(build_report(clean)[0]))
    if UPDATE:
        GOLDEN_JSON.write_bytes(got)
        GOLDEN_SHA.write_text("".join(f"{v}  {k}\n" for k, v in shas.items()))
    assert orjson.loads(got) == orjson.loads(GOLDEN_JSON.read_bytes())  # a readable diff first
    assert got == GOLDEN_JSON.read_bytes()
    assert shas == _digests()
    assert snap["totals"]["malformed_events"] > 10 and snap["hardware"]["readings"] > 500


def test_small_blocks_and_a_snapshot_midway_change_nothing(tmp_path: Path, utc, monkeypatch) -> None:
    """Many read blocks (lines split across them, clean and dirty ones), and a snapshot taken
    halfway through (the live views do that) before the rest is fed: the same report."""
    monkeypatch.setattr(reader, "BLOCK_SIZE", 64 << 10)
    log = write_varied_log(tmp_path / "events.jsonl")
    stats = ReadStats()
    agg = RunAggregate()
    for i, ev in enumerate(iter_events(log, stats)):
        agg.feed(ev)
        if i == 2000:
            agg.snapshot()
    snap = agg.snapshot()
    snap["log"] = log_stats(stats)
    assert render_json(snap) == GOLDEN_JSON.read_bytes()


def test_the_follower_reads_the_varied_log_as_the_reader_does(tmp_path: Path) -> None:
    """The live viewer's follower, in small reads: the same events, and the counts of the golden
    report's `log` section (clean blocks take the one-pass parse, the others line by line)."""
    log = write_varied_log(tmp_path / "events.jsonl")
    follower = LogFollower(log, read_bytes=64 << 10)
    followed: list[dict] = []
    for _ in range(10_000):
        got = follower.read()
        if not got and follower.at_end():
            break
        followed += got
    assert followed == list(iter_events(log))
    golden = orjson.loads(GOLDEN_JSON.read_bytes())["log"]
    st = follower.stats
    got_counts = (st.lines_ok, st.lines_bad, st.first_bad_line, st.newer_schema, st.newer_events)
    assert got_counts == tuple(
        golden[k] for k in ("lines_ok", "lines_bad", "first_bad_line", "newer_schema", "newer_events")
    )


def test_a_fold_the_aggregate_skips_for_a_scenario_would_have_done_nothing() -> None:
    """ONLY_SCENARIOS lets the aggregate skip a fold's method for other scenarios: that is exact
    only while the method leaves its fold untouched for them, whatever else the event holds."""
    agg = RunAggregate()
    folds = [f for f in vars(agg).values() if getattr(f, "ONLY_SCENARIOS", None)]
    assert len(folds) >= 4
    for fold in folds:
        for kind, scenarios in fold.ONLY_SCENARIOS.items():
            method = getattr(fold, fold.KINDS[kind])
            before = pickle.dumps(fold)
            for scenario in ("streaming", "simple_inference", None, 5, "Concurrent_Load"):
                assert scenario not in scenarios
                method(
                    {
                        "kind": kind,
                        "scenario": scenario,
                        "provider": "p",
                        "model": "m",
                        "ok": True,
                        "t": 1.0,
                        "prompt_tokens": 9000,
                        "ttft_ms": 5.0,
                        "metrics": {"concurrency": 2, "succeeded": 2, "failed": 0, "category": "x"},
                    }
                )
            assert pickle.dumps(fold) == before, type(fold).__name__
