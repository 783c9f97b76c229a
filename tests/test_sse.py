"""The SSE parser: every framing case the chat client relies on, plus split-invariance properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soaktui.providers.sse import SSEEvent, SSEParser

pytestmark = pytest.mark.unit


def parse(*reads: bytes, max_line_bytes: int = 1 << 20) -> tuple[list[SSEEvent], SSEParser]:
    p = SSEParser(max_line_bytes)
    out: list[SSEEvent] = []
    for r in reads:
        out += p.feed(r)
    out += p.finish()
    return out, p


def datas(events: list[SSEEvent]) -> list[str]:
    return [e.data for e in events]


def test_single_event_and_done():
    evs, _ = parse(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert datas(evs) == ['{"a":1}', "[DONE]"]
    assert evs[0].event is None and evs[0].id is None


def test_several_events_in_one_read_are_returned_by_that_feed():
    p = SSEParser()
    got = p.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4")
    assert datas(got) == ["1", "2", "3"]
    assert datas(p.feed(b"\n\n")) == ["4"]


def test_split_at_every_byte():
    stream = b"data: one\n\nevent: e\ndata: two\ndata: three\n\n: comment\ndata: four\r\n\r\n"
    whole, _ = parse(stream)
    assert datas(whole) == ["one", "two\nthree", "four"]
    for i in range(len(stream) + 1):
        assert parse(stream[:i], stream[i:])[0] == whole
    assert parse(*(stream[i : i + 1] for i in range(len(stream))))[0] == whole


def test_crlf_split_inside_the_pair():
    p = SSEParser()
    assert datas(p.feed(b"data: a\r")) == []
    assert datas(p.feed(b"\n\r")) == ["a"]
    assert datas(p.feed(b"\ndata: b\r\n\r\n")) == ["b"]


def test_cr_only_line_endings():
    evs, _ = parse(b"data: a\rdata: b\r\rdata: c\r\r")
    assert datas(evs) == ["a\nb", "c"]


def test_mixed_line_endings():
    evs, _ = parse(b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\n")
    assert datas(evs) == ["a", "b", "c"]


def test_multibyte_utf8_split_inside_a_character():
    raw = "data: héllo → 世界 🎉\n\n".encode()
    for i in range(len(raw) + 1):
        assert datas(parse(raw[:i], raw[i:])[0]) == ["héllo → 世界 🎉"]


def test_comments_and_field_without_space():
    evs, _ = parse(b": ping\n:\ndata:x\ndata:  y\nevent:ev\nid:5\n\n")
    assert evs == [SSEEvent("x\n y", "ev", "5")]


def test_id_persists_and_event_type_resets():
    evs, _ = parse(b"id: 1\nevent: a\ndata: x\n\ndata: y\n\n")
    assert evs == [SSEEvent("x", "a", "1"), SSEEvent("y", None, "1")]


def test_unknown_fields_retry_and_bare_field_names_are_ignored():
    evs, _ = parse(b"retry: 100\nfoo: bar\nnocolon\ndata\n\n")
    assert evs == [SSEEvent("")]  # a bare `data` line is a data field with an empty value


def test_blank_lines_without_data_dispatch_nothing():
    evs, _ = parse(b"\n\n\nevent: x\n\n\n")
    assert evs == []


def test_finish_flushes_an_unterminated_event():
    evs, _ = parse(b'data: {"a":1}')
    assert datas(evs) == ['{"a":1}']
    evs, _ = parse(b"data: a\ndata: b\n")
    assert datas(evs) == ["a\nb"]


def test_leading_bom_is_ignored():
    evs, _ = parse(b"\xef\xbb\xbfdata: a\n\n")
    assert datas(evs) == ["a"]


def test_invalid_utf8_is_replaced_not_raised():
    evs, _ = parse(b"data: \xff\xfe ok\n\n")
    assert datas(evs) == ["\ufffd\ufffd ok"]


def test_oversized_line_in_one_read_is_dropped_and_counted():
    big = b"data: " + b"x" * 200 + b"\n\n"
    evs, p = parse(b"data: a\n\n" + big + b"data: b\n\n", max_line_bytes=100)
    assert datas(evs) == ["a", "b"]
    assert p.oversized_lines == 1


def test_oversized_line_across_reads_is_never_buffered_whole():
    limit = 1000
    p = SSEParser(limit)
    assert p.feed(b"data: ok\n\ndata: ") == [SSEEvent("ok")]
    for _ in range(500):  # 500 kB of one line, in 1 kB reads
        assert p.feed(b"y" * 1000) == []
        assert p.buffered <= limit
    assert p.oversized_lines == 1
    assert datas(p.feed(b"\n\ndata: after\n\n")) == ["after"]
    assert p.oversized_lines == 1


def test_oversized_tail_that_ends_in_a_later_read():
    p = SSEParser(10)
    assert p.feed(b"data: 0123456789abc") == []
    assert p.oversized_lines == 1
    assert datas(p.feed(b"def\ndata: z\n\n")) == ["z"]


def test_line_exactly_at_the_limit_is_kept():
    line = b"data: " + b"x" * 14  # 20 bytes
    evs, p = parse(line[:7], line[7:] + b"\n\n", max_line_bytes=20)
    assert datas(evs) == ["x" * 14] and p.oversized_lines == 0
    evs, p = parse(line + b"\n\n", max_line_bytes=20)
    assert datas(evs) == ["x" * 14] and p.oversized_lines == 0


# -- properties ------------------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
)
_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=8
)
_event = st.fixed_dictionaries(
    {
        "data": st.lists(_text, min_size=1, max_size=3),
        "event": st.one_of(st.none(), _name.filter(bool)),
        "id": st.one_of(st.none(), _name),
        "comment": st.one_of(st.none(), _text),
        "nospace": st.booleans(),
    }
)
_eol = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def _streams(draw):
    """A valid stream (bytes) and the events a conforming parser must produce from it."""
    events = draw(st.lists(_event, max_size=6))
    out = bytearray()
    expected: list[SSEEvent] = []
    last_id = None

    def line(b: bytes) -> None:
        eol = draw(_eol)
        if not b and out.endswith(b"\r") and eol.startswith(b"\n"):
            eol = b"\r"  # CR then LF is one line end, not a blank line
        out.extend(b + eol)

    for ev in events:
        if ev["comment"] is not None:
            line(b":" + ev["comment"].encode())
        if ev["event"] is not None:
            line(b"event: " + ev["event"].encode())
        if ev["id"] is not None:
            line(b"id: " + ev["id"].encode())
            last_id = ev["id"]
        for d in ev["data"]:
            sep = b"data:" if ev["nospace"] and not d.startswith(" ") else b"data: "
            line(sep + d.encode())
        line(b"")
        expected.append(SSEEvent("\n".join(ev["data"]), ev["event"], last_id))
    return bytes(out), expected


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for c in points:
        pieces.append(data[prev:c])
        prev = c
    pieces.append(data[prev:])
    return pieces


@settings(max_examples=300, deadline=None)
@given(_streams(), st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_any_split_of_a_valid_stream_parses_the_same(stream, cuts):
    data, expected = stream
    assert parse(data)[0] == expected
    assert parse(*_split(data, cuts))[0] == expected


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
    st.integers(min_value=1, max_value=64),
)
def test_random_bytes_never_raise_and_stay_bounded(data, cuts, limit):
    p = SSEParser(limit)
    for piece in _split(data, cuts):
        for ev in p.feed(piece):
            assert isinstance(ev.data, str)
        assert p.buffered <= limit
    p.finish()
