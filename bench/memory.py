"""Does memory stay flat over a long soak? 200,000 requests, time-compressed: the engine, and a viewer.

An overnight run must not grow: everything the engine keeps is meant to be bounded (docs/architecture.md),
and so is everything a viewer following the run keeps (its RunAggregate folds in the bounded live mode:
docs/report.md, "Live figures"). This script starts the built-in simulator (`soaktui simulate --speed
S`, default 1000: a 150 ms first token takes 0.15 ms) and the real engine as a subprocess, `soaktui
--no-ui --scenarios streaming` with short answers (`SOAKTUI_THRESHOLDS__STREAM_MAX_TOKENS`, default 8),
throttle 100, quiet hours off and `SOAKTUI_OUTPUT__STATUS_INTERVAL=1s`; and, unless `--no-viewer`,
the real viewer `soaktui watch RUN_DIR` in a private tmux server (bench/_common.py's Viewer, 200x60)
following that run from its start. The engine's own `status` events carry `requests` and
`rss_bytes`; this script follows events.jsonl, takes the RSS of the first status at or past 10,000
requests (the baseline: caches and pools are warm by then) and of the first at or past 200,000, then
stops the run with `soaktui ctl RUN_DIR stop`. The viewer's RSS (psutil) is read at the same two
moments, and once more when the run has finished and the viewer has read the whole log (its CPU
idle): its end figure is the larger of the two.

Printed: RSS along the way, baseline, end, growth of each, the engine's requests/s (the engine, not
the simulator, is the bottleneck here: see the CPU seconds of each), and the machine's load.

Target: RSS at the end at most 30 MB above the baseline, for the engine and for the viewer.

    .venv/bin/python bench/memory.py [--requests 200000] [--baseline 10000] [--speed 1000] [--no-viewer] [--keep DIR]

`--tracemalloc` instead runs the engine in this process (several times slower) under tracemalloc
and prints which source lines hold the memory that grew between the baseline and the end: the way
to find a culprit when RSS grows. It then folds the run's log as the viewer does (a live
RunAggregate and the dashboard's LiveState) under tracemalloc and prints the viewer's growers the
same way. Use it with fewer requests, e.g. `--requests 30000 --baseline 5000`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil
from _common import Tmux, Viewer, cpu_seconds, engine_env, stop_process

from soaktui.simulator.launcher import SimulatorProcess

MB = 1024 * 1024
TARGET_MB = 30.0
STATUS_TAG = b'"kind":"status"'


@dataclass
class Status:
    elapsed_s: float
    requests: int
    rss_bytes: int | None


class StatusFollower:
    """Reads the status events appended to a run's events.jsonl since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Status]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        out = []
        for line in lines:
            if STATUS_TAG in line:  # cheap filter: the log holds ~2 lines per request
                e = orjson.loads(line)
                out.append(Status(e["elapsed_s"], e["requests"], e.get("rss_bytes")))
        return out


def engine_args(base_url: str, run_dir: Path, scenarios: str, seed: int) -> list[str]:
    return [
        "--no-ui", "--base-url", base_url, "--out", str(run_dir), "--scenarios", scenarios,
        "--throttle", "100", "--seed", str(seed),
    ]  # fmt: skip


def stop_run(run_dir: Path, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "soaktui", "ctl", str(run_dir), "stop"]
    subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=30, check=False)


def _mb(x: int | None) -> str:
    return "n/a" if x is None else f"{x / MB:.1f} MB"


def report(
    samples: list[Status], base: Status, end: Status, load0: tuple[float, ...], verdict: bool = True
) -> None:
    print()
    print(f"{'requests':>9} {'elapsed':>9} {'RSS':>10}")
    step = max(1, len(samples) // 12)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for s in shown:
        print(f"{s.requests:>9,} {s.elapsed_s:>8.1f}s {_mb(s.rss_bytes):>10}")
    print()
    if base.rss_bytes is None or end.rss_bytes is None:
        print("RSS not available in the status events (psutil failed in the engine): no verdict")
        return
    growth = (end.rss_bytes - base.rss_bytes) / MB
    print(f"RSS after {base.requests:,} requests: {_mb(base.rss_bytes)}")
    print(f"RSS after {end.requests:,} requests: {_mb(end.rss_bytes)}")
    per_100k = growth / max(1, end.requests - base.requests) * 100_000
    print(f"growth: {growth:+.1f} MB" + (f" ({per_100k:+.1f} MB per 100,000 requests)" if verdict else ""))
    if verdict:
        print(f"target: growth <= {TARGET_MB:g} MB: {'PASS' if growth <= TARGET_MB else 'FAIL'}")
    else:
        print("(no verdict: under tracemalloc the RSS includes tracemalloc's own traces and snapshots)")
    dt = end.elapsed_s - base.elapsed_s
    if dt > 0:
        print(
            f"engine throughput: {(end.requests - base.requests) / dt:,.0f} requests/s between the two "
            f"({end.requests / end.elapsed_s:,.0f} requests/s over the whole run)"
        )
    load1 = os.getloadavg()
    print(
        f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min)"
    )


# -- the subprocess run (the measurement) ------------------------------------------------------------


def rss(proc: psutil.Process | None) -> int | None:
    """A process's resident set now, bytes; None when it cannot be read (or there is none)."""
    try:
        return None if proc is None else proc.memory_info().rss
    except psutil.Error:
        return None


def wait_idle(proc: psutil.Process, timeout_s: float = 180.0) -> float:
    """Wait until `proc` uses under a tenth of a CPU for a second (a viewer that has read the whole
    log only redraws); returns the seconds waited."""
    t0 = time.monotonic()
    last = cpu_seconds(proc)
    while time.monotonic() - t0 < timeout_s:
        time.sleep(1.0)
        now = cpu_seconds(proc)
        if now is None or last is None or now - last < 0.1:
            break
        last = now
    return time.monotonic() - t0


def viewer_report(base: int | None, at_end: int | None, settled: int | None, cpu: float | None) -> None:
    print()
    if base is None or (at_end is None and settled is None):
        print("viewer: its RSS could not be read (it exited?): no verdict")
        return
    end = max(x for x in (at_end, settled) if x is not None)
    growth = (end - base) / MB
    print(f"viewer (`soaktui watch RUN_DIR` in tmux) RSS at the baseline: {_mb(base)}")
    print(f"viewer RSS at the end: {_mb(at_end)}; once it had read the whole log: {_mb(settled)}")
    print(f"viewer growth: {growth:+.1f} MB (from the larger end figure)")
    print(f"target: viewer growth <= {TARGET_MB:g} MB: {'PASS' if growth <= TARGET_MB else 'FAIL'}")
    if cpu is not None:
        print(f"viewer CPU between the two: {cpu:.0f} s")


def run_subprocess(args: argparse.Namespace, base_url: str, work: Path) -> int:
    run_dir = work / "run"
    env = engine_env(
        work / "home",
        THRESHOLDS__STREAM_MAX_TOKENS=str(args.stream_max_tokens),
        OUTPUT__STATUS_INTERVAL="1s",
    )
    cmd = [sys.executable, "-m", "soaktui", *engine_args(base_url, run_dir, args.scenarios, args.seed)]
    load0 = os.getloadavg()
    with open(work / "engine.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    engine_ps = psutil.Process(proc.pid)
    sims = [c for c in psutil.Process().children() if "simulate" in c.cmdline()]
    sim_ps = sims[0]
    follower = StatusFollower(run_dir / "events.jsonl")
    samples: list[Status] = []
    base = end = None
    cpu_at: dict[str, tuple[float | None, float | None]] = {}
    tmux = Tmux() if args.viewer else None
    viewer = Viewer(tmux, run_dir, env) if tmux is not None else None
    viewer_ps: psutil.Process | None = None
    viewer_rss: dict[str, int | None] = {}
    viewer_cpu: dict[str, float | None] = {}
    try:
        while end is None:
            if proc.poll() is not None:
                print(f"the engine exited early ({proc.returncode}); see {work / 'engine.stderr'}")
                return 1
            time.sleep(0.5)
            if viewer is not None and viewer_ps is None and (run_dir / "events.jsonl").exists():
                viewer_ps = viewer.start()  # attached from the run's start, as a user watching it
                print(f"viewer: `soaktui watch {run_dir}` in tmux, pid {viewer_ps.pid}", flush=True)
            for s in follower.poll():
                samples.append(s)
                if base is None and s.requests >= args.baseline:
                    base = s
                    cpu_at["base"] = (cpu_seconds(engine_ps), cpu_seconds(sim_ps))
                    viewer_rss["base"], viewer_cpu["base"] = rss(viewer_ps), cpu_seconds(viewer_ps)
                    print(
                        f"baseline: {s.requests:,} requests, RSS {_mb(s.rss_bytes)}, viewer {_mb(viewer_rss['base'])}",
                        flush=True,
                    )
                elif samples and len(samples) % 30 == 0:
                    print(f"  {s.requests:,} requests, RSS {_mb(s.rss_bytes)}, viewer {_mb(rss(viewer_ps))}", flush=True)
                if s.requests >= args.requests:
                    end = s
                    cpu_at["end"] = (cpu_seconds(engine_ps), cpu_seconds(sim_ps))
                    viewer_rss["end"], viewer_cpu["end"] = rss(viewer_ps), cpu_seconds(viewer_ps)
                    break
        stop_run(run_dir, env)
        t0 = time.monotonic()
        rc = proc.wait(timeout=600)
        print(f"stopped; the engine wrote its report and exited ({rc}) in {time.monotonic() - t0:.1f} s")
        if viewer_ps is not None:
            waited = wait_idle(viewer_ps)
            viewer_rss["settled"] = rss(viewer_ps)
            print(f"the viewer went idle {waited:.0f} s after that: RSS {_mb(viewer_rss['settled'])}")
    finally:
        stop_process(proc, 30)
        if viewer is not None and tmux is not None:
            viewer.stop()
            tmux.close()
    assert base is not None
    report(samples, base, end, load0)
    (e0, s0), (e1, s1) = cpu_at["base"], cpu_at["end"]
    if None not in (e0, e1, s0, s1):
        dt = end.elapsed_s - base.elapsed_s
        print(
            f"CPU between the two: engine {e1 - e0:.0f} s, simulator {s1 - s0:.0f} s over {dt:.0f} s of wall time "
            f"({os.cpu_count()} CPUs)"
        )
    if args.viewer:
        v0, v1 = viewer_cpu.get("base"), viewer_cpu.get("end")
        cpu = v1 - v0 if v0 is not None and v1 is not None else None
        viewer_report(viewer_rss.get("base"), viewer_rss.get("end"), viewer_rss.get("settled"), cpu)
    size = (run_dir / "events.jsonl").stat().st_size
    print(f"events.jsonl: {size / MB:,.0f} MB; run directory {run_dir}")
    return 0


# -- the in-process run under tracemalloc (the diagnosis) ---------------------------------------------


def run_traced(args: argparse.Namespace, base_url: str, work: Path) -> int:
    from soaktui.config import load_settings
    from soaktui.engine.control import ControlError, send_command
    from soaktui.engine.launch import RunRequest, run_soak

    run_dir = work / "run"
    env = engine_env(
        work / "home",
        THRESHOLDS__STREAM_MAX_TOKENS=str(args.stream_max_tokens),
        OUTPUT__STATUS_INTERVAL="1s",
    )
    flags = {"base_urls": (base_url,), "out": str(run_dir), "scenarios": args.scenarios}
    flags.update(throttle="100", seed=str(args.seed))  # as the command-line flags of engine_args give them
    settings = load_settings(None, env, flags)
    follower = StatusFollower(run_dir / "events.jsonl")
    load0 = os.getloadavg()
    snaps: dict[str, tracemalloc.Snapshot] = {}
    marks: dict[str, Status] = {}
    samples: list[Status] = []

    async def monitor() -> None:
        while True:
            await asyncio.sleep(0.5)
            for s in follower.poll():
                samples.append(s)
                if "base" not in marks and s.requests >= args.baseline:
                    marks["base"] = s
                    snaps["base"] = tracemalloc.take_snapshot()
                    print(f"baseline snapshot at {s.requests:,} requests", flush=True)
                if s.requests >= args.requests:
                    marks["end"] = s
                    snaps["end"] = tracemalloc.take_snapshot()
                    try:
                        await asyncio.to_thread(send_command, run_dir, "stop")
                    except ControlError as exc:
                        print(f"stop failed: {exc}")
                    return

    async def main() -> int:
        watcher = asyncio.create_task(monitor())
        try:
            return await run_soak(RunRequest(settings=settings, quiet=True))
        finally:
            watcher.cancel()

    tracemalloc.start(5)
    rc = asyncio.run(main())
    tracemalloc.stop()
    if "end" not in marks:
        print(f"the run ended before {args.requests:,} requests (exit {rc})")
        return 1
    report(samples, marks["base"], marks["end"], load0, verdict=False)
    print()
    print(
        f"tracemalloc: memory that grew between {marks['base'].requests:,} and {marks['end'].requests:,} requests"
    )
    print_growers(snaps["base"], snaps["end"], marks["end"].requests - marks["base"].requests)
    trace_viewer_fold(run_dir, marks["base"].requests, marks["end"].requests)
    return 0


def print_growers(base: tracemalloc.Snapshot, end: tracemalloc.Snapshot, requests: int) -> None:
    """The source lines that hold the memory grown between two snapshots, largest first."""
    own = (
        tracemalloc.Filter(False, __file__, all_frames=True),
        tracemalloc.Filter(False, tracemalloc.__file__),
    )
    stats = end.filter_traces(own).compare_to(base.filter_traces(own), "traceback")
    total = sum(s.size_diff for s in stats)
    per = total / max(1, requests)
    print(
        f"  total traced growth: {total / MB:+.2f} MB ({per:.1f} bytes per request; this script's own left out)"
    )
    for s in stats[:12]:
        if s.size_diff <= 0:
            continue
        print(f"  {s.size_diff / 1024:+9.1f} KiB in {s.count_diff:+,} blocks, allocated at:")
        for frame in list(s.traceback)[-4:]:
            print(f"      {frame.filename}:{frame.lineno}")


def trace_viewer_fold(run_dir: Path, baseline: int, end: int) -> None:
    """Fold the run's log as the viewer's follower thread does (ui/app.py: a live RunAggregate and
    the dashboard's LiveState reading its counts) under tracemalloc, and print what grew."""
    from soaktui.log.reader import iter_events
    from soaktui.report.aggregate import RunAggregate
    from soaktui.ui.state import LiveState

    agg = RunAggregate(exact=False)
    live = LiveState(counts=agg.requests)
    snaps: dict[str, tracemalloc.Snapshot] = {}
    requests = 0
    tracemalloc.start(5)
    try:
        for ev in iter_events(run_dir / "events.jsonl"):
            agg.feed(ev)
            live.feed(ev)
            if ev.get("kind") == "request":
                requests += 1
                if requests == baseline:
                    snaps["base"] = tracemalloc.take_snapshot()
                elif requests == end:
                    snaps["end"] = tracemalloc.take_snapshot()
                    break
    finally:
        tracemalloc.stop()
    print()
    if "end" not in snaps:
        print(f"the viewer's fold: the log holds {requests:,} requests, fewer than {end:,}")
        return
    print("tracemalloc: the viewer's fold (RunAggregate(exact=False) + LiveState over the run's log),")
    print(f"memory that grew between {baseline:,} and {end:,} request events")
    print_growers(snaps["base"], snaps["end"], end - baseline)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200_000, help="stop the run after this many requests")
    ap.add_argument("--baseline", type=int, default=10_000, help="RSS baseline after this many requests")
    ap.add_argument("--speed", type=float, default=1000.0, help="simulator time compression")
    ap.add_argument("--stream-max-tokens", type=int, default=8, help="max_tokens of a streaming test")
    ap.add_argument("--scenarios", default="streaming", help="scenarios the engine runs (comma list)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--no-viewer", dest="viewer", action="store_false", help="the engine alone, no `soaktui watch` attached"
    )
    ap.add_argument("--keep", type=Path, help="run here (kept) instead of a temporary directory")
    ap.add_argument("--tracemalloc", action="store_true", help="diagnose: in-process run under tracemalloc")
    args = ap.parse_args()
    if args.baseline >= args.requests:
        ap.error("--baseline must be below --requests")

    work = args.keep or Path(tempfile.mkdtemp(prefix="soaktui-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "home").mkdir(exist_ok=True)
    sim = SimulatorProcess(seed=args.seed, extra_args=["--speed", f"{args.speed:g}"])
    base_url = sim.start()
    print(
        f"simulator {base_url} (--speed {args.speed:g}); engine: --scenarios {args.scenarios}, "
        f"stream max_tokens {args.stream_max_tokens}; {args.requests:,} requests, baseline at {args.baseline:,}"
    )
    print(
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {work}"
    )
    try:
        rc = run_traced(args, base_url, work) if args.tracemalloc else run_subprocess(args, base_url, work)
    finally:
        sim.stop()
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
