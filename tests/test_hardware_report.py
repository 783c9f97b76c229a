"""The report's hardware section, rebuilt from an events.jsonl like any report.

Telemetry events follow the telemetry contract (recorded shapes: hwmon, RAPL and NVML readings,
the sampler's `unavailable` reasons as this test machine gives them). Each figure is checked
against the value worked out by hand from the events, and a log with no sensor at all must say
what was unavailable and why, never 0.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from soaktui.config import Settings, Thermal
from soaktui.report.aggregate import RunAggregate
from soaktui.report.build import build_report, write_report_files
from soaktui.report.folds import hardware
from soaktui.report.folds.hardware import BUCKETS, FIXED, HIST_KEYS, HardwareFold, Timeline, _Hist
from soaktui.thermal import judge

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
# What the sampler reported on the machine these tests were written on (no sensors at all).
NO_SENSORS = {
    "temps": "no /sys/class/hwmon devices and no readable thermal zones",
    "fans": "no /sys/class/hwmon devices",
    "gpu": "no AMD GPU (no amdgpu device in /sys/class/hwmon); no NVIDIA driver (nvidia-ml-py not "
    "installed or NVML init failed): NVML Shared Library Not Found",
    "cpu_throttle": "no thermal_throttle counters in /sys/devices/system/cpu",
    "power": "no RAPL powercap zones in /sys/class/powercap",
    "thermal_pressure": "not macOS",
    "servers": "no providers",
}


class Log:
    """Builds a run's events in order, with the bus's common fields."""

    def __init__(self, thermal: Thermal | None = None) -> None:
        self.events: list[dict] = []
        settings = Settings().to_dict()
        if thermal is not None:
            settings["thermal"] = {**settings["thermal"], **thermal.__dict__}
            settings["thermal"]["gpu_throttle_reasons"] = list(thermal.gpu_throttle_reasons)
        self.add("run_started", T0, settings=settings, throttle_pct=100, duration_s=None)

    def add(self, kind: str, t: float, **fields) -> dict:
        ev = {"v": 1, "kind": kind, "run_id": "soak_hw", "seq": len(self.events) + 1, "t": t,
              "mono_ns": int((t - T0) * 1e9), **fields}  # fmt: skip
        self.events.append(ev)
        return ev

    def write(self, run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "events.jsonl").write_bytes(
            b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in self.events)
        )
        return run_dir


def reading(cpu_c: float, gpu_c: float, watts: float, rpm: int, reasons: list[str], core_events: int) -> dict:
    return {
        "source": "psutil",
        "cpu_pct": 63.0,
        "temps": [
            {
                "sensor": "coretemp/Package id 0",
                "kind": "cpu",
                "c": cpu_c,
                "high_c": 100.0,
                "crit_c": 100.0,
                "source": "hwmon",
            },
            {"sensor": "nvml/gpu0", "kind": "gpu", "c": gpu_c, "source": "nvml"},
        ],  # fmt: skip
        "fans": [{"sensor": "nct6798/fan2", "rpm": rpm, "source": "hwmon"}],
        "power": [{"sensor": "cpu_package", "w": watts - 200.0, "source": "rapl"}],
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA GeForce RTX 3090",
                "temp_c": gpu_c,
                "power_w": 200.0,
                "throttle_reasons": reasons,
                "source": "nvml",
            }
        ],  # fmt: skip
        "cpu_throttle": {"core_events": core_events, "package_events": 7, "source": "sysfs thermal_throttle"},
        "cpu_temp_c": cpu_c,
        "gpu_temp_c": gpu_c,
        "power_w": watts,
        "power_w_parts": ["cpu_package", "gpu0"],
        "fan_rpm": rpm,
        "gpu_throttle_reasons": reasons,
        "unavailable": {"thermal_pressure": "not macOS"},
    }


def hot_run() -> Log:
    """Ten minutes at 2 s readings: CPU 80 °C, over the 90 °C limit from 200 s to 300 s (95 °C),
    a counter reset at 400 s, 300 W throughout; tests of 2 s every 4 s (a 50% duty), 100 output
    tokens each, alternating two models; the guard reduces at 200 s and returns at 340 s."""
    log = Log(Thermal(cpu_temp_limit_c=90.0, gpu_temp_limit_c=85.0, min_hold_s=30.0))
    test_id = 0
    for i in range(301):
        t = T0 + 2 * i
        cpu = 95.0 if 200 <= 2 * i < 300 else 80.0
        reasons = ["sw_thermal_slowdown"] if 2 * i < 20 else ["sw_power_cap"]
        core_events = 10 + i if 2 * i < 400 else i - 200  # the counter restarted (a reboot of the module)
        log.add("telemetry", t, **reading(cpu, 60.0, 300.0, 1500 + i, reasons, core_events))
        if 2 * i == 200:
            log.add("thermal_guard", t, state="reduced", previous="ok", cap_pct=50, duty_pct=50,
                    reason="cpu 95.0°C > limit 90°C", reading={"cpu_temp_c": 95.0}, held_s=200.0)  # fmt: skip
        if 2 * i == 340:
            log.add("thermal_guard", t, state="ok", previous="reduced", cap_pct=None, duty_pct=100,
                    reason="back under the limits: cpu 80.0°C < 85°C", reading={"cpu_temp_c": 80.0}, held_s=140.0)  # fmt: skip
        if i % 2 == 1 and 2 * i < 600:  # a test in [t + 0.5, t + 2.5]
            test_id += 1
            model = f"sim-{test_id % 2}"
            log.add("request", t + 2.4, test_id=test_id, provider="lmstudio", model=model, scenario="streaming",
                    stream=True, ok=True, output_tokens=100, gen_tps=50.0, e2e_ms=1900.0, token_source="usage")  # fmt: skip
            log.add("scenario_result", t + 2.5, test_id=test_id, provider="lmstudio", model=model,
                    key=f"lmstudio/{model}", scenario="streaming", ok=True, duration_ms=2000.0, requests=1)  # fmt: skip
    return log


def test_hardware_section_figures_from_the_events(tmp_path):
    run_dir = hot_run().write(tmp_path / "run")
    snap, _ = build_report(run_dir)
    hw = snap["hardware"]
    assert hw["readings"] == 301 and hw["mean_interval_s"] == 2.0
    assert hw["families"]["temps"]["sources"] == ["hwmon", "nvml"]
    assert hw["families"]["power"]["sources"] == ["cpu_package (rapl)", "NVIDIA GeForce RTX 3090 (nvml)"]
    assert hw["families"]["thermal_pressure"] == {"readings": 0, "sources": [], "unavailable": "not macOS"}
    cpu = hw["temperatures"]["cpu"]
    # 50 of 301 readings at 95 °C: the p95 (nearest rank 286) is 95; over the limit 200 s..300 s
    assert (cpu["peak"], cpu["p95"], cpu["mean"], cpu["limit_c"]) == (
        95.0,
        95.0,
        round(80 + 15 * 50 / 301, 1),
        90.0,
    )
    assert cpu["time_over_s"] == 100.0 and cpu["time_known_s"] == 600.0
    assert hw["temperatures"]["gpu"]["time_over_s"] == 0.0
    assert hw["fan_rpm"]["peak"] == 1800.0 and hw["power_w"]["mean"] == 300.0
    # sw_thermal_slowdown (thermal) in the first 10 readings, sw_power_cap (not thermal) after
    assert hw["gpu_throttle"]["sw_thermal_slowdown"] == {"readings": 10, "time_s": 20.0, "thermal": True}
    assert hw["gpu_throttle"]["sw_power_cap"]["thermal"] is False
    assert hw["over_limits"]["time_any_over_s"] == 120.0  # 100 s hot CPU + 20 s thermal GPU clocks
    # core_events 10..209 (+199), then restarted at 0 and counted to 100 (+100)
    assert hw["cpu_throttle"] == {"core_events": 299, "package_events": 0}
    g = hw["guard"]
    assert g["intervened"] and g["entries"] == {"ok": 1, "reduced": 1, "paused": 0}
    assert g["time_s"] == {"ok": 460.0, "reduced": 140.0, "paused": 0.0}
    assert g["duty_pct"]["reduced"] == 50.0 and [h["state"] for h in g["history"]] == ["reduced", "ok"]
    # 300 W held over each 2 s test: 600 J for 100 tokens = 6 J/token, 75 tests per model
    energy = hw["energy"]
    assert energy["total_j"] == 300.0 * 600 and energy["mean_power_w"] == 300.0
    for key in ("lmstudio/sim-0", "lmstudio/sim-1"):
        m = energy["per_model"][key]
        assert (m["j_per_token"], m["mean_power_w"], m["tests_without_power"]) == (6.0, 300.0, 0)
        assert m["tests_with_power"] == 75 and m["output_tokens"] == 7500
    sus = hw["sustained"]
    assert sus["exceeded"] and sus["readings_known"]
    assert sus["run_duty_pct"] == 50.0  # 150 tests x 2 s over 600 s
    assert sus["longest_s"] == 300.0  # 300 s..600 s, after the last hot reading
    assert sus["best_duty_pct"] is None  # no stretch of 10 minutes under the limits
    series = hw["series"]
    assert len(series["minutes"]) <= BUCKETS and max(series["cpu_temp_max_c"]) == 95.0
    assert "reduced" in series["guard"] and any(series["over"])


def test_markdown_and_json_carry_the_hardware_section(tmp_path):
    run_dir = hot_run().write(tmp_path / "run")
    snap, _ = build_report(run_dir)
    md_path, json_path = write_report_files(run_dir, snap, ("md", "json"))
    md = md_path.read_text()
    section = md[md.index("## Hardware") :]
    assert "### Thermal limits for continuous operation" in section
    assert "**Limits exceeded** for 2m 00s in all" in section
    assert "the guard intervened (reduced once, paused 0 times" in section
    assert "| CPU | 90 | 95.0 | 95.0 |" in section
    assert "| lmstudio/sim-0 | 12.500 | 7,500 | 6.000 | 300.0 |" in section  # split at 100 columns:
    assert "| lmstudio/sim-0 | 75/75 |" in section  # the model column repeated
    assert "thermal pressure (macOS) | unavailable (not macOS)" in section
    assert "core events 299" in section
    fences = section.count("```text")
    assert fences == 4  # temperature, power, fan, duty (the guard intervened)
    assert (
        "CPU / GPU temperature (°C) against output tokens/s" in section
        and "output tokens/s (right)" in section
    )
    assert "\x1b[" not in section  # no colour codes in the file
    data = orjson.loads(json_path.read_bytes())
    assert data["hardware"]["energy"]["per_model"]["lmstudio/sim-1"]["j_per_token"] == 6.0


def test_a_machine_without_sensors_says_what_was_unavailable_and_why(tmp_path):
    log = Log()
    for i in range(30):
        t = T0 + 2 * i
        log.add("telemetry", t, source="psutil", cpu_pct=40.0, cpu_per_core_pct=[38.0, 42.0], mem_pct=9.4,
                mem_used_bytes=2_368_606_208, mem_total_bytes=25_276_510_208, cpu_freq_mhz=2300.0,
                load_avg=[1.2, 1.0, 0.9], unavailable=NO_SENSORS)  # fmt: skip
        log.add("request", t + 1, test_id=i, provider="p", model="m", scenario="streaming", stream=True,
                ok=True, output_tokens=50, gen_tps=40.0, e2e_ms=900.0, token_source="usage")  # fmt: skip
        log.add("scenario_result", t + 1.2, test_id=i, key="p/m", provider="p", model="m", scenario="streaming",
                ok=True, duration_ms=1000.0, requests=1)  # fmt: skip
    snap, _ = build_report(log.write(tmp_path / "run"))
    hw = snap["hardware"]
    assert all(hw["families"][f]["unavailable"] == NO_SENSORS[f] for f in ("temps", "fans", "power", "gpu"))
    assert hw["temperatures"]["cpu"]["peak"] is None and hw["power_w"]["n"] == 0
    # no hardware reading ever: tests are not folded against readings that do not exist
    assert hw["energy"]["total_j"] is None and hw["energy"]["per_model"] == {}
    assert set(hw["guard"]["duty_pct"].values()) == {None}  # unknown, not 0%
    assert not hw["sustained"]["readings_known"] and not hw["sustained"]["exceeded"]
    md = write_report_files(tmp_path / "run", snap)[0].read_text()
    section = md[md.index("## Hardware") :]
    assert "No temperature or thermal-pressure reading: how the machine held up is unknown" in section
    assert f"| power | unavailable ({NO_SENSORS['power']}) |" in section
    assert f"Power: unavailable ({NO_SENSORS['power']})." in section
    assert f"Temperatures: unavailable ({NO_SENSORS['temps']})." in section
    assert f"Fan speed (rpm): unavailable ({NO_SENSORS['fans']})." in section
    assert "```text" not in section  # no chart of readings that do not exist
    for zero in ("0.0 W", "0.0 °C", " 0 rpm", "| 0.0 |"):
        assert zero not in section, zero


def test_no_telemetry_at_all_is_said_plainly():
    snap = RunAggregate().feed_all(Log().events).snapshot()
    assert snap["hardware"]["readings"] == 0
    from soaktui.report.markdown import render_markdown

    assert "No telemetry reading in the log" in render_markdown(snap)


def test_the_fold_stays_bounded_over_a_long_run():
    fold = HardwareFold()
    hours = 8
    for i in range(hours * 1800):  # 8 h at 2 s
        t = T0 + 2 * i
        fold.on_telemetry(
            {
                "t": t,
                "cpu_temp_c": 60 + (i % 400) / 10,
                "power_w": 100.0 + (i % 997) / 7,
                "fan_rpm": 1000 + i % 3000,
            }
        )
        if i % 3 == 0:
            fold.on_request(i, 10, 30.0)
            fold.on_result({"t": t + 1, "test_id": i, "duration_ms": 1000.0, "key": "p/m"})
    snap = fold.snapshot()
    assert len(snap["series"]["minutes"]) <= BUCKETS
    assert snap["series"]["bucket_s"] >= hours * 3600 / BUCKETS
    assert all(len(h.raw or ()) + len(h.counts) <= 4000 for h in fold.hists.values())
    assert len(fold._power) <= 4096 and not fold._pending
    assert snap["temperatures"]["cpu"]["peak"] == 99.9


def _binned_from_the_first_value(values: list[float], res: float) -> tuple[dict[int, int], float, int]:
    """The histogram as it was before it counted exact values first: (counts, resolution, total)."""
    counts: dict[int, int] = {}
    total = 0
    for v in values:
        total += round(v * FIXED)
        k = round(v / res)
        counts[k] = counts.get(k, 0) + 1
        if len(counts) > HIST_KEYS:
            res *= 2
            merged: dict[int, int] = {}
            for key, n in counts.items():
                merged[round(key / 2)] = merged.get(round(key / 2), 0) + n
            counts = merged
    return counts, res, total


@pytest.mark.parametrize("step", [0.01, 0.1, 1.0], ids=["few bins", "one bin a value", "wide apart"])
def test_a_histogram_counting_exact_values_first_holds_what_binning_from_the_start_did(step: float):
    """Exact value counts until HIST_KEYS distinct values, then bins: the same counts, resolution
    and sum as binning from the first value, whether the bins stay few (no coarsening) or not."""
    values = [50.0 + (i * 7919 % 4500) * step for i in range(9000)]  # 4,500 distinct, shuffled
    h = _Hist(0.1)
    for v in values:
        h.add(v)
    counts, res, total = _binned_from_the_first_value(values, 0.1)
    assert h.binned() == (counts, 9000, total, max(values)) and h.res == res
    assert (res > 0.1) == (step >= 0.1) and h.raw is None  # past HIST_KEYS distinct values: binned


@pytest.mark.parametrize("step", [0.01, 0.1, 1.0], ids=["few bins", "one bin a value", "wide apart"])
def test_a_histogram_counting_values_in_chunks_holds_what_one_at_a_time_did(step: float):
    """`add_many` (the fold's held readings, one C-level pass while exact) counts as `add` does,
    also across the chunk that takes it past HIST_KEYS distinct values and after."""
    values = [50.0 + (i * 7919 % 4500) * step for i in range(9000)]
    one, chunked = _Hist(0.1), _Hist(0.1)
    for v in values:
        one.add(v)
    for lo in range(0, len(values), 1000):
        chunked.add_many(values[lo : lo + 1000])
        if lo < 3000:
            assert chunked.raw is not None and chunked.binned() == _Hist.binned(_added(values[: lo + 1000]))
    assert chunked.binned() == one.binned() and chunked.res == one.res and chunked.raw is None


def _added(values: list[float]) -> _Hist:
    h = _Hist(0.1)
    for v in values:
        h.add(v)
    return h


def test_readings_held_for_their_cell_fold_as_one_reading_at_a_time(monkeypatch):
    """A reading's values wait for its cell's C-level pass (`_settle`): the section is the one of
    adding each reading as it came, also when results and guard changes coarsen the timeline
    between held readings and their settling, and past HIST_KEYS distinct values."""

    def fold() -> tuple[dict, HardwareFold]:
        f = HardwareFold()
        f.on_run_started(Log().events[0])
        t = T0
        for i in range(12_000):
            t += 2.0 if i % 997 else 4_000.0  # now and then far on: the timeline coarsens
            f.on_telemetry(
                {"t": t, "cpu_temp_c": 40 + (i * 7919 % 5000) / 100, "power_w": 90.0 + i % 13, "fan_rpm": 900 + i % 7}
            )
            if i % 5 == 0:
                f.on_request(i, 12, 30.0)
                f.on_result({"t": t + 1.5, "test_id": i, "duration_ms": 1200.0, "key": "p/m"})
            if i % 1500 == 0:
                f.on_guard({"t": t + 0.5, "state": "hot" if i % 3000 else "ok"})
        return f.snapshot(), f

    def coarsened_between() -> dict:
        """A reading in cell 100 at 2 s, a result that doubles the width, a reading in cell 100 at
        4 s: the same index, another cell."""
        f = HardwareFold()
        f.on_run_started(Log().events[0])
        f.on_telemetry({"t": T0 + 201.0, "cpu_temp_c": 50.0})
        f.on_result({"t": T0 + 2 * BUCKETS + 1.0, "test_id": 1, "duration_ms": 100.0, "key": "p/m"})
        f.on_telemetry({"t": T0 + 401.0, "cpu_temp_c": 70.0})
        return f.snapshot()

    held, f = fold()
    jumped = coarsened_between()
    assert jumped["series"]["cpu_temp_c"] == [50.0, 70.0, None]  # the last: the test's cell
    monkeypatch.setattr(hardware, "MAX_HELD", 1)  # settled at every reading: one at a time
    assert held == fold()[0] and jumped == coarsened_between()
    assert held["series"]["bucket_s"] > 2.0 and held["temperatures"]["cpu"]["n"] == 12_000
    assert f.hists["cpu_temp_c"].raw is None and f.hists["fan_rpm"].raw is not None


def test_a_readings_verdicts_looked_up_family_by_family_are_judges_on_the_whole_reading():
    """The fold looks each family's verdict up by its own value (a GPU machine's readings seldom
    repeat whole): every combination, odd values included, gives what judge gives the reading."""
    values = {
        "cpu_temp_c": [None, 40.0, 79.9, 80.0, 84.5, 96.0, 70, 1, True, "hot"],
        "gpu_temp_c": [None, 50.0, 83.0, 99.5, 1, False],
        "thermal_pressure": [None, "nominal", "Moderate", "serious", "trapping", "bogus", 3],
        "gpu_throttle_reasons": [None, [], ["gpu_idle"], ["sw_thermal_slowdown", "hw_slowdown"], "x"],
    }
    fold = HardwareFold()
    fold.on_run_started({"t": T0, "settings": {}})
    n = 0
    for cpu in values["cpu_temp_c"]:
        for gpu in values["gpu_temp_c"]:
            for pressure in values["thermal_pressure"]:
                for reasons in values["gpu_throttle_reasons"]:
                    ev = {"cpu_temp_c": cpu, "gpu_temp_c": gpu, "thermal_pressure": pressure}
                    ev["gpu_throttle_reasons"] = reasons
                    want = {f: v for f, (v, _) in judge(ev, fold.limits, explain=False).items()}
                    for _ in range(2):  # computed, then looked up
                        got = fold._verdicts(cpu, gpu, pressure, reasons)
                        assert got.verdicts == want and list(got.verdicts) == list(want), ev
                        assert got.over == any(v in ("over", "pause") for v in want.values())
                    n += 1
    assert n == 10 * 6 * 7 * 5


def test_the_timeline_keeps_busy_time_when_it_coarsens():
    tl = Timeline(origin=0.0, width=1.0, cap=16)
    spans = [(i * 3.0, i * 3.0 + 1.7) for i in range(200)]
    for a, b in spans:
        tl.add_busy(a, b)
    total = sum(c.busy_s for c in tl.cells if c is not None) / FIXED  # kept in 1 / FIXED units
    assert abs(total - 200 * 1.7) < 1e-6 and tl.width >= 64
