"""Prompted tool calling: the tools described in the system prompt, for servers without `tools`.

Many local setups (a plain chat template, an old server, a model without a tool parser) cannot take
OpenAI's `tools` field, yet the model can still call tools if told how. The wording follows the
Hermes/Qwen convention most open models were tuned on: the tool definitions inside `<tools>` tags,
each call answered as a `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` block, and tool
results returned in `<tool_response>` tags. The detector reads whatever format the model actually
writes, so a model that answers in its own format still gets credit for a correct call.
"""

from __future__ import annotations

import json
from typing import Any

SYSTEM_PROMPT = """You are a helpful assistant that can call tools. The tools you may call are described \
by these JSON Schemas:
<tools>
{tools}
</tools>

To call a tool, answer with one block per call and nothing else:
<tool_call>
{{"name": "<tool name>", "arguments": {{<arguments as a JSON object>}}}}
</tool_call>
You may make several calls in one answer. Use only the tools and arguments listed above. If no tool \
fits the request, answer in plain text and do not call any tool."""

FOLLOW_UP = "Use the tool results above to answer my original question."


def system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system message that offers `tools` (OpenAI tool definitions) as text."""
    functions = [t.get("function", t) for t in tools]
    return SYSTEM_PROMPT.format(tools="\n".join(json.dumps(f, ensure_ascii=False) for f in functions))


def results_message(results: list[tuple[str, dict[str, Any]]]) -> str:
    """The user message that returns tool results [(tool name, result object)] in prompted mode."""
    blocks = [
        "<tool_response>\n"
        + json.dumps({"name": name, "content": content}, ensure_ascii=False)
        + "\n</tool_response>"
        for name, content in results
    ]
    return "\n".join(blocks) + "\n" + FOLLOW_UP
