"""Structured-output answers: JSON for a `response_format` or for a JSON Schema written into the prompt.

Real models under a server's JSON grammar mostly return a valid instance of the schema, and fail in
a few recognisable ways: JSON that does not parse (a trailing comma, Python literals, unquoted keys),
JSON that parses but breaks the schema (a required field missing, a wrong type, a value outside its
enum), prose with no JSON at all, or JSON that runs on until `max_tokens` cuts it. Without a
grammar (the schema only in the prompt) a model first has to follow the instruction at all, which
the persona's `compliance` decides, as for every other form (forms.py). How often the JSON is right
is the persona's `json_accuracy`; the failure kind is drawn uniformly. Every draw comes from the
request's seeded generator, so one seed gives the same answers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

from soaktui.simulator import forms, textgen
from soaktui.simulator.instances import instance
from soaktui.simulator.personas import Persona
from soaktui.toolcalls.calls import decode_at

INVALID_JSON = "invalid_json"
SCHEMA_VIOLATION = "schema_violation"
NO_JSON = "no_json"
RUNAWAY = "runaway"  # JSON that keeps going until max_tokens cuts it
FAILURE_KINDS = (INVALID_JSON, SCHEMA_VIOLATION, NO_JSON, RUNAWAY)

RUNAWAY_MAX_TOKENS = 8192  # with a larger (or no) limit a runaway answer is written as invalid JSON
FENCED_SHARE = 0.3  # instruction answers wrapped in a ```json fence although "JSON only" was asked
SCHEMA_SCAN_OPENERS = 64  # `{` positions tried when looking for a schema in a prompt


@dataclass(frozen=True)
class Ask:
    """What a request's `response_format` asked for: JSON matching `schema`, or any JSON (None)."""

    schema: dict[str, Any] | None


def looks_like_schema(value: Any) -> bool:
    return isinstance(value, dict) and (
        "$schema" in value
        or (value.get("type") in ("object", "array") and ("properties" in value or "items" in value))
    )


def schema_in_prompt(prompt: str) -> dict[str, Any] | None:
    """The first JSON Schema object written in `prompt`, or None."""
    pos = 0
    for _ in range(SCHEMA_SCAN_OPENERS):
        i = prompt.find("{", pos)
        if i < 0:
            return None
        try:
            value, end = decode_at(prompt, i)
        except ValueError:
            pos = i + 1
            continue
        if looks_like_schema(value):
            return value
        pos = end
    return None


def answer(
    persona: Persona, ask: Ask | None, form: forms.Form | None, prompt: str, rng: random.Random, limit: int
) -> str | None:
    """The answer text for a structured request, or None when the request is not one."""
    if ask is not None:
        return _json_answer(persona, ask.schema, prompt, rng, limit, fence_share=0.0)
    if form is None or form.kind != forms.JSON:
        return None
    schema = schema_in_prompt(prompt)
    if schema is None:
        return None
    if rng.random() >= persona.compliance:
        return _prose(rng)
    return _json_answer(persona, schema, prompt, rng, limit, fence_share=1.0 if form.fenced else FENCED_SHARE)


def _json_answer(
    persona: Persona,
    schema: dict[str, Any] | None,
    prompt: str,
    rng: random.Random,
    limit: int,
    fence_share: float,
) -> str:
    if schema is not None:
        value = instance(schema, rng)
    else:  # json_object without a schema: any JSON object, shaped by the prompt as forms.py does it
        value = orjson.loads(forms.render(forms.Form(forms.JSON), prompt, rng))
    fenced = rng.random() < fence_share
    if rng.random() < persona.json_accuracy:
        return _dump(value, fenced)
    kinds = [k for k in FAILURE_KINDS if schema is not None or k != SCHEMA_VIOLATION]
    kind = rng.choice(kinds)
    if kind == RUNAWAY and limit > RUNAWAY_MAX_TOKENS:
        kind = INVALID_JSON
    if kind == NO_JSON:
        return _prose(rng)
    if kind == SCHEMA_VIOLATION:
        return _dump(violate(schema or {}, value, rng), fenced)
    if kind == RUNAWAY:
        return runaway(value, rng, limit)
    return malformed(value, rng, fenced)


def _dump(value: Any, fenced: bool) -> str:
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    return f"```json\n{text}\n```" if fenced else text


def _prose(rng: random.Random) -> str:
    return "".join(textgen.prose_tokens(rng, n_tokens=rng.randint(30, 90)))


# -- invalid JSON ----------------------------------------------------------------------------------

_KEY_RE = re.compile(r'"([A-Za-z_]\w*)":')


def _python_literal(text: str, value: Any) -> str:
    return repr(value)  # single quotes, True/False/None


def _trailing_comma(text: str, value: Any) -> str:
    cut = text.rstrip()
    return cut[:-1].rstrip() + ",\n" + cut[-1]


def _unquoted_keys(text: str, value: Any) -> str:
    return _KEY_RE.sub(r"\1:", text)


def _missing_comma(text: str, value: Any) -> str:
    return text.replace(",\n", "\n", 1)


_BREAKERS = (_python_literal, _trailing_comma, _unquoted_keys, _missing_comma)


def malformed(value: Any, rng: random.Random, fenced: bool) -> str:
    """`value` written as JSON with one of the mistakes models make; never valid JSON."""
    text = _dump(value, False)
    broken = rng.choice(_BREAKERS)(text, value)
    try:
        orjson.loads(broken)
    except orjson.JSONDecodeError:
        pass
    else:  # e.g. an object without keys or commas: the trailing comma always breaks it
        broken = _trailing_comma(text, value)
    return f"```json\n{broken}\n```" if fenced else broken


# -- schema violations -----------------------------------------------------------------------------

_WRONG = (42, "42", True, ["x"], {"x": 1})
_JSON_TYPES = {
    int: ("integer", "number"),
    str: ("string",),
    bool: ("boolean",),
    list: ("array",),
    dict: ("object",),
}


def _wrong_value(schema: dict[str, Any]) -> Any:
    """A value `schema` rejects: of another type, or outside its enum or const."""
    if "const" in schema:
        return next(c for c in _WRONG if c != schema["const"])
    kind = schema.get("type")
    allowed = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
    enum = schema.get("enum") if isinstance(schema.get("enum"), list) else None
    for candidate in _WRONG:
        types = _JSON_TYPES[type(candidate)]
        if allowed and not allowed.intersection(types):
            return candidate
        if not allowed and enum is not None and candidate not in enum:
            return candidate
    return "not-" + str(enum[0]) if enum else None


def violate(schema: dict[str, Any], value: Any, rng: random.Random) -> Any:
    """`value` (an instance of `schema`) changed so that it no longer validates: a required
    property dropped, or one value of the wrong type, somewhere in the tree."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        required = [k for k in schema.get("required") or () if k in value]
        inner = [k for k in value if isinstance(props.get(k), dict)]
        out = dict(value)
        if required and (not inner or rng.random() < 0.4):
            del out[rng.choice(required)]
            return out
        if inner:
            key = rng.choice(inner)
            out[key] = violate(props[key], value[key], rng)
            return out
    if isinstance(value, list) and value and isinstance(schema.get("items"), dict) and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], violate(schema["items"], value[i], rng), *value[i + 1 :]]
    return _wrong_value(schema)


# -- runaway ---------------------------------------------------------------------------------------


def runaway(value: Any, rng: random.Random, limit: int) -> str:
    """JSON whose last string keeps growing until it is longer than `limit` tokens (the server
    cuts it at `max_tokens`, mid-string): the looping some models fall into under a JSON grammar."""
    head = _dump(value, False).rstrip("}] \n")
    head = head[:-1] if head.endswith('"') else head + ', "'  # reopen the last string, or start one
    need = limit - textgen.count_tokens(head) + 8
    filler = "".join(textgen.prose_tokens(rng, n_tokens=max(need, 8))).replace("\n", " ")
    return head + " " + filler
