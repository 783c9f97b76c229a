"""What the dashboard benchmarks share: the engine as a child process, the viewer in a real terminal
(a private tmux server), the viewer's process, event rates read from a run's log, figures alike.

The dashboard benchmarks (ui_fidelity.py, viewer_cost.py, ui_responsiveness.py) all run the real
pieces as a person does: the headless engine in its own process, writing events.jsonl, and
`soaktui watch RUN_DIR` in a terminal. The terminal is tmux on its own socket (`tmux -L`, no config
file), so the benchmarks never touch the user's tmux sessions, at 200x60 so every pane is shown.
`COLUMNS`/`LINES` are removed from the viewer's environment (Textual would take them over the
terminal's size) and `TEXTUAL_ANIMATIONS=none`, as in tests/test_tmux_e2e.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from soaktui.engine.control import ControlError, send_command
from soaktui.log.reader import iter_events
from soaktui.stats import percentile

# What the benchmarks share with the tests (engine_env, stop_process) is in tests/helpers.py.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
from tests.helpers import engine_env as engine_env  # noqa: E402
from tests.helpers import free_port as free_port  # noqa: E402
from tests.helpers import stop_process as stop_process  # noqa: E402

SOAKTUI = Path(sys.executable).with_name("soaktui")  # the installed console script
WIDTH, HEIGHT = 200, 60  # every pane shows at this size
THROTTLE_RE = re.compile(r"throttle (\d+)%")


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min), {os.cpu_count()} CPUs"


# -- the engine --------------------------------------------------------------------------------------


def start_engine(
    cmd: list[str], env: dict[str, str], run_dir: Path, timeout_s: float = 60.0
) -> subprocess.Popen:
    """Start the headless engine (`cmd`) and wait until it has written its first request event."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + timeout_s
    log = run_dir / "events.jsonl"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the engine exited ({proc.returncode}); see {err.name}")
        if log.exists() and b'"kind":"request"' in log.read_bytes()[-200_000:]:
            return proc
        time.sleep(0.2)
    stop_process(proc)
    raise SystemExit(f"the engine wrote no request within {timeout_s:g} s; see {err.name}")


def control(run_dir: Path, command: str, arg: object = None) -> dict[str, Any]:
    """One command over the run's control socket (what `soaktui ctl` sends); SystemExit if refused."""
    try:
        reply = send_command(run_dir, command, arg, timeout_s=10.0)
    except ControlError as exc:
        raise SystemExit(f"control {command}: {exc}") from None
    if not reply.get("ok"):
        raise SystemExit(f"control {command} {arg}: refused: {reply.get('message')}")
    return reply


def stop_engine(proc: subprocess.Popen, run_dir: Path, timeout_s: float = 120.0) -> None:
    """Stop the run gracefully (it writes its report), or terminate it if it does not answer."""
    if proc.poll() is not None:
        return
    try:
        send_command(run_dir, "stop", timeout_s=10.0)
        proc.wait(timeout_s)
    except (ControlError, subprocess.TimeoutExpired):
        stop_process(proc)


def count_events(events_path: Path, t0_ns: int, t1_ns: int) -> Counter[str]:
    """Events per kind whose `mono_ns` (the engine's perf_counter_ns, shared on Linux) is in [t0, t1)."""
    out: Counter[str] = Counter()
    for e in iter_events(events_path):
        if t0_ns <= e.get("mono_ns", -1) < t1_ns:
            out[e["kind"]] += 1
    return out


def measure_rate(events_path: Path, seconds: float) -> tuple[float, float]:
    """(requests/s, events/s) the engine logs over the next `seconds`."""
    t0 = time.perf_counter_ns()
    time.sleep(seconds)
    t1 = time.perf_counter_ns()
    c = count_events(events_path, t0, t1)
    dt = (t1 - t0) / 1e9
    return c["request"] / dt, sum(c.values()) / dt


def calibrate_throttle(
    run_dir: Path, target: float, per_second: Callable[[float, float], float], start_pct: int, window_s: float
) -> tuple[int, float]:
    """Steer the run's throttle until `per_second(requests/s, events/s)` is near `target`.

    The duty cycle makes the rate about proportional to the throttle, so each step scales it by
    target/measured (4 steps at most, or until within 5%). Returns (throttle %, last rate)."""
    pct = start_pct
    control(run_dir, "throttle", pct)
    rate = 0.0
    for _ in range(4):
        rate = per_second(*measure_rate(run_dir / "events.jsonl", window_s))
        print(f"  throttle {pct:>3}%: {rate:7.1f}/s", flush=True)
        if rate <= 0 or abs(rate - target) <= 0.05 * target:
            break
        new = max(1, min(100, round(pct * target / rate)))
        if new == pct:
            break
        pct = new
        control(run_dir, "throttle", pct)
    return pct, rate


# -- the viewer in a terminal ------------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket, no config file); `close()` kills it and its sessions."""

    def __init__(self, name: str | None = None) -> None:
        self.socket = name or f"soaktui-bench-{os.getpid()}"
        self._socket_path = ""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=20
        )

    def new_session(self, name: str, command: str, width: int = WIDTH, height: int = HEIGHT) -> None:
        r = self.run(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), command,
            ";", "set-option", "-t", name, "remain-on-exit", "on",
        )  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(f"tmux new-session failed: {r.stderr.strip()}")
        if not self._socket_path:
            self._socket_path = self.run("display-message", "-p", "#{socket_path}").stdout.strip()

    def capture(self, name: str, first: int | None = None, last: int | None = None) -> str:
        args = ["capture-pane", "-p", "-t", name]
        if first is not None:
            args += ["-S", str(first)]
        if last is not None:
            args += ["-E", str(last)]
        return self.run(*args).stdout

    def send_keys(self, name: str, *keys: str) -> None:
        self.run("send-keys", "-t", name, *keys)

    def pane_pid(self, name: str) -> int | None:
        out = self.run("display-message", "-p", "-t", name, "#{pane_pid}").stdout.strip()
        return int(out) if out.isdigit() else None

    def kill_session(self, name: str) -> None:
        self.run("kill-session", "-t", name)

    def server_process(self) -> psutil.Process | None:
        out = self.run("display-message", "-p", "#{pid}").stdout.strip()
        return psutil.Process(int(out)) if out.isdigit() else None

    def close(self) -> None:
        """Kill the server and remove its socket file (tmux leaves it behind)."""
        self.run("kill-server")
        if self._socket_path:
            Path(self._socket_path).unlink(missing_ok=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def viewer_command(run_dir: Path, env: dict[str, str]) -> str:
    """The shell command tmux runs: `soaktui watch RUN_DIR` with the benchmark's SOAKTUI_* settings."""
    own = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith("SOAKTUI_"))
    return (
        f"exec env -u COLUMNS -u LINES TEXTUAL_ANIMATIONS=none {own} "
        f"{shlex.quote(str(SOAKTUI))} watch {shlex.quote(str(run_dir))}"
    )


def header_ready(text: str) -> bool:
    """The dashboard is drawn (header and panes) and has caught up with the log (not `loading`)."""
    head = "\n".join(text.splitlines()[:3])
    return (
        "soaktui " in head
        and THROTTLE_RE.search(head) is not None
        and "loading" not in head
        and "Errors" in text
    )


class Viewer:
    """`soaktui watch RUN_DIR` in a tmux session: start it, read its screen, find its process, end it."""

    def __init__(self, tmux: Tmux, run_dir: Path, env: dict[str, str], session: str = "viewer") -> None:
        self.tmux = tmux
        self.run_dir = run_dir
        self.env = env
        self.session = session
        self.proc: psutil.Process | None = None

    def start(self) -> psutil.Process:
        """Open the session and find the viewer's process (by its command line `soaktui watch RUN_DIR`)."""
        self.tmux.new_session(self.session, viewer_command(self.run_dir, self.env))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.tmux.pane_pid(self.session)
            if pid is not None:
                self.proc = find_viewer(pid, self.run_dir)
                if self.proc is not None:
                    return self.proc
            time.sleep(0.01)
        raise SystemExit(f"no `soaktui watch` process appeared; screen:\n{self.screen()}")

    def screen(self) -> str:
        return self.tmux.capture(self.session)

    def header(self) -> str:
        return self.tmux.capture(self.session, 0, 2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE

    def wait_screen(
        self, pred: Callable[[str], bool], timeout_s: float = 60.0, period_s: float = 0.02
    ) -> str:
        """Poll the screen until `pred(screen)`; SystemExit with the last screen on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if pred(text):
                return text
            if not self.alive():
                raise SystemExit(f"the viewer exited; its screen:\n{text}")
            time.sleep(period_s)
        raise SystemExit(
            f"the screen never showed what was expected within {timeout_s:g} s; last screen:\n{text}"
        )

    def stop(self) -> None:
        """Kill the session (the viewer gets SIGHUP, like a dropped SSH connection) and wait for it."""
        self.tmux.kill_session(self.session)
        if self.proc is not None:
            _, alive = psutil.wait_procs([self.proc], timeout=10)
            for p in alive:
                p.kill()
        self.proc = None


def find_viewer(pane_pid: int, run_dir: Path) -> psutil.Process | None:
    """The process whose command line is `... soaktui watch RUN_DIR`: the pane's process or under it."""
    try:
        root = psutil.Process(pane_pid)
        for p in [root, *root.children(recursive=True)]:
            cmd = p.cmdline()
            if "watch" in cmd and str(run_dir) in cmd and any(Path(c).name == "soaktui" for c in cmd):
                return p
    except psutil.Error:
        pass
    return None


def cpu_seconds(proc: psutil.Process | None) -> float | None:
    """User + system CPU seconds of a process (all its threads); None when it cannot be read."""
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM, Linux), MB; None where /proc does not give it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- figures -----------------------------------------------------------------------------------------


KEYS = ("p50", "p90", "p99", "max")


def stats(values: Iterable[float]) -> dict[str, Any]:
    """n, p50, p90, p99 and max of `values` (None where there are none)."""
    v = sorted(values)
    return {
        "n": len(v),
        "p50": percentile(v, 50),
        "p90": percentile(v, 90),
        "p99": percentile(v, 99),
        "max": v[-1] if v else None,
    }


def fmt(x: float | None) -> str:
    return "   n/a" if x is None else f"{x:6.2f}"


def cells(st: dict[str, Any], keys: tuple[str, ...] = KEYS) -> str:
    return " ".join(fmt(st[k]) for k in keys)
