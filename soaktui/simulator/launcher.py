"""`--demo`: the built-in simulator in a child process, so a soak works with no server around.

A separate process, not a thread: the simulator then never competes with the engine for the GIL,
and the demo's timings are as honest as a real server's. The child prints its listening URL on
its first line of stdout; it is terminated (then killed, if it lingers) when the run ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading

from soaktui.errors import SetupError

_URL = re.compile(r"listening on (http://\S+)")


class SimulatorProcess:
    def __init__(
        self, seed: int | None = None, extra_args: list[str] | None = None, start_timeout_s: float = 20.0
    ):
        self.seed = seed
        self.extra_args = (
            extra_args if extra_args is not None else ["--flavor", "lmstudio", "--personas", "flaky"]
        )
        self.start_timeout_s = start_timeout_s
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> str:
        cmd = [
            sys.executable,
            "-m",
            "soaktui",
            "simulate",
            "--port",
            "0",
            "--exit-with-parent",
            str(os.getpid()),
        ]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        cmd += self.extra_args
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True
        )
        found: list[str] = []
        started = threading.Event()

        def read_first_line() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            for line in self._proc.stdout:  # keep draining so the child never blocks on a full pipe
                m = _URL.search(line)
                if m and not found:
                    found.append(m.group(1))
                    started.set()
            started.set()  # EOF: the child exited

        reader = threading.Thread(target=read_first_line, daemon=True)
        reader.start()
        started.wait(self.start_timeout_s)
        if not found:
            self.stop()
            self._stderr.seek(0)
            lines = self._stderr.read().strip().splitlines()
            err = f": {lines[-1]}" if lines else ""
            raise SetupError(f"the built-in simulator did not start{err}")
        self.base_url = found[0].rstrip("/")
        return self.base_url

    def stop(self) -> None:
        p = self._proc
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
