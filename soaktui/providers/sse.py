"""An incremental Server-Sent Events parser, on bytes, for the streaming chat client.

It sits on the hot path between the socket and the timing code, so it works on raw bytes
(`bytes.find` / `split`, no per-byte loop) and decodes only `data` payloads. Reads may split
events anywhere: inside a CRLF pair, inside a multi-byte UTF-8 character (line splitting on bytes
is safe: UTF-8 never puts CR/LF bytes inside a character), or one read may carry many events.
Memory is bounded: a line longer than `max_line_bytes` is dropped as it streams past (never held
whole) and counted in `oversized_lines`, which the client reports as a malformed stream.

Follows the WHATWG event-stream rules: LF, CRLF and CR line endings; `:` comment lines; an
optional single space after the colon; multi-line `data` joined with "\\n"; `id` persists across
events; `retry` and unknown fields are ignored. `[DONE]` is just an event whose data is "[DONE]".

One exception to "unknown fields are ignored": llama.cpp's server up to about b6500 (mid-2025)
wrote a failure inside a stream as an `error: {json}` line, a field name the SSE rules do not know,
and then `data: [DONE]`, at HTTP 200 (`server_sent_event(sink, "error", ...)` in
examples/server/utils.hpp; PR #16109 moved it to `data: {"error": ...}`, present at b6628).
Ignoring it would turn a server error into an empty answer, so an `error` field line is dispatched
at once as an event named "error" whose data is the field's value (whether or not a blank line
follows it).
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. `event` is None when no `event:` field was given."""

    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Feed bytes as they arrive; get back the events completed by them."""

    def __init__(self, max_line_bytes: int = 1 << 20) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")
        self.max_line_bytes = max_line_bytes
        self.oversized_lines = 0  # lines dropped for exceeding max_line_bytes
        self._pending: list[bytes] = []  # pieces of the current, not yet terminated line
        self._pending_len = 0
        self._discarding = False  # inside an oversized line: drop bytes until its end
        self._after_cr = False  # the last byte fed was a CR line end; a leading LF belongs to it
        self._started = False  # for stripping a leading UTF-8 BOM
        self._data: list[bytes] = []  # data lines of the event being built
        self._event: str | None = None
        self._last_id: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an unterminated line currently held (at most max_line_bytes)."""
        return self._pending_len

    def feed(self, data: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if not data:
            return out
        if not self._started:
            self._started = True
            if data.startswith(_BOM):
                data = data[3:]
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
                if not data:
                    return out
        if b"\r" in data:
            self._after_cr = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        nl = data.find(b"\n")
        if nl < 0:
            self._hold(data)
            return out
        if self._pending_len or self._discarding:
            # This read ends the line held from earlier reads.
            head = data[:nl]
            data = data[nl + 1 :]
            if self._discarding:
                self._discarding = False
            elif self._pending_len + len(head) > self.max_line_bytes:
                self.oversized_lines += 1
            else:
                self._pending.append(head)
                self._lines((b"".join(self._pending),), out)
            self._pending.clear()
            self._pending_len = 0

        lines = data.split(b"\n")
        tail = lines.pop()
        if len(data) > self.max_line_bytes:  # only then can a complete line be too long
            limit = self.max_line_bytes
            kept = [line for line in lines if len(line) <= limit]
            self.oversized_lines += len(lines) - len(kept)
            lines = kept
        self._lines(lines, out)
        if tail:
            self._hold(tail)
        return out

    def finish(self) -> list[SSEEvent]:
        """End of stream: treat a held line as complete and dispatch a pending event."""
        out: list[SSEEvent] = []
        if self._pending_len and not self._discarding:
            self._lines((b"".join(self._pending),), out)
        self._pending.clear()
        self._pending_len = 0
        self._discarding = False
        self._after_cr = False
        if self._data:
            self._lines((b"",), out)
        self._event = None
        return out

    # -- internals -------------------------------------------------------------------------------
    def _hold(self, piece: bytes) -> None:
        if self._discarding:
            return
        if self._pending_len + len(piece) > self.max_line_bytes:
            self.oversized_lines += 1
            self._pending.clear()
            self._pending_len = 0
            self._discarding = True
            return
        self._pending.append(piece)
        self._pending_len += len(piece)

    def _lines(self, lines, out: list[SSEEvent]) -> None:  # noqa: ANN001 - list or tuple of bytes
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch
                if data:
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data.clear()
                    out.append(SSEEvent(payload.decode("utf-8", "replace"), self._event, self._last_id))
                self._event = None
                continue
            if line[:6] == b"data: ":  # the common case, first
                data.append(line[6:])
                continue
            if line[0] == 58:  # ":" comment
                continue
            colon = line.find(b":")
            if colon < 0:
                name, value = line, b""
            else:
                name, value = line[:colon], line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"error":  # llama.cpp's old in-stream error line (see above): its own event
                out.append(SSEEvent(value.decode("utf-8", "replace"), "error", self._last_id))
            elif name == b"id" and b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
            # "retry" and unknown fields are ignored
