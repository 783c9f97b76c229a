"""The telemetry sampler: merging readers' pieces, the summary keys, the per-request window, a reader
that throws, the thread's start and stop; and a real `soaktui --no-ui --demo` run on this machine
(which has no sensors), whose events.jsonl must show each missing family as unavailable with a
reason, and no zeros in their place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from soaktui.engine import runner
from soaktui.log.reader import iter_events
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.telemetry.sampler import (
    RETRY_FAILED_S,
    WINDOW_KEYS,
    Source,
    TelemetrySampler,
    merge,
    summarize,
)
from soaktui.telemetry.sysfs import SysfsReader
from soaktui.telemetry.system import SystemSampler
from tests.test_soak import soak

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 5 * 10**12

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def test_merge_joins_lists_and_keeps_reasons_only_where_nothing_read():
    got = merge(
        [
            {"source": "psutil", "cpu_pct": 12.5},
            {
                "temps": [{"sensor": "a", "kind": "cpu", "c": 50.0, "source": "hwmon"}],
                "unavailable": {"gpu": "no AMD GPU"},
            },
            {"unavailable": {"gpu": "no NVIDIA driver", "power": "RAPL energy_uj is root-only here"}},
            {"gpus": [], "unavailable": {"temps": "not macOS"}},
            {"source": "other"},
        ]
    )
    assert got["source"] == "psutil"  # first come
    assert got["temps"] == [{"sensor": "a", "kind": "cpu", "c": 50.0, "source": "hwmon"}]
    # temps were read (by hwmon), so the other reader's reason for them is dropped; an empty gpus
    # list still counts as "read" (the reader looked and found that list)
    assert got["unavailable"] == {"power": "RAPL energy_uj is root-only here"}
    merged = merge([{"unavailable": {"gpu": "no AMD GPU"}}, {"unavailable": {"gpu": "no NVIDIA driver"}}])
    assert merged == {"unavailable": {"gpu": "no AMD GPU; no NVIDIA driver"}}


def test_summary_power_from_sources_that_do_not_overlap():
    linux = {
        "temps": [
            {"sensor": "coretemp/Package id 0", "kind": "cpu", "c": 81.0},
            {"sensor": "coretemp/Core 1", "kind": "cpu", "c": 84.0},
            {"sensor": "nvml/gpu0", "kind": "gpu", "c": 70.0},
            {"sensor": "nvme/Composite", "kind": "nvme", "c": 99.0},
        ],
        "power": [
            {"sensor": "cpu_package", "w": 40.5},
            {"sensor": "cpu_cores", "w": 30.0},  # part of the package: not added again
            {"sensor": "dram", "w": 3.0},
            {"sensor": "gpu0", "w": 300.25},
        ],
        "gpus": [
            {"index": 0, "temp_c": 72.0, "power_w": 300.25, "throttle_reasons": ["sw_thermal_slowdown"]},
            {"index": 1, "throttle_reasons": ["gpu_idle", "sw_thermal_slowdown"]},
        ],
        "fans": [{"rpm": 900}, {"rpm": 2100}],
    }
    assert summarize(linux) == {
        "cpu_temp_c": 84.0,
        "gpu_temp_c": 72.0,
        "power_w": 340.75,
        "power_w_parts": ["cpu_package", "gpu0"],
        "fan_rpm": 2100,
        "gpu_throttle_reasons": ["gpu_idle", "sw_thermal_slowdown"],
    }
    mac = {
        "power": [
            {"sensor": s, "w": w}
            for s, w in (("cpu", 4.8), ("gpu", 21.6), ("ane", 0.0), ("soc", 26.4), ("system", 41.2))
        ]
    }
    assert summarize(mac) == {"power_w": 26.4, "power_w_parts": ["soc"]}
    assert summarize({"power": [{"sensor": "system", "w": 12.0}]}) == {
        "power_w": 12.0,
        "power_w_parts": ["system"],
    }
    assert summarize({"gpus": [{"index": 0, "power_w": 95.0}]}) == {
        "power_w": 95.0,
        "power_w_parts": ["gpu0"],
    }
    # a GPU that reports no throttle reasons at all leaves the key out; an empty list is a reading
    assert summarize({"gpus": [{"index": 0}]}) == {}
    assert summarize({"gpus": [{"index": 0, "throttle_reasons": []}]}) == {"gpu_throttle_reasons": []}
    assert summarize({}) == {}


def scripted(values: list[dict]) -> Source:
    """A source answering the next scripted piece at each read."""
    it = iter(values)
    return Source("scripted", lambda: next(it), ("temps", "power"))


def test_window_over_a_request_includes_the_reading_before_it():
    clock = FakeClock()
    curve = [(60.0, 20.0), (70.0, 35.0), (85.0, 50.0), (80.0, 45.0), (65.0, 22.0)]
    pieces = [
        {"temps": [{"sensor": "t", "kind": "cpu", "c": c}], "power": [{"sensor": "cpu_package", "w": w}]}
        for c, w in curve
    ]
    s = TelemetrySampler(clock=clock, sources=[scripted(pieces)])
    stamps = []
    for _ in curve:
        stamps.append(s.sample_once()["sample_mono_ns"])
        clock.advance(1.0)
    # a request from 0.5 s after the 2nd reading to just after the 4th: readings 2 (before), 3, 4
    start, end = stamps[1] + 500_000_000, stamps[3] + 1
    assert s.window(start, end) == {
        "cpu_temp_min_c": 70.0,
        "cpu_temp_max_c": 85.0,
        "power_min_w": 35.0,
        "power_max_w": 50.0,
        "power_mean_w": 43.33,
    }
    # a request shorter than one sampling interval still gets the reading it ran under
    assert s.window(stamps[4] + 10, stamps[4] + 20)["cpu_temp_max_c"] == 65.0
    # before any reading: nothing known
    assert s.window(stamps[0] - 10**9, stamps[0] - 1) == {}
    assert set(s.window(stamps[0], stamps[4])) == set(WINDOW_KEYS) - {"gpu_temp_min_c", "gpu_temp_max_c"}


def test_the_ring_buffer_is_bounded_in_time():
    clock = FakeClock()
    piece = {"temps": [{"sensor": "t", "kind": "cpu", "c": 50.0}]}
    s = TelemetrySampler(
        clock=clock, interval_s=1.0, history_s=10.0, sources=[Source("x", lambda: piece, ())]
    )
    first = s.sample_once()["sample_mono_ns"]
    for _ in range(30):
        clock.advance(1.0)
        s.sample_once()
    assert len(s._ring) == 11
    # the oldest readings are gone: a window over them now sees only the oldest kept one
    assert s.window(first, first + 1) == {}


def test_a_throwing_reader_is_unavailable_once_and_retried_later():
    clock = FakeClock()
    calls = {"bad": 0, "good": 0}

    def bad():
        calls["bad"] += 1
        raise OSError(5, f"Input/output error #{calls['bad']}")

    def good():
        calls["good"] += 1
        return {"temps": [{"sensor": "t", "kind": "cpu", "c": 55.0}]}

    s = TelemetrySampler(
        clock=clock, sources=[Source("good", good, ("temps",)), Source("nvml", bad, ("gpu", "power"))]
    )
    first = s.sample_once()
    why = "nvml reader failed: OSError: [Errno 5] Input/output error #1"
    assert first["unavailable"] == {"gpu": why, "power": why}
    assert first["cpu_temp_c"] == 55.0  # the other reader is unaffected
    for _ in range(5):
        clock.advance(1.0)
        assert s.sample_once()["unavailable"]["gpu"] == why  # the same message, not a new one each time
    assert calls == {"bad": 1, "good": 6}  # not called again every second
    clock.advance(RETRY_FAILED_S)
    assert s.sample_once()["unavailable"]["gpu"] == why  # retried, failed again: the first message stays
    assert calls["bad"] == 2


def test_server_readers_run_at_their_own_interval():
    clock = FakeClock()
    calls = []

    def servers():
        calls.append(clock.now)
        return {"servers": [{"provider": "p", "kind": "vllm", "requests_waiting": float(len(calls))}]}

    s = TelemetrySampler(clock=clock, sources=[Source("servers", servers, ("servers",), every_s=5.0)])
    seen = []
    for _ in range(11):
        seen.append(s.sample_once()["servers"][0]["requests_waiting"])
        clock.advance(1.0)
    assert len(calls) == 3 and seen == [1.0] * 5 + [2.0] * 5 + [3.0]  # the last answer in between


def test_thread_samples_never_raises_and_stops():
    closed = []
    boom = Source("boom", lambda: 1 / 0, ("temps",), close=lambda: closed.append("boom"))
    ok = Source("ok", lambda: {"source": "test"}, (), close=lambda: closed.append("ok"))
    s = TelemetrySampler(interval_s=0.05, sources=[boom, ok])
    s.start()
    deadline = time.monotonic() + 10
    while s.samples < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread = s._thread
    s.stop()
    assert s.samples >= 3 and thread is not None and not thread.is_alive()
    assert s.latest()["unavailable"] == {"temps": "boom reader failed: ZeroDivisionError: division by zero"}
    assert closed == ["boom", "ok"]
    assert s.thread_cpu_s > 0


def test_latest_is_none_before_the_first_reading():
    assert TelemetrySampler(sources=[]).latest() is None


def test_default_readers_on_this_machine():
    """The real readers here (a VM with no sensors): every family missing says why."""
    s = TelemetrySampler([], interval_s=1.0)
    try:
        reading = s.sample_once()
    finally:
        s.close()
    assert reading["source"] == "psutil" and reading["mem_total_bytes"] > 0
    why = reading.get("unavailable", {})
    for key, fam in (("temps", "temps"), ("fans", "fans"), ("gpus", "gpu"), ("power", "power")):
        assert (key in reading) != (fam in why), (key, fam)
        if fam in why:
            assert why[fam].strip()
    assert why.get("servers") == "no providers"


@pytest.fixture
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOAKTUI_")}
    home = out.parent / "home"
    env.update(
        SOAKTUI_CONFIG_DIR=str(home),
        SOAKTUI_DATA_DIR=str(home),
        SOAKTUI_QUIET_HOURS__ENABLED="false",
        SOAKTUI_THRESHOLDS__SIMPLE_MAX_TOKENS="120",
        SOAKTUI_THRESHOLDS__STREAM_MAX_TOKENS="60",
        SOAKTUI_TIMEOUTS__GRACE="2",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "soaktui",
            "--no-ui",
            "--demo",
            "--duration",
            "7s",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return list(iter_events(out / "events.jsonl"))


@pytest.mark.e2e
def test_a_demo_run_shows_the_missing_sensors_as_unavailable(demo_run):
    events = demo_run
    telemetry = [e for e in events if e["kind"] == "telemetry"]
    assert len(telemetry) >= 2
    gaps = [(b["mono_ns"] - a["mono_ns"]) / 1e9 for a, b in zip(telemetry, telemetry[1:], strict=False)]
    assert all(g >= 1.5 for g in gaps)  # output.telemetry_interval defaults to 2 s
    for e in telemetry:
        assert e["source"] == "psutil" and 0 <= e["cpu_pct"] <= 100 and e["mem_total_bytes"] > 0
        why = e["unavailable"]
        # what this machine has no sensor for is absent with a reason, never a zero
        for key, fam in (
            ("temps", "temps"),
            ("fans", "fans"),
            ("power", "power"),
            ("gpus", "gpu"),
            ("cpu_throttle", "cpu_throttle"),
        ):
            if key not in e:
                assert why[fam]
        if "temps" not in e:
            assert "cpu_temp_c" not in e and "gpu_temp_c" not in e
        if "power" not in e and "gpus" not in e:
            assert "power_w" not in e
        assert why["thermal_pressure"] == "not macOS"
        # the demo's simulator is LM Studio-flavoured: its loaded models come from /api/v0/models
        (server,) = e["servers"]
        assert server["kind"] == "lmstudio" and server["source"] == "LM Studio /api/v0/models"
        assert isinstance(server["loaded_models"], list)
    requests = [e for e in events if e["kind"] == "request"]
    assert requests
    if "temps" not in telemetry[-1] and "power_w" not in telemetry[-1]:
        assert not any(k in r for r in requests for k in WINDOW_KEYS)  # nothing known, nothing claimed


@pytest.mark.integration
@pytest.mark.slow
def test_requests_carry_the_temperatures_seen_while_they_ran(tmp_path, monkeypatch):
    """A real soak against the simulator, with the engine's sampler reading a fake hwmon tree whose
    package temperature climbs from 60 to 80 C during the run: every request gets the min/max of the
    readings taken while it ran, and the telemetry events carry them too."""
    temp = tmp_path / "sysroot/sys/class/hwmon/hwmon0/temp1_input"
    temp.parent.mkdir(parents=True)
    (temp.parent / "name").write_text("coretemp\n")
    (temp.parent / "temp1_label").write_text("Package id 0\n")
    temp.write_text("60000\n")
    reader = SysfsReader(tmp_path / "sysroot", platform="linux")
    sampling = threading.Event()

    def read_sysfs() -> dict:
        sampling.set()  # the run has started: the heat can come
        return reader.read()

    class WithFakeSysfs(TelemetrySampler):
        def __init__(self, providers, interval_s=1.0, **kw):
            sources = [Source("psutil", SystemSampler().sample, ()), Source("sysfs", read_sysfs, ("temps",))]
            super().__init__(providers, interval_s=0.1, sources=sources)

    monkeypatch.setattr(runner, "TelemetrySampler", WithFakeSysfs)
    done = threading.Event()

    def climb() -> None:
        milli = 60000
        while not sampling.wait(0.05):
            if done.is_set():
                return
        while not done.wait(0.05) and milli < 80000:
            milli += 500
            tmp = temp.with_suffix(".new")
            tmp.write_text(f"{milli}\n")
            tmp.replace(temp)  # whole-file swap: a reader never sees half a number

    heater = threading.Thread(target=climb, daemon=True)
    heater.start()
    try:
        with run_in_thread(SimConfig(flavor="lmstudio", seed=1, speed=40.0)) as sim:
            code, events = soak(tmp_path / "run", sim.base_url, duration="4s")
    finally:
        done.set()
        heater.join()
    assert code == 0
    requests = [e for e in events if e["kind"] == "request" and e.get("sent_mono_ns")]
    assert requests
    # a request that was over before the sampler's first reading has nothing to report; all later do
    known = [r for r in requests if "cpu_temp_min_c" in r]
    early = [r for r in requests if "cpu_temp_min_c" not in r]
    assert len(known) > len(early) and all(e["sent_mono_ns"] < known[0]["sent_mono_ns"] for e in early)
    for r in known:
        assert 60.0 <= r["cpu_temp_min_c"] <= r["cpu_temp_max_c"] <= 80.0, r
    assert not any(
        k in r for r in requests for k in ("power_min_w", "gpu_temp_max_c")
    )  # nothing measured them
    assert any(r["cpu_temp_max_c"] > r["cpu_temp_min_c"] for r in known)  # one ran while it climbed
    telemetry = [e for e in events if e["kind"] == "telemetry"]
    assert telemetry and all(60.0 <= e["cpu_temp_c"] <= 80.0 for e in telemetry)
    assert telemetry[-1]["temps"][0]["sensor"] == "coretemp/Package id 0"
