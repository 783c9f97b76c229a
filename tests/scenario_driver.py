"""Running a scenario's tests directly, without the engine, against a real server over HTTP.

The engine picks scenarios and models at random; a test that measures one scenario's rates wants
many tests of that scenario on a chosen model, with the per-model state kept between them as the
engine keeps it.
"""

from __future__ import annotations

import random
from typing import Any

from soaktui.config import Settings
from soaktui.providers.client import ChatClient
from soaktui.providers.types import ModelInfo, Provider
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext


async def run_tests(
    scenario: Scenario,
    client: ChatClient,
    provider: Provider,
    model: ModelInfo,
    settings: Settings,
    n: int,
    *,
    requests: list[dict[str, Any]],
    state: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> list[Outcome]:
    """`n` tests of `scenario` on `model`, one after the other; request events go to `requests`,
    the scenario's own events (ctx.emit) to `events` when given."""
    state = {} if state is None else state

    def emit(kind: str, **fields: Any) -> None:
        if events is not None:
            events.append({"kind": kind, **fields})

    outcomes = []
    for i in range(n):
        ctx = ScenarioContext(
            test_id=i,
            scenario=scenario.name,
            model=model,
            provider=provider,
            client=client,
            providers=[provider],
            clients={provider.name: client},
            rng=random.Random(f"{model.id}:{i}"),
            settings=settings,
            model_state=state,
            emit_request=requests.append,
            remaining_s=lambda: None,
            last_failure=lambda name: None,
            emit_event=emit,
        )
        outcomes.append(await scenario.run(ctx))
    return outcomes
