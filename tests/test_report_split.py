"""The report folded in two processes (report/split.py) is byte for byte the report of one pass.

The varied log (tests/report_log.py), with hardware readings and without, is cut at many line
boundaries, each half folded on its own (the second as a later stretch, or in a forked child) and
joined: every cut must join and give the same bytes. Logs a review built to break the join are cut
at every line: each cut is refused (the second half is then folded again in order) or exact.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from soaktui.log import reader
from soaktui.log.reader import ReadStats, iter_event_batches
from soaktui.report import aggregate, split
from soaktui.report.aggregate import RunAggregate
from soaktui.report.jsonout import render_json
from soaktui.report.snapshot import log_stats
from tests.report_log import write_varied_log

pytestmark = pytest.mark.unit


def _report(agg: RunAggregate, stats: ReadStats) -> bytes:
    snap = agg.snapshot()
    snap["log"] = log_stats(stats)
    return render_json(snap)


def _one_pass(path: Path) -> bytes:
    stats = ReadStats()
    agg = RunAggregate()
    for batch in iter_event_batches(path, stats):
        agg.feed_all(batch)
    return _report(agg, stats)


def _line_starts(path: Path) -> list[int]:
    data = path.read_bytes()
    return [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < len(data)]


def _join_at(path: Path, cut: int) -> tuple[str | None, bytes | None, RunAggregate]:
    """Fold [0, cut) and [cut, end) apart in this process (no fork), the second seeded as
    split.fold_log seeds it, and join them: (why the join was refused, or None; the joined report;
    the second half's aggregate)."""
    stats, later_stats = ReadStats(), ReadStats()
    agg, later = RunAggregate(), RunAggregate(later=True)
    first = split.first_event(path)
    if first is not None and first.get("kind") == "run_started":
        later.hardware.seed(first)
    for batch in iter_event_batches(path, stats, end=cut):
        agg.feed_all(batch)
    for batch in iter_event_batches(path, later_stats, start=cut):
        later.feed_all(batch)
    reason = agg.cannot_merge(later)
    if reason is not None:
        return reason, None, later
    agg.merge(later)
    stats.merge(later_stats)
    return None, _report(agg, stats), later


def _joined(path: Path, cut: int) -> tuple[bytes, RunAggregate]:
    """The joined report at `cut`, which must join."""
    reason, got, later = _join_at(path, cut)
    assert reason is None and got is not None, reason
    return got, later


@pytest.fixture(scope="module", params=["readings", "sensorless"])
def varied(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The varied log, with telemetry and thermal guard changes (every kind of hardware reading,
    gaps, a throttle counter that restarts) and without (a machine without sensors)."""
    hardware = request.param == "readings"
    path = write_varied_log(tmp_path_factory.mktemp("split") / "events.jsonl", hardware=hardware)
    return path, _one_pass(path)


def test_every_kind_of_cut_joins_to_the_one_pass_report(varied, utc) -> None:
    """Cuts near the start, the middle and the end, and a random spread: the same bytes. The log
    has bad lines, a blank line, a dirty line, malformed events, outages, pauses, a torn tail, and
    readings that hold across the cut, stretches under the limits and guard states that span it,
    tests whose requests or power readings are on the other side."""
    path, want = varied
    starts = _line_starts(path)
    assert len(starts) > 3000
    picks = starts[1:4] + starts[len(starts) // 2 - 2 : len(starts) // 2 + 2] + starts[-3:]
    picks += random.Random(3).sample(starts[4:-3], 16)
    for cut in picks:
        got, later = _joined(path, cut)
        assert got == want, f"cut at byte {cut}"
    assert later.replayed, "the later half's rare events were kept for replay"


def test_a_cut_just_after_a_bad_line_counts_it_as_the_one_pass_does(tmp_path: Path, utc) -> None:
    """A bad line at the end of the first half is a bad line when any line follows, and the torn
    tail when only blank lines do."""
    good = orjson.dumps({"v": 1, "kind": "status", "t": 1.0, "run_id": "r"})
    for tail, bad, torn in ((good + b"\n", 1, False), (b"\n\n", 0, True), (b"{torn", 1, True)):
        path = tmp_path / "events.jsonl"
        path.write_bytes(good + b"\n" + b"not json\n" + tail)
        cut = len(good) + 1 + len(b"not json\n")
        got, _ = _joined(path, cut)
        stats = orjson.loads(got)["log"]
        assert (stats["lines_bad"], stats["torn_tail"], stats["first_bad_line"]) == (
            bad,
            torn,
            2 if bad else None,
        )
        assert got == _one_pass(path)


@pytest.fixture
def folded_here(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Where each stretch this process folded began (split._fold, spied on)."""
    starts: list[int] = []
    real = split._fold

    def fold(agg, p, st, start=0, end=None):
        starts.append(start)
        real(agg, p, st, start, end)

    monkeypatch.setattr(split, "_fold", fold)
    return starts


def test_a_later_stretch_keeps_the_rare_kinds_in_log_order() -> None:
    """The events a later stretch keeps for the earlier one to replay (and the run_started that
    makes it fold again) stay in log order within a batch, whichever keeper took them."""
    kinds = ["status", "run_started", "paused", "telemetry", "resumed", "status"]
    later = RunAggregate(later=True).feed_all(
        [{"v": 1, "kind": k, "seq": i, "t": 1.0 + i} for i, k in enumerate(kinds)]
    )
    assert [ev["seq"] for ev in later.replayed] == [
        0,
        1,
        2,
        4,
        5,
    ] and later.unmergeable == "a run_started event"


def test_the_forked_report_is_joined(varied, utc, folded_here) -> None:
    """fold_log itself, with a real child process: it joins (the second half is not folded again
    here) and the report is the one pass's."""
    path, want = varied
    stats = ReadStats()
    agg = split.fold_log(path, stats, min_bytes=0)
    assert _report(agg, stats) == want
    assert folded_here == [0], "only the first half was folded in this process"


def _events(*evs: dict) -> list[bytes]:
    base = {"v": 1, "run_id": "r"}
    return [orjson.dumps(base | ev) for ev in evs]


RUN_STARTED = {"kind": "run_started", "t": 0.0, "settings": {}}


def _reading(t: float, **values: float) -> dict:
    return {"kind": "telemetry", "t": t, "cpu_temp_c": 70.0, "power_w": 100.0} | values


def _refused_and_refolded(tmp_path: Path, first: list[bytes], second: list[bytes]) -> str:
    """Why the halves cannot be joined; and fold_log's report of the log is still the one pass's."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(first + second) + b"\n")
    cut = sum(len(line) + 1 for line in first)
    reason, _, _ = _join_at(path, cut)
    assert reason is not None
    stats = ReadStats()
    assert _report(split.fold_log(path, stats, cut=cut), stats) == _one_pass(path)
    return reason


def test_what_the_hardware_join_cannot_settle_is_folded_again_in_order(tmp_path: Path, utc) -> None:
    """A guard change before the second half's first reading; a value table that coarsened; a test
    with requests on both sides that began after the second half's first reading (no sane log has
    one, and its result was not kept): each is refused, and the report is the one pass's."""
    guard = {"kind": "thermal_guard", "t": 9.0, "state": "reduced", "previous": "ok"}
    first = _events(RUN_STARTED, _reading(2.0), _reading(4.0))
    reason = _refused_and_refolded(tmp_path, first, _events(guard, _reading(10.0)))
    assert reason == "HardwareFold: a guard change before the first reading"
    fans = [_reading(2.0 + i, fan_rpm=float(i)) for i in range(4100)]
    reason = _refused_and_refolded(tmp_path, _events(RUN_STARTED, *fans[:2050]), _events(*fans[2050:]))
    assert reason == "HardwareFold: a value histogram coarsened"

    def req(t: float) -> dict:
        return {
            "kind": "request",
            "t": t,
            "test_id": 7,
            "ok": True,
            "output_tokens": 5,
            "scenario": "streaming",
            "provider": "p",
            "model": "m",
            "stream": False,
        }

    result = {
        "kind": "scenario_result",
        "t": 12.0,
        "test_id": 7,
        "duration_ms": 1000.0,
        "ok": True,
        "scenario": "streaming",
        "provider": "p",
        "model": "m",
    }
    first = _events(RUN_STARTED, _reading(2.0), req(3.0))
    reason = _refused_and_refolded(tmp_path, first, _events(_reading(10.0), req(11.5), result))
    assert reason == "HardwareFold: an unfinished test's result may not have been kept"


def test_values_past_the_exact_counts_still_join_while_their_bins_are_few(tmp_path: Path, utc) -> None:
    """Each half counts its 2,050 fan values exactly; together they are past HIST_KEYS distinct
    values, so one pass bins them (at 1 rpm: 42 bins, no coarsening), and so must the join."""
    fans = [_reading(2.0 + i, fan_rpm=1000 + i / 100) for i in range(4100)]
    first, second = _events(RUN_STARTED, *fans[:2050]), _events(*fans[2050:])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(first + second) + b"\n")
    got, later = _joined(path, sum(len(line) + 1 for line in first))
    assert got == _one_pass(path)
    assert later.hardware.hists["fan_rpm"].raw is not None  # the half held exact counts
    fan = orjson.loads(got)["hardware"]["fan_rpm"]
    assert (fan["n"], fan["resolution"], fan["peak"]) == (4100, 1.0, 1041.0)


@pytest.fixture
def another_thread() -> Iterator[None]:
    """A second thread in this process (as in the engine or the dashboard): no fork."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_a_process_with_other_threads_starts_a_fresh_child_and_joins(
    varied, utc, folded_here, another_thread
) -> None:
    """The engine's end-of-run report and the dashboard's report screen run with other threads:
    the child is a fresh interpreter instead of a fork, and the join is the same."""
    path, want = varied
    assert not split.can_fork() and split.can_spawn()
    stats = ReadStats()
    agg = split.fold_log(path, stats, min_bytes=0)
    assert _report(agg, stats) == want
    assert folded_here == [0], "only the first half was folded in this process"


def test_a_fresh_child_that_does_not_answer_costs_time_not_figures(
    varied, utc, monkeypatch, folded_here, another_thread
) -> None:
    """The interpreter started is not python (here: /bin/false exits at once): the second half is
    folded here and the report is unchanged."""
    path, want = varied
    monkeypatch.setattr(sys, "executable", shutil.which("false"))
    stats = ReadStats()
    agg = split.fold_log(path, stats, min_bytes=0)
    assert _report(agg, stats) == want
    assert len(folded_here) == 2 and folded_here[0] == 0, "both halves were folded here"


def test_a_fresh_child_runs_this_processes_code_not_the_working_directorys(
    varied, utc, monkeypatch, folded_here, another_thread, tmp_path: Path
) -> None:
    """The engine may run in a directory it does not own: modules there (here a json.py and an
    orjson.py that leave a mark) are never imported by the child, which still answers and is joined."""
    mark = tmp_path / "imported"
    for name in ("json", "orjson"):
        (tmp_path / f"{name}.py").write_text(f"open({str(mark)!r}, 'w').close()\nraise ImportError\n")
    monkeypatch.chdir(tmp_path)
    path, want = varied
    stats = ReadStats()
    assert _report(split.fold_log(path, stats, min_bytes=0), stats) == want
    assert folded_here == [0] and not mark.exists()


def test_a_child_that_ran_other_code_is_not_joined(varied, utc, monkeypatch, folded_here) -> None:
    """A child's answer names the code it ran (soaktui upgraded while a long run went on, say):
    when it is not this process's, the answer is not read and the half is folded here."""
    path, want = varied
    real = split._start_child

    def start(p: Path, cut: int) -> tuple[int, int]:
        started = real(p, cut)  # the child answers with the code id it has now
        monkeypatch.setattr(split, "CODE_ID", b"another soaktui")
        return started

    monkeypatch.setattr(split, "_start_child", start)
    stats = ReadStats()
    assert _report(split.fold_log(path, stats, min_bytes=0), stats) == want
    assert len(folded_here) == 2, "the second half was folded here"


def test_no_child_to_be_had_is_one_pass_here(varied, utc, monkeypatch, folded_here, another_thread) -> None:
    """Starting a process fails (a limit on processes, say): the whole log is folded here."""
    path, want = varied

    def refused(*args: object, **kwargs: object) -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "posix_spawn", refused)
    stats = ReadStats()
    assert _report(split.fold_log(path, stats, min_bytes=0), stats) == want
    assert folded_here == [0]


def test_a_child_that_dies_costs_time_not_figures(varied, utc, monkeypatch) -> None:
    """The child fails (here: it exits before sending anything): this process folds the second
    half itself and the report is unchanged."""
    path, want = varied

    class Broken(RunAggregate):
        def __init__(self, **kw) -> None:
            if kw.get("later"):
                os._exit(3)  # the child dies without a word
            super().__init__(**kw)

    monkeypatch.setattr(split, "RunAggregate", Broken)
    stats = ReadStats()
    agg = split.fold_log(path, stats, min_bytes=0)
    assert _report(agg, stats) == want


def test_a_child_that_hangs_is_killed_and_its_half_folded_here(varied, utc, monkeypatch) -> None:
    """A child that never answers (stuck on a lock it inherited, say) is killed once it has taken
    twice as long as this process plus the grace, and the report is unchanged."""
    path, want = varied

    class Stuck(RunAggregate):
        def __init__(self, **kw) -> None:
            if kw.get("later"):
                time.sleep(3600)
            super().__init__(**kw)

    monkeypatch.setattr(split, "RunAggregate", Stuck)
    monkeypatch.setattr(split, "CHILD_GRACE_S", 0.5)
    stats = ReadStats()
    agg = split.fold_log(path, stats, min_bytes=0)
    assert _report(agg, stats) == want


def test_a_bounded_table_that_overflowed_in_the_second_half_is_not_joined(utc) -> None:
    """More distinct failure reasons than a bucket keeps, all in the later half: which went to
    '(other)' depended on what that half alone had seen, so it is folded again instead."""

    def result(i: int) -> dict:
        return {
            "v": 1,
            "kind": "scenario_result",
            "t": float(i),
            "scenario": "streaming",
            "provider": "p",
            "model": "m",
            "ok": False,
            "reason": f"reason {i}",
            "error_class": "check_failed",
        }

    first, later = RunAggregate(), RunAggregate(later=True)
    first.feed_all([result(0)])
    later.feed_all([result(i) for i in range(1, 80)])
    assert (
        first.cannot_merge(later)
        == "RequestFold: more failure reasons or prompt categories than a fold keeps"
    )
    with pytest.raises(ValueError, match="cannot merge"):
        first.merge(later)


def test_a_run_started_in_the_second_half_is_not_joined() -> None:
    later = RunAggregate(later=True)
    later.feed_all([{"v": 1, "kind": "run_started", "t": 5.0, "run_id": "r"}])
    assert RunAggregate().cannot_merge(later) == "a run_started event"


def test_the_folds_that_join_and_the_ones_replayed_split_every_kind() -> None:
    """Every kind a fold reads is either joined (its folds have `merge`) or replayed (theirs have
    none), and only run_started is read by both (which stops a join)."""
    agg = RunAggregate()
    merged = {k for f in agg._merged for k in f.KINDS}
    replayed = {
        k for f in vars(agg).values() if hasattr(f, "KINDS") and f not in agg._merged for k in f.KINDS
    }
    assert merged & replayed == {"run_started"}
    assert {"request", "scenario_result", "telemetry"} <= merged
    assert aggregate.RunAggregate is RunAggregate


# -- logs a review built to break the join (each once broke it); every cut is exact or refused ------
def _exact_or_refused_at_every_cut(tmp_path: Path, events: list[dict], lead: bytes = b"") -> tuple[int, int]:
    """Cut the log at every line start: the join is refused, or its report is the one pass's bytes.
    Returns (cuts joined, cuts refused)."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(lead + b"\n".join(_events(*events)) + b"\n")
    want = _one_pass(path)
    joined = refused = 0
    for cut in _line_starts(path):
        reason, got, _ = _join_at(path, cut)
        if reason is not None:
            refused += 1
            continue
        assert got == want, f"cut at byte {cut}"
        joined += 1
    stats = ReadStats()
    assert _report(split.fold_log(path, stats, min_bytes=0), stats) == want
    return joined, refused


def _req(t: float, test_id: object = 7, tokens: object = 5, **more: object) -> dict:
    ev = {"kind": "request", "t": t, "ok": True, "output_tokens": tokens, "scenario": "streaming"}
    ev |= {"provider": "p", "model": "m", "stream": False, "test_id": test_id} | more
    return {k: v for k, v in ev.items() if v is not ...}


def _result(t: float, test_id: object = 7, ms: object = 3000.0) -> dict:
    ev = {"kind": "scenario_result", "t": t, "duration_ms": ms, "ok": True, "scenario": "streaming"}
    ev |= {"provider": "p", "model": "m", "test_id": test_id}
    return {k: v for k, v in ev.items() if v is not ...}


def _power(t: float, w: float = 100.0) -> dict:
    return _reading(t, power_w=w) | {"cpu_temp_c": 50.0}


REVIEWED_LOGS = {
    "a test across the cut, joined once only": [
        RUN_STARTED,
        _power(1.0),
        _req(2.0),
        _power(3.0),
        _result(4.0),
    ],
    "sums of one-decimal power readings": [
        RUN_STARTED,
        *[_reading(t, power_w=w) for t, w in ((0.0, 100.0), (2.0, 250.5), (7.0, 33.3), (8.5, 33.3))],
        _reading(23.5, cpu_temp_c=50.0),
    ],
    "time running backwards at the cut": [
        RUN_STARTED,
        _reading(100.0, cpu_temp_c=50.0),
        _reading(90.0, cpu_temp_c=50.0),
        _result(95.0, test_id=1),
        _reading(104.0, cpu_temp_c=50.0),
    ],
    "unfinished tests up to the pending cap": [
        RUN_STARTED,
        _power(1.0),
        *[_req(1.5, test_id=i, tokens=1) for i in range(1, 257)],
        _power(2.0),
        _req(2.5, test_id=1000),
        _result(3.0, test_id=1, ms=500.0),
    ],
    "tests without a test_id": [
        RUN_STARTED,
        _power(1.0),
        _req(1.5, test_id=..., tokens=5),
        _power(2.0),
        _req(2.5, test_id=..., tokens=3),
        _result(3.0, test_id=..., ms=500.0),
    ],
    "a result with a bad duration, then its test_id again": [
        RUN_STARTED,
        _power(1.0),
        _req(1.5),
        _power(2.0),
        _result(2.5, ms=-1.0),
        _result(3.0, ms=500.0),
    ],
    "token counts that are not whole": [_req(1.0, tokens=0.1), _req(2.0, tokens=0.2), _req(3.0, tokens=0.3)],
    "two run_started": [RUN_STARTED, RUN_STARTED | {"t": 100.0}, _reading(105.0), _reading(107.0)],
    # a second review's: a reading or a result that raised partway, a test id used after its result
    "a reading judged against a limit that is text": [
        RUN_STARTED | {"t": 5.5, "settings": {"thermal": {"cpu_temp_limit_c": 80.0, "hysteresis_c": "x"}}},
        {"kind": "telemetry", "t": 39.157102, "power_w": 290.7},
        {"kind": "telemetry", "t": 42.157102, "cpu_temp_c": 62.3},
        {"kind": "telemetry", "t": 54.858814},
    ],
    "a reading of an absurd power": [
        RUN_STARTED | {"t": 6.0},
        {"kind": "telemetry", "t": 11.902, "gpu_throttle_reasons": ["sw_thermal_slowdown"]},
        {"kind": "telemetry", "t": 50.663, "power_w": 1e300},
        {"kind": "telemetry", "t": 88.857},
    ],
    "a reading whose gpus are not a list": [
        {"kind": "request"},
        {"kind": "telemetry", "t": -1, "gpu_throttle_reasons": ["gpu_idle"]},
        {"kind": "telemetry", "t": -138.412866, "gpus": True, "power_w": 381.4},
        {"kind": "scenario_result", "t": -133.4, "provider": "p", "model": "o:7b", "duration_ms": 3000.0},
    ],
    "a test id used again after its result": [
        RUN_STARTED,
        _power(1.0),
        _req(2.0),
        _power(3.0),
        _req(3.5, tokens=3),
        _result(4.0, ms=500.0),
        _result(5.0, ms="long"),
    ],
    "a result whose model key is not a name": [
        RUN_STARTED,
        _power(1.0),
        _req(2.0),
        _power(3.0),
        _result(4.0, ms=2500.0) | {"key": ["x"]},
        _result(5.0, ms=500.0),
    ],
    "absurd token counts and a class that is a number": [
        RUN_STARTED,
        _power(1.0),
        _req(2.0, tokens=1e300),
        _power(3.0),
        _req(3.5, test_id=8, ok=False, error_class=1.5),
        _req(3.6, test_id=8, ok=False, error_class="http_status"),
        _result(4.0, ms=2500.0),
    ],
    "a guard change whose fields are structures": [
        RUN_STARTED,
        _reading(1.0),
        {"kind": "thermal_guard", "t": 2.0, "state": "reduced", "previous": [[[]]], "cap_pct": {"x": 1}},
        _reading(3.0),
        *[{"kind": "thermal_guard", "t": 4.0 + i, "state": "ok", "previous": "reduced"} for i in range(100)],
    ],
}


@pytest.mark.parametrize("name", list(REVIEWED_LOGS))
def test_a_reviewed_log_is_exact_or_refused_at_every_cut(name: str, tmp_path: Path, utc) -> None:
    joined, refused = _exact_or_refused_at_every_cut(tmp_path, REVIEWED_LOGS[name])
    assert joined + refused >= len(REVIEWED_LOGS[name]) - 1


def test_a_log_whose_first_line_is_blank_is_exact_or_refused(tmp_path: Path, utc) -> None:
    events = [RUN_STARTED, _req(2.0), _reading(5.0), _reading(7.0)]
    _exact_or_refused_at_every_cut(tmp_path, events, lead=b"\n")


def test_the_joins_that_should_happen_do(tmp_path: Path, utc) -> None:
    """Refusing is always safe; these ordinary logs must still join where a cut allows it."""
    for name in ("a test across the cut, joined once only", "sums of one-decimal power readings"):
        joined, _ = _exact_or_refused_at_every_cut(tmp_path, REVIEWED_LOGS[name])
        assert joined >= len(REVIEWED_LOGS[name]) - 2, name


def test_a_line_longer_than_the_limit_is_bad_wherever_the_reads_fall(tmp_path: Path, monkeypatch) -> None:
    """The limit is on the line, not on how much of it one read held: the same counts from any
    start (report/split.py starts the second half's reads at its cut)."""
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(reader, "BLOCK_SIZE", 256)
    good = orjson.dumps({"v": 1, "kind": "status", "t": 1.0, "run_id": "r"})
    long = orjson.dumps({"v": 1, "kind": "status", "t": 2.0, "run_id": "r", "pad": "x" * 1100})
    for overlong in (long, b" " * 1100):  # a blank line that long is bad too
        path = tmp_path / "events.jsonl"
        path.write_bytes(b"\n".join([good] * 7 + [overlong] + [good] * 3) + b"\n")
        for cut in _line_starts(path):
            if cut > len(good) * 7 + 7:
                break
            first, rest = ReadStats(), ReadStats()
            for _ in iter_event_batches(path, first, end=cut):
                pass
            for _ in iter_event_batches(path, rest, start=cut):
                pass
            first.merge(rest)
            assert (first.lines_ok, first.lines_bad, first.first_bad_line) == (10, 1, 8), cut
