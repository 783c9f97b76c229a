"""The run's control socket: how `soaktui ctl` and the dashboard process steer a running engine.

The engine runs in its own process (so the UI cannot bend its timings); everything that steers it
arrives here. A run listens on a Unix socket in its run directory, `RUN_DIR/control.sock`, made
0600 before it accepts anything, so only its owner can use it. The protocol is one JSON line per
request, `{"command": str, "arg": ...}`, answered by one JSON line `{"ok": bool, "message": str,
"state": {...}}`; a connection may carry several requests in turn.

This module validates commands and arguments and answers malformed requests itself; the engine's
handler only sees valid, normalised ones (`normalize_command`) and does the work. Whatever the bytes
(not UTF-8, not JSON, nested past the parser's depth, a command that is an object or a list, an
argument of the wrong type), the client gets an `ok: false` reply naming the problem; nothing a
client sends raises in the engine (tests/test_control_fuzz.py fuzzes the protocol). Everything is
bounded: a request line over 64 KiB or a client silent for 5 s is dropped, and only a few clients
are served at once.

Unix socket paths are limited to about 107 bytes. When RUN_DIR/control.sock would be longer, the
socket goes into a private temp directory and its path is written to RUN_DIR/control.path, which
the client reads first.

Nothing planted in the run directory is followed: a symlink (or any non-socket) at control.sock
stops the socket from starting, the pointer is replaced atomically (report/atomic.py), and a stale
pointer's socket is removed only when it sits in a private directory soaktui made for this user (a
planted control.path naming some other socket must not make a run, perhaps root's, unlink it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from soaktui.errors import SetupError
from soaktui.log import rundir
from soaktui.log.textsafe import neutralise
from soaktui.report.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

SOCKET_NAME = rundir.CONTROL_SOCKET
POINTER_NAME = rundir.CONTROL_POINTER
PRIVATE_PREFIX, PRIVATE_SOCKET = "soaktui-", "c.sock"  # the socket when the run directory's path is too long
MAX_LINE = 64 * 1024
IDLE_TIMEOUT_S = 5.0
MAX_CLIENTS = 8
# sun_path is 108 bytes on Linux, 104 on macOS and the BSDs, both including the final NUL.
SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103

COMMANDS: Mapping[str, str] = {
    "pause": "pause after the in-flight test",
    "resume": "resume after pause",
    "skip": "move to the next model now",
    "throttle": "set the duty cycle: PCT (1-100) or a change such as +10 / -10",
    "quiet": "quiet hours: on, off or toggle (the default)",
    "stop": "stop gracefully and write the report",
    "status": "report the run's state",
}

Handler = Callable[[str, Any], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]

_THROTTLE = re.compile(r"([+-])?\s*(\d{1,3})\s*%?")


class ControlError(SetupError):
    """The control socket cannot be used (nothing listening, another run, no answer...)."""


# --------------------------------------------------------------------------- commands


def normalize_command(command: object, arg: object = None) -> tuple[str, Any]:
    """(command, arg) checked and normalised, or ValueError with a message for the user.

    throttle -> an int 1..100 (absolute) or a str "+N" / "-N" (relative; see `apply_throttle`);
    quiet -> "on" | "off" | "toggle" (no arg = toggle); the other commands take no argument.
    """
    # The type first: an object or a list sent as the command is not hashable (`in` would raise).
    name = command.strip().lower() if isinstance(command, str) else None
    if name not in COMMANDS:
        raise ValueError(f"unknown command {_shape(command)}; commands: {', '.join(COMMANDS)}")
    if name == "throttle":
        return name, _throttle_arg(arg)
    if name == "quiet":
        return name, _quiet_arg(arg)
    if arg is not None and arg != "":
        raise ValueError(f"{name} takes no argument (got {_shape(arg)})")
    return name, None


def _shape(value: object, limit: int = 60) -> str:
    """A short repr of what a client sent, for an error reply: bounded, whatever its size or depth."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deep nesting; an int over repr's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _throttle_arg(arg: object) -> int | str:
    expected = f"throttle expects a percentage from 1 to 100 or a change such as +10 / -10, got {_shape(arg)}"
    if isinstance(arg, int) and not isinstance(arg, bool):
        if 1 <= arg <= 100:
            return arg
        raise ValueError(expected)
    m = _THROTTLE.fullmatch(arg.strip()) if isinstance(arg, str) else None
    if m is None:
        raise ValueError(expected)
    sign, amount = m.group(1), int(m.group(2))
    if sign:
        if not 1 <= amount <= 99:
            raise ValueError(expected)
        return f"{sign}{amount}"
    if not 1 <= amount <= 100:
        raise ValueError(expected)
    return amount


def _quiet_arg(arg: object) -> str:
    if arg is None or arg == "":
        return "toggle"
    if isinstance(arg, bool):
        return "on" if arg else "off"
    value = arg.strip().lower() if isinstance(arg, str) else None
    if value not in ("on", "off", "toggle"):
        raise ValueError(f"quiet expects on, off or toggle, got {_shape(arg)}")
    return value


def apply_throttle(arg: int | str, current: int) -> int:
    """The new throttle for a normalised throttle arg: absolute, or current +/- N clamped to 1..100."""
    if isinstance(arg, int):
        return arg
    return max(1, min(100, current + int(arg)))


# --------------------------------------------------------------------------- paths


def _too_long(path: Path) -> bool:
    return len(os.fsencode(path)) > SUN_PATH_MAX


def control_socket_path(run_dir: Path) -> Path:
    """Where the run in `run_dir` listens: RUN_DIR/control.path's content if present, else control.sock."""
    run_dir = Path(run_dir)
    try:
        with open(run_dir / POINTER_NAME, "rb") as f:
            target = f.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        target = ""
    return Path(target) if target else run_dir / SOCKET_NAME


def _answers(path: Path) -> bool:
    """True when something accepts connections on the Unix socket `path` (a live run)."""
    if _too_long(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(os.fspath(path))
        except PermissionError:
            return True  # someone else's live socket
        except OSError:
            return False
        return True


def _private_socket(path: Path) -> bool:
    """True when `path` is where `_private_path` puts a socket: c.sock in a soaktui-* directory
    (not a symlink) owned by this user and closed to others."""
    if path.name != PRIVATE_SOCKET or not path.parent.name.startswith(PRIVATE_PREFIX):
        return False
    try:
        st = path.parent.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------- server


def _reply(ok: bool, message: str, state: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"ok": ok, "message": message, "state": dict(state or {})}


def _encode(reply: Mapping[str, Any]) -> bytes:
    text = json.dumps(reply, default=str, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace") + b"\n"  # a lone surrogate must not raise


class ControlServer:
    """Listens on RUN_DIR/control.sock and passes valid commands to `handler(command, arg)`.

    `path` is the run directory or the socket path inside it (RUN_DIR/control.sock). The handler
    may be sync or async and returns {"ok", "message", "state"} (missing keys: ok True, "" and {});
    handlers run one at a time and should return quickly (a slow one makes clients time out).
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_line: int = MAX_LINE,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        path = Path(path)
        self.run_dir = path.parent if path.name == SOCKET_NAME else path
        self._handler = handler
        self._idle_timeout_s = idle_timeout_s
        self._max_line = max_line
        self._max_clients = max_clients
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: Path | None = None
        self._socket_ino: int | None = None
        self._temp_dir: Path | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    @property
    def socket_path(self) -> Path | None:
        """The socket actually bound (None before start / after close)."""
        return self._socket_path

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if not hasattr(socket, "AF_UNIX"):
            raise ControlError("the control socket needs Unix domain sockets, which this system lacks")
        if self._server is not None:
            raise RuntimeError("ControlServer already started")
        run_dir = self.run_dir
        if not run_dir.is_dir():
            raise ControlError(f"run directory {run_dir} does not exist")
        direct, pointer = run_dir / SOCKET_NAME, run_dir / POINTER_NAME
        previous = control_socket_path(run_dir)
        for candidate in dict.fromkeys((previous, direct)):
            if _is_socket(candidate) and _answers(candidate):
                raise ControlError(f"another run is using {run_dir} (its control socket {candidate} answers)")
        self._remove_stale(direct, must_be_socket=True)
        if previous != direct and _private_socket(previous):
            self._remove_stale(previous, must_be_socket=False)
        with contextlib.suppress(FileNotFoundError):
            pointer.unlink()

        path = direct
        if _too_long(direct):
            path = self._private_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(path))
            os.chmod(path, 0o600)  # before listen(): nobody can connect until the mode is set
            self._socket_path, self._socket_ino = path, path.lstat().st_ino
            sock.listen(self._max_clients)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=self._max_line)
        except OSError as exc:
            sock.close()
            self._cleanup_files()
            raise ControlError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
        if path != direct:
            atomic_write_bytes(pointer, os.fsencode(path) + b"\n", fsync=False)

    @staticmethod
    def _remove_stale(path: Path, *, must_be_socket: bool) -> None:
        """Remove a dead run's socket file; refuse to touch anything that is not a socket."""
        if _is_socket(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        elif must_be_socket and os.path.lexists(path):
            raise ControlError(f"{path} exists and is not a socket; move it away to start a run here")

    def _private_path(self) -> Path:
        for base in (None, "/tmp"):
            temp = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=base))  # mode 0700
            path = temp / PRIVATE_SOCKET
            if not _too_long(path):
                self._temp_dir = temp
                return path
            temp.rmdir()
        raise ControlError(f"no short enough path for a control socket (run directory {self.run_dir})")

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        if clients:
            await asyncio.gather(*clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        path = self._socket_path
        if path is not None:
            with contextlib.suppress(OSError):
                if path.lstat().st_ino == self._socket_ino:  # still ours, not a newer run's
                    path.unlink()
            pointer = self.run_dir / POINTER_NAME
            if control_socket_path(self.run_dir) == path and pointer.exists():
                with contextlib.suppress(OSError):
                    pointer.unlink()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._socket_path = self._socket_ino = self._temp_dir = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            if len(self._clients) >= self._max_clients or task is None:
                await self._send(writer, _reply(False, "too many control clients; try again"))
                return
            self._clients.add(task)
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self._idle_timeout_s)
                except asyncio.TimeoutError:
                    return  # silent client
                except ValueError:  # the line is over the limit
                    await self._send(
                        writer, _reply(False, f"request line longer than {self._max_line} bytes")
                    )
                    return
                if not line.strip():
                    if not line:
                        return  # EOF
                    continue
                await self._send(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            return  # the client went away or stopped reading our answer
        except asyncio.CancelledError:
            # close() cancels connections; end normally, since asyncio (3.11) logs a cancelled
            # client_connected_cb task as an error.
            return
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, reply: Mapping[str, Any]) -> None:
        writer.write(_encode(reply))
        await asyncio.wait_for(writer.drain(), self._idle_timeout_s)

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line; never raises (a client's bytes must not reach a traceback)."""
        try:
            return await self._answer(line)
        except Exception as exc:  # a gap in the validation below: answer it, keep serving
            log.exception("control request failed")
            return _reply(False, f"internal error: {type(exc).__name__}")

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            request = None
        if not isinstance(request, dict) or "command" not in request:
            return _reply(False, 'bad request: expected one JSON line {"command": "...", "arg": ...}')
        try:
            command, arg = normalize_command(request["command"], request.get("arg"))
        except ValueError as exc:
            return _reply(False, str(exc))
        async with self._lock:
            try:
                result = self._handler(command, arg)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                return _reply(False, f"{command} failed: {type(exc).__name__}: {exc}")
        if not isinstance(result, Mapping):
            return _reply(False, f"{command}: the run returned no answer")
        state = result.get("state")
        return _reply(
            bool(result.get("ok", True)),
            str(result.get("message", "")),
            state if isinstance(state, Mapping) else {},
        )


# --------------------------------------------------------------------------- client


def send_command(run_dir: Path, command: str, arg: object = None, timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one command to the run in `run_dir` and return its reply {"ok", "message", "state"}.

    Blocking (plain socket). Raises ControlError when nothing listens or no valid answer comes
    within `timeout_s`; a refused command is a reply with ok False, not an exception.
    """
    run_dir = Path(run_dir)
    if not hasattr(socket, "AF_UNIX"):
        raise ControlError("the control socket needs Unix domain sockets, which this system lacks")
    if not run_dir.is_dir():
        raise ControlError(f"{run_dir} is not a run directory (it does not exist)")
    path = control_socket_path(run_dir)
    not_running = f"no running soaktui run listens in {run_dir} (the run has finished or was killed)"
    if _too_long(path):  # no run could have bound it; a live run would have left control.path
        raise ControlError(not_running)
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(not_running) from None
        except PermissionError:
            raise ControlError(f"permission denied on {path}: the run belongs to another user") from None
        except TimeoutError:
            raise ControlError(
                f"the run in {run_dir} did not accept a connection within {timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise ControlError(f"{not_running}: {exc.strerror or exc}") from None
        try:
            try:
                s.sendall(_encode({"command": command, "arg": arg}))
            except (BrokenPipeError, ConnectionResetError):
                pass  # a server that turns us away answers and closes before reading: read its reply
            data = _read_line(s, deadline)
        except TimeoutError:
            raise ControlError(f"the run in {run_dir} did not answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise ControlError(f"the run in {run_dir} closed the connection: {exc.strerror or exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError(f"the run in {run_dir} sent an answer that is not a control reply: {data[:200]!r}")
    reply.setdefault("message", "")
    reply.setdefault("state", {})
    return neutralise(reply)  # the state quotes servers (model ids): shown by ctl status and the viewer


def _read_line(s: socket.socket, deadline: float) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        s.settimeout(remaining)
        chunk = s.recv(65536)
        if not chunk:
            if buf:
                break
            raise ConnectionResetError(0, "closed without an answer")
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ConnectionResetError(0, f"answer longer than {MAX_LINE} bytes")
    return bytes(buf.split(b"\n", 1)[0])
