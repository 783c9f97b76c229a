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
_SQL_STATEMENT = (
    r"(?:SELECT\b[\s\S]+?\bFROM|INSERT\s+INTO|UPDATE\b[\s\S]+?\bSET|DELETE\s+FROM|WITH\b[\s\S]+?\bAS"
    r"|CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW)|ALTER\s+TABLE|DROP\s+(?:TABLE|INDEX|VIEW))\b"
)
_SQL_IN_BLOCK = re.compile(r"\b" + _SQL_STATEMENT, re.I)
_SQL_IN_TEXT = re.compile(r"^\s*" + _SQL_STATEMENT, re.I | re.M)  # prose must start a line with it

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
    """A SQL statement in a SQL (or unlabelled) fenced block; without fences, a line that starts one."""
    fences = list(_FENCE.finditer(text))
    if fences:
        blocks = [m.group(2) for m in fences if m.group(1).lower() in LANG_ALIASES["sql"] | {""}]
        return any(_SQL_IN_BLOCK.search(b) for b in blocks)
    return bool(_SQL_IN_TEXT.search(text))


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
