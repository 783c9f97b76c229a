"""Turn each server kind's native model-listing payloads into ModelInfo records.

Pure functions over decoded JSON, kept apart from the probing (discovery.py) so they can be fed
recorded payloads. Every fact records in `ModelInfo.source` the endpoint (and field) it came from;
a field a server does not send stays None. Payload shapes come from each server's documentation:
LM Studio /api/v1/models and /api/v0/models, Ollama /api/tags, /api/show and /api/ps, llama.cpp
/v1/models (`meta`) and /props, vLLM /v1/models (`max_model_len`), and plain OpenAI /v1/models.
"""

from __future__ import annotations

import re
from typing import Any

from soaktui.providers.selection import (
    fill_estimates,
    normalise_quant,
    params_from_name,
    parse_params,
    quant_from_name,
)
from soaktui.providers.types import ModelInfo

Json = Any


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value > 0 and value.is_integer():
        return int(value)
    return None


def positive_int(value: Any) -> int | None:
    """A count a server sent: a positive whole number, else None."""
    return _int(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object as it is; anything else (missing, null, a list) as an empty one."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def openai_model_list(payload: Json) -> list[dict] | None:
    """The `data` list of an OpenAI /v1/models answer, or None when the payload is not one."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return _dicts(payload["data"])
    return None


def _set(m: ModelInfo, name: str, value: Any, source: str) -> None:
    if value is not None:
        setattr(m, name, value)
        m.source[name] = source


# ---------------------------------------------------------------------------------------------
# LM Studio


def lmstudio_v1_list(payload: Json) -> list[dict] | None:
    """`models` of GET /api/v1/models (LM Studio >= 0.4), or None if the payload is not that shape."""
    if isinstance(payload, dict) and isinstance(payload.get("models"), list):
        items = _dicts(payload["models"])
        if all("key" in it for it in items):
            return items
    return None


def lmstudio_v0_list(payload: Json) -> list[dict] | None:
    """`data` of GET /api/v0/models (LM Studio 0.3.6+), or None if the payload is not that shape."""
    items = openai_model_list(payload)
    if items is None:
        return None
    if items and not any(("state" in it or "compatibility_type" in it or "arch" in it) for it in items):
        return None
    return items


def parse_lmstudio_v1(items: list[dict], provider: str) -> list[ModelInfo]:
    src = "/api/v1/models"
    out = []
    for it in items:
        key = _str(it.get("key"))
        if key is None:
            continue
        m = ModelInfo(id=key, provider=provider)
        kind = _str(it.get("type"))
        caps = it.get("capabilities") if isinstance(it.get("capabilities"), dict) else None
        if kind in ("embedding", "embeddings"):
            m.type = "embedding"
        elif kind == "llm":
            m.type = "vlm" if caps and caps.get("vision") is True else "llm"
        else:
            m.type = "unknown"
        m.source["type"] = f"{src} type"
        _set(m, "size_bytes", _int(it.get("size_bytes")), f"{src} size_bytes")
        _set(m, "params_b", parse_params(_str(it.get("params_string"))), f"{src} params_string")
        quant = it.get("quantization")
        if isinstance(quant, dict):
            _set(m, "quantization", normalise_quant(_str(quant.get("name"))), f"{src} quantization.name")
            bits = quant.get("bits_per_weight")
            if isinstance(bits, (int, float)) and not isinstance(bits, bool) and bits > 0:
                _set(m, "quant_bits", float(bits), f"{src} quantization.bits_per_weight")
        elif isinstance(quant, str):
            _set(m, "quantization", normalise_quant(quant), f"{src} quantization")
        instances = _dicts(it.get("loaded_instances"))
        if isinstance(it.get("loaded_instances"), list):
            _set(m, "loaded", bool(instances), f"{src} loaded_instances")
        loaded_ctx = None
        for inst in instances:
            cfg = _obj(inst.get("config"))
            loaded_ctx = _int(cfg.get("context_length"))
            if loaded_ctx:
                break
        _set(m, "context_trained", _int(it.get("max_context_length")), f"{src} max_context_length")
        if loaded_ctx:
            _set(m, "context_length", loaded_ctx, f"{src} loaded_instances[].config.context_length")
        else:
            _set(m, "context_length", _int(it.get("max_context_length")), f"{src} max_context_length")
        if caps is not None:
            tool = caps.get("trained_for_tool_use")
            if isinstance(tool, bool):
                _set(m, "tool_use", tool, f"{src} capabilities.trained_for_tool_use")
            m.capabilities = sorted(
                {"trained_for_tool_use": "tool_use"}.get(k, k) for k, v in caps.items() if v is True
            )
        _set(m, "family", _str(it.get("architecture")), f"{src} architecture")
        out.append(fill_estimates(m))
    return out


def parse_lmstudio_v0(items: list[dict], provider: str) -> list[ModelInfo]:
    src = "/api/v0/models"
    out = []
    for it in items:
        mid = _str(it.get("id"))
        if mid is None:
            continue
        m = ModelInfo(id=mid, provider=provider)
        kind = _str(it.get("type"))
        m.type = {"llm": "llm", "vlm": "vlm", "embeddings": "embedding", "embedding": "embedding"}.get(
            kind or "", "unknown"
        )
        m.source["type"] = f"{src} type"
        _set(m, "quantization", normalise_quant(_str(it.get("quantization"))), f"{src} quantization")
        state = _str(it.get("state"))
        if state is not None:
            _set(m, "loaded", state == "loaded", f"{src} state")
        loaded_ctx = _int(it.get("loaded_context_length")) if state == "loaded" else None
        _set(m, "context_trained", _int(it.get("max_context_length")), f"{src} max_context_length")
        if loaded_ctx:
            _set(m, "context_length", loaded_ctx, f"{src} loaded_context_length")
        else:
            _set(m, "context_length", _int(it.get("max_context_length")), f"{src} max_context_length")
        caps = it.get("capabilities")
        if isinstance(caps, list):
            m.capabilities = [c for c in caps if isinstance(c, str)]
            _set(m, "tool_use", "tool_use" in m.capabilities, f"{src} capabilities")
        _set(m, "family", _str(it.get("arch")), f"{src} arch")
        out.append(fill_estimates(m))
    return out


# ---------------------------------------------------------------------------------------------
# Ollama


def ollama_tags_list(payload: Json) -> list[dict] | None:
    """`models` of GET /api/tags, or None if the payload is not that shape."""
    if isinstance(payload, dict) and isinstance(payload.get("models"), list):
        items = _dicts(payload["models"])
        if all(("name" in it or "model" in it) and "key" not in it for it in items):
            return items
    return None


def ollama_name(item: dict) -> str | None:
    return _str(item.get("name")) or _str(item.get("model"))


def ollama_ps_list(payload: Json) -> list[dict] | None:
    """`models` of GET /api/ps (the loaded models), or None if the payload is not that shape."""
    if isinstance(payload, dict) and isinstance(payload.get("models"), list):
        return _dicts(payload["models"])
    return None


def ollama_find(items: list[dict], name: str) -> dict | None:
    """The entry for model `name` in an /api/tags or /api/ps list; Ollama treats `m` and `m:latest`
    as the same model."""
    def norm(n: str) -> str:
        return n if ":" in n.rsplit("/", 1)[-1] else f"{n}:latest"

    want = norm(name)
    for it in items:
        n = ollama_name(it)
        if n is not None and norm(n) == want:
            return it
    return None


_NUM_CTX_RE = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from a version string such as "0.12.6" or "0.30.11-rc1"; None if none."""
    m = _VERSION_RE.search(text) if isinstance(text, str) else None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def ollama_default_context(version: str | None) -> tuple[int | None, str]:
    """The context Ollama gives a model whose Modelfile sets no num_ctx, and how sure that is.

    envconfig/config.go OLLAMA_CONTEXT_LENGTH: 2048 up to v0.6.6, 4096 from v0.6.7 (commit 44b466eeb),
    and from v0.15.5 a VRAM tier (server/routes.go Serve(): 4096 under 23 GiB, 32768 from 23 GiB,
    262144 from 47 GiB), so only its floor is known before the model is loaded. The environment
    variable can override any of these; /api/ps tells the truth once the model is loaded (v0.10.0+).
    """
    v = parse_version(version)
    if v is None:
        return 2048, "Ollama default (version unknown: the smallest default, 2048)"
    if v < (0, 6, 7):
        return 2048, f"Ollama {version} default (OLLAMA_CONTEXT_LENGTH unset)"
    if v < OLLAMA_VRAM_TIERS_FROM:
        return 4096, f"Ollama {version} default (OLLAMA_CONTEXT_LENGTH unset)"
    return 4096, f"Ollama {version} VRAM-based default, at least 4096 (exact once loaded: /api/ps)"


OLLAMA_VRAM_TIERS_FROM = (0, 15, 5)  # from here the default context is only known as a floor


def ollama_context_is_floor(version: str | None) -> bool:
    """True when ollama_default_context() gives only the floor of the real default (VRAM tiers)."""
    v = parse_version(version)
    return v is not None and v >= OLLAMA_VRAM_TIERS_FROM


def ollama_is_cloud(item: dict) -> bool:
    """A cloud model (Ollama v0.12.0+): listed with `remote_host`/`remote_model` (api/types.go
    ListModelResponse); it runs on ollama.com, not on this machine."""
    return bool(_str(item.get("remote_host")) or _str(item.get("remote_model")))


def parse_ollama(
    tags: list[dict],
    provider: str,
    shows: dict[str, Json] | None = None,
    running: Json = None,
    version: str | None = None,
) -> list[ModelInfo]:
    """Models from /api/tags, completed by POST /api/show per model and GET /api/ps (loaded ones).

    Two contexts are kept apart: `context_trained`, the training window in /api/show's
    `model_info.<arch>.context_length` (131072 for llama3.1), and `context_length`, what a request can
    really use: /api/ps `context_length` for a loaded model (v0.10.0+), else the Modelfile's
    `num_ctx`, else the server's default for its version (ollama_default_context), capped at the
    training window (v0.9.3+, llm/server.go)."""
    shows = shows or {}
    ps_items = _dicts(running.get("models")) if isinstance(running, dict) else None
    out = []
    for it in tags:
        name = ollama_name(it)
        if name is None:
            continue
        m = ModelInfo(id=name, provider=provider)
        _set(m, "size_bytes", _int(it.get("size")), "/api/tags size")
        details = _obj(it.get("details"))
        show = _obj(shows.get(name))
        if isinstance(show.get("details"), dict):
            details = {**details, **{k: v for k, v in show["details"].items() if v not in (None, "")}}
            dsrc = "/api/show details"
        else:
            dsrc = "/api/tags details"
        info = _obj(show.get("model_info"))
        count = _int(info.get("general.parameter_count"))
        if count:
            _set(m, "params_b", round(count / 1e9, 3), "/api/show model_info.general.parameter_count")
        else:
            _set(m, "params_b", parse_params(_str(details.get("parameter_size"))), f"{dsrc}.parameter_size")
        _set(
            m,
            "quantization",
            normalise_quant(_str(details.get("quantization_level"))),
            f"{dsrc}.quantization_level",
        )
        _set(m, "family", _str(details.get("family")), f"{dsrc}.family")
        caps = show.get("capabilities")
        if isinstance(caps, list):
            m.capabilities = [c for c in caps if isinstance(c, str)]
            m.source["capabilities"] = "/api/show capabilities"
            _set(m, "tool_use", "tools" in m.capabilities, "/api/show capabilities")
            if "embedding" in m.capabilities and "completion" not in m.capabilities:
                m.type = "embedding"
            elif "vision" in m.capabilities:
                m.type = "vlm"
            elif "completion" in m.capabilities:
                m.type = "llm"
            else:
                m.type = "unknown"
            m.source["type"] = "/api/show capabilities"
        else:
            m.type = "unknown"
        if ollama_is_cloud(it):
            m.cloud = True
            m.source["cloud"] = "/api/tags remote_host"
        running_entry = ollama_find(ps_items, name) if ps_items is not None else None
        if ps_items is not None:
            _set(m, "loaded", running_entry is not None, "/api/ps")
        arch = _str(info.get("general.architecture"))
        key = f"{arch}.context_length" if arch else None
        if key is None or key not in info:
            key = next((k for k in info if k.endswith(".context_length")), None)
        if key is not None:
            _set(m, "context_trained", _int(info.get(key)), f"/api/show model_info.{key}")
        ctx = _int(running_entry.get("context_length")) if running_entry else None
        if ctx:
            _set(m, "context_length", ctx, "/api/ps context_length")
        elif not m.cloud:  # a cloud model runs at ollama.com's context, not this server's default
            params_text = show.get("parameters")
            hit = _NUM_CTX_RE.search(params_text) if isinstance(params_text, str) else None
            usable: int | None
            if hit:
                usable, src = int(hit.group(1)), "/api/show parameters num_ctx"
            else:
                usable, src = ollama_default_context(version)
                m.context_is_floor = ollama_context_is_floor(version)
            if usable and m.context_trained and usable > m.context_trained:
                usable, src = m.context_trained, f"{src}, capped at the training window"
                m.context_is_floor = False  # the training window caps it: exact
            _set(m, "context_length", usable, src)
        out.append(fill_estimates(m))
    return out


# ---------------------------------------------------------------------------------------------
# llama.cpp llama-server


def is_llamacpp_props(payload: Json) -> bool:
    return isinstance(payload, dict) and (
        "default_generation_settings" in payload or "build_info" in payload or "total_slots" in payload
    )


def llamacpp_props_facts(props: Json) -> dict[str, Any]:
    """The few /props facts worth keeping on the Provider (slots, model path, per-slot context)."""
    if not isinstance(props, dict):
        return {}
    facts: dict[str, Any] = {}
    for key in ("total_slots", "model_path", "build_info", "is_sleeping"):
        if props.get(key) is not None:
            facts[key] = props[key]
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict) and _int(settings.get("n_ctx")):
        facts["n_ctx"] = _int(settings.get("n_ctx"))
    return facts


def llamacpp_state(item: dict) -> str | None:
    """Router mode's per-model `status` ("loaded", "unloaded", ...), None for a single-model server."""
    status = item.get("status")
    state = status.get("value") if isinstance(status, dict) else status
    return state if isinstance(state, str) else None


def parse_llamacpp(
    items: list[dict], provider: str, props: Json = None, props_by_id: dict[str, Json] | None = None
) -> list[ModelInfo]:
    """Models of a llama-server: `props` is GET /props of a single-model server; in router mode
    (several models) `props_by_id` holds GET /props?model=<id> for the models that are loaded."""
    src = "/v1/models"
    single = len(items) == 1
    out = []
    for it in items:
        mid = _str(it.get("id"))
        if mid is None:
            continue
        mine = (props_by_id or {}).get(mid)
        if mine is None and single:
            mine = props
        mine = mine if isinstance(mine, dict) else {}
        psrc = "/props?model=" if props_by_id and mid in props_by_id else "/props"
        n_ctx = llamacpp_props_facts(mine).get("n_ctx")
        caps = _obj(mine.get("chat_template_caps"))
        modalities = _obj(mine.get("modalities"))
        m = ModelInfo(id=mid, provider=provider, type="unknown")
        meta = it.get("meta") if isinstance(it.get("meta"), dict) else None
        if meta is not None:
            n_params = _int(meta.get("n_params"))
            if n_params:
                _set(m, "params_b", round(n_params / 1e9, 3), f"{src} meta.n_params")
            _set(m, "size_bytes", _int(meta.get("size")), f"{src} meta.size")
            if n_params and m.size_bytes:
                bits = round(m.size_bytes * 8 / n_params, 2)
                _set(m, "quant_bits", bits, f"{src} meta.size / meta.n_params")
        # The context a request can use: the slot's runtime n_ctx (/props), else the loaded context
        # (meta.n_ctx, newer servers), else the training context.
        if meta is not None:
            _set(m, "context_trained", _int(meta.get("n_ctx_train")), f"{src} meta.n_ctx_train")
        if n_ctx:
            _set(m, "context_length", n_ctx, f"{psrc} default_generation_settings.n_ctx")
        elif meta is not None and _int(meta.get("n_ctx")):
            _set(m, "context_length", _int(meta.get("n_ctx")), f"{src} meta.n_ctx")
        elif meta is not None:
            _set(m, "context_length", _int(meta.get("n_ctx_train")), f"{src} meta.n_ctx_train")
        state = llamacpp_state(it)
        if state is not None:
            _set(m, "loaded", state == "loaded", f"{src} status")
        elif meta is not None:
            _set(m, "loaded", True, f"{src} meta (present once the model is loaded)")
        arch = _obj(it.get("architecture"))
        inputs = arch.get("input_modalities")
        if isinstance(inputs, list) and "image" in inputs:
            m.type = "vlm"
            m.source["type"] = f"{src} architecture.input_modalities"
        elif modalities.get("vision") is True:
            m.type = "vlm"
            m.source["type"] = f"{psrc} modalities.vision"
        quant = quant_from_name(mid)
        if quant is None and isinstance(mine.get("model_path"), str):
            quant = quant_from_name(mine["model_path"])
        _set(m, "quantization", quant, "name")
        if isinstance(caps.get("supports_tool_calls"), bool):
            _set(m, "tool_use", caps["supports_tool_calls"], f"{psrc} chat_template_caps.supports_tool_calls")
        out.append(fill_estimates(m))
    return out


# ---------------------------------------------------------------------------------------------
# vLLM and plain OpenAI-compatible servers


def parse_vllm(items: list[dict], provider: str) -> list[ModelInfo]:
    src = "/v1/models"
    out = []
    for it in items:
        mid = _str(it.get("id"))
        if mid is None:
            continue
        m = ModelInfo(id=mid, provider=provider, type="unknown")
        _set(m, "context_length", _int(it.get("max_model_len")), f"{src} max_model_len")
        # vLLM lists only what it serves, and it serves only what it has loaded.
        _set(m, "loaded", True, f"{src} (vLLM lists only loaded models)")
        if _str(it.get("parent")):
            m.capabilities = ["lora"]
        # A served name (--served-model-name) may hide the checkpoint; `root` often names its size.
        root = _str(it.get("root"))
        if root and root != mid:
            if m.params_b is None and params_from_name(mid) is None:
                _set(m, "params_b", params_from_name(root), f"name ({src} root)")
            if m.quantization is None and quant_from_name(mid) is None:
                _set(m, "quantization", quant_from_name(root), f"name ({src} root)")
        fill_estimates(m)
        out.append(m)
    return out


def parse_openai(items: list[dict], provider: str) -> list[ModelInfo]:
    out = []
    for it in items:
        mid = _str(it.get("id"))
        if mid is None:
            continue
        out.append(fill_estimates(ModelInfo(id=mid, provider=provider, type="unknown")))
    return out
