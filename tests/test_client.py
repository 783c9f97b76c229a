"""The chat client against real loopback HTTP servers that write scripted raw bytes.

Each test starts a tiny asyncio server whose handler writes exactly the bytes a real (or broken)
server would: chunked SSE, split writes, HTML, error statuses, stalls, dropped connections. The
client sees a real socket; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from soaktui import errors
from soaktui.providers.client import ChatClient as _ChatClient
from soaktui.providers.result import RequestResult

pytestmark = pytest.mark.integration

TRANSPORT = "auto"  # set per test by the fixture below


@pytest.fixture(autouse=True, params=["lean", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs over both HTTP transports: the answers must be classified the same."""
    monkeypatch.setattr(f"{__name__}.TRANSPORT", request.param)
    return request.param


def ChatClient(base_url: str, **kw: Any) -> _ChatClient:  # noqa: N802 - stands in for the class
    return _ChatClient(base_url, transport=TRANSPORT, **kw)


MSGS = [{"role": "user", "content": "hi"}]


# -- the scripted server ---------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Server:
    url: str
    requests: list[Request] = field(default_factory=list)
    connections: int = 0


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


@contextlib.asynccontextmanager
async def serve(handler: Handler, *, keep_alive: bool = False) -> AsyncIterator[Server]:
    """A loopback HTTP/1.1 server; one request per connection, then close (unless keep_alive)."""
    tasks: set[asyncio.Task] = set()
    srv_info = Server(url="")

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())
        srv_info.connections += 1
        try:
            while True:
                req = await _read_request(reader)
                srv_info.requests.append(req)
                await handler(req, writer)
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    srv_info.url = f"http://127.0.0.1:{port}"
    try:
        yield srv_info
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def head(
    status: int = 200, ctype: str = "text/event-stream", *, chunked: bool = True, length: int | None = None
) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}.get(status, "X")
    h = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nConnection: close\r\n"
    if chunked:
        h += "Transfer-Encoding: chunked\r\n"
    elif length is not None:
        h += f"Content-Length: {length}\r\n"
    return (h + "\r\n").encode()


def chunk(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


END = b"0\r\n\r\n"


def sse(obj: Any) -> bytes:
    data = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return b"data: " + data + b"\n\n"


def delta(content: str | None = None, finish: str | None = None, **d: Any) -> dict[str, Any]:
    if content is not None:
        d["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
    }


USAGE_ONLY = {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
DONE = b"data: [DONE]\n\n"


def stream_of(*events: bytes) -> Handler:
    """A handler that writes one chunked SSE response, one HTTP chunk per event."""

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head() + b"".join(chunk(e) for e in events) + END)

    return handler


def raw(data: bytes) -> Handler:
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(data)

    return handler


async def chat(handler: Handler, *, client_kw: dict | None = None, **kw: Any) -> tuple[RequestResult, Server]:
    async with serve(handler) as srv:
        client = ChatClient(srv.url, **(client_kw or {}))
        try:
            result = await client.chat("m", MSGS, **kw)
        finally:
            await client.aclose()
    return result, srv


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)


def assert_failed(r: RequestResult, cls: str) -> None:
    assert not r.ok, r
    assert r.error_class == cls, (r.error_class, r.error)
    assert r.error and "\n" not in r.error
    assert r.end_ns is not None


# -- streaming: the good path ----------------------------------------------------------------------


def test_stream_with_usage_only_final_chunk():
    h = stream_of(
        sse(delta(role="assistant")),
        sse(delta("Hel")),
        sse(delta("lo")),
        sse(delta("!", finish="stop")),
        sse(USAGE_ONLY),
        DONE,
    )
    r, srv = run(chat(h, client_kw={"api_key": "sk-test"}, max_tokens=50, temperature=0.2, extra={"seed": 3}))
    assert r.ok, r.error
    assert r.error_class is None
    assert r.content == "Hello!"
    assert r.chunks == 3 and len(r.token_ns) == 3
    assert (r.prompt_tokens, r.output_tokens, r.token_source) == (7, 3, "usage")
    assert r.finish_reason == "stop"
    assert r.response_id == "chatcmpl-1"
    assert r.http_status == 200
    assert r.max_tokens == 50
    req = srv.requests[0]
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    body = req.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["model"], body["messages"], body["max_tokens"], body["temperature"], body["seed"]) == (
        "m",
        MSGS,
        50,
        0.2,
        3,
    )
    assert r.sent_ns <= r.first_byte_ns <= r.first_token_ns <= r.last_token_ns <= r.end_ns
    assert list(r.token_ns) == sorted(r.token_ns)
    assert r.token_ns[0] == r.first_token_ns and r.token_ns[-1] == r.last_token_ns


def test_without_usage_tokens_are_counted_from_chunks():
    h = stream_of(sse(delta("a")), sse(delta("b")), sse(delta("c")), sse(delta(finish="length")), DONE)
    r, _ = run(chat(h))
    assert r.ok
    assert (r.output_tokens, r.token_source, r.prompt_tokens) == (3, "chunks", None)
    assert r.truncated


def test_events_split_across_writes_inside_crlf_and_utf8():
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"h\xc3\xa9"}}]}\r\n\r\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"\xe4\xb8\x96"},"finish_reason":"stop"}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    cuts = [body.index(b"\xc3\xa9") + 1, body.index(b"\r\n\r\n") + 1, body.index(b"\xe4\xb8\x96") + 2]
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head())
        for p in pieces:
            w.write(chunk(p))
            await w.drain()
            await asyncio.sleep(0.02)  # separate reads on the client side
        w.write(END)

    r, _ = run(chat(handler))
    assert r.ok, r.error
    assert r.content == "hé世"
    assert r.chunks == 2


def test_many_events_in_one_write_share_one_stamp():
    events = [sse(delta(str(i))) for i in range(20)] + [sse(delta(finish="stop")), DONE]
    r, _ = run(chat(raw(head() + chunk(b"".join(events)) + END)))
    assert r.ok
    assert r.content == "".join(str(i) for i in range(20))
    assert r.chunks == 20
    assert r.first_token_ns == r.last_token_ns  # one read, one arrival time


def test_streamed_tool_calls_are_merged_by_index():
    def tc(index, id=None, name=None, args=None):
        fn = {}
        if name is not None:
            fn["name"] = name
        if args is not None:
            fn["arguments"] = args
        d = {"index": index, "function": fn}
        if id:
            d.update(id=id, type="function")
        return sse(delta(tool_calls=[d]))

    h = stream_of(
        tc(0, "call_a", "get_weather", ""),
        tc(0, args='{"city": '),
        tc(1, "call_b", "get_time", '{"tz": "UTC"}'),
        tc(0, args='"Paris"}'),
        sse(delta(finish="tool_calls")),
        DONE,
    )
    r, _ = run(chat(h))
    assert r.ok, r.error
    assert r.content == ""
    assert r.tool_calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}},
    ]
    assert r.chunks == 4
    assert r.finish_reason == "tool_calls"


def test_reasoning_content_counts_as_content_chunks():
    h = stream_of(
        sse(delta(reasoning_content="think ")),
        sse(delta(reasoning_content="more")),
        sse(delta("answer", finish="stop")),
        DONE,
    )
    r, _ = run(chat(h))
    assert r.ok
    assert (r.reasoning, r.content, r.chunks) == ("think more", "answer", 3)


def test_finish_reason_without_done_is_a_complete_stream():
    r, _ = run(chat(stream_of(sse(delta("x")), sse(delta(finish="stop")))))
    assert r.ok


def test_connection_is_reused_after_done():
    events = [sse(delta("a", finish="stop")), DONE]
    body = b"".join(chunk(e) for e in events) + END
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )

    async def go():
        async with serve(raw(response), keep_alive=True) as srv, ChatClient(srv.url) as client:
            results = [await client.chat("m", MSGS) for _ in range(3)]
        return results, srv

    results, srv = run(go())
    assert all(r.ok for r in results)
    assert len(srv.requests) == 3 and srv.connections == 1


def test_timing_reflects_a_scripted_first_token_delay():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head() + chunk(sse(delta(role="assistant"))))
        await w.drain()
        await asyncio.sleep(0.2)
        w.write(chunk(sse(delta("x"))))
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(chunk(sse(delta("y", finish="stop"))) + chunk(DONE) + END)

    r, _ = run(chat(handler))
    assert r.ok
    assert r.sent_ns < r.first_byte_ns < r.first_token_ns < r.last_token_ns <= r.end_ns
    assert r.ttft_ms >= 150  # lower bound only
    assert r.first_byte_ms < r.ttft_ms
    assert r.itl_ms()[0] >= 30


# -- streaming: failures ---------------------------------------------------------------------------


def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there

    async def go():
        async with ChatClient(f"http://127.0.0.1:{port}") as client:
            return await client.chat("m", MSGS)

    r = run(go())
    assert_failed(r, errors.CONNECTION_REFUSED)
    assert r.http_status is None and r.first_byte_ns is None
    assert r.output_tokens is None and r.token_source is None  # nothing measured, nothing claimed


def test_html_body_on_a_stream_request_is_malformed():
    html = b"<html><body><h1>Welcome to nginx</h1></body></html>"
    r, _ = run(chat(raw(head(ctype="text/html", chunked=False, length=len(html)) + html)))
    assert_failed(r, errors.MALFORMED_STREAM)
    assert "text/html" in r.error


def test_html_body_labelled_event_stream_is_malformed():
    html = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
    r, _ = run(chat(raw(head(chunked=False, length=len(html)) + html)))
    assert_failed(r, errors.MALFORMED_STREAM)


def test_json_error_body_with_status_200_on_a_stream_request():
    body = b'{"error": {"message": "model is loading"}}'
    r, _ = run(chat(raw(head(ctype="application/json", chunked=False, length=len(body)) + body)))
    assert_failed(r, errors.STREAM_ERROR)
    assert "model is loading" in r.error


def test_http_500_keeps_status_and_bounded_excerpt():
    body = b"internal failure: " + b"z" * 5000

    r, _ = run(chat(raw(head(500, "text/plain", chunked=False, length=len(body)) + body)))
    assert_failed(r, errors.HTTP_STATUS)
    assert r.http_status == 500
    assert r.body_excerpt.startswith("internal failure") and len(r.body_excerpt) == 500
    assert r.error.startswith("HTTP 500")
    assert len(r.error) <= 300


OVERFLOW_BODIES = {
    "llama.cpp": {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 9000,
            "n_ctx": 4096,
        }
    },
    "vllm": {
        "object": "error",
        "message": "This model's maximum context length is 2048 tokens. However, you requested 5000 tokens "
        "(4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    },
    "llama-cpp-python": {
        "error": {
            "message": "Requested tokens (5000) exceed context window of 2048",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    },
}


@pytest.mark.parametrize("server", sorted(OVERFLOW_BODIES))
def test_context_overflow_status_bodies(server):
    body = orjson.dumps(OVERFLOW_BODIES[server])
    r, _ = run(chat(raw(head(400, "application/json", chunked=False, length=len(body)) + body)))
    assert_failed(r, errors.CONTEXT_OVERFLOW)
    assert r.http_status == 400
    assert r.body_excerpt == body.decode()


def test_plain_400_is_http_status():
    body = b'{"error": {"message": "model not found"}}'
    r, _ = run(chat(raw(head(400, "application/json", chunked=False, length=len(body)) + body)))
    assert_failed(r, errors.HTTP_STATUS)
    assert "model not found" in r.error


def test_error_object_in_stream():
    h = stream_of(sse(delta("a")), sse({"error": {"message": "CUDA out of memory", "code": 500}}))
    r, _ = run(chat(h))
    assert_failed(r, errors.STREAM_ERROR)
    assert "CUDA out of memory" in r.error
    assert r.content == "a" and r.chunks == 1  # what arrived before the error is kept


def test_overflow_error_object_in_stream():
    h = stream_of(sse({"error": {"message": "the request exceeds the available context size"}}))
    r, _ = run(chat(h))
    assert_failed(r, errors.CONTEXT_OVERFLOW)


def test_data_that_is_not_json_is_malformed():
    r, _ = run(chat(stream_of(sse(delta("a")), b"data: {not json\n\n", DONE)))
    assert_failed(r, errors.MALFORMED_STREAM)
    assert "not JSON" in r.error


def test_oversized_line_is_malformed_and_bounded():
    big = b"data: " + b'{"x":"' + b"a" * (2 << 20) + b'"}\n\n'

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head() + chunk(sse(delta("a"))))
        for i in range(0, len(big), 65536):
            w.write(chunk(big[i : i + 65536]))
            await w.drain()
        w.write(chunk(DONE) + END)

    r, _ = run(chat(handler))
    assert_failed(r, errors.MALFORMED_STREAM)
    assert str(1 << 20) in r.error


def test_mid_stream_close_is_connection_dropped():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head() + chunk(sse(delta("a"))) + chunk(sse(delta("b"))))
        await w.drain()
        w.transport.abort()  # no terminating chunk

    r, _ = run(chat(handler))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert r.content == "ab" and r.chunks == 2
    assert (r.output_tokens, r.token_source) == (2, "chunks")  # partial, but measured


def test_close_delimited_stream_without_end_marker_is_connection_dropped():
    body = sse(delta("a")) + b'data: {"choices":[{"del'
    r, _ = run(chat(raw(head(chunked=False) + body)))
    assert_failed(r, errors.CONNECTION_DROPPED)
    r, _ = run(chat(raw(head(chunked=False) + sse(delta("a")))))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert "[DONE]" in r.error


def test_stream_without_content_is_empty_response():
    r, _ = run(
        chat(stream_of(sse(delta(role="assistant")), sse(delta(finish="stop")), sse(USAGE_ONLY), DONE))
    )
    assert_failed(r, errors.EMPTY_RESPONSE)
    assert r.output_tokens == 3  # the server's own count is still recorded


def test_read_timeout():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head() + chunk(sse(delta("a"))))
        await w.drain()
        await asyncio.sleep(30)  # cancelled at teardown

    r, _ = run(chat(handler, client_kw={"read_timeout_s": 0.3}))
    assert_failed(r, errors.READ_TIMEOUT)
    assert r.content == "a"


def trickle(started: asyncio.Event | None = None) -> Handler:
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.write(head())
        for i in range(10_000):
            w.write(chunk(sse(delta(f"t{i} "))))
            await w.drain()
            if i == 2 and started is not None:
                started.set()
            await asyncio.sleep(0.02)

    return handler


def test_total_timeout():
    r, _ = run(chat(trickle(), client_kw={"read_timeout_s": 0.3}, total_timeout_s=0.5))
    assert_failed(r, errors.TOTAL_TIMEOUT)
    assert r.chunks > 0  # the partial observations are kept


def test_cancellation_marks_result_and_calls_on_cancel():
    seen: list[RequestResult] = []

    async def go():
        started = asyncio.Event()
        async with serve(trickle(started)) as srv, ChatClient(srv.url) as client:
            task = asyncio.create_task(client.chat("m", MSGS, on_cancel=seen.append))
            await started.wait()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(go())
    assert len(seen) == 1
    r = seen[0]
    assert_failed(r, errors.CANCELLED)
    assert r.sent_ns is not None and r.end_ns >= r.sent_ns


# -- non-streaming ---------------------------------------------------------------------------------


def _json_response(obj: Any, status: int = 200) -> Handler:
    body = orjson.dumps(obj) if not isinstance(obj, bytes) else obj
    return raw(head(status, "application/json", chunked=False, length=len(body)) + body)


def test_non_stream_json():
    obj = {
        "id": "cmpl-9",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello there",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }
    r, srv = run(chat(_json_response(obj), stream=False))
    assert r.ok, r.error
    assert srv.requests[0].json["stream"] is False
    assert "stream_options" not in srv.requests[0].json
    assert (r.content, r.finish_reason, r.response_id) == ("Hello there", "stop", "cmpl-9")
    assert r.tool_calls == [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    assert (r.prompt_tokens, r.output_tokens, r.token_source) == (11, 2, "usage")
    assert len(r.token_ns) == 0 and r.chunks == 0
    assert r.ttft_ms is None and r.e2e_ms is not None and r.e2e_ms >= 0


def test_non_stream_without_usage_leaves_tokens_unknown():
    obj = {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}
    r, _ = run(chat(_json_response(obj), stream=False))
    assert r.ok
    assert (r.output_tokens, r.prompt_tokens, r.token_source) == (None, None, None)


def test_non_stream_body_not_json_is_bad_response():
    r, _ = run(chat(_json_response(b"<html>oops</html>"), stream=False))
    assert_failed(r, errors.BAD_RESPONSE)


def test_non_stream_overflow_status():
    r, _ = run(chat(_json_response(OVERFLOW_BODIES["vllm"], status=400), stream=False))
    assert_failed(r, errors.CONTEXT_OVERFLOW)


def test_non_stream_empty_content():
    obj = {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}
    r, _ = run(chat(_json_response(obj), stream=False))
    assert_failed(r, errors.EMPTY_RESPONSE)


# -- native endpoint reads -------------------------------------------------------------------------


def test_get_json_get_post_and_refused():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        body = orjson.dumps({"method": req.method, "path": req.path, "body": req.json})
        w.write(head(200, "application/json", chunked=False, length=len(body)) + body)

    async def go():
        async with serve(handler) as srv, ChatClient(srv.url + "/") as client:
            got = await client.get_json("/api/tags", 2.0)
            posted = await client.get_json("api/show", 2.0, json_body={"model": "x"})
        async with ChatClient(srv.url) as client:  # the server is gone now
            refused = await client.get_json("/v1/models", 2.0)
        return got, posted, refused

    got, posted, refused = run(go())
    assert got[0] == 200 and got[1] == {"method": "GET", "path": "/api/tags", "body": None}
    assert posted[1] == {"method": "POST", "path": "/api/show", "body": {"model": "x"}}
    assert refused[0] is None and refused[1] is None and refused[2]


def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one():
    """llama-server closes the connection after every streamed answer while its headers say
    keep-alive; the next request on it fails before any byte ("Server disconnected without sending
    a response"). That request never reached the server: it is sent again, once, on a new connection.
    Here the server reads the second request on a kept connection and closes without answering."""
    ok_body = chunk(sse(delta("hi", finish="stop"))) + chunk(DONE) + END
    keep_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    served: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        try:
            while True:
                await _read_request(reader)
                n += 1
                if n == 2:  # the kept connection: drop it, answer nothing
                    writer.transport.abort()
                    return
                served.append(n)
                writer.write(keep_head + ok_body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def go() -> list[RequestResult]:
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = ChatClient(url)
        try:
            return [await client.chat("m", MSGS) for _ in range(3)]
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()

    first, second, third = run(go())
    assert first.ok and first.connection_retries == 0
    assert second.ok, second.error
    assert second.connection_retries == 1 and second.event_fields()["connection_retries"] == 1
    assert second.ttft_ms is not None and second.ttft_ms >= 0
    assert third.ok and third.connection_retries == 1  # the new connection was kept; its 2nd use dropped


def test_a_new_connection_dropped_before_an_answer_is_not_retried():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        w.transport.abort()

    r, srv = run(chat(handler))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert r.connection_retries == 0 and len(srv.requests) == 1


# -- HTTP/1.1 framing: the same answers over both transports (providers/http1.py) ------------------

ANSWER = b"".join(chunk(e) for e in (sse(delta("a")), sse(delta("b", finish="stop")), DONE))
KEEP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunk_extensions_trailers_and_a_100_continue_are_read_past():
    """RFC 9112 §7.1.1 chunk extensions and §7.1.2 trailers are read and dropped; a 1xx head is
    followed by the real one."""
    body = b"".join(b"%x;name=val\r\n%s\r\n" % (len(e), e) for e in (sse(delta("x", finish="stop")), DONE))
    response = b"HTTP/1.1 100 Continue\r\n\r\n" + head() + body + b"0\r\nX-Checksum: abc\r\n\r\n"
    r, _ = run(chat(raw(response)))
    assert r.ok, r.error
    assert r.content == "x" and r.finish_reason == "stop"


def test_a_head_and_body_sent_a_byte_at_a_time_read_the_same():
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        for i, b in enumerate(head() + ANSWER + END):
            w.write(bytes([b]))
            if i % 7 == 0:
                await w.drain()
                await asyncio.sleep(0)

    r, _ = run(chat(handler))
    assert r.ok, r.error
    assert (r.content, r.chunks) == ("ab", 2)


def test_a_whole_answer_with_content_length_keeps_the_connection():
    obj = {"id": "c", "choices": [{"index": 0, "message": {"content": "hello"}, "finish_reason": "stop"}]}
    body = orjson.dumps(obj)
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def go():
        async with serve(raw(response), keep_alive=True) as srv, ChatClient(srv.url) as client:
            results = [await client.chat("m", MSGS, stream=False) for _ in range(3)]
        return results, srv

    results, srv = run(go())
    assert [r.content for r in results] == ["hello"] * 3
    assert len(srv.requests) == 3 and srv.connections == 1


def test_connection_close_or_http_1_0_means_a_new_connection_for_the_next_request():
    for response in (
        KEEP_HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + ANSWER + END,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
        + sse(delta("ab", finish="stop"))
        + DONE,
    ):

        async def go(response: bytes = response) -> tuple[list[RequestResult], Server]:
            async def handler(req: Request, w: asyncio.StreamWriter) -> None:
                w.write(response)
                await w.drain()
                if response.startswith(b"HTTP/1.0"):  # its body runs to the close
                    w.close()

            async with serve(handler, keep_alive=True) as srv, ChatClient(srv.url) as client:
                results = [await client.chat("m", MSGS) for _ in range(2)]
            return results, srv

        results, srv = run(go())
        assert all(r.ok for r in results), [r.error for r in results]
        assert [r.content for r in results] == ["ab", "ab"]
        assert len(srv.requests) == 2 and srv.connections == 2


def test_a_status_line_that_is_not_http_is_a_dropped_connection_not_an_answer():
    r, _ = run(chat(raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert r.http_status is None


def test_a_bad_chunk_size_fails_the_stream_mid_response():
    r, _ = run(chat(raw(head() + chunk(sse(delta("a"))) + b"zz\r\nxx\r\n")))
    assert_failed(r, errors.CONNECTION_DROPPED)
    assert r.chunks == 1  # what came before the bad framing was read


def test_more_requests_than_connections_wait_for_a_free_one():
    async def go():
        served = serve(raw(KEEP_HEAD + ANSWER + END), keep_alive=True)
        async with served as srv, ChatClient(srv.url, max_connections=2) as client:
            results = await asyncio.gather(*(client.chat("m", MSGS) for _ in range(6)))
        return results, srv

    results, srv = run(go())
    assert all(r.ok for r in results), [r.error for r in results]
    assert len(srv.requests) == 6 and srv.connections <= 2


def test_a_body_larger_than_the_read_buffer_arrives_whole():
    """1.6 MB of content (above READ_HIGH_WATER, below MAX_CONTENT_CHARS) in one Content-Length
    answer: reads may pause and resume under a consumer slower than loopback; no byte is lost or
    doubled."""
    text = "".join(f"{i:07d} " for i in range(200_000))
    obj = {"id": "c", "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}]}
    r, _ = run(chat(_json_response(obj), stream=False))
    assert r.ok, r.error
    assert r.content == text


def test_failed_connections_give_their_place_in_the_pool_back():
    """With one connection allowed, refused connects and dropped answers must not use the place up:
    every later request still gets a connection (a leak would leave it waiting until the total
    timeout)."""
    drops = 3

    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        if len(srv_seen) < drops:
            srv_seen.append(req)
            w.transport.abort()
            return
        w.write(head() + ANSWER + END)

    srv_seen: list[Request] = []

    async def go() -> tuple[list[RequestResult], list[RequestResult]]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        async with ChatClient(dead, max_connections=1) as client:
            refused = [await client.chat("m", MSGS, total_timeout_s=5) for _ in range(3)]
        async with serve(handler) as srv, ChatClient(srv.url, max_connections=1) as client:
            served = [await client.chat("m", MSGS, total_timeout_s=5) for _ in range(drops + 2)]
        return refused, served

    refused, served = run(go())
    assert [r.error_class for r in refused] == [errors.CONNECTION_REFUSED] * 3
    assert [r.error_class for r in served[:drops]] == [errors.CONNECTION_DROPPED] * drops
    assert all(r.ok for r in served[drops:]), [r.error for r in served[drops:]]
