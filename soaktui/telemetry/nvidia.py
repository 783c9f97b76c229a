"""NVIDIA GPUs through NVML (the optional `nvidia-ml-py` package, extra `soaktui[nvidia]`).

NVML is what nvidia-smi reads: temperature, power and total energy, fan, SM and memory clocks,
utilisation, memory, and the clocks-event ("throttle") reasons, decoded here to words with NVML's
own bit constants so a report can say *why* the clocks dropped (sw_thermal_slowdown, sw_power_cap,
...). A field the GPU does not support (NVMLError_NotSupported; laptops often have no fan or power
reading) is absent, not 0. No package, or no driver, makes the whole family "unavailable".
The module is imported and NVML initialised lazily, on the sampler's thread; `nvml` can be passed
in (tests hand in a stand-in module fed with recorded values).

The clocks-event reasons have two NVML calls: nvmlDeviceGetCurrentClocksEventReasons (the newer
name) and nvmlDeviceGetCurrentClocksThrottleReasons (the older one, still in the library). A recent
nvidia-ml-py defines both in Python whatever the driver, and looks the C symbol up only when called:
pynvml.py's _nvmlGetFunctionPointer raises NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND), i.e.
NVMLError_FunctionNotFound, when the driver's libnvidia-ml lacks it (nvidia-ml-py 13.615.71). So the
newer call is tried first and, on an older driver, the older one is used instead; the choice is
made once per reader, not retried at every sample.
"""

from __future__ import annotations

import sys
from typing import Any

NO_DRIVER = "no NVIDIA driver (nvidia-ml-py not installed or NVML init failed)"
NOT_INSTALLED = "nvidia-ml-py is not installed (pip install 'soaktui[nvidia]')"
EVENT_REASONS_FN = "nvmlDeviceGetCurrentClocksEventReasons"
THROTTLE_REASONS_FN = "nvmlDeviceGetCurrentClocksThrottleReasons"
FUNCTION_NOT_FOUND = 13  # NVML_ERROR_FUNCTION_NOT_FOUND (nvml.h; pynvml.py)

# (word, NVML constant names: the clocks-event spelling first, then the older throttle spelling)
REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gpu_idle", ("nvmlClocksEventReasonGpuIdle", "nvmlClocksThrottleReasonGpuIdle")),
    (
        "applications_clocks_setting",
        (
            "nvmlClocksEventReasonApplicationsClocksSetting",
            "nvmlClocksThrottleReasonApplicationsClocksSetting",
        ),
    ),
    ("sw_power_cap", ("nvmlClocksEventReasonSwPowerCap", "nvmlClocksThrottleReasonSwPowerCap")),
    ("hw_slowdown", ("nvmlClocksEventReasonHwSlowdown", "nvmlClocksThrottleReasonHwSlowdown")),
    ("sync_boost", ("nvmlClocksEventReasonSyncBoost", "nvmlClocksThrottleReasonSyncBoost")),
    (
        "sw_thermal_slowdown",
        ("nvmlClocksEventReasonSwThermalSlowdown", "nvmlClocksThrottleReasonSwThermalSlowdown"),
    ),
    (
        "hw_thermal_slowdown",
        ("nvmlClocksEventReasonHwThermalSlowdown", "nvmlClocksThrottleReasonHwThermalSlowdown"),
    ),
    (
        "hw_power_brake_slowdown",
        ("nvmlClocksEventReasonHwPowerBrakeSlowdown", "nvmlClocksThrottleReasonHwPowerBrakeSlowdown"),
    ),
    (
        "display_clock_setting",
        ("nvmlClocksEventReasonDisplayClockSetting", "nvmlClocksThrottleReasonDisplayClockSetting"),
    ),
)


def decode_reasons(bits: int, nvml: Any) -> list[str]:
    """Words for the set bits of a clocks-event mask; a bit NVML has no constant for is `0x..`."""
    words: list[str] = []
    known = 0
    for word, names in REASONS:
        value = next((getattr(nvml, n) for n in names if isinstance(getattr(nvml, n, None), int)), None)
        if value is None:
            continue
        known |= value
        if bits & value:
            words.append(word)
    rest = bits & ~known
    bit = 1
    while rest:
        if rest & bit:
            words.append(f"0x{bit:x}")
            rest &= ~bit
        bit <<= 1
    return words


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class NvidiaReader:
    def __init__(self, nvml: Any = None, platform: str = sys.platform) -> None:
        self._nvml = nvml
        self._darwin = platform == "darwin"
        self._ready = False
        self._failed: str | None = None
        self._handles: list[Any] = []
        self._error: type[BaseException] = Exception
        # the clocks-event call this driver has: None until known, "" when it has neither
        self._reasons_fn: str | None = None
        # per GPU, what does not change while the driver is loaded (name, slowdown and shutdown
        # temperatures): asked once, not every second
        self._static: dict[int, tuple[str | None, Any, Any]] = {}

    def _init(self) -> None:
        if self._nvml is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError:
                self._failed = f"{NO_DRIVER}: {NOT_INSTALLED}"
                return
            except Exception as exc:  # a broken install can raise anything at import
                self._failed = f"{NO_DRIVER}: {type(exc).__name__}: {exc}"
                return
            self._nvml = pynvml
        nv = self._nvml
        self._error = getattr(nv, "NVMLError", Exception)
        try:
            nv.nvmlInit()
            count = nv.nvmlDeviceGetCount()
            self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, OSError ...
            self._failed = f"{NO_DRIVER}: {exc or type(exc).__name__}"
            return
        self._ready = True
        if not self._handles:
            self._failed = "NVML found no NVIDIA GPU"

    def _get(self, fn: str, *args: Any) -> Any:
        """One NVML call; None when the GPU does not support it (or it fails), so the field is absent."""
        call = getattr(self._nvml, fn, None)
        if call is None:
            return None
        try:
            return call(*args)
        except self._error:  # NVMLError_NotSupported above all; any NVML error leaves the field out
            return None

    def _not_found(self, exc: BaseException) -> bool:
        code = getattr(self._nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", FUNCTION_NOT_FOUND)
        return getattr(exc, "value", None) == code

    def _clock_reasons(self, h: Any) -> Any:
        """The clocks-event mask, from the call this driver has (the newer one first); None when
        the GPU or driver cannot say."""
        if self._reasons_fn == "":
            return None
        names = (
            [self._reasons_fn]
            if self._reasons_fn
            else [n for n in (EVENT_REASONS_FN, THROTTLE_REASONS_FN) if hasattr(self._nvml, n)]
        )
        for fn in names:
            try:
                bits = getattr(self._nvml, fn)(h)
            except self._error as exc:
                if self._not_found(exc):  # defined in Python, missing from this driver's library
                    continue
                self._reasons_fn = fn  # the driver has it; this GPU just cannot say (NotSupported ...)
                return None
            self._reasons_fn = fn
            return bits
        self._reasons_fn = ""
        return None

    def _gpu(self, i: int, h: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        nv = self._nvml
        gpu: dict[str, Any] = {"index": i, "source": "nvml"}
        temps: list[dict[str, Any]] = []
        power: list[dict[str, Any]] = []
        static = self._static.get(i)
        if static is None:
            raw = self._get("nvmlDeviceGetName", h)
            static = self._static[i] = (
                None if raw is None else _text(raw),
                self._get(
                    "nvmlDeviceGetTemperatureThreshold",
                    h,
                    getattr(nv, "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1),
                ),
                self._get(
                    "nvmlDeviceGetTemperatureThreshold",
                    h,
                    getattr(nv, "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN", 0),
                ),
            )
        name, slow, shut = static
        if name is not None:
            gpu["name"] = name
        t = self._get("nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
        if isinstance(t, (int, float)) and t > 0:
            gpu["temp_c"] = float(t)
            row: dict[str, Any] = {"sensor": f"nvml/gpu{i}", "kind": "gpu", "c": float(t), "source": "nvml"}
            if isinstance(slow, (int, float)) and slow > 0:
                row["high_c"] = float(slow)
            if isinstance(shut, (int, float)) and shut > 0:
                row["crit_c"] = float(shut)
            temps.append(row)
        mw = self._get("nvmlDeviceGetPowerUsage", h)
        if isinstance(mw, (int, float)) and mw >= 0:
            gpu["power_w"] = round(mw / 1000.0, 2)
            power.append({"sensor": f"gpu{i}", "w": gpu["power_w"], "source": "nvml"})
        mj = self._get("nvmlDeviceGetTotalEnergyConsumption", h)
        if isinstance(mj, (int, float)) and mj > 0:
            gpu["energy_j"] = round(mj / 1000.0, 3)
        fan = self._get("nvmlDeviceGetFanSpeed", h)
        if isinstance(fan, (int, float)) and 0 <= fan <= 100:
            gpu["fan_pct"] = float(fan)
        sm = self._get("nvmlDeviceGetClockInfo", h, getattr(nv, "NVML_CLOCK_SM", 1))
        mem = self._get("nvmlDeviceGetClockInfo", h, getattr(nv, "NVML_CLOCK_MEM", 2))
        if isinstance(sm, (int, float)) and sm > 0:
            gpu["clock_sm_mhz"] = float(sm)
        if isinstance(mem, (int, float)) and mem > 0:
            gpu["clock_mem_mhz"] = float(mem)
        util = self._get("nvmlDeviceGetUtilizationRates", h)
        if util is not None and isinstance(getattr(util, "gpu", None), (int, float)):
            gpu["util_pct"] = float(util.gpu)
        meminfo = self._get("nvmlDeviceGetMemoryInfo", h)
        if meminfo is not None and getattr(meminfo, "total", 0):
            gpu.update(mem_used_bytes=int(meminfo.used), mem_total_bytes=int(meminfo.total))
        bits = self._clock_reasons(h)
        if isinstance(bits, int):
            gpu["throttle_reasons"] = decode_reasons(bits, nv)
        return gpu, temps, power

    def read(self) -> dict[str, Any]:
        if self._darwin:
            return {}
        if not self._ready and self._failed is None:
            self._init()
        if self._failed is not None:
            return {"unavailable": {"gpu": self._failed}}
        out: dict[str, Any] = {"gpus": [], "temps": [], "power": []}
        for i, h in enumerate(self._handles):
            gpu, temps, power = self._gpu(i, h)
            out["gpus"].append(gpu)
            out["temps"].extend(temps)
            out["power"].extend(power)
        return {k: v for k, v in out.items() if v}

    def close(self) -> None:
        if self._ready and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._ready = False
