"""Rotation, weighted choice and the duty cycle: seeded, statistical, and exact arithmetic."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest

from soaktui.engine.outages import Outages
from soaktui.engine.picker import ScenarioPicker
from soaktui.engine.rotation import Rotation
from soaktui.engine.throttle import Throttle, idle_seconds, in_window
from soaktui.providers.types import ModelInfo

pytestmark = pytest.mark.unit


def _models(n: int) -> list[ModelInfo]:
    return [ModelInfo(id=f"m{i}", provider="p") for i in range(n)]


def test_rotation_turn_lengths_stay_in_bounds_and_order_wraps():
    rot = Rotation(_models(3), random.Random(1), 5, 10)
    seen = [rot.current.id]
    lengths = []
    for _ in range(200):
        planned = rot.turn.planned_tests
        turn = None
        count = 0
        while turn is None:
            turn = rot.record_test()
            count += 1
        lengths.append(count)
        assert count == planned
        seen.append(turn.model.id)
    assert all(5 <= n <= 10 for n in lengths)
    assert set(lengths) == set(range(5, 11))  # every length in the range occurs
    assert seen[:7] == ["m0", "m1", "m2", "m0", "m1", "m2", "m0"]


def test_rotation_is_reproducible_under_a_seed():
    a = Rotation(_models(4), random.Random(42), 5, 10)
    b = Rotation(_models(4), random.Random(42), 5, 10)
    plan_a = [a.advance("rotation").planned_tests for _ in range(50)]
    plan_b = [b.advance("rotation").planned_tests for _ in range(50)]
    assert plan_a == plan_b


def test_skip_moves_on_at_once_and_is_remembered():
    rot = Rotation(_models(3), random.Random(3), 5, 10)
    rot.record_test()
    turn = rot.skip()
    assert turn.model.id == "m1" and turn.reason == "skip" and turn.done == 0
    assert rot.skipped == {"p/m0"}
    assert [m.id for m in rot.upcoming()] == ["m2", "m0"]


def test_single_model_rotation_has_no_upcoming():
    rot = Rotation(_models(1), random.Random(0), 1, 1)
    assert rot.upcoming() == []
    assert rot.record_test().model.id == "m0"


def test_weighted_choice_matches_weights_statistically():
    weights = {"a": 3.0, "b": 1.5, "c": 0.5, "off": 0.0}
    picker = ScenarioPicker(weights, random.Random(7))
    n = 50_000
    counts = Counter(picker.pick() for _ in range(n))
    assert "off" not in counts
    total = 5.0
    for name, w in [("a", 3.0), ("b", 1.5), ("c", 0.5)]:
        p = w / total
        sd = (p * (1 - p) / n) ** 0.5
        assert abs(counts[name] / n - p) < 5 * sd


def test_picker_rejects_all_zero_weights():
    with pytest.raises(ValueError):
        ScenarioPicker({"a": 0.0}, random.Random(0))


@pytest.mark.parametrize(
    ("work", "pct", "idle"),
    [(6.0, 100, 0.0), (6.0, 60, 4.0), (1.0, 50, 1.0), (2.0, 25, 6.0), (0.0, 10, 0.0), (1.0, 1, 99.0)],
)
def test_duty_cycle_idle(work, pct, idle):
    assert idle_seconds(work, pct) == pytest.approx(idle)
    if work and pct < 100:
        assert work / (work + idle_seconds(work, pct)) == pytest.approx(pct / 100)


@pytest.mark.parametrize(
    ("now", "inside"),
    [("21:59", False), ("22:00", True), ("23:30", True), ("00:00", True), ("05:59", True), ("06:00", False)],
)
def test_quiet_window_wraps_midnight(now, inside):
    h, m = map(int, now.split(":"))
    assert in_window(dt.time(h, m), (22, 0), (6, 0)) is inside


def test_daytime_window_and_empty_window():
    assert in_window(dt.time(12, 0), (9, 0), (17, 0))
    assert not in_window(dt.time(18, 0), (9, 0), (17, 0))
    assert not in_window(dt.time(9, 0), (9, 0), (9, 0))


def test_quiet_hours_lower_the_effective_duty_cycle_only_inside_the_window():
    now = {"t": dt.datetime(2026, 11, 28, 23, 0)}
    th = Throttle(pct=80, quiet_pct=30, clock=lambda: now["t"])
    assert th.effective() == 30
    th.quiet_enabled = False
    assert th.effective() == 80
    th.quiet_enabled = True
    now["t"] = dt.datetime(2026, 11, 28, 12, 0)
    assert th.effective() == 80
    th.pct = 20
    now["t"] = dt.datetime(2026, 11, 28, 23, 0)
    assert th.effective() == 20  # the user's setting stays the ceiling


def test_the_engine_says_why_its_pace_differs_from_the_throttle_set():
    from types import SimpleNamespace

    from soaktui.engine.runner import Engine

    def reason(
        hour: int, *, paused: bool = False, cap: int | None = None, pct: int = 80, down: bool = False
    ) -> str | None:
        throttle = Throttle(pct=pct, quiet_enabled=True, clock=lambda: dt.datetime(2026, 12, 7, hour, 0))
        guard = None if cap is None else SimpleNamespace(cap_pct=cap, reason="cpu 96.0°C > limit 90°C")
        outages = Outages(random.Random(1), clock=lambda: 100.0, wall=lambda: 0.0)
        if down:
            outages.observe({"provider": "lmstudio", "ok": False, "error_class": "connection_refused"})
            outages.test_done()
        rotation = SimpleNamespace(models=[SimpleNamespace(provider="lmstudio")])
        fake = SimpleNamespace(paused=paused, throttle=throttle, guard=guard, outages=outages, rotation=rotation)
        return Engine.pace_reason(fake)  # type: ignore[arg-type]

    assert reason(12) is None  # day: the throttle set is the pace
    assert reason(23) == "quiet hours until 06:00"
    assert reason(12, cap=50) == "thermal guard: cpu 96.0°C > limit 90°C"
    assert reason(23, cap=20) == "thermal guard: cpu 96.0°C > limit 90°C"  # the stricter cause first
    assert reason(23, paused=True) == "paused by command"
    assert reason(23, pct=20) is None  # quiet hours' 30% is above a throttle of 20%: no difference
    waiting = reason(12, down=True)  # every provider down: the engine waits for the next probe
    assert waiting is not None and waiting.startswith("waiting: lmstudio down since ")
    assert waiting.endswith(", next probe in 1s") or waiting.endswith(", next probe in 0s")
