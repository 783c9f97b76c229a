"""concurrent_load: N parallel streams from a ladder, climbing only while the server keeps up.

Each test first sends one request alone (the baseline, `concurrency=1`), then N identical
streamed requests at once. Aggregate throughput is all output tokens of the successful requests
divided by the wall time of the batch. The ladder (default 2, 4, 8) is per model: it climbs one
step per test while the batch is healthy and stops for good at the first level where the error
rate or the median latency (against the baseline) shows saturation, so the soak never knocks
over the machine it is measuring.
"""

from __future__ import annotations

import asyncio
import time

from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, answered
from soaktui.scenarios.corpus import TOPICS
from soaktui.stats import percentile


class ConcurrentLoad(Scenario):
    name = "concurrent_load"
    weight = 1.5
    success_rule = "every request of the batch returned a complete streamed answer"

    @staticmethod
    def _rung(ctx: ScenarioContext) -> tuple[dict, int]:
        ladder = ctx.settings.concurrency
        st = ctx.state.setdefault("ladder", {"index": 0, "ceiling": None})
        return st, ladder[min(st["index"], len(ladder) - 1)]

    def planned_requests(self, ctx: ScenarioContext) -> int | None:
        return 1 + self._rung(ctx)[1]

    async def run(self, ctx: ScenarioContext) -> Outcome:
        ladder = ctx.settings.concurrency
        st, n = self._rung(ctx)
        messages = [{"role": "user", "content": f"In five sentences, summarise {ctx.rng.choice(TOPICS)}."}]

        max_tokens = ctx.settings.thresholds.concurrent_max_tokens
        solo = await ctx.chat(messages, stream=True, max_tokens=max_tokens, fields={"concurrency": 1})
        start = time.perf_counter_ns()
        results = await asyncio.gather(
            *(
                ctx.chat(messages, stream=True, max_tokens=max_tokens, fields={"concurrency": n})
                for _ in range(n)
            )
        )
        wall_ms = (max((r.end_ns or start) for r in results) - start) / 1e6
        good = [r for r in results if answered(r) is None]
        failed = n - len(good)
        tokens = sum(r.output_tokens or 0 for r in good)
        lat = sorted(r.e2e_ms for r in good if r.e2e_ms is not None)
        p50 = percentile(lat, 50)
        # A baseline that waited for a cold load is not the model's single-stream latency.
        baseline = solo.e2e_ms if answered(solo) is None and not solo.cold else None
        error_rate = failed / n
        slow = (
            p50 is not None
            and baseline is not None
            and p50 > ctx.settings.thresholds.saturation_latency_factor * baseline
        )
        saturated = error_rate > ctx.settings.thresholds.saturation_error_rate or slow or not good
        if saturated:
            lower = [x for x in ladder if x < n]
            st["ceiling"] = lower[-1] if lower else n
            st["index"] = max(0, ladder.index(n) - 1) if n in ladder else 0
        elif st["ceiling"] is None and st["index"] < len(ladder) - 1:
            st["index"] += 1
        metrics = {
            "concurrency": n,
            "succeeded": len(good),
            "failed": failed,
            "aggregate_tps": round(tokens / (wall_ms / 1e3), 3) if good and wall_ms > 0 else None,
            "wall_ms": round(wall_ms, 3),
            "latency_p50_ms": None if p50 is None else round(p50, 3),
            "latency_p95_ms": None if not lat else round(percentile(lat, 95), 3),
            "baseline_ms": baseline,
            "saturated": saturated,
            "ceiling": st["ceiling"],
        }
        if failed:
            first_bad = next(r for r in results if answered(r) is not None)
            kind = first_bad.error_class or "check_failed"
            return Outcome(
                False, f"partial: {len(good)}/{n} succeeded ({answered(first_bad)})", kind, metrics
            )
        return Outcome(True, metrics=metrics)
