"""Cheap deterministic checks of an answer, named in the prompt bank.

Each check takes the answer text and the check's argument and returns True/False. They are
deliberately simple (a fenced block in the asked language, SQL keywords, an item count, JSON that
parses): they tell whether the model followed the instruction's form, not whether it is right.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)```", re.S)
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.M)
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|WITH)\b[\s\S]*?\b(FROM|INTO|SET|TABLE|AS)\b", re.I)

LANG_ALIASES = {
    "python": {"python", "py", "python3"},
    "javascript": {"javascript", "js", "jsx", "react", "tsx", "typescript", "ts"},
    "typescript": {"typescript", "ts", "tsx"},
    "sql": {"sql", "postgresql", "postgres", "mysql", "sqlite"},
    "bash": {"bash", "sh", "shell", "console", "zsh"},
    "yaml": {"yaml", "yml"},
    "json": {"json"},
    "dockerfile": {"dockerfile", "docker"},
    "go": {"go", "golang"},
}


def code_block(text: str, lang: str) -> bool:
    """A fenced code block labelled with the language (or an alias)."""
    wanted = LANG_ALIASES.get(lang.lower(), {lang.lower()})
    return any(m.group(1).lower() in wanted and m.group(2).strip() for m in _FENCE.finditer(text))


def sql(text: str, _: Any = True) -> bool:
    """SQL statement keywords in a fenced block, or in the text when there is no fence."""
    blocks = [m.group(2) for m in _FENCE.finditer(text)] or [text]
    return any(_SQL.search(b) for b in blocks)


def items(text: str, n: int) -> bool:
    """At least `n` list items (bulleted or numbered lines)."""
    return len(_ITEM.findall(text)) >= int(n)


def json_parses(text: str, _: Any = True) -> bool:
    """The answer, or its first fenced block, is JSON that parses."""
    candidates = [m.group(2) for m in _FENCE.finditer(text)] + [text.strip()]
    for c in candidates:
        try:
            orjson.loads(c)
            return True
        except orjson.JSONDecodeError:
            continue
    return False


def min_words(text: str, n: int) -> bool:
    return len(text.split()) >= int(n)


CHECKS: dict[str, Callable[[str, Any], bool]] = {
    "code_block": code_block,
    "sql": sql,
    "items": items,
    "json": json_parses,
    "min_words": min_words,
}


def run_checks(text: str, spec: dict[str, Any]) -> dict[str, bool]:
    return {name: CHECKS[name](text, arg) for name, arg in spec.items()}
