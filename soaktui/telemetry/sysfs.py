"""Linux sensors read straight from sysfs text files: hwmon temperatures and fans, thermal zones,
AMD GPUs (amdgpu's hwmon plus its DRM device files) and the CPU thermal-throttle counters.

No daemon and no privileges: these files are world-readable and cost microseconds to read, so they
can be read every second. `root` is a parameter so tests point the readers at a fake tree.
Units as the kernel documents them (Documentation/hwmon/sysfs-interface.rst, amdgpu.rst):
temp*_input in millidegrees C, fan*_input in RPM, power1_average/power1_input in microwatts,
mem_info_vram_* in bytes, gpu_busy_percent in percent. A sensor file that cannot be read (EIO,
ENODATA: a sensor that is wired but absent) is skipped; an implausible value (a temperature at or
below 0 C or above 250 C) is skipped too, since drivers use such values for "no reading". A fan is
shown once it has reported a nonzero speed: unconnected fan headers read 0 RPM forever, and a 0
there would be a zero that means "unknown".
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "x86_pkg_temp")
GPU_CHIPS = ("amdgpu", "radeon", "nouveau", "i915", "xe")
_NUM = re.compile(r"(\d+)")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _celsius(milli: int | None) -> float | None:
    if milli is None:
        return None
    c = milli / 1000.0
    return round(c, 1) if 0.0 < c <= 250.0 else None


def _index(name: str) -> int:
    m = _NUM.search(name)
    return int(m.group(1)) if m else 0


def _sorted(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (_index(p.name), p.name))


def temp_kind(chip: str) -> str:
    """cpu | gpu | nvme | other, from an hwmon chip name or a thermal zone type."""
    low = chip.lower()
    if low.startswith(CPU_CHIPS) or "pkg" in low or low.startswith(("cpu", "soc", "tcpu")):
        return "cpu"
    if low.startswith(GPU_CHIPS) or "gpu" in low:
        return "gpu"
    if low.startswith("nvme"):
        return "nvme"
    return "other"


def _driver(device: Path) -> str | None:
    try:
        return (device / "driver").resolve(strict=True).name
    except (OSError, RuntimeError):
        return None


@dataclass
class _Temp:
    path: Path  # temp*_input
    sensor: str
    kind: str
    high_c: float | None
    crit_c: float | None
    label: str


@dataclass
class _Fan:
    path: Path  # fan*_input
    sensor: str


@dataclass
class _Amd:
    index: int
    name: str
    device: Path
    pwm_max: int


@dataclass
class _Chip:
    """One hwmon directory, with everything about it that does not change while the machine runs."""

    chip: str
    source: str
    temps: list[_Temp]
    fans: list[_Fan]
    hw: Path
    amd: _Amd | None


@dataclass
class _Zone:
    temp: Path
    sensor: str
    kind: str
    high_c: float | None
    crit_c: float | None


@dataclass
class _Plan:
    """What to read every second, found once: the static files (chip names, labels, `_max` and
    `_crit` limits, zone types and trip points, CPU topology) are not read again."""

    chips: list[_Chip] = field(default_factory=list)
    zones: list[_Zone] = field(default_factory=list)
    throttle: list[tuple[tuple[str, str], str, Path, Path]] = field(default_factory=list)
    hwmon_dirs: int = 0


class SysfsReader:
    """hwmon + thermal zones + amdgpu + thermal_throttle counters, under `root` (normally "/").

    The directory walk and every static file are read on the first `read()` (the plan); later
    readings only open the files whose values move. A device that appears later (a GPU hot-plugged
    mid-run) is seen by the next run."""

    def __init__(self, root: Path | str = "/", platform: str = sys.platform) -> None:
        self.root = Path(root)
        self.linux = platform.startswith("linux")
        self.hwmon_dir = self.root / "sys/class/hwmon"
        self.thermal_dir = self.root / "sys/class/thermal"
        self.cpu_dir = self.root / "sys/devices/system/cpu"
        self._fans_seen: set[str] = set()
        self._plan: _Plan | None = None

    # -- the plan: found once ------------------------------------------------------------------------
    def _plan_chip(self, hw: Path, amd_index: int) -> _Chip:
        chip = _read(hw / "name") or hw.name
        device = hw / "device"
        is_amd = chip == "amdgpu" or _driver(device) == "amdgpu"
        temps = []
        for f in _sorted(list(hw.glob("temp*_input"))):
            n = f.name[: -len("_input")]
            label = _read(hw / f"{n}_label") or n
            kind = "gpu" if is_amd else temp_kind(chip)
            high, crit = _celsius(_int(hw / f"{n}_max")), _celsius(_int(hw / f"{n}_crit"))
            temps.append(_Temp(f, f"{chip}/{label}", kind, high, crit, label))
        fans = []
        for f in _sorted(list(hw.glob("fan*_input"))):
            n = f.name[: -len("_input")]
            fans.append(_Fan(f, f"{chip}/{_read(hw / f'{n}_label') or n}"))
        amd = None
        if is_amd:
            card = next((c.name for c in (device / "drm").glob("card*")), None) if device.is_dir() else None
            index = _index(card) if card else amd_index
            amd = _Amd(index, f"amdgpu {card or hw.name}", device, _int(hw / "pwm1_max") or 255)
        return _Chip(chip, "amdgpu" if is_amd else "hwmon", temps, fans, hw, amd)

    def _plan_zones(self, chips: set[str]) -> list[_Zone]:
        zones = []
        for zone in _sorted(list(self.thermal_dir.glob("thermal_zone*"))):
            kind_name = _read(zone / "type") or zone.name
            if kind_name in chips:  # the same sensor, already read through its hwmon device
                continue
            if (_read(zone / "mode") or "enabled") == "disabled":
                continue
            high = crit = None
            for trip in zone.glob("trip_point_*_type"):
                ttype = _read(trip)
                tc = _celsius(_int(trip.with_name(trip.name.replace("_type", "_temp"))))
                if tc is None:
                    continue
                if ttype == "critical":
                    crit = tc
                elif ttype == "hot":
                    high = tc
            zones.append(_Zone(zone / "temp", f"{zone.name}/{kind_name}", temp_kind(kind_name), high, crit))
        return zones

    def _plan_throttle(self) -> list[tuple[tuple[str, str], str, Path, Path]]:
        out = []
        for cpu in self.cpu_dir.glob("cpu[0-9]*"):
            tt = cpu / "thermal_throttle"
            if not tt.is_dir():
                continue
            pkg = _read(cpu / "topology/physical_package_id") or cpu.name
            core = _read(cpu / "topology/core_id") or cpu.name
            out.append(((pkg, core), pkg, tt / "core_throttle_count", tt / "package_throttle_count"))
        return out

    def _make_plan(self) -> _Plan:
        plan = _Plan()
        hwmons = _sorted(list(self.hwmon_dir.glob("hwmon*")))
        plan.hwmon_dirs = len(hwmons)
        amd = 0
        for hw in hwmons:
            c = self._plan_chip(hw, amd)
            plan.chips.append(c)
            amd += c.amd is not None
        plan.zones = self._plan_zones({c.chip for c in plan.chips})
        plan.throttle = self._plan_throttle()
        return plan

    # -- a reading: only the values that move ----------------------------------------------------------
    def _chip(self, c: _Chip, out: dict[str, Any]) -> None:
        gpu_temp: float | None = None
        for t in c.temps:
            value = _celsius(_int(t.path))
            if value is None:
                continue
            row: dict[str, Any] = {"sensor": t.sensor, "kind": t.kind, "c": value, "source": c.source}
            if t.high_c is not None:
                row["high_c"] = t.high_c
            if t.crit_c is not None:
                row["crit_c"] = t.crit_c
            out["temps"].append(row)
            if c.amd is not None and (gpu_temp is None or t.label.lower() == "edge"):
                gpu_temp = value
        fan_rpm: int | None = None
        for f in c.fans:
            rpm = _int(f.path)
            key = str(f.path)
            if rpm is None or rpm < 0:
                continue
            if rpm > 0:
                self._fans_seen.add(key)
            if key not in self._fans_seen:
                continue
            out["fans"].append({"sensor": f.sensor, "rpm": rpm, "source": c.source})
            fan_rpm = rpm if fan_rpm is None else max(fan_rpm, rpm)
        if c.amd is not None:
            out["gpus"].append(self._amd(c, c.amd, gpu_temp, fan_rpm, out))

    @staticmethod
    def _amd(
        c: _Chip, a: _Amd, gpu_temp: float | None, fan_rpm: int | None, out: dict[str, Any]
    ) -> dict[str, Any]:
        gpu: dict[str, Any] = {"index": a.index, "name": a.name, "source": "amdgpu"}
        microwatts = _int(c.hw / "power1_average")
        if microwatts is None:
            microwatts = _int(c.hw / "power1_input")
        if microwatts is not None and microwatts > 0:
            watts = round(microwatts / 1e6, 2)
            gpu["power_w"] = watts
            out["power"].append({"sensor": f"gpu{a.index}", "w": watts, "source": "amdgpu"})
        if gpu_temp is not None:
            gpu["temp_c"] = gpu_temp
        busy = _int(a.device / "gpu_busy_percent")
        if busy is not None and 0 <= busy <= 100:
            gpu["util_pct"] = float(busy)
        used, total = _int(a.device / "mem_info_vram_used"), _int(a.device / "mem_info_vram_total")
        if used is not None and total:
            gpu.update(mem_used_bytes=used, mem_total_bytes=total)
        pwm = _int(c.hw / "pwm1")
        if pwm is not None and fan_rpm is not None:
            gpu["fan_pct"] = round(100.0 * pwm / a.pwm_max, 1)
        sclk = _current_clock(a.device / "pp_dpm_sclk")
        mclk = _current_clock(a.device / "pp_dpm_mclk")
        if sclk is not None:
            gpu["clock_sm_mhz"] = sclk
        if mclk is not None:
            gpu["clock_mem_mhz"] = mclk
        return gpu

    def _zones(self, plan: _Plan, out: dict[str, Any]) -> None:
        for z in plan.zones:
            value = _celsius(_int(z.temp))
            if value is None:
                continue
            row: dict[str, Any] = {"sensor": z.sensor, "kind": z.kind, "c": value, "source": "thermal_zone"}
            if z.crit_c is not None:
                row["crit_c"] = z.crit_c
            if z.high_c is not None:
                row["high_c"] = z.high_c
            out["temps"].append(row)

    # -- CPU thermal throttling --------------------------------------------------------------------
    def _throttle(self, plan: _Plan) -> dict[str, Any] | None:
        cores: dict[tuple[str, str], int] = {}
        packages: dict[str, int] = {}
        found = False
        for key, pkg, core_path, pkg_path in plan.throttle:
            c = _int(core_path)
            p = _int(pkg_path)
            if c is not None:
                cores[key] = c  # hyperthread siblings share their core's counter
                found = True
            if p is not None:
                packages[pkg] = p
                found = True
        if not found:
            return None
        out: dict[str, Any] = {"source": "sysfs thermal_throttle"}
        if cores:
            out["core_events"] = sum(cores.values())
        if packages:
            out["package_events"] = sum(packages.values())
        return out

    def read(self) -> dict[str, Any]:
        if not self.linux:
            return {"unavailable": {"cpu_throttle": "Linux only (sysfs thermal_throttle)"}}
        plan = self._plan
        if plan is None:
            plan = self._plan = self._make_plan()
        out: dict[str, Any] = {"temps": [], "fans": [], "power": [], "gpus": []}
        unavailable: dict[str, str] = {}
        for c in plan.chips:
            self._chip(c, out)
        self._zones(plan, out)
        hwmons = plan.hwmon_dirs
        if not out["temps"]:
            where = "no hwmon temperature sensors" if hwmons else "no /sys/class/hwmon devices"
            unavailable["temps"] = f"{where} and no readable thermal zones"
        if not out["fans"]:
            unavailable["fans"] = (
                "no fan sensors in /sys/class/hwmon" if hwmons else "no /sys/class/hwmon devices"
            )
        if not out["gpus"]:
            unavailable["gpu"] = "no AMD GPU (no amdgpu device in /sys/class/hwmon)"
        throttle = self._throttle(plan)
        if throttle is None:
            unavailable["cpu_throttle"] = "no thermal_throttle counters in /sys/devices/system/cpu"
        else:
            out["cpu_throttle"] = throttle
        reading = {k: v for k, v in out.items() if v}
        if unavailable:
            reading["unavailable"] = unavailable
        return reading


def _current_clock(path: Path) -> float | None:
    """The clock marked `*` in amdgpu's pp_dpm_sclk / pp_dpm_mclk (lines like `1: 1800Mhz *`)."""
    text = _read(path)
    if not text:
        return None
    for line in text.splitlines():
        if line.rstrip().endswith("*"):
            m = re.search(r"(\d+)\s*[Mm][Hh]z", line)
            if m:
                return float(m.group(1))
    return None
