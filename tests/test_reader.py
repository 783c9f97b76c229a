"""The events.jsonl reader: complete lines only, torn tails and damaged lines tolerated and counted."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soaktui.log import reader
from soaktui.log.reader import ReadStats, iter_events, read_all

pytestmark = pytest.mark.unit


def _line(i: int) -> bytes:
    return orjson.dumps({"v": 1, "kind": "status", "seq": i, "t": 1000.0 + i}) + b"\n"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_complete_log(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.jsonl", b"".join(_line(i) for i in range(1, 6)))
    events, st = read_all(p)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert (st.lines_ok, st.lines_bad, st.torn_tail) == (5, 0, False)
    assert st.bytes_read == p.stat().st_size


def test_torn_tail_is_skipped_not_counted_bad(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.jsonl", _line(1) + _line(2) + b'{"v": 1, "kind": "requ')
    events, st = read_all(p)
    assert [e["seq"] for e in events] == [1, 2]
    assert (st.lines_ok, st.lines_bad, st.torn_tail) == (2, 0, True)


def test_unterminated_last_line_is_torn_even_if_it_parses(tmp_path: Path) -> None:
    # The writer ends every line with its newline in one write: no newline = not a complete event.
    p = _write(tmp_path / "e.jsonl", _line(1) + _line(2).rstrip(b"\n"))
    events, st = read_all(p)
    assert [e["seq"] for e in events] == [1]
    assert st.torn_tail and st.lines_bad == 0


def test_damaged_last_complete_line_counts_as_torn_tail(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.jsonl", _line(1) + b"\x00\x00\x00\x00\n")
    events, st = read_all(p)
    assert len(events) == 1 and st.torn_tail and st.lines_bad == 0


def test_bad_middle_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    data = _line(1) + b"{not json\n" + _line(2) + b"[1, 2]\n" + b"\n" + _line(3) + b'{"torn'
    p = _write(tmp_path / "e.jsonl", data)
    events, st = read_all(p)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert st.lines_bad == 2  # the invalid line and the non-object line; the blank line is ignored
    assert st.first_bad_line == 2
    assert st.torn_tail


def test_bad_line_just_before_torn_tail_is_a_middle_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.jsonl", _line(1) + b"garbage\n" + b'{"torn')
    _, st = read_all(p)
    assert st.lines_bad == 1 and st.torn_tail


def test_empty_file(tmp_path: Path) -> None:
    events, st = read_all(_write(tmp_path / "e.jsonl", b""))
    assert events == [] and st == ReadStats()


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_events(tmp_path / "nope.jsonl"))


def test_overlong_line_is_skipped_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BLOCK_SIZE", 16)
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 60)  # a status line is 42-43 bytes
    p = _write(tmp_path / "e.jsonl", _line(1) + b"x" * 500 + b"\n" + _line(2))
    events, st = read_all(p)
    assert [e["seq"] for e in events] == [1, 2]
    assert st.lines_bad == 1 and not st.torn_tail


def test_overlong_unterminated_tail_is_torn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "BLOCK_SIZE", 16)
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 60)
    p = _write(tmp_path / "e.jsonl", _line(1) + b"y" * 500)
    events, st = read_all(p)
    assert len(events) == 1 and st.torn_tail and st.lines_bad == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=0, max_value=30),
    block=st.integers(min_value=1, max_value=200),
    tail=st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)
def test_any_block_size_yields_exactly_the_complete_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, block: int, tail: bytes
) -> None:
    """A log killed at any byte: the reader returns exactly the complete lines, in order."""
    monkeypatch.setattr(reader, "BLOCK_SIZE", block)
    p = _write(tmp_path / "e.jsonl", b"".join(_line(i) for i in range(n)) + tail)
    events, st = read_all(p)
    assert [e["seq"] for e in events] == list(range(n))
    assert st.lines_bad == 0
    assert st.torn_tail == bool(tail.strip())


def test_events_from_a_newer_schema_are_read_and_counted(tmp_path: Path) -> None:
    """A log a newer soaktui wrote: every event still comes through, and the stats say how many
    were newer and the newest version, for the one warning (reader and follower alike)."""
    from soaktui.log.events import SCHEMA_VERSION
    from soaktui.log.follow import LogFollower
    from soaktui.log.reader import newer_schema_warning

    newer = SCHEMA_VERSION + 1
    lines = [
        _line(1),
        orjson.dumps({"v": newer, "kind": "status", "seq": 2, "t": 1002.0, "shiny": [1]}) + b"\n",
        orjson.dumps({"v": newer + 1, "kind": "hologram", "seq": 3, "t": 1003.0}) + b"\n",
        orjson.dumps({"v": "2", "kind": "status", "seq": 4, "t": 1004.0}) + b"\n",  # not a version
        _line(5),
    ]
    p = _write(tmp_path / "e.jsonl", b"".join(lines))
    events, st = read_all(p)
    follower = LogFollower(p)
    followed = follower.read()
    assert [e["seq"] for e in events] == [e["seq"] for e in followed] == [1, 2, 3, 4, 5]
    for stats in (st, follower.stats):
        assert (stats.newer_schema, stats.newer_events) == (newer + 1, 2)
        assert newer_schema_warning(stats) == (
            f"2 events were written by a newer soaktui (event schema v{newer + 1}; this one reads "
            f"v{SCHEMA_VERSION}): read for what this version understands, some figures may be missing"
        )
    _, plain = read_all(_write(tmp_path / "plain.jsonl", _line(1)))
    assert (plain.newer_schema, plain.newer_events, newer_schema_warning(plain)) == (None, 0, None)
