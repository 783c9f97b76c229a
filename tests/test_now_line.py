"""The now line: a frozen stream is visible while it hangs, on every surface.

Against the built-in simulator with its `stall` fault (no byte for --stall-seconds mid-stream, then
the stream goes on: soaktui/simulator/delivery.py), the engine's in-flight view counts the silence
up, says it once in a `stream_silent` event when it reaches stall_s, and the dashboard attached to a
real headless engine shows "last byte Ns ago" counting past 8 during a 12-second freeze, in the
red past stall_s.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import pytest

from soaktui.engine.inflight import InFlight
from soaktui.log import events as ev
from soaktui.log.reader import read_all
from soaktui.providers.client import ChatClient
from soaktui.simulator.launcher import SimulatorProcess
from soaktui.ui.app import create_app
from soaktui.ui.state import InFlightView, LiveState
from tests.helpers import engine_env, stop_process, wait_for_events


def _simulator(stall_s: float) -> SimulatorProcess:
    sim = SimulatorProcess(
        seed=3,
        extra_args=["--flavor", "llamacpp", "--fault", "stall=every:1", "--stall-seconds", str(stall_s)],
    )
    sim.start()
    return sim


@pytest.mark.integration
def test_a_silent_stream_counts_up_and_is_told_once():
    sim = _simulator(3.0)
    try:
        seen: list[dict] = []
        told: list[dict] = []

        async def main() -> None:
            client = ChatClient(sim.base_url)
            flight = InFlight({"sim": client}, stall_s=1.0)
            flight.begin({"test_id": 7, "scenario": "streaming", "provider": "sim", "model": "m", "key": "sim/m"})
            models = (await client._http.get(sim.base_url + "/v1/models")).json()["data"]
            task = asyncio.create_task(
                client.chat(models[0]["id"], [{"role": "user", "content": "hi"}], max_tokens=64)
            )
            while not task.done():
                now = flight.now()
                assert now is not None
                seen.append(now)
                flight.check(lambda kind, **f: told.append({"kind": kind, **f}))
                await asyncio.sleep(0.1)
            result = task.result()
            assert result.ok, result.error
            assert client.in_flight == {}  # a finished request leaves the registry
            flight.end()
            assert flight.now() is None
            await client.aclose()

        asyncio.run(main())
    finally:
        sim.stop()
    silences = [s["silent_s"] for s in seen if s["silent_s"] is not None]
    assert max(silences) >= 2.5, silences  # the 3-second freeze was seen while it lasted
    peak = silences.index(max(silences))
    run_up = silences[max(0, peak - 15) : peak + 1]
    assert run_up == sorted(run_up)  # counting up while nothing arrives
    assert {s["test_id"] for s in seen} == {7} and all(s["stall_s"] == 1.0 for s in seen)
    assert len(told) == 1, told  # one event per silence, not one per check
    (e,) = told
    assert e["kind"] == ev.STREAM_SILENT and e["test_id"] == 7 and e["scenario"] == "streaming"
    assert e["silent_s"] >= 1.0 and e["output_chunks"] >= 1 and e["no_byte_yet"] is False


@pytest.mark.unit
@pytest.mark.parametrize(
    ("silent", "level"), [(None, "ok"), (2.0, "ok"), (2.5, "amber"), (4.9, "amber"), (5.0, "red"), (80.0, "red")]
)
def test_silence_colour_turns_amber_at_half_and_red_at_stall(silent, level):
    view = InFlightView(1, "streaming", "p/m", 10.0, 1, silent, False, None, 5.0)
    assert view.silence_level() == level


@pytest.mark.unit
def test_the_view_moves_on_with_the_clock_between_probes():
    live = LiveState()
    live.apply_status({"now": {"test_id": 3, "scenario": "tool_calling", "key": "p/m", "elapsed_s": 4.0,
                               "requests": 1, "silent_s": 2.0, "no_byte_yet": False, "stall_s": 5.0}}, 100.0)
    later = live.in_flight(103.5)
    assert later is not None and (later.elapsed_s, later.silent_s) == (7.5, 5.5)
    assert later.silence_level() == "red"
    # the test's result in the log ends it; a newer test from the log replaces it
    live.feed({"kind": "scenario_result", "t": 104.0, "test_id": 3, "ok": True, "scenario": "tool_calling"})
    assert live.in_flight(105.0) is None
    live.feed({"kind": "test_started", "t": 106.0, "test_id": 4, "scenario": "streaming", "key": "p/n"})
    started = live.in_flight(108.0)
    assert started is not None and (started.test_id, started.elapsed_s, started.silent_s) == (4, 2.0, None)


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_dashboard_shows_a_frozen_stream_counting_past_8_seconds(tmp_path):
    """A real headless engine soaks a simulator whose streams freeze for 12 s; the viewer attached
    to its run directory shows the silence counting up, in red past stall_s (5 s), and the headless
    output says it while the stream still hangs."""
    sim = _simulator(12.0)
    run_dir = tmp_path / "run"
    err = (tmp_path / "engine.err").open("w+")
    engine = subprocess.Popen(
        [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", sim.base_url, "--out", str(run_dir),
         "--scenarios", "streaming", "--duration", "3m", "--seed", "1"],
        stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=engine_env(tmp_path),
    )
    headers: list[str] = []
    try:
        wait_for_events(run_dir / "events.jsonl", lambda es: any(e["kind"] == ev.TEST_STARTED for e in es))

        async def watch() -> None:
            app = create_app(run_dir)
            app.animation_level = "none"
            async with app.run_test(size=(120, 40)) as pilot:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    await pilot.pause(0.25)
                    text = app.screen.query_one("#header").text  # type: ignore[attr-defined]
                    headers.append(text)
                    m = re.search(r"last byte (\d+)s ago", text)
                    if m and int(m.group(1)) >= 9:
                        return
                    assert engine.poll() is None, "the engine ended before the freeze was seen"

        asyncio.run(watch())
        wait_for_events(run_dir / "events.jsonl", lambda es: any(e["kind"] == ev.STREAM_SILENT for e in es))
    finally:
        stop_process(engine)
        sim.stop()
    counts = [int(m.group(1)) for h in headers for m in [re.search(r"last byte (\d+)s ago", h)] if m]
    assert counts and max(counts) >= 9, headers[-3:]
    assert len(set(counts)) >= 4  # it counted, a second at a time, not one stale figure
    red = [h for h in headers if "stall limit 5s" in h]  # drawn only past stall_s, in the red style
    assert red, headers[-3:]
    now_line = red[-1].splitlines()[3]
    assert now_line.startswith("now #") and " streaming on " in now_line
    err.seek(0)
    said = [line for line in err.read().splitlines() if "stream silent for" in line]
    assert said and "still waiting" in said[0], said
    events, _ = read_all(run_dir / "events.jsonl")
    silent = [e for e in events if e["kind"] == ev.STREAM_SILENT]
    assert silent and all(e["silent_s"] >= 5.0 for e in silent)
