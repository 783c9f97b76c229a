"""Just enough HTTP/1.1 for the simulator, on raw asyncio streams.

A web framework would put its own latency and CPU cost between the simulated model and the client,
and the simulator must never be the bottleneck of a benchmark or blur a timing it reports. So the
simulator reads requests (Content-Length or chunked bodies, keep-alive) and writes responses
(Content-Length bodies, chunked streams) itself; this module is that wire layer and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

MAX_HEAD_BYTES = 64 * 1024  # request line + headers
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
LAST_CHUNK = b"0\r\n\r\n"


class HttpError(Exception):
    """A request that cannot be read; answered with `status` and the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    body: bytes = b""
    recv_ns: int = 0  # perf_counter_ns() when the body had been read completely
    keep_alive: bool = True


async def read_request(reader: asyncio.StreamReader, max_body: int) -> Request | None:
    """Read one request; None on a clean end of the connection before a new request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # tolerate stray CRLF between requests
        lines.pop(0)
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    conn = headers.get("connection", "").lower()
    keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, max_body)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length < 0:
            raise HttpError(400, "bad Content-Length")
        if length > max_body:
            raise HttpError(413, f"request body over {max_body} bytes")
        try:
            body = await reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError:
            raise HttpError(400, "incomplete request body") from None
    return Request(
        method=method.upper(),
        path=unquote(url.path) or "/",
        query=query,
        version=version,
        headers=headers,
        body=body,
        recv_ns=time.perf_counter_ns(),
        keep_alive=keep_alive,
    )


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > max_body:
                raise HttpError(413, f"request body over {max_body} bytes")
            data = await reader.readexactly(size + 2)
            parts.append(data[:-2])
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise HttpError(400, "incomplete chunked body") from None


def response_head(
    status: int,
    content_type: str,
    *,
    length: int | None,
    keep_alive: bool,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """Status line and headers; `length=None` means a chunked body follows."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
        lines.append("Cache-Control: no-cache")
    else:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines.extend(f"{k}: {v}" for k, v in extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(
    status: int, obj: object, *, keep_alive: bool, extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    body = orjson.dumps(obj)
    return (
        response_head(status, "application/json", length=len(body), keep_alive=keep_alive, extra=extra) + body
    )


def raw_response(
    status: int, body: bytes, *, keep_alive: bool, content_type: str = "application/json"
) -> bytes:
    return response_head(status, content_type, length=len(body), keep_alive=keep_alive) + body


def frame(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)
