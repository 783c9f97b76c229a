"""Apple machines without root: macmon's JSON, the thermal-pressure level, ioreg's GPU utilisation,
and powermetrics only where sudo needs no password.

macOS has no sysfs; its sensors sit behind private frameworks. What works for an unprivileged user:
- `macmon pipe -i MS` (github.com/vladkens/macmon, `brew install macmon`) prints one JSON object per
  sample with CPU/GPU/ANE/SoC/system power in watts, average CPU and GPU temperatures, fans and GPU
  activity. It runs as one long-lived child whose lines are read on a thread, so a sample costs the
  sampler nothing but parsing (macmon itself samples over its interval).
- The thermal-pressure level that macOS throttles by: `notifyutil -g com.apple.system.thermalpressurelevel`
  prints the state of the notify key the kernel posts (0 nominal, 1 moderate, 2 heavy, 3 trapping,
  4 sleeping); it needs no root and takes milliseconds. (`pmset -g therm` only reports warning levels
  that Apple Silicon rarely sets; `sysctl` has no pressure level.)
- GPU utilisation from the IOAccelerator's `PerformanceStatistics` (`ioreg -r -d 1 -w 0 -c IOAccelerator`,
  "Device Utilization %"), used when macmon is not there, every 5 s (a child process per call).
- `powermetrics` needs root: it is started (as `sudo -n powermetrics ...`, streaming) only when
  `sudo -n true` succeeds, i.e. never prompts.
The parsers are pure functions over text so tests feed them recorded output; the commands run
through `which`/`path` so a test can put stand-in executables first.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from soaktui.thermal import THERMAL_PRESSURE_LEVELS as LEVELS  # notify state n is LEVELS[n]

THERMAL_KEY = "com.apple.system.thermalpressurelevel"
# NSProcessInfo.thermalState words, which some tools print, on the same scale
_WORDS = {"fair": "moderate", "serious": "heavy", "critical": "trapping"}
NO_MACMON = "macmon not installed (brew install macmon)"
NO_ROOT = "powermetrics needs root (sudo -n true fails)"
IOREG_EVERY_S = 5.0


# -- parsers (pure) --------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_macmon(line: str) -> dict[str, Any]:
    """One `macmon pipe` JSON line -> temps, fans, power and a GPU entry (source "macmon").

    Temperatures of 0 mean macmon found no sensor and are left out; power figures are kept even at
    0.0 W (an idle ANE really draws nothing), except `sys_power`, which macmon leaves at 0 when the
    machine has no system-power channel."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise ValueError("macmon line is not a JSON object")
    out: dict[str, Any] = {"temps": [], "fans": [], "power": [], "gpus": []}
    temp = d.get("temp") if isinstance(d.get("temp"), dict) else {}
    cpu_t, gpu_t = _num(temp.get("cpu_temp_avg")), _num(temp.get("gpu_temp_avg"))
    for key, kind, c in (("cpu_temp_avg", "cpu", cpu_t), ("gpu_temp_avg", "gpu", gpu_t)):
        if c is not None and 0 < c <= 150:
            out["temps"].append(
                {"sensor": f"macmon/{key}", "kind": kind, "c": round(c, 1), "source": "macmon"}
            )
    for i, fan in enumerate(d.get("fans") or []):
        rpm = _num(fan.get("rpm")) if isinstance(fan, dict) else None
        if rpm is not None and rpm >= 0:
            name = fan.get("name") or f"fan{i}"
            out["fans"].append({"sensor": f"macmon/{name}", "rpm": int(rpm), "source": "macmon"})
    for key, sensor in (
        ("cpu_power", "cpu"),
        ("gpu_power", "gpu"),
        ("ane_power", "ane"),
        ("ram_power", "dram"),
        ("all_power", "soc"),
        ("sys_power", "system"),
    ):
        w = _num(d.get(key))
        if w is None or w < 0 or (key == "sys_power" and w == 0):
            continue
        out["power"].append({"sensor": sensor, "w": round(w, 3), "source": "macmon"})
    gpu: dict[str, Any] = {"index": 0, "name": "Apple GPU", "source": "macmon"}
    soc = d.get("soc") if isinstance(d.get("soc"), dict) else {}
    if isinstance(soc.get("chip_name"), str):
        gpu["name"] = f"{soc['chip_name']} GPU"
    usage = d.get("gpu_usage")
    ratio = _num(d.get("gpu_active_ratio"))
    freq = _num(d.get("gpu_freq_mhz"))
    if isinstance(usage, list) and len(usage) == 2:
        freq = freq if freq is not None else _num(usage[0])
        ratio = ratio if ratio is not None else _num(usage[1])
    if ratio is not None and 0 <= ratio <= 1:
        gpu["util_pct"] = round(ratio * 100, 1)
    if freq is not None and freq > 0:
        gpu["clock_sm_mhz"] = freq
    if gpu_t is not None and 0 < gpu_t <= 150:
        gpu["temp_c"] = round(gpu_t, 1)
    gpu_w = _num(d.get("gpu_power"))
    if gpu_w is not None and gpu_w >= 0:
        gpu["power_w"] = round(gpu_w, 3)
    if len(gpu) > 3:
        out["gpus"].append(gpu)
    return {k: v for k, v in out.items() if v}


def parse_thermal_level(text: str) -> str | None:
    """`notifyutil -g com.apple.system.thermalpressurelevel` (or powermetrics' "Current pressure level:
    Nominal") -> nominal | moderate | heavy | trapping | sleeping; None if the text has no level."""
    m = re.search(re.escape(THERMAL_KEY) + r"\s+(\d+)", text)
    if m:
        n = int(m.group(1))
        return LEVELS[n] if n < len(LEVELS) else None
    m = re.search(r"Current pressure level:\s*(\w+)", text)
    if m:
        word = m.group(1).lower()
        word = _WORDS.get(word, word)
        return word if word in LEVELS else None
    return None


_IOREG_ENTRY = re.compile(r"^\+-o (\S+)", re.MULTILINE)


def parse_ioreg_gpus(text: str) -> list[dict[str, Any]]:
    """GPUs from `ioreg -r -d 1 -w 0 -c IOAccelerator`: one per `+-o` entry that has PerformanceStatistics."""
    starts = list(_IOREG_ENTRY.finditer(text))
    gpus: list[dict[str, Any]] = []
    for n, m in enumerate(starts):
        chunk = text[m.start() : starts[n + 1].start() if n + 1 < len(starts) else len(text)]
        stats_m = re.search(r'"PerformanceStatistics"\s*=\s*\{([^}]*)\}', chunk)
        if not stats_m:
            continue
        stats = dict(re.findall(r'"([^"]+)"\s*=\s*(-?\d+)', stats_m.group(1)))
        util = stats.get("Device Utilization %", stats.get("Renderer Utilization %"))
        gpu: dict[str, Any] = {"index": len(gpus), "name": m.group(1), "source": "ioreg"}
        model = re.search(r'"model"\s*=\s*<?"([^"]+)"', chunk)
        if model:
            gpu["name"] = model.group(1)
        if util is not None and 0 <= int(util) <= 100:
            gpu["util_pct"] = float(util)
        used = stats.get("In use system memory")
        if used is not None and int(used) >= 0:
            gpu["mem_used_bytes"] = int(used)
        if "util_pct" in gpu or "mem_used_bytes" in gpu:  # Intel iGPUs publish neither
            gpus.append(gpu)
    return gpus


def _mw(text: str, label: str) -> float | None:
    m = re.search(r"^" + re.escape(label) + r":\s*([\d.]+)\s*mW", text, re.MULTILINE)
    return float(m.group(1)) / 1000.0 if m else None


def parse_powermetrics(text: str) -> dict[str, Any]:
    """One sample block of `powermetrics --samplers cpu_power,gpu_power,thermal` (Apple Silicon), or
    with `smc` on Intel Macs -> power, GPU activity, thermal pressure, die temperatures, fan."""
    out: dict[str, Any] = {"power": [], "temps": [], "fans": [], "gpus": []}
    for label, sensor in (
        ("CPU Power", "cpu"),
        ("GPU Power", "gpu"),
        ("ANE Power", "ane"),
        ("Combined Power (CPU + GPU + ANE)", "soc"),
    ):
        w = _mw(text, label)
        if w is not None:
            out["power"].append({"sensor": sensor, "w": round(w, 3), "source": "powermetrics"})
    for label, kind in (("CPU die temperature", "cpu"), ("GPU die temperature", "gpu")):
        m = re.search(re.escape(label) + r":\s*([\d.]+)\s*C", text)
        if m and 0 < float(m.group(1)) <= 150:
            out["temps"].append(
                {
                    "sensor": f"powermetrics/{label}",
                    "kind": kind,
                    "c": float(m.group(1)),
                    "source": "powermetrics",
                }
            )
    fan = re.search(r"^Fan:\s*([\d.]+)\s*rpm", text, re.MULTILINE)
    if fan:
        out["fans"].append(
            {"sensor": "powermetrics/fan", "rpm": int(float(fan.group(1))), "source": "powermetrics"}
        )
    gpu: dict[str, Any] = {"index": 0, "name": "Apple GPU", "source": "powermetrics"}
    active = re.search(r"GPU (?:HW )?active residency:\s*([\d.]+)%", text)
    freq = re.search(r"GPU (?:HW )?active frequency:\s*([\d.]+)\s*MHz", text)
    if active:
        gpu["util_pct"] = float(active.group(1))
    if freq and float(freq.group(1)) > 0:
        gpu["clock_sm_mhz"] = float(freq.group(1))
    if len(gpu) > 3:
        out["gpus"].append(gpu)
    level = parse_thermal_level(text)
    result: dict[str, Any] = {k: v for k, v in out.items() if v}
    if level is not None:
        result["thermal_pressure"] = level
        result["thermal_pressure_source"] = "powermetrics"
    return result


# -- long-running children -----------------------------------------------------------------------------
class _Stream:
    """A long-lived child whose stdout is read on a daemon thread; keeps the newest complete record.

    A record is one line (macmon), or the lines from one `*** Sampled system activity` header up to
    its `Current pressure level` line (powermetrics)."""

    def __init__(self, cmd: list[str], header: str | None = None, footer: str | None = None) -> None:
        self.cmd = cmd
        self.header, self.footer = header, footer
        self._latest: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
        threading.Thread(target=self._pump, name=f"telemetry-{cmd[0]}", daemon=True).start()

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        block: list[str] = []
        for line in self._proc.stdout:
            if self.header is None:
                if line.strip():
                    self._keep(line)
                continue
            if line.startswith(self.header) and block:
                self._keep("".join(block))
                block = []
            block.append(line)
            if self.footer is not None and line.startswith(self.footer):
                self._keep("".join(block))
                block = []

    def _keep(self, text: str) -> None:
        with self._lock:
            self._latest = (text, time.monotonic())

    def latest(self, max_age_s: float) -> str | None:
        with self._lock:
            got = self._latest
        if got is None or time.monotonic() - got[1] > max_age_s:
            return None
        return got[0]

    def exited(self) -> int | None:
        return self._proc.poll()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=2)


class MacReader:
    def __init__(
        self,
        interval_s: float = 1.0,
        platform: str = sys.platform,
        path: str | None = None,
        run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    ) -> None:
        self.interval_s = interval_s
        self.darwin = platform == "darwin"
        self.path = path
        self._run = run
        self._started = False
        self._stream: _Stream | None = None
        self._stream_kind: str | None = None
        self._why_no_stream = ""
        self._ioreg_due = 0.0
        self._ioreg_gpus: list[dict[str, Any]] = []

    def _which(self, cmd: str) -> str | None:
        return shutil.which(cmd, path=self.path)

    def _output(self, cmd: list[str]) -> str | None:
        exe = self._which(cmd[0])
        if exe is None:
            return None
        try:
            done = self._run([exe, *cmd[1:]], capture_output=True, text=True, timeout=2.0)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def _start(self) -> None:
        self._started = True
        ms = str(max(100, int(self.interval_s * 1000)))
        macmon = self._which("macmon")
        if macmon is not None:
            self._stream = _Stream([macmon, "pipe", "-i", ms])
            self._stream_kind = "macmon"
            return
        sudo = self._which("sudo")
        ok = False
        if sudo is not None:
            try:
                ok = self._run([sudo, "-n", "true"], capture_output=True, timeout=2.0).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        if ok:
            cmd = [sudo, "-n", "powermetrics", "--samplers", "cpu_power,gpu_power,thermal", "-i", ms]
            self._stream = _Stream(cmd, header="*** Sampled system activity", footer="Current pressure level")
            self._stream_kind = "powermetrics"
            return
        self._why_no_stream = f"{NO_MACMON}; {NO_ROOT}"

    def read(self) -> dict[str, Any]:
        if not self.darwin:
            return {"unavailable": {"thermal_pressure": "not macOS"}}
        if not self._started:
            self._start()
        out: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        if self._stream is not None:
            text = self._stream.latest(max_age_s=max(3.0, 3 * self.interval_s))
            if text is not None:
                out.update(parse_macmon(text) if self._stream_kind == "macmon" else parse_powermetrics(text))
            else:
                code = self._stream.exited()
                why = (
                    f"{self._stream_kind} exited ({code})"
                    if code is not None
                    else f"no {self._stream_kind} sample yet"
                )
                for fam in ("temps", "fans", "power"):
                    unavailable[fam] = why
        else:
            for fam in ("temps", "fans", "power"):
                unavailable[fam] = self._why_no_stream
        if not out.get("fans") and "fans" not in unavailable:
            unavailable["fans"] = f"{self._stream_kind} reports no fan (fanless Mac?)"
        level_text = self._output(["notifyutil", "-g", THERMAL_KEY])
        level = parse_thermal_level(level_text) if level_text else None
        if level is not None:
            out["thermal_pressure"] = level
            out["thermal_pressure_source"] = "notifyutil"
        elif "thermal_pressure" not in out:
            unavailable["thermal_pressure"] = "notifyutil gave no thermal pressure level"
        if not out.get("gpus"):
            now = time.monotonic()
            if now >= self._ioreg_due:  # a process per call: every IOREG_EVERY_S, not every sample
                self._ioreg_due = now + IOREG_EVERY_S
                ioreg = self._output(["ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator"])
                self._ioreg_gpus = parse_ioreg_gpus(ioreg) if ioreg else []
            gpus = self._ioreg_gpus
            if gpus:
                out["gpus"] = gpus
            else:
                unavailable["gpu"] = "no GPU utilisation from ioreg IOAccelerator"
        if unavailable:
            out["unavailable"] = unavailable
        return out

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
