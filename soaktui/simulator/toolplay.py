"""How a simulated model uses tools: which tool a prompt wants, its arguments, and its mistakes.

The simulator has to behave like a model that reads the request: offered tools arrive natively
(`tools`) or described in the system prompt (`<tools>` JSON, "prompted" mode); a tool result
comes back as a role "tool" message or a user message with `<tool_response>` blocks. So it plays a
small, rule-based model:

- The prompt is split into clauses (sentences, ", and ..."), outside quoted text. A clause asks for
  the tool that scores best on it: its exact name, the words of its name and description, and the
  required arguments of a recognisable shape (a host name that fits the pattern, a currency code).
  Each asking clause starts one call; clauses that ask for nothing belong to the call before them.
  Two asking clauses make a parallel answer.
- Arguments are filled from the call's text by the argument's schema: enum values named in the
  text, tokens that fit a `pattern`, ISO dates for `format: date-time`, numbers placed next to the
  argument's words ("the last 30 minutes"), a list of numbers, a boolean named by the argument,
  quoted text for free strings (in order), else capitalised names (cities).
- With probability `1 - tool_accuracy` (the persona's tool skill), drawn from the request's seeded
  generator, the answer goes wrong in one way that a judge must catch: a wrong argument value, a
  required argument left out, no call where one was asked for, one call instead of several, or a
  call where no tool applies. A follow-up answer to a tool result never errs, so the share of
  correct attempts is the configured accuracy.
- After a tool result, the answer repeats the result's values.

The persona's `tool_style` decides the wrapping: native `tool_calls`, or Hermes / Llama 3 / Mistral
text; in prompted mode a native persona writes Hermes blocks; style "none" cannot call tools and
names the tool in prose instead.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from soaktui.simulator import textgen
from soaktui.simulator.personas import Persona

Call = tuple[str, dict[str, Any]]

NO_CALL = "no_call"
WRONG_VALUE = "wrong_value"
MISSING_REQUIRED = "missing_required"
ONE_CALL = "one_call"
FALSE_CALL = "false_call"
MISTAKES = (WRONG_VALUE, MISSING_REQUIRED, NO_CALL, ONE_CALL, FALSE_CALL)

TRIGGER = 2.0  # a clause asks for a tool when the tool scores at least this on it
MAX_CALLS = 5


@dataclass
class ToolAnswer:
    """What the model answers when tools are in play: native calls, or text."""

    calls: list[Call]
    native: bool  # send `calls` as OpenAI tool_calls; otherwise `text` is the content
    text: str = ""
    mistake: str | None = None


# -- reading the request --------------------------------------------------------------------------


def offered_tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """(tools, native): the `tools` field, or the tool schemas a system prompt lists in `<tools>`."""
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        return [t for t in tools if textgen.tool_name(t)], True
    for m in body.get("messages") or []:
        if not isinstance(m, dict) or m.get("role") != "system":
            continue
        text = textgen.message_text(m.get("content"))
        start, end = text.find("<tools>"), text.find("</tools>")
        if start < 0 or end < start:
            continue
        return _parse_tool_list(text[start + len("<tools>") : end]), False
    return [], False


def _parse_tool_list(text: str) -> list[dict[str, Any]]:
    """Tool schemas written as a JSON list or one JSON object per line."""
    text = text.strip()
    try:
        value = json.loads(text)
        items = value if isinstance(value, list) else [value]
    except ValueError:
        items = []
        for line in text.splitlines():
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
    out = []
    for item in items:
        if isinstance(item, dict):
            tool = item if isinstance(item.get("function"), dict) else {"type": "function", "function": item}
            if textgen.tool_name(tool):
                out.append(tool)
    return out


_RESPONSE = re.compile(r"<tool_response>\s*(.*?)\s*</tool_response>", re.DOTALL)


def tool_results(messages: list[Any]) -> list[Any] | None:
    """The tool results the request ends with (role "tool" messages, or a user message with
    `<tool_response>` blocks), decoded where they are JSON; None when it does not end with any."""
    results: list[Any] = []
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "tool":
            break
        results.insert(0, _decode(textgen.message_text(m.get("content"))))
    if results:
        return results
    last = messages[-1] if messages else None
    if isinstance(last, dict) and last.get("role") == "user":
        text = textgen.message_text(last.get("content"))
        blocks = _RESPONSE.findall(text)
        if blocks:
            decoded = [_decode(b) for b in blocks]
            return [d.get("content", d) if isinstance(d, dict) and "name" in d else d for d in decoded]
    return None


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{prefix}{k} ".replace("_", " "))]
    if isinstance(value, list):
        return [kv for v in value for kv in _flatten(v, prefix)]
    return [(prefix.strip(), value)]


def result_answer(results: list[Any]) -> str:
    """A final answer that reports what the tools returned, value by value."""
    parts = []
    for key, value in (kv for r in results for kv in _flatten(r)):
        shown = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key} is {shown}" if key else shown)
    return "Here is what the tool returned: " + "; ".join(parts) + "."


# -- text helpers ------------------------------------------------------------------------------------

_QUOTE = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|`([^`\n]+)`')
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP_TEXT = """a an and are as at be by can do for from get given how in into is it its of on one only or our
out the this that these those to use used uses using what when where which who why with your you such
e g via per optionally current live today value values text list set make each"""
_STOP = frozenset(_STOP_TEXT.split())
_VERBS_TEXT = "calculate search create query send schedule convert"
_VERBS = frozenset(_VERBS_TEXT.split())


def _quotes(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), next(g for g in m.groups() if g is not None)) for m in _QUOTE.finditer(text)]


def _mask(text: str, spans: list[tuple[int, int, str]]) -> str:
    """The text with quoted spans blanked (same length), so nothing inside quotes is read as a
    number, an enum value or a clause boundary."""
    out = list(text)
    for start, end, _ in spans:
        out[start:end] = " " * (end - start)
    return "".join(out)


def _base(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(text: str) -> list[tuple[int, str]]:
    return [(m.start(), _base(m.group(0))) for m in _WORD.finditer(text)]


_SPLIT = re.compile(r"(?<=[.?!;])\s+|,\s+(?:and|then|also|plus)\s+|\s+and\s+(?:also|then)\s+")


def clauses(text: str) -> list[str]:
    """The prompt cut into clauses, never inside quoted text."""
    masked = _mask(text, _quotes(text))
    out, pos = [], 0
    for m in _SPLIT.finditer(masked):
        out.append(text[pos : m.start()])
        pos = m.end()
    out.append(text[pos:])
    return [c for c in out if c.strip()]


# -- choosing tools --------------------------------------------------------------------------------


def _params(tool: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(properties, required) of a tool's schema; anything malformed is left out, never raised on."""
    fn = tool.get("function")
    params = fn.get("parameters") if isinstance(fn, dict) else None
    if not isinstance(params, dict):
        return {}, []
    raw = params.get("properties")
    props = (
        {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, dict)}
        if isinstance(raw, dict)
        else {}
    )
    required = params.get("required")
    required = (
        [r for r in required if isinstance(r, str) and r in props] if isinstance(required, list) else []
    )
    return props, required


def _enum(schema: dict[str, Any]) -> list[Any]:
    enum = schema.get("enum")
    return enum if isinstance(enum, list) else []


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    items = schema.get("items")
    return items if isinstance(items, dict) else {}


def _fits(pattern: Any, text: str) -> bool:
    try:
        return isinstance(pattern, str) and re.search(pattern, text) is not None
    except re.error:
        return False


def _cues(tool: dict[str, Any]) -> dict[str, float]:
    """Words that point at a tool: its name's words (nouns 2, verbs 1), its description's (1)."""
    fn = tool.get("function") or {}
    weights: dict[str, float] = {}
    for w in _words(str(fn.get("description") or "")):
        if w[1] not in _STOP and len(w[1]) >= 3:
            weights[w[1]] = 1.0
    for part in re.split(r"[_\-\s.]+", str(fn.get("name") or "")):
        b = _base(part)
        if b and b not in _STOP and len(b) >= 3:
            weights[b] = 1.0 if b in _VERBS else 2.0
    return weights


def _score(tool: dict[str, Any], clause: str) -> float:
    name = textgen.tool_name(tool) or ""
    if re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", clause):
        return 10.0
    masked = _mask(clause, _quotes(clause))
    cues = _cues(tool)
    seen = {w for _, w in _words(masked)}
    score = sum(weight for word, weight in cues.items() if word in seen)
    props, required = _params(tool)
    for arg in required:
        schema = props.get(arg) or {}
        enum = _enum(schema) or _enum(_items(schema))
        if schema.get("pattern") and _pattern_tokens(masked, schema["pattern"]):
            score += 2.0
        elif any(_base(v) not in cues for _, v in _enum_mentions(masked, enum)):
            score += 1.0  # a value only this argument takes (not already counted as a word)
    return score


def choose_calls(tools: list[dict[str, Any]], prompt: str, tool_choice: Any = None) -> list[Call]:
    """The calls a careful model makes for `prompt` (honouring `tool_choice`)."""
    valid = [t for t in tools if textgen.tool_name(t)]
    if not valid or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        forced = fn.get("name") if isinstance(fn, dict) else None
        return [(forced, fill_arguments(t, prompt)) for t in valid if textgen.tool_name(t) == forced][:1]
    groups: list[tuple[dict[str, Any], list[str]]] = []
    lead: list[str] = []
    for clause in clauses(prompt):
        scored = [(_score(t, clause), i) for i, t in enumerate(valid)]
        best, index = max(scored, key=lambda s: (s[0], -s[1]))
        if best >= TRIGGER:
            groups.append((valid[index], lead + [clause]))
            lead = []
        elif groups:
            groups[-1][1].append(clause)
        else:
            lead.append(clause)
    if not groups and tool_choice == "required":
        groups = [(valid[0], [prompt])]
    return [
        (textgen.tool_name(t) or "", fill_arguments(t, " ".join(parts))) for t, parts in groups[:MAX_CALLS]
    ]


# -- filling arguments -------------------------------------------------------------------------------

_NUMBER = r"-?\d+(?:\.\d+)?"
_NUM = re.compile(rf"(?<![\w.\-/:#+@]){_NUMBER}(?![\w\-/:@]|\.\d)")
_NUM_RUN = re.compile(
    rf"(?<![\w.\-/:#+@]){_NUMBER}(?:(?:\s*,\s*(?:and\s+)?|\s+and\s+){_NUMBER})+(?![\w\-/:@])"
)
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?(?:\s*(?:Z|UTC|[+-]\d{2}:?\d{2}))?(?![\d:])"
)
_CAPITALISED = re.compile(r"[^\W\d_][^\W\d_]+")
_TOKEN = re.compile(r"\S+")


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return kind if isinstance(kind, str) else "string"


def _enum_mentions(text: str, values: list[Any]) -> list[tuple[int, Any]]:
    """(position, value) for each enum value named in the text (any case, `_`/`-` as space, plural)."""
    found = []
    for v in values:
        if not isinstance(v, str) or not v:
            continue
        body = "".join("[-_ ]?" if c in "-_ " else re.escape(c) for c in v.lower())
        for m in re.finditer(rf"(?<![\w-]){body}s?(?![\w-])", text, re.IGNORECASE):
            found.append((m.start(), v))
    return sorted(found, key=lambda x: x[0])


def _pattern_tokens(text: str, pattern: Any) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    try:
        rx = re.compile(pattern)
    except (re.error, TypeError):
        return out
    for m in _TOKEN.finditer(text):
        token = m.group(0).strip("([{\"'").rstrip(".,;:!?)]}\"'")
        if token and rx.search(token):
            out.append((m.start(), token))
    return out


def _proper_names(text: str) -> list[tuple[int, str]]:
    """Runs of capitalised words that do not start a sentence (and are not acronyms): place names."""
    names: list[tuple[int, str]] = []
    run: list[str] = []
    start = end = -1
    for m in _CAPITALISED.finditer(text):
        word = m.group(0)
        capital = word[0].isupper() and not word.isupper()
        before = text[: m.start()].rstrip()
        initial = not before or before[-1] in ".!?:\n\"'“`"
        if capital and not initial and (not run or text[end : m.start()] == " "):
            if not run:
                start = m.start()
            run.append(word)
            end = m.end()
            continue
        if run:
            names.append((start, " ".join(run)))
            run = []
        if capital and not initial:
            start, end, run = m.start(), m.end(), [word]
    if run:
        names.append((start, " ".join(run)))
    return names


def _number(text: str) -> int | float:
    value = float(text)
    return _json_int(value) if value.is_integer() and "." not in text else value


def _integer(text: str) -> int | float:
    return _json_int(float(text))


def _json_int(value: float) -> int | float:
    """A whole number as the simulated model writes it: an int where JSON encoders take one (64
    bits), else the float (a prompt may hold a 20-digit number)."""
    whole = int(value)
    return whole if -(1 << 63) <= whole < (1 << 64) else value


def fill_arguments(tool: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for `tool` read from `text` by each argument's JSON Schema (see the module doc)."""
    props, required = _params(tool)
    spans = _quotes(text)
    masked = _mask(text, spans)
    args: dict[str, Any] = {}
    used: set[int] = set()  # start positions already taken

    def first_free(cands: list[tuple[int, Any]]) -> Any:
        for pos, value in cands:
            if pos not in used:
                used.add(pos)
                return value
        return None

    # Lists of numbers first, so their members are not read as single numbers.
    number_runs = [m for m in _NUM_RUN.finditer(masked)]
    for arg, schema in props.items():
        if _kind(schema) == "array" and _kind(_items(schema)) in ("number", "integer") and number_runs:
            run = max(number_runs, key=lambda m: len(_NUM.findall(m.group(0))))
            args[arg] = [_number(x) for x in _NUM.findall(run.group(0))]
            masked = masked[: run.start()] + " " * (run.end() - run.start()) + masked[run.end() :]
    for arg, schema in props.items():
        kind = _kind(schema)
        enum, item_enum = _enum(schema), _enum(_items(schema))
        if kind == "string" and enum:
            value = first_free(_enum_mentions(masked, enum))
            if value is None and arg in required:
                value = schema.get("default", enum[0])
            if value is not None:
                args[arg] = value
        elif kind == "array" and item_enum:
            values = list(dict.fromkeys(v for _, v in _enum_mentions(masked, item_enum)))
            if values or arg in required:
                args[arg] = values or [item_enum[0]]
        elif kind == "string" and schema.get("pattern"):
            quoted = [(s, q) for s, _, q in spans if _fits(schema["pattern"], q)]
            value = first_free(_pattern_tokens(masked, schema["pattern"]) + quoted)
            if value is not None:
                args[arg] = value
        elif kind == "string" and schema.get("format") in ("date-time", "date"):
            value = first_free([(m.start(), m.group(0)) for m in _DATETIME.finditer(masked)])
            if value is not None:
                args[arg] = value
    _fill_numbers(props, required, masked, args)
    for arg, schema in props.items():
        if arg in args:
            continue
        kind = _kind(schema)
        if kind == "boolean":
            m = re.search(rf"(\bnot\s+)?\b{re.escape(arg.replace('_', ' '))}", masked, re.IGNORECASE)
            if m or arg in required:
                args[arg] = bool(m) and not m.group(1)
        elif kind == "string" and not _constrained(schema):
            value = first_free([(s, q) for s, _, q in spans])
            if value is None and arg in required:
                value = first_free(_proper_names(masked)) or "example"
            if value is not None:
                args[arg] = value
        elif arg in required and kind in ("array", "object") and arg not in args:
            args[arg] = [] if kind == "array" else {}
    return {k: args[k] for k in props if k in args}


def _constrained(schema: dict[str, Any]) -> bool:
    return bool(_enum(schema) or schema.get("pattern"))


def _fill_numbers(props: dict[str, Any], required: list[str], masked: str, args: dict[str, Any]) -> None:
    """Numbers go to the argument whose words stand next to them ("last 30 minutes", "at most 50
    lines"); a required number without such words takes the first number left."""
    wanted = [a for a, s in props.items() if _kind(s) in ("number", "integer") and a not in args]
    if not wanted:
        return
    numbers = [(m.start(), m.group(0)) for m in _NUM.finditer(masked)]
    words = _words(masked)
    options = []
    for arg in wanted:
        cues = {w: 2.0 for w in map(_base, re.split(r"[_\-]+", arg)) if w not in _STOP}
        for _, w in _words(str(props[arg].get("description") or "")):
            if w not in _STOP and len(w) >= 3:
                cues.setdefault(w, 1.0)
        for pos, text in numbers:
            index = next((i for i, (p, _) in enumerate(words) if p >= pos), len(words))
            for i in range(max(0, index - 4), min(len(words), index + 3)):
                weight = cues.get(words[i][1])
                if weight:
                    options.append((weight, -abs(i - index), arg, pos, text))
    taken: set[int] = set()
    for _, _, arg, pos, text in sorted(options, reverse=True):
        if arg in args or pos in taken:
            continue
        args[arg] = _number(text) if _kind(props[arg]) == "number" else _integer(text)
        taken.add(pos)
    for arg in wanted:
        if arg in args or arg not in required:
            continue
        free = next(((p, t) for p, t in numbers if p not in taken), None)
        args[arg] = (
            1 if free is None else (_number(free[1]) if _kind(props[arg]) == "number" else _integer(free[1]))
        )
        if free is not None:
            taken.add(free[0])


# -- mistakes ----------------------------------------------------------------------------------------


def _other_value(value: Any, schema: dict[str, Any]) -> Any:
    """A value of the same type that the schema still allows but that means something else; None
    when there is none."""
    kind = _kind(schema)
    if kind in ("number", "integer") and not isinstance(value, bool):
        up = value + 1
        top = schema.get("maximum")
        return value - 1 if top is not None and up > top else up
    if kind == "array" and isinstance(value, list) and value:
        items = _items(schema)
        if _enum(items):
            spare = [e for e in _enum(items) if e not in value]
            return [spare[0], *value[1:]] if spare else None
        first = _other_value(value[0], items)
        return None if first is None else [first, *value[1:]]
    if kind != "string" or not isinstance(value, str):
        return None
    if _enum(schema):
        return next((e for e in _enum(schema) if str(e).lower() != value.lower()), None)
    if schema.get("format") in ("date-time", "date"):
        try:
            moved = dt.datetime.fromisoformat(value.replace("Z", "").replace(" UTC", "")) + dt.timedelta(
                days=1
            )
        except ValueError:
            return None
        return moved.strftime("%Y-%m-%dT%H:%M:%SZ")
    pattern = schema.get("pattern")
    if pattern:
        digits = [i for i, c in enumerate(value) if c.isdigit()]
        candidates = []
        if digits:
            i = digits[-1]
            candidates.append(value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1 :])
        candidates += [value + "x", "x" + value]
        return next((c for c in candidates if _fits(pattern, c)), None)
    flipped = value[::-1]
    return flipped if flipped.lower() != value.lower() else value + " 2"


def _tool_schema(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((t for t in tools if textgen.tool_name(t) == name), {})


def make_mistake(
    calls: list[Call], tools: list[dict[str, Any]], prompt: str, rng: random.Random
) -> tuple[list[Call], str]:
    """The calls after one mistake of a kind that applies to them, and its name."""
    if not calls:
        tool = rng.choice(tools)
        return [(textgen.tool_name(tool) or "", fill_arguments(tool, prompt))], FALSE_CALL
    options: list[tuple[str, int, str, Any]] = [(NO_CALL, -1, "", None)]
    if len(calls) > 1:
        options.append((ONE_CALL, -1, "", None))
    for i, (name, args) in enumerate(calls):
        props, required = _params(_tool_schema(tools, name))
        for arg in required:
            if arg in args:
                options.append((MISSING_REQUIRED, i, arg, None))
                other = _other_value(args[arg], props.get(arg) or {})
                if other is not None:
                    options.append((WRONG_VALUE, i, arg, other))
    kinds = sorted({o[0] for o in options}, key=MISTAKES.index)
    kind = rng.choice(kinds)
    kind_options = [o for o in options if o[0] == kind]
    _, i, arg, other = rng.choice(kind_options)
    if kind == NO_CALL:
        return [], kind
    if kind == ONE_CALL:
        return calls[:1], kind
    name, args = calls[i]
    changed = dict(args)
    if kind == MISSING_REQUIRED:
        del changed[arg]
    else:
        changed[arg] = other
    return [*calls[:i], (name, changed), *calls[i + 1 :]], kind


# -- the answer ----------------------------------------------------------------------------------------


def mention_text(calls: list[Call]) -> str:
    """What a model without tool calling says: it names the tool in prose, no call."""
    names = ", ".join(dict.fromkeys(n for n, _ in calls))
    return (
        f"I cannot call tools here. The {names} tool would answer this; please run it and tell me the result."
    )


def answer(persona: Persona, body: dict[str, Any], prompt: str, rng: random.Random) -> ToolAnswer | None:
    """The answer when tools are in play, or None to answer as without tools."""
    tools, native = offered_tools(body)
    if not tools:
        return None
    results = tool_results(body.get("messages") or [])
    if results is not None:
        return ToolAnswer([], False, result_answer(results))
    tool_choice = body.get("tool_choice") if native else None
    calls = choose_calls(tools, prompt, tool_choice)
    if persona.tool_style == "none":
        return ToolAnswer([], False, mention_text(calls)) if calls else None
    mistake = None
    erring = rng.random() >= persona.tool_accuracy
    if erring and tool_choice in (None, "auto"):
        calls, mistake = make_mistake(calls, tools, prompt, rng)
    if not calls:
        return None if mistake is None else ToolAnswer([], False, _no_call_text(rng), mistake)
    if native and persona.tool_style == "native":
        return ToolAnswer(calls, True, mistake=mistake)
    style = "hermes" if persona.tool_style == "native" else persona.tool_style
    return ToolAnswer(calls, False, textgen.tool_call_text(style, calls), mistake)


def _no_call_text(rng: random.Random) -> str:
    return "".join(textgen.prose_tokens(rng, n_tokens=rng.randint(20, 60)))
