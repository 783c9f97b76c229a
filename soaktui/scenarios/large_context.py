"""large_context: a 10k-40k token prompt of varied text, to time prompt processing.

The target size is drawn from the configured range and capped to the model's known context length
(leaving room for the answer). Sizes are planned with a conservative 3 characters per token; the
real prompt size is the server's `usage.prompt_tokens` when it reports one. A question about a fact
hidden at a random depth shows whether the model read that far (`needle_found`, recorded, not a
success condition: small models miss it without the server being at fault). A context-overflow
answer is classified as `context_overflow`, not counted as a crash.
"""

from __future__ import annotations

from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, judge
from soaktui.scenarios.corpus import long_document, make_needle

CHARS_PER_TOKEN = 3.0  # planning only: real counts come from the server
ANSWER_TOKENS = 32
MARGIN_TOKENS = 128


def plan_tokens(ctx: ScenarioContext) -> tuple[int, bool]:
    target = ctx.rng.randint(
        ctx.settings.thresholds.large_context_min_tokens, ctx.settings.thresholds.large_context_max_tokens
    )
    ctx_len = ctx.model.context_length
    if ctx_len and target > ctx_len - ANSWER_TOKENS - MARGIN_TOKENS:
        return max(256, ctx_len - ANSWER_TOKENS - MARGIN_TOKENS), True
    return target, False


class LargeContext(Scenario):
    name = "large_context"
    weight = 0.5
    success_rule = "a streamed answer to a question over the long prompt (no overflow, no error)"

    async def run(self, ctx: ScenarioContext) -> Outcome:
        target, capped = plan_tokens(ctx)
        needle, code = make_needle(ctx.rng)
        doc = long_document(ctx.rng, int(target * CHARS_PER_TOKEN), needle)
        messages = [
            {"role": "system", "content": "You answer questions about the document the user provides."},
            {
                "role": "user",
                "content": f"{doc}\n\nQuestion: what is the escrow release code for the quarter? "
                "Reply with the code only.",
            },
        ]
        r = await ctx.chat(
            messages,
            stream=True,
            max_tokens=ANSWER_TOKENS,
            temperature=0.0,
            fields={"context_target_tokens": target},
            uniform_text=True,  # one document generator: its ratio teaches the silent-cut check
        )
        metrics = {
            "context_target_tokens": target,
            "capped_to_context": capped,
            "prompt_chars": len(doc),
            "prompt_tokens": r.prompt_tokens,
            "ttft_ms": r.ttft_ms,
            "prompt_tps": r.prompt_tps,
            "context_length": ctx.model.context_length,
            "needle_found": (code in r.content) if r.ok else None,
        }
        return judge(r, **metrics)
