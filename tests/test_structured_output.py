"""The structured_output scenario against the built-in simulator, over real HTTP.

Each simulated model is configured with how often it follows a format instruction (`compliance`) and
how often its JSON is right (`json_accuracy`); the failures are drawn evenly from invalid JSON, a
schema violation, prose and a runaway answer cut by max_tokens. So the rates the scenario measures
must fall inside the binomial 99% interval of what the persona was configured to do: with the server
enforcing the schema (LM Studio flavor) and with the schema in the prompt (the generic flavor refuses
response_format, so the scenario falls back and says so).
"""

from __future__ import annotations

import asyncio
from math import comb

import pytest

from soaktui import errors
from soaktui.config import load_settings
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.log.reader import iter_events
from soaktui.providers.client import ChatClient
from soaktui.providers.types import LMSTUDIO, OPENAI, ModelInfo, Provider
from soaktui.scenarios.base import Outcome
from soaktui.scenarios.json_answer import FAILURES
from soaktui.scenarios.structured_output import INSTRUCTION, JSON_SCHEMA, StructuredOutput
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.simulator.personas import default_personas
from soaktui.simulator.structured import FAILURE_KINDS
from tests.scenario_driver import run_tests

pytestmark = pytest.mark.integration

CHAT = [p for p in default_personas() if p.is_chat]
CONTRACT_KEYS = {
    "schema_id",
    "mode",
    "parsed",
    "schema_valid",
    "failure",
    "error_path",
    "output_tokens",
    "gen_tps",
}
PER_MODEL = 150


def binomial_interval(n: int, p: float, confidence: float = 0.99) -> tuple[int, int]:
    """The central `confidence` range of Binomial(n, p) counts."""
    pmf = [comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    tail = (1 - confidence) / 2
    lo, cum = 0, 0.0
    while lo < n and cum + pmf[lo] <= tail:
        cum += pmf[lo]
        lo += 1
    hi, cum = n, 0.0
    while hi > 0 and cum + pmf[hi] <= tail:
        cum += pmf[hi]
        hi -= 1
    return lo, hi


async def _run(flavor: str, kind: str, per_model: int, personas=CHAT, **overrides) -> tuple[dict, list]:
    """`per_model` tests on each persona (models in parallel, each model's tests in order)."""
    settings = load_settings(None, {}, {k.replace("__", "."): v for k, v in overrides.items()})
    scenario = StructuredOutput()
    requests: list[dict] = []
    outcomes: dict[str, list[Outcome]] = {}
    with run_in_thread(SimConfig(flavor=flavor, seed=11, speed=1000.0, personas=list(personas))) as sim:
        provider = Provider(name="sim", kind=kind, base_url=sim.base_url)
        async with ChatClient(sim.base_url) as client:

            async def model_tests(p) -> None:
                model = ModelInfo(id=p.id, provider="sim", context_length=p.context_length)
                outcomes[p.id] = await run_tests(
                    scenario, client, provider, model, settings, per_model, requests=requests
                )

            await asyncio.gather(*(model_tests(p) for p in personas))
    return outcomes, requests


def _check_rates(outcomes: dict, expect) -> None:
    for p in CHAT:
        got = outcomes[p.id]
        n = len(got)
        valid_p, parsed_p = expect(p)
        valid = sum(o.metrics["schema_valid"] for o in got)
        parsed = sum(o.metrics["parsed"] for o in got)
        lo, hi = binomial_interval(n, valid_p)
        assert lo <= valid <= hi, f"{p.id}: {valid}/{n} valid, configured {valid_p:.3f} -> [{lo}, {hi}]"
        lo, hi = binomial_interval(n, parsed_p)
        assert lo <= parsed <= hi, f"{p.id}: {parsed}/{n} parsed, configured {parsed_p:.3f} -> [{lo}, {hi}]"
        for o in got:
            assert o.ok == o.metrics["schema_valid"]
            assert o.metrics.keys() >= CONTRACT_KEYS
            if not o.ok:
                assert o.error_class == errors.CHECK_FAILED and o.reason.startswith(o.metrics["failure"])


@pytest.mark.slow
def test_enforced_schema_rates_match_the_personas():
    """LM Studio takes response_format json_schema: every answer is the persona's JSON attempt."""
    outcomes, requests = asyncio.run(_run("lmstudio", LMSTUDIO, PER_MODEL))
    share = 1 / len(FAILURE_KINDS)  # of the failures, schema violations still parse
    _check_rates(outcomes, lambda p: (p.json_accuracy, p.json_accuracy + (1 - p.json_accuracy) * share))
    for got in outcomes.values():
        assert {o.metrics["mode"] for o in got} == {JSON_SCHEMA}
        assert {o.metrics["response_format"] for o in got} == {JSON_SCHEMA}
        assert all(o.metrics["fallback"] is None for o in got)
        kinds = {o.metrics["failure"] for o in got}
        assert kinds <= {None, "invalid_json", "schema_violation", "no_json", "truncated"}
    assert all(r["ok"] and r["mode"] == JSON_SCHEMA for r in requests)
    weakest = min(CHAT, key=lambda p: p.json_accuracy)
    seen = {o.metrics["failure"] for o in outcomes[weakest.id]}
    assert seen == {None, "invalid_json", "schema_violation", "no_json", "truncated"}


@pytest.mark.slow
def test_a_server_that_refuses_response_format_gets_the_schema_in_the_prompt():
    """The generic flavor refuses response_format with a 400: one refusal per model, then instruction
    mode, where the persona first has to follow the instruction at all (compliance)."""
    outcomes, requests = asyncio.run(_run("openai", OPENAI, PER_MODEL))
    share = 1 / len(FAILURE_KINDS)
    _check_rates(
        outcomes,
        lambda p: (
            p.compliance * p.json_accuracy,
            p.compliance * (p.json_accuracy + (1 - p.json_accuracy) * share),
        ),
    )
    refused = [r for r in requests if not r["ok"]]
    assert len(refused) == len(CHAT)
    assert all(r["http_status"] == 400 and r["response_format"] == JSON_SCHEMA for r in refused)
    assert len(requests) == len(CHAT) * (PER_MODEL + 1)
    for got in outcomes.values():
        assert {o.metrics["mode"] for o in got} == {INSTRUCTION}
        assert {o.metrics["response_format"] for o in got} == {None}
        assert all(o.metrics["fallback"].startswith("json_schema refused: HTTP 400") for o in got)


def test_answers_cut_by_max_tokens_are_truncated():
    qwen = [p for p in CHAT if p.id == "sim-qwen2.5-7b-instruct"]
    outcomes, _ = asyncio.run(
        _run("lmstudio", LMSTUDIO, 40, personas=qwen, thresholds__structured_max_tokens="48")
    )
    got = outcomes[qwen[0].id]
    cut = [o for o in got if o.metrics["finish_reason"] == "length"]
    assert len(cut) >= 30
    for o in got:
        assert (o.metrics["failure"] == "truncated") == (o.metrics["finish_reason"] == "length")
        assert o.metrics["truncated"] == (o.metrics["finish_reason"] == "length")
        if o.metrics["failure"] == "truncated":
            assert not o.metrics["parsed"] and o.metrics["output_tokens"] == 48 and not o.ok


@pytest.mark.slow
def test_a_soak_records_the_fallback_and_the_metrics(tmp_path):
    with run_in_thread(SimConfig(flavor="openai", seed=2, speed=200.0)) as sim:
        settings = load_settings(
            None,
            {},
            {
                "base_urls": sim.base_url,
                "out": str(tmp_path / "run"),
                "seed": "4",
                "duration": "3s",
                "scenarios": "structured_output",
                "quiet_hours.enabled": False,
                "timeouts.grace": "2",
                "rotation.min_tests": "4",
                "rotation.max_tests": "6",
            },
        )
        assert asyncio.run(run_soak(RunRequest(settings=settings, quiet=True))) == 0
    events = list(iter_events(tmp_path / "run" / "events.jsonl"))
    results = [e for e in events if e["kind"] == "scenario_result"]
    assert len(results) >= 10
    models = {e["model"] for e in results}
    refusals = [e for e in events if e["kind"] == "request" and not e["ok"]]
    assert sorted(e["model"] for e in refusals) == sorted(models)  # one per model, then remembered
    assert all(e["scenario"] == "structured_output" and e["http_status"] == 400 for e in refusals)
    for e in results:
        m = e["metrics"]
        assert m.keys() >= CONTRACT_KEYS and m["mode"] == INSTRUCTION
        assert e["ok"] == m["schema_valid"]
        assert m["error_path"] is None or len(m["error_path"]) <= 200
        assert e["ok"] or (e["error_class"] == errors.CHECK_FAILED and m["failure"] in FAILURES)
    answered = [e for e in events if e["kind"] == "request" and e["ok"]]
    assert all(e["mode"] == INSTRUCTION and e["schema_id"].startswith("so-") for e in answered)


@pytest.mark.unit
@pytest.mark.parametrize(("n", "p"), [(150, 0.9), (40, 0.5), (20, 1.0)])
def test_binomial_interval_holds_its_mass(n, p):
    lo, hi = binomial_interval(n, p)
    mass = sum(comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(lo, hi + 1))
    assert mass >= 0.99 and lo <= n * p <= hi
