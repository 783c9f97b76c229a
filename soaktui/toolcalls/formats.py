"""Finders for tool calls written as text, one per wrapping that local models actually emit.

Each `find_*` takes the content (already without `<think>` blocks) and the known tool names, and
returns a `Detection` or None when its wrapping is absent. Every finder scans with `str.find` and
anchored regexes and decodes JSON with `raw_decode`, so the work stays linear in the text, and caps
how many candidates it tries: the detector runs on arbitrary model output, up to ~1 MB of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import islice

from soaktui.toolcalls import textparse as tp
from soaktui.toolcalls.calls import (
    TRUNCATED,
    TRUST_TEXT,
    DetectedCall,
    Detection,
    decode_arguments,
    decode_at,
    runs_off_end,
    salvage,
)
from soaktui.toolcalls.families import (
    find_apertus,
    find_cohere_action,
    find_functiongemma,
    find_functools,
    find_gemma4,
    find_lfm2,
    find_minimax_xml,
    find_olmo3,
    find_seed_oss,
    find_toolcall_tag,
)

MAX_JSON_TRIES = 64  # loose JSON candidates decoded (each failure costs up to a pass over the text)
MAX_PY_TRIES = 16  # ast.parse attempts for pythonic call lists


# -- special-token formats -----------------------------------------------------------------------------

_FULLWIDTH = str.maketrans({"｜": "|", "▁": "_"})
_KIMI_ID = re.compile(r"^(?:functions\.)?(.+?)(?::\d+)?$")


def find_deepseek_or_kimi(text: str, names: tp.Names) -> Detection | None:
    """DeepSeek V3/R1 (`<｜tool▁call▁begin｜>function<｜tool▁sep｜>name\\n```json...```<｜tool▁call▁end｜>`),
    DeepSeek V3.1 (`name<｜tool▁sep｜>{json}`) and Kimi K2 (`functions.name:0<|tool_call_argument_begin|>`)."""
    if "tool" not in text or not ("▁" in text or "<|tool_call" in text):
        return None
    t = text.translate(_FULLWIDTH)  # same length; also accepts the ASCII spellings models slip into
    if "<|tool_call_begin|>" not in t:
        for opener, fmt in (
            ("<|tool_calls_section_begin|>", "kimi_k2"),
            ("<|tool_calls_begin|>", "deepseek"),
        ):
            at = t.rfind(opener)
            rest = t[at + len(opener) :].strip() if at >= 0 else "x"
            if not rest or rest.startswith("<"):  # the answer stops just after it (or mid-token)
                return Detection([], fmt, TRUST_TEXT, truncated=True)
        return None  # the marker named in prose (the unparsed stage still sees it)
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "deepseek"
    for body, closed in tp.blocks(t, "<|tool_call_begin|>", ("<|tool_call_end|>", "<|tool_calls_end|>")):
        truncated = truncated or not closed
        if "<|tool_call_argument_begin|>" in body:
            fmt = "kimi_k2"
            head, _, args = body.partition("<|tool_call_argument_begin|>")
            m = _KIMI_ID.match(head.strip())
            name = tp.clean_name(m.group(1)) if m else None
            if name is not None and name.isdigit():  # a bare call index (`0`): the name is unknown
                calls.append(DetectedCall("", None, args.strip(), "call id without a function name"))
                continue
        elif "<|tool_sep|>" in body:
            left, _, right = body.partition("<|tool_sep|>")
            if left.strip() in ("function", ""):
                first, _, args = right.lstrip().partition("\n")
                name = tp.clean_name(first)
            else:
                name, args = tp.clean_name(left), right
            args = tp.strip_fence(args)
        else:
            continue
        if name is not None:
            calls.append(tp.args_call(name, args, closed))
    return tp.found(calls, fmt, truncated)


_HARMONY_TO = re.compile(r"to=functions\.([A-Za-z0-9_.\-]{1,256})")


def find_harmony(text: str, names: tp.Names) -> Detection | None:
    """gpt-oss (harmony): `<|channel|>commentary to=functions.name <|constrain|>json<|message|>{...}<|call|>`."""
    if "to=functions." not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for m in list(_HARMONY_TO.finditer(text))[: tp.MAX_BLOCKS]:
        msg = text.find("<|message|>", m.end(), m.end() + 200)
        if msg < 0:  # the text stopped before the message, or `to=functions.x` is named in prose
            truncated = truncated or (len(text) - m.end() < 200 and (not names or m.group(1) in names))
            continue
        start = msg + len("<|message|>")
        ends = [e for e in (text.find(t, start) for t in ("<|call|>", "<|end|>", "<|start|>")) if e >= 0]
        closed = bool(ends)
        calls.append(tp.args_call(m.group(1), text[start : min(ends) if ends else len(text)], closed))
        truncated = truncated or calls[-1].parse_error == TRUNCATED
    return tp.found(calls, "harmony", truncated)


# name[ARGS]{…}; `[ARGS]` may be missing (vLLM 0.34 parser/mistral.py accepts `name{…}` too)
_MISTRAL_NAME = re.compile(
    r"\s*([A-Za-z0-9_.\-]{1,256})(?:\[CALL_ID\][A-Za-z0-9]{0,64})?(?:\[ARGS\]|(?=\s*\{))"
)


def find_mistral(text: str, names: tp.Names) -> Detection | None:
    """Mistral `[TOOL_CALLS] [{"name", "arguments"}, ...]` and the newer `[TOOL_CALLS]name[ARGS]{...}`
    (v11+; `[ARGS]` sometimes absent)."""
    if "[TOOL_CALLS]" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "mistral"
    for body, closed in tp.blocks(text, "[TOOL_CALLS]", ("</s>",)):
        stripped = body.lstrip()
        if not stripped or stripped[0] in "{[":
            got, cut = tp.json_calls(body, closed)
            calls.extend(got)
            truncated = truncated or cut
            continue
        pos = 0
        while len(calls) < tp.MAX_BLOCKS:  # name[ARGS]{json} name[ARGS]{json} ...
            m = _MISTRAL_NAME.match(body, pos)
            if m is None:
                break
            fmt = "mistral_args"
            start = tp.skip_seps(body, m.end(), len(body))
            try:
                value, pos = decode_at(body, start)
            except ValueError as exc:
                cut = not closed and runs_off_end(exc, body)
                truncated = truncated or cut
                calls.append(
                    DetectedCall(m.group(1), None, body[start:].strip(), TRUNCATED if cut else str(exc))
                )
                break
            arguments, raw, error = decode_arguments(value)
            calls.append(DetectedCall(m.group(1), arguments, raw, error))
    return tp.found(calls, fmt, truncated)


_BUILTIN_CALL = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\.call\s*\(")


def find_python_tag(text: str, names: tp.Names) -> Detection | None:
    """Llama 3.1/3.2 `<|python_tag|>{"name", "parameters"}` (several, `;`-separated), a builtin
    `<|python_tag|>brave_search.call(query="...")`, or any other text after the tag: code for the
    code interpreter, a call of `python` with {"code": …}, as llama.cpp reads it."""
    if "<|python_tag|>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<|python_tag|>", ("<|eom_id|>", "<|eot_id|>")):
        if body.lstrip()[:1] in ("{", "[", ""):
            got, cut = tp.json_calls(body, closed)
        elif _BUILTIN_CALL.match(body):
            got, cut = tp.pythonic(body.strip(), single=True)
        else:  # raw code for the code interpreter (llama.cpp b7376 common_chat_parse_llama_3_1)
            code = body.strip()
            got, cut = (
                [DetectedCall("python", {"code": code}, json.dumps({"code": code}, ensure_ascii=False))],
                False,
            )
        calls.extend(got)
        truncated = truncated or cut
    return tp.found(calls, "python_tag", truncated)


def find_tool_call_tag(text: str, names: tp.Names) -> Detection | None:
    """Granite / Phi-4-mini `<|tool_call|>[{...}]` (optionally closed by `<|/tool_call|>`)."""
    return tp.tagged_json(
        text, "<|tool_call|>", ("<|/tool_call|>", "<|end_tool_call|>", "<|end_of_text|>"), "tool_call_tag"
    )


def find_jamba(text: str, names: tp.Names) -> Detection | None:
    """Jamba `<tool_calls>[{...}]</tool_calls>`."""
    return tp.tagged_json(text, "<tool_calls>", ("</tool_calls>",), "jamba")


def find_lmstudio(text: str, names: tp.Names) -> Detection | None:
    """LM Studio's own wrapping: `[TOOL_REQUEST]{"name", "arguments"}[END_TOOL_REQUEST]`."""
    return tp.tagged_json(text, "[TOOL_REQUEST]", ("[END_TOOL_REQUEST]",), "lmstudio_request")


_GLM_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")


def find_hermes(text: str, names: tp.Names) -> Detection | None:
    """Hermes / Qwen 2.5 `<tool_call>{json}</tool_call>`; inside the same tags, Qwen3-Coder's
    `<function=name><parameter=k>v</parameter></function>` and GLM-4.5's `name<arg_key>k</arg_key>...`."""
    if "<tool_call>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "hermes"
    for body, closed in tp.blocks(text, "<tool_call>", ("</tool_call>",)):
        got_xml = tp.xml_functions(body, closed)
        if got_xml is not None:  # Qwen3-Coder: one or more <function=…> in the block
            fmt = "qwen3_xml"
            calls.extend(got_xml[0])
            truncated = truncated or got_xml[1]
            continue
        bare = body.strip()
        if closed and _GLM_BARE_NAME.fullmatch(bare) and (not names or bare in names):
            fmt = "glm"  # GLM-4.5 `<tool_call>name</tool_call>`: a call without arguments
            calls.append(DetectedCall(bare, {}, "{}", None))
            continue
        if "<arg_key>" in body and body.lstrip()[:1] not in "{[":
            fmt = "glm"
            name = tp.clean_name(body.lstrip().split("<", 1)[0])
            if name is None:
                continue
            call = tp.xml_params(body, name, closed, tp.GLM_ARG, "</arg_value>")
        else:
            got, cut = tp.json_calls(body, closed)
            calls.extend(got)
            truncated = truncated or cut
            continue
        calls.append(call)
        truncated = truncated or call.parse_error == TRUNCATED
    return tp.found(calls, fmt, truncated)


# Functionary v3.2: `>>>name\n{json}`, anywhere (calls follow each other with no newline between);
# the first call's `>>>` is part of the prompt, so a message may open with `name\n{json}` directly
# (llama.cpp b7376 common_chat_parse_functionary_v3_2).
_FUNCTIONARY_V3 = re.compile(r">>>[ \t]*([A-Za-z0-9_.\-]{1,256})[ \t]*\n(?=\s*\{)|>>>[ \t]*(all)[ \t]*\n")
_FUNCTIONARY_FIRST = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-]{0,255})[ \t]*\n(?=\s*\{)")


def find_functionary(text: str, names: tp.Names) -> Detection | None:
    """Functionary v3.1 / Llama 3.1 custom `<function=name>{json}</function>` and v3.2 `>>>name\\n{json}`."""
    calls: list[DetectedCall] = []
    truncated = False
    if "<function=" in text:
        for body, closed in tp.blocks(text, "<function=", ("</function>",)):
            name, sep, args = body.partition(">")
            name = tp.clean_name(name) if sep else None
            if name is None:
                truncated = truncated or not closed and not sep
                continue
            if args.lstrip().startswith("<parameter="):
                call = tp.xml_params(args, name, closed, tp.XML_PARAM, "</parameter>")
            else:
                call = tp.args_call(name, args, closed)
            calls.append(call)
            truncated = truncated or call.parse_error == TRUNCATED
    first = _FUNCTIONARY_FIRST.match(text) if names else None
    if first is not None and first.group(1) not in names:
        first = None
    if not calls and (">>>" in text or first is not None):
        matches: list[tuple[str, int, int]] = [(first.group(1), first.start(), first.end())] if first else []
        for m in islice(_FUNCTIONARY_V3.finditer(text), tp.MAX_BLOCKS):
            matches.append((m.group(1) or m.group(2), m.start(), m.end()))
        for i, (name, _, body_start) in enumerate(matches):
            if name == "all":  # >>>all is the assistant talking, not a call
                continue
            end = matches[i + 1][1] if i + 1 < len(matches) else len(text)
            body = text[body_start:end]
            start = tp.skip_seps(body, 0, len(body))
            try:
                value, _ = decode_at(body, start)
            except ValueError as exc:
                cut = runs_off_end(exc, body)
                truncated = truncated or cut
                calls.append(
                    DetectedCall(name, None, body.strip(), TRUNCATED if cut else f"invalid JSON: {exc}")
                )
                continue
            arguments, raw, error = decode_arguments(value)
            calls.append(DetectedCall(name, arguments, raw, error))
    return tp.found(calls, "functionary", truncated)


# -- loose JSON ------------------------------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"```[ \t]*([A-Za-z0-9_\-]{0,32})[ \t]*\n")
_FENCE_LANGS = ("", "json", "jsonc", "json5", "tool_call", "tool_code", "tool", "function_call")


_COHERE_ACTION = re.compile(r"Action:\s*$")


def find_fenced_json(text: str, names: tp.Names) -> Detection | None:
    """A fenced ```json block whose object (or list) has the call shape, with a known name when names
    are given. Command R / R+ (2024) write theirs after `Action:` as a list of {"tool_name",
    "parameters"} (its tool-use template, CohereForAI c4ai-command-r-plus `tool_use`): that is
    format `command_r_action`."""
    if "```" not in text:
        return None
    calls: list[DetectedCall] = []
    fmt = "fenced_json"
    pos = 0
    for _ in range(tp.MAX_BLOCKS):
        m = _FENCE_OPEN.search(text, pos)
        if m is None:
            break
        end = text.find("```", m.end())
        body = text[m.end() : len(text) if end < 0 else end].strip()
        pos = len(text) if end < 0 else end + 3
        if m.group(1).lower() not in _FENCE_LANGS or body[:1] not in ("{", "["):
            continue
        action = _COHERE_ACTION.search(text, max(0, m.start() - 32), m.start()) is not None
        try:
            value, stop = decode_at(body, 0)
        except ValueError as exc:
            if end < 0 and runs_off_end(exc, body):
                call = salvage(body, TRUNCATED)
                if call is not None and tp.known([call], names):
                    cut_fmt = "command_r_action" if action and not calls else fmt
                    return Detection(calls + [call], cut_fmt, TRUST_TEXT, truncated=True)
            continue
        got = tp.classify(value)
        if got is not None and tp.known(got[0], names):
            if action and not calls:
                fmt = "command_r_action"
            calls.extend(got[0])
    return tp.found(calls, fmt, False)


_JSON_START = re.compile(r'[\[{]\s*"')
_CALL_PREFIX = re.compile(r'\{\s*"(?:name|tool_name|tool_call|function_call|function)"\s*:')


def find_bare_json(text: str, names: tp.Names) -> Detection | None:
    """JSON objects written loose in the text: Llama 3 `{"name", "parameters"}` (the whole message, or
    several) and generic wrappers. Only objects with the call shape count, and only known names when
    names are given, so a config sample in prose is not a call."""
    if '"' not in text:
        return None
    calls: list[DetectedCall] = []
    formats: list[str] = []
    pos = 0
    for _ in range(MAX_JSON_TRIES):
        m = _JSON_START.search(text, pos)
        if m is None:
            break
        start = m.start()
        try:
            value, stop = decode_at(text, start)
        except ValueError as exc:
            if runs_off_end(exc, text) and _CALL_PREFIX.match(text, start):
                call = salvage(text[start:], TRUNCATED)
                if call is not None and tp.known([call], names):
                    return Detection(
                        calls + [call], formats[0] if formats else "llama3_json", TRUST_TEXT, True
                    )
            pos = start + 1
            continue
        got = tp.classify(value)
        if got is not None and tp.known(got[0], names):
            calls.extend(got[0])
            formats.append(got[1])
            pos = stop
        else:
            pos = start + 1 if isinstance(value, list) else stop  # a list may hold calls further in
    if not calls:
        return None
    return Detection(calls, formats[0], TRUST_TEXT, False)


# -- pythonic ------------------------------------------------------------------------------------------


def find_pythonic(text: str, names: tp.Names) -> Detection | None:
    """Pythonic call lists `[get_weather(city="Paris"), ...]` (Llama 3.2/4, ToolACE): the whole
    message, or, with known names, a list inside prose. Parsed with `ast`; arguments must be literals.
    Llama 4 may wrap the list in `<|python_start|>` … `<|python_end|>` (vLLM llama4_pythonic parser)."""
    if "<|python_" in text:
        text = text.replace("<|python_start|>", "").replace("<|python_end|>", "")
    stripped = text.strip()
    if tp.PY_START.match(stripped):
        calls, cut = tp.pythonic(stripped)
        if (calls or cut) and tp.known(calls, names):
            return tp.found(calls, "pythonic", cut)
    elif names and tp.PY_SINGLE.fullmatch(stripped[: stripped.find("(") + 1]) and stripped.endswith(")"):
        calls, _ = tp.pythonic(stripped, single=True)  # a bare `get_weather(city="Paris")` message
        if calls and tp.known(calls, names):
            return tp.found(calls, "pythonic", False)
    if not names or "[" not in text:
        return None
    tries = 0
    for m in tp.PY_START.finditer(text):
        if m.group(1) not in names or m.start() == 0:
            continue
        end = m.end()
        for _ in range(4):  # the list ends at one of the next few `]`
            end = text.find("]", end)
            if end < 0 or tries >= MAX_PY_TRIES:
                break
            tries += 1
            calls, _ = tp.pythonic(text[m.start() : end + 1])
            if calls and tp.known(calls, names) and all(c.parse_error != TRUNCATED for c in calls):
                return tp.found(calls, "pythonic", False)  # else: that `]` was inside an argument
            end += 1
        if tries >= MAX_PY_TRIES:
            break
    return None


Finder = Callable[[str, tp.Names], "Detection | None"]

# Most specific wrapping first: special tokens cannot occur by accident, loose JSON and Python can.
FINDERS: tuple[Finder, ...] = (
    find_deepseek_or_kimi,
    find_harmony,
    find_mistral,
    find_python_tag,
    find_tool_call_tag,
    find_jamba,
    find_lmstudio,
    find_gemma4,
    find_functiongemma,
    find_minimax_xml,
    find_seed_oss,  # before find_functionary, which would read its `<function=` as Functionary's
    find_olmo3,
    find_cohere_action,
    find_toolcall_tag,
    find_lfm2,
    find_apertus,
    find_hermes,
    find_functionary,
    find_functools,  # a plain-text marker, but before the loose JSON that would read its list
    find_fenced_json,
    find_bare_json,
    find_pythonic,
)
