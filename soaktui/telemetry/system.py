"""CPU and memory of the whole machine through psutil, as one `telemetry` event's fields.

Every reading names its source. What psutil cannot give here (load average on some platforms, a
failing call in a sandbox) is left out, so the viewer shows "unavailable", never a zero.
The first `cpu_percent` call only primes psutil's counters; `SystemSampler` does it at creation.
"""

from __future__ import annotations

from typing import Any

import psutil


class SystemSampler:
    def __init__(self) -> None:
        try:
            psutil.cpu_percent(interval=None, percpu=True)
            self._primed = True
        except Exception:
            self._primed = False

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": "psutil"}
        if self._primed:
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
            out["load_avg"] = [round(x, 2) for x in psutil.getloadavg()]
        except (AttributeError, OSError):
            pass
        return out
