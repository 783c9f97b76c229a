"""A hostile OpenAI-compatible server, and a log as a hostile server leaves it (issue 14, items 6, 7, 10).

The server requires an API key, and everything it sends is made to hurt the terminal that shows it
or the file that stores it: its one model id carries terminal escapes, every other chat request
fails with HTTP 500 and an error body that echoes the request headers (the Authorization header,
so the key) among escapes, and the answers it does give echo the key and escapes too, as well as
text Rich would read as markup. A request without the key gets 401 with the same kind of body.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
from pathlib import Path
from typing import Any

import orjson

KEY = "hk-Zq7Wm2Xp9Lr4"  # no `sk-` and echoed once without "Bearer": only the configured key redacts it
OSC_TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CSI_CLEAR = "\x1b[2J"  # clears the screen
C1_CSI = "\x9b"  # the 8-bit CSI
HOSTILE = f"{OSC_TITLE} {CSI_CLEAR} bare \x1b escape, {C1_CSI}31m and a del \x7f [/INST] [bold]x [link=x]y"
MODEL = f"evil{OSC_TITLE}{CSI_CLEAR}{C1_CSI}model"
# What must never appear in a run's files or in anything soaktui prints: the controls raw, or as a
# JSON escape that decodes to them (an even run of backslashes before it: `\\u001b` is text).
_RAW = re.compile(rb"[\x07\x1b\x7f]|\xc2\x9b|(?<!\\)(?:\\\\)*\\u00(?:1b|07|7f|9b)", re.IGNORECASE)


def raw_escapes(data: bytes) -> list[bytes]:
    """The control characters (raw, or JSON-escaped) found in `data`."""
    return sorted({m.group() for m in _RAW.finditer(data)})


def _echo(handler: http.server.BaseHTTPRequestHandler) -> str:
    headers = "; ".join(f"{k}: {v}" for k, v in handler.headers.items())
    sent = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
    return f"{HOSTILE} -- you sent {headers} -- key={sent}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter: itertools.count

    def log_message(self, *a: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int) -> None:
        self._send(status, json.dumps({"error": {"message": _echo(self)}}, ensure_ascii=False).encode())

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self._error(401)
        return False

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, b'{"error": "not found"}')
        elif self._authorised():
            self._send(200, orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path != "/v1/chat/completions":
            self._send(404, b'{"error": "not found"}')
            return
        if not self._authorised():
            return
        if next(self.counter) % 2:
            self._error(500)
            return
        text = _echo(self)
        if not body.get("stream"):
            answer = {
                "id": "c1",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(str(body.get("messages"))), "completion_tokens": 8, "total_tokens": 9},
            }
            self._send(200, orjson.dumps(answer))
            return
        chunks = [{"role": "assistant", "content": piece} for piece in (text[:40], text[40:])]
        lines = [
            {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
            for d in chunks
        ]
        lines.append({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        sse = b"".join(b"data: " + orjson.dumps(x) + b"\n\n" for x in lines) + b"data: [DONE]\n\n"
        self._send(200, sse, "text/event-stream")


class HostileServer:
    """The server on a daemon thread (a context manager); `base_url` to point soaktui at."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"counter": itertools.count()})
        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._srv.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._srv.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._srv.shutdown()
        self._srv.server_close()


MARKUP_MODEL = ("sim-mistral-7b-instruct-v0.3", "mistral[/INST][b]7b")  # a model renamed: markup-like id


def hostile_log(source: Path, run_dir: Path) -> Path:
    """A copy of the log `source` in `run_dir` as a hostile server and a soaktui from before the
    neutralising pass leave it: every failure's message is HOSTILE, raw, and one model's id reads
    like markup (MARKUP_MODEL)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    out = []
    old, new = (m.encode() for m in MARKUP_MODEL)
    for line in source.read_bytes().replace(old, new).splitlines():
        e = orjson.loads(line)
        if e["kind"] in ("request", "scenario_result") and not e.get("ok"):
            for f in ("error", "reason"):
                if f in e:
                    e[f] = f"boom: {HOSTILE}"
        out.append(orjson.dumps(e))
    path = run_dir / "events.jsonl"
    path.write_bytes(b"\n".join(out) + b"\n")
    return path
