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


class SysfsReader:
    """hwmon + thermal zones + amdgpu + thermal_throttle counters, under `root` (normally "/")."""

    def __init__(self, root: Path | str = "/", platform: str = sys.platform) -> None:
        self.root = Path(root)
        self.linux = platform.startswith("linux")
        self.hwmon_dir = self.root / "sys/class/hwmon"
        self.thermal_dir = self.root / "sys/class/thermal"
        self.cpu_dir = self.root / "sys/devices/system/cpu"
        self._fans_seen: set[str] = set()

    # -- hwmon and amdgpu --------------------------------------------------------------------------
    def _chip(self, hw: Path, out: dict[str, Any], amd_index: int) -> bool:
        """Read one hwmon directory into `out`; True if it was an amdgpu device."""
        chip = _read(hw / "name") or hw.name
        device = hw / "device"
        is_amd = chip == "amdgpu" or _driver(device) == "amdgpu"
        source = "amdgpu" if is_amd else "hwmon"
        gpu_temp: float | None = None
        for f in _sorted(list(hw.glob("temp*_input"))):
            n = f.name[: -len("_input")]
            c = _celsius(_int(f))
            if c is None:
                continue
            label = _read(hw / f"{n}_label") or n
            row: dict[str, Any] = {
                "sensor": f"{chip}/{label}",
                "kind": "gpu" if is_amd else temp_kind(chip),
                "c": c,
                "source": source,
            }
            high, crit = _celsius(_int(hw / f"{n}_max")), _celsius(_int(hw / f"{n}_crit"))
            if high is not None:
                row["high_c"] = high
            if crit is not None:
                row["crit_c"] = crit
            out["temps"].append(row)
            if is_amd and (gpu_temp is None or label.lower() == "edge"):
                gpu_temp = c
        fan_rpm: int | None = None
        for f in _sorted(list(hw.glob("fan*_input"))):
            rpm = _int(f)
            key = str(f)
            if rpm is None or rpm < 0:
                continue
            if rpm > 0:
                self._fans_seen.add(key)
            if key not in self._fans_seen:
                continue
            n = f.name[: -len("_input")]
            label = _read(hw / f"{n}_label") or n
            out["fans"].append({"sensor": f"{chip}/{label}", "rpm": rpm, "source": source})
            fan_rpm = rpm if fan_rpm is None else max(fan_rpm, rpm)
        if not is_amd:
            return False
        card = next((c.name for c in (device / "drm").glob("card*")), None) if device.is_dir() else None
        index = _index(card) if card else amd_index
        gpu: dict[str, Any] = {"index": index, "name": f"amdgpu {card or hw.name}", "source": "amdgpu"}
        microwatts = _int(hw / "power1_average")
        if microwatts is None:
            microwatts = _int(hw / "power1_input")
        if microwatts is not None and microwatts > 0:
            watts = round(microwatts / 1e6, 2)
            gpu["power_w"] = watts
            out["power"].append({"sensor": f"gpu{index}", "w": watts, "source": "amdgpu"})
        if gpu_temp is not None:
            gpu["temp_c"] = gpu_temp
        busy = _int(device / "gpu_busy_percent")
        if busy is not None and 0 <= busy <= 100:
            gpu["util_pct"] = float(busy)
        used, total = _int(device / "mem_info_vram_used"), _int(device / "mem_info_vram_total")
        if used is not None and total:
            gpu.update(mem_used_bytes=used, mem_total_bytes=total)
        pwm, pwm_max = _int(hw / "pwm1"), _int(hw / "pwm1_max") or 255
        if pwm is not None and fan_rpm is not None:
            gpu["fan_pct"] = round(100.0 * pwm / pwm_max, 1)
        sclk = _current_clock(device / "pp_dpm_sclk")
        mclk = _current_clock(device / "pp_dpm_mclk")
        if sclk is not None:
            gpu["clock_sm_mhz"] = sclk
        if mclk is not None:
            gpu["clock_mem_mhz"] = mclk
        out["gpus"].append(gpu)
        return True

    def _thermal_zones(self, out: dict[str, Any], chips: set[str]) -> None:
        for zone in _sorted(list(self.thermal_dir.glob("thermal_zone*"))):
            kind_name = _read(zone / "type") or zone.name
            if kind_name in chips:  # the same sensor, already read through its hwmon device
                continue
            if (_read(zone / "mode") or "enabled") == "disabled":
                continue
            c = _celsius(_int(zone / "temp"))
            if c is None:
                continue
            row: dict[str, Any] = {
                "sensor": f"{zone.name}/{kind_name}",
                "kind": temp_kind(kind_name),
                "c": c,
                "source": "thermal_zone",
            }
            for trip in zone.glob("trip_point_*_type"):
                ttype = _read(trip)
                tc = _celsius(_int(trip.with_name(trip.name.replace("_type", "_temp"))))
                if tc is None:
                    continue
                if ttype == "critical":
                    row["crit_c"] = tc
                elif ttype == "hot":
                    row["high_c"] = tc
            out["temps"].append(row)

    # -- CPU thermal throttling --------------------------------------------------------------------
    def _throttle(self) -> dict[str, Any] | None:
        cores: dict[tuple[str, str], int] = {}
        packages: dict[str, int] = {}
        found = False
        for cpu in self.cpu_dir.glob("cpu[0-9]*"):
            tt = cpu / "thermal_throttle"
            if not tt.is_dir():
                continue
            pkg = _read(cpu / "topology/physical_package_id") or cpu.name
            core = _read(cpu / "topology/core_id") or cpu.name
            c = _int(tt / "core_throttle_count")
            p = _int(tt / "package_throttle_count")
            if c is not None:
                cores[(pkg, core)] = c  # hyperthread siblings share their core's counter
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
        out: dict[str, Any] = {"temps": [], "fans": [], "power": [], "gpus": []}
        unavailable: dict[str, str] = {}
        chips: set[str] = set()
        amd = 0
        hwmons = _sorted(list(self.hwmon_dir.glob("hwmon*")))
        for hw in hwmons:
            chips.add(_read(hw / "name") or hw.name)
            if self._chip(hw, out, amd):
                amd += 1
        self._thermal_zones(out, chips)
        if not out["temps"]:
            where = "no hwmon temperature sensors" if hwmons else "no /sys/class/hwmon devices"
            unavailable["temps"] = f"{where} and no readable thermal zones"
        if not out["fans"]:
            unavailable["fans"] = (
                "no fan sensors in /sys/class/hwmon" if hwmons else "no /sys/class/hwmon devices"
            )
        if not out["gpus"]:
            unavailable["gpu"] = "no AMD GPU (no amdgpu device in /sys/class/hwmon)"
        throttle = self._throttle()
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
