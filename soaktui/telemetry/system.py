"""CPU, frequency and memory of the whole machine through psutil, as one `telemetry` reading's fields.

Every reading names its source. What psutil cannot give here (load average on some platforms, a
frequency some virtual machines do not report, a failing call in a sandbox) is left out, so the
viewer shows "unavailable", never a zero. The first `cpu_percent` call only primes psutil's
counters; `SystemSampler` does it at creation, so each sample covers the time since the last one
(a sample taken within 50 ms of the previous one has no CPU share: that window is too short).
"""

from __future__ import annotations

import time
from typing import Any

import psutil


class SystemSampler:
    MIN_WINDOW_S = 0.05  # a CPU share over a shorter window than this is noise, not a reading

    def __init__(self) -> None:
        self._since = time.monotonic()
        try:
            psutil.cpu_percent(interval=None, percpu=True)
            self._primed = True
        except Exception:
            self._primed = False

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": "psutil"}
        now = time.monotonic()
        if self._primed and now - self._since >= self.MIN_WINDOW_S:
            self._since = now
            try:
                per_core = psutil.cpu_percent(interval=None, percpu=True)
                out["cpu_per_core_pct"] = per_core
                out["cpu_pct"] = round(sum(per_core) / len(per_core), 1) if per_core else None
            except Exception:
                pass
        try:
            vm = psutil.virtual_memory()
            out.update(mem_pct=vm.percent, mem_used_bytes=vm.total - vm.available, mem_total_bytes=vm.total)
        except Exception:
            pass
        try:
            sw = psutil.swap_memory()
            if sw.total:
                out.update(swap_pct=sw.percent, swap_used_bytes=sw.used)
        except Exception:
            pass
        try:
            freq = psutil.cpu_freq()
            if freq is not None and freq.current and freq.current > 0:
                out["cpu_freq_mhz"] = round(float(freq.current), 1)
        except Exception:  # psutil raises various errors where /proc or sysfs is unusual
            pass
        try:
            out["load_avg"] = [round(x, 2) for x in psutil.getloadavg()]
        except (AttributeError, OSError):
            pass
        return out
