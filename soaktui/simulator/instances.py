"""Seeded instances of a JSON Schema: what a model decoding under the schema's grammar would write.

The simulator answers a `response_format` of type `json_schema` (and a schema written into the
prompt) with data that fits the schema, so the structured_output scenario has real JSON to parse and
validate. It covers the part of JSON Schema that structured output uses: `type` (and type lists),
`properties`/`required` (optional properties appear most of the time), `items` with
`minItems`/`maxItems`/`uniqueItems`, `enum`, `const`, `anyOf`/`oneOf` (one branch), local `$ref`,
strings with `minLength`/`maxLength` and the formats date, date-time, time, email, uri, uuid, ipv4 and
hostname, integers and numbers with `minimum`/`maximum` (also exclusive) and integer `multipleOf`,
booleans and null. Other keywords (`pattern`, `allOf`, ...) are ignored; the data test generates
instances of every shipped schema and validates them, so a schema outside this subset is caught.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from soaktui.simulator.textgen import WORDS

MAX_DEPTH = 16  # deeper (a recursive $ref): the smallest value of the type
OPTIONAL_SHARE = 0.75  # how often an optional property is present
NULL_SHARE = 0.15  # how often a nullable type list yields null

Schema = dict[str, Any]

_NAMES = ("ana", "li", "maria", "jonas", "keiko", "raj", "sara", "tom", "priya", "omar")
_TLDS = ("example.com", "example.org", "corp.example")


def instance(schema: Schema, rng: random.Random) -> Any:
    """One value that validates against `schema` (a JSON Schema object)."""
    return _value(schema, rng, schema, 0)


def _resolve(schema: Schema, root: Schema) -> Schema:
    ref = schema.get("$ref")
    for _ in range(32):
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
        schema = node if isinstance(node, dict) else {}
        ref = schema.get("$ref")
    return schema


def _type_of(schema: Schema, rng: random.Random) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if isinstance(t, str)]
        if "null" in types and len(types) > 1 and rng.random() >= NULL_SHARE:
            types.remove("null")
        return rng.choice(types) if types else "string"
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _value(schema: Any, rng: random.Random, root: Schema, depth: int) -> Any:
    if not isinstance(schema, dict):
        return None
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return _value(rng.choice(branches), rng, root, depth + 1)
    kind = _type_of(schema, rng)
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        return _array(schema, rng, root, depth)
    if kind == "integer":
        return _integer(schema, rng)
    if kind == "number":
        return _number(schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _object(schema: Schema, rng: random.Random, root: Schema, depth: int) -> dict[str, Any]:
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out: dict[str, Any] = {}
    for key, sub in props.items():
        if key in required or (depth < MAX_DEPTH and rng.random() < OPTIONAL_SHARE):
            out[key] = _value(sub, rng, root, depth + 1)
    for key in required - out.keys():  # required but not described: any short string
        out[key] = _string({}, rng)
    return out


def _array(schema: Schema, rng: random.Random, root: Schema, depth: int) -> list[Any]:
    lo = max(0, int(schema.get("minItems", 1 if depth < MAX_DEPTH else 0)))
    hi = schema.get("maxItems")
    hi = lo + 3 if hi is None else max(lo, int(hi))
    if depth >= MAX_DEPTH:
        hi = lo
    items = _resolve(schema.get("items") or {}, root)
    n = rng.randint(lo, min(hi, lo + 5))
    if schema.get("uniqueItems") and isinstance(items.get("enum"), list):
        pool = list(items["enum"])
        return rng.sample(pool, min(n, len(pool)))
    out: list[Any] = []
    for _ in range(n):
        value = _value(items, rng, root, depth + 1)
        if schema.get("uniqueItems") and value in out:
            continue
        out.append(value)
    return out


def _bounds(schema: Schema, step: float) -> tuple[float | None, float | None]:
    lo = schema.get("minimum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        lo = schema["exclusiveMinimum"] + step
    hi = schema.get("maximum")
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        hi = schema["exclusiveMaximum"] - step
    return lo, hi


def _span(lo: float | None, hi: float | None, width: float) -> tuple[float, float]:
    if lo is None and hi is None:
        return 0.0, width
    if lo is None:
        return hi - width, hi  # type: ignore[operator]
    if hi is None:
        return lo, lo + width
    return lo, max(lo, hi)


def _integer(schema: Schema, rng: random.Random) -> int:
    lo, hi = _span(*_bounds(schema, 1), 1000)
    a, b = int(-(-lo // 1)), int(hi // 1)  # ceil(lo), floor(hi)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        first, last = -(-a // step), b // step
        if first <= last:
            return rng.randint(first, last) * step
    return rng.randint(a, max(a, b))


def _number(schema: Schema, rng: random.Random) -> float:
    lo, hi = _span(*_bounds(schema, 0.01), 1000.0)
    if hi - lo < 0.02:
        return float(lo)
    value = round(rng.uniform(lo, hi), 2)
    return min(max(value, lo), hi)


def _string(schema: Schema, rng: random.Random) -> str:
    fmt = schema.get("format")
    text = _formatted(fmt, rng) if isinstance(fmt, str) else None
    if text is not None:
        return text
    lo = max(0, int(schema.get("minLength", 1)))
    hi = schema.get("maxLength")
    hi = max(lo, int(hi)) if hi is not None else max(lo, 60)
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
    words[0] = words[0].capitalize()
    text = " ".join(words)
    while len(text) < lo:
        text += " " + rng.choice(WORDS)
    text = text[:hi].rstrip() if len(text[:hi].rstrip()) >= lo else text[:hi]
    return text


def _formatted(fmt: str, rng: random.Random) -> str | None:
    if fmt == "date":
        return _date(rng)
    if fmt == "date-time":
        return f"{_date(rng)}T{_time(rng)}Z"
    if fmt == "time":
        return f"{_time(rng)}Z"
    if fmt in ("email", "idn-email"):
        return f"{rng.choice(_NAMES)}.{rng.choice(WORDS)}@{rng.choice(_TLDS)}"
    if fmt in ("uri", "url", "iri"):
        return f"https://{rng.choice(WORDS)}.{rng.choice(_TLDS)}/{rng.choice(WORDS)}/{rng.randint(1, 999)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if fmt == "ipv4":
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if fmt in ("hostname", "idn-hostname"):
        return f"{rng.choice(WORDS)}-{rng.randint(1, 99)}.{rng.choice(_TLDS)}"
    return None


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2024, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
