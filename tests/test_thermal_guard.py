"""The thermal guard: its decisions under a fake clock and scripted temperature curves, and the
engine applying them in real runs against the built-in simulator.

Readings here are telemetry-contract dicts (the summary keys the sampler adds: cpu_temp_c,
gpu_temp_c, thermal_pressure, gpu_throttle_reasons); in the engine runs they come from a real
TelemetrySampler whose only source is a scripted temperature curve.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from soaktui.config import Thermal, load_settings
from soaktui.engine.launch import find_models
from soaktui.engine.runner import Engine
from soaktui.engine.thermal_guard import ThermalGuard
from soaktui.engine.throttle import Throttle
from soaktui.log.events import EventBus
from soaktui.log.reader import iter_events
from soaktui.log.writer import JsonlWriter
from soaktui.providers.client import ChatClient
from soaktui.report.build import build_report
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.telemetry.sampler import Source, TelemetrySampler
from soaktui.thermal import OK, PAUSED, REDUCED, judge

pytestmark = pytest.mark.unit

LIMITS = Thermal(
    cpu_temp_limit_c=90.0,
    gpu_temp_limit_c=80.0,
    pause_margin_c=5.0,
    hysteresis_c=5.0,
    pressure_limit="heavy",
    reduce_to_pct=50,
    min_hold_s=30.0,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def play(guard: ThermalGuard, clock: FakeClock, curve: list[tuple[float, dict | None]]) -> list[tuple]:
    """Feed (seconds from now, reading) pairs; return (time, state, cap) of every change."""
    start = clock.t
    changes = []
    for at, reading in curve:
        clock.t = start + at
        change = guard.update(reading)
        if change is not None:
            changes.append((at, change.state, change.cap_pct))
    return changes


def cpu(c: float) -> dict:
    return {"source": "psutil", "cpu_pct": 80.0, "cpu_temp_c": c}


def test_rise_hold_and_hysteresis():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)
    changes = play(
        guard,
        clock,
        [
            (0, cpu(70.0)),
            (5, cpu(89.9)),  # under the limit: nothing
            (10, cpu(91.0)),  # over: reduced at once
            (15, cpu(93.0)),  # still over (below the pause point 95): no new change
            (20, cpu(88.0)),  # under the limit but inside the hysteresis band (85..90)
            (25, cpu(84.0)),  # under limit - hysteresis, but the state is only 15 s old
            (39, cpu(84.5)),  # 29 s: still held
            (41, cpu(84.0)),  # 31 s: back to ok
        ],
    )
    assert changes == [(10, REDUCED, 50), (41, OK, None)]
    assert guard.state == OK and guard.cap_pct is None


def test_far_over_pauses_and_waits_for_limit_minus_hysteresis():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)
    changes = play(
        guard,
        clock,
        [
            (0, cpu(91.0)),  # reduced
            (3, cpu(95.0)),  # limit + margin: paused (stepping up needs no hold)
            (40, cpu(92.0)),  # over the limit, under the pause point: still paused
            (60, cpu(87.0)),  # in the band: still paused
            (80, cpu(84.9)),  # under 85: straight back to ok
        ],
    )
    assert changes == [(0, REDUCED, 50), (3, PAUSED, 0), (80, OK, None)]


def test_a_reading_straight_past_the_pause_point_pauses_from_ok():
    guard = ThermalGuard(LIMITS, FakeClock())
    change = guard.update({"gpu_temp_c": 86.0, "cpu_temp_c": 60.0})
    assert change is not None and change.state == PAUSED and change.previous == OK
    assert "gpu 86.0°C >= 85°C" in change.reason
    assert change.reading == {"gpu_temp_c": 86.0, "cpu_temp_c": 60.0}


def test_flapping_around_the_limit_is_suppressed():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)
    # a sensor that dithers across the limit every second for ten minutes
    wobble = [(s, cpu(90.6 if s % 2 else 89.4)) for s in range(600)]
    assert play(guard, clock, wobble) == [(1, REDUCED, 50)]  # 89.4 never clears the band
    # now it swings well past both edges every 5 s: each state must last min_hold_s
    clock2 = FakeClock()
    guard2 = ThermalGuard(LIMITS, clock2)
    swing = [(s, cpu(92.0 if (s // 5) % 2 else 80.0)) for s in range(600)]
    changes = play(guard2, clock2, swing)
    reduced_at = [t for t, state, _ in changes if state == REDUCED]
    ok_at = [t for t, state, _ in changes if state == OK]
    assert reduced_at and ok_at
    assert all(o - r >= LIMITS.min_hold_s for r, o in zip(reduced_at, ok_at, strict=False))
    assert len(changes) <= 2 * (600 // LIMITS.min_hold_s) + 1  # at most one round trip per hold


def test_missing_readings_decide_nothing():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)
    for nothing in (
        None,
        {},
        {"source": "psutil", "cpu_pct": 99.0},
        {"cpu_temp_c": None},
        {"cpu_temp_c": "hot"},
    ):
        assert guard.update(nothing) is None
    assert guard.state == OK
    assert guard.update(cpu(92.0)).state == REDUCED
    clock.t += 600
    # the CPU sensor vanished and the GPU is cool: the cause is unknown, so the guard holds
    assert guard.update({"gpu_temp_c": 40.0}) is None
    assert guard.update({"unavailable": {"temps": "no hwmon"}}) is None
    assert guard.state == REDUCED
    assert guard.update({"gpu_temp_c": 40.0, "cpu_temp_c": 70.0}).state == OK


def test_thermal_pressure_levels():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)

    def pressure(level: str) -> dict:
        return {"thermal_pressure": level, "thermal_pressure_source": "notifyutil"}

    changes = play(
        guard,
        clock,
        [
            (0, pressure("nominal")),
            (1, pressure("moderate")),  # under the limit (heavy)
            (2, pressure("heavy")),  # at the limit: reduced
            (3, pressure("trapping")),  # critical: paused
            (10, pressure("moderate")),  # below the limit but held
            (40, pressure("moderate")),  # held 37 s: ok
            (41, pressure("Serious")),  # ProcessInfo's name for heavy
            (42, pressure("sleeping")),
            (43, pressure("no idea")),  # not a level: no decision
        ],
    )
    assert changes == [(2, REDUCED, 50), (3, PAUSED, 0), (40, OK, None), (41, REDUCED, 50), (42, PAUSED, 0)]
    ignored = ThermalGuard(Thermal(pressure_limit="off"), FakeClock())
    assert ignored.update(pressure("trapping")) is None


def test_gpu_throttle_reasons_count_only_when_thermal():
    clock = FakeClock()
    guard = ThermalGuard(LIMITS, clock)
    power_capped = {"gpu_temp_c": 70.0, "gpu_throttle_reasons": ["sw_power_cap"]}
    assert guard.update(power_capped) is None
    change = guard.update(
        {"gpu_temp_c": 72.0, "gpu_throttle_reasons": ["sw_power_cap", "sw_thermal_slowdown"]}
    )
    assert change.state == REDUCED and change.reason == "gpu throttled: sw_thermal_slowdown"
    clock.t += 31
    back = guard.update({"gpu_temp_c": 70.0, "gpu_throttle_reasons": []})
    assert back.state == OK
    blind = ThermalGuard(Thermal(gpu_throttle_reasons=()), FakeClock())
    assert blind.update({"gpu_throttle_reasons": ["hw_thermal_slowdown"]}) is None


# -- the engine applies the guard ---------------------------------------------------------------------


class Curve:
    """A scripted CPU temperature, as a sampler source: [(seconds since `start`, °C)].

    `start` is the first reading, or (with `on_test_after_s`) the first reading that sees a test
    newly in flight at least that many seconds in (reading `before` until then), so a curve can turn
    hot in the middle of a test.
    """

    def __init__(
        self, points: list[tuple[float, float]], on_test_after_s: float | None = None, before: float = 70.0
    ) -> None:
        self.points = points
        self.before = before
        self.on_test_after_s = on_test_after_s
        self.engine: Engine | None = None
        self.t0: float | None = None
        self.start: float | None = None
        self._seen_task: object = None

    def read(self) -> dict:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        if self.start is None:
            if self.on_test_after_s is None:
                self.start = now
            else:
                task = self.engine._test_task if self.engine is not None else None
                if task is not None and task is not self._seen_task:
                    self._seen_task = task
                    if now - self.t0 >= self.on_test_after_s:
                        self.start = now
        if self.start is None:  # still waiting for a test
            c = self.before
        else:
            c = [v for at, v in self.points if now - self.start >= at][-1]
        return {"temps": [{"sensor": "coretemp/Package id 0", "kind": "cpu", "c": c, "source": "hwmon"}]}


def run_engine(run_dir: Path, base_url: str, curve: Curve, **overrides: str) -> list[dict]:
    o = {
        "quiet_hours.enabled": False,
        "base_urls": base_url,
        "seed": "3",
        "duration": "8s",
        "scenarios": "simple_inference,streaming",
        "thresholds.simple_min_tokens": "40",
        "thresholds.simple_max_tokens": "120",
        "thresholds.stream_max_tokens": "80",
        "output.status_interval": "1s",
        "output.telemetry_interval": "1s",
        "timeouts.grace": "2",
        "thermal.cpu_temp_limit_c": "90",
        "thermal.min_hold_s": "1s",
        **overrides,
    }
    settings = load_settings(None, {}, o)

    async def main() -> None:
        selection = await find_models(settings, [base_url], probe_defaults=False)
        run_dir.mkdir()
        bus = EventBus("soak_thermal")
        bus.add_sink(JsonlWriter(run_dir / "events.jsonl", fsync_interval_s=1.0))
        bus.emit("run_started", settings=settings.to_dict(), throttle_pct=settings.throttle)  # as launch does
        clients = {p.name: ChatClient(p.base_url) for p in selection.providers}
        sampler = TelemetrySampler(interval_s=0.1, sources=[Source("scripted", curve.read, ("temps",))])
        engine = Engine(
            bus,
            selection.providers,
            selection.selected[:1],
            clients,
            Throttle(pct=settings.throttle, quiet_enabled=False),
            settings,
            settings.enabled_weights,
            sampler=sampler,
        )
        curve.engine = engine
        try:
            await engine.run()
        finally:
            bus.close()
            for c in clients.values():
                await c.aclose()

    asyncio.run(main())
    return list(iter_events(run_dir / "events.jsonl"))


@pytest.fixture
def sim():
    with run_in_thread(SimConfig(flavor="lmstudio", seed=4, speed=20.0)) as handle:
        yield handle


@pytest.mark.integration
@pytest.mark.slow
def test_engine_reduces_its_pace_over_the_limit_and_returns(sim, tmp_path):
    events = run_engine(tmp_path / "run", sim.base_url, Curve([(0, 70.0), (2.0, 93.0), (5.0, 70.0)]))
    guard = [e for e in events if e["kind"] == "thermal_guard"]
    assert [(e["state"], e["cap_pct"], e["duty_pct"]) for e in guard] == [
        ("reduced", 50, 50),
        ("ok", None, 100),
    ]
    assert guard[0]["reading"] == {"cpu_temp_c": 93.0} and "cpu 93.0°C > limit 90°C" in guard[0]["reason"]
    assert guard[1]["held_s"] >= 1.0
    telemetry = [e for e in events if e["kind"] == "telemetry"]
    assert any(e.get("cpu_temp_c") == 93.0 for e in telemetry)  # the same curve is in the log
    results = [e for e in events if e["kind"] == "scenario_result"]
    t_reduced, t_ok = guard[0]["t"], guard[1]["t"]
    idle_ratios = {"reduced": [], "ok": []}
    for a, b in zip(results, results[1:], strict=False):
        work = a["duration_ms"] / 1000
        next_start = b["t"] - b["duration_ms"] / 1000
        if t_reduced < a["t"] and next_start < t_ok:
            idle_ratios["reduced"].append((next_start - a["t"]) / work)
        elif a["t"] > t_ok or next_start < t_reduced:
            idle_ratios["ok"].append((next_start - a["t"]) / work)
    # at a 50% cap each test is followed by as long an idle; at 100% by (almost) none
    assert idle_ratios["reduced"] and all(r >= 0.9 for r in idle_ratios["reduced"]), idle_ratios
    assert idle_ratios["ok"] and all(r < 0.5 for r in idle_ratios["ok"]), idle_ratios
    status = [e for e in events if e["kind"] == "status"]
    assert {e["thermal_state"] for e in status} <= {"ok", "reduced"} and all(
        "thermal_cap_pct" in e for e in status
    )
    # while reduced, every status says why the pace is not the throttle set; otherwise it says nothing
    for e in status:
        if e["thermal_state"] == "reduced":
            assert e["pace_reason"].startswith("thermal guard: cpu 93.0°C > limit 90°C"), e
        else:
            assert e["pace_reason"] is None, e
    hw = build_report(tmp_path / "run")[0]["hardware"]  # the report tells the same story
    assert hw["guard"]["intervened"] and hw["guard"]["entries"]["reduced"] == 1
    assert hw["temperatures"]["cpu"]["peak"] == 93.0 and hw["temperatures"]["cpu"]["time_over_s"] > 0
    assert hw["guard"]["duty_pct"]["reduced"] < hw["guard"]["duty_pct"]["ok"]


def idle_ratios(events: list[dict], start: float, end: float) -> list[float]:
    """idle after a test / the test's duration, for tests that ended and were followed in [start, end]."""
    results = [e for e in events if e["kind"] == "scenario_result"]
    out = []
    for a, b in zip(results, results[1:], strict=False):
        next_start = b["t"] - b["duration_ms"] / 1000
        if start < a["t"] and next_start < end:
            out.append((next_start - a["t"]) / (a["duration_ms"] / 1000))
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_the_users_throttle_stays_the_ceiling(sim, tmp_path):
    curve = Curve([(0, 70.0), (1.5, 92.0), (4.0, 70.0)])
    events = run_engine(tmp_path / "run", sim.base_url, curve, throttle="40")
    guard = [e for e in events if e["kind"] == "thermal_guard"]
    # 40% is below the guard's 50% cap: the duty stays 40%, so each idle is 1.5x the test before it
    assert [(e["state"], e["cap_pct"], e["duty_pct"]) for e in guard] == [
        ("reduced", 50, 40),
        ("ok", None, 40),
    ]
    during = idle_ratios(events, guard[0]["t"], guard[1]["t"])
    assert during and all(r >= 1.4 for r in during), during


@pytest.fixture
def slow_sim():
    with run_in_thread(SimConfig(flavor="lmstudio", seed=5, speed=1.0)) as handle:
        yield handle


@pytest.mark.integration
@pytest.mark.slow
def test_engine_pauses_without_cancelling_the_test_in_flight(slow_sim, tmp_path):
    # 70 °C, then 96 °C (limit 90 + margin 5) from just after a test starts, for 2 s
    curve = Curve([(0, 96.0), (2.0, 70.0)], on_test_after_s=1.0)
    events = run_engine(tmp_path / "run", slow_sim.base_url, curve, scenarios="streaming", duration="7s")
    guard = [e for e in events if e["kind"] == "thermal_guard"]
    assert [(e["state"], e["cap_pct"], e["duty_pct"]) for e in guard] == [("paused", 0, 0), ("ok", None, 100)]
    t_paused, t_ok = guard[0]["t"], guard[1]["t"]
    results = [e for e in events if e["kind"] == "scenario_result"]
    starts = [r["t"] - r["duration_ms"] / 1000 for r in results]
    in_flight = [r for r, s in zip(results, starts, strict=True) if s < t_paused < r["t"]]
    assert len(in_flight) == 1 and in_flight[0]["ok"] is True  # left to finish, not cancelled
    assert not [s for s in starts if t_paused < s < t_ok], "a test started while paused"
    assert any(s > t_ok for s in starts), "testing resumed"
    assert not any(e["kind"] == "paused" for e in events)  # the user's pause is a different thing


@pytest.mark.integration
@pytest.mark.slow
def test_guard_off_never_decides(sim, tmp_path):
    events = run_engine(
        tmp_path / "run", sim.base_url, Curve([(0, 99.0)]), duration="3s", **{"thermal.enabled": "false"}
    )
    assert not [e for e in events if e["kind"] == "thermal_guard"]
    assert {e["thermal_state"] for e in events if e["kind"] == "status"} == {"off"}


def test_guard_changes_reach_the_text_logs_and_the_headless_output(tmp_path):
    import io

    from soaktui.sinks.console import ProgressPrinter
    from soaktui.sinks.textlogs import TextLogSink

    e = {
        "v": 1, "kind": "thermal_guard", "run_id": "r", "seq": 9, "t": 1_767_225_600.0, "mono_ns": 1,
        "state": "reduced", "previous": "ok", "cap_pct": 50, "duty_pct": 50,
        "reason": "cpu 93.0°C > limit 90°C", "reading": {"cpu_temp_c": 93.0},
    }  # fmt: skip
    sink = TextLogSink(tmp_path)
    sink.handle(e)
    sink.close()
    text = (tmp_path / "integration_events.log").read_text()
    assert "state=reduced" in text and "cap_pct=50" in text and "cpu 93.0°C > limit 90°C" in text
    out = io.StringIO()
    ProgressPrinter(out).handle(e)
    clock = time.strftime("%H:%M:%S", time.localtime(e["t"]))  # when the guard decided, not when printed
    assert out.getvalue() == f"{clock} thermal guard: ok -> reduced (cpu 93.0°C > limit 90°C, duty capped at 50%)\n"


def test_judge_without_explanations_gives_the_same_verdicts():
    limits = Thermal()
    for tenth in range(500, 1100):
        reading = {"cpu_temp_c": tenth / 10, "gpu_temp_c": (tenth - 100) / 10}
        full = judge(reading, limits)
        quick = judge(reading, limits, explain=False)
        assert {f: v for f, (v, _) in full.items()} == {f: v for f, (v, _) in quick.items()}
        assert all(why for _, why in full.values()) and not any(why for _, why in quick.values())
