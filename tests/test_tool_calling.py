"""The tool_calling scenario against the built-in simulator, over real HTTP.

Each simulated model has a tool-call format (`tool_style`) and a tool skill (`tool_accuracy`): the
share of attempts it answers without a mistake. A persona that never errs must score every prompt
of the bank correct in both modes (this validates the bank and the simulator's reading of it
together); the default personas' measured correct rates must fall inside the binomial 99% interval
of what they were configured to do; and a real run writes `tool_call` events and tool_calling.log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soaktui import errors
from soaktui.config import load_settings
from soaktui.providers.client import ChatClient
from soaktui.providers.types import OPENAI, ModelInfo, Provider
from soaktui.report import fold
from soaktui.scenarios.base import Outcome
from soaktui.scenarios.tool_calling import MODES, ToolCalling
from soaktui.simulator import FaultPlan, SimConfig, run_in_thread, toolplay
from soaktui.simulator.personas import Persona, default_personas
from soaktui.toolcalls import catalog, prompted
from soaktui.toolcalls.prompts import ToolPromptBank, shipped_bank
from soaktui.toolcalls.scoring import CHECKS, VERDICTS
from tests.scenario_driver import run_tests
from tests.test_soak import soak
from tests.test_structured_output import binomial_interval

pytestmark = pytest.mark.integration

BANK = shipped_bank()
CHAT = [p for p in default_personas() if p.is_chat]
FORMATS = {"hermes": "hermes", "llama3": "llama3_json", "mistral": "mistral"}
EVENT_KEYS = {"prompt_id", "prompt_kind", "mode", "format", "trust", "calls", "checks", "verdict", "correct"}
PER_MODEL = 200


class Run:
    """Attempts of the scenario on simulator models: outcomes per model, requests, events."""

    def __init__(self) -> None:
        self.outcomes: dict[str, list[Outcome]] = {}
        self.requests: list[dict] = []
        self.events: list[dict] = []


def _run(
    personas: list[Persona],
    plan,
    tool_use: bool | None = None,
    faults: FaultPlan | None = None,
    flavor: str = "openai",
) -> Run:
    """Each persona's tests in order (personas in parallel); `plan(persona)` yields (scenario, n)."""
    run = Run()
    settings = load_settings(None, {}, {})

    async def go() -> None:
        config = SimConfig(
            flavor=flavor, seed=5, speed=1000.0, personas=personas, faults=faults or FaultPlan()
        )
        with run_in_thread(config) as sim:
            provider = Provider(name="sim", kind=OPENAI, base_url=sim.base_url)
            async with ChatClient(sim.base_url) as client:

                async def model_tests(p: Persona) -> None:
                    model = ModelInfo(
                        id=p.id, provider="sim", context_length=p.context_length, tool_use=tool_use
                    )
                    state: dict = {}
                    for scenario, n in plan(p):
                        got = await run_tests(
                            scenario, client, provider, model, settings, n,
                            requests=run.requests, state=state, events=run.events,
                        )  # fmt: skip
                        run.outcomes.setdefault(p.id, []).extend(got)

                await asyncio.gather(*(model_tests(p) for p in personas))

    asyncio.run(go())
    return run


@pytest.mark.slow
def test_a_persona_without_mistakes_scores_every_prompt_in_both_modes():
    perfect = [
        Persona(id=f"sim-perfect-{style}", tool_style=style, tool_accuracy=1.0, context_length=32768)
        for style in ("native", "hermes", "llama3", "mistral")
    ]
    run = _run(
        perfect,
        lambda p: [
            (ToolCalling(mode, ToolPromptBank([prompt])), 1) for prompt in BANK.prompts for mode in MODES
        ],
    )
    for p in perfect:
        got = run.outcomes[p.id]
        assert len(got) == len(BANK.prompts) * 2
        wrong = [
            (o.metrics["prompt_id"], o.metrics["mode"], o.metrics["verdict"], o.metrics["detail"])
            for o in got
            if not o.ok
        ]
        assert not wrong, (p.id, wrong[:10])
        for o in got:
            m = o.metrics
            if m["prompt_kind"] == "irrelevant":
                assert m["format"] == "none"
            elif p.tool_style == "native":
                assert (m["format"], m["trust"]) == (
                    ("native", 3) if m["mode"] == "native" else ("hermes", 2)
                )
            else:
                assert (m["format"], m["trust"]) == (FORMATS[p.tool_style], 2)


@pytest.mark.slow
def test_measured_correct_rates_match_each_personas_configured_accuracy():
    run = _run(CHAT, lambda p: [(ToolCalling(), PER_MODEL)])
    for p in CHAT:
        got = run.outcomes[p.id]
        assert {o.metrics["mode"] for o in got} == set(MODES)
        for o in got:
            assert o.ok == o.metrics["correct"] == (o.metrics["verdict"] == "correct")
            assert o.metrics["verdict"] in VERDICTS and set(o.metrics["checks"]) == set(CHECKS)
            if not o.ok:
                assert (o.error_class, o.reason) == (errors.CHECK_FAILED, o.metrics["verdict"])
        if p.tool_style == "none":  # cannot call tools: names them in prose, right only when none applies
            for o in got:
                relevant = o.metrics["prompt_kind"] != "irrelevant"
                assert o.ok != relevant
                assert o.metrics["format"] == ("prose_mention" if relevant else "none")
            continue
        correct = sum(o.ok for o in got)
        lo, hi = binomial_interval(len(got), p.tool_accuracy)
        assert lo <= correct <= hi, (
            f"{p.id}: {correct}/{len(got)} correct, configured {p.tool_accuracy} -> [{lo}, {hi}]"
        )
        formats = {o.metrics["format"] for o in got if o.metrics["trust"] >= 2}
        assert formats <= {"native", "hermes", FORMATS.get(p.tool_style)}
    # every kind of mistake the personas are configured to make shows up (pooled over the personas
    # that call tools: one persona's ~3 expected "one call instead of two" can be 0 by chance)
    seen = Counter(o.metrics["verdict"] for p in CHAT if p.tool_style != "none" for o in run.outcomes[p.id])
    assert {"correct", "wrong_values", "schema_invalid", "missed_call", "false_call", "wrong_count"} <= set(
        seen
    ), seen

    # One tool_call event per attempt, with the contract's fields.
    assert len(run.events) == sum(len(got) for got in run.outcomes.values())
    for e in run.events:
        assert e["kind"] == "tool_call" and e.keys() >= EVENT_KEYS
        assert e["scenario"] == "tool_calling" and e["key"] == f"sim/{e['model']}"
        assert len(e["calls"]) <= 5 and all(len(c["args"]) <= 200 for c in e["calls"])
    follow_ups = [r for r in run.requests if r.get("turn") == 2]
    assert follow_ups and {r["tool_mode"] for r in follow_ups} == set(MODES)


def test_a_model_without_tool_support_is_tested_in_prompted_mode_only():
    persona = dataclasses.replace(CHAT[0], id="sim-no-native", tool_accuracy=1.0)
    run = _run([persona], lambda p: [(ToolCalling(), 12)], tool_use=False)
    assert {o.metrics["mode"] for o in run.outcomes[persona.id]} == {"prompted"}
    assert all(o.ok for o in run.outcomes[persona.id])
    assert {r["tool_mode"] for r in run.requests} == {"prompted"}


@pytest.mark.slow
def test_a_run_writes_tool_call_events_and_tool_calling_log(tmp_path: Path):
    personas = [dataclasses.replace(p, loaded=True) for p in CHAT]
    with run_in_thread(SimConfig(flavor="lmstudio", seed=3, speed=50.0, personas=personas)) as sim:
        code, events = soak(tmp_path / "run", sim.base_url, scenarios="tool_calling", duration="4s")
    assert code == 0
    calls = [e for e in events if e["kind"] == "tool_call"]
    results = [e for e in events if e["kind"] == "scenario_result" and e["scenario"] == "tool_calling"]
    assert calls and len(calls) == len([r for r in results if r["error_class"] != errors.CANCELLED])
    by_test = {e["test_id"]: e for e in calls}
    for r in results:
        if r["error_class"] == errors.CANCELLED:
            continue
        e = by_test[r["test_id"]]
        assert e.keys() >= EVENT_KEYS and e["key"] == f"{e['provider']}/{e['model']}"
        m = r["metrics"]
        for key in ("prompt_id", "prompt_kind", "mode", "format", "trust", "checks", "verdict", "correct"):
            assert m[key] == e[key], key
        assert r["ok"] == e["correct"]
    log = (tmp_path / "run" / "tool_calling.log").read_text().splitlines()
    lines = [line for line in log if " -> " in line]
    assert len(lines) == len(calls)
    for line, e in zip(lines, calls, strict=True):
        assert e["prompt_id"] in line and e["verdict"] in line and f"format={e['format']}" in line


ODD_TOOLS = [
    {"type": "function", "function": {"name": "odd", "parameters": []}},
    {
        "type": "function",
        "function": {"name": "odd2", "parameters": {"properties": {"a": "x", "b": {"enum": "no"}}}},
    },
    {
        "type": "function",
        "function": {
            "name": "odd3",
            "parameters": {"properties": {"p": {"pattern": "("}}, "required": ["p", ["q"]]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "odd4",
            "parameters": {"properties": {"n": {"type": "integer"}}, "required": ["n"]},
        },
    },
    "not a tool",
]


@pytest.mark.unit
@hypothesis.settings(max_examples=150, deadline=None)
@given(prompt=st.text(max_size=300), seed=st.integers(0, 2**32), native=st.booleans(), odd=st.booleans())
@hypothesis.example(prompt="20000000000000000000", seed=243, native=False, odd=False)  # past 64 bits
def test_the_simulated_model_answers_any_prompt_and_any_tool_list(prompt, seed, native, odd):
    """Demo users send anything: the simulator's tool play never raises, and what it returns is sound."""
    tools = ODD_TOOLS if odd else catalog.tools()
    messages = [{"role": "user", "content": prompt}]
    if native:
        body = {"messages": messages, "tools": tools}
    else:
        body = {
            "messages": [
                {
                    "role": "system",
                    "content": prompted.system_prompt([t for t in tools if isinstance(t, dict)]),
                },
                *messages,
            ]
        }
    persona = Persona(id="sim-fuzz", tool_style="native", tool_accuracy=0.5)
    got = toolplay.answer(persona, body, prompt, random.Random(seed))
    if got is not None:
        assert got.native == (native and bool(got.calls))
        assert got.calls or got.text
        assert all(isinstance(name, str) and isinstance(args, dict) for name, args in got.calls)


@pytest.mark.unit
def test_a_tool_result_is_answered_with_its_values_in_both_shapes():
    result = {"city": "Oslo", "temperature_c": -3.5, "rows": [{"sum": 1}]}
    native = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": []},
              {"role": "tool", "tool_call_id": "c0", "content": json.dumps(result)}]  # fmt: skip
    text = [{"role": "user", "content": prompted.results_message([("get_weather", result)])}]
    for messages in (native, text):
        assert toolplay.tool_results(messages) == [result]
        answer = toolplay.result_answer(toolplay.tool_results(messages))
        assert "Oslo" in answer and "-3.5" in answer and "sum is 1" in answer
    assert toolplay.tool_results([{"role": "user", "content": "no results here"}]) is None


@pytest.mark.unit
def test_tool_accuracy_is_validated():
    with pytest.raises(ValueError, match="tool_accuracy"):
        Persona(id="sim-bad", tool_accuracy=1.5)


def test_a_failed_request_keeps_its_error_class_and_is_still_an_event():
    persona = dataclasses.replace(CHAT[0], tool_accuracy=1.0)
    run = _run([persona], lambda p: [(ToolCalling(), 8)], faults=FaultPlan(every={"http_500": 1}))
    for o in run.outcomes[persona.id]:
        assert (o.ok, o.error_class, o.metrics["verdict"]) == (False, errors.HTTP_STATUS, "request_failed")
        assert o.metrics["checks"] == dict.fromkeys(CHECKS) and o.metrics["format"] == "none"
    assert [e["verdict"] for e in run.events] == ["request_failed"] * 8
    assert {r["tool_mode"] for r in run.requests} == set(MODES)  # a 500 is not "tools refused"


def test_a_server_that_refuses_tools_gets_the_prompted_mode_from_then_on():
    """Ollama answers `tools` for a model without the tools capability with HTTP 400: that attempt is a
    failed request in native mode, and the model is not offered `tools` again."""
    phi = next(p for p in CHAT if p.tool_style == "none")
    run = _run([phi], lambda p: [(ToolCalling(), 12)], flavor="ollama")
    modes = [r["tool_mode"] for r in run.requests if r.get("turn") == 1]
    first_native = modes.index("native")
    assert set(modes[first_native + 1 :]) == {"prompted"} and len(modes) > first_native + 1
    refused = run.outcomes[phi.id][first_native]
    assert (refused.error_class, refused.metrics["verdict"]) == (errors.HTTP_STATUS, "request_failed")
    assert "does not support tools" in refused.reason
    assert all(o.metrics["mode"] == "prompted" for o in run.outcomes[phi.id][first_native + 1 :])


def test_a_tool_list_too_long_for_the_context_is_retried_shorter_and_remembered():
    """llama.cpp refuses a prompt over the slot's context (HTTP 400). A 2048-token model offered the
    whole catalog: the attempt is asked again with fewer tools, that refused request is logged as
    `tools_did_not_fit` and counted by no reliability figure, and the model's later attempts start
    from the shorter list."""
    persona = dataclasses.replace(CHAT[0], context_length=2048, tool_accuracy=1.0)
    run = _run([persona], lambda p: [(ToolCalling("prompted"), 6)], flavor="llamacpp")
    refused = [r for r in run.requests if r["error_class"] == errors.TOOLS_DID_NOT_FIT]
    assert refused and all(r["tools_offered"] == 10 and r["http_status"] == 400 for r in refused[:1])
    first_turns = [r for r in run.requests if r.get("turn") == 1]
    assert first_turns[0]["tools_offered"] == 10 and first_turns[0]["error_class"] == errors.TOOLS_DID_NOT_FIT
    answered = [r for r in first_turns if r["ok"]]
    assert answered and all(r["tools_offered"] < 10 for r in answered)
    # once learned, no attempt starts from the whole catalog again
    starts = [first_turns[0]] + [r for i, r in enumerate(first_turns[1:], 1) if first_turns[i - 1]["ok"]]
    assert all(r["tools_offered"] < 10 for r in starts[1:])
    assert all(o.metrics["verdict"] != "request_failed" for o in run.outcomes[persona.id])
    snap = fold({**r, "kind": "request"} for r in run.requests).snapshot()
    assert snap["totals"]["tools_did_not_fit"] == len(refused)
    assert snap["totals"]["requests_failed"] == 0 and snap["totals"]["requests"] == len(run.requests) - len(refused)
