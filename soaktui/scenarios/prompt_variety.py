"""prompt_variety: a prompt from the bank, answered and checked for the form it asked for."""

from __future__ import annotations

from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, answered
from soaktui.scenarios.checks import run_checks


class PromptVariety(Scenario):
    name = "prompt_variety"
    weight = 3.0
    success_rule = "a complete answer that passes the prompt's checks (code fence, SQL, item count, JSON)"

    async def run(self, ctx: ScenarioContext) -> Outcome:
        p = ctx.prompts.pick(ctx.rng)
        max_tokens = int(p.target_tokens * 1.5) + 64
        if ctx.model.context_length:
            max_tokens = min(max_tokens, max(64, ctx.model.context_length - 512))
        r = await ctx.chat(
            [{"role": "user", "content": p.prompt}],
            stream=True,
            max_tokens=max_tokens,
            fields={"prompt_id": p.id, "category": p.category},
        )
        checks = run_checks(r.content, p.checks) if r.ok else {}
        metrics = {
            "prompt_id": p.id,
            "category": p.category,
            "subcategory": p.subcategory,
            "checks": checks,
            "truncated": r.truncated,
            "output_tokens": r.output_tokens,
            "ttft_ms": r.ttft_ms,
            "gen_tps": r.gen_tps,
        }
        if not r.ok:
            return Outcome.failed_request(r, **metrics)
        why = answered(r)
        if why:
            return Outcome.check_failed(why, **metrics)
        failed = [name for name, passed in checks.items() if not passed]
        if failed:
            return Outcome.check_failed(f"checks failed: {', '.join(failed)}", **metrics)
        return Outcome(True, metrics=metrics)
