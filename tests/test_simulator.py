"""The built-in simulator, exercised over real loopback HTTP with httpx."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soaktui.scenarios.checks import run_checks
from soaktui.scenarios.prompt_bank import Prompt, PromptBank
from soaktui.simulator import FaultPlan, Persona, SimConfig, default_personas, run_in_thread
from soaktui.simulator.faults import decide, fault_rng, parse_fault_spec, plan_from_specs
from soaktui.simulator.forms import CODE, JSON, LIST, Form, detect, json_shape
from soaktui.simulator.loading import LoadState
from soaktui.simulator.reqlog import RequestLog
from soaktui.simulator.textgen import count_tokens, prose_tokens, split_tokens

pytestmark = pytest.mark.integration

FAST = 1000.0  # time compression for tests that do not look at pacing
QWEN = "sim-qwen2.5-7b-instruct"  # native tool calls, ctx 32768
LLAMA = "sim-llama-3.1-8b-instruct"  # llama3 text tool calls, ctx 8192
PHI = "sim-phi-3-mini-4k-instruct"  # no tools, ctx 4096
MISTRAL = "sim-mistral-7b-instruct-v0.3"
QWEN14 = "sim-qwen2.5-14b-instruct"  # hermes text tool calls
EMBED = "sim-nomic-embed-text-v1.5"
BIG = "sim-llama-3.3-70b-instruct"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "unit"],
        },
    },
}




@pytest.fixture
def sim(start_sim: Callable[..., Any]) -> Any:
    return start_sim()


def client(handle: Any, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", 10.0)
    return httpx.Client(base_url=handle.base_url, **kwargs)


def chat_body(model: str = QWEN, text: str = "Say something.", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(c: httpx.Client, body: dict[str, Any]) -> list[str]:
    """The `data:` payloads of a streamed chat completion."""
    with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        return [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]


# -- listings and flavors ---------------------------------------------------------------------------


def test_openai_models_listing(sim: Any) -> None:
    with client(sim) as c:
        r = c.get("/v1/models")
        assert r.status_code == 200
        body = r.json()
        assert body["object"] == "list"
        ids = [m["id"] for m in body["data"]]
        assert QWEN in ids and EMBED in ids and BIG in ids
        assert all(i.startswith("sim-") for i in ids)
        assert all(m["object"] == "model" and "owned_by" in m for m in body["data"])
        assert c.get("/api/tags").status_code == 404  # plain flavor: no native endpoints


def test_lmstudio_flavor(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="lmstudio")
    with client(sim) as c:
        v0 = {m["id"]: m for m in c.get("/api/v0/models").json()["data"]}
        q = v0[QWEN]
        assert set(q) >= {
            "id", "object", "type", "publisher", "arch", "compatibility_type", "quantization", "state",
            "max_context_length",
        }  # fmt: skip
        assert (q["type"], q["compatibility_type"], q["quantization"]) == ("llm", "gguf", "Q4_K_M")
        assert q["max_context_length"] == 32768 and q["state"] == "loaded"
        assert v0[EMBED]["type"] == "embeddings"
        assert v0[BIG]["state"] == "not-loaded"
        assert c.get(f"/api/v0/models/{PHI}").json()["max_context_length"] == 4096

        v1 = {m["key"]: m for m in c.get("/api/v1/models").json()["models"]}
        assert v1[QWEN]["capabilities"]["trained_for_tool_use"] is True
        assert v1[PHI]["capabilities"]["trained_for_tool_use"] is False
        assert v1[QWEN]["loaded_instances"][0]["config"]["context_length"] == 32768
        assert v1[EMBED]["type"] == "embedding" and "capabilities" not in v1[EMBED]
        assert v1[BIG]["size_bytes"] > 15e9 and v1[BIG]["loaded_instances"] == []


def test_ollama_flavor(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="ollama")
    with client(sim) as c:
        tags = {m["name"]: m for m in c.get("/api/tags").json()["models"]}
        name = f"{QWEN}:latest"
        assert tags[name]["details"]["parameter_size"] == "7.6B"
        assert tags[name]["details"]["quantization_level"] == "Q4_K_M"
        assert tags[name]["size"] > 0 and tags[name]["model"] == name

        show = c.post("/api/show", json={"model": name}).json()
        assert show["model_info"]["qwen2.context_length"] == 32768
        assert show["model_info"]["general.architecture"] == "qwen2"
        assert show["capabilities"] == ["completion", "tools"]
        assert c.post("/api/show", json={"model": f"{PHI}:latest"}).json()["capabilities"] == ["completion"]
        assert c.post("/api/show", json={"name": EMBED}).json()["capabilities"] == ["embedding"]
        assert c.post("/api/show", json={"model": "nope"}).status_code == 404

        assert c.get("/api/version").json()["version"]
        running = [m["name"] for m in c.get("/api/ps").json()["models"]]
        assert name in running and f"{BIG}:latest" not in running
        assert name in [m["id"] for m in c.get("/v1/models").json()["data"]]
        r = c.post("/v1/chat/completions", json=chat_body(name))
        assert r.status_code == 200 and r.json()["model"] == name


def test_llamacpp_flavor(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    with client(sim) as c:
        props = c.get("/props").json()
        assert props["default_generation_settings"]["n_ctx"] == 32768
        assert props["model_path"].endswith(".gguf") and props["build_info"]
        assert c.get("/props", params={"model": PHI}).json()["default_generation_settings"]["n_ctx"] == 4096
        assert c.get("/health").json() == {"status": "ok"}
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models[QWEN]["owned_by"] == "llamacpp"
        meta = models[QWEN]["meta"]
        assert meta["n_ctx_train"] == 32768 and meta["n_params"] == 7_600_000_000 and meta["size"] > 4e9


def test_vllm_flavor(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="vllm")
    with client(sim) as c:
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models[LLAMA]["max_model_len"] == 8192 and models[LLAMA]["owned_by"] == "vllm"
        assert c.get("/version").json()["version"]


# -- chat completions --------------------------------------------------------------------------------


def test_stream_chunk_shape_and_usage(sim: Any) -> None:
    body = chat_body(
        text="Tell me about rivers in exactly 40 tokens.", stream_options={"include_usage": True}
    )
    with client(sim) as c:
        events = sse_events(c, body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {ch["id"] for ch in chunks}
    assert len(ids) == 1
    for ch in chunks:
        assert list(ch)[:5] == ["id", "object", "created", "model", "choices"]
        assert ch["object"] == "chat.completion.chunk" and ch["model"] == QWEN
        assert "usage" in ch  # include_usage: null on every chunk but the last
    *body_chunks, usage_chunk = chunks
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] is not None
    assert all(ch["usage"] is None for ch in body_chunks)
    for ch in body_chunks:
        (choice,) = ch["choices"]
        assert set(choice) == {"index", "delta", "logprobs", "finish_reason"} and choice["index"] == 0
    assert body_chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    final = body_chunks[-1]["choices"][0]
    assert final["finish_reason"] == "stop" and final["delta"] == {}
    pieces = [ch["choices"][0]["delta"]["content"] for ch in body_chunks[1:-1]]
    assert all(ch["choices"][0]["finish_reason"] is None for ch in body_chunks[:-1])
    assert all(count_tokens(p) == 1 for p in pieces)  # one token per chunk
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == len(pieces) == 40 == count_tokens("".join(pieces))
    assert usage["prompt_tokens"] == count_tokens(body["messages"][0]["content"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    log = sim.requests_log()
    assert log[-1]["id"] == chunks[0]["id"] and log[-1]["completion_tokens"] == 40


def test_stream_without_include_usage_has_no_usage(sim: Any) -> None:
    with client(sim) as c:
        events = sse_events(c, chat_body())
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in ch and len(ch["choices"]) == 1 for ch in chunks)


def test_non_stream_usage_matches_content(sim: Any) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Write about 120 words on harbors, please."},
    ]
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json={"model": QWEN, "messages": messages})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == count_tokens(msg["content"])
    assert usage["prompt_tokens"] == sum(count_tokens(m["content"]) for m in messages)
    assert 120 <= len(msg["content"].split()) < 120 + 20  # whole sentences up to the asked length


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_gives_length(sim: Any, stream: bool) -> None:
    body = chat_body(text="Write about 500 words.", max_tokens=7, stream_options={"include_usage": True})
    with client(sim) as c:
        if stream:
            chunks = [json.loads(e) for e in sse_events(c, body)[:-1]]
            assert chunks[-2]["choices"][0]["finish_reason"] == "length"
            assert chunks[-1]["usage"]["completion_tokens"] == 7
            assert len(chunks) == 1 + 7 + 1 + 1  # role, tokens, finish, usage
        else:
            r = c.post("/v1/chat/completions", json=body).json()
            assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 7


def test_many_fast_tokens(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(speed=1e6)
    with client(sim) as c:
        chunks = sse_events(c, chat_body(text="Give me 5000 tokens.", stream_options={"include_usage": True}))
    assert json.loads(chunks[-2])["usage"]["completion_tokens"] == 5000
    assert len(chunks) == 5000 + 4


def test_bad_requests(sim: Any) -> None:
    with client(sim) as c:
        r = c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=chat_body("no-such-model"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        r = c.post("/v1/chat/completions", json=chat_body(EMBED))
        assert r.status_code == 400 and "embedding" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"model": QWEN})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
        r = c.post("/v1/chat/completions", json=chat_body(max_tokens="ten"))
        assert r.status_code == 400
        assert c.get("/v1/nothing-here").status_code == 404
        assert c.get("/v1/chat/completions").status_code == 405
        assert c.get("/v1/models").status_code == 200  # the connection is still fine
    log = sim.requests_log()
    assert [e["status"] for e in log] == [400, 404, 400, 400, 400]


@pytest.mark.parametrize(
    ("flavor", "wording"),
    [
        (
            "llamacpp",
            "request (4100 tokens) exceeds the available context size (4096 tokens), try increasing it",
        ),
        ("vllm", "However, your prompt contains at least 4097 input tokens, which exceeds this limit"),
        ("openai", "This model's maximum context length is 4096 tokens"),
        ("lmstudio", "model is loaded with context length of only 4096 tokens"),
    ],
)
def test_context_overflow_wording(start_sim: Callable[..., Any], flavor: str, wording: str) -> None:
    """A prompt over the window is refused in each server's words (Ollama cuts it instead: see
    test_simulator_servers.py); prompt + max_tokens over the window is refused only by the generic
    OpenAI flavor, the others stop the answer at the context end."""
    sim = start_sim(flavor=flavor)
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat_body(PHI, text=" ".join(["word"] * 4100)))
        assert r.status_code == 400
        assert wording in str(r.json()["error"])
        r = c.post("/v1/chat/completions", json=chat_body(PHI, text="two tokens", max_tokens=4000))
        assert r.status_code == 200
        r = c.post("/v1/chat/completions", json=chat_body(PHI, text="two tokens", max_tokens=4095))
        assert r.status_code == (400 if flavor == "openai" else 200)


def test_ttft_grows_with_prompt(start_sim: Callable[..., Any]) -> None:
    persona = Persona(id="sim-test", ttft_ms=0, prompt_tps=10_000, tps=10_000, context_length=100_000)
    sim = start_sim(personas=[persona], speed=1.0)
    prompt = " ".join(["word"] * 2000)  # 2000 tokens -> 200 ms of prompt processing
    with client(sim) as c:
        sse_events(c, chat_body("sim-test", text=prompt, max_tokens=3))
    (entry,) = sim.requests_log()
    assert entry["prompt_tokens"] == 2000
    assert entry["first_token_ns"] - entry["recv_ns"] >= 200_000_000  # a lower bound: sleeps never end early


# -- tool calls -------------------------------------------------------------------------------------


@pytest.fixture
def exact_sim(start_sim: Callable[..., Any]) -> Any:
    """The default personas without tool mistakes (their configured tool_accuracy is below 1)."""
    return start_sim(personas=[replace(p, tool_accuracy=1.0) for p in default_personas()])


def test_native_tool_calls(exact_sim: Any) -> None:
    sim = exact_sim
    body = chat_body(QWEN, "What is the weather in Paris right now?", tools=[WEATHER_TOOL])
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=body).json()
        choice = r["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_current_weather" and call["id"]
        assert json.loads(call["function"]["arguments"]) == {"location": "Paris", "unit": "celsius"}

        chunks = [
            json.loads(e) for e in sse_events(c, {**body, "stream_options": {"include_usage": True}})[:-1]
        ]
    deltas = [ch["choices"][0]["delta"] for ch in chunks[:-1] if ch["choices"]]
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert tool_deltas[0]["function"]["name"] == "get_current_weather" and tool_deltas[0]["id"]
    args = "".join(d["function"].get("arguments", "") for d in tool_deltas)
    assert json.loads(args) == {"location": "Paris", "unit": "celsius"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(tool_deltas)


@pytest.mark.parametrize(
    ("model", "marker"),
    [(QWEN14, "<tool_call>"), (LLAMA, '"parameters"'), (MISTRAL, "[TOOL_CALLS]")],
)
def test_text_tool_calls(exact_sim: Any, model: str, marker: str) -> None:
    sim = exact_sim
    body = chat_body(model, "Check the weather in Oslo.", tools=[WEATHER_TOOL])
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=body).json()
    msg = r["choices"][0]["message"]
    assert "tool_calls" not in msg and marker in msg["content"]
    assert "get_current_weather" in msg["content"] and "Oslo" in msg["content"]
    assert r["usage"]["completion_tokens"] == count_tokens(msg["content"])


def test_no_tool_call_when_not_relevant_or_unsupported(exact_sim: Any) -> None:
    sim = exact_sim
    with client(sim) as c:
        r = c.post(
            "/v1/chat/completions", json=chat_body(QWEN, "Tell me a story.", tools=[WEATHER_TOOL])
        ).json()
        assert r["choices"][0]["finish_reason"] == "stop" and r["choices"][0]["message"]["content"]
        r = c.post(
            "/v1/chat/completions", json=chat_body(PHI, "Weather in Paris?", tools=[WEATHER_TOOL])
        ).json()
        assert "tool_calls" not in r["choices"][0]["message"]
        forced = chat_body(QWEN, "Tell me a story.", tools=[WEATHER_TOOL], tool_choice="required")
        r = c.post("/v1/chat/completions", json=forced).json()
        assert r["choices"][0]["finish_reason"] == "tool_calls"


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [("http_429", 429), ("http_500", 500), ("http_503", 503)])
def test_http_faults(start_sim: Callable[..., Any], kind: str, status: int) -> None:
    sim = start_sim(faults=FaultPlan(every={kind: 1}))
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat_body())
        assert r.status_code == status and r.json()["error"]["message"]
        if status == 429:
            assert r.headers["retry-after"] == "1"
    assert sim.requests_log()[-1]["fault"] == kind


def test_drop_fault(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(faults=FaultPlan(every={"drop": 1}, after_tokens=3))
    seen = []
    stream_body = {**chat_body(), "stream": True}
    with client(sim) as c:
        with (
            pytest.raises(httpx.RemoteProtocolError),
            c.stream("POST", "/v1/chat/completions", json=stream_body) as r,
        ):
            assert r.status_code == 200
            seen.extend(line for line in r.iter_lines() if line.startswith("data: "))
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/v1/chat/completions", json=chat_body())
    assert len(seen) == 1 + 3  # role chunk and three tokens, then the connection was gone
    entry = sim.requests_log()[0]
    assert entry["fault"] == "drop" and entry["completion_tokens"] == 3 and entry["finish_reason"] is None


def test_stall_fault(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(faults=FaultPlan(every={"stall": 1}, stall_s=0.6, after_tokens=2))
    with client(sim, timeout=httpx.Timeout(10.0, read=0.15)) as c, pytest.raises(httpx.ReadTimeout):
        sse_events(c, chat_body())
    with client(sim) as c:  # a patient client gets the whole answer, with a gap in it
        events = sse_events(c, chat_body(stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    entry = sim.requests_log()[-1]
    assert entry["fault"] == "stall" and entry["finish_reason"] == "stop"
    assert entry["end_ns"] - entry["first_token_ns"] >= 600_000_000


def test_malformed_fault(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(faults=FaultPlan(every={"malformed": 1}, after_tokens=2))
    with client(sim) as c:
        events = sse_events(c, chat_body(text="Write 20 tokens."))
        r = c.post("/v1/chat/completions", json=chat_body())
    bad = []
    for e in events[:-1]:
        try:
            json.loads(e)
        except ValueError:
            bad.append(e)
    assert len(bad) == 1 and events[-1] == "[DONE]"
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_stream_error_fault(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(faults=FaultPlan(every={"stream_error": 1}, after_tokens=1))
    with client(sim) as c:
        events = sse_events(c, chat_body())
        assert c.post("/v1/chat/completions", json=chat_body()).status_code == 500
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["message"]


def test_every_n_and_persona_faults(start_sim: Callable[..., Any]) -> None:
    flaky = Persona(id="sim-flaky", faults=FaultPlan(every={"http_500": 2}))
    steady = Persona(id="sim-steady")
    sim = start_sim(personas=[flaky, steady], faults=FaultPlan(every={"http_503": 5}))
    with client(sim) as c:
        statuses = [
            c.post("/v1/chat/completions", json=chat_body(model)).status_code
            for model in ["sim-flaky", "sim-steady"] * 4
        ]
    # flaky's own 2nd and 4th requests fail with 500; the 5th request overall with 503
    assert statuses == [200, 200, 500, 200, 503, 200, 500, 200]


def _fault_run(start_sim: Callable[..., Any], seed: int) -> tuple[list[Any], list[str]]:
    plan = FaultPlan(rates={"http_429": 0.15, "http_500": 0.1, "malformed": 0.1})
    sim = start_sim(seed=seed, faults=plan)
    answers = []
    with client(sim) as c:
        for _ in range(30):
            r = c.post("/v1/chat/completions", json=chat_body(text="A few words, please."))
            try:
                answers.append(r.json()["choices"][0]["message"]["content"])
            except (ValueError, KeyError):
                answers.append(f"{r.status_code}: no answer")
    faults = [e["fault"] for e in sim.requests_log()]
    return faults, answers


def test_determinism_under_seed(start_sim: Callable[..., Any]) -> None:
    faults_a, texts_a = _fault_run(start_sim, seed=7)
    faults_b, texts_b = _fault_run(start_sim, seed=7)
    faults_c, texts_c = _fault_run(start_sim, seed=8)
    assert faults_a == faults_b
    assert texts_a == texts_b
    assert {"http_429", "http_500", "malformed", None} >= set(faults_a) and len(set(faults_a)) > 1
    assert faults_a != faults_c or texts_a != texts_c


@pytest.mark.unit
def test_fault_draws_do_not_depend_on_time() -> None:
    plan = FaultPlan(rates={"drop": 0.3, "stall": 0.3})
    first = [decide(fault_rng(3, "m", n), plan, n, FaultPlan(), n) for n in range(1, 200)]
    second = [decide(fault_rng(3, "m", n), plan, n, FaultPlan(), n) for n in range(1, 200)]
    assert first == second
    share = sum(f is not None for f in first) / len(first)
    assert 0.4 < share < 0.8


# -- outage, log, lifecycle -------------------------------------------------------------------------


def _wait_for_chat(c: httpx.Client, deadline_s: float = 10.0) -> int:
    """Poll until a chat request succeeds again; returns how many attempts failed."""
    failures = 0
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if c.post("/v1/chat/completions", json=chat_body(max_tokens=2)).status_code == 200:
                return failures
        except httpx.TransportError:
            pass
        failures += 1
        time.sleep(0.05)
    raise AssertionError("the simulator did not come back")


def test_outage_503(sim: Any) -> None:
    with client(sim) as c:
        assert c.post("/sim/control", json={"down_for_s": 1.0}).json()["ok"] is True
        r = c.post("/v1/chat/completions", json=chat_body())
        assert r.status_code == 503
        assert c.get("/v1/models").status_code == 200  # only chat is down
        _wait_for_chat(c)
        assert c.post("/sim/control", json={"down_for_s": "soon"}).status_code == 400
    assert sim.requests_log()[0]["fault"] == "outage"


def test_outage_close_and_refuse(sim: Any) -> None:
    with client(sim) as c:
        c.post("/sim/control", json={"down_for_s": 1.0, "mode": "close"})
        # The connection is aborted: a clean EOF or a reset, depending on timing.
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.post("/v1/chat/completions", json=chat_body())
        _wait_for_chat(c)
        c.post("/sim/control", json={"down_for_s": 1.0, "mode": "refuse"})
        with client(sim) as fresh, pytest.raises(httpx.ConnectError):  # a new connection: refused
            fresh.get("/v1/models")
        _wait_for_chat(c)
        assert c.post("/sim/control", json={"down_for_s": 1, "mode": "sideways"}).status_code == 400


def test_request_log_timing(sim: Any) -> None:
    with client(sim) as c:
        ids = []
        for stream in (True, False, True):
            if stream:
                ids.append(json.loads(sse_events(c, chat_body(max_tokens=5))[0])["id"])
            else:
                ids.append(c.post("/v1/chat/completions", json=chat_body(max_tokens=5)).json()["id"])
        data = c.get("/sim/requests").json()
        assert data["total"] == 3
        assert [e["id"] for e in data["data"]] == ids
        assert c.get("/sim/requests", params={"last": 1}).json()["data"][0]["id"] == ids[-1]
    for e in data["data"]:
        assert e["model"] == QWEN and e["status"] == 200 and e["completion_tokens"] == 5
        if e["stream"]:
            assert e["recv_ns"] <= e["first_token_ns"] <= e["end_ns"]
        else:
            assert e["first_token_ns"] is None and e["recv_ns"] <= e["end_ns"]
    assert abs(data["data"][0]["recv_ns"] - time.perf_counter_ns()) < 60e9  # one clock with ours


@pytest.mark.unit
def test_request_log_is_bounded() -> None:
    log = RequestLog(maxlen=3)
    for n in range(1, 6):
        rec = log.open(n, recv_ns=n * 10)
        rec.model, rec.status, rec.fault, rec.finish_reason = "m", 200, "drop", "length"
        log.close(rec)
    log.open(6, recv_ns=60)  # still in flight
    rows = log.entries()
    assert [r["n"] for r in rows] == [3, 4, 5, 6]
    assert rows[0]["fault"] == "drop" and rows[0]["finish_reason"] == "length" and rows[0]["model"] == "m"
    assert rows[-1]["end_ns"] is None
    assert [r["n"] for r in log.entries(last=2)] == [5, 6]


def test_keep_alive_and_chunked_request_body(sim: Any) -> None:
    body = json.dumps(chat_body(max_tokens=3)).encode()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as s:
        plain = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
        half = len(body) // 2
        chunked = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
        )
        closing = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        s.sendall(plain + chunked + closing)  # pipelined on one connection
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert b'"completion_tokens":3' in data


def test_run_in_thread_start_stop() -> None:
    with run_in_thread(SimConfig(speed=FAST)) as handle:
        assert handle.base_url == f"http://127.0.0.1:{handle.port}"
        assert httpx.get(handle.base_url + "/v1/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.base_url + "/v1/models")
    handle.stop()  # stopping twice is harmless


def test_stop_with_a_stream_in_flight() -> None:
    handle = run_in_thread(SimConfig(speed=1.0))
    stream_body = {**chat_body(BIG), "stream": True}
    with (
        httpx.Client(base_url=handle.base_url, timeout=10) as c,
        c.stream("POST", "/v1/chat/completions", json=stream_body) as r,
    ):
        assert r.status_code == 200
        handle.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()


# -- units --------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_prose_is_counted_exactly() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        n = rng.randint(1, 400)
        pieces = prose_tokens(rng, n_tokens=n)
        assert len(pieces) == n == count_tokens("".join(pieces))
    text = '  {"a": [1, 2.5]}\n\nsome words, here!  '
    assert "".join(split_tokens(text)) == text and len(split_tokens(text)) == count_tokens(text)


@pytest.mark.unit
@given(st.text())
def test_split_tokens_round_trips(text: str) -> None:
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    if count_tokens(text):
        assert len(pieces) == count_tokens(text)


@pytest.mark.unit
def test_fault_specs() -> None:
    assert parse_fault_spec("drop=0.05") == ("drop", "rate", 0.05)
    assert parse_fault_spec("429=every:3") == ("http_429", "every", 3.0)
    plan = plan_from_specs(["stall=0.1", "http_503=every:4"], stall_s=2.0)
    assert plan.rates == {"stall": 0.1} and plan.every == {"http_503": 4} and plan.stall_s == 2.0
    for bad in ["drop", "drop=2", "nope=0.1", "drop=every:0", "drop=lots"]:
        with pytest.raises(ValueError):
            parse_fault_spec(bad)
    with pytest.raises(ValueError):
        FaultPlan(rates={"drop": 0.7, "stall": 0.7})


# -- command line -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_cli_serves_until_sigterm() -> None:
    cmd = [
        sys.executable,
        "-m",
        "soaktui.simulator.cli",
        "--port",
        "0",
        "--flavor",
        "ollama",
        "--speed",
        "100",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("soaktui simulator (ollama) listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[-1]
            assert httpx.get(url + "/api/version", timeout=10).status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.e2e
def test_cli_rejects_bad_fault_spec() -> None:
    cmd = [sys.executable, "-m", "soaktui.simulator.cli", "--port", "0", "--fault", "drop=often"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "drop=often" in lines[0]


def test_run_in_thread_reports_a_busy_port(sim: Any) -> None:
    with pytest.raises(OSError):
        run_in_thread(SimConfig(), port=sim.port)


# -- answers in the asked form ----------------------------------------------------------------------

PROMPTS = PromptBank.load([Path(__file__).resolve().parent.parent / "prompts"]).prompts
FORM_CHECKS = {"code_block", "sql", "items", "json"}


def _with_compliance(rate: float) -> list[Persona]:
    return [replace(p, compliance=rate) for p in default_personas()]


def _ask(c: httpx.Client, model: str, p: Prompt, stream: bool) -> tuple[str, int, str]:
    """(answer, usage completion_tokens, finish_reason) for a bank prompt, sent as prompt_variety does."""
    body = chat_body(model, p.prompt, max_tokens=int(p.target_tokens * 1.5) + 64)
    if not stream:
        r = c.post("/v1/chat/completions", json=body).json()
        return (
            r["choices"][0]["message"]["content"],
            r["usage"]["completion_tokens"],
            r["choices"][0]["finish_reason"],
        )
    events = sse_events(c, {**body, "stream_options": {"include_usage": True}})
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [ch["choices"][0]["delta"].get("content") for ch in chunks[1:-2]]
    assert all(isinstance(x, str) and count_tokens(x) == 1 for x in pieces)  # one token per chunk
    return (
        "".join(pieces),
        chunks[-1]["usage"]["completion_tokens"],
        chunks[-2]["choices"][0]["finish_reason"],
    )


@pytest.mark.parametrize(("model", "stream"), [(QWEN, True), (PHI, False), (MISTRAL, True)])
def test_answers_follow_the_asked_form(start_sim: Callable[..., Any], model: str, stream: bool) -> None:
    sim = start_sim(personas=_with_compliance(1.0), speed=1e5)
    with client(sim) as c:
        for p in PROMPTS:
            text, tokens, finish = _ask(c, model, p, stream)
            assert run_checks(text, p.checks) == dict.fromkeys(p.checks, True), (p.id, text)
            assert tokens == count_tokens(text) and finish == "stop"


def test_answers_are_prose_when_compliance_is_zero(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(personas=_with_compliance(0.0), speed=1e5)
    form_prompts = [p for p in PROMPTS if FORM_CHECKS & set(p.checks)]
    assert len(form_prompts) >= 15
    with client(sim) as c:
        for p in PROMPTS:
            text, tokens, _ = _ask(c, QWEN, p, stream=False)
            assert tokens == count_tokens(text)
            passed = all(run_checks(text, p.checks).values())
            assert passed == (p not in form_prompts), (p.id, text)
            assert "```" not in text and not text.lstrip().startswith(("{", "1.", "-"))


def test_compliance_rate_is_drawn_per_request(start_sim: Callable[..., Any]) -> None:
    personas = default_personas()
    sim = start_sim(personas=personas, speed=1e6, seed=11)
    rate = {p.id: p.compliance for p in personas}
    assert rate[QWEN] > rate[PHI]  # the report is to show models differing
    prompt = next(p for p in PROMPTS if p.id == "ps-debug-001")
    n = 200
    with client(sim) as c:
        for model in (QWEN, PHI):
            ok = sum(
                all(run_checks(_ask(c, model, prompt, False)[0], prompt.checks).values()) for _ in range(n)
            )
            assert abs(ok / n - rate[model]) < 0.12, (model, ok / n)


def test_form_answer_cut_by_max_tokens(sim: Any) -> None:
    p = next(p for p in PROMPTS if p.id == "cg-react-001")
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat_body(QWEN, p.prompt, max_tokens=12)).json()
    text = r["choices"][0]["message"]["content"]
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 12 == count_tokens(text)


def test_form_answers_are_seeded(start_sim: Callable[..., Any]) -> None:
    p = next(p for p in PROMPTS if p.id == "bl-wf-001")
    answers = []
    for seed in (5, 5, 6):
        sim = start_sim(seed=seed, personas=_with_compliance(1.0))
        with client(sim) as c:
            answers.append(_ask(c, QWEN, p, stream=False)[0])
    assert answers[0] == answers[1] != answers[2]
    obj = json.loads(answers[0])
    assert set(obj) == {"tiers", "escalation_days"} and isinstance(obj["escalation_days"], int)
    assert len(obj["tiers"]) == 3 and all(set(t) == {"limit", "approver"} for t in obj["tiers"])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("prompt", "form"),
    [
        ("Write it in Go. Use a ```go fenced block.", Form(CODE, lang="go")),
        ("Write a bash script that rotates logs.", Form(CODE, lang="bash")),
        ("Write a Go function that sums a slice.", Form(CODE, lang="go")),
        ("Write a GitHub Actions workflow that runs on Python 3.12.", Form(CODE, lang="yaml")),
        ("Give the answer. Return only JSON.", Form(JSON)),
        ("Answer as JSON, please.", Form(JSON, fenced=True)),
        ("Reply in a ```json block.", Form(JSON, lang="json", fenced=True)),
        ("List seven risks as bullet points.", Form(LIST, items=7, numbered=False)),
        ("Give at least 4 ideas as a numbered list.", Form(LIST, items=4, at_least=True)),
        ("List the steps to restart a service.", Form(LIST)),
        ("Say something.", None),
        ("Write about 300 words on the design of an idempotent payment webhook handler.", None),
        ("Explain how a linked list works in about 200 words.", None),
        ("Question: what is the escrow release code for the quarter? Reply with the code only.", None),
    ],
)
def test_detect_form(prompt: str, form: Form | None) -> None:
    assert detect(prompt) == form


@pytest.mark.unit
def test_detect_reads_only_the_ends_of_a_long_prompt() -> None:
    filler = "Plain filler sentence without any request. " * 2000
    assert detect(filler + "Return only JSON.") == Form(JSON)
    assert detect("List 3 things as bullets. " + filler) == Form(LIST, items=3, numbered=False)
    assert detect(filler[:20000] + "List 3 things as bullets. " + filler[:20000]) is None


@pytest.mark.unit
def test_json_shape_from_backticked_keys() -> None:
    text = "keys `approach`, `data_needed` (a list) and `cold_start`, plus `owner` (an object with `name`)."
    assert json_shape(text) == [
        ("approach", "scalar", ()),
        ("data_needed", "list", ()),
        ("cold_start", "scalar", ()),
        ("owner", "object", ("name",)),
    ]


# -- cold loads -------------------------------------------------------------------------------------


def _chat_log(c: httpx.Client, model: str) -> dict[str, Any]:
    """Stream a short answer from `model`; its request-log entry."""
    events = sse_events(c, chat_body(model, max_tokens=3))
    rid = json.loads(events[0])["id"]
    return next(e for e in c.get("/sim/requests").json()["data"] if e["id"] == rid)


def test_lmstudio_unload_then_cold_load(start_sim: Callable[..., Any]) -> None:
    personas = [replace(p, load_ms=4000.0) if p.id == QWEN else p for p in default_personas()]
    sim = start_sim(flavor="lmstudio", personas=personas, speed=200.0)
    load_ns = int(4000.0 * 1e6 / 200.0)

    def state(c: httpx.Client, model: str) -> tuple[str, int]:
        v0 = c.get(f"/api/v0/models/{model}").json()["state"]
        v1 = {m["key"]: m for m in c.get("/api/v1/models").json()["models"]}[model]
        return v0, len(v1["loaded_instances"])

    with client(sim) as c:
        assert state(c, QWEN) == ("loaded", 1)
        assert _chat_log(c, QWEN)["load_ns"] == 0
        r = c.post("/api/v1/models/unload", json={"instance_id": QWEN})
        assert r.status_code == 200 and r.json() == {"instance_id": QWEN}
        assert state(c, QWEN) == ("not-loaded", 0)
        again = c.post("/api/v1/models/unload", json={"instance_id": QWEN})
        assert again.status_code == 404 and again.json()["error"]["code"] == "model_not_found"
        assert c.post("/api/v1/models/unload", json={"instance_id": "nope"}).status_code == 404
        assert c.post("/api/v1/models/unload", json={}).status_code == 400

        cold = _chat_log(c, QWEN)  # the next request pays the load before its first token
        assert cold["status"] == 200 and cold["load_ns"] == load_ns
        assert cold["first_token_ns"] - cold["recv_ns"] >= load_ns
        assert state(c, QWEN) == ("loaded", 1)
        assert _chat_log(c, QWEN)["load_ns"] == 0  # loaded again

        big = _chat_log(c, BIG)  # listed as not loaded from the start: its first request loads it
        assert big["load_ns"] > 0 and state(c, BIG) == ("loaded", 1)


def test_ollama_unload_then_cold_load(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="ollama")
    name = f"{QWEN}:latest"

    def running(c: httpx.Client) -> list[str]:
        return [m["name"] for m in c.get("/api/ps").json()["models"]]

    with client(sim) as c:
        assert name in running(c)
        r = c.post("/api/generate", json={"model": name, "keep_alive": 0})
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"model", "created_at", "response", "done", "done_reason"}
        assert (body["model"], body["response"], body["done"], body["done_reason"]) == (
            name,
            "",
            True,
            "unload",
        )
        assert name not in running(c)
        cold = _chat_log(c, name)
        assert cold["load_ns"] == int(default_personas()[0].load_ms * 1e6 / FAST) > 0
        assert cold["first_token_ns"] - cold["recv_ns"] >= cold["load_ns"]
        assert name in running(c) and _chat_log(c, name)["load_ns"] == 0

        assert (
            c.post("/api/generate", json={"model": QWEN, "keep_alive": "0s"}).json()["done_reason"]
            == "unload"
        )
        missing = c.post("/api/generate", json={"model": "nope", "keep_alive": 0})
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
        assert c.post("/api/generate", json={"model": name, "prompt": "hi"}).status_code == 501


def test_no_cold_loads_where_the_server_cannot_unload(sim: Any) -> None:
    with client(sim) as c:
        assert _chat_log(c, BIG)["load_ns"] == 0
        assert c.post("/api/v1/models/unload", json={"instance_id": QWEN}).status_code == 404


@pytest.mark.unit
def test_concurrent_requests_share_one_load() -> None:
    p = Persona(id="sim-x", loaded=False)
    loads = LoadState([p], cold_loads=True)
    assert not loads.is_loaded(p)
    assert loads.wait_ns(p, now_ns=1_000, load_ns=500) == 500  # starts the load
    assert loads.is_loaded(p)
    assert loads.wait_ns(p, now_ns=1_200, load_ns=500) == 300  # waits for the same load
    assert loads.wait_ns(p, now_ns=1_600, load_ns=500) == 0
    assert loads.unload(p) and not loads.unload(p)
    assert loads.wait_ns(p, now_ns=2_000, load_ns=500) == 500
    always = LoadState([p], cold_loads=False)
    assert always.is_loaded(p) and not always.unload(p) and always.wait_ns(p, 0, 500) == 0
    assert Persona(id="sim-big", params_b=70).load_ms > Persona(id="sim-small", params_b=3).load_ms > 0


# -- exit with the parent ---------------------------------------------------------------------------

SIM_CMD = [sys.executable, "-m", "soaktui.simulator.cli", "--port", "0", "--exit-with-parent"]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, deadline_s: float = 20.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/v1/models", timeout=5)
    except httpx.ConnectError:
        return True
    return False


@pytest.mark.e2e
def test_simulator_exits_when_its_parent_is_killed() -> None:
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"sim = subprocess.Popen({SIM_CMD!r} + [str(os.getpid())])\n"
        "print(sim.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    with subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        sim_pid = int(parent.stdout.readline())
        try:
            line = parent.stdout.readline()  # the simulator shares the parent's stdout
            url = line.strip().rsplit(" ", 1)[-1]
            assert "listening on" in line and httpx.get(url + "/v1/models", timeout=10).status_code == 200
            parent.send_signal(signal.SIGKILL)
            parent.wait(timeout=10)
            assert _wait_gone(sim_pid)
            assert _refused(url)
        finally:
            if not _gone(sim_pid):
                psutil.Process(sim_pid).kill()


@pytest.mark.e2e
def test_simulator_exits_when_a_watched_process_dies_unreaped() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) as watched:
        cmd = [*SIM_CMD, str(watched.pid)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as sim:
            try:
                assert sim.stdout is not None
                url = sim.stdout.readline().strip().rsplit(" ", 1)[-1]
                assert httpx.get(url + "/v1/models", timeout=10).status_code == 200
                watched.send_signal(signal.SIGKILL)  # not reaped yet: a zombie still has its pid
                assert sim.wait(timeout=20) == 0
                assert "is gone" in (sim.stderr.read() if sim.stderr else "")
                assert _refused(url)
            finally:
                if sim.poll() is None:
                    sim.kill()
        watched.wait(timeout=10)


@pytest.mark.e2e
def test_cli_rejects_a_bad_parent_pid() -> None:
    proc = subprocess.run([*SIM_CMD, "0"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--exit-with-parent" in proc.stderr


def test_a_models_answers_and_faults_do_not_depend_on_other_models_requests(start_sim):
    """Draws are keyed by seed, model and the model's own request count: interleaving another
    model's requests changes nothing for this one (statistical tests see the same sample)."""
    plan = FaultPlan(rates={"http_500": 0.3})

    def answers(interleave: bool) -> list[tuple[int, str]]:
        handle = start_sim(seed=11, faults=plan)
        out = []
        with client(handle) as c:
            for _ in range(12):
                if interleave:
                    c.post("/v1/chat/completions", json=chat_body(LLAMA))
                r = c.post("/v1/chat/completions", json=chat_body(QWEN, max_tokens=20))
                text = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else ""
                out.append((r.status_code, text))
        return out

    alone, mixed = answers(False), answers(True)
    assert alone == mixed
    assert {s for s, _ in alone} == {200, 500}  # the faults did strike
