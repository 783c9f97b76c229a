"""tool_calling: does the model call the right tool with the right arguments, and use the result?

One test is one attempt at one prompt of the tool bank (prompts/tools/, soaktui.toolcalls.prompts):
explicit, implicit, irrelevant, parallel or multi-turn, drawn with the test's seeded generator. The
answer's calls are found by soaktui.toolcalls.detect in whatever format the model wrote them, and
judged stage by stage like the Berkeley Function Calling Leaderboard (soaktui.toolcalls.scoring).
A multi-turn prompt whose first answer made the right call gets the bank's tool result fed back,
and its final answer must repeat the returned values.

Two modes, both measured and recorded on every attempt:

- `native`: the catalog goes in OpenAI's `tools` field, with `tool_choice: "auto"` said out loud
  (the API's default, but llama-cpp-python's `chatml-function-calling` ignores the tools without it);
  the server's chat template and tool parser do the rest. A result goes back as the assistant's `tool_calls` message plus one role "tool"
  message per call (with its `tool_call_id`).
- `prompted`: no `tools` field; the tools are described in the system prompt with an instruction
  to answer in `<tool_call>` blocks (soaktui.toolcalls.prompted). This is how a model is used on a
  server without tool support, and it separates "the model cannot call tools" from "the server's
  parser missed the call". A result goes back as a user message with `<tool_response>` blocks (also
  used in native mode when the model wrote its calls as text, so there are no call ids to answer).

Each attempt picks a mode at random, half and half, so every model gets figures for both. A model
the server says has no tool support (ModelInfo.tool_use is False) is tested in prompted mode only,
and so is a model whose server rejected a native request (HTTP 400, 404, 422 or 501): `tools` is
not offered to it again. Requests are not streamed: a tool call is judged on the whole answer, some
servers cannot stream tool calls (llama-cpp-python's `chatml-function-calling` refuses "auto" tool
choice when streaming), and streaming figures have their own scenario.

Every attempt emits one `tool_call` event (docs/events.md); its scenario_result carries the same
figures. The test passes only when the verdict is "correct".
"""

from __future__ import annotations

import json
from typing import Any

from soaktui import errors
from soaktui.log import events as ev
from soaktui.providers.result import RequestResult
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext
from soaktui.toolcalls import catalog, detect, prompted
from soaktui.toolcalls.calls import Detection
from soaktui.toolcalls.prompts import ToolPrompt, ToolPromptBank, shipped_bank
from soaktui.toolcalls.scoring import Score, request_failed, score_answer, score_calls

MODES = ("native", "prompted")
PROMPT_ROOM = 3072  # tokens kept free for the prompt: the whole catalog in prompted mode is about 2,200
TEMPERATURE = 0.0  # the judged answer should be the model's best one, not a sample
MAX_EVENT_CALLS = 5
MAX_EVENT_ARGS = 200
STATE_KEY = "tool_calling"
REJECTED = (400, 404, 422, 501)  # statuses that mean "this server will not take `tools`"


def _max_tokens(ctx: ScenarioContext) -> int:
    """`thresholds.tool_max_tokens`, leaving room in the context for the tools and the prompt."""
    limit = ctx.settings.thresholds.tool_max_tokens
    if ctx.model.context_length:
        return max(64, min(limit, ctx.model.context_length - PROMPT_ROOM))
    return limit


def event_calls(detection: Detection) -> list[dict[str, str]]:
    """The calls as the event records them: name and a short JSON text of the arguments."""
    out = []
    for c in detection.calls[:MAX_EVENT_CALLS]:
        args = c.raw_arguments or (json.dumps(c.arguments, ensure_ascii=False) if c.arguments else "")
        if len(args) > MAX_EVENT_ARGS:
            args = args[: MAX_EVENT_ARGS - 1] + "…"
        out.append({"name": c.name[:64], "args": args})
    return out


def _native_follow_up(r: RequestResult, score: Score, prompt: ToolPrompt) -> list[dict[str, Any]]:
    """The assistant turn with its tool_calls, then one role "tool" message per matched call."""
    calls = []
    for i, raw in enumerate(r.tool_calls):
        fn = raw.get("function") or {}
        calls.append(
            {
                "id": raw.get("id") or f"call_{i}",
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": fn.get("arguments") or "{}"},
            }
        )
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": r.content or "", "tool_calls": calls}]
    for expected, made in score.pairs:
        messages.append(
            {
                "role": "tool",
                "tool_call_id": calls[made]["id"],
                "content": json.dumps(prompt.results[expected], ensure_ascii=False),
            }
        )
    return messages


def _text_follow_up(r: RequestResult, score: Score, prompt: ToolPrompt) -> list[dict[str, Any]]:
    """The assistant's text turn, then the results in a user message (`<tool_response>` blocks)."""
    results = [(prompt.calls[e].name, prompt.results[e]) for e, _ in score.pairs]
    return [
        {"role": "assistant", "content": r.content},
        {"role": "user", "content": prompted.results_message(results)},
    ]


def fitted_tools(prompt: ToolPrompt, cap: int | None) -> tuple[str, ...]:
    """The prompt's tools cut to `cap` (None: all of them): the tools its expected calls need
    first (never dropped), then the others in catalog order; at least one tool is always offered."""
    if cap is None or cap >= len(prompt.tools):
        return prompt.tools
    needed = [n for n in prompt.tools if any(c.name == n for c in prompt.calls)]
    others = [n for n in prompt.tools if n not in needed]
    keep = max(cap, len(needed), 1)
    return tuple(needed + others[: keep - len(needed)])


def _request(prompt: ToolPrompt, mode: str, names: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The first turn's messages, and the request's extra fields (`tools` in native mode)."""
    tools = catalog.tools(names)
    if mode == "native":
        return [{"role": "user", "content": prompt.prompt}], {"tools": tools, "tool_choice": "auto"}
    return [
        {"role": "system", "content": prompted.system_prompt(tools)},
        {"role": "user", "content": prompt.prompt},
    ], None


class ToolCalling(Scenario):
    name = "tool_calling"
    weight = 2.0
    success_rule = (
        "the right call(s) with accepted argument values, or no call when no tool applies; "
        "multi-turn: the final answer uses the tool result"
    )

    def __init__(self, mode: str | None = None, bank: ToolPromptBank | None = None) -> None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.mode = mode  # None: chosen per attempt
        self._bank = bank

    def planned_requests(self, ctx: ScenarioContext) -> int | None:
        return 2  # at most: a multi-turn prompt sends the tool result back for a second answer

    @property
    def bank(self) -> ToolPromptBank:
        if self._bank is None:
            self._bank = shipped_bank()
        return self._bank

    def choose_mode(self, ctx: ScenarioContext) -> str:
        if self.mode is not None:
            return self.mode
        state = ctx.state.setdefault(STATE_KEY, {})
        if ctx.model.tool_use is False or state.get("native_rejected"):
            return "prompted"
        return ctx.rng.choice(MODES)

    async def run(self, ctx: ScenarioContext) -> Outcome:
        prompt = self.bank.pick(ctx.rng)
        return await self.attempt(ctx, prompt, self.choose_mode(ctx))

    async def attempt(self, ctx: ScenarioContext, prompt: ToolPrompt, mode: str) -> Outcome:
        """One attempt at `prompt` in `mode`: request(s), detection, scoring, the event, the outcome."""
        state = ctx.state.setdefault(STATE_KEY, {})
        names = fitted_tools(prompt, state.get("tools_cap"))
        fields = {"prompt_id": prompt.id, "tool_mode": mode}
        max_tokens = _max_tokens(ctx)
        while True:
            messages, extra = _request(prompt, mode, names)
            floor = len(fitted_tools(prompt, 0))
            r = await ctx.chat(
                messages,
                stream=False,
                max_tokens=max_tokens,
                temperature=TEMPERATURE,
                extra=extra,
                fields={**fields, "turn": 1, "tools_offered": len(names)},
                overflow_is_ours=len(names) > floor,
            )
            if r.error_class != errors.CONTEXT_OVERFLOW or len(names) <= floor:
                break
            # Our tool list did not fit this model's context: remember a smaller one for the model
            # (its later attempts start there) and ask again; the failed request counts nowhere.
            state["tools_cap"] = max(floor, len(names) // 2)
            names = fitted_tools(prompt, state["tools_cap"])
        detection = Detection()
        failed: RequestResult | None = None
        if not r.ok and r.error_class != errors.EMPTY_RESPONSE:  # an empty answer is scored: no call
            failed = r
            score = request_failed(r.error or r.error_class)
            if mode == "native" and r.error_class == errors.HTTP_STATUS and r.http_status in REJECTED:
                ctx.state.setdefault(STATE_KEY, {})["native_rejected"] = r.http_status
        else:
            detection = detect(r.content, r.tool_calls, names)
            score = score_calls(detection, prompt, answer_cut=r.truncated)
            if prompt.kind == "multi_turn" and score.correct:
                native_calls = mode == "native" and detection.format == "native"
                follow = (_native_follow_up if native_calls else _text_follow_up)(r, score, prompt)
                r2 = await ctx.chat(
                    messages + follow,
                    stream=False,
                    max_tokens=max_tokens,
                    temperature=TEMPERATURE,
                    extra=extra,
                    fields={**fields, "turn": 2, "tools_offered": len(names)},
                )
                if not r2.ok:
                    failed = r2
                    score = request_failed(r2.error or r2.error_class, before=score)
                else:
                    score = score_answer(score, r2.content, prompt, answer_cut=r2.truncated)
        metrics: dict[str, Any] = {
            "prompt_id": prompt.id,
            "prompt_kind": prompt.kind,
            "mode": mode,
            "tools_offered": len(names),
            "format": detection.format,
            "trust": detection.trust,
            "checks": score.checks,
            "verdict": score.verdict,
            "correct": score.correct,
            "detail": score.detail,
        }
        ctx.emit(ev.TOOL_CALL, **metrics, calls=event_calls(detection), requests=ctx.requests)
        metrics["output_tokens"] = r.output_tokens
        metrics["e2e_ms"] = r.e2e_ms
        if failed is not None:
            return Outcome.failed_request(failed, **metrics)
        if not score.correct:
            return Outcome.check_failed(score.verdict, **metrics)
        return Outcome(True, metrics=metrics)
