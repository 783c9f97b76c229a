"""Record tests/data/ui/recorded_events.jsonl: a short real run against the built-in simulator.

The viewer's snapshot tests replay this log with a fixed clock. Re-record only when the event
schema changes (then update the snapshots: pytest tests/test_ui_snapshots.py --snapshot-update):

    .venv/bin/python tests/data/ui/record.py

A real engine in a subprocess soaks the simulator (flaky personas plus a few faults, 10x speed) for 20 s while this
script steers it once of each kind (throttle, skip, pause/resume, quiet hours), so the log holds
every event kind the panes draw.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soaktui.engine.control import send_command
from soaktui.simulator import SimConfig, flaky_personas, plan_from_specs, run_in_thread

OUT = Path(__file__).with_name("recorded_events.jsonl")
ENV = {
    "SOAKTUI_QUIET_HOURS__ENABLED": "false",
    "SOAKTUI_THRESHOLDS__SIMPLE_MIN_TOKENS": "20",
    "SOAKTUI_THRESHOLDS__SIMPLE_MAX_TOKENS": "160",
    "SOAKTUI_THRESHOLDS__STREAM_MAX_TOKENS": "80",
    "SOAKTUI_THRESHOLDS__LARGE_CONTEXT_MIN_TOKENS": "400",
    "SOAKTUI_THRESHOLDS__LARGE_CONTEXT_MAX_TOKENS": "1200",
    "SOAKTUI_TIMEOUTS__GRACE": "2",
    "SOAKTUI_OUTPUT__STATUS_INTERVAL": "10s",
    "SOAKTUI_OUTPUT__TELEMETRY_INTERVAL": "1s",
    "SOAKTUI_ROTATION__MIN_TESTS": "3",
    "SOAKTUI_ROTATION__MAX_TESTS": "5",
}
FAULTS = plan_from_specs(["http_503=0.04", "drop=0.03", "malformed=0.03"], stall_s=1.0)
STEPS = [
    (4, "throttle", 70),
    (7, "skip", None),
    (9, "pause", None),
    (10, "resume", None),
    (13, "quiet", "on"),
]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="soaktui-record-"))
    run_dir = work / "soak_recorded"
    try:
        with run_in_thread(
            SimConfig(flavor="lmstudio", seed=1, speed=10.0, personas=flaky_personas(), faults=FAULTS)
        ) as sim:
            cmd = [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", sim.base_url]
            cmd += ["--out", str(run_dir), "--seed", "1", "--duration", "20s"]
            proc = subprocess.Popen(
                cmd, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            t0 = time.monotonic()
            for at, command, arg in STEPS:
                while time.monotonic() - t0 < at:
                    time.sleep(0.1)
                print(command, arg, send_command(run_dir, command, arg)["message"])
            proc.wait(timeout=120)
        shutil.copyfile(run_dir / "events.jsonl", OUT)
        print(f"{OUT}: {OUT.stat().st_size:,} bytes")
        return proc.returncode
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
