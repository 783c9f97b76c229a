"""What the tests and the benchmarks (bench/) both need to run soaktui under test.

Both run soaktui with the host's own settings kept out (tests/conftest.py for every test, in
process; `engine_env` for an engine or simulator in a child process) and end the children they
start. One definition here, so a benchmark and a test of the same thing cannot drift apart. The
runs' logs are read with soaktui.log.reader, percentiles come from soaktui.stats, a simulator
child is soaktui.simulator.launcher.SimulatorProcess: those live in the package already.

bench/_common.py imports this module (it puts the repository root on sys.path), so it needs
nothing but the standard library: no pytest.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any


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
