"""`--demo`: the simulator in compressed time, so a one-minute first run shows everything."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import soaktui.scenarios  # noqa: F401 - registers the scenarios the settings check
from soaktui.config import load_settings
from soaktui.engine.demo import DEMO_ROTATION, DEMO_THRESHOLDS, demo_settings
from soaktui.hints import command
from soaktui.log.reader import iter_events
from soaktui.sinks.console import unstamped
from tests.helpers import engine_env


@pytest.mark.unit
def test_the_demo_ignores_quiet_hours_and_keeps_answers_short():
    s = load_settings(None, {}, {"quiet_hours.enabled": "true", "thresholds.simple_max_tokens": "10000",
                                 "thresholds.stream_max_tokens": "64"})  # fmt: skip
    d = demo_settings(s)
    assert s.quiet_hours.enabled and not d.quiet_hours.enabled
    assert d.thresholds.simple_max_tokens == DEMO_THRESHOLDS["simple_max_tokens"]
    assert d.thresholds.stream_max_tokens == 64  # already shorter: kept
    assert (d.rotation.min_tests, d.rotation.max_tests) == DEMO_ROTATION
    assert d.quiet_hours.start == s.quiet_hours.start and d.duration == s.duration


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_one_minute_demo_at_any_hour_covers_models_and_scenarios(tmp_path: Path):
    """Quiet hours set to cover the whole day: the demo runs at full pace anyway."""
    run_dir = tmp_path / "run"
    env = engine_env(
        tmp_path, QUIET_HOURS__ENABLED="true", QUIET_HOURS__START="00:00", QUIET_HOURS__END="23:59"
    )
    r = subprocess.run(
        [sys.executable, "-m", "soaktui", "--demo", "--no-ui", "--duration", "60s", "--out", str(run_dir)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    events = list(iter_events(run_dir / "events.jsonl"))
    results = [e for e in events if e["kind"] == "scenario_result"]
    assert len(results) >= 20
    assert len({e["model"] for e in results}) >= 3 and len({e["scenario"] for e in results}) >= 5
    assert "compressed time" in r.stderr and "quiet hours do not apply" in r.stderr
    lines = r.stderr.splitlines()  # for nohup.out and tail -f: each line says when
    assert all(re.match(r"\d\d:\d\d:\d\d \S", ln) for ln in lines), r.stderr[-3000:]
    said = [unstamped(ln) for ln in lines]
    assert said.index(f"watch: {command('watch', run_dir)}") < 5  # how to watch and stop, at the start
    assert any(ln.startswith(f"stop:  {command('ctl', run_dir, 'stop')} (or Ctrl-C") for ln in said[:5])
    assert said[-1] == "report: " + ", ".join(str(run_dir / f) for f in ("final_report.md", "report.json", "report.html"))
    assert said[-2].startswith("- ")  # the verdict lines just before the paths
    md = (run_dir / "final_report.md").read_text()
    verdict = md.split("## Verdict\n\n")[1].split("\n\n")[0]
    assert "**" in verdict  # at least one pick names a model
    assert 'id="over-time-tps"' in (run_dir / "report.html").read_text()
