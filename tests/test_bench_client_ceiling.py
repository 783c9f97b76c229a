"""bench/client_ceiling.py's aiperf side: what its figures rest on, checked with real processes.

The aiperf row divides the CPU of aiperf's whole process tree by the tokens the bench server
counted. Both parts are checked here without aiperf (CI does not install it): the tree accounting
against a process that orphans a CPU-burning grandchild, the server's count against a real
streamed answer, and how the executable is found.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parent.parent / "bench"

# The child starts a grandchild in a session of its own and exits at once, without waiting for it;
# the grandchild burns 0.5 s of CPU after its parent is gone.
BURN = "import time\nwhile time.process_time() < 0.5: pass"
ORPHANING = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {BURN!r}], start_new_session=True)"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """client_ceiling imported by its own name, as spawned children import it again."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "client_ceiling", raising=False)
    return importlib.import_module("client_ceiling")


def test_tree_cpu_counts_a_descendant_orphaned_by_its_parent(bench: ModuleType, tmp_path: Path) -> None:
    """The grandchild outlives its parent: without the subreaper it would be re-parented to init
    and its CPU would be in nobody's account."""
    done = bench.measure_tree([sys.executable, "-c", ORPHANING], str(tmp_path / "log"), 60, started=lambda: True)
    assert done["rc"] == 0
    assert done["orphans"] == 1
    assert done["cpu"] >= 0.5


def test_server_counts_the_tokens_it_wrote(bench: ModuleType) -> None:
    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    server = ctx.Process(target=bench._serve, args=(20, port_q), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{port_q.get(timeout=30)}"
        body = {"model": "bench", "messages": [], "stream": True, "max_tokens": 5}
        for _ in range(2):
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=10) as r:
                r.read()
        counted = bench._served(base, reset=True)
        assert (counted["requests"], counted["tokens"]) == (2, 10)
        assert 0 < counted["first"] <= counted["last"]
        assert bench._served(base) == {"requests": 0, "tokens": 0, "first": 0.0, "last": 0.0}
    finally:
        server.terminate()
        server.join(5)


def test_find_aiperf_takes_the_option_then_the_variable_then_path(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exes = {}
    for name in ("given", "from_env", "aiperf"):
        exe = tmp_path / name / "aiperf"
        exe.parent.mkdir()
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        exes[name] = str(exe)
    monkeypatch.setenv("PATH", str(Path(exes["aiperf"]).parent))
    monkeypatch.setenv(bench.AIPERF_ENV, exes["from_env"])
    assert bench.find_aiperf(exes["given"]) == exes["given"]
    assert bench.find_aiperf(None) == exes["from_env"]
    monkeypatch.delenv(bench.AIPERF_ENV)
    assert bench.find_aiperf(None) == exes["aiperf"]
    monkeypatch.setenv("PATH", os.devnull)
    assert bench.find_aiperf(None) is None
