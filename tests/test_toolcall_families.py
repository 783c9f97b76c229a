"""The finders for the newer tool-call families (Gemma 4, FunctionGemma, MiniMax M2, Seed-OSS, OLMo 3,
Cohere Command R7B/A, FireFunction `functools`, Nemotron `<TOOLCALL>`, LFM2, Apertus), run through
`detect`: one call, two calls, awkward arguments, cut-off text, and text that must not count."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soaktui.toolcalls.calls import TRUNCATED
from soaktui.toolcalls.detect import detect

pytestmark = pytest.mark.unit

NAMES = ["get_weather", "get_time", "search", "read_file", "bash", "get_candidate_status", "register_user"]

# The same awkward arguments in every family: a nested object, an array, a quote inside a string and
# non-ASCII text.
# vLLM's olmo3 and lfm2 parser tests call register_user with these arguments
JOHN = {
    "name": "John Doe",
    "age": 37,
    "address": {"city": "San Francisco", "state": "CA"},
    "role": None,
    "passed_test": True,
    "aliases": ["John", "Johnny"],
}
RICH = {"city": "Zürich", "note": 'He said "hi"', "opts": {"unit": "c", "days": 3}, "tags": ["東京", "a"]}

G4 = '<|"|>'  # Gemma 4's string delimiter token
FG = "<escape>"  # FunctionGemma's

# (format, text, expected [(name, arguments)]); examples from the research notes behind docs/toolcalls.md, which quote
# the vLLM / llama.cpp templates, parsers and tests.
CASES = [
    # -- Gemma 4 (vLLM 0.34 parser/gemma4.py, gemma4_utils.py; llama.cpp b11434 parsers/gemma4.cpp)
    (
        "gemma4",
        f"<|tool_call>call:get_weather{{city:{G4}Paris{G4},days:3}}<tool_call|>",
        [("get_weather", {"city": "Paris", "days": 3})],
    ),
    (
        "gemma4",
        f"<|tool_call>call:read_file{{path:{G4}/work/Makefile{G4}}}<tool_call|>\n"
        f"<|tool_call>call:bash{{command:{G4}make -j8{G4}}}<tool_call|>",
        [("read_file", {"path": "/work/Makefile"}), ("bash", {"command": "make -j8"})],
    ),
    (
        "gemma4",
        f'<|tool_call>call:search{{city:{G4}Zürich{G4},note:{G4}He said "hi"{G4},'
        f"opts:{{unit:{G4}c{G4},days:3}},tags:[{G4}東京{G4},{G4}a{G4}]}}<tool_call|>",
        [("search", RICH)],
    ),
    (
        "gemma4",  # the parser docstring's example, `<turn|>` as closer, and a string holding `}` and `,`
        f"<|tool_call>call:search{{nested:{{inner_key:{G4}val{G4}}},items:[{G4}a{G4},{G4}b{G4}],"
        f"count:42,flag:true,q:{G4}a}}, b{G4},none:null,ratio:-1.5e2}}<turn|>",
        [
            (
                "search",
                {
                    "nested": {"inner_key": "val"},
                    "items": ["a", "b"],
                    "count": 42,
                    "flag": True,
                    "q": "a}, b",
                    "none": None,
                    "ratio": -150.0,
                },
            )
        ],
    ),
    (
        "gemma4",  # the bare opener some checkpoints write, and a dotted name
        f"<|tool_call>:call:fs.read_file{{path:{G4}a.txt{G4}}}<tool_call|>",
        [("fs.read_file", {"path": "a.txt"})],
    ),
    # -- FunctionGemma (vLLM 0.34 tool_parsers/functiongemma_tool_parser.py)
    (
        "functiongemma",
        f"<start_function_call>call:get_weather{{city:{FG}Paris{FG}}}<end_function_call>",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "functiongemma",
        f"<start_function_call>call:get_weather{{city:{FG}Paris{FG}}}<end_function_call>"
        f"<start_function_call>call:get_time{{tz:{FG}UTC{FG}}}<end_function_call>",
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "functiongemma",
        f'<start_function_call>call:search{{city:{FG}Zürich{FG},note:{FG}He said "hi"{FG},'
        f"opts:{{unit:{FG}c{FG},days:3}},tags:[{FG}東京{FG},{FG}a{FG}]}}<end_function_call>",
        [("search", RICH)],
    ),
    # -- MiniMax M2 (vLLM 0.18 minimax_m2_tool_parser.py, 0.34 parser/minimax_m2.py)
    (
        "minimax_xml",
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
        "</invoke>\n</minimax:tool_call>",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "minimax_xml",
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
        '</invoke>\n<invoke name="get_time">\n<parameter name="tz">UTC</parameter>\n</invoke>\n'
        "</minimax:tool_call>",
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "minimax_xml",
        '<minimax:tool_call>\n<invoke name="search">\n<parameter name="city">Zürich</parameter>\n'
        '<parameter name="note">He said "hi"</parameter>\n'
        '<parameter name="opts">{"unit": "c", "days": 3}</parameter>\n'
        '<parameter name="tags">["東京", "a"]</parameter>\n</invoke>\n</minimax:tool_call>',
        [("search", RICH)],
    ),
    (
        "minimax_xml",  # single-quoted and unquoted names (vLLM 0.34); a quoted string stays as written
        "<minimax:tool_call><invoke name='search'><parameter name=q>\"exact phrase\"</parameter>"
        "<parameter name='n'>5</parameter><parameter name=\"ok\">true</parameter></invoke></minimax:tool_call>",
        [("search", {"q": '"exact phrase"', "n": 5, "ok": True})],
    ),
    # -- Seed-OSS (llama.cpp b7376 common_chat_parse_seed_oss; vLLM 0.34 parser/seed_oss.py)
    (
        "seed_oss",
        "<seed:think>I need the sum.</seed:think><seed:tool_call>\n<function=get_weather>\n"
        "<parameter=city>Paris</parameter>\n</function>\n</seed:tool_call>",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "seed_oss",
        "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n"
        "</seed:tool_call><seed:tool_call>\n<function=get_time>\n<parameter=tz>UTC</parameter>\n"
        "</function>\n</seed:tool_call>",
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "seed_oss",
        "<seed:tool_call>\n<function=search>\n<parameter=city>Zürich</parameter>\n"
        '<parameter=note>He said "hi"</parameter>\n<parameter=opts>{"unit": "c", "days": 3}</parameter>\n'
        '<parameter=tags>["東京", "a"]</parameter>\n</function>\n</seed:tool_call>',
        [("search", RICH)],
    ),
    (
        "seed_oss",  # two functions in one block
        "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n"
        "<function=get_time>\n<parameter=tz>UTC</parameter>\n</function>\n</seed:tool_call>",
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    # -- OLMo 3 (vLLM 0.34 tool_parsers/olmo3_tool_parser.py and its test)
    (
        "olmo3",
        "<function_calls>get_weather(city='San Francisco', metric='celsius')</function_calls>",
        [("get_weather", {"city": "San Francisco", "metric": "celsius"})],
    ),
    (
        "olmo3",
        "<function_calls>get_weather(city='San Francisco', metric='celsius')\n"
        "register_user(name='John Doe', age=37, address={'city': 'San Francisco', 'state': 'CA'}, "
        "role=null, passed_test=true, aliases=['John', 'Johnny'])</function_calls>",
        [
            ("get_weather", {"city": "San Francisco", "metric": "celsius"}),
            (
                "register_user",
                JOHN,
            ),
        ],
    ),
    (
        "olmo3",
        "<function_calls>\nsearch(city='Zürich', note='He said \"hi\"', opts={'unit': 'c', 'days': 3}, "
        "tags=['東京', 'a'])\n</function_calls>",
        [("search", RICH)],
    ),
    # -- Command R7B / Command A (llama.cpp b7376 common_chat_parse_command_r7b; vLLM 0.34 parser/cohere_command.py)
    (
        "cohere_action",
        '<|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}}\n'
        "]<|END_ACTION|>",
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "cohere_action",
        "<|START_THINKING|>I will look up the weather.<|END_THINKING|><|START_ACTION|>[\n"
        '    {"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Paris"}},\n'
        '    {"tool_call_id": "1", "tool_name": "get_time", "parameters": {"tz": "UTC"}}\n]<|END_ACTION|>',
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "cohere_action",
        '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "search", "parameters": '
        + json.dumps(RICH, ensure_ascii=False)
        + "}]<|END_ACTION|>",
        [("search", RICH)],
    ),
    # -- FireFunction v2 / Phi-4-mini prompted (llama.cpp b7376 common_chat_parse_firefunction_v2)
    (
        "functools",
        ' functools[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "functools",
        ' functools[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "get_time", "arguments": {"tz": "UTC"}}]',
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "functools",  # vLLM's Phi-4-mini parser accepts "parameters" too
        'functools[{"name": "search", "parameters": ' + json.dumps(RICH, ensure_ascii=False) + "}]",
        [("search", RICH)],
    ),
    # -- Nemotron (llama.cpp b7376 common_chat_parse_nemotron_v2; vLLM nemotron_json_tool_parser.py)
    (
        "toolcall_tag",
        '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>',
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "toolcall_tag",
        '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "get_time", "arguments": {"tz": "UTC"}}]</TOOLCALL>',
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "toolcall_tag",  # arguments as a JSON string
        '<TOOLCALL>[{"name": "search", "arguments": '
        + json.dumps(json.dumps(RICH, ensure_ascii=False), ensure_ascii=False)
        + "}]</TOOLCALL>",
        [("search", RICH)],
    ),
    # -- LFM2 / LFM2.5 (vLLM test_lfm2_tool_parser.py; llama.cpp b11434 parsers/lfm2.cpp, b7376 JSON form)
    (
        "lfm2",
        "<|tool_call_start|>[get_candidate_status(candidate_id='12345')]<|tool_call_end|>",
        [("get_candidate_status", {"candidate_id": "12345"})],
    ),
    (
        "lfm2",
        "<|tool_call_start|>[get_candidate_status(candidate_id='12345'), register_user(name='John Doe', "
        "age=37, address={'city': 'San Francisco', 'state': 'CA'}, role=None, passed_test=True, "
        "aliases=['John', 'Johnny'])]<|tool_call_end|>Done.",
        [
            ("get_candidate_status", {"candidate_id": "12345"}),
            (
                "register_user",
                JOHN,
            ),
        ],
    ),
    (
        "lfm2",
        "<|tool_call_start|> [search(city='Zürich', note='He said \"hi\"', opts={'unit': 'c', 'days': 3}, "
        "tags=['東京', 'a'])]<|tool_call_end|>",
        [("search", RICH)],
    ),
    (
        "lfm2",  # the older JSON form
        '<|tool_call_start|>[{"name": "get_weather", "arguments": {"location": "Paris"}}]<|tool_call_end|>',
        [("get_weather", {"location": "Paris"})],
    ),
    # -- Apertus (vLLM 0.34 apertus_tool_parser.py; llama.cpp b7376 common_chat_parse_apertus)
    (
        "apertus",
        '<|tools_prefix|>[{"get_weather": {"city": "Paris"}}]<|tools_suffix|>',
        [("get_weather", {"city": "Paris"})],
    ),
    (
        "apertus",
        '<|tools_prefix|>[{"get_weather": {"city": "Paris"}}, {"get_time": {"tz": "UTC"}}]<|tools_suffix|>',
        [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})],
    ),
    (
        "apertus",
        '<|tools_prefix|>[{"search": ' + json.dumps(RICH, ensure_ascii=False) + "}]<|tools_suffix|>",
        [("search", RICH)],
    ),
]


def _id(case: tuple) -> str:
    fmt, _, calls = case
    return f"{fmt}-{'+'.join(name for name, _ in calls)}"


@pytest.mark.parametrize("with_names", [True, False], ids=["names", "no_names"])
@pytest.mark.parametrize("fmt, text, want", CASES, ids=[_id(c) for c in CASES])
def test_each_family_is_read_under_its_own_name(fmt, text, want, with_names):
    d = detect(text, None, NAMES if with_names else ())
    assert (d.format, d.trust, d.truncated) == (fmt, 2, False), d
    assert [(c.name, c.arguments) for c in d.calls] == want
    assert all(c.parse_error is None for c in d.calls)
    assert [json.loads(c.raw_arguments) for c in d.calls] == [args for _, args in want]


# One call per family, for the negatives and the truncation checks.
ONE_CALL = {
    "gemma4": f"<|tool_call>call:get_weather{{city:{G4}Paris{G4}}}<tool_call|>",
    "functiongemma": f"<start_function_call>call:get_weather{{city:{FG}Paris{FG}}}<end_function_call>",
    "minimax_xml": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
    "</invoke>\n</minimax:tool_call>",
    "seed_oss": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n"
    "</seed:tool_call>",
    "olmo3": "<function_calls>get_weather(city='Paris')</function_calls>",
    "cohere_action": '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", '
    '"parameters": {"city": "Paris"}}]<|END_ACTION|>',
    "functools": ' functools[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    "toolcall_tag": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>',
    "lfm2": "<|tool_call_start|>[get_weather(city='Paris')]<|tool_call_end|>",
    "apertus": '<|tools_prefix|>[{"get_weather": {"city": "Paris"}}]<|tools_suffix|>',
}

# Prose that names each family's marker (and a tool) without making a call.
PROSE = {
    "gemma4": "Gemma 4 opens a call with <|tool_call> and ends it with <tool_call|>; get_weather is one tool.",
    "functiongemma": "FunctionGemma writes <start_function_call> before a call. I will not call get_weather.",
    "minimax_xml": "MiniMax wraps calls in <minimax:tool_call> tags, which I will not use for get_weather.",
    "seed_oss": "Seed-OSS uses <seed:tool_call> with an XML function inside; no call to get_weather today.",
    "olmo3": "OLMo 3 puts calls like get_weather in <function_calls> tags, one per line.",
    "cohere_action": "Command A starts actions with <|START_ACTION|> but here get_weather is not needed.",
    "functools": "The functools module has partial; functools[0] is not valid, and get_weather is a tool.",
    "toolcall_tag": "Nemotron writes <TOOLCALL> around calls, but I only describe get_weather here.",
    "lfm2": "LFM2 uses <|tool_call_start|> then a Python list; get_weather would go there.",
    "apertus": "Apertus writes <|tools_prefix|> then a JSON list, e.g. for get_weather.",
}


def test_every_new_family_has_cases():
    assert {fmt for fmt, _, _ in CASES} == set(ONE_CALL) == set(PROSE)


@pytest.mark.parametrize("fmt", sorted(ONE_CALL))
def test_a_call_inside_a_think_block_does_not_count(fmt):
    text = f"<think>Maybe: {ONE_CALL[fmt]}</think>The weather in Paris is mild today."
    d = detect(text, None, NAMES)
    assert (d.format, d.calls) == ("none", []), d
    assert detect(ONE_CALL[fmt], None, NAMES).format == fmt  # the same call outside the block does


@pytest.mark.parametrize("fmt", sorted(PROSE))
def test_prose_naming_the_marker_is_not_a_call(fmt):
    d = detect(PROSE[fmt], None, NAMES)
    assert d.calls == [] and d.format != fmt and not d.truncated, d
    d = detect(PROSE[fmt])
    assert d.calls == [] and d.format != fmt, d


# Each one-call example cut off at a point inside the call: a truncated detection, not a miss.
CUT = {
    "gemma4": f"<|tool_call>call:get_weather{{city:{G4}Par",
    "functiongemma": f"<start_function_call>call:get_weather{{city:{FG}Par",
    "minimax_xml": '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Par',
    "seed_oss": "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Par",
    "olmo3": "<function_calls>get_weather(city='Par",
    "cohere_action": '<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"city": "Par',
    "functools": ' functools[{"name": "get_weather", "arguments": {"city": "Par',
    "toolcall_tag": '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Par',
    "lfm2": "<|tool_call_start|>[get_weather(city='Par",
    "apertus": '<|tools_prefix|>[{"get_weather": {"city": "Par',
}


@pytest.mark.parametrize("fmt", sorted(CUT))
def test_a_cut_off_call_is_truncated_under_its_family(fmt):
    d = detect(CUT[fmt], None, NAMES)
    assert (d.format, d.truncated) == (fmt, True), d
    assert [(c.name, c.arguments, c.parse_error) for c in d.calls] == [("get_weather", None, TRUNCATED)]


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("gemma4", f"<|tool_call>call:get_weather{{city:{G4}Paris{G4},days:}}<tool_call|>"),
        ("functiongemma", f"<start_function_call>call:get_weather{{city {FG}Paris{FG}}}<end_function_call>"),
        ("lfm2", "<|tool_call_start|>[get_weather(city='Paris'<|tool_call_end|>"),
        ("olmo3", "<function_calls>get_weather(city='Paris</function_calls>"),
        ("apertus", '<|tools_prefix|>[{"get_weather": {"city": Paris}}]<|tools_suffix|>'),
    ],
)
def test_a_closed_but_malformed_call_keeps_its_error_and_is_not_truncated(fmt, text):
    d = detect(text, None, NAMES)
    assert (d.format, d.truncated, [c.name for c in d.calls]) == (fmt, False, ["get_weather"]), d
    call = d.calls[0]
    assert call.arguments is None and call.parse_error not in (None, TRUNCATED) and call.raw_arguments


def test_gemma4_without_string_tokens_keeps_bare_words_as_strings():
    """With `<|"|>` stripped as a special token the literal is still read: bare words are strings."""
    d = detect("<|tool_call>call:get_weather{city:Paris,days:3,metric:true}<tool_call|>", None, NAMES)
    assert d.format == "gemma4"
    assert d.calls[0].arguments == {"city": "Paris", "days": 3, "metric": True}


def test_minimax_misspelt_parameter_tag_is_not_an_argument_less_call():
    text = (
        '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter nome="city">Oslo</parameter>\n</invoke>'
    )
    d = detect(text + "\n</minimax:tool_call>", None, NAMES)
    assert d.format != "minimax_xml" and d.calls == []


def test_functools_in_python_code_is_not_a_call():
    d = detect("import functools\nx = functools[0]\nprint(get_weather)", None, NAMES)
    assert d.format != "functools" and d.calls == []


NEW_TOKENS = [
    "<|tool_call>", "<tool_call|>", "<turn|>", "call:", '<|"|>', "<start_function_call>", "<end_function_call>",
    "<escape>", "<minimax:tool_call>", "</minimax:tool_call>", '<invoke name="get_weather">', "</invoke>",
    '<parameter name="city">', "</parameter>", "<seed:tool_call>", "</seed:tool_call>", "<function=get_time>",
    "<parameter=tz>", "</function>", "<function_calls>", "</function_calls>", "<|START_ACTION|>",
    "<|END_ACTION|>", " functools[", "<TOOLCALL>", "</TOOLCALL>", "<|tool_call_start|>", "<|tool_call_end|>",
    "<|tools_prefix|>", "<|tools_suffix|>", '{"name": ', '"get_weather"', '"arguments": ', '{"tool_name": ',
    "get_weather(", "city=", "'x'", "{", "}", "[", "]", "(", ")", ":", ",", '"', "\n", " ", "1e999", "true",
    "null", "None", "\\",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(NEW_TOKENS) | st.text(max_size=6), max_size=60), st.booleans())
def test_never_raises_on_text_built_from_the_new_markers(parts, with_names):
    d = detect("".join(parts), None, NAMES if with_names else ())
    assert d.trust in (0, 1, 2, 3)
    for call in d.calls:
        assert isinstance(call.name, str) and call.name and isinstance(call.raw_arguments, str)
        assert (call.arguments is None) == (call.parse_error is not None)
        assert call.arguments is None or isinstance(call.arguments, dict)


@pytest.mark.parametrize(
    "unit",
    [
        f"<|tool_call>call:x{{a:[{{b:{G4}",
        "<start_function_call>call:x{a:[[[[",
        '<minimax:tool_call><invoke name="x"><parameter name="a">',
        "<seed:tool_call><function=x><parameter=a>",
        "<function_calls>x(a=[",
        ' functools[{"name": "x", ',
        "<|tool_call_start|>[x(a=",
        '<|tools_prefix|>[{"x": {',
    ],
)
def test_100kb_of_repeated_markers_completes(unit):
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    for names in (NAMES, ()):
        d = detect(text, None, names)
        assert d.trust in (0, 1, 2, 3) and len(d.calls) <= 64 * 64
