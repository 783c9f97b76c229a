"""Time as an axis: buckets sized to the run, and the first-hour vs last-hour test that flags a model
that degraded overnight (report/folds/timeline.py)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from soaktui.report import fold, render_markdown
from soaktui.report.folds.timeline import mann_whitney, two_proportions

pytestmark = pytest.mark.unit

HOUR = 3600.0
SRV = "srv@h:1"


def night(hours: float, tps_of, *, fail_of=lambda t: False, stall_of=lambda t: False, every_s: float = 30.0,
          model: str = "m", seed: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """A request every `every_s` seconds for `hours`; tokens/s, failure and stall as functions of time."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = [{"kind": "run_started", "t": 0.0, "run_id": "n"}]
    t = every_s
    while t < hours * HOUR:
        ok = not fail_of(t)
        ev = {"kind": "request", "t": t, "provider": SRV, "model": model, "scenario": "streaming", "stream": True,
              "ok": ok, "stalled": stall_of(t)}  # fmt: skip
        if ok:
            ev.update(
                gen_tps=tps_of(t) * rng.uniform(0.95, 1.05),
                ttft_ms=200.0 * rng.uniform(0.9, 1.1),
                e2e_ms=900.0,
            )
        else:
            ev.update(error_class="read_timeout", error="server sent nothing for 120 s")
        events.append(ev)
        t += every_s
    events.append(
        {"kind": "run_finished", "t": hours * HOUR, "elapsed_s": hours * HOUR, "reason": "duration"}
    )
    return events


def test_the_tests_give_the_textbook_values():
    # U = 0 for 5 vs 5 fully separated: normal approximation with continuity, p = erfc(12 / sqrt(22.92) / sqrt 2)
    assert mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(
        math.erfc(12 / math.sqrt(5 * 5 * 11 / 12) / math.sqrt(2))
    )
    assert mann_whitney([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    assert mann_whitney([1, 2], [3, 4, 5, 6, 7]) is None  # too few
    z = 0.2 / math.sqrt(0.2 * 0.8 * (2 / 100))
    assert two_proportions(10, 100, 30, 100) == pytest.approx(math.erfc(z / math.sqrt(2)))


def test_an_eight_hour_night_in_ten_minute_buckets_counting_every_request():
    snap = fold(night(8, lambda t: 40.0)).snapshot()
    tl = snap["timeline"]
    assert tl["bucket_s"] == 600 and len(tl["models"][f"{SRV}/m"]) == 48
    buckets = tl["models"][f"{SRV}/m"]
    assert sum(b["requests_ok"] + b["requests_failed"] for b in buckets) == snap["totals"]["requests"]
    assert all(b["gen_tps_p50"] == pytest.approx(40.0, rel=0.06) for b in buckets)
    assert tl["drift"][f"{SRV}/m"]["degraded"] is False


def test_a_model_that_slows_down_overnight_is_flagged_with_its_evidence():
    events = night(4, lambda t: 50.0 if t < 2 * HOUR else 38.0)
    snap = fold(events).snapshot()
    d = snap["timeline"]["drift"][f"{SRV}/m"]
    g = d["gen_tps"]
    assert d["compared"] and d["degraded"] and g["degraded"]
    assert g["first"] == pytest.approx(50.0, rel=0.03) and g["last"] == pytest.approx(38.0, rel=0.03)
    assert g["change"] == pytest.approx(-0.24, abs=0.03) and g["p"] < 1e-6
    assert (g["n_first"], g["n_last"]) == (119, 120)  # a request every 30 s: whole minutes of each hour
    line = next(x for x in snap["verdict"]["lines"] if x.startswith("- Degraded over the run"))
    assert "m: tokens/s 4" in line and "(-24%, p<0.001), first hour vs last" in line
    md = render_markdown(snap)
    assert "## Over time" in md and "**degraded**" in md


def test_errors_that_start_late_are_a_degradation_and_are_seen_with_their_times():
    events = night(3, lambda t: 40.0, fail_of=lambda t: t > 2 * HOUR and int(t / 30) % 4 == 0)
    snap = fold(events).snapshot()
    e = snap["timeline"]["drift"][f"{SRV}/m"]["error_rate"]
    assert e["first"] == 0 and e["last"] == pytest.approx(0.25, abs=0.02) and e["degraded"]
    (t0, t1) = snap["models"][f"{SRV}/m"]["error_spans"]["read_timeout"]
    assert 2 * HOUR < t0 < t1 < 3 * HOUR


def test_a_steady_model_is_not_flagged_and_a_short_run_is_not_compared():
    steady = fold(night(3, lambda t: 40.0, seed=7)).snapshot()["timeline"]["drift"][f"{SRV}/m"]
    assert steady["compared"] and not steady["degraded"] and steady["gen_tps"]["p"] > 0.01
    short = fold(night(1.5, lambda t: 40.0)).snapshot()["timeline"]["drift"][f"{SRV}/m"]
    assert not short["compared"] and "shorter than two hours" in short["why"]
