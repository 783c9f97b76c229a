"""Judging a model's tool calls the way the Berkeley Function Calling Leaderboard does.

A detection (what the model called, soaktui.toolcalls.detect) is checked against a bank prompt's
expected calls, stage by stage, and the first stage that fails names the verdict:

    decision      it called a tool iff one applies (a tool named in prose is intent, not a call)
    count         as many calls as expected (parallel prompts: two or more)
    name          each expected function was called (calls are matched in any order)
    args_parse    the arguments decoded to a JSON object
    schema_valid  they validate against the tool's JSON Schema (jsonschema)
    values        each listed argument has an accepted value, after normalisation: strings ignore
                  case, whitespace and punctuation (not `#`, `@`, `%`, `&`), numbers compare as
                  numbers (5 == 5.0), ISO dates and times compare as instants; an argument may be
                  left out only where `null` is accepted
    uses_result   multi_turn only: the final answer repeats the values the tool returned

A check is None when it does not apply or was not reached. A failure caused by the answer being cut
off (a call that runs off the end, or `finish_reason: length` before any call) is `truncated`.

Text shaped like a call that soaktui cannot read (detection format `unparsed`) is `unparsed_call`
on every prompt kind: not a call, so never correct where one was expected, and not a refusal, so
never correct where no tool applies either. Its detail quotes the text, so the report and the feed
say "calls tools in a format soaktui does not read" instead of "refuses".
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema

from soaktui.toolcalls import catalog
from soaktui.toolcalls.calls import TRUNCATED, UNPARSED_PREFIX, DetectedCall, Detection
from soaktui.toolcalls.detect import strip_think
from soaktui.toolcalls.prompts import ExpectedCall, ToolPrompt, is_regex

CHECKS = ("decision", "count", "name", "args_parse", "schema_valid", "values", "uses_result")
VERDICTS = (
    "correct",
    "missed_call",
    "false_call",
    "wrong_name",
    "bad_args",
    "schema_invalid",
    "wrong_values",
    "wrong_count",
    "no_result_use",
    "truncated",
    "unparsed_call",
    "request_failed",
)
_FAILS = {
    "count": "wrong_count",
    "name": "wrong_name",
    "args_parse": "bad_args",
    "schema_valid": "schema_invalid",
    "values": "wrong_values",
    "uses_result": "no_result_use",
}
MAX_MATCHED = 8  # calls considered when pairing them with expected calls (permutations)
MAX_DETAIL = 200


@dataclass
class Score:
    checks: dict[str, bool | None]
    verdict: str
    detail: str | None = None  # why it is not correct, for people reading the log
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (expected index, call index)

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


def _blank() -> dict[str, bool | None]:
    return dict.fromkeys(CHECKS)


def request_failed(why: str | None, before: Score | None = None) -> Score:
    """A request failed: nothing more to judge. `before`: the first turn's score, whose checks stand."""
    checks = dict(before.checks) if before is not None else _blank()
    pairs = before.pairs if before is not None else []
    return Score(checks, "request_failed", _short(why or "request failed"), pairs)


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


# -- value normalisation ---------------------------------------------------------------------------

_KEEP = frozenset("#@%&")


def norm_text(s: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form of a string (keeps #, @, %, &)."""
    return "".join(
        c
        for c in unicodedata.normalize("NFKC", s).casefold()
        if not c.isspace() and (c in _KEEP or not unicodedata.category(c).startswith("P"))
    )


_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*(?:Z|UTC|[+-]\d{2}:?\d{2})?$"
)
_ISO_TIME = re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?$")


def as_instant(s: str) -> dt.datetime | dt.time | None:
    """An ISO 8601 date, date-time or time as a comparable value (naive = UTC), else None."""
    s = s.strip()
    if _ISO_TIME.match(s):
        h, m, *rest = (int(x) for x in s.split(":"))
        return dt.time(h, m, rest[0] if rest else 0) if h < 24 and m < 60 else None
    if not _ISO_DATE.match(s):
        return None
    s = re.sub(r"\s*(?:Z|UTC)$", "+00:00", s)
    s = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", s)
    try:
        value = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def value_matches(value: Any, want: Any, schema: dict[str, Any] | None = None) -> bool:
    """Does `value` (what the model sent) equal the accepted value `want`, after normalisation?"""
    schema = schema or {}
    if is_regex(want):
        return (
            isinstance(value, str) and re.search(want["regex"], value, re.IGNORECASE | re.DOTALL) is not None
        )
    if isinstance(want, bool) or isinstance(value, bool):
        return isinstance(want, bool) and isinstance(value, bool) and value == want
    if _is_number(want):
        return _is_number(value) and math.isclose(float(value), float(want), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, str):
        if not isinstance(value, str):
            return False
        if norm_text(value) == norm_text(want):
            return True
        a, b = as_instant(value), as_instant(want)
        return a is not None and b is not None and type(a) is type(b) and a == b
    if isinstance(want, list):
        if not isinstance(value, list) or len(value) != len(want):
            return False
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        if schema.get("uniqueItems"):  # a set: any order
            left = list(value)
            for w in want:
                hit = next((i for i, v in enumerate(left) if value_matches(v, w, items)), None)
                if hit is None:
                    return False
                left.pop(hit)
            return True
        return all(value_matches(v, w, items) for v, w in zip(value, want, strict=True))
    if isinstance(want, dict):
        if not isinstance(value, dict) or set(value) != set(want):
            return False
        props = schema.get("properties") or {}
        return all(value_matches(value[k], w, props.get(k)) for k, w in want.items())
    return value == want


# -- calls -----------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = catalog.parameters(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@dataclass
class _Pair:
    name: bool
    args_parse: bool | None = None
    schema_valid: bool | None = None
    values: bool | None = None
    truncated: bool = False
    why: str | None = None

    @property
    def depth(self) -> int:
        return sum(
            1 for _ in itertools.takewhile(bool, (self.name, self.args_parse, self.schema_valid, self.values))
        )


def _judge(expected: ExpectedCall, call: DetectedCall) -> _Pair:
    if call.name != expected.name:
        return _Pair(False, why=f"called {call.name!r}, expected {expected.name!r}")
    if call.arguments is None or call.parse_error is not None:
        cut = call.parse_error == TRUNCATED
        return _Pair(
            True, False, truncated=cut, why=f"{call.name}: arguments {call.parse_error or 'unreadable'}"
        )
    if call.name not in catalog.TOOL_NAMES:  # pragma: no cover - expected names come from the catalog
        return _Pair(True, True, False, why=f"{call.name} is not a known tool")
    error = jsonschema.exceptions.best_match(_validator(call.name).iter_errors(call.arguments))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        return _Pair(True, True, False, why=f"{call.name}: {where + ': ' if where else ''}{error.message}")
    props = catalog.parameters(call.name)["properties"]
    for arg, accepted in expected.arguments.items():
        if arg not in call.arguments:
            if None in accepted:
                continue
            return _Pair(True, True, True, False, why=f"{call.name}: {arg} missing")
        value = call.arguments[arg]
        if not any(w is not None and value_matches(value, w, props.get(arg)) for w in accepted):
            shown = [w for w in accepted if w is not None]
            return _Pair(True, True, True, False, why=f"{call.name}.{arg}={value!r}, accepted {shown!r}")
    return _Pair(True, True, True, True)


def _best_pairs(
    expected: tuple[ExpectedCall, ...], calls: list[DetectedCall]
) -> list[tuple[int, int, _Pair]]:
    """Pair expected calls with made calls in the order that gets furthest (parallel: any order)."""
    calls = calls[:MAX_MATCHED]
    judged = {(e, c): _judge(expected[e], calls[c]) for e in range(len(expected)) for c in range(len(calls))}
    n = min(len(expected), len(calls))
    best: list[tuple[int, int, _Pair]] = []
    best_key = (-1, -1)
    for exp_idx in itertools.combinations(range(len(expected)), n):
        for call_idx in itertools.permutations(range(len(calls)), n):
            pairs = [(e, c, judged[(e, c)]) for e, c in zip(exp_idx, call_idx, strict=True)]
            key = (sum(p.depth == 4 for _, _, p in pairs), sum(p.depth for _, _, p in pairs))
            if key > best_key:
                best, best_key = pairs, key
    return sorted(best)


def score_calls(detection: Detection, prompt: ToolPrompt, answer_cut: bool = False) -> Score:
    """Score one answer's calls against the prompt. `answer_cut`: the server stopped the answer at
    its token limit (finish_reason `length`)."""
    checks = _blank()
    should, made = bool(prompt.calls), list(detection.calls)
    cut = detection.truncated or answer_cut
    if detection.format == "unparsed":  # the decision cannot be judged: no check is set
        return Score(checks, "unparsed_call", _short(UNPARSED_PREFIX + (detection.excerpt or "")))
    checks["decision"] = should == bool(made)
    if not checks["decision"]:
        if should:
            verdict = "truncated" if cut else "missed_call"
            why = (
                "the answer was cut off before a call"
                if cut
                else (
                    "named a tool in prose but made no call"
                    if detection.format == "prose_mention"
                    else "no call made"
                )
            )
        else:
            verdict, why = "false_call", f"called {', '.join(c.name for c in made[:5])} where no tool applies"
        return Score(checks, verdict, _short(why))
    if not should:
        return Score(checks, "correct")
    checks["count"] = len(made) == len(prompt.calls)
    pairs = _best_pairs(prompt.calls, made)
    judged = [p for _, _, p in pairs]
    checks["name"] = all(p.name for p in judged)
    for stage in ("args_parse", "schema_valid", "values"):
        reached = [getattr(p, stage) for p in judged if getattr(p, stage) is not None]
        checks[stage] = all(reached) if reached else None
    verdict, why = "correct", None
    for stage in ("count", "name", "args_parse", "schema_valid", "values"):
        if checks[stage] is False:
            verdict = _FAILS[stage]
            if stage == "count":
                why = f"{len(made)} call(s), expected {len(prompt.calls)}"
            else:
                why = next(p.why for p in judged if getattr(p, stage) is False)
            break
    if verdict in ("wrong_count", "bad_args") and (cut or any(p.truncated for p in judged)):
        verdict = "truncated"
    return Score(checks, verdict, _short(why) if why else None, [(e, c) for e, c, _ in pairs])


# -- multi-turn: the final answer --------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def missing_values(answer: str, wanted: tuple[Any, ...]) -> list[Any]:
    """The values of `wanted` the answer does not repeat (numbers as numbers, strings normalised)."""
    text = strip_think(answer or "")
    numbers = [float(x) for x in _NUMBER.findall(_THOUSANDS.sub("", text))]
    flat = norm_text(text)
    missing = []
    for item in wanted:
        if _is_number(item):
            if not any(math.isclose(n, float(item), rel_tol=1e-9, abs_tol=1e-9) for n in numbers):
                missing.append(item)
        elif norm_text(str(item)) not in flat:
            missing.append(item)
    return missing


def score_answer(first: Score, answer: str, prompt: ToolPrompt, answer_cut: bool = False) -> Score:
    """Add the multi_turn check to a correct first turn: does the final answer use the result?"""
    checks = dict(first.checks)
    missing = missing_values(answer, prompt.answer_contains)
    checks["uses_result"] = not missing
    if not missing:
        return Score(checks, "correct", None, first.pairs)
    verdict = "truncated" if answer_cut else "no_result_use"
    shown = ", ".join(repr(m) for m in missing[:5])
    return Score(checks, verdict, _short(f"the final answer lacks {shown}"), first.pairs)
