"""The prompt bank: enterprise prompts as data files (`prompts/*.jsonl`), plus the user's own.

Each line is one prompt: `id`, `category`, `subcategory`, `prompt`, `target_tokens` (the answer
length it asks for) and optional `checks` (see soaktui/scenarios/checks.py). Files are validated
when loaded; a bad line is reported with its file and line number (a SetupError), never skipped
silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soaktui.datafiles import require, unique_entries
from soaktui.errors import SetupError
from soaktui.scenarios.checks import CHECKS


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str
    subcategory: str
    prompt: str
    target_tokens: int
    checks: dict[str, Any] = field(default_factory=dict)


def _parse(d: dict[str, Any], where: str) -> Prompt:
    require(d, ("id", "category", "subcategory", "prompt", "target_tokens"), where)
    checks = d.get("checks") or {}
    unknown = [k for k in checks if k not in CHECKS]
    if unknown:
        raise SetupError(f"{where}: unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})")
    tt = d["target_tokens"]
    if not isinstance(tt, int) or not 1 <= tt <= 100_000:
        raise SetupError(f"{where}: target_tokens must be an integer 1..100000, got {tt!r}")
    return Prompt(str(d["id"]), str(d["category"]), str(d["subcategory"]), str(d["prompt"]), tt, dict(checks))


class PromptBank:
    def __init__(self, prompts: list[Prompt]) -> None:
        if not prompts:
            raise SetupError("the prompt bank is empty")
        self.prompts = prompts

    @classmethod
    def load(cls, dirs: list[Path]) -> PromptBank:
        return cls(unique_entries(dirs, _parse, "prompt"))

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.prompts})

    def pick(self, rng: random.Random) -> Prompt:
        """Uniform over categories first, then over prompts in it, so small categories get airtime."""
        cat = rng.choice(self.categories())
        return rng.choice([p for p in self.prompts if p.category == cat])
