"""Benchmark: `soaktui report` over a synthetic events.jsonl of 1,000,000 request events.

Why: the report is rebuilt from the log alone, and after a long soak the log is large. Targets
(issue 15), with and without --sensors: at most 10 s, at most 2x a bare orjson pass over the same
file (read lines + orjson.loads, the floor for any reader, measured in the same run) and at most
300 MB peak RSS, on the 2-core reference machine.

    .venv/bin/python bench/report_1m.py [--requests N] [--dir RUN_DIR] [--keep]

The log is generated with realistic field values (two providers, four models, six scenarios,
failures of several classes) and written with orjson. Generation and each measurement run in
child processes; a child's peak RSS is its own ru_maxrss, taken with os.wait4 (the per-child form
of resource.getrusage(RUSAGE_CHILDREN), which is also printed: the maximum over every child so far,
the generator included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

RUN_ID = "soak_20260101_000000"
PROVIDERS = {
    "lmstudio@127.0.0.1:1234": [("qwen2.5-7b-instruct", 45.0, 180.0), ("llama-3.1-8b", 38.0, 220.0)],
    "ollama@127.0.0.1:11434": [("mistral:7b", 52.0, 150.0), ("phi3:mini", 80.0, 90.0)],
}
SCENARIOS = [
    ("simple_inference", 3.0),
    ("streaming", 2.0),
    ("prompt_variety", 3.0),
    ("concurrent_load", 1.5),
    ("large_context", 0.5),
    ("provider_failover", 0.5),
]
FAIL_CLASSES = ["http_status", "read_timeout", "connection_dropped", "context_overflow", "malformed_stream"]
CATEGORIES = ["coding", "math", "summarise", "creative", "extraction", "reasoning"]


class Gen:
    """Writes events in order with the common fields stamped, like the event bus would."""

    def __init__(self, fh, rng: random.Random) -> None:
        self.fh = fh
        self.rng = rng
        self.seq = 0
        self.t = 1_767_225_600.0
        self.mono = 1_000_000_000
        self.buf: list[bytes] = []

    def emit(self, kind: str, **fields) -> None:
        self.seq += 1
        ev = {
            "v": 1,
            "kind": kind,
            "run_id": RUN_ID,
            "seq": self.seq,
            "t": round(self.t, 6),
            "mono_ns": self.mono,
        }
        ev.update(fields)
        self.buf.append(orjson.dumps(ev))
        if len(self.buf) >= 4096:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.fh.write(b"\n".join(self.buf) + b"\n")
            self.buf.clear()

    def advance(self, ms: float) -> None:
        self.t += ms / 1e3
        self.mono += int(ms * 1e6)


def _request(
    g: Gen, rng: random.Random, test_id: int, provider: str, model: str, base, scenario: str, **extra
):
    tps, ttft_base = base
    ok = rng.random() > 0.04
    stream = scenario != "simple_inference" or rng.random() < 0.5
    prompt_tokens = extra.pop("_prompt_tokens", rng.randint(30, 400))
    if ok:
        out = rng.randint(50, 1500)
        ttft = ttft_base * rng.uniform(0.7, 1.6) + prompt_tokens / 4000 * 1000
        gen = tps * rng.uniform(0.8, 1.15)
        e2e = ttft + (out - 1) / gen * 1000
        itl50 = 1000 / gen * rng.uniform(0.9, 1.05)
        fields = dict(
            ok=True,
            error_class=None,
            error=None,
            http_status=200,
            body_excerpt=None,
            ttft_ms=round(ttft, 3) if stream else None,
            first_byte_ms=round(ttft * 0.9, 3),
            e2e_ms=round(e2e, 3),
            itl_p50_ms=round(itl50, 3) if stream else None,
            itl_p95_ms=round(itl50 * 1.8, 3) if stream else None,
            gen_tps=round(gen, 3) if stream else round(out / (e2e / 1e3), 3),
            prompt_tps=round(prompt_tokens / (ttft / 1e3), 3) if stream else None,
            prompt_tokens=prompt_tokens,
            output_tokens=out,
            token_source="usage" if rng.random() < 0.8 else "chunks",
            chunks=out,
            finish_reason="stop" if rng.random() < 0.93 else "length",
            truncated=False,
            max_tokens=2048,
            response_id=f"chatcmpl-{test_id:x}{rng.randrange(1 << 20):05x}",
            tool_calls=0,
            content_chars=out * 4,
        )
    else:
        cls = rng.choice(FAIL_CLASSES)
        e2e = rng.uniform(5, 30000)
        fields = dict(
            ok=False,
            error_class=cls,
            error=f"{cls}: simulated failure after {e2e:.0f} ms",
            http_status=503 if cls == "http_status" else None,
            body_excerpt='{"error":"model is busy"}' if cls == "http_status" else None,
            ttft_ms=None,
            first_byte_ms=None,
            e2e_ms=round(e2e, 3),
            itl_p50_ms=None,
            itl_p95_ms=None,
            gen_tps=None,
            prompt_tps=None,
            prompt_tokens=None,
            output_tokens=None,
            token_source=None,
            chunks=0,
            finish_reason=None,
            truncated=False,
            max_tokens=2048,
            response_id=None,
            tool_calls=0,
            content_chars=0,
        )
    g.advance(e2e if ok else 50)
    g.emit(
        "request",
        test_id=test_id,
        scenario=scenario,
        provider=provider,
        model=model,
        stream=stream,
        sent_mono_ns=g.mono,
        **fields,
        **extra,
    )
    return ok, fields


def generate(path: Path, n_requests: int, seed: int = 1, sensors: bool = False) -> int:
    """Write the log; `sensors`: a telemetry event with temperature, power and fan readings every
    2 s of log time (a machine with sensors; this one has none, so its real logs carry no such
    readings and the report's hardware fold has nothing to fold)."""
    rng = random.Random(seed)
    models = [(p, m, (tps, ttft)) for p, ms in PROVIDERS.items() for m, tps, ttft in ms]
    names = [s for s, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    with open(path, "wb") as fh:
        g = Gen(fh, rng)
        g.emit(
            "run_started",
            version="0.1.0",
            host={"hostname": "bench", "platform": "Linux", "python": "3.11", "cpus": 2},
            out_dir=str(path.parent),
            seed=seed,
            duration_s=None,
            throttle_pct=100,
            quiet_hours={"enabled": False, "start": "22:00", "end": "06:00", "throttle_pct": 30},
            scenarios=dict(SCENARIOS),
            settings={},
            demo=False,
        )
        g.emit(
            "providers_discovered",
            providers=[
                {
                    "name": p,
                    "kind": p.split("@")[0],
                    "base_url": "http://" + p.split("@")[1],
                    "version": None,
                    "native": {},
                    "models": [
                        {
                            "key": f"{p}/{m}",
                            "id": m,
                            "provider": p,
                            "size_bytes": 4_500_000_000,
                            "context_length": 32768,
                        }
                        for m, _, _ in ms
                    ],
                }
                for p, ms in PROVIDERS.items()
            ],
            selected=[f"{p}/{m}" for p, m, _ in models],
            excluded=[],
            probed=[],
            unreachable={},
        )
        done = 0
        test_id = 0
        last_reading = g.t
        while done < n_requests:
            if sensors and g.t - last_reading >= 2.0:
                last_reading = g.t
                g.emit(
                    "telemetry",
                    source="psutil",
                    cpu_pct=round(rng.uniform(20, 90), 1),
                    cpu_temp_c=round(rng.uniform(55, 92), 1),
                    power_w=round(rng.uniform(40, 180), 1),
                    fan_rpm=rng.randint(1200, 4200),
                )
            provider, model, base = models[(test_id // 8) % len(models)]
            test_id += 1
            scenario = rng.choices(names, weights)[0]
            metrics: dict = {}
            if scenario == "concurrent_load":
                conc = rng.choice([2, 4, 8])
                oks = [
                    _request(g, rng, test_id, provider, model, base, scenario, concurrency=conc)
                    for _ in range(conc)
                ]
                succ = sum(1 for ok, _ in oks if ok)
                good = [f for ok, f in oks if ok]
                wall = max((f["e2e_ms"] for _, f in oks), default=1.0)
                lat = sorted(f["e2e_ms"] for f in good)
                metrics = {
                    "concurrency": conc,
                    "succeeded": succ,
                    "failed": conc - succ,
                    "aggregate_tps": round(sum(f["output_tokens"] for f in good) / (wall / 1e3), 3),
                    "wall_ms": wall,
                    "latency_p50_ms": lat[len(lat) // 2] if lat else None,
                    "latency_p95_ms": lat[-1] if lat else None,
                    "saturated": succ < conc,
                    "ceiling": 8,
                }
                ok = succ == conc
                done += conc
            elif scenario == "large_context":
                target = rng.choice([10_000, 20_000, 30_000, 40_000])
                ok, f = _request(
                    g,
                    rng,
                    test_id,
                    provider,
                    model,
                    base,
                    scenario,
                    context_target_tokens=target,
                    _prompt_tokens=target,
                )
                metrics = {
                    "context_target_tokens": target,
                    "prompt_tokens": f["prompt_tokens"],
                    "ttft_ms": f["ttft_ms"],
                }
                done += 1
            elif scenario == "prompt_variety":
                cat = rng.choice(CATEGORIES)
                ok, f = _request(
                    g, rng, test_id, provider, model, base, scenario, category=cat, prompt_id=f"{cat}-1"
                )
                ok = ok and rng.random() < 0.9
                metrics = {
                    "prompt_id": f"{cat}-1",
                    "category": cat,
                    "subcategory": None,
                    "checks": {"answer": ok},
                }
                done += 1
            elif scenario == "provider_failover":
                ok, f = _request(g, rng, test_id, provider, model, base, scenario, phase="primary")
                metrics = {
                    "mode": "recovery",
                    "detect_ms": round(rng.uniform(5, 50), 3),
                    "recover_ms": None,
                    "attempts": 1,
                }
                done += 1
            else:
                ok, f = _request(g, rng, test_id, provider, model, base, scenario)
                done += 1
            g.emit(
                "scenario_result",
                test_id=test_id,
                scenario=scenario,
                provider=provider,
                model=model,
                ok=ok,
                reason=None if ok else "a request failed or the check did not hold",
                error_class=None if ok else "check_failed",
                requests=1,
                duration_ms=1.0,
                metrics=metrics,
            )
        g.emit(
            "run_finished",
            reason="duration",
            elapsed_s=round((g.mono - 1_000_000_000) / 1e9, 3),
            tests=test_id,
        )
        g.flush()
    return done


CHILD_REPORT = """
import json, resource, sys, threading, time
if sys.argv[2:] == ["--threaded"]:  # a second thread, as in the engine: no fork, a fresh child
    threading.Thread(target=threading.Event().wait, daemon=True).start()
t0 = time.perf_counter()
from soaktui.report import build_report, write_report_files
snap, stats = build_report(sys.argv[1])
t1 = time.perf_counter()
paths = write_report_files(sys.argv[1], snap)
t2 = time.perf_counter()
print(json.dumps({"build_s": t1 - t0, "write_s": t2 - t1, "lines_ok": stats.lines_ok,
                  "requests": snap["totals"]["requests"], "tests": snap["totals"]["tests"],
                  "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

CHILD_BARE = """
import json, resource, sys, time, orjson
t0 = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        orjson.loads(line)
        n += 1
print(json.dumps({"bare_s": time.perf_counter() - t0, "lines": n,
                  "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _warm(path: Path) -> None:
    """Read the file once, so the page cache holds it for the report and for the bare pass alike
    (this machine's cache holds about one such log: a log read after the other one was on disk)."""
    with open(path, "rb", buffering=0) as fh:
        while fh.read(1 << 20):
            pass


def _child(argv: list[str]) -> tuple[str, float, float]:
    """Run a child process; (stdout, wall seconds, its own peak RSS in MB from os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child {argv[:2]} failed with {proc.returncode}")
    return out, time.perf_counter() - t0, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="run directory to use (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated run directory")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing events.jsonl in --dir")
    ap.add_argument(
        "--sensors",
        action="store_true",
        help="add telemetry events with temperature, power and fan readings every 2 s of log time",
    )
    ap.add_argument(
        "--threaded",
        action="store_true",
        help="a second thread alive in the report's process, as in the engine's end-of-run report "
        "(its child is then a fresh interpreter, not a fork)",
    )
    ap.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:
        n = generate(args.generate_only, args.requests, sensors=args.sensors)
        print(f"{n} request events")
        return 0
    run_dir = args.dir or Path(tempfile.mkdtemp(prefix="soaktui-bench-report-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "events.jsonl"
    try:
        if not (args.reuse and log.exists()):
            # In a child too, so this process stays small (Linux carries ru_maxrss across exec).
            gen = [__file__, "--generate-only", str(log), "--requests", str(args.requests)]
            _, gen_wall, _ = _child(gen + (["--sensors"] if args.sensors else []))
            print(f"generated {log.stat().st_size / 1e6:,.0f} MB of events in {gen_wall:.1f} s")
        _warm(log)  # both measurements read a cached file: CPU work, not the disk
        out, rep_wall, rep_rss = _child(
            ["-c", CHILD_REPORT, str(run_dir)] + (["--threaded"] if args.threaded else [])
        )
        rep = json.loads(out)
        children_maxrss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out, bare_wall, bare_rss = _child(["-c", CHILD_BARE, str(log)])
        bare = json.loads(out)
        print(
            f"events read: {rep['lines_ok']:,} (request events {rep['requests']:,}, tests {rep['tests']:,})"
        )
        print(
            f"soaktui report: {rep_wall:.2f} s wall in a child process "
            f"(read + fold + snapshot {rep['build_s']:.2f} s, render + write {rep['write_s']:.3f} s), "
            f"peak RSS {rep_rss:.0f} MB (RUSAGE_CHILDREN so far: {children_maxrss_mb:.0f} MB)"
            "   [target <= 10 s, <= 2x the bare pass, <= 300 MB]"
        )
        print(
            f"bare orjson pass: {bare_wall:.2f} s wall (loop {bare['bare_s']:.2f} s over {bare['lines']:,} lines), "
            f"peak RSS {bare_rss:.0f} MB"
        )
        print(f"report / bare orjson: {rep_wall / bare_wall:.2f}x")
        ok = rep_wall <= 10 and rep_wall <= 2 * bare_wall and rep_rss <= 300
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif args.keep:
            print(f"kept {run_dir}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
