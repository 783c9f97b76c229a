"""CPU and memory of the LLM server processes on this machine (LM Studio, ollama, llama-server, vLLM,
llama-cpp-python), found by process name and command line.

What a soak does to the server is half of what it measures: its CPU share and RSS over hours show
a leak or a runaway thread that the HTTP answers alone never would. Processes are rediscovered every
`rescan_s` (walking the process table costs more than reading a handful of known processes), and the
psutil.Process objects are kept between samples, so `cpu_percent` measures the time since the last
sample. A process's first sample has no CPU figure yet (psutil's first call only primes it): it is
left out rather than shown as 0. Processes that end or cannot be read are dropped quietly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

NO_SERVER = "no LLM server process found (LM Studio, ollama, llama-server, vllm, llama_cpp.server)"


def classify(name: str, cmdline: Sequence[str]) -> str | None:
    """The server a process belongs to, from its name and command line; None if it is not one."""
    low = (name or "").lower()
    args = [a.lower() for a in cmdline or ()]
    joined = " ".join(args)
    exe = os.path.basename(args[0]) if args else ""
    script = os.path.basename(args[1]) if len(args) > 1 else ""  # `python /venv/bin/vllm serve ...`
    if "llama_cpp.server" in joined:
        return "llama_cpp.server"
    if low.startswith("llama-server") or exe.startswith("llama-server"):
        return "llama-server"
    if low.startswith("ollama") or exe.startswith("ollama"):
        return "ollama"
    if "lm studio" in low or "lm-studio" in low or low.startswith(("lmstudio", "llmster")):
        return "LM Studio"
    if low.startswith("vllm") or "vllm" in (exe, script) or "vllm.entrypoints" in joined:
        return "vllm"
    return None


class ServerProcessSampler:
    def __init__(
        self,
        rescan_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        classify_fn: Callable[[str, Sequence[str]], str | None] = classify,
    ) -> None:
        self.rescan_s = rescan_s
        self._clock = clock
        self._classify = classify_fn
        self._procs: dict[int, tuple[psutil.Process, str]] = {}
        self._primed: set[int] = set()
        self._next_scan = 0.0
        self._own = os.getpid()

    def _scan(self) -> None:
        for p in psutil.process_iter(["name", "cmdline"]):
            if p.pid == self._own or p.pid in self._procs:
                continue
            try:
                kind = self._classify(p.info.get("name") or "", p.info.get("cmdline") or ())
            except Exception:
                continue
            if kind is not None:
                self._procs[p.pid] = (p, kind)

    def sample(self) -> dict[str, Any]:
        now = self._clock()
        if now >= self._next_scan:
            self._next_scan = now + self.rescan_s
            try:
                self._scan()
            except (psutil.Error, OSError):
                pass
        rows: list[dict[str, Any]] = []
        denied = 0
        for pid, (proc, kind) in list(self._procs.items()):
            try:
                with proc.oneshot():
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                del self._procs[pid]
                self._primed.discard(pid)
                continue
            except (psutil.AccessDenied, OSError):
                denied += 1  # another user's process: not readable here, so not shown
                continue
            row: dict[str, Any] = {"name": kind, "pid": pid, "rss_bytes": rss}
            if pid in self._primed:
                row["cpu_pct"] = round(cpu, 1)
            else:
                self._primed.add(pid)
            rows.append(row)
        if not rows:
            why = (
                f"{denied} LLM server process(es) found but not readable by this user"
                if denied
                else NO_SERVER
            )
            return {"unavailable": {"server_procs": why}}
        rows.sort(key=lambda r: (r["name"], r["pid"]))
        return {"server_procs": rows}
