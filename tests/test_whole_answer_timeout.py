"""A whole (non-streamed) answer is silent until it is complete: its silence limit follows the
model's speed and the answer's size, so a slow model is not filed as a server that sent nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque

import pytest

from soaktui import errors
from soaktui.config import load_settings
from soaktui.providers.client import ChatClient
from soaktui.providers.types import OPENAI, ModelInfo, Provider
from soaktui.scenarios.base import SLOW_TPS, SPEED_KEY, Outcome, Scenario, ScenarioContext
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.simulator.personas import default_personas
from tests.scenario_driver import run_tests

pytestmark = pytest.mark.integration

MAX_TOKENS = 60
MESSAGES = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


class WholeAnswer(Scenario):
    name = "simple_inference"
    success_rule = "the answer arrives"

    async def run(self, ctx: ScenarioContext) -> Outcome:
        r = await ctx.chat(MESSAGES, stream=False, max_tokens=MAX_TOKENS, temperature=0.0)
        return Outcome(r.ok, r.error, r.error_class)


def test_a_slow_whole_answer_outlasts_the_streaming_silence_limit():
    """40 tokens/s for 60 tokens: 1.5 s of silence, against a 1-second streaming limit. Sent with the
    client's limit it is a read timeout; sent by a scenario, its limit follows the answer's size."""
    chat = next(p for p in default_personas() if p.is_chat)
    persona = dataclasses.replace(chat, tps=40.0, ttft_ms=50.0)
    settings = load_settings(None, {}, {"timeouts.read": "1", "timeouts.request": "20"})
    requests: list[dict] = []

    async def go() -> tuple[object, list[Outcome]]:
        with run_in_thread(SimConfig(personas=[persona], speed=1.0, seed=3)) as sim:
            provider = Provider(name="sim", kind=OPENAI, base_url=sim.base_url)
            model = ModelInfo(id=persona.id, provider="sim", context_length=persona.context_length)
            async with ChatClient(sim.base_url, read_timeout_s=1.0) as client:
                bare = await client.chat(
                    persona.id, MESSAGES, stream=False, max_tokens=MAX_TOKENS, temperature=0.0
                )
                outcomes = await run_tests(
                    WholeAnswer(), client, provider, model, settings, 2, requests=requests
                )
        return bare, outcomes

    bare, outcomes = asyncio.run(go())
    assert (bare.ok, bare.error_class) == (False, errors.READ_TIMEOUT)  # what the fixed limit did
    assert [o.ok for o in outcomes] == [True, True], [o.reason for o in outcomes]
    first, second = requests
    # before any speed is measured: SLOW_TPS; never below timeouts.read, never above timeouts.request
    assert first["read_timeout_s"] == min(20.0, MAX_TOKENS / SLOW_TPS * 1.5 + 30.0)
    assert second["read_timeout_s"] <= first["read_timeout_s"] and first["gen_tps"] > 0


def test_the_limit_follows_the_measured_speed_between_its_floor_and_cap():
    settings = load_settings(None, {}, {"timeouts.read": "100", "timeouts.request": "600"})
    state: dict = {}
    ctx = ScenarioContext.__new__(ScenarioContext)  # only settings and state are read
    ctx.settings, ctx.state = settings, state
    assert ctx.whole_answer_timeout_s(None) is None
    assert ctx.whole_answer_timeout_s(1024) == round(
        1024 / SLOW_TPS * 1.5 + 30, 1
    )  # 337.2 s, nothing measured
    assert ctx.whole_answer_timeout_s(4096) == 600.0  # capped at timeouts.request
    state[SPEED_KEY] = deque([80.0, 90.0, 100.0])
    assert ctx.whole_answer_timeout_s(1024) == 100.0  # 1024 / 90 * 1.5 + 30 = 47 s: the floor, timeouts.read
    state[SPEED_KEY] = deque([8.0, 10.0, 12.0])
    assert ctx.whole_answer_timeout_s(1024) == round(1024 / 10 * 1.5 + 30, 1)  # 183.6 s at the median speed
