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

UNLIMITED = 10**9  # "no context limit" for planning (an answer is bounded by its prompt and max_tokens)

# Wire styles of the streamed chunks and the non-stream body.
OPENAI_STYLE = "openai"  # OpenAI's own key order, with `logprobs` (also vLLM and LM Studio)
LLAMACPP_STYLE = "llamacpp"  # server-task.cpp to_json_oaicompat_chat(_stream), b11434
OLLAMA_STYLE = "ollama"  # openai/openai.go ChatWriter, v0.5.2 .. v0.32.5: role on every chunk
OLLAMA_NEW_STYLE = "ollama_new"  # v0.32.6+ (commit 8edecb5c6): role once, finish on its own chunk


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


def read_max_tokens(body: dict[str, Any], keys: tuple[str, ...] | None = None) -> int | None:
    """`max_completion_tokens` or `max_tokens` (or only `keys`); None (or LM Studio's -1) means no limit."""
    for key in keys or ("max_completion_tokens", "max_tokens"):
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
    room: int | None | bool = True,
) -> Completion:
    """Decide the whole answer. `max_tokens` is already validated; the context caps it too.
    `ask`: the JSON a `response_format` asked for (the flavor has accepted it).
    `room`: completion tokens the context leaves (generation stops there with "length"); None when
    the server shifts its context instead; True (the default): the persona's window less the prompt."""
    messages = body["messages"]
    if room is True:
        room = persona.context_length - prompt_tokens
    limit = UNLIMITED if room is None or room is False else int(room)
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
    """SSE `data:` events of one streamed completion, byte-exact chunk objects of a server's style.

    Content chunks are a prefix, the JSON string of the piece and a suffix, both built once per
    request: at tens of thousands of chunks a second a full JSON encode per chunk would make the
    simulator the bottleneck. Usage, timings and other extras go on the last chunks only.
    """

    DONE = b"data: [DONE]\n\n"

    def __init__(
        self,
        rid: str,
        created: int,
        model: str,
        include_usage: bool,
        style: str = OPENAI_STYLE,
        fingerprint: str | None = None,
    ) -> None:
        self.style = style
        rid_j, model_j = orjson.dumps(rid), orjson.dumps(model)
        if style == LLAMACPP_STYLE:
            # {"choices":[{"finish_reason","index","delta"}],"created","id","model","system_fingerprint","object"}
            self._head = b'data: {"choices":['
            self._tail = (
                b'],"created":%d,"id":%b,"model":%b,"system_fingerprint":%b,"object":"chat.completion.chunk"'
                % (
                    created,
                    rid_j,
                    model_j,
                    orjson.dumps(fingerprint or ""),
                )
            )
            self._content_head = self._head + b'{"finish_reason":null,"index":0,"delta":{"content":'
            self._content_tail = b"}}" + self._tail + b"}\n\n"
            return
        fp = b',"system_fingerprint":%b' % orjson.dumps(fingerprint) if fingerprint else b""
        self._head = (
            b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b%b,"choices":['
            % (
                rid_j,
                created,
                model_j,
                fp,
            )
        )
        self._tail = b"]" + (b',"usage":null' if include_usage and style == OPENAI_STYLE else b"")
        if style == OLLAMA_STYLE:
            delta = b'{"index":0,"delta":{"role":"assistant","content":'
            after = b'},"finish_reason":null}'
        elif style == OLLAMA_NEW_STYLE:
            delta = b'{"index":0,"delta":{"content":'
            after = b'},"finish_reason":null}'
        else:
            delta = b'{"index":0,"delta":{"content":'
            after = b'},"logprobs":null,"finish_reason":null}'
        self._content_head = self._head + delta
        self._content_tail = after + self._tail + b"}\n\n"

    def content(self, piece: str) -> bytes:
        return self._content_head + orjson.dumps(piece) + self._content_tail

    def _choice(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        if self.style == LLAMACPP_STYLE:
            return {"finish_reason": finish_reason, "index": 0, "delta": delta}
        if self.style in (OLLAMA_STYLE, OLLAMA_NEW_STYLE):
            return {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def _close(self, extra: dict[str, Any] | None) -> bytes:
        if not extra:
            return b"}\n\n"
        return b"," + orjson.dumps(extra)[1:] + b"\n\n"

    def delta(
        self, delta: dict[str, Any], finish_reason: str | None = None, extra: dict[str, Any] | None = None
    ) -> bytes:
        """A chunk with one choice; `extra`: top-level fields appended after the usual ones."""
        return self._head + orjson.dumps(self._choice(delta, finish_reason)) + self._tail + self._close(extra)

    def role(self, tool_answer: bool) -> bytes:
        """The chunk that opens an answer, sent with its first token (none for Ollama's old style,
        whose every chunk carries the role)."""
        if self.style == OLLAMA_STYLE:
            return b""
        if self.style == LLAMACPP_STYLE:  # the first partial result's diff: role with content null
            return self.delta({"role": "assistant", "content": None})
        return self.delta({"role": "assistant", "content": None if tool_answer else ""})

    def finish(self, finish_reason: str, extra: dict[str, Any] | None = None) -> bytes:
        """The chunk that carries finish_reason."""
        if self.style == OLLAMA_STYLE:
            return self.delta({"role": "assistant", "content": ""}, finish_reason, extra)
        return self.delta({}, finish_reason, extra)

    def encode(self, d: Delta) -> bytes:
        return self.content(d) if isinstance(d, str) else self.delta(d)

    def usage(self, usage: dict[str, Any], extra: dict[str, Any] | None = None) -> bytes:
        """The usage chunk: `choices: []` and `usage` (and `extra`, e.g. llama.cpp's timings)."""
        fields = {"usage": usage, **(extra or {})}
        if self.style == LLAMACPP_STYLE:
            return self._head + b"]" + self._tail[1:] + b"," + orjson.dumps(fields)[1:] + b"\n\n"
        return self._head + b"]," + orjson.dumps(fields)[1:] + b"\n\n"

    def malformed(self) -> bytes:
        """An event whose JSON is cut off: what a buggy or overloaded server sometimes sends."""
        return self._content_head + b'"\x01 truncated\n\n'


def completion_body(
    rid: str,
    created: int,
    model: str,
    c: Completion,
    style: str = OPENAI_STYLE,
    usage: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """The non-streamed response object, in the server's key order."""
    usage = usage if usage is not None else c.usage()
    if style == LLAMACPP_STYLE:  # to_json_oaicompat_chat: choices, created, model, ..., usage, id, timings
        body: dict[str, Any] = {
            "choices": [{"finish_reason": c.finish_reason, "index": 0, "message": c.message()}],
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint or "",
            "object": "chat.completion",
            "usage": usage,
            "id": rid,
        }
    else:
        body = {"id": rid, "object": "chat.completion", "created": created, "model": model}
        if fingerprint:
            body["system_fingerprint"] = fingerprint
        choice: dict[str, Any] = {"index": 0, "message": c.message()}
        if style == OPENAI_STYLE:
            choice["logprobs"] = None
        choice["finish_reason"] = c.finish_reason
        body["choices"] = [choice]
        body["usage"] = usage
    if extra:
        body.update(extra)
    return body
