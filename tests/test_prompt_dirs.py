"""Your own prompt directories: they extend all three banks, and a bad line stops the run at once."""

from __future__ import annotations

import json
import random

import pytest

from soaktui.errors import SetupError
from soaktui.scenarios import REGISTRY
from soaktui.scenarios.banks import load_prompt_bank, scenario_factories
from soaktui.simulator import SimConfig, run_in_thread
from tests.test_soak import soak

pytestmark = pytest.mark.unit

TOOL_PROMPT = {
    "id": "mine-weather-oslo",
    "kind": "explicit",
    "prompt": "Use get_weather for Oslo.",
    "calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}],
}
TASK = {
    "id": "mine-ping",
    "name": "Ping",
    "prompt": "Return the host web-01 and whether it is up (it is).",
    "schema": {
        "type": "object",
        "properties": {"host": {"type": "string"}, "up": {"type": "boolean"}},
        "required": ["host", "up"],
        "additionalProperties": False,
    },
}
GENERAL = {"id": "mine-haiku", "category": "mine", "subcategory": "poem", "prompt": "A haiku.", "target_tokens": 30}


@pytest.fixture
def sim():
    with run_in_thread(SimConfig(flavor="lmstudio", seed=1, speed=40.0)) as handle:
        yield handle


def write_dir(root, general=GENERAL, tool=TOOL_PROMPT, task=TASK):
    (root / "tools").mkdir(parents=True)
    (root / "structured").mkdir()
    (root / "general.jsonl").write_text(json.dumps(general) + "\n")
    (root / "tools" / "mine.jsonl").write_text(json.dumps(tool) + "\n")
    (root / "structured" / "mine.jsonl").write_text(json.dumps(task) + "\n")
    return root


def test_no_user_dirs_keeps_the_shipped_scenarios():
    assert scenario_factories([]) == dict(REGISTRY)


def test_user_dirs_extend_every_bank(tmp_path):
    d = write_dir(tmp_path / "mine")
    bank = load_prompt_bank([d])
    assert "mine-haiku" in {p.id for p in bank.prompts} and len(bank.prompts) > 100
    scenarios = scenario_factories([d])
    tools = scenarios["tool_calling"]()
    assert "mine-weather-oslo" in {p.id for p in tools.bank.prompts} and len(tools.bank.prompts) > 50
    structured = scenarios["structured_output"]()
    assert "mine-ping" in {t.id for t in structured.tasks} and len(structured.tasks) > 10
    assert tools.bank.pick(random.Random(1)) is not None


@pytest.mark.parametrize("sub", ["tools", "structured"])
def test_a_bad_line_names_its_file_and_line(tmp_path, sub):
    d = write_dir(tmp_path / "mine")
    (d / sub / "mine.jsonl").write_text("// a comment\n{not json\n")
    with pytest.raises(SetupError, match=r"mine\.jsonl:2"):
        scenario_factories([d])


def test_a_duplicate_id_of_a_shipped_prompt_is_an_error(tmp_path):
    d = write_dir(tmp_path / "mine", tool={**TOOL_PROMPT, "id": "explicit-status-disk-db02"})
    with pytest.raises(SetupError, match="already defined"):
        scenario_factories([d])


@pytest.mark.integration
@pytest.mark.slow
def test_config_prompt_dirs_reach_the_run_and_a_bad_one_stops_it(sim, tmp_path):
    d = write_dir(tmp_path / "mine")
    code, events = soak(
        tmp_path / "run",
        sim.base_url,
        duration="6s",
        prompt_dirs=[str(d)],
        scenarios=["tool_calling"],
    )
    assert code == 0
    used = {e.get("prompt_id") for e in events if e["kind"] == "tool_call"}
    assert used, "no tool_call event"
    bad = tmp_path / "bad"
    write_dir(bad)
    (bad / "tools" / "mine.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(SetupError, match=r"mine\.jsonl:1"):
        soak(tmp_path / "run2", sim.base_url, prompt_dirs=[str(bad)])
