"""Tool-call scoring (BFCL-style) on detections the real detector makes from model text, and the
tool prompt bank: every entry loads, and every expected call is valid for the catalog's schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from soaktui.errors import SetupError
from soaktui.toolcalls import catalog, detect
from soaktui.toolcalls.prompts import (
    KINDS,
    ToolPromptBank,
    example_arguments,
    parse_entry,
    shipped_bank,
)
from soaktui.toolcalls.scoring import (
    CHECKS,
    as_instant,
    missing_values,
    norm_text,
    request_failed,
    score_answer,
    score_calls,
    value_matches,
)

pytestmark = pytest.mark.unit

BANK = shipped_bank()


WEATHER = parse_entry(
    {
        "id": "w",
        "kind": "implicit",
        "prompt": "What's the weather like in Oslo?",
        "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"], "units": ["metric", None]}}],
    },
    "test:1",
)
PARALLEL = BANK.get("parallel-weather-paris-madrid")
IRRELEVANT = BANK.get("irrelevant-capital-australia")
MULTI = BANK.get("multi-weather-oslo")
NAMES = catalog.TOOL_NAMES


def hermes(*calls: tuple[str, dict]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls
    )


def native(*calls: tuple[str, str]) -> list[dict]:
    return [
        {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
        for i, (n, a) in enumerate(calls)
    ]


def judge(prompt, content: str | None = None, calls: list[dict] | None = None, cut: bool = False):
    return score_calls(detect(content, calls, NAMES), prompt, answer_cut=cut)


# -- the bank ----------------------------------------------------------------------------------------


def test_the_shipped_bank_has_every_kind_at_least_ten_times():
    assert {k: len(v) >= 10 for k, v in BANK.by_kind.items()} == dict.fromkeys(KINDS, True)


@pytest.mark.parametrize("prompt", BANK.prompts, ids=[p.id for p in BANK.prompts])
def test_every_expected_call_validates_against_the_catalog(prompt):
    for call in prompt.calls:
        params = catalog.parameters(call.name)
        jsonschema.validate(example_arguments(call), params)
        for arg, accepted in call.arguments.items():
            for value in accepted:
                if value is None:
                    assert arg not in params["required"], (prompt.id, arg)
                elif not (isinstance(value, dict) and "regex" in value):
                    jsonschema.validate(value, params["properties"][arg])
    if prompt.kind == "multi_turn":
        assert len(prompt.results) == len(prompt.calls) and prompt.answer_contains


def test_a_call_built_from_the_accepted_values_scores_correct():
    """The bank and the scorer agree: the first accepted values, written as a call, are correct."""
    for p in BANK.prompts:
        text = hermes(*((c.name, example_arguments(c)) for c in p.calls)) if p.calls else "No tool fits."
        s = judge(p, text)
        assert s.correct, (p.id, s.verdict, s.detail)


def test_catalog_tools_are_openai_functions_with_real_schemas():
    assert len(catalog.TOOLS) >= 8
    for t in catalog.TOOLS:
        fn = t["function"]
        assert t["type"] == "function" and fn["name"] and fn["description"]
        jsonschema.validators.validator_for(fn["parameters"]).check_schema(fn["parameters"])
        assert fn["parameters"]["required"] and fn["parameters"]["additionalProperties"] is False
    assert catalog.tools(["get_weather"]) == [catalog.tool("get_weather")]
    assert catalog.tools()[0] is not catalog.TOOLS[0]  # copies: a caller cannot change the catalog


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "explicit", "prompt": "p", "calls": []}, "missing id"),
        ({"id": "x", "kind": "sideways", "prompt": "p", "calls": []}, "kind 'sideways'"),
        (
            {"id": "x", "kind": "implicit", "prompt": "p", "calls": [{"name": "nope", "arguments": {}}]},
            "'nope', which is not among the offered tools",
        ),
        (
            {
                "id": "x",
                "kind": "implicit",
                "prompt": "p",
                "calls": [{"name": "get_weather", "arguments": {}}],
            },
            "required argument 'city' needs accepted values",
        ),
        (
            {
                "id": "x",
                "kind": "implicit",
                "prompt": "p",
                "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo", None]}}],
            },
            "get_weather.city is required by the tool",
        ),
        (
            {
                "id": "x",
                "kind": "implicit",
                "prompt": "p",
                "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"], "units": ["kelvin"]}}],
            },
            "accepted value 'kelvin' is invalid for the tool",
        ),
        (
            {
                "id": "x",
                "kind": "explicit",
                "prompt": "What is the weather?",
                "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}],
            },
            "an explicit prompt names its function",
        ),
        (
            {
                "id": "x",
                "kind": "parallel",
                "prompt": "p",
                "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}],
            },
            "a parallel prompt has 2..5 calls",
        ),
        (
            {
                "id": "x",
                "kind": "multi_turn",
                "prompt": "p",
                "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}],
                "results": [{"temp_c": 3}],
                "answer_contains": [4],
            },
            "answer_contains 4 is not a value of the tool results",
        ),
    ],
)
def test_a_bad_bank_line_is_named_with_its_file_and_line(tmp_path: Path, entry, message):
    good = BANK.prompts[0].where
    (tmp_path / "mine.jsonl").write_text(
        Path(good.rsplit(":", 1)[0]).read_text().splitlines()[0] + "\n" + json.dumps(entry) + "\n"
    )
    with pytest.raises(SetupError) as err:
        ToolPromptBank.load([tmp_path])
    assert str(err.value).startswith(f"{tmp_path / 'mine.jsonl'}:2: ") and message in str(err.value)


def test_a_duplicate_id_and_a_missing_directory_are_setup_errors(tmp_path: Path):
    first = Path(BANK.prompts[0].where.rsplit(":", 1)[0]).read_text().splitlines()[0]
    (tmp_path / "a.jsonl").write_text(f"// a comment\n{first}\n\n{first}\n")
    with pytest.raises(SetupError, match=r"a\.jsonl:4: tool prompt id .* already defined in .*a\.jsonl:2"):
        ToolPromptBank.load([tmp_path])
    with pytest.raises(SetupError, match="does not exist"):
        ToolPromptBank.load([tmp_path / "nope"])


# -- normalisation -------------------------------------------------------------------------------------


def test_values_match_after_normalisation():
    assert value_matches("  san   FRANCISCO. ", "San Francisco")
    assert value_matches(
        "select count(*) from orders where status='failed';",
        "SELECT COUNT(*) FROM orders WHERE status = 'failed'",
    )
    assert not value_matches("@ops", "#ops")  # a channel is not a user
    assert value_matches(5.0, 5) and value_matches(5, 5.0) and not value_matches("5", 5)
    assert not value_matches(True, 1) and not value_matches(1, True) and value_matches(False, False)
    assert value_matches("2025-12-13 23:30 UTC", "2025-12-13T23:30:00Z")
    assert value_matches("2025-12-14T00:30:00+01:00", "2025-12-13T23:30:00Z")
    assert not value_matches("2025-12-14T23:30:00Z", "2025-12-13T23:30:00Z")
    assert value_matches("9:05", "09:05:00") and as_instant("25:00") is None
    metrics = catalog.parameters("calculate_metrics")["properties"]
    assert value_matches(["p95", "MEAN"], ["mean", "p95"], metrics["metrics"])  # uniqueItems: any order
    assert not value_matches([135, 120], [120, 135], metrics["values"])  # a plain list keeps its order
    assert value_matches([120.0, 135], [120, 135], metrics["values"])
    assert value_matches("SELECT 1", {"regex": r"^\s*select\b"}) and not value_matches(1, {"regex": "1"})
    assert norm_text("Héllo, World!") == norm_text("héllo world") == "hélloworld"


# -- verdicts on detector output -----------------------------------------------------------------------


def test_a_correct_native_call():
    s = judge(WEATHER, None, native(("get_weather", '{"city": "oslo"}')))
    assert s.verdict == "correct" and s.correct
    assert s.checks == {
        "decision": True,
        "count": True,
        "name": True,
        "args_parse": True,
        "schema_valid": True,
        "values": True,
        "uses_result": None,
    }


@pytest.mark.parametrize(
    ("content", "calls", "verdict", "failed"),
    [
        ("I would use get_weather for Oslo.", None, "missed_call", "decision"),
        ("It is probably cold in Oslo.", None, "missed_call", "decision"),
        (None, [("get_current_time", '{"timezone": "Europe/Oslo"}')], "wrong_name", "name"),
        (
            None,
            [
                ("get_weather", '{"city": "Oslo"'),
            ],
            "truncated",
            "args_parse",
        ),
        (None, [("get_weather", "city=Oslo")], "bad_args", "args_parse"),
        (None, [("get_weather", '{"city": "Oslo", "units": "kelvin"}')], "schema_invalid", "schema_valid"),
        (None, [("get_weather", '{"town": "Oslo"}')], "schema_invalid", "schema_valid"),
        (None, [("get_weather", '{"city": "Bergen"}')], "wrong_values", "values"),
        (
            None,
            [("get_weather", '{"city": "Oslo"}'), ("get_weather", '{"city": "Bergen"}')],
            "wrong_count",
            "count",
        ),
    ],
)
def test_failures_name_the_first_failing_stage(content, calls, verdict, failed):
    s = judge(WEATHER, content, native(*calls) if calls else None)
    assert (s.verdict, s.correct) == (verdict, False), s.detail
    assert s.checks[failed] is False and s.detail
    order = list(CHECKS)
    assert all(s.checks[c] is not False for c in order[: order.index(failed)])


def test_a_prose_mention_is_intent_not_a_call():
    d = detect("You could call get_weather with Oslo.", None, NAMES)
    assert (d.format, d.trust, d.calls) == ("prose_mention", 1, [])
    s = score_calls(d, WEATHER)
    assert s.verdict == "missed_call" and "prose" in s.detail
    assert score_calls(
        detect("The get_weather tool is not needed for this.", None, NAMES), IRRELEVANT
    ).correct


def test_irrelevant_prompts_want_no_call():
    assert judge(IRRELEVANT, "Canberra is the capital of Australia.").verdict == "correct"
    s = judge(IRRELEVANT, hermes(("get_weather", {"city": "Canberra"})))
    assert s.verdict == "false_call" and s.checks["decision"] is False and s.checks["count"] is None


def test_an_answer_cut_off_before_any_call_is_truncated():
    assert judge(WEATHER, "Let me think about which tool", cut=True).verdict == "truncated"
    assert (
        judge(WEATHER, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Os').verdict
        == "truncated"
    )
    assert judge(IRRELEVANT, "Canberra is the capital of", cut=True).verdict == "correct"


def test_parallel_calls_match_in_any_order_and_the_count_is_checked():
    madrid, paris = (
        ("get_weather", {"city": "Madrid"}),
        ("get_weather", {"city": "Paris", "country_code": "FR"}),
    )
    for text in (hermes(madrid, paris), hermes(paris, madrid)):
        s = judge(PARALLEL, text)
        assert s.correct, s.detail
        assert sorted(s.pairs) == [
            (0, text.index("Madrid") < text.index("Paris")),
            (1, text.index("Paris") < text.index("Madrid")),
        ]
    one = judge(PARALLEL, hermes(paris))
    assert (one.verdict, one.checks["count"], one.checks["values"]) == ("wrong_count", False, True)
    wrong = judge(PARALLEL, hermes(paris, ("get_weather", {"city": "Lisbon"})))
    assert wrong.verdict == "wrong_values" and "Lisbon" in wrong.detail
    mistral = detect('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Madrid"}}, '
                     '{"name": "get_weather", "arguments": {"city": "Paris"}}]', None, NAMES)  # fmt: skip
    assert mistral.format == "mistral" and score_calls(mistral, PARALLEL).correct


def test_an_optional_argument_may_be_left_out_only_where_null_is_accepted():
    p = BANK.get("explicit-logs-timeout-payments")
    base = {"query": "connection timed out", "service": "payments", "since_minutes": 30}
    assert judge(p, hermes(("search_logs", base))).correct
    assert judge(
        p, hermes(("search_logs", {**base, "level": "error", "limit": 20}))
    ).correct  # unlisted: free
    s = judge(p, hermes(("search_logs", {k: v for k, v in base.items() if k != "since_minutes"})))
    assert s.verdict == "wrong_values" and "since_minutes missing" in s.detail


def test_multi_turn_answers_must_use_the_result():
    first = judge(MULTI, hermes(("get_weather", {"city": "Oslo"})))
    assert first.correct and first.checks["uses_result"] is None
    good = score_answer(first, "<think>cold?</think>It is -3.5 °C in Oslo with Snow Showers.", MULTI)
    assert good.correct and good.checks["uses_result"] is True
    bad = score_answer(first, "It is 3.5 degrees and snowing lightly.", MULTI)
    assert bad.verdict == "no_result_use" and bad.checks["uses_result"] is False and "-3.5" in bad.detail
    assert score_answer(first, "It is -3.5 °C with", MULTI, answer_cut=True).verdict == "truncated"
    assert missing_values("about 48,213.75 dollars", (48213.75,)) == []


def test_a_failed_request_keeps_only_what_was_measured():
    assert request_failed("HTTP 503").checks == dict.fromkeys(CHECKS)
    first = judge(MULTI, hermes(("get_weather", {"city": "Oslo"})))
    s = request_failed("read timeout", before=first)
    assert (s.verdict, s.correct, s.detail) == ("request_failed", False, "read timeout")
    assert s.checks["values"] is True and s.checks["uses_result"] is None


# -- calls soaktui cannot read -------------------------------------------------------------------------

UNKNOWN_SYNTAX = '@@invoke get_weather(city="Oslo", units="metric")@@'  # no family writes this


def test_a_model_calling_in_an_unknown_syntax_gets_nothing_right_on_any_prompt_kind():
    """The issue's case: call-shaped text in a syntax no finder reads is never a correct refusal
    (before the `unparsed` stage it scored 100% on irrelevance prompts) and never a correct call."""
    verdicts = {judge(prompt, UNKNOWN_SYNTAX).verdict for prompt in BANK.prompts}
    assert verdicts == {"unparsed_call"}
    assert {p.kind for p in BANK.prompts} >= {"irrelevant", "explicit", "implicit", "parallel"}
    s = judge(IRRELEVANT, UNKNOWN_SYNTAX)
    assert s.correct is False and all(v is None for v in s.checks.values())
    assert "get_weather(city=" in s.detail  # the detail quotes what the model wrote


@pytest.mark.parametrize(
    "text",
    [
        "<|action_start|><|plugin|>\nget_weather city=Oslo<|action_end|>",  # InternLM markers, no JSON
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter nome="city">Oslo',  # markers, bad body
        'get_weather{"city": "Oslo"}',  # Mistral v11 with its [TOOL_CALLS] token stripped
        'get_weather[ARGS]{"city": "Oslo"}',
        "I will now run get_weather({'city': 'Oslo'}) for you.",
        'Calling: {"name": "get_weather", "arguments": {city: Oslo}}',  # a name key, arguments not JSON
    ],
)
def test_call_shaped_text_no_finder_reads_is_unparsed_with_an_excerpt(text):
    d = detect(text, None, NAMES)
    assert (d.format, d.calls) == ("unparsed", []), d
    assert d.excerpt and ("get_weather" in d.excerpt or "<" in d.excerpt)
    assert judge(WEATHER, text).verdict == judge(IRRELEVANT, text).verdict == "unparsed_call"


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("You could call get_weather with Oslo.", "prose_mention"),
        ("The get_weather() function returns the forecast as JSON.", "prose_mention"),
        ('Here is a sample record: {"name": "Alice", "age": 31, "tags": ["a", "b"]}', "none"),
        ("To compute f(x=2), substitute x.", "none"),
        ('<think>I could call get_weather(city="Oslo")</think>Canberra is the capital.', "none"),
    ],
)
def test_non_calls_stay_non_calls(text, fmt):
    d = detect(text, None, NAMES)
    assert (d.format, d.calls) == (fmt, [])
    assert judge(IRRELEVANT, text).correct
