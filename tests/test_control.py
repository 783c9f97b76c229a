"""The control socket over real Unix sockets: commands, validation, bounds, stale and long paths."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from soaktui.engine.control import (
    COMMANDS,
    POINTER_NAME,
    SOCKET_NAME,
    SUN_PATH_MAX,
    ControlError,
    ControlServer,
    apply_throttle,
    normalize_command,
    send_command,
)
from soaktui.errors import SetupError

pytestmark = pytest.mark.integration


class Recorder:
    """An engine stand-in: records what reached it and answers with a state."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def __call__(self, command: str, arg: Any) -> dict[str, Any]:
        self.calls.append((command, arg))
        return {"ok": True, "message": f"did {command}", "state": {"paused": command == "pause", "arg": arg}}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def call(run_dir: Path, command: str, arg: Any = None, **kw) -> dict[str, Any]:
    return await asyncio.to_thread(send_command, run_dir, command, arg, **kw)


def raw_exchange(path: Path, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes or a line arrives."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.fspath(path))
        s.sendall(payload)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_every_command_reaches_the_handler_normalised(tmp_path):
    handler = Recorder()

    async def main():
        async with ControlServer(tmp_path, handler):
            replies = [
                await call(tmp_path, "pause"),
                await call(tmp_path, "resume"),
                await call(tmp_path, "skip"),
                await call(tmp_path, "throttle", "50"),
                await call(tmp_path, "throttle", 30),
                await call(tmp_path, "throttle", "+10"),
                await call(tmp_path, "throttle", "-5%"),
                await call(tmp_path, "quiet"),
                await call(tmp_path, "quiet", "ON"),
                await call(tmp_path, "quiet", "off"),
                await call(tmp_path, " Status "),
                await call(tmp_path, "stop"),
            ]
        return replies

    replies = run(main())
    assert handler.calls == [
        ("pause", None),
        ("resume", None),
        ("skip", None),
        ("throttle", 50),
        ("throttle", 30),
        ("throttle", "+10"),
        ("throttle", "-5"),
        ("quiet", "toggle"),
        ("quiet", "on"),
        ("quiet", "off"),
        ("status", None),
        ("stop", None),
    ]
    assert {c for c, _ in handler.calls} == set(COMMANDS)
    assert replies[0] == {"ok": True, "message": "did pause", "state": {"paused": True, "arg": None}}
    assert all(r["ok"] for r in replies)


def test_sync_handler_and_partial_replies(tmp_path):
    def handler(command, arg):
        return (
            {"message": "noted"} if command == "skip" else {"ok": False, "message": "not now", "state": "bad"}
        )

    async def main():
        async with ControlServer(tmp_path / SOCKET_NAME, handler):  # the socket path works as well as the dir
            return await call(tmp_path, "skip"), await call(tmp_path, "pause")

    skip, pause = run(main())
    assert skip == {"ok": True, "message": "noted", "state": {}}
    assert pause == {"ok": False, "message": "not now", "state": {}}


@pytest.mark.parametrize(
    ("command", "arg", "message"),
    [
        (
            "jump",
            None,
            "unknown command 'jump'; commands: pause, resume, skip, throttle, quiet, stop, status",
        ),
        (
            "throttle",
            None,
            "throttle expects a percentage from 1 to 100 or a change such as +10 / -10, got None",
        ),
        ("throttle", 0, "throttle expects a percentage from 1 to 100"),
        ("throttle", "101", "throttle expects a percentage from 1 to 100"),
        ("throttle", "+100", "throttle expects"),
        ("throttle", "fast", "got 'fast'"),
        ("throttle", True, "got True"),
        ("quiet", "maybe", "quiet expects on, off or toggle, got 'maybe'"),
        ("pause", "now", "pause takes no argument (got 'now')"),
    ],
)
def test_invalid_commands_are_answered_by_the_server(tmp_path, command, arg, message):
    handler = Recorder()

    async def main():
        async with ControlServer(tmp_path, handler):
            return await call(tmp_path, command, arg)

    reply = run(main())
    assert reply["ok"] is False
    assert message in reply["message"]
    assert reply["state"] == {}
    assert handler.calls == []


def test_bad_requests_several_per_connection_and_handler_failure(tmp_path):
    async def handler(command, arg):
        if command == "stop":
            raise RuntimeError("engine is busy")
        return {"ok": True, "message": command}

    async def main():
        async with ControlServer(tmp_path, handler) as server:
            path = server.socket_path
            not_json = await asyncio.to_thread(raw_exchange, path, b"hello\n")
            no_command = await asyncio.to_thread(raw_exchange, path, b'{"arg": 1}\n')
            failed = await call(tmp_path, "stop")

            def two_in_one():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(os.fspath(path))
                    s.sendall(b'{"command": "pause"}\n\n{"command": "resume"}\n')
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    return data

            both = await asyncio.to_thread(two_in_one)
        return not_json, no_command, failed, both

    not_json, no_command, failed, both = run(main())
    for raw in (not_json, no_command):
        reply = json.loads(raw)
        assert reply["ok"] is False and reply["message"].startswith("bad request: expected one JSON line")
    assert failed == {"ok": False, "message": "stop failed: RuntimeError: engine is busy", "state": {}}
    assert [json.loads(line)["message"] for line in both.splitlines()] == ["pause", "resume"]


def test_oversized_line_and_silent_client_are_dropped(tmp_path):
    async def main():
        async with ControlServer(tmp_path, Recorder(), idle_timeout_s=0.2) as server:
            path = server.socket_path
            big = await asyncio.to_thread(raw_exchange, path, b"x" * (70 * 1024))

            def silent():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(os.fspath(path))
                    return s.recv(100)  # returns b"" once the server drops us

            quiet = await asyncio.to_thread(silent)
            after = await call(tmp_path, "status")
        return big, quiet, after

    big, quiet, after = run(main())
    assert json.loads(big) == {"ok": False, "message": "request line longer than 65536 bytes", "state": {}}
    assert quiet == b""
    assert after["ok"] is True  # the server carries on


def test_clients_beyond_the_cap_are_turned_away(tmp_path):
    async def main():
        async with ControlServer(tmp_path, Recorder(), max_clients=1) as server:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as first:
                first.connect(os.fspath(server.socket_path))
                first.sendall(b'{"command": "status"}\n')  # connected and served: it holds the slot
                await asyncio.to_thread(first.recv, 65536)
                return await call(tmp_path, "status")

    assert run(main()) == {"ok": False, "message": "too many control clients; try again", "state": {}}


def test_socket_is_private_and_removed_on_close(tmp_path):
    async def main():
        server = ControlServer(tmp_path, Recorder())
        await server.start()
        mode = stat.S_IMODE((tmp_path / SOCKET_NAME).stat().st_mode)
        assert server.socket_path == tmp_path / SOCKET_NAME
        await server.close()
        return mode

    assert run(main()) == 0o600
    assert not (tmp_path / SOCKET_NAME).exists()
    with pytest.raises(ControlError) as info:
        send_command(tmp_path, "status")
    assert str(info.value) == (
        f"no running soaktui run listens in {tmp_path} (the run has finished or was killed)"
    )
    assert isinstance(info.value, SetupError)


def test_client_errors_without_a_run(tmp_path):
    with pytest.raises(ControlError, match="is not a run directory"):
        send_command(tmp_path / "missing", "status")
    with pytest.raises(ControlError, match="no running soaktui run listens in"):
        send_command(tmp_path, "status")


def test_stale_socket_is_replaced(tmp_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(tmp_path / SOCKET_NAME))
    dead.close()  # the file stays, nobody listens: a killed run
    assert (tmp_path / SOCKET_NAME).exists()
    with pytest.raises(ControlError, match="no running soaktui run"):
        send_command(tmp_path, "status")

    async def main():
        async with ControlServer(tmp_path, Recorder()):
            return await call(tmp_path, "status")

    assert run(main())["ok"] is True


def test_live_socket_refuses_a_second_run(tmp_path):
    async def main():
        async with ControlServer(tmp_path, Recorder()):
            second = ControlServer(tmp_path, Recorder())
            with pytest.raises(ControlError, match=f"another run is using {tmp_path}"):
                await second.start()
            return await call(tmp_path, "status")  # the first one is untouched

    assert run(main())["ok"] is True


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    (tmp_path / SOCKET_NAME).write_text("mine")

    async def main():
        with pytest.raises(ControlError, match="exists and is not a socket"):
            await ControlServer(tmp_path, Recorder()).start()

    run(main())
    assert (tmp_path / SOCKET_NAME).read_text() == "mine"


def test_long_run_dir_falls_back_to_a_private_short_path(tmp_path):
    run_dir = tmp_path
    while len(os.fsencode(run_dir / SOCKET_NAME)) <= SUN_PATH_MAX:
        run_dir = run_dir / ("d" * 40)
    run_dir.mkdir(parents=True)
    handler = Recorder()

    async def main():
        async with ControlServer(run_dir, handler) as server:
            path = server.socket_path
            assert path is not None and path != run_dir / SOCKET_NAME
            assert (run_dir / POINTER_NAME).read_text().strip() == os.fspath(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            reply = await call(run_dir, "throttle", "+10")
        return path, reply

    path, reply = run(main())
    assert reply["ok"] is True and handler.calls == [("throttle", "+10")]
    assert not path.exists() and not path.parent.exists()
    assert not (run_dir / POINTER_NAME).exists()
    with pytest.raises(ControlError, match="no running soaktui run listens in"):
        send_command(run_dir, "status")


def test_client_times_out_on_a_handler_that_never_answers(tmp_path):
    async def main():
        gate = asyncio.Event()

        async def handler(command, arg):
            await gate.wait()
            return {}

        async with ControlServer(tmp_path, handler):
            with pytest.raises(ControlError, match="did not answer within 0.2 s"):
                await call(tmp_path, "status", timeout_s=0.2)
            gate.set()

    run(main())


@pytest.mark.unit
def test_normalize_and_apply_throttle():
    assert normalize_command("THROTTLE", " 75% ") == ("throttle", 75)
    assert normalize_command("quiet", True) == ("quiet", "on")
    assert apply_throttle(40, 90) == 40
    assert apply_throttle("+10", 95) == 100
    assert apply_throttle("-10", 5) == 1
    assert apply_throttle("-10", 50) == 40
    with pytest.raises(ValueError, match="unknown command 5"):
        normalize_command(5)
