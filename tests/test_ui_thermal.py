"""The dashboard's thermal pane and header: live hardware readings, short histories, "unavailable
(why)" instead of zeros, and the thermal guard's state.

The readings are telemetry-contract events (recorded shapes: hwmon temperatures, a fan header, RAPL
and NVML power, an NVIDIA GPU, the sampler's `unavailable` reasons) appended to the recorded run of
tests/data/ui; the viewer attaches to that log as `soaktui watch` does, with a stub control socket
answering like a running engine.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from soaktui.log.reader import read_all
from soaktui.ui.app import SoakApp, create_app
from soaktui.ui.state import CPU_POINTS, LiveState
from soaktui.ui.widgets.header import RunHeader
from soaktui.ui.widgets.thermal import ThermalPane
from tests.test_ui_snapshots import _deterministic, stub_engine  # noqa: F401 - fixtures: TZ=UTC, HOME, a stub engine

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
EVENTS, _ = read_all(RECORDED)
CUT = 100  # a run still going (no run_finished)
T = EVENTS[CUT - 1]["t"]
NO_SENSORS = {
    "temps": "no hwmon temperature sensor and no readable thermal zones",
    "fans": "no fan in /sys/class/hwmon",
    "power": "RAPL energy_uj is root-only here",
    "gpu": "no NVIDIA or AMD GPU",
    "thermal_pressure": "not macOS",
    "cpu_throttle": "no thermal_throttle counters in /sys/devices/system/cpu",
}


def telemetry(i: int, cpu_c: float | None = 71.0, **extra) -> dict:
    ev = {
        "v": 1,
        "kind": "telemetry",
        "run_id": "soak_recorded",
        "t": T + 0.1 + i,
        "mono_ns": 10**12 + i,
        "source": "psutil",
        "cpu_pct": 55.0,
        "cpu_per_core_pct": [50.0, 60.0],
        "cpu_freq_mhz": 3100.0,
        "mem_pct": 40.0,
        "mem_used_bytes": 10_000_000_000,
        "mem_total_bytes": 25_000_000_000,
        "load_avg": [1.5, 1.2, 1.0],
    }
    if cpu_c is not None:
        ev.update(
            temps=[
                {
                    "sensor": "coretemp/Package id 0",
                    "kind": "cpu",
                    "c": cpu_c,
                    "high_c": 100.0,
                    "source": "hwmon",
                },
                {"sensor": "nvml/gpu0", "kind": "gpu", "c": 64.0, "source": "nvml"},
            ],
            fans=[{"sensor": "nct6775/fan2", "rpm": 1900 + 10 * i, "source": "hwmon"}],
            power=[{"sensor": "cpu_package", "w": 35.0 + i, "source": "rapl"}],
            gpus=[
                {
                    "index": 0,
                    "name": "NVIDIA GeForce RTX 3090",
                    "util_pct": 97.0,
                    "mem_used_bytes": 20_100_000_000,
                    "mem_total_bytes": 25_769_803_776,
                    "temp_c": 64.0,
                    "power_w": 280.0,
                    "throttle_reasons": ["sw_power_cap"],
                    "source": "nvml",
                }
            ],
            cpu_temp_c=cpu_c,
            gpu_temp_c=64.0,
            power_w=315.0 + i,
            power_w_parts=["cpu_package", "gpu0"],
            fan_rpm=1900 + 10 * i,
            gpu_throttle_reasons=["sw_power_cap"],
            unavailable={"thermal_pressure": "not macOS"},
        )
    ev.update(extra)
    return ev


def guard_event(state: str, t: float, cap: int | None, duty: int, reason: str) -> dict:
    return {"v": 1, "kind": "thermal_guard", "run_id": "soak_recorded", "t": t, "mono_ns": 2 * 10**12,
            "state": state, "previous": "ok", "cap_pct": cap, "duty_pct": duty, "reason": reason,
            "reading": {"cpu_temp_c": 96.0}, "held_s": 12.0}  # fmt: skip


# -- the live state ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_live_state_keeps_short_histories_and_never_invents_a_reading():
    live = LiveState()
    for i in range(CPU_POINTS + 30):
        live.feed(telemetry(i, cpu_c=60.0 + i % 20))
    assert all(len(h) == CPU_POINTS for h in live.histories.values())  # bounded
    assert list(live.histories["cpu_temp_c"])[-3:] == [
        60.0 + (CPU_POINTS + 27) % 20,
        60.0 + (CPU_POINTS + 28) % 20,
        60.0 + (CPU_POINTS + 29) % 20,
    ]
    before = {k: len(h) for k, h in live.histories.items()}
    version = live.versions["telemetry"]
    live.feed(telemetry(999, cpu_c=None, unavailable=NO_SENSORS))  # the sensors went away
    assert {k: len(h) for k, h in live.histories.items()} == before  # nothing appended, no zero
    assert live.telemetry["unavailable"] == NO_SENSORS and "cpu_temp_c" not in live.telemetry
    assert live.versions["telemetry"] == version + 1


@pytest.mark.unit
def test_live_state_follows_the_guard():
    live = LiveState()
    header, pane = live.versions["header"], live.versions["telemetry"]
    live.feed(guard_event("reduced", 10.0, 50, 50, "cpu 96.0°C > limit 95°C"))
    assert live.thermal["state"] == "reduced" and live.thermal["duty_pct"] == 50
    assert (live.versions["header"], live.versions["telemetry"]) == (header + 1, pane + 1)
    live.feed(guard_event("ok", 40.0, None, 100, "back under the limits: cpu 80.0°C < 90°C"))
    assert live.thermal["state"] == "ok"


# -- the pane and the header in the viewer ---------------------------------------------------------------


def live_run(tmp_path: Path, extra: list[dict]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = RECORDED.read_bytes().splitlines(keepends=True)[:CUT]
    lines += [orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in extra]
    (run_dir / "events.jsonl").write_bytes(b"".join(lines))
    return run_dir


async def shown(run_dir: Path, size: tuple[int, int]) -> tuple[str, str]:
    app: SoakApp = create_app(run_dir, clock=lambda: T + 30)
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + 30
        while not (app.loaded and app.reachable and app.generation > 0):
            assert time.monotonic() < deadline, "the viewer never attached"
            await pilot.pause(0.02)
        await pilot.pause(0.3)
        pane = app.screen.query_one(ThermalPane)
        return pane.content.plain, app.screen.query_one(RunHeader).text


def test_pane_shows_readings_histories_and_the_guard(tmp_path, stub_engine):  # noqa: F811
    events = [telemetry(i, cpu_c=70.0 + i) for i in range(8)]
    events.append(guard_event("reduced", T + 9, 50, 50, "cpu 96.0°C > limit 95°C"))
    run_dir = live_run(tmp_path, events)
    stub_engine(run_dir)
    pane, header = asyncio.run(shown(run_dir, (120, 40)))
    assert "HOT: duty 50%" in header
    assert "guard    HOT: duty 50% cpu 96.0°C >\n         limit 95°C" in pane  # the reason wraps
    assert "CPU      55% 3.1 GHz" in pane
    # fixed scales: temperatures 20-100 °C, fans and power from 0, so a steady machine reads steady
    assert "cpu temp 77°C ▅▅▆▆▆▆▆▆" in pane  # 70..77 °C, the newest last
    assert "gpu temp 64°C ▅▅▅▅▅▅▅▅" in pane
    assert "fans     1,970 rpm ████████" in pane  # 1,900..1,970 rpm
    assert "power    322.0 W ████████" in pane
    assert "GPU      97% 20.1 GB of 25.8 GB sw_" in pane
    assert "pressure unavailable (not macOS)" in pane


def test_pane_says_why_readings_are_unavailable_never_zero(tmp_path, stub_engine):  # noqa: F811
    run_dir = live_run(tmp_path, [telemetry(0, cpu_c=None, unavailable=NO_SENSORS)])
    stub_engine(run_dir)
    pane, header = asyncio.run(shown(run_dir, (120, 40)))
    assert "HOT" not in header
    flat = " ".join(" ".join(part.split()) for part in pane.splitlines())  # reasons wrap under the label
    for label, family in (("GPU", "gpu"), ("temps", "temps"), ("fans", "fans"), ("power", "power")):
        assert f"{label} unavailable ({NO_SENSORS[family]})" in flat, label
    assert "pressure unavailable (not macOS)" in flat
    assert "°C" not in pane and "rpm" not in pane and " W" not in pane
    # a short pane folds the unavailable readings into one line and keeps the live ones
    small, _ = asyncio.run(shown(run_dir, (80, 24)))
    assert "unavailable: GPU, temps, fans, power, pressure" in small.replace("\n", " ").replace("…", "")
    assert "CPU      55%" in small


def test_report_screen_has_the_hardware_tables(tmp_path):
    from textual.widgets import DataTable

    from soaktui.ui.screens.report import ReportScreen
    from tests.test_hardware_report import T0, hot_run

    run_dir = hot_run().write(tmp_path / "run")

    async def rows() -> dict[str, list[list[str]]]:
        app = create_app(run_dir, clock=lambda: T0 + 3600)
        app.animation_level = "none"
        async with app.run_test(size=(140, 50)) as pilot:
            deadline = time.monotonic() + 30
            while not (app.loaded and app.generation > 0):
                assert time.monotonic() < deadline
                await pilot.pause(0.02)
            await pilot.press("r")
            while not (isinstance(app.screen, ReportScreen) and app.screen.snap is not None):
                assert time.monotonic() < deadline
                await pilot.pause(0.02)
            out = {}
            for table_id in ("hardware", "energy"):
                table = app.screen.query_one(f"#{table_id}", DataTable)
                out[table_id] = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            return out

    got = asyncio.run(rows())
    assert ["thermal pressure (macOS)", "unavailable (not macOS)"] in got["hardware"]
    assert ["CPU temperature °C", "peak 95.0, p95 95.0, limit 90, over it 1m 40s of 10m 00s"] in got[
        "hardware"
    ]
    assert ["thermal guard", "on: reduced 1x (2m 20s), paused 0x (0s)"] in got["hardware"]
    assert ["lmstudio/sim-0", "12.500", "7,500", "6.000", "300.0", "75/75"] in got["energy"]
