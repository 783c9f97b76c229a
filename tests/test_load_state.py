"""Is the model loaded? Asked of scripted loopback servers answering in each server's own shape
(providers/load_state.py; shapes and sources in docs/servers.md)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from soaktui.providers import load_state
from soaktui.providers.client import ChatClient
from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, VLLM, ModelInfo, Provider
from tests.test_client import Request, serve

pytestmark = pytest.mark.integration


def routes(table: dict[str, tuple[int, object]]):
    """A handler answering GET paths from `table` (status, JSON body); 404 otherwise."""

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        status, body = table.get(req.path, (404, {"error": "not found"}))
        data = orjson.dumps(body)
        w.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, len(data))
            + data
        )

    return handler


def ask(table: dict, kind: str, model_id: str, native: dict | None = None) -> load_state.LoadCheck | None:
    async def go():
        async with serve(routes(table)) as srv:
            provider = Provider(name=f"{kind}@test", kind=kind, base_url=srv.url, native=native or {})
            client = ChatClient(srv.url)
            try:
                return await load_state.check(client, provider, ModelInfo(id=model_id, provider=provider.name))
            finally:
                await client.aclose()

    return asyncio.run(go())


PS = {  # Ollama /api/ps (api/types.go ProcessModelResponse), v0.10.0+ with context_length
    "models": [
        {"name": "llama3.1:latest", "model": "llama3.1:latest", "size": 6654289920, "digest": "x",
         "expires_at": "2026-12-07T04:00:00Z", "size_vram": 6654289920, "context_length": 8192},
        {"name": "qwen2.5:7b", "model": "qwen2.5:7b", "size": 1, "digest": "y", "expires_at": "", "size_vram": 1},
    ]
}


def test_ollama_ps_says_loaded_with_its_runtime_context():
    found = ask({"/api/ps": (200, PS)}, OLLAMA, "llama3.1")  # "m" and "m:latest" are one model
    assert found == load_state.LoadCheck(True, "/api/ps", 8192)
    assert ask({"/api/ps": (200, PS)}, OLLAMA, "qwen2.5:7b") == load_state.LoadCheck(True, "/api/ps", None)
    assert ask({"/api/ps": (200, PS)}, OLLAMA, "mistral:7b") == load_state.LoadCheck(False, "/api/ps", None)
    assert ask({"/api/ps": (200, {"models": []})}, OLLAMA, "mistral:7b").loaded is False


def test_a_probe_that_fails_says_unknown_never_cold():
    assert ask({}, OLLAMA, "m").loaded is None  # 404
    assert ask({"/api/ps": (200, ["odd"])}, OLLAMA, "m").loaded is None
    assert ask({}, LMSTUDIO, "m").loaded is None
    assert ask({}, LLAMACPP, "m", {"router": True}).loaded is None


def test_lmstudio_v0_state_and_loaded_context():
    table = {
        "/api/v0/models/qwen2.5-7b-instruct": (200, {"id": "qwen2.5-7b-instruct", "object": "model", "type": "llm",
                                                     "state": "loaded", "max_context_length": 32768,
                                                     "loaded_context_length": 4096}),
        "/api/v0/models/phi-4": (200, {"id": "phi-4", "object": "model", "type": "llm", "state": "not-loaded",
                                       "max_context_length": 16384}),
    }
    assert ask(table, LMSTUDIO, "qwen2.5-7b-instruct") == load_state.LoadCheck(
        True, "/api/v0/models/{id} state", 4096
    )
    assert ask(table, LMSTUDIO, "phi-4").loaded is False


def test_lmstudio_without_v0_falls_back_to_v1_loaded_instances():
    # An LM Studio without the beta API answers unknown routes 200 {"error": "Unexpected endpoint..."}.
    unexpected = (200, {"error": "Unexpected endpoint or method. (GET /api/v0/models/m)"})
    v1 = {"models": [
        {"type": "llm", "key": "m", "loaded_instances": [{"id": "m", "config": {"context_length": 8192}}],
         "max_context_length": 131072},
        {"type": "llm", "key": "n", "loaded_instances": [], "max_context_length": 32768},
    ]}
    table = {"/api/v0/models/m": unexpected, "/api/v0/models/n": unexpected, "/api/v1/models": (200, v1)}
    assert ask(table, LMSTUDIO, "m") == load_state.LoadCheck(True, "/api/v1/models loaded_instances", 8192)
    assert ask(table, LMSTUDIO, "n").loaded is False


def test_llamacpp_router_status():
    models = {"object": "list", "data": [
        {"id": "qwen", "object": "model", "owned_by": "llamacpp", "status": {"value": "loaded", "args": []}},
        {"id": "gemma", "object": "model", "owned_by": "llamacpp", "status": {"value": "sleeping", "args": []}},
        {"id": "phi", "object": "model", "owned_by": "llamacpp", "status": {"value": "unloaded", "args": []}},
    ]}
    table = {"/v1/models": (200, models)}
    assert ask(table, LLAMACPP, "qwen", {"router": True}).loaded is True
    sleeping = ask(table, LLAMACPP, "gemma", {"router": True})
    assert sleeping.loaded is False and "sleeping" in sleeping.source
    assert ask(table, LLAMACPP, "phi", {"router": True}).loaded is False


def test_servers_that_serve_one_loaded_model_are_not_asked():
    assert not load_state.can_check(Provider(name="v", kind=VLLM, base_url="http://x"))
    assert not load_state.can_check(Provider(name="l", kind=LLAMACPP, base_url="http://x"))
    assert load_state.can_check(Provider(name="r", kind=LLAMACPP, base_url="http://x", native={"router": True}))
    assert ask({}, VLLM, "m") is None
