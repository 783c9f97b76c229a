"""What does the telemetry sampler cost? CPU of its thread at 1 s sampling.

The sampler (soaktui/telemetry/sampler.py) runs in the engine's process for the whole run, so its
thread must stay cheap. This script starts the built-in simulator (`soaktui simulate`, LM Studio
flavour, its own process) as the provider whose endpoints the server reader polls every 5 s, then
runs a TelemetrySampler with every default reader at `--interval` for `--seconds`. The thread's
CPU time comes from `time.thread_time()` taken inside the thread after each sample (user + system
CPU of that thread alone); psutil's per-thread times for the same native thread id are printed
beside it as a cross-check. The first samples (start-up: psutil priming, NVML init, the first
process scan) are reported apart from the steady state, which starts after `--warmup` seconds.

Child processes some readers keep or start (macmon, powermetrics, notifyutil, ioreg on macOS) are
not the sampler's thread and are not counted; on Linux there are none.

Printed: samples taken, CPU seconds and percent of one core (steady state and overall), CPU per
sample, and the machine's load. Which readers had something to read here is listed too: a machine
with sensors, an NVIDIA GPU or LLM server processes does more work per sample than one without.

Target: the sampler is "cheap"; the figure is quoted in the closing note.

    .venv/bin/python bench/sampler_cost.py [--seconds 60] [--interval 1.0] [--warmup 5] [--no-server]
"""

from __future__ import annotations

import argparse
import threading
import time

import psutil
from _common import load_text

from soaktui.providers.types import LMSTUDIO, Provider
from soaktui.simulator.launcher import SimulatorProcess
from soaktui.telemetry.sampler import FAMILY, TelemetrySampler


def thread_times(native_id: int | None) -> float | None:
    """user + system CPU seconds of one thread of this process, from psutil (None if not found)."""
    if native_id is None:
        return None
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return None


def sysfs_tree(n: int) -> None:
    """CPU per SysfsReader.read() on a sensor tree shaped like a desktop with an AMD GPU."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from soaktui.telemetry.sysfs import SysfsReader
    from tests.test_telemetry_readers import make_sysfs

    with tempfile.TemporaryDirectory() as tmp:
        reader = SysfsReader(make_sysfs(Path(tmp)), platform="linux")
        t0 = time.thread_time()
        reader.read()
        first = time.thread_time() - t0
        t0 = time.thread_time()
        for _ in range(n):
            reader.read()
        each = (time.thread_time() - t0) / n
    print(f"sysfs reader over the recorded-shape tree: first reading {first * 1e3:.2f} ms CPU, "
          f"then {each * 1e6:.0f} µs CPU per reading ({n} readings)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="steady-state measurement time")
    ap.add_argument("--interval", type=float, default=1.0, help="sampling interval, seconds")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the steady state starts")
    ap.add_argument(
        "--no-server", action="store_true", help="no provider: the server reader has nothing to poll"
    )
    ap.add_argument(
        "--sysfs-tree",
        type=int,
        metavar="N",
        help="instead: N readings of the sysfs reader over the tests' recorded-shape sensor tree "
        "(coretemp, nvme, nct6798 fans, an amdgpu, thermal zones, 4 CPUs' throttle counters), as this "
        "machine may have no sensors; prints CPU per reading, the first (the plan) apart",
    )
    args = ap.parse_args()

    print(load_text())
    if args.sysfs_tree:
        sysfs_tree(args.sysfs_tree)
        return
    sim = None
    providers: list[Provider] = []
    if not args.no_server:
        sim = SimulatorProcess(seed=1, extra_args=["--flavor", "lmstudio"])
        base = sim.start()
        providers = [Provider(name="lmstudio@sim", kind=LMSTUDIO, base_url=base)]
        print(f"provider: the simulator (LM Studio flavour) at {base}, polled every 5 s")
    sampler = TelemetrySampler(providers, interval_s=args.interval)
    try:
        sampler.start()
        time.sleep(args.warmup)
        native = next((t.native_id for t in threading.enumerate() if t.name == "soaktui-telemetry"), None)
        c0, n0, p0 = sampler.thread_cpu_s, sampler.samples, thread_times(native)
        t0 = time.perf_counter()
        time.sleep(args.seconds)
        c1, n1, p1 = sampler.thread_cpu_s, sampler.samples, thread_times(native)
        wall = time.perf_counter() - t0
        total_wall = args.warmup + wall
    finally:
        sampler.stop()
        if sim is not None:
            sim.stop()
    reading = sampler.latest() or {}
    had = sorted(k for k in FAMILY if k in reading)
    why = reading.get("unavailable", {})
    print(f"readers with readings here: {', '.join(had) or 'none'}")
    print(f"unavailable here: {', '.join(f'{k} ({v})' for k, v in why.items()) or 'nothing'}")
    steady = c1 - c0
    n = n1 - n0
    print(f"\nsteady state: {n} samples in {wall:.1f} s (interval {args.interval:g} s)")
    print(f"  sampler thread CPU   {steady:.3f} s = {100 * steady / wall:.2f}% of one core")
    if n:
        print(f"  per sample           {1000 * steady / n:.2f} ms")
    if p0 is not None and p1 is not None:
        print(
            f"  psutil thread times  {p1 - p0:.3f} s = {100 * (p1 - p0) / wall:.2f}% of one core (cross-check)"
        )
    print(
        f"overall, start-up included: {c1:.3f} s over {total_wall:.1f} s = {100 * c1 / total_wall:.2f}% of one core"
    )
    print(f"  start-up (first {n0} samples, {args.warmup:g} s): {c0:.3f} s")


if __name__ == "__main__":
    main()
