"""A server outage costs two events, not thousands: the engine backs off and probes.

The engine runs in-process against the built-in simulator; the simulator is stopped mid-run (its
port then refuses connections, as a crashed server's does) and started again on the same port.
Before the fix a 20-second outage gave 1,700 to 7,300 instant `connection_refused` requests.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from soaktui import errors
from soaktui.config import load_settings
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.engine.outages import BACKOFF_MAX_S, BACKOFF_START_S, SERVER_ERROR_TESTS, Outages, looks_down
from soaktui.log import events as ev
from soaktui.log.reader import iter_events
from soaktui.report import build_report
from soaktui.simulator.threaded import SimConfig, run_in_thread
from tests.helpers import free_port


@pytest.mark.unit
def test_backoff_doubles_to_its_cap_with_jitter_and_an_answer_ends_it():
    now = [0.0]
    o = Outages(random.Random(1), clock=lambda: now[0], wall=lambda: 1000.0)
    o.observe({"provider": "p", "ok": False, "error_class": errors.CONNECTION_REFUSED, "error": "refused"})
    (down,) = o.test_done()
    assert down["provider"] == "p" and down["error_class"] == errors.CONNECTION_REFUSED
    waits = []
    for _ in range(12):
        nxt = o.seconds_to_next_probe()
        waits.append(nxt)
        now[0] += nxt
        assert [x.provider for x in o.due()] == ["p"]
        assert o.probe_result("p", False, "connection_refused: refused") is None
    limits = [min(BACKOFF_MAX_S, BACKOFF_START_S * 2**i) for i in range(12)]
    assert all(lim / 2 <= w <= lim for w, lim in zip(waits, limits, strict=True)), waits
    assert len(set(waits)) == len(waits)  # jittered: no two the same
    now[0] += 5
    up = o.probe_result("p", True, None)
    assert up is not None and up["failed_probes"] == 12 and up["downtime_s"] == round(now[0], 3)
    assert not o.down and o.test_done() == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("event", "down"),
    [
        ({"ok": False, "error_class": errors.CONNECTION_REFUSED}, True),
        ({"ok": False, "error_class": errors.CONNECT_TIMEOUT}, True),
        ({"ok": False, "error_class": errors.HTTP_STATUS, "http_status": 503}, True),
        ({"ok": False, "error_class": errors.HTTP_STATUS, "http_status": 400}, False),
        ({"ok": False, "error_class": errors.CONNECTION_DROPPED, "first_byte_ms": None}, True),
        ({"ok": False, "error_class": errors.CONNECTION_DROPPED, "first_byte_ms": 12.0}, False),
        ({"ok": False, "error_class": errors.STALLED}, False),
        ({"ok": False, "error_class": errors.CONTEXT_OVERFLOW, "http_status": 400}, False),
    ],
)
def test_what_counts_as_a_server_that_is_down(event, down):
    assert looks_down(event) is down


@pytest.mark.unit
def test_a_test_with_one_answer_or_a_model_failure_is_not_an_outage():
    o = Outages(random.Random(1))
    o.observe({"provider": "p", "ok": False, "error_class": errors.CONNECTION_REFUSED})
    o.observe({"provider": "p", "ok": True})
    o.observe({"provider": "q", "ok": False, "error_class": errors.CONNECTION_REFUSED})
    o.observe({"provider": "q", "ok": False, "error_class": errors.STALLED})
    assert o.test_done() == [] and not o.down


@pytest.mark.unit
def test_server_errors_make_a_provider_down_only_tests_in_a_row():
    o = Outages(random.Random(1))
    e500 = {"provider": "p", "ok": False, "error_class": errors.HTTP_STATUS, "http_status": 500}
    for _ in range(SERVER_ERROR_TESTS - 1):
        o.observe(e500)
        assert o.test_done() == []
    o.observe({"provider": "p", "ok": True})  # one answer breaks the streak
    assert o.test_done() == []
    for _ in range(SERVER_ERROR_TESTS - 1):
        o.observe(e500)
        assert o.test_done() == []
    o.observe(e500)
    (down,) = o.test_done()
    assert down["http_status"] == 500 and o.is_down("p")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_an_outage_is_two_events_and_testing_resumes(tmp_path):
    port = free_port()
    config = SimConfig(flavor="llamacpp", seed=2, speed=40.0)
    run_dir = tmp_path / "run"
    sim = run_in_thread(config, port=port)
    sim.__enter__()
    gap = {}

    def outage() -> None:
        time.sleep(4.0)
        sim.__exit__(None, None, None)
        gap["down"] = time.time()
        time.sleep(8.0)
        gap["back"] = time.time()
        again = run_in_thread(config, port=port)
        again.__enter__()
        gap["sim"] = again

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    settings = load_settings(
        None,
        {},
        {
            "base_urls": f"http://127.0.0.1:{port}",
            "out": str(run_dir),
            "seed": "1",
            "duration": "22s",
            "scenarios": "streaming,simple_inference",
            "thresholds.simple_max_tokens": "100",
            "quiet_hours.enabled": "false",
        },
    )
    try:
        code = asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))
    finally:
        t.join(30)
        if "sim" in gap:
            gap["sim"].__exit__(None, None, None)
    assert code == 0
    events = list(iter_events(run_dir / "events.jsonl"))
    downs = [e for e in events if e["kind"] == ev.PROVIDER_DOWN]
    ups = [e for e in events if e["kind"] == ev.PROVIDER_UP]
    assert len(downs) == 1 and len(ups) == 1, [e["kind"] for e in events if "provider_" in e["kind"]]
    assert downs[0]["error_class"] == errors.CONNECTION_REFUSED
    assert 6.0 <= ups[0]["downtime_s"] <= 8.0 + BACKOFF_MAX_S
    refused = [e for e in events if e["kind"] == ev.REQUEST and e.get("error_class") == errors.CONNECTION_REFUSED]
    assert 1 <= len(refused) <= 3  # the one test that found the server down; then probes, not requests
    after = [e for e in events if e["kind"] == ev.SCENARIO_RESULT and e["t"] > ups[0]["t"]]
    assert after and any(e["ok"] for e in after)  # testing resumed
    snap, _ = build_report(run_dir)
    (period,) = snap["outages"]
    assert period["provider"] == downs[0]["provider"] and period["downtime_s"] == ups[0]["downtime_s"]
    went_wrong = [line for line in snap["verdict"]["lines"] if line.startswith("- Went wrong")]
    assert went_wrong and f"{period['provider']} down " in went_wrong[0], snap["verdict"]["lines"]
    assert "### Outages" in (run_dir / "final_report.md").read_text()
