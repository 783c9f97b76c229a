"""Finders for the newer local model families' tool-call wrappings.

Gemma 4 and FunctionGemma (a bare-key literal, strings between `<|"|>` / `<escape>`), MiniMax M2
(`<invoke name=…>` with `<parameter name=…>`), Seed-OSS (`<seed:tool_call>` around Qwen3-Coder's
XML), OLMo 3 (`<function_calls>`, one pythonic call per line), Cohere Command R7B / A
(`<|START_ACTION|>`), Nemotron (`<TOOLCALL>`), LFM2 (`<|tool_call_start|>`), Apertus
(`<|tools_prefix|>`) and FireFunction v2 / Phi-4-mini (`functools[…]`). Each finder's docstring
cites the parser or chat template its syntax was taken from; formats.FINDERS decides their order.
"""

from __future__ import annotations

import json
import re
from itertools import islice
from typing import Any

from soaktui.toolcalls import textparse as tp
from soaktui.toolcalls.calls import (
    TRUNCATED,
    DetectedCall,
    Detection,
    call_from_obj,
    calls_from_value,
    decode_arguments,
    decode_at,
    runs_off_end,
    salvage,
)

MAX_LITERAL_DEPTH = 64  # nesting of {…}/[…] read in a Gemma-style literal


class _LiteralEnd(ValueError):
    """A Gemma-style literal ran off the end of its text (truncation, unless the block was closed)."""


_LIT_WORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "None": None,
    "True": True,
    "False": False,
}
_LIT_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LIT_SCALAR = re.compile(r"[^,}\]]*")
_LIT_KEY = re.compile(r"\s*([^:{}\[\],]{1,256}?)\s*:")


def _lit_ws(s: str, pos: int) -> int:
    while pos < len(s) and s[pos] in " \t\r\n":
        pos += 1
    if pos >= len(s):
        raise _LiteralEnd("unterminated")
    return pos


def _lit_string(s: str, pos: int, delim: str) -> tuple[str, int]:
    end = s.find(delim, pos + len(delim))
    if end < 0:
        raise _LiteralEnd("unterminated string")
    return s[pos + len(delim) : end], end + len(delim)


def _lit_value(s: str, pos: int, delim: str, depth: int) -> tuple[Any, int]:
    """One value of the Gemma 4 / FunctionGemma literal: `delim`-wrapped string (no escapes inside),
    `{bare_key:value,...}`, `[value,...]`, or a bare number / true / false / null (anything else
    bare is kept as a string, as when the string delimiter token was stripped from the text)."""
    pos = _lit_ws(s, pos)
    if s.startswith(delim, pos):
        return _lit_string(s, pos, delim)
    if s[pos] in "{[":
        if depth >= MAX_LITERAL_DEPTH:
            raise ValueError("nested too deeply")
        closer = "}" if s[pos] == "{" else "]"
        out: Any = {} if closer == "}" else []
        pos += 1
        while True:
            pos = _lit_ws(s, pos)
            if s[pos] == closer:
                return out, pos + 1
            if closer == "}":
                if s.startswith(delim, pos):
                    key, pos = _lit_string(s, pos, delim)
                    pos = _lit_ws(s, pos)
                    if s[pos] != ":":
                        raise ValueError(f"expected ':' at {pos}")
                    pos += 1
                else:
                    m = _LIT_KEY.match(s, pos)
                    if m is None:
                        if ":" not in s[pos:] and "}" not in s[pos:]:
                            raise _LiteralEnd("unterminated key")
                        raise ValueError(f"expected a key at {pos}")
                    key, pos = m.group(1).strip(), m.end()
                value, pos = _lit_value(s, pos, delim, depth + 1)
                out[key] = value
            else:
                value, pos = _lit_value(s, pos, delim, depth + 1)
                out.append(value)
            pos = _lit_ws(s, pos)
            if s[pos] == ",":
                pos += 1
            elif s[pos] != closer:
                raise ValueError(f"expected ',' or {closer!r} at {pos}")
    m = _LIT_SCALAR.match(s, pos)
    end = m.end() if m else pos
    if end >= len(s):
        raise _LiteralEnd("unterminated value")
    word = s[pos:end].strip()
    if not word:
        raise ValueError(f"missing value at {pos}")
    if word in _LIT_WORDS:
        return _LIT_WORDS[word], end
    if _LIT_NUMBER.fullmatch(word):
        return json.loads(word), end
    return word, end


def _literal_call(name: str, body: str, start: int, delim: str, closed: bool) -> DetectedCall:
    """The call `name` whose literal arguments object starts at body[start] (a `{`)."""
    raw = body[start:].strip()
    try:
        args, _ = _lit_value(body, start, delim, 0)
    except _LiteralEnd:
        return DetectedCall(name, None, raw, "invalid arguments: unterminated" if closed else TRUNCATED)
    except (ValueError, RecursionError) as exc:
        return DetectedCall(name, None, raw, f"invalid arguments: {exc}")
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False), None)


# what an unclosed block holds while the model is still writing the name
_NAME_SO_FAR = re.compile(r"[:A-Za-z0-9_.\-]{0,300}")


def _literal_calls(
    text: str, open_tag: str, close_tags: tuple[str, ...], head: re.Pattern[str], delim: str, fmt: str
) -> Detection | None:
    if open_tag not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, open_tag, close_tags):
        m = head.match(body)
        if m is None:
            truncated = truncated or (not closed and _NAME_SO_FAR.fullmatch(body.strip()) is not None)
            continue
        call = _literal_call(m.group(1), body, m.end() - 1, delim, closed)
        calls.append(call)
        truncated = truncated or call.parse_error == TRUNCATED
    return tp.found(calls, fmt, truncated)


_GEMMA4_HEAD = re.compile(r"\s*:?(?:call:)?([A-Za-z0-9_.\-]{1,256})\s*\{")


def find_gemma4(text: str, names: tp.Names) -> Detection | None:
    """Gemma 4 `<|tool_call>call:name{key:<|"|>text<|"|>,n:42,flag:true,nested:{k:...},items:[...]}<tool_call|>`:
    bare keys, strings between `<|"|>` tokens, everything else bare (vLLM 0.34 `vllm/parser/gemma4.py`,
    `vllm/tool_parsers/gemma4_utils.py`; llama.cpp b11434 `common/parsers/gemma4.cpp`). Also the bare
    opener `<|tool_call>:name{` and the `<turn|>` closer some checkpoints write."""
    return _literal_calls(
        text, "<|tool_call>", ("<tool_call|>", "<turn|>", "<|tool_response>"), _GEMMA4_HEAD, '<|"|>', "gemma4"
    )


_FUNCTIONGEMMA_HEAD = re.compile(r"\s*call:([A-Za-z0-9_.\-]{1,256})\s*\{")


def find_functiongemma(text: str, names: tp.Names) -> Detection | None:
    """FunctionGemma `<start_function_call>call:name{key:<escape>text<escape>,n:1}<end_function_call>`
    (vLLM 0.34 `vllm/tool_parsers/functiongemma_tool_parser.py`): Gemma 4's literal, `<escape>` as quote."""
    return _literal_calls(
        text,
        "<start_function_call>",
        ("<end_function_call>",),
        _FUNCTIONGEMMA_HEAD,
        "<escape>",
        "functiongemma",
    )


_MM_NAME = r"""\s+name\s*=\s*(?:"([^"<>]{1,256})"|'([^'<>]{1,256})'|([^\s"'<>]{1,256}))\s*>"""
_MM_INVOKE = re.compile(r"<invoke" + _MM_NAME)
_MM_PARAM = re.compile(r"<parameter" + _MM_NAME)


def _mm_name(m: re.Match[str]) -> str:
    return next(g for g in m.groups() if g is not None).strip()


def _minimax_value(raw: str) -> Any:
    """A string is written raw, anything else as JSON (template `MiniMax-M2.jinja`: `v | tojson if v
    is not string else v`): JSON objects, arrays, numbers, booleans and null decode, the rest stays text."""
    s = raw.strip()
    if s[:1] in ("{", "[", "-", "t", "f", "n") or s[:1].isdigit():
        try:
            value = json.loads(s)
        except (ValueError, RecursionError):
            return s
        if not isinstance(value, str):
            return value
    return s


def _minimax_call(name: str, inner: str, done: bool) -> DetectedCall | None:
    """The call of one `<invoke>` body; None when the body holds something other than parameters
    (a misspelt tag is an unreadable call, not an argument-less one)."""
    args: dict[str, Any] = {}
    params = list(islice(_MM_PARAM.finditer(inner), tp.MAX_BLOCKS))
    gap_start = 0
    for i, p in enumerate(params):
        if inner[gap_start : p.start()].strip():
            return None
        stop = params[i + 1].start() if i + 1 < len(params) else len(inner)
        end = inner.find("</parameter>", p.end(), stop)  # vLLM 0.34 also ends a value at the next <parameter
        if end < 0 and stop == len(inner) and not done:
            return DetectedCall(name, None, inner.strip(), TRUNCATED)
        args[_mm_name(p)] = _minimax_value(inner[p.end() : end if end >= 0 else stop])
        gap_start = stop if end < 0 else end + len("</parameter>")
    tail = inner[gap_start:].strip()
    if tail:
        if done or not tail.startswith("<p") or ">" in tail:
            return None
        return DetectedCall(name, None, inner.strip(), TRUNCATED)  # `<parameter name="k` being written
    return DetectedCall(name, args, json.dumps(args, ensure_ascii=False), None)


def find_minimax_xml(text: str, names: tp.Names) -> Detection | None:
    """MiniMax-M2 / M2.1 / M2.5 `<minimax:tool_call><invoke name="n"><parameter name="k">v</parameter>
    </invoke>...</minimax:tool_call>`, one call per `<invoke>` (vLLM 0.18 `minimax_m2_tool_parser.py`,
    0.34 `vllm/parser/minimax_m2.py`: names double-, single- or unquoted; llama.cpp b7376
    `common_chat_parse_minimax_m2`)."""
    if "<minimax:tool_call>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<minimax:tool_call>", ("</minimax:tool_call>",)):
        invokes = list(islice(_MM_INVOKE.finditer(body), tp.MAX_BLOCKS))
        if not invokes:
            truncated = truncated or (not closed and (not body.strip() or body.lstrip().startswith("<inv")))
        for i, m in enumerate(invokes):
            stop = invokes[i + 1].start() if i + 1 < len(invokes) else len(body)
            end = body.find("</invoke>", m.end(), stop)
            done = end >= 0 or stop < len(body) or closed
            call = _minimax_call(_mm_name(m), body[m.end() : end if end >= 0 else stop], done)
            if call is not None:
                calls.append(call)
                truncated = truncated or not done
    return tp.found(calls, "minimax_xml", truncated)




def find_seed_oss(text: str, names: tp.Names) -> Detection | None:
    """ByteDance Seed-OSS `<seed:tool_call><function=name><parameter=k>v</parameter></function></seed:tool_call>`,
    Qwen3-Coder's XML in Seed's wrapper (llama.cpp b7376 `common_chat_parse_seed_oss`; vLLM 0.34
    `vllm/parser/seed_oss.py`). Several `<function=` in one block are several calls."""
    if "<seed:tool_call>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<seed:tool_call>", ("</seed:tool_call>",)):
        got_xml = tp.xml_functions(body, closed)
        if got_xml is None:
            if "<function=" in body:
                continue  # the block does not open with `<function=`: prose about the tags, not a call
            if body.lstrip()[:1] in ("{", "["):
                got, cut = tp.json_calls(body, closed)
                calls.extend(got)
                truncated = truncated or cut
            else:
                rest = body.strip()  # nothing yet, or `<function=na` being written
                truncated = truncated or (
                    not closed and (not rest or rest.startswith("<f") and " " not in rest)
                )
            continue
        calls.extend(got_xml[0])
        truncated = truncated or got_xml[1]
    return tp.found(calls, "seed_oss", truncated)


def _olmo3_calls(body: str, closed: bool) -> tuple[list[DetectedCall], bool]:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return [], not closed
    joined = ", ".join(lines)
    calls, cut = tp.pythonic(f"[{joined}]")
    if not calls and not cut and len(lines) > 1:
        calls, cut = tp.pythonic(f"[{body.strip()}]")  # one call written over several lines
    if closed:  # the closing tag came: an unterminated call is malformed, not cut off
        return [
            DetectedCall(c.name, None, c.raw_arguments, "invalid call: unterminated") for c in calls
        ] if cut else calls, False
    if calls and not cut:
        return calls, False
    return tp.pythonic(f"[{joined}")  # cut off: the name of the call being written, if it has one


def find_olmo3(text: str, names: tp.Names) -> Detection | None:
    """OLMo 3 `<function_calls>name(k='v')\\nother(x=1)</function_calls>`: pythonic calls, one per line,
    no list brackets, JSON literals allowed (vLLM 0.34 `vllm/tool_parsers/olmo3_tool_parser.py`)."""
    if "<function_calls>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<function_calls>", ("</function_calls>",)):
        got, cut = _olmo3_calls(body, closed)
        calls.extend(got)
        truncated = truncated or cut
    return tp.found(calls, "olmo3", truncated)


def find_cohere_action(text: str, names: tp.Names) -> Detection | None:
    """Command R7B / Command A / Cohere2-MoE `<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "n",
    "parameters": {...}}]<|END_ACTION|>` (llama.cpp b7376 `common_chat_parse_command_r7b`; vLLM 0.34
    `vllm/parser/cohere_command.py`)."""
    return tp.tagged_json(text, "<|START_ACTION|>", ("<|END_ACTION|>",), "cohere_action")


def find_toolcall_tag(text: str, names: tp.Names) -> Detection | None:
    """NVIDIA Nemotron Nano v2 / Llama-Nemotron `<TOOLCALL>[{"name", "arguments"}]</TOOLCALL>`, arguments
    possibly a JSON string (llama.cpp b7376 `common_chat_parse_nemotron_v2`; vLLM
    `vllm/tool_parsers/nemotron_json_tool_parser.py`)."""
    return tp.tagged_json(text, "<TOOLCALL>", ("</TOOLCALL>",), "toolcall_tag")


_LFM2_JSON = re.compile(r"\[?\s*\{")


def find_lfm2(text: str, names: tp.Names) -> Detection | None:
    """Liquid LFM2 / LFM2.5 `<|tool_call_start|>[name(k='v'), other(x=1)]<|tool_call_end|>` (pythonic,
    JSON literals allowed), or the older JSON list in the same tokens (vLLM test
    `tests/tool_parsers/test_lfm2_tool_parser.py`; llama.cpp b11434 `common/parsers/lfm2.cpp`, b7376
    `common_chat_parse_lfm2`)."""
    if "<|tool_call_start|>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<|tool_call_start|>", ("<|tool_call_end|>",)):
        src = body.strip()
        if not src:
            got, cut = [], not closed
        elif _LFM2_JSON.match(src):
            got, cut = tp.json_calls(body, closed)
        else:
            got, cut = tp.pythonic(src, single=not src.startswith("["))
            if cut and closed:  # the closing token came: a malformed call, not a cut-off one
                got = [DetectedCall(c.name, None, c.raw_arguments, "invalid call: unterminated") for c in got]
                cut = False
        calls.extend(got)
        truncated = truncated or cut
    return tp.found(calls, "lfm2", truncated)


_SHORT_FORM_NAME = re.compile(r'[\s\[,]*\{\s*"([^"\\\n]{1,256})"\s*:')


def _short_form_calls(value: Any) -> list[DetectedCall] | None:
    """Calls from a list of single-key objects `{name: {args}}` (also the usual `{"name", "arguments"}`)."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls: list[DetectedCall] = []
    for item in items[: tp.MAX_BLOCKS]:
        call = call_from_obj(item, require_args=True)
        if call is None and isinstance(item, dict) and len(item) == 1:
            key, args = next(iter(item.items()))
            name = tp.clean_name(key)
            if name is None:
                return None
            arguments, raw, error = decode_arguments(args)
            call = DetectedCall(name, arguments, raw, error)
        if call is None:
            return None
        calls.append(call)
    return calls


def find_apertus(text: str, names: tp.Names) -> Detection | None:
    """Apertus `<|tools_prefix|>[{"name": {args}}, ...]<|tools_suffix|>`, a JSON list of single-key
    objects (vLLM 0.34 `vllm/tool_parsers/apertus_tool_parser.py`; llama.cpp b7376
    `common_chat_parse_apertus`)."""
    if "<|tools_prefix|>" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for body, closed in tp.blocks(text, "<|tools_prefix|>", ("<|tools_suffix|>",)):
        start = tp.skip_seps(body, 0, len(body))
        if start >= len(body):
            truncated = truncated or not closed
            continue
        try:
            value, _ = decode_at(body, start)
        except ValueError as exc:
            cut = not closed and runs_off_end(exc, body)
            m = _SHORT_FORM_NAME.match(body, start)
            name = tp.clean_name(m.group(1)) if m else None
            if name is not None:
                calls.append(
                    DetectedCall(
                        name, None, body[start:].strip(), TRUNCATED if cut else f"invalid JSON: {exc}"
                    )
                )
            truncated = truncated or cut
            continue
        calls.extend(_short_form_calls(value) or [])
    return tp.found(calls, "apertus", truncated)


_FUNCTOOLS = re.compile(r"(?<![\w.])functools\[")


def find_functools(text: str, names: tp.Names) -> Detection | None:
    """FireFunction v2 (and Phi-4-mini's documented prompt) ` functools[{"name", "arguments"}, ...]`,
    with no closing marker (llama.cpp b7376 `common_chat_parse_firefunction_v2`; vLLM 0.18
    `phi4mini_tool_parser.py`)."""
    if "functools[" not in text:
        return None
    calls: list[DetectedCall] = []
    truncated = False
    for m in islice(_FUNCTOOLS.finditer(text), tp.MAX_BLOCKS):
        start = m.end() - 1
        try:
            value, _ = decode_at(text, start)
        except ValueError as exc:
            if runs_off_end(exc, text):
                call = salvage(text[start:], TRUNCATED)
                if call is not None:
                    calls.append(call)
                    truncated = True
            continue
        calls.extend(calls_from_value(value, require_args=False) or [])
    return tp.found(calls, "functools", truncated)
