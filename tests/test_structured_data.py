"""The shipped structured-output tasks, their loader, and the simulator's answers to them.

Every schema must be a valid JSON Schema (its metaschema's `check_schema`), must fit the part of JSON
Schema the simulator can write instances of (or its simulated models would fail for the wrong
reason), and the set must exercise what structured output is hard at: required fields, enums,
arrays of objects with item limits, nested objects, formats.
"""

from __future__ import annotations

import random

import jsonschema
import orjson
import pytest

from soaktui.errors import SetupError
from soaktui.locations import package_data_dir
from soaktui.scenarios.json_answer import extract_json
from soaktui.scenarios.schema_tasks import SUBDIR, load_tasks
from soaktui.simulator import structured
from soaktui.simulator.flavors import LLAMACPP, LMSTUDIO, OLLAMA, OPENAI, VLLM, FlavorAPI
from soaktui.simulator.instances import instance
from soaktui.simulator.personas import default_personas
from soaktui.simulator.textgen import count_tokens, split_tokens

pytestmark = pytest.mark.unit

TASKS = load_tasks()


def _walk(schema):
    yield schema
    for sub in (schema.get("properties") or {}).values():
        yield from _walk(sub)
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"])


def test_the_shipped_set_is_large_and_varied():
    assert len(TASKS) >= 12
    assert len({t.id for t in TASKS}) == len(TASKS)
    nodes = [n for t in TASKS for n in _walk(t.schema)]
    assert all(t.schema.get("required") for t in TASKS)
    assert sum("enum" in n for n in nodes) >= 12
    objects_in_arrays = [n for n in nodes if n.get("type") == "array" and n["items"].get("type") == "object"]
    assert len(objects_in_arrays) >= 8 and all("minItems" in n and "maxItems" in n for n in objects_in_arrays)
    nested = [
        n for t in TASKS for n in (t.schema.get("properties") or {}).values() if n.get("type") == "object"
    ]
    assert len(nested) >= 5
    assert {n.get("format") for n in nodes} >= {"date", "date-time", "email"}
    assert any(isinstance(n.get("type"), list) and "null" in n["type"] for n in nodes)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_every_schema_is_valid_and_the_simulator_can_fill_it(task):
    jsonschema.validators.validator_for(task.schema).check_schema(task.schema)
    assert task.schema["type"] == "object" and task.schema.get("additionalProperties") is False
    for seed in range(100):
        value = instance(task.schema, random.Random(seed))
        errors = [e.message for e in task.validator.iter_errors(value)]
        assert not errors, (seed, errors)
        bad = structured.violate(task.schema, value, random.Random(seed))
        assert not task.validator.is_valid(bad), seed


def test_instances_cover_the_limits():
    rng = random.Random(5)
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 3, "maximum": 5, "multipleOf": 2},
            "x": {"type": "number", "minimum": 0.5, "maximum": 0.5},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": True},
            "ref": {"$ref": "#/$defs/when"},
            "any": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "string", "format": "ipv4"}]},
            "c": {"const": "fixed"},
        },
        "required": ["n", "x", "tags", "ref", "any", "c"],
        "$defs": {"when": {"type": "string", "format": "date-time"}},
    }
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for _ in range(50):
        value = instance(schema, rng)
        assert validator.is_valid(value), value
        assert value["n"] == 4 and sorted(value["tags"]) == ["a", "b", "c"]


def test_broken_json_never_parses_and_runaway_json_outlives_its_limit():
    rng = random.Random(3)
    for task in TASKS:
        value = instance(task.schema, rng)
        for _ in range(10):
            text = structured.malformed(value, rng, fenced=False)
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(text)
        text = structured.runaway(value, rng, 120)
        pieces = split_tokens(text)
        assert len(pieces) > 120 and count_tokens(text) == len(pieces)
        ex = extract_json("".join(pieces[:120]))
        assert not ex.found and ex.runs_off


def test_the_prompt_schema_is_found():
    schema = TASKS[0].schema
    prompt = f"Do it. Use the {{placeholder}} form.\nAnswer with JSON only:\n{orjson.dumps(schema).decode()}"
    assert structured.schema_in_prompt(prompt) == schema
    assert structured.schema_in_prompt('Return JSON like {"a": 1} only.') is None


@pytest.mark.parametrize(
    ("flavor", "rf", "status", "schema"),
    [
        (
            LMSTUDIO,
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            None,
            True,
        ),
        (LMSTUDIO, {"type": "json_object"}, 400, None),
        (LMSTUDIO, {"type": "json_schema", "json_schema": {"name": "x"}}, 400, None),
        (
            OPENAI,
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            400,
            None,
        ),
        (OPENAI, {"type": "json_object"}, 400, None),
        (OPENAI, {"type": "text"}, None, None),
        (LLAMACPP, {"type": "json_object", "schema": {"type": "object"}}, None, True),
        (OLLAMA, {"type": "json_object", "schema": {"type": "object"}}, None, False),
        (
            VLLM,
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            None,
            True,
        ),
        (VLLM, {"type": "regex"}, 400, None),
    ],
)
def test_flavors_take_or_refuse_response_format(flavor, rf, status, schema):
    ask, refusal = FlavorAPI(flavor, default_personas()).structured_ask(rf)
    if status is None:
        assert refusal is None
        if schema is not None:
            assert ask is not None and (ask.schema is not None) == schema
    else:
        assert ask is None and refusal[0] == status
        assert "response_format" in orjson.dumps(refusal[1]).decode()


def test_loader_names_the_file_and_line_of_a_bad_task(tmp_path):
    good = orjson.dumps(
        {"id": "t-1", "name": "T", "prompt": "p", "schema": {"type": "object", "properties": {}}}
    ).decode()
    cases = {
        "{not json": "not valid JSON",
        '{"id": "t-2"}': "missing name, prompt, schema",
        '{"id": "has space", "name": "T", "prompt": "p", "schema": {"type": "object"}}': "id must be",
        '{"id": "t-3", "name": "T", "prompt": "p", "schema": {"type": "strng"}}': "schema must be",
        '{"id": "t-4", "name": "T", "prompt": "p", "schema": {"type": "object", "minProperties": -1}}': (
            "invalid JSON Schema at minProperties"
        ),
        '{"id": "t-5", "name": "T", "prompt": "p", "schema": {"type": "array", "items": {"type": 7}}}': (
            "invalid JSON Schema at items/type"
        ),
        good: "task id 't-1' already defined in",
    }
    for i, (line, message) in enumerate(cases.items()):
        d = tmp_path / f"case{i}"
        d.mkdir()
        (d / "tasks.jsonl").write_text(f"// a comment\n{good}\n\n{line}\n")
        with pytest.raises(SetupError, match=message) as info:
            load_tasks([d])
        assert "tasks.jsonl:4: " in str(info.value)
    with pytest.raises(SetupError, match="does not exist"):
        load_tasks([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SetupError, match="no structured-output tasks"):
        load_tasks([tmp_path / "empty"])


def test_tasks_ship_in_the_package_data_dir():
    assert len(load_tasks([package_data_dir("prompts") / SUBDIR])) == len(TASKS)
