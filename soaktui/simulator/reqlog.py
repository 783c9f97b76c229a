"""The simulator's per-request timing log, in fixed memory.

Benchmarks compare the client's timings with the server's own stamps, request by request, so the
simulator keeps a record of every chat request. A run can send hundreds of thousands of requests
(and `--demo` runs the simulator inside the measured process), so finished records live in
preallocated columns of a ring buffer: the log costs the same memory after ten requests as after a
million, and the oldest records are overwritten once `maxlen` is reached.
"""

from __future__ import annotations

from array import array
from typing import Any

from soaktui.simulator.faults import FAULT_KINDS

_FAULTS = (None, "outage", *FAULT_KINDS)
_FINISH = (None, "stop", "length", "tool_calls")
MAX_MODEL_NAMES = 1024  # distinct model names remembered; more collapse into "<other>"


class Record:
    """One chat request while it is in flight (fields as in `/sim/requests`)."""

    __slots__ = (
        "n",
        "model",
        "stream",
        "recv_ns",
        "first_token_ns",
        "end_ns",
        "prompt_tokens",
        "completion_tokens",
        "status",
        "finish_reason",
        "fault",
        "client_closed",
        "load_ns",
    )

    def __init__(self, n: int, recv_ns: int) -> None:
        self.n = n
        self.recv_ns = recv_ns
        self.model: str | None = None
        self.stream = False
        self.first_token_ns: int | None = None
        self.end_ns: int | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.status: int | None = None
        self.finish_reason: str | None = None
        self.fault: str | None = None
        self.client_closed = False
        self.load_ns: int | None = None  # time waited for a cold load of the model (0: it was loaded)

    @property
    def id(self) -> str:
        return response_id(self.n)

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.__slots__}
        d["id"] = self.id
        return d


def response_id(n: int) -> str:
    """The `id` of the response to chat request number `n`."""
    return f"chatcmpl-sim-{n}"


def _opt(value: int | None) -> int:
    return -1 if value is None else value


def _unopt(value: int) -> int | None:
    return None if value < 0 else value


class RequestLog:
    """Ring buffer of finished records plus the records still in flight."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._count = 0  # finished records ever committed
        self._n = array("q", bytes(8 * maxlen))
        self._recv = array("q", bytes(8 * maxlen))
        self._first = array("q", bytes(8 * maxlen))
        self._end = array("q", bytes(8 * maxlen))
        self._prompt = array("q", bytes(8 * maxlen))
        self._completion = array("q", bytes(8 * maxlen))
        self._load = array("q", bytes(8 * maxlen))
        self._status = array("h", bytes(2 * maxlen))
        self._model = array("h", bytes(2 * maxlen))
        self._codes = array("B", bytes(maxlen))  # stream | client_closed<<1 | fault<<2 | finish<<6
        self._models: list[str | None] = [None]
        self._model_index: dict[str | None, int] = {None: 0}
        self._open: dict[int, Record] = {}

    def open(self, n: int, recv_ns: int) -> Record:
        record = Record(n, recv_ns)
        self._open[n] = record
        return record

    def close(self, record: Record) -> None:
        """Commit a finished record to the ring."""
        self._open.pop(record.n, None)
        i = self._count % self.maxlen
        self._count += 1
        self._n[i] = record.n
        self._recv[i] = record.recv_ns
        self._first[i] = _opt(record.first_token_ns)
        self._end[i] = _opt(record.end_ns)
        self._prompt[i] = _opt(record.prompt_tokens)
        self._completion[i] = _opt(record.completion_tokens)
        self._load[i] = _opt(record.load_ns)
        self._status[i] = _opt(record.status)
        self._model[i] = self._model_code(record.model)
        fault = _FAULTS.index(record.fault) if record.fault in _FAULTS else 0
        finish = _FINISH.index(record.finish_reason) if record.finish_reason in _FINISH else 0
        self._codes[i] = int(record.stream) | int(record.client_closed) << 1 | fault << 2 | finish << 6

    def _model_code(self, model: str | None) -> int:
        code = self._model_index.get(model)
        if code is None:
            if len(self._models) >= MAX_MODEL_NAMES:
                model = "<other>"
                code = self._model_index.get(model)
            if code is None:
                code = len(self._models)
                self._models.append(model)
                self._model_index[model] = code
        return code

    def _row(self, i: int) -> dict[str, Any]:
        codes = self._codes[i]
        n = self._n[i]
        return {
            "id": response_id(n),
            "n": n,
            "model": self._models[self._model[i]],
            "stream": bool(codes & 1),
            "recv_ns": self._recv[i],
            "first_token_ns": _unopt(self._first[i]),
            "end_ns": _unopt(self._end[i]),
            "prompt_tokens": _unopt(self._prompt[i]),
            "completion_tokens": _unopt(self._completion[i]),
            "status": _unopt(self._status[i]),
            "finish_reason": _FINISH[codes >> 6],
            "fault": _FAULTS[(codes >> 2) & 0xF],
            "client_closed": bool(codes & 2),
            "load_ns": _unopt(self._load[i]),
        }

    def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        """Finished and in-flight records, ordered by request number; all or the `last` N."""
        kept = min(self._count, self.maxlen)
        want = kept if last is None else min(kept, max(last, 0))
        start = self._count - want
        rows = [self._row(k % self.maxlen) for k in range(start, self._count)]
        rows.extend(r.to_dict() for r in self._open.values())
        rows.sort(key=lambda r: r["n"])
        return rows[-last:] if last else rows

    def __len__(self) -> int:
        return min(self._count, self.maxlen) + len(self._open)
