"""Requests and tests per (provider, model, scenario): the counts and timings every section reads.

State is compact: counters (distinct keys capped), and for the figures that need percentiles one
`array('d')` per bucket per metric: 8 bytes a value, at most 48 bytes per successful request, no
per-event objects. A live fold (`exact=False`: test_summary.json, the viewer) keeps a bounded
QuantileSketch there instead (sketch.py: the same `append`, percentiles within 1%). A snapshot sorts each bucket array in place (order means nothing) and reads
percentiles over several buckets straight from the sorted arrays (stats.select), never building a
merged copy. `on_request` runs once per request of the log and is written for speed: locals,
dict.get, no per-event allocations (bench/report_1m.py folds a million request events in seconds).

Rules the figures obey:
- latency, TTFT, inter-token latency and tokens/s are taken over successful requests only, and
  every figure carries the sample size it is over (`n`);
- a request that waited for a cold model load counts as a success or a failure, but its TTFT,
  latency and prompt speed are left out (report/folds/server_truth.py shows it apart);
- a request or test cancelled by soaktui itself (skip, stop, end of run) is neither, and so is a
  request whose tool list (soaktui's own prompt) did not fit the model's context
  (`tools_did_not_fit`: the scenario retried it with fewer tools);
- a request succeeded when its `ok` is true, a test only when its `ok` is exactly True.

These counting rules exist here only: the dashboard's live state (ui/state.py) reads its counts from
this fold (`counts`, `counts_by_model`, `counts_by_scenario`) instead of counting again.
- a figure that was never measured is None, never 0;
- rates carry their counts and a Wilson 95% interval (see stats.py).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from soaktui.errors import CANCELLED, TOOLS_DID_NOT_FIT
from soaktui.log.events import SOURCE_CHUNKS, SOURCE_USAGE, token_source_kind, usage_was_rejected
from soaktui.report.folds.common import is_num, model_key, new_sample
from soaktui.report.folds.merging import (
    add_counts,
    add_fields,
    add_first_of,
    add_rows,
    add_tallies,
    overflowed,
)
from soaktui.report.folds.timeline import TimeCells
from soaktui.report.snapshot import ErrorClass, ModelProfile, RequestTotals, ScenarioSummary
from soaktui.stats import Describe, bounded_inc, bounded_tally, describe_parts, median_ci, rate, top

MAX_REASONS = 50  # distinct failure reasons kept per bucket; later ones count as "(other)"
MAX_SEEN = 2000  # (model, error class) pairs whose first and last failure times are kept
MAX_CATEGORIES = 200  # distinct prompt categories kept per model
EXAMPLE_CHARS = 300  # an example error message is cut to this
TOP_REASONS = 5

METRICS = ("e2e", "ttft", "itl50", "gen", "gen_ns", "ptps")


class Counts(NamedTuple):
    """Tests and requests of a model or a scenario, cancelled ones aside."""

    tests: int = 0
    ok_tests: int = 0
    requests_ok: int = 0
    requests_failed: int = 0

    @property
    def requests(self) -> int:
        return self.requests_ok + self.requests_failed


class _Bucket:
    """Everything known about one (provider, model, scenario)."""

    __slots__ = (
        "req_ok",
        "req_failed",
        "e2e",
        "ttft",
        "itl50",
        "gen",
        "gen_ns",
        "ptps",
        "out_tokens",
        "src_usage",
        "src_chunks",
        "src_none",
        "src_rejected",
        "truncated",
        "req_errors",
        "tests",
        "tests_ok",
        "reasons",
        "test_errors",
        "categories",
        "cells",
        "sorted_n",
        "sums",
    )

    def __init__(self, new: Callable[[], Any]) -> None:
        self.req_ok = 0
        self.req_failed = 0
        self.e2e = new()  # array('d') in an exact fold, a QuantileSketch in a live one
        self.ttft = new()
        self.itl50 = new()
        self.gen = new()
        self.gen_ns = new()
        self.ptps = new()
        self.out_tokens = 0
        self.src_usage = 0
        self.src_chunks = 0
        self.src_none = 0
        self.src_rejected = 0  # of those, requests whose usage was impossible (not believed)
        self.truncated = 0
        self.req_errors: dict[str, int] = {}
        self.tests = 0
        self.tests_ok = 0
        self.reasons: dict[str, int] = {}
        self.test_errors: dict[str, int] = {}
        self.categories: dict[str, list[int]] = {}  # prompt_variety: category -> [ok, tests]
        self.cells = _NO_CELLS  # its model's requests over time, shared by the model's buckets
        self.sorted_n = [0] * len(METRICS)  # length of each metric array when last sorted
        self.sums = [0.0] * len(METRICS)  # math.fsum of each metric array when last sorted

    def merge(self, later: _Bucket) -> None:
        """Join the same bucket's state over a later stretch of the log (folds/merging.py)."""
        add_fields(self, later, tuple(_BUCKET_COUNTS), METRICS)
        self.sorted_n = [0] * len(METRICS)  # sorted again by the next snapshot
        add_counts(self.req_errors, later.req_errors)
        add_counts(self.reasons, later.reasons, MAX_REASONS)
        add_counts(self.test_errors, later.test_errors)
        add_tallies(self.categories, later.categories, MAX_CATEGORIES)

    def sort(self) -> None:
        """Sort every metric array (in place, as far as a caller can tell) for percentiles.

        Order inside a bucket means nothing to any figure, so the sorted array replaces the
        original: no second copy is kept, and the next snapshot sorts a mostly sorted array.
        """
        done = self.sorted_n
        for i, name in enumerate(METRICS):
            arr = getattr(self, name)
            if len(arr) != done[i] and type(arr) is array:  # a live fold's sketch needs no sorting
                arr = array("d", sorted(arr))
                setattr(self, name, arr)
                done[i] = len(arr)
                self.sums[i] = math.fsum(arr)


# a bucket's counters, summed when two stretches of a log are joined
_BUCKET_COUNTS = [
    "req_ok",
    "req_failed",
    "out_tokens",
    "src_usage",
    "src_chunks",
    "src_none",
    "src_rejected",
    "truncated",
    "tests",
    "tests_ok",
]


def _describe(buckets: list[_Bucket], attr: str) -> Describe:
    i = METRICS.index(attr)
    return describe_parts([getattr(b, attr) for b in buckets], [b.sums[i] for b in buckets])


def _new_class() -> ErrorClass:
    return {"requests": 0, "tests": 0, "per_model": {}, "example": None, "first_t": None, "last_t": None}


_NO_CELLS = TimeCells(new_sample(True))  # a bucket's cells until it is registered (never read)

# token_source value -> (token_source_kind, usage_was_rejected): a log repeats a handful of values
_SOURCES: dict[Any, tuple[str, bool]] = {}
MAX_SOURCES = 256


def _source_of(v: Any) -> tuple[str, bool]:
    """What a token_source says (kept in _SOURCES for the next request with the same text)."""
    found = (token_source_kind(v), usage_was_rejected(v))
    if (v is None or type(v) is str) and len(_SOURCES) < MAX_SOURCES:
        _SOURCES[v] = found
    return found


def _class_name(cls: Any) -> Any:
    """An error class as a name: a number written as one becomes its text (numbers and names would
    not sort together); a structure stays as it is, and the fold raises on it (malformed)."""
    return str(cls) if isinstance(cls, (int, float)) else cls


def _saw(seen: dict[Any, list[float]], key: Any, t: Any) -> None:
    """A failure of `key` at time `t`: its [first, last] span widened (at most MAX_SEEN keys)."""
    if not is_num(t):
        return
    span = seen.get(key)
    if span is None:
        if len(seen) < MAX_SEEN:
            seen[key] = [t, t]
    elif t > span[1]:
        span[1] = t
    elif t < span[0]:
        span[0] = t


def _join_span(seen: dict[Any, list[float]], key: Any, span: list[float], cap: int | None = MAX_SEEN) -> None:
    """`span` (a later stretch's, or a test's) joined into `seen[key]` as _saw would have widened it."""
    mine = seen.get(key)
    if mine is None:
        if cap is None or len(seen) < cap:
            seen[key] = list(span)
    else:
        mine[0], mine[1] = min(mine[0], span[0]), max(mine[1], span[1])


class RequestFold:
    """Counts and timings of every request and test, per (provider, model, scenario) bucket."""

    KINDS: ClassVar[dict[str, str]] = {"request": "on_request", "scenario_result": "on_result"}

    def __init__(self, *, exact: bool = True) -> None:
        # exact: every value kept (the report); else bounded sketches (the live views, sketch.py)
        self._new: Callable[[], Any] = new_sample(exact)
        # Cancelled by us (skip, stop, end of the run): neither a success nor a failure of the model.
        self.cancelled_requests = 0
        self.cancelled_tests = 0
        self.refitted_requests = 0  # tools_did_not_fit: soaktui's tool list, retried smaller
        self._buckets: dict[tuple[Any, Any, Any], _Bucket] = {}
        self._last_key: tuple[Any, Any, Any] | None = None
        self._last_bucket: _Bucket | None = None
        self._examples: dict[str, str] = {}  # request error class -> first message
        self._test_examples: dict[str, str] = {}  # test error class -> its first reason
        # (provider, model, error class) -> [first time, last time] a request failed so, and
        # (provider, model, scenario, error class) -> the same for tests: a test's time counts when
        # no request of its bucket failed with its class (a test-level failure, like check_failed)
        self._seen: dict[tuple[Any, Any, str], list[float]] = {}
        self._seen_tests: dict[tuple[Any, Any, Any, str], list[float]] = {}
        self._cells: dict[tuple[Any, Any], TimeCells] = {}  # (provider, model) -> its time cells

    def _bucket_for(self, key: tuple[Any, Any, Any]) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(self._new)
            # one model's scenarios share its time cells: consecutive requests (one model at a time in
            # the rotation) then mostly land in the cell of the request before
            cells = self._cells.get((key[0], key[1]))
            if cells is None:
                cells = self._cells[(key[0], key[1])] = TimeCells(self._new)
            b.cells = cells
        self._last_key = key
        self._last_bucket = b
        return b

    def on_request(self, ev: dict[str, Any]) -> None:
        get = ev.get
        cls = get("error_class")
        if cls is not None and cls in (CANCELLED, TOOLS_DID_NOT_FIT):
            if cls == CANCELLED:
                self.cancelled_requests += 1
            else:
                self.refitted_requests += 1
            return
        key = (get("provider"), get("model"), get("scenario"))
        # consecutive events mostly share a bucket: skip the hash
        b = self._last_bucket
        if b is None or key != self._last_key:
            b = self._bucket_for(key)
        # the request's time cell, inlined here (the timeline is read from these cells)
        t = get("t")
        tc = b.cells
        if type(t) is float or type(t) is int:
            i = int(t // tc.width)
            if i == tc.last_i:
                c = tc.last
            else:
                c = tc.cells.get(i) or tc.cell(i)  # tc.cell: a new cell (or a coarsening)
                tc.last, tc.last_i = c, int(t // tc.width)
        else:
            c = tc.nowhere
        if get("stalled"):
            c.stalls += 1
        if get("ok"):
            b.req_ok += 1
            c.ok += 1
            cold = get("cold")  # waited for a model load: no TTFT, latency or prompt speed
            v = get("e2e_ms")
            if v is not None and not cold:
                b.e2e.append(v)
            if get("stream"):
                v = get("ttft_ms")
                if v is not None and not cold:
                    b.ttft.append(v)
                    c.ttft.append(v)
                v = get("itl_p50_ms")
                if v is not None:
                    b.itl50.append(v)
                v = get("gen_tps")
                if v is not None:
                    b.gen.append(v)
                    if not cold:
                        c.tps.append(v)
                v = get("prompt_tps")
                if v is not None and not cold:
                    b.ptps.append(v)
            else:
                v = get("gen_tps")
                if v is not None:
                    b.gen_ns.append(v)
            v = get("output_tokens")
            if v is not None:
                b.out_tokens += v
            v = get("token_source")
            try:
                kind, rejected = _SOURCES[v]
            except (KeyError, TypeError):  # not seen yet, or a value that cannot be a key
                kind, rejected = _source_of(v)
            if kind == SOURCE_USAGE:
                b.src_usage += 1
            elif kind == SOURCE_CHUNKS:
                b.src_chunks += 1
            else:
                b.src_none += 1
            if rejected:
                b.src_rejected += 1
            if get("truncated"):
                b.truncated += 1
        else:
            b.req_failed += 1
            v = _class_name(cls or "other")
            c.fail(v)
            errs = b.req_errors
            if v in errs:
                errs[v] += 1
            else:
                errs[v] = 1
            if v not in self._examples and get("error"):  # the class's first message, anywhere
                self._examples[v] = str(get("error"))[:EXAMPLE_CHARS]
            _saw(self._seen, (key[0], key[1], v), get("t"))

    def on_result(self, ev: dict[str, Any]) -> None:
        get = ev.get
        if get("error_class") == CANCELLED:
            self.cancelled_tests += 1
            return
        scenario = get("scenario")
        key = (get("provider"), get("model"), scenario)
        b = self._last_bucket
        if b is None or key != self._last_key:
            b = self._bucket_for(key)
        b.tests += 1
        ok = get("ok") is True
        if ok:
            b.tests_ok += 1
        else:
            reason = str(get("reason") or "(no reason given)")
            bounded_inc(b.reasons, reason, MAX_REASONS)
            cls = _class_name(get("error_class") or "other")
            b.test_errors[cls] = b.test_errors.get(cls, 0) + 1
            if cls not in self._test_examples:
                self._test_examples[cls] = reason[:EXAMPLE_CHARS]
            _saw(self._seen_tests, (*key, cls), get("t"))
        if scenario == "prompt_variety":
            m = get("metrics")
            cat = m.get("category") if type(m) is dict else None
            cat = "(uncategorised)" if cat is None else str(cat)
            bounded_tally(b.categories, cat, ok, MAX_CATEGORIES)

    # -- joining (report/split.py) --------------------------------------------------------------
    def cannot_merge(self, later: RequestFold) -> str | None:
        """Why `merge(later)` would not be exact (a bounded table of `later` overflowed), or None."""
        if len(later._seen) >= MAX_SEEN or len(later._seen_tests) >= MAX_SEEN:
            return "more error spans than a fold keeps"
        if any(overflowed(b.reasons, b.categories) for b in later._buckets.values()):
            return "more failure reasons or prompt categories than a fold keeps"
        if any(type(b.out_tokens) is not int for fold in (self, later) for b in fold._buckets.values()):
            return "token counts that are not whole numbers (their sum depends on its order)"
        return None

    def merge(self, later: RequestFold) -> None:
        """Join this fold's state over a later stretch of the log, as if one fold had read both."""
        self.cancelled_requests += later.cancelled_requests
        self.cancelled_tests += later.cancelled_tests
        self.refitted_requests += later.refitted_requests
        for pm, cells in later._cells.items():
            mine = self._cells.get(pm)
            if mine is None:
                self._cells[pm] = cells
            else:
                mine.merge(cells)
        add_rows(self._buckets, later._buckets)
        for key, b in self._buckets.items():
            b.cells = self._cells[(key[0], key[1])]
        add_first_of(self._examples, later._examples)
        add_first_of(self._test_examples, later._test_examples)
        for seen, theirs in ((self._seen, later._seen), (self._seen_tests, later._seen_tests)):
            for failed, span in theirs.items():
                _join_span(seen, failed, span)
        self._last_key = self._last_bucket = None

    # -- reading -------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int, int, int]:
        """(tests, ok tests, ok requests, failed requests) so far: cheap, no snapshot needed."""
        tests = ok_tests = req_ok = req_failed = 0
        for b in self._buckets.values():
            tests += b.tests
            ok_tests += b.tests_ok
            req_ok += b.req_ok
            req_failed += b.req_failed
        return tests, ok_tests, req_ok, req_failed

    def time_cells(self) -> dict[str, list[TimeCells]]:
        """Each model's requests over time (report/folds/timeline.py reads them)."""
        return {model_key(prov, model): [tc] for (prov, model), tc in self._cells.items() if tc.cells}

    def counts_by_model(self) -> dict[str, Counts]:
        """Counts per model key (`provider/model`): cheap, no snapshot needed."""
        return self._counts_by(lambda prov, model, _scen: model_key(prov, model))

    def counts_by_scenario(self) -> dict[str, Counts]:
        """Counts per scenario name: cheap, no snapshot needed."""
        return self._counts_by(lambda _prov, _model, scen: str(scen))

    def _counts_by(self, key_of: Callable[[Any, Any, Any], str]) -> dict[str, Counts]:
        sums: dict[str, list[int]] = {}
        for (prov, model, scen), b in self._buckets.items():
            row = sums.get(k := key_of(prov, model, scen))
            if row is None:
                row = sums[k] = [0, 0, 0, 0]
            row[0] += b.tests
            row[1] += b.tests_ok
            row[2] += b.req_ok
            row[3] += b.req_failed
        return {k: Counts(*row) for k, row in sums.items()}

    def sort(self) -> None:
        """Sort every bucket's arrays: before any snapshot part that reads percentiles."""
        for b in self._buckets.values():
            b.sort()

    def totals(self) -> RequestTotals:
        tests, ok_tests, req_ok, req_failed = self.counts()
        return {
            "tests": tests,
            "ok_tests": ok_tests,
            "success": rate(ok_tests, tests),
            "requests": req_ok + req_failed,
            "requests_ok": req_ok,
            "requests_failed": req_failed,
            "requests_success": rate(req_ok, req_ok + req_failed),
            "cancelled_tests": self.cancelled_tests,
            "cancelled_requests": self.cancelled_requests,
            "tools_did_not_fit": self.refitted_requests,
        }

    def models(
        self,
        order: Callable[[Any], list[str]],
        selected: set[str],
        info_of: Callable[[str], dict[str, Any] | None],
        context_of: Callable[[str, dict[str, Any] | None], Any],
        turns: dict[str, int],
    ) -> dict[str, Any]:
        """Each model's profile, in `order`: counts, rates, errors and the timing figures."""
        groups: dict[str, list[_Bucket]] = {}
        scen_of: dict[str, dict[Any, _Bucket]] = {}
        for (prov, model, scen), b in self._buckets.items():
            k = model_key(prov, model)
            groups.setdefault(k, []).append(b)
            scen_of.setdefault(k, {})[scen] = b
        out: dict[str, ModelProfile] = {}
        spans = self._spans()
        for key in order(groups):
            bs = groups.get(key, [])
            tests = sum(b.tests for b in bs)
            tests_ok = sum(b.tests_ok for b in bs)
            req_ok = sum(b.req_ok for b in bs)
            req_failed = sum(b.req_failed for b in bs)
            errors: dict[str, int] = {}
            cats: dict[str, list[int]] = {}
            for b in bs:
                for cls, n in b.req_errors.items():
                    errors[cls] = errors.get(cls, 0) + n
                for cat, (k_ok, n) in b.categories.items():
                    row = cats.setdefault(cat, [0, 0])
                    row[0] += k_ok
                    row[1] += n
            counted = sum(b.src_usage + b.src_chunks for b in bs)  # requests with a token count
            info = info_of(key)
            size = info.get("size_bytes") if info else None
            prof: ModelProfile = {
                "key": key,
                "selected": key in selected,
                "turns": turns.get(key, 0),
                "info": info,
                "size_gb": round(size / 1e9, 2) if is_num(size) else None,
                "size_estimated": info.get("size_estimated") if info else None,
                "context_length": context_of(key, info),
                "context_trained": info.get("context_trained") if info else None,
                "tests": tests,
                "ok_tests": tests_ok,
                "success": rate(tests_ok, tests),
                "requests_ok": req_ok,
                "requests_failed": req_failed,
                "requests_success": rate(req_ok, req_ok + req_failed),
                "output_tokens": sum(b.out_tokens for b in bs) if counted else None,
                "truncated": sum(b.truncated for b in bs),
                "token_source": {
                    "usage": sum(b.src_usage for b in bs),
                    "chunks": sum(b.src_chunks for b in bs),
                    "unknown": sum(b.src_none for b in bs),
                    "usage_rejected": sum(b.src_rejected for b in bs),
                },
                "scenarios": {
                    str(s): {
                        "tests": b.tests,
                        "ok_tests": b.tests_ok,
                        "requests_ok": b.req_ok,
                        "requests_failed": b.req_failed,
                    }
                    for s, b in sorted(scen_of.get(key, {}).items(), key=lambda kv: str(kv[0]))
                },
                "prompt_categories": {
                    c: {"tests": n, "ok": k, "success": rate(k, n)} for c, (k, n) in sorted(cats.items())
                },
                "errors": dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
                "error_spans": self._spans_of(key, spans),
                "gen_tps_p50_ci95": median_ci([b.gen for b in bs]),
                "e2e_ms": _describe(bs, "e2e"),
                "ttft_ms": _describe(bs, "ttft"),
                "itl_p50_ms": _describe(bs, "itl50"),
                "gen_tps": _describe(bs, "gen"),
                "gen_tps_nonstream": _describe(bs, "gen_ns"),
                "prompt_tps": _describe(bs, "ptps"),
            }
            out[key] = prof
        return out

    def _spans(self) -> dict[tuple[Any, Any, str], list[float]]:
        """(provider, model, error class) -> [first, last] time a request failed with it, or a test
        of a bucket in which no request failed with it."""
        spans = {key: list(span) for key, span in self._seen.items()}
        for (prov, model, scen, cls), span in self._seen_tests.items():
            if cls not in self._buckets[(prov, model, scen)].req_errors:
                _join_span(spans, (prov, model, cls), span, cap=None)
        return spans

    def _spans_of(self, key: str, spans: dict[tuple[Any, Any, str], list[float]]) -> dict[str, list[float]]:
        """A model's error classes -> [first, last] time a request or test failed with it."""
        return {
            cls: list(span)
            for (prov, model, cls), span in sorted(spans.items(), key=lambda kv: kv[1][0])
            if model_key(prov, model) == key
        }

    def scenarios(self) -> dict[str, ScenarioSummary]:
        out: dict[str, ScenarioSummary] = {}
        by_scen: dict[Any, list[tuple[str, _Bucket]]] = {}
        for (prov, model, scen), b in self._buckets.items():
            by_scen.setdefault(scen, []).append((model_key(prov, model), b))
        for scen in sorted(by_scen, key=str):
            pairs = by_scen[scen]
            bs = [b for _, b in pairs]
            tests = sum(b.tests for b in bs)
            ok = sum(b.tests_ok for b in bs)
            reasons: dict[str, int] = {}
            classes: dict[str, int] = {}
            for b in bs:
                for r, n in b.reasons.items():
                    reasons[r] = reasons.get(r, 0) + n
                for c, n in b.test_errors.items():
                    classes[c] = classes.get(c, 0) + n
            req_ok = sum(b.req_ok for b in bs)
            req_failed = sum(b.req_failed for b in bs)
            out[str(scen)] = {
                "tests": tests,
                "ok_tests": ok,
                "success": rate(ok, tests),
                "requests_ok": req_ok,
                "requests_failed": req_failed,
                "requests_success": rate(req_ok, req_ok + req_failed),
                "failure_reasons": top(reasons, TOP_REASONS),
                "distinct_failure_reasons": len(reasons),
                "failure_classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "models": sorted({k for k, b in pairs if b.tests or b.req_ok or b.req_failed}),
                "e2e_ms": _describe(bs, "e2e"),
                "ttft_ms": _describe(bs, "ttft"),
                "gen_tps": _describe(bs, "gen"),
            }
        return out

    def errors_by_class(self) -> dict[str, ErrorClass]:
        """Failed requests and tests by error class, with their models and one example each."""
        by_class: dict[str, ErrorClass] = {}
        for (prov, model, _scen), b in self._buckets.items():
            key = model_key(prov, model)
            for cls, n in b.req_errors.items():
                rec = by_class.setdefault(cls, _new_class())
                rec["requests"] += n
                rec["per_model"][key] = rec["per_model"].get(key, 0) + n
            for cls, n in b.test_errors.items():
                rec = by_class.setdefault(cls, _new_class())
                rec["tests"] += n
                if cls not in b.req_errors:
                    # a test-level failure (e.g. check_failed) with no failed request behind it
                    rec["per_model"][key] = rec["per_model"].get(key, 0) + n
        all_spans = self._spans()
        for cls, rec in by_class.items():
            rec["example"] = self._examples.get(cls) or self._test_examples.get(cls)
            rec["per_model"] = dict(sorted(rec["per_model"].items(), key=lambda kv: (-kv[1], kv[0])))
            spans = [span for (_, _, c), span in all_spans.items() if c == cls]
            rec["first_t"] = min(s[0] for s in spans) if spans else None
            rec["last_t"] = max(s[1] for s in spans) if spans else None
        return dict(sorted(by_class.items(), key=lambda kv: (-(kv[1]["requests"] + kv[1]["tests"]), kv[0])))

    def streaming_ttft(self) -> dict[str, Describe]:
        """TTFT of each model's successful streaming-scenario requests (buckets sorted already)."""
        return {
            model_key(prov, model): _describe([b], "ttft")
            for (prov, model, scen), b in self._buckets.items()
            if scen == "streaming"
        }
