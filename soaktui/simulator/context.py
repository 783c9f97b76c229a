"""What each server does with a prompt (and max_tokens) that does not fit its context window.

One decision per chat request, taken before any byte is written: refuse it (an HTTP error, or for
some servers an error inside a 200 stream), cut it silently (the prompt count the server then reports
in `usage.prompt_tokens`), or take it whole; and how many completion tokens the context leaves
(`room`: generation stops there with finish_reason "length"; None when the server shifts its context
and only max_tokens ends an answer). Each rule cites the source it reproduces; versions.py holds the
thresholds, docs/servers.md the same facts as tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from soaktui.simulator import versions as v
from soaktui.simulator.textgen import count_tokens, message_text

Body = dict[str, Any]

LMSTUDIO_OVERFLOW = ("error", "truncate_middle", "rolling_window", "event_error", "empty")
OLLAMA_NUM_KEEP = 4  # api.DefaultOptions() NumKeep: 4 (api/types.go, every version read)


@dataclass
class Fit:
    """The decision for one request."""

    reported: int  # usage.prompt_tokens: the prompt as the server counts it (after any cut)
    room: int | None = None  # completion tokens left by the context; None: not limited by it
    reject: tuple[int, Any] | None = None  # (status, body) answered instead of a completion
    stream_reject: bytes | None = None  # for a stream: SSE bytes sent after HTTP 200 instead
    empty: bool = False  # answer 200 with no content at all (LM Studio GGUF report)
    truncated: bool = False


def old_llamacpp_truncation(n_prompt: int, n_ctx: int, n_keep: int) -> int:
    """The prompt length llama.cpp's server left after cutting an over-long prompt while context
    shift was on: keep the first n_keep tokens, drop whole blocks of half the remaining window, keep
    the tail (examples/server/server.cpp update_slots "input truncated", e.g. as vendored in
    llama-cpp-python 0.3.5 = b4295; gone with ctx_shift off by default, PR #15416)."""
    n_keep = max(0, min(n_ctx - 4, n_keep))
    n_left = n_ctx - n_keep
    block = max(n_left // 2, 1)
    erased = (n_prompt - n_keep - block) // block
    return n_prompt - max(erased, 0) * block


# -- llama.cpp ---------------------------------------------------------------------------------------


def llamacpp_error(build: int, n_prompt: int, n_ctx: int) -> Body:
    """The error object (the value of "error") for a prompt that does not fit the slot."""
    if build >= v.LCPP_WORDING_COUNTS:  # server-context.cpp (b11434): send_error(..., EXCEED_CONTEXT_SIZE)
        msg = (
            f"request ({n_prompt} tokens) exceeds the available context size ({n_ctx} tokens), "
            "try increasing it"
        )
    elif build >= v.LCPP_WORDING_SHORT:
        msg = "the request exceeds the available context size, try increasing it"
    else:
        msg = "the request exceeds the available context size. try increasing the context size or enable context shift"
    if build < v.LCPP_EXCEED_CONTEXT_TYPE:  # before PR #15780: a plain invalid_request_error
        return {"code": 400, "message": msg, "type": "invalid_request_error"}
    # format_error_response + server_task_result_error::to_json appends the two counts
    return {
        "code": 400,
        "message": msg,
        "type": "exceed_context_size_error",
        "n_prompt_tokens": n_prompt,
        "n_ctx": n_ctx,
    }


def llamacpp_stream_error(build: int, err: Body, *, first: bool) -> tuple[bytes, bool] | None:
    """How a llama-server build writes an error inside a stream: (bytes, then_done), or None when it
    answers with a plain HTTP error instead (`first`: no token was sent yet)."""
    if build < v.LCPP_SSE_DATA_ERRORS:
        # utils.hpp server_sent_event(sink, "error", error_data): "error: " + dump + "\n\n", then
        # the stream lambda writes "data: [DONE]\n\n" for OAI endpoints (b4295 .. ~b6520)
        return b"error: " + orjson.dumps(err) + b"\n\n", True
    if build < v.LCPP_FIRST_ERROR_HTTP:
        # PR #16109: server_sent_event(sink, json{{"error", error_data}}), still followed by [DONE]
        return b"data: " + orjson.dumps({"error": err}) + b"\n\n", True
    if first:
        return None  # PR #16486: the first result being an error is answered as non-stream
    # server-context.cpp handle_completions_impl: format_oai_sse({"error": ...}); terminate, no [DONE]
    return b"data: " + orjson.dumps({"error": err}) + b"\n\n", False


def llamacpp_fit(build: int, n_prompt: int, n_ctx: int, stream: bool) -> Fit:
    if build < v.LCPP_CTX_SHIFT_OFF:
        # context shift on by default: the prompt is cut (n_keep 0) and generation shifts on
        if n_prompt >= n_ctx:
            return Fit(old_llamacpp_truncation(n_prompt, n_ctx, 0), None, truncated=True)
        return Fit(n_prompt, None)
    if n_prompt >= n_ctx:
        # server-context.cpp: `if (slot.task->n_tokens() >= slot.n_ctx) send_error(...)`
        err = llamacpp_error(build, n_prompt, n_ctx)
        fit = Fit(n_prompt, reject=(400, {"error": err}))
        framed = llamacpp_stream_error(build, err, first=True) if stream else None
        if framed is not None:
            data, done = framed
            fit.stream_reject = data + (b"data: [DONE]\n\n" if done else b"")
        return fit
    # process_token(): `if (!ctx_shift && slot.prompt.n_tokens() + 1 >= slot.n_ctx)` stops the slot
    # (STOP_TYPE_LIMIT -> "length") after the (n_ctx - n_prompt)-th generated token.
    return Fit(n_prompt, n_ctx - n_prompt)


# -- Ollama ------------------------------------------------------------------------------------------


def _ollama_messages_cut(messages: list[Any], tools_tokens: int, num_ctx: int) -> int:
    """Prompt tokens after server/prompt.go chatPrompt (v0.12.6): walking back from the newest
    message, keep the longest tail (always the last message, plus every earlier system message)
    whose rendering fits num_ctx."""
    counts = []
    system = []
    for m in messages:
        if not isinstance(m, dict):
            counts.append(0)
            system.append(False)
            continue
        n = count_tokens(message_text(m.get("content")))
        if m.get("tool_calls"):
            n += count_tokens(orjson.dumps(m["tool_calls"]).decode())
        counts.append(n)
        system.append(m.get("role") == "system")
    last = len(counts) - 1
    start = last
    suffix = counts[last] if counts else 0
    for i in range(last - 1, -1, -1):
        candidate = suffix + counts[i]
        sys_before = sum(c for c, s in zip(counts[:i], system[:i], strict=True) if s)
        if tools_tokens + candidate + sys_before > num_ctx:
            break
        suffix, start = candidate, i
    sys_before = sum(c for c, s in zip(counts[:start], system[:start], strict=True) if s)
    return tools_tokens + suffix + sys_before


def ollama_fit(
    version: tuple[int, ...], messages: list[Any], tools_tokens: int, n_prompt: int, num_ctx: int
) -> Fit:
    """/v1 never sets `truncate`/`shift` (openai/ and middleware/ at every tag), so the defaults hold:
    an over-long prompt is cut silently at HTTP 200."""
    if version >= v.OLLAMA_LLAMA_SERVER:
        if version >= v.OLLAMA_HALF_CONTEXT:
            # llm/llama_server.go completionPromptForRequest (c191a145b): untouched up to num_ctx-1,
            # else cut to contextShiftPromptLimit = numCtx - max((numCtx-nKeep)/2, 1), nKeep = num_keep
            # plus the BOS token the tokenizer adds (the simulator's models add one).
            if n_prompt <= num_ctx - 1:
                return Fit(n_prompt, None)
            n_keep = OLLAMA_NUM_KEEP + 1
            return Fit(num_ctx - max((num_ctx - n_keep) // 2, 1), None, truncated=True)
        # v0.30.0 .. v0.30.10: `limit := s.options.NumCtx - 1`; PromptEvalCount = cache_n + prompt_n
        reported = min(n_prompt, num_ctx - 1)
        shifts = version >= v.OLLAMA_SHIFT_ALWAYS or num_ctx < 8192  # sched.go resolveContextShift
        room = None if shifts else num_ctx - reported  # llama-server stop_type "limit" -> "length"
        return Fit(reported, room, truncated=reported < n_prompt)
    # v0.4.3 .. v0.24.0: layer 1 drops old messages (server/prompt.go chatPrompt), layer 2 cuts
    # tokens out of the middle (runner/ollamarunner/runner.go NewSequence: keep num_keep, then the
    # tail) so that exactly num_ctx remain: `numPromptInputs` = PromptEvalCount = usage.prompt_tokens.
    # Generation then shifts the cache (ShiftCacheSlot): the context never ends an answer.
    reported = n_prompt
    if n_prompt > num_ctx:
        reported = min(_ollama_messages_cut(messages, tools_tokens, num_ctx), n_prompt)
        reported = min(reported, num_ctx)
    return Fit(reported, None, truncated=reported < n_prompt)


# -- LM Studio ---------------------------------------------------------------------------------------


def _lmstudio_keep(messages: list[Any], tools_tokens: int) -> int:
    """truncateMiddle "keeps the system prompt and the first user message" (lmstudio-js
    LLMPredictionConfig.ts): their tokens."""
    keep = tools_tokens
    seen_user = False
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role == "system" or (role == "user" and not seen_user):
            keep += count_tokens(message_text(m.get("content")))
            seen_user = seen_user or role == "user"
    return keep


def lmstudio_keep_error(version: tuple[int, ...], n_keep: int, n_ctx: int) -> tuple[int, Any]:
    if version >= v.LMSTUDIO_STRING_ERRORS:
        # LM Studio 0.4.x [report: Gitlawb/openclaude#353]: a string error body, "13055>= n_ctx" as quoted
        return 400, {
            "error": "The number of tokens to keep from the initial prompt is greater than the context "
            f"length (n_keep: {n_keep}>= n_ctx: {n_ctx}). Try to load the model with a larger context "
            "length, or provide a shorter input."
        }
    # LM Studio 0.3.x [reports: lmstudio-bug-tracker #237, #546 (0.3.13), cline #3664 (0.3.15)];
    # the typo "context the overflows" is theirs.
    message = (
        f"Trying to keep the first {n_keep} tokens when context the overflows. However, the model is loaded "
        f"with context length of only {n_ctx} tokens, which is not enough. Try to load the model with a "
        "larger context length, or provide a shorter input."
    )
    return 400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def lmstudio_fit(
    version: tuple[int, ...], policy: str, messages: list[Any], tools_tokens: int, n_prompt: int, n_ctx: int
) -> Fit:
    """LM Studio's server is closed source: every mode here is a reported behaviour (docs/servers.md).
    A prompt fits when it leaves at least one free cell (the llama.cpp engine's rule), and an answer
    that reaches the context end stops with "length" (stopAtLimit's contextLengthReached)."""
    if n_prompt < n_ctx:
        return Fit(n_prompt, n_ctx - n_prompt)
    if policy == "error":
        return Fit(n_prompt, reject=lmstudio_keep_error(version, n_prompt, n_ctx))
    if policy in ("truncate_middle", "rolling_window"):
        keep = _lmstudio_keep(messages, tools_tokens) if policy == "truncate_middle" else 0
        if keep >= n_ctx:  # the kept part alone is too big: the "keep" error
            return Fit(n_prompt, reject=lmstudio_keep_error(version, keep, n_ctx))
        # How much LM Studio cuts is not documented; the simulator applies llama.cpp's own
        # context-shift truncation (its GGUF engine is llama.cpp) and reports the cut count.
        return Fit(old_llamacpp_truncation(n_prompt, n_ctx, keep), None, truncated=True)
    if policy == "event_error":
        # LM Studio 0.4.21 [report: aaif-goose/goose#11318 = lmstudio-bug-tracker#2322]: HTTP 200,
        # text/event-stream, then a named `error` event.
        msg = (
            f"Input does not fit in context length. The input has {n_prompt} tokens, but the context length "
            f"only supports {n_ctx} tokens."
        )
        obj = {"error": {"message": msg}, "message": msg}
        return Fit(
            n_prompt, reject=(400, obj), stream_reject=b"event: error\ndata: " + orjson.dumps(obj) + b"\n\n"
        )
    # "empty" [report: lmstudio-bug-tracker#2339, 0.3.x GGUF]: 200, zero content deltas, usage counts
    return Fit(n_prompt, 0, empty=True)


# -- vLLM --------------------------------------------------------------------------------------------


def vllm_error_body(version: tuple[int, ...], message: str, *, param: str | None, value: int | None) -> Body:
    """A vLLM 400 for a request-validation failure, with the message tail of its version."""
    if version >= v.VLLM_VALIDATION_ERROR and param is not None:
        message += f" (parameter={param}, value={value})"  # VLLMValidationError.__str__
    if v.VLLM_NONE_SUFFIX <= version < v.VLLM_PARAM_FILLED:
        message += " None"  # serving_chat.py: create_error_response(f"{e} {e.__cause__}")
    shown_param = param if version >= v.VLLM_PARAM_FILLED else None
    if version < v.VLLM_NESTED_ERRORS:  # protocol.py ErrorResponse(object="error", ...) at the top level
        return {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": shown_param,
            "code": 400,
        }
    return {"error": {"message": message, "type": "BadRequestError", "param": shown_param, "code": 400}}


def vllm_fit(
    version: tuple[int, ...], n_prompt: int, max_tokens: int | None, ctx: int, param: str, stream: bool
) -> Fit:
    """`param`: the field max_tokens came in (max_completion_tokens or max_tokens)."""
    head = f"This model's maximum context length is {ctx} tokens."

    def reject(message: str, p: str | None, value: int | None) -> Fit:
        return Fit(n_prompt, reject=(400, vllm_error_body(version, message, param=p, value=value)))

    m = max_tokens or 0
    if version >= v.VLLM_YOU_PASSED and max_tokens is not None and max_tokens > ctx:
        # vllm/renderers/params.py TokenizeParams.__post_init__
        if version >= v.VLLM_MAX_TOKENS_NAME_FIXED:
            text = (
                f"{param}={m} cannot be greater than max_model_len={ctx}. Please request fewer output tokens."
            )
        else:
            space = " " if version >= v.VLLM_OUTPUT_TOKENS else ""
            text = (
                f"{param}={m}{space}cannot be greater than max_model_len=max_total_tokens={ctx}. "
                "Please request fewer output tokens."
            )
        return reject(text, param, m)
    if version >= v.VLLM_CLAMP:
        # renderers/params.py _token_len_check with max_input_tokens = max_model_len; the chat prompt
        # is tokenized with max_length = max_input_tokens + 1, hence "at least".
        if n_prompt > ctx:
            shown = min(n_prompt, ctx + 1)
            q = "at least " if shown == ctx + 1 else ""
            return reject(
                f"{head} However, your prompt contains {q}{shown} input tokens, which exceeds this limit even "
                "without any output tokens. Please reduce the length of the input prompt.",
                "input_tokens",
                shown,
            )
        if n_prompt == ctx:
            # passes the renderer; v1/engine/input_processor.py refuses it from inside the generator,
            # so a stream gets it in band after HTTP 200 (read in the code, not run)
            text = (
                f"The decoder prompt (length {n_prompt}) plus the number of requested output tokens (at least "
                f"1) is longer than the maximum model length of {ctx}. Make sure that `max_model_len` is no "
                "smaller than the number of text tokens (prompt + requested output tokens)."
            )
            fit = Fit(
                n_prompt,
                reject=(
                    400,
                    {"error": {"message": text, "type": "BadRequestError", "param": None, "code": 400}},
                ),
            )
            if stream:
                fit.stream_reject = (
                    b"data: "
                    + orjson.dumps(
                        {"error": {"message": text, "type": "BadRequestError", "param": None, "code": 400}}
                    )
                    + b"\n\ndata: [DONE]\n\n"
                )
            return fit
        # entrypoints get_max_tokens(): min(max_model_len - prompt, max_tokens): accepted, clamped
        return Fit(n_prompt, ctx - n_prompt)
    if version >= v.VLLM_YOU_PASSED:
        limit = ctx - m  # max_input_tokens = max_total_tokens - max_output_tokens
        if n_prompt > limit:
            shown = min(n_prompt, limit + 1)  # tokenized with max_length = max_input_tokens + 1
            if version >= v.VLLM_OUTPUT_TOKENS:
                q = "at least " if shown == limit + 1 else ""
                text = (
                    f"{head} However, you requested {m} output tokens and your prompt contains {q}{shown} input "
                    f"tokens, for a total of {q}{shown + m} tokens. Please reduce the length of the input prompt "
                    "or the number of requested output tokens."
                )
            else:
                text = (
                    f"You passed {shown} input tokens and requested {m} output tokens. However, the model's "
                    f"context length is only {ctx} tokens, resulting in a maximum input length of {limit} "
                    "tokens. Please reduce the length of the input prompt."
                )
            return reject(text, "input_tokens", shown)
        return Fit(n_prompt, ctx - n_prompt)
    if version >= v.VLLM_YOUR_REQUEST_HAS:
        # serving_engine.py _validate_input (0.10.1 .. 0.15.x)
        if n_prompt >= ctx:
            return reject(
                f"{head} However, your request has {n_prompt} input tokens. Please reduce the length of the "
                "input messages.",
                "input_tokens",
                n_prompt,
            )
        if max_tokens is not None and n_prompt + m > ctx:
            return reject(
                f"'max_tokens' or 'max_completion_tokens' is too large: {m}. This model's maximum context length "
                f"is {ctx} tokens and your request has {n_prompt} input tokens ({m} > {ctx} - {n_prompt}).",
                "max_tokens",
                m,
            )
        return Fit(n_prompt, ctx - n_prompt)
    # serving_engine.py _validate_input up to 0.10.0
    if max_tokens is None:
        if n_prompt >= ctx:
            return reject(
                f"{head} However, you requested {n_prompt} tokens in the messages, Please reduce the length of "
                "the messages.",
                None,
                None,
            )
    elif n_prompt + m > ctx:
        return reject(
            f"{head} However, you requested {m + n_prompt} tokens ({n_prompt} in the messages, {m} in the "
            "completion). Please reduce the length of the messages or completion.",
            None,
            None,
        )
    return Fit(n_prompt, ctx - n_prompt)


# -- generic OpenAI-compatible -----------------------------------------------------------------------


def openai_fit(n_prompt: int, max_tokens: int | None, ctx: int) -> Fit:
    """A generic OpenAI-compatible server refuses what OpenAI refuses: prompt plus max_tokens over the
    window (OpenAI's `context_length_exceeded` wording)."""
    completion = max_tokens or 0
    if n_prompt + completion > ctx:
        return Fit(
            n_prompt,
            reject=(
                400,
                {
                    "error": {
                        "message": f"This model's maximum context length is {ctx} tokens. However, your messages "
                        f"resulted in {n_prompt} tokens (plus {completion} in the completion). Please reduce the "
                        "length of the messages.",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
            ),
        )
    return Fit(n_prompt, ctx - n_prompt)
