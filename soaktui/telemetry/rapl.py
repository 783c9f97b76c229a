"""CPU package (and DRAM, platform) power on Linux from RAPL energy counters in sysfs powercap.

The kernel exposes cumulative energy, not power: `energy_uj` in microjoules per zone
(/sys/class/powercap/intel-rapl:N for a package or the platform "psys", intel-rapl:N:M for its
core/uncore/dram parts; AMD CPUs use the same names). Watts are the counter's change over the
monotonic time between two reads, so the first read gives no figure (absent, not 0). A counter
that goes backwards wrapped at `max_energy_range_uj`, which is added back. Since Linux 5.10 the
energy files are readable by root only (a side channel, CVE-2020-8694): then power is
"unavailable", never 0.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT_ONLY = "RAPL energy_uj is root-only here"
_SENSOR = {"core": "cpu_cores", "uncore": "cpu_uncore", "dram": "dram", "psys": "system"}


def _zones(base: Path) -> list[Path]:
    found = [p for p in base.glob("intel-rapl:*") if (p / "energy_uj").exists()]
    return sorted(found, key=lambda p: [int(x) for x in p.name.split(":")[1:] if x.isdigit()])


def _name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


class RaplReader:
    def __init__(
        self,
        root: Path | str = "/",
        clock: Callable[[], int] = time.perf_counter_ns,
        platform: str = sys.platform,
    ) -> None:
        self.base = Path(root) / "sys/class/powercap"
        self.linux = platform.startswith("linux")
        self._clock = clock
        self._last: dict[str, tuple[int, int]] = {}  # zone -> (energy_uj, clock ns)
        self._names: dict[str, str] = {}
        self._ranges: dict[str, int | None] = {}
        self._zone_list: list[Path] | None = None  # found on the first reading (fixed for the boot)

    def _learn(self, zone: Path, packages: int) -> None:
        """Name a zone's power sensor and note its wrap-around range (both fixed for the boot)."""
        name = _name(zone)
        if name.startswith("package-"):
            sensor = "cpu_package" if packages <= 1 else f"cpu_package{name.split('-', 1)[1]}"
        else:
            sensor = _SENSOR.get(name, name)
        self._names[zone.name] = sensor
        try:
            self._ranges[zone.name] = int((zone / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            self._ranges[zone.name] = None

    def read(self) -> dict[str, Any]:
        if not self.linux:
            return {}
        if self._zone_list is None:
            self._zone_list = _zones(self.base)
        zones = self._zone_list
        if not zones:
            return {"unavailable": {"power": "no RAPL powercap zones in /sys/class/powercap"}}
        if not self._names:
            packages = sum(1 for z in zones if _name(z).startswith("package-"))
            for z in zones:
                self._learn(z, packages)
        rows: list[dict[str, Any]] = []
        denied = 0
        for zone in zones:
            sensor = self._names.get(zone.name, zone.name)
            try:
                energy = int((zone / "energy_uj").read_text())
            except PermissionError:
                denied += 1
                continue
            except (OSError, ValueError):
                continue
            now = self._clock()
            prev = self._last.get(zone.name)
            self._last[zone.name] = (energy, now)
            if prev is None or now <= prev[1]:
                continue
            delta = energy - prev[0]
            if delta < 0:
                wrap = self._ranges.get(zone.name)
                if not wrap:
                    continue
                delta += wrap
            watts = delta / 1e6 / ((now - prev[1]) / 1e9)
            rows.append({"sensor": sensor, "w": round(watts, 2), "source": "rapl"})
        if denied and denied == len(zones):
            return {"unavailable": {"power": ROOT_ONLY}}
        return {"power": rows} if rows else {}
