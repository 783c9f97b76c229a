"""Find the tool calls in one model answer, whatever way the model chose to write them.

A soak run has to say whether a model called a tool, not only whether the server returned OpenAI
`tool_calls`: many local models write the call as text in one of a dozen wrappings, and some only
talk about the tool. `detect` answers in order of trust: native `tool_calls` (3), then a call
written as text in a recognised format (2), then a known tool named in prose (1, intent only, no
calls), then nothing (0). `<think>` blocks are reasoning, not answers, and are removed first.
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
    DetectedCall,
    Detection,
    decode_arguments,
)
from soaktui.toolcalls.formats import FINDERS

MAX_TEXT = 1_000_000  # characters of content examined; beyond this a call would not be found

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
    "generic_json",
    "fenced_json",
    "prose_mention",
    "none",
)

_THINK_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))


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
    pattern = _mention_re(names) if names else None
    if pattern is not None and pattern.search(text):
        return Detection([], "prose_mention", TRUST_PROSE, False)
    return Detection([], "none", TRUST_NONE, False)
