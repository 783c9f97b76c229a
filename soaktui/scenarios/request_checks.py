"""Failures a server hides behind HTTP 200, judged on every request after the client measured it.

The client (providers/client.py) only measures; what a "good" answer is also depends on what was
sent and on the run's settings, so it is judged here, once, for every scenario:

- **Silent prompt truncation.** Ollama cuts a prompt longer than its `num_ctx` and answers 200 with
  the cut count in `usage.prompt_tokens`; LM Studio's truncateMiddle and rollingWindow overflow
  policies do the same (docs/servers.md). soaktui compares the prompt tokens the server reports with
  a floor: the fewest tokens an uncut prompt of that many characters can count. It has no
  tokenizer, so the floor comes from characters:
  - until the model's own ratio is known, one token per `CHARS_PER_TOKEN_MAX` (6) characters. Real
    tokenizers give one token per 3.5-4.7 characters of English prose (GPT-2/SmolLM2, Llama 3,
    Qwen 2.5, Gemma, Mistral), so an honest count is always above it, and a cut of more than about
    a quarter to a third of the prompt falls below it;
  - for prompts from one text generator (large_context's documents: `uniform_text`), once the
    model has answered such prompts of at least `LEARN_MIN_TOKENS` tokens uncut and in the lower
    half of its known context (a prompt near the context may itself have been cut where the real
    context is smaller than the planned one), the largest characters-per-token ratio seen, times
    `LEARNED_HEADROOM` (1.25): a count under 80% of what the model's own earlier prompts of the
    same kind predict is a cut. The largest ratio and the headroom keep a prompt that tokenizes a
    little better than the earlier ones from being called cut. Ratios are never carried across
    scenarios: JSON and code count far more tokens per character than prose.
  Servers that cut do so to a fixed size (Ollama: exactly `num_ctx`, or `num_ctx`-1, or half of
  it, by version), so a third rule needs no ratio at all: a prompt of at least
  `PLATEAU_MIN_TOKENS` tokens that counts exactly as many tokens as an earlier prompt of the same
  scenario with `PLATEAU_SPREAD` (15%) fewer characters hit a cap: it was cut.
  That is the documented tolerance: a first cut of less than a fifth of the prompt (a quarter before
  the ratio is learned) is not caught. The request fails with `prompt_truncated`.
- **Stalls.** A stream that goes silent for `thresholds.stall_s` (default 5 s) between two content
  chunks and then finishes is not a success: the request fails with `stalled`, and the event keeps
  `max_gap_ms`.
- **Overflow answered with nothing.** LM Studio's GGUF engine has answered an over-long prompt with
  HTTP 200 and no content. An empty answer to a prompt whose floor alone exceeds the model's known
  context is classified `context_overflow`, not `empty_response`.

Each rule adds its evidence to the request event (`prompt_chars`, `prompt_tokens_floor`,
`prompt_floor_rule`, `prompt_truncated`, `stalled`), so a reader can re-judge it.
"""

from __future__ import annotations

from typing import Any

from soaktui import errors
from soaktui.providers.result import RequestResult

CHARS_PER_TOKEN_MAX = 6.0  # no tokenizer we know averages more characters per token on prose
LEARN_MIN_TOKENS = 256  # prompts at least this long teach a model's ratio (chat-template overhead small)
LEARN_MAX_CONTEXT_SHARE = 0.5  # ...in the lower half of the known context (a count near it may be a cut)
LEARNED_HEADROOM = 1.25  # a learned floor expects at least 80% of the predicted count
PLATEAU_MIN_TOKENS = 1024  # equal counts of long prompts of different sizes mean a cap
PLATEAU_SPREAD = 0.15  # ...when their sizes differ by more than this
MAX_COUNTS = 1024  # (scenario, count) pairs remembered per model for the plateau rule
FIXED_RULE = f"1 token per {CHARS_PER_TOKEN_MAX:g} characters"


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
    """The fewest prompt tokens an uncut prompt of `chars` characters can count, for any tokenizer."""
    return int(chars / CHARS_PER_TOKEN_MAX)


class PromptRatios:
    """One model's characters per prompt token, learned from its uncut prompts (kept in the
    engine's per-model state): the largest ratio seen per scenario."""

    def __init__(self) -> None:
        self.by_scenario: dict[str, float] = {}
        self._counts: dict[tuple[str, int], int] = {}  # (scenario, reported count) -> fewest chars

    def capped(self, chars: int, tokens: int | None, scenario: str) -> int | None:
        """The characters of an earlier, clearly shorter prompt of this scenario that counted exactly
        `tokens` too (the server caps prompts at that count), else None; remembers this prompt."""
        if tokens is None or tokens < PLATEAU_MIN_TOKENS:
            return None
        key = (scenario, tokens)
        seen = self._counts.get(key)
        if seen is None or chars < seen:
            if seen is None and len(self._counts) >= MAX_COUNTS:
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = chars
        if seen is not None and chars > seen * (1 + PLATEAU_SPREAD):
            return seen
        return None

    def floor(self, chars: int, scenario: str) -> tuple[int, str]:
        """(floor, rule): the learned floor where this scenario's ratio is known, never below
        prompt_floor()."""
        base = prompt_floor(chars)
        ratio = self.by_scenario.get(scenario)
        learned = int(chars / (ratio * LEARNED_HEADROOM)) if ratio else 0
        if learned <= base:
            return base, FIXED_RULE
        return learned, f"learned {ratio:.2f} characters per token ({scenario}) x {LEARNED_HEADROOM:g}"

    def learn(self, chars: int, tokens: int | None, scenario: str, context_length: int | None) -> None:
        if tokens is None or tokens < LEARN_MIN_TOKENS or chars <= 0:
            return
        if context_length and tokens >= LEARN_MAX_CONTEXT_SHARE * context_length:
            return
        ratio = chars / tokens
        if ratio > self.by_scenario.get(scenario, 0.0):
            self.by_scenario[scenario] = ratio


def judge_request(
    result: RequestResult,
    *,
    chars: int,
    stall_s: float,
    context_length: int | None,
    ratios: PromptRatios | None = None,
    scenario: str = "",
    uniform_text: bool = False,
    countable: bool = True,
) -> dict[str, Any]:
    """Apply the rules above to `result` (turning it into a failure where one holds); return the
    evidence fields for its `request` event. `ratios`: the model's memory for the learned floor
    (`uniform_text` prompts only; updated here from an uncut answer) and the plateau rule.
    `countable` is False when the prompt count includes text soaktui did not count (`tools`
    schemas): then only the fixed floor applies."""
    learning = ratios is not None and uniform_text and countable
    if learning:
        floor, rule = ratios.floor(chars, scenario)
    else:
        floor, rule = prompt_floor(chars), FIXED_RULE
    fields: dict[str, Any] = {"prompt_chars": chars, "prompt_tokens_floor": floor, "prompt_floor_rule": rule}
    reported = result.prompt_tokens
    cut = reported is not None and reported < floor
    # The plateau rule needs a count made of the text soaktui counted (no tool schemas, and at least
    # a character per token: real text has three or more).
    capped = countable and reported is not None and chars >= reported
    shorter = ratios.capped(chars, reported, scenario) if ratios is not None and capped else None
    if cut:
        shorter = None  # the floor says it already; one reason
    elif shorter is not None:
        cut = True
        rule = f"same count as a prompt of {shorter} characters: the server caps prompts at {reported} tokens"
        fields["prompt_floor_rule"] = rule
    fields["prompt_truncated"] = None if reported is None else cut
    if learning and result.ok and not cut:
        ratios.learn(chars, reported, scenario, context_length)
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
            f"server counted {reported} prompt tokens for {chars} characters sent, as for a prompt of "
            f"{shorter} characters: it caps prompts at {reported} tokens and cut this one silently"
            if shorter is not None
            else f"server counted {reported} prompt tokens for {chars} characters sent (at least {floor} "
            f"expected: {rule}): the prompt was cut silently",
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
