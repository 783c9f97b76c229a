"""Find the tool calls in one model answer, whatever way the model chose to write them.

A soak run has to say whether a model called a tool, not only whether the server returned OpenAI
`tool_calls`: many local models write the call as text in one of a dozen wrappings, and some only
talk about the tool. `detect` answers in order of trust: native `tool_calls` (3), then a call
written as text in a recognised format (2), then call-shaped text that no finder can read (1:
`unparsed`, neither a call nor a refusal), then a known tool named in prose (1, intent only, no
calls), then nothing (0). `<think>` blocks are reasoning, not answers, and are removed first.

`unparsed` exists so that a model calling tools in a syntax soaktui does not know is never scored
as refusing them: it is the markers of a known family's call syntax whose body did not parse, or
an offered tool's name directly followed by argument-like structure (`name(key=`, `name({"`,
`name{"key":`, `name[ARGS]`, `"name": "tool", "arguments"`). A tool merely named in a sentence
stays `prose_mention`, and so does a call-shaped mention inside inline code (`like this`), which is
how answers explain a syntax rather than use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from soaktui.toolcalls.calls import (
    TRUNCATED,
    TRUST_NATIVE,
    TRUST_NONE,
    TRUST_PROSE,
    TRUST_UNPARSED,
    DetectedCall,
    Detection,
    decode_arguments,
)
from soaktui.toolcalls.formats import FINDERS

MAX_TEXT = 1_000_000  # characters of content examined; beyond this a call would not be found
EXCERPT_CHARS = 120  # of call-shaped text no finder read, kept for the report and the feed

FORMATS = (
    "native",
    "hermes",
    "qwen3_xml",
    "glm",
    "mistral",
    "mistral_args",
    "llama3_json",
    "python_tag",
    "pythonic",
    "functionary",
    "tool_call_tag",
    "jamba",
    "deepseek",
    "kimi_k2",
    "harmony",
    "lmstudio_request",
    "gemma4",
    "functiongemma",
    "minimax_xml",
    "seed_oss",
    "olmo3",
    "cohere_action",
    "command_r_action",
    "toolcall_tag",
    "lfm2",
    "apertus",
    "functools",
    "generic_json",
    "fenced_json",
    "unparsed",
    "prose_mention",
    "none",
)

# The opening markers of the call syntaxes of local model families (the finders' sources are cited
# in formats.py; docs/toolcalls.md lists them): seen with no call parsed, the text is `unparsed`.
# Most open with `<`, which the regex engine finds fast (a literal first character); the few others
# are tested with `in` first. Either way the scan stays linear and cheap on long prose.
_ANGLE_MARKERS = re.compile(
    r"<(?:\|?tool_calls?\b|\|?tool_call\|?>|function[=\s_]|invoke\b|\|python_tag\||TOOLCALL>"
    r"|\|START_ACTION\||｜tool|\|tool_calls?_section|minimax:tool_call>|function_calls>|\|tools_prefix\|"
    r"|start_function_call>|seed:tool_call>|\|action_start\||\|tool_call_start\||longcat_tool_call>"
    r"|\|function_call\||\|tool_call>|\|open\|>tools|steptml:invoke)"
)
_OTHER_MARKERS = (
    ("[TOOL_CALLS]", re.compile(r"\[TOOL_CALLS\]")),
    ("functools", re.compile(r"\bfunctools\s*\[")),
    ("to=functions.", re.compile(r"\bto=functions\.")),
    ("DSML｜", re.compile(r"DSML｜")),
    ("call:", re.compile(r"\bcall:[A-Za-z_][\w.\-]*\{")),
    ("]<]minimax[>[", re.compile(r"\]<\]minimax\[>\[")),
)
MAX_SHAPE_CHECKS = 4096  # name occurrences checked for argument-like structure, per answer


def _marker(text: str) -> int | None:
    """Where the first call marker of a known family is, if any."""
    hits = []
    m = _ANGLE_MARKERS.search(text) if "<" in text else None
    if m is not None:
        hits.append(m.start())
    for literal, pattern in _OTHER_MARKERS:
        if literal in text and (m := pattern.search(text)) is not None:
            hits.append(m.start())
    return min(hits) if hits else None


# Reasoning blocks: DeepSeek-R1 / Qwen3 / most, Claude-style, Seed-OSS, Magistral, Command A reasoning.
_THINK_TAGS = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<seed:think>", "</seed:think>"),
    ("[THINK]", "[/THINK]"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
)


def strip_think(text: str) -> str:
    """The text without reasoning blocks. An unclosed opening tag hides the rest of the text (the
    model never finished thinking); text before a lone closing tag is reasoning whose opening tag
    was part of the prompt template (Qwen3, DeepSeek-R1)."""
    for open_tag, close_tag in _THINK_TAGS:
        if close_tag not in text and open_tag not in text:
            continue
        first_close = text.find(close_tag)
        first_open = text.find(open_tag)
        pos = (
            first_close + len(close_tag)
            if first_close >= 0 and (first_open < 0 or first_close < first_open)
            else 0
        )
        parts: list[str] = []
        while True:
            i = text.find(open_tag, pos)
            if i < 0:
                parts.append(text[pos:])
                break
            parts.append(text[pos:i])
            j = text.find(close_tag, i + len(open_tag))
            if j < 0:
                break
            pos = j + len(close_tag)
        text = "".join(parts)
    return text


def _native_call(item: Any) -> DetectedCall | None:
    """One OpenAI-shaped entry ({"id", "type", "function": {"name", "arguments": str}}); Ollama sends
    the arguments as an object, which is accepted too."""
    if not isinstance(item, dict):
        return None
    fn = item.get("function") if isinstance(item.get("function"), dict) else item
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        return DetectedCall(
            "", None, str(fn.get("arguments", "")), "native tool call without a function name"
        )
    arguments, raw, error = decode_arguments(fn.get("arguments"))
    return DetectedCall(name.strip(), arguments, raw, error)


# After an offered tool's name: argument-like structure (name(key=  name("  name({  name{"key":
# name{key:  name[ARGS], the last a Mistral v11 call without its [TOOL_CALLS] token).
_ARGS_AFTER = re.compile(
    r"\s*\(\s*(?:[A-Za-z_]\w*\s*=|[\"'{\[])|\s*\{\s*[\"']?[A-Za-z_]\w*[\"']?\s*:|\s*\[ARGS\]"
)
# {"name": "tool", "arguments": … that did not decode; not a tool's definition (a JSON Schema).
_NAME_KEY = re.compile(
    r"[\"']name[\"']\s*:\s*[\"']([^\"'\n]{1,256})[\"']\s*,\s*[\"'](?:arguments|parameters|args)[\"']"
    r"(?!\s*:\s*\{\s*[\"']type[\"']\s*:\s*[\"']object)"
)


@lru_cache(maxsize=64)
def _name_then_bracket(names: frozenset[str]) -> re.Pattern[str] | None:
    """An offered tool's name followed by an opening bracket: the candidates _ARGS_AFTER checks."""
    words = sorted((n for n in names if n.strip()), key=len, reverse=True)
    if not words:
        return None
    return re.compile("(?:" + "|".join(re.escape(w) for w in words) + r")(?=\s*[({\[])")


def _call_shape(text: str, names: frozenset[str]) -> int | None:
    """Where an offered tool's name is followed by argument-like structure, or is the value of a
    name key next to arguments, if anywhere (at most MAX_SHAPE_CHECKS candidates are checked)."""
    best: int | None = None
    pattern = _name_then_bracket(names) if "(" in text or "{" in text or "[" in text else None
    if pattern is not None:
        for checks, m in enumerate(pattern.finditer(text)):
            pos = m.start()
            before = text[pos - 1] if pos else " "
            if not (before.isalnum() or before in "_.") and _ARGS_AFTER.match(text, m.end()):
                best = pos
                break
            if checks >= MAX_SHAPE_CHECKS:
                break
    if '"name"' in text or "'name'" in text:
        for m in _NAME_KEY.finditer(text):
            if m.group(1) in names:
                best = m.start() if best is None else min(best, m.start())
                break
    return best


def _excerpt(text: str, start: int) -> str:
    chunk = " ".join(text[max(0, start - 20) : start + EXCERPT_CHARS].split())
    return chunk[:EXCERPT_CHARS] + ("…" if len(chunk) > EXCERPT_CHARS else "")


_INLINE_CODE = re.compile(r"(?<!`)`[^`\n]{1,200}`(?!`)")
# A fenced sample in a programming language shows code that uses a function; it is not a tool call.
_CODE_FENCE = re.compile(
    r"```[ \t]*(?:python|py|js|javascript|ts|typescript|bash|sh|shell|console|go|rust|java|c|cpp|ruby|php)"
    r"[ \t]*\n.*?(?:```|\Z)",
    re.DOTALL | re.IGNORECASE,
)


def find_unparsed(text: str, names: frozenset[str]) -> Detection | None:
    """Call-shaped text that no finder read (see the module docstring), with an excerpt."""
    if "`" in text:  # inline code explains a syntax: blanked, same length (the excerpt's positions hold)
        searched = _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), text)
    else:
        searched = text
    hit = _marker(searched)
    if hit is None and names:
        if "```" in searched:
            searched = _CODE_FENCE.sub(lambda m: " " * len(m.group(0)), searched)
        hit = _call_shape(searched, names)
    if hit is None:
        return None
    return Detection([], "unparsed", TRUST_UNPARSED, False, _excerpt(text, hit))


@lru_cache(maxsize=64)
def _mention_re(names: frozenset[str]) -> re.Pattern[str] | None:
    words = sorted((n for n in names if n.strip()), key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w])")


def detect(
    content: str | None,
    native_tool_calls: list[dict] | None = None,
    tool_names: Iterable[str] = (),
) -> Detection:
    """The tool calls in one answer: `content` is the message text, `native_tool_calls` the server's
    `tool_calls` (if any), `tool_names` the tools offered (enables the prose check, and loose JSON
    or Python must then name one of them). Never raises on any input."""
    if native_tool_calls:
        calls = [c for c in (_native_call(item) for item in native_tool_calls[:256]) if c is not None]
        if calls:
            truncated = any(c.parse_error == TRUNCATED for c in calls)
            return Detection(calls, "native", TRUST_NATIVE, truncated)
    if not isinstance(content, str) or not content:
        return Detection()
    names = frozenset(n for n in tool_names if isinstance(n, str))
    text = strip_think(content[:MAX_TEXT])
    for finder in FINDERS:
        found = finder(text, names)
        if found is not None:
            return found
    unparsed = find_unparsed(text, names)
    if unparsed is not None:
        return unparsed
    pattern = _mention_re(names) if names else None
    if pattern is not None and pattern.search(text):
        return Detection([], "prose_mention", TRUST_PROSE, False)
    return Detection([], "none", TRUST_NONE, False)
