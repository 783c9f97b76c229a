"""Failures a server hides behind HTTP 200, judged on every request after the client measured it.

The client (providers/client.py) only measures; what a "good" answer is also depends on what was
sent and on the run's settings, so it is judged here, once, for every scenario:

- **Silent prompt truncation.** Ollama cuts a prompt longer than its `num_ctx` and answers 200 with
  the cut count in `usage.prompt_tokens`; LM Studio's truncateMiddle and rollingWindow overflow
  policies do the same (docs/servers.md). soaktui compares the prompt tokens the server reports with
  what it sent. It has no tokenizer, so it uses a floor: one token per `CHARS_PER_TOKEN_MAX`
  characters of message text. Real tokenizers give one token per 3.5-4.7 characters of English
  prose (GPT-2/SmolLM2, Llama 3, Qwen 2.5, Gemma, Mistral), so an honest count is always above the
  floor, and a count below it means at least ~25% of the prompt never reached the model. That is
  the documented tolerance: cuts smaller than about a quarter are not caught. The request fails
  with `prompt_truncated`.
- **Stalls.** A stream that goes silent for `thresholds.stall_s` (default 5 s) between two content
  chunks and then finishes is not a success: the request fails with `stalled`, and the event keeps
  `max_gap_ms`.
- **Overflow answered with nothing.** LM Studio's GGUF engine has answered an over-long prompt with
  HTTP 200 and no content. An empty answer to a prompt whose floor alone exceeds the model's known
  context is classified `context_overflow`, not `empty_response`.

Each rule adds its evidence to the request event (`prompt_chars`, `prompt_tokens_floor`,
`prompt_truncated`, `stalled`), so a reader can re-judge it.
"""

from __future__ import annotations

from typing import Any

from soaktui import errors
from soaktui.providers.result import RequestResult

CHARS_PER_TOKEN_MAX = 6.0  # no tokenizer we know averages more characters per token on prose


def _text_len(content: Any) -> int:
    """Characters of a message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        n = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                n += len(part["text"])
            elif isinstance(part, str):
                n += len(part)
        return n
    return 0


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of text soaktui sends in `messages` (contents and tool-call arguments)."""
    total = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        total += _text_len(m.get("content"))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                total += len(fn["arguments"])
    return total


def prompt_floor(chars: int) -> int:
    """The fewest prompt tokens an uncut prompt of `chars` characters can count."""
    return int(chars / CHARS_PER_TOKEN_MAX)


def judge_request(
    result: RequestResult,
    *,
    chars: int,
    stall_s: float,
    context_length: int | None,
) -> dict[str, Any]:
    """Apply the rules above to `result` (turning it into a failure where one holds); return the
    evidence fields for its `request` event."""
    floor = prompt_floor(chars)
    fields: dict[str, Any] = {"prompt_chars": chars, "prompt_tokens_floor": floor}
    reported = result.prompt_tokens
    cut = reported is not None and reported < floor
    fields["prompt_truncated"] = None if reported is None else cut
    gap = result.max_gap_ms
    stalled = result.stream and gap is not None and gap >= stall_s * 1000.0
    fields["stalled"] = stalled if result.stream else None
    if not result.ok:
        if (
            result.error_class == errors.EMPTY_RESPONSE
            and context_length
            and floor >= context_length
            and result.http_status is not None
            and 200 <= result.http_status < 300
        ):
            _fail(
                result,
                errors.CONTEXT_OVERFLOW,
                f"empty HTTP {result.http_status} answer to a prompt of at least {floor} tokens, over the "
                f"model's {context_length}-token context",
            )
        return fields
    if cut:
        _fail(
            result,
            errors.PROMPT_TRUNCATED,
            f"server counted {reported} prompt tokens for {chars} characters sent (at least {floor} "
            "expected): the prompt was cut silently",
        )
    elif stalled:
        _fail(
            result,
            errors.STALLED,
            f"stream went silent for {gap / 1000:.1f} s between tokens (stall limit {stall_s:g} s), "
            "then finished",
        )
    return fields


def _fail(result: RequestResult, error_class: str, message: str) -> None:
    result.ok = False
    result.error_class = error_class
    result.error = message
