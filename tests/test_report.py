"""Report math against a hand-written event log with hand-computed figures.

The log: one provider `sim`, models `alpha` and `beta`, scenarios streaming, concurrent_load,
large_context and prompt_variety; 20 request events (16 ok, 4 failed), 15 tests (10 ok), a
throttle change, a pause, an engine error, no run_finished, and a torn last line (a killed run).
"""

from __future__ import annotations

import copy as copy_module
import errno
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from soaktui.log.events import EventBus
from soaktui.log.rundir import SUMMARY as SUMMARY_FILE
from soaktui.report import build_report, fold, render_json, render_markdown, write_report
from soaktui.report.aggregate import RunAggregate
from soaktui.report.html import render_html
from soaktui.sinks.summary import SummarySink
from soaktui.stats import describe, rate, wilson

pytestmark = pytest.mark.unit

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Log:
    """Builds events with the common fields, one second (wall and monotonic) apart."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        seq = len(self.events) + 1
        ev = {"v": 1, "kind": kind, "run_id": "soak_test", "seq": seq, "t": T0 + seq, "mono_ns": seq * 10**9}
        ev.update(fields)
        self.events.append(ev)
        return ev

    def req(self, model: str, scenario: str, test_id: int, ok: bool = True, **f: Any) -> None:
        base = {
            "test_id": test_id,
            "scenario": scenario,
            "provider": "sim",
            "model": model,
            "stream": True,
            "ok": ok,
            "error_class": None,
            "error": None,
            "http_status": 200 if ok else None,
            "ttft_ms": None,
            "e2e_ms": None,
            "itl_p50_ms": None,
            "itl_p95_ms": None,
            "gen_tps": None,
            "prompt_tps": None,
            "prompt_tokens": 50 if ok else None,
            "output_tokens": 100 if ok else None,
            "token_source": "usage" if ok else None,
            "truncated": False,
        }
        base.update(f)
        self.add("request", **base)

    def result(self, model: str, scenario: str, test_id: int, ok: bool, **f: Any) -> None:
        base = {
            "test_id": test_id,
            "scenario": scenario,
            "provider": "sim",
            "model": model,
            "ok": ok,
            "reason": None,
            "error_class": None,
            "requests": 1,
            "duration_ms": 1.0,
            "metrics": {},
        }
        base.update(f)
        self.add("scenario_result", **base)


def make_log() -> Log:
    log = Log()
    log.add(
        "run_started",
        version="0.1.0",
        host={"hostname": "box", "platform": "Linux", "python": "3.11", "cpus": 2},
        out_dir="/tmp/x",
        seed=7,
        duration_s=3600,
        throttle_pct=80,
        quiet_hours={"enabled": False, "start": "22:00", "end": "06:00", "throttle_pct": 30},
        scenarios={"streaming": 2.0, "concurrent_load": 1.5, "large_context": 0.5, "prompt_variety": 3.0},
        settings={},
        demo=True,
    )
    log.add(
        "providers_discovered",
        providers=[
            {
                "name": "sim",
                "kind": "openai",
                "base_url": "http://127.0.0.1:9",
                "version": None,
                "models": [
                    {
                        "key": "sim/alpha",
                        "id": "alpha",
                        "provider": "sim",
                        "size_bytes": 4_000_000_000,
                        "size_estimated": False,
                        "context_length": 32768,
                    },
                    {
                        "key": "sim/beta",
                        "id": "beta",
                        "provider": "sim",
                        "size_bytes": 7_500_000_000,
                        "size_estimated": True,
                        "context_length": None,
                    },
                    {"key": "sim/embed", "id": "embed", "provider": "sim", "type": "embedding"},
                ],
            }
        ],
        selected=["sim/alpha", "sim/beta"],
        excluded=[{"model": "sim/embed", "reason": "embedding model"}],
        probed=["http://127.0.0.1:9"],
        unreachable={},
    )
    log.add("model_switched", provider="sim", model="alpha", key="sim/alpha", reason="start")
    # alpha / streaming: tests 1-3 (3rd fails with an HTTP status; its e2e must not enter averages)
    log.req("alpha", "streaming", 1, ttft_ms=100, e2e_ms=1000, itl_p50_ms=10, gen_tps=50, prompt_tps=500)
    log.result("alpha", "streaming", 1, True)
    log.req("alpha", "streaming", 2, ttft_ms=200, e2e_ms=2000, itl_p50_ms=20, gen_tps=40, prompt_tps=250)
    log.result("alpha", "streaming", 2, True)
    log.req("alpha", "streaming", 3, ok=False, error_class="http_status", error="HTTP 503: busy", e2e_ms=5)
    log.result(
        "alpha", "streaming", 3, False, reason="request failed: http_status", error_class="http_status"
    )
    # alpha / concurrent_load at 2 (all ok) and 4 (one read timeout)
    log.req("alpha", "concurrent_load", 4, concurrency=2, ttft_ms=300, e2e_ms=1500, itl_p50_ms=33, gen_tps=30)
    log.req("alpha", "concurrent_load", 4, concurrency=2, ttft_ms=500, e2e_ms=2500, itl_p50_ms=50, gen_tps=20)
    log.result(
        "alpha",
        "concurrent_load",
        4,
        True,
        requests=2,
        metrics={
            "concurrency": 2,
            "succeeded": 2,
            "failed": 0,
            "aggregate_tps": 60.0,
            "latency_p50_ms": 2000.0,
            "saturated": False,
        },
    )
    log.add("throttle_changed", pct=50, effective_pct=50, source="command")
    for ttft, e2e, itl, gen in ((600, 3000, 66, 15), (700, 3500, 71, 14), (800, 4000, 76, 13)):
        log.req(
            "alpha",
            "concurrent_load",
            5,
            concurrency=4,
            ttft_ms=ttft,
            e2e_ms=e2e,
            itl_p50_ms=itl,
            gen_tps=gen,
        )
    log.req(
        "alpha",
        "concurrent_load",
        5,
        ok=False,
        concurrency=4,
        error_class="read_timeout",
        error="no bytes for 30 s",
        e2e_ms=30000,
    )
    log.result(
        "alpha",
        "concurrent_load",
        5,
        False,
        requests=4,
        reason="1 of 4 requests failed",
        error_class="read_timeout",
        metrics={
            "concurrency": 4,
            "succeeded": 3,
            "failed": 1,
            "aggregate_tps": 40.0,
            "latency_p50_ms": 3500.0,
            "saturated": True,
        },
    )
    # alpha / large_context: one ok at 10k prompt tokens, one context overflow aimed at 40k
    log.req(
        "alpha",
        "large_context",
        6,
        context_target_tokens=10000,
        prompt_tokens=10000,
        ttft_ms=2000,
        e2e_ms=5000,
        itl_p50_ms=40,
        gen_tps=25,
        prompt_tps=5000,
    )
    log.result("alpha", "large_context", 6, True, metrics={"prompt_tokens": 10000, "ttft_ms": 2000})
    log.req(
        "alpha",
        "large_context",
        7,
        ok=False,
        context_target_tokens=40000,
        error_class="context_overflow",
        error="context length exceeded",
        e2e_ms=50,
    )
    log.result("alpha", "large_context", 7, False, reason="context overflow", error_class="context_overflow")
    log.add("paused", source="command")
    log.add("resumed", source="command")  # one second (mono) later
    log.add("model_switched", provider="sim", model="beta", key="sim/beta", reason="rotation")
    # beta / streaming: 4 tests, one non-streamed, one dropped connection
    log.req(
        "beta",
        "streaming",
        8,
        ttft_ms=150,
        e2e_ms=1200,
        itl_p50_ms=12,
        gen_tps=80,
        token_source="chunks",
        prompt_tokens=None,
    )
    log.result("beta", "streaming", 8, True)
    log.req("beta", "streaming", 9, ttft_ms=250, e2e_ms=1800, itl_p50_ms=16, gen_tps=60, prompt_tps=200)
    log.result("beta", "streaming", 9, True)
    log.req("beta", "streaming", 10, stream=False, e2e_ms=900, gen_tps=100)
    log.result("beta", "streaming", 10, True)
    log.req(
        "beta", "streaming", 11, ok=False, error_class="connection_dropped", error="peer closed", e2e_ms=400
    )
    log.result(
        "beta",
        "streaming",
        11,
        False,
        reason="request failed: connection_dropped",
        error_class="connection_dropped",
    )
    # beta / prompt_variety: coding 1/2 (a failed check), math 1/1
    for tid, ttft, e2e, itl, gen, cat, ok in (
        (12, 100, 700, 11.0, 90, "coding", True),
        (13, 120, 800, 10.5, 95, "coding", False),
        (14, 140, 900, 11.8, 85, "math", True),
    ):
        log.req(
            "beta", "prompt_variety", tid, ttft_ms=ttft, e2e_ms=e2e, itl_p50_ms=itl, gen_tps=gen, category=cat
        )
        log.result(
            "beta",
            "prompt_variety",
            tid,
            ok,
            reason=None if ok else "expected a code block",
            error_class=None if ok else "check_failed",
            metrics={"category": cat, "prompt_id": f"{cat}-{tid}"},
        )
    # beta / concurrent_load at 2
    log.req("beta", "concurrent_load", 15, concurrency=2, ttft_ms=200, e2e_ms=1000, itl_p50_ms=14, gen_tps=70)
    log.req("beta", "concurrent_load", 15, concurrency=2, ttft_ms=220, e2e_ms=1100, itl_p50_ms=15, gen_tps=65)
    log.result(
        "beta",
        "concurrent_load",
        15,
        True,
        requests=2,
        metrics={
            "concurrency": 2,
            "succeeded": 2,
            "failed": 0,
            "aggregate_tps": 120.0,
            "latency_p50_ms": 1050.0,
            "saturated": False,
        },
    )
    log.add(
        "error", error_class="sink_failed", where="LogSink", message="LogSink stopped: OSError: disk full"
    )
    log.add("status", elapsed_s=40, tests=15, ok_tests=10, rss_bytes=123_000_000)
    return log


def write_run(tmp_path: Path, events: list[dict[str, Any]], tail: bytes = b'{"v":1,"kind":"requ') -> Path:
    run = tmp_path / "run"
    run.mkdir()
    data = b"".join(orjson.dumps(e) + b"\n" for e in events) + tail
    (run / "events.jsonl").write_bytes(data)
    return run


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    s, _ = build_report(write_run(tmp_path_factory.mktemp("r"), make_log().events))
    return s


# -- stats -------------------------------------------------------------------------------------
def test_wilson_interval_known_values() -> None:
    assert wilson(0, 0) is None
    lo, hi = wilson(3, 3)
    assert lo == pytest.approx(0.43850, abs=1e-4) and hi == 1.0
    lo, hi = wilson(4, 7)
    assert (lo, hi) == (pytest.approx(0.2504, abs=1e-4), pytest.approx(0.8418, abs=1e-4))
    assert rate(0, 0) == {"k": 0, "n": 0, "rate": None, "ci95": None}


def test_describe_uses_linear_interpolation() -> None:
    d = describe([1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000])
    assert d == {
        "n": 8,
        "mean": 2812.5,
        "p50": 2750.0,
        "p95": 4650.0,
        "p99": 4930.0,
        "min": 1000.0,
        "max": 5000.0,
    }
    assert describe([])["p50"] is None


# -- the report ----------------------------------------------------------------------------------
def test_read_stats_and_header(snap: dict[str, Any]) -> None:
    assert snap["log"]["torn_tail"] is True and snap["log"]["lines_bad"] == 0
    assert snap["log"]["lines_ok"] == len(make_log().events)
    run = snap["run"]
    assert run["run_id"] == "soak_test"
    assert run["ended_without_finishing"] is True and run["finish_reason"] is None
    assert run["ended_t"] == make_log().events[-1]["t"]  # the last event's time
    assert run["duration_s"] == len(make_log().events) - 1  # first to last event, monotonic clock
    assert run["seed"] == 7 and run["throttle_pct"] == 80
    assert run["excluded"] == [{"model": "sim/embed", "reason": "embedding model"}]
    assert run["max_rss_bytes"] == 123_000_000


def test_totals(snap: dict[str, Any]) -> None:
    t = snap["totals"]
    assert (t["tests"], t["ok_tests"]) == (15, 10)
    assert (t["requests"], t["requests_ok"], t["requests_failed"]) == (20, 16, 4)
    assert t["kinds"]["request"] == 20 and t["kinds"]["scenario_result"] == 15


def test_model_profile_alpha_successful_requests_only(snap: dict[str, Any]) -> None:
    a = snap["models"]["sim/alpha"]
    assert (a["tests"], a["ok_tests"]) == (7, 4)
    assert a["success"]["ci95"] == [pytest.approx(0.2504, abs=1e-4), pytest.approx(0.8418, abs=1e-4)]
    assert (a["requests_ok"], a["requests_failed"]) == (8, 3)
    # e2e over the 8 successful requests; 5, 30000 and 50 ms (failed) are not in it
    assert a["e2e_ms"] == describe([1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000])
    assert a["e2e_ms"]["mean"] == 2812.5 and a["e2e_ms"]["p50"] == 2750.0
    assert a["ttft_ms"]["n"] == 8 and a["ttft_ms"]["mean"] == 650.0 and a["ttft_ms"]["p50"] == 550.0
    assert a["itl_p50_ms"]["p50"] == 45.0  # median of per-request ITL p50
    assert a["gen_tps"]["n"] == 8 and a["gen_tps"]["p50"] == 22.5
    assert a["gen_tps_nonstream"]["n"] == 0 and a["gen_tps_nonstream"]["mean"] is None
    assert a["prompt_tps"]["n"] == 3  # 500, 250, 5000
    assert a["size_gb"] == 4.0 and a["size_estimated"] is False and a["context_length"] == 32768
    assert a["errors"] == {"context_overflow": 1, "http_status": 1, "read_timeout": 1}
    assert set(a["scenarios"]) == {"streaming", "concurrent_load", "large_context"}


def test_model_profile_beta(snap: dict[str, Any]) -> None:
    b = snap["models"]["sim/beta"]
    assert (b["tests"], b["ok_tests"]) == (8, 6)
    assert (b["requests_ok"], b["requests_failed"]) == (8, 1)
    assert b["e2e_ms"]["mean"] == 1050.0 and b["e2e_ms"]["p50"] == 950.0
    assert b["gen_tps"]["n"] == 7 and b["gen_tps"]["p50"] == 80.0  # streamed only
    assert b["gen_tps_nonstream"] == describe([100.0])
    assert b["ttft_ms"]["n"] == 7 and b["ttft_ms"]["mean"] == pytest.approx(1180 / 7, abs=1e-3)
    assert b["token_source"] == {"usage": 7, "chunks": 1, "unknown": 0, "usage_rejected": 0}
    assert b["size_estimated"] is True and b["context_length"] is None
    cats = b["prompt_categories"]
    assert (cats["coding"]["tests"], cats["coding"]["ok"]) == (2, 1)
    assert (cats["math"]["tests"], cats["math"]["ok"]) == (1, 1)


def test_scenarios(snap: dict[str, Any]) -> None:
    s = snap["scenarios"]
    assert (s["streaming"]["tests"], s["streaming"]["ok_tests"]) == (7, 5)
    assert sorted(s["streaming"]["failure_reasons"]) == [
        ["request failed: connection_dropped", 1],
        ["request failed: http_status", 1],
    ]
    assert (s["concurrent_load"]["tests"], s["concurrent_load"]["ok_tests"]) == (3, 2)
    assert (s["large_context"]["tests"], s["large_context"]["ok_tests"]) == (2, 1)
    assert s["prompt_variety"]["failure_classes"] == {"check_failed": 1}
    # streaming e2e: alpha 1000, 2000; beta 1200, 1800, 900 (failed 5 and 400 excluded)
    assert s["streaming"]["e2e_ms"] == describe([900, 1000, 1200, 1800, 2000])


def test_errors_by_class(snap: dict[str, Any]) -> None:
    e = snap["errors"]["by_class"]
    failed = [
        x for x in make_log().events if x["kind"] in ("request", "scenario_result") and x.get("ok") is False
    ]
    first_request = {x["error_class"]: x["t"] for x in reversed(failed) if x["kind"] == "request"}
    assert e["http_status"] == {
        "requests": 1,
        "tests": 1,
        "per_model": {"sim/alpha": 1},
        "example": "HTTP 503: busy",
        "first_t": first_request["http_status"],  # the failed request, not the test it failed
        "last_t": first_request["http_status"],
    }
    assert e["connection_dropped"]["per_model"] == {"sim/beta": 1}
    check_t = next(x["t"] for x in failed if x["error_class"] == "check_failed")
    assert e["check_failed"] == {
        "requests": 0,
        "tests": 1,
        "per_model": {"sim/beta": 1},
        "example": "expected a code block",
        "first_t": check_t,  # a test-level failure: no request marked it
        "last_t": check_t,
    }
    assert snap["models"]["sim/alpha"]["error_spans"]["read_timeout"] == [first_request["read_timeout"]] * 2
    assert e["read_timeout"]["example"] == "no bytes for 30 s"
    assert snap["errors"]["engine"] == [
        {
            "error_class": "sink_failed",
            "where": "LogSink",
            "count": 1,
            "example": "LogSink stopped: OSError: disk full",
        }
    ]


def test_concurrency_scaling(snap: dict[str, Any]) -> None:
    a = snap["scaling"]["concurrency"]["sim/alpha"]
    assert [r["concurrency"] for r in a] == [2, 4]
    c2, c4 = a
    assert (c2["batches"], c2["full"], c2["partial"]) == (1, 1, 0)
    assert c2["aggregate_tps"]["p50"] == 60.0 and c2["latency_p50_ms"]["p50"] == 2000.0
    # the partial batch is counted, not averaged
    assert (c4["batches"], c4["full"], c4["partial"], c4["saturated"]) == (1, 0, 1, 1)
    assert (c4["requests_ok"], c4["requests_failed"]) == (3, 1)
    assert c4["aggregate_tps"]["n"] == 0 and c4["aggregate_tps"]["p50"] is None
    assert snap["scaling"]["concurrency"]["sim/beta"][0]["aggregate_tps"]["p50"] == 120.0


def test_context_scaling(snap: dict[str, Any]) -> None:
    rows = {r["bucket"]: r for r in snap["scaling"]["context"]["sim/alpha"]}
    assert set(rows) == {"8k-16k", "32k+"}
    assert rows["8k-16k"]["ttft_ms"]["p50"] == 2000.0 and rows["8k-16k"]["prompt_tps"]["p50"] == 5000.0
    big = rows["32k+"]
    assert (big["requests_ok"], big["requests_failed"], big["context_overflow"]) == (0, 1, 1)
    assert big["bucketed_by_target"] == 1 and big["ttft_ms"]["p50"] is None


def test_control(snap: dict[str, Any]) -> None:
    c = snap["control"]
    assert c["throttle_changes"] == 1 and c["throttle_last"]["pct"] == 50
    assert c["pauses"] == 1 and c["paused_s"] == 1.0 and not c["paused_at_end"]
    assert c["model_switches"] == 2


def test_rankings_and_recommendations(snap: dict[str, Any]) -> None:
    rk = snap["rankings"]
    assert [(r["model"], r["median_gen_tps"], r["n"]) for r in rk["throughput"]] == [
        ("sim/beta", 80.0, 7),
        ("sim/alpha", 22.5, 8),
    ]
    assert [r["model"] for r in rk["reliability"]] == ["sim/beta", "sim/alpha"]  # 6/8 beats 4/7
    recs = {r["title"]: r for r in snap["recommendations"]}
    assert recs["fastest"]["model"] == "sim/beta" and "n=" not in recs["fastest"]["evidence"]
    assert "7 successful streamed requests" in recs["fastest"]["evidence"]
    assert "6/8" in recs["most reliable"]["evidence"]
    assert recs["best balance"]["model"] == "sim/beta"


def test_small_samples_are_insufficient_data() -> None:
    agg = fold(make_log().events, min_requests=10, min_tests=10)
    s = agg.snapshot()
    assert s["rankings"]["throughput"] == [] and s["rankings"]["reliability"] == []
    assert {r["model"] for r in s["rankings"]["insufficient"]["reliability"]} == {"sim/alpha", "sim/beta"}
    assert all(r["model"] is None and "insufficient data" in r["evidence"] for r in s["recommendations"])
    assert "insufficient data" in render_markdown(s)


def test_finished_run_header() -> None:
    log = make_log()
    log.add("run_finished", reason="duration", elapsed_s=3600.5, tests=15, ok_tests=10, requests=20)
    run = fold(log.events).snapshot()["run"]
    assert run["finished"] and run["finish_reason"] == "duration" and run["duration_s"] == 3600.5


def test_selected_but_untested_model_is_listed_not_profiled() -> None:
    log = make_log()
    log.events[1]["selected"] = ["sim/alpha", "sim/beta", "sim/gamma"]
    s = fold(log.events).snapshot()
    assert s["models"]["sim/gamma"]["tests"] == 0 and s["models"]["sim/gamma"]["e2e_ms"]["mean"] is None
    md = render_markdown(s)
    assert "Selected but not tested: sim/gamma." in md and "### sim/gamma" not in md


def test_still_paused_at_the_end_counts_until_the_last_event() -> None:
    log = make_log()
    log.add("paused", source="command")
    log.add("status", elapsed_s=41)
    log.add("status", elapsed_s=42)
    c = fold(log.events).snapshot()["control"]
    assert c["pauses"] == 2 and c["paused_at_end"] and c["paused_s"] == 3.0


def test_malformed_fields_are_counted_not_fatal() -> None:
    log = make_log()
    log.req("alpha", "streaming", 99, e2e_ms="slow")
    s = fold(log.events).snapshot()
    assert s["totals"]["malformed_events"] == 1


def test_folding_in_batches_is_folding_one_event_at_a_time() -> None:
    """The aggregate hands events to its folds a batch at a time, fold by fold: the figures are
    those of one event at a time, and an event one fold raises on is counted once and kept from the
    folds after it, while the events after it in the same batch reach every fold."""
    log = make_log()
    for i in range(40):
        log.req("alpha", "streaming", i, e2e_ms=900.0 + i, ttft_ms=90.0, gen_tps=40.0)
        log.result("alpha", "streaming", i, True)
        if i == 20:
            log.req("alpha", "streaming", 99, e2e_ms="slow")
    one_by_one = RunAggregate()
    for ev in log.events:
        one_by_one.feed(ev)
    want = render_json(one_by_one.snapshot())
    assert orjson.loads(want)["totals"]["malformed_events"] == 1
    for size in (1, 7, 256, len(log.events)):
        agg = RunAggregate()
        for lo in range(0, len(log.events), size):
            agg.feed_all(log.events[lo : lo + size])
        assert render_json(agg.snapshot()) == want, size
    assert render_json(RunAggregate().feed_all(ev for ev in log.events).snapshot()) == want  # any iterable


def test_a_batch_is_folded_as_its_events_would_be_one_by_one() -> None:
    """Edges of folding a batch at a time: the same event object twice is two events (both
    malformed), an iterable that fails partway has what it gave folded before the error goes on,
    and a copy or a pickled aggregate folds into its own folds, not the original's."""
    bad = make_log().events[0] | {"kind": "request", "scenario": "streaming", "ok": True, "e2e_ms": "slow"}
    assert RunAggregate().feed_all([bad, bad]).malformed == 2

    def failing():
        yield from make_log().events[:3]
        raise OSError("disk went away")

    agg = RunAggregate()
    with pytest.raises(OSError):
        agg.feed_all(failing())
    assert agg.events == 3 and agg.run.run_id == "soak_test"

    log = make_log()
    log.req("alpha", "streaming", 1, e2e_ms=900.0)
    original = RunAggregate().feed_all(log.events)
    ok = original.requests.counts()[2]  # successful requests
    for copy in (copy_module.deepcopy(original), pickle.loads(pickle.dumps(original))):
        copy.feed_all(log.events[-1:])
        assert copy.requests.counts()[2] == ok + 1 and original.requests.counts()[2] == ok


def test_a_log_no_writer_makes_is_read_for_what_it_holds(tmp_path: Path) -> None:
    """A hand-edited or foreign log: a list for a kind, text where a stall's time and gap belong.
    The report counts the odd events and renders; it does not crash."""
    log = make_log()
    log.req("alpha", "streaming", 98, stalled=True, max_gap_ms="long", t="noon")
    log.req("alpha", "streaming", 97, prompt_truncated=True, prompt_tokens="many", t=[1])
    events = [*log.events, {"v": 1, "kind": ["request"], "t": 1.0}, {"v": 1, "kind": {"x": 1}}]
    s, _ = build_report(write_run(tmp_path, events))
    assert s["totals"]["malformed_events"] == 2
    truth = s["server_truth"]
    stall = [ex for t in truth.values() for ex in t["stalls"]["examples"] if ex["test_id"] == 98]
    assert stall == [{"t": None, "scenario": "streaming", "max_gap_ms": None, "test_id": 98}]
    md = render_markdown(s)
    assert "## What the servers hid" in md


def test_a_log_with_absurd_values_where_times_and_counts_belong_still_renders(tmp_path: Path) -> None:
    """Times that are text, lists or past any calendar, a class that is a number, token counts past
    64 bits, a thermal limit that is text: every renderer still gives the report, and the times no
    clock can show are shown as unknown (a fuzzer of hostile logs crashed `soaktui report` in about
    one log in ten before)."""
    log = make_log()
    log.req("alpha", "streaming", 90, ok=False, error_class=1.5, error="odd")
    log.req("alpha", "streaming", 91, output_tokens=2**62, token_source="usage")
    log.req("alpha", "streaming", 92, output_tokens=2**62, token_source="usage")
    events = [
        {"v": 1, "kind": "run_started", "t": "noon", "settings": {"thermal": {"hysteresis_c": "x"}}},
        *log.events,
        {"v": 1, "kind": "paused", "t": -1e300},
        {"v": 1, "kind": "resumed", "t": 1e300},
        {"v": 1, "kind": "telemetry", "t": 1e300, "cpu_temp_c": 50.0, "power_w": 1e300},
        {"v": 1, "kind": "run_finished", "t": [1], "elapsed_s": 5.0},
    ]
    s, _ = build_report(write_run(tmp_path, events))
    assert s["run"]["ended_at"] is None  # run_finished's time is a list
    assert "1.5" in s["errors"]["by_class"]
    assert render_json(s) and render_markdown(s) and render_html(s)


def test_failover_figures_and_unmeasured_stays_none() -> None:
    log = Log()
    log.req(
        "gamma", "provider_failover", 1, ok=False, error_class="connection_refused", error="refused", e2e_ms=3
    )
    log.req("gamma", "provider_failover", 1, e2e_ms=800, ttft_ms=90, token_source=None, output_tokens=None)
    log.result(
        "gamma",
        "provider_failover",
        1,
        True,
        metrics={"mode": "recovery", "detect_ms": 3.0, "recover_ms": 1500.0, "attempts": 3},
    )
    log.result(
        "gamma",
        "provider_failover",
        2,
        False,
        reason="never recovered",
        error_class="connection_refused",
        metrics={"mode": "recovery", "detect_ms": 5.0, "recover_ms": None, "attempts": 8},
    )
    s = fold(log.events).snapshot()
    r = s["failover"]["sim/gamma"]["recovery"]
    assert (r["tests"], r["ok_tests"]) == (2, 1)
    assert r["detect_ms"]["n"] == 2 and r["detect_ms"]["p50"] == 4.0
    assert r["recover_ms"] == describe([1500.0])  # the test that never recovered has no figure
    assert r["cold_load_ms"]["n"] == 0 and r["cold_load_ms"]["p50"] is None
    g = s["models"]["sim/gamma"]
    assert g["output_tokens"] is None  # no token count was reported: unknown, not 0
    assert g["token_source"] == {"usage": 0, "chunks": 0, "unknown": 1, "usage_rejected": 0}
    assert g["gen_tps"]["n"] == 0 and g["gen_tps"]["p50"] is None and g["info"] is None
    assert s["run"]["ended_without_finishing"] and s["run"]["started_at"] is not None
    md = render_markdown(s)
    assert "| Output tokens (successful requests with a count) | n/a |" in md
    assert "| sim/gamma | recovery | 1/2 (50%; 95% CI 9-91%) | 4.0 ms (n=2) | 1.5 s (n=1) | n/a (n=0) |" in md
    assert "| Size | unknown |" in md


def test_empty_log(tmp_path: Path) -> None:
    run = write_run(tmp_path, [], tail=b"")
    s, st = build_report(run)
    assert st.lines_ok == 0 and s["totals"]["tests"] == 0 and s["models"] == {}
    md = render_markdown(s)
    assert "No model was tested." in md and "n/a" in md


# -- rendering -------------------------------------------------------------------------------------
def test_markdown(snap: dict[str, Any]) -> None:
    md = render_markdown(snap)
    for heading in (
        "# soaktui report: soak_test",
        "## Run",
        "## Summary",
        "### Recommendations",
        "## Rankings",
        "## Model profiles",
        "### sim/alpha",
        "## Scenarios",
        "## Errors by class",
        "## Scaling",
        "### Concurrency (concurrent_load)",
        "### Context size (large_context)",
        "## Failover and recovery",
        "## Throttle, pauses and commands",
        "## Definitions",
    ):
        assert heading in md, heading
    assert "ended without finishing" in md
    assert "torn last line skipped" in md
    assert "4/7 (57%; 95% CI 25-84%)" in md  # a rate always with counts and interval
    assert "median of per-request ITL p50" in md
    assert "n/a (n=0)" in md  # the partial concurrency batch has no throughput figure
    assert "No provider_failover test ran." in md
    assert "| sim/embed | embedding model |" in md
    assert "7.50 GB (estimated)" in md


def test_json_round_trips(snap: dict[str, Any]) -> None:
    data = render_json(snap)
    assert data.endswith(b"\n") and b'\n  "errors"' in data
    assert orjson.loads(data) == orjson.loads(orjson.dumps(snap, option=orjson.OPT_NON_STR_KEYS))


def test_write_report_atomically(tmp_path: Path) -> None:
    run = write_run(tmp_path, make_log().events)
    paths = write_report(run)
    assert [p.name for p in paths] == ["final_report.md", "report.json", "report.html"]
    assert sorted(p.name for p in run.iterdir()) == [
        "events.jsonl",
        "final_report.md",
        "report.html",
        "report.json",
    ]
    assert orjson.loads((run / "report.json").read_bytes())["totals"]["tests"] == 15
    assert (run / "final_report.md").read_text().startswith("# soaktui report: soak_test")


def test_fold_equals_build_report(snap: dict[str, Any]) -> None:
    direct = fold(make_log().events).snapshot()
    assert direct == {k: v for k, v in snap.items() if k != "log"}


def test_snapshot_can_be_taken_repeatedly_while_feeding() -> None:
    events = make_log().events
    agg = fold(events[:20])
    first = agg.snapshot()
    agg.feed_all(events[20:])
    assert agg.snapshot() == fold(events).snapshot()
    assert first["totals"]["requests"] < 20


# -- test_summary.json -----------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_summary_sink_interval_and_content(tmp_path: Path) -> None:
    clock = FakeClock()
    sink = SummarySink(tmp_path, interval_s=300, clock=clock)
    events = make_log().events
    for ev in events[:10]:
        sink.handle(ev)
    assert not (tmp_path / SUMMARY_FILE).exists()  # interval not reached
    clock.now = 300.0
    sink.handle(events[10])
    first = orjson.loads((tmp_path / SUMMARY_FILE).read_bytes())
    assert first["run_id"] == "soak_test" and first["tests"] == 3  # results at seq 5, 7, 9
    clock.now = 310.0
    for ev in events[11:]:
        sink.handle(ev)
    assert orjson.loads((tmp_path / SUMMARY_FILE).read_bytes()) == first  # not rewritten within 300 s
    sink.close()
    final = orjson.loads((tmp_path / SUMMARY_FILE).read_bytes())
    assert final["tests"] == 15 and final["ok_tests"] == 10
    assert final["per_model"]["sim/alpha"]["e2e_ms"]["mean"] == 2812.5
    assert final["per_scenario"]["streaming"]["tests"] == 7
    assert final["errors_by_class"]["check_failed"] == {"requests": 0, "tests": 1}
    assert final["elapsed_s"] == len(events) - 1 and final["generated_at"]
    assert sink.writes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [SUMMARY_FILE]  # no temp files left


@pytest.mark.integration
def test_summary_write_error_raises_and_keeps_the_old_file(tmp_path: Path) -> None:
    """A full disk (RLIMIT_FSIZE in a child): handle() raises OSError, the old summary stays whole."""
    events_file = tmp_path / "events.json"
    events_file.write_bytes(orjson.dumps(make_log().events))
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, orjson
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from soaktui.sinks.summary import SummarySink
        events = orjson.loads(Path({str(events_file)!r}).read_bytes())
        run = Path({str(tmp_path)!r}) / "run"
        run.mkdir()
        sink = SummarySink(run, interval_s=0)
        sink.handle(events[0])  # interval 0: writes at once (a small summary)
        size = (run / "test_summary.json").stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, resource.RLIM_INFINITY))
        try:
            for ev in events[1:]:
                sink.handle(ev)
        except OSError as exc:
            print("raised", type(exc).__name__, exc.errno)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={**os.environ}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:3] == ["raised", "OSError", str(errno.EFBIG)], out.stdout
    run = tmp_path / "run"
    kept = orjson.loads((run / SUMMARY_FILE).read_bytes())
    assert kept["run_id"] == "soak_test" and kept["tests"] == 0
    assert sorted(p.name for p in run.iterdir()) == [SUMMARY_FILE]


def test_event_bus_detaches_a_failing_summary_sink(tmp_path: Path) -> None:
    run = tmp_path / "gone"
    run.mkdir()
    sink = SummarySink(run, interval_s=0)
    run.rmdir()  # every write now fails with an OSError
    failures: list[BaseException] = []
    bus = EventBus("soak_test", on_sink_failure=lambda s, exc: failures.append(exc))
    bus.add_sink(sink)
    bus.emit("status", elapsed_s=1)
    assert len(failures) == 1 and isinstance(failures[0], OSError)
    assert bus.sinks == ()


def test_cancelled_work_is_counted_apart_not_as_failure() -> None:
    base = {
        "v": 1,
        "run_id": "r",
        "t": 1.0,
        "mono_ns": 1,
        "provider": "p",
        "model": "m",
        "scenario": "streaming",
    }
    events = [
        {**base, "seq": 1, "kind": "request", "ok": True, "stream": True, "e2e_ms": 10.0, "output_tokens": 5},
        {**base, "seq": 2, "kind": "scenario_result", "ok": True, "test_id": 1},
        {**base, "seq": 3, "kind": "request", "ok": False, "stream": True, "error_class": "cancelled"},
        {**base, "seq": 4, "kind": "scenario_result", "ok": False, "error_class": "cancelled", "test_id": 2},
    ]
    totals = fold(events).snapshot()["totals"]
    assert (totals["tests"], totals["ok_tests"], totals["requests"], totals["requests_failed"]) == (
        1,
        1,
        1,
        0,
    )
    assert (totals["cancelled_tests"], totals["cancelled_requests"]) == (1, 1)


def test_an_error_class_example_is_of_that_class() -> None:
    """A model whose tests fail first for one reason (another class) and then for check_failed: the
    check_failed example is a check_failed reason, never the other class's."""
    base = {
        "kind": "scenario_result",
        "provider": "p",
        "model": "m",
        "scenario": "prompt_variety",
        "ok": False,
    }
    events = [
        {**base, "t": 1.0, "error_class": "http_status", "reason": "HTTP 500 from the server"},
        {**base, "t": 2.0, "error_class": "check_failed", "reason": "checks failed: items"},
        {**base, "t": 5.0, "error_class": "check_failed", "reason": "checks failed: json"},
    ]
    e = fold(events).snapshot()["errors"]["by_class"]
    assert e["check_failed"]["example"] == "checks failed: items"
    assert e["http_status"]["example"] == "HTTP 500 from the server"
    assert (e["check_failed"]["first_t"], e["check_failed"]["last_t"]) == (2.0, 5.0)


def test_the_duty_cycle_at_the_end_reads_the_later_quiet_hours_change() -> None:
    """Throttle set to 90% during quiet hours (effective 30%), then quiet hours switched off
    (effective 90%): the report gives the later word, not the throttle event's 30%."""
    events = [
        {"kind": "run_started", "t": 0.0, "run_id": "q", "throttle_pct": 100},
        {"kind": "throttle_changed", "t": 10.0, "pct": 90, "effective_pct": 30, "source": "control"},
        {"kind": "quiet_hours_changed", "t": 20.0, "enabled": False, "active": False, "effective_pct": 90},
    ]
    snap = fold(events).snapshot()
    assert snap["control"]["pace_last"] == {"t": 20.0, "effective_pct": 90, "why": "quiet hours switched off"}
    md = render_markdown(snap)
    assert "| Duty cycle at the end | 90%: quiet hours switched off at " in md
    assert "effective 30" not in md


@pytest.mark.integration
def test_soaktui_report_writes_the_formats_asked_for(tmp_path: Path) -> None:
    run = write_run(tmp_path, make_log().events)

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "soaktui", "report", str(run), *args], capture_output=True, text=True, timeout=60
        )

    r = report("--format", "md")
    assert r.returncode == 0 and r.stdout.split() == [str(run / "final_report.md")]
    assert not (run / "report.html").exists() and "- Most reliable:" in r.stderr  # the verdict, headless
    r = report("--format", "html,json")
    assert r.returncode == 0 and [Path(p).name for p in r.stdout.split()] == ["report.json", "report.html"]
    r = report("--format", "pdf")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--format" in r.stderr


@pytest.mark.integration
def test_a_log_from_a_newer_soaktui_is_reported_with_one_warning(tmp_path: Path) -> None:
    events = make_log().events
    for ev in events[-5:]:
        ev["v"] = 2  # a newer soaktui wrote the last events
    run = write_run(tmp_path, events, tail=b"")
    r = subprocess.run(
        [sys.executable, "-m", "soaktui", "report", str(run), "--format", "md,json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    warning = "5 events were written by a newer soaktui (event schema v2; this one reads v1)"
    assert r.stderr.count(warning) == 1, r.stderr
    assert f"read {len(events)} events from" in r.stderr  # read, not refused
    log = orjson.loads((run / "report.json").read_bytes())["log"]
    assert (log["newer_schema"], log["newer_events"]) == (2, 5) and log["warning"].startswith(warning)
    assert warning in (run / "final_report.md").read_text()
