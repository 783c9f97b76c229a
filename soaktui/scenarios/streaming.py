"""streaming: one streamed answer measured chunk by chunk.

Time to first token, inter-token latency (p50/p95 over the request), output tokens/s over the
generation phase and the chunk count, all from arrival stamps taken before parsing (see
soaktui/providers/result.py for the definitions).
"""

from __future__ import annotations

from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, judge
from soaktui.scenarios.corpus import TOPICS


class Streaming(Scenario):
    name = "streaming"
    weight = 2.0
    success_rule = "a streamed answer with at least one content chunk that ended with a finish reason"

    async def run(self, ctx: ScenarioContext) -> Outcome:
        max_tokens = ctx.settings.thresholds.stream_max_tokens
        words = max(30, int(max_tokens * 0.6))
        messages = [{"role": "user", "content": f"Explain {ctx.rng.choice(TOPICS)} in about {words} words."}]
        r = await ctx.chat(messages, stream=True, max_tokens=max_tokens)
        p50, p95 = r.itl_percentiles()
        metrics = {
            "ttft_ms": r.ttft_ms,
            "itl_p50_ms": p50,
            "itl_p95_ms": p95,
            "gen_tps": r.gen_tps,
            "chunks": r.chunks,
            "output_tokens": r.output_tokens,
        }
        return judge(r, **metrics)
