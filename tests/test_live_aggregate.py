"""The live views' bounded aggregate (RunAggregate(exact=False)): what it may differ in, its size,
and that the reports written stay exact (docs/report.md, "Live figures")."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import math
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soaktui.log.reader import iter_events
from soaktui.report.aggregate import RunAggregate
from soaktui.report.build import build_report
from soaktui.report.folds.timeline import mann_whitney
from soaktui.sinks.summary import SummarySink
from soaktui.sketch import ALPHA, EXACT_CAP

BENCH = Path(__file__).resolve().parent.parent / "bench"

# figures read from a sketch's percentiles, with the rounding the report gives them
PERCENTILES = {"p50": 1e-3, "p95": 1e-3, "p99": 1e-3, "gen_tps_p50": 1e-2, "ttft_p50_ms": 0.1,
               "ttft_p95_ms": 0.1, "soaktui_gen_tps_p50": 1e-3, "server_gen_tps_p50": 1e-3,
               "first": 1e-2, "last": 1e-2}  # fmt: skip  (first, last: the drift test's medians)
# derived from percentiles, so they move with them: a ranking's order, a verdict's wording, a
# drift test's p-value (over binned values), a ratio of two medians and the flag set on it
DERIVED = {"rankings", "recommendations", "verdict", "capabilities", "p", "change", "degraded", "ratio",
           "disagree", "load_ms_estimated"}  # fmt: skip


def generated_log(path: Path, requests: int, seed: int = 7) -> Path:
    """bench/report_1m.py's synthetic log: six models, every scenario, failures, a night long."""
    spec = importlib.util.spec_from_file_location("bench_report_1m_gen", BENCH / "report_1m.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path.mkdir(parents=True, exist_ok=True)
    mod.generate(path / "events.jsonl", requests, seed=seed)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_log(tmp_path_factory.mktemp("live") / "run", 6000)


def close(live: Any, exact: Any, where: str, key: str = "") -> list[str]:
    """Where `live` differs from `exact` by more than the sketch allows (an empty list: nowhere)."""
    if key in DERIVED:
        return []
    if isinstance(exact, dict):
        assert isinstance(live, dict) and live.keys() == exact.keys(), where
        return [d for k in exact for d in close(live[k], exact[k], f"{where}.{k}", str(k))]
    if isinstance(exact, list):
        assert isinstance(live, list) and len(live) == len(exact), where
        if key == "gen_tps_p50_ci95":  # order statistics at two ranks
            return [d for i, (a, b) in enumerate(zip(live, exact, strict=True)) for d in close(a, b, f"{where}[{i}]", "p50")]
        return [d for i, (a, b) in enumerate(zip(live, exact, strict=True)) for d in close(a, b, f"{where}[{i}]")]
    if key in PERCENTILES and isinstance(exact, float):
        ok = live is not None and abs(live - exact) <= ALPHA * abs(exact) + PERCENTILES[key]
    elif key == "mean" and isinstance(exact, float):
        ok = live is not None and math.isclose(live, exact, rel_tol=1e-9, abs_tol=1e-3)
    else:
        ok = live == exact
    return [] if ok else [f"{where}: live {live!r}, exact {exact!r}"]


@pytest.mark.unit
def test_live_figures_differ_from_the_report_only_within_the_sketch_bound(run_dir: Path) -> None:
    events = list(iter_events(run_dir / "events.jsonl"))
    exact = RunAggregate().feed_all(events).snapshot()
    live = RunAggregate(exact=False).feed_all(events).snapshot()
    assert close(live, exact, "snapshot") == []
    # the comparison is not empty: the live percentiles did come from sketches, and do differ
    m = next(iter(exact["models"]))
    assert exact["models"][m]["e2e_ms"]["n"] > EXACT_CAP
    assert live["models"][m]["e2e_ms"]["p50"] != exact["models"][m]["e2e_ms"]["p50"]


def _traced_growth(feed_one: Callable[[dict[str, Any]], None], first: int, then: int) -> float:
    """Bytes traced as grown between `first` and `first + then` streamed requests fed to `feed_one`."""
    t = 1.7e9

    def feed(n: int) -> None:
        nonlocal t
        for i in range(n):
            t += 0.001  # a thousand requests a second: as bench/memory.py drives the engine
            feed_one({"kind": "request", "t": t, "provider": "sim", "model": f"m{i % 2}",
                      "scenario": "streaming", "ok": True, "stream": True, "e2e_ms": 20 + i % 97,
                      "ttft_ms": 5 + i % 13 / 7, "itl_p50_ms": 1 + i % 11 / 10, "gen_tps": 40 + i % 23,
                      "prompt_tps": 300 + i % 31, "output_tokens": 8, "token_source": "usage",
                      "server_gen_tps": 41 + i % 19, "server_prompt_tps": 310 + i % 29})  # fmt: skip

    feed(first)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed(then)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.unit
def test_the_report_keeps_every_value() -> None:
    """What the live views save: the exact fold keeps 8 bytes a value, about 100 bytes a request here
    (and the measure below does see memory grow)."""
    assert _traced_growth(RunAggregate().feed, 2000, 10_000) > 10_000 * 50


@pytest.mark.unit
def test_the_summary_sinks_aggregate_does_not_grow_with_the_requests(tmp_path: Path) -> None:
    sink = SummarySink(tmp_path, interval_s=1e9)  # the engine keeps it for the whole run
    grown = _traced_growth(sink.aggregate.feed, 2000, 10_000)
    assert grown < 50_000, f"the summary sink grew by {grown:,} bytes over 10,000 requests"


@pytest.mark.unit
def test_the_viewers_folds_do_not_grow_with_the_requests(tmp_path: Path) -> None:
    from soaktui.ui.app import create_app

    app = create_app(tmp_path)  # not run: its follower thread would feed these two the same way

    def feed(ev: dict[str, Any]) -> None:
        app.aggregate.feed(ev)
        app.live.feed(ev)

    grown = _traced_growth(feed, 2000, 10_000)
    assert grown < 50_000, f"the viewer's folds grew by {grown:,} bytes over 10,000 requests"


@pytest.mark.e2e
def test_the_viewers_w_writes_the_exact_report(run_dir: Path) -> None:
    """The viewer folds in the bounded mode, but the files `w` writes are `soaktui report`'s."""
    from soaktui.ui.app import create_app
    from soaktui.ui.screens.report import ReportScreen

    async def main() -> None:
        app = create_app(run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(300):
                if app.loaded:
                    break
                await pilot.pause(0.05)
            await pilot.press("r")
            for _ in range(300):
                if isinstance(app.screen, ReportScreen) and app.screen.snap is not None:
                    break
                await pilot.pause(0.05)
            await pilot.press("w")
            for _ in range(300):
                if (run_dir / "report.json").exists():
                    break
                await pilot.pause(0.05)

    asyncio.run(main())
    written = orjson.loads((run_dir / "report.json").read_bytes())
    exact, _ = build_report(run_dir)
    for key, m in exact["models"].items():
        assert written["models"][key]["e2e_ms"] == m["e2e_ms"]
        assert written["models"][key]["ttft_ms"] == m["ttft_ms"]
    assert written["timeline"] == orjson.loads(orjson.dumps(exact["timeline"], option=orjson.OPT_NON_STR_KEYS))


def _pooled_mann_whitney(a: list[float], b: list[float]) -> float | None:
    """The textbook pooled ranking (the report's code before sketches), as the reference."""
    n1, n2 = len(a), len(b)
    if n1 < 5 or n2 < 5:
        return None
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    n = n1 + n2
    rank_sum_a = 0.0
    ties = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        size = j - i + 1
        ties += size**3 - size
        rank_sum_a += rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        i = j + 1
    u = rank_sum_a - n1 * (n1 + 1) / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return None
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30).map(float), max_size=60), st.lists(st.integers(0, 30).map(float), max_size=60))
def test_the_drift_test_over_exact_samples_is_the_pooled_ranking_bit_for_bit(a: list[float], b: list[float]) -> None:
    """mann_whitney now also ranks a sketch's bins (value, count); over exact samples it must give
    the very same p-value as before (small integers: many ties)."""
    assert mann_whitney(a, b) == _pooled_mann_whitney(a, b)
