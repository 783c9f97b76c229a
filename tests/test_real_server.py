"""The real-server tier: a short headless soak against llama.cpp (llama-cpp-python) with SmolLM2-135M.

Checks that discovery finds both aliases, the rotation goes through both, every scenario of the
engine issue runs, a `ctl stop` ends the run with a report, and every token count soaktui logged
matches what the server actually returned (recorded by a pass-through proxy). structured_output meets
a real refusal here: llama-cpp-python answers `response_format: json_schema` with an HTTP 500 that
names `json_object` as what it takes, and then constrains the answer with a grammar from the schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from soaktui.config import load_settings
from soaktui.providers.client import ChatClient
from soaktui.providers.types import OPENAI, ModelInfo, Provider
from soaktui.scenarios import REGISTRY
from soaktui.scenarios.schema_tasks import load_tasks
from soaktui.scenarios.structured_output import JSON_OBJECT, JSON_SCHEMA, StructuredOutput
from soaktui.scenarios.tool_calling import ToolCalling
from soaktui.store.reader import iter_events
from soaktui.toolcalls.prompts import ToolPromptBank, parse_entry
from soaktui.toolcalls.scoring import CHECKS
from tests.realserver import ALIASES, LlamaServer, RecordingProxy, server_counts
from tests.scenario_driver import run_tests

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
structured_max_tokens = 128
tool_max_tokens = 128
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


@pytest.mark.timeout(900)  # every scenario must run on a real (slow, CPU-only) server
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


def test_structured_output_falls_back_to_the_grammar_and_its_json_parses(llama):
    """json_schema is refused (HTTP 500 from pydantic), json_object + schema is taken: the grammar makes
    every answer that was not cut by max_tokens parse. The grammar does not enforce minimum, maximum or
    formats, so schema validity is measured, not assumed."""
    wanted = {"so-ticket-triage", "so-feature-flags"}
    scenario = StructuredOutput([t for t in load_tasks() if t.id in wanted] * 2)
    settings = load_settings(None, {}, {"thresholds.structured_max_tokens": "160", "timeouts.request": "300"})
    provider = Provider(name="llama", kind=OPENAI, base_url=llama.base_url)
    model = ModelInfo(id="smollm2-chatml", provider="llama", context_length=llama.n_ctx)
    requests: list[dict] = []

    async def run() -> list:
        async with ChatClient(llama.base_url) as client:
            return await run_tests(scenario, client, provider, model, settings, 4, requests=requests)

    outcomes = asyncio.run(run())
    refusals = [r for r in requests if not r["ok"]]
    assert len(refusals) == 1 and refusals[0]["response_format"] == JSON_SCHEMA
    assert refusals[0]["http_status"] == 500 and "response_format" in refusals[0]["error"]
    assert len(requests) == 5
    for o in outcomes:
        m = o.metrics
        assert (m["mode"], m["response_format"]) == (JSON_SCHEMA, JSON_OBJECT)
        assert m["fallback"].startswith("json_schema refused: HTTP 500")
        assert m["output_tokens"] > 0 and m["gen_tps"] > 0 and o.ok == m["schema_valid"]
        if m["finish_reason"] == "length":
            assert m["failure"] == "truncated"
        else:
            assert m["parsed"], m
    assert any(o.metrics["finish_reason"] == "stop" for o in outcomes)


# One tool offered (BFCL's "simple" shape): with the whole catalog SmolLM2-135M rarely calls at all.
WEATHER_PROMPT = parse_entry(
    {
        "id": "real-weather-paris",
        "kind": "multi_turn",
        "prompt": "What is the weather in Paris?",
        "tools": ["get_weather"],
        "calls": [{"name": "get_weather", "arguments": {"city": ["Paris"]}}],
        "results": [{"city": "Paris", "temperature_c": 18.5, "condition": "light rain"}],
        "answer_contains": [18.5],
    },
    "test_real_server",
)


def _tool_attempt(llama, alias: str, mode: str) -> tuple[object, list[dict], dict]:
    scenario = ToolCalling(mode, ToolPromptBank([WEATHER_PROMPT]))
    settings = load_settings(None, {}, {"timeouts.request": "300", "thresholds.tool_max_tokens": "128"})
    provider = Provider(name="llama", kind=OPENAI, base_url=llama.base_url)
    model = ModelInfo(id=alias, provider="llama", context_length=llama.n_ctx)
    requests: list[dict] = []
    events: list[dict] = []

    async def run() -> list:
        async with ChatClient(llama.base_url, read_timeout_s=300) as client:
            return await run_tests(
                scenario, client, provider, model, settings, 1, requests=requests, events=events
            )

    (outcome,) = asyncio.run(run())
    (event,) = events
    assert event["kind"] == "tool_call" and event["mode"] == mode and event["prompt_id"] == WEATHER_PROMPT.id
    assert outcome.ok == event["correct"] and outcome.metrics["verdict"] == event["verdict"]
    assert requests[0]["ok"], requests[0]["error"]
    return outcome, requests, event


def test_function_calling_alias_returns_native_tool_calls_that_are_detected_and_scored(llama):
    """chatml-function-calling answers `tools` + tool_choice "auto" with OpenAI tool_calls; they are
    detected as native and judged (a 135M model may pick wrong values: correctness is not asserted).
    When the call is right, the result goes back as role "tool" messages and the server takes them."""
    _, requests, e = _tool_attempt(llama, "smollm2-fc", "native")
    first = requests[0]
    assert first["tool_calls"] >= 1 and first["finish_reason"] == "tool_calls"
    assert (e["format"], e["trust"]) == ("native", 3)
    assert e["calls"] and e["calls"][0]["name"] == "get_weather"  # the grammar allows offered names only
    checks = e["checks"]
    assert checks["decision"] is True and checks["count"] is not None and checks["name"] is not None
    assert checks["args_parse"] is not None
    if checks["values"]:  # a right call: the follow-up turn was sent and answered
        assert len(requests) == 2 and requests[1]["ok"] and requests[1]["turn"] == 2
        assert checks["uses_result"] is not None
    else:
        assert len(requests) == 1 and checks["uses_result"] is None


def test_plain_chatml_alias_exercises_the_prompted_text_path(llama):
    """Without a tool parser the tools go in the system prompt; whatever the model writes is read by the
    text detector and scored."""
    _, requests, e = _tool_attempt(llama, "smollm2-chatml", "prompted")
    assert requests[0]["tool_mode"] == "prompted" and requests[0]["tool_calls"] == 0
    assert e["trust"] in (0, 1, 2) and e["format"] != "native"
    assert set(e["checks"]) == set(CHECKS)
    assert isinstance(e["checks"]["decision"], bool)
    assert (e["trust"] == 2) == bool(e["calls"])
