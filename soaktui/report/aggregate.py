"""Fold a run's events into report figures: one reducer shared by every view of a run.

`soaktui report`, the end-of-run report, the live `test_summary.json` and the dashboard all feed
events to a `RunAggregate` and read `snapshot()`, so a figure means the same thing everywhere.

State is compact: counters (distinct keys capped), and for the figures that need percentiles one
`array('d')` per (provider, model, scenario) bucket per metric: 8 bytes a value, at most 48 bytes
per successful request, no per-event objects. A snapshot sorts each bucket array in place (order
means nothing) and reads percentiles over several buckets straight from the sorted arrays
(stats.select), never building a merged copy. `feed` does O(1) work per event and is written for
speed: locals, dict.get, no per-event allocations (bench/report_1m.py folds one million request
events in a few seconds).

Rules the figures obey:
- latency, TTFT, inter-token latency and tokens/s are taken over successful requests only, and
  every figure carries the sample size it is over (`n`);
- a figure that was never measured is None, never 0;
- rates carry their counts and a Wilson 95% interval (see stats.py).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from soaktui.report import rankings
from soaktui.report.capabilities import SCENARIOS as CAPABILITY_SCENARIOS
from soaktui.report.capabilities import CapabilityReducer
from soaktui.report.hardware import HardwareFold
from soaktui.report.server_truth import ServerTruthFold
from soaktui.stats import bounded_inc, bounded_tally, describe, describe_parts, rate, top

MAX_REASONS = 50  # distinct failure reasons kept per bucket; later ones count as "(other)"
MAX_CATEGORIES = 200  # distinct prompt categories kept per model
MAX_ENGINE_ERRORS = 100  # distinct (class, where) pairs of `error` events
MAX_HISTORY = 100  # throttle changes / skips kept verbatim (all are counted)
EXAMPLE_CHARS = 300  # an example error message is cut to this
TOP_REASONS = 5

# Context-size buckets for large_context (prompt tokens; k = 1024 tokens).
CONTEXT_BUCKETS = ((8192, "<8k"), (16384, "8k-16k"), (32768, "16k-32k"), (None, "32k+"))
CONTEXT_ORDER = [label for _, label in CONTEXT_BUCKETS]

DEFINITIONS = {
    "e2e_ms": "request sent -> response complete, successful requests only",
    "ttft_ms": "request sent -> first content chunk, successful streamed requests only; requests that "
    "waited for a cold model load are left out (see cold loads)",
    "itl_p50_ms": "median of per-request ITL p50 (each request's median gap between content chunks), "
    "successful streamed requests only",
    "gen_tps": "output tokens after the first / time from first to last content chunk "
    "(generation phase), successful streamed requests only",
    "gen_tps_nonstream": "output tokens / end-to-end time, successful non-streamed requests only",
    "prompt_tps": "prompt tokens the server processed (cache hits left out) / TTFT, successful warm "
    "streamed requests with a known prompt size",
    "cold": "a request sent while the server said its model was not loaded: it waited for the load, "
    "so its TTFT, latency and prompt speed are kept out of those figures",
    "stalled": "a stream silent for thresholds.stall_s or longer between two tokens: a failure "
    "(error class stalled) even when it finished",
    "prompt_truncated": "the server counted fewer prompt tokens than one per 6 characters sent: it cut "
    "the prompt silently (error class prompt_truncated)",
    "server_gen_tps": "the server's own generation speed (llama.cpp timings.predicted_per_second), "
    "compared with soaktui's gen_tps over the same requests; flagged over 25% apart",
    "success": "k/n with a Wilson 95% score interval",
    "tests": "one scenario run (scenario_result event); its success rule is the scenario's",
    "concurrency": "aggregate tokens/s and per-request p50 latency are medians over batches in which "
    "every request succeeded; partial and failed batches are counted, not averaged",
    "context": "large_context requests bucketed by prompt tokens (the target size when the server did "
    "not report prompt tokens); k = 1024 tokens",
}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).astimezone().isoformat(timespec="seconds")


def _key(provider: Any, model: Any) -> str:
    return f"{provider}/{model}" if provider else str(model)


def _context_bucket(tokens: float) -> str:
    for limit, label in CONTEXT_BUCKETS:
        if limit is None or tokens < limit:
            return label
    return CONTEXT_BUCKETS[-1][1]


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
        "truncated",
        "req_errors",
        "tests",
        "tests_ok",
        "reasons",
        "test_errors",
        "categories",
        "sorted_n",
        "sums",
    )

    def __init__(self) -> None:
        self.req_ok = 0
        self.req_failed = 0
        self.e2e = array("d")
        self.ttft = array("d")
        self.itl50 = array("d")
        self.gen = array("d")
        self.gen_ns = array("d")
        self.ptps = array("d")
        self.out_tokens = 0
        self.src_usage = 0
        self.src_chunks = 0
        self.src_none = 0
        self.truncated = 0
        self.req_errors: dict[str, int] = {}
        self.tests = 0
        self.tests_ok = 0
        self.reasons: dict[str, int] = {}
        self.test_errors: dict[str, int] = {}
        self.categories: dict[str, list[int]] = {}  # prompt_variety: category -> [tests, ok]
        self.sorted_n = [0] * len(_METRICS)  # length of each metric array when last sorted
        self.sums = [0.0] * len(_METRICS)  # math.fsum of each metric array when last sorted

    def sort(self) -> None:
        """Sort every metric array (in place, as far as a caller can tell) for percentiles.

        Order inside a bucket means nothing to any figure, so the sorted array replaces the
        original: no second copy is kept, and the next snapshot sorts a mostly sorted array.
        """
        done = self.sorted_n
        for i, name in enumerate(_METRICS):
            arr = getattr(self, name)
            if len(arr) != done[i]:
                arr = array("d", sorted(arr))
                setattr(self, name, arr)
                done[i] = len(arr)
                self.sums[i] = math.fsum(arr)


_METRICS = ("e2e", "ttft", "itl50", "gen", "gen_ns", "ptps")
# snapshot name -> bucket attribute
_METRIC_NAMES = {
    "e2e_ms": "e2e",
    "ttft_ms": "ttft",
    "itl_p50_ms": "itl50",
    "gen_tps": "gen",
    "gen_tps_nonstream": "gen_ns",
    "prompt_tps": "ptps",
}


class _ConcRow:
    """concurrent_load at one concurrency level for one model (from scenario_result metrics)."""

    __slots__ = ("batches", "full", "partial", "none", "saturated", "agg_tps", "lat_p50", "ok", "failed")

    def __init__(self) -> None:
        self.batches = self.full = self.partial = self.none = self.saturated = 0
        self.ok = self.failed = 0
        self.agg_tps = array("d")
        self.lat_p50 = array("d")


class _CtxRow:
    """large_context requests of one model in one context-size bucket."""

    __slots__ = ("ok", "failed", "overflow", "by_target", "max_ok", "ttft", "ptps")

    def __init__(self) -> None:
        self.ok = self.failed = self.overflow = self.by_target = 0
        self.max_ok: float | None = None  # largest server-reported prompt answered successfully
        self.ttft = array("d")
        self.ptps = array("d")


class _FailRow:
    """provider_failover tests of one model in one mode."""

    __slots__ = ("tests", "ok", "detect", "recover", "cold", "attempts")

    def __init__(self) -> None:
        self.tests = self.ok = 0
        self.detect = array("d")
        self.recover = array("d")
        self.cold = array("d")
        self.attempts = array("d")


def _num(v: Any) -> bool:
    return v is not None and type(v) is not bool and isinstance(v, (int, float))


class RunAggregate:
    """Feed events in log order; `snapshot()` gives the report data (JSON-able) at any time."""

    def __init__(self, *, min_requests: int = 5, min_tests: int = 5) -> None:
        self.min_requests = min_requests  # rankings: successful streamed requests needed
        self.min_tests = min_tests  # rankings: tests needed
        self.events = 0
        self.malformed = 0  # events of a known kind whose fields had the wrong type
        # Cancelled by us (skip, stop, end of the run): neither a success nor a failure of the model.
        self.cancelled_requests = 0
        self.cancelled_tests = 0
        self._kinds: dict[Any, int] = {}  # events other than request / scenario_result, by kind
        self._buckets: dict[tuple[Any, Any, Any], _Bucket] = {}
        self._last_key: tuple[Any, Any, Any] | None = None
        self._last_bucket: _Bucket | None = None
        self._examples: dict[str, str] = {}  # request error class -> first message
        self._conc: dict[tuple[Any, Any, Any], _ConcRow] = {}
        self._ctx: dict[tuple[Any, Any, str], _CtxRow] = {}
        self._fail: dict[tuple[Any, Any, Any], _FailRow] = {}
        self._hw = HardwareFold()  # the hardware section: telemetry, thermal guard, energy
        self._truth = ServerTruthFold()  # cold loads, stalls, cut prompts, the server's own speed
        self._caps = CapabilityReducer()
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._first_mono: int | None = None
        self._last_mono: int | None = None
        self._run_id: str | None = None
        self._started: dict[str, Any] | None = None
        self._finished: dict[str, Any] | None = None
        self._discovered: dict[str, Any] | None = None
        self._model_info: dict[str, dict[str, Any]] = {}
        self._turns: dict[str, int] = {}
        self._skips: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
        self._skip_count = 0
        self._throttle_hist: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
        self._throttle_changes = 0
        self._throttle_last: dict[str, Any] | None = None
        self._quiet_changes = 0
        self._pauses = 0
        self._paused_ns = 0
        self._paused_t = 0.0  # wall-clock fallback when mono_ns is missing
        self._paused_since: tuple[int | None, float | None] | None = None
        self._commands: dict[str, int] = {}
        self._engine_errors: dict[tuple[str, str], list[Any]] = {}  # -> [count, example]
        self._max_rss: int | None = None
        self._last_status: dict[str, Any] | None = None
        self._other = {
            "run_started": self._on_run_started,
            "providers_discovered": self._on_discovered,
            "model_switched": self._on_model_switched,
            "model_skipped": self._on_model_skipped,
            "throttle_changed": self._on_throttle,
            "quiet_hours_changed": self._on_quiet,
            "paused": self._on_paused,
            "resumed": self._on_resumed,
            "command": self._on_command,
            "status": self._on_status,
            "error": self._on_error,
            "run_finished": self._on_finished,
            "telemetry": self._hw.on_telemetry,
            "thermal_guard": self._hw.on_guard,
            "tool_call": self._on_tool_call,
            "model_context": self._truth.on_model_context,
        }

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> None:
        """Fold one event. Unknown kinds are counted and otherwise ignored (forward compatible).

        The request path is inlined and uses locals only: this runs once per event of the log.
        """
        self.events += 1
        get = ev.get
        t = get("t")
        if t is not None:
            if self._first_t is None:
                self._first_t = t
                self._run_id = get("run_id")
            self._last_t = t
        mono = get("mono_ns")
        if mono is not None:
            if self._first_mono is None:
                self._first_mono = mono
            self._last_mono = mono
        kind = get("kind")
        try:
            if kind != "request":
                if kind == "scenario_result":
                    self._on_result(ev)
                else:
                    kinds = self._kinds
                    kinds[kind] = kinds.get(kind, 0) + 1
                    handler = self._other.get(kind)  # type: ignore[arg-type]
                    if handler is not None:
                        handler(ev)
                return
            if get("error_class") == "cancelled":
                self.cancelled_requests += 1
                return
            scenario = get("scenario")
            key = (get("provider"), get("model"), scenario)
            if key == self._last_key:  # consecutive events mostly share a bucket: skip the hash
                b = self._last_bucket
            else:
                b = self._bucket_for(key)
            if self._truth.wanted(ev):
                self._truth.on_request(ev)
            if get("ok"):
                b.req_ok += 1
                gen_tps = None
                cold = get("cold")  # waited for a model load: no TTFT, latency or prompt speed
                v = get("e2e_ms")
                if v is not None and not cold:
                    b.e2e.append(v)
                if get("stream"):
                    v = get("ttft_ms")
                    if v is not None and not cold:
                        b.ttft.append(v)
                    v = get("itl_p50_ms")
                    if v is not None:
                        b.itl50.append(v)
                    v = gen_tps = get("gen_tps")
                    if v is not None:
                        b.gen.append(v)
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
                self._hw.on_request(get("test_id"), v, gen_tps)
                v = get("token_source")
                if v == "usage":
                    b.src_usage += 1
                elif v == "chunks":
                    b.src_chunks += 1
                else:
                    b.src_none += 1
                if get("truncated"):
                    b.truncated += 1
            else:
                b.req_failed += 1
                v = get("error_class") or "other"
                errs = b.req_errors
                if v in errs:
                    errs[v] += 1
                else:
                    errs[v] = 1
                    if v not in self._examples and get("error"):
                        self._examples[v] = str(get("error"))[:EXAMPLE_CHARS]
            if scenario == "large_context":
                self._on_context_request(ev)
        except (TypeError, ValueError, AttributeError, OverflowError):
            self.malformed += 1

    def feed_all(self, events: Iterable[dict[str, Any]]) -> RunAggregate:
        feed = self.feed
        for ev in events:
            feed(ev)
        return self

    def _bucket_for(self, key: tuple[Any, Any, Any]) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket()
        self._last_key = key
        self._last_bucket = b
        return b

    def _on_context_request(self, ev: dict[str, Any]) -> None:
        get = ev.get
        tokens = get("prompt_tokens")
        by_target = False
        if not _num(tokens):
            tokens = get("context_target_tokens")
            by_target = True
        label = _context_bucket(tokens) if _num(tokens) else "unknown"
        key = (get("provider"), get("model"), label)
        row = self._ctx.get(key)
        if row is None:
            row = self._ctx[key] = _CtxRow()
        row.by_target += by_target
        if get("ok"):
            row.ok += 1
            if not by_target and (row.max_ok is None or tokens > row.max_ok):
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

    def _on_result(self, ev: dict[str, Any]) -> None:
        self._hw.on_result(ev)  # cancelled tests too: the machine worked through them
        get = ev.get
        if get("error_class") == "cancelled":
            self.cancelled_tests += 1
            return
        scenario = get("scenario")
        key = (get("provider"), get("model"), scenario)
        b = self._last_bucket if key == self._last_key else self._bucket_for(key)
        b.tests += 1
        ok = get("ok") is True
        if ok:
            b.tests_ok += 1
        else:
            bounded_inc(b.reasons, str(get("reason") or "(no reason given)"), MAX_REASONS)
            cls = get("error_class") or "other"
            b.test_errors[cls] = b.test_errors.get(cls, 0) + 1
        if scenario == "prompt_variety":
            m = get("metrics")
            cat = m.get("category") if type(m) is dict else None
            cat = "(uncategorised)" if cat is None else str(cat)
            bounded_tally(b.categories, cat, ok, MAX_CATEGORIES)
        elif scenario == "concurrent_load":
            m = get("metrics")
            if type(m) is dict:
                self._on_concurrency(ev, m, ok)
        elif scenario == "provider_failover":
            m = get("metrics")
            if type(m) is dict:
                self._on_failover(ev, m, ok)
        if scenario in CAPABILITY_SCENARIOS:
            self._caps.on_result(_key(key[0], key[1]), scenario, ev)

    def _on_concurrency(self, ev: dict[str, Any], m: dict[str, Any], ok: bool) -> None:
        key = (ev.get("provider"), ev.get("model"), m.get("concurrency"))
        row = self._conc.get(key)
        if row is None:
            row = self._conc[key] = _ConcRow()
        row.batches += 1
        succeeded, failed = m.get("succeeded"), m.get("failed")
        if _num(succeeded) and _num(failed):
            row.ok += succeeded
            row.failed += failed
            full = succeeded > 0 and failed == 0
            nothing = succeeded == 0
        else:  # the scenario did not report request counts: its verdict is all we know
            full, nothing = ok, False
        if full:
            row.full += 1
            v = m.get("aggregate_tps")
            if _num(v):
                row.agg_tps.append(v)
            v = m.get("latency_p50_ms")
            if _num(v):
                row.lat_p50.append(v)
        elif nothing:
            row.none += 1
        else:
            row.partial += 1
        if m.get("saturated"):
            row.saturated += 1

    def _on_failover(self, ev: dict[str, Any], m: dict[str, Any], ok: bool) -> None:
        key = (ev.get("provider"), ev.get("model"), m.get("mode") or "unknown")
        row = self._fail.get(key)
        if row is None:
            row = self._fail[key] = _FailRow()
        row.tests += 1
        row.ok += ok
        for name, arr in (
            ("detect_ms", row.detect),
            ("recover_ms", row.recover),
            ("cold_load_ms", row.cold),
            ("attempts", row.attempts),
        ):
            v = m.get(name)
            if _num(v):
                arr.append(v)

    def _on_run_started(self, ev: dict[str, Any]) -> None:
        self._hw.on_run_started(ev)
        self._started = {k: v for k, v in ev.items() if k not in ("kind", "seq", "mono_ns")}
        self._run_id = ev.get("run_id") or self._run_id

    def _on_discovered(self, ev: dict[str, Any]) -> None:
        self._discovered = {
            "providers": [
                {k: p.get(k) for k in ("name", "kind", "base_url", "version")}
                | {"models": len(p.get("models") or [])}
                for p in ev.get("providers") or []
            ],
            "selected": list(ev.get("selected") or []),
            "excluded": list(ev.get("excluded") or []),
            "probed": list(ev.get("probed") or []),
            "unreachable": dict(ev.get("unreachable") or {}),
        }
        for p in ev.get("providers") or []:
            for m in p.get("models") or []:
                key = m.get("key") or _key(m.get("provider") or p.get("name"), m.get("id"))
                self._model_info[key] = {
                    k: m.get(k)
                    for k in (
                        "type",
                        "size_bytes",
                        "size_estimated",
                        "params_b",
                        "quantization",
                        "context_length",
                        "context_trained",
                        "tool_use",
                        "family",
                        "cloud",
                    )
                }

    def _on_model_switched(self, ev: dict[str, Any]) -> None:
        key = ev.get("key") or _key(ev.get("provider"), ev.get("model"))
        self._turns[key] = self._turns.get(key, 0) + 1

    def _on_model_skipped(self, ev: dict[str, Any]) -> None:
        self._skip_count += 1
        self._skips.append({"t": ev.get("t"), "model": ev.get("key"), "tests_done": ev.get("tests_done")})

    def _on_throttle(self, ev: dict[str, Any]) -> None:
        self._throttle_changes += 1
        rec = {
            "t": ev.get("t"),
            "pct": ev.get("pct"),
            "effective_pct": ev.get("effective_pct"),
            "source": ev.get("source"),
        }
        self._throttle_last = rec
        self._throttle_hist.append(rec)

    def _on_quiet(self, ev: dict[str, Any]) -> None:
        self._quiet_changes += 1

    def _on_paused(self, ev: dict[str, Any]) -> None:
        if self._paused_since is None:
            self._pauses += 1
            self._paused_since = (ev.get("mono_ns"), ev.get("t"))

    def _on_resumed(self, ev: dict[str, Any]) -> None:
        if self._paused_since is not None:
            self._add_pause(self._paused_since, ev.get("mono_ns"), ev.get("t"))
            self._paused_since = None

    def _add_pause(self, since: tuple[int | None, float | None], mono: Any, t: Any) -> None:
        m0, t0 = since
        if _num(m0) and _num(mono):
            self._paused_ns += max(0, mono - m0)
        elif _num(t0) and _num(t):
            self._paused_ns += int(max(0.0, t - t0) * 1e9)

    def _on_command(self, ev: dict[str, Any]) -> None:
        bounded_inc(self._commands, str(ev.get("command")), 50)

    def _on_status(self, ev: dict[str, Any]) -> None:
        self._last_status = {k: v for k, v in ev.items() if k not in ("kind", "run_id", "v")}
        rss = ev.get("rss_bytes")
        if _num(rss) and (self._max_rss is None or rss > self._max_rss):
            self._max_rss = rss

    def _on_error(self, ev: dict[str, Any]) -> None:
        key = (str(ev.get("error_class") or "other"), str(ev.get("where") or "unknown"))
        rec = self._engine_errors.get(key)
        if rec is None:
            if len(self._engine_errors) >= MAX_ENGINE_ERRORS:
                key = ("other", "(more)")
                rec = self._engine_errors.setdefault(key, [0, None])
            else:
                rec = self._engine_errors[key] = [0, None]
        rec[0] += 1
        if rec[1] is None and ev.get("message"):
            rec[1] = str(ev.get("message"))[:EXAMPLE_CHARS]

    def _on_tool_call(self, ev: dict[str, Any]) -> None:
        self._caps.on_tool_call(_key(ev.get("provider"), ev.get("model")))

    def _on_finished(self, ev: dict[str, Any]) -> None:
        self._finished = {k: v for k, v in ev.items() if k not in ("kind", "run_id", "v")}

    # -- reading -------------------------------------------------------------------------------
    def kinds(self) -> dict[str, int]:
        """Events by kind (request and scenario_result counted through their buckets)."""
        out = {str(k): v for k, v in self._kinds.items()}
        req = sum(b.req_ok + b.req_failed for b in self._buckets.values())
        tests = sum(b.tests for b in self._buckets.values())
        if req:
            out["request"] = req
        if tests:
            out["scenario_result"] = tests
        return dict(sorted(out.items()))

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def tests(self) -> tuple[int, int]:
        """(tests, ok tests) so far: cheap, no snapshot needed."""
        n = k = 0
        for b in self._buckets.values():
            n += b.tests
            k += b.tests_ok
        return n, k

    def elapsed_s(self) -> float | None:
        """Seconds from the first to the last event (monotonic clock when the log has it)."""
        if self._first_mono is not None and self._last_mono is not None:
            return round((self._last_mono - self._first_mono) / 1e9, 3)
        if self._first_t is not None and self._last_t is not None:
            return round(self._last_t - self._first_t, 3)
        return None

    def snapshot(self) -> dict[str, Any]:
        """The report data: plain dicts, lists, numbers and strings (JSON-able)."""
        for b in self._buckets.values():
            b.sort()
        models = self._models()
        context = self._context()
        capabilities = self._caps.matrix(models, self._streaming_ttft(), context)
        snap: dict[str, Any] = {
            "schema": 1,
            "run": self._header(),
            "totals": self._totals(),
            "models": models,
            "scenarios": self._scenarios(),
            "errors": self._errors(),
            "scaling": {"concurrency": self._concurrency(), "context": context},
            "capabilities": capabilities,
            "failover": self._failover(),
            "control": self._control(),
            "hardware": self._hw.snapshot((self._finished or {}).get("t", self._last_t)),
            "server_truth": self._truth.snapshot(
                {k: (m.get("ttft_ms") or {}).get("p50") for k, m in models.items()}
            ),
            "definitions": dict(DEFINITIONS),
        }
        snap["rankings"], snap["recommendations"] = rankings.rank(
            models,
            min_requests=self.min_requests,
            min_tests=self.min_tests,
            capabilities=capabilities["models"],
        )
        return snap

    # -- snapshot parts -------------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        st = self._started or {}
        fin = self._finished
        start_t = st.get("t", self._first_t)
        end_t = fin.get("t") if fin else self._last_t
        if fin and _num(fin.get("elapsed_s")):
            duration, source = fin["elapsed_s"], "run_finished.elapsed_s"
        else:
            duration, source = self.elapsed_s(), "first to last event"
        disc = self._discovered or {}
        return {
            "run_id": self._run_id,
            "version": st.get("version"),
            "started_at": _iso(start_t),
            "ended_at": _iso(end_t),
            "started_t": start_t,
            "ended_t": end_t,
            "run_started_seen": self._started is not None,
            "finished": fin is not None,
            "finish_reason": fin.get("reason") if fin else None,
            "ended_without_finishing": fin is None,
            "duration_s": duration,
            "duration_source": source,
            "planned_duration_s": st.get("duration_s"),
            "host": st.get("host"),
            "out_dir": st.get("out_dir"),
            "seed": st.get("seed"),
            "demo": st.get("demo"),
            "throttle_pct": st.get("throttle_pct"),
            "quiet_hours": st.get("quiet_hours"),
            "scenario_weights": st.get("scenarios"),
            "settings": st.get("settings"),
            "providers": disc.get("providers", []),
            "selected": disc.get("selected", []),
            "excluded": disc.get("excluded", []),
            "probed": disc.get("probed", []),
            "unreachable": disc.get("unreachable", {}),
            "max_rss_bytes": self._max_rss,
            "final": {k: fin.get(k) for k in ("tests", "ok_tests", "requests")} if fin else None,
        }

    def _totals(self) -> dict[str, Any]:
        tests = ok_tests = req_ok = req_failed = 0
        for b in self._buckets.values():
            tests += b.tests
            ok_tests += b.tests_ok
            req_ok += b.req_ok
            req_failed += b.req_failed
        return {
            "events": self.events,
            "malformed_events": self.malformed,
            "kinds": self.kinds(),
            "tests": tests,
            "ok_tests": ok_tests,
            "success": rate(ok_tests, tests),
            "requests": req_ok + req_failed,
            "requests_ok": req_ok,
            "requests_failed": req_failed,
            "requests_success": rate(req_ok, req_ok + req_failed),
            "cancelled_tests": self.cancelled_tests,
            "cancelled_requests": self.cancelled_requests,
        }

    @staticmethod
    def _describe(buckets: list[_Bucket], attr: str) -> dict[str, Any]:
        i = _METRICS.index(attr)
        return describe_parts([getattr(b, attr) for b in buckets], [b.sums[i] for b in buckets])

    def _model_order(self, keys: Iterable[str]) -> list[str]:
        selected = list((self._discovered or {}).get("selected") or [])
        rest = sorted(k for k in keys if k not in selected)
        return selected + rest

    def _models(self) -> dict[str, Any]:
        groups: dict[str, list[_Bucket]] = {}
        scen_of: dict[str, dict[Any, _Bucket]] = {}
        for (prov, model, scen), b in self._buckets.items():
            k = _key(prov, model)
            groups.setdefault(k, []).append(b)
            scen_of.setdefault(k, {})[scen] = b
        selected = set((self._discovered or {}).get("selected") or [])
        out: dict[str, Any] = {}
        for key in self._model_order(groups):
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
                for cat, (n, k) in b.categories.items():
                    row = cats.setdefault(cat, [0, 0])
                    row[0] += n
                    row[1] += k
            counted = sum(b.src_usage + b.src_chunks for b in bs)  # requests with a token count
            info = self._model_info.get(key)
            size = info.get("size_bytes") if info else None
            prof: dict[str, Any] = {
                "key": key,
                "selected": key in selected,
                "turns": self._turns.get(key, 0),
                "info": info,
                "size_gb": round(size / 1e9, 2) if _num(size) else None,
                "size_estimated": info.get("size_estimated") if info else None,
                "context_length": self._usable_context(key, info),
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
                    c: {"tests": n, "ok": k, "success": rate(k, n)} for c, (n, k) in sorted(cats.items())
                },
                "errors": dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
            }
            for name, attr in _METRIC_NAMES.items():
                prof[name] = self._describe(bs, attr)
            out[key] = prof
        return out

    def _usable_context(self, key: str, info: dict[str, Any] | None) -> Any:
        """The runtime context the server reported for the loaded model, else discovery's."""
        learned = self._truth.runtime_context(key)
        if learned and _num(learned.get("context_length")):
            return learned["context_length"]
        return info.get("context_length") if info else None

    def _scenarios(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        by_scen: dict[Any, list[tuple[str, _Bucket]]] = {}
        for (prov, model, scen), b in self._buckets.items():
            by_scen.setdefault(scen, []).append((_key(prov, model), b))
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
                "e2e_ms": self._describe(bs, "e2e"),
                "ttft_ms": self._describe(bs, "ttft"),
                "gen_tps": self._describe(bs, "gen"),
            }
        return out

    def _errors(self) -> dict[str, Any]:
        by_class: dict[str, dict[str, Any]] = {}
        for (prov, model, _scen), b in self._buckets.items():
            key = _key(prov, model)
            for cls, n in b.req_errors.items():
                rec = by_class.setdefault(cls, {"requests": 0, "tests": 0, "per_model": {}, "example": None})
                rec["requests"] += n
                rec["per_model"][key] = rec["per_model"].get(key, 0) + n
            for cls, n in b.test_errors.items():
                rec = by_class.setdefault(cls, {"requests": 0, "tests": 0, "per_model": {}, "example": None})
                rec["tests"] += n
                if cls not in b.req_errors:
                    # a test-level failure (e.g. check_failed) with no failed request behind it
                    rec["per_model"][key] = rec["per_model"].get(key, 0) + n
        for cls, rec in by_class.items():
            rec["example"] = self._examples.get(cls)
            if rec["example"] is None:
                rec["example"] = self._reason_example(cls)
            rec["per_model"] = dict(sorted(rec["per_model"].items(), key=lambda kv: (-kv[1], kv[0])))
        ordered = dict(
            sorted(by_class.items(), key=lambda kv: (-(kv[1]["requests"] + kv[1]["tests"]), kv[0]))
        )
        engine = [
            {"error_class": cls, "where": where, "count": n, "example": ex}
            for (cls, where), (n, ex) in sorted(self._engine_errors.items(), key=lambda kv: -kv[1][0])
        ]
        return {"by_class": ordered, "engine": engine}

    def _reason_example(self, cls: str) -> str | None:
        """A failure reason from a test of this class, when no request message exists."""
        for b in self._buckets.values():
            if cls in b.test_errors and b.reasons:
                return next(iter(b.reasons))
        return None

    def _concurrency(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for (prov, model, conc), row in self._conc.items():
            out.setdefault(_key(prov, model), []).append(
                {
                    "concurrency": conc,
                    "batches": row.batches,
                    "full": row.full,
                    "partial": row.partial,
                    "failed": row.none,
                    "saturated": row.saturated,
                    "requests_ok": row.ok,
                    "requests_failed": row.failed,
                    "aggregate_tps": describe(sorted(row.agg_tps)),
                    "latency_p50_ms": describe(sorted(row.lat_p50)),
                }
            )
        for rows in out.values():
            rows.sort(key=lambda r: (r["concurrency"] is None, r["concurrency"] or 0))
        return {k: out[k] for k in self._model_order(out) if k in out}

    def _context(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        order = {label: i for i, label in enumerate([*CONTEXT_ORDER, "unknown"])}
        for (prov, model, label), row in self._ctx.items():
            out.setdefault(_key(prov, model), []).append(
                {
                    "bucket": label,
                    "requests_ok": row.ok,
                    "requests_failed": row.failed,
                    "context_overflow": row.overflow,
                    "bucketed_by_target": row.by_target,
                    "max_prompt_tokens_ok": row.max_ok,
                    "ttft_ms": describe(sorted(row.ttft)),
                    "prompt_tps": describe(sorted(row.ptps)),
                }
            )
        for rows in out.values():
            rows.sort(key=lambda r: order.get(r["bucket"], 99))
        return {k: out[k] for k in self._model_order(out) if k in out}

    def _streaming_ttft(self) -> dict[str, dict[str, Any]]:
        """TTFT of each model's successful streaming-scenario requests (buckets sorted already)."""
        return {
            _key(prov, model): self._describe([b], "ttft")
            for (prov, model, scen), b in self._buckets.items()
            if scen == "streaming"
        }

    def _failover(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for (prov, model, mode), row in sorted(self._fail.items(), key=lambda kv: str(kv[0])):
            out.setdefault(_key(prov, model), {})[str(mode)] = {
                "tests": row.tests,
                "ok_tests": row.ok,
                "success": rate(row.ok, row.tests),
                "detect_ms": describe(sorted(row.detect)),
                "recover_ms": describe(sorted(row.recover)),
                "cold_load_ms": describe(sorted(row.cold)),
                "attempts": describe(sorted(row.attempts)),
            }
        return out

    def _control(self) -> dict[str, Any]:
        paused_ns = self._paused_ns
        if self._paused_since is not None:
            m0, t0 = self._paused_since
            end_m, end_t = self._last_mono, self._last_t
            if _num(m0) and _num(end_m):
                paused_ns += max(0, end_m - m0)
            elif _num(t0) and _num(end_t):
                paused_ns += int(max(0.0, end_t - t0) * 1e9)
        st = self._started or {}
        return {
            "throttle_start_pct": st.get("throttle_pct"),
            "throttle_changes": self._throttle_changes,
            "throttle_last": self._throttle_last,
            "throttle_history": list(self._throttle_hist),
            "quiet_hours_changes": self._quiet_changes,
            "pauses": self._pauses,
            "paused_s": round(paused_ns / 1e9, 3),
            "paused_at_end": self._paused_since is not None,
            "commands": dict(sorted(self._commands.items())),
            "models_skipped": self._skip_count,
            "skips": list(self._skips),
            "model_switches": sum(self._turns.values()),
            "last_status": self._last_status,
        }


def fold(events: Iterable[dict[str, Any]], **kwargs: Any) -> RunAggregate:
    """A RunAggregate fed with every event of `events`."""
    return RunAggregate(**kwargs).feed_all(events)


__all__ = ["CONTEXT_ORDER", "DEFINITIONS", "RunAggregate", "fold"]
