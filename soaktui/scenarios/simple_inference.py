"""simple_inference: one non-streamed answer whose requested length spans 100 to 10k tokens.

The target length is drawn log-uniformly from the configured range (so short and long answers are
both common), capped by the model's known context length; `max_tokens` allows 30% headroom. The
real output token count and whether the answer was cut at `max_tokens` are recorded.
"""

from __future__ import annotations

import math

from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, judge
from soaktui.scenarios.corpus import TOPICS

PROMPT_HEADROOM = 256  # tokens reserved for the prompt and chat template


def target_tokens(ctx: ScenarioContext) -> int:
    lo, hi = ctx.settings.thresholds.simple_min_tokens, ctx.settings.thresholds.simple_max_tokens
    n = int(math.exp(ctx.rng.uniform(math.log(lo), math.log(hi))))
    if ctx.model.context_length:
        n = min(n, max(16, int((ctx.model.context_length - PROMPT_HEADROOM) / 1.3)))
    return n


class SimpleInference(Scenario):
    name = "simple_inference"
    weight = 3.0
    success_rule = "HTTP 2xx with a non-empty answer that ended with a finish reason"

    async def run(self, ctx: ScenarioContext) -> Outcome:
        target = target_tokens(ctx)
        words = max(20, int(target * 0.75))  # ~0.75 English words per token
        max_tokens = int(target * 1.3)
        if ctx.model.context_length:
            max_tokens = min(max_tokens, ctx.model.context_length - PROMPT_HEADROOM)
        topic = ctx.rng.choice(TOPICS)
        messages = [
            {"role": "system", "content": "You are a precise senior engineer. Answer in plain prose."},
            {"role": "user", "content": f"Write about {words} words on {topic}."},
        ]
        r = await ctx.chat(messages, stream=False, max_tokens=max_tokens, fields={"target_tokens": target})
        metrics = {
            "target_tokens": target,
            "max_tokens": max_tokens,
            "output_tokens": r.output_tokens,
            "truncated": r.truncated,
            "gen_tps": r.gen_tps,
        }
        return judge(r, **metrics)
