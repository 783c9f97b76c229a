"""The verdict's logic on runs built to the point: clear picks, ties, caveats, too few trials."""

from __future__ import annotations

import math
from typing import Any

import pytest

from soaktui.report import fold, render_markdown
from soaktui.report.verdict import CAVEAT_SHARE, MAX_LINES

pytestmark = pytest.mark.unit

HOUR = 3600.0


def run(models: dict[str, tuple[int, int]], *, hours: float = 1.0, speeds: dict[str, list[float]] | None = None,
        checks: dict[str, tuple[int, int]] | None = None, failures: list[tuple[str, str, float]] = ()) -> dict[str, Any]:  # fmt: skip
    """A run's snapshot: per model (passed, tests) simple_inference tests spread over `hours`,
    streamed requests at `speeds` tokens/s, prompt_variety checks (passed, with checks), and
    failed requests (model, error class, time offset in s)."""
    events: list[dict[str, Any]] = [{"kind": "run_started", "t": 0.0, "run_id": "r"}]
    for m, (k, n) in models.items():
        for i in range(n):
            t = hours * HOUR * (i + 1) / (n + 1)
            events.append({"kind": "scenario_result", "t": t, "provider": "srv@h:1", "model": m,
                           "scenario": "simple_inference", "ok": i < k, "error_class": None if i < k else "check_failed"})  # fmt: skip
    for m, tps in (speeds or {}).items():
        for i, v in enumerate(tps):
            events.append({"kind": "request", "t": 10.0 + i, "provider": "srv@h:1", "model": m, "scenario": "streaming",
                           "stream": True, "ok": True, "gen_tps": v, "e2e_ms": 100.0})  # fmt: skip
    for m, (k, n) in (checks or {}).items():
        for i in range(n):
            events.append({"kind": "scenario_result", "t": 20.0 + i, "provider": "srv@h:1", "model": m,
                           "scenario": "prompt_variety", "ok": i < k, "error_class": None if i < k else "check_failed",
                           "metrics": {"checks": {"answer": i < k}}})  # fmt: skip
    for m, cls, t in failures:
        events.append({"kind": "request", "t": t, "provider": "srv@h:1", "model": m, "scenario": "streaming",
                       "stream": True, "ok": False, "error_class": cls, "error": cls})  # fmt: skip
    events.append(
        {"kind": "run_finished", "t": hours * HOUR, "elapsed_s": hours * HOUR, "reason": "duration"}
    )
    return fold(events).snapshot()


def pick(snap: dict[str, Any], use: str) -> dict[str, Any]:
    return next(p for p in snap["verdict"]["picks"] if p["use"] == use)


def test_a_clear_winner_is_named_with_its_counts_and_no_tie():
    s = run({"a": (98, 100), "b": (60, 100)})
    p = pick(s, "reliability")
    assert (p["model"], p["tied_with"], p["needs"], p["caveat"]) == ("srv@h:1/a", [], None, None)
    assert p["evidence"].startswith("98/100 tests passed (98%; 95% CI")
    assert s["verdict"]["lines"][0].startswith("- Most reliable: **a**, 98/100")


def test_overlapping_intervals_are_a_tie_with_the_time_to_separate_them():
    s = run({"a": (61, 100), "b": (60, 100)}, hours=2.0)
    p = pick(s, "reliability")
    assert p["model"] == "srv@h:1/a" and p["tied_with"] == ["srv@h:1/b"]
    # 61% vs 60%: about 1.96^2 (sqrt(.61*.39)+sqrt(.6*.4))^2 / 0.01^2 = 36,900 trials each, at 50 an
    # hour: far more than two days
    assert p["needs"] == "effectively tied: separating them would take more than two days at this pace"
    s = run({"a": (80, 100), "b": (68, 100)}, hours=1.0)
    p = pick(s, "reliability")
    assert p["tied_with"] == ["srv@h:1/b"]
    need = math.ceil((1.959963984540054 * (math.sqrt(0.8 * 0.2) + math.sqrt(0.68 * 0.32)) / 0.12) ** 2)
    assert f"(about {need} trials each)" in p["needs"] and p["needs"].startswith("run about ")
    assert "statistically tied with b" in s["verdict"]["lines"][0]


def test_too_few_trials_say_what_more_is_needed():
    s = run({"a": (3, 3), "b": (2, 2)}, hours=0.5)
    p = pick(s, "reliability")
    assert p["model"] is None and p["evidence"] == "insufficient data"
    # 3 tests in half an hour is 6 an hour: 2 more tests take 20 minutes
    assert p["needs"] == "needs 5 tests per model, most so far 3: run about 20 more minutes"


def test_no_pick_crowns_a_model_that_never_succeeded():
    p = pick(run({"a": (0, 40), "b": (0, 40)}), "reliability")
    assert p["model"] is None and p["evidence"] == "no model succeeded (0 tests passed in 80 tests)"


def test_a_fast_model_failing_its_checks_gets_a_caveat():
    s = run(
        {"fast": (40, 50), "slow": (50, 50)},
        speeds={"fast": [90.0 + i % 3 for i in range(30)], "slow": [30.0 + i % 3 for i in range(30)]},
        checks={"fast": (36, 100)},
    )
    p = pick(s, "speed")
    assert p["model"] == "srv@h:1/fast" and p["tied_with"] == []
    assert p["caveat"].endswith("; fails 64% of its prompt checks (64/100)")
    assert CAVEAT_SHARE < 0.64
    p = pick(s, "reliability")
    assert p["model"] == "srv@h:1/slow"


def test_speed_ties_use_the_interval_of_the_median():
    s = run(
        {"a": (5, 5), "b": (5, 5)},
        speeds={"a": [50.0 + i % 7 for i in range(40)], "b": [49.0 + i % 9 for i in range(40)]},
    )
    p = pick(s, "speed")
    assert p["model"] == "srv@h:1/a" and p["tied_with"] == ["srv@h:1/b"] and p["needs"]
    assert s["models"]["srv@h:1/a"]["gen_tps_p50_ci95"][0] <= s["models"]["srv@h:1/b"]["gen_tps_p50_ci95"][1]


def test_what_went_wrong_names_classes_with_their_times_and_the_verdict_stays_short():
    s = run(
        {"a": (9, 10)},
        failures=[("a", "stalled", 100.0), ("a", "stalled", 900.0), ("a", "read_timeout", 50.0)],
    )
    lines = s["verdict"]["lines"]
    assert len(lines) <= MAX_LINES
    assert lines[-1].startswith("- Went wrong: 2 stalled (")
    assert "1 read timeout (" in lines[-1]
    md = render_markdown(s)
    head = md.split("\n## Run")[0]
    assert head.startswith("# soaktui report: r\n\n## Verdict\n\n- Most reliable: **a**")
    assert "|" not in head.split("Model names are short")[0]  # no table before the verdict ends


def test_a_run_with_nothing_decided_says_so():
    s = run({})
    assert s["verdict"]["picks"] == [] and "No test finished" in render_markdown(s)
