"""How far is soaktui's time to first token from the server's own, next to a bare httpx loop?

TTFT is the headline figure of a soak, so the engine must not add error of its own to it. The
simulator (in its own process) stamps `perf_counter_ns()` when it has read a request and when it
writes the first token; on Linux that clock is shared by every process, so for each request

    error = client TTFT (first content chunk arrival - request sent) - server TTFT (first_token_ns - recv_ns)

matched by response id. The error is what the client side adds: getting the request onto the wire,
the loopback trip, reading and parsing. It is split into `up` (sent -> the server has read the
request) and `down` (the server wrote the first token -> the client stamped it). It is measured at
1 and at 16 concurrent streams for

- soaktui: the real engine, `soaktui --no-ui` as a subprocess (`--scenarios streaming` for one
  stream; `--scenarios concurrent_load --concurrency 16` for 16, counting only the requests of the
  16-wide batches, `concurrency == 16`), read back from its events.jsonl (`ttft_ms`);
- bare: a minimal httpx loop in this process (`client.stream` + `aiter_lines` + `json.loads`,
  stamped before parsing), sending the same requests in the same shape (a solo request, then 16 at
  once, like concurrent_load). Its requests are shown twice: as "bare", with "sent" stamped just
  before `client.stream` like soaktui stamps it, and as "bare@wire", with "sent" taken from
  httpcore's trace hook when the connection starts writing the request: a reference for how much
  of the error is the time a request waits inside the client before it goes out.

The two alternate in blocks of equal length (engine first in even rounds, bare first in odd ones)
against the same simulator, so both see the same machine. The first test of every block (and so
the requests that open new connections) is left out on both sides as warm-up.

The simulator serves one persona with a fixed 150 ms first token (prompt processing made
negligible) and 400 tokens/s, so outputs are short (16 tokens for streaming, up to 128 for a
concurrent batch) and the run stays under about five minutes.

Target: soaktui's p50 and p99 error within 1 ms of the bare loop's ("bare"), at 1 and 16
streams; judged one-sided (an error below the bare loop's passes).

    .venv/bin/python bench/timing_fidelity.py [--rounds 3] [--block-s1 20] [--block-s16 15] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import KEYS, cells, engine_env, fmt, free_port, stats, stop_process

from soaktui.config.settings import Thresholds
from soaktui.log.reader import iter_events
from soaktui.scenarios.corpus import TOPICS
from soaktui.stats import percentile

PERSONA_ID = "sim-bench-ttft150"
SERVER_TTFT_MS = 150.0
SERVER_TPS = 400.0
STREAM_MAX_TOKENS = 16
WIDE = 16  # concurrent streams of the second measurement

Stamps = tuple[str, int, int]  # (response id, sent ns, first content chunk ns), perf_counter_ns clock


# -- the simulator (a child process: `--serve`) ---------------------------------------------------


def serve(seed: int) -> None:
    """Run the simulator with the benchmark persona until SIGTERM; print its URL first."""
    from soaktui.simulator.personas import Persona
    from soaktui.simulator.server import SimConfig, SimServer

    persona = Persona(
        id=PERSONA_ID,
        params_b=7.0,
        context_length=32768,
        ttft_ms=SERVER_TTFT_MS,
        prompt_tps=1e9,  # TTFT does not depend on the prompt
        tps=SERVER_TPS,
    )

    async def main() -> None:
        server = SimServer(SimConfig(seed=seed, personas=[persona]))
        await server.start("127.0.0.1", 0)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"listening on {server.base_url}", flush=True)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


def start_simulator(seed: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


# -- soaktui: the real engine as a subprocess -------------------------------------------------------


def engine_command(
    base_url: str, out: Path, streams: int, seed: int, home: Path, seconds: float | None = None
) -> tuple[list[str], dict[str, str]]:
    """The engine's command line and environment for a measurement at `streams` concurrency (until
    stopped when `seconds` is None)."""
    cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", base_url]
    if seconds is not None:
        cmd += ["--duration", f"{seconds}s"]
    cmd += ["--out", str(out), "--seed", str(seed), "--throttle", "100"]
    if streams == 1:
        cmd += ["--scenarios", "streaming"]
    else:
        cmd += ["--scenarios", "concurrent_load", "--concurrency", str(streams)]
    return cmd, engine_env(home, thresholds__stream_max_tokens=str(STREAM_MAX_TOKENS))


def streamed_requests(events_path: Path) -> list[dict]:
    """The successful streamed request events (with a response id) of a run, in log order."""
    return [
        e
        for e in iter_events(events_path)
        if e["kind"] == "request" and e.get("ok") and e.get("stream") and e.get("response_id")
    ]


def at_streams(e: dict, streams: int) -> bool:
    """Does request event `e` belong to the measurement at `streams` (the 16-wide batches only)?"""
    return streams == 1 or e.get("concurrency") == streams


def engine_stamps(events: list[dict]) -> list[Stamps]:
    """(response id, sent, first token) of request events, on the shared perf_counter_ns clock."""
    return [
        (e["response_id"], e["sent_mono_ns"], e["sent_mono_ns"] + round(e["ttft_ms"] * 1e6))
        for e in events
        if e.get("ttft_ms") is not None and e.get("sent_mono_ns") is not None
    ]


SCRAPES: list[int] = []  # successful /metrics scrapes per engine block (--metrics)


def _scrape_every_second(port: int, stop: threading.Event) -> None:
    """What Prometheus does to an engine with --metrics-port, once a second (the harshest usual)."""
    ok = 0
    while not stop.wait(1.0):
        try:
            ok += httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
        except httpx.HTTPError:
            pass
    SCRAPES.append(ok)


def engine_block(
    base_url: str, out: Path, streams: int, seconds: float, seed: int, home: Path, metrics: bool = False
) -> list[dict]:
    """Run `soaktui --no-ui` for `seconds`; return its successful streamed request events at
    `streams` concurrency, without those of the block's first test (warm-up). `metrics`: with the
    Prometheus endpoint on and scraped every second."""
    cmd, env = engine_command(base_url, out, streams, seed, home, seconds)
    stop = threading.Event()
    scraper = None
    if metrics:
        port = free_port()
        cmd += ["--metrics-port", str(port)]
        scraper = threading.Thread(target=_scrape_every_second, args=(port, stop), daemon=True)
        scraper.start()
    with open(out.parent / f"{out.name}.stderr", "w") as err:
        rc = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=seconds + 120,
        ).returncode
    stop.set()
    if scraper is not None:
        scraper.join(5)
    if rc != 0:
        raise SystemExit(f"soaktui exited {rc}; see {out.parent / (out.name + '.stderr')}")
    reqs = streamed_requests(out / "events.jsonl")
    if not reqs:
        return []
    first_test = min(e["test_id"] for e in reqs)
    return [e for e in reqs if e["test_id"] != first_test and at_streams(e, streams)]


# -- bare: a minimal httpx streaming loop ------------------------------------------------------------


async def bare_request(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[str | None, int, int | None, int | None]:
    """(response id, sent ns, on-the-wire ns, first token ns) of one streamed request.

    `sent` is stamped like soaktui's: just before the request is handed to httpx. The first token is
    stamped when the line carrying the first content arrives, before it is parsed. `wire` is a
    reference stamp from httpcore's trace hook, taken when the connection starts writing this
    request's headers: it leaves out the time a request waits inside the client (pool, event loop)
    before it goes out, which grows with the number of concurrent requests."""
    perf = time.perf_counter_ns
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    rid = None
    first = None
    wire: list[int] = []

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_headers.started"):
            wire.append(perf())

    sent = perf()
    async with client.stream(
        "POST", url, content=payload, headers=headers, extensions={"trace": trace}
    ) as response:
        async for line in response.aiter_lines():
            stamp = perf()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if rid is None:
                rid = obj.get("id")
            if first is None:
                choices = obj.get("choices")
                if choices and (choices[0].get("delta") or {}).get("content"):
                    first = stamp
    return rid, sent, wire[0] if wire else None, first


def _body(streams: int, rng: random.Random) -> dict[str, Any]:
    """The request soaktui's scenario sends (streaming, or concurrent_load's batch request)."""
    topic = rng.choice(TOPICS)
    if streams == 1:
        words = max(30, int(STREAM_MAX_TOKENS * 0.6))
        content, max_tokens = f"Explain {topic} in about {words} words.", STREAM_MAX_TOKENS
    else:
        content, max_tokens = f"In five sentences, summarise {topic}.", Thresholds().concurrent_max_tokens
    return {
        "model": PERSONA_ID,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0.7,
    }


async def bare_block(
    base_url: str, streams: int, seconds: float, seed: int
) -> tuple[list[Stamps], list[Stamps]]:
    """Run the bare loop for `seconds`: one request at a time, or a solo request then `streams` at
    once (like concurrent_load). Returns the stamps of the counted requests (first test left out),
    with `sent` as soaktui stamps it and with the on-the-wire stamp."""
    url = f"{base_url}/v1/chat/completions"
    rng = random.Random(seed)
    out: list[Stamps] = []
    at_wire: list[Stamps] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=64)) as client:
        test = 0
        while time.monotonic() < deadline:
            test += 1
            body = _body(streams, rng)
            if streams == 1:
                results = [await bare_request(client, url, body)]
            else:
                await bare_request(client, url, body)  # the solo baseline, not counted
                results = await asyncio.gather(*(bare_request(client, url, body) for _ in range(streams)))
            if test > 1:
                for rid, sent, wire, first in results:
                    if rid and first is not None:
                        out.append((rid, sent, first))
                        if wire is not None:
                            at_wire.append((rid, wire, first))
    return out, at_wire


# -- comparison ---------------------------------------------------------------------------------------


def server_log(base_url: str) -> dict[str, tuple[int, int]]:
    data = httpx.get(f"{base_url}/sim/requests", timeout=30).json()["data"]
    return {r["id"]: (r["recv_ns"], r["first_token_ns"]) for r in data if r["first_token_ns"] is not None}


def compare(stamps: list[Stamps], log: dict[str, tuple[int, int]]) -> dict[str, list[float]]:
    """Per request (sorted, ms): the TTFT error, and its two parts on the shared clock: `up` (client
    sent -> server has read the request) and `down` (server wrote the first token -> client stamped
    it); error = up + down. Also the server's own TTFT."""
    out: dict[str, list[float]] = {"error": [], "up": [], "down": [], "server": []}
    for rid, sent, first in stamps:
        rec = log.get(rid)
        if rec is None:
            continue
        recv, server_first = rec
        out["error"].append(((first - sent) - (server_first - recv)) / 1e6)
        out["up"].append((recv - sent) / 1e6)
        out["down"].append((first - server_first) / 1e6)
        out["server"].append((server_first - recv) / 1e6)
    return {k: sorted(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="engine/bare block pairs per concurrency")
    ap.add_argument("--block-s1", type=float, default=20.0, help="seconds per block at 1 stream")
    ap.add_argument("--block-s16", type=float, default=15.0, help="seconds per block at 16 streams")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the engine's run directories here")
    ap.add_argument("--wide", default=str(WIDE), metavar="N,N",
                    help=f"the concurrent_load widths measured after 1 stream (default {WIDE}; e.g. 16,64)")  # fmt: skip
    ap.add_argument("--metrics", action="store_true", help="engine with --metrics-port, scraped every second")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.seed)
        return

    wides = [int(x) for x in args.wide.split(",") if x.strip()]
    t_start = time.monotonic()
    load0 = os.getloadavg()
    work = args.keep or Path(tempfile.mkdtemp(prefix="soaktui-ttft-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    sim, base_url = start_simulator(args.seed)
    print(f"simulator {base_url}: persona {PERSONA_ID}, TTFT {SERVER_TTFT_MS:g} ms, {SERVER_TPS:g} tok/s")
    print(f"{os.cpu_count()} CPUs, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; runs in {work}")
    pairs: dict[tuple[int, str], list[Stamps]] = {}
    try:
        for streams, seconds in ((1, args.block_s1), *((w, args.block_s16) for w in wides)):
            for rnd in range(args.rounds):
                order = ["soaktui", "bare"] if rnd % 2 == 0 else ["bare", "soaktui"]
                for who in order:
                    seed = args.seed * 1000 + streams * 10 + rnd
                    if who == "soaktui":
                        out = work / f"run_s{streams}_r{rnd}"
                        evs = engine_block(base_url, out, streams, seconds, seed, home, args.metrics)
                        got = engine_stamps(evs)
                    else:
                        got, at_wire = asyncio.run(bare_block(base_url, streams, seconds, seed))
                        pairs.setdefault((streams, "bare@wire"), []).extend(at_wire)
                    pairs.setdefault((streams, who), []).extend(got)
                    print(f"  {streams:>2} stream(s), round {rnd + 1}, {who:<7}: {len(got)} requests counted")
        log = server_log(base_url)
    finally:
        stop_process(sim)
    load1 = os.getloadavg()

    print()
    print("TTFT error = client TTFT - server TTFT, ms, matched by response id; error = up + down")
    print("  up: client 'sent' stamp -> server has read the request; down: server wrote the first token ->")
    print(
        "  client stamped it. bare@wire: the bare loop's requests again, 'sent' taken from httpcore's trace"
    )
    print("  hook when the connection starts writing the request (a reference, not part of the target).")
    print(
        f"{'streams':>7}  {'client':<9} {'n':>5} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}"
        f"  {'up p50':>6} {'down p50':>8}  server TTFT p50"
    )
    verdicts = []
    for streams in (1, *wides):
        rows = {}
        for who in ("soaktui", "bare", "diff", "bare@wire"):
            if who == "diff":
                a, b = rows["soaktui"], rows["bare"]
                diff = {k: None if a[k] is None or b[k] is None else a[k] - b[k] for k in KEYS}
                print(f"{streams:>7}  {'diff':<9} {'':>5} {cells(diff)}  (soaktui - bare)")
                continue
            c = compare(pairs.get((streams, who), []), log)
            rows[who] = st = stats(c["error"])
            print(
                f"{streams:>7}  {who:<9} {st['n']:>5} {cells(st)}  {fmt(percentile(c['up'], 50))} "
                f"{fmt(percentile(c['down'], 50)):>8}  {fmt(percentile(c['server'], 50))}"
            )
        # One-sided: an error below the bare loop's is not a failure.
        ok = all(diff[k] is not None and diff[k] <= 1.0 for k in ("p50", "p99"))
        verdicts.append(f"{streams} stream(s) {'PASS' if ok else 'FAIL'}")
    if args.metrics:
        print(f"\nengine with --metrics-port, /metrics scraped every second: {SCRAPES} scrapes answered per block")
    print()
    print(f"target: soaktui p50 and p99 error at most 1 ms above the bare loop's: {'; '.join(verdicts)}")
    print(
        f"load average before {load0[0]:.2f}, after {load1[0]:.2f} (1 min); "
        f"total {time.monotonic() - t_start:.0f} s"
    )


if __name__ == "__main__":
    main()
