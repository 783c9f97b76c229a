"""What a scenario is and what it may use: the contract between the engine and each test.

A scenario runs one test against the current model through `ScenarioContext.chat`, which times the
request, emits its `request` event (with the scenario's extra fields) and hands the result back.
The scenario then applies its own success rule and returns an `Outcome`; the engine turns that into
the `scenario_result` event. "No exception" is never a success rule: every scenario states its rule
in `success_rule` and gives a reason when a test fails.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from soaktui import errors
from soaktui.config import Settings
from soaktui.providers.client import ChatClient
from soaktui.providers.result import RequestResult
from soaktui.providers.types import ModelInfo, Provider
from soaktui.scenarios.request_checks import PromptRatios, judge_request, prompt_chars

# The silence limit of a whole (non-streamed) answer follows the model's speed (whole_answer_timeout_s).
SPEED_KEY = "gen_tps_recent"  # model state: generation tokens/s of its last successful requests
SPEED_WINDOW = 20
SLOW_TPS = 5.0  # tokens/s assumed before the model's speed is measured: a slow CPU-only model
WHOLE_ANSWER_MARGIN = 1.5
WHOLE_ANSWER_FIXED_S = 30.0  # the prompt's processing and the queue, on top of the generation


@dataclass
class Outcome:
    ok: bool
    reason: str | None = None
    error_class: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed_request(cls, result: RequestResult, **metrics: Any) -> Outcome:
        return cls(False, result.error or result.error_class, result.error_class, metrics)

    @classmethod
    def check_failed(cls, reason: str, **metrics: Any) -> Outcome:
        return cls(False, reason, errors.CHECK_FAILED, metrics)


class ScenarioContext:
    """Everything one test may touch. Built by the engine for each test."""

    def __init__(
        self,
        *,
        test_id: int,
        scenario: str,
        model: ModelInfo,
        provider: Provider,
        client: ChatClient,
        providers: list[Provider],
        clients: dict[str, ChatClient],
        rng: random.Random,
        settings: Settings,
        model_state: dict[str, Any],
        emit_request: Callable[[dict[str, Any]], None],
        remaining_s: Callable[[], float | None],
        last_failure: Callable[[str], tuple[int, str] | None],
        prompts: Any = None,
        emit_event: Callable[..., None] | None = None,
    ) -> None:
        self.test_id = test_id
        self.scenario = scenario
        self.model = model
        self.provider = provider
        self.client = client
        self.providers = providers
        self.clients = clients
        self.rng = rng
        self.settings = settings
        self.state = model_state  # survives across tests on this model (e.g. the concurrency ladder)
        self._emit_request = emit_request
        self._remaining = remaining_s
        self.last_failure = last_failure  # provider name -> (monotonic time, error class) of last outage
        self.prompts = prompts
        self._emit_event = emit_event
        self.requests = 0
        # Set by the engine when the server said, just before this test, that the model is not
        # loaded: the requests sent before the first answer comes back pay for the load (`cold`).
        self.cold_pending = False
        self.cold_source: str | None = None

    def emit(self, kind: str, **fields: Any) -> None:
        """Emit a scenario-specific event (e.g. `tool_call`), tagged with the test, model and provider."""
        if self._emit_event is None:
            return
        tags = {
            "test_id": self.test_id,
            "scenario": self.scenario,
            "provider": self.provider.name,
            "model": self.model.id,
            "key": self.model.key,
        }
        tags.update(fields)
        self._emit_event(kind, **tags)

    def timeout_s(self) -> float:
        """The request budget. The end of the run does not shorten it: the engine cancels a test
        that outlives the run (after the grace period), and a cancel is not the model's failure."""
        return self.settings.timeouts.request

    def remaining_s(self) -> float | None:
        return self._remaining()

    def whole_answer_timeout_s(self, max_tokens: int | None) -> float | None:
        """The silence limit for a non-streamed answer of up to `max_tokens`: nothing arrives until
        the whole answer is written, so a slow model would hit the streaming limit (timeouts.read)
        while still working. It is the time `max_tokens` take at the model's measured generation
        speed (the median of its last successful requests; SLOW_TPS before any), times
        WHOLE_ANSWER_MARGIN, plus WHOLE_ANSWER_FIXED_S for the prompt; never below timeouts.read and
        never above timeouts.request. None (the client's default) without a max_tokens."""
        if not max_tokens:
            return None
        speeds = sorted(self.state.get(SPEED_KEY) or ())
        tps = speeds[len(speeds) // 2] if speeds else SLOW_TPS
        need = max_tokens / max(tps, 0.1) * WHOLE_ANSWER_MARGIN + WHOLE_ANSWER_FIXED_S
        t = self.settings.timeouts
        return round(min(t.request, max(t.read, need)), 1)

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        stream: bool,
        max_tokens: int | None = None,
        temperature: float | None = 0.7,
        model: ModelInfo | None = None,
        provider: Provider | None = None,
        extra: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        uniform_text: bool = False,
        overflow_is_ours: bool = False,
    ) -> RequestResult:
        """Send one chat request, emit its `request` event, return the result (never raises but on
        cancel). `uniform_text`: the prompt comes from one text generator, so the model's
        characters-per-token ratio learned from earlier ones applies (request_checks.PromptRatios).
        `overflow_is_ours`: a context overflow would be soaktui's own doing (a tool list the caller
        will shrink and retry): the event says `tools_did_not_fit`, which no reliability counts."""
        own_model = (model is None or model is self.model) and (provider is None or provider is self.provider)
        model = model or self.model
        provider = provider or self.provider
        client = self.clients.get(provider.name, self.client)
        tags: dict[str, Any] = {"test_id": self.test_id, "scenario": self.scenario, "provider": provider.name}
        if fields:
            tags.update(fields)
        # Cold: the caller says so (provider_failover's unload probe), or the server said the model
        # was not loaded just before this test and nothing has come back from it yet.
        cold = bool(tags.get("cold")) or (own_model and self.cold_pending)
        if cold:
            tags.setdefault("cold_source", self.cold_source)
        tags["cold"] = cold
        chars = prompt_chars(messages)

        def record(result: RequestResult) -> None:
            self.requests += 1
            payload = result.event_fields()
            payload.update(tags)
            if cold:
                payload["load_ms"] = estimate_load_ms(result)
            self._emit_request(payload)

        result = await client.chat(
            model.id,
            messages,
            stream=stream,
            max_tokens=max_tokens,
            temperature=temperature,
            total_timeout_s=self.timeout_s(),
            extra=extra,
            on_cancel=record,
            read_timeout_s=None if stream else self.whole_answer_timeout_s(max_tokens),
        )
        result.cold = cold
        if own_model and result.ok and not cold and result.gen_tps:
            speeds = self.state.setdefault(SPEED_KEY, deque(maxlen=SPEED_WINDOW))
            speeds.append(result.gen_tps)
        if own_model:
            self.cold_pending = False  # the model has answered (or failed): it is no longer loading
        # The model's learned characters-per-token (request_checks.PromptRatios), for its own prompts.
        ratios = self.state.setdefault("prompt_ratios", PromptRatios()) if own_model else None
        tags.update(
            judge_request(
                result,
                chars=chars,
                stall_s=self.settings.thresholds.stall_s,
                context_length=model.context_length,
                ratios=ratios,
                scenario=self.scenario,
                uniform_text=uniform_text,
                countable=not (extra and extra.get("tools")),  # tool schemas count as prompt tokens too
            )
        )
        if overflow_is_ours and (tags.get("error_class") or result.error_class) == errors.CONTEXT_OVERFLOW:
            tags["error_class"] = errors.TOOLS_DID_NOT_FIT
        record(result)
        return result


def estimate_load_ms(result: RequestResult) -> float | None:
    """How long a cold request waited for its model to load, where the server's own timings allow:
    the time to the first token (the whole answer when not streamed) minus the server's prompt and
    generation time for it. None when the server sends no timings (the report then estimates it
    from the model's warm requests)."""
    t = result.server_timings
    if not t or "prompt_ms" not in t:
        return None
    if result.stream:
        wait = result.ttft_ms
        per_token = t.get("predicted_ms", 0.0) / t["predicted_n"] if t.get("predicted_n") else 0.0
        spent = t["prompt_ms"] + per_token
    else:
        wait = result.e2e_ms
        spent = t["prompt_ms"] + t.get("predicted_ms", 0.0)
    if wait is None:
        return None
    return round(max(0.0, wait - spent), 3)


class Scenario:
    """Base class: subclasses set `name`, `weight`, `success_rule` and implement `run`."""

    name: ClassVar[str] = ""
    # The default relative weight in the random choice of the next test (config [weights]; 0 = off).
    weight: ClassVar[float]
    success_rule: ClassVar[str] = ""

    def planned_requests(self, ctx: ScenarioContext) -> int | None:
        """How many requests this test will send at most (None: open-ended), for `test_started`."""
        return 1

    async def run(self, ctx: ScenarioContext) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError


def answered(result: RequestResult) -> str | None:
    """The shared first check: the request worked and produced content. Returns a failure reason."""
    if not result.ok:
        return result.error or result.error_class or "request failed"
    if not result.content.strip() and not result.tool_calls:
        return "empty answer"
    if result.finish_reason is None and result.stream:
        return "stream ended without a finish reason"
    return None


def judge(result: RequestResult, **metrics: Any) -> Outcome:
    """Outcome of a test whose rule is "the request worked and produced a complete answer"."""
    if not result.ok:
        return Outcome.failed_request(result, **metrics)
    why = answered(result)
    if why:
        return Outcome.check_failed(why, **metrics)
    return Outcome(True, metrics=metrics)
