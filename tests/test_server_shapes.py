"""The chat client against answers shaped exactly as each real server sends them.

Two kinds of input, both served over a real loopback socket:
- replays of a real llama.cpp `llama-server` (build 11434, SmolLM2-135M), recorded with `curl -i`
  (tests/data/replays/README.md says how): the bytes users' servers send today;
- shapes taken from each server's source where the behaviour belongs to a version we cannot run
  here (older llama.cpp builds, vLLM, LM Studio, Ollama); each test names its source, and
  docs/servers.md lists them all.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from soaktui import errors
from tests.test_client import DONE, END, Request, assert_failed, chat, chunk, delta, head, run, sse, stream_of

pytestmark = pytest.mark.integration

REPLAYS = Path(__file__).parent / "data" / "replays"


def replay(name: str):
    """A handler answering with a recorded response: its status line and headers, then its body
    (recorded de-chunked by curl) sent again chunked, one HTTP chunk per SSE event."""
    raw = (REPLAYS / name).read_bytes()
    head_part, _, body = raw.partition(b"\r\n\r\n")
    lines = head_part.split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if not line.lower().startswith((b"transfer-encoding", b"content-length", b"keep-alive", b"connection"))
    ]
    streamed = b"text/event-stream" in head_part

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        if streamed:
            w.write(lines[0] + b"\r\n" + b"".join(k + b"\r\n" for k in kept))
            w.write(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for event in body.split(b"\n\n"):
                if event.strip():
                    w.write(chunk(event + b"\n\n"))
                    await w.drain()
            w.write(END)
        else:
            w.write(lines[0] + b"\r\n" + b"".join(k + b"\r\n" for k in kept))
            w.write(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    return handler


# -- llama.cpp, recorded ---------------------------------------------------------------------------


def test_llamacpp_stream_usage_timings_and_cache():
    r, _ = run(chat(replay("llamacpp_b11434_stream.http")))
    assert r.ok, r.error
    assert (r.prompt_tokens, r.output_tokens, r.token_source) == (36, 5, "usage")
    assert r.cached_prompt_tokens == 35  # usage.prompt_tokens_details.cached_tokens
    t = r.server_timings
    assert t is not None and t["prompt_n"] == 1 and t["cache_n"] == 35 and t["predicted_n"] == 5
    assert r.server_gen_tps == round(t["predicted_per_second"], 3)
    assert r.server_prompt_tps == round(t["prompt_per_second"], 3)
    # prompt_tps counts what the server evaluated (timings.prompt_n = 1), not the 35 cached tokens.
    assert r.prompt_tokens_processed == 1
    assert r.prompt_tps == round(1 / (r.ttft_ms / 1e3), 3)
    ev = r.event_fields()
    assert ev["cached_prompt_tokens"] == 35 and ev["server_gen_tps"] == r.server_gen_tps
    assert ev["max_gap_ms"] == r.max_gap_ms and r.max_gap_ms is not None


def test_llamacpp_non_stream_timings():
    r, _ = run(chat(replay("llamacpp_b11434_nonstream.http"), stream=False))
    assert r.ok, r.error
    assert (r.prompt_tokens, r.output_tokens, r.finish_reason) == (36, 12, "length")
    assert r.cached_prompt_tokens == 35 and r.server_timings["prompt_n"] == 1
    assert r.server_gen_tps is not None and r.max_gap_ms is None


def test_llamacpp_context_overflow_400():
    r, _ = run(chat(replay("llamacpp_b11434_overflow.http")))
    assert_failed(r, errors.CONTEXT_OVERFLOW)
    assert r.http_status == 400 and "exceeds the available context size" in r.error


# -- shapes from the servers' sources --------------------------------------------------------------


def test_llamacpp_old_error_line_then_done_is_an_error_not_an_empty_answer():
    """llama.cpp up to about b6500 wrote a stream error as `error: {json}` (an SSE field no client
    knows) and then `data: [DONE]`, at HTTP 200 (`server_sent_event(sink, "error", ...)`,
    examples/server/utils.hpp; seen at b4295 and in llama-cpp-python 0.3.16's vendored server)."""
    err = orjson.dumps(
        {"code": 400, "message": "the request exceeds the available context size. try increasing the "
         "context size or enable context shift", "type": "invalid_request_error"}
    )
    r, _ = run(chat(stream_of(b"error: " + err + b"\n\n", DONE)))
    assert_failed(r, errors.CONTEXT_OVERFLOW)
    r, _ = run(chat(stream_of(b'error: {"code": 500, "message": "slot unavailable", "type": "server_error"}\n\n', DONE)))
    assert_failed(r, errors.STREAM_ERROR)
    assert "slot unavailable" in r.error
    # Without the blank line, straight into [DONE]: still the error.
    r, _ = run(chat(stream_of(b'error: {"message": "boom"}\n' + DONE)))
    assert_failed(r, errors.STREAM_ERROR)


def test_vllm_mid_stream_error_then_done_is_not_ok():
    """vLLM's serving_chat.py catches an exception mid-stream and yields
    create_streaming_error_response(): `data: {"error": {"object": "error", "message": ...,
    "type": ..., "param": null, "code": ...}}` (json.dumps, with spaces), then `data: [DONE]`, at
    HTTP 200. The same object without the wrapper (the shape of vLLM <= 0.10's HTTP error bodies) is
    read the same way, and so is llama.cpp b6628-b6900's `data: {"error": ...}` before its [DONE]."""
    inner = {"object": "error", "message": "CUDA error: an illegal memory access was encountered",
             "type": "BadRequestError", "param": None, "code": 400}
    spaced = json.dumps({"error": inner}).encode()  # vLLM's json.dumps: ", " and ": " separators
    for frame in (b"data: " + spaced + b"\n\n", sse(inner)):
        r, _ = run(chat(stream_of(sse(delta("Hello")), frame, DONE)))
        assert_failed(r, errors.STREAM_ERROR)
        assert "illegal memory access" in r.error and r.content == "Hello"


def test_vllm_max_tokens_over_max_model_len_is_context_overflow():
    """vLLM's request validation: a max_tokens the model length cannot hold is a context problem."""
    for message in (
        "'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum context length "
        "is 4096 tokens and your request has 12 input tokens (8192 > 4096 - 12).",
        "max_tokens (8192) cannot be greater than max_model_len (4096)",
    ):
        body = orjson.dumps({"object": "error", "message": message, "type": "BadRequestError", "param": None,
                             "code": 400})
        r, _ = run(chat(lambda req, w, body=body: _write(w, head(400, "application/json", chunked=False,
                                                                length=len(body)) + body)))
        assert_failed(r, errors.CONTEXT_OVERFLOW)


def test_lmstudio_event_error_in_a_200_stream():
    """LM Studio 0.4.x answers an over-long prompt with 200 and an `event: error` SSE event."""
    err = b'event: error\ndata: {"error": {"message": "Input does not fit in context length 4096"}}\n\n'
    r, _ = run(chat(stream_of(err)))
    assert_failed(r, errors.CONTEXT_OVERFLOW)


def test_lmstudio_mlx_context_size_exceeded():
    """The message LM Studio has surfaced for MLX models: llama.cpp's "Context size has been
    exceeded." (HTTP 500, type server_error)."""
    body = orjson.dumps({"error": {"code": 500, "message": "Context size has been exceeded.",
                                   "type": "server_error"}})
    r, _ = run(chat(lambda req, w: _write(w, head(500, "application/json", chunked=False, length=len(body)) + body)))
    assert_failed(r, errors.CONTEXT_OVERFLOW)


def test_ollama_mid_stream_failure_ends_without_finish_reason():
    """Ollama's /v1 writer turns a failure after the stream began into an empty chunk and ends the
    body, without finish_reason, usage or [DONE] (middleware/openai.go): a cut stream, not a success."""
    empty = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    r, _ = run(chat(stream_of(sse(delta("Par", role="assistant")), sse(empty))))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert r.content == "Par"


async def _write(w: asyncio.StreamWriter, data: bytes) -> None:
    w.write(data)
