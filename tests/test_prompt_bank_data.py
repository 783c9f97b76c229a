"""The shipped prompt bank as data: coverage, ids, target lengths, and checks that match what is asked.

A check that the prompt text does not ask for would mark good answers as failures and make the
prompt_variety figures lie, so every named check is held against the prompt's wording here, and a
sample is answered by the simulator (which follows the asked form) to show the checks can pass.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from soaktui.locations import package_data_dir
from soaktui.scenarios.checks import LANG_ALIASES, run_checks
from soaktui.scenarios.prompt_bank import Prompt, PromptBank
from soaktui.simulator import SimConfig, default_personas, run_in_thread

pytestmark = pytest.mark.unit

REQUIRED = {
    "technical_analysis": {"architecture", "security", "performance"},
    "code_generation": {"python", "react", "sql", "system_design"},
    "problem_solving": {"debugging", "optimization", "scaling"},
    "devops": {"ci_cd", "infrastructure", "monitoring"},
    "business_logic": {"workflows", "pricing", "recommendations"},
}
ID_PREFIX = {"technical_analysis": "ta-", "code_generation": "cg-", "problem_solving": "ps-"}
ID_PREFIX |= {"devops": "do-", "business_logic": "bl-"}
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
FENCE = re.compile(r"```[ \t]*([A-Za-z][\w+#.-]*)")
WORDS_ASKED = re.compile(r"\b(\d[\d,]*)\s+words\b", re.I)

BANK = PromptBank.load([package_data_dir("prompts")])
PROMPTS = BANK.prompts


def _ids(prompts: list[Prompt]) -> list[str]:
    return [p.id for p in prompts]


def test_bank_size_and_coverage() -> None:
    assert len(PROMPTS) >= 120
    per_cat = Counter(p.category for p in PROMPTS)
    per_sub = Counter((p.category, p.subcategory) for p in PROMPTS)
    for cat, subs in REQUIRED.items():
        assert per_cat[cat] >= 20, (cat, per_cat[cat])
        for sub in subs:
            assert per_sub[(cat, sub)] >= 4, (cat, sub, per_sub[(cat, sub)])


def test_ids_are_unique_and_named_by_category() -> None:
    ids = _ids(PROMPTS)
    assert len(ids) == len(set(ids))
    for p in PROMPTS:
        prefix = ID_PREFIX.get(p.category)
        if prefix:
            assert re.fullmatch(re.escape(prefix) + r"[a-z]+-\d{3}", p.id), p.id


def test_prompt_texts_are_distinct() -> None:
    openings = Counter(" ".join(p.prompt.split()[:6]).lower() for p in PROMPTS)
    assert len({p.prompt for p in PROMPTS}) == len(PROMPTS)
    assert openings.most_common(1)[0][1] <= 3, openings.most_common(3)


def test_most_prompts_carry_a_check() -> None:
    assert sum(bool(p.checks) for p in PROMPTS) >= 0.6 * len(PROMPTS)


@pytest.mark.parametrize("p", PROMPTS, ids=_ids(PROMPTS))
def test_target_tokens_and_checks_match_the_prompt(p: Prompt) -> None:
    assert 150 <= p.target_tokens <= 1200
    text = p.prompt
    fences = [f.lower() for f in FENCE.findall(text)]
    assert len(set(fences)) <= 1, "one requested fence per prompt"
    if "code_block" in p.checks:
        lang = p.checks["code_block"]
        assert fences and fences[0] in LANG_ALIASES.get(lang, {lang}), (lang, fences)
    elif fences:
        pytest.fail(f"the prompt asks for a ```{fences[0]} block but has no code_block check")
    if "sql" in p.checks:
        assert fences and fences[0] in LANG_ALIASES["sql"]
    if "items" in p.checks:
        n = int(p.checks["items"])
        said = rf"\b(?:{n}|{NUMBER_WORDS[n]})\b" if n < len(NUMBER_WORDS) else rf"\b{n}\b"
        assert re.search(said, text, re.I), f"items {n} not said in the prompt"
        assert re.search(r"\blist\b|\bbullet", text, re.I)
    if "json" in p.checks:
        assert "JSON" in text and re.search(r"\bonly JSON\b|\bas JSON\b|\ba JSON object\b", text)
    asked_words = WORDS_ASKED.findall(text)
    if "min_words" in p.checks:
        assert asked_words, "a min_words check needs the prompt to ask for a length in words"
        asked = int(asked_words[-1].replace(",", ""))
        assert int(p.checks["min_words"]) <= asked <= p.target_tokens
    if asked_words:
        assert int(asked_words[-1].replace(",", "")) <= p.target_tokens


@pytest.fixture(scope="module")
def compliant_sim() -> Iterator[str]:
    personas = [replace(p, compliance=1.0) for p in default_personas()]
    handle = run_in_thread(SimConfig(personas=personas, speed=1e5))
    try:
        yield handle.base_url
    finally:
        handle.stop()


@pytest.mark.integration
def test_simulator_answers_pass_the_checks(compliant_sim: str) -> None:
    """A model that follows the asked form passes every check, within prompt_variety's max_tokens."""
    rng = random.Random(7)
    by_kind: dict[str, list[Prompt]] = {}
    for p in PROMPTS:
        for name in p.checks or {"none": True}:
            by_kind.setdefault(name, []).append(p)
    sample = {
        p.id: p for kind in sorted(by_kind) for p in rng.sample(by_kind[kind], min(8, len(by_kind[kind])))
    }
    assert len(sample) >= 30
    with httpx.Client(base_url=compliant_sim, timeout=10.0) as c:
        for p in sample.values():
            body = {
                "model": "sim-qwen2.5-7b-instruct",
                "messages": [{"role": "user", "content": p.prompt}],
                "max_tokens": int(p.target_tokens * 1.5) + 64,
            }
            r = c.post("/v1/chat/completions", json=body).json()
            choice = r["choices"][0]
            assert choice["finish_reason"] == "stop", p.id
            assert run_checks(choice["message"]["content"], p.checks) == dict.fromkeys(p.checks, True), p.id
