"""The viewer's Textual-free parts: the log follower, the live-state reducer, themes, the controller.

The follower is fed a real recorded run in arbitrary pieces (torn lines included) and must yield
exactly what `soaktui report` reads; the live state must agree with the report's counts and stay
bounded however many events it folds.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson
import pytest

from soaktui.engine.control import ControlServer
from soaktui.errors import SetupError
from soaktui.log.follow import LogFollower
from soaktui.log.reader import read_all
from soaktui.report.aggregate import RunAggregate
from soaktui.ui.controller import Controller, Reply
from soaktui.ui.state import MAX_ERRORS, NO_COUNTS, SERIES_POINTS, SPARK_POINTS, Downsampled, LiveState
from soaktui.ui.themes import load_theme_file, resolve_theme, shipped_themes

pytestmark = pytest.mark.unit

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"


def recorded() -> list[dict]:
    events, stats = read_all(RECORDED)
    assert stats.lines_bad == 0 and not stats.torn_tail
    return events


# -- the follower ------------------------------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 7, 100, 4096, 1 << 20])
def test_follower_reads_a_growing_log_once_whatever_the_write_pieces(tmp_path, piece):
    raw = RECORDED.read_bytes()
    log = tmp_path / "events.jsonl"
    f = LogFollower(log, read_bytes=1 << 16)
    assert f.read() == [] and not f.exists  # before the run writes anything
    got: list[dict] = []
    with open(log, "wb", buffering=0) as out:
        for i in range(0, len(raw), piece):
            out.write(raw[i : i + piece])
            got += f.read()
            while not f.at_end():
                got += f.read()
            # a torn (incomplete) last line waits for its newline, it is never an error
            assert f.stats.torn_tail == (not raw[: i + piece].endswith(b"\n"))
    got += f.read()
    assert got == recorded()
    assert f.offset == len(raw) and f.stats.bytes_read == len(raw)  # every byte read exactly once
    assert f.stats.lines_bad == 0 and f.read() == []
    f.close()


def test_follower_counts_bad_lines_and_skips_overlong_ones(tmp_path, monkeypatch):
    import soaktui.log.follow as follow

    monkeypatch.setattr(follow, "MAX_LINE_BYTES", 50)
    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"kind":"a"}\nnot json\n[1,2]\n' + b"x" * 80)
    f = LogFollower(log, read_bytes=16)
    events = []
    while not f.at_end():
        events += f.read()
    assert events == [{"kind": "a"}] and f.stats.lines_bad == 2 and f.stats.first_bad_line == 2
    with open(log, "ab") as out:
        out.write(b'yyy\n{"kind":"b"}\n')
    while not f.at_end():
        events += f.read()
    assert events[-1] == {"kind": "b"} and f.stats.lines_bad == 3  # the overlong line, dropped whole


# -- the live state ------------------------------------------------------------------------------------


def test_live_state_agrees_with_the_report_on_the_recorded_run():
    events = recorded()
    live = LiveState().feed_all(events)
    snap = RunAggregate().feed_all(events).snapshot()
    t = snap["totals"]
    assert (live.tests, live.ok_tests) == (t["tests"], t["ok_tests"])
    assert (live.requests, live.failed_requests) == (t["requests"], t["requests_failed"])
    by_model, by_scen = live.model_counts(), live.scenario_counts()
    for key, m in snap["models"].items():
        assert key in live.models
        c = by_model.get(key, NO_COUNTS)  # a selected model that never ran has no counts
        assert (c.tests, c.ok_tests) == (m["tests"], m["ok_tests"])
    for name, s in snap["scenarios"].items():
        assert name in live.scenarios
        assert (by_scen[name].tests, by_scen[name].ok_tests) == (s["tests"], s["ok_tests"])
    switches = [e for e in events if e["kind"] == "model_switched"]
    assert live.current == switches[-1]["key"] and live.upcoming == switches[-1]["upcoming"]
    skipped = next(e["key"] for e in events if e["kind"] == "model_skipped")
    assert live.models[skipped].skipped == 1
    assert live.throttle_pct == 70 and live.quiet_enabled is True and live.paused is False
    assert live.finished is not None and live.finished["reason"] == "duration"
    assert live.errors_total == t["requests_failed"]  # every failed request, classified
    assert [e.t for e in live.errors] == sorted(e.t for e in live.errors)  # drawn newest first
    assert live.telemetry is not None and "cpu_pct" in live.telemetry
    assert all(len(s) for s in live.throughput.values())


def test_the_viewer_counts_once_from_the_reports_fold():
    """Fed side by side as the viewer feeds them, the live state counts nothing twice, and a
    cancelled request or test (a skip, a stop) is neither a success nor a failure on either."""
    agg = RunAggregate()
    live = LiveState(counts=agg.requests)
    base = {"provider": "p", "model": "m", "scenario": "streaming", "stream": True}
    events = [
        {"kind": "request", "t": 1.0, **base, "ok": True, "e2e_ms": 5.0},
        {"kind": "request", "t": 2.0, **base, "ok": False, "error_class": "http_status", "error": "HTTP 500"},
        {"kind": "request", "t": 3.0, **base, "ok": False, "error_class": "cancelled", "error": "skip"},
        {"kind": "scenario_result", "t": 3.0, **base, "ok": False, "error_class": "cancelled"},
        {"kind": "scenario_result", "t": 4.0, **base, "ok": True},
    ]
    for ev in events:
        agg.feed(ev)
        live.feed(ev)
    t = agg.snapshot()["totals"]
    assert (live.tests, live.ok_tests, live.requests, live.failed_requests) == (1, 1, 2, 1)
    assert (t["tests"], t["ok_tests"], t["requests"], t["requests_failed"]) == (1, 1, 2, 1)
    assert (live.cancelled_tests, live.cancelled_requests) == (t["cancelled_tests"], t["cancelled_requests"]) == (1, 1)
    assert live.model_counts()["p/m"].requests == 2
    assert live.errors_total == 1  # the cancelled request is not shown as an error


def test_live_state_stays_bounded():
    live = LiveState()
    live.feed({"kind": "run_started", "t": 0.0, "run_id": "r", "duration_s": None, "throttle_pct": 100})
    for i in range(20_000):
        t = float(i)
        live.feed(
            {
                "kind": "request",
                "t": t,
                "provider": "p",
                "model": f"m{i % 3}",
                "scenario": "streaming",
                "stream": True,
                "ok": i % 10 != 0,
                "error_class": None if i % 10 else "http_status",
                "error": "HTTP 500",
                "e2e_ms": 10.0 + i % 7,
                "gen_tps": 50.0 + i % 5,
            }
        )
        live.feed({"kind": "telemetry", "t": t, "cpu_pct": 12.5})
    assert len(live.errors) == MAX_ERRORS and live.errors_total == 2_000
    assert len(live.scenarios["streaming"].latency) == SPARK_POINTS
    assert all(len(s) <= SERIES_POINTS for s in live.throughput.values())
    assert all(len(m.recent_tps) <= 50 for m in live.models.values())
    assert len(live.cpu_history) <= 120


def test_a_control_reply_shows_at_once_and_only_newer_events_override_it():
    live = LiveState()
    live.feed({"kind": "run_started", "t": 100.0, "throttle_pct": 50, "quiet_hours": {"enabled": False}})
    live.apply_status({"throttle_pct": 60, "effective_pct": 60, "paused": True, "quiet_hours": True}, t=200.0)
    assert (live.throttle_pct, live.paused, live.quiet_enabled) == (60, True, True)
    live.feed({"kind": "throttle_changed", "t": 150.0, "pct": 55, "effective_pct": 55})  # older: ignored
    assert live.throttle_pct == 60
    live.feed({"kind": "throttle_changed", "t": 250.0, "pct": 70, "effective_pct": 30})
    live.feed({"kind": "resumed", "t": 251.0})
    assert (live.throttle_pct, live.effective_pct, live.paused) == (70, 30, False)


def test_skip_reply_moves_the_current_model_before_its_event():
    live = LiveState()
    live.feed(
        {"kind": "model_switched", "t": 1.0, "key": "p/a", "provider": "p", "model": "a", "planned_tests": 5}
    )
    live.apply_status({"current_model": "p/b"}, t=2.0)
    assert live.current == "p/b" and live.planned_tests is None
    live.feed(
        {
            "kind": "model_switched",
            "t": 1.5,
            "key": "p/b",
            "provider": "p",
            "model": "b",
            "planned_tests": 7,
            "upcoming": ["p/a"],
        }
    )
    assert (live.current, live.current_model, live.planned_tests, live.upcoming) == ("p/b", "b", 7, ["p/a"])


def test_downsampled_series_keeps_the_mean_and_its_bound():
    s = Downsampled(origin=0.0, width=1.0, cap=16)
    values = [(t * 0.5, float(t % 13)) for t in range(5_000)]
    for t, v in values:
        s.add(t, v)
    pts = s.points()
    assert len(pts) <= 16 and s.width >= 128
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    total = sum(s._sums.values())  # bucket sums keep every value: nothing is dropped, only merged
    assert total == pytest.approx(sum(v for _, v in values))


# -- themes ----------------------------------------------------------------------------------------------


def test_shipped_themes_load_and_unknown_names_list_the_known_ones():
    themes = shipped_themes()
    assert {"dark", "light"} <= set(themes)
    assert themes["dark"].dark is True and themes["light"].dark is False
    assert resolve_theme("light", themes) == "light" and resolve_theme("nord", themes) == "nord"
    with pytest.raises(SetupError) as exc:
        resolve_theme("solarised-sunset", themes)
    assert "solarised-sunset" in str(exc.value) and "dark, light" in str(exc.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('dark = true\nprimary = "#123456"\nshade = "#000000"\n', "unknown key"),
        ('dark = true\nprimary = "not-a-colour"\n', "is not a colour"),
        ('primary = "#123456"\n', "required"),
        ("dark = [", "not valid TOML"),
    ],
)
def test_a_broken_theme_file_is_a_clear_setup_error(tmp_path, body, needle):
    path = tmp_path / "broken.toml"
    path.write_text(body)
    with pytest.raises(SetupError) as exc:
        load_theme_file(path)
    assert needle in str(exc.value) and str(path) in str(exc.value)


# -- the controller --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_controller_sends_in_order_probes_and_reports_an_absent_engine(tmp_path):
    seen: list[tuple[str, object]] = []
    state = {"throttle_pct": 50}

    def handler(command, arg):
        seen.append((command, arg))
        if command == "throttle":
            state["throttle_pct"] += int(arg)
        return {"ok": True, "message": command, "state": dict(state)}

    replies: list[Reply] = []
    loop = asyncio.new_event_loop()
    server = ControlServer(tmp_path, handler)
    loop.run_until_complete(server.start())
    serving = threading.Thread(target=loop.run_forever, daemon=True)
    serving.start()
    stop = threading.Event()
    got_all = threading.Event()

    def on_reply(r: Reply) -> None:
        replies.append(r)
        if len(replies) == 4:
            got_all.set()

    ctl = Controller(tmp_path, on_reply, probe_interval_s=None)
    for arg in ("+10", "+10", "-10"):
        assert ctl.submit("throttle", arg)
    worker = threading.Thread(target=ctl.run, args=(stop,))
    worker.start()
    try:
        assert got_all.wait(20)
    finally:
        stop.set()
        worker.join(5)
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        serving.join(5)
        loop.close()
    assert replies[0].probe and replies[0].command == "status"
    assert [r.state["throttle_pct"] for r in replies[1:]] == [60, 70, 60]  # in the order pressed
    assert seen[1:] == [("throttle", "+10"), ("throttle", "+10"), ("throttle", "-10")]
    gone = Controller(tmp_path, replies.append).send("skip")
    assert not gone.reachable and not gone.ok and "no running soaktui run" in gone.message
    assert orjson.dumps(gone.state) == b"{}"
