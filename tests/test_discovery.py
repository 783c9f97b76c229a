"""Discovery against real loopback HTTP servers that answer with recorded payloads.

The payload server below is a small raw-asyncio HTTP/1.1 server in its own thread (a real socket,
real HTTP), so the client side of discovery runs exactly as it does against LM Studio, Ollama,
llama.cpp or vLLM. The parsers are also fed the recorded payloads directly.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soaktui.providers import discovery, native
from soaktui.providers.discovery import DEFAULT_PORTS, discover, no_servers_message, normalise_base_url
from soaktui.providers.selection import format_selection, select_models

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "discovery"

Response = tuple[int, str, bytes]
Handler = Callable[[str, str, dict[str, str], bytes], "Response | str"]
HANG = "hang"  # never answer
CLOSE = "close"  # close the connection without an answer


def payload(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def js(obj: Any, status: int = 200) -> Response:
    return status, "application/json", orjson.dumps(obj)


class PayloadServer:
    """A real HTTP server on a free loopback port, answering from a route table, in its own thread."""

    def __init__(self, routes: dict[tuple[str, str], Any], default: Any = None) -> None:
        self.routes = routes
        self.default = default if default is not None else (404, "text/plain", b"404 page not found")
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PayloadServer:
        self._thread.start()
        assert self._ready.wait(5), "payload server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            self.requests.append((method, target, headers, body))
            answer = self.routes.get((method, target), self.default)
            if callable(answer):
                answer = answer(method, target, headers, body)
            if answer == HANG:
                assert self._stop is not None
                await self._stop.wait()
                return
            if answer == CLOSE:
                return
            status, ctype, data = answer
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def serve():
    servers: list[PayloadServer] = []

    def start(routes: dict[tuple[str, str], Any], default: Any = None) -> PayloadServer:
        srv = PayloadServer(routes, default).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def run(coro):
    return asyncio.run(coro)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- server personalities built from the recorded payloads ------------------------------------

LMSTUDIO_UNKNOWN = js({"error": "Unexpected endpoint or method. (GET /unknown)"})


def lmstudio_v0_routes() -> dict:
    return {
        ("GET", "/v1/models"): js(payload("lmstudio_v1_models.json")),
        ("GET", "/api/v0/models"): js(payload("lmstudio_api_v0_models.json")),
    }


def lmstudio_v1_routes() -> dict:
    v1 = payload("lmstudio_api_v1_models.json")
    # JIT loading off: /v1/models lists only some of the downloaded models.
    served = [m["key"] for m in v1["models"] if m["key"] != "llama-3.3-70b-instruct"]
    return {
        ("GET", "/v1/models"): js({"object": "list", "data": [{"id": k, "object": "model"} for k in served]}),
        ("GET", "/api/v1/models"): js(v1),
        ("GET", "/api/v0/models"): js(payload("lmstudio_api_v0_models.json")),
    }


def ollama_routes() -> dict:
    shows = {
        "codellama:13b": payload("ollama_api_show_codellama_13b.json"),
        "llama3:latest": payload("ollama_api_show_llama3_latest.json"),
        "nomic-embed-text:latest": payload("ollama_api_show_nomic-embed-text_latest.json"),
        "mixtral:8x7b": payload("ollama_api_show_mixtral_8x7b.json"),
    }

    def show(method, target, headers, body):
        name = json.loads(body).get("model")
        if name not in shows:
            return js({"error": f"model '{name}' not found"}, 404)
        return js(shows[name])

    return {
        ("GET", "/"): (200, "text/plain; charset=utf-8", b"Ollama is running"),
        ("GET", "/v1/models"): js(payload("ollama_v1_models.json")),
        ("GET", "/api/tags"): js(payload("ollama_api_tags.json")),
        ("GET", "/api/ps"): js(payload("ollama_api_ps.json")),
        ("GET", "/api/version"): js(payload("ollama_api_version.json")),
        ("POST", "/api/show"): show,
    }


def llamacpp_routes() -> dict:
    return {
        ("GET", "/v1/models"): js(payload("llamacpp_v1_models.json")),
        ("GET", "/props"): js(payload("llamacpp_props.json")),
    }


LLAMACPP_404 = js({"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}, 404)


def vllm_routes() -> dict:
    return {
        ("GET", "/v1/models"): js(payload("vllm_v1_models.json")),
        ("GET", "/version"): js(payload("vllm_version.json")),
    }


VLLM_404 = js({"detail": "Not Found"}, 404)


def by_id(provider) -> dict:
    return {m.id: m for m in provider.models}


# --- parsers fed the recorded payloads ---------------------------------------------------------


@pytest.mark.unit
def test_parse_lmstudio_v1_payload():
    items = native.lmstudio_v1_list(payload("lmstudio_api_v1_models.json"))
    assert items is not None
    models = {m.id: m for m in native.parse_lmstudio_v1(items, "lmstudio@h:1")}
    gemma = models["gemma-3-270m-it-qat"]
    assert gemma.type == "llm" and gemma.size_bytes == 241410208 and not gemma.size_estimated
    assert gemma.params_b == pytest.approx(0.27) and gemma.quantization == "Q4_0"
    assert gemma.loaded is True and gemma.context_length == 4096  # the loaded instance's context
    assert gemma.source["context_length"].endswith("loaded_instances[].config.context_length")
    assert gemma.tool_use is False and gemma.family == "gemma3"
    assert gemma.source["size_bytes"] == "/api/v1/models size_bytes"
    emb = models["text-embedding-nomic-embed-text-v1.5-embedding"]
    assert emb.type == "embedding" and emb.params_b is None and emb.loaded is False
    qwen = models["qwen2.5-7b-instruct"]
    assert qwen.tool_use is True and "tool_use" in qwen.capabilities
    assert qwen.loaded is False and qwen.context_length == 32768
    assert qwen.source["context_length"] == "/api/v1/models max_context_length"


@pytest.mark.unit
def test_parse_lmstudio_v0_payload_estimates_size_from_name_and_quant():
    items = native.lmstudio_v0_list(payload("lmstudio_api_v0_models.json"))
    assert items is not None
    models = {m.id: m for m in native.parse_lmstudio_v0(items, "lmstudio@h:1")}
    llama = models["meta-llama-3.1-8b-instruct"]
    assert llama.loaded is True and llama.context_length == 4096 and llama.tool_use is True
    assert llama.params_b == 8.0 and llama.source["params_b"] == "name"
    assert llama.size_estimated is True and llama.size_bytes == int(8e9 * 4.89 / 8)
    vlm = models["qwen2-vl-7b-instruct"]
    assert vlm.type == "vlm" and vlm.quantization == "4bit" and vlm.quant_bits == 4.5
    assert vlm.loaded is False and vlm.tool_use is None  # v0 without `capabilities`: unknown
    assert models["text-embedding-nomic-embed-text-v1.5"].type == "embedding"


@pytest.mark.unit
def test_parse_ollama_payloads():
    tags = native.ollama_tags_list(payload("ollama_api_tags.json"))
    assert tags is not None
    shows = {
        "codellama:13b": payload("ollama_api_show_codellama_13b.json"),
        "llama3:latest": payload("ollama_api_show_llama3_latest.json"),
        "nomic-embed-text:latest": payload("ollama_api_show_nomic-embed-text_latest.json"),
        "mixtral:8x7b": payload("ollama_api_show_mixtral_8x7b.json"),
    }
    ps = payload("ollama_api_ps.json")
    models = {m.id: m for m in native.parse_ollama(tags, "ollama@h:2", shows, ps, "0.12.6")}
    llama3 = models["llama3:latest"]
    assert llama3.size_bytes == 3825819519 and llama3.source["size_bytes"] == "/api/tags size"
    assert llama3.params_b == pytest.approx(8.03) and llama3.quantization == "Q4_0"
    assert llama3.loaded is True and llama3.context_length == 4096  # runtime context from /api/ps
    assert llama3.source["context_length"] == "/api/ps context_length"
    assert llama3.tool_use is False and llama3.type == "llm"
    code = models["codellama:13b"]
    # Not loaded: it will run at the server's default context (4096 on 0.12.6), not its training window.
    assert code.loaded is False and code.context_trained == 16384 and code.context_length == 4096
    assert code.source["context_trained"] == "/api/show model_info.llama.context_length"
    assert code.source["context_length"] == "Ollama 0.12.6 default (OLLAMA_CONTEXT_LENGTH unset)"
    assert not code.context_is_floor
    # From 0.15.5 the default follows the GPU's memory: only its floor (4096) is known until loaded.
    later = {m.id: m for m in native.parse_ollama(tags, "ollama@h:2", shows, ps, "0.16.0")}
    assert later["codellama:13b"].context_is_floor and later["codellama:13b"].context_length == 4096
    assert not later["llama3:latest"].context_is_floor  # loaded: /api/ps says the real one
    emb = models["nomic-embed-text:latest"]
    # The Modelfile's num_ctx 8192, capped at the 2048 training window as Ollama >= 0.9.3 does.
    assert emb.type == "embedding" and emb.context_length == 2048
    assert emb.source["context_length"] == "/api/show parameters num_ctx, capped at the training window"
    mix = models["mixtral:8x7b"]
    assert mix.tool_use is True and mix.params_b == pytest.approx(46.703)


@pytest.mark.unit
def test_parse_ollama_without_show_falls_back_to_tags():
    tags = native.ollama_tags_list(payload("ollama_api_tags.json"))
    models = {m.id: m for m in native.parse_ollama(tags or [], "ollama@h:2", {}, None)}
    m = models["codellama:13b"]
    assert m.params_b == 13.0 and m.source["params_b"] == "/api/tags details.parameter_size"
    assert m.type == "unknown" and m.tool_use is None and m.loaded is None and m.context_trained is None
    assert m.context_length == 2048 and "version unknown" in m.source["context_length"]


@pytest.mark.unit
def test_parse_llamacpp_payloads():
    items = native.openai_model_list(payload("llamacpp_v1_models.json"))
    assert items is not None
    [m] = native.parse_llamacpp(items, "llamacpp@h:3", payload("llamacpp_props.json"))
    assert m.params_b == pytest.approx(8.03) and m.size_bytes == 4912898304 and not m.size_estimated
    assert m.quantization == "Q4_K_M" and m.source["quantization"] == "name"
    assert m.quant_bits == pytest.approx(4.89, abs=0.01)  # from the server's own size and n_params
    assert (
        m.context_length == 4096 and m.source["context_length"] == "/props default_generation_settings.n_ctx"
    )
    assert m.tool_use is True and m.loaded is True
    # Without /props: the training context from meta.
    [bare] = native.parse_llamacpp(items, "llamacpp@h:3", None)
    assert bare.context_length == 131072 and bare.tool_use is None


@pytest.mark.unit
def test_parse_vllm_and_openai_payloads():
    items = native.openai_model_list(payload("vllm_v1_models.json"))
    models = {m.id: m for m in native.parse_vllm(items or [], "vllm@h:4")}
    awq = models["Qwen/Qwen2.5-7B-Instruct-AWQ"]
    assert awq.context_length == 32768 and awq.loaded is True
    assert awq.params_b == 7.0 and awq.quantization == "AWQ" and awq.size_estimated
    lora = models["sql-lora"]
    assert lora.capabilities == ["lora"] and lora.context_length is None and lora.size_bytes is None
    plain = native.parse_openai(
        native.openai_model_list(payload("llama_cpp_python_v1_models.json")) or [], "p"
    )
    assert [m.id for m in plain] == ["smollm2-tools", "smollm2-chatml"]
    assert all(m.size_bytes is None and m.type == "unknown" for m in plain)


# --- discovery against real loopback servers ---------------------------------------------------


def test_discovers_lmstudio_v0(serve):
    srv = serve(lmstudio_v0_routes(), default=LMSTUDIO_UNKNOWN)
    providers, probed, unreachable = run(discover([srv.base_url], probe_defaults=False, timeout_s=2))
    assert probed == [srv.base_url] and unreachable == {}
    [p] = providers
    assert p.kind == "lmstudio" and p.name == f"lmstudio@127.0.0.1:{srv.port}"
    assert p.base_url == srv.base_url and p.native["detected_by"] == "/api/v0/models"
    models = by_id(p)
    assert set(models) == {
        "qwen2-vl-7b-instruct",
        "meta-llama-3.1-8b-instruct",
        "text-embedding-nomic-embed-text-v1.5",
    }
    assert all(m.provider == p.name for m in p.models)
    assert "unservable" not in p.native


def test_discovers_lmstudio_v1_and_flags_models_not_served(serve):
    srv = serve(lmstudio_v1_routes(), default=LMSTUDIO_UNKNOWN)
    [p], _, _ = run(discover([srv.base_url], probe_defaults=False))
    assert p.kind == "lmstudio" and p.native["detected_by"] == "/api/v1/models"
    assert by_id(p)["qwen2.5-7b-instruct"].size_bytes == 4683073952
    assert list(p.native["unservable"]) == ["llama-3.3-70b-instruct"]
    sel = select_models([p], max_size_gb=100)
    reasons = {m.id: r for m, r in sel.excluded}
    assert reasons["llama-3.3-70b-instruct"].startswith("not served on /v1/models")
    assert reasons["text-embedding-nomic-embed-text-v1.5-embedding"] == "embedding model"


def test_discovers_ollama_with_show_ps_and_version(serve):
    srv = serve(ollama_routes())
    [p], _, unreachable = run(discover([srv.base_url], probe_defaults=False))
    assert unreachable == {}
    assert p.kind == "ollama" and p.version == "0.6.5" and p.name == f"ollama@127.0.0.1:{srv.port}"
    models = by_id(p)
    assert models["llama3:latest"].loaded is True and models["mixtral:8x7b"].tool_use is True
    assert models["nomic-embed-text:latest"].type == "embedding"
    shown = sorted(
        json.loads(body)["model"] for method, target, _, body in srv.requests if target == "/api/show"
    )
    assert shown == sorted(models)


def test_discovers_llamacpp(serve):
    srv = serve(llamacpp_routes(), default=LLAMACPP_404)
    [p], _, _ = run(discover([srv.base_url], probe_defaults=False))
    assert p.kind == "llamacpp" and p.version == "b5957-1b4ba48b"
    assert p.native["total_slots"] == 1 and p.native["n_ctx"] == 4096
    [m] = p.models
    assert m.id.endswith("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf") and m.tool_use is True


def test_discovers_vllm(serve):
    srv = serve(vllm_routes(), default=VLLM_404)
    [p], _, _ = run(discover([srv.base_url], probe_defaults=False))
    assert p.kind == "vllm" and p.version == "0.6.3.post1"
    assert by_id(p)["Qwen/Qwen2.5-7B-Instruct-AWQ"].context_length == 32768


def test_discovers_plain_openai_server(serve):
    srv = serve({("GET", "/v1/models"): js(payload("llama_cpp_python_v1_models.json"))}, default=VLLM_404)
    [p], _, _ = run(discover([srv.base_url], probe_defaults=False))
    assert p.kind == "openai" and p.native["owned_by"] == ["me"]
    assert [m.id for m in p.models] == ["smollm2-tools", "smollm2-chatml"]
    assert by_id(p)["smollm2-tools"].params_b is None  # the alias names no size


def test_base_url_with_v1_suffix_is_normalised(serve):
    srv = serve(llamacpp_routes(), default=LLAMACPP_404)
    providers, probed, _ = run(discover([srv.base_url + "/v1/", srv.base_url], probe_defaults=False))
    assert probed == [srv.base_url]  # both spellings name one server, probed once
    assert [p.base_url for p in providers] == [srv.base_url]
    assert normalise_base_url("localhost:1234/v1") == "http://localhost:1234"
    assert normalise_base_url("https://gpu.lan:8000/") == "https://gpu.lan:8000"


def test_closed_port_is_unreachable_refused():
    url = f"http://127.0.0.1:{closed_port()}"
    providers, probed, unreachable = run(discover([url], probe_defaults=False, timeout_s=1))
    assert providers == [] and probed == [url]
    assert unreachable == {url: "connection refused"}


def test_html_answer_is_unreachable_with_reason(serve):
    page = (200, "text/html; charset=utf-8", b"<!DOCTYPE html><html><body>router login</body></html>")
    srv = serve({}, default=page)
    providers, _, unreachable = run(discover([srv.base_url], probe_defaults=False))
    assert providers == []
    assert unreachable == {srv.base_url: "answered HTML, not an OpenAI-compatible API"}
    line = f"{srv.base_url}: {unreachable[srv.base_url]}"
    assert line == f"http://127.0.0.1:{srv.port}: answered HTML, not an OpenAI-compatible API"


@pytest.mark.timeout(20)
def test_hanging_server_is_unreachable_within_the_timeout(serve):
    srv = serve({}, default=HANG)
    providers, _, unreachable = run(discover([srv.base_url], probe_defaults=False, timeout_s=0.3))
    assert providers == []
    assert unreachable == {srv.base_url: "no answer within 0.3 s"}


@pytest.mark.timeout(20)
def test_server_hanging_on_native_endpoints_is_still_usable(serve):
    srv = serve({("GET", "/v1/models"): js(payload("llama_cpp_python_v1_models.json"))}, default=HANG)
    [p], _, unreachable = run(discover([srv.base_url], probe_defaults=False, timeout_s=0.3))
    assert unreachable == {} and p.kind == "openai" and len(p.models) == 2


def test_non_json_and_wrong_json_and_closed_connections(serve):
    text = serve({}, default=(200, "text/plain", b"Ollama is running"))
    listless = serve({("GET", "/v1/models"): js([1, 2, 3])}, default=VLLM_404)
    closer = serve({}, default=CLOSE)
    _, _, unreachable = run(
        discover([text.base_url, listless.base_url, closer.base_url], probe_defaults=False, timeout_s=2)
    )
    assert unreachable[text.base_url].startswith(
        "answered non-JSON on /v1/models (text/plain: 'Ollama is running')"
    )
    assert unreachable[listless.base_url] == "answered JSON without a model list on /v1/models"
    assert unreachable[closer.base_url].startswith("no valid HTTP answer")


def test_http_error_status_and_api_key(serve):
    def guarded(method, target, headers, body):
        if headers.get("authorization") != "Bearer sekret":
            return js({"error": "invalid api key"}, 401)
        return js(payload("llama_cpp_python_v1_models.json"))

    srv = serve({("GET", "/v1/models"): guarded}, default=VLLM_404)
    _, _, unreachable = run(discover([srv.base_url], probe_defaults=False))
    assert unreachable == {srv.base_url: "answered HTTP 401 on /v1/models (wrong or missing --api-key?)"}
    [p], _, _ = run(discover([srv.base_url], probe_defaults=False, api_key="sekret"))
    assert p.api_key == "sekret" and len(p.models) == 2


def test_oversized_answer_is_refused(serve, monkeypatch):
    monkeypatch.setattr(discovery, "MAX_BODY_BYTES", 4096)
    big = js({"object": "list", "data": [{"id": "m" * 100, "object": "model"}] * 100})
    srv = serve({("GET", "/v1/models"): big}, default=VLLM_404)
    _, _, unreachable = run(discover([srv.base_url], probe_defaults=False))
    assert "answered over" in unreachable[srv.base_url]


def test_several_servers_concurrently_in_order(serve):
    a = serve(ollama_routes())
    b = serve(vllm_routes(), default=VLLM_404)
    dead = f"http://127.0.0.1:{closed_port()}"
    providers, probed, unreachable = run(discover([a.base_url, dead, b.base_url], probe_defaults=False))
    assert probed == [a.base_url, dead, b.base_url]
    assert [p.kind for p in providers] == ["ollama", "vllm"]
    assert list(unreachable) == [dead]
    names = [p.name for p in providers]
    assert len(set(names)) == len(names)


def test_default_ports_are_probed_and_no_server_message():
    # Nothing listens on 127.0.0.9 (loopback, distinct from 127.0.0.1 where real servers bind).
    providers, probed, unreachable = run(discover([], host="127.0.0.9", timeout_s=1))
    assert probed == [f"http://127.0.0.9:{p}" for _, p in DEFAULT_PORTS]
    assert ":9931" in probed[3] and ":8080" in probed[2]  # llama.cpp's announced default beside 8080
    assert providers == [] and set(unreachable) == set(probed)
    msg = no_servers_message(probed, unreachable)
    assert msg.startswith(
        "no LLM server found (tried http://127.0.0.9:1234 [LM Studio], http://127.0.0.9:11434 [Ollama], "
        "http://127.0.0.9:8080 [llama.cpp], http://127.0.0.9:9931 [llama.cpp], http://127.0.0.9:8000 [vLLM]); start one, pass --base-url URL, "
        "or try --demo"
    )
    assert "\n" not in msg


@pytest.mark.unit
def test_no_server_message_names_odd_answers():
    msg = no_servers_message(
        ["http://10.0.0.5:9000"], {"http://10.0.0.5:9000": "answered HTML, not an OpenAI-compatible API"}
    )
    assert "tried http://10.0.0.5:9000)" in msg and "[http://10.0.0.5:9000: answered HTML" in msg


def test_discover_select_and_format_end_to_end(serve):
    lms = serve(lmstudio_v0_routes(), default=LMSTUDIO_UNKNOWN)
    oll = serve(ollama_routes())
    dead = f"http://127.0.0.1:{closed_port()}"
    providers, probed, unreachable = run(discover([lms.base_url, oll.base_url, dead], probe_defaults=False))
    sel = select_models(providers, max_size_gb=15, probed=probed, unreachable=unreachable)
    order = [m.id for m in sel.selected]
    # 7-14B band first by size, then smaller ones largest first; mixtral (26 GB) is over the limit.
    assert order == ["qwen2-vl-7b-instruct", "meta-llama-3.1-8b-instruct", "llama3:latest", "codellama:13b"]
    reasons = {m.id: r for m, r in sel.excluded}
    assert reasons["mixtral:8x7b"] == "26.4 GB over --max-size-gb 15"
    assert reasons["nomic-embed-text:latest"] == "embedding model"
    event = sel.to_event()
    orjson.dumps(event)  # the providers_discovered payload serialises
    assert event["unreachable"] == {dead: "connection refused"}
    text = format_selection(sel)
    assert "test #1" in text and "skip: embedding model" in text and f"{dead}: connection refused" in text
    assert "Ollama 0.6.5" in text and "4.9 GB (est.)" in text


@pytest.mark.unit
def test_providers_round_trip_through_the_event():
    from soaktui.providers.types import ModelInfo

    items = native.lmstudio_v1_list(payload("lmstudio_api_v1_models.json")) or []
    for m in native.parse_lmstudio_v1(items, "lmstudio@h:1"):
        again = ModelInfo.from_dict(orjson.loads(orjson.dumps(m.to_dict())))
        assert again == m


# --- the built-in simulator, every flavor ------------------------------------------------------

SIM_BAND = {
    "sim-qwen2.5-7b-instruct",
    "sim-llama-3.1-8b-instruct",
    "sim-mistral-7b-instruct-v0.3",
    "sim-qwen2.5-14b-instruct",
}


@pytest.fixture(scope="module")
def sims():
    from soaktui.simulator import SimConfig, run_in_thread

    handles = {
        f: run_in_thread(SimConfig(flavor=f)) for f in ("lmstudio", "ollama", "llamacpp", "vllm", "openai")
    }
    yield handles
    for h in handles.values():
        h.stop()


def _bare(mid: str) -> str:
    return mid.removesuffix(":latest")


@pytest.mark.parametrize("flavor", ["lmstudio", "ollama", "llamacpp", "vllm", "openai"])
def test_discovers_each_simulator_flavor(sims, flavor):
    from soaktui.simulator import default_personas

    handle = sims[flavor]
    providers, probed, unreachable = run(discover([handle.base_url + "/v1"], probe_defaults=False))
    assert unreachable == {} and probed == [handle.base_url]
    [p] = providers
    assert p.kind == flavor and p.name == f"{flavor}@127.0.0.1:{handle.port}"
    personas = {x.id: x for x in default_personas()}
    cloud = {_bare(m.id) for m in p.models if m.cloud}
    # Ollama (v0.12+) also lists a pulled cloud model; it runs remotely, so it is left out.
    assert cloud == ({"gpt-oss:120b-cloud"} if flavor == "ollama" else set())
    assert {_bare(m.id) for m in p.models} - cloud == set(personas)
    sel = select_models(providers, max_size_gb=15)
    reasons = {_bare(m.id): r for m, r in sel.excluded}
    assert all(reasons[c] == "cloud model, runs remotely (--include-cloud to test it)" for c in cloud)
    assert reasons["sim-nomic-embed-text-v1.5"] == "embedding model"
    chosen = [_bare(m.id) for m in sel.selected]
    assert set(chosen[:4]) == SIM_BAND  # the 7B-14B band comes first
    assert [m.params_b for m in sel.selected[:4]] == sorted(m.params_b or 0 for m in sel.selected[:4])
    if flavor in ("lmstudio", "ollama", "llamacpp"):
        # These servers report real sizes: the 70B is over the limit, not estimated.
        for m in p.models:
            if not m.cloud:
                assert m.size_bytes == personas[_bare(m.id)].size_bytes and not m.size_estimated
        assert reasons["sim-llama-3.3-70b-instruct"].endswith("over --max-size-gb 15")
        assert chosen == [*chosen[:4], "sim-phi-3-mini-4k-instruct"]
    else:
        # vLLM and plain servers give no size; the names give params but no quantization.
        assert all(m.size_bytes is None for m in p.models)
        assert "sim-llama-3.3-70b-instruct" in chosen
    if flavor == "ollama":
        assert p.version == "0.12.6-sim"
        by = {_bare(m.id): m for m in p.models}
        assert (
            by["sim-qwen2.5-7b-instruct"].tool_use is True
            and by["sim-phi-3-mini-4k-instruct"].tool_use is False
        )
        assert (
            by["sim-llama-3.3-70b-instruct"].loaded is False and by["sim-qwen2.5-7b-instruct"].loaded is True
        )
        # Loaded: /api/ps says the runtime context (Ollama 0.12's default 4096), not the 32k window.
        qwen = by["sim-qwen2.5-7b-instruct"]
        assert qwen.context_length == 4096 and qwen.context_trained == 32768
        assert qwen.source["context_length"] == "/api/ps context_length"
        # Not loaded: the version's default, capped at the training window.
        big = by["sim-llama-3.3-70b-instruct"]
        assert big.context_length == 4096 and "0.12.6-sim default" in big.source["context_length"]
    if flavor == "lmstudio":
        assert p.native["detected_by"] == "/api/v1/models"
        by = by_id(p)
        assert (
            by["sim-qwen2.5-7b-instruct"].params_b == 7.6 and by["sim-qwen2.5-7b-instruct"].tool_use is True
        )
    if flavor == "llamacpp":
        assert p.version == "b11434-sim"
        by = by_id(p)
        # Router mode: each model's context from its own /props?model=...
        assert by["sim-llama-3.1-8b-instruct"].context_length == 8192
        assert by["sim-llama-3.1-8b-instruct"].source["context_length"].startswith("/props?model=")
    if flavor == "vllm":
        assert p.version == "0.34.0+sim"
        assert by_id(p)["sim-llama-3.1-8b-instruct"].context_length == 8192


# --- garbage never crashes the parsers ---------------------------------------------------------

_KEYS = [
    "id",
    "key",
    "name",
    "model",
    "type",
    "size",
    "size_bytes",
    "params_string",
    "quantization",
    "state",
    "loaded_instances",
    "config",
    "context_length",
    "max_context_length",
    "loaded_context_length",
    "capabilities",
    "details",
    "parameter_size",
    "quantization_level",
    "model_info",
    "meta",
    "n_params",
    "n_ctx",
    "n_ctx_train",
    "status",
    "value",
    "architecture",
    "input_modalities",
    "max_model_len",
    "root",
    "parent",
    "owned_by",
    "data",
    "models",
    "default_generation_settings",
    "chat_template_caps",
    "supports_tool_calls",
    "modalities",
    "vision",
    "model_path",
    "parameters",
    "general.parameter_count",
    "general.architecture",
    "llama.context_length",
    "trained_for_tool_use",
    "bits_per_weight",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["loaded", "llm", "embedding", "Q4_K_M", "7B", "8x7B", "tools", "embedding", "vllm"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=6)
    ),
    max_leaves=25,
)


_entries = st.lists(st.dictionaries(st.sampled_from(_KEYS), _json, max_size=8), max_size=4)
_listing = st.one_of(
    _json,
    st.fixed_dictionaries({"data": _entries}),
    st.fixed_dictionaries({"models": _entries}),
    st.fixed_dictionaries(
        {"models": st.lists(st.fixed_dictionaries({"key": _json}, optional={"type": _json}))}
    ),
)


@pytest.mark.unit
@given(_listing, _json, _json)
def test_parsers_never_crash_on_garbage(listing, detail, extra):
    for lister, parser in (
        (native.lmstudio_v1_list, native.parse_lmstudio_v1),
        (native.lmstudio_v0_list, native.parse_lmstudio_v0),
        (native.openai_model_list, native.parse_vllm),
        (native.openai_model_list, native.parse_openai),
    ):
        items = lister(listing)
        if items is not None:
            parser(items, "p")
    items = native.openai_model_list(listing)
    if items is not None:
        native.parse_llamacpp(items, "p", detail, extra if isinstance(extra, dict) else None)
    tags = native.ollama_tags_list(listing)
    if tags is not None:
        native.parse_ollama(tags, "p", detail if isinstance(detail, dict) else None, extra)
    native.llamacpp_props_facts(detail)
    native.is_llamacpp_props(detail)
