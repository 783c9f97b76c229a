"""The telemetry sampler: every reader of the machine and the servers, on one background thread.

The engine's loop must never wait on a sensor, a subprocess or a server's /metrics, so all of that
runs here, on a daemon thread, every `interval_s` (the server endpoints every `server_interval_s`).
Each sample merges the readers' pieces into one reading (the dict the `telemetry` event carries,
see docs/events.md), adds the summary keys the thermal guard, the per-request window and the report
use (cpu_temp_c, gpu_temp_c, power_w, fan_rpm, gpu_throttle_reasons), and records, per reading
family that nothing could read, one short reason in `unavailable`. Readings go into a ring buffer
bounded in time (an hour at 1 s), from which `window()` gives the temperatures and power seen while a
request ran.

The thread never raises: a reader that throws is recorded as unavailable with the exception's
message (the first one, kept while it keeps failing) and retried a minute later, not every second.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from soaktui.providers.types import Provider
from soaktui.telemetry.macos import MacReader
from soaktui.telemetry.nvidia import NvidiaReader
from soaktui.telemetry.rapl import RaplReader
from soaktui.telemetry.server_procs import ServerProcessSampler
from soaktui.telemetry.servers import ServerReader
from soaktui.telemetry.sysfs import SysfsReader
from soaktui.telemetry.system import SystemSampler

# reading key -> the family named in `unavailable` when nothing could read it
FAMILY = {
    "temps": "temps",
    "fans": "fans",
    "power": "power",
    "gpus": "gpu",
    "thermal_pressure": "thermal_pressure",
    "cpu_throttle": "cpu_throttle",
    "server_procs": "server_procs",
    "servers": "servers",
}
LIST_KEYS = ("temps", "fans", "power", "gpus", "server_procs", "servers")
WINDOW_KEYS = (
    "cpu_temp_min_c",
    "cpu_temp_max_c",
    "gpu_temp_min_c",
    "gpu_temp_max_c",
    "power_min_w",
    "power_max_w",
    "power_mean_w",
)
RETRY_FAILED_S = 60.0
FIRST_SAMPLE_DELAY_S = 0.25


@dataclass
class Source:
    """One reader with what it covers and how often it runs (every sample when `every_s` is 0)."""

    name: str
    read: Callable[[], dict[str, Any]]
    families: tuple[str, ...]
    every_s: float = 0.0
    close: Callable[[], None] | None = None
    last: dict[str, Any] = field(default_factory=dict)
    due_ns: int = 0
    error: str | None = None


def default_sources(
    providers: Sequence[Provider], interval_s: float, server_interval_s: float
) -> list[Source]:
    """Every reader this platform might have; each says "unavailable" for what it cannot read here."""
    system = SystemSampler()
    procs = ServerProcessSampler(rescan_s=server_interval_s)
    sysfs, rapl, nvidia = SysfsReader(), RaplReader(), NvidiaReader()
    mac = MacReader(interval_s=interval_s)
    servers = ServerReader(list(providers), timeout_s=min(1.0, server_interval_s))
    return [
        Source("psutil", system.sample, ("cpu",)),
        Source("server processes", procs.sample, ("server_procs",)),
        Source("sysfs", sysfs.read, ("temps", "fans", "gpu", "cpu_throttle")),
        Source("rapl", rapl.read, ("power",)),
        Source("nvml", nvidia.read, ("gpu",), close=nvidia.close),
        Source("macos", mac.read, ("thermal_pressure", "temps", "fans", "power", "gpu"), close=mac.close),
        Source("servers", servers.read, ("servers",), every_s=server_interval_s, close=servers.close),
    ]


def merge(pieces: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One reading from the readers' pieces: lists joined, scalars first-come, reasons kept only
    for families that no reader could give."""
    out: dict[str, Any] = {}
    reasons: dict[str, list[str]] = {}
    for piece in pieces:
        for key, value in piece.items():
            if key == "unavailable":
                for fam, why in value.items():
                    reasons.setdefault(fam, []).append(why)
            elif key in LIST_KEYS:
                out.setdefault(key, []).extend(value)
            else:
                out.setdefault(key, value)
    present = {FAMILY[k] for k in out if k in FAMILY}
    unavailable = {
        fam: "; ".join(dict.fromkeys(whys)) for fam, whys in reasons.items() if fam not in present and whys
    }
    if unavailable:
        out["unavailable"] = unavailable
    return out


def summarize(reading: dict[str, Any]) -> dict[str, Any]:
    """The summary keys of a reading, each present only when known.

    power_w adds up sources that do not overlap: macOS's SoC figure (CPU+GPU+ANE) when there is one,
    else the CPU package(s) plus each GPU's own reading, else the platform's whole-system figure.
    `power_w_parts` names what went in, so a reader can tell CPU+GPU from GPU alone."""
    temps = reading.get("temps") or []
    gpus = reading.get("gpus") or []
    out: dict[str, Any] = {}
    cpu = [t["c"] for t in temps if t.get("kind") == "cpu"]
    gpu = [t["c"] for t in temps if t.get("kind") == "gpu"] + [g["temp_c"] for g in gpus if "temp_c" in g]
    if cpu:
        out["cpu_temp_c"] = max(cpu)
    if gpu:
        out["gpu_temp_c"] = max(gpu)
    power = {p["sensor"]: p["w"] for p in reading.get("power") or []}
    parts: list[str] = []
    total = 0.0
    if "soc" in power:
        parts, total = ["soc"], power["soc"]
    else:
        packages = [s for s in power if s.startswith("cpu_package")]
        for s in packages or (["cpu"] if "cpu" in power else []):
            parts.append(s)
            total += power[s]
        gpu_w = [(f"gpu{g['index']}", g["power_w"]) for g in gpus if "power_w" in g]
        if gpu_w:
            for name, w in gpu_w:
                parts.append(name)
                total += w
        elif "gpu" in power:
            parts.append("gpu")
            total += power["gpu"]
        if not parts and "system" in power:
            parts, total = ["system"], power["system"]
    if parts:
        out["power_w"] = round(total, 2)
        out["power_w_parts"] = parts
    fans = [f["rpm"] for f in reading.get("fans") or []]
    if fans:
        out["fan_rpm"] = max(fans)
    if any("throttle_reasons" in g for g in gpus):
        out["gpu_throttle_reasons"] = sorted({r for g in gpus for r in g.get("throttle_reasons") or []})
    return out


class TelemetrySampler:
    def __init__(
        self,
        providers: Sequence[Provider] = (),
        interval_s: float = 1.0,
        server_interval_s: float = 5.0,
        clock: Callable[[], int] = time.perf_counter_ns,
        sources: Sequence[Source] | None = None,
        history_s: float = 3600.0,
    ) -> None:
        self.providers = list(providers)
        self.interval_s = interval_s
        self.server_interval_s = server_interval_s
        self._clock = clock
        self._sources: list[Source] | None = list(sources) if sources is not None else None
        self._ring: deque[tuple[int, float | None, float | None, float | None]] = deque(
            maxlen=max(2, int(history_s / max(interval_s, 0.001)) + 1)
        )
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.thread_cpu_s = 0.0  # CPU time the sampler's thread has used (time.thread_time)

    # -- sampling ----------------------------------------------------------------------------------
    def _ensure_sources(self) -> list[Source]:
        if self._sources is None:
            self._sources = default_sources(self.providers, self.interval_s, self.server_interval_s)
        return self._sources

    def _read(self, src: Source, now: int) -> dict[str, Any]:
        if src.due_ns and now < src.due_ns:
            return src.last
        try:
            piece = src.read()
            if not isinstance(piece, dict):
                raise TypeError(f"reader returned {type(piece).__name__}, not a dict")
            src.error = None
            src.due_ns = now + int(src.every_s * 1e9) if src.every_s else 0
        except Exception as exc:  # a broken reader must cost its own readings, nothing else
            if src.error is None:
                src.error = f"{src.name} reader failed: {type(exc).__name__}: {exc}"[:300]
            piece = {"unavailable": dict.fromkeys(src.families, src.error)}
            src.due_ns = now + int(RETRY_FAILED_S * 1e9)
        src.last = piece
        return piece

    def sample_once(self) -> dict[str, Any]:
        """Take one reading now (on the calling thread), store it and return it."""
        now = self._clock()
        pieces = [self._read(src, now) for src in self._ensure_sources()]
        reading = merge(pieces)
        reading.update(summarize(reading))
        reading["sample_mono_ns"] = now
        with self._lock:
            self._ring.append(
                (now, reading.get("cpu_temp_c"), reading.get("gpu_temp_c"), reading.get("power_w"))
            )
            self._latest = reading
        self.samples += 1
        return reading

    def _run(self) -> None:
        t0 = time.thread_time()
        try:
            # Readers are made on this thread (NVML init, child processes); psutil's CPU counters are
            # primed then, so the first reading waits a moment to have a CPU share to report.
            try:
                self._ensure_sources()
            except Exception as exc:  # no reader could even be made: say so and sample nothing
                self._sources = []
                self._latest = {
                    "unavailable": {"telemetry": f"readers failed to start: {type(exc).__name__}: {exc}"}
                }
                return
            self._stop.wait(min(FIRST_SAMPLE_DELAY_S, self.interval_s))
            next_t = time.monotonic()
            while not self._stop.is_set():
                try:
                    self.sample_once()
                except Exception:  # merge/summary bugs: skip this sample, keep the thread alive
                    pass
                self.thread_cpu_s = time.thread_time() - t0
                next_t += self.interval_s
                delay = next_t - time.monotonic()
                if delay < 0:  # fell behind (a slow reader): start afresh rather than catch up
                    next_t, delay = time.monotonic(), 0.0
                self._stop.wait(delay)
        finally:
            self.close()

    def close(self) -> None:
        """Release what the readers hold (child processes, NVML, HTTP clients)."""
        for src in self._sources or ():
            if src.close is not None:
                try:
                    src.close()
                except Exception:
                    pass

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="soaktui-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    # -- reading back --------------------------------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        """The newest full reading (do not modify it), or None before the first sample."""
        return self._latest

    def window(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        """Min/max temperatures and min/max/mean power over the readings taken in [start, end],
        plus the one just before start (the state the request started in). Keys absent when unknown."""
        picked: list[tuple[int, float | None, float | None, float | None]] = []
        with self._lock:
            for entry in reversed(self._ring):
                if entry[0] > end_ns:
                    continue
                picked.append(entry)
                if entry[0] < start_ns:
                    break
        out: dict[str, Any] = {}
        for idx, lo, hi in ((1, "cpu_temp_min_c", "cpu_temp_max_c"), (2, "gpu_temp_min_c", "gpu_temp_max_c")):
            vals = [e[idx] for e in picked if e[idx] is not None]
            if vals:
                out[lo], out[hi] = min(vals), max(vals)
        watts = [e[3] for e in picked if e[3] is not None]
        if watts:
            out.update(
                power_min_w=min(watts), power_max_w=max(watts), power_mean_w=round(sum(watts) / len(watts), 2)
            )
        return out
