"""What the servers hid: cold loads, stalls, silently cut prompts, and their own view of speed.

The request reducer (aggregate.py) counts successes and times; this fold keeps, per model, the
evidence of the failures a 200 can hide (see scenarios/request_checks.py) and the figures that
need the server's own word:

- cold loads: requests that waited for their model to load (`cold`), kept out of every TTFT and
  latency figure and shown here on their own: how many, the wait for the first token, and the load
  time (the server's timings where it sends them; else the cold wait minus the model's warm TTFT p50,
  marked as an estimate);
- stalls: streams silent for `stall_s` or more, with when they happened and the longest gap;
- silently cut prompts (`prompt_truncated`): how many, with the counts that gave them away;
- generation speed: soaktui's `gen_tps` beside the server's own `server_gen_tps` over the same
  requests, flagged when they disagree by more than SPEED_DISAGREEMENT;
- context: the runtime context a server reported for a loaded model (`model_context` events).
Everything is bounded: arrays of floats per model, and at most MAX_EXAMPLES examples each.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from soaktui.report.folds.common import is_cancelled, is_num, new_sample, num_or_none
from soaktui.report.folds.merging import add_fields, add_rows
from soaktui.report.snapshot import ServerTruth
from soaktui.stats import describe, percentile_parts, sorted_sample

MAX_EXAMPLES = 20  # stall and truncation examples kept per model (all are counted)
SPEED_DISAGREEMENT = 0.25  # |soaktui / server - 1| above this is flagged


class _ModelTruth:
    __slots__ = (
        "cold",
        "cold_wait",
        "load_server",
        "stalls",
        "stall_examples",
        "max_gap",
        "cut",
        "cut_examples",
        "gen_pairs_client",
        "gen_pairs_server",
        "prompt_server",
    )

    def __init__(self, new: Callable[[], Any]) -> None:
        self.cold = 0
        self.cold_wait = array("d")  # ms until the first token (whole answer when not streamed)
        self.load_server = array("d")  # load_ms derived from the server's own timings
        self.stalls = 0
        self.stall_examples: deque[dict[str, Any]] = deque(maxlen=MAX_EXAMPLES)
        self.max_gap: float | None = None
        self.cut = 0
        self.cut_examples: deque[dict[str, Any]] = deque(maxlen=MAX_EXAMPLES)
        # one value per warm request: bounded sketches in a live fold (folds/common.new_sample); the
        # cold waits above stay exact (one per model load, and the estimate subtracts value by value)
        self.gen_pairs_client = new()
        self.gen_pairs_server = new()
        self.prompt_server = new()

    def merge(self, later: _ModelTruth) -> None:
        samples = ("cold_wait", "load_server", "gen_pairs_client", "gen_pairs_server", "prompt_server")
        add_fields(self, later, ("cold", "stalls", "cut"), samples)  # the pairs stay pairs
        self.stall_examples.extend(later.stall_examples)  # the newest MAX_EXAMPLES, as one fold keeps
        self.cut_examples.extend(later.cut_examples)
        if later.max_gap is not None and (self.max_gap is None or later.max_gap > self.max_gap):
            self.max_gap = later.max_gap


class ServerTruthFold:
    """Feed `request` and `model_context` events; `snapshot(warm_ttft)` gives the section."""

    KINDS: ClassVar[dict[str, str]] = {"request": "feed_request", "model_context": "on_model_context"}

    def __init__(self, *, exact: bool = True) -> None:
        self._new = new_sample(exact)
        self._models: dict[str, _ModelTruth] = {}
        self._context: dict[str, dict[str, Any]] = {}

    def _row(self, ev: dict[str, Any]) -> _ModelTruth:
        key = f"{ev.get('provider')}/{ev.get('model')}" if ev.get("provider") else str(ev.get("model"))
        row = self._models.get(key)
        if row is None:
            row = self._models[key] = _ModelTruth(self._new)
        return row

    @staticmethod
    def wanted(ev: dict[str, Any]) -> bool:
        """Cheap test on the hot path: does this request event carry anything for this fold?"""
        return bool(
            ev.get("cold")
            or ev.get("stalled")
            or ev.get("prompt_truncated")
            or ev.get("server_gen_tps") is not None
            or ev.get("server_prompt_tps") is not None
        )

    def feed_request(self, ev: dict[str, Any]) -> None:
        """The hot path (every request of the log): `wanted`, inlined."""
        get = ev.get
        if (
            get("cold")
            or get("stalled")
            or get("prompt_truncated")
            or get("server_gen_tps") is not None
            or get("server_prompt_tps") is not None
        ) and not is_cancelled(ev):
            self.on_request(ev)

    def on_request(self, ev: dict[str, Any]) -> None:
        get = ev.get
        row = self._row(ev)
        if get("cold"):
            row.cold += 1
            wait = get("ttft_ms") if get("stream") else get("e2e_ms")
            if is_num(wait):
                row.cold_wait.append(wait)
            load = get("load_ms")
            if is_num(load):
                row.load_server.append(load)
        if get("stalled"):
            row.stalls += 1
            gap = get("max_gap_ms")
            if is_num(gap) and (row.max_gap is None or gap > row.max_gap):
                row.max_gap = gap
            row.stall_examples.append(
                {
                    "t": num_or_none(get("t")),
                    "scenario": get("scenario"),
                    "max_gap_ms": num_or_none(gap),
                    "test_id": get("test_id"),
                }
            )
        if get("prompt_truncated"):
            row.cut += 1
            row.cut_examples.append(
                {
                    "t": num_or_none(get("t")),
                    "scenario": get("scenario"),
                    "prompt_tokens": num_or_none(get("prompt_tokens")),
                    "prompt_tokens_floor": num_or_none(get("prompt_tokens_floor")),
                    "prompt_chars": num_or_none(get("prompt_chars")),
                }
            )
        if get("ok") and get("stream") and not get("cold"):
            client, server = get("gen_tps"), get("server_gen_tps")
            if is_num(client) and is_num(server) and server > 0:
                row.gen_pairs_client.append(client)
                row.gen_pairs_server.append(server)
            server_prompt = get("server_prompt_tps")
            if is_num(server_prompt):
                row.prompt_server.append(server_prompt)

    def on_model_context(self, ev: dict[str, Any]) -> None:
        key = ev.get("key") or f"{ev.get('provider')}/{ev.get('model')}"
        self._context[str(key)] = {
            "context_length": ev.get("context_length"),
            "previous": ev.get("previous"),
            "context_trained": ev.get("context_trained"),
            "source": ev.get("source"),
            "t": ev.get("t"),
        }

    def merge(self, later: ServerTruthFold) -> None:
        """Join the state over a later stretch of the log (folds/merging.py): the later runtime
        context of a model replaces the earlier, as a later event does."""
        add_rows(self._models, later._models)
        self._context.update(later._context)

    def runtime_context(self, key: str) -> dict[str, Any] | None:
        return self._context.get(key)

    def snapshot(self, warm_ttft_p50: dict[str, float | None]) -> dict[str, ServerTruth]:
        """Per model: cold loads, stalls, truncations, speed second opinion, learned context.
        `warm_ttft_p50`: each model's TTFT p50 over warm successful requests (for load estimates)."""
        out: dict[str, Any] = {}
        for key in sorted(set(self._models) | set(self._context)):
            row = self._models.get(key) or _ModelTruth(self._new)
            waits = sorted(row.cold_wait)
            warm = warm_ttft_p50.get(key)
            estimated = sorted(max(0.0, w - warm) for w in waits) if waits and is_num(warm) else []
            client = sorted_sample(row.gen_pairs_client)
            server = sorted_sample(row.gen_pairs_server)
            c50, s50 = percentile_parts([client], 50), percentile_parts([server], 50)
            ratio = round(c50 / s50, 3) if c50 is not None and s50 else None
            out[key] = {
                "cold_loads": {
                    "requests": row.cold,
                    "first_token_wait_ms": describe(waits),
                    "load_ms_server": describe(sorted(row.load_server)),
                    "load_ms_estimated": describe(estimated),
                    "estimate_rule": "cold first-token wait minus the model's warm TTFT p50",
                },
                "stalls": {
                    "requests": row.stalls,
                    "max_gap_ms": row.max_gap,
                    "examples": list(row.stall_examples),
                },
                "prompt_truncated": {"requests": row.cut, "examples": list(row.cut_examples)},
                "gen_speed": {
                    "pairs": len(client),
                    "soaktui_gen_tps_p50": None if c50 is None else round(c50, 3),
                    "server_gen_tps_p50": None if s50 is None else round(s50, 3),
                    "ratio": ratio,
                    "disagree": None if ratio is None else abs(ratio - 1.0) > SPEED_DISAGREEMENT,
                },
                "server_prompt_tps": describe(sorted_sample(row.prompt_server)),
                "runtime_context": self._context.get(key),
            }
        return out
