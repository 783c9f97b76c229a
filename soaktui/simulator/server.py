"""The built-in simulator: an OpenAI-compatible HTTP server of simulated models.

It is a product feature (`soaktui simulate`, `soaktui --demo`) and the ground every integration test
and benchmark stands on. It paces answers like a real model (time to first token growing with the
prompt, a steady token rate), injects faults reproducibly, can play an outage, and records when it
received each request and when it wrote the first token, on `perf_counter_ns()` (one monotonic
clock for every process on Linux), so a benchmark can check the client's timings against the
server's own.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (stream and non-stream), the native
endpoints of the configured flavor (flavors.py; llama.cpp's in llamacpp.py, vLLM's in vllm.py), and
the simulator's own:
`GET /sim/requests[?last=N]` (the per-request log; `load_ns` is how long a request waited for a cold
load of its model, see loading.py) and `POST /sim/control` with
`{"down_for_s": S, "mode": "503" | "close" | "refuse"}` (an outage of chat requests).

Each flavor answers like its real server of the release `SimConfig.server_version` names (defaults
in versions.py): what it does with a prompt that does not fit (context.py), its stream wire format
and the way it writes an error inside a stream, llama.cpp's slots, prompt cache and `timings`. Every
behaviour cites its source in a comment; docs/servers.md gathers them.

This module is the server: connections, routing, and what each chat request gets (its checks,
the plan, the fault, llama.cpp's slot). How the answer is paced and written is delivery.py; a
server on a thread of the caller's process (the tests) is threaded.py.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from soaktui.simulator import context, httpio, textgen
from soaktui.simulator import llamacpp as lcpp
from soaktui.simulator import versions as ver
from soaktui.simulator.completion import (
    LLAMACPP_STYLE,
    OLLAMA_NEW_STYLE,
    OLLAMA_STYLE,
    OPENAI_STYLE,
    BadChatRequest,
    ChunkEncoder,
    Completion,
    completion_body,
    plan_completion,
    read_max_tokens,
)
from soaktui.simulator.delivery import Delivery, Timing
from soaktui.simulator.faults import STALL, Fault, FaultPlan, decide, fault_rng
from soaktui.simulator.flavors import (
    FLAVORS,
    LLAMACPP,
    LMSTUDIO,
    OLLAMA,
    OPENAI,
    VLLM,
    FlavorAPI,
    ServerOptions,
    error_body,
)
from soaktui.simulator.personas import Persona, default_personas
from soaktui.simulator.reqlog import Record, RequestLog

OUTAGE_MODES = ("503", "close", "refuse")
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
    # The release imitated: "0.12.6" (Ollama), "b11434" (llama.cpp), "0.34.0" (vLLM), "0.3.15" (LM
    # Studio); None: versions.DEFAULT_VERSIONS. Behaviours that changed between releases follow it.
    server_version: str | None = None
    # Ollama: the runtime context (OLLAMA_CONTEXT_LENGTH); None: the version's default (4096 from
    # v0.6.7), capped at each model's training window. A persona's num_ctx (Modelfile) wins.
    ollama_num_ctx: int | None = None
    ollama_cloud: bool = True  # list the cloud model stub gpt-oss:120b-cloud (v0.12.0+)
    # llama.cpp: router mode (no -m), slots (-np), unified KV cache, context (-c; None: the training
    # window), --metrics, and the router's --models-max.
    llamacpp_router: bool = False
    llamacpp_slots: int = 4
    llamacpp_kv_unified: bool = True
    llamacpp_ctx: int | None = None
    llamacpp_metrics: bool = True
    llamacpp_models_max: int = 4
    # LM Studio: what an over-long prompt gets: "error" (HTTP 400), "truncate_middle" and
    # "rolling_window" (cut silently, 200), "event_error" (200 + SSE `event: error`, 0.4.21), "empty"
    # (200 with no content, a GGUF-engine report).
    lmstudio_overflow: str = "error"

    def server_options(self) -> ServerOptions:
        return ServerOptions(
            server_version=self.server_version,
            ollama_num_ctx=self.ollama_num_ctx,
            ollama_cloud=self.ollama_cloud,
            llamacpp_router=self.llamacpp_router,
            llamacpp_slots=self.llamacpp_slots,
            llamacpp_kv_unified=self.llamacpp_kv_unified,
            llamacpp_ctx=self.llamacpp_ctx,
            llamacpp_metrics=self.llamacpp_metrics,
            llamacpp_models_max=self.llamacpp_models_max,
            lmstudio_overflow=self.lmstudio_overflow,
        )

    def __post_init__(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {self.flavor!r} (known: {', '.join(FLAVORS)})")
        if self.server_version is not None and self.flavor != OPENAI:
            ver.parse(self.flavor, self.server_version)  # ValueError with a one-line reason
        if self.flavor == LLAMACPP and self.llamacpp_router:
            build = ver.parse(LLAMACPP, self.server_version or ver.DEFAULT_VERSIONS[LLAMACPP])
            if build < (ver.LCPP_ROUTER,):
                raise ValueError(f"llama.cpp router mode needs build b{ver.LCPP_ROUTER} or later")
        self.server_options()  # validates the flavor options
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
        self.api = FlavorAPI(self.config.flavor, self.config.personas, self.config.server_options())
        self.api.speed = self.config.speed
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
            answer = native(req.query, body)
            if inspect.isawaitable(answer):
                answer = await answer
            status, obj = answer
            if isinstance(obj, str):
                payload = obj.encode()
                ctype = "text/plain; version=0.0.4" if req.path == "/metrics" else "text/plain"
                conn.writer.write(
                    httpio.raw_response(status, payload, keep_alive=req.keep_alive, content_type=ctype)
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

        api = self.api
        flavor = api.flavor
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError:
            return await reply(400, _bad_json())
        if not isinstance(body, dict):
            return await reply(400, error_body("request body must be a JSON object", "invalid_request_error"))
        record.stream = stream = body.get("stream") is True
        messages = body.get("messages")
        persona = api.resolve(body.get("model"))
        record.model = api.exposed_name(persona) if persona else _short(body.get("model"))
        if not isinstance(messages, list) or not messages:
            return await reply(
                400,
                error_body("messages must be a non-empty array", "invalid_request_error", param="messages"),
            )
        if api.router:  # proxy_post: router_validate_model, with ?autoload= (server-models.cpp)
            autoload = req.query.get("autoload", "true") in ("true", "1")
            persona, refusal = api.router_check(body.get("model"), autoload)
            if refusal is not None:
                return await reply(*refusal)
        if persona is None:
            return await reply(*api.model_not_found(body.get("model")))
        if not persona.is_chat:
            return await reply(*api.not_a_chat_model(body["model"]))

        if self._down():
            record.fault = "outage"
            if self._down_mode == "503":
                return await reply(
                    503, error_body("simulated outage: server unavailable", "server_error", code=503)
                )
            conn.writer.transport.abort()
            return False

        try:
            # Ollama's openai.ChatCompletionRequest has no max_completion_tokens: it is ignored
            max_tokens = read_max_tokens(body, ("max_tokens",) if flavor == OLLAMA else None)
        except BadChatRequest as exc:
            return await reply(400, error_body(str(exc), "invalid_request_error", param=exc.param))
        ask, refused = api.structured_ask(body.get("response_format"))
        refused = refused or api.tools_refused(persona, body.get("tools"))
        if refused is not None:
            return await reply(*refused)
        prompt_tokens = textgen.count_prompt_tokens(messages, body.get("tools"))
        fit = self._fit(persona, body, prompt_tokens, max_tokens, stream)
        record.prompt_tokens = fit.reported
        if fit.stream_reject is not None and stream:
            record.status = 200
            record.end_ns = time.perf_counter_ns()
            conn.writer.write(
                httpio.response_head(200, "text/event-stream", length=None, keep_alive=req.keep_alive)
                + httpio.frame(fit.stream_reject)
                + httpio.LAST_CHUNK
            )
            await conn.writer.drain()
            return True
        if fit.reject is not None:
            return await reply(*fit.reject)

        n = record.n
        pn = self._persona_counters.get(persona.id, 0) + 1
        self._persona_counters[persona.id] = pn
        # Draws are keyed by the model and its own request count, not the server-wide count: the same
        # seed gives each model the same answers and faults however the requests interleave.
        rng = fault_rng(self.config.seed, persona.id, pn)
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

        if flavor == OLLAMA:
            # num_predict -1 (or over 10*num_ctx) is clamped to 10*num_ctx (llm/server.go Completion:
            # "put an upper limit on num_predict to avoid the model running on forever")
            cap = 10 * api.ollama_num_ctx(persona)
            max_tokens = cap if max_tokens is None else min(max_tokens, cap)
        text_rng = random.Random(f"soaktui-sim:{self.config.seed}:{persona.id}:{pn}:text")
        plan = plan_completion(
            persona,
            body,
            fit.reported,
            max_tokens,
            text_rng,
            call_id_prefix=f"sim{n}",
            ask=ask,
            room=fit.room,
        )
        if fit.empty:  # LM Studio "empty": 200 with zero content deltas, usage still counted
            plan = Completion([], "stop", fit.reported)
        speed = self.config.speed
        api.loads.begin(persona)
        try:
            record.load_ns = load_ns = (
                0
                if api.is_cloud(persona)
                else api.loads.wait_ns(persona, req.recv_ns, int((persona.load_ms or 0.0) * 1e6 / speed))
            )
            return await self._generate(
                req, conn, record, body, persona, plan, fault, rng, fit, load_ns, stream
            )
        finally:
            api.loads.end(persona)

    def _fit(
        self, persona: Persona, body: dict[str, Any], prompt_tokens: int, max_tokens: int | None, stream: bool
    ) -> context.Fit:
        """What this flavor and release do with the prompt's size (context.py)."""
        api = self.api
        flavor = api.flavor
        tools = body.get("tools")
        tools_tokens = textgen.count_tokens(orjson.dumps(tools).decode()) if tools else 0
        if flavor == LLAMACPP:
            n_ctx = api.llamacpp_server(persona).n_ctx_slot
            return context.llamacpp_fit(api.version[0], prompt_tokens, n_ctx, stream)
        if flavor == OLLAMA:
            if api.is_cloud(persona):  # proxied to ollama.com: its own (maximum) context
                return context.Fit(prompt_tokens, None)
            num_ctx = api.ollama_num_ctx(persona)
            return context.ollama_fit(api.version, body["messages"], tools_tokens, prompt_tokens, num_ctx)
        if flavor == LMSTUDIO:
            return context.lmstudio_fit(
                api.version,
                api.options.lmstudio_overflow,
                body["messages"],
                tools_tokens,
                prompt_tokens,
                persona.context_length,
            )
        if flavor == VLLM:
            param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
            return context.vllm_fit(
                api.version, prompt_tokens, max_tokens, persona.context_length, param, stream
            )
        return context.openai_fit(prompt_tokens, max_tokens, persona.context_length)

    def _encoder(self, record: Record, created: int, model: str, include_usage: bool) -> ChunkEncoder:
        api = self.api
        if api.flavor == LLAMACPP:
            return ChunkEncoder(record.id, created, model, include_usage, LLAMACPP_STYLE, api.build_info)
        if api.flavor == OLLAMA:
            style = OLLAMA_NEW_STYLE if api.since(ver.OLLAMA_ROLE_ONCE) else OLLAMA_STYLE
            return ChunkEncoder(record.id, created, model, include_usage, style, "fp_ollama")
        if api.flavor == LMSTUDIO:  # system_fingerprint = the model id [report: lmstudio-js#320]
            return ChunkEncoder(record.id, created, model, include_usage, OPENAI_STYLE, model)
        return ChunkEncoder(record.id, created, model, include_usage)

    async def _generate(
        self,
        req: httpio.Request,
        conn: _Conn,
        record: Record,
        body: dict[str, Any],
        persona: Persona,
        plan: Completion,
        fault: Fault | None,
        rng: random.Random,
        fit: context.Fit,
        load_ns: int,
        stream: bool,
    ) -> bool:
        """Pace and write one answer; llama.cpp's slot, prompt cache, timings and metrics around it."""
        api = self.api
        speed = self.config.speed
        n_out = plan.completion_tokens
        stall_ms = fault.stall_s * 1e3 if fault is not None and fault.kind == STALL else 0.0
        usage: dict[str, Any] = plan.usage()
        extra: dict[str, Any] | None = None
        processed = fit.reported
        srv: lcpp.Server | None = None
        slot: lcpp.Slot | None = None
        prompt_text = ""
        waited_ns = 0
        if api.flavor == LLAMACPP:
            srv = api.llamacpp_server(persona)
            prompt_text = lcpp.render_prompt(body["messages"], body.get("tools"))
            before = time.perf_counter_ns()
            slot, shared = await srv.acquire(prompt_text)
            waited_ns = time.perf_counter_ns() - before  # a deferred request waited for a slot
            cached = 0 if fit.truncated else lcpp.cached_tokens(prompt_text, shared, fit.reported)
            processed = fit.reported - cached
            slot.n_prompt_tokens, slot.n_prompt_processed, slot.n_prompt_cache = (
                fit.reported,
                processed,
                cached,
            )
            asked = body.get("max_tokens")
            slot.max_tokens = asked if isinstance(asked, int) else -1
            slot.stream, slot.n_decoded = stream, 0
        prompt_ns = int((persona.ttft_ms / 1e3 + processed / persona.prompt_tps) * 1e9 / speed)
        interval_ns = int(1e9 / (persona.tps * speed))
        if srv is not None:
            build = api.version[0]
            # usage_json_oaicompat (server-task.cpp): completion, prompt, total, prompt_tokens_details
            usage = {
                "completion_tokens": n_out,
                "prompt_tokens": fit.reported,
                "total_tokens": n_out + fit.reported,
            }
            if build >= ver.LCPP_CACHED_TOKENS:
                usage["prompt_tokens_details"] = {"cached_tokens": fit.reported - processed}
            predicted_ms = max(n_out - 1, 0) * interval_ns / 1e6 + stall_ms
            extra = {
                "timings": lcpp.timings(
                    build, fit.reported - processed, processed, prompt_ns / 1e6, n_out, predicted_ms
                )
            }
        vc = api.vllm_counters.get(persona.id)
        if vc is not None:
            vc.running += 1
            vc.running_tokens += fit.reported + n_out
        timing = Timing(
            recv_ns=req.recv_ns,
            ttft_ns=max(load_ns, waited_ns) + prompt_ns,
            interval_ns=interval_ns,
        )
        delivery = Delivery(conn.writer, req.keep_alive, api, record, plan, fault, rng, timing)
        created = int(time.time())
        model = body["model"]
        ok = False
        try:
            if stream:
                opts = body.get("stream_options")
                include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
                enc = self._encoder(record, created, model, include_usage)
                ok = await delivery.stream(enc, include_usage, usage, extra)
                return ok
            payload = orjson.dumps(
                completion_body(
                    record.id,
                    created,
                    model,
                    plan,
                    style=LLAMACPP_STYLE if srv is not None else OPENAI_STYLE,
                    usage=usage,
                    extra=extra,
                    fingerprint=api.build_info or None,
                )
            )
            ok = await delivery.whole(payload)
            return ok
        finally:
            sent = record.completion_tokens or 0
            if vc is not None:
                vc.running -= 1
                vc.running_tokens -= fit.reported + n_out
                vc.prompt_tokens += fit.reported
                vc.generation_tokens += sent
                reason = record.finish_reason if record.finish_reason in ("stop", "length") else "abort"
                vc.finished[reason] = vc.finished.get(reason, 0) + 1
            if srv is not None and slot is not None:
                slot.n_decoded = sent
                answer = "".join(d for d in plan.deltas[:sent] if isinstance(d, str))
                cached_text = prompt_text + "\n" + answer if ok else prompt_text
                lcpp.record(
                    srv,
                    prompt_n=processed,
                    cached=fit.reported - processed,
                    prompt_us=prompt_ns // 1000,
                    predicted_n=sent,
                    predicted_us=int(max(sent - 1, 0) * interval_ns / 1000 + stall_ms * 1000),
                )
                srv.release(slot, cached_text)


def _short(value: Any) -> str | None:
    """A client-sent model name as logged: strings only, bounded."""
    return value[:200] if isinstance(value, str) else None


def _bad_json() -> dict[str, Any]:
    return error_body("We could not parse the JSON body of your request.", "invalid_request_error")
