"""The telemetry readers, each against what it reads in real life.

- Linux sysfs (hwmon, thermal zones, amdgpu, thermal_throttle, RAPL): a fake tree in a temp dir,
  laid out and valued as the kernel's files are (Documentation/hwmon/sysfs-interface.rst, amdgpu.rst,
  powercap). The root-only RAPL case is a real unprivileged read of a 0400 file.
- macOS and NVIDIA cannot run here: their parsers get recorded output (tests/data/telemetry/README.md
  says where each shape comes from); the macOS reader also runs end to end against stand-in
  executables that print the recordings; NVML is a stand-in pynvml module answering recorded values
  and raising NVMLError_NotSupported where that GPU does.
- Server metrics: recorded llama.cpp and vLLM `/metrics` texts served by a real HTTP server on
  loopback, the simulator's Ollama and LM Studio endpoints, refused and 401/404 answers, and the
  real llama-server of the test tier (its /metrics and /slots, and its process).
- Server processes: real processes, found by name and by command line.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from soaktui.providers.types import LLAMACPP, LMSTUDIO, OLLAMA, OPENAI, VLLM, Provider
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.telemetry import prometheus
from soaktui.telemetry.macos import (
    NO_MACMON,
    NO_ROOT,
    MacReader,
    parse_ioreg_gpus,
    parse_macmon,
    parse_powermetrics,
    parse_thermal_level,
)
from soaktui.telemetry.nvidia import NO_DRIVER, NOT_INSTALLED, NvidiaReader, decode_reasons
from soaktui.telemetry.rapl import ROOT_ONLY, RaplReader
from soaktui.telemetry.server_procs import NO_SERVER, ServerProcessSampler, classify
from soaktui.telemetry.servers import ServerReader
from soaktui.telemetry.sysfs import SysfsReader, temp_kind
from soaktui.telemetry.system import SystemSampler
from tests.helpers import free_port

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "telemetry"
DISCOVERY = Path(__file__).parent / "data" / "discovery"


# ---------------------------------------------------------------------------------------------
# A fake sysfs tree


def _w(path: Path, text: str | int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def make_sysfs(root: Path) -> Path:
    """hwmon: coretemp, nvme, a Super I/O chip with an unconnected fan header, an amdgpu card, acpitz;
    thermal zones acpitz (also in hwmon) and x86_pkg_temp; 4 CPUs (2 cores x 2 threads) with
    thermal_throttle counters; RAPL package-0 with core and dram parts."""
    hw = root / "sys/class/hwmon"
    c = hw / "hwmon0"
    _w(c / "name", "coretemp")
    _w(c / "temp1_input", 71000)
    _w(c / "temp1_label", "Package id 0")
    _w(c / "temp1_max", 100000)
    _w(c / "temp1_crit", 105000)
    _w(c / "temp2_input", 68000)
    _w(c / "temp2_label", "Core 0")
    n = hw / "hwmon1"
    _w(n / "name", "nvme")
    _w(n / "temp1_input", 44850)
    _w(n / "temp1_label", "Composite")
    _w(n / "temp1_max", 84850)
    _w(n / "temp1_crit", 84850)
    s = hw / "hwmon2"
    _w(s / "name", "nct6798")
    _w(s / "fan1_input", 1180)
    _w(s / "fan2_input", 0)  # nothing plugged in
    _w(s / "temp1_input", "")  # a sensor that reads as nothing
    # amdgpu: hwmon's `device` is the PCI device, whose `driver` is amdgpu
    dev = root / "sys/devices/pci0000:00/0000:00:01.1/0000:03:00.0"
    _w(dev / "gpu_busy_percent", 93)
    _w(dev / "mem_info_vram_used", 15032385536)
    _w(dev / "mem_info_vram_total", 17163091968)
    _w(dev / "pp_dpm_sclk", "0: 500Mhz\n1: 1900Mhz\n2: 2482Mhz *")
    _w(dev / "pp_dpm_mclk", "0: 96Mhz\n1: 456Mhz\n2: 1249Mhz *")
    (dev / "drm/card1").mkdir(parents=True)
    drivers = root / "sys/bus/pci/drivers/amdgpu"
    drivers.mkdir(parents=True)
    (dev / "driver").symlink_to(drivers)
    a = hw / "hwmon3"
    a.mkdir(parents=True)
    (a / "device").symlink_to(dev)
    _w(a / "name", "amdgpu")
    for i, (label, milli) in enumerate((("edge", 58000), ("junction", 77000), ("mem", 64000)), 1):
        _w(a / f"temp{i}_input", milli)
        _w(a / f"temp{i}_label", label)
    _w(a / "temp2_crit", 110000)
    _w(a / "power1_average", 187000000)
    _w(a / "fan1_input", 1650)
    _w(a / "pwm1", 128)
    _w(a / "pwm1_max", 255)
    z = hw / "hwmon4"
    _w(z / "name", "acpitz")
    _w(z / "temp1_input", 27800)
    th = root / "sys/class/thermal"
    _w(th / "thermal_zone0/type", "acpitz")
    _w(th / "thermal_zone0/temp", 27800)
    _w(th / "thermal_zone1/type", "x86_pkg_temp")
    _w(th / "thermal_zone1/temp", 72000)
    _w(th / "thermal_zone1/trip_point_0_type", "passive")
    _w(th / "thermal_zone1/trip_point_0_temp", 95000)
    _w(th / "thermal_zone1/trip_point_1_type", "critical")
    _w(th / "thermal_zone1/trip_point_1_temp", 100000)
    cpus = root / "sys/devices/system/cpu"
    for cpu, core, core_count in ((0, 0, 12), (1, 1, 3), (2, 0, 12), (3, 1, 3)):
        d = cpus / f"cpu{cpu}"
        _w(d / "topology/physical_package_id", 0)
        _w(d / "topology/core_id", core)
        _w(d / "thermal_throttle/core_throttle_count", core_count)
        _w(d / "thermal_throttle/package_throttle_count", 7)
    pc = root / "sys/class/powercap"
    for zone, name, energy in (
        ("intel-rapl:0", "package-0", 262140000000),
        ("intel-rapl:0:0", "core", 51000000),
        ("intel-rapl:0:2", "dram", 9000000),
    ):
        _w(pc / zone / "name", name)
        _w(pc / zone / "energy_uj", energy)
        _w(pc / zone / "max_energy_range_uj", 262143328850)
    return root


def test_hwmon_thermal_zones_amdgpu_and_throttle_counters(tmp_path):
    root = make_sysfs(tmp_path)
    got = SysfsReader(root, platform="linux").read()
    temps = {t["sensor"]: t for t in got["temps"]}
    assert temps["coretemp/Package id 0"] == {
        "sensor": "coretemp/Package id 0",
        "kind": "cpu",
        "c": 71.0,
        "high_c": 100.0,
        "crit_c": 105.0,
        "source": "hwmon",
    }
    assert temps["nvme/Composite"]["kind"] == "nvme" and temps["nvme/Composite"]["c"] == 44.9
    assert temps["amdgpu/junction"] == {
        "sensor": "amdgpu/junction",
        "kind": "gpu",
        "c": 77.0,
        "crit_c": 110.0,
        "source": "amdgpu",
    }
    assert temps["acpitz/temp1"]["kind"] == "other"
    # the acpitz zone is the acpitz hwmon chip: listed once; the package zone has its trip points
    assert "thermal_zone0/acpitz" not in temps
    assert temps["thermal_zone1/x86_pkg_temp"] == {
        "sensor": "thermal_zone1/x86_pkg_temp",
        "kind": "cpu",
        "c": 72.0,
        "crit_c": 100.0,
        "source": "thermal_zone",
    }
    assert not any(t["sensor"].startswith("nct6798") for t in got["temps"])  # the empty sensor file
    fans = {f["sensor"]: f for f in got["fans"]}
    assert fans == {
        "nct6798/fan1": {"sensor": "nct6798/fan1", "rpm": 1180, "source": "hwmon"},
        "amdgpu/fan1": {"sensor": "amdgpu/fan1", "rpm": 1650, "source": "amdgpu"},
    }
    assert got["gpus"] == [
        {
            "index": 1,
            "name": "amdgpu card1",
            "source": "amdgpu",
            "power_w": 187.0,
            "temp_c": 58.0,
            "util_pct": 93.0,
            "mem_used_bytes": 15032385536,
            "mem_total_bytes": 17163091968,
            "fan_pct": 50.2,
            "clock_sm_mhz": 2482.0,
            "clock_mem_mhz": 1249.0,
        }
    ]
    assert got["power"] == [{"sensor": "gpu1", "w": 187.0, "source": "amdgpu"}]
    # cpu0/cpu2 and cpu1/cpu3 are hyperthreads of cores 0 and 1: 12 + 3 core events, 7 package events
    assert got["cpu_throttle"] == {"source": "sysfs thermal_throttle", "core_events": 15, "package_events": 7}
    assert "unavailable" not in got


def test_a_fan_header_appears_once_it_has_spun(tmp_path):
    root = make_sysfs(tmp_path)
    reader = SysfsReader(root, platform="linux")
    assert "nct6798/fan2" not in {f["sensor"] for f in reader.read()["fans"]}
    _w(root / "sys/class/hwmon/hwmon2/fan2_input", 910)
    assert {"sensor": "nct6798/fan2", "rpm": 910, "source": "hwmon"} in reader.read()["fans"]
    _w(root / "sys/class/hwmon/hwmon2/fan2_input", 0)  # stopped now: a real 0, shown as such
    assert {"sensor": "nct6798/fan2", "rpm": 0, "source": "hwmon"} in reader.read()["fans"]


def test_an_empty_machine_says_why_for_each_family(tmp_path):
    got = SysfsReader(tmp_path, platform="linux").read()
    assert set(got) == {"unavailable"}
    why = got["unavailable"]
    assert set(why) == {"temps", "fans", "gpu", "cpu_throttle"}
    assert "hwmon" in why["temps"] and "amdgpu" in why["gpu"] and "thermal_throttle" in why["cpu_throttle"]
    assert RaplReader(tmp_path, platform="linux").read() == {
        "unavailable": {"power": "no RAPL powercap zones in /sys/class/powercap"}
    }
    assert SysfsReader(tmp_path, platform="darwin").read() == {
        "unavailable": {"cpu_throttle": "Linux only (sysfs thermal_throttle)"}
    }


def test_temperature_kinds():
    assert [temp_kind(n) for n in ("k10temp", "zenpower", "cpu_thermal", "x86_pkg_temp", "TCPU")] == [
        "cpu"
    ] * 5
    assert [temp_kind(n) for n in ("amdgpu", "nouveau", "i915")] == ["gpu"] * 3
    assert [temp_kind(n) for n in ("nvme", "acpitz", "iwlwifi_1", "pch_cannonlake")] == [
        "nvme",
        "other",
        "other",
        "other",
    ]


class FakeClock:
    def __init__(self, start_ns: int = 10**12) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def test_rapl_watts_from_energy_deltas_with_wraparound(tmp_path):
    root = make_sysfs(tmp_path)
    pc = root / "sys/class/powercap"
    clock = FakeClock()
    reader = RaplReader(root, clock=clock, platform="linux")
    assert reader.read() == {}  # one reading of a counter is no power figure, and no reason either
    clock.advance(1.0)
    _w(pc / "intel-rapl:0:0/energy_uj", 51000000 + 14_250_000)
    _w(pc / "intel-rapl:0:2/energy_uj", 9000000 + 1_900_000)
    # the package counter passes max_energy_range_uj (262143328850) and starts again from 0
    _w(pc / "intel-rapl:0/energy_uj", 262140000000 + 23_400_000 - 262143328850)
    got = {p["sensor"]: p for p in reader.read()["power"]}
    assert got == {
        "cpu_package": {"sensor": "cpu_package", "w": 23.4, "source": "rapl"},
        "cpu_cores": {"sensor": "cpu_cores", "w": 14.25, "source": "rapl"},
        "dram": {"sensor": "dram", "w": 1.9, "source": "rapl"},
    }
    clock.advance(0.5)
    _w(pc / "intel-rapl:0/energy_uj", 262140000000 + 23_400_000 - 262143328850 + 10_000_000)
    assert {p["sensor"]: p["w"] for p in reader.read()["power"]}["cpu_package"] == 20.0


def _read_rapl_unprivileged(root: Path) -> dict:
    """RaplReader(root).read() in a forked child that has dropped root (uid/gid 65534), as a
    normal user runs soaktui; the answer comes back over a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            got = RaplReader(root, platform="linux").read()
            os.write(w, json.dumps(got).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def test_root_only_rapl_is_unavailable_not_zero():
    # The tree lives in a world-traversable temp dir so the unprivileged reader can reach the
    # 0400 energy files, exactly as /sys/class/powercap looks to a normal user since Linux 5.10.
    base = Path(tempfile.mkdtemp(prefix="soaktui-rapl-"))
    try:
        base.chmod(0o755)
        root = make_sysfs(base / "root")
        for d in [p for p in base.rglob("*") if p.is_dir()]:
            d.chmod(0o755)
        for f in (root / "sys/class/powercap").rglob("energy_uj"):
            f.chmod(0o400)
        if os.geteuid() == 0:
            got = _read_rapl_unprivileged(root)
        else:
            got = RaplReader(root, platform="linux").read()
        assert got == {"unavailable": {"power": ROOT_ONLY}}
    finally:
        shutil.rmtree(base)


# ---------------------------------------------------------------------------------------------
# NVIDIA through a stand-in pynvml answering recorded values


def fake_pynvml(
    recorded: dict | None = None, init_error: int | None = None, driver_lacks: tuple[str, ...] = ()
) -> types.ModuleType:
    """A module with pynvml's names, constants and error classes, answering from nvml_recorded.json.
    `driver_lacks`: calls defined in Python that the driver's library has no symbol for; they raise
    NVMLError_FunctionNotFound as nvidia-ml-py's _nvmlGetFunctionPointer does (pynvml.py 13.615.71)."""
    gpus = (recorded or json.loads((DATA / "nvml_recorded.json").read_text()))["gpus"]
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return {
                3: "Not Supported",
                9: "Driver Not Loaded",
                12: "NVML Shared Library Not Found",
                13: "Function Not Found",
            }.get(self.value, f"NVML Error with code {self.value}")

    class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own spelling
        def __init__(self) -> None:
            super().__init__(3)

    class NVMLError_FunctionNotFound(NVMLError):  # noqa: N801
        def __init__(self) -> None:
            super().__init__(13)

    m.NVMLError, m.NVMLError_NotSupported = NVMLError, NVMLError_NotSupported
    m.NVMLError_FunctionNotFound, m.NVML_ERROR_FUNCTION_NOT_FOUND = NVMLError_FunctionNotFound, 13
    m.NVML_TEMPERATURE_GPU = 0
    m.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, m.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 0, 1
    m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM = 1, 2
    for name, bit in (
        ("GpuIdle", 0x1),
        ("ApplicationsClocksSetting", 0x2),
        ("SwPowerCap", 0x4),
        ("HwSlowdown", 0x8),
        ("SyncBoost", 0x10),
        ("SwThermalSlowdown", 0x20),
        ("HwThermalSlowdown", 0x40),
        ("HwPowerBrakeSlowdown", 0x80),
        ("DisplayClockSetting", 0x100),
    ):
        setattr(m, f"nvmlClocksEventReason{name}", bit)
    calls: list[str] = []
    m.calls = calls

    def value(h: int, key: str):
        v = gpus[h][key]
        if v == "NotSupported":
            raise NVMLError_NotSupported()
        return v

    def init() -> None:
        calls.append("nvmlInit")
        if init_error is not None:
            raise NVMLError(init_error)

    m.nvmlInit = init
    m.nvmlShutdown = lambda: calls.append("nvmlShutdown")
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: value(h, "nvmlDeviceGetName").encode()  # bytes, as pynvml returns
    m.nvmlDeviceGetTemperature = lambda h, sensor: value(h, "temperature")
    m.nvmlDeviceGetTemperatureThreshold = lambda h, t: value(
        h, "threshold_slowdown" if t == 1 else "threshold_shutdown"
    )
    m.nvmlDeviceGetPowerUsage = lambda h: value(h, "nvmlDeviceGetPowerUsage")
    m.nvmlDeviceGetTotalEnergyConsumption = lambda h: value(h, "nvmlDeviceGetTotalEnergyConsumption")
    m.nvmlDeviceGetFanSpeed = lambda h: value(h, "nvmlDeviceGetFanSpeed")
    m.nvmlDeviceGetClockInfo = lambda h, t: value(h, "clock_sm" if t == 1 else "clock_mem")
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(**value(h, "utilization"))
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(**value(h, "memory"))
    reason_calls: list[tuple[str, int]] = []
    m.reason_calls = reason_calls

    def reasons_call(fn: str):
        def call(h: int) -> int:
            reason_calls.append((fn, h))
            if fn in driver_lacks:  # the C symbol is looked up at call time
                raise NVMLError_FunctionNotFound()
            return value(h, "clocks_event_reasons")

        return call

    for fn in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
        setattr(m, fn, reasons_call(fn))
    return m


def test_nvml_readings_with_not_supported_fields_absent():
    nv = fake_pynvml()
    reader = NvidiaReader(nvml=nv, platform="linux")
    got = reader.read()
    desktop, laptop = got["gpus"]
    assert desktop == {
        "index": 0,
        "source": "nvml",
        "name": "NVIDIA GeForce RTX 3090",
        "temp_c": 83.0,
        "power_w": 348.11,
        "energy_j": 1287401.992,
        "fan_pct": 87.0,
        "clock_sm_mhz": 1695.0,
        "clock_mem_mhz": 9751.0,
        "util_pct": 99.0,
        "mem_used_bytes": 23341301760,
        "mem_total_bytes": 25769803776,
        "throttle_reasons": ["sw_power_cap", "sw_thermal_slowdown"],
    }
    # the laptop GPU raises NotSupported for fan, power and energy: those keys are absent, not 0
    assert not {"fan_pct", "power_w", "energy_j"} & set(laptop)
    assert laptop["throttle_reasons"] == ["gpu_idle"] and laptop["temp_c"] == 46.0
    assert got["temps"][0] == {
        "sensor": "nvml/gpu0",
        "kind": "gpu",
        "c": 83.0,
        "high_c": 90.0,
        "crit_c": 98.0,
        "source": "nvml",
    }
    assert got["power"] == [{"sensor": "gpu0", "w": 348.11, "source": "nvml"}]
    reader.close()
    assert nv.calls == ["nvmlInit", "nvmlShutdown"]


def test_nvml_names_and_thresholds_are_asked_once():
    nv = fake_pynvml()
    asked: list[str] = []
    for fn in ("nvmlDeviceGetName", "nvmlDeviceGetTemperatureThreshold", "nvmlDeviceGetTemperature"):
        real = getattr(nv, fn)
        setattr(nv, fn, lambda *a, _f=fn, _r=real: (asked.append(_f), _r(*a))[1])
    reader = NvidiaReader(nvml=nv, platform="linux")
    first, second = reader.read(), reader.read()
    assert first == second
    assert asked.count("nvmlDeviceGetName") == 2  # once per GPU, not per reading
    assert asked.count("nvmlDeviceGetTemperatureThreshold") == 4  # slowdown + shutdown, per GPU
    assert asked.count("nvmlDeviceGetTemperature") == 4  # the temperature itself: every reading


def test_clocks_event_reasons_fall_back_to_the_older_call_on_an_older_driver():
    """A new nvidia-ml-py defines nvmlDeviceGetCurrentClocksEventReasons whatever the driver; an
    older driver has only the throttle-reasons symbol, so the call raises FunctionNotFound. The older
    call answers instead, and the choice is kept: the newer one is not tried again."""
    event, throttle = "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"
    nv = fake_pynvml(driver_lacks=(event,))
    reader = NvidiaReader(nvml=nv, platform="linux")
    for _ in range(2):
        desktop, laptop = reader.read()["gpus"]
        assert desktop["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]
        assert laptop["throttle_reasons"] == ["gpu_idle"]
    assert nv.reason_calls == [(event, 0), (throttle, 0), (throttle, 1), (throttle, 0), (throttle, 1)]
    # a current driver: the newer call, and only it
    nv = fake_pynvml()
    NvidiaReader(nvml=nv, platform="linux").read()
    assert nv.reason_calls == [(event, 0), (event, 1)]
    # a driver with neither symbol: no reasons, asked once
    nv = fake_pynvml(driver_lacks=(event, throttle))
    reader = NvidiaReader(nvml=nv, platform="linux")
    assert not any("throttle_reasons" in g for g in reader.read()["gpus"])
    assert not any("throttle_reasons" in g for g in reader.read()["gpus"])
    assert nv.reason_calls == [(event, 0), (throttle, 0)]


def test_clocks_event_reasons_decode_every_documented_bit():
    nv = fake_pynvml()
    assert decode_reasons(0x1FF, nv) == [
        "gpu_idle",
        "applications_clocks_setting",
        "sw_power_cap",
        "hw_slowdown",
        "sync_boost",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "display_clock_setting",
    ]
    assert decode_reasons(0, nv) == []
    assert decode_reasons(0x40 | 0x400, nv) == ["hw_thermal_slowdown", "0x400"]  # a bit NVML added later
    # an older pynvml only has the nvmlClocksThrottleReason* spelling
    old = types.SimpleNamespace(nvmlClocksThrottleReasonSwThermalSlowdown=0x20)
    assert decode_reasons(0x20, old) == ["sw_thermal_slowdown"]


def test_no_driver_is_unavailable_with_the_reason(monkeypatch):
    got = NvidiaReader(nvml=fake_pynvml(init_error=9), platform="linux").read()
    assert got == {"unavailable": {"gpu": f"{NO_DRIVER}: Driver Not Loaded"}}
    # imported the ordinary way: a pynvml found in sys.modules
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=12))
    assert NvidiaReader(platform="linux").read() == {
        "unavailable": {"gpu": f"{NO_DRIVER}: NVML Shared Library Not Found"}
    }
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: the import fails
    assert NvidiaReader(platform="linux").read() == {"unavailable": {"gpu": f"{NO_DRIVER}: {NOT_INSTALLED}"}}
    assert NvidiaReader(platform="darwin").read() == {}  # no NVIDIA on macOS: nothing to say


def test_this_machine_without_a_driver():
    """Whatever is installed here (nvidia-ml-py or not), no driver means unavailable, never 0."""
    got = NvidiaReader(platform="linux").read()
    assert set(got) == {"unavailable"} and got["unavailable"]["gpu"].startswith(NO_DRIVER)


# ---------------------------------------------------------------------------------------------
# macOS: recorded output, then the reader against stand-in executables


def test_macmon_lines_current_and_older_shapes():
    line = (DATA / "macmon_pipe_v08.jsonl").read_text().splitlines()[0]
    got = parse_macmon(line)
    assert got["temps"] == [
        {"sensor": "macmon/cpu_temp_avg", "kind": "cpu", "c": 71.8, "source": "macmon"},
        {"sensor": "macmon/gpu_temp_avg", "kind": "gpu", "c": 64.1, "source": "macmon"},
    ]
    assert got["fans"] == [
        {"sensor": "macmon/fan0", "rpm": 3112, "source": "macmon"},
        {"sensor": "macmon/fan1", "rpm": 3405, "source": "macmon"},
    ]
    assert {p["sensor"]: p["w"] for p in got["power"]} == {
        "cpu": 4.812,
        "gpu": 21.569,
        "ane": 0.0,
        "dram": 1.904,
        "soc": 26.381,
        "system": 41.206,
    }
    assert got["gpus"] == [
        {
            "index": 0,
            "name": "Apple GPU",
            "source": "macmon",
            "util_pct": 97.0,
            "clock_sm_mhz": 1398.0,
            "temp_c": 64.1,
            "power_w": 21.569,
        }
    ]
    old, idle = (DATA / "macmon_pipe_v06.jsonl").read_text().splitlines()
    got = parse_macmon(old)
    assert "fans" not in got and got["gpus"][0]["util_pct"] == 2.1 and got["gpus"][0]["clock_sm_mhz"] == 461.0
    got = parse_macmon(idle)  # no temperature sensor found, no system-power channel
    assert "temps" not in got and "system" not in {p["sensor"] for p in got["power"]}
    assert "temp_c" not in got["gpus"][0]


def test_ioreg_gpu_utilisation():
    assert parse_ioreg_gpus((DATA / "ioreg_ioaccelerator_m4.txt").read_text()) == [
        {"index": 0, "name": "Apple M4", "source": "ioreg", "util_pct": 10.0, "mem_used_bytes": 3153936384}
    ]
    # an Intel iMac: the iGPU has no Device Utilization (left out), the Radeon does
    assert parse_ioreg_gpus((DATA / "ioreg_ioaccelerator_intel_imac.txt").read_text()) == [
        {
            "index": 0,
            "name": "AMD Radeon Pro 5700 XT",
            "source": "ioreg",
            "util_pct": 57.0,
            "mem_used_bytes": 188743680,
        }
    ]
    assert parse_ioreg_gpus("") == []


def test_thermal_pressure_levels():
    assert parse_thermal_level((DATA / "notifyutil_thermalpressure_nominal.txt").read_text()) == "nominal"
    assert parse_thermal_level((DATA / "notifyutil_thermalpressure_heavy.txt").read_text()) == "heavy"
    assert parse_thermal_level("com.apple.system.thermalpressurelevel 4\n") == "sleeping"
    assert parse_thermal_level("com.apple.system.thermalpressurelevel 9\n") is None
    assert parse_thermal_level("Current pressure level: Serious\n") == "heavy"
    assert parse_thermal_level("nothing here") is None


def test_powermetrics_block():
    text = (DATA / "powermetrics_m2.txt").read_text()
    second = text[text.rindex("*** Sampled system activity") :]
    got = parse_powermetrics(second)
    assert {p["sensor"]: p["w"] for p in got["power"]} == {
        "cpu": 6.205,
        "gpu": 9.219,
        "ane": 0.0,
        "soc": 15.424,
    }
    assert got["gpus"] == [
        {"index": 0, "name": "Apple GPU", "source": "powermetrics", "util_pct": 98.12, "clock_sm_mhz": 1398.0}
    ]
    assert got["thermal_pressure"] == "heavy" and got["thermal_pressure_source"] == "powermetrics"
    intel = "**** SMC sensors ****\n\nCPU Thermal level: 47\nFan: 1200 rpm\nCPU die temperature: 52.39 C\n"
    got = parse_powermetrics(intel)
    assert got["temps"][0]["c"] == 52.39 and got["fans"][0]["rpm"] == 1200


def _script(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def _until(fn, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.integration
def test_mac_reader_with_macmon_and_notifyutil(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(
        bin_dir, "macmon", f'[ "$1" = pipe ] || exit 2\ncat "{DATA / "macmon_pipe_v08.jsonl"}"\nexec sleep 30'
    )
    _script(bin_dir, "notifyutil", f'cat "{DATA / "notifyutil_thermalpressure_heavy.txt"}"')
    reader = MacReader(platform="darwin", path=str(bin_dir))
    try:
        # macmon printed two lines; the reader keeps the newest
        got = _until(lambda: (r := reader.read()).get("temps") and r["temps"][0]["c"] == 72.4 and r)
        assert got["thermal_pressure"] == "heavy" and got["thermal_pressure_source"] == "notifyutil"
        assert [t["c"] for t in got["temps"]] == [72.4, 65.0]
        assert got["gpus"][0]["source"] == "macmon" and "unavailable" not in got
        proc = reader._stream._proc
    finally:
        reader.close()
    assert proc.poll() is not None  # the child is gone


@pytest.mark.integration
def test_mac_reader_without_macmon_or_root(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir, "notifyutil", f'cat "{DATA / "notifyutil_thermalpressure_nominal.txt"}"')
    _script(bin_dir, "ioreg", f'cat "{DATA / "ioreg_ioaccelerator_m4.txt"}"')
    _script(bin_dir, "sudo", 'echo "sudo: a password is required" >&2\nexit 1')
    reader = MacReader(platform="darwin", path=str(bin_dir))
    got = reader.read()
    reader.close()
    assert got["thermal_pressure"] == "nominal"
    assert got["gpus"][0]["util_pct"] == 10.0 and got["gpus"][0]["source"] == "ioreg"
    why = f"{NO_MACMON}; {NO_ROOT}"
    assert got["unavailable"] == {"temps": why, "fans": why, "power": why}


@pytest.mark.integration
def test_mac_reader_uses_powermetrics_when_sudo_needs_no_password(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(
        bin_dir,
        "sudo",
        f'[ "$2" = true ] && exit 0\n[ "$2" = powermetrics ] || exit 3\ncat "{DATA / "powermetrics_m2.txt"}"\nexec sleep 30',
    )
    reader = MacReader(platform="darwin", path=str(bin_dir))
    try:
        got = _until(lambda: (r := reader.read()).get("thermal_pressure") == "heavy" and r)
    finally:
        reader.close()
    # the newest complete block (the second), its pressure level standing in for notifyutil's
    assert {p["sensor"]: p["w"] for p in got["power"]}["soc"] == 15.424
    assert got["thermal_pressure"] == "heavy" and got["thermal_pressure_source"] == "powermetrics"


def test_not_macos():
    assert MacReader(platform="linux").read() == {"unavailable": {"thermal_pressure": "not macOS"}}


# ---------------------------------------------------------------------------------------------
# Server metrics over loopback


def test_prometheus_text_parser():
    text = (DATA / "vllm_metrics_v1.txt").read_text()
    s = prometheus.parse(text)
    assert s["vllm:num_requests_running"] == [
        ({"engine": "0", "model_name": "Qwen/Qwen2.5-7B-Instruct"}, 6.0),
        ({"engine": "1", "model_name": "Qwen/Qwen2.5-7B-Instruct"}, 5.0),
    ]
    assert prometheus.total(s, "vllm:num_requests_running") == 11.0
    assert prometheus.largest(s, "vllm:kv_cache_usage_perc") == 0.9231
    waiting = s["vllm:num_requests_waiting_by_reason"][0][0]
    assert waiting["reason"] == "waiting for capacity, deferred"
    assert s["vllm:prefix_cache_hits_total"][0][1] == 4.40416e07
    assert s["vllm:time_to_first_token_seconds_bucket"][-1][0]["le"] == "+Inf"
    assert prometheus.total(s, "absent") is None
    odd = prometheus.parse(
        'a{x="q\\"uote",y="back\\\\slash",} 1 1712345678000\nb NaN\nc +Inf\nnot a sample\nd{broken 2\n# comment\n'
    )
    assert odd["a"] == [({"x": 'q"uote', "y": "back\\slash"}, 1.0)]
    assert math.isnan(odd["b"][0][1]) and odd["c"][0][1] == math.inf
    assert "d" not in odd and "not" not in odd
    assert prometheus.total(odd, "b") is None  # NaN is no value


class Routes:
    """A real HTTP server on loopback answering fixed bodies per path (the recorded texts)."""

    def __init__(self, routes: dict[str, tuple[int, bytes, str]]) -> None:
        self.routes = routes
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.hits.append(self.path)
                status, body, ctype = owner.routes.get(
                    self.path, (404, b'{"detail":"Not Found"}', "application/json")
                )
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served():
    started: list[Routes] = []

    def start(routes: dict[str, tuple[int, bytes, str]]) -> Routes:
        r = Routes(routes)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


PROM = "text/plain; version=0.0.4"


def _file(name: str, ctype: str = PROM, base: Path = DATA) -> tuple[int, bytes, str]:
    return 200, (base / name).read_bytes(), ctype


@pytest.mark.integration
def test_llamacpp_metrics_and_slots(served):
    srv = served(
        {
            "/metrics": _file("llamacpp_metrics.txt"),
            "/slots": _file("llamacpp_slots.json", "application/json"),
        }
    )
    reader = ServerReader([Provider("llamacpp@local", LLAMACPP, srv.base_url)])
    assert reader.read() == {
        "servers": [
            {
                "provider": "llamacpp@local",
                "kind": "llamacpp",
                "requests_processing": 2.0,
                "requests_deferred": 1.0,
                "prompt_tps": 424.925,
                "predicted_tps": 45.477,
                "slots_total": 4,
                "slots_busy": 2,
                "source": "llama.cpp /metrics, /slots",
            }
        ]
    }
    reader.close()


@pytest.mark.integration
def test_llamacpp_older_build_with_kv_gauge_and_no_slots(served):
    srv = served(
        {
            "/metrics": _file("llamacpp_metrics_kv.txt"),
            "/slots": (
                501,
                b'{"error":{"code":501,"message":"This server does not support slots endpoint.","type":"not_supported_error"}}',
                "application/json",
            ),
        }
    )
    row = ServerReader([]).read_one(Provider("llamacpp@old", LLAMACPP, srv.base_url))
    assert row["kv_cache_usage_ratio"] == 0.871338
    assert "prompt_tps" not in row and "predicted_tps" not in row  # 0 = no tokens since the last scrape
    assert row["requests_processing"] == 0.0  # a real, measured idle queue
    assert row["partial"] == "/slots: HTTP 501" and row["source"] == "llama.cpp /metrics"


@pytest.mark.integration
def test_llamacpp_without_metrics_flag(served):
    srv = served({"/slots": _file("llamacpp_slots.json", "application/json")})
    row = ServerReader([]).read_one(Provider("llamacpp@nometrics", LLAMACPP, srv.base_url))
    assert row["slots_busy"] == 2 and row["source"] == "llama.cpp /slots"
    assert row["partial"] == "/metrics: HTTP 404 (no /metrics route: not llama-server itself, e.g. llama-cpp-python)"


@pytest.mark.integration
def test_vllm_current_and_older_metric_names(served):
    v1 = served({"/metrics": _file("vllm_metrics_v1.txt")})
    v0 = served({"/metrics": _file("vllm_metrics_v0.txt")})
    reader = ServerReader([Provider("vllm@v1", VLLM, v1.base_url), Provider("vllm@v0", VLLM, v0.base_url)])
    one, zero = reader.read()["servers"]
    assert one == {
        "provider": "vllm@v1",
        "kind": "vllm",
        "requests_processing": 11.0,
        "requests_waiting": 3.0,
        "kv_cache_usage_ratio": 0.9231,
        "source": "vLLM /metrics",
    }
    assert zero["kv_cache_usage_ratio"] == 0.3418 and zero["requests_processing"] == 4.0
    assert zero["predicted_tps"] == 118.6 and "prompt_tps" not in zero


@pytest.mark.integration
def test_ollama_and_lmstudio_recorded(served):
    srv = served(
        {
            "/api/ps": _file("ollama_api_ps.json", "application/json", DISCOVERY),
            "/api/v0/models": _file("lmstudio_api_v0_models.json", "application/json", DISCOVERY),
        }
    )
    reader = ServerReader(
        [Provider("ollama@x", OLLAMA, srv.base_url), Provider("lmstudio@x", LMSTUDIO, srv.base_url)]
    )
    ollama, lms = reader.read()["servers"]
    assert ollama == {
        "provider": "ollama@x",
        "kind": "ollama",
        "loaded_models": ["llama3:latest"],
        "vram_bytes": 5137025024,
        "source": "Ollama /api/ps",
    }
    assert lms == {
        "provider": "lmstudio@x",
        "kind": "lmstudio",
        "loaded_models": ["meta-llama-3.1-8b-instruct"],
        "source": "LM Studio /api/v0/models",
    }


@pytest.mark.integration
@pytest.mark.parametrize("flavor", ["ollama", "lmstudio"])
def test_the_simulators_native_endpoints(flavor):
    with run_in_thread(SimConfig(flavor=flavor, seed=1)) as sim:
        row = ServerReader([]).read_one(Provider(f"{flavor}@sim", flavor, sim.base_url))
        if flavor == "ollama":
            listed = httpx.get(sim.base_url + "/api/ps").json()["models"]
            assert row["loaded_models"] == [m["name"] for m in listed]
        else:
            listed = httpx.get(sim.base_url + "/api/v0/models").json()["data"]
            assert row["loaded_models"] == [m["id"] for m in listed if m["state"] == "loaded"]
    assert "unavailable" not in row and row["source"]


@pytest.mark.integration
def test_unreachable_and_refusing_servers_say_why(served):
    locked = served({"/metrics": (401, b'{"error":"unauthorized"}', "application/json")})
    dead = f"http://127.0.0.1:{free_port()}"
    reader = ServerReader(
        [
            Provider("vllm@locked", VLLM, locked.base_url),
            Provider("vllm@dead", VLLM, dead),
            Provider("openai@x", OPENAI, locked.base_url),
        ]
    )
    got = reader.read()
    assert set(got) == {"unavailable"}
    assert got["unavailable"]["servers"] == (
        "vllm@locked: /metrics: HTTP 401 (wrong or missing --api-key?); "
        "vllm@dead: /metrics: connection refused; "
        "openai@x: no server-side metrics for a generic OpenAI-compatible server"
    )
    html = served({"/metrics": (200, b"<html>hello</html>", "text/html")})
    assert ServerReader([]).read_one(Provider("vllm@html", VLLM, html.base_url))["unavailable"] == (
        "/metrics: no vllm: metrics in the answer"
    )


@pytest.mark.real_server
def test_the_real_llama_server(tmp_path):
    """llama.cpp's own llama-server (started with --metrics, 2 slots): the reader takes its queue
    gauges from /metrics and its slots from /slots, and finds its process by name, with CPU and RSS."""
    from tests.realserver import LlamaServer

    server = LlamaServer(tmp_path)
    server.start()
    try:
        reader = ServerReader([])
        provider = Provider("llama@real", LLAMACPP, server.base_url)
        procs = ServerProcessSampler(rescan_s=0)
        procs.sample()
        httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": server.model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            timeout=60,
        )
        row = reader.read_one(provider)
        assert row["source"] == "llama.cpp /metrics, /slots" and "unavailable" not in row, row
        assert row["slots_total"] == 2 and row["slots_busy"] == 0
        assert row["requests_processing"] == 0 and row["requests_deferred"] == 0
        assert "kv_cache_usage_ratio" not in row  # gone from llama.cpp's /metrics since May 2025
        mine = [p for p in procs.sample()["server_procs"] if p["pid"] == server.proc.pid]
        assert mine and mine[0]["name"] == "llama-server"
        assert mine[0]["rss_bytes"] > 50 * 2**20 and mine[0]["cpu_pct"] > 0  # it just answered
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Server processes and psutil


def test_process_classification():
    assert (
        classify("llama-server", ["/opt/llama.cpp/build/bin/llama-server", "-m", "m.gguf"]) == "llama-server"
    )
    assert (
        classify("python3", ["/usr/bin/python3", "-m", "llama_cpp.server", "--model", "x"])
        == "llama_cpp.server"
    )
    assert classify("ollama", ["/usr/local/bin/ollama", "serve"]) == "ollama"
    assert classify("ollama", ["/usr/local/bin/ollama", "runner", "--model", "/x"]) == "ollama"
    assert classify("ollama_llama_server", ["ollama_llama_server", "--model", "/x"]) == "ollama"
    assert (
        classify("LM Studio Helper", ["/Applications/LM Studio.app/Contents/MacOS/LM Studio Helper"])
        == "LM Studio"
    )
    assert classify("python3", ["/venv/bin/python3", "/venv/bin/vllm", "serve", "Qwen/Qwen2.5-7B"]) == "vllm"
    assert classify("VLLM::EngineCore", []) == "vllm"
    assert classify("python3", ["python3", "-m", "vllm.entrypoints.openai.api_server"]) == "vllm"
    assert (
        classify("bash", ["bash"]) is None and classify("python3", ["python3", "-m", "http.server"]) is None
    )


@pytest.mark.integration
def test_a_server_process_is_found_by_name_and_followed(tmp_path):
    exe = tmp_path / "llama-server"
    shutil.copy(shutil.which("sleep"), exe)
    proc = subprocess.Popen([str(exe), "30"])
    try:
        sampler = ServerProcessSampler(rescan_s=0)
        first = [p for p in sampler.sample().get("server_procs", []) if p["pid"] == proc.pid]
        assert first == [{"name": "llama-server", "pid": proc.pid, "rss_bytes": first[0]["rss_bytes"]}]
        assert first[0]["rss_bytes"] > 0 and "cpu_pct" not in first[0]  # no CPU figure before a second look
        second = [p for p in sampler.sample()["server_procs"] if p["pid"] == proc.pid]
        assert second[0]["cpu_pct"] >= 0.0
    finally:
        proc.kill()
        proc.wait()
    after = sampler.sample()
    assert all(p["pid"] != proc.pid for p in after.get("server_procs", []))


def test_no_server_process_is_a_reason():
    got = ServerProcessSampler(classify_fn=lambda name, cmd: None).sample()
    assert got == {"unavailable": {"server_procs": NO_SERVER}}


def test_psutil_reading_has_frequency_or_leaves_it_out():
    got = SystemSampler().sample()
    assert got["source"] == "psutil" and got["mem_total_bytes"] > 0
    assert "cpu_freq_mhz" not in got or got["cpu_freq_mhz"] > 0


def test_static_sysfs_files_are_read_once_and_values_every_time(tmp_path):
    """Chip names, labels, limits, zone types, trip points and CPU topology are read on the first
    reading only; the values (temperatures, fans, counters) are read every time."""
    root = make_sysfs(tmp_path)
    reader = SysfsReader(root, platform="linux")
    first = reader.read()
    hw = root / "sys/class/hwmon"
    for static in (hw / "hwmon3/temp2_label", hw / "hwmon3/name", hw / "hwmon3/temp2_crit",
                   root / "sys/class/thermal/thermal_zone1/type",
                   root / "sys/class/thermal/thermal_zone1/trip_point_1_type",
                   root / "sys/devices/system/cpu/cpu0/topology/core_id"):  # fmt: skip
        static.unlink()
    _w(hw / "hwmon3/temp2_input", 81000)  # a value moves
    _w(root / "sys/class/thermal/thermal_zone1/temp", 75000)
    _w(root / "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", 20)
    second = reader.read()
    temps = {t["sensor"]: t for t in second["temps"]}
    assert temps["amdgpu/junction"] == {**{t["sensor"]: t for t in first["temps"]}["amdgpu/junction"], "c": 81.0}
    assert temps["thermal_zone1/x86_pkg_temp"]["c"] == 75.0 and temps["thermal_zone1/x86_pkg_temp"]["crit_c"] == 100.0
    assert second["cpu_throttle"]["core_events"] == 20 + 3
    # a new reader (the next run) does read them again
    fresh = {t["sensor"] for t in SysfsReader(root, platform="linux").read()["temps"]}
    assert "amdgpu/junction" not in fresh
