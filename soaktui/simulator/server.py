"""The built-in simulator: an OpenAI-compatible HTTP server of simulated models.

It is a product feature (`soaktui simulate`, `soaktui --demo`) and the ground every integration test
and benchmark stands on. It paces answers like a real model (time to first token growing with the
prompt, a steady token rate), injects faults reproducibly, can play an outage, and records when it
received each request and when it wrote the first token, on `perf_counter_ns()` (one monotonic
clock for every process on Linux), so a benchmark can check the client's timings against the
server's own.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (stream and non-stream), the native
model endpoints of the configured flavor (see flavors.py), and the simulator's own:
`GET /sim/requests[?last=N]` (the per-request log; `load_ns` is how long a request waited for a cold
load of its model, see loading.py) and `POST /sim/control` with
`{"down_for_s": S, "mode": "503" | "close" | "refuse"}` (an outage of chat requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from soaktui.simulator import httpio, textgen
from soaktui.simulator.completion import (
    BadChatRequest,
    ChunkEncoder,
    Completion,
    completion_body,
    plan_completion,
    read_max_tokens,
)
from soaktui.simulator.faults import (
    DROP,
    MALFORMED,
    MID_STREAM,
    STALL,
    STREAM_ERROR,
    Fault,
    FaultPlan,
    decide,
    fault_rng,
)
from soaktui.simulator.flavors import FLAVORS, FlavorAPI, error_body
from soaktui.simulator.personas import Persona, default_personas
from soaktui.simulator.reqlog import Record, RequestLog

OUTAGE_MODES = ("503", "close", "refuse")
BATCH = 256  # most chunks written between two awaits when tokens are due faster than we can sleep
DEFAULT_LOG_MAX = 100_000


@dataclass
class SimConfig:
    """What the simulator serves and how it misbehaves."""

    flavor: str = "openai"  # openai | lmstudio | ollama | llamacpp | vllm
    seed: int = 0
    speed: float = 1.0  # time compression: every simulated delay is divided by it
    faults: FaultPlan = field(default_factory=FaultPlan)  # applies to every model
    personas: list[Persona] = field(default_factory=default_personas)
    log_max: int = DEFAULT_LOG_MAX  # bound of the /sim/requests log
    max_body_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {self.flavor!r} (known: {', '.join(FLAVORS)})")
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        ids = [p.id for p in self.personas]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("personas must be a non-empty list with unique ids")
        if self.log_max < 1:
            raise ValueError("log_max must be at least 1")


class _Conn:
    __slots__ = ("writer", "busy")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.busy = False


class SimServer:
    """The simulator on an asyncio loop. `await start()`, then `base_url`; `await stop()` ends it."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.api = FlavorAPI(self.config.flavor, self.config.personas)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task[Any], _Conn] = {}
        self._stopped = asyncio.Event()
        self._closing = False
        self._counter = 0
        self._persona_counters: dict[str, int] = {}
        self._log = RequestLog(self.config.log_max)
        self._down_until_ns = 0
        self._down_mode = "503"
        self._reopen: asyncio.TimerHandle | None = None
        self._native = self.api.routes()
        self._routes: dict[tuple[str, str], Callable[[httpio.Request, _Conn], Awaitable[bool]]] = {
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat,
            ("GET", "/sim/requests"): self._sim_requests,
            ("POST", "/sim/control"): self._sim_control,
        }

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """`http://HOST:PORT`, without `/v1`."""
        return f"http://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=httpio.MAX_HEAD_BYTES, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        """Serve until `stop()` (starts on the default address first if not started)."""
        if self._server is None:
            await self.start()
        await self._stopped.wait()

    async def stop(self) -> None:
        self._closing = True
        if self._reopen is not None:
            self._reopen.cancel()
        if self._server is not None:
            self._server.close()
        for task, conn in list(self._conns.items()):
            conn.writer.transport.abort()
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._stopped.set()

    # -- in-process control ----------------------------------------------------------------------
    def set_outage(self, down_for_s: float, mode: str = "503") -> None:
        """Fail chat requests for `down_for_s` real seconds: `503` answers, `close` drops the
        connection, `refuse` stops listening (new connections are refused)."""
        if mode not in OUTAGE_MODES:
            raise ValueError(f"outage mode must be one of {', '.join(OUTAGE_MODES)}")
        if down_for_s < 0:
            raise ValueError("down_for_s must not be negative")
        self._down_until_ns = time.perf_counter_ns() + int(down_for_s * 1e9)
        self._down_mode = mode
        if mode == "refuse" and down_for_s > 0:
            loop = asyncio.get_running_loop()
            loop.call_soon(self._refuse_begin)
            if self._reopen is not None:
                self._reopen.cancel()
            self._reopen = loop.call_later(down_for_s, lambda: asyncio.ensure_future(self._refuse_end()))

    def _refuse_begin(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self._conns.values():
            if not conn.busy:
                conn.writer.transport.abort()

    async def _refuse_end(self) -> None:
        self._reopen = None
        if self._closing:
            return
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, limit=httpio.MAX_HEAD_BYTES, reuse_address=True
        )

    def _down(self) -> bool:
        return time.perf_counter_ns() < self._down_until_ns

    def requests_log(self, last: int | None = None) -> list[dict[str, Any]]:
        """The per-request records (oldest first), all or the `last` N."""
        return self._log.entries(last)

    # -- connections -----------------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(writer)
        self._conns[task] = conn
        try:
            while not self._closing:
                try:
                    req = await httpio.read_request(reader, self.config.max_body_bytes)
                except httpio.HttpError as exc:
                    body = error_body(exc.message, "invalid_request_error", code=exc.status)
                    writer.write(httpio.json_response(exc.status, body, keep_alive=False))
                    await writer.drain()
                    break
                if req is None:
                    break
                conn.busy = True
                keep = await self._dispatch(req, conn)
                conn.busy = False
                if not keep or not req.keep_alive or self._refusing():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() cancels handlers; ending quietly keeps asyncio's stream callback from logging a
            # traceback for a cancelled connection task (Python 3.11).
            if not self._closing:
                raise
        finally:
            self._conns.pop(task, None)
            writer.close()

    def _refusing(self) -> bool:
        return self._down_mode == "refuse" and self._down()

    async def _dispatch(self, req: httpio.Request, conn: _Conn) -> bool:
        """Answer one request; False closes the connection."""
        handler = self._routes.get((req.method, req.path))
        if handler is not None:
            return await handler(req, conn)
        native = self._native.get((req.method, req.path))
        if native is not None:
            body = None
            if req.body:
                try:
                    body = orjson.loads(req.body)
                except orjson.JSONDecodeError:
                    return await self._send_json(conn, req, 400, _bad_json())
            status, obj = native(req.query, body)
            if isinstance(obj, str):
                payload = obj.encode()
                conn.writer.write(
                    httpio.raw_response(status, payload, keep_alive=req.keep_alive, content_type="text/plain")
                )
                await conn.writer.drain()
                return True
            return await self._send_json(conn, req, status, obj)
        known_paths = {p for _, p in self._routes} | {p for _, p in self._native}
        if req.path in known_paths:
            return await self._send_json(
                conn, req, 405, error_body(f"method {req.method} not allowed", "invalid_request_error")
            )
        return await self._send_json(
            conn, req, 404, error_body(f"unknown path {req.path}", "invalid_request_error", code=404)
        )

    async def _send_json(
        self, conn: _Conn, req: httpio.Request, status: int, obj: Any, extra: tuple[tuple[str, str], ...] = ()
    ) -> bool:
        conn.writer.write(httpio.json_response(status, obj, keep_alive=req.keep_alive, extra=extra))
        await conn.writer.drain()
        return True

    # -- simple endpoints ------------------------------------------------------------------------
    async def _models(self, req: httpio.Request, conn: _Conn) -> bool:
        return await self._send_json(conn, req, 200, self.api.openai_models())

    async def _sim_requests(self, req: httpio.Request, conn: _Conn) -> bool:
        try:
            last = int(req.query["last"]) if "last" in req.query else None
        except ValueError:
            return await self._send_json(
                conn, req, 400, error_body("last must be an integer", "invalid_request_error")
            )
        return await self._send_json(
            conn, req, 200, {"object": "list", "total": self._counter, "data": self.requests_log(last)}
        )

    async def _sim_control(self, req: httpio.Request, conn: _Conn) -> bool:
        try:
            body = orjson.loads(req.body or b"{}")
            down_for_s = float(body.get("down_for_s", 0.0))
            mode = str(body.get("mode", "503"))
            self.set_outage(down_for_s, mode)
        except orjson.JSONDecodeError:
            return await self._send_json(conn, req, 400, _bad_json())
        except (AttributeError, TypeError, ValueError) as exc:
            return await self._send_json(conn, req, 400, error_body(str(exc), "invalid_request_error"))
        # Before refusing connections, say so: a client must not reuse this one.
        keep = req.keep_alive and not (mode == "refuse" and down_for_s > 0)
        answer = {"ok": True, "down_for_s": down_for_s, "mode": mode}
        conn.writer.write(httpio.json_response(200, answer, keep_alive=keep))
        await conn.writer.drain()
        return keep

    # -- chat completions ------------------------------------------------------------------------
    async def _chat(self, req: httpio.Request, conn: _Conn) -> bool:
        self._counter += 1
        record = self._log.open(self._counter, req.recv_ns)
        try:
            return await self._chat_inner(req, conn, record)
        finally:
            if record.end_ns is None:
                record.end_ns = time.perf_counter_ns()
            self._log.close(record)

    async def _chat_inner(self, req: httpio.Request, conn: _Conn, record: Record) -> bool:
        async def reply(status: int, obj: Any, extra: tuple[tuple[str, str], ...] = ()) -> bool:
            record.status = status
            return await self._send_json(conn, req, status, obj, extra)

        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return await reply(400, _bad_json())
        if not isinstance(body, dict):
            return await reply(400, error_body("request body must be a JSON object", "invalid_request_error"))
        record.stream = stream = body.get("stream") is True
        messages = body.get("messages")
        persona = self.api.resolve(body.get("model"))
        record.model = self.api.exposed_name(persona) if persona else _short(body.get("model"))
        if not isinstance(messages, list) or not messages:
            return await reply(
                400,
                error_body("messages must be a non-empty array", "invalid_request_error", param="messages"),
            )
        if persona is None:
            return await reply(*self.api.model_not_found(body.get("model")))
        if not persona.is_chat:
            return await reply(*self.api.not_a_chat_model(body["model"]))

        if self._down():
            record.fault = "outage"
            if self._down_mode == "503":
                return await reply(
                    503, error_body("simulated outage: server unavailable", "server_error", code=503)
                )
            conn.writer.transport.abort()
            return False

        try:
            max_tokens = read_max_tokens(body)
        except BadChatRequest as exc:
            return await reply(400, error_body(str(exc), "invalid_request_error", param=exc.param))
        ask, refused = self.api.structured_ask(body.get("response_format"))
        refused = refused or self.api.tools_refused(persona, body.get("tools"))
        if refused is not None:
            return await reply(*refused)
        record.prompt_tokens = prompt_tokens = textgen.count_prompt_tokens(messages, body.get("tools"))
        if prompt_tokens + (max_tokens or 0) > persona.context_length:
            return await reply(*self.api.context_overflow(persona.context_length, prompt_tokens, max_tokens))

        n = record.n
        pn = self._persona_counters.get(persona.id, 0) + 1
        self._persona_counters[persona.id] = pn
        rng = fault_rng(self.config.seed, n)
        fault = decide(rng, self.config.faults, n, persona.faults, pn)
        record.fault = fault.kind if fault else None
        if fault is not None and fault.http_status is not None:
            status = fault.http_status
            extra = (("Retry-After", "1"),) if status == 429 else ()
            message = {
                429: "simulated rate limit",
                500: "simulated internal error",
                503: "simulated overload",
            }
            return await reply(status, error_body(message[status], "server_error", code=status), extra)

        text_rng = random.Random(f"soaktui-sim:{self.config.seed}:{n}:text")
        plan = plan_completion(
            persona, body, prompt_tokens, max_tokens, text_rng, call_id_prefix=f"sim{n}", ask=ask
        )
        speed = self.config.speed
        record.load_ns = load_ns = self.api.loads.wait_ns(
            persona, req.recv_ns, int((persona.load_ms or 0.0) * 1e6 / speed)
        )
        timing = _Timing(
            recv_ns=req.recv_ns,
            ttft_ns=load_ns + int((persona.ttft_ms / 1e3 + prompt_tokens / persona.prompt_tps) * 1e9 / speed),
            interval_ns=int(1e9 / (persona.tps * speed)),
        )
        created = int(time.time())
        if stream:
            opts = body.get("stream_options")
            include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            enc = ChunkEncoder(record.id, created, body["model"], include_usage)
            return await self._stream(conn, req, record, plan, fault, rng, enc, include_usage, timing)
        payload = orjson.dumps(completion_body(record.id, created, body["model"], plan))
        return await self._complete(conn, req, record, plan, fault, rng, payload, timing)

    async def _complete(
        self,
        conn: _Conn,
        req: httpio.Request,
        record: Record,
        plan: Completion,
        fault: Fault | None,
        rng: random.Random,
        payload: bytes,
        timing: _Timing,
    ) -> bool:
        """A non-streamed answer: sent whole when the last token would have been generated."""
        n_tokens = plan.completion_tokens
        kind = fault.kind if fault else None
        if fault is not None and kind == DROP:
            await _sleep_until(timing.token_due(fault.position(rng, n_tokens) - 1))
            conn.writer.transport.abort()
            return False
        await _sleep_until(timing.token_due(n_tokens - 1))
        if fault is not None and kind == STALL:
            await asyncio.sleep(fault.stall_s)
        if kind == STREAM_ERROR:
            record.status = 500
            return await self._send_json(
                conn, req, 500, error_body("simulated error during generation", "server_error", code=500)
            )
        if kind == MALFORMED:
            payload = payload[: len(payload) // 2]
        conn.writer.write(httpio.raw_response(200, payload, keep_alive=req.keep_alive))
        await conn.writer.drain()
        record.status = 200
        record.end_ns = time.perf_counter_ns()
        record.completion_tokens = n_tokens
        record.finish_reason = plan.finish_reason
        return True

    async def _stream(
        self,
        conn: _Conn,
        req: httpio.Request,
        record: Record,
        plan: Completion,
        fault: Fault | None,
        rng: random.Random,
        enc: ChunkEncoder,
        include_usage: bool,
        timing: _Timing,
    ) -> bool:
        """A streamed answer: headers now, the first token at TTFT, then one token per interval."""
        writer = conn.writer
        deltas = plan.deltas
        n = len(deltas)
        record.status = 200
        record.completion_tokens = 0
        writer.write(httpio.response_head(200, "text/event-stream", length=None, keep_alive=req.keep_alive))
        role = {"role": "assistant", "content": None if plan.tool_answer else ""}
        fault_at = fault.position(rng, n) if fault is not None and fault.kind in MID_STREAM else None
        interval_ns = timing.interval_ns
        base_ns = timing.recv_ns + timing.ttft_ns
        sent = 0

        async def emit_until(stop: int) -> None:
            nonlocal sent
            while sent < stop:
                due = base_ns + sent * interval_ns
                now = time.perf_counter_ns()
                slept = False
                if due > now:
                    await asyncio.sleep((due - now) / 1e9)
                    now = time.perf_counter_ns()
                    slept = True
                ready = stop if interval_ns <= 0 else (now - base_ns) // interval_ns + 1
                end = min(stop, max(sent + 1, ready), sent + BATCH)
                parts = [enc.delta(role)] if sent == 0 else []
                parts.extend(enc.encode(deltas[i]) for i in range(sent, end))
                writer.write(httpio.frame(b"".join(parts)))
                if sent == 0:
                    record.first_token_ns = time.perf_counter_ns()
                sent = end
                record.completion_tokens = sent
                await writer.drain()
                if not slept:
                    await asyncio.sleep(0)

        try:
            await writer.drain()
            if fault_at is not None and fault is not None:
                await emit_until(fault_at)
                if fault.kind == DROP:
                    writer.transport.abort()
                    return False
                if fault.kind == STREAM_ERROR:
                    err = error_body("simulated error during generation", "server_error", code=500)
                    writer.write(httpio.frame(b"data: " + orjson.dumps(err) + b"\n\n") + httpio.LAST_CHUNK)
                    await writer.drain()
                    return True
                if fault.kind == STALL:
                    await asyncio.sleep(fault.stall_s)
                    base_ns += int(fault.stall_s * 1e9)
                elif fault.kind == MALFORMED:
                    writer.write(httpio.frame(enc.malformed()))
            await emit_until(n)
            tail = [enc.delta({} if n else role, plan.finish_reason)]
            if include_usage:
                tail.append(enc.usage(plan.usage()))
            tail.append(enc.DONE)
            writer.write(httpio.frame(b"".join(tail)) + httpio.LAST_CHUNK)
            await writer.drain()
            record.finish_reason = plan.finish_reason
            return True
        except ConnectionError:
            record.client_closed = True
            return False
        finally:
            record.end_ns = time.perf_counter_ns()


@dataclass(frozen=True)
class _Timing:
    """When a request's tokens are due, on the perf_counter_ns clock."""

    recv_ns: int
    ttft_ns: int
    interval_ns: int

    def token_due(self, index: int) -> int:
        return self.recv_ns + self.ttft_ns + max(index, 0) * self.interval_ns


def _short(value: Any) -> str | None:
    """A client-sent model name as logged: strings only, bounded."""
    return value[:200] if isinstance(value, str) else None


async def _sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.perf_counter_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


def _bad_json() -> dict[str, Any]:
    return error_body("We could not parse the JSON body of your request.", "invalid_request_error")


# -- a simulator on its own thread ----------------------------------------------------------------


class SimHandle:
    """A simulator running on its own event loop in a daemon thread (tests, `--demo`)."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = SimServer(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, port), name="soaktui-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start(host, port))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self.server.stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def requests_log(self, last: int | None = None) -> list[dict[str, Any]]:
        """A copy of the request log, taken on the simulator's own thread."""
        return self._call(lambda: self.server.requests_log(last))

    def set_outage(self, down_for_s: float, mode: str = "503") -> None:
        self._call(lambda: self.server.set_outage(down_for_s, mode))

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(config: SimConfig | None = None, port: int = 0, host: str = "127.0.0.1") -> SimHandle:
    """Start a simulator on a daemon thread; returns once it listens. Use as a context manager."""
    return SimHandle(config or SimConfig(), host, port)
