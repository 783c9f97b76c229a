"""Failures behind HTTP 200: silently cut prompts, stalls, cold loads (scenarios/request_checks.py,
scenarios/base.py, engine/runner.py, report/folds/server_truth.py).

The rules are checked on hand-made results first, then end to end: scripted loopback servers that
answer the way Ollama answers an over-long prompt, the simulator's stall fault, and the simulator's
LM Studio flavor with a model that is not loaded (a cold load).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from array import array
from dataclasses import replace

import orjson
import pytest

from soaktui import errors
from soaktui.config import Settings
from soaktui.providers.client import ChatClient
from soaktui.providers.discovery import discover
from soaktui.providers.result import RequestResult
from soaktui.providers.types import ModelInfo, Provider
from soaktui.report.aggregate import fold
from soaktui.scenarios.large_context import LargeContext
from soaktui.scenarios.request_checks import (
    CHARS_PER_TOKEN_MAX,
    PromptRatios,
    judge_request,
    prompt_chars,
    prompt_floor,
)
from soaktui.scenarios.streaming import Streaming
from soaktui.simulator import SimConfig, plan_from_specs, run_in_thread
from soaktui.simulator.personas import default_personas
from tests.scenario_driver import run_tests
from tests.test_client import DONE, END, Request, chunk, delta, head, serve, sse
from tests.test_soak import soak

pytestmark = pytest.mark.integration

# -- the rules on hand-made results -----------------------------------------------------------------


def _ok(prompt_tokens: int | None = None, gaps_ms: tuple[float, ...] = (), stream: bool = True) -> RequestResult:
    r = RequestResult(model="m", stream=stream, ok=True, prompt_tokens=prompt_tokens, finish_reason="stop",
                      content="x", http_status=200)
    t = 1_000_000_000
    r.token_ns = array("q", [t])
    for g in gaps_ms:
        t += int(g * 1e6)
        r.token_ns.append(t)
    return r


@pytest.mark.unit
def test_prompt_chars_counts_text_parts_and_tool_arguments():
    msgs = [
        {"role": "system", "content": "abc"},
        {"role": "user", "content": [{"type": "text", "text": "defg"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "content": "12"},
    ]
    assert prompt_chars(msgs) == 3 + 4 + 7 + 2
    assert prompt_floor(6000) == int(6000 / CHARS_PER_TOKEN_MAX) == 1000


@pytest.mark.unit
def test_a_cut_prompt_fails_and_an_honest_count_passes():
    chars = 72_000  # a 24k-token large_context prompt at 3 characters a token
    r = _ok(prompt_tokens=2050)
    fields = judge_request(r, chars=chars, stall_s=5, context_length=None)
    assert not r.ok and r.error_class == errors.PROMPT_TRUNCATED
    assert "2050" in r.error and str(prompt_floor(chars)) in r.error
    assert fields == {"prompt_chars": chars, "prompt_tokens_floor": 12_000, "prompt_truncated": True,
                      "prompt_floor_rule": "1 token per 6 characters", "stalled": False}
    honest = _ok(prompt_tokens=17_000)  # ~4.2 characters a token
    assert judge_request(honest, chars=chars, stall_s=5, context_length=None)["prompt_truncated"] is False
    assert honest.ok
    unknown = _ok(prompt_tokens=None)  # no usage: nothing to judge, never a guess
    assert judge_request(unknown, chars=chars, stall_s=5, context_length=None)["prompt_truncated"] is None
    assert unknown.ok


@pytest.mark.unit
def test_a_learned_ratio_catches_smaller_cuts_without_calling_better_tokenized_prompts_cut():
    ratios = PromptRatios()
    lc = {"stall_s": 5, "context_length": None, "ratios": ratios, "scenario": "large_context",
          "uniform_text": True}
    # Nothing learned: the 6-characters floor, which a 30% cut (4.2 characters a token) passes.
    assert ratios.floor(40_000, "large_context") == (6666, "1 token per 6 characters")
    # Too short to teach (template overhead), or in the upper half of the context (maybe a cut itself).
    ratios.learn(800, 200, "large_context", None)
    ratios.learn(40_000, 2100, "large_context", 4096)
    assert ratios.by_scenario == {}
    ratios.learn(4_000, 1000, "large_context", 4096)  # 4.0 characters a token
    ratios.learn(4_200, 1000, "large_context", 4096)  # 4.2: the largest is kept
    floor, rule = ratios.floor(40_000, "large_context")
    assert floor == int(40_000 / (4.2 * 1.25)) == 7619 and rule.startswith("learned 4.20")
    # Never carried to another scenario: JSON and code count far more tokens per character.
    assert ratios.floor(40_000, "tool_calling") == (6666, "1 token per 6 characters")
    # A 30% cut fails; an honest prompt that tokenizes 20% better than any seen passes (and teaches).
    cut = _ok(prompt_tokens=int(40_000 / 4.2 * 0.7))
    fields = judge_request(cut, chars=40_000, **lc)
    assert not cut.ok and cut.error_class == errors.PROMPT_TRUNCATED and fields["prompt_floor_rule"] == rule
    assert ratios.by_scenario["large_context"] == pytest.approx(4.2)  # a cut prompt teaches nothing
    r = _ok(prompt_tokens=int(40_000 / (4.2 * 1.2)))
    judge_request(r, chars=40_000, **lc)
    assert r.ok and ratios.by_scenario["large_context"] == pytest.approx(4.2 * 1.2, rel=1e-3)
    # Prompts of mixed text (uniform_text False) and requests with `tools` never use or teach a ratio.
    before = dict(ratios.by_scenario)
    mixed = _ok(prompt_tokens=7000)  # under the learned floor (7,619), over the fixed one
    f = judge_request(mixed, chars=40_000, **{**lc, "uniform_text": False})
    assert mixed.ok and f["prompt_floor_rule"] == "1 token per 6 characters"
    with_tools = _ok(prompt_tokens=9000)
    judge_request(with_tools, chars=8000, **{**lc, "countable": False})
    assert ratios.by_scenario == before


@pytest.mark.unit
def test_equal_counts_for_long_prompts_of_different_sizes_mean_a_cap():
    """Servers cut to a fixed size (Ollama: exactly num_ctx): the second long prompt that counts the
    same as a clearly shorter one was cut, whatever the tokenizer."""
    ratios = PromptRatios()
    kw = {"stall_s": 5, "context_length": None, "ratios": ratios, "scenario": "s"}
    first = _ok(prompt_tokens=2048)
    judge_request(first, chars=8_000, **kw)
    assert first.ok  # alone, 2,048 tokens for 8,000 characters is an honest count
    second = _ok(prompt_tokens=2048)
    fields = judge_request(second, chars=11_000, **kw)
    assert not second.ok and second.error_class == errors.PROMPT_TRUNCATED
    assert "caps prompts at 2048 tokens" in second.error and "8000" in fields["prompt_floor_rule"]
    # Close sizes, short prompts, other scenarios, or counts with tool schemas in them: no verdict.
    for tokens, chars, extra in ((2048, 8_500, {}), (350, 2_000, {}), (2048, 11_000, {"scenario": "t"}),
                                 (2048, 11_000, {"countable": False})):
        r = _ok(prompt_tokens=tokens)
        judge_request(r, chars=chars, **{**kw, **extra})
        assert r.ok, (tokens, chars, extra)


@pytest.mark.unit
def test_a_stall_fails_even_when_the_stream_finished():
    r = _ok(prompt_tokens=50, gaps_ms=(20, 20, 100_000, 20))
    fields = judge_request(r, chars=100, stall_s=5, context_length=None)
    assert not r.ok and r.error_class == errors.STALLED and "100.0 s" in r.error
    assert fields["stalled"] is True and r.max_gap_ms == 100_000
    fine = _ok(prompt_tokens=50, gaps_ms=(20, 4_900, 20))
    assert judge_request(fine, chars=100, stall_s=5, context_length=None)["stalled"] is False and fine.ok
    whole = _ok(prompt_tokens=50, stream=False)
    assert judge_request(whole, chars=100, stall_s=5, context_length=None)["stalled"] is None


@pytest.mark.unit
def test_an_empty_200_to_a_prompt_over_the_context_is_an_overflow():
    """LM Studio's GGUF engine has answered an over-long prompt with 200 and no deltas."""
    r = RequestResult(model="m", stream=True, ok=False, error_class=errors.EMPTY_RESPONSE,
                      error="no content", http_status=200)
    judge_request(r, chars=60_000, stall_s=5, context_length=4096)
    assert r.error_class == errors.CONTEXT_OVERFLOW and "4096" in r.error
    small = RequestResult(model="m", stream=True, ok=False, error_class=errors.EMPTY_RESPONSE,
                          error="no content", http_status=200)
    judge_request(small, chars=600, stall_s=5, context_length=4096)
    assert small.error_class == errors.EMPTY_RESPONSE  # fits: an empty answer is just that


# -- end to end: an Ollama-style silent cut ---------------------------------------------------------


def _ollama_like(num_ctx: int):
    """Answers like Ollama v0.4.3-v0.24 on /v1: a prompt over num_ctx is cut (first num_keep tokens
    plus the tail) and `usage.prompt_tokens` reports the cut count, exactly num_ctx, at HTTP 200
    (runner/ollamarunner/runner.go NewSequence)."""

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        body = req.json
        chars = sum(len(m.get("content") or "") for m in body["messages"])
        sent = chars // 4 + 10
        usage = {"prompt_tokens": min(sent, num_ctx), "completion_tokens": 2, "total_tokens": 0}
        w.write(head() + chunk(sse(delta("ZX", role="assistant"))) + chunk(sse(delta("-9", finish="stop")))
                + chunk(sse({"id": "chatcmpl-1", "choices": [], "usage": usage})) + chunk(DONE) + END)

    return handler


def test_large_context_against_a_silently_truncating_server_fails(tmp_path):
    async def go():
        async with serve(_ollama_like(2048)) as srv:
            provider = Provider(name="ollama@test", kind="ollama", base_url=srv.url)
            model = ModelInfo(id="llama3.1:8b", provider=provider.name, context_length=None)
            client = ChatClient(srv.url)
            requests: list[dict] = []
            settings = Settings()  # large_context targets 10k-40k tokens by default
            try:
                outcomes = await run_tests(LargeContext(), client, provider, model, settings, 2,
                                           requests=requests)
            finally:
                await client.aclose()
            return outcomes, requests

    outcomes, requests = asyncio.run(go())
    assert all(not o.ok and o.error_class == errors.PROMPT_TRUNCATED for o in outcomes)
    for ev in requests:
        assert ev["prompt_tokens"] == 2048 and ev["prompt_truncated"] is True
        assert ev["prompt_tokens_floor"] > 2048 and ev["error_class"] == errors.PROMPT_TRUNCATED
    snap = fold([{"kind": "request", "t": 1.0 + i, **ev} for i, ev in enumerate(requests)]).snapshot()
    truth = snap["server_truth"]["ollama@test/llama3.1:8b"]
    assert truth["prompt_truncated"]["requests"] == 2
    assert truth["prompt_truncated"]["examples"][0]["prompt_tokens"] == 2048
    assert snap["models"]["ollama@test/llama3.1:8b"]["errors"] == {"prompt_truncated": 2}


# -- end to end: a stall shorter than the read timeout ----------------------------------------------


@pytest.mark.slow
def test_a_stream_that_freezes_and_then_finishes_is_a_stalled_failure(tmp_path):
    plan = plan_from_specs(["stall=every:2"], stall_s=1.2)
    with run_in_thread(SimConfig(flavor="lmstudio", seed=5, speed=40.0, faults=plan)) as s:
        code, events = soak(tmp_path / "run", s.base_url, duration="4s", scenarios="streaming",
                            thresholds__stall_s="0.8", timeouts__read="30")
    assert code == 0
    requests = [e for e in events if e["kind"] == "request"]
    stalled = [e for e in requests if e.get("stalled")]
    assert stalled, "the simulator's stall fault must show"
    for e in stalled:
        assert not e["ok"] and e["error_class"] == "stalled" and e["max_gap_ms"] >= 1000  # a 1.2 s stall
        assert e["finish_reason"] == "stop"  # it finished, and still failed
    fine = [e for e in requests if e["ok"]]
    assert fine and all(e["stalled"] is False and e["max_gap_ms"] < 800 for e in fine)
    results = {e["test_id"]: e for e in events if e["kind"] == "scenario_result"}
    assert all(results[e["test_id"]]["error_class"] == "stalled" for e in stalled if e["test_id"] in results)
    started = [e for e in events if e["kind"] == "test_started"]
    assert started and {e["scenario"] for e in started} == {"streaming"}
    assert all(e["planned_requests"] == 1 for e in started)
    snap = fold(events).snapshot()
    stalls = sum(t["stalls"]["requests"] for t in snap["server_truth"].values())
    assert stalls == len(stalled)


# -- end to end: cold loads ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_cold_load_is_marked_and_kept_out_of_ttft(tmp_path):
    """LM Studio flavor with a 7B model that is not loaded at start: the engine asks
    /api/v0/models/{id} before each test, so the first request (the one that loads it) is `cold`."""
    cold_id = "sim-qwen2.5-7b-instruct"
    personas = [replace(p, loaded=False) if p.id == cold_id else p for p in default_personas()]
    with run_in_thread(SimConfig(flavor="lmstudio", seed=6, speed=40.0, personas=personas)) as s:
        code, events = soak(tmp_path / "run", s.base_url, duration="5s", scenarios="streaming",
                            models=cold_id, rotation__min_tests="50", rotation__max_tests="50")
        sim_log = s.requests_log()
    assert code == 0
    requests = [e for e in events if e["kind"] == "request"]
    cold = [e for e in requests if e["cold"]]
    assert len(cold) == 1 and cold[0]["cold_source"].startswith("/api/v0/models/{id}")
    # The simulator's own log agrees: that request (and only it) waited for a load.
    waited = [r for r in sim_log if r.get("load_ns")]
    assert len(waited) == 1
    warm = [e for e in requests if not e["cold"] and e["ok"]]
    assert warm
    started = [e for e in events if e["kind"] == "test_started"]
    assert started[0]["cold"] is True and not any(e["cold"] for e in started[1:])
    snap = fold(events).snapshot()
    key = f"{cold[0]['provider']}/{cold_id}"
    ttft = snap["models"][key]["ttft_ms"]
    # The cold request is not in the TTFT figures: they are exactly the warm requests'. (Not "the
    # cold wait is the longest": at speed 40 a load takes ~80 ms, and one warm answer delayed as
    # long by the machine would make that a timing assertion.)
    assert ttft["n"] == len(warm)
    assert ttft["max"] == max(e["ttft_ms"] for e in warm) and ttft["min"] == min(e["ttft_ms"] for e in warm)
    truth = snap["server_truth"][key]["cold_loads"]
    assert truth["requests"] == 1 and truth["first_token_wait_ms"]["max"] == cold[0]["ttft_ms"]
    assert truth["load_ms_estimated"]["n"] == 1  # the cold wait minus the warm TTFT p50


@pytest.mark.parametrize("scenario", [Streaming()])
def test_requests_carry_the_new_evidence_fields(scenario):
    async def go():
        with run_in_thread(SimConfig(flavor="llamacpp", seed=7, speed=40.0)) as s:
            provider = Provider(name="llamacpp@sim", kind="llamacpp", base_url=s.base_url)
            persona = next(p for p in s.server.config.personas if p.is_chat)
            model = ModelInfo(id=persona.id, provider=provider.name, context_length=persona.context_length)
            client = ChatClient(s.base_url)
            requests: list[dict] = []
            try:
                await run_tests(scenario, client, provider, model, Settings(), 1, requests=requests)
            finally:
                await client.aclose()
            return requests

    [ev] = asyncio.run(go())
    for name in ("max_gap_ms", "stalled", "prompt_truncated", "prompt_tokens_floor", "prompt_chars", "cold",
                 "cached_prompt_tokens", "server_prompt_tps", "server_gen_tps"):
        assert name in ev, name
    assert ev["cold"] is False and ev["stalled"] is False and ev["prompt_truncated"] is False
    assert orjson.loads(orjson.dumps(ev)) == ev


# -- the Ollama flavor end to end: discover, then a truncating server ----------------------------


@pytest.mark.e2e
def test_discover_shows_cloud_excluded_and_runtime_beside_trained_context():
    """`soaktui discover` against Ollama (simulated 0.12.6): a pulled cloud model is left out with
    its reason, and a model with a 32k training window shows the 4k it really runs with."""
    with run_in_thread(SimConfig(flavor="ollama")) as s:
        out = subprocess.run(
            [sys.executable, "-m", "soaktui", "discover", "--base-url", s.base_url],
            capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 0, out.stderr
    cloud = next(line for line in out.stdout.splitlines() if line.strip().startswith("gpt-oss:120b-cloud"))
    assert "skip: cloud model, runs remotely (--include-cloud to test it)" in cloud
    qwen = next(line for line in out.stdout.splitlines() if line.strip().startswith("sim-qwen2.5-7b-instruct"))
    assert "32k/4k" in qwen.split()  # trained / runtime
    assert "CTX TRAINED/RUNTIME" in out.stdout


@pytest.mark.slow
def test_large_context_plans_against_the_runtime_context_ollama_reports(tmp_path):
    """Ollama 0.12.6 reports a loaded model's runtime context in /api/ps: large_context is capped to
    it (2048 here, against a 32k training window), so nothing is cut."""
    with run_in_thread(SimConfig(flavor="ollama", seed=8, speed=40.0, ollama_num_ctx=2048)) as s:
        code, events = soak(
            tmp_path / "run",
            s.base_url,
            duration="4s",
            scenarios="large_context",
            models="sim-qwen2.5-7b-instruct",
            thresholds__large_context_min_tokens="3000",
            thresholds__large_context_max_tokens="4000",
        )
    assert code == 0
    requests = [e for e in events if e["kind"] == "request"]
    assert requests and all(e["ok"] and e["prompt_truncated"] is False for e in requests), requests[0]
    disc = next(e for e in events if e["kind"] == "providers_discovered")
    qwen = next(m for p in disc["providers"] for m in p["models"] if m["id"].startswith("sim-qwen2.5-7b"))
    assert qwen["context_length"] == 2048 and qwen["context_trained"] == 32768


@pytest.mark.slow
def test_a_soak_against_an_ollama_that_cuts_silently_fails_and_reports_the_cuts(tmp_path):
    """Ollama 0.9.6 has no context_length in /api/ps, and its user set OLLAMA_CONTEXT_LENGTH=2048
    where the version's default is 4096: soaktui plans for 4096, the server cuts every prompt over
    2048 to exactly 2048 at HTTP 200. Prompts that fit teach the model's ratio, which then catches
    cuts the 6-characters floor alone would let through."""
    with run_in_thread(
        SimConfig(flavor="ollama", seed=9, speed=40.0, server_version="0.9.6", ollama_num_ctx=2048)
    ) as s:
        code, events = soak(
            tmp_path / "run",
            s.base_url,
            duration="8s",
            scenarios="large_context",
            models="sim-qwen2.5-7b-instruct",
            rotation__min_tests="100",
            rotation__max_tests="100",
            thresholds__large_context_min_tokens="800",
            thresholds__large_context_max_tokens="3900",
        )
    assert code == 0
    large = [e for e in events if e["kind"] == "request"]
    assert len(large) >= 8, "large_context must have run"
    cut = [e for e in large if e["prompt_truncated"]]
    assert cut and all(e["prompt_tokens"] == 2048 and e["error_class"] == "prompt_truncated" for e in cut)
    assert all(e["ok"] for e in large if e["prompt_tokens"] < 2048)
    # Cuts caught only thanks to the learned ratio: above the 6-characters floor, below the learned one.
    learned = [e for e in cut if "learned" in e["prompt_floor_rule"] and e["prompt_chars"] / 6 <= 2048]
    assert learned, [(e["prompt_chars"], e["prompt_floor_rule"]) for e in cut]
    snap = fold(events).snapshot()
    key = f"{cut[0]['provider']}/{cut[0]['model']}"
    assert snap["server_truth"][key]["prompt_truncated"]["requests"] == len(cut)
    text = (tmp_path / "run" / "final_report.md").read_text()
    assert "What the servers hid" in text and "prompt cut to 2,048 tokens" in text


@pytest.mark.slow
def test_a_single_model_llamacpp_router_is_read_per_model_and_its_cold_loads_marked(tmp_path):
    """A llama.cpp router serving one model still needs ?model= (server-models.cpp): discovery asks
    /props?model=, and the engine reads the model's `status` before each test, so a test that
    autoloads an unloaded model is `cold`."""
    qwen = replace(next(p for p in default_personas() if p.id == "sim-qwen2.5-7b-instruct"), loaded=False)
    with run_in_thread(SimConfig(flavor="llamacpp", llamacpp_router=True, personas=[qwen], speed=40.0)) as s:
        providers, _, _ = asyncio.run(discover([s.base_url], probe_defaults=False))
        [p] = providers
        assert p.native.get("router") is True and [m.id for m in p.models] == [qwen.id]
        code, events = soak(tmp_path / "run", s.base_url, duration="4s", scenarios="streaming",
                            rotation__min_tests="50", rotation__max_tests="50")
        [(status, body, _)] = [asyncio.run(_props(s.base_url, qwen.id))]
    assert code == 0
    assert status == 200 and body["default_generation_settings"]["n_ctx"] > 0
    requests = [e for e in events if e["kind"] == "request"]
    cold = [e for e in requests if e["cold"]]
    assert len(cold) == 1 and cold[0] is requests[0] and "unloaded" in cold[0]["cold_source"]
    disc = next(e for e in events if e["kind"] == "providers_discovered")
    [m] = disc["providers"][0]["models"]
    assert m["loaded"] is False  # unloaded at discovery: its /props?model= is not asked (no autoload)
    # Loaded: its runtime context comes from its own /props?model=, not the router's placeholder /props.
    with run_in_thread(SimConfig(flavor="llamacpp", llamacpp_router=True, personas=[replace(qwen, loaded=True)])) as s:
        [p] = asyncio.run(discover([s.base_url], probe_defaults=False))[0]
    [m] = p.models
    assert m.source["context_length"].startswith("/props?model=") and m.context_length
    assert m.context_trained == qwen.context_length and p.version  # build_info from the router's /props


async def _props(base_url: str, model_id: str):
    client = ChatClient(base_url)
    try:
        return await client.get_json(f"/props?model={model_id}", 5.0)
    finally:
        await client.aclose()
