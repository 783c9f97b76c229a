"""Writing one chat answer on the wire at a model's pace: streamed or whole, with in-flight faults.

server.py decides what a request gets (checks, the completion plan, the fault drawn, llama.cpp's
slot and timings); this module decides only when each byte goes out and what a fault does to the
bytes. `Delivery.stream` sends the headers at once, the first token at TTFT and then one token
per interval (several per write when tokens are due faster than the loop can sleep);
`Delivery.whole` sends the whole body when the last token would have been generated. Each
flavor's end of stream and error-inside-a-stream framing are here too, since they are bytes on
the same path.

Kept apart from the request handling because this is the timing-critical path every TTFT and
throughput figure of the simulator rests on (bench/timing_fidelity.py and bench/client_ceiling.py
measure it), and it needs nothing from the server but the flavor's API and the connection.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson

from soaktui.simulator import context, httpio
from soaktui.simulator import versions as ver
from soaktui.simulator import vllm as vl
from soaktui.simulator.completion import OPENAI_STYLE, ChunkEncoder, Completion
from soaktui.simulator.faults import DROP, MALFORMED, MID_STREAM, STALL, STREAM_ERROR, Fault
from soaktui.simulator.flavors import LLAMACPP, OLLAMA, VLLM, FlavorAPI, error_body
from soaktui.simulator.reqlog import Record

BATCH = 256  # most chunks written between two awaits when tokens are due faster than we can sleep


@dataclass(frozen=True)
class Timing:
    """When a request's tokens are due, on the perf_counter_ns clock."""

    recv_ns: int
    ttft_ns: int
    interval_ns: int

    def token_due(self, index: int) -> int:
        return self.recv_ns + self.ttft_ns + max(index, 0) * self.interval_ns


async def sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.perf_counter_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


def stream_error(api: FlavorAPI, enc: ChunkEncoder, record: Record) -> bytes:
    """The bytes a failure after the first tokens writes, per server (then the body ends)."""
    msg = "simulated error during generation"
    if api.flavor == OLLAMA:
        return api.ollama_stream_error(record.id, int(time.time()))
    if api.flavor == LLAMACPP:
        err = {"code": 500, "message": msg, "type": "server_error"}
        framed = context.llamacpp_stream_error(api.version[0], err, first=False)
        assert framed is not None
        data, done = framed
        return data + (enc.DONE if done else b"")
    if api.flavor == VLLM:
        return vl.stream_error(api.version, msg)
    return b"data: " + orjson.dumps(error_body(msg, "server_error", code=500)) + b"\n\n"


def stream_tail(
    api: FlavorAPI,
    enc: ChunkEncoder,
    plan: Completion,
    include_usage: bool,
    usage: dict[str, Any],
    extra: dict[str, Any] | None,
    sent_any: bool,
) -> bytes:
    """The finish chunk, the usage chunk and [DONE]; `extra` (llama.cpp's timings) on the last."""
    finish = plan.finish_reason
    if api.flavor == LLAMACPP:
        build = api.version[0]
        if build < ver.LCPP_USAGE_CHUNK:  # usage always, inside the finish chunk, with timings
            return enc.finish(finish, {"usage": usage, **(extra or {})}) + enc.DONE
        if build < ver.LCPP_USAGE_OPT_IN or include_usage:  # a trailing `choices: []` chunk
            return enc.finish(finish) + enc.usage(usage, extra) + enc.DONE
        return enc.finish(finish, extra) + enc.DONE  # to_json_oaicompat_chat_stream: deltas.back()
    parts = [
        enc.finish(finish)
        if sent_any or enc.style != OPENAI_STYLE
        else enc.delta({"role": "assistant", "content": None if plan.tool_answer else ""}, finish)
    ]
    if include_usage:
        parts.append(enc.usage(usage))
    parts.append(enc.DONE)
    return b"".join(parts)


@dataclass
class Delivery:
    """One answer on its way out: the connection, the flavor, the request's record (filled in as
    bytes go out), the plan, the fault drawn for it and when its tokens are due."""

    writer: asyncio.StreamWriter
    keep_alive: bool
    api: FlavorAPI
    record: Record
    plan: Completion
    fault: Fault | None
    rng: random.Random
    timing: Timing

    async def whole(self, payload: bytes) -> bool:
        """A non-streamed answer: sent whole when the last token would have been generated. False:
        the connection was dropped (a fault) and must not be reused."""
        writer, record, fault = self.writer, self.record, self.fault
        n_tokens = self.plan.completion_tokens
        kind = fault.kind if fault else None
        if fault is not None and kind == DROP:
            await sleep_until(self.timing.token_due(fault.position(self.rng, n_tokens) - 1))
            writer.transport.abort()
            return False
        await sleep_until(self.timing.token_due(n_tokens - 1))
        if fault is not None and kind == STALL:
            await asyncio.sleep(fault.stall_s)
        if kind == STREAM_ERROR:
            status, err = self.api.stream_error_body()
            record.status = status
            writer.write(httpio.json_response(status, err, keep_alive=self.keep_alive))
            await writer.drain()
            return True
        if kind == MALFORMED:
            payload = payload[: len(payload) // 2]
        writer.write(httpio.raw_response(200, payload, keep_alive=self.keep_alive))
        await writer.drain()
        record.status = 200
        record.end_ns = time.perf_counter_ns()
        record.completion_tokens = n_tokens
        record.finish_reason = self.plan.finish_reason
        return True

    async def stream(
        self,
        enc: ChunkEncoder,
        include_usage: bool,
        usage: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """A streamed answer: headers now, the first token at TTFT, then one token per interval.
        False: the connection was dropped (a fault, or the client went away) and must not be reused."""
        writer, record, plan, fault = self.writer, self.record, self.plan, self.fault
        deltas = plan.deltas
        n = len(deltas)
        record.status = 200
        record.completion_tokens = 0
        writer.write(httpio.response_head(200, "text/event-stream", length=None, keep_alive=self.keep_alive))
        role = enc.role(plan.tool_answer)
        fault_at = fault.position(self.rng, n) if fault is not None and fault.kind in MID_STREAM else None
        interval_ns = self.timing.interval_ns
        base_ns = self.timing.recv_ns + self.timing.ttft_ns
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
                parts = [role] if sent == 0 else []
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
                    writer.write(httpio.frame(stream_error(self.api, enc, record)) + httpio.LAST_CHUNK)
                    await writer.drain()
                    return True
                if fault.kind == STALL:
                    await asyncio.sleep(fault.stall_s)
                    base_ns += int(fault.stall_s * 1e9)
                elif fault.kind == MALFORMED:
                    writer.write(httpio.frame(enc.malformed()))
            await emit_until(n)
            if n == 0:  # nothing to stream (an empty answer): the tail waits for the first token's time
                await sleep_until(base_ns)
            tail = stream_tail(self.api, enc, plan, include_usage, usage, extra, n > 0)
            writer.write(httpio.frame(tail) + httpio.LAST_CHUNK)
            await writer.drain()
            record.finish_reason = plan.finish_reason
            return True
        except ConnectionError:
            record.client_closed = True
            return False
        finally:
            record.end_ns = time.perf_counter_ns()
