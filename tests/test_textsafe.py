"""The one pass for server text (soaktui/log/textsafe.py): escapes shown, credentials redacted, and
the bus and both log readers apply it (issue 14, items 6 and 10)."""

from __future__ import annotations

import random

import orjson
import pytest

from soaktui.log import textsafe
from soaktui.log.events import EventBus
from soaktui.log.follow import LogFollower
from soaktui.log.reader import read_all
from soaktui.log.textsafe import REDACTED, Sanitiser, neutralise, visible
from tests.hostile import raw_escapes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b"),  # OSC: set the terminal title
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # CSI: clear the screen, cursor home
        ("bare \x1b here", "bare \\x1b here"),
        ("c1 \x9b31m csi", "c1 \\x9b31m csi"),  # the 8-bit CSI
        ("del\x7f nul\x00 cr\r bs\x08", "del\\x7f nul\\x00 cr\\x0d bs\\x08"),
        ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
        ("naïve — 日本語 [/INST]", "naïve — 日本語 [/INST]"),
    ],
)
def test_controls_are_shown_as_visible_escapes(raw, shown):
    assert visible(raw) == shown


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Authorization: Bearer abc123def456", f"Authorization: Bearer {REDACTED}"),
        ("authorization: bearer ABCDEFGHIJKLMNOPQRSTUV", f"authorization: Bearer {REDACTED}"),
        ("key sk-proj-Abcdefghijklmnop12 end", f"key {REDACTED} end"),
        ("Bearer authentication is required", "Bearer authentication is required"),  # words stay
        ("task-sk-1", "task-sk-1"),
    ],
)
def test_credential_shapes_are_redacted(raw, shown):
    assert visible(raw) == shown


def test_the_configured_key_is_redacted_however_it_is_quoted():
    s = Sanitiser(["plainkey99", None, "ab"])  # "ab": too short to be a secret, left alone
    assert s.text("x-api-key=plainkey99; about ab") == f"x-api-key={REDACTED}; about ab"


def test_nothing_to_change_returns_the_same_objects():
    clean = {"a": ["x", {"b": "y"}], "n": 3, "t": ("z",)}
    assert neutralise(clean) is clean
    dirty = {"a": ["x", {"b": "\x1b[2J"}], "\x07": 1, "keep": clean}
    out = neutralise(dirty)
    assert out == {"a": ["x", {"b": "\\x1b[2J"}], "\\x07": 1, "keep": clean} and out["keep"] is clean


class Collect:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def handle(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def test_the_bus_sanitises_before_any_sink_sees_an_event():
    bus = EventBus("r", sanitise=Sanitiser(["plainkey99"]).neutralise)
    sink = Collect()
    bus.add_sink(sink)
    bus.emit("error", message="\x1b]0;t\x07 echo plainkey99", nested={"body": ["\x9b"]})
    (e,) = sink.events
    assert e["message"] == f"\\x1b]0;t\\x07 echo {REDACTED}" and e["nested"] == {"body": ["\\x9b"]}


def test_both_log_readers_neutralise_a_log_stored_raw(tmp_path):
    """A log written before the bus sanitised events (or by another tool) reads back safe."""
    log = tmp_path / "events.jsonl"
    raw = [{"kind": "request", "error": "\x1b[2J\x9b Bearer tok3n12345678", "seq": 1}, {"kind": "x", "seq": 2}]
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in raw))
    assert raw_escapes(log.read_bytes())
    follower = LogFollower(log)
    for events in (read_all(log)[0], follower.read()):
        assert events[0]["error"] == f"\\x1b[2J\\x9b Bearer {REDACTED}" and events[1] == raw[1]
    follower.close()


def test_the_block_prefilter_answers_as_the_plain_substring_searches():
    """`suspect` walks the backslashes instead of searching each escape: the same answer on
    blocks with none, few and more than it walks (then the searches take over), wherever the
    escape sits (an escaped backslash before `r` too)."""
    rng = random.Random(3)
    pieces = [b'{"a":1.25}', b'\\"q\\"', b"\\\\", b"\\\\r", b"\\r", b"\\u001b", b"\\u00e9", b"\\n", b"\x7f"]
    pieces += [b"\xc2\x9b", b"\\u0", b"r", b"u00", b"0" * 50, b"\\t"]
    for n in (0, 1, 3, 20, textsafe._BACKSLASH_WALK + 5):
        for _ in range(60):
            block = b"".join(rng.choice(pieces[:1] * 6 + pieces) for _ in range(n))
            quotes = b'\\"x' * rng.randint(0, 2 * n)  # clean escapes, then one piece of any kind
            if rng.random() < 0.5:
                block = quotes + rng.choice(pieces) + block
            else:
                block += quotes + rng.choice(pieces)
            expected = any(s in block for s in textsafe._SUSPECT_BYTES)
            assert textsafe.suspect(block) is expected, block[:200]
    many = b'{"body":"\\"busy\\""}' * textsafe._BACKSLASH_WALK  # more clean backslashes than it walks
    for piece in pieces:
        expected = any(s in piece for s in textsafe._SUSPECT_BYTES)
        assert textsafe.suspect(many + piece) is expected and textsafe.suspect(piece + many) is expected
