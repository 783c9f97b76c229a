"""How each kind of real server describes its models and words its errors, for the simulator.

soaktui's discovery is written against the native endpoints of LM Studio, Ollama, llama.cpp and
vLLM. A simulator "flavor" answers those endpoints in the same shapes, read in each server's own
source at the release `ServerOptions.server_version` names (versions.py; LM Studio, closed source,
from its docs and issue reports), so discovery and the client's error classification can be tested
against the simulator and still work on the real servers. Each behaviour cites its source in a
comment; docs/servers.md gathers them. LM Studio, Ollama and llama.cpp's router can also unload a
model over HTTP; their flavors do, and list it as not loaded until its next request loads it again
(loading.py). llama.cpp's slots, prompt cache, /props, /slots and /metrics are in llamacpp.py,
vLLM's /metrics and stream errors in vllm.py, what each server does with a prompt that does not fit
in context.py.

`response_format` follows each server too: LM Studio takes `json_schema` and refuses `json_object`;
Ollama (since 0.5.0), llama.cpp's server and vLLM take both (llama.cpp also reads a `schema` inside
`json_object`). The generic flavor stands for a minimal OpenAI-compatible server without constrained
decoding: it refuses both with OpenAI's own "invalid value" error, which is what makes the
structured_output scenario fall back to asking in the prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from soaktui.simulator import llamacpp as lcpp
from soaktui.simulator import versions as ver
from soaktui.simulator import vllm as vl
from soaktui.simulator.context import LMSTUDIO_OVERFLOW
from soaktui.simulator.loading import LoadState
from soaktui.simulator.personas import EMBEDDING, QUANT_BITS, Persona
from soaktui.simulator.structured import Ask

OPENAI = "openai"
LMSTUDIO = "lmstudio"
OLLAMA = "ollama"
LLAMACPP = "llamacpp"
VLLM = "vllm"
FLAVORS = (OPENAI, LMSTUDIO, OLLAMA, LLAMACPP, VLLM)

# Version strings the flavors report by default (versions.py says why these); the `sim` marks keep
# them from passing for real releases. SimConfig.server_version picks another.
OLLAMA_VERSION = ver.DEFAULT_VERSIONS[OLLAMA]
VLLM_VERSION = ver.DEFAULT_VERSIONS[VLLM]
LLAMACPP_BUILD = ver.DEFAULT_VERSIONS[LLAMACPP]

Body = dict[str, Any]
# (query, json body) -> (status, obj), or an awaitable of it (a request that waits for a model load)
Handler = Callable[[dict[str, str], Any], "tuple[int, Any] | Awaitable[tuple[int, Any]]"]

# Ollama cloud model stub (api/types.go ListModelResponse, v0.12.0+): listed locally, run on ollama.com.
OLLAMA_REMOTE_HOST = "https://ollama.com:443"  # server/create.go remoteURL(), cloud_proxy.go default
OLLAMA_CLOUD_PERSONA = Persona(
    id="gpt-oss:120b-cloud",
    params_b=116.8,
    quantization="MXFP4",
    size_bytes=384,  # Manifest.Size() of a stub: the config blob only (no weight layer)
    context_length=131072,
    ttft_ms=400,
    prompt_tps=4000,
    tps=60,
    tool_style="native",
    arch="gptoss",
    family="gptoss",
    load_ms=0.0,
)


@dataclass(frozen=True)
class ServerOptions:
    """Per-flavor settings of a simulated server (SimConfig carries them; docs/servers.md)."""

    server_version: str | None = None  # None: the flavor's default (versions.DEFAULT_VERSIONS)
    ollama_num_ctx: int | None = None  # OLLAMA_CONTEXT_LENGTH; None: the version's default
    ollama_cloud: bool = True  # list a cloud model stub (Ollama v0.12.0+)
    llamacpp_router: bool = False  # llama-server without -m: several models, loaded on demand
    llamacpp_slots: int = 4  # -np; auto = 4 (server.cpp)
    llamacpp_kv_unified: bool = True  # auto -np comes with a unified KV cache
    llamacpp_ctx: int | None = None  # -c; None: the model's training window (n_ctx = 0)
    llamacpp_metrics: bool = True  # --metrics (off by default on a real server)
    llamacpp_models_max: int = 4  # router --models-max
    lmstudio_overflow: str = "error"  # error | truncate_middle | rolling_window | event_error | empty

    def __post_init__(self) -> None:
        if self.lmstudio_overflow not in LMSTUDIO_OVERFLOW:
            raise ValueError(
                f"lmstudio_overflow must be one of {', '.join(LMSTUDIO_OVERFLOW)}, got {self.lmstudio_overflow!r}"
            )
        for name in ("ollama_num_ctx", "llamacpp_ctx"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ValueError(f"{name} must be at least 16, got {value}")
        if self.llamacpp_slots < 1 or self.llamacpp_models_max < 1:
            raise ValueError("llamacpp_slots and llamacpp_models_max must be at least 1")


_ZERO_DURATION = re.compile(r"0+(?:\.0*)?(?:ms|s|m|h)?")  # Ollama keep_alive strings meaning "now"


def _zero_keep_alive(value: Any) -> bool:
    """Ollama's `keep_alive` asks to unload now: 0, 0.0, "0", "0s", "0m"."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, str) and _ZERO_DURATION.fullmatch(value.strip()) is not None


def error_body(message: str, type_: str, *, code: Any = None, param: str | None = None) -> Body:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FlavorAPI:
    """The model listings, native endpoints and error wording of one server flavor."""

    def __init__(self, flavor: str, personas: list[Persona], options: ServerOptions | None = None) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r} (known: {', '.join(FLAVORS)})")
        self.flavor = flavor
        self.options = opts = options or ServerOptions()
        self.version_string = opts.server_version or ver.DEFAULT_VERSIONS[flavor]
        self.version = ver.parse(flavor, self.version_string) if flavor != OPENAI else ()
        self.personas = personas
        self.router = flavor == LLAMACPP and opts.llamacpp_router
        if self.router and self.version < (ver.LCPP_ROUTER,):
            raise ValueError(f"llama.cpp router mode needs build b{ver.LCPP_ROUTER} or later")
        self.cloud: list[Persona] = (
            [OLLAMA_CLOUD_PERSONA]
            if flavor == OLLAMA and opts.ollama_cloud and self.version >= ver.OLLAMA_CLOUD
            else []
        )
        self.loads = LoadState(
            personas,
            cold_loads=flavor in (LMSTUDIO, OLLAMA) or self.router,
            max_loaded=opts.llamacpp_models_max if self.router else None,
        )
        self._by_name = {self.exposed_name(p): p for p in [*personas, *self.cloud]}
        self._by_name.update({p.id: p for p in [*personas, *self.cloud]})
        self.speed = 1.0  # time compression of loads; the server sets its SimConfig.speed
        self.created = int(time.time())
        self.started = time.time()
        self._modified = datetime.now(timezone.utc).isoformat()
        self.llama = (
            lcpp.make_servers(personas, opts.llamacpp_slots, opts.llamacpp_kv_unified, opts.llamacpp_ctx)
            if flavor == LLAMACPP
            else {}
        )
        self.vllm_counters = (
            {p.id: vl.ModelCounters(created=self.started) for p in personas} if flavor == VLLM else {}
        )

    # -- versions and contexts -------------------------------------------------------------------
    def since(self, threshold: tuple[int, ...] | int) -> bool:
        """True when the simulated release is `threshold` or later (a build number for llama.cpp)."""
        t = (threshold,) if isinstance(threshold, int) else threshold
        return self.version >= t

    @property
    def build_info(self) -> str:
        """llama_build_info(): "b<build>-<commit>" (common/build-info.cpp.in); the commit is "sim"."""
        return f"b{self.version[0]}-sim" if self.flavor == LLAMACPP else ""

    def ollama_num_ctx(self, p: Persona) -> int:
        """The context Ollama runs `p` with: the Modelfile's num_ctx, else OLLAMA_CONTEXT_LENGTH, else
        the version's default (envconfig/config.go: 2048 before v0.6.7, 4096 from v0.6.7; the VRAM tier
        of v0.15.5+ gives 4096 under 23 GiB), capped at the training window from v0.9.3 (llm/server.go
        NewLlamaServer, commit 10a8e04a8)."""
        n = p.num_ctx or self.options.ollama_num_ctx or (4096 if self.since(ver.OLLAMA_CTX_4096) else 2048)
        if self.since((0, 9, 3)):
            n = min(n, p.context_length)
        return n

    def llamacpp_server(self, p: Persona) -> lcpp.Server:
        return self.llama[p.id]

    def is_cloud(self, p: Persona) -> bool:
        return any(p is c for c in self.cloud)

    # -- names -----------------------------------------------------------------------------------
    def exposed_name(self, p: Persona) -> str:
        """The model name clients see and send (Ollama names carry a tag)."""
        if self.flavor == OLLAMA and ":" not in p.id:
            return f"{p.id}:latest"
        return p.id

    def resolve(self, name: Any) -> Persona | None:
        return self._by_name.get(name) if isinstance(name, str) else None

    # -- routes ----------------------------------------------------------------------------------
    def routes(self) -> dict[tuple[str, str], Handler]:
        """Native endpoints of this flavor, beyond the OpenAI-compatible ones."""
        if self.flavor == LMSTUDIO:
            r: dict[tuple[str, str], Handler] = {
                ("GET", "/api/v0/models"): lambda q, b: (200, self.lmstudio_v0_models()),
                ("GET", "/api/v1/models"): lambda q, b: (200, self.lmstudio_v1_models()),
                ("POST", "/api/v1/models/unload"): lambda q, b: self.lmstudio_unload(b),
            }
            for p in self.personas:
                r[("GET", f"/api/v0/models/{p.id}")] = lambda q, b, p=p: (200, self._lmstudio_v0(p))
            return r
        if self.flavor == OLLAMA:
            return {
                ("GET", "/api/tags"): lambda q, b: (200, self.ollama_tags()),
                ("POST", "/api/show"): lambda q, b: self.ollama_show(b),
                ("GET", "/api/version"): lambda q, b: (200, {"version": self.version_string}),
                ("GET", "/api/ps"): lambda q, b: (200, self.ollama_ps()),
                ("POST", "/api/generate"): lambda q, b: self.ollama_generate(b),
                ("GET", "/"): lambda q, b: (200, "Ollama is running"),
            }
        if self.flavor == LLAMACPP:
            r = {
                ("GET", "/props"): self.llamacpp_props,
                ("GET", "/slots"): self.llamacpp_slots,
                ("GET", "/metrics"): self.llamacpp_metrics,
                ("GET", "/health"): lambda q, b: (200, {"status": "ok"}),
                ("GET", "/v1/health"): lambda q, b: (200, {"status": "ok"}),
            }
            if self.router:
                r[("POST", "/models/load")] = lambda q, b: self.router_load(b)
                r[("POST", "/models/unload")] = lambda q, b: self.router_unload(b)
                r[("GET", "/models")] = lambda q, b: (200, self.openai_models())
            return r
        if self.flavor == VLLM:
            return {
                ("GET", "/version"): lambda q, b: (200, {"version": self.version_string}),
                ("GET", "/health"): lambda q, b: (200, ""),
                ("GET", "/metrics"): lambda q, b: (200, self.vllm_metrics()),
            }
        return {}

    # -- /v1/models ------------------------------------------------------------------------------
    def openai_models(self) -> Body:
        if self.flavor == LLAMACPP:
            return self.llamacpp_models()
        data = []
        for p in [*self.personas, *self.cloud]:
            m: Body = {"id": self.exposed_name(p), "object": "model", "created": self.created}
            if self.flavor == VLLM:
                m.update(owned_by="vllm", root=p.id, parent=None, max_model_len=p.context_length)
            elif self.flavor == OLLAMA:
                m["owned_by"] = "library"
            elif self.flavor == LMSTUDIO:
                m["owned_by"] = "organization_owner"
            else:
                m["owned_by"] = "soaktui-sim"
            data.append(m)
        return {"object": "list", "data": data}

    def llamacpp_models(self) -> Body:
        """GET /v1/models of llama-server (get_res_models, server-context.cpp b11434): Ollama's shape
        in `models` and OpenAI's in `data`; a router lists every model with its status instead
        (get_router_models, server-models.cpp)."""
        now = int(time.time())
        if self.router:
            data = []
            for p in self.personas:
                state = self.loads.state(p, time.perf_counter_ns())
                child = lcpp.model_entry(p, self.llama[p.id].n_ctx_slot, now) if state == "loaded" else None
                data.append(lcpp.router_entry(p, state, now, child))
            return {"data": data, "object": "list"}
        return {
            "models": [
                {
                    "name": p.id,
                    "model": p.id,
                    "modified_at": "",
                    "size": "",
                    "digest": "",
                    "type": "model",
                    "description": "",
                    "tags": [""],
                    "capabilities": ["completion"],
                    "parameters": "",
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "",
                        "families": [""],
                        "parameter_size": "",
                        "quantization_level": "",
                    },
                }
                for p in self.personas
            ],
            "object": "list",
            "data": [lcpp.model_entry(p, self.llama[p.id].n_ctx_slot, now) for p in self.personas],
        }

    # -- LM Studio -------------------------------------------------------------------------------
    def _lmstudio_v0(self, p: Persona) -> Body:
        return {
            "id": p.id,
            "object": "model",
            "type": "embeddings" if p.type == EMBEDDING else "llm",
            "publisher": p.publisher,
            "arch": p.arch,
            "compatibility_type": "gguf",
            "quantization": p.quantization,
            "state": "loaded" if self.loads.is_loaded(p) else "not-loaded",
            "max_context_length": p.context_length,
        }

    def lmstudio_v0_models(self) -> Body:
        return {"object": "list", "data": [self._lmstudio_v0(p) for p in self.personas]}

    def lmstudio_v1_models(self) -> Body:
        models = []
        for p in self.personas:
            m: Body = {
                "type": "embedding" if p.type == EMBEDDING else "llm",
                "publisher": p.publisher,
                "key": p.id,
                "display_name": p.id.replace("-", " ").title(),
                "quantization": {"name": p.quantization, "bits_per_weight": QUANT_BITS.get(p.quantization)},
                "size_bytes": p.size_bytes,
                "params_string": None if p.type == EMBEDDING else f"{p.params_b:g}B",
                "loaded_instances": (
                    [{"id": p.id, "config": {"context_length": p.context_length}}]
                    if self.loads.is_loaded(p)
                    else []
                ),
                "max_context_length": p.context_length,
                "format": "gguf",
            }
            if p.type != EMBEDDING:
                m["architecture"] = p.arch
                m["capabilities"] = {"vision": False, "trained_for_tool_use": p.tool_style != "none"}
                m["description"] = None
            models.append(m)
        return {"models": models}

    def lmstudio_unload(self, body: Any) -> tuple[int, Body]:
        """`POST /api/v1/models/unload {"instance_id": ID}`: the instance (id = model key) goes away."""
        iid = body.get("instance_id") if isinstance(body, dict) else None
        if not isinstance(iid, str) or not iid:
            return 400, error_body("instance_id is required", "invalid_request_error", param="instance_id")
        p = self.resolve(iid)
        if p is None or not self.loads.unload(p):
            return 404, error_body(
                f"No loaded model instance with id '{iid}'",
                "invalid_request_error",
                code="model_not_found",
                param="instance_id",
            )
        return 200, {"instance_id": iid}

    # -- Ollama ----------------------------------------------------------------------------------
    def _ollama_details(self, p: Persona) -> Body:
        return {
            "parent_model": "",
            "format": "" if self.is_cloud(p) else "gguf",
            "family": p.family,
            "families": [p.family],
            "parameter_size": p.parameter_size,
            "quantization_level": p.quantization,
        }

    def _ollama_entry(self, p: Persona) -> Body:
        """An /api/tags entry (api.ListModelResponse): cloud stubs carry remote_model/remote_host
        (v0.12.0, commit 8b894933a) and their manifest's size."""
        entry: Body = {"name": self.exposed_name(p), "model": self.exposed_name(p)}
        if self.is_cloud(p):
            entry["remote_model"] = p.id.removesuffix("-cloud")
            entry["remote_host"] = OLLAMA_REMOTE_HOST
        entry.update(
            modified_at=self._modified,
            size=p.size_bytes,
            digest=hashlib.sha256(p.id.encode()).hexdigest(),
            details=self._ollama_details(p),
        )
        return entry

    def ollama_tags(self) -> Body:
        return {"models": [self._ollama_entry(p) for p in [*self.personas, *self.cloud]]}

    def ollama_ps(self) -> Body:
        """GET /api/ps (api.ProcessModelResponse): loaded local models. `expires_at` is centuries
        ahead, as with OLLAMA_KEEP_ALIVE=-1 (the simulator never unloads an idle model);
        `context_length` (v0.10.0+) is the runtime num_ctx, not the training window."""
        models = []
        for p in self.personas:
            if self.loads.is_loaded(p):
                m = self._ollama_entry(p)
                m.update(expires_at="2318-01-01T00:00:00Z", size_vram=p.size_bytes)
                if self.since(ver.OLLAMA_PS_CONTEXT):
                    m["context_length"] = self.ollama_num_ctx(p)
                models.append(m)
        return {"models": models}

    def ollama_show(self, body: Any) -> tuple[int, Any]:
        """POST /api/show (api.ShowResponse). model_info is the GGUF header: `<arch>.context_length`
        is the training window. `parameters` lists the Modelfile's PARAMETER lines only (absent when
        none: omitempty), each `fmt.Sprintf("%-*s %#v", 30, k, v)`. A cloud stub has no GGUF: its
        model_info is synthesised from the manifest (server/routes.go GetModelInfo, v0.12.6)."""
        name = body.get("model") or body.get("name") if isinstance(body, dict) else None
        p = self.resolve(name) or self.resolve(f"{name}:latest")
        if p is None:
            return 404, {"error": f"model '{name}' not found"}
        if self.is_cloud(p):
            return 200, {
                "details": self._ollama_details(p),
                "remote_model": p.id.removesuffix("-cloud"),
                "remote_host": OLLAMA_REMOTE_HOST,
                "model_info": {
                    "general.architecture": p.arch,
                    "general.basename": p.id.split(":")[0],
                    f"{p.arch}.context_length": p.context_length,
                    f"{p.arch}.embedding_length": 2880,
                },
                "capabilities": ["completion", "tools", "thinking"],
                "modified_at": self._modified,
            }
        out: Body = {
            "license": "",
            "modelfile": f"# simulated by soaktui\nFROM {p.id}\n",
        }
        if p.num_ctx:
            out["parameters"] = f"{'num_ctx':<30} {p.num_ctx}"
        out.update(
            template="{{ .Prompt }}",
            details=self._ollama_details(p),
            model_info={
                "general.architecture": p.arch,
                "general.parameter_count": p.parameter_count,
                "general.quantization_version": 2,
                f"{p.arch}.context_length": p.context_length,
            },
        )
        if self.since((0, 6, 4)):  # capabilities since v0.6.4 (commit e172f095b)
            caps = ["embedding"] if p.type == EMBEDDING else ["completion"]
            if p.type != EMBEDDING and p.tool_style != "none":
                caps.append("tools")
            out["capabilities"] = caps
        out["modified_at"] = self._modified
        return 200, out

    def ollama_generate(self, body: Any) -> tuple[int, Any]:
        """`POST /api/generate`, the unload form only: `{"model": NAME, "keep_alive": 0}`."""
        name = body.get("model") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return 400, {"error": "model is required"}
        if not _zero_keep_alive(body.get("keep_alive")):
            return 501, {
                "error": "the soaktui simulator serves /api/generate only to unload a model "
                "(keep_alive: 0); use /v1/chat/completions to generate"
            }
        p = self.resolve(name) or self.resolve(f"{name}:latest")
        if p is None:
            return 404, {"error": f'model "{name}" not found, try pulling it first'}
        self.loads.unload(p)  # unloading a model that is not loaded succeeds too, as on Ollama
        created = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return 200, {
            "model": self.exposed_name(p),
            "created_at": created,
            "response": "",
            "done": True,
            "done_reason": "unload",
        }

    def ollama_error(self, status: int, message: str) -> tuple[int, Body]:
        """An error on /v1 (openai.NewError through middleware writeError): `type` is "api_error"
        whatever the status up to v0.17.x, from the status from v0.18.0; param and code always null."""
        if self.since(ver.OLLAMA_TYPED_ERRORS):
            type_ = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        else:
            type_ = "api_error"
        return status, error_body(message, type_)

    def ollama_stream_error(self, rid: str, created: int) -> bytes:
        """A failure after the stream began: the native `{"error": ...}` line goes through
        ChatWriter.writeResponse into api.ChatResponse, which has no error field: an empty chunk goes
        out (model "") and the body ends, with no finish_reason, usage or [DONE] (notes §8d: derived
        from the code of v0.12 and HEAD, not run)."""
        delta = {"content": ""} if self.since(ver.OLLAMA_ROLE_ONCE) else {"role": "assistant", "content": ""}
        chunk = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "",
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    # -- llama.cpp -------------------------------------------------------------------------------
    def router_check(self, name: Any, autoload: bool) -> tuple[Persona | None, tuple[int, Body] | None]:
        """router_validate_model (server-models.cpp): the persona, or the router's 400."""
        if not isinstance(name, str) or not name:
            return None, lcpp.router_error("model name is missing from the request")
        p = self.resolve(name)
        if p is None:
            return None, lcpp.router_error(f"model '{name}' not found")
        if not autoload and self.loads.state(p, time.perf_counter_ns()) == "unloaded":
            return None, lcpp.router_error("model is not loaded")
        return p, None

    async def _router_ready(self, p: Persona) -> None:
        """ensure_model_ready: a request for a model that is not running loads it and waits."""
        wait = self.loads.wait_ns(p, time.perf_counter_ns(), int((p.load_ms or 0.0) * 1e6 / self.speed))
        if wait > 0:
            await asyncio.sleep(wait / 1e9)

    def _router_get(self, query: dict[str, str], then: Callable[[Persona], tuple[int, Any]]) -> Any:
        autoload = query.get("autoload", "true") in ("true", "1")
        p, err = self.router_check(query.get("model"), autoload)
        if err is not None or p is None:
            return err
        if autoload and self.loads.state(p, time.perf_counter_ns()) != "loaded":

            async def later() -> tuple[int, Any]:
                await self._router_ready(p)
                return then(p)

            return later()
        return then(p)

    def _one_props(self, p: Persona) -> tuple[int, Any]:
        srv = self.llama[p.id]
        return 200, lcpp.props(
            self.version[0], self.build_info, p, len(srv.slots), srv.n_ctx_slot, self.options.llamacpp_metrics
        )

    def llamacpp_props(self, query: dict[str, str], body: Any = None) -> Any:
        """GET /props: a model server's props; a router's placeholder without ?model=, the model's own
        with it (proxied, loading the model unless autoload=false)."""
        model = query.get("model")
        if self.router:
            if not model:
                return 200, lcpp.router_props(self.build_info, self.options.llamacpp_models_max)
            return self._router_get(query, self._one_props)
        p = self.resolve(model) if model else next((x for x in self.personas if x.is_chat), None)
        if p is None:
            return 404, {"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}
        return self._one_props(p)

    def _servers(self, query: dict[str, str]) -> list[lcpp.Server] | None:
        """The model servers a /slots or /metrics request reads outside router mode: ?model= picks one
        (a simulator convenience: a real server has one model), else all of them."""
        model = query.get("model")
        if model:
            p = self.resolve(model)
            return [self.llama[p.id]] if p is not None else None
        return list(self.llama.values())

    def llamacpp_slots(self, query: dict[str, str], body: Any = None) -> Any:
        """GET /slots: one entry per slot (server_slot::to_json; on by default, --no-slots turns it off)."""
        build = self.version[0]
        if self.router:
            return self._router_get(
                query, lambda p: (200, [lcpp.slot_json(build, s) for s in self.llama[p.id].slots])
            )
        servers = self._servers(query)
        if servers is None:
            return 404, {"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}
        return 200, [lcpp.slot_json(build, s) for srv in servers for s in srv.slots]

    def llamacpp_metrics(self, query: dict[str, str], body: Any = None) -> Any:
        """GET /metrics (Prometheus text; 501 without --metrics: get_metrics in server-context.cpp)."""
        build = self.version[0]

        def text(servers: list[lcpp.Server]) -> tuple[int, Any]:
            if not self.options.llamacpp_metrics:
                return 501, {
                    "error": {
                        "code": 501,
                        "message": "This server does not support metrics endpoint. Start it with `--metrics`",
                        "type": "not_supported_error",
                    }
                }
            total = lcpp.Counters()
            for srv in servers:
                total.add(srv.counters)
                srv.counters.bucket_prompt_steps = srv.counters.bucket_prompt_us = 0
                srv.counters.bucket_predict_steps = srv.counters.bucket_predict_us = 0
            processing = sum(srv.processing() for srv in servers)
            deferred = sum(srv.deferred for srv in servers)
            return 200, lcpp.metrics_text(build, total, processing, deferred)

        if self.router:
            return self._router_get(query, lambda p: text([self.llama[p.id]]))
        servers = self._servers(query)
        if servers is None:
            return 404, {"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}
        return text(servers)

    def router_load(self, body: Any) -> Any:
        """POST /models/load {"model": NAME} (server-models.cpp post_router_models_load)."""
        name = body.get("model") if isinstance(body, dict) else None
        p = self.resolve(name) if isinstance(name, str) else None
        if p is None:
            return lcpp.router_error("model is not found", 404, "not_found_error")
        if self.loads.state(p, time.perf_counter_ns()) != "unloaded":
            return lcpp.router_error("model is already running")
        self.loads.wait_ns(p, time.perf_counter_ns(), int((p.load_ms or 0.0) * 1e6 / self.speed))
        return 200, {"success": True}

    def router_unload(self, body: Any) -> Any:
        """POST /models/unload {"model": NAME} (server-models.cpp post_router_models_unload)."""
        name = body.get("model") if isinstance(body, dict) else None
        p = self.resolve(name) if isinstance(name, str) else None
        if p is None:
            return lcpp.router_error("model is not found")
        if not self.loads.unload(p):
            return lcpp.router_error("model is not running")
        return 200, {"success": True}

    # -- vLLM ------------------------------------------------------------------------------------
    def vllm_metrics(self) -> str:
        return vl.metrics_text(
            self.version, {p.id: (p.context_length, self.vllm_counters[p.id]) for p in self.personas}
        )

    # -- response_format -------------------------------------------------------------------------
    def structured_ask(self, rf: Any) -> tuple[Ask | None, tuple[int, Body] | None]:
        """What `response_format` asks for, or this flavor's HTTP 400 refusing it."""
        if rf is None:
            return None, None
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind == "text":
            return None, None
        spec = rf.get("json_schema") if kind == "json_schema" else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if self.flavor == LMSTUDIO:  # wordings from LM Studio 0.3.x
            if kind != "json_schema":
                return None, (400, {"error": "'response_format.type' must be 'json_schema' or 'text'"})
            if not isinstance(schema, dict):
                return None, (400, {"error": "'response_format.json_schema.schema' must be an object"})
            return Ask(schema), None
        if self.flavor == OPENAI or kind not in ("json_schema", "json_object"):
            return None, (
                400,
                error_body(
                    f"Invalid value: {kind!r}. Supported values are: 'text'.",
                    "invalid_request_error",
                    code="invalid_value",
                    param="response_format.type",
                ),
            )
        if kind == "json_object":
            schema = rf.get("schema") if self.flavor == LLAMACPP else None
        return Ask(schema if isinstance(schema, dict) else None), None

    def tools_refused(self, persona: Persona, tools: Any) -> tuple[int, Body] | None:
        """Ollama's HTTP 400 for `tools` sent to a model without the tools capability; None when taken."""
        if self.flavor != OLLAMA or persona.tool_style != "none" or not tools:
            return None
        return self.ollama_error(
            400, f"registry.ollama.ai/library/{persona.id}:latest does not support tools"
        )

    # -- errors ----------------------------------------------------------------------------------
    def model_not_found(self, name: Any) -> tuple[int, Body]:
        if self.flavor == OLLAMA:  # server/routes.go ChatHandler: 404 "model '%s' not found"
            return self.ollama_error(404, f"model '{name}' not found")
        if self.router:  # router_validate_model: 400
            return lcpp.router_error(f"model '{name}' not found")
        if self.flavor == LLAMACPP:
            return 404, {
                "error": {"code": 404, "message": f"model '{name}' not found", "type": "not_found_error"}
            }
        return 404, error_body(
            f"The model `{name}` does not exist.",
            "invalid_request_error",
            code="model_not_found",
            param="model",
        )

    def not_a_chat_model(self, name: str) -> tuple[int, Body]:
        if self.flavor == OLLAMA:
            return self.ollama_error(400, f'"{name}" does not support chat')
        return 400, error_body(
            f"Model {name} is an embedding model and cannot be used for chat completions.",
            "invalid_request_error",
            param="model",
        )

    def stream_error_body(self) -> tuple[int, Body]:
        """The HTTP error a non-streamed request gets for the stream_error fault."""
        msg = "simulated error during generation"
        if self.flavor == LLAMACPP:  # send_error default ERROR_TYPE_SERVER
            return 500, {"error": {"code": 500, "message": msg, "type": "server_error"}}
        if self.flavor == OLLAMA:  # streamResponse before the first byte: c.JSON(500, {"error": ...})
            return self.ollama_error(500, msg)
        if self.flavor == VLLM and self.since(ver.VLLM_CLASSIFIED_STREAM_ERRORS):
            err = {
                "message": "Internal server error",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
            return 500, {"error": err}
        return 500, error_body(msg, "server_error", code=500)
