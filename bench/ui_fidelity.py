"""Does attaching the dashboard bend time to first token? The same run, with and without a viewer.

The engine runs in its own process so that the dashboard cannot put error into its timings
(docs/architecture.md); this checks it with everything real. One headless engine run (`soaktui --no-ui`,
exactly as bench/timing_fidelity.py starts it, but until stopped) soaks timing_fidelity's simulator
(its own process; one persona with a fixed 150 ms first token and short answers). While it runs,
this script alternates blocks of equal length:

- viewer: `soaktui watch RUN_DIR` in a tmux session at 200x60 (every pane shown), which reads the
  log so far, folds it and then follows the run, redrawing several times a second;
- headless: the tmux session killed (the viewer gets SIGHUP and exits), nothing attached.

A viewer block starts when the dashboard has caught up with the log and shows the run (the time
before that, attaching, is reported on its own row but is not part of the comparison) and ends
when its session is killed. Per request, matched by response id against the simulator's own log,
error = soaktui's TTFT - the server's TTFT (first_token_ns - recv_ns, on the perf_counter_ns clock
every process shares on Linux); each request is put in the block its `sent_mono_ns` falls in. The
engine now starts TTFT when httpcore starts writing the request (`send_request_headers.started`);
the time a request waited inside the client before that is logged apart as `client_queue_ms`,
shown here too, since a busy viewer could move delay there rather than into TTFT.

Measured at 1 stream (`--scenarios streaming`) and at 16 (`--scenarios concurrent_load
--concurrency 16`, the 16-wide batches only), each in its own engine run. Also printed: the
viewer's CPU during its blocks. About 7 minutes with the defaults.

Target: the dashboard adds at most 1 ms to the TTFT error at p99 (viewer p99 - headless
p99 <= 1 ms; one-sided).

    .venv/bin/python bench/ui_fidelity.py [--rounds1 4] [--block1 30] [--rounds16 3] [--block16 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import (
    KEYS,
    Tmux,
    Viewer,
    cells,
    cpu_seconds,
    fmt,
    header_ready,
    load_text,
    start_engine,
    stats,
    stop_engine,
    stop_process,
)
from timing_fidelity import (
    PERSONA_ID,
    SERVER_TTFT_MS,
    WIDE,
    at_streams,
    compare,
    engine_command,
    engine_stamps,
    server_log,
    start_simulator,
    streamed_requests,
)

from soaktui.stats import percentile

TARGET_MS = 1.0
CONDITIONS = ("headless", "viewer", "attaching")

Window = tuple[str, int, int]  # (condition, from, to) on the perf_counter_ns clock


def running(text: str) -> bool:
    """The dashboard has caught up and shows the live run."""
    return header_ready(text) and "running" in text.splitlines()[0]


def alternate(
    run_dir: Path, env: dict[str, str], rounds: int, block_s: float
) -> tuple[list[Window], list[float]]:
    """Alternate headless and viewer blocks (headless first in even rounds). Returns the windows and
    the viewer's CPU share (of one core) in each of its blocks."""
    windows: list[Window] = []
    viewer_cpu: list[float] = []
    now = time.perf_counter_ns
    with Tmux() as tmux:
        for rnd in range(rounds):
            for cond in ("headless", "viewer") if rnd % 2 == 0 else ("viewer", "headless"):
                if cond == "headless":
                    t0 = now()
                    time.sleep(block_s)
                    windows.append(("headless", t0, now()))
                    continue
                viewer = Viewer(tmux, run_dir, env)
                t_attach = now()
                proc = viewer.start()
                viewer.wait_screen(running, timeout_s=60)
                t0 = now()
                windows.append(("attaching", t_attach, t0))
                c0 = cpu_seconds(proc)
                time.sleep(block_s)
                c1 = cpu_seconds(proc)
                t1 = now()
                windows.append(("viewer", t0, t1))
                if c0 is not None and c1 is not None:
                    viewer_cpu.append(100 * (c1 - c0) / ((t1 - t0) / 1e9))
                viewer.stop()
                time.sleep(0.5)  # the viewer's exit is not part of the next headless block
            print(f"    round {rnd + 1}/{rounds} done", flush=True)
    return windows, viewer_cpu


def condition_of(sent_ns: int, windows: list[Window]) -> str | None:
    for cond, t0, t1 in windows:
        if t0 <= sent_ns < t1:
            return cond
    return None


def measure(
    base_url: str, work: Path, streams: int, rounds: int, block_s: float, seed: int
) -> tuple[dict[str, list[dict]], list[float]]:
    """One engine run at `streams`, alternating blocks; its request events by condition."""
    run_dir = work / f"run_s{streams}"
    cmd, env = engine_command(base_url, run_dir, streams, seed, work / "home")
    engine = start_engine(cmd, env, run_dir)
    try:
        time.sleep(2.0)  # connections open, the first tests done: warm-up, not counted
        windows, viewer_cpu = alternate(run_dir, env, rounds, block_s)
    finally:
        stop_engine(engine, run_dir)
    by_cond: dict[str, list[dict]] = {c: [] for c in CONDITIONS}
    for e in streamed_requests(run_dir / "events.jsonl"):
        if at_streams(e, streams) and e.get("sent_mono_ns") is not None:
            cond = condition_of(e["sent_mono_ns"], windows)
            if cond is not None:
                by_cond[cond].append(e)
    return by_cond, viewer_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds1", type=int, default=4, help="headless/viewer block pairs at 1 stream")
    ap.add_argument("--block1", type=float, default=30.0, help="seconds per block at 1 stream")
    ap.add_argument("--rounds16", type=int, default=3, help="block pairs at 16 streams (0: skip)")
    ap.add_argument("--block16", type=float, default=20.0, help="seconds per block at 16 streams")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the run directories here")
    args = ap.parse_args()

    t_start = time.monotonic()
    work = args.keep or Path(tempfile.mkdtemp(prefix="soaktui-uifid-"))
    (work / "home").mkdir(parents=True, exist_ok=True)
    sim, base_url = start_simulator(args.seed)
    print(f"simulator {base_url}: persona {PERSONA_ID}, TTFT {SERVER_TTFT_MS:g} ms; runs in {work}")
    print(load_text(), flush=True)
    results: dict[int, tuple[dict[str, list[dict]], list[float]]] = {}
    try:
        plan = [(1, args.rounds1, args.block1)]
        if args.rounds16 > 0:
            plan.append((WIDE, args.rounds16, args.block16))
        for streams, rounds, block_s in plan:
            print(
                f"  {streams} stream(s): {rounds} x (headless {block_s:g} s + viewer {block_s:g} s)",
                flush=True,
            )
            results[streams] = measure(base_url, work, streams, rounds, block_s, args.seed * 1000 + streams)
        log = server_log(base_url)
    finally:
        stop_process(sim)

    print()
    print("TTFT error = soaktui's TTFT - the server's own, ms, matched by response id")
    print("  up: sent (on the wire) -> server has read the request; down: server wrote the first token ->")
    print("  soaktui stamped it; queue: client_queue_ms, time inside the client before the request went out")
    print(
        f"{'streams':>7}  {'condition':<9} {'n':>5} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}"
        f"  {'up p50':>6} {'down p50':>8}  {'queue p50':>9} {'queue p99':>9}"
    )
    verdicts = []
    for streams, (by_cond, viewer_cpu) in results.items():
        rows = {}
        for cond in CONDITIONS:
            evs = by_cond[cond]
            c = compare(engine_stamps(evs), log)
            rows[cond] = st = stats(c["error"])
            queue = sorted(e["client_queue_ms"] for e in evs if e.get("client_queue_ms") is not None)
            print(
                f"{streams:>7}  {cond:<9} {st['n']:>5} {cells(st)}  {fmt(percentile(c['up'], 50))} "
                f"{fmt(percentile(c['down'], 50)):>8}  {fmt(percentile(queue, 50)):>9} {fmt(percentile(queue, 99)):>9}"
            )
            if cond == "viewer":
                a, b = rows["viewer"], rows["headless"]
                diff = {k: None if a[k] is None or b[k] is None else a[k] - b[k] for k in KEYS}
                print(f"{streams:>7}  {'diff':<9} {'':>5} {cells(diff)}  (viewer - headless)")
        if viewer_cpu:
            shares = ", ".join(f"{x:.1f}" for x in viewer_cpu)
            print(f"{'':>9}viewer CPU during its blocks: {shares} % of one core")
        d99 = diff["p99"]
        ok = d99 is not None and d99 <= TARGET_MS
        verdicts.append(f"{streams} stream(s) {fmt(d99).strip()} ms {'PASS' if ok else 'FAIL'}")
    print()
    print(f"target: viewer p99 at most {TARGET_MS:g} ms above headless p99: {'; '.join(verdicts)}")
    print(f"{load_text()}; total {time.monotonic() - t_start:.0f} s")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
