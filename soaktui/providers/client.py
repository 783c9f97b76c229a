"""The OpenAI-compatible chat client: one request in, one fully classified RequestResult out.

Every figure soaktui reports about a request starts here, so this module measures and does nothing
else: `perf_counter_ns()` is stamped on each body chunk as it arrives from the socket, before any
parsing, and every SSE event parsed from that chunk carries that stamp. Failures never escape as
exceptions (a soak must outlive its server): each becomes one class from `soaktui.errors` with a
one-line message. Only asyncio cancellation propagates, after the result is marked CANCELLED and
handed to `on_cancel`. Memory per request is bounded (content, excerpts and SSE lines are capped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson

from soaktui import errors
from soaktui.log.events import SOURCE_CHUNKS, SOURCE_UNKNOWN, SOURCE_USAGE, USAGE_REJECTED
from soaktui.providers.http1 import Http1Transport, lean_applies
from soaktui.providers.result import (
    MAX_CONTENT_CHARS,
    RequestResult,
    completion_limit,
    server_timings,
    usage_counts,
)
from soaktui.providers.sse import SSEEvent, SSEParser
from soaktui.providers.types import is_loopback

log = logging.getLogger(__name__)

EXCERPT_CHARS = 500  # body_excerpt length
ERROR_BODY_CAP = 64 * 1024  # bytes read from an error body (enough to find the message)
HEAD_CAP = 4096  # first bytes of a stream body kept to explain a non-SSE answer
# A non-stream completion or a native-endpoint read, held once while it is parsed. Parsing is what
# costs: orjson builds up to ~30x a body's size in objects (a body of tiny objects; ~14x for one
# long string), so the cap bounds the parse too. 8 MiB is 4x what soaktui keeps of an answer
# (MAX_CONTENT_CHARS) and far beyond any model list or /api/show.
JSON_BODY_CAP = 8 * 1024 * 1024
MAX_TOOL_CALLS = 128  # distinct streamed tool-call indices kept per request
MESSAGE_CHARS = 300  # the one-line `error` message
DRAIN_S = 0.5  # after [DONE]: how long to wait for the end of the body (keeps the connection)


def runaway_chunks(max_tokens: int | None) -> int | None:
    """The most content chunks a stream asked for `max_tokens` may carry before it is cut as
    `runaway_stream`: twice the tokens allowed, plus 32 (a chunk carries one token or more; a
    server's stop can come a few tokens late). A server that ignores max_tokens and keeps streaming
    would otherwise be bounded only by the total timeout. None when the request set no max_tokens."""
    return None if max_tokens is None or max_tokens <= 0 else 2 * max_tokens + 32

# Server wordings for "the request does not fit the context" (sources in docs/servers.md):
# llama.cpp ("the request exceeds the available context size", type exceed_context_size_error),
# llama-cpp-python, vLLM ("This model's maximum context length is N tokens", and "'max_tokens' ...
# is too large" / "... cannot be greater than max_model_len"), OpenAI, Ollama, LM Studio's GGUF
# engine ("... context length of only N tokens") and its MLX engine ("Context size has been
# exceeded."), and generic phrasings.
_CONTEXT_OVERFLOW = re.compile(
    r"exceeds? the available context size|exceed_context_size|exceed context window|maximum context length"
    r"|context[ _]length|context window|context size has been exceeded|max_model_len|n_ctx"
    r"|too many tokens",
    re.IGNORECASE,
)


def is_context_overflow(text: str | None) -> bool:
    """True when a server's error text says the request does not fit the context window."""
    return text is not None and _CONTEXT_OVERFLOW.search(text) is not None


def _error_class(message: str | None) -> str:
    """The class of an error a server sent in its answer: context overflow or a plain stream error."""
    return errors.CONTEXT_OVERFLOW if is_context_overflow(message) else errors.STREAM_ERROR


def _one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    """A short message for an exception; never empty."""
    text = str(exc).strip()
    name = type(exc).__name__
    return _one_line(f"{name}: {text}" if text else name)


def _error_message(obj: Any) -> str | None:
    """The human message in an error body: {"error": {"message"}}, {"error": "..."}, vLLM's
    {"message"}, FastAPI's {"detail"}."""
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg") or err.get("type")
        return str(msg) if msg else orjson.dumps(err).decode()
    if isinstance(err, str) and err:
        return err
    for key in ("message", "detail"):
        val = obj.get(key)
        if val:
            return val if isinstance(val, str) else orjson.dumps(val, default=str).decode()
    return None


def _looks_not_sse(response: httpx.Response, head: bytes | bytearray) -> bool:
    """A body that produced no event is "not SSE" (rather than cut short) when its type says so
    or it starts like HTML or JSON."""
    if "text/event-stream" not in response.headers.get("content-type", ""):
        return True
    return head.lstrip()[:1] in (b"<", b"{", b"[")


def _body_was_read(result: RequestResult) -> bool:
    """Counting content chunks is a measurement only once a 2xx stream body started arriving."""
    status = result.http_status
    return result.stream and result.first_byte_ns is not None and status is not None and 200 <= status < 300


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """After [DONE], read the body's end (normally already here) so the connection can be reused;
    give up quickly on a server that keeps it open. Nothing read here is measured."""
    timeout = getattr(asyncio, "timeout", None)  # Python >= 3.11; on 3.10 the response is closed
    if timeout is None:
        return
    try:
        async with timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


class _Failed(Exception):
    """Internal: stop reading and report this class and message."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class _Accumulator:
    """Folds parsed chunk objects (streamed deltas or a whole message) into a RequestResult."""

    __slots__ = (
        "r", "content", "content_len", "reasoning", "reasoning_len", "calls", "usage", "timings", "closed",
        "runaway",
    )

    def __init__(self, result: RequestResult) -> None:
        self.r = result
        self.content: list[str] = []
        self.content_len = 0
        self.reasoning: list[str] = []
        self.reasoning_len = 0
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.closed = False
        self.runaway = runaway_chunks(result.max_tokens)  # once per request, not per chunk

    def add_content(self, text: str) -> None:
        room = MAX_CONTENT_CHARS - self.content_len
        if room <= 0:
            self.r.content_truncated = True
            return
        if len(text) > room:
            text = text[:room]
            self.r.content_truncated = True
        self.content.append(text)
        self.content_len += len(text)

    def add_reasoning(self, text: str) -> None:
        room = MAX_CONTENT_CHARS - self.reasoning_len
        if room > 0:
            text = text[:room]
            self.reasoning.append(text)
            self.reasoning_len += len(text)

    def add_tool_calls(self, deltas: list[Any]) -> None:
        """Merge streamed tool-call deltas by index: name once, arguments concatenated."""
        for pos, d in enumerate(deltas):
            if not isinstance(d, dict):
                continue
            idx = d.get("index")
            if not isinstance(idx, int):
                idx = self._index_for(d.get("id"), pos)
            call = self.calls.get(idx)
            if call is None:
                if len(self.calls) >= MAX_TOOL_CALLS:
                    continue
                call = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                self.calls[idx] = call
            if d.get("id") and not call["id"]:
                call["id"] = d["id"]
            fn = d.get("function")
            if isinstance(fn, dict):
                f = call["function"]
                name = fn.get("name")
                if name and not f["name"]:
                    f["name"] = str(name)
                args = fn.get("arguments")
                if args is not None:
                    if not isinstance(args, str):  # some servers send an object
                        args = orjson.dumps(args, default=str).decode()
                    room = MAX_CONTENT_CHARS - len(f["arguments"])
                    if room > 0:
                        f["arguments"] += args[:room]

    def _index_for(self, call_id: Any, pos: int) -> int:
        if call_id:
            for i, c in self.calls.items():
                if c["id"] == call_id:
                    return i
            return max(self.calls, default=-1) + 1
        return pos

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = usage

    def add_timings(self, timings: Any) -> None:
        """llama.cpp's `timings` (on the last chunk; on every chunk with timings_per_token): the
        newest one is the request's."""
        if isinstance(timings, dict):
            self.timings = timings

    def close(self, counted_chunks: bool) -> None:
        """Write accumulated text, tool calls and token counts into the result (once)."""
        if self.closed:
            return
        self.closed = True
        r = self.r
        r.content = "".join(self.content)
        r.reasoning = "".join(self.reasoning)
        r.tool_calls = [self.calls[i] for i in sorted(self.calls)]
        if self.timings is not None:
            r.server_timings = server_timings(self.timings)
        counts = usage_counts(self.usage) if self.usage is not None else (None, None, None)
        if not isinstance(counts, str):
            prompt, completion, cached = counts
            fns = [c["function"] for c in r.tool_calls]
            chars = len(r.content) + len(r.reasoning) + sum(len(f["name"]) + len(f["arguments"]) for f in fns)
            limit = completion_limit(r.chunks if counted_chunks else None, chars)
            if completion is not None and completion > limit:
                counts = f"completion_tokens {completion} above the {limit} this answer can hold"
        if isinstance(counts, str):  # impossible counts: believe none of them, count chunks instead
            why = f" ({USAGE_REJECTED}: {counts})"
            r.token_source = (SOURCE_CHUNKS if counted_chunks else SOURCE_UNKNOWN) + why
            if counted_chunks:
                r.output_tokens = r.chunks
            return
        r.prompt_tokens, r.cached_prompt_tokens = prompt, cached
        if completion is not None:
            r.output_tokens = completion
            r.token_source = SOURCE_USAGE
        elif counted_chunks:
            r.output_tokens = r.chunks
            r.token_source = SOURCE_CHUNKS


class ChatClient:
    """One httpx.AsyncClient for one OpenAI-compatible server; many concurrent requests."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        max_line_bytes: int = 1 << 20,
        max_connections: int = 64,
        transport: str = "auto",
    ) -> None:
        """`transport` (the setting http_transport): "lean" (providers/http1.py for every plain
        http URL), "httpx" (httpx's own), or "auto": lean for plain http with no proxy in the way.
        https always uses httpx's own."""
        self.base_url = base_url.rstrip("/")
        self.chat_url = f"{self.base_url}/v1/chat/completions"
        self.max_line_bytes = max_line_bytes
        # Requests on the wire now: the engine reads their last_byte_ns for the live "now" line and
        # the silence watchdog (engine/inflight.py). Added and removed by chat() only.
        self.in_flight: dict[int, RequestResult] = {}  # by id(): results compare by value
        headers = {"Accept-Encoding": "identity"}  # raw bytes = body bytes, no decoder buffering
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        trust_env = not is_loopback(self.base_url)  # a proxy must not sit between us and a local server
        lean = lean_applies(self.base_url, trust_env=trust_env, setting=transport)
        self.transport = "lean" if lean else "httpx"
        self._http = httpx.AsyncClient(
            headers=headers,
            transport=Http1Transport(max_connections=max_connections) if lean else None,
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=None
            ),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=trust_env,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- chat ------------------------------------------------------------------------------------
    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        stream: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        total_timeout_s: float = 600.0,
        extra: dict[str, Any] | None = None,
        on_cancel: Callable[[RequestResult], None] | None = None,
        read_timeout_s: float | None = None,
    ) -> RequestResult:
        """Send one chat completion; return its observations. Never raises except CancelledError.
        `read_timeout_s`: this request's longest silence, when not the client's (a whole, non-streamed
        answer is silent until it is complete)."""
        result = RequestResult(model=model, stream=stream, max_tokens=max_tokens, read_timeout_s=read_timeout_s)
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if extra:
            body.update(extra)
        acc = _Accumulator(result)
        self.in_flight[id(result)] = result
        try:
            await self._run(result, acc, body, stream, total_timeout_s, on_cancel)
        finally:
            del self.in_flight[id(result)]
        return result

    async def _run(
        self,
        result: RequestResult,
        acc: _Accumulator,
        body: dict[str, Any],
        stream: bool,
        total_timeout_s: float,
        on_cancel: Callable[[RequestResult], None] | None,
    ) -> None:
        """Send and read one request into `result`, classifying every failure (see chat)."""
        try:
            payload = orjson.dumps(body)
            run = self._stream if stream else self._whole
            await asyncio.wait_for(run(result, acc, payload), total_timeout_s)
        except asyncio.CancelledError:
            self._fail(result, errors.CANCELLED, "cancelled before the response completed")
            acc.close(_body_was_read(result))
            if on_cancel is not None:
                try:
                    on_cancel(result)
                except Exception:
                    log.exception("on_cancel callback failed")
            raise
        except _Failed as f:  # decided from what was read: end_ns may already mark the last byte
            self._fail(result, f.error_class, f.message, keep_end=True)
        except asyncio.TimeoutError:
            self._fail(
                result, errors.TOTAL_TIMEOUT, f"request exceeded the total timeout of {total_timeout_s:g} s"
            )
        except httpx.ConnectTimeout as exc:
            self._fail(result, errors.CONNECT_TIMEOUT, f"connect timed out ({_describe(exc)})")
        except httpx.PoolTimeout:
            self._fail(result, errors.CONNECT_TIMEOUT, "no free connection in the client pool")
        except httpx.ReadTimeout:
            self._fail(result, errors.READ_TIMEOUT, self._silence_message(result))
        except httpx.WriteTimeout:
            self._fail(result, errors.READ_TIMEOUT, "timed out sending the request (server not reading)")
        except httpx.ConnectError as exc:
            self._fail(
                result, errors.CONNECTION_REFUSED, f"cannot connect to {self.base_url}: {_describe(exc)}"
            )
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            where = "mid-response" if result.first_byte_ns is not None else "before responding"
            self._fail(
                result, errors.CONNECTION_DROPPED, f"server closed the connection {where}: {_describe(exc)}"
            )
        except Exception as exc:  # a soak must outlive surprises; keep the class honest ("other")
            log.debug("chat request failed", exc_info=True)
            self._fail(result, errors.OTHER, _describe(exc))
        else:
            result.ok = True
        acc.close(_body_was_read(result))  # no-op when the success path already closed it

    def _silence_message(self, result: RequestResult) -> str:
        """What the read timeout cut: nothing at all, or a response that went silent (and how much of
        it had arrived), so a slow model is not mistaken for a server that never answered."""
        read = result.read_timeout_s or self._http.timeout.read
        if result.first_byte_ns is None:
            return f"server sent nothing for {read:g} s (read timeout)"
        got = f"{result.chunks} content chunks" if result.stream else "part of the answer"
        return f"server went silent for {read:g} s after {got} (read timeout)"

    @staticmethod
    def _fail(result: RequestResult, error_class: str, message: str, *, keep_end: bool = False) -> None:
        result.ok = False
        result.error_class = error_class
        result.error = _one_line(message) or error_class
        if result.end_ns is None or not keep_end:  # otherwise: when the failure was observed
            result.end_ns = time.perf_counter_ns()

    async def _send(self, result: RequestResult, payload: bytes, accept: str) -> httpx.Response:
        """Send the request; the response head is read, the body is left to the caller.

        A kept-alive connection the server has already closed fails before a single response byte:
        llama-server, for one, closes the connection after every streamed answer while its headers
        say keep-alive (tools/server/server-http.cpp ends the chunked provider as cancelled), so the
        next request on it meets "Server disconnected without sending a response". That request
        never reached the server: it is sent once more on a new connection (as browsers do), its
        timing starts again, and `connection_retries` records it. A failure on a new connection, or
        after any byte of an answer, is the server's and is reported as such.
        """
        fresh = False

        async def on_wire(event: str, info: dict[str, Any]) -> None:
            # httpcore's trace hook: the request starts going out now. With many requests started at
            # once, the loop takes milliseconds to get each one onto the wire: that wait is the
            # client's, not the server's, so TTFT starts here (the queue time is kept apart).
            nonlocal fresh
            if event.endswith("send_request_headers.started"):
                result.sent_ns = time.perf_counter_ns()
            elif event.startswith("connection.connect_tcp"):
                fresh = True  # a new connection, not one from the pool

        timeout = (
            httpx.Timeout(self._http.timeout.connect, read=result.read_timeout_s, write=result.read_timeout_s, pool=None)
            if result.read_timeout_s
            else httpx.USE_CLIENT_DEFAULT
        )

        def build() -> httpx.Request:
            return self._http.build_request(
                "POST",
                self.chat_url,
                content=payload,
                headers={"Content-Type": "application/json", "Accept": accept},
                extensions={"trace": on_wire},
                timeout=timeout,
            )

        result.submit_ns = result.sent_ns = time.perf_counter_ns()  # fallback if no trace event comes
        try:
            return await self._http.send(build(), stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if fresh or result.first_byte_ns is not None:
                raise
        result.connection_retries += 1
        result.submit_ns = result.sent_ns = time.perf_counter_ns()
        return await self._http.send(build(), stream=True)

    async def _stream(self, result: RequestResult, acc: _Accumulator, payload: bytes) -> None:
        response = await self._send(result, payload, "text/event-stream")
        try:
            result.http_status = response.status_code
            if not response.is_success:
                await self._http_error(result, response)
            await self._read_stream(result, acc, response)
        finally:
            await response.aclose()

    async def _read_stream(self, result: RequestResult, acc: _Accumulator, response: httpx.Response) -> None:
        parser = SSEParser(self.max_line_bytes)
        perf = time.perf_counter_ns
        take = self._take_events
        head = bytearray()  # the first bytes, to explain a body that is not SSE
        done = False
        stamp = 0
        chunks = response.aiter_raw()
        async for chunk in chunks:
            stamp = perf()  # before any parsing: every event in this chunk arrived now
            result.last_byte_ns = stamp
            if result.first_byte_ns is None:
                result.first_byte_ns = stamp
            if len(head) < HEAD_CAP:
                head += chunk[: HEAD_CAP - len(head)]
            events = parser.feed(chunk)
            if parser.oversized_lines:
                raise _Failed(
                    errors.MALFORMED_STREAM,
                    f"SSE line longer than {self.max_line_bytes} bytes (discarded)",
                )
            if events and take(result, acc, events, stamp, errors.MALFORMED_STREAM):
                done = True
                break
        result.end_ns = stamp or perf()
        if done:
            await _drain(chunks)
        else:
            # A JSON error in an event flushed at EOF means the stream was cut mid-event.
            done = take(result, acc, parser.finish(), stamp, errors.CONNECTION_DROPPED)
        if result.events == 0 and not done and _looks_not_sse(response, head):
            self._not_sse(response, bytes(head))
        if not done and result.finish_reason is None:
            raise _Failed(errors.CONNECTION_DROPPED, "stream ended without [DONE] or a finish_reason")
        self._finish_ok(result, acc, counted_chunks=True)

    def _take_events(
        self, result: RequestResult, acc: _Accumulator, events: list[SSEEvent], stamp: int, bad_json: str
    ) -> bool:
        """Fold parsed events into the result; True once [DONE] is seen."""
        loads = orjson.loads
        for ev in events:
            data = ev.data
            if data == "[DONE]":
                return True
            if not data or data.isspace():
                continue
            result.events += 1
            try:
                obj = loads(data)
            except orjson.JSONDecodeError:
                if ev.event == "error":  # an error event whose data is plain text
                    raise _Failed(_error_class(data), f"server error in stream: {_one_line(data, 200)}") from None
                if bad_json == errors.CONNECTION_DROPPED:
                    raise _Failed(
                        bad_json, "stream ended in the middle of an event (truncated JSON)"
                    ) from None
                raise _Failed(bad_json, f"SSE data is not JSON: {_one_line(data, 120)}") from None
            self._take_chunk(result, acc, obj, ev.event, stamp)
        return False

    @staticmethod
    def _take_chunk(
        result: RequestResult, acc: _Accumulator, obj: Any, event: str | None, stamp: int
    ) -> None:
        if not isinstance(obj, dict):
            raise _Failed(errors.MALFORMED_STREAM, f"SSE data is not a JSON object: {type(obj).__name__}")
        # {"error": ...} (OpenAI, llama.cpp b6628-b6900 and LM Studio in a stream; vLLM's
        # create_streaming_error_response wraps its error object so, then sends data: [DONE]), an
        # `error` event (llama.cpp's old `error:` line, LM Studio 0.4's `event: error`), or a bare
        # {"object": "error", "message": ...} (vLLM <= 0.10's error body shape).
        if obj.get("error") or event == "error" or obj.get("object") == "error":
            msg = _error_message(obj) or _one_line(orjson.dumps(obj).decode(), 200)
            raise _Failed(_error_class(msg), f"server error in stream: {msg}")
        if result.response_id is None:
            rid = obj.get("id")
            if rid:
                result.response_id = str(rid)
        usage = obj.get("usage")
        if usage:
            acc.add_usage(usage)
        timings = obj.get("timings")
        if timings:
            acc.add_timings(timings)
        choices = obj.get("choices")
        if not choices:
            return
        c0 = choices[0]
        if not isinstance(c0, dict):
            return
        fr = c0.get("finish_reason")
        if fr:
            result.finish_reason = str(fr)
        delta = c0.get("delta")
        if not isinstance(delta, dict):
            return
        content = delta.get("content")
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        calls = delta.get("tool_calls")
        if not (content or reasoning or calls):
            return
        if result.first_token_ns is None:
            result.first_token_ns = stamp
        result.last_token_ns = stamp
        result.token_ns.append(stamp)
        result.chunks += 1
        limit = acc.runaway
        if limit is not None and result.chunks > limit:
            raise _Failed(
                errors.RUNAWAY_STREAM,
                f"stream still going after {limit} content chunks with max_tokens={result.max_tokens} "
                "(the server ignores max_tokens); stopped reading",
            )
        if content and isinstance(content, str):
            acc.add_content(content)
        if reasoning and isinstance(reasoning, str):
            acc.add_reasoning(reasoning)
        if calls and isinstance(calls, list):
            acc.add_tool_calls(calls)

    @staticmethod
    def _finish_ok(result: RequestResult, acc: _Accumulator, *, counted_chunks: bool) -> None:
        acc.close(counted_chunks)
        if not result.content and not result.tool_calls:
            extra = f" (only {len(result.reasoning)} chars of reasoning)" if result.reasoning else ""
            fr = f", finish_reason={result.finish_reason}" if result.finish_reason else ""
            raise _Failed(errors.EMPTY_RESPONSE, f"no content and no tool calls{extra}{fr}")

    @staticmethod
    def _not_sse(response: httpx.Response, head: bytes) -> None:
        """A 2xx stream answer without a single SSE event: say what came instead."""
        ctype = response.headers.get("content-type", "no content-type")
        text = head.decode("utf-8", "replace")
        try:
            obj = orjson.loads(head) if head else None
        except orjson.JSONDecodeError:
            obj = None
        msg = _error_message(obj)
        if msg:
            raise _Failed(_error_class(msg), f"server error: {msg}")
        if not head:
            raise _Failed(errors.EMPTY_RESPONSE, "empty response body")
        raise _Failed(errors.MALFORMED_STREAM, f"expected an SSE stream, got {ctype}: {_one_line(text, 120)}")

    async def _whole(self, result: RequestResult, acc: _Accumulator, payload: bytes) -> None:
        response = await self._send(result, payload, "application/json")
        try:
            result.http_status = response.status_code
            if not response.is_success:
                await self._http_error(result, response)
            body, complete = await self._read_capped(response, JSON_BODY_CAP, result)
        finally:
            await response.aclose()
        if result.end_ns is None:  # empty body: nothing was stamped
            result.end_ns = time.perf_counter_ns()
        if not complete:
            raise _Failed(
                errors.BAD_RESPONSE, f"response body larger than {JSON_BODY_CAP // 2**20} MiB (not read further)"
            )
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body[:200].decode("utf-8", "replace")
            raise _Failed(errors.BAD_RESPONSE, f"response is not JSON: {_one_line(text, 120)}") from None
        if not isinstance(obj, dict):
            raise _Failed(errors.BAD_RESPONSE, f"response is not a JSON object: {type(obj).__name__}")
        msg = _error_message(obj) if obj.get("error") or obj.get("object") == "error" else None
        if msg:
            raise _Failed(_error_class(msg), f"server error: {msg}")
        if obj.get("id"):
            result.response_id = str(obj["id"])
        acc.add_usage(obj.get("usage"))
        acc.add_timings(obj.get("timings"))
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Failed(errors.BAD_RESPONSE, "response has no choices")
        c0 = choices[0]
        if c0.get("finish_reason"):
            result.finish_reason = str(c0["finish_reason"])
        message = c0.get("message")
        if not isinstance(message, dict):
            raise _Failed(errors.BAD_RESPONSE, "response choice has no message")
        content = message.get("content")
        if isinstance(content, str) and content:
            acc.add_content(content)
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            acc.add_reasoning(reasoning)
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            acc.add_tool_calls(calls)
        self._finish_ok(result, acc, counted_chunks=False)

    @staticmethod
    async def _read_capped(
        response: httpx.Response, cap: int, result: RequestResult | None = None
    ) -> tuple[bytearray, bool]:
        """Up to `cap` bytes of the body (and whether that was all of it), stamping arrivals. The
        body is held once, in the buffer returned (orjson parses a bytearray as it is): no copy, and
        nothing past the cap is read (the caller closes the response, dropping the connection)."""
        buf = bytearray()
        async for chunk in response.aiter_raw():
            if result is not None:
                now = time.perf_counter_ns()
                if result.first_byte_ns is None:
                    result.first_byte_ns = now
                result.end_ns = result.last_byte_ns = now
            if len(buf) + len(chunk) > cap:
                buf += memoryview(chunk)[: cap - len(buf)]  # what fits: an error body's excerpt
                return buf, False
            buf += chunk
        return buf, True

    async def _http_error(self, result: RequestResult, response: httpx.Response) -> None:
        """A non-2xx answer: keep the status and an excerpt, then fail with the right class."""
        body, _ = await self._read_capped(response, ERROR_BODY_CAP, result)
        text = body.decode("utf-8", "replace")
        result.body_excerpt = text[:EXCERPT_CHARS]
        try:
            msg = _error_message(orjson.loads(body))
        except orjson.JSONDecodeError:
            msg = None
        if is_context_overflow(msg or text):
            raise _Failed(errors.CONTEXT_OVERFLOW, f"HTTP {response.status_code}: {msg or text}")
        detail = msg or text.strip() or response.reason_phrase or "no body"
        raise _Failed(errors.HTTP_STATUS, f"HTTP {response.status_code}: {detail}")

    # -- native endpoints ------------------------------------------------------------------------
    async def get_json(
        self, path: str, timeout_s: float, *, json_body: Any = None
    ) -> tuple[int | None, Any, str]:
        """Read a small JSON document (GET, or POST when `json_body` is given, e.g. Ollama's
        /api/show). Returns (status, parsed JSON or None, text excerpt); status is None when no
        HTTP answer came, and the excerpt then says why. Never raises except CancelledError."""
        url = path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

        async def read() -> tuple[int | None, Any, str]:
            kwargs: dict[str, Any] = {"timeout": httpx.Timeout(timeout_s)}
            if json_body is not None:
                request = self._http.build_request(
                    "POST",
                    url,
                    content=orjson.dumps(json_body),
                    headers={"Content-Type": "application/json"},
                    **kwargs,
                )
            else:
                request = self._http.build_request("GET", url, **kwargs)
            response = await self._http.send(request, stream=True)
            try:
                body, complete = await self._read_capped(response, JSON_BODY_CAP)
            finally:
                await response.aclose()
            text = body[:EXCERPT_CHARS].decode("utf-8", "replace")
            parsed = None
            if complete and body:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    parsed = None
            return response.status_code, parsed, text

        try:
            return await asyncio.wait_for(read(), timeout_s)
        except asyncio.TimeoutError:
            return None, None, f"no answer within {timeout_s:g} s"
        except httpx.ConnectError as exc:
            return None, None, f"cannot connect: {_describe(exc)}"
        except Exception as exc:  # a probe must not take discovery down
            return None, None, _describe(exc)
