"""provider_failover: how long a failure takes to notice, and how long until service is back.

- With two or more providers: send a short request to the current one; if it fails, fail over to
  the next provider's first model. `detect_ms` is how long the failing request took to fail,
  `recover_ms` the time from the first send until another provider answered.
- With one provider: a short probe. If it fails, or the provider failed recently (an outage
  another test saw), poll with bounded exponential backoff until it answers again: `recover_ms`
  is the time from the observed failure to the first good answer.
- Where the server can unload a model over HTTP (Ollama: `keep_alive: 0`; LM Studio's REST API:
  `POST /api/v1/models/unload`), now and then unload it and time the next request: a cold load
  (`cold_load_ms` = its time to first token). llama.cpp and vLLM serve one loaded model and offer
  no unload, so no cold load is measured there.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from soaktui.providers.types import LMSTUDIO, OLLAMA, ModelInfo, Provider
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext, answered

PROBE = [{"role": "user", "content": "Reply with the single word: ready"}]
PROBE_TOKENS = 8
RECENT_FAILURE_S = 300.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 8.0
RECOVERY_BUDGET_S = 60.0
COLD_LOAD_SHARE = 0.25

# server kind -> (path, body) of the request that unloads a model
UNLOADERS = {
    OLLAMA: ("/api/generate", lambda m: {"model": m.id, "keep_alive": 0}),
    LMSTUDIO: ("/api/v1/models/unload", lambda m: {"instance_id": m.id}),
}


def _ms_since(t0_ns: int) -> float:
    return round((time.perf_counter_ns() - t0_ns) / 1e6, 3)


async def unload(provider: Provider, model: ModelInfo) -> bool:
    """Ask the server to unload `model`; True when it said yes."""
    path, body = UNLOADERS[provider.kind]
    headers = {"Authorization": f"Bearer {provider.api_key}"} if provider.api_key else None
    try:
        async with httpx.AsyncClient(timeout=30.0, headers=headers) as http:
            resp = await http.post(f"{provider.base_url}{path}", json=body(model))
        return resp.status_code < 300
    except httpx.HTTPError:
        return False


class ProviderFailover(Scenario):
    name = "provider_failover"
    weight = 0.5
    success_rule = "service answers: directly, through another provider, or again within the recovery budget"

    def planned_requests(self, ctx: ScenarioContext) -> int | None:
        return None  # probes until service is back, within the recovery budget

    async def run(self, ctx: ScenarioContext) -> Outcome:
        others = [p for p in ctx.providers if p.name != ctx.provider.name and p.models]
        if others:
            return await self._failover(ctx, others)
        if ctx.provider.kind in UNLOADERS and ctx.rng.random() < COLD_LOAD_SHARE:
            return await self._cold_load(ctx)
        return await self._recovery(ctx)

    async def _failover(self, ctx: ScenarioContext, others: list[Provider]) -> Outcome:
        t0 = time.perf_counter_ns()
        first = await ctx.chat(PROBE, stream=True, max_tokens=PROBE_TOKENS, fields={"phase": "primary"})
        metrics: dict = {"mode": "failover", "from_provider": ctx.provider.name, "to_provider": None}
        if answered(first) is None:
            metrics.update(failover_needed=False, detect_ms=None, recover_ms=None, attempts=1)
            return Outcome(True, metrics=metrics)
        metrics.update(failover_needed=True, detect_ms=first.e2e_ms)
        attempts = 1
        for p in others:
            attempts += 1
            r = await ctx.chat(
                PROBE,
                stream=True,
                max_tokens=PROBE_TOKENS,
                model=p.models[0],
                provider=p,
                fields={"phase": "failover"},
            )
            if answered(r) is None:
                metrics.update(to_provider=p.name, recover_ms=_ms_since(t0), attempts=attempts)
                return Outcome(True, metrics=metrics)
        metrics.update(recover_ms=None, attempts=attempts)
        return Outcome(
            False,
            f"no provider answered ({first.error_class} on {ctx.provider.name})",
            first.error_class,
            metrics,
        )

    async def _recovery(self, ctx: ScenarioContext) -> Outcome:
        seen = ctx.last_failure(ctx.provider.name)
        measured = ctx.state.setdefault("recoveries_measured", set())
        t_fail_ns: int | None = None
        if (
            seen is not None
            and seen[0] not in measured
            and (time.perf_counter_ns() - seen[0]) / 1e9 < RECENT_FAILURE_S
        ):
            t_fail_ns = seen[0]
            measured.add(seen[0])
        metrics: dict = {
            "mode": "recovery",
            "from_provider": ctx.provider.name,
            "to_provider": ctx.provider.name,
        }
        probe = await ctx.chat(PROBE, stream=True, max_tokens=PROBE_TOKENS, fields={"phase": "probe"})
        attempts = 1
        if answered(probe) is None:
            if t_fail_ns is None:
                metrics.update(mode="probe", detect_ms=None, recover_ms=None, attempts=1)
            else:
                metrics.update(detect_ms=None, recover_ms=_ms_since(t_fail_ns), attempts=1)
            return Outcome(True, metrics=metrics)
        if t_fail_ns is None:
            t_fail_ns = probe.end_ns or time.perf_counter_ns()
        metrics["detect_ms"] = probe.e2e_ms
        delay = BACKOFF_START_S
        budget = RECOVERY_BUDGET_S
        rem = ctx.remaining_s()
        if rem is not None:
            budget = max(1.0, min(budget, rem))
        deadline = time.monotonic() + budget
        last = probe
        while time.monotonic() + delay < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            attempts += 1
            last = await ctx.chat(PROBE, stream=True, max_tokens=PROBE_TOKENS, fields={"phase": "recovery"})
            if answered(last) is None:
                metrics.update(recover_ms=_ms_since(t_fail_ns), attempts=attempts)
                return Outcome(True, metrics=metrics)
        metrics.update(recover_ms=None, attempts=attempts)
        return Outcome(
            False, f"still failing after {budget:.0f}s ({last.error_class})", last.error_class, metrics
        )

    async def _cold_load(self, ctx: ScenarioContext) -> Outcome:
        metrics: dict = {
            "mode": "cold_load",
            "from_provider": ctx.provider.name,
            "to_provider": ctx.provider.name,
        }
        if not await unload(ctx.provider, ctx.model):
            return await self._recovery(ctx)
        # The probe waits for the load: `cold`, so its first-token time never enters the model's TTFT.
        r = await ctx.chat(
            PROBE,
            stream=True,
            max_tokens=PROBE_TOKENS,
            fields={"phase": "cold_load", "cold": True, "cold_source": "unloaded by provider_failover"},
        )
        metrics.update(cold_load_ms=r.ttft_ms if r.ok else None, attempts=1)
        why = answered(r)
        if why:
            return Outcome(
                False, f"first request after unload failed: {why}", r.error_class or "check_failed", metrics
            )
        return Outcome(True, metrics=metrics)
