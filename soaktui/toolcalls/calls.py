"""What a detected tool call is, and the JSON handling every format shares.

Models write the same call in a dozen wrappings, but inside the wrapping it is nearly always a JSON
object with a name and arguments (which may themselves be a JSON string). Turning such an object into
a `DetectedCall`, decoding arguments, and telling a truncated JSON text from a malformed one lives
here once, so each format parser only has to find its wrapping.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TRUST_NATIVE = 3  # the server returned structured `tool_calls`
TRUST_TEXT = 2  # a call written as text in the content, in a recognised format
TRUST_UNPARSED = 1  # text shaped like a call that no finder could read: not a call, not a refusal
TRUST_PROSE = 1  # a known tool named in prose: intent only, no call
TRUST_NONE = 0

MAX_NAME = 256  # a longer "name" is not a function name
TRUNCATED = "truncated"  # parse_error for arguments cut off by the end of the text
UNPARSED_PREFIX = "a call soaktui cannot read: "  # an unparsed_call's detail; the report quotes the rest


@dataclass
class DetectedCall:
    name: str
    arguments: dict | None  # None when the arguments could not be decoded into an object
    raw_arguments: str  # the arguments as the model wrote them (JSON text, or a literal rendering)
    parse_error: str | None = None


@dataclass
class Detection:
    calls: list[DetectedCall] = field(default_factory=list)
    format: str = "none"
    trust: int = TRUST_NONE
    truncated: bool = False  # a call started but did not complete
    excerpt: str | None = None  # format "unparsed": the call-shaped text, for people to see


_DECODER = json.JSONDecoder()
NAME_KEYS = ("name", "tool_name")  # tool_name: Command R
ARG_KEYS = ("arguments", "parameters", "args")


def decode_at(text: str, pos: int) -> tuple[Any, int]:
    """One JSON value starting at `pos` (no leading whitespace); raises ValueError (JSONDecodeError,
    or a wrapped RecursionError for absurd nesting)."""
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def runs_off_end(exc: ValueError, text: str, end: int | None = None) -> bool:
    """Did decoding fail because the text stopped (truncation) rather than because it is malformed?"""
    if not isinstance(exc, json.JSONDecodeError):
        return False
    if exc.msg.startswith("Unterminated string"):
        return end is None or text.find('"', exc.pos + 1, end) < 0
    stop = len(text) if end is None else end
    return not text[exc.pos : stop].strip()


def decode_arguments(value: Any) -> tuple[dict | None, str, str | None]:
    """(arguments, raw_arguments, parse_error) from what a model put under "arguments": an object,
    or a JSON string that holds one (decoded), or absent/null (no arguments)."""
    if value is None:
        return {}, "", None
    if isinstance(value, dict):
        return value, json.dumps(value, ensure_ascii=False), None
    if isinstance(value, str):
        if not value.strip():
            return {}, value, None
        try:
            decoded = json.loads(value)
        except ValueError as exc:
            if runs_off_end(exc, value):
                return None, value, TRUNCATED
            return None, value, f"invalid JSON: {exc}"
        except RecursionError:
            return None, value, "invalid JSON: nested too deeply"
        if isinstance(decoded, dict):
            return decoded, value, None
        return None, value, f"arguments are a JSON {type(decoded).__name__}, not an object"
    return (
        None,
        json.dumps(value, ensure_ascii=False),
        f"arguments are a {type(value).__name__}, not an object",
    )


def _name_of(obj: dict) -> str | None:
    for key in NAME_KEYS:
        name = obj.get(key)
        if isinstance(name, str) and 0 < len(name.strip()) <= MAX_NAME:
            return name.strip()
    return None


def call_from_obj(obj: Any, require_args: bool) -> DetectedCall | None:
    """A call from {"name", "arguments"|"parameters"} or the OpenAI {"function": {...}} shape; None
    when `obj` does not have the shape. `require_args`: the arguments key must be present (for JSON
    found loose in text, where a bare {"name": ...} is far more likely data than a call)."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict) and _name_of(fn) is not None:
        obj = fn
    name = _name_of(obj)
    if name is None:
        return None
    arg_key = next((k for k in ARG_KEYS if k in obj), None)
    if arg_key is None and require_args:
        return None
    if arg_key is not None and is_schema(obj.get(arg_key)):
        return None  # a tool's definition (its arguments' JSON Schema), quoted: not a call
    arguments, raw, error = decode_arguments(obj.get(arg_key) if arg_key else None)
    return DetectedCall(name, arguments, raw, error)


def is_schema(value: Any) -> bool:
    """A JSON Schema for an object's arguments ({"type": "object", "properties": {...}})."""
    return isinstance(value, dict) and value.get("type") == "object" and isinstance(value.get("properties"), dict)


def calls_from_value(value: Any, require_args: bool) -> list[DetectedCall] | None:
    """Calls from one object or a list of them; None unless every element has the call shape."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls = [call_from_obj(item, require_args) for item in items]
    if any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


_NAME_RE = re.compile(r'"(?:name|tool_name)"\s*:\s*"([^"\\\n]{1,256})"')


def salvage(body: str, error: str) -> DetectedCall | None:
    """A call whose JSON did not decode: the name, if one can be read, with the raw text and the error."""
    m = _NAME_RE.search(body, 0, 4096)
    if m is None:
        return None
    return DetectedCall(m.group(1).strip(), None, body.strip(), error)
