"""The real-server tier, part 1: discovery and a short headless soak against llama.cpp's `llama-server`.

The server is the C++ binary users run (tests/realserver.py), with SmolLM2-135M in two 2048-token
slots. Checked here:

- discovery recognises it as llama.cpp from /props and /v1/models, with the model's parameters,
  size, runtime (slot) and trained context, and tool support from the chat template's caps;
- a headless soak through a recording proxy runs every scenario and ends with a report, and every
  token count soaktui logged is the count the server returned (`usage`, byte for byte);
- the soak's telemetry reads the server's /metrics and /slots;
- llama.cpp's own `timings` reach the request events, and soaktui's generation speed agrees with
  the server's.

Part 2 (test_real_server_requests.py) sends single requests: overflow, prompt + max_tokens over
the context, tool calling.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from soaktui.log.reader import iter_events
from soaktui.providers.discovery import discover
from soaktui.providers.types import LLAMACPP
from soaktui.scenarios import REGISTRY
from tests.realserver import (
    N_CTX_TRAIN,
    SLOT_CTX,
    SLOTS,
    RecordingProxy,
    server_counts,
)

pytestmark = pytest.mark.real_server

# Small sizes: SmolLM2-135M on two CPU cores generates 50-90 tokens/s and reads prompts at ~250
# tokens/s, and every scenario must run within a minute or two. large_context must fit a 2048-token
# slot (with its 32-token answer and margin). prompt_variety sizes its answers from the bank (up to
# ~1,100 tokens): its weight is kept low.
CONFIG = """
concurrency = [2]
[rotation]
min_tests = 4
max_tests = 4
[quiet_hours]
enabled = false
[thresholds]
simple_min_tokens = 24
simple_max_tokens = 64
stream_max_tokens = 64
structured_max_tokens = 128
tool_max_tokens = 64
large_context_min_tokens = 600
large_context_max_tokens = 1500
[timeouts]
request = 120
read = 60
grace = 20
[output]
status_interval = "10s"
telemetry_interval = "2s"
[weights]
prompt_variety = 0.5
simple_inference = 1.0
streaming = 2.0
concurrent_load = 1.0
large_context = 1.0
provider_failover = 0.5
structured_output = 1.0
tool_calling = 1.0
"""

SOAK_BUDGET_S = 600  # the soak is stopped (ctl stop) once it has what the tests need, or at this
MIN_LONG_STREAMS = 6  # streamed answers of >= LONG_STREAM_TOKENS for the gen_tps comparison
LONG_STREAM_TOKENS = 16
LONG_PROMPT_TOKENS = 500  # prompts long enough for prompt_tps to be the server's speed, not overhead
GEN_TPS_TOLERANCE = 0.25  # median |gen_tps / server_gen_tps - 1|

# Request failures a real, healthy llama-server and a 135M model may legitimately produce in this
# soak. Anything else (malformed_stream, connection_dropped, bad_response, other, ...) is soaktui
# misreading real bytes, or the server breaking.
EXPECTED_FAILURES = {
    "empty_response",  # the model's first token was its end token
    "stalled",  # a 2-core machine busy with another slot's prompt (max_gap_ms says how long)
    "cancelled",  # the test in flight when the run was stopped
}
# The shipped tool bank offers all ten catalog tools with every prompt: rendered, about 2,200 (prompted)
# to 2,300 (native) tokens, more than a 2048-token slot. tool_calling's first request for this model
# is refused (tools_did_not_fit, counted nowhere) and retried with fewer tools, which fit. A
# multi-turn prompt's second turn (the first answer plus the tool result) can still overflow.
EXPECTED_BY_SCENARIO = {"tool_calling": {"tools_did_not_fit", "context_overflow"}}




def _soaktui(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "soaktui", *args], stdin=subprocess.DEVNULL, **kw)


def test_discovery_reads_props_and_v1_models(llama):
    """kind llamacpp; params, size and trained context from /v1/models meta; the runtime context is
    the slot's (2048 of -c 4096 over -np 2) from /props; tool use from the template's caps."""
    props = httpx.get(f"{llama.base_url}/props", timeout=10).json()
    meta = httpx.get(f"{llama.base_url}/v1/models", timeout=10).json()["data"][0]["meta"]
    slots = httpx.get(f"{llama.base_url}/slots", timeout=10).json()
    # What the server itself says, so that the expectations below are the server's figures.
    assert props["default_generation_settings"]["n_ctx"] == SLOT_CTX
    assert props["total_slots"] == SLOTS and [s["n_ctx"] for s in slots] == [SLOT_CTX] * SLOTS
    assert props["chat_template_caps"]["supports_tool_calls"] is True
    assert meta["n_ctx_train"] == N_CTX_TRAIN

    providers, probed, unreachable = asyncio.run(discover([llama.base_url], probe_defaults=False))
    assert not unreachable, unreachable
    (provider,) = providers
    assert provider.kind == LLAMACPP and provider.base_url == llama.base_url
    assert provider.native.get("total_slots") == SLOTS
    (m,) = provider.models
    assert m.id == llama.model_id
    assert m.params_b is not None and 0.13 <= m.params_b <= 0.14, m.params_b
    assert m.size_bytes == meta["size"] and not m.size_estimated
    assert m.quantization == "Q4_1"
    assert m.context_length == SLOT_CTX, m.source
    assert m.context_trained == N_CTX_TRAIN, m.source
    assert m.tool_use is True
    assert m.loaded is True
    assert "/props" in m.source["context_length"] and "n_ctx_train" in m.source["context_trained"]
    assert "supports_tool_calls" in m.source["tool_use"]

    out = subprocess.run(
        [sys.executable, "-m", "soaktui", "discover", "--base-url", llama.base_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert llama.model_id in out.stdout and "llama.cpp" in out.stdout
    row = next(line for line in out.stdout.splitlines() if llama.model_id in line and "Q4_1" in line)
    assert "135M" in row and "8k/2k" in row, row  # params; trained/runtime context


@dataclass
class Soak:
    run_dir: Path
    events: list[dict]
    records: list[dict]  # what the server sent, as the proxy relayed it
    provider: str  # soaktui's name for the server (behind the proxy)
    elapsed_s: float


def _long_streams(events: list[dict]) -> list[dict]:
    return [
        e
        for e in events
        if e["kind"] == "request"
        and e["ok"]
        and e["stream"]
        and (e["output_tokens"] or 0) >= LONG_STREAM_TOKENS
    ]


@pytest.fixture(scope="module")
def soak(llama, tmp_path_factory) -> Soak:
    """One short headless soak through the recording proxy, shared by the tests below. It is
    stopped with `soaktui ctl stop` as soon as every scenario has run, enough long streams exist
    for the speed comparison, and telemetry has read the server a few times."""
    tmp = tmp_path_factory.mktemp("soak")
    proxy = RecordingProxy(llama.base_url)
    proxy.start()
    cfg = tmp / "soak.toml"
    cfg.write_text(CONFIG)
    run_dir = tmp / "run"
    stderr = tmp / "stderr.txt"
    t0 = time.monotonic()
    with open(stderr, "wb") as err:
        proc = _soaktui(
            "--no-ui", "--base-url", proxy.base_url, "--config", str(cfg), "--seed", "7",
            "--duration", "15m", "--out", str(run_dir),
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    wanted = set(REGISTRY)
    log = run_dir / "events.jsonl"
    try:
        while time.monotonic() - t0 < SOAK_BUDGET_S and proc.poll() is None:
            time.sleep(2)
            if not log.exists():
                continue
            events = list(iter_events(log))
            scenarios = {e["scenario"] for e in events if e["kind"] == "scenario_result"}
            telemetry = [e for e in events if e["kind"] == "telemetry" and e.get("servers")]
            if wanted <= scenarios and len(_long_streams(events)) >= MIN_LONG_STREAMS and len(telemetry) >= 3:
                break
        assert proc.poll() is None, f"the soak ended by itself ({proc.returncode}): {stderr.read_text()}"
        ctl = subprocess.run(
            [sys.executable, "-m", "soaktui", "ctl", str(run_dir), "stop"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        assert proc.wait(timeout=180) == 0, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()
    events = list(iter_events(log))
    discovered = next(e for e in events if e["kind"] == "providers_discovered")
    (provider,) = discovered["providers"]
    return Soak(run_dir, events, list(proxy.records), provider["name"], time.monotonic() - t0)


@pytest.mark.timeout(900)
def test_headless_soak_runs_every_scenario_and_writes_the_report(soak, llama):
    events = soak.events
    discovered = next(e for e in events if e["kind"] == "providers_discovered")
    (provider,) = discovered["providers"]
    assert provider["kind"] == LLAMACPP
    assert [k.split("/", 1)[1] for k in discovered["selected"]] == [llama.model_id]

    results = [e for e in events if e["kind"] == "scenario_result"]
    ran = {e["scenario"] for e in results}
    assert set(REGISTRY) <= ran, f"scenarios that never ran in {soak.elapsed_s:.0f}s: {set(REGISTRY) - ran}"
    finished = [e for e in events if e["kind"] == "run_finished"]
    assert finished and finished[0]["reason"] == "stopped"
    assert (soak.run_dir / "final_report.md").is_file()
    assert json.loads((soak.run_dir / "report.json").read_text())

    requests = [e for e in events if e["kind"] == "request"]
    failures = {}
    for e in requests:
        if not e["ok"]:
            failures.setdefault(e["error_class"], []).append(f"{e['scenario']}: {e['error']}")
    summary = {
        s: f"{sum(r['ok'] for r in results if r['scenario'] == s)}/{sum(r['scenario'] == s for r in results)}"
        for s in sorted(ran)
    }
    print(
        f"\nsoak: {soak.elapsed_s:.0f}s, {len(results)} tests, {len(requests)} requests; ok/tests {summary}"
    )
    for cls, msgs in failures.items():
        print(f"  failed requests {cls}: {len(msgs)}, e.g. {msgs[0]}")
    unexpected = {
        c: [m for m in msgs if c not in EXPECTED_BY_SCENARIO.get(m.split(":", 1)[0], ())]
        for c, msgs in failures.items()
        if c not in EXPECTED_FAILURES
    }
    unexpected = {c: msgs for c, msgs in unexpected.items() if msgs}
    assert not unexpected, f"request failures a healthy llama-server should not cause: {unexpected}"


def _returned(soak: Soak) -> dict[str, dict]:
    """Chat responses the server sent (HTTP 200), by response id."""
    out = {}
    for rec in soak.records:
        if rec["path"].endswith("/chat/completions") and rec["status"] == 200:
            counts = server_counts(rec["body"])
            if counts["id"]:
                out[counts["id"]] = counts
    return out


@pytest.mark.timeout(900)
def test_every_logged_token_count_is_the_servers_usage(soak):
    """llama-server sends `usage` on streams too (stream_options.include_usage), so every count
    soaktui logged must be the server's own: prompt, completion and cached prompt tokens."""
    returned = _returned(soak)
    answered = [e for e in soak.events if e["kind"] == "request" and e["response_id"]]
    assert sum(e["ok"] for e in answered) >= 10
    assert {e["stream"] for e in answered} == {True, False}
    checked = 0
    for e in answered:
        srv = returned.get(e["response_id"])
        if srv is None or srv["usage"] is None:
            assert e["error_class"] == "cancelled", e  # only a request cut by the stop lacks usage
            continue
        usage = srv["usage"]
        where = f"{e['scenario']} request {e['response_id']}"
        assert e["token_source"] == "usage", where
        assert e["output_tokens"] == usage["completion_tokens"], where
        assert e["prompt_tokens"] == usage["prompt_tokens"], where
        assert e["cached_prompt_tokens"] == usage["prompt_tokens_details"]["cached_tokens"], where
        assert e["finish_reason"] == srv["finish_reason"], where
        if e["stream"]:
            assert e["chunks"] == srv["chunks"], where
        checked += 1
    assert checked >= 10


@pytest.mark.timeout(900)
def test_telemetry_reads_the_servers_metrics_and_slots(soak):
    """Rows from /metrics (requests processing/deferred, throughput gauges) and /slots (busy and
    total slots) for the llama.cpp provider. This build has no kv_cache_usage_ratio metric."""
    rows = [
        row
        for e in soak.events
        if e["kind"] == "telemetry"
        for row in e.get("servers") or []
        if row["provider"] == soak.provider
    ]
    assert rows, [e.get("unavailable") for e in soak.events if e["kind"] == "telemetry"][:3]
    for row in rows:
        assert row["kind"] == LLAMACPP and "unavailable" not in row, row
        # A scrape may time out (1 s) while two CPU cores are busy with a long prompt: that row is
        # `partial` and says so. Anything else (a 404, a parse failure) is a reader bug.
        for problem in filter(None, row.get("partial", "").split("; ")):
            assert "no answer within" in problem, row
    complete = [r for r in rows if "partial" not in r]
    print(f"\ntelemetry: {len(rows)} server rows, {len(rows) - len(complete)} partial; e.g. {complete[-1:]}")
    assert len(complete) >= 3, rows
    for row in complete:
        assert "/metrics" in row["source"] and "/slots" in row["source"], row
        assert row["slots_total"] == SLOTS, row
        assert 0 <= row["slots_busy"] <= SLOTS, row
        assert row["requests_processing"] >= 0 and row["requests_deferred"] >= 0, row
    # The figures are live: the soak kept the server busy, and tokens went through between scrapes.
    assert any(r["requests_processing"] >= 1 or r["slots_busy"] >= 1 for r in complete), complete
    assert any((r.get("predicted_tps") or 0) > 0 for r in complete), complete
    assert any((r.get("prompt_tps") or 0) > 0 for r in complete), complete


@pytest.mark.timeout(900)
def test_server_timings_reach_the_events_and_gen_tps_agrees_with_the_servers(soak):
    """llama.cpp's `timings` (last chunk / response body) become server_gen_tps and
    server_prompt_tps; usage.prompt_tokens_details.cached_tokens becomes cached_prompt_tokens.

    Both speeds mean the same thing: llama.cpp's predicted_per_second is (n_gen - 1) decode steps
    over the time from the first sampled token to the last (server_slot_stats::n_gen_tps, "the
    first token is free"); soaktui's gen_tps is (output tokens - 1) over first to last content
    chunk. They differ by network and scheduling noise, and by the end token, which the server
    samples (and counts) but does not send as content."""
    returned = _returned(soak)
    ok = [e for e in soak.events if e["kind"] == "request" and e["ok"]]
    for e in ok:
        t = returned[e["response_id"]]["timings"]
        assert t, e
        where = f"{e['scenario']} {e['response_id']}"
        assert e["cached_prompt_tokens"] is not None, where
        want_gen = round(t["predicted_per_second"], 3) if t["predicted_per_second"] else None
        want_prompt = round(t["prompt_per_second"], 3) if t["prompt_per_second"] else None
        assert e["server_gen_tps"] == want_gen, where
        assert e["server_prompt_tps"] == want_prompt, where
    assert any(e["server_gen_tps"] for e in ok) and any(e["server_prompt_tps"] for e in ok)
    assert any(e["cached_prompt_tokens"] for e in ok), "llama-server's prompt cache never hit"

    pairs = [
        (e["scenario"], e["output_tokens"], e["gen_tps"], e["server_gen_tps"])
        for e in _long_streams(soak.events)
        if e["gen_tps"] and e["server_gen_tps"]
    ]
    assert len(pairs) >= MIN_LONG_STREAMS, pairs
    ratios = [g / s for _, _, g, s in pairs]
    median = statistics.median(ratios)
    table = "\n".join(
        f"  {sc:<16} {n:>4} tokens  soaktui {g:8.2f} t/s  server {s:8.2f} t/s  ratio {g / s:.3f}"
        for sc, n, g, s in pairs
    )
    print(f"\ngen_tps / server_gen_tps over {len(pairs)} streams, median {median:.3f}:\n{table}")
    assert abs(median - 1) <= GEN_TPS_TOLERANCE, (
        f"soaktui's gen_tps and llama.cpp's predicted_per_second disagree: median ratio {median:.3f}\n{table}"
    )

    # Prompt speed: soaktui's prompt_tps is processed prompt tokens / TTFT, llama.cpp's
    # prompt_per_second the same tokens over its own prompt time. TTFT also holds the HTTP round trip,
    # templating, tokenising and a wait for the other slot, which only a long prompt makes negligible.
    long_prompts = [
        (e["prompt_tokens"] - (e["cached_prompt_tokens"] or 0), e["prompt_tps"], e["server_prompt_tps"])
        for e in ok
        if e["stream"]
        and e["prompt_tps"]
        and e["server_prompt_tps"]
        and e["prompt_tokens"] - (e["cached_prompt_tokens"] or 0) >= LONG_PROMPT_TOKENS
    ]
    assert long_prompts, f"no streamed request processed {LONG_PROMPT_TOKENS} prompt tokens or more"
    prompt_median = statistics.median(p / s for _, p, s in long_prompts)
    print(
        f"prompt_tps / server_prompt_tps (prompts >= {LONG_PROMPT_TOKENS} tokens): median {prompt_median:.3f}, {long_prompts}"
    )
    assert abs(prompt_median - 1) <= GEN_TPS_TOLERANCE, long_prompts
