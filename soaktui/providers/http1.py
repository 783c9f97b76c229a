"""A lean HTTP/1.1 transport for httpx: plain-text connections to the servers soaktui measures.

Why: httpx's default transport (httpcore + h11 over anyio) does its framing work once per HTTP
chunk and yields to the event loop several times before a request reaches the wire. A local LLM
server sends one HTTP chunk per token, so the client's own cost grew with the model's speed: on
`bench/client_ceiling.py --engine 8,64` the engine spent 15-20 CPU s per million tokens, drove 0.8
of a bare httpx loop, and requests waited 20-400 ms inside the client at the start of a batch
(issue 15). On this transport: about 5 CPU s per million tokens and well under a millisecond. This
transport keeps httpx's API (requests, responses, exceptions, the `trace` extension the client
stamps "sent" with) and does the HTTP/1.1 work in an asyncio Protocol:

- A request on an idle pooled connection is written in the caller's first step, with no await in
  between: "sent" is stamped just before `transport.write`.
- `data_received` decodes every HTTP chunk of one socket read at once and hands the body bytes over
  joined, so the client parses one piece per read rather than one per token.
- Framing follows RFC 9112 §6: no body for HEAD, 1xx, 204 and 304; chunked when Transfer-Encoding
  says so (chunk extensions and trailers are read and dropped); else Content-Length; else the body
  runs to the close of the connection (which is then not reused).
- A connection goes back to the pool only after a complete body on HTTP/1.1 without
  `Connection: close`; one that closed while idle leaves the pool. A pooled connection that the server
  closed just before our request was written fails with `RemoteProtocolError("Server disconnected
  without sending a response.")` (httpcore's wording), which the client retries once on a new one.
- Reads pause when more than READ_HIGH_WATER bytes wait for a slow consumer (memory stays bounded).

Timeouts come from the request's `timeout` extension as in httpx: connect -> ConnectTimeout, read
(silence between two socket reads, or for the response head) -> ReadTimeout, write (the body not
taken by the server) -> WriteTimeout, pool (no free connection) -> PoolTimeout.

TLS and proxies are not handled here: the client keeps httpx's own transport for `https://` URLs
and when a proxy from the environment applies (see `lean_applies`).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from soaktui.providers.types import is_loopback

MAX_HEAD_BYTES = 64 * 1024  # status line + headers; h11's default limit is 16 KiB, servers send < 1 KiB
MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
READ_HIGH_WATER = 1 << 18  # body bytes waiting for the consumer before reads pause (resumed when taken)
NO_BODY_STATUS = (204, 304)

NO_RESPONSE = "Server disconnected without sending a response."  # httpcore's wording: the client retries it

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _LENGTH, _UNTIL_CLOSE, _DONE = range(8)


TRANSPORTS = ("auto", "lean", "httpx")  # the setting http_transport


def lean_applies(url: str, *, trust_env: bool, setting: str = "auto") -> bool:
    """True when requests to `url` use this transport under the setting http_transport: never for
    https; always for plain http with "lean"; with "auto" unless a proxy from the environment would
    carry them (a loopback server never goes via a proxy: the client turns trust_env off for it)."""
    if setting not in TRANSPORTS:
        raise ValueError(f"http_transport must be {', '.join(TRANSPORTS)}, not {setting!r}")
    if setting == "httpx" or not url.lower().startswith("http://"):
        return False
    if setting == "lean" or not trust_env or is_loopback(url):
        return True
    proxies = urllib.request.getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    host = httpx.URL(url).host
    return bool(urllib.request.proxy_bypass(host))


class _Connection(asyncio.Protocol):
    """One keep-alive TCP connection; at most one request on it at a time."""

    def __init__(self, pool: Http1Transport, key: tuple[str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None  # what ended the connection under a response
        self.in_use = False
        self.reusable = True
        self.state = _DONE
        self.buf = bytearray()  # undecoded bytes
        self.body: list[bytes] = []  # decoded body bytes not yet taken by the consumer
        self.body_len = 0
        self.remaining = 0  # bytes left in the current chunk or Content-Length body
        self.head: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None
        self.head_only = False  # HEAD request: no body whatever the headers say
        self.got_byte = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.counted = True  # holds one of the pool's places until lost

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use or self.state == _DONE:  # bytes nobody asked for: this connection is spoilt
            self.reusable = False
            if not self.in_use and self.transport is not None:
                self.transport.close()
            return
        self.got_byte = True
        if self.buf:
            self.buf += data
        else:
            self.buf = bytearray(data)
        try:
            self._decode()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)
            return
        if self.body_len > READ_HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: HTTP/1.1 has no half-closed connections to keep

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.in_use and self.state != _DONE:
            if self.state == _UNTIL_CLOSE and exc is None:
                self.state = _DONE  # the close is the end of this body
            elif self.head is None and not self.got_byte:
                self.error = httpx.RemoteProtocolError(NO_RESPONSE)
            elif exc is not None:
                self.error = httpx.ReadError(str(exc) or type(exc).__name__)
            else:
                self.error = httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
        self._wake()
        ww = self.write_waiter
        if ww is not None and not ww.done():
            ww.set_exception(httpx.WriteError(str(exc) if exc else "connection closed while writing"))
        self.pool._lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        ww = self.write_waiter
        if ww is not None and not ww.done():
            ww.set_result(None)

    # -- decoding --------------------------------------------------------------------------------
    def _decode(self) -> None:
        """Consume as much of `buf` as the state allows; decoded body bytes go to `body`."""
        buf = self.buf
        pos = 0
        n = len(buf)
        body = self.body
        while pos < n:
            state = self.state
            if state in (_CHUNK_DATA, _LENGTH):
                take = min(self.remaining, n - pos)
                body.append(bytes(buf[pos : pos + take]))
                self.body_len += take
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _CHUNK_END if state == _CHUNK_DATA else _DONE
            elif state == _CHUNK_SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > MAX_CHUNK_LINE:
                        raise httpx.RemoteProtocolError("chunk size line too long")
                    break
                line = bytes(buf[pos:end]).split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError(f"bad chunk size line: {line[:40]!r}") from None
                if size < 0:
                    raise httpx.RemoteProtocolError("negative chunk size")
                pos = end + 2
                if size == 0:
                    self.state = _TRAILERS
                else:
                    self.remaining = size
                    self.state = _CHUNK_DATA
            elif state == _CHUNK_END:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
                pos += 2
                self.state = _CHUNK_SIZE
            elif state == _TRAILERS:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD_BYTES:
                        raise httpx.RemoteProtocolError("trailers too long")
                    break
                empty = end == pos
                pos = end + 2
                if empty:
                    self.state = _DONE
            elif state == _UNTIL_CLOSE:
                body.append(bytes(buf[pos:]))
                self.body_len += n - pos
                pos = n
            elif state == _HEAD:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD_BYTES:
                        raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                    break
                self._take_head(bytes(buf[pos:end]))
                pos = end + 4
            else:  # _DONE with bytes left: the server sent more than the response
                self.reusable = False
                pos = n
        if pos >= n:
            self.buf = bytearray()
        elif pos:
            del buf[:pos]

    def _take_head(self, raw: bytes) -> None:
        """Parse a status line and headers; choose the body's framing. A 1xx head is skipped."""
        lines = raw.split(b"\r\n")
        status_line = lines[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise httpx.RemoteProtocolError(f"bad status code: {parts[1][:20]!r}") from None
        if not 100 <= status <= 999:
            raise httpx.RemoteProtocolError(f"bad status code: {status}")
        if 100 <= status < 200:  # 100 Continue and friends: the real head follows
            self.state = _HEAD
            return
        reason = parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        chunked = False
        length: int | None = None
        close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line: {line[:60]!r}")
            value = value.strip()
            headers.append((name, value))
            lname = name.lower()
            if lname == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lname == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise httpx.RemoteProtocolError(f"bad Content-Length: {value[:20]!r}") from None
                if length < 0:
                    raise httpx.RemoteProtocolError("negative Content-Length")
            elif lname == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    close = True
                elif b"keep-alive" in tokens and parts[0] == b"HTTP/1.0":
                    close = False
        if close:
            self.reusable = False
        self.head = (status, reason, headers)
        if self.head_only or status in NO_BODY_STATUS:
            self.state = _DONE
        elif chunked:
            self.state = _CHUNK_SIZE
        elif length is not None:
            self.remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            self.state = _UNTIL_CLOSE
            self.reusable = False

    # -- waiting ---------------------------------------------------------------------------------
    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        self.reusable = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    async def wait(self, timeout: float | None, what: str) -> None:
        """Until data, the end of the body or an error arrives; ReadTimeout after `timeout` s."""
        loop = asyncio.get_running_loop()
        w = self.waiter = loop.create_future()
        handle = None
        if timeout is not None:
            handle = loop.call_later(timeout, _expire, w, what, timeout)
        try:
            await w
        finally:
            self.waiter = None
            if handle is not None:
                handle.cancel()

    def take_body(self) -> bytes:
        body = self.body
        if not body:
            return b""
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.body_len = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def usable(self) -> bool:
        """Open, and fit for another request."""
        t = self.transport
        return self.reusable and not self.closed and t is not None and not t.is_closing()

    def start(self, head_only: bool) -> None:
        self.in_use = True
        self.state = _HEAD
        self.head = None
        self.head_only = head_only
        self.got_byte = False
        self.error = None
        self.body.clear()
        self.body_len = 0
        if self.buf:  # bytes from before this request: not ours to read
            self.reusable = False


def _expire(w: asyncio.Future[None], what: str, timeout: float) -> None:
    if not w.done():
        w.set_exception(httpx.ReadTimeout(f"no {what} within {timeout:g} s"))


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives: one bytes object per socket read (all its chunks joined)."""

    def __init__(self, conn: _Connection, read_timeout: float | None, request: httpx.Request) -> None:
        self.conn = conn
        self.read_timeout = read_timeout
        self.request = request
        self.released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            data = conn.take_body()
            if data:
                yield data
                continue
            if conn.state == _DONE:
                break
            if conn.error is not None:
                raise _bind(conn.error, self.request)
            if conn.closed:
                raise httpx.ReadError("connection closed", request=self.request)
            try:
                await conn.wait(self.read_timeout, "body bytes")
            except httpx.ReadTimeout as exc:
                raise _bind(exc, self.request) from None
        self._release()

    def _release(self) -> None:
        if not self.released:
            self.released = True
            self.conn.pool._release(self.conn)

    async def aclose(self) -> None:
        if not self.released:
            if self.conn.state != _DONE:  # body not read to its end: the connection cannot be reused
                self.conn.reusable = False
            self._release()


def _bind(exc: Exception, request: httpx.Request) -> Exception:
    """`exc` carrying the request it failed, as httpx's own errors do."""
    if isinstance(exc, httpx.RequestError):
        exc.request = request
    return exc


class Http1Transport(httpx.AsyncBaseTransport):
    """A pool of keep-alive HTTP/1.1 connections, at most `max_connections` open at once."""

    def __init__(self, *, max_connections: int = 64) -> None:
        self.max_connections = max_connections
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # -- the pool --------------------------------------------------------------------------------
    async def _acquire(self, key: tuple[str, int], timeouts: dict[str, Any], trace: Any) -> _Connection:
        while True:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.usable:
                    return conn
            if self._open < self.max_connections:
                return await self._connect(key, timeouts, trace)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeouts.get("pool"))
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout("no free connection in the pool") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, key: tuple[str, int], timeouts: dict[str, Any], trace: Any) -> _Connection:
        self._open += 1
        conn = _Connection(self, key)
        host, port = key
        try:
            if trace is not None:
                await trace("connection.connect_tcp.started", {"host": host, "port": port})
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.create_connection(lambda: conn, host, port), timeouts.get("connect"))
            if trace is not None:
                await trace("connection.connect_tcp.complete", {})
        except asyncio.TimeoutError:
            self._lost(conn)
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            self._lost(conn)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        except BaseException:
            self._lost(conn)
            raise
        return conn

    def _wake_one(self) -> None:
        """A place or an idle connection came free: the longest waiter tries again."""
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def _gone(self) -> None:
        self._open -= 1
        self._wake_one()

    def _release(self, conn: _Connection) -> None:
        conn.in_use = False
        if conn.usable and not self._closed and conn.state == _DONE:
            self._idle.setdefault(conn.key, []).append(conn)
            self._wake_one()
        elif conn.transport is not None and not conn.closed:
            conn.transport.close()  # connection_lost will free its place

    def _lost(self, conn: _Connection) -> None:
        """`conn` closed (or never opened): its place in the pool is free, once."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._gone()

    # -- httpx ----------------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"the lean transport speaks plain http, not {url.scheme!r}")
        key = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        trace = request.extensions.get("trace")
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed request body: read it whole (ours are small)
            body = await request.aread()
        target = url.raw_path or b"/"
        head = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        data = b"".join(head) + body

        conn = await self._acquire(key, timeouts, trace)
        conn.start(head_only=request.method == "HEAD")
        try:
            if trace is not None:
                await trace("http11.send_request_headers.started", {"request": request})
            if conn.closed or conn.transport is None:
                raise conn.error or httpx.RemoteProtocolError(NO_RESPONSE)
            conn.transport.write(data)
            if conn.write_paused:
                await self._drain(conn, timeouts.get("write"))
            while conn.head is None:
                if conn.error is not None:
                    raise conn.error
                if conn.closed:
                    raise httpx.RemoteProtocolError(NO_RESPONSE)
                await conn.wait(timeouts.get("read"), "response head")
        except BaseException as exc:
            conn.reusable = False
            self._release(conn)
            if isinstance(exc, Exception):
                _bind(exc, request)
            raise
        status, reason, headers = conn.head
        if trace is not None:
            await trace("http11.receive_response_headers.complete", {"request": request})
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(conn, timeouts.get("read"), request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _drain(self, conn: _Connection, timeout: float | None) -> None:
        """Wait until the server takes what we wrote; WriteTimeout after `timeout` s."""
        w = conn.write_waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(w, timeout)
        except asyncio.TimeoutError:
            raise httpx.WriteTimeout(f"the server took no request bytes for {timeout:g} s") from None
        finally:
            conn.write_waiter = None

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let connection_lost run before the loop goes away
