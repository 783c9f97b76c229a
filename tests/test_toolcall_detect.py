"""The tool-call detector against a corpus of model outputs per format, plus property tests: any
text, however hostile, gets a verdict and never an exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soaktui.toolcalls import FORMATS, Detection, detect, strip_think

pytestmark = pytest.mark.unit

CORPUS = json.loads((Path(__file__).parent / "data" / "toolcalls" / "corpus.json").read_text())
CASES = CORPUS["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus(case):
    got = detect(case["content"], case["native"], case["tool_names"])
    want = case["expect"]
    assert (got.format, [c.name for c in got.calls], got.trust, got.truncated) == (
        want["format"],
        want["names"],
        want["trust"],
        want["truncated"],
    )
    assert got.format in FORMATS


def test_corpus_covers_every_format_with_a_positive_case():
    seen = {c["expect"]["format"] for c in CASES}
    assert set(FORMATS) <= seen, sorted(set(FORMATS) - seen)


def by_id(case_id: str) -> Detection:
    case = next(c for c in CASES if c["id"] == case_id)
    return detect(case["content"], case["native"], case["tool_names"])


def test_arguments_are_decoded_whatever_the_wrapping():
    for case_id in ("native_openai", "hermes_one", "hermes_string_args", "mistral_args_form", "pythonic_list",
                    "deepseek_v3", "kimi_k2", "harmony", "functionary_v31", "generic_function_call_str_args",
                    "llama3_bare_parameters", "fenced_json_call", "lmstudio_request"):  # fmt: skip
        call = by_id(case_id).calls[0]
        assert call.arguments == {"city": "Paris"} or call.name != "get_weather", case_id
        assert call.parse_error is None, case_id
    assert by_id("qwen3_xml").calls[0].arguments == {"city": "Paris", "days": 3}
    assert by_id("native_ollama_dict_args").calls[0].arguments == {"tz": "UTC"}
    assert by_id("pythonic_jsonish_literals").calls[0].arguments == {
        "title": "Disk full",
        "urgent": True,
        "tags": ["ops"],
        "assignee": None,
    }


def test_invalid_arguments_keep_the_raw_text_and_the_error():
    call = by_id("invalid_string_args").calls[0]
    assert (call.arguments, call.raw_arguments) == (None, "city=Paris") and "invalid JSON" in call.parse_error
    call = by_id("hermes_invalid_json_closed").calls[0]
    assert call.arguments is None and call.parse_error and '"city": "Paris",' in call.raw_arguments
    call = by_id("pythonic_non_literal_arg").calls[0]
    assert call.arguments is None and "not a literal" in call.parse_error
    call = by_id("native_truncated_args").calls[0]
    assert call.raw_arguments == '{"city": "Par' and call.parse_error == "truncated"


def test_a_call_in_a_code_sample_needs_a_known_name_only_when_names_are_given():
    text = '```json\n{"name": "lookup", "arguments": {"q": 1}}\n```'
    assert detect(text, None, ["get_weather"]).format == "none"
    assert [c.name for c in detect(text).calls] == ["lookup"]


def test_strip_think():
    assert strip_think("a<think>b</think>c<think>d</think>e") == "ace"
    assert strip_think("<think>never finished") == ""
    assert strip_think("template opened it</think>answer") == "answer"
    assert strip_think("no reasoning") == "no reasoning"


def test_malformed_native_entries_do_not_crash():
    got = detect("", [{"function": {"arguments": "{}"}}, "junk", {"function": {"name": "x", "arguments": 7}}])
    assert got.format == "native" and [c.name for c in got.calls] == ["", "x"]
    assert all(c.parse_error for c in got.calls)


# -- properties -------------------------------------------------------------------------------------

TOKENS = [
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|python_tag|>", "<|tool_call|>",
    "<|/tool_call|>", "<function=", "</function>", ">>>", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<|tool_call_begin|>", "<|tool_call_argument_begin|>",
    "[TOOL_REQUEST]", "[END_TOOL_REQUEST]", "<think>", "</think>", "```json\n", "```", "to=functions.",
    "<|message|>", "<|call|>", "<parameter=", "</parameter>", "<arg_key>", "<arg_value>", "<tool_calls>",
    '{"name": ', '"get_weather"', '"arguments": ', '"parameters": ', '{"tool_call": ', '"{\\"a\\": ',
    "{", "}", "[", "]", "(", ")", '"', ",", ":", ";", "\n", " ", "get_weather", "(city=", "'x'", "1e999",
    "true", "null", "\\", "functions.", ":0",
]  # fmt: skip
NAMES = ["get_weather", "get_time"]


def check(result: Detection) -> None:
    assert isinstance(result, Detection) and result.format in FORMATS and result.trust in (0, 1, 2, 3)
    for call in result.calls:
        assert isinstance(call.name, str) and isinstance(call.raw_arguments, str)
        assert call.arguments is None or isinstance(call.arguments, dict)
        assert (call.arguments is None) == (call.parse_error is not None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000), st.booleans())
def test_never_raises_on_arbitrary_text(text, with_names):
    check(detect(text, None, NAMES if with_names else ()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=8), max_size=60), st.booleans())
def test_never_raises_on_text_built_from_format_tokens(parts, with_names):
    check(detect("".join(parts), None, NAMES if with_names else ()))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=5), st.dictionaries(st.sampled_from(
    ["function", "name", "arguments", "id", "type"]), st.recursive(st.none() | st.text(max_size=20)
    | st.integers(), lambda c: st.dictionaries(st.sampled_from(["name", "arguments"]), c, max_size=2),
    max_leaves=4), max_size=4)), max_size=4))  # fmt: skip
def test_never_raises_on_odd_native_calls(native):
    check(detect("", native, NAMES))


@pytest.mark.parametrize(
    "unit",
    [
        "The quick brown fox uses get_weather sometimes. ",
        '{"a": [1, {"b": "c"}], "name": "x", ',
        "[[[[{{{{((((",
        '{"name": "get_weather", "arguments": {"city": "',
        "<tool_call>{",
        "[TOOL_CALLS]get_weather[ARGS]",
        '```json\n{"name": 1}\n',
        "[get_weather(city=",
        "<think>",
        "<｜tool▁call▁begin｜>function<｜tool▁sep｜>x\n",
        ">>>get_weather\n{",
        '"\\"\\"\\"',
        " " * 50,
    ],
)
def test_100kb_of_adversarial_text_completes(unit):
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    check(detect(text, None, NAMES))
    check(detect(text))
    check(
        detect("intro " + text + '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', None, NAMES)
    )


def test_every_format_name_is_documented():
    """docs/events.md and docs/toolcalls.md name every format the detector can answer."""
    root = Path(__file__).parent.parent / "docs"
    events, table = (root / "events.md").read_text(), (root / "toolcalls.md").read_text()
    assert [f for f in FORMATS if f"`{f}`" not in events] == []
    assert [f for f in FORMATS if f"`{f}`" not in table] == []


# -- the reference parsers' readings that the finders once missed (vLLM 0.34 / llama.cpp b7376) --------

NAMES = ["get_weather", "get_time", "python"]


@pytest.mark.parametrize(
    "text, fmt, calls",
    [
        # Qwen3-Coder: two <function=…> in one <tool_call> are two calls (vLLM qwen3coder parser)
        (
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nZürich\n</parameter>\n</function>\n"
            "<function=get_time>\n<parameter=timezone>\nEurope/Zurich\n</parameter>\n</function>\n</tool_call>",
            "qwen3_xml",
            [("get_weather", {"city": "Zürich"}), ("get_time", {"timezone": "Europe/Zurich"})],
        ),
        # a missing </parameter>: the value ends at the next parameter or at </function>
        (
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n<parameter=days>\n3\n</function>\n</tool_call>",
            "qwen3_xml",
            [("get_weather", {"city": "Paris", "days": 3})],
        ),
        # GLM-4.5: a call without arguments is the bare name
        ("<tool_call>get_time\n</tool_call>", "glm", [("get_time", {})]),
        # Mistral v11 without [ARGS]
        (
            '[TOOL_CALLS]get_weather{"city": "Paris", "tags": ["a", "ü"]}',
            "mistral_args",
            [("get_weather", {"city": "Paris", "tags": ["a", "ü"]})],
        ),
        # Llama 3.1: code after <|python_tag|> is the code interpreter's
        (
            "<|python_tag|>import math\nprint(math.pi)<|eom_id|>",
            "python_tag",
            [("python", {"code": "import math\nprint(math.pi)"})],
        ),
        # Functionary v3.2: the first >>> is in the prompt; later ones follow with no newline
        (
            'get_weather\n{"city": "Paris"}>>>get_time\n{"timezone": "UTC"}',
            "functionary",
            [("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "UTC"})],
        ),
    ],
)
def test_what_the_reference_parsers_read(text, fmt, calls):
    got = detect(text, None, NAMES)
    assert (got.format, [(c.name, c.arguments) for c in got.calls]) == (fmt, calls)
    assert not got.truncated and all(c.parse_error is None for c in got.calls)


def test_a_kimi_call_index_alone_is_no_tool_name():
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>0<|tool_call_argument_begin|>"
        '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>'
    )
    (call,) = detect(text, None, NAMES).calls
    assert call.name == "" and call.parse_error == "call id without a function name"


@pytest.mark.parametrize(
    "open_tag, close_tag",
    [("<seed:think>", "</seed:think>"), ("[THINK]", "[/THINK]"), ("<|START_THINKING|>", "<|END_THINKING|>")],
)
def test_calls_inside_other_families_reasoning_are_thinking(open_tag, close_tag):
    text = f'{open_tag}maybe <tool_call>{{"name": "get_weather", "arguments": {{"city": "Oslo"}}}}</tool_call>{close_tag}It is sunny.'
    assert detect(text, None, NAMES).format == "none"


# -- found checking the detector from outside (raw answers from vLLM's and llama.cpp's own tests) -------


def test_llama4_python_start_list_with_nested_values():
    text = '<|python_start|>[get_weather(city="Oslo", days=[1, 2]), get_time(opts={"utc": true, "tz": null})]<|python_end|>'
    got = detect(text, None, NAMES)
    assert (got.format, got.truncated) == ("pythonic", False)
    assert [(c.name, c.arguments) for c in got.calls] == [
        ("get_weather", {"city": "Oslo", "days": [1, 2]}),
        ("get_time", {"opts": {"utc": True, "tz": None}}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        # a tool's definition quoted in an answer: its parameters are a JSON Schema
        'The tool is {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}.',
        '```json\n{"type": "function", "function": {"name": "get_weather", "description": "Weather", '
        '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}\n```',
        "A header like `to=functions.NAME` marks a call.",
        # code that uses a function, in a fenced sample
        "Example:\n\n```python\nresult = get_weather(city='Paris')\nprint(result)\n```",
    ],
)
def test_quoted_definitions_markers_and_code_samples_are_not_calls(text):
    got = detect(text, None, NAMES)
    assert got.calls == [] and not got.truncated and got.format in ("none", "prose_mention"), got


def test_a_marker_named_in_prose_is_not_a_call_cut_off():
    """Bare markers in a sentence are call-shaped text (unparsed: a known limitation, docs/toolcalls.md),
    but never a call the answer stopped in the middle of."""
    got = detect("It starts with <｜tool▁calls▁begin｜> and ends with the matching end token.", None, NAMES)
    assert (got.calls, got.truncated, got.format) == ([], False, "unparsed")
    assert detect("<｜tool▁calls▁begin｜>", None, NAMES).truncated  # the answer stopped right there


# -- every long-standing format with nested, quoted and non-ASCII arguments -----------------------------

RICH = {"city": "Zürich", "note": 'He said "hi"', "opts": {"unit": "c", "days": 3}, "tags": ["東京", "a"]}
RICH_JSON = json.dumps(RICH, ensure_ascii=False)
PY_RICH = "city='Zürich', note='He said \"hi\"', opts={'unit': 'c', 'days': 3}, tags=['東京', 'a']"


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("hermes", f'<tool_call>\n{{"name": "get_weather", "arguments": {RICH_JSON}}}\n</tool_call>'),
        ("mistral", f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {RICH_JSON}}}]'),
        ("mistral_args", f"[TOOL_CALLS]get_weather[ARGS]{RICH_JSON}"),
        ("llama3_json", f'{{"name": "get_weather", "parameters": {RICH_JSON}}}'),
        ("python_tag", f'<|python_tag|>{{"name": "get_weather", "parameters": {RICH_JSON}}}<|eom_id|>'),
        ("pythonic", f"[get_weather({PY_RICH})]"),
        ("functionary", f"<function=get_weather>{RICH_JSON}</function>"),
        ("tool_call_tag", f'<|tool_call|>[{{"name": "get_weather", "arguments": {RICH_JSON}}}]'),
        ("jamba", f'<tool_calls>[{{"name": "get_weather", "arguments": {RICH_JSON}}}]</tool_calls>'),
        (
            "deepseek",
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
            f"{RICH_JSON}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        ),
        (
            "kimi_k2",
            "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
            f"{RICH_JSON}<|tool_call_end|><|tool_calls_section_end|>",
        ),
        (
            "harmony",
            f"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{RICH_JSON}<|call|>",
        ),
        (
            "lmstudio_request",
            f'[TOOL_REQUEST]{{"name": "get_weather", "arguments": {RICH_JSON}}}[END_TOOL_REQUEST]',
        ),
        ("generic_json", f'{{"tool_call": {{"name": "get_weather", "arguments": {RICH_JSON}}}}}'),
        ("fenced_json", f'```json\n{{"name": "get_weather", "arguments": {RICH_JSON}}}\n```'),
        (
            "qwen3_xml",
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nZürich\n</parameter>\n<parameter=note>\n"
            'He said "hi"\n</parameter>\n<parameter=opts>\n{"unit": "c", "days": 3}\n</parameter>\n'
            '<parameter=tags>\n["東京", "a"]\n</parameter>\n</function>\n</tool_call>',
        ),
        (
            "glm",
            "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Zürich</arg_value>\n<arg_key>note</arg_key>\n"
            '<arg_value>He said "hi"</arg_value>\n<arg_key>opts</arg_key>\n<arg_value>{"unit": "c", "days": 3}'
            '</arg_value>\n<arg_key>tags</arg_key>\n<arg_value>["東京", "a"]</arg_value>\n</tool_call>',
        ),
    ],
)
def test_every_format_keeps_nested_quoted_and_unicode_arguments(fmt, text):
    got = detect(text, None, ["get_weather"])
    assert got.format == fmt
    assert [(c.name, c.arguments, c.parse_error) for c in got.calls] == [("get_weather", RICH, None)]
