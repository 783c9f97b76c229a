"""Each simulator flavor behaves as its real server does (docs/servers.md, the sources cited in
soaktui/simulator/): real HTTP over loopback, one test per behaviour, exact shapes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from soaktui.providers import load_state
from soaktui.providers.client import ChatClient
from soaktui.providers.discovery import discover
from soaktui.providers.selection import CLOUD_REASON, select_models
from soaktui.providers.types import ModelInfo, Provider
from soaktui.simulator import FaultPlan, Persona, SimConfig, default_personas, run_in_thread
from soaktui.simulator import cli as sim_cli
from soaktui.simulator.context import old_llamacpp_truncation
from soaktui.telemetry import prometheus

pytestmark = pytest.mark.integration

FAST = 1000.0
QWEN = "sim-qwen2.5-7b-instruct"  # native tools, training window 32768
LLAMA = "sim-llama-3.1-8b-instruct"  # llama3 text tool calls, 8192
PHI = "sim-phi-3-mini-4k-instruct"  # 4096
BIG = "sim-llama-3.3-70b-instruct"  # not loaded at start
RECORDED = Path(__file__).resolve().parent / "data" / "replays"




def client(handle: Any) -> httpx.Client:
    return httpx.Client(base_url=handle.base_url, timeout=20.0)


def words(n: int) -> str:
    """A prompt of exactly n simulator tokens."""
    return " ".join(["word"] * n)


def chat(model: str, text: str = "Say something.", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def stream_raw(c: httpx.Client, body: dict[str, Any], path: str = "/v1/chat/completions") -> tuple[int, str]:
    with c.stream("POST", path, json={**body, "stream": True}) as r:
        return r.status_code, r.read().decode()


def data_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in data_events(text) if e != "[DONE]"]


def log_entry(sim: Any, rid: str) -> dict[str, Any]:
    return next(e for e in sim.requests_log() if e["id"] == rid)


# == Ollama =========================================================================================


def test_ollama_runtime_context_is_not_the_training_window(start_sim: Callable[..., Any]) -> None:
    personas = [replace(p, num_ctx=8192) if p.id == LLAMA else p for p in default_personas()]
    sim = start_sim(flavor="ollama", personas=personas)
    with client(sim) as c:
        show = c.post("/api/show", json={"model": f"{QWEN}:latest"}).json()
        assert show["model_info"]["qwen2.context_length"] == 32768 and "parameters" not in show
        assert (
            c.post("/api/show", json={"model": LLAMA}).json()["parameters"] == "num_ctx" + " " * 24 + "8192"
        )
        ps = {m["name"]: m for m in c.get("/api/ps").json()["models"]}
        assert ps[f"{QWEN}:latest"]["context_length"] == 4096  # v0.6.7+ default, not 32768
        assert ps[f"{LLAMA}:latest"]["context_length"] == 8192  # the Modelfile's num_ctx
        entry = ps[f"{QWEN}:latest"]
        assert set(entry) == {
            "name", "model", "modified_at", "size", "digest", "details", "expires_at", "size_vram", "context_length",
        }  # fmt: skip
        assert entry["size_vram"] == entry["size"] and entry["expires_at"].startswith("2318-")
        assert c.get("/api/version").json() == {"version": "0.12.6-sim"}
    big = start_sim(flavor="ollama", ollama_num_ctx=16384)
    with client(big) as c:
        ps = {m["name"]: m["context_length"] for m in c.get("/api/ps").json()["models"]}
        assert ps[f"{QWEN}:latest"] == 16384 and ps[f"{PHI}:latest"] == 4096  # capped at the training window


@pytest.mark.parametrize(
    ("version", "num_ctx", "has_ps_context"),
    [("0.6.5", 2048, False), ("0.9.6", 4096, False), ("0.10.0", 4096, True)],
)
def test_ollama_default_context_by_version(
    start_sim: Callable[..., Any], version: str, num_ctx: int, has_ps_context: bool
) -> None:
    sim = start_sim(flavor="ollama", server_version=version)
    with client(sim) as c:
        entry = c.get("/api/ps").json()["models"][0]
        assert ("context_length" in entry) is has_ps_context
        r = c.post("/v1/chat/completions", json=chat(f"{QWEN}:latest", words(9000))).json()
        assert r["usage"]["prompt_tokens"] == num_ctx


def test_ollama_cuts_an_over_long_prompt_silently(start_sim: Callable[..., Any]) -> None:
    """v0.4.3-v0.24: keep num_keep + the tail, usage.prompt_tokens == num_ctx, HTTP 200, and the
    context shifts so only max_tokens ends the answer."""
    persona = Persona(id="sim-ctx", context_length=32768, ttft_ms=0, prompt_tps=40960, tps=100_000)
    sim = start_sim(flavor="ollama", personas=[persona], speed=1.0)
    with client(sim) as c:
        r = c.post(
            "/v1/chat/completions", json=chat("sim-ctx", words(12000) + " Write 600 tokens.", max_tokens=300)
        )
        assert r.status_code == 200
        body = r.json()
        assert body["usage"]["prompt_tokens"] == 4096
        assert body["usage"]["completion_tokens"] == 300 and body["choices"][0]["finish_reason"] == "length"
        events = data_events(stream_raw(c, chat("sim-ctx", words(12000), max_tokens=3))[1])
    entry = log_entry(sim, json.loads(events[0])["id"])
    assert entry["prompt_tokens"] == 4096
    # time to first token is the cut prompt's: 4096 tokens at 40960/s = 100 ms (12000 would be 293)
    assert 100e6 <= entry["first_token_ns"] - entry["recv_ns"] < 250e6


def test_ollama_drops_old_messages_first(start_sim: Callable[..., Any]) -> None:
    """server/prompt.go chatPrompt: keep the last message and the system messages, drop old turns."""
    sim = start_sim(flavor="ollama")
    messages = [
        {"role": "system", "content": words(100)},
        {"role": "user", "content": words(3000)},
        {"role": "assistant", "content": words(1000)},
        {"role": "user", "content": words(1000)},
    ]
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json={"model": QWEN, "messages": messages}).json()
    assert r["usage"]["prompt_tokens"] == 100 + 1000 + 1000


@pytest.mark.parametrize(("version", "reported"), [("0.30.5", 4095), ("0.30.11", 2051)])
def test_ollama_llama_server_era_cuts(start_sim: Callable[..., Any], version: str, reported: int) -> None:
    sim = start_sim(flavor="ollama", server_version=version)
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat(QWEN, words(5000), max_tokens=2)).json()
        assert r["usage"]["prompt_tokens"] == reported
        # v0.30.11+: a prompt of num_ctx-1 tokens is sent whole
        fits = c.post("/v1/chat/completions", json=chat(QWEN, words(4095), max_tokens=2)).json()
        assert fits["usage"]["prompt_tokens"] == 4095


def test_ollama_ignores_max_completion_tokens(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="ollama")
    with client(sim) as c:
        r = c.post(
            "/v1/chat/completions", json=chat(QWEN, "Give me 30 tokens.", max_completion_tokens=5)
        ).json()
        assert r["usage"]["completion_tokens"] == 30
        r = c.post("/v1/chat/completions", json=chat(QWEN, "Give me 30 tokens.", max_tokens=5)).json()
        assert r["usage"]["completion_tokens"] == 5 and r["choices"][0]["finish_reason"] == "length"


def test_ollama_cloud_model_is_listed_and_excluded_by_discovery(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="ollama")
    with client(sim) as c:
        tags = {m["name"]: m for m in c.get("/api/tags").json()["models"]}
        cloud = tags["gpt-oss:120b-cloud"]
        assert (cloud["remote_host"], cloud["remote_model"], cloud["size"]) == (
            "https://ollama.com:443",
            "gpt-oss:120b",
            384,
        )
        assert "remote_host" not in tags[f"{QWEN}:latest"]
        show = c.post("/api/show", json={"model": "gpt-oss:120b-cloud"}).json()
        assert show["model_info"] == {
            "general.architecture": "gptoss",
            "general.basename": "gpt-oss",
            "gptoss.context_length": 131072,
            "gptoss.embedding_length": 2880,
        }
        assert show["remote_host"] == "https://ollama.com:443" and "tools" in show["capabilities"]
        assert "gpt-oss:120b-cloud" not in [m["name"] for m in c.get("/api/ps").json()["models"]]
        r = c.post("/v1/chat/completions", json=chat("gpt-oss:120b-cloud"))
        assert r.status_code == 200 and r.json()["model"] == "gpt-oss:120b-cloud"
    providers, _, _ = asyncio.run(discover([sim.base_url], probe_defaults=False))
    [p] = providers
    cloud_model = next(m for m in p.models if m.id == "gpt-oss:120b-cloud")
    assert cloud_model.cloud is True
    selection = select_models(providers)
    assert (cloud_model.key, CLOUD_REASON) in [(m.key, r) for m, r in selection.excluded]
    assert all(not m.cloud for m in selection.selected)
    old = start_sim(flavor="ollama", server_version="0.11.10")
    with client(old) as c:
        assert "gpt-oss:120b-cloud" not in [m["name"] for m in c.get("/api/tags").json()["models"]]


def test_ollama_stream_error_is_an_empty_chunk_then_nothing(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="ollama", faults=FaultPlan(every={"stream_error": 1}, after_tokens=3))
    with client(sim) as c:
        status, text = stream_raw(c, chat(QWEN, "Write 20 tokens."))
        assert status == 200
        events = data_events(text)
        assert "[DONE]" not in events and len(events) == 3 + 1
        last = json.loads(events[-1])
        assert last["model"] == "" and last["system_fingerprint"] == "fp_ollama"
        assert last["choices"] == [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ]
        assert all(c["choices"][0]["finish_reason"] is None for c in map(json.loads, events))
        r = c.post("/v1/chat/completions", json=chat(QWEN))
        assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"


@pytest.mark.parametrize("version", ["0.12.6", "0.32.6"])
def test_ollama_chunk_wire_format(start_sim: Callable[..., Any], version: str) -> None:
    sim = start_sim(flavor="ollama", server_version=version)
    with client(sim) as c:
        _, text = stream_raw(c, chat(QWEN, "Write 4 tokens.", stream_options={"include_usage": True}))
    events = data_events(text)
    assert events[-1] == "[DONE]"
    cs = [json.loads(e) for e in events[:-1]]
    assert all(list(ch)[:5] == ["id", "object", "created", "model", "system_fingerprint"] for ch in cs)
    *tokens, finish, usage = cs
    assert all(list(ch["choices"][0]) == ["index", "delta", "finish_reason"] for ch in [*tokens, finish])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    if version == "0.12.6":  # every chunk carries the role; the done response is an empty content
        assert len(tokens) == 4 and all(t["choices"][0]["delta"]["role"] == "assistant" for t in tokens)
        assert finish["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    else:  # v0.32.6: role once, then finish_reason on its own chunk with an empty delta
        assert tokens[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert all("role" not in t["choices"][0]["delta"] for t in tokens[1:])
        assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("version", "type_"), [("0.12.6", "api_error"), ("0.18.0", "not_found_error")])
def test_ollama_error_type_by_version(start_sim: Callable[..., Any], version: str, type_: str) -> None:
    sim = start_sim(flavor="ollama", server_version=version)
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat("nope"))
    assert r.status_code == 404
    assert r.json() == {
        "error": {"message": "model 'nope' not found", "type": type_, "param": None, "code": None}
    }


# == llama.cpp ======================================================================================


def test_llamacpp_refuses_only_a_prompt_that_fills_the_slot(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    with client(sim) as c:
        for stream in (False, True):
            r = c.post("/v1/chat/completions", json=chat(PHI, words(4096), stream=stream))
            assert r.status_code == 400 and r.headers["content-type"] == "application/json"
            assert r.json() == {
                "error": {
                    "code": 400,
                    "message": "request (4096 tokens) exceeds the available context size (4096 tokens), try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 4096,
                    "n_ctx": 4096,
                }
            }
        # prompt + max_tokens over the context: accepted, stopped at the context end with "length"
        long = words(3990) + " Write 600 tokens."  # 3994 prompt tokens
        r = c.post("/v1/chat/completions", json=chat(PHI, long, max_tokens=500)).json()
        assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 102
        r = c.post("/v1/chat/completions", json=chat(PHI, words(4095), max_tokens=50)).json()
        assert r["usage"]["completion_tokens"] == 1 and r["choices"][0]["finish_reason"] == "length"


def _recorded_events(name: str) -> list[dict[str, Any]]:
    text = (RECORDED / name).read_text()
    return [json.loads(e) for e in data_events(text) if e != "[DONE]"]


def test_llamacpp_stream_matches_the_recorded_server(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    with client(sim) as c:
        status, text = stream_raw(c, chat(QWEN, "Write 5 tokens.", stream_options={"include_usage": True}))
    assert status == 200 and data_events(text)[-1] == "[DONE]"
    ours = chunks(text)
    real = _recorded_events("llamacpp_b11434_stream.http")
    assert [list(ch) for ch in (ours[0], ours[1], ours[-2], ours[-1])] == [
        list(ch) for ch in (real[0], real[1], real[-2], real[-1])
    ]
    assert ours[0]["choices"] == real[0]["choices"]  # role with content null
    assert [list(ch["choices"][0]) for ch in ours[:-1]] == [["finish_reason", "index", "delta"]] * (
        len(ours) - 1
    )
    usage, timings = ours[-1]["usage"], ours[-1]["timings"]
    assert list(usage) == list(real[-1]["usage"]) and list(timings) == list(real[-1]["timings"])
    assert usage["completion_tokens"] == 5 and usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert ours[0]["system_fingerprint"] == "b11434-sim"
    assert "timings" not in ours[-2] and "usage" not in ours[-2]


def test_llamacpp_timings_go_on_the_finish_chunk_without_include_usage(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    with client(sim) as c:
        _, text = stream_raw(c, chat(QWEN, "Write 5 tokens."))
    *_, finish = chunks(text)
    assert finish["choices"][0]["finish_reason"] == "stop" and "usage" not in finish
    assert finish["timings"]["predicted_n"] == 5


def test_llamacpp_non_stream_matches_the_recorded_server(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    real = json.loads((RECORDED / "llamacpp_b11434_nonstream.http").read_text().split("\n\n", 1)[1])
    with client(sim) as c:
        ours = c.post("/v1/chat/completions", json=chat(QWEN, "Write 5 tokens.", max_tokens=12)).json()
    assert list(ours) == list(real)
    assert list(ours["choices"][0]) == list(real["choices"][0])
    assert list(ours["usage"]) == list(real["usage"]) and list(ours["timings"]) == list(real["timings"])


def test_llamacpp_prompt_cache_and_timings(start_sim: Callable[..., Any]) -> None:
    persona = Persona(id="sim-slow", ttft_ms=0, prompt_tps=20_000, tps=1000, context_length=32768)
    sim = start_sim(flavor="llamacpp", personas=[persona], llamacpp_slots=1, speed=1.0)
    first = chat("sim-slow", words(2000) + " Write 10 tokens.")
    with client(sim) as c:
        a = c.post("/v1/chat/completions", json=first).json()
        b = c.post("/v1/chat/completions", json=first).json()  # the same prompt: all but one token cached
        p = a["usage"]["prompt_tokens"]
        assert a["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
        assert (a["timings"]["cache_n"], a["timings"]["prompt_n"]) == (0, p)
        assert b["usage"]["prompt_tokens"] == p  # usage counts the whole prompt, cached included
        assert b["usage"]["prompt_tokens_details"] == {"cached_tokens": p - 1}
        assert (b["timings"]["cache_n"], b["timings"]["prompt_n"]) == (p - 1, 1)
        # the next turn of the conversation reuses the prompt and the answer
        turn = {
            "model": "sim-slow",
            "messages": [
                *first["messages"],
                b["choices"][0]["message"],
                {"role": "user", "content": "And now 3 tokens."},
            ],
        }
        t = c.post("/v1/chat/completions", json=turn).json()
        assert (
            t["timings"]["cache_n"] == p + 10
            and t["timings"]["prompt_n"] == t["usage"]["prompt_tokens"] - p - 10
        )
    tm = a["timings"]
    assert tm["prompt_ms"] == pytest.approx(p / 20_000 * 1e3, abs=0.002)
    assert tm["prompt_per_second"] == pytest.approx(p / tm["prompt_ms"] * 1e3)
    assert tm["predicted_n"] == 10 and tm["predicted_ms"] == pytest.approx(9.0)  # the first token is free
    assert tm["predicted_per_token_ms"] == pytest.approx(1.0) and tm["predicted_per_second"] == pytest.approx(
        1000.0
    )
    log = sim.requests_log()
    ttft = [e["first_token_ns"] for e in log]  # non-stream: no first token stamp; compare end times
    assert ttft == [None, None, None]
    span = [e["end_ns"] - e["recv_ns"] for e in log]
    assert span[1] < span[0] - 50e6  # 2000 cached tokens are not processed again (100 ms less)


def test_llamacpp_props(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    with client(sim) as c:
        props = c.get("/props", params={"model": QWEN}).json()
        llama = c.get("/props", params={"model": LLAMA}).json()
    assert props["chat_template_caps"]["supports_tool_calls"] is True
    assert (
        llama["chat_template_caps"]["supports_tool_calls"] is False
        and llama["chat_template_caps"]["supports_tools"]
    )
    assert set(props["chat_template_caps"]) == {
        "supports_string_content", "supports_typed_content", "supports_tools", "supports_tool_calls",
        "supports_parallel_tool_calls", "supports_system_role", "supports_preserve_reasoning",
        "supports_reasoning_effort", "supports_object_arguments",
    }  # fmt: skip
    assert props["total_slots"] == 4 and props["default_generation_settings"]["n_ctx"] == 32768
    assert props["build_info"] == "b11434-sim" and props["is_sleeping"] is False
    split = start_sim(flavor="llamacpp", llamacpp_slots=2, llamacpp_kv_unified=False, llamacpp_ctx=4096)
    with client(split) as c:
        props = c.get("/props", params={"model": QWEN}).json()
        assert (props["total_slots"], props["default_generation_settings"]["n_ctx"]) == (2, 2048)
        meta = {m["id"]: m["meta"] for m in c.get("/v1/models").json()["data"]}[QWEN]
        assert (meta["n_ctx"], meta["n_ctx_train"]) == (2048, 32768)
        r = c.post("/v1/chat/completions", json=chat(QWEN, words(2048)))
        assert r.status_code == 400 and r.json()["error"]["n_ctx"] == 2048
    old = start_sim(flavor="llamacpp", server_version="b7500")
    with client(old) as c:
        props = c.get("/props").json()
        assert "chat_template_caps" not in props and "is_sleeping" not in props


def test_llamacpp_slots_and_deferred_requests(start_sim: Callable[..., Any]) -> None:
    persona = Persona(id="sim-one", ttft_ms=0, prompt_tps=1e6, tps=20, context_length=8192)
    sim = start_sim(flavor="llamacpp", personas=[persona], llamacpp_slots=1, speed=1.0)
    body = chat("sim-one", "Write 6 tokens.", stream=True)
    results: list[float] = []

    def one() -> None:
        with client(sim) as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
            r.read()
            results.append(time.perf_counter())

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.12)
    with client(sim) as c:
        slots = c.get("/slots").json()
        metrics = prometheus.parse(c.get("/metrics").text)
    for t in threads:
        t.join()
    assert len(slots) == 1 and slots[0]["is_processing"] is True and slots[0]["n_ctx"] == 8192
    assert prometheus.total(metrics, "llamacpp:requests_processing") == 1
    assert prometheus.total(metrics, "llamacpp:requests_deferred") == 1
    log = sim.requests_log()
    first_end = min(e["end_ns"] for e in log)
    assert max(e["first_token_ns"] for e in log) >= first_end  # the second waited for the slot
    with client(sim) as c:
        [slot] = c.get("/slots").json()
    assert slot["is_processing"] is False and slot["next_token"][0]["n_decoded"] == 6
    assert set(slot) >= {
        "id",
        "n_ctx",
        "speculative",
        "is_processing",
        "id_task",
        "n_prompt_tokens",
        "params",
    }


def test_llamacpp_metrics_names_and_counters(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp")
    recorded = Path(__file__).parent / "data" / "replays" / "llamacpp_b11434_metrics.txt"  # real llama-server
    with client(sim) as c:
        r1 = c.post("/v1/chat/completions", json=chat(QWEN, "Write 7 tokens.")).json()
        r2 = c.post("/v1/chat/completions", json=chat(QWEN, "Write 7 tokens.")).json()
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4"
    ours = prometheus.parse(r.text)
    names = {line.split()[2] for line in r.text.splitlines() if line.startswith("# TYPE")}
    real = {line.split()[2] for line in recorded.read_text().splitlines() if line.startswith("# TYPE")}
    assert names == real
    cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert prometheus.total(ours, "llamacpp:prompt_tokens_total") == 2 * r1["usage"]["prompt_tokens"] - cached
    assert prometheus.total(ours, "llamacpp:prompt_tokens_cached_total") == cached > 0
    assert prometheus.total(ours, "llamacpp:tokens_predicted_total") == 14
    assert prometheus.total(ours, "llamacpp:requests_processing") == 0
    off = start_sim(flavor="llamacpp", llamacpp_metrics=False)
    with client(off) as c:
        r = c.get("/metrics")
    assert r.status_code == 501
    assert r.json() == {
        "error": {
            "code": 501,
            "message": "This server does not support metrics endpoint. Start it with `--metrics`",
            "type": "not_supported_error",
        }
    }


def test_llamacpp_router_mode(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp", llamacpp_router=True, speed=200.0)
    missing = {
        "error": {
            "code": 400,
            "message": "model name is missing from the request",
            "type": "invalid_request_error",
        }
    }
    with client(sim) as c:
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models[BIG]["status"]["value"] == "unloaded" and "meta" not in models[BIG]
        assert models[QWEN]["status"]["value"] == "loaded" and models[QWEN]["meta"]["n_ctx_train"] == 32768
        assert models[QWEN]["status"]["args"][:3] == ["llama-server", "--alias", QWEN]
        assert c.get("/props").json()["role"] == "router"
        assert c.get("/props", params={"model": QWEN}).json()["default_generation_settings"]["n_ctx"] == 32768
        for path in ("/metrics", "/slots"):
            r = c.get(path)
            assert (r.status_code, r.json()) == (400, missing)
        r = c.get("/metrics", params={"model": BIG, "autoload": "false"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "model is not loaded"
        r = c.post("/v1/chat/completions", json=chat(BIG), params={"autoload": "false"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "model is not loaded"
        r = c.post("/v1/chat/completions", json=chat("nope"))
        assert r.status_code == 400 and r.json()["error"]["message"] == "model 'nope' not found"
        rid = json.loads(data_events(stream_raw(c, chat(BIG, max_tokens=2))[1])[0])["id"]
        cold = log_entry(sim, rid)
        assert cold["load_ns"] > 0 and cold["first_token_ns"] - cold["recv_ns"] >= cold["load_ns"]
        models = {m["id"]: m for m in c.get("/v1/models").json()["data"]}
        assert models[BIG]["status"]["value"] == "loaded"
        loaded = [m for m, e in models.items() if e["status"]["value"] == "loaded"]
        assert len(loaded) == 4  # --models-max 4: the least recently used model was unloaded
        assert c.post("/models/unload", json={"model": BIG}).json() == {"success": True}
        r = c.post("/models/unload", json={"model": BIG})
        assert r.status_code == 400 and r.json()["error"]["message"] == "model is not running"

    async def probe() -> tuple[Any, Any]:
        provider = Provider(
            name="llamacpp@sim", kind="llamacpp", base_url=sim.base_url, native={"router": True}
        )
        cc = ChatClient(sim.base_url)
        try:
            return (
                await load_state.check(cc, provider, ModelInfo(id=LLAMA, provider=provider.name)),
                await load_state.check(cc, provider, ModelInfo(id=BIG, provider=provider.name)),
            )
        finally:
            await cc.aclose()

    warm, cold_check = asyncio.run(probe())
    assert warm.loaded is True and cold_check.loaded is False


def test_llamacpp_old_build_writes_stream_errors_as_an_error_line(start_sim: Callable[..., Any]) -> None:
    """Before PR #16109 (b6520 has it): `error: {json}` then `data: [DONE]`, at HTTP 200."""
    sim = start_sim(flavor="llamacpp", server_version="b6500")
    with client(sim) as c:
        status, text = stream_raw(c, chat(PHI, words(5000)))
        assert status == 200
        assert text == (
            'error: {"code":400,"message":"the request exceeds the available context size. try increasing the '
            'context size or enable context shift","type":"invalid_request_error"}\n\ndata: [DONE]\n\n'
        )
        r = c.post("/v1/chat/completions", json=chat(PHI, words(5000)))
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    faulty = start_sim(
        flavor="llamacpp", server_version="b6500", faults=FaultPlan(every={"stream_error": 1}, after_tokens=2)
    )
    with client(faulty) as c:
        _, text = stream_raw(c, chat(QWEN, "Write 9 tokens."))
    assert text.endswith(
        'error: {"code":500,"message":"simulated error during generation","type":"server_error"}\n\ndata: [DONE]\n\n'
    )


def test_llamacpp_stream_error_framing_by_build(start_sim: Callable[..., Any]) -> None:
    mid = start_sim(flavor="llamacpp", server_version="b6700")  # after #16109, before #16486
    with client(mid) as c:
        status, text = stream_raw(c, chat(PHI, words(5000)))
    assert status == 200 and data_events(text) == [
        json.dumps(
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size. try increasing the context size or enable context shift",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
            separators=(",", ":"),
        ),
        "[DONE]",
    ]
    now = start_sim(flavor="llamacpp", faults=FaultPlan(every={"stream_error": 1}, after_tokens=2))
    with client(now) as c:
        _, text = stream_raw(c, chat(QWEN, "Write 9 tokens."))
    events = data_events(text)
    assert (
        events[-1]
        == '{"error":{"code":500,"message":"simulated error during generation","type":"server_error"}}'
    )
    assert "[DONE]" not in events


def test_llamacpp_before_context_shift_was_off_cuts_the_prompt(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="llamacpp", server_version="b5000")
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat(PHI, words(9000), max_tokens=3)).json()
    assert r["usage"]["prompt_tokens"] == old_llamacpp_truncation(9000, 4096, 0) == 9000 - 3 * 2048
    assert "prompt_tokens_details" not in r["usage"] and "cache_n" not in r["timings"]


# == LM Studio ======================================================================================


def test_lmstudio_refuses_only_a_prompt_that_does_not_fit(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="lmstudio")
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat(PHI, words(4090), max_tokens=50)).json()
        assert r["usage"]["completion_tokens"] == 6 and r["choices"][0]["finish_reason"] == "length"
        r = c.post("/v1/chat/completions", json=chat(PHI, words(4096)))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "Trying to keep the first 4096 tokens when context the overflows. However, the model is loaded with "
        "context length of only 4096 tokens, which is not enough. Try to load the model with a larger context "
        "length, or provide a shorter input."
    )
    new = start_sim(flavor="lmstudio", server_version="0.4.2")
    with client(new) as c:
        r = c.post("/v1/chat/completions", json=chat(PHI, words(5000)))
    assert r.status_code == 400 and r.json() == {
        "error": "The number of tokens to keep from the initial prompt is greater than the context length "
        "(n_keep: 5000>= n_ctx: 4096). Try to load the model with a larger context length, or provide a "
        "shorter input."
    }


@pytest.mark.parametrize("policy", ["truncate_middle", "rolling_window"])
def test_lmstudio_truncating_policies_cut_silently(start_sim: Callable[..., Any], policy: str) -> None:
    sim = start_sim(flavor="lmstudio", lmstudio_overflow=policy)
    messages = [
        {"role": "system", "content": words(300)},
        {"role": "user", "content": words(200)},
        {"role": "assistant", "content": words(4000)},
        {"role": "user", "content": words(1000)},
    ]
    keep = 500 if policy == "truncate_middle" else 0
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json={"model": PHI, "messages": messages, "max_tokens": 40}).json()
        assert r["usage"]["prompt_tokens"] == old_llamacpp_truncation(5500, 4096, keep) < 4096
        assert r["usage"]["completion_tokens"] == 40  # the window rolls: max_tokens ends the answer
        one = c.post("/v1/chat/completions", json=chat(PHI, words(5000)))
    if policy == "truncate_middle":  # the first user message is kept whole: it alone does not fit
        assert (
            one.status_code == 400
            and "Trying to keep the first 5000 tokens" in one.json()["error"]["message"]
        )
    else:
        assert one.status_code == 200


def test_lmstudio_event_error(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="lmstudio", lmstudio_overflow="event_error")
    msg = (
        "Input does not fit in context length. The input has 5000 tokens, but the context length only "
        "supports 4096 tokens."
    )
    with client(sim) as c:
        status, text = stream_raw(c, chat(PHI, words(5000)))
        r = c.post("/v1/chat/completions", json=chat(PHI, words(5000)))
    assert status == 200
    assert (
        text
        == "event: error\ndata: "
        + json.dumps({"error": {"message": msg}, "message": msg}, separators=(",", ":"))
        + "\n\n"
    )
    assert r.status_code == 400 and r.json()["error"]["message"] == msg


def test_lmstudio_empty_answer(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="lmstudio", lmstudio_overflow="empty")
    with client(sim) as c:
        status, text = stream_raw(c, chat(PHI, words(5000), stream_options={"include_usage": True}))
        r = c.post("/v1/chat/completions", json=chat(PHI, words(5000))).json()
    cs = chunks(text)
    assert status == 200 and data_events(text)[-1] == "[DONE]"
    assert not any(ch["choices"] and ch["choices"][0]["delta"].get("content") for ch in cs)
    assert cs[-1]["usage"] == {"prompt_tokens": 5000, "completion_tokens": 0, "total_tokens": 5000}
    assert r["choices"][0]["message"]["content"] == "" and r["usage"]["completion_tokens"] == 0


# == vLLM ===========================================================================================


def test_vllm_metrics_v1_names(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="vllm")
    with client(sim) as c:
        for _ in range(2):
            c.post("/v1/chat/completions", json=chat(QWEN, "Write 9 tokens."))
        text = c.get("/metrics").text
    samples = prometheus.parse(text)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert name in samples, name
    assert not any(n.startswith(("vllm:avg_", "vllm:gpu_cache")) for n in samples)
    assert prometheus.total(samples, "vllm:generation_tokens_total") == 18
    assert prometheus.total(samples, "vllm:prompt_tokens_total") == 2 * 4
    assert f'vllm:num_requests_running{{model_name="{QWEN}",engine="0"}} 0.0' in text
    old = start_sim(flavor="vllm", server_version="0.6.6")
    with client(old) as c:
        samples = prometheus.parse(c.get("/metrics").text)
    assert "vllm:gpu_cache_usage_perc" in samples and "vllm:avg_generation_throughput_toks_per_s" in samples


def test_vllm_current_context_checks(start_sim: Callable[..., Any]) -> None:
    sim = start_sim(flavor="vllm")
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat(PHI, words(5000)))
        assert r.status_code == 400 and r.json() == {
            "error": {
                "message": "This model's maximum context length is 4096 tokens. However, your prompt contains at "
                "least 4097 input tokens, which exceeds this limit even without any output tokens. Please reduce "
                "the length of the input prompt. (parameter=input_tokens, value=4097)",
                "type": "BadRequestError",
                "param": "input_tokens",
                "code": 400,
            }
        }
        r = c.post("/v1/chat/completions", json=chat(PHI, "hi", max_completion_tokens=5000))
        assert r.status_code == 400 and r.json()["error"]["message"] == (
            "max_completion_tokens=5000 cannot be greater than max_model_len=4096. Please request fewer output "
            "tokens. (parameter=max_completion_tokens, value=5000)"
        )
        long = words(3990) + " Write 600 tokens."  # 3994 prompt tokens
        r = c.post("/v1/chat/completions", json=chat(PHI, long, max_tokens=500)).json()
        assert r["usage"]["completion_tokens"] == 102 and r["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("version", "body"),
    [
        (
            "0.10.0",
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you requested 4200 tokens "
                "(4000 in the messages, 200 in the completion). Please reduce the length of the messages or "
                "completion. None",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        (
            "0.11.0",
            {
                "error": {
                    "message": "'max_tokens' or 'max_completion_tokens' is too large: 200. This model's maximum "
                    "context length is 4096 tokens and your request has 4000 input tokens (200 > 4096 - 4000). None",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
        ),
        (
            "0.20.0",
            {
                "error": {
                    "message": "This model's maximum context length is 4096 tokens. However, you requested 200 "
                    "output tokens and your prompt contains at least 3897 input tokens, for a total of at least "
                    "4097 tokens. Please reduce the length of the input prompt or the number of requested output "
                    "tokens. (parameter=input_tokens, value=3897)",
                    "type": "BadRequestError",
                    "param": "input_tokens",
                    "code": 400,
                }
            },
        ),
    ],
)
def test_vllm_context_messages_by_version(
    start_sim: Callable[..., Any], version: str, body: dict[str, Any]
) -> None:
    sim = start_sim(flavor="vllm", server_version=version)
    with client(sim) as c:
        r = c.post("/v1/chat/completions", json=chat(PHI, words(4000), max_tokens=200))
    assert r.status_code == 400 and r.json() == body


@pytest.mark.parametrize(
    ("version", "tail"),
    [
        (
            "0.10.0",
            'data: {"error": {"object": "error", "message": "simulated error during generation", "type": '
            '"BadRequestError", "param": null, "code": 400}}\n\ndata: [DONE]\n\n',
        ),
        (
            "0.33.0",
            'data: {"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, '
            '"code": 500}}\n\ndata: [DONE]\n\n',
        ),
        (
            "0.34.0",
            'data: {"error":{"message":"Internal server error","type":"InternalServerError","param":null,'
            '"code":500}}\n\ndata: [DONE]\n\n',
        ),
    ],
)
def test_vllm_stream_error_chunk(start_sim: Callable[..., Any], version: str, tail: str) -> None:
    sim = start_sim(
        flavor="vllm", server_version=version, faults=FaultPlan(every={"stream_error": 1}, after_tokens=2)
    )
    with client(sim) as c:
        status, text = stream_raw(c, chat(QWEN, "Write 9 tokens."))
    assert status == 200 and text.endswith(tail) and len(data_events(text)) == 1 + 2 + 2


# == versions and the command line ==================================================================


def test_bad_versions_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="build number"):
        SimConfig(flavor="llamacpp", server_version="latest")
    with pytest.raises(ValueError, match="router"):
        run_in_thread(SimConfig(flavor="llamacpp", server_version="b7000", llamacpp_router=True))
    with pytest.raises(ValueError, match="lmstudio_overflow"):
        SimConfig(flavor="lmstudio", lmstudio_overflow="shrug")


@pytest.mark.unit
def test_cli_flags_reach_the_config() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "--flavor", "llamacpp", "--server-version", "b7500", "--llamacpp-router", "--llamacpp-slots", "2",
            "--llamacpp-ctx", "8192", "--llamacpp-no-metrics", "--lmstudio-overflow", "empty",
            "--ollama-num-ctx", "8192", "--no-ollama-cloud",
        ]
    )  # fmt: skip
    config = sim_cli.build_config(args)
    assert (config.server_version, config.llamacpp_router, config.llamacpp_slots) == ("b7500", True, 2)
    assert (config.llamacpp_ctx, config.llamacpp_metrics, config.lmstudio_overflow) == (8192, False, "empty")
    assert (config.ollama_num_ctx, config.ollama_cloud) == (8192, False)
    defaults = sim_cli.build_config(parser.parse_args([]))
    assert defaults.server_version is None and defaults.lmstudio_overflow == "error"
