"""What the tests and the benchmarks (bench/) both need to run soaktui under test.

Both run soaktui with the host's own settings kept out (tests/conftest.py for every test, in
process; `engine_env` for an engine or simulator in a child process) and end the children they
start. One definition here, so a benchmark and a test of the same thing cannot drift apart. The
runs' logs are read with soaktui.log.reader, percentiles come from soaktui.stats, a simulator
child is soaktui.simulator.launcher.SimulatorProcess: those live in the package already.

bench/_common.py imports this module (it puts the repository root on sys.path), so it needs
nothing but the standard library and soaktui itself: no pytest.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soaktui.log.reader import iter_events

WAIT_S = 30.0  # a bound for conditions that normally hold within a second; never a timing assertion


def host_setting(name: str) -> bool:
    """True for an environment variable of the host that would steer soaktui under test (its own
    SOAKTUI_* settings, except the tests' SOAKTUI_TEST_* switches, and an OpenAI key)."""
    return (name.startswith("SOAKTUI_") and not name.startswith("SOAKTUI_TEST_")) or name == "OPENAI_API_KEY"


def engine_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment without the host's settings, plus a private config/data dir, quiet hours
    off and `settings` as SOAKTUI_<KEY> overrides (e.g. THRESHOLDS__STREAM_MAX_TOKENS="8"): the
    environment of a soaktui child process."""
    env = {k: v for k, v in os.environ.items() if not host_setting(k)}
    env.update(
        SOAKTUI_CONFIG_DIR=str(home),
        SOAKTUI_DATA_DIR=str(home),
        SOAKTUI_QUIET_HOURS__ENABLED="false",
    )
    env.update({f"SOAKTUI_{k.upper()}": v for k, v in settings.items()})
    return env


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """Terminate a child and wait `grace_s` for it; kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def full_disk_after(nbytes: int) -> Callable[[], None]:
    """A `preexec_fn` after which a child's writes past `nbytes` in any one file fail as on a full
    disk (RLIMIT_FSIZE gives EFBIG where a full disk gives ENOSPC): no mount needed, root or not."""

    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server to start on, or to be refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_events(
    log: Path, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = WAIT_S
) -> list[dict[str, Any]]:
    """Poll an events.jsonl until `predicate(events)` holds; the events then. Raises AssertionError
    (naming the last kinds seen) when it never does within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = list(iter_events(log)) if log.exists() else []
        if predicate(events):
            return events
        time.sleep(0.05)
    raise AssertionError(
        f"{log}: events never matched within {timeout_s:g} s; last kinds: {[e.get('kind') for e in events][-10:]}"
    )
