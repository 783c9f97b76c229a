"""Reading a structured-output answer: finding its JSON and naming what went wrong.

The texts are what models write. Those marked "recorded" are verbatim answers of SmolLM2-135M-Instruct
served by llama-cpp-python 0.3.36 (chat_format chatml) to "Give a person record for Alice, 31", asked
with the schema in the prompt, with `response_format: json_object` and no schema, and with
`json_object` plus the schema (grammar-constrained). The others follow the shapes of Qwen3 and
DeepSeek-R1 reasoning output and of chat models that wrap JSON in prose and fences.
"""

from __future__ import annotations

import jsonschema
import pytest

from soaktui.providers.result import RequestResult
from soaktui.providers.types import OLLAMA, Provider
from soaktui.scenarios.json_answer import (
    INVALID_JSON,
    NO_JSON,
    SCHEMA_VIOLATION,
    TRUNCATED,
    extract_json,
    grade,
)
from soaktui.scenarios.schema_tasks import FORMAT_CHECKER
from soaktui.scenarios.structured_output import (
    INSTRUCTION,
    JSON_OBJECT,
    JSON_SCHEMA,
    after_refusal,
    initial_state,
    messages,
    refused,
    response_format,
)

pytestmark = pytest.mark.unit

PERSON = jsonschema.Draft202012Validator(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    format_checker=FORMAT_CHECKER,
)
INVOICE = jsonschema.Draft202012Validator(
    {
        "type": "object",
        "properties": {
            "invoice_number": {"type": "string"},
            "issue_date": {"type": "string", "format": "date"},
            "lines": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}},
                    "required": ["sku", "quantity"],
                },
            },
        },
        "required": ["invoice_number", "issue_date", "lines"],
    },
    format_checker=FORMAT_CHECKER,
)

# -- recorded: llama-cpp-python 0.3.36 + SmolLM2-135M-Instruct -----------------------------------
REC_GRAMMAR = '{ "name": "Alice", "age": 31 }'
REC_UNQUOTED_KEY = (
    '{"type":"object","properties":{\n    "name" : {"type":"string"}\n,"age"  : { type:number, minimum:0 }}'
)
REC_SCHEMA_ECHO = '{\n  "type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}}\n}'
REC_CUT_OFF = (
    '{"type":"object","properties":{\n    "name" : {"required":["name"],"additionalProperties":"integer",\n'
    '    "age" : {"required":[true, \'min_value\'=>0]},"extraTypes" : ["float"],\n'
    '    "description" : {\n        "language" : "JavaScript",\n        "typeofTypeName" : 15,\n'
    '        "allowedMethods" : [\n            "setAttribute",\n            {\n                "ignoreEscape'
)
REC_JSON_OBJECT_CUT = (
    '{\n"name": "Alice",\n"description": {\n    "category_id": "31",\n    "tags": [\n        {\n'
    '            "title": "Car, 2024",\n            "tag:"\n          : "Cars",\n        "description:"\n'
    "          :"
)

INVOICE_JSON = (
    '{\n  "invoice_number": "INV-2025-0417",\n  "issue_date": "2025-04-17",\n  "lines": [\n'
    '    {"sku": "KB-104", "quantity": 3},\n    {"sku": "MS-220", "quantity": 5}\n  ]\n}'
)


@pytest.mark.parametrize(
    ("content", "finish", "validator", "failure", "parsed"),
    [
        (REC_GRAMMAR, "stop", PERSON, None, True),
        (REC_UNQUOTED_KEY, "stop", PERSON, INVALID_JSON, False),
        (REC_SCHEMA_ECHO, "stop", PERSON, SCHEMA_VIOLATION, True),
        (REC_CUT_OFF, "length", PERSON, TRUNCATED, False),
        (REC_JSON_OBJECT_CUT, "length", PERSON, TRUNCATED, False),
        # Qwen3: reasoning first (with a draft object in it), then the answer in a fence.
        (
            '<think>\nThe user wants the invoice as JSON. Draft: {"invoice_number": "INV"} - no, all lines.\n'
            "</think>\n\n```json\n" + INVOICE_JSON + "\n```",
            "stop",
            INVOICE,
            None,
            True,
        ),
        # DeepSeek-R1: the opening tag was in the template, only the closing one is in the answer.
        ("Okay, three keyboards and five mice.\n</think>\n\n" + INVOICE_JSON, "stop", INVOICE, None, True),
        # Reasoning that never ended: cut by max_tokens, or stopped without an answer.
        (
            '<think>\nLet me list the lines: {"sku": "KB-104", "quantity": 3}',
            "length",
            INVOICE,
            TRUNCATED,
            False,
        ),
        ("<think>\nI am not sure which lines", "stop", INVOICE, NO_JSON, False),
        # A chat model: prose, a fence, prose.
        (
            "Sure! Here is the invoice as JSON:\n\n```json\n"
            + INVOICE_JSON
            + "\n```\n\nLet me know if you need changes.",
            "stop",
            INVOICE,
            None,
            True,
        ),
        # Braces and brackets in prose are not JSON; the object after them is.
        ("Use the {customer} template [see below]:\n" + INVOICE_JSON, "stop", INVOICE, None, True),
        (
            "I'm sorry, but I can't create an invoice without the customer's billing details.",
            "stop",
            INVOICE,
            NO_JSON,
            False,
        ),
        # Python literals and trailing commas are what "JSON" often means to a small model.
        (
            "{'invoice_number': 'INV-1', 'issue_date': '2025-04-17', 'lines': [], 'paid': True}",
            "stop",
            INVOICE,
            INVALID_JSON,
            False,
        ),
        (
            '{"invoice_number": "INV-1", "issue_date": "2025-04-17", "lines": [{"sku": "A", "quantity": 1},]}',
            "stop",
            INVOICE,
            INVALID_JSON,
            False,
        ),
        # An unclosed fence that the stream ended inside, with and without a finish reason.
        (
            '```json\n{\n  "invoice_number": "INV-2025-0417",\n  "lines": [\n    {"sku": "KB-1',
            "length",
            INVOICE,
            TRUNCATED,
            False,
        ),
        (
            '```json\n{\n  "invoice_number": "INV-2025-0417",\n  "lines": [\n    {"sku": "KB-1',
            None,
            INVOICE,
            TRUNCATED,
            False,
        ),
        # A closed fence around broken JSON is malformed, not cut off.
        ('```json\n{"invoice_number": "INV-1", "lines": [\n```\nDone.', "stop", INVOICE, INVALID_JSON, False),
        # Valid JSON of the wrong shape.
        ('[{"sku": "KB-104", "quantity": 3}]', "stop", INVOICE, SCHEMA_VIOLATION, True),
    ],
)
def test_grade(content, finish, validator, failure, parsed):
    g = grade(content, finish, validator)
    assert (g.failure, g.parsed, g.schema_valid) == (failure, parsed, failure is None)


def test_error_path_names_the_deepest_relevant_error():
    bad = INVOICE_JSON.replace('"quantity": 5', '"quantity": "five"')
    g = grade(bad, "stop", INVOICE)
    assert g.failure == SCHEMA_VIOLATION
    assert g.error_path == "$.lines[1].quantity: 'five' is not of type 'integer'"
    g = grade(INVOICE_JSON.replace("2025-04-17", "17/04/2025"), "stop", INVOICE)
    assert g.error_path == "$.issue_date: '17/04/2025' is not a 'date'"
    g = grade(REC_SCHEMA_ECHO, "stop", PERSON)
    assert g.error_path.startswith("$: ") and len(g.error_path) <= 200


def test_invalid_json_keeps_the_decoder_message():
    g = grade(REC_UNQUOTED_KEY, "stop", PERSON)
    assert g.error_path.startswith("Expecting property name enclosed in double quotes: line 3")


def test_the_largest_complete_value_is_the_answer():
    text = 'Example: {"sku": "X", "quantity": 1}. The invoice:\n' + INVOICE_JSON
    ex = extract_json(text)
    assert ex.found and ex.value["invoice_number"] == "INV-2025-0417"
    two_fences = "```json\n[1, 2]\n```\nand\n```json\n" + INVOICE_JSON + "\n```"
    assert extract_json(two_fences).value["lines"][0]["sku"] == "KB-104"
    python_fence = "```python\nd = {'a': 1}\n```\n" + INVOICE_JSON  # not a JSON fence: the whole text is read
    assert extract_json(python_fence).value["invoice_number"] == "INV-2025-0417"


def test_extraction_is_bounded_on_bracket_soup():
    ex = extract_json("[" * 50_000 + "{" * 50_000)
    assert not ex.found and ex.broken is not None


# -- modes and refusals -----------------------------------------------------------------------------


def _failed(status: int, error: str, body: str | None = None) -> RequestResult:
    return RequestResult(model="m", stream=True, ok=False, http_status=status, error=error, body_excerpt=body)


# Real refusals: llama-cpp-python 0.3.36 (recorded), LM Studio 0.3.x and llama-server before json_schema
# support (from their issue trackers), OpenAI's wording (the simulator's generic flavor uses it).
LLAMA_CPP_PYTHON = (
    "HTTP 500: 1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'"
)
OLD_LLAMA_SERVER = (
    'HTTP 500: response_format type must be one of "text" or "json_object", but got: json_schema'
)
OPENAI_WORDING = "HTTP 400: Invalid value: 'json_schema'. Supported values are: 'text'."


def test_refusals_are_told_from_other_failures():
    assert refused(_failed(500, LLAMA_CPP_PYTHON))
    assert refused(_failed(400, OPENAI_WORDING))
    assert refused(_failed(422, "HTTP 422", body='{"detail": [{"loc": ["body", "response_format"]}]}'))
    assert not refused(_failed(500, "HTTP 500: simulated internal error"))
    assert not refused(_failed(400, "HTTP 400: the request exceeds the available context size"))
    assert not refused(RequestResult(model="m", stream=True, ok=False, error="connection refused"))


def test_after_a_refusal_json_object_only_where_the_server_offers_it():
    assert after_refusal(JSON_SCHEMA, _failed(500, LLAMA_CPP_PYTHON)) == JSON_OBJECT
    assert after_refusal(JSON_SCHEMA, _failed(500, OLD_LLAMA_SERVER)) == JSON_OBJECT
    assert after_refusal(JSON_SCHEMA, _failed(400, OPENAI_WORDING)) is None
    assert (
        after_refusal(JSON_OBJECT, _failed(400, "HTTP 400: response_format json_object unsupported")) is None
    )


def test_old_ollama_starts_in_instruction_mode():
    old = Provider(name="o", kind=OLLAMA, base_url="http://127.0.0.1:11434", version="0.4.7")
    assert initial_state(old)["format"] is None and "0.5.0" in initial_state(old)["fallback"]
    new = Provider(name="o", kind=OLLAMA, base_url="http://127.0.0.1:11434", version="0.6.8")
    assert initial_state(new) == {"format": JSON_SCHEMA, "fallback": None}
    unknown = Provider(name="o", kind=OLLAMA, base_url="http://127.0.0.1:11434", version=None)
    assert initial_state(unknown)["format"] == JSON_SCHEMA


def test_request_shapes(tasks):
    task = tasks[0]
    rf = response_format(task, JSON_SCHEMA)
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["name"] == task.id and rf["json_schema"]["schema"] == task.schema
    assert response_format(task, JSON_OBJECT) == {"type": "json_object", "schema": task.schema}
    assert task.prompt == messages(task, JSON_SCHEMA)[-1]["content"]
    asked = messages(task, None)[-1]["content"]
    assert asked.startswith(task.prompt) and "JSON only" in asked and '"required"' in asked
    assert INSTRUCTION == "instruction"


@pytest.fixture(scope="module")
def tasks():
    from soaktui.scenarios.schema_tasks import load_tasks

    return load_tasks()
