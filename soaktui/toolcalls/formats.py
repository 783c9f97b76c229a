"""Finders for tool calls written as text, one per wrapping that local models actually emit.

Each `find_*` takes the content (already without `<think>` blocks) and the known tool names, and
returns a `Detection` or None when its wrapping is absent. Every finder scans with `str.find` and
anchored regexes and decodes JSON with `raw_decode`, so the work stays linear in the text, and caps
how many candidates it tries: the detector runs on arbitrary model output, up to ~1 MB of it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

from soaktui.toolcalls.calls import (
    MAX_NAME,
    TRUNCATED,
    TRUST_TEXT,
    DetectedCall,
    Detection,
    calls_from_value,
    decode_arguments,
    decode_at,
    runs_off_end,
    salvage,
)

MAX_BLOCKS = 64  # tagged blocks read per format
MAX_JSON_TRIES = 64  # loose JSON candidates decoded (each failure costs up to a pass over the text)
MAX_PY_TRIES = 16  # ast.parse attempts for pythonic call lists
MAX_PY_CHARS = 20_000  # a pythonic call list longer than this is not tried

Names = frozenset


def _found(calls: list[DetectedCall], fmt: str, truncated: bool) -> Detection | None:
    if not calls and not truncated:
        return None
    return Detection(calls=calls, format=fmt, trust=TRUST_TEXT, truncated=truncated)


def _skip_seps(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos] in " \t\r\n,;":
        pos += 1
    return pos


def _json_calls(body: str, closed: bool, require_args: bool = False) -> tuple[list[DetectedCall], bool]:
    """Calls from the JSON value(s) that make up a block's body; (calls, truncated). `closed`: the
    block had its closing marker, so a decoding failure is malformed JSON, not truncation."""
    calls: list[DetectedCall] = []
    pos = _skip_seps(body, 0, len(body))
    if pos >= len(body):
        return calls, not closed  # an opening marker and nothing after it
    while pos < len(body) and len(calls) < MAX_BLOCKS:
        if body[pos] not in "{[":
            if not calls:
                call = salvage(body, "not a JSON object")
                calls.extend([call] if call else [])
            break
        try:
            value, pos = decode_at(body, pos)
        except ValueError as exc:
            truncated = not closed and runs_off_end(exc, body)
            call = salvage(body[pos:], TRUNCATED if truncated else f"invalid JSON: {exc}")
            calls.extend([call] if call else [])
            return calls, truncated
        got = calls_from_value(value, require_args)
        if got is None:
            break
        calls.extend(got)
        pos = _skip_seps(body, pos, len(body))
    return calls, False


def _blocks(text: str, open_tag: str, close_tags: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(body, closed) for each `open_tag` block; an unclosed block runs to the next opening or the end."""
    out: list[tuple[str, bool]] = []
    pos = text.find(open_tag)
    while pos >= 0 and len(out) < MAX_BLOCKS:
        start = pos + len(open_tag)
        nxt = text.find(open_tag, start)
        stop = len(text) if nxt < 0 else nxt
        ends = [e for e in (text.find(t, start, stop) for t in close_tags) if e >= 0]
        if ends:
            out.append((text[start : min(ends)], True))
        else:
            out.append((text[start:stop], nxt >= 0))  # followed by another block: not cut off
        pos = nxt
    return out


def _tagged_json(text: str, open_tag: str, close_tags: tuple[str, ...], fmt: str) -> Detection | None:
    if open_tag not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in _blocks(text, open_tag, close_tags):
        got, cut = _json_calls(body, closed)
        calls.extend(got)
        truncated = truncated or cut
    return _found(calls, fmt, truncated)


def _strip_fence(s: str) -> str:
    s = s.strip()
    if s.startswith("```"):
        s = s[3:]
        nl = s.find("\n")
        if nl >= 0 and not s[:nl].strip().startswith(("{", "[")):
            s = s[nl + 1 :]
        s = s.strip()
        if s.endswith("```"):
            s = s[:-3]
    return s.strip()


def _args_call(name: str, args_text: str, closed: bool) -> DetectedCall:
    """A call whose name was read from markers and whose arguments are JSON text."""
    arguments, raw, error = decode_arguments(args_text.strip())
    if error == TRUNCATED and closed:
        error = "invalid JSON: unterminated"
    return DetectedCall(name, arguments, raw, error)


def _clean_name(name: str) -> str | None:
    name = name.strip()
    return name if 0 < len(name) <= MAX_NAME and not any(c.isspace() for c in name) else None


# -- special-token formats -----------------------------------------------------------------------------

_FULLWIDTH = str.maketrans({"｜": "|", "▁": "_"})
_KIMI_ID = re.compile(r"^(?:functions\.)?(.+?)(?::\d+)?$")


def find_deepseek_or_kimi(text: str, names: Names) -> Detection | None:
    """DeepSeek V3/R1 (`<｜tool▁call▁begin｜>function<｜tool▁sep｜>name\\n```json...```<｜tool▁call▁end｜>`),
    DeepSeek V3.1 (`name<｜tool▁sep｜>{json}`) and Kimi K2 (`functions.name:0<|tool_call_argument_begin|>`)."""
    if "tool" not in text or not ("▁" in text or "<|tool_call" in text):
        return None
    t = text.translate(_FULLWIDTH)  # same length; also accepts the ASCII spellings models slip into
    if "<|tool_call_begin|>" not in t:
        if "<|tool_calls_begin|>" in t or "<|tool_calls_section_begin|>" in t:
            kimi = "<|tool_calls_section_begin|>" in t
            return Detection([], "kimi_k2" if kimi else "deepseek", TRUST_TEXT, truncated=True)
        return None
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "deepseek"
    for body, closed in _blocks(t, "<|tool_call_begin|>", ("<|tool_call_end|>", "<|tool_calls_end|>")):
        truncated = truncated or not closed
        if "<|tool_call_argument_begin|>" in body:
            fmt = "kimi_k2"
            head, _, args = body.partition("<|tool_call_argument_begin|>")
            m = _KIMI_ID.match(head.strip())
            name = _clean_name(m.group(1)) if m else None
        elif "<|tool_sep|>" in body:
            left, _, right = body.partition("<|tool_sep|>")
            if left.strip() in ("function", ""):
                first, _, args = right.lstrip().partition("\n")
                name = _clean_name(first)
            else:
                name, args = _clean_name(left), right
            args = _strip_fence(args)
        else:
            continue
        if name is not None:
            calls.append(_args_call(name, args, closed))
    return _found(calls, fmt, truncated)


_HARMONY_TO = re.compile(r"to=functions\.([A-Za-z0-9_.\-]{1,256})")


def find_harmony(text: str, names: Names) -> Detection | None:
    """gpt-oss (harmony): `<|channel|>commentary to=functions.name <|constrain|>json<|message|>{...}<|call|>`."""
    if "to=functions." not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for m in list(_HARMONY_TO.finditer(text))[:MAX_BLOCKS]:
        msg = text.find("<|message|>", m.end(), m.end() + 200)
        if msg < 0:
            truncated = truncated or len(text) - m.end() < 200  # the text stopped before the message
            continue
        start = msg + len("<|message|>")
        ends = [e for e in (text.find(t, start) for t in ("<|call|>", "<|end|>", "<|start|>")) if e >= 0]
        closed = bool(ends)
        calls.append(_args_call(m.group(1), text[start : min(ends) if ends else len(text)], closed))
        truncated = truncated or calls[-1].parse_error == TRUNCATED
    return _found(calls, "harmony", truncated)


_MISTRAL_NAME = re.compile(r"\s*([A-Za-z0-9_.\-]{1,256})(?:\[CALL_ID\][A-Za-z0-9]{0,64})?\[ARGS\]")


def find_mistral(text: str, names: Names) -> Detection | None:
    """Mistral `[TOOL_CALLS] [{"name", "arguments"}, ...]` and the newer `[TOOL_CALLS]name[ARGS]{...}`."""
    if "[TOOL_CALLS]" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "mistral"
    for body, closed in _blocks(text, "[TOOL_CALLS]", ("</s>",)):
        stripped = body.lstrip()
        if not stripped or stripped[0] in "{[":
            got, cut = _json_calls(body, closed)
            calls.extend(got)
            truncated = truncated or cut
            continue
        pos = 0
        while len(calls) < MAX_BLOCKS:  # name[ARGS]{json} name[ARGS]{json} ...
            m = _MISTRAL_NAME.match(body, pos)
            if m is None:
                break
            fmt = "mistral_args"
            start = _skip_seps(body, m.end(), len(body))
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
    return _found(calls, fmt, truncated)


def find_python_tag(text: str, names: Names) -> Detection | None:
    """Llama 3.1/3.2 `<|python_tag|>{"name", "parameters"}` (several, `;`-separated) or a builtin
    `<|python_tag|>brave_search.call(query="...")`."""
    if "<|python_tag|>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in _blocks(text, "<|python_tag|>", ("<|eom_id|>", "<|eot_id|>")):
        if body.lstrip()[:1] in ("{", "[", ""):
            got, cut = _json_calls(body, closed)
        else:
            got, cut = _pythonic(body.strip(), single=True)
        calls.extend(got)
        truncated = truncated or cut
    return _found(calls, "python_tag", truncated)


def find_tool_call_tag(text: str, names: Names) -> Detection | None:
    """Granite / Phi-4-mini `<|tool_call|>[{...}]` (optionally closed by `<|/tool_call|>`)."""
    return _tagged_json(
        text, "<|tool_call|>", ("<|/tool_call|>", "<|end_tool_call|>", "<|end_of_text|>"), "tool_call_tag"
    )


def find_jamba(text: str, names: Names) -> Detection | None:
    """Jamba `<tool_calls>[{...}]</tool_calls>`."""
    return _tagged_json(text, "<tool_calls>", ("</tool_calls>",), "jamba")


def find_lmstudio(text: str, names: Names) -> Detection | None:
    """LM Studio's own wrapping: `[TOOL_REQUEST]{"name", "arguments"}[END_TOOL_REQUEST]`."""
    return _tagged_json(text, "[TOOL_REQUEST]", ("[END_TOOL_REQUEST]",), "lmstudio_request")


_XML_FUNCTION = re.compile(r"\s*<function=([^>\s]{1,256})>")
_XML_PARAM = re.compile(r"<parameter=([^>\s]{1,256})>")
_GLM_ARG = re.compile(r"<arg_key>([^<]{0,256})</arg_key>\s*<arg_value>")


def _xml_value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _xml_params(body: str, name: str, closed: bool, tag_re: re.Pattern[str], close: str) -> DetectedCall:
    args: dict[str, Any] = {}
    pos = 0
    while len(args) < MAX_BLOCKS:
        m = tag_re.search(body, pos)
        if m is None:
            break
        end = body.find(close, m.end())
        if end < 0:
            return DetectedCall(name, None, body.strip(), TRUNCATED if not closed else f"unclosed {close}")
        args[m.group(1).strip()] = _xml_value(body[m.end() : end])
        pos = end + len(close)
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False), None)


def find_hermes(text: str, names: Names) -> Detection | None:
    """Hermes / Qwen 2.5 `<tool_call>{json}</tool_call>`; inside the same tags, Qwen3-Coder's
    `<function=name><parameter=k>v</parameter></function>` and GLM-4.5's `name<arg_key>k</arg_key>...`."""
    if "<tool_call>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    fmt = "hermes"
    for body, closed in _blocks(text, "<tool_call>", ("</tool_call>",)):
        m = _XML_FUNCTION.match(body)
        if m is not None:
            fmt = "qwen3_xml"
            call = _xml_params(body[m.end() :], m.group(1), closed, _XML_PARAM, "</parameter>")
        elif "<arg_key>" in body and body.lstrip()[:1] not in "{[":
            fmt = "glm"
            name = _clean_name(body.lstrip().split("<", 1)[0])
            if name is None:
                continue
            call = _xml_params(body, name, closed, _GLM_ARG, "</arg_value>")
        else:
            got, cut = _json_calls(body, closed)
            calls.extend(got)
            truncated = truncated or cut
            continue
        calls.append(call)
        truncated = truncated or call.parse_error == TRUNCATED
    return _found(calls, fmt, truncated)


_FUNCTIONARY_V3 = re.compile(r"(?:^|\n)>>>[ \t]*([A-Za-z0-9_.\-]{1,256})[ \t]*\n")


def find_functionary(text: str, names: Names) -> Detection | None:
    """Functionary v3.1 / Llama 3.1 custom `<function=name>{json}</function>` and v3.2 `>>>name\\n{json}`."""
    calls: list[DetectedCall] = []
    truncated = False
    if "<function=" in text:
        for body, closed in _blocks(text, "<function=", ("</function>",)):
            name, sep, args = body.partition(">")
            name = _clean_name(name) if sep else None
            if name is None:
                truncated = truncated or not closed and not sep
                continue
            if args.lstrip().startswith("<parameter="):
                call = _xml_params(args, name, closed, _XML_PARAM, "</parameter>")
            else:
                call = _args_call(name, args, closed)
            calls.append(call)
            truncated = truncated or call.parse_error == TRUNCATED
    if not calls and ">>>" in text:
        matches = list(_FUNCTIONARY_V3.finditer(text))[:MAX_BLOCKS]
        for i, m in enumerate(matches):
            if m.group(1) == "all":  # >>>all is the assistant talking, not a call
                continue
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            body = text[m.end() : end]
            start = _skip_seps(body, 0, len(body))
            try:
                value, _ = decode_at(body, start)
            except ValueError as exc:
                cut = runs_off_end(exc, body)
                truncated = truncated or cut
                calls.append(
                    DetectedCall(m.group(1), None, body.strip(), TRUNCATED if cut else f"invalid JSON: {exc}")
                )
                continue
            arguments, raw, error = decode_arguments(value)
            calls.append(DetectedCall(m.group(1), arguments, raw, error))
    return _found(calls, "functionary", truncated)


# -- loose JSON ------------------------------------------------------------------------------------------


def _wrapped_calls(obj: Any) -> list[DetectedCall] | None:
    """Calls inside a generic wrapper object: {"tool_call": ...}, {"function_call": ...},
    {"tool_calls": [...]}, LangChain's {"action", "action_input"} and {"tool", "tool_input"}."""
    if not isinstance(obj, dict):
        return None
    for key in ("tool_call", "function_call", "tool_calls", "function_calls"):
        if key in obj:
            return calls_from_value(obj[key], require_args=False)
    for name_key, args_key in (("action", "action_input"), ("tool", "tool_input"), ("tool", "arguments")):
        name = obj.get(name_key)
        if isinstance(name, str) and args_key in obj and name != "Final Answer":
            name = _clean_name(name)
            if name is None:
                return None
            value = obj[args_key]
            if isinstance(value, str) and not value.lstrip().startswith("{"):
                value = json.dumps({"input": value})  # a bare string input is the tool's one argument
            arguments, raw, error = decode_arguments(value)
            return [DetectedCall(name, arguments, raw, error)]
    return None


def _classify(value: Any) -> tuple[list[DetectedCall], str] | None:
    items = value if isinstance(value, list) else [value]
    wrapped: list[DetectedCall] = []
    for item in items:
        got = _wrapped_calls(item)
        if got is None:
            break
        wrapped.extend(got)
    else:
        if wrapped:
            return wrapped, "generic_json"
    plain = calls_from_value(value, require_args=True)
    return (plain, "llama3_json") if plain else None


def _known(calls: list[DetectedCall], names: Names) -> bool:
    return not names or all(c.name in names for c in calls)


_FENCE_OPEN = re.compile(r"```[ \t]*([A-Za-z0-9_\-]{0,32})[ \t]*\n")
_FENCE_LANGS = ("", "json", "jsonc", "json5", "tool_call", "tool_code", "tool", "function_call")


def find_fenced_json(text: str, names: Names) -> Detection | None:
    """A fenced ```json block whose object (or list) has the call shape, with a known name when names
    are given; Command R's `Action: ```json [{"tool_name", "parameters"}]``` lands here too."""
    if "```" not in text:
        return None
    calls: list[DetectedCall] = []
    pos = 0
    for _ in range(MAX_BLOCKS):
        m = _FENCE_OPEN.search(text, pos)
        if m is None:
            break
        end = text.find("```", m.end())
        body = text[m.end() : len(text) if end < 0 else end].strip()
        pos = len(text) if end < 0 else end + 3
        if m.group(1).lower() not in _FENCE_LANGS or body[:1] not in ("{", "["):
            continue
        try:
            value, stop = decode_at(body, 0)
        except ValueError as exc:
            if end < 0 and runs_off_end(exc, body):
                call = salvage(body, TRUNCATED)
                if call is not None and _known([call], names):
                    return Detection(calls + [call], "fenced_json", TRUST_TEXT, truncated=True)
            continue
        got = _classify(value)
        if got is not None and _known(got[0], names):
            calls.extend(got[0])
    return _found(calls, "fenced_json", False)


_JSON_START = re.compile(r'[\[{]\s*"')
_CALL_PREFIX = re.compile(r'\{\s*"(?:name|tool_name|tool_call|function_call|function)"\s*:')


def find_bare_json(text: str, names: Names) -> Detection | None:
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
                if call is not None and _known([call], names):
                    return Detection(
                        calls + [call], formats[0] if formats else "llama3_json", TRUST_TEXT, True
                    )
            pos = start + 1
            continue
        got = _classify(value)
        if got is not None and _known(got[0], names):
            calls.extend(got[0])
            formats.append(got[1])
            pos = stop
        else:
            pos = start + 1 if isinstance(value, list) else stop  # a list may hold calls further in
    if not calls:
        return None
    return Detection(calls, formats[0], TRUST_TEXT, False)


# -- pythonic ------------------------------------------------------------------------------------------

_JSONISH = {"true": True, "false": False, "null": None}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _JSONISH:
        return _JSONISH[node.id]
    return ast.literal_eval(node)  # literals only: never eval


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _call_from_ast(node: ast.expr, source: str) -> DetectedCall | None:
    if not isinstance(node, ast.Call):
        return None
    name = _dotted(node.func)
    if name is None:
        return None
    if name.endswith(".call"):  # Llama's builtin `brave_search.call(query=...)`
        name = name[: -len(".call")]
    raw = ast.get_source_segment(source, node) or ""
    if node.args:
        return DetectedCall(name, None, raw, "positional arguments (keyword arguments expected)")
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            return DetectedCall(name, None, raw, "**kwargs is not a literal argument")
        try:
            args[kw.arg] = _literal(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            return DetectedCall(name, None, raw, f"argument {kw.arg!r} is not a literal: {exc}")
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False, default=repr), None)


def _parse_expr(source: str) -> ast.expr | None | str:
    """The expression, or "eof" when the source stopped mid-expression, or None when it is not Python."""
    try:
        return ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        msg = str(exc.msg or "")
        if "never closed" in msg or "unexpected EOF" in msg or "unterminated" in msg or "EOF" in msg:
            return "eof"
        return None
    except (ValueError, MemoryError, RecursionError, OverflowError):
        return None


def _pythonic(source: str, single: bool = False) -> tuple[list[DetectedCall], bool]:
    if len(source) > MAX_PY_CHARS:
        return [], False
    expr = _parse_expr(source)
    if expr == "eof":
        m = _PY_START.match(source) or _PY_SINGLE.match(source)
        return ([DetectedCall(m.group(1), None, source, TRUNCATED)] if m else []), m is not None
    if expr is None or isinstance(expr, str):
        return [], False
    nodes = expr.elts if isinstance(expr, ast.List) and not single else [expr]
    calls = [_call_from_ast(n, source) for n in nodes]
    if not calls or any(c is None for c in calls):
        return [], False
    return calls, False  # type: ignore[return-value]


_PY_START = re.compile(r"\[\s*([A-Za-z_][A-Za-z0-9_.]{0,255})\s*\(")
_PY_SINGLE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]{0,255})\s*\(")


def find_pythonic(text: str, names: Names) -> Detection | None:
    """Pythonic call lists `[get_weather(city="Paris"), ...]` (Llama 3.2/4, ToolACE): the whole
    message, or, with known names, a list inside prose. Parsed with `ast`; arguments must be literals."""
    stripped = text.strip()
    if _PY_START.match(stripped):
        calls, cut = _pythonic(stripped)
        if (calls or cut) and _known(calls, names):
            return _found(calls, "pythonic", cut)
    elif names and _PY_SINGLE.fullmatch(stripped[: stripped.find("(") + 1]) and stripped.endswith(")"):
        calls, _ = _pythonic(stripped, single=True)  # a bare `get_weather(city="Paris")` message
        if calls and _known(calls, names):
            return _found(calls, "pythonic", False)
    if not names or "[" not in text:
        return None
    tries = 0
    for m in _PY_START.finditer(text):
        if m.group(1) not in names or m.start() == 0:
            continue
        end = m.end()
        for _ in range(4):  # the list ends at one of the next few `]`
            end = text.find("]", end)
            if end < 0 or tries >= MAX_PY_TRIES:
                break
            tries += 1
            calls, _ = _pythonic(text[m.start() : end + 1])
            if calls and _known(calls, names):
                return _found(calls, "pythonic", False)
            end += 1
        if tries >= MAX_PY_TRIES:
            break
    return None


Finder = Callable[[str, Names], "Detection | None"]

# Most specific wrapping first: special tokens cannot occur by accident, loose JSON and Python can.
FINDERS: tuple[Finder, ...] = (
    find_deepseek_or_kimi,
    find_harmony,
    find_mistral,
    find_python_tag,
    find_tool_call_tag,
    find_jamba,
    find_lmstudio,
    find_hermes,
    find_functionary,
    find_fenced_json,
    find_bare_json,
    find_pythonic,
)
