"""The prompt bank loader and the cheap answer checks it names."""

from __future__ import annotations

import random

import pytest

from soaktui.errors import SetupError
from soaktui.locations import package_data_dir
from soaktui.scenarios.checks import code_block, items, json_parses, min_words, run_checks, sql
from soaktui.scenarios.prompt_bank import PromptBank

pytestmark = pytest.mark.unit

PY = "Here you go:\n```python\ndef f():\n    return 1\n```\n"


def test_code_block_needs_the_language_and_a_body():
    assert code_block(PY, "python")
    assert code_block("```py\nx = 1\n```", "python")
    assert code_block("```jsx\n<A/>\n```", "javascript")
    assert not code_block(PY, "sql")
    assert not code_block("```python\n```", "python")
    assert not code_block("def f(): return 1", "python")


def test_sql_in_a_block_or_starting_a_line():
    assert sql("```sql\nSELECT id FROM t;\n```")
    assert sql("```sql\nALTER TABLE t ADD COLUMN c int;\nCREATE INDEX i ON t(c);\n```")
    assert sql("SELECT name\nFROM customers;")
    assert not sql("We picked the vendor from the shortlist with care.")
    assert not sql("```python\nprint('select from')\n```")


def test_items_counts_bullets_and_numbers():
    text = "1. one\n2. two\n- three\n* four\n"
    assert items(text, 4) and not items(text, 5)
    assert not items("one, two, three", 1)


def test_json_parses_bare_or_fenced():
    assert json_parses('{"a": 1}')
    assert json_parses('Sure:\n```json\n{"a": [1, 2]}\n```')
    assert not json_parses('{"a": 1')
    assert not json_parses("no json here")


def test_min_words_and_run_checks():
    assert min_words("a b c", 3) and not min_words("a b", 3)
    assert run_checks(PY, {"code_block": "python", "min_words": 2}) == {"code_block": True, "min_words": True}


def test_shipped_bank_covers_the_categories():
    bank = PromptBank.load([package_data_dir("prompts")])
    assert len(bank.prompts) >= 20
    assert set(bank.categories()) >= {
        "technical_analysis",
        "code_generation",
        "problem_solving",
        "devops",
        "business_logic",
    }
    rng = random.Random(1)
    picked = {bank.pick(rng).category for _ in range(200)}
    assert picked == set(bank.categories())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "x"}', "missing category"),
        (
            '{"id": "x", "category": "c", "subcategory": "s", "prompt": "p", "target_tokens": 0}',
            "target_tokens",
        ),
        (
            '{"id": "x", "category": "c", "subcategory": "s", "prompt": "p", "target_tokens": 9, "checks": {"nope": 1}}',
            "unknown check 'nope'",
        ),
    ],
)
def test_bad_prompt_files_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n" + line + "\n")
    with pytest.raises(SetupError) as err:
        PromptBank.load([tmp_path])
    assert message in str(err.value) and "mine.jsonl:2" in str(err.value)


def test_duplicate_ids_and_missing_dirs_are_errors(tmp_path):
    good = '{"id": "x", "category": "c", "subcategory": "s", "prompt": "p", "target_tokens": 9}\n'
    (tmp_path / "a.jsonl").write_text(good)
    (tmp_path / "b.jsonl").write_text(good)
    with pytest.raises(SetupError, match="already defined"):
        PromptBank.load([tmp_path])
    with pytest.raises(SetupError, match="does not exist"):
        PromptBank.load([tmp_path / "missing"])
