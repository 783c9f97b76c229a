"""What each LLM server says about its own load: queue, KV cache, throughput, loaded models, VRAM.

The server's view explains what the client sees: a request that waited in llama.cpp's deferred
queue or vLLM's waiting list, a KV cache near full, a model LM Studio or Ollama unloaded. One reader
per provider, by kind:
- llama.cpp: `/metrics` (Prometheus; only when llama-server runs with --metrics) and `/slots`
  (slots busy / total; on by default, off with --no-slots);
- vLLM: `/metrics` (vllm:num_requests_running / _waiting, vllm:kv_cache_usage_perc, or
  vllm:gpu_cache_usage_perc before v0.10);
- Ollama: `/api/ps` (loaded models and the VRAM they hold);
- LM Studio: `/api/v0/models` (or `/api/v1/models` on 0.4+): which models are loaded.
Each answer that cannot be had (404, 401, refused, timeout) becomes a one-line reason. Plain
synchronous httpx with short timeouts: this runs on the sampler's thread, never on the engine's loop.
Throughput gauges that read 0 (llama.cpp resets them at each scrape and reports 0 when no token
went through since) are left out: "no tokens in this window" is not a speed.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from soaktui.providers import native
from soaktui.providers.discovery import connect_problem
from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, VLLM, Provider, is_loopback
from soaktui.telemetry import prometheus

LLAMACPP_METRICS_HINT = " (llama-server exposes /metrics only with --metrics)"
SOURCES = {VLLM: "vLLM /metrics", OLLAMA: "Ollama /api/ps", LMSTUDIO: "LM Studio /api/v0/models"}


class Unanswered(Exception):
    """An endpoint gave nothing usable; the message is the one-line reason."""


def _positive(value: float | None) -> float | None:
    return round(value, 3) if value is not None and value > 0 else None


class ServerReader:
    def __init__(self, providers: list[Provider], timeout_s: float = 1.0) -> None:
        self.providers = list(providers)
        self.timeout_s = timeout_s
        self._clients: dict[str, httpx.Client] = {}

    def _client(self, p: Provider) -> httpx.Client:
        c = self._clients.get(p.name)
        if c is None:
            headers = {"Authorization": f"Bearer {p.api_key}"} if p.api_key else {}
            c = httpx.Client(
                timeout=httpx.Timeout(self.timeout_s),
                headers=headers,
                trust_env=not is_loopback(p.base_url),
                follow_redirects=True,
            )
            self._clients[p.name] = c
        return c

    def _get(self, p: Provider, path: str, hint: str = "") -> httpx.Response:
        try:
            r = self._client(p).get(p.base_url + path)
        except httpx.TimeoutException as exc:
            raise Unanswered(f"{path}: no answer within {self.timeout_s:g} s") from exc
        except (httpx.ConnectError, OSError) as exc:
            raise Unanswered(f"{path}: {connect_problem(exc)}") from exc
        except httpx.HTTPError as exc:
            raise Unanswered(f"{path}: {type(exc).__name__}: {str(exc)[:100]}") from exc
        if r.status_code in (401, 403):
            raise Unanswered(f"{path}: HTTP {r.status_code} (wrong or missing --api-key?)")
        if r.status_code != 200:
            raise Unanswered(f"{path}: HTTP {r.status_code}{hint}")
        return r

    def _json(self, p: Provider, path: str) -> Any:
        r = self._get(p, path)
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError as exc:
            raise Unanswered(f"{path}: answered non-JSON") from exc

    # -- per kind ----------------------------------------------------------------------------------
    def _llamacpp(self, p: Provider, row: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        sources: list[str] = []
        try:
            s = prometheus.parse(self._get(p, "/metrics", LLAMACPP_METRICS_HINT).text)
            if not any(name.startswith("llamacpp:") for name in s):
                raise Unanswered("/metrics: no llamacpp: metrics in the answer")
            fields = {
                "requests_processing": prometheus.total(s, "llamacpp:requests_processing"),
                "requests_deferred": prometheus.total(s, "llamacpp:requests_deferred"),
                "kv_cache_usage_ratio": prometheus.largest(s, "llamacpp:kv_cache_usage_ratio"),
                "prompt_tps": _positive(prometheus.total(s, "llamacpp:prompt_tokens_seconds")),
                "predicted_tps": _positive(prometheus.total(s, "llamacpp:predicted_tokens_seconds")),
            }
            row.update({k: v for k, v in fields.items() if v is not None})
            sources.append("/metrics")
        except Unanswered as exc:
            problems.append(str(exc))
        try:
            slots = self._json(p, "/slots")
            if not isinstance(slots, list):
                raise Unanswered("/slots: not a list of slots")
            row["slots_total"] = len(slots)
            row["slots_busy"] = sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing"))
            sources.append("/slots")
        except Unanswered as exc:
            problems.append(str(exc))
        if sources:
            row["source"] = "llama.cpp " + ", ".join(sources)
        return problems

    def _vllm(self, p: Provider, row: dict[str, Any]) -> list[str]:
        try:
            s = prometheus.parse(self._get(p, "/metrics").text)
        except Unanswered as exc:
            return [str(exc)]
        if not any(name.startswith("vllm:") for name in s):
            return ["/metrics: no vllm: metrics in the answer"]
        kv = prometheus.largest(s, "vllm:kv_cache_usage_perc")
        if kv is None:
            kv = prometheus.largest(s, "vllm:gpu_cache_usage_perc")
        fields = {
            "requests_processing": prometheus.total(s, "vllm:num_requests_running"),
            "requests_waiting": prometheus.total(s, "vllm:num_requests_waiting"),
            "kv_cache_usage_ratio": kv,
            "prompt_tps": _positive(prometheus.total(s, "vllm:avg_prompt_throughput_toks_per_s")),
            "predicted_tps": _positive(prometheus.total(s, "vllm:avg_generation_throughput_toks_per_s")),
        }
        row.update({k: v for k, v in fields.items() if v is not None})
        row["source"] = SOURCES[VLLM]
        return []

    def _ollama(self, p: Provider, row: dict[str, Any]) -> list[str]:
        try:
            ps = self._json(p, "/api/ps")
        except Unanswered as exc:
            return [str(exc)]
        models = ps.get("models") if isinstance(ps, dict) else None
        if not isinstance(models, list):
            return ["/api/ps: no `models` list in the answer"]
        entries = [m for m in models if isinstance(m, dict)]
        row["loaded_models"] = [n for n in (native.ollama_name(m) for m in entries) if n]
        vram = [m["size_vram"] for m in entries if isinstance(m.get("size_vram"), int)]
        if vram:
            row["vram_bytes"] = sum(vram)
        row["source"] = SOURCES[OLLAMA]
        return []

    def _lmstudio(self, p: Provider, row: dict[str, Any]) -> list[str]:
        try:
            items = native.lmstudio_v0_list(self._json(p, "/api/v0/models"))
            if items is None:
                raise Unanswered("/api/v0/models: not LM Studio's model list")
            row["loaded_models"] = [it["id"] for it in items if it.get("state") == "loaded" and it.get("id")]
            row["source"] = SOURCES[LMSTUDIO]
            return []
        except Unanswered as first:
            try:
                items = native.lmstudio_v1_list(self._json(p, "/api/v1/models"))
            except Unanswered:
                return [str(first)]
            if items is None:
                return [str(first)]
            row["loaded_models"] = [it["key"] for it in items if it.get("loaded_instances")]
            row["source"] = "LM Studio /api/v1/models"
            return []

    def read_one(self, p: Provider) -> dict[str, Any]:
        """One provider's row: its readings and `source`, or `unavailable` with the reason."""
        row: dict[str, Any] = {"provider": p.name, "kind": p.kind}
        reader = {LLAMACPP: self._llamacpp, VLLM: self._vllm, OLLAMA: self._ollama, LMSTUDIO: self._lmstudio}
        fn = reader.get(p.kind)
        if fn is None:
            row["unavailable"] = "no server-side metrics for a generic OpenAI-compatible server"
            return row
        problems = fn(p, row)
        if "source" not in row:
            row["unavailable"] = "; ".join(problems)
        elif problems:
            row["partial"] = "; ".join(problems)
        return row

    def read(self) -> dict[str, Any]:
        if not self.providers:
            return {"unavailable": {"servers": "no providers"}}
        rows = [self.read_one(p) for p in self.providers]
        if all("unavailable" in r for r in rows):
            return {
                "unavailable": {"servers": "; ".join(f"{r['provider']}: {r['unavailable']}" for r in rows)}
            }
        return {"servers": rows}

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
