"""The control protocol fuzzed over a real Unix socket: whatever arrives, every request line gets one
well-formed reply (or, for an over-long line, an error and a clean close), nothing reaches the
engine's handler unvalidated, the server never logs an unhandled exception, and it keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soaktui.engine.control import COMMANDS, MAX_LINE, ControlServer, normalize_command, send_command

pytestmark = pytest.mark.integration


class ServerThread:
    """One ControlServer on its own event loop in a thread, shared by every example of a test.
    Records what reached the handler and every exception the loop saw (the engine.log traceback)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.calls: list[tuple[str, Any]] = []
        self.loop_errors: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.path: Path | None = None
        self._thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._main(),), daemon=True
        )

    async def _handler(self, command: str, arg: Any) -> dict[str, Any]:
        self.calls.append((command, arg))
        return {"ok": True, "message": command, "state": {"arg": arg}}

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with ControlServer(self.run_dir, self._handler) as server:
            self.path = server.socket_path
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "control server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(tmp_path) as srv:
        yield srv
    assert srv.loop_errors == []  # no unhandled exception anywhere in the server


def exchange(path: Path, payload: bytes) -> list[bytes]:
    """Send `payload`, close our side, and return every line the server sends until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.fspath(path))
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server turned us away mid-send (an over-long line): read what it said
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return data.splitlines()


def check_reply(line: bytes) -> dict[str, Any]:
    reply = json.loads(line)
    assert set(reply) == {"ok", "message", "state"}
    assert isinstance(reply["ok"], bool) and isinstance(reply["message"], str) and reply["message"]
    assert isinstance(reply["state"], dict)
    assert not reply["message"].startswith("internal error")  # validated, not caught by the safety net
    return reply


def still_serves(srv: ServerThread) -> None:
    assert send_command(srv.run_dir, "status")["ok"] is True


def request_lines(payload: bytes) -> list[bytes]:
    """The lines the server answers: every line with something besides whitespace."""
    return [line for line in payload.split(b"\n") if line.strip()]


def expected_reply(request: Any) -> tuple[str, Any] | None:
    """What the handler should see for one decoded request, or None when the server must refuse it."""
    if not isinstance(request, dict) or "command" not in request:
        return None
    try:
        return normalize_command(request["command"], request.get("arg"))
    except ValueError:
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
commands = st.sampled_from(list(COMMANDS)) | json_values
requests = (
    json_values
    | st.fixed_dictionaries({"command": commands})
    | st.fixed_dictionaries({"command": commands, "arg": json_values})
    | st.fixed_dictionaries({"command": commands, "arg": json_values}, optional={"x": json_values})
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(request=requests)
def test_any_json_request_gets_one_reply_and_only_valid_ones_reach_the_engine(server, request):
    before = len(server.calls)
    payload = json.dumps(request, allow_nan=True).encode() + b"\n"
    replies = exchange(server.path, payload)
    assert len(replies) == 1
    reply = check_reply(replies[0])
    expected = expected_reply(request)
    if expected is None:
        assert reply["ok"] is False and server.calls[before:] == []
    else:
        assert reply["ok"] is True and server.calls[before:] == [expected]


@FUZZ
@given(payload=st.binary(max_size=2000))
def test_random_bytes_get_one_reply_per_line(server, payload):
    replies = exchange(server.path, payload)
    assert len(replies) == len(request_lines(payload))
    for line in replies:
        check_reply(line)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"command": {}}\n',
        b'{"command": []}\n',
        b'{"command": ["pause"]}\n',
        b'{"command": {"pause": 1}, "arg": 2}\n',
        b'{"command": "throttle", "arg": {"pct": 50}}\n',
        b'{"command": "quiet", "arg": ["on"]}\n',
        b'{"command": "pause", "arg": {}}\n',
        b"[" * 50_000 + b"\n",  # nesting deep enough to exhaust the JSON parser's recursion
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"\n",
        b'{"command": "throttle", "arg": ' + b"9" * 5000 + b"}\n",  # over int's digit limit
        b'{"command": "\\ud800"}\n',  # a lone surrogate
        b'{"command": "pause", "arg": NaN}\n',
        b"\xff\xfe\x00garbage\n",
    ],
    ids=lambda payload: repr(payload[:24]),
)
def test_wrong_shapes_are_answered_not_raised(server, payload):
    replies = exchange(server.path, payload)
    assert len(replies) == 1
    assert check_reply(replies[0])["ok"] is False
    assert server.calls == []
    still_serves(server)


def test_huge_lines_are_refused_and_the_connection_closed(server):
    for payload in (b"x" * (MAX_LINE + 10), b'{"command": "' + b"p" * (4 * MAX_LINE) + b'"}\n'):
        replies = exchange(server.path, payload)
        assert [check_reply(line)["message"] for line in replies] == [
            f"request line longer than {MAX_LINE} bytes"
        ]
    still_serves(server)
    assert server.calls == [("status", None)]
