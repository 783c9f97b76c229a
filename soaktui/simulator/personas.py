"""The simulated models ("personas") the built-in simulator serves.

A persona is a set of simulation parameters, not a measurement: how big the model claims to be,
how long its context is, how fast it answers and how it formats tool calls. The figures are chosen
to resemble common local models so that discovery, rotation and the report have something realistic
to chew on, and every id starts with `sim-` so nobody mistakes them for real models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from soaktui.simulator.faults import FaultPlan

LLM = "llm"
EMBEDDING = "embedding"

TOOL_STYLES = ("native", "hermes", "llama3", "mistral", "none")

# Bits per weight of common GGUF quantizations, used to derive the file size of a persona.
QUANT_BITS = {"Q4_K_M": 4.85, "Q4_0": 4.55, "Q5_K_M": 5.69, "Q8_0": 8.5, "F16": 16.0}


# Cold load time of a model that is not loaded: a fixed start-up plus reading the weights.
LOAD_BASE_MS = 1000.0
LOAD_MS_PER_GB = 500.0


def gguf_size(params_b: float, quantization: str) -> int:
    """File size in bytes of a GGUF with `params_b` billion weights at `quantization`."""
    return int(params_b * 1e9 * QUANT_BITS[quantization] / 8)


@dataclass(frozen=True)
class Persona:
    """One simulated model and how it behaves."""

    id: str
    type: str = LLM  # llm | embedding
    params_b: float = 7.0
    quantization: str = "Q4_K_M"
    size_bytes: int = 0  # 0: derived from params_b and quantization
    context_length: int = 8192
    ttft_ms: float = 150.0  # time to first token for an empty prompt
    prompt_tps: float = 1000.0  # prompt processing: TTFT grows by prompt_tokens / prompt_tps
    tps: float = 40.0  # generation speed, tokens per second
    tool_style: str = "none"  # native | hermes | llama3 | mistral | none (names the tool in prose)
    arch: str = "llama"  # GGUF architecture name (Ollama's model_info keys use it)
    family: str = "llama"
    publisher: str = "soaktui-sim"
    loaded: bool = True
    default_tokens: tuple[int, int] = (40, 200)  # output length range when the prompt names none
    compliance: float = 0.9  # share of requests that get the form the prompt asks for (forms.py)
    json_accuracy: float = 0.9  # share of structured-output answers that are valid JSON for the schema
    tool_accuracy: float = 1.0  # share of tool-calling answers made without a mistake (toolplay.py)
    load_ms: float | None = None  # cold load time (divided by `speed`); None: derived from the size
    num_ctx: int | None = None  # Ollama: `PARAMETER num_ctx` in the model's Modelfile (/api/show parameters)
    faults: FaultPlan = field(default_factory=FaultPlan)

    def __post_init__(self) -> None:
        if self.type not in (LLM, EMBEDDING):
            raise ValueError(f"persona {self.id}: type must be {LLM!r} or {EMBEDDING!r}")
        if self.tool_style not in TOOL_STYLES:
            raise ValueError(f"persona {self.id}: tool_style must be one of {', '.join(TOOL_STYLES)}")
        if self.tps <= 0 or self.prompt_tps <= 0 or self.ttft_ms < 0 or self.context_length <= 0:
            raise ValueError(f"persona {self.id}: speeds and context length must be positive")
        if not 0.0 <= self.compliance <= 1.0:
            raise ValueError(f"persona {self.id}: compliance must be between 0 and 1")
        if not 0.0 <= self.json_accuracy <= 1.0:
            raise ValueError(f"persona {self.id}: json_accuracy must be between 0 and 1")
        if not 0.0 <= self.tool_accuracy <= 1.0:
            raise ValueError(f"persona {self.id}: tool_accuracy must be between 0 and 1")
        if self.num_ctx is not None and self.num_ctx <= 0:
            raise ValueError(f"persona {self.id}: num_ctx must be positive")
        if self.load_ms is not None and self.load_ms < 0:
            raise ValueError(f"persona {self.id}: load_ms must not be negative")
        if self.size_bytes == 0 and self.quantization in QUANT_BITS:
            object.__setattr__(self, "size_bytes", gguf_size(self.params_b, self.quantization))
        if self.load_ms is None:
            object.__setattr__(self, "load_ms", LOAD_BASE_MS + self.size_bytes / 1e9 * LOAD_MS_PER_GB)

    @property
    def is_chat(self) -> bool:
        return self.type == LLM

    @property
    def parameter_count(self) -> int:
        return int(round(self.params_b * 1e9))

    @property
    def parameter_size(self) -> str:
        """Ollama's human-readable parameter size: `7.6B`, `137M`."""
        if self.params_b < 1:
            return f"{self.params_b * 1000:.0f}M"
        return f"{self.params_b:.1f}B"

    def with_faults(self, plan: FaultPlan) -> Persona:
        return replace(self, faults=plan)


def default_personas() -> list[Persona]:
    """The standard set: six chat models of different sizes and habits, plus one embedding model."""
    return [
        Persona(
            id="sim-qwen2.5-7b-instruct",
            compliance=0.95,
            json_accuracy=0.92,
            tool_accuracy=0.9,
            params_b=7.6,
            context_length=32768,
            ttft_ms=120,
            prompt_tps=1500,
            tps=45,
            tool_style="native",
            arch="qwen2",
            family="qwen2",
        ),
        Persona(
            id="sim-llama-3.1-8b-instruct",
            compliance=0.85,
            json_accuracy=0.85,
            tool_accuracy=0.8,
            params_b=8.0,
            context_length=8192,
            ttft_ms=150,
            prompt_tps=1200,
            tps=40,
            tool_style="llama3",
        ),
        Persona(
            id="sim-phi-3-mini-4k-instruct",
            compliance=0.6,
            json_accuracy=0.55,
            params_b=3.8,
            context_length=4096,
            ttft_ms=60,
            prompt_tps=3000,
            tps=80,
            tool_style="none",
            arch="phi3",
            family="phi3",
            default_tokens=(30, 150),
        ),
        Persona(
            id="sim-mistral-7b-instruct-v0.3",
            compliance=0.8,
            json_accuracy=0.75,
            tool_accuracy=0.7,
            params_b=7.2,
            context_length=32768,
            ttft_ms=130,
            prompt_tps=1400,
            tps=42,
            tool_style="mistral",
        ),
        Persona(
            id="sim-qwen2.5-14b-instruct",
            compliance=0.95,
            json_accuracy=0.95,
            tool_accuracy=0.95,
            params_b=14.8,
            context_length=32768,
            ttft_ms=260,
            prompt_tps=600,
            tps=22,
            tool_style="hermes",
            arch="qwen2",
            family="qwen2",
        ),
        Persona(
            id="sim-nomic-embed-text-v1.5",
            type=EMBEDDING,
            params_b=0.137,
            quantization="F16",
            context_length=2048,
            ttft_ms=20,
            prompt_tps=20000,
            tps=1000,
            arch="nomic-bert",
            family="nomic-bert",
        ),
        Persona(
            id="sim-llama-3.3-70b-instruct",
            compliance=0.97,
            json_accuracy=0.97,
            tool_accuracy=0.97,
            params_b=70.6,
            context_length=131072,
            ttft_ms=900,
            prompt_tps=150,
            tps=6,
            tool_style="llama3",
            loaded=False,
        ),
    ]


def flaky_personas() -> list[Persona]:
    """The default set with per-model fault rates, so a demo run shows failures being classified."""
    flaky = {
        "sim-llama-3.1-8b-instruct": FaultPlan(rates={"http_503": 0.03, "drop": 0.02}),
        "sim-mistral-7b-instruct-v0.3": FaultPlan(rates={"http_429": 0.04, "malformed": 0.02}),
        "sim-qwen2.5-14b-instruct": FaultPlan(rates={"stall": 0.02, "http_500": 0.02}, stall_s=3.0),
    }
    return [p.with_faults(flaky[p.id]) if p.id in flaky else p for p in default_personas()]


PERSONA_SETS = {"default": default_personas, "flaky": flaky_personas}


def persona_set(name: str) -> list[Persona]:
    """A named persona set; raises ValueError naming the known sets."""
    try:
        return PERSONA_SETS[name]()
    except KeyError:
        raise ValueError(f"unknown persona set {name!r} (known: {', '.join(PERSONA_SETS)})") from None
