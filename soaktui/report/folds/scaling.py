"""How models scale: concurrent_load batches by concurrency, large_context requests by prompt size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from soaktui.report.folds.common import is_cancelled, is_int, is_num, model_key, new_sample
from soaktui.report.folds.merging import add_fields, add_rows
from soaktui.report.snapshot import ConcurrencyRow, ContextRow
from soaktui.stats import describe, sorted_sample

# Context-size buckets for large_context (prompt tokens; k = 1024 tokens).
CONTEXT_BUCKETS = ((8192, "<8k"), (16384, "8k-16k"), (32768, "16k-32k"), (None, "32k+"))
CONTEXT_ORDER = [label for _, label in CONTEXT_BUCKETS]


def _context_bucket(tokens: float) -> str:
    for limit, label in CONTEXT_BUCKETS:
        if limit is None or tokens < limit:
            return label
    return CONTEXT_BUCKETS[-1][1]


class _ConcRow:
    """concurrent_load at one concurrency level for one model (from scenario_result metrics)."""

    __slots__ = ("batches", "full", "partial", "none", "saturated", "agg_tps", "lat_p50", "ok", "failed")

    def __init__(self, new: Callable[[], Any]) -> None:
        self.batches = self.full = self.partial = self.none = self.saturated = 0
        self.ok = self.failed = 0
        self.agg_tps = new()
        self.lat_p50 = new()

    def merge(self, later: _ConcRow) -> None:
        add_fields(
            self,
            later,
            ("batches", "full", "partial", "none", "saturated", "ok", "failed"),
            ("agg_tps", "lat_p50"),
        )


class ConcurrencyFold:
    """concurrent_load tests per (model, concurrency): full, partial and failed batches, and the
    medians over full batches (a partial batch's throughput would mix two things)."""

    KINDS: ClassVar[dict[str, str]] = {"scenario_result": "on_result"}
    ONLY_SCENARIOS: ClassVar[dict[str, tuple[str, ...]]] = {"scenario_result": ("concurrent_load",)}

    def __init__(self, *, exact: bool = True) -> None:
        self._new = new_sample(exact)  # every value, or bounded sketches (folds/common.new_sample)
        self._rows: dict[tuple[Any, Any, Any], _ConcRow] = {}

    def on_result(self, ev: dict[str, Any]) -> None:
        get = ev.get
        if get("scenario") != "concurrent_load" or is_cancelled(ev):
            return
        m = get("metrics")
        if type(m) is not dict:
            return
        ok = get("ok") is True
        key = (get("provider"), get("model"), m.get("concurrency"))
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _ConcRow(self._new)
        row.batches += 1
        succeeded, failed = m.get("succeeded"), m.get("failed")
        if is_int(succeeded) and is_int(failed):
            row.ok += succeeded
            row.failed += failed
            full = succeeded > 0 and failed == 0
            nothing = succeeded == 0
        else:  # the scenario did not report request counts: its verdict is all we know
            full, nothing = ok, False
        if full:
            row.full += 1
            v = m.get("aggregate_tps")
            if is_num(v):
                row.agg_tps.append(v)
            v = m.get("latency_p50_ms")
            if is_num(v):
                row.lat_p50.append(v)
        elif nothing:
            row.none += 1
        else:
            row.partial += 1
        if m.get("saturated"):
            row.saturated += 1

    def merge(self, later: ConcurrencyFold) -> None:
        """Join the state over a later stretch of the log (folds/merging.py)."""
        add_rows(self._rows, later._rows)

    def snapshot(self) -> dict[str, list[ConcurrencyRow]]:
        out: dict[str, list[ConcurrencyRow]] = {}
        for (prov, model, conc), row in self._rows.items():
            out.setdefault(model_key(prov, model), []).append(
                {
                    "concurrency": conc,
                    "batches": row.batches,
                    "full": row.full,
                    "partial": row.partial,
                    "failed": row.none,
                    "saturated": row.saturated,
                    "requests_ok": row.ok,
                    "requests_failed": row.failed,
                    "aggregate_tps": describe(sorted_sample(row.agg_tps)),
                    "latency_p50_ms": describe(sorted_sample(row.lat_p50)),
                }
            )
        for rows in out.values():
            rows.sort(key=lambda r: (r["concurrency"] is None, r["concurrency"] or 0))
        return out


class _CtxRow:
    """large_context requests of one model in one context-size bucket."""

    __slots__ = ("ok", "failed", "overflow", "by_target", "max_ok", "ttft", "ptps")

    def __init__(self, new: Callable[[], Any]) -> None:
        self.ok = self.failed = self.overflow = self.by_target = 0
        self.max_ok: float | None = None  # largest server-reported prompt answered successfully
        self.ttft = new()
        self.ptps = new()

    def merge(self, later: _CtxRow) -> None:
        add_fields(self, later, ("ok", "failed", "overflow", "by_target"), ("ttft", "ptps"))
        if later.max_ok is not None and (self.max_ok is None or later.max_ok > self.max_ok):
            self.max_ok = later.max_ok


class ContextFold:
    """large_context requests per (model, prompt-size bucket): how far a model's context really goes."""

    KINDS: ClassVar[dict[str, str]] = {"request": "on_request"}
    ONLY_SCENARIOS: ClassVar[dict[str, tuple[str, ...]]] = {"request": ("large_context",)}

    def __init__(self, *, exact: bool = True) -> None:
        self._new = new_sample(exact)  # every value, or bounded sketches (folds/common.new_sample)
        self._rows: dict[tuple[Any, Any, str], _CtxRow] = {}

    def on_request(self, ev: dict[str, Any]) -> None:
        get = ev.get
        if get("scenario") != "large_context" or is_cancelled(ev):
            return
        tokens = get("prompt_tokens")
        by_target = False
        if not is_num(tokens):
            tokens = get("context_target_tokens")
            by_target = True
        label = _context_bucket(tokens) if is_num(tokens) else "unknown"
        key = (get("provider"), get("model"), label)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _CtxRow(self._new)
        row.by_target += by_target
        if get("ok"):
            row.ok += 1
            if not by_target and is_num(tokens) and (row.max_ok is None or tokens > row.max_ok):
                row.max_ok = tokens
            v = get("ttft_ms")
            if v is not None:
                row.ttft.append(v)
            v = get("prompt_tps")
            if v is not None:
                row.ptps.append(v)
        else:
            row.failed += 1
            if get("error_class") == "context_overflow":
                row.overflow += 1

    def merge(self, later: ContextFold) -> None:
        """Join the state over a later stretch of the log (folds/merging.py)."""
        add_rows(self._rows, later._rows)

    def snapshot(self) -> dict[str, list[ContextRow]]:
        out: dict[str, list[ContextRow]] = {}
        order = {label: i for i, label in enumerate([*CONTEXT_ORDER, "unknown"])}
        for (prov, model, label), row in self._rows.items():
            out.setdefault(model_key(prov, model), []).append(
                {
                    "bucket": label,
                    "requests_ok": row.ok,
                    "requests_failed": row.failed,
                    "context_overflow": row.overflow,
                    "bucketed_by_target": row.by_target,
                    "max_prompt_tokens_ok": row.max_ok,
                    "ttft_ms": describe(sorted_sample(row.ttft)),
                    "prompt_tps": describe(sorted_sample(row.ptps)),
                }
            )
        for rows in out.values():
            rows.sort(key=lambda r: order.get(r["bucket"], 99))
        return out
