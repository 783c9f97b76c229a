"""One chat completion, decided up front and written in OpenAI's exact wire shapes.

The server decides everything about an answer before the first byte (its tokens, tool calls, the
form the prompt asked for or prose, finish reason, usage) so that streaming is only a matter of timing, and so that `usage` is by construction
the count of what was streamed: one content token (or one tool-call delta) per chunk. Chunk bytes
are built from a per-request template, because at tens of thousands of chunks a second a full JSON
encode per chunk would make the simulator the bottleneck.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from soaktui.simulator import forms, structured, textgen, toolplay
from soaktui.simulator.personas import Persona

Delta = str | dict[str, Any]  # a content piece, or a whole delta object (tool-call deltas)


class BadChatRequest(ValueError):
    """A chat request the simulator rejects with HTTP 400 (message shown to the client)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Completion:
    """Everything one answer will contain."""

    deltas: list[Delta]  # one per chunk; each counts as one completion token
    finish_reason: str  # stop | length | tool_calls
    prompt_tokens: int
    tool_answer: bool = False  # native tool calls (message content is null)

    @property
    def completion_tokens(self) -> int:
        return len(self.deltas)

    def usage(self, completion_tokens: int | None = None) -> dict[str, int]:
        done = self.completion_tokens if completion_tokens is None else completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def message(self) -> dict[str, Any]:
        """The non-streamed `message` object."""
        if not self.tool_answer:
            return {"role": "assistant", "content": "".join(d for d in self.deltas if isinstance(d, str))}
        calls: list[dict[str, Any]] = []
        for d in self.deltas:
            for tc in d["tool_calls"]:
                fn = tc.get("function", {})
                if "id" in tc:
                    calls.append(
                        {
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    )
                else:
                    calls[-1]["function"]["arguments"] += fn.get("arguments", "")
        return {"role": "assistant", "content": None, "tool_calls": calls}


def read_max_tokens(body: dict[str, Any]) -> int | None:
    """`max_completion_tokens` or `max_tokens`; None (or LM Studio's -1) means no limit."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadChatRequest(f"{key} must be an integer", key)
        if value == -1:
            return None
        if value < 1:
            raise BadChatRequest(f"{key} must be at least 1", key)
        return value
    return None


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return textgen.message_text(m.get("content"))
    return ""


def plan_completion(
    persona: Persona,
    body: dict[str, Any],
    prompt_tokens: int,
    max_tokens: int | None,
    rng: random.Random,
    call_id_prefix: str,
    ask: structured.Ask | None = None,
) -> Completion:
    """Decide the whole answer. `max_tokens` is already validated; the context window caps it too.
    `ask`: the JSON a `response_format` asked for (the flavor has accepted it)."""
    messages = body["messages"]
    limit = persona.context_length - prompt_tokens
    if max_tokens is not None:
        limit = min(limit, max_tokens)
    prompt = last_user_text(messages)

    tool_answer = toolplay.answer(persona, body, prompt, rng)  # None: tools are not in play
    deltas: list[Delta]
    if tool_answer is not None and tool_answer.native:
        deltas = _native_tool_deltas(tool_answer.calls, call_id_prefix)
        finish = "tool_calls"
    elif tool_answer is not None:
        deltas = list(textgen.split_tokens(tool_answer.text))
        finish = "stop"
    else:
        form = forms.detect(prompt)
        asked = textgen.requested_length(prompt)
        json_answer = structured.answer(persona, ask, form, prompt, rng, limit)
        if json_answer is not None:
            deltas = list(textgen.split_tokens(json_answer))
        elif form is not None and rng.random() < persona.compliance:
            deltas = list(textgen.split_tokens(forms.render(form, prompt, rng)))
        elif asked and asked[1] == "words":
            deltas = list(textgen.prose_tokens(rng, n_words=min(asked[0], max(limit, 1))))
        else:
            n = asked[0] if asked else rng.randint(*persona.default_tokens)
            deltas = list(textgen.prose_tokens(rng, n_tokens=min(n, max(limit, 1) + 1)))
        finish = "stop"
    if len(deltas) > limit:
        del deltas[max(limit, 0) :]
        finish = "length"
    return Completion(
        deltas, finish, prompt_tokens, tool_answer=tool_answer is not None and tool_answer.native
    )


def _native_tool_deltas(calls: list[tuple[str, dict[str, Any]]], call_id_prefix: str) -> list[Delta]:
    out: list[Delta] = []
    for index, (name, args) in enumerate(calls):
        out.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": f"call_{call_id_prefix}_{index}",
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in textgen.split_tokens(orjson.dumps(args).decode()):
            out.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return out


class ChunkEncoder:
    """SSE `data:` events of one streamed completion, byte-exact OpenAI chunk objects."""

    DONE = b"data: [DONE]\n\n"

    def __init__(self, rid: str, created: int, model: str, include_usage: bool) -> None:
        head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":[' % (
            orjson.dumps(rid),
            created,
            orjson.dumps(model),
        )
        self._head = head
        self._tail = b"]%b}\n\n" % (b',"usage":null' if include_usage else b"")
        self._content_head = head + b'{"index":0,"delta":{"content":'
        self._content_tail = b'},"logprobs":null,"finish_reason":null}' + self._tail

    def content(self, piece: str) -> bytes:
        return self._content_head + orjson.dumps(piece) + self._content_tail

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + orjson.dumps(choice) + self._tail

    def encode(self, d: Delta) -> bytes:
        return self.content(d) if isinstance(d, str) else self.delta(d)

    def usage(self, usage: dict[str, int]) -> bytes:
        return self._head + b'],"usage":' + orjson.dumps(usage) + b"}\n\n"

    def malformed(self) -> bytes:
        """An event whose JSON is cut off: what a buggy or overloaded server sometimes sends."""
        return self._content_head + b'"\x01 truncated\n\n'


def completion_body(rid: str, created: int, model: str, c: Completion) -> dict[str, Any]:
    """The non-streamed response object."""
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": c.message(), "logprobs": None, "finish_reason": c.finish_reason}],
        "usage": c.usage(),
    }
