"""What every tool-call finder shares: tagged blocks, JSON and XML-ish bodies, pythonic call lists.

The finders (formats.py for the long-standing wrappings, families.py for the newer families) differ
in their markers; reading what is between the markers is the same few jobs, done here once. Every
helper is bounded (MAX_BLOCKS blocks, MAX_PY_CHARS of Python) and linear in the text, because the
detector runs on arbitrary model output.
"""

from __future__ import annotations

import ast
import json
import re
from itertools import islice
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
MAX_PY_CHARS = 20_000  # a pythonic call list longer than this is not tried

Names = frozenset


def found(calls: list[DetectedCall], fmt: str, truncated: bool) -> Detection | None:
    """A finder's answer: the calls in format `fmt`, or None when it found nothing at all."""
    if not calls and not truncated:
        return None
    return Detection(calls=calls, format=fmt, trust=TRUST_TEXT, truncated=truncated)


def skip_seps(text: str, pos: int, end: int) -> int:
    """The position after whitespace and call separators (`,` `;`) from `pos`."""
    while pos < end and text[pos] in " \t\r\n,;":
        pos += 1
    return pos


def json_calls(body: str, closed: bool, require_args: bool = False) -> tuple[list[DetectedCall], bool]:
    """Calls from the JSON value(s) that make up a block's body; (calls, truncated). `closed`: the
    block had its closing marker, so a decoding failure is malformed JSON, not truncation."""
    calls: list[DetectedCall] = []
    pos = skip_seps(body, 0, len(body))
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
        pos = skip_seps(body, pos, len(body))
    return calls, False


def blocks(text: str, open_tag: str, close_tags: tuple[str, ...]) -> list[tuple[str, bool]]:
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


def tagged_json(text: str, open_tag: str, close_tags: tuple[str, ...], fmt: str) -> Detection | None:
    if open_tag not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in blocks(text, open_tag, close_tags):
        got, cut = json_calls(body, closed)
        calls.extend(got)
        truncated = truncated or cut
    return found(calls, fmt, truncated)


def strip_fence(s: str) -> str:
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


def args_call(name: str, args_text: str, closed: bool) -> DetectedCall:
    """A call whose name was read from markers and whose arguments are JSON text."""
    arguments, raw, error = decode_arguments(args_text.strip())
    if error == TRUNCATED and closed:
        error = "invalid JSON: unterminated"
    return DetectedCall(name, arguments, raw, error)


def clean_name(name: str) -> str | None:
    name = name.strip()
    return name if 0 < len(name) <= MAX_NAME and not any(c.isspace() for c in name) else None


XML_FUNCTION = re.compile(r"\s*<function=([^>\s]{1,256})>")
XML_PARAM = re.compile(r"<parameter=([^>\s]{1,256})>")
GLM_ARG = re.compile(r"<arg_key>([^<]{0,256})</arg_key>\s*<arg_value>")


def xml_value(raw: str) -> Any:
    raw = raw.strip()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def xml_params(body: str, name: str, closed: bool, tag_re: re.Pattern[str], close: str) -> DetectedCall:
    """A call's `<parameter=k>v</parameter>`-style arguments (`tag_re` opens one, `close` ends it).
    A missing closing tag ends the value at the next parameter, or at the end of a closed body, as
    vLLM's Qwen3-Coder parser accepts; only a body that stops mid-value is truncated."""
    args: dict[str, Any] = {}
    pos = 0
    while len(args) < MAX_BLOCKS:
        m = tag_re.search(body, pos)
        if m is None:
            break
        end = body.find(close, m.end())
        nxt = tag_re.search(body, m.end())
        if end < 0 or (nxt is not None and nxt.start() < end):
            if nxt is None and not closed:
                return DetectedCall(name, None, body.strip(), TRUNCATED)
            stop = nxt.start() if nxt is not None else len(body)
            args[m.group(1).strip()] = xml_value(body[m.end() : stop])
            pos = stop
            continue
        args[m.group(1).strip()] = xml_value(body[m.end() : end])
        pos = end + len(close)
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False), None)


XML_FUNCTION_ANY = re.compile(r"<function=([^>\s]{1,256})>")


def xml_functions(body: str, closed: bool) -> tuple[list[DetectedCall], bool] | None:
    """Qwen3-Coder-style `<function=name>…</function>` calls making up a block's body, several per
    block (as vLLM's parser reads them); (calls, truncated), or None when the body does not open
    with `<function=` (prose about the tags, not a call)."""
    funcs = list(islice(XML_FUNCTION_ANY.finditer(body), MAX_BLOCKS))
    if not funcs or body[: funcs[0].start()].strip():
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for i, m in enumerate(funcs):
        stop = funcs[i + 1].start() if i + 1 < len(funcs) else len(body)
        seg = body[m.end() : stop]
        end = seg.find("</function>")
        seg_closed = closed or stop < len(body) or end >= 0
        call = xml_params(seg if end < 0 else seg[:end], m.group(1), seg_closed, XML_PARAM, "</parameter>")
        calls.append(call)
        truncated = truncated or not seg_closed or call.parse_error == TRUNCATED
    return calls, truncated


def wrapped_calls(obj: Any) -> list[DetectedCall] | None:
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
            name = clean_name(name)
            if name is None:
                return None
            value = obj[args_key]
            if isinstance(value, str) and not value.lstrip().startswith("{"):
                value = json.dumps({"input": value})  # a bare string input is the tool's one argument
            arguments, raw, error = decode_arguments(value)
            return [DetectedCall(name, arguments, raw, error)]
    return None


def classify(value: Any) -> tuple[list[DetectedCall], str] | None:
    items = value if isinstance(value, list) else [value]
    wrapped: list[DetectedCall] = []
    for item in items:
        got = wrapped_calls(item)
        if got is None:
            break
        wrapped.extend(got)
    else:
        if wrapped:
            return wrapped, "generic_json"
    plain = calls_from_value(value, require_args=True)
    return (plain, "llama3_json") if plain else None


def known(calls: list[DetectedCall], names: Names) -> bool:
    return not names or all(c.name in names for c in calls)


JSONISH = {"true": True, "false": False, "null": None}


def literal(node: ast.expr) -> Any:
    """A Python literal, with JSON's true / false / null accepted at any depth (LFM2, OLMo 3 and
    Llama 4 models write them inside dicts and lists too)."""
    return ast.literal_eval(_jsonish(node))  # literals only: never eval


def _jsonish(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Name) and node.id in JSONISH:
        return ast.Constant(JSONISH[node.id])
    if isinstance(node, ast.Dict):
        keys = [None if k is None else _jsonish(k) for k in node.keys]
        return ast.Dict(keys=keys, values=[_jsonish(v) for v in node.values])
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return type(node)(elts=[_jsonish(e) for e in node.elts], ctx=ast.Load())
    return node


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def call_from_ast(node: ast.expr, source: str) -> DetectedCall | None:
    if not isinstance(node, ast.Call):
        return None
    name = dotted(node.func)
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
            args[kw.arg] = literal(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            return DetectedCall(name, None, raw, f"argument {kw.arg!r} is not a literal: {exc}")
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False, default=repr), None)


def parse_expr(source: str) -> ast.expr | None | str:
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


def pythonic(source: str, single: bool = False) -> tuple[list[DetectedCall], bool]:
    if len(source) > MAX_PY_CHARS:
        return [], False
    expr = parse_expr(source)
    if expr == "eof":
        m = PY_START.match(source) or PY_SINGLE.match(source)
        return ([DetectedCall(m.group(1), None, source, TRUNCATED)] if m else []), m is not None
    if expr is None or isinstance(expr, str):
        return [], False
    nodes = expr.elts if isinstance(expr, ast.List) and not single else [expr]
    calls = [call_from_ast(n, source) for n in nodes]
    if not calls or any(c is None for c in calls):
        return [], False
    return calls, False  # type: ignore[return-value]


PY_START = re.compile(r"\[\s*([A-Za-z_][A-Za-z0-9_.]{0,255})\s*\(")  # `[name(` opening a pythonic call list
PY_SINGLE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]{0,255})\s*\(")  # `name(` opening one call
