"""What discovery knows about a server and its models; shared by discovery, engine and report."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Server kinds discovery can recognise from their native endpoints.
LMSTUDIO = "lmstudio"
OLLAMA = "ollama"
LLAMACPP = "llamacpp"
VLLM = "vllm"
OPENAI = "openai"  # anything else that speaks /v1/models + /v1/chat/completions
KINDS = (LMSTUDIO, OLLAMA, LLAMACPP, VLLM, OPENAI)


def is_loopback(host_or_url: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1 (given a host name or a URL): proxies are skipped there."""
    host = urlsplit(host_or_url).hostname if "://" in host_or_url else host_or_url
    host = (host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ModelInfo:
    """One model as a provider exposes it. Unknown facts are None, never guessed zeros."""

    id: str  # the name to send as `model`
    provider: str  # Provider.name
    type: str = "llm"  # llm | vlm | embedding | unknown
    size_bytes: int | None = None
    size_estimated: bool = False  # True when size came from params x quantization bits
    params_b: float | None = None  # parameters, in billions
    quantization: str | None = None  # e.g. Q4_K_M, 4bit, fp16
    quant_bits: float | None = None  # bits per weight used for estimates
    context_length: int | None = None  # the context a request can use (runtime, when known)
    context_trained: int | None = None  # the model's training window, when the server tells it apart
    context_is_floor: bool = False  # context_length is only a floor until the model is loaded
    loaded: bool | None = None
    cloud: bool = False  # listed by a local server but run remotely (Ollama cloud models)
    tool_use: bool | None = None  # the server says the model was trained for / supports tools
    capabilities: list[str] = field(default_factory=list)
    family: str | None = None
    source: dict[str, str] = field(default_factory=dict)  # fact name -> endpoint it came from

    @property
    def key(self) -> str:
        """Unique across providers: `provider/model`."""
        return f"{self.provider}/{self.id}"

    @property
    def size_gb(self) -> float | None:
        return None if self.size_bytes is None else self.size_bytes / 1e9

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Provider:
    """A server that answers the OpenAI-compatible API, as discovered."""

    name: str  # unique label, e.g. "lmstudio@127.0.0.1:1234"
    kind: str  # one of KINDS
    base_url: str  # ends without a slash; the OpenAI routes live under `{base_url}/v1`
    api_key: str | None = None
    version: str | None = None
    models: list[ModelInfo] = field(default_factory=list)
    native: dict[str, Any] = field(default_factory=dict)  # extra facts (e.g. llama.cpp /props)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "version": self.version,
            "native": self.native,
            "models": [m.to_dict() for m in self.models],
        }


@dataclass
class Selection:
    """Discovery's verdict: which models a run tests, in order, and why the others are left out."""

    providers: list[Provider]
    selected: list[ModelInfo]  # in preference order
    excluded: list[tuple[ModelInfo, str]]  # (model, reason)
    probed: list[str]  # every base URL tried
    unreachable: dict[str, str] = field(default_factory=dict)  # base URL -> why

    def to_event(self) -> dict[str, Any]:
        return {
            "providers": [p.to_dict() for p in self.providers],
            "selected": [m.key for m in self.selected],
            "excluded": [{"model": m.key, "reason": r} for m, r in self.excluded],
            "probed": list(self.probed),
            "unreachable": dict(self.unreachable),
        }
