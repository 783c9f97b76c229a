"""How each kind of real server describes its models and words its errors, for the simulator.

soaktui's discovery is written against the native endpoints of LM Studio, Ollama, llama.cpp and
vLLM. A simulator "flavor" answers those endpoints in the same shapes (taken from each project's API
documentation), so discovery and the client's error classification can be tested against the
simulator and still work on the real servers. LM Studio and Ollama can also unload a model over HTTP;
their flavors do, and list it as not loaded until its next request loads it again (loading.py).

`response_format` follows each server too: LM Studio takes `json_schema` and refuses `json_object`;
Ollama (since 0.5.0), llama.cpp's server and vLLM take both (llama.cpp also reads a `schema` inside
`json_object`). The generic flavor stands for a minimal OpenAI-compatible server without constrained
decoding: it refuses both with OpenAI's own "invalid value" error, which is what makes the
structured_output scenario fall back to asking in the prompt.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from soaktui.simulator.loading import LoadState
from soaktui.simulator.personas import EMBEDDING, QUANT_BITS, Persona
from soaktui.simulator.structured import Ask

OPENAI = "openai"
LMSTUDIO = "lmstudio"
OLLAMA = "ollama"
LLAMACPP = "llamacpp"
VLLM = "vllm"
FLAVORS = (OPENAI, LMSTUDIO, OLLAMA, LLAMACPP, VLLM)

# Version strings the flavors report; the `sim` marks keep them from passing for real releases.
OLLAMA_VERSION = "0.6.8-sim"
VLLM_VERSION = "0.8.5+sim"
LLAMACPP_BUILD = "b5000-sim"

Body = dict[str, Any]
Handler = Callable[[dict[str, str], Any], tuple[int, Any]]  # (query, json body) -> (status, obj)

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

    def __init__(self, flavor: str, personas: list[Persona]) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r} (known: {', '.join(FLAVORS)})")
        self.flavor = flavor
        self.personas = personas
        self.loads = LoadState(personas, cold_loads=flavor in (LMSTUDIO, OLLAMA))
        self._by_name = {self.exposed_name(p): p for p in personas}
        self._by_name.update({p.id: p for p in personas})
        self.created = int(time.time())
        self._modified = datetime.now(timezone.utc).isoformat()

    # -- names -----------------------------------------------------------------------------------
    def exposed_name(self, p: Persona) -> str:
        """The model name clients see and send (Ollama names carry a tag)."""
        return f"{p.id}:latest" if self.flavor == OLLAMA else p.id

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
                ("GET", "/api/version"): lambda q, b: (200, {"version": OLLAMA_VERSION}),
                ("GET", "/api/ps"): lambda q, b: (200, self.ollama_ps()),
                ("POST", "/api/generate"): lambda q, b: self.ollama_generate(b),
                ("GET", "/"): lambda q, b: (200, "Ollama is running"),
            }
        if self.flavor == LLAMACPP:
            return {
                ("GET", "/props"): lambda q, b: self.llamacpp_props(q.get("model")),
                ("GET", "/health"): lambda q, b: (200, {"status": "ok"}),
                ("GET", "/v1/health"): lambda q, b: (200, {"status": "ok"}),
            }
        if self.flavor == VLLM:
            return {
                ("GET", "/version"): lambda q, b: (200, {"version": VLLM_VERSION}),
                ("GET", "/health"): lambda q, b: (200, ""),
            }
        return {}

    # -- /v1/models ------------------------------------------------------------------------------
    def openai_models(self) -> Body:
        data = []
        for p in self.personas:
            m: Body = {"id": self.exposed_name(p), "object": "model", "created": self.created}
            if self.flavor == LLAMACPP:
                m["owned_by"] = "llamacpp"
                m["meta"] = {
                    "n_ctx_train": p.context_length,
                    "n_ctx": p.context_length,
                    "n_params": p.parameter_count,
                    "size": p.size_bytes,
                }
            elif self.flavor == VLLM:
                m.update(owned_by="vllm", root=p.id, parent=None, max_model_len=p.context_length)
            elif self.flavor == OLLAMA:
                m["owned_by"] = "library"
            elif self.flavor == LMSTUDIO:
                m["owned_by"] = "organization_owner"
            else:
                m["owned_by"] = "soaktui-sim"
            data.append(m)
        out: Body = {"object": "list", "data": data}
        if self.flavor == LLAMACPP:  # llama-server lists its models in Ollama's shape as well
            out["models"] = [
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
            ]
        return out

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
            "format": "gguf",
            "family": p.family,
            "families": [p.family],
            "parameter_size": p.parameter_size,
            "quantization_level": p.quantization,
        }

    def _ollama_entry(self, p: Persona) -> Body:
        return {
            "name": self.exposed_name(p),
            "model": self.exposed_name(p),
            "modified_at": self._modified,
            "size": p.size_bytes,
            "digest": hashlib.sha256(p.id.encode()).hexdigest(),
            "details": self._ollama_details(p),
        }

    def ollama_tags(self) -> Body:
        return {"models": [self._ollama_entry(p) for p in self.personas]}

    def ollama_ps(self) -> Body:
        models = []
        for p in self.personas:
            if self.loads.is_loaded(p):
                m = self._ollama_entry(p)
                m.update(
                    expires_at="2318-01-01T00:00:00Z", size_vram=p.size_bytes, context_length=p.context_length
                )
                models.append(m)
        return {"models": models}

    def ollama_show(self, body: Any) -> tuple[int, Any]:
        name = body.get("model") or body.get("name") if isinstance(body, dict) else None
        p = self.resolve(name) or self.resolve(f"{name}:latest")
        if p is None:
            return 404, {"error": f"model '{name}' not found"}
        capabilities = ["embedding"] if p.type == EMBEDDING else ["completion"]
        if p.type != EMBEDDING and p.tool_style != "none":
            capabilities.append("tools")
        return 200, {
            "license": "",
            "modelfile": f"# simulated by soaktui\nFROM {p.id}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": self._ollama_details(p),
            "model_info": {
                "general.architecture": p.arch,
                "general.parameter_count": p.parameter_count,
                "general.quantization_version": 2,
                f"{p.arch}.context_length": p.context_length,
            },
            "capabilities": capabilities,
            "modified_at": self._modified,
        }

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

    # -- llama.cpp -------------------------------------------------------------------------------
    def llamacpp_props(self, model: str | None) -> tuple[int, Any]:
        p = self.resolve(model) if model else next((x for x in self.personas if x.is_chat), None)
        if p is None:
            return 404, {"error": {"code": 404, "message": "model not found", "type": "not_found_error"}}
        return 200, {
            "default_generation_settings": {
                "id": 0,
                "id_task": -1,
                "n_ctx": p.context_length,
                "speculative": False,
                "is_processing": False,
                "params": {"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95},
            },
            "total_slots": 1,
            "model_alias": p.id,
            "model_path": f"/models/{p.id}-{p.quantization}.gguf",
            "modalities": {"vision": False, "audio": False},
            "chat_template": "{{ messages }}",
            "build_info": LLAMACPP_BUILD,
        }

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
        return 400, error_body(
            f"registry.ollama.ai/library/{persona.id}:latest does not support tools", "api_error"
        )

    # -- errors ----------------------------------------------------------------------------------
    def model_not_found(self, name: Any) -> tuple[int, Body]:
        if self.flavor == OLLAMA:
            return 404, error_body(f'model "{name}" not found, try pulling it first', "api_error")
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
            return 400, error_body(f'"{name}" does not support chat', "invalid_request_error")
        return 400, error_body(
            f"Model {name} is an embedding model and cannot be used for chat completions.",
            "invalid_request_error",
            param="model",
        )

    def context_overflow(self, ctx: int, prompt_tokens: int, max_tokens: int | None) -> tuple[int, Body]:
        """The flavor's HTTP 400 for a request that does not fit the model's context window."""
        completion = max_tokens or 0
        if self.flavor == LLAMACPP:
            return 400, {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": prompt_tokens,
                    "n_ctx": ctx,
                }
            }
        if self.flavor == LMSTUDIO:
            return 400, error_body(
                f"Trying to keep the first {prompt_tokens} tokens when context the overflows. However, the "
                f"model is loaded with context length of only {ctx} tokens, which is not enough. Try to load "
                "the model with a larger context length, or provide a shorter input",
                "invalid_request_error",
            )
        if self.flavor == OLLAMA:
            return 400, error_body(
                f"the input length exceeds the context length ({prompt_tokens} + {completion} > {ctx})",
                "invalid_request_error",
            )
        if self.flavor == VLLM:
            return 400, error_body(
                f"This model's maximum context length is {ctx} tokens. However, you requested "
                f"{prompt_tokens + completion} tokens ({prompt_tokens} in the messages, {completion} in the "
                "completion). Please reduce the length of the messages or completion.",
                "BadRequestError",
                code=400,
            )
        return 400, error_body(
            f"This model's maximum context length is {ctx} tokens. However, your messages resulted in "
            f"{prompt_tokens} tokens (plus {completion} in the completion). Please reduce the length of the "
            "messages.",
            "invalid_request_error",
            code="context_length_exceeded",
            param="messages",
        )
