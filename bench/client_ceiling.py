"""How fast can soaktui's ChatClient ingest a stream, next to a bare httpx loop?

The client stamps and parses every chunk on the engine's event loop; if that costs much more than
the simplest possible consumer, a fast server would be measured as slower than it is. This script
streams N content chunks as fast as a loopback server can write them and prints content chunks/s
for (a) a bare httpx loop (`client.stream` + `aiter_lines` + `json.loads`) and (b)
`ChatClient.chat()`, in alternating runs over identical streams, plus their ratio (target >= 0.85).

The server runs in its own process (so it does not share our GIL). `--url` points the bench at
another server instead, e.g. the built-in simulator at full speed (`--model` names the persona;
both consumers ask for exactly `--chunks` tokens):

    .venv/bin/python bench/client_ceiling.py [--chunks 20000] [--runs 5]
    soaktui simulate --port 18765 --speed 100000 &
    .venv/bin/python bench/client_ceiling.py --url http://127.0.0.1:18765 --model sim-qwen2.5-7b-instruct
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from soaktui.providers.client import ChatClient

MODEL = "bench"  # --model sets it (e.g. a simulator persona with --url)
MESSAGES = [{"role": "user", "content": "stream"}]
MAX_TOKENS: int | None = None  # with --url: ask for exactly --chunks tokens
WRITE_BATCH = 16  # events per server write


# -- the server (child process) ----------------------------------------------------------------------


def _served_counter() -> dict[str, float]:
    """The server's count of chat answers written since the last reset: requests, tokens (content
    chunks), and the monotonic times (shared by every process on Linux) the first began and the last ended."""
    return {"requests": 0, "tokens": 0, "first": 0.0, "last": 0.0}


def _chunked(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


def _events(n: int) -> list[bytes]:
    """OpenAI-shaped chunks, about the size real servers send, then usage and [DONE]."""
    out = []
    for i in range(n):
        obj = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": f" tok{i % 1000}"}, "finish_reason": None}],
        }
        out.append(_chunked(b"data: " + json.dumps(obj).encode() + b"\n\n"))
    last = {"id": "chatcmpl-bench", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"id": "chatcmpl-bench", "choices": [], "usage": {"prompt_tokens": 64, "completion_tokens": n}}  # 64: a plausible count for the prompts sent
    for obj in (last, usage):
        out.append(_chunked(b"data: " + json.dumps(obj).encode() + b"\n\n"))
    out.append(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return out


def _serve(n: int, port_q: mp.Queue) -> None:
    events = _events(n)
    # Batches of events per write: a write per event would make this process the bottleneck
    # (one syscall each) and hide the consumers' own cost. Reads coalesce on the client anyway.
    batches = [b"".join(events[i : i + WRITE_BATCH]) for i in range(0, len(events), WRITE_BATCH)]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
    )

    by_count: dict[int, list[bytes]] = {n: batches}

    def batches_for(body: bytes) -> tuple[int, list[bytes]]:
        """The answer (its token count and writes), `max_tokens` chunks long when the request sets
        fewer than `n` (as a server honours it: the engine cuts a stream that ignores max_tokens as runaway)."""
        try:
            want = json.loads(body).get("max_tokens") or n
        except ValueError:
            want = n
        count = min(int(want), n)
        if count not in by_count:
            ev = _events(count)
            by_count[count] = [b"".join(ev[i : i + WRITE_BATCH]) for i in range(0, len(ev), WRITE_BATCH)]
        return count, by_count[count]

    models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
    served = _served_counter()  # what GET /bench/served reports (--aiperf's cross-check)

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on this connection
                hdr = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in hdr.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                if hdr.startswith(b"GET /bench/served"):  # ?reset zeroes the count after reporting it
                    payload = json.dumps(served).encode()
                    if hdr.startswith(b"GET /bench/served?reset "):
                        served.update(_served_counter())
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(payload), payload))  # fmt: skip
                    await writer.drain()
                    continue
                if hdr.startswith(b"GET "):  # discovery (--engine): the model list, nothing else
                    found = hdr.startswith(b"GET /v1/models ")
                    payload = models if found else b"{}"
                    status = b"200 OK" if found else b"404 Not Found"
                    writer.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (status, len(payload), payload))  # fmt: skip
                    await writer.drain()
                    continue
                count, answer = batches_for(body)
                served["first"] = served["first"] or time.monotonic()
                writer.write(head)
                for batch in answer:
                    writer.write(batch)
                    await writer.drain()
                served["requests"] += 1
                served["tokens"] += count
                served["last"] = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


# -- the two consumers ---------------------------------------------------------------------------


async def bare_httpx(client: httpx.AsyncClient, url: str) -> int:
    body = {"model": MODEL, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    if MAX_TOKENS:
        body["max_tokens"] = MAX_TOKENS
    n = 0
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            obj = json.loads(data)
            choices = obj.get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                n += 1
    return n


async def ours(client: ChatClient) -> int:
    result = await client.chat(MODEL, MESSAGES, max_tokens=MAX_TOKENS, total_timeout_s=600.0)
    if not result.ok:
        raise SystemExit(f"ChatClient failed: {result.error_class}: {result.error}")
    return result.chunks


async def raw_socket(base_url: str) -> float:
    """Seconds to receive one whole response with no HTTP parsing at all: the server's ceiling."""
    host, port = base_url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}).encode()
    t0 = time.perf_counter()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    tail = b""
    while not tail.endswith(b"0\r\n\r\n"):
        data = await reader.read(1 << 16)
        if not data:
            break
        tail = (tail + data)[-16:]
    dt = time.perf_counter() - t0
    writer.close()
    return dt


async def bench(base_url: str, chunks: int, runs: int, ceiling: bool) -> None:
    url = f"{base_url}/v1/chat/completions"
    bare_client = httpx.AsyncClient(timeout=120.0)
    clients = {"ChatClient": ChatClient(base_url), "ChatClient/httpx": ChatClient(base_url, transport="httpx")}
    consumers = {"bare httpx": lambda: bare_httpx(bare_client, url)}
    for name, client in clients.items():
        consumers[name] = lambda client=client: ours(client)
    rates: dict[str, list[float]] = {name: [] for name in consumers}
    try:
        for fn in consumers.values():  # warm up (connections, imports, caches)
            await fn()
        for i in range(runs):
            order = list(consumers.items())
            if i % 2:
                order.reverse()
            for name, fn in order:
                t0 = time.perf_counter()
                n = await fn()
                dt = time.perf_counter() - t0
                if n != chunks:
                    print(f"  warning: {name} saw {n} content chunks, expected {chunks}")
                rates[name].append(n / dt)
    finally:
        await bare_client.aclose()
        for client in clients.values():
            await client.aclose()

    for name, values in rates.items():
        print(
            f"{name:>16}: median {statistics.median(values):>10,.0f} chunks/s"
            f"   (runs: {', '.join(f'{v:,.0f}' for v in values)})"
        )
    if ceiling:
        dts = [await raw_socket(base_url) for _ in range(3)]
        print(f"server ceiling (raw socket, no parsing): {chunks / min(dts):,.0f} chunks/s")
    bare = statistics.median(rates["bare httpx"])
    for name in clients:
        ratio = statistics.median(rates[name]) / bare
        print(f"           ratio: {ratio:.3f}  ({name} / bare httpx; target >= 0.85)")


# -- engine level (--engine): concurrent_load's batches, the engine against a bare loop ------------------


async def bare_batches(base_url: str, streams: int, chunks: int, seconds: float) -> tuple[list[float], float, int]:
    """concurrent_load's shape with a bare httpx loop: one request alone, then `streams` at once,
    again and again for `seconds`. Returns each batch's tokens/s, CPU seconds and tokens."""
    url = f"{base_url}/v1/chat/completions"
    limits = httpx.Limits(max_connections=streams + 1, max_keepalive_connections=streams + 1)
    rates: list[float] = []
    tokens = 0
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        await bare_httpx(client, url)
        cpu0 = time.process_time()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await bare_httpx(client, url)
            t0 = time.perf_counter()
            got = await asyncio.gather(*(bare_httpx(client, url) for _ in range(streams)))
            rates.append(sum(got) / (time.perf_counter() - t0))
            tokens += sum(got) + chunks
        cpu = time.process_time() - cpu0
    return rates, cpu, tokens


def engine_batches(
    base_url: str, streams: int, seconds: float, work: Path, transport: str = "auto"
) -> tuple[list[float], float, int, list[float]]:
    """`soaktui --no-ui --scenarios concurrent_load --concurrency N` for `seconds`: each batch's
    aggregate tokens/s (scenario_result), the engine's CPU seconds from its first test to its
    exit, the output tokens in that span, and client_queue_ms of the batch requests."""
    from _common import engine_env  # the engine's environment, as the other benchmarks give it

    from soaktui.log.reader import iter_events

    out = work / f"engine_{streams}_{transport}"
    cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", base_url, "--out", str(out),
           "--scenarios", "concurrent_load", "--concurrency", str(streams), "--duration", f"{seconds:.0f}s",
           "--throttle", "100", "--seed", "1"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = engine_env(work, thresholds__concurrent_max_tokens=str(MAX_TOKENS), http_transport=transport)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    log = out / "events.jsonl"
    cpu0 = None
    while proc.poll() is None:
        if cpu0 is None and log.exists() and b'"test_started"' in log.read_bytes()[-65536:]:
            t = ps.cpu_times()
            cpu0 = t.user + t.system
        time.sleep(0.05)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the engine, reaped by poll(): its whole CPU
    cpu_total = (ru.ru_utime + ru.ru_stime) - (before.ru_utime + before.ru_stime)
    events = list(iter_events(log))
    rates = [e["metrics"]["aggregate_tps"] for e in events
             if e["kind"] == "scenario_result" and (e.get("metrics") or {}).get("concurrency") == streams
             and e["metrics"].get("aggregate_tps")]  # fmt: skip
    reqs = [e for e in events if e["kind"] == "request" and e.get("ok")]
    tokens = sum(e.get("output_tokens") or 0 for e in reqs)
    queue = sorted(e["client_queue_ms"] for e in reqs if e.get("concurrency") == streams and e.get("client_queue_ms") is not None)
    return rates, cpu_total - (cpu0 or 0.0), tokens, queue


# -- aiperf (--aiperf): NVIDIA's benchmark against the same server, its whole process tree's CPU --------

AIPERF_ENV = "SOAKTUI_AIPERF"  # the aiperf executable, where --aiperf is not given
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def find_aiperf(given: str | None) -> str | None:
    """--aiperf PATH, else $SOAKTUI_AIPERF, else `aiperf` on PATH; None when none is there. aiperf is
    never a project dependency: it lives in a venv of its own (bench/README.md)."""
    import shutil

    for candidate in (given, os.environ.get(AIPERF_ENV), "aiperf"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def byte_tokenizer(folder: Path) -> Path:
    """A byte-level HuggingFace tokenizer (GPT-2's byte alphabet, no merges: one token per byte) written
    to `folder`. aiperf needs a tokenizer to synthesise prompts even when it counts output tokens
    from the server's usage; its `builtin` one (tiktoken) downloads its table on first use, and this
    machine reaches no hub. Lossless, so its prompts decode to the sonnet text it sampled."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    vocab = {ch: i for i, ch in enumerate(chars)} | {"<|endoftext|>": 256}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    eos = {"id": 256, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
           "normalized": False, "special": True}  # fmt: skip
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [eos], "normalizer": None,
            "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "vocab": vocab, "merges": []}}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "model_max_length": 10**6}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def run_as_subreaper(cmd: list[str], log: str, timeout_s: float, out: mp.Queue) -> None:
    """Run `cmd` from a process that is a child subreaper (prctl), and report the CPU of its whole tree.

    The kernel adds a process's CPU, with that of the children it reaped, to its parent's
    RUSAGE_CHILDREN when the parent reaps it. aiperf's services and workers are its children and it
    joins them; any descendant whose parent dies first is re-parented to this process (the nearest
    subreaper) rather than to init, and reaped here. So once every descendant has exited and been
    reaped, this process's RUSAGE_CHILDREN is the CPU of every process in the tree, each counted
    once. (Lost only for children of a parent that ignores SIGCHLD, which aiperf does not do.)"""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(psutil.Process())
            rc = proc.wait()
    orphans, deadline = 0, time.monotonic() + 30  # leftovers get 30 s to finish, then are killed
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # no child left: every descendant has been reaped
        if pid:
            orphans += 1
        elif time.monotonic() > deadline:
            _kill_tree(psutil.Process())
        else:
            time.sleep(0.05)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.put({"rc": rc, "cpu": ru.ru_utime + ru.ru_stime, "orphans": orphans})


def _kill_tree(root: psutil.Process) -> None:
    for p in root.children(recursive=True):
        try:
            p.kill()
        except psutil.Error:
            pass


def tree_cpu(root: psutil.Process) -> tuple[float, int]:
    """CPU seconds used so far by the processes under `root` (root's own excepted), and how many are
    alive: each live descendant's own and its reaped children's, plus root's reaped children's."""
    t = root.cpu_times()
    total, alive = t.children_user + t.children_system, 0
    for p in root.children(recursive=True):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue  # gone between listing and reading: counted in its parent's children when reaped
        total += t.user + t.system + t.children_user + t.children_system
        alive += 1
    return total, alive


def measure_tree(cmd: list[str], log: str, timeout_s: float, started: Callable[[], bool]) -> dict[str, float]:
    """Run `cmd` under a subreaper (run_as_subreaper, in a process of its own so this one stays as it
    is) and return its exit code `rc` and its whole tree's CPU seconds: `cpu` in all, `cpu0` already
    used when `started()` first held (polled every 50 ms), `seen` at the last look while it ran
    (a check on `cpu`), and `processes`, the most seen alive at once."""
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    wrapper = ctx.Process(target=run_as_subreaper, args=(cmd, log, timeout_s, q), daemon=True)
    wrapper.start()
    root = psutil.Process(wrapper.pid)
    cpu0, seen, alive = None, 0.0, 0
    while True:
        try:
            done = q.get(timeout=0.05 if cpu0 is None else 1.0)
            break
        except queue.Empty:
            if not wrapper.is_alive():  # it reports just before it exits: one last look
                try:
                    done = q.get(timeout=1.0)
                    break
                except queue.Empty:
                    raise SystemExit(f"the subreaper exited ({wrapper.exitcode}) without a report") from None
        try:
            if cpu0 is None:
                if started():
                    cpu0, _ = tree_cpu(root)
            else:  # the tree now and then, to check the final account against
                seen, n = tree_cpu(root)
                alive = max(alive, n)
        except psutil.Error:
            pass
    wrapper.join(10)
    return {**done, "cpu0": cpu0 or 0.0, "seen": seen, "processes": alive}


def _served(base_url: str, reset: bool = False) -> dict[str, float]:
    return httpx.get(f"{base_url}/bench/served{'?reset' if reset else ''}", timeout=10).json()


def aiperf_run(exe: str, base_url: str, streams: int, chunks: int, seconds: float, work: Path) -> dict[str, float]:
    """`aiperf profile` at `streams` concurrent streaming chats of `chunks` tokens (max_tokens) for
    `seconds`, against our server. Returns its own output tokens/s, the server's count over the run,
    and the CPU of aiperf's whole process tree from its first request to its exit and in all."""
    art = work / f"aiperf_{streams}"
    cmd = [exe, "profile", "--model", MODEL, "--url", base_url, "--endpoint-type", "chat", "--streaming",
           "--concurrency", str(streams), "--osl", str(chunks), "--use-legacy-max-tokens",
           "--use-server-token-count", "--tokenizer", str(byte_tokenizer(work / "byte_tokenizer")),
           "--benchmark-duration", f"{seconds:g}", "--ui", "none", "--no-server-metrics", "--no-gpu-telemetry",
           "--artifact-dir", str(art), "--random-seed", "1"]  # fmt: skip
    _served(base_url, reset=True)
    done = measure_tree(cmd, f"{art}.log", seconds + 180, started=lambda: bool(_served(base_url)["first"]))
    served = _served(base_url)
    if done["rc"] != 0:
        raise SystemExit(f"aiperf exited {done['rc']}; see {art}.log")
    summary = json.loads((art / "profile_export_aiperf.json").read_text())
    if done["cpu"] + 0.5 < done["seen"]:
        print(f"      warning: aiperf's tree accounted {done['cpu']:.1f} CPU s, below the {done['seen']:.1f} seen alive")
    span = served["last"] - served["first"]
    return {
        "tps": summary["output_token_throughput"]["avg"],
        "server_tps": served["tokens"] / span if span > 0 else float("nan"),
        "span": span,
        "tokens": served["tokens"],
        "cpu_run": done["cpu"] - done["cpu0"],
        "cpu_all": done["cpu"],
        "processes": done["processes"],
        "orphans": done["orphans"],
    }


def print_aiperf(a: dict[str, float], bare_tps: float, engine_cpu_per_token: dict[str, float]) -> None:
    per_m = 1e6 * a["cpu_run"] / max(a["tokens"], 1)
    ratios = ", ".join(f"{t} {1e6 * c / per_m:.2f}" for t, c in engine_cpu_per_token.items())
    print(f"       aiperf {a['tps']:>9,.0f} tok/s (its own figure; the server wrote {a['server_tps']:,.0f} tok/s over "
          f"{a['span']:.1f} s): ratio to bare {a['tps'] / bare_tps:.2f}; CPU s/Mtok {per_m:.1f} from its first "
          f"request to exit ({1e6 * a['cpu_all'] / max(a['tokens'], 1):.1f} with its start), its whole tree (up to "
          f"{a['processes']:.0f} processes, {a['orphans']:.0f} orphans reaped); engine/aiperf CPU per token: "
          f"{ratios} (target <= 1)")  # fmt: skip


def engine_mode(
    streams_list: list[int], chunks: int, seconds: float, transports: list[str], aiperf: str | None = None
) -> None:
    """Answers of `chunks` tokens: the engine's concurrent_load asks for that many
    (thresholds.concurrent_max_tokens), the bare loop too, and the server honours it. One engine
    row per HTTP transport asked for (`--transports`; the setting http_transport), and an aiperf
    row when `aiperf` names its executable."""
    import tempfile

    global MAX_TOKENS
    MAX_TOKENS = chunks

    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(chunks, port_q), daemon=True)
    proc.start()
    base_url = f"http://127.0.0.1:{port_q.get(timeout=30)}"
    print(f"engine level: server {base_url}, {chunks} chunks per answer, {seconds:g} s per side; {os.getloadavg()[0]:.2f} load")
    if aiperf is None:
        print(f"  aiperf: not installed, no aiperf row (--aiperf PATH, ${AIPERF_ENV} or `aiperf` on PATH; bench/README.md)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in streams_list:
                b_rates, b_cpu, b_tokens = asyncio.run(bare_batches(base_url, n, chunks, seconds))
                b_med = statistics.median(b_rates)
                print(f"  {n:>3} streams: bare httpx batches {b_med:>9,.0f} tok/s (n={len(b_rates)}), "
                      f"CPU s per million output tokens {1e6 * b_cpu / max(b_tokens, 1):.1f}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
                engine_cpu: dict[str, float] = {}  # CPU s per output token, per transport
                for transport in transports:
                    e_rates, e_cpu, e_tokens, queue = engine_batches(base_url, n, seconds, Path(tmp), transport)
                    e_med = statistics.median(e_rates)
                    q50 = queue[len(queue) // 2] if queue else float("nan")
                    print(f"       engine ({transport:>5}) {e_med:>9,.0f} tok/s (n={len(e_rates)} batches): "
                          f"ratio {e_med / b_med:.2f} (target >= 0.85); CPU s/Mtok {1e6 * e_cpu / max(e_tokens, 1):.1f} "
                          f"(first test to exit); client_queue_ms p50 {q50:.2f} (target <= {2 if n <= 8 else 5})")  # fmt: skip
                    engine_cpu[transport] = e_cpu / max(e_tokens, 1)
                if aiperf is not None:
                    print_aiperf(aiperf_run(aiperf, base_url, n, chunks, seconds, Path(tmp)), b_med, engine_cpu)
    finally:
        proc.terminate()
        proc.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000, help="content chunks per stream")
    ap.add_argument("--runs", type=int, default=5, help="runs per consumer (alternating)")
    ap.add_argument("--url", help="base URL of an existing server instead of the built-in one")
    ap.add_argument("--model", default=None, help="model to ask for with --url (e.g. a simulator persona)")
    ap.add_argument("--engine", metavar="N,N", help="engine level: concurrent_load at these widths (e.g. 8,64) "
                    "against a bare loop awaiting the same batches (answers of concurrent_load's max_tokens)")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=30.0, help="--engine: seconds per side")
    ap.add_argument("--transports", default="auto", metavar="T,T",
                    help="--engine: the engine's http_transport per row (auto, lean, httpx), e.g. auto,httpx")  # fmt: skip
    ap.add_argument("--aiperf", metavar="PATH", help=f"--engine: the aiperf executable to run as a third side "
                    f"(default: ${AIPERF_ENV}, else `aiperf` on PATH; skipped when there is none)")  # fmt: skip
    args = ap.parse_args()
    if args.engine:
        chunks = args.chunks if args.chunks != 20_000 else 512
        engine_mode([int(x) for x in args.engine.split(",")], chunks, args.seconds, args.transports.split(","),
                    find_aiperf(args.aiperf))
        return
    global MODEL, MESSAGES, MAX_TOKENS
    if args.url:
        MODEL = args.model or MODEL
        MESSAGES = [{"role": "user", "content": f"Write {args.chunks} tokens about anything."}]
        MAX_TOKENS = args.chunks

    proc = None
    base_url = args.url
    if base_url is None:
        ctx = mp.get_context("spawn")
        port_q: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_serve, args=(args.chunks, port_q), daemon=True)
        proc.start()
        base_url = f"http://127.0.0.1:{port_q.get(timeout=30)}"
    print(f"server {base_url}, {args.chunks} chunks per stream, {args.runs} runs each")
    try:
        asyncio.run(bench(base_url.rstrip("/"), args.chunks, args.runs, ceiling=proc is not None))
    finally:
        if proc is not None:
            proc.terminate()
            proc.join(5)


if __name__ == "__main__":
    main()
