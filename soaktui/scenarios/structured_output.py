"""structured_output: JSON that must match a schema, with the server enforcing it where it can.

A task (prompts/structured/) is asked in one of two modes. `json_schema` sends the schema as
`response_format`, in OpenAI's `{"type": "json_schema", "json_schema": {...}}` shape, or in llama.cpp's
`{"type": "json_object", "schema": ...}` shape when a server refuses the first and names json_object
as what it takes (llama-cpp-python's server, llama-server before json_schema support). `instruction`
writes the schema into the prompt and asks for JSON only.

Which mode a model gets is decided once and kept in ctx.state. Ollama before 0.5.0 ignores
`response_format` silently, so it starts in instruction mode; any server that refuses a
response_format (an HTTP error whose message names it: LM Studio and vLLM answer 400, pydantic servers
422, llama-cpp-python 500) has the test retried at once in the next mode, and the model is never
asked that way again. The refused request stays in the log as the failed request it was; the metrics
say which mode answered and why (`fallback`).

The answer is read and judged by json_answer.py; the test passes when the JSON validates.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from soaktui.providers.result import RequestResult
from soaktui.providers.types import OLLAMA, Provider
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext
from soaktui.scenarios.json_answer import REQUEST_FAILED, clip, grade
from soaktui.scenarios.schema_tasks import SchemaTask, shipped_tasks

JSON_SCHEMA = "json_schema"  # mode: the server is given the schema
INSTRUCTION = "instruction"  # mode: the schema is in the prompt
JSON_OBJECT = "json_object"  # the llama.cpp wire shape of json_schema mode
STATE_KEY = "structured_output"
OLLAMA_STRUCTURED = (0, 5, 0)  # the first Ollama release with structured outputs
TEMPERATURE = 0.2  # extraction work; what applications ask for structured output use

SYSTEM = "You turn requests into structured data for software systems. Answer with JSON."
INSTRUCTION_ASK = (
    "Answer with JSON only: one JSON object that conforms to this JSON Schema, "
    "with no prose before or after it.\n{schema}"
)

_REFUSAL = re.compile(r"response_format|json_schema", re.I)
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _version(text: str | None) -> tuple[int, int, int] | None:
    m = _VERSION.search(text or "")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def initial_state(provider: Provider) -> dict[str, Any]:
    """The wire shape to try first (None: instruction mode) and, if it is not json_schema, why."""
    version = _version(provider.version)
    if provider.kind == OLLAMA and version is not None and version < OLLAMA_STRUCTURED:
        why = f"Ollama {provider.version} predates structured outputs (0.5.0) and ignores response_format"
        return {"format": None, "fallback": why}
    return {"format": JSON_SCHEMA, "fallback": None}


def _error_text(r: RequestResult) -> str:
    return f"{r.error or ''} {r.body_excerpt or ''}"


def refused(r: RequestResult) -> bool:
    """Did the server refuse the request's response_format (rather than fail for another reason)?"""
    if r.ok or r.http_status is None or r.http_status < 400:
        return False
    return _REFUSAL.search(_error_text(r)) is not None


def after_refusal(wire: str, r: RequestResult) -> str | None:
    """The wire shape to try after `wire` was refused: json_object when the server says it takes
    that, else none (instruction mode)."""
    if wire == JSON_SCHEMA and JSON_OBJECT in _error_text(r):
        return JSON_OBJECT
    return None


def response_format(task: SchemaTask, wire: str) -> dict[str, Any]:
    if wire == JSON_SCHEMA:
        return {"type": JSON_SCHEMA, "json_schema": {"name": task.id, "strict": True, "schema": task.schema}}
    return {"type": JSON_OBJECT, "schema": task.schema}


def messages(task: SchemaTask, wire: str | None) -> list[dict[str, str]]:
    prompt = task.prompt
    if wire is None:
        schema = orjson.dumps(task.schema, option=orjson.OPT_INDENT_2).decode()
        prompt = f"{prompt}\n\n{INSTRUCTION_ASK.format(schema=schema)}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


class StructuredOutput(Scenario):
    name = "structured_output"
    weight = 1.0
    success_rule = "the answer holds JSON that validates against the task's JSON Schema"

    def __init__(self, tasks: list[SchemaTask] | None = None) -> None:
        self.tasks = tasks if tasks is not None else list(shipped_tasks())

    def max_tokens(self, ctx: ScenarioContext) -> int:
        limit = ctx.settings.thresholds.structured_max_tokens
        if ctx.model.context_length:
            limit = min(limit, max(64, ctx.model.context_length - 1024))
        return limit

    async def run(self, ctx: ScenarioContext) -> Outcome:
        task = ctx.rng.choice(self.tasks)
        if STATE_KEY not in ctx.state:
            ctx.state[STATE_KEY] = initial_state(ctx.provider)
        state = ctx.state[STATE_KEY]
        while True:  # at most two refusals: json_schema -> json_object -> instruction
            wire = state["format"]
            mode = INSTRUCTION if wire is None else JSON_SCHEMA
            r = await ctx.chat(
                messages(task, wire),
                stream=True,
                max_tokens=self.max_tokens(ctx),
                temperature=TEMPERATURE,
                extra={"response_format": response_format(task, wire)} if wire else None,
                fields={"schema_id": task.id, "mode": mode, "response_format": wire},
            )
            if wire is None or not refused(r):
                break
            state["format"] = after_refusal(wire, r)
            state["fallback"] = clip(f"{wire} refused: {r.error or f'HTTP {r.http_status}'}")

        metrics: dict[str, Any] = {
            "schema_id": task.id,
            "mode": mode,
            "response_format": wire,
            "fallback": state["fallback"],
            "output_tokens": r.output_tokens,
            "gen_tps": r.gen_tps,
            "ttft_ms": r.ttft_ms,
            "finish_reason": r.finish_reason,
            "truncated": r.truncated,
        }
        if not r.ok:
            metrics.update(parsed=False, schema_valid=False, failure=REQUEST_FAILED, error_path=None)
            return Outcome.failed_request(r, **metrics)
        g = grade(r.content, r.finish_reason, task.validator)
        metrics.update(
            parsed=g.parsed, schema_valid=g.schema_valid, failure=g.failure, error_path=g.error_path
        )
        if not g.schema_valid:
            reason = g.failure if g.error_path is None else f"{g.failure}: {g.error_path}"
            return Outcome.check_failed(reason or "invalid", **metrics)
        return Outcome(True, metrics=metrics)
