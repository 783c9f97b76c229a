"""The real-server tier: a short headless soak against llama.cpp (llama-cpp-python) with SmolLM2-135M.

Checks that discovery finds both aliases, the rotation goes through both, every scenario of the
engine issue runs, a `ctl stop` ends the run with a report, and every token count soaktui logged
matches what the server actually returned (recorded by a pass-through proxy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from soaktui.scenarios import REGISTRY
from soaktui.store.reader import iter_events
from tests.realserver import ALIASES, LlamaServer, RecordingProxy, server_counts

pytestmark = pytest.mark.real_server

CONFIG = """
concurrency = [2]
[rotation]
min_tests = 3
max_tests = 3
[quiet_hours]
enabled = false
[thresholds]
simple_min_tokens = 100
simple_max_tokens = 200
stream_max_tokens = 48
large_context_min_tokens = 1000
large_context_max_tokens = 3000
[timeouts]
request = 120
read = 60
grace = 20
[output]
status_interval = "10s"
[weights]
prompt_variety = 1.0
simple_inference = 1.0
streaming = 1.0
concurrent_load = 1.0
large_context = 1.0
provider_failover = 1.0
"""


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    server = LlamaServer(tmp_path_factory.mktemp("llama"))
    server.start()
    yield server
    server.stop()


def _soaktui(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "soaktui", *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        **kw,
    )


def test_discover_lists_both_aliases(llama):
    out = subprocess.run(
        [sys.executable, "-m", "soaktui", "discover", "--base-url", llama.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    for alias in ALIASES:
        assert alias in out.stdout


def test_headless_soak_covers_models_and_scenarios_with_true_token_counts(llama, tmp_path):
    proxy = RecordingProxy(llama.base_url)
    proxy.start()
    cfg = tmp_path / "soak.toml"
    cfg.write_text(CONFIG)
    run_dir = tmp_path / "run"
    proc = _soaktui(
        "--no-ui",
        "--base-url",
        proxy.base_url,
        "--config",
        str(cfg),
        "--seed",
        "7",
        "--duration",
        "15m",
        "--out",
        str(run_dir),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "stderr.txt", "wb"),
    )
    wanted = set(REGISTRY)
    deadline = time.monotonic() + 600
    scenarios: set[str] = set()
    models: set[str] = set()
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            log = run_dir / "events.jsonl"
            if not log.exists():
                continue
            scenarios = {e["scenario"] for e in iter_events(log) if e["kind"] == "scenario_result"}
            models = {e["model"] for e in iter_events(log) if e["kind"] == "scenario_result"}
            if wanted <= scenarios and set(ALIASES) <= models:
                break
        ctl = subprocess.run(
            [sys.executable, "-m", "soaktui", "ctl", str(run_dir), "stop"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        assert proc.wait(timeout=180) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()

    assert wanted <= scenarios, f"scenarios that never ran: {wanted - scenarios}"
    assert set(ALIASES) <= models, f"models never tested: {set(ALIASES) - models}"

    events = list(iter_events(run_dir / "events.jsonl"))
    discovered = next(e for e in events if e["kind"] == "providers_discovered")
    assert set(ALIASES) <= {k.split("/", 1)[1] for k in discovered["selected"]}
    switched = [e["model"] for e in events if e["kind"] == "model_switched"]
    assert set(ALIASES) <= set(switched)
    finished = [e for e in events if e["kind"] == "run_finished"]
    assert finished and finished[0]["reason"] == "stopped"
    assert (run_dir / "final_report.md").is_file() and (run_dir / "report.json").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    assert report

    # Token counts: each logged request against the server's own response, matched by id.
    returned = {}
    for rec in proxy.records:
        if rec["path"].endswith("/chat/completions") and rec["status"] == 200:
            counts = server_counts(rec["body"])
            returned[counts["id"]] = counts
    requests = [e for e in events if e["kind"] == "request" and e["ok"]]
    assert requests
    checked = {"usage": 0, "chunks": 0}
    for e in requests:
        srv = returned[e["response_id"]]
        if e["token_source"] == "usage":
            assert e["output_tokens"] == srv["usage"]["completion_tokens"]
            assert e["prompt_tokens"] == srv["usage"]["prompt_tokens"]
        else:
            assert e["token_source"] == "chunks"
            assert srv["usage"] is None  # llama-cpp-python ignores include_usage when streaming
            assert e["output_tokens"] == srv["chunks"]
        checked[e["token_source"]] += 1
    assert checked["usage"] > 0 and checked["chunks"] > 0, checked
