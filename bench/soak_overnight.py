"""An overnight soak in compressed time: nothing lost, nothing leaked, an outage that costs two events.

The headless engine (`soaktui --no-ui`, its own process) soaks the built-in simulator (its own
process, `--speed S`: every simulated delay divided by S, so M real minutes carry about M x S
minutes of requests at real speed) with faults on (1% each of HTTP 503, dropped connections and
malformed streams). Half-way through, the simulator is killed (SIGKILL: its port refuses
connections, as a crashed server's does) for `--outage` seconds, then started again on the same
port. Every `--sample` seconds the engine's RSS, open file descriptors and threads are read (psutil).

Printed at the end, from the run's own files:
- every request in events.jsonl is counted by the report (`soaktui report` totals = log);
- `seq` has no gap and no repeat;
- RSS growth (the first sample after a warm-up minute against the last), file descriptors and
  threads: first, max, last;
- events written during the outage, by kind (the backoff's bound: provider_down, provider_up and
  whatever the test in flight wrote), with the provider_up's downtime and failed probes.

Targets (issue 14): RSS growth under 30 MB, flat descriptors and threads, no seq gap, the report
counting every request, and outage events bounded by the backoff.

    .venv/bin/python bench/soak_overnight.py [--minutes 15] [--speed 50] [--outage 180] [--sample 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from bench._common import engine_env, free_port, load_text, stop_process  # noqa: E402
from soaktui.log.reader import iter_events  # noqa: E402
from soaktui.report import build_report  # noqa: E402
from soaktui.simulator.launcher import SimulatorProcess  # noqa: E402

FAULTS = ["--fault", "http_503=0.01", "--fault", "drop=0.01", "--fault", "malformed=0.01"]


def simulator(port: int, speed: float) -> SimulatorProcess:
    sim = SimulatorProcess(seed=7, extra_args=["--flavor", "llamacpp", "--port", str(port), "--speed", str(speed), *FAULTS])
    sim.start()
    return sim


def sample(proc: psutil.Process) -> tuple[float, int, int]:
    return proc.memory_info().rss / 1e6, proc.num_fds(), proc.num_threads()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--speed", type=float, default=50.0)
    ap.add_argument("--outage", type=float, default=180.0, help="seconds the server is down, mid-run")
    ap.add_argument("--sample", type=float, default=10.0)
    ap.add_argument("--keep", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-overnight-"))
    run_dir = work / "run"
    port = free_port()
    sim = simulator(port, a.speed)
    duration_s = a.minutes * 60
    cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", f"http://127.0.0.1:{port}", "--out",
           str(run_dir), "--duration", f"{duration_s:.0f}s", "--seed", "1"]  # fmt: skip
    err = (work / "engine.err").open("wb")
    engine = subprocess.Popen(cmd, env=engine_env(work), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    ps = psutil.Process(engine.pid)
    samples: list[tuple[float, float, int, int]] = []
    t0 = time.monotonic()
    outage_at = duration_s / 2 - a.outage / 2
    down_window: tuple[float, float] | None = None
    try:
        while engine.poll() is None:
            now = time.monotonic() - t0
            if down_window is None and now >= outage_at:
                sim._proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                sim._proc.wait(10)  # type: ignore[union-attr]
                start = time.time()
                time.sleep(a.outage)
                sim = simulator(port, a.speed)
                down_window = (start, time.time())
                continue
            try:
                samples.append((now, *sample(ps)))
            except psutil.Error:
                break
            time.sleep(a.sample)
        engine.wait(120)
    finally:
        stop_process(engine)
        sim.stop()
        err.close()
    events = list(iter_events(run_dir / "events.jsonl"))
    seqs = [e["seq"] for e in events]
    gaps = sum(1 for x, y in zip(seqs, seqs[1:], strict=False) if y != x + 1)
    requests = sum(1 for e in events if e["kind"] == "request")
    snap, _ = build_report(run_dir)
    tot = snap["totals"]
    counted = tot["requests"] + tot["cancelled_requests"] + tot["tools_did_not_fit"]
    counted_n = (
        f"{counted:,} ({tot['requests']:,} + {tot['cancelled_requests']} cancelled + "
        f"{tot['tools_did_not_fit']} tools_did_not_fit): {'all' if counted == requests else 'MISMATCH'}"
    )
    print(f"soak_overnight: {a.minutes:g} real min at --speed {a.speed:g} (~{a.minutes * a.speed / 60:.1f} h of requests at real speed), outage {a.outage:g} s; {load_text()}")
    print(f"  engine exit {engine.returncode}; events {len(events):,}; requests in log {requests:,}; report counts {counted_n}")
    print(f"  seq: first {seqs[0] if seqs else None}, last {seqs[-1] if seqs else None}, gaps or repeats {gaps}")
    warm = [s for s in samples if s[0] >= 60] or samples
    if warm:
        rss = [s[1] for s in warm]
        fds = [s[2] for s in warm]
        thr = [s[3] for s in warm]
        print(f"  RSS MB: after warm-up {rss[0]:.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}, growth {rss[-1] - rss[0]:+.1f} ({len(warm)} samples)")
        print(f"  fds: first {fds[0]}, max {max(fds)}, last {fds[-1]}; threads: first {thr[0]}, max {max(thr)}, last {thr[-1]}")
    if down_window is not None:
        lo, hi = down_window
        during = Counter(e["kind"] for e in events if lo <= e["t"] <= hi)
        print(f"  outage {hi - lo:.0f} s: events written meanwhile {sum(during.values())}: {dict(during)}")
        for e in events:
            if e["kind"] in ("provider_down", "provider_up"):
                extra = {k: e.get(k) for k in ("error_class", "downtime_s", "failed_probes") if e.get(k) is not None}
                print(f"    {e['kind']} at +{e['t'] - lo:.1f} s from the kill: {extra}")
        refused = sum(1 for e in events if e["kind"] == "request" and e.get("error_class") == "connection_refused")
        print(f"  connection_refused request events in the whole run: {refused}")
    if a.keep:
        shutil.copytree(work, a.keep, dirs_exist_ok=True)
        print(f"  kept in {a.keep}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
