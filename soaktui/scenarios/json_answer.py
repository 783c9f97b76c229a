"""Finding the JSON in a model's answer and judging it against a schema.

Even under "JSON only" models wrap their JSON: reasoning in `<think>` blocks, a ```json fence, a
sentence before or after it. So the answer is read the way a careful client would: reasoning
stripped (soaktui.toolcalls.strip_think), then the ```json fences if there are any (an unclosed
last fence runs to the end), else the whole text; in that text the JSON values are found from their
opening brackets and the largest complete one is the answer; a JSON-looking value that does not
decode is stepped over whole (a code sample, a Python dict). The first one tells why there is no
answer, if there is none: the text ended inside it (truncated) or it is malformed.

Failure kinds: `request_failed` (no answer; decided by the scenario). With JSON found: none when it
validates, else `schema_violation` (the most relevant validation error, with its JSON path, is kept),
or `truncated` when the server stopped at max_tokens. With none found: `truncated` (max_tokens, or
the JSON runs off the end of the text), `invalid_json`, or `no_json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import best_match

from soaktui.toolcalls import strip_think
from soaktui.toolcalls.calls import decode_at, runs_off_end

REQUEST_FAILED = "request_failed"
NO_JSON = "no_json"
INVALID_JSON = "invalid_json"
SCHEMA_VIOLATION = "schema_violation"
TRUNCATED = "truncated"
FAILURES = (NO_JSON, INVALID_JSON, SCHEMA_VIOLATION, TRUNCATED, REQUEST_FAILED)

ERROR_CHARS = 200  # error_path length
MAX_OPENERS = 64  # JSON starts tried per region: a bracket-heavy answer costs a bounded effort

_JSON_LABELS = ("", "json", "jsonc", "json5")
# An opening bracket that starts JSON (or JSON-like text: single quotes, unquoted keys), not prose
# such as "{name}" or "[see below]".
_OPENER = re.compile(r"""\{\s*(?:["'}]|[A-Za-z_$][\w$]*\s*:)|\[\s*(?:[\[{"'\]\d-]|true\b|false\b|null\b)""")


@dataclass
class Extraction:
    value: Any = None
    found: bool = False
    broken: str | None = None  # why the first JSON-looking value did not decode
    runs_off: bool = False  # ...because the text ended inside it


@dataclass
class Grade:
    parsed: bool
    schema_valid: bool
    failure: str | None
    error_path: str | None


def clip(text: str) -> str:
    """`text` on one line, at most ERROR_CHARS long."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _regions(text: str) -> list[tuple[str, bool]]:
    """(text, reaches the end of the answer) of each ```json (or unlabelled) fence, else the whole text."""
    parts = text.split("```")
    out = []
    for i in range(1, len(parts), 2):  # odd parts are inside fences; the last one may be unclosed
        label, _, body = parts[i].partition("\n")
        if label.strip().lower() in _JSON_LABELS:
            out.append((body, i == len(parts) - 1))
    return out or [(text, True)]


def _past(text: str, start: int) -> int:
    """The index after the bracket that closes the one at `start` (quotes of both kinds skipped),
    or the end of `text`."""
    depth, quote, i, n = 0, "", start, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def extract_json(content: str) -> Extraction:
    """The JSON value an answer gives (see the module docstring for how it is found)."""
    text = strip_think(content)
    best: tuple[int, Any] | None = None
    out = Extraction()
    for region, open_end in _regions(text):
        pos = 0
        for _ in range(MAX_OPENERS):
            m = _OPENER.search(region, pos)
            if m is None:
                break
            try:
                value, end = decode_at(region, m.start())
            except ValueError as exc:
                runs_off = open_end and runs_off_end(exc, region)
                if out.broken is None:
                    out.runs_off, out.broken = runs_off, clip(str(exc))
                if runs_off:
                    break
                pos = _past(region, m.start())  # a code sample or broken JSON: look after it
                continue
            if best is None or end - m.start() > best[0]:
                best = (end - m.start(), value)
            pos = end
    if best is not None:
        out.found, out.value = True, best[1]
    return out


def describe_error(error: Any) -> str:
    """`$.lines[2].quantity: 'three' is not of type 'integer'`, at most ERROR_CHARS long."""
    return clip(f"{error.json_path}: {error.message}")


def grade(content: str, finish_reason: str | None, validator: Any) -> Grade:
    """Judge an answer's JSON against `validator` (a jsonschema validator)."""
    ex = extract_json(content)
    if ex.found:
        error = best_match(validator.iter_errors(ex.value))
        if error is None:
            return Grade(True, True, None, None)
        failure = TRUNCATED if finish_reason == "length" else SCHEMA_VIOLATION
        return Grade(True, False, failure, describe_error(error))
    if finish_reason == "length" or ex.runs_off:
        return Grade(False, False, TRUNCATED, ex.broken)
    if ex.broken is not None:
        return Grade(False, False, INVALID_JSON, ex.broken)
    return Grade(False, False, NO_JSON, None)
