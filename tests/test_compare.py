"""`soaktui compare`: two real runs (two simulators on two ports, as two hosts would be), one of them
failing every other request; the model is matched across them and the drop is significant."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from soaktui.config import load_settings
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.report.compare import CompareError, expand, match_key
from soaktui.simulator import SimConfig, plan_from_specs, run_in_thread

MODEL = "sim-qwen2.5-7b-instruct"


def _run(run_dir, faults: list[str]) -> None:
    plan = plan_from_specs(faults)
    with run_in_thread(SimConfig(flavor="llamacpp", seed=5, speed=40.0, faults=plan)) as sim:
        settings = load_settings(None, {}, {
            "base_urls": sim.base_url, "out": str(run_dir), "seed": "3", "duration": "5s", "models": MODEL,
            "scenarios": "streaming", "quiet_hours.enabled": "false",
        })  # fmt: skip
        assert asyncio.run(run_soak(RunRequest(settings=settings, quiet=True))) == 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    _run(base / "night1", [])
    _run(base / "night2", ["http_500=every:2"])
    return base


@pytest.mark.unit
def test_models_match_by_server_kind_and_id():
    assert match_key("llamacpp@127.0.0.1:8080/qwen:7b") == match_key("llamacpp@10.0.0.5:9000/qwen:7b") == "llamacpp/qwen:7b"
    assert match_key("ollama@127.0.0.1:11434/qwen:7b") != match_key("llamacpp@127.0.0.1:8080/qwen:7b")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_two_nights_compared_with_the_drop_found_significant(two_runs, tmp_path):
    cmd = [sys.executable, "-m", "soaktui", "compare"]
    out = subprocess.run([*cmd, str(two_runs / "night*"), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [r["label"] for r in doc["runs"]] == ["A", "B"]
    assert all(r["hostname"] and r["tests"] > 0 for r in doc["runs"])
    (model,) = [m for m in doc["models"] if m["model"].endswith("/" + MODEL)]
    a, b = model["runs"]
    assert a["success"]["rate"] == 1.0 and b["success"]["rate"] < 0.7  # every other request failed
    drop = [d for d in model["differences"] if d["figure"] == "success"]
    assert drop and drop[0]["p"] < 0.05 and drop[0]["run"] == "B" and drop[0]["against"] == "A"
    md = subprocess.run([*cmd, str(two_runs / "night1"), str(two_runs / "night2"), "--html", str(tmp_path / "c.html")],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert md.returncode == 0, md.stderr
    text = md.stdout
    assert "## Tests passed" in text and "## Significant differences" in text
    assert f"{MODEL}: success A 100% -> B " in text
    assert max(len(line) for line in text.splitlines() if line.startswith("|")) <= 100
    page = (tmp_path / "c.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Significant differences" in page
    assert "<script" not in page and "://" not in page  # offline: nothing to fetch


@pytest.mark.integration
def test_a_directory_that_is_not_a_run_is_one_clear_line(tmp_path, two_runs):
    with pytest.raises(CompareError, match="no events.jsonl here"):
        expand([str(two_runs / "night1"), str(tmp_path)])
    with pytest.raises(CompareError, match="at least two run directories"):
        expand([str(two_runs / "night1")])
    out = subprocess.run([sys.executable, "-m", "soaktui", "compare", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
