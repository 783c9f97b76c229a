"""The tool-calling prompt bank (`prompts/tools/*.jsonl`): what to ask, and which calls are right.

Each line is one prompt with the call(s) a correct answer makes, written the way the Berkeley
Function Calling Leaderboard writes its "possible answers": every argument maps to a list of
accepted values, and `null` in that list means the argument may be left out. A string may also be
accepted by a pattern, `{"regex": "..."}` (searched case-insensitively). Arguments a prompt does
not list are free: any value the tool's schema allows.

    {"id": "implicit-cpu-web01", "kind": "implicit",
     "prompt": "What is the current CPU usage on web-01?",
     "calls": [{"name": "get_system_status",
                "arguments": {"host": ["web-01"], "metric": ["cpu"]}}]}

Kinds: `explicit` (the prompt names the function), `implicit` (it does not), `irrelevant` (no tool
applies: `calls` is empty), `parallel` (two or more calls in one answer, in any order),
`multi_turn` (one call; then `results` holds the tool result to feed back for each call, and
`answer_contains` the values the final answer must repeat). `tools` optionally limits the tools
offered (default: the whole catalog). Lines starting with `//` are comments.

A bank that a model is judged against must itself be right, so the loader checks every entry (known
tools, accepted values that validate against the tool's schema, required arguments that cannot be
omitted, an explicit prompt that names its function, answer values that come from the results) and
names the file and line of the first bad one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from soaktui.datafiles import require, unique_entries
from soaktui.errors import SetupError
from soaktui.locations import package_data_dir
from soaktui.toolcalls import catalog

KINDS = ("explicit", "implicit", "irrelevant", "parallel", "multi_turn")
_KEYS = frozenset({"id", "kind", "prompt", "calls", "tools", "results", "answer_contains"})


@dataclass(frozen=True)
class ExpectedCall:
    name: str
    arguments: dict[str, tuple[Any, ...]]  # argument -> accepted values (None: may be omitted)


@dataclass(frozen=True)
class ToolPrompt:
    id: str
    kind: str
    prompt: str
    calls: tuple[ExpectedCall, ...]
    tools: tuple[str, ...]  # the tools offered, catalog order
    results: tuple[dict[str, Any], ...] = ()  # multi_turn: the result of each expected call
    answer_contains: tuple[Any, ...] = ()  # multi_turn: values the final answer must repeat
    where: str = field(default="", compare=False)  # file:line, for messages


def is_regex(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"regex"} and isinstance(value["regex"], str)


def example_arguments(call: ExpectedCall) -> dict[str, Any]:
    """One concrete argument object from the accepted values: the first literal of each argument,
    leaving out arguments whose first accepted choice is omission or a pattern."""
    out: dict[str, Any] = {}
    for arg, accepted in call.arguments.items():
        first = accepted[0]
        if first is not None and not is_regex(first):
            out[arg] = first
    return out


def scalar_values(obj: Any) -> list[Any]:
    """Every string/number inside a tool result (nested objects and lists included)."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in scalar_values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in scalar_values(x)]
    if isinstance(obj, (str, int, float)) and not isinstance(obj, bool):
        return [obj]
    return []


def _fail(where: str, message: str) -> SetupError:
    return SetupError(f"{where}: {message}")


def _accepted(where: str, tool: str, arg: str, values: Any, schema: dict[str, Any], required: bool) -> tuple:
    label = f"{tool}.{arg}"
    if not isinstance(values, list) or not values:
        raise _fail(where, f"{label}: accepted values must be a non-empty list, got {values!r}")
    for v in values:
        if v is None:
            if required:
                raise _fail(where, f"{label} is required by the tool: null (omission) cannot be accepted")
            continue
        if is_regex(v):
            if schema.get("type") != "string":
                raise _fail(where, f"{label}: a regex is only accepted for string arguments")
            try:
                re.compile(v["regex"])
            except re.error as exc:
                raise _fail(where, f"{label}: bad regex {v['regex']!r}: {exc}") from None
            continue
        try:
            jsonschema.validate(v, schema)
        except jsonschema.ValidationError as exc:
            raise _fail(
                where, f"{label}: accepted value {v!r} is invalid for the tool: {exc.message}"
            ) from None
    return tuple(values)


def _call(where: str, raw: Any, offered: tuple[str, ...]) -> ExpectedCall:
    if not isinstance(raw, dict) or set(raw) - {"name", "arguments"} or "name" not in raw:
        raise _fail(where, f"a call must be {{'name', 'arguments'}}, got {raw!r}")
    name = raw["name"]
    if name not in offered:
        raise _fail(where, f"call to {name!r}, which is not among the offered tools")
    args = raw.get("arguments") or {}
    if not isinstance(args, dict):
        raise _fail(where, f"{name}: arguments must be an object")
    params = catalog.parameters(name)
    props = params["properties"]
    required = set(params.get("required", ()))
    unknown = sorted(set(args) - set(props))
    if unknown:
        raise _fail(where, f"{name} has no argument {unknown[0]!r} (it has {', '.join(props)})")
    missing = sorted(required - set(args))
    if missing:
        raise _fail(where, f"{name}: required argument {missing[0]!r} needs accepted values")
    accepted = {a: _accepted(where, name, a, v, props[a], a in required) for a, v in args.items()}
    call = ExpectedCall(name, accepted)
    example = example_arguments(call)
    try:
        jsonschema.validate(example, params)
    except jsonschema.ValidationError as exc:
        raise _fail(where, f"{name}: the expected call {example} is invalid: {exc.message}") from None
    return call


def parse_entry(d: dict[str, Any], where: str) -> ToolPrompt:
    """One bank entry (a decoded line), validated; raises SetupError naming `where` (file:line)."""
    extra = sorted(set(d) - _KEYS)
    if extra:
        raise _fail(where, f"unknown key {extra[0]!r} (known: {', '.join(sorted(_KEYS))})")
    require(d, ("id", "kind", "prompt", "calls"), where)
    pid, kind, prompt = d["id"], d["kind"], d["prompt"]
    if not isinstance(pid, str) or not pid.strip():
        raise _fail(where, "id must be a non-empty string")
    if kind not in KINDS:
        raise _fail(where, f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _fail(where, "prompt must be a non-empty string")
    names = d.get("tools", list(catalog.TOOL_NAMES))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _fail(where, "tools must be a non-empty list of tool names")
    unknown = [n for n in names if n not in catalog.TOOL_NAMES]
    if unknown:
        raise _fail(where, f"unknown tool {unknown[0]!r} (known: {', '.join(catalog.TOOL_NAMES)})")
    offered = tuple(n for n in catalog.TOOL_NAMES if n in names)
    if not isinstance(d["calls"], list):
        raise _fail(where, "calls must be a list")
    calls = tuple(_call(where, c, offered) for c in d["calls"])
    want = {"irrelevant": (0, 0), "parallel": (2, 5)}.get(kind, (1, 1))
    if not want[0] <= len(calls) <= want[1]:
        raise _fail(where, f"a {kind} prompt has {want[0]}..{want[1]} calls, this one has {len(calls)}")
    mentioned = [c.name for c in calls if c.name in prompt]
    if kind == "explicit" and not mentioned:
        raise _fail(where, f"an explicit prompt names its function ({calls[0].name})")
    if kind == "implicit" and mentioned:
        raise _fail(where, f"an implicit prompt must not name its function ({mentioned[0]})")
    results: tuple[dict[str, Any], ...] = ()
    contains: tuple[Any, ...] = ()
    if kind == "multi_turn":
        raw_results, raw_contains = d.get("results"), d.get("answer_contains")
        if not isinstance(raw_results, list) or len(raw_results) != len(calls):
            raise _fail(where, "a multi_turn prompt needs `results`: one tool result object per call")
        if not all(isinstance(r, dict) and r for r in raw_results):
            raise _fail(where, "each result must be a non-empty JSON object")
        if not isinstance(raw_contains, list) or not raw_contains:
            raise _fail(where, "a multi_turn prompt needs `answer_contains`: values the answer must repeat")
        values = [v for r in raw_results for v in scalar_values(r)]
        for item in raw_contains:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise _fail(where, f"answer_contains items are strings or numbers, got {item!r}")
            if item not in values:
                raise _fail(where, f"answer_contains {item!r} is not a value of the tool results")
        results, contains = tuple(raw_results), tuple(raw_contains)
    elif "results" in d or "answer_contains" in d:
        raise _fail(where, "results/answer_contains belong to multi_turn prompts only")
    return ToolPrompt(pid, kind, prompt, calls, offered, results, contains, where)


class ToolPromptBank:
    def __init__(self, prompts: list[ToolPrompt]) -> None:
        if not prompts:
            raise SetupError("the tool-calling prompt bank is empty")
        self.prompts = prompts
        self.by_kind = {k: [p for p in prompts if p.kind == k] for k in KINDS}

    @classmethod
    def load(cls, dirs: list[Path]) -> ToolPromptBank:
        return cls(unique_entries(dirs, parse_entry, "tool prompt"))

    def get(self, prompt_id: str) -> ToolPrompt:
        return next(p for p in self.prompts if p.id == prompt_id)

    def pick(self, rng: random.Random) -> ToolPrompt:
        """Uniform over the kinds the bank has, then over that kind's prompts."""
        kind = rng.choice([k for k in KINDS if self.by_kind[k]])
        return rng.choice(self.by_kind[kind])


@lru_cache(maxsize=1)
def shipped_bank() -> ToolPromptBank:
    """The bank soaktui ships (prompts/tools/), loaded and validated once per process."""
    return ToolPromptBank.load([package_data_dir("prompts") / "tools"])
