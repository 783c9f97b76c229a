"""The scenarios of a run with the prompt banks it draws from: the shipped banks plus the user's.

A user prompt directory (`--prompts DIR`, config `prompt_dirs`) holds prompt_variety prompts as
`*.jsonl` at its top and may hold tool-calling prompts in `tools/` and structured-output tasks in
`structured/`, in the shipped formats (prompts/README.md). Every bank is loaded and validated before
the run starts, so a bad line stops it at once, naming the file and line, instead of hours later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from soaktui.locations import package_data_dir
from soaktui.scenarios import REGISTRY
from soaktui.scenarios.base import Scenario
from soaktui.scenarios.prompt_bank import PromptBank
from soaktui.scenarios.schema_tasks import SUBDIR as STRUCTURED_SUBDIR
from soaktui.scenarios.schema_tasks import load_tasks
from soaktui.scenarios.structured_output import StructuredOutput
from soaktui.scenarios.tool_calling import ToolCalling
from soaktui.toolcalls.prompts import ToolPromptBank

TOOLS_SUBDIR = "tools"

ScenarioFactory = Callable[[], Scenario]


def load_prompt_bank(user_dirs: Sequence[Path]) -> PromptBank:
    return PromptBank.load([package_data_dir("prompts"), *user_dirs])


def _with_user(subdir: str, user_dirs: Sequence[Path]) -> list[Path]:
    shipped = package_data_dir("prompts") / subdir
    return [shipped, *(d / subdir for d in user_dirs if (d / subdir).is_dir())]


def scenario_factories(user_dirs: Sequence[Path]) -> dict[str, ScenarioFactory]:
    """REGISTRY, with the tool-calling and structured-output banks extended by the user's dirs."""
    factories: dict[str, ScenarioFactory] = dict(REGISTRY)
    if any((d / TOOLS_SUBDIR).is_dir() for d in user_dirs):
        bank = ToolPromptBank.load(_with_user(TOOLS_SUBDIR, user_dirs))
        factories[ToolCalling.name] = partial(ToolCalling, bank=bank)
    if any((d / STRUCTURED_SUBDIR).is_dir() for d in user_dirs):
        tasks = load_tasks(_with_user(STRUCTURED_SUBDIR, user_dirs))
        factories[StructuredOutput.name] = partial(StructuredOutput, tasks=tasks)
    return factories
