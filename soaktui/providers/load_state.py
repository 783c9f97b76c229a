"""Is a model loaded right now? Asked of the server just before each test, so cold loads are known.

Servers that load models on demand make the first request after an eviction wait for the load:
Ollama loads on the first request and unloads after `keep_alive` (5 minutes by default) or when
another model needs the memory; LM Studio loads just in time and, with auto-evict, unloads the
previous JIT model; llama.cpp's router (`llama-server` without `-m`) autoloads a model on request
and can put it to sleep when idle. Such a request's time to first token is mostly the load, not the
model's speed, so the engine asks before every test and the scenario layer marks the requests that
waited (`cold`, see scenarios/base.py). Where to ask (sources in docs/servers.md):

- Ollama: `GET /api/ps` lists the loaded models, and from v0.10.0 on their runtime `context_length`
  (the `num_ctx` the runner was started with), which is the context a request can really use.
- LM Studio: `GET /api/v0/models/{id}` has `state` ("loaded" / "not-loaded"), and
  `loaded_context_length` once loaded (0.3.6+); else `GET /api/v1/models` `loaded_instances` (0.4+).
- llama.cpp router: `GET /v1/models` (same handler as `/models`) gives each model a `status` {"value": "loaded" | "loading" |
  "unloaded" | "sleeping" ...}.
Single-model llama.cpp and vLLM serve a model loaded at start: nothing to ask. A probe that fails
says "unknown" (None), never "cold": a flaky probe must not hide TTFT figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from soaktui.providers import native
from soaktui.providers.client import ChatClient
from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, ModelInfo, Provider

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class LoadCheck:
    loaded: bool | None  # None: the server could not say
    source: str  # the endpoint that said it
    runtime_context: int | None = None  # the context the loaded model runs with, when the server says


def can_check(provider: Provider) -> bool:
    """True for servers that load models on demand (and can say whether one is loaded)."""
    if provider.kind in (OLLAMA, LMSTUDIO):
        return True
    return provider.kind == LLAMACPP and bool(provider.native.get("router"))


async def check(client: ChatClient, provider: Provider, model: ModelInfo) -> LoadCheck | None:
    """Ask `provider` whether `model` is loaded; None when the server kind cannot say."""
    if provider.kind == OLLAMA:
        status, body, _ = await client.get_json("/api/ps", PROBE_TIMEOUT_S)
        items = native.ollama_ps_list(body) if status == 200 else None
        if items is None:
            return LoadCheck(None, "/api/ps")
        entry = native.ollama_find(items, model.id)
        ctx = native.positive_int(entry.get("context_length")) if entry else None
        return LoadCheck(entry is not None, "/api/ps", ctx)
    if provider.kind == LMSTUDIO:
        path = f"/api/v0/models/{quote(model.id, safe='')}"
        status, body, _ = await client.get_json(path, PROBE_TIMEOUT_S)
        state = body.get("state") if status == 200 and isinstance(body, dict) else None
        if isinstance(state, str):
            loaded = state == "loaded"
            ctx = native.positive_int(body.get("loaded_context_length")) if loaded else None
            return LoadCheck(loaded, "/api/v0/models/{id} state", ctx)
        # No v0 answer (an LM Studio without the beta API answers `{"error": "Unexpected endpoint
        # or method..."}`, even at HTTP 200): the 0.4+ REST API's `loaded_instances`.
        status, body, _ = await client.get_json("/api/v1/models", PROBE_TIMEOUT_S)
        items = native.lmstudio_v1_list(body) if status == 200 else None
        entry = next((it for it in items or () if it.get("key") == model.id), None)
        if entry is None or not isinstance(entry.get("loaded_instances"), list):
            return LoadCheck(None, "/api/v0/models/{id}, /api/v1/models")
        instances = [i for i in entry["loaded_instances"] if isinstance(i, dict)]
        config = instances[0].get("config") if instances else None
        ctx = native.positive_int(config.get("context_length")) if isinstance(config, dict) else None
        return LoadCheck(bool(instances), "/api/v1/models loaded_instances", ctx)
    if provider.kind == LLAMACPP and provider.native.get("router"):
        status, body, _ = await client.get_json("/v1/models", PROBE_TIMEOUT_S)
        items = native.openai_model_list(body) if status == 200 else None
        entry = next((it for it in items or () if it.get("id") == model.id), None)
        state = native.llamacpp_state(entry) if entry else None
        if state is None:
            return LoadCheck(None, "/v1/models status")
        return LoadCheck(state == "loaded", f"/v1/models status ({state})")
    return None
