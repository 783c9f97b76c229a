"""What does the dashboard cost? CPU of the viewer at 10 requests/s, and attaching to a 1M-event log.

The viewer is meant to be cheap: it folds events on a thread, redraws on a coalesced 4 Hz tick and
only visible panes that changed. Two measurements, both with `soaktui watch RUN_DIR` in a
tmux session at 200x60 (every pane shown; see _common.py):

1. Live: the built-in simulator (`soaktui simulate --speed 1000`, the default models, time-
   compressed, with 2% HTTP 503 and 1% malformed streams so the error pane has entries; no stall
   faults, whose real-time seconds would make the rate jump) soaked by the headless engine with
   every scenario (simple_inference's outputs capped at 400 tokens and streaming's at 64, so that
   the request rate varies less from test to test). The engine's throttle is steered over the control socket until the request rate
   read back from events.jsonl is near 10/s (the duty cycle makes the rate about proportional to
   the throttle; the rate still varies with the model in turn and the scenario drawn). Then the
   viewer is attached; once it has caught up and a settling time has passed, its CPU is taken over
   120 s, in 10 s slices: the change in the process's user + system CPU time (psutil, all threads)
   divided by the wall time. Each slice's real request and event rates are printed beside it, with
   the CPU of the engine and of the tmux server (which keeps the terminal's screen). Since the
   rate is never exactly 10/s, a straight line through the slices (CPU against requests/s) is
   also read at 10/s.

2. Attach: a finished run of 1,000,000 request events (bench/report_1m.py's generator: run_started,
   providers_discovered, request and scenario_result events, run_finished). The viewer is started
   and its screen polled with `tmux capture-pane` until it shows the final figures (the run
   finished and the header's request count equal to the log's, with every pane drawn). Printed: the
   time to the first screen, to the full screen, the viewer's peak RSS (VmHWM) and CPU seconds by
   then, and its CPU share over the 10 s after (a finished run should leave it idle).

Target: at most 5% of one core at 10 requests/s. The 1M attach has no target in the targets;
its time is printed.

    .venv/bin/python bench/viewer_cost.py [--rate 10] [--seconds 120] [--fault KIND=RATE ...] [--settle 10]
        [--requests 1000000] [--skip-live] [--skip-attach] [--log-dir DIR] [--keep DIR]

`--fault http_503=0.25 --settle 120` measures a failing server once the error pane is full (it keeps
the newest 200 errors; the run's failed requests are printed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _common import (
    Tmux,
    Viewer,
    calibrate_throttle,
    count_events,
    cpu_seconds,
    engine_env,
    header_ready,
    load_text,
    peak_rss_mb,
    start_engine,
    stop_engine,
)
from report_1m import generate

from soaktui.log.reader import iter_events
from soaktui.simulator.launcher import SimulatorProcess
from soaktui.ui.state import MAX_ERRORS

TARGET_PCT = 5.0
SLICE_S = 10.0  # the CPU window is printed in slices of about this length, with their rates
DEFAULT_FAULTS = ["http_503=0.02", "malformed=0.01"]  # errors for the error pane, no stalls


def cpu_share(procs: dict[str, psutil.Process | None], seconds: float) -> dict[str, float | None]:
    """Per named process: CPU over the next `seconds`, percent of one core."""
    c0 = {k: cpu_seconds(p) for k, p in procs.items()}
    t0 = time.perf_counter()
    time.sleep(seconds)
    dt = time.perf_counter() - t0
    out: dict[str, float | None] = {}
    for k, p in procs.items():
        c1 = cpu_seconds(p)
        c = c0[k]
        out[k] = None if c is None or c1 is None else 100 * (c1 - c) / dt
    return out


def at_rate(points: list[tuple[float, float]], x: float) -> float | None:
    """The least-squares line through (rate, CPU) points, read at rate `x` (None if it has no slope)."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return None
    b = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    return my + b * (x - mx)


def pct_text(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}%"


def live(args: argparse.Namespace, work: Path) -> None:
    faults = [a for f in args.fault or DEFAULT_FAULTS for a in ("--fault", f)]
    sim = SimulatorProcess(seed=args.seed, extra_args=["--speed", "1000", *faults])
    base_url = sim.start()
    run_dir = work / "live"
    log = run_dir / "events.jsonl"
    # simple_inference draws outputs of 100-10,000 tokens: capped, the rate varies less from test to test
    env = engine_env(work / "home", thresholds__simple_max_tokens="400", thresholds__stream_max_tokens="64")
    cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", base_url, "--out", str(run_dir)]
    cmd += ["--seed", str(args.seed), "--throttle", "20"]
    print(f"live: simulator {base_url} (--speed 1000 {' '.join(faults)}), every scenario; {load_text()}")
    engine = start_engine(cmd, env, run_dir)
    slices: list[tuple[int, int, dict[str, float | None]]] = []
    try:
        print(f"  steering the throttle to about {args.rate:g} requests/s:", flush=True)
        pct, _ = calibrate_throttle(run_dir, args.rate, lambda req, ev: req, 20, 20.0)
        with Tmux() as tmux:
            viewer = Viewer(tmux, run_dir, env)
            proc = viewer.start()
            viewer.wait_screen(lambda s: header_ready(s) and "running" in s.splitlines()[0], timeout_s=60)
            time.sleep(args.settle)
            procs = {"viewer": proc, "engine": psutil.Process(engine.pid), "tmux": tmux.server_process()}
            n = max(1, round(args.seconds / SLICE_S))
            for _ in range(n):
                t0 = time.perf_counter_ns()
                shares = cpu_share(procs, args.seconds / n)
                slices.append((t0, time.perf_counter_ns(), shares))
            alive = viewer.alive()
            viewer.stop()
    finally:
        stop_engine(engine, run_dir)
        sim.stop()
    print(f"  {'slice':>5} {'requests/s':>10} {'events/s':>8} {'viewer CPU':>10} {'engine':>7} {'tmux':>6}")
    total: dict[str, float] = {}
    missing = False
    rates: list[tuple[float, float | None]] = []  # (requests/s, viewer CPU %) per slice
    for i, (t0, t1, sh) in enumerate(slices):
        c = count_events(log, t0, t1)
        dt = (t1 - t0) / 1e9
        rates.append((c["request"] / dt, sh["viewer"]))
        print(
            f"  {i + 1:>5} {c['request'] / dt:>10.1f} {sum(c.values()) / dt:>8.1f} {pct_text(sh['viewer']):>10} "
            f"{pct_text(sh['engine']):>7} {pct_text(sh['tmux']):>6}"
        )
        for k, x in sh.items():
            if x is None:
                missing = missing or k == "viewer"
            else:
                total[k] = total.get(k, 0.0) + x / len(slices)
    t0, t1 = slices[0][0], slices[-1][1]
    c = count_events(log, t0, t1)
    dt = (t1 - t0) / 1e9
    v = None if missing else total.get("viewer")
    print(
        f"  all {dt:.0f} s at throttle {pct}%: {c['request'] / dt:.1f} requests/s, {sum(c.values()) / dt:.1f} "
        f"events/s ({c['scenario_result']} tests, {c['model_switched']} model switches); viewer CPU "
        f"{pct_text(v)} of one core (engine {pct_text(total.get('engine'))}, tmux {pct_text(total.get('tmux'))})"
    )
    failed = [e["mono_ns"] for e in iter_events(log) if e["kind"] == "request" and e.get("ok") is False]
    print(
        f"  failed requests in the run: {sum(1 for t in failed if t < t0):,} when the window opened, "
        f"{sum(1 for t in failed if t < t1):,} when it closed (the error pane keeps the newest {MAX_ERRORS})"
    )
    fit = at_rate([(n, x) for n, x in rates if x is not None], args.rate)
    if fit is not None:
        print(
            f"  a straight line through the slices (viewer CPU against requests/s) gives {fit:.2f}% at {args.rate:g}/s"
        )
    if not alive:
        print("  the viewer was not running at the end of the window")
    ok = v is not None and v <= TARGET_PCT and alive
    print(
        f"  target: viewer at most {TARGET_PCT:g}% of one core at {args.rate:g} requests/s: {'PASS' if ok else 'FAIL'}"
    )


def attach(args: argparse.Namespace, work: Path) -> None:
    run_dir = args.log_dir or work / "run_1m"
    log = run_dir / "events.jsonl"
    if args.log_dir is not None and log.exists():
        n_req = sum(1 for line in open(log, "rb") if b'"kind":"request"' in line)
        print(f"attach: reusing {log} ({n_req:,} request events)")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        n_req = generate(log, args.requests)
        print(f"attach: generated {n_req:,} request events in {time.perf_counter() - t:.0f} s")
    size = log.stat().st_size
    lines = sum(1 for _ in open(log, "rb"))
    print(f"  {log}: {lines:,} events, {size / 1e6:,.0f} MB; {load_text()}", flush=True)
    want = f"requests {n_req:,}"

    def full(s: str) -> bool:
        head = s.splitlines()[:3]
        return header_ready(s) and "finished" in head[0] and want in head[1]

    with Tmux() as tmux:
        viewer = Viewer(tmux, run_dir, engine_env(work / "home"))
        t0 = time.perf_counter()
        proc = viewer.start()
        first = None
        deadline = t0 + args.attach_timeout
        screen = ""
        while time.perf_counter() < deadline:
            screen = viewer.screen()
            if first is None and "soaktui " in screen:
                first = time.perf_counter() - t0
            if full(screen):
                break
            if not viewer.alive():
                raise SystemExit(f"the viewer exited; its screen:\n{screen}")
            time.sleep(0.02)
        else:
            raise SystemExit(f"no full screen within {args.attach_timeout:g} s; last screen:\n{screen}")
        t_full = time.perf_counter() - t0
        rss = peak_rss_mb(proc.pid)
        cpu = cpu_seconds(proc)
        idle = cpu_share({"viewer": proc}, 10.0)["viewer"]
        viewer.stop()
    print(f"  first screen after {first:.2f} s; full screen (finished, {want}) after {t_full:.2f} s")
    print(
        f"  viewer: peak RSS {'n/a' if rss is None else f'{rss:.0f} MB'}, "
        f"{'n/a' if cpu is None else f'{cpu:.1f}'} CPU s by then; "
        f"then {'n/a' if idle is None else f'{idle:.2f}'}% of one core over 10 s on the finished run"
    )
    print("  header: " + " | ".join(line.strip() for line in screen.splitlines()[:3]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=10.0, help="requests/s to hold the engine at")
    ap.add_argument("--seconds", type=float, default=120.0, help="CPU measurement window")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after attaching before measuring")
    ap.add_argument("--requests", type=int, default=1_000_000, help="request events of the finished run")
    ap.add_argument("--log-dir", type=Path, help="a run directory with a generated events.jsonl to reuse")
    ap.add_argument("--attach-timeout", type=float, default=600.0)
    ap.add_argument(
        "--fault",
        action="append",
        metavar="KIND=RATE",
        help=f"simulator fault (repeatable; default {' '.join(DEFAULT_FAULTS)})",
    )
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-attach", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="work here (kept) instead of a temporary directory")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="soaktui-viewer-cost-"))
    (work / "home").mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    try:
        if not args.skip_live:
            live(args, work)
        if not args.skip_attach:
            attach(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{load_text()}; total {time.monotonic() - t:.0f} s")


if __name__ == "__main__":
    main()
