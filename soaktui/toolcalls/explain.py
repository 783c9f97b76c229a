"""`soaktui detect FILE`: what the tool-call detector sees in one raw model answer, for people.

A user trying a new model (or reporting a format soaktui does not read) saves an answer and asks:
did soaktui find a call, in which format, with which arguments, and if not, why not. The answer
may be the message text itself, or a whole chat-completion response as the server sent it (OpenAI
`choices[0].message`, or Ollama's `message`), whose `tool_calls` are then read too.
"""

from __future__ import annotations

import json
from typing import Any

from soaktui.toolcalls import catalog
from soaktui.toolcalls.calls import Detection
from soaktui.toolcalls.detect import detect, strip_think

WHY_NONE = {
    "prose_mention": "no call: an offered tool is named in prose only (intent, not a call)",
    "none": "no call: no call-shaped text and no offered tool named",
}


def message_of(raw: str) -> tuple[str, list[dict[str, Any]] | None, str]:
    """(content, native tool_calls, what the input was) from a raw answer or a saved response."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw, None, "text"
    msg: Any = None
    if isinstance(doc, dict):
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            msg, kind = choices[0].get("message") or choices[0].get("delta"), "OpenAI response"
        elif isinstance(doc.get("message"), dict):
            msg, kind = doc["message"], "Ollama response"
    if not isinstance(msg, dict):
        return raw, None, "text (JSON, not a chat response)"
    content = msg.get("content")
    calls = msg.get("tool_calls")
    return (
        content if isinstance(content, str) else "",
        calls if isinstance(calls, list) else None,
        kind,
    )


def default_tools() -> list[str]:
    """The tools a soak run offers (the bank's catalog): what names are matched against."""
    return [t["function"]["name"] for t in catalog.TOOLS]


def detection_dict(d: Detection) -> dict[str, Any]:
    return {
        "format": d.format,
        "trust": d.trust,
        "truncated": d.truncated,
        "excerpt": d.excerpt,
        "calls": [
            {
                "name": c.name,
                "arguments": c.arguments,
                "raw_arguments": c.raw_arguments,
                "error": c.parse_error,
            }
            for c in d.calls
        ],
    }


def explain(raw: str, tool_names: list[str]) -> tuple[Detection, list[str]]:
    """The detection of `raw` and the lines that say it."""
    content, native, kind = message_of(raw)
    d = detect(content, native, tool_names)
    lines = [
        f"input: {kind}, {len(content):,} characters"
        + (f", {len(native)} native tool_calls" if native else "")
    ]
    if content and strip_think(content) != content:
        lines.append("reasoning blocks (<think>…) removed first: calls inside them are thinking, not calls")
    lines.append(f"format: {d.format} (trust {d.trust})")
    if d.calls:
        for i, c in enumerate(d.calls, 1):
            args = json.dumps(c.arguments, ensure_ascii=False) if c.arguments is not None else c.raw_arguments
            lines.append(f"call {i}: {c.name or '(no name)'} {args}")
            if c.parse_error:
                lines.append(f"  arguments not read: {c.parse_error}")
        if d.truncated:
            lines.append("the answer stops inside a call (truncated)")
    elif d.format == "unparsed":
        lines.append(f"call-shaped text no finder could read: {d.excerpt}")
        lines.append("scored unparsed_call (neither a call nor a refusal); please report the format")
    else:
        lines.append(WHY_NONE.get(d.format, "no call"))
    return d, lines


__all__ = ["default_tools", "detection_dict", "explain", "message_of"]
