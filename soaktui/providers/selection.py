"""Which discovered models a run tests, in which order, and why the others are left out.

Servers describe their models unevenly: LM Studio and Ollama give a file size, vLLM and plain
OpenAI-compatible servers give only a name. To apply `--max-size-gb` evenly this module estimates a
size from parameters x quantization bits when none is given (and marks it estimated), reads the
parameter count and quantization off a model id as a last resort (marked source "name"), and never
invents a size it cannot derive: such a model is kept with size None and the verdict says so.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from soaktui.providers.types import ModelInfo, Provider, Selection

# Bits per weight of each quantization, used only to *estimate* a size when a server gives none.
# GGUF k-/i-quants: the measured bits/weight of whole files (every tensor, including the ones a
# mix keeps at higher precision) for Llama-3.1-8B in llama.cpp's tools/quantize/README.md.
# Legacy GGUF blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the bare k-quant types: block size in
# bytes x 8 / weights per block from ggml's block layouts (e.g. Q4_0 = 18 bytes per 32 weights).
# Q3_K_M is not in that table: interpolated between Q3_K_S and Q3_K_L.
# MLX "Nbit": N bits plus an fp16 scale and bias per group of 64 weights = N + 0.5.
# AWQ / GPTQ int4 (group size 128, fp16 scales, packed zeros): ~4.16, rounded up to 4.25 because
# embeddings and the output head usually stay 16-bit. FP8/INT8 checkpoints: 8 bits plus scales.
# These are approximations for a size filter, not measurements; estimated sizes say so.
QUANT_BITS: dict[str, float] = {
    "F32": 32.0,
    "FP32": 32.0,
    "F16": 16.0,
    "FP16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.70,
    "Q5_K_S": 5.57,
    "Q5_K": 5.5,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.67,
    "Q4_K": 4.5,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "IQ4_NL": 4.68,
    "IQ4_XS": 4.46,
    "Q3_K_L": 4.30,
    "Q3_K_M": 3.97,
    "Q3_K_S": 3.64,
    "Q3_K": 3.44,
    "IQ3_M": 3.76,
    "IQ3_S": 3.66,
    "IQ3_XS": 3.50,
    "IQ3_XXS": 3.25,
    "Q2_K": 3.16,
    "Q2_K_S": 2.97,
    "IQ2_M": 2.93,
    "IQ2_S": 2.74,
    "IQ2_XS": 2.59,
    "IQ2_XXS": 2.38,
    "IQ1_M": 2.15,
    "IQ1_S": 2.00,
    "8BIT": 8.5,
    "6BIT": 6.5,
    "5BIT": 5.5,
    "4BIT": 4.5,
    "3BIT": 3.5,
    "2BIT": 2.5,
    "AWQ": 4.25,
    "GPTQ": 4.25,
    "INT4": 4.25,
    "W4A16": 4.25,
    "INT8": 8.0,
    "W8A8": 8.0,
    "FP8": 8.0,
}

# llama.cpp's `general.file_type` names as some servers print them ("Q4_K - Medium").
_FTYPE_SUFFIX = {"MEDIUM": "M", "SMALL": "S", "LARGE": "L"}

# The preferred band: nominal "7B" to "14B" models. Nominal sizes round: Llama-2-7B has 6.74e9
# parameters and Qwen2.5-14B has 14.77e9, so the band is [6.5, 15.0) billion.
PREFERRED_MIN_B = 6.5
PREFERRED_MAX_B = 15.0

MAX_PARAMS_B = 1e6
_PARAMS_RE = re.compile(r"^\s*(?:(\d+)\s*[xX]\s*)?(\d+(?:\.\d+)?)\s*([KMBT])?\s*$", re.IGNORECASE)
_SCALE = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}
# In a model id: "7b", "1.5B", "135M", "8x7b", bounded so "q4_k_m", "v1.5", "4bit" and "a3b" do not match.
_NAME_PARAMS_RE = re.compile(r"(?<![a-z0-9.])((?:\d+x)?\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.IGNORECASE)
_NAME_QUANT_RE = re.compile(
    r"(?<![a-z0-9])("
    r"i?q\d(?:_[a-z0-9]+)*"  # Q4_K_M, IQ4_XS, Q8_0, UD-Q4_K_XL (the Q4_K_XL part)
    r"|b?f(?:16|32)|fp(?:8|16|32)"
    r"|\d+bit"
    r"|awq|gptq(?:-int[48])?|int[48]|w4a16|w8a8"
    r")(?![a-z0-9])",
    re.IGNORECASE,
)


def _basename(model_id: str) -> str:
    return re.split(r"[/\\]", model_id)[-1]


def parse_params(text: str | None) -> float | None:
    """Parameters in billions from a label: "7.6B" -> 7.6, "135M" -> 0.135, "7" -> 7.0.

    Mixture-of-experts labels count every expert: "8x7B" -> 56.0, because all experts' weights
    take memory. (Ollama reports Mixtral as "46.7B", its real total; the product is the best a
    label offers.) Returns None for anything else.
    """
    if not text:
        return None
    m = _PARAMS_RE.match(str(text))
    if not m:
        return None
    experts, number, unit = m.groups()
    value = float(number) * _SCALE[(unit or "B").upper()]
    if experts:
        value *= int(experts)
    # Nothing real is near a quadrillion parameters: refuse absurd labels (and inf) outright.
    return round(value, 6) if 0 < value < MAX_PARAMS_B else None


def params_from_name(model_id: str) -> float | None:
    """The first parameter count written in a model id ("qwen2.5-7b-instruct" -> 7.0), else None."""
    # Only the last path component: "org/model" prefixes carry no sizes worth trusting.
    m = _NAME_PARAMS_RE.search(_basename(model_id))
    return parse_params(m.group(1) + m.group(2)) if m else None


def normalise_quant(name: str | None) -> str | None:
    """A quantization label in one spelling: "q4_k_m" -> "Q4_K_M", "Q4_K - Medium" -> "Q4_K_M"."""
    if not name:
        return None
    text = str(name).strip()
    if not text:
        return None
    upper = text.upper()
    m = re.match(r"^(I?Q\d+(?:_[A-Z0-9]+)?)\s*-\s*([A-Z]+)$", upper)
    if m and m.group(2) in _FTYPE_SUFFIX:
        return f"{m.group(1)}_{_FTYPE_SUFFIX[m.group(2)]}"
    upper = upper.replace("-", "_") if upper.startswith(("Q", "IQ")) else upper
    m = re.match(r"^(?:MLX\s*)?(\d+)\s*_?BITS?$", upper)
    if m:
        return f"{m.group(1)}bit"
    return upper


def quant_bits(quantization: str | None) -> float | None:
    """Approximate bits per weight for a quantization label, or None when it is not known."""
    q = normalise_quant(quantization)
    if q is None:
        return None
    key = q.upper()
    if key.startswith("GPTQ") or key.startswith("AWQ"):
        key = "INT8" if "INT8" in key else "GPTQ"
    while key:
        if key in QUANT_BITS:
            return QUANT_BITS[key]
        # Variants such as Q4_K_XL fall back to their base type (Q4_K).
        if "_" not in key:
            return None
        key = key.rsplit("_", 1)[0]
    return None


def quant_from_name(model_id: str) -> str | None:
    """The quantization written in a model id or file name ("...-Q4_K_M.gguf" -> "Q4_K_M")."""
    base = _basename(model_id)
    base = re.sub(r"\.gguf$", "", base, flags=re.IGNORECASE)
    for m in _NAME_QUANT_RE.finditer(base):
        q = normalise_quant(m.group(1))
        if quant_bits(q) is not None:
            return q
    return None


def estimate_size_bytes(params_b: float | None, quantization: str | None) -> tuple[int | None, float | None]:
    """(estimated bytes, bits per weight used) from parameters x quantization bits; (None, bits) if unknown."""
    bits = quant_bits(quantization)
    if params_b is None or params_b <= 0 or bits is None:
        return None, bits
    return int(params_b * 1e9 * bits / 8), bits


def fill_estimates(model: ModelInfo) -> ModelInfo:
    """Complete what the server did not say: params and quantization from the id, then a size estimate.

    Every fact filled here is marked in `model.source` ("name" or "estimate ..."), and nothing a
    server reported is overwritten.
    """
    if model.params_b is None:
        p = params_from_name(model.id)
        if p is not None:
            model.params_b = p
            model.source["params_b"] = "name"
    if model.quantization is None:
        q = quant_from_name(model.id)
        if q is not None:
            model.quantization = q
            model.source["quantization"] = "name"
    if model.quant_bits is None and model.quantization is not None:
        bits = quant_bits(model.quantization)
        if bits is not None:
            model.quant_bits = bits
            model.source.setdefault("quant_bits", "table (approximate bits per weight)")
    if model.size_bytes is None:
        size, bits = estimate_size_bytes(model.params_b, model.quantization)
        if size is not None:
            model.size_bytes = size
            model.size_estimated = True
            model.source["size_bytes"] = f"estimate: {model.params_b:g}B params x {bits:g} bits"
    return model


def is_embedding(model: ModelInfo) -> bool:
    """True for models that only embed: no chat completions to soak."""
    if model.type == "embedding":
        return True
    caps = {c.lower() for c in model.capabilities}
    if "embedding" in caps and "completion" not in caps:
        return True
    return model.type in ("unknown", "") and "embed" in model.id.lower()


def _matches(pattern: str, model: ModelInfo) -> bool:
    pat = pattern.strip().lower()
    if not pat:
        return False
    names = (model.id.lower(), model.key.lower())
    if any(ch in pat for ch in "*?["):
        return any(fnmatch.fnmatchcase(n, pat) for n in names)
    return any(pat in n for n in names)


def _fmt_gb(value: float) -> str:
    return f"{value:g}"


def _size_reason(model: ModelInfo, max_size_gb: float) -> str | None:
    gb = model.size_gb
    if gb is None or gb <= max_size_gb:
        return None
    est = " (estimated)" if model.size_estimated else ""
    return f"{gb:.1f} GB{est} over --max-size-gb {_fmt_gb(max_size_gb)}"


def preference_key(model: ModelInfo, provider_rank: int = 0) -> tuple:
    """Sort key: 7B-14B ascending, then smaller largest first, then larger smallest first, unknown last."""
    p = model.params_b
    if p is None:
        group, within = 3, 0.0
    elif PREFERRED_MIN_B <= p < PREFERRED_MAX_B:
        group, within = 0, p
    elif p < PREFERRED_MIN_B:
        group, within = 1, -p
    else:
        group, within = 2, p
    return (group, within, provider_rank, model.provider, model.id)


CLOUD_REASON = "cloud model, runs remotely (--include-cloud to test it)"


def select_models(
    providers: Sequence[Provider],
    *,
    max_size_gb: float = 15.0,
    include_cloud: bool = False,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    probed: Iterable[str] = (),
    unreachable: dict[str, str] | None = None,
) -> Selection:
    """Filter and order every model of every provider; each left-out model gets one reason.

    Filters apply in this order, the first that matches gives the reason: embedding model, cloud
    model (unless `include_cloud`: it runs remotely, so it says nothing about this machine), not
    matched by --models, --exclude, a server-side note (e.g. LM Studio not serving the model on
    /v1), size over --max-size-gb (not applied to cloud models: their listed size is a manifest's).
    Models of unknown size are kept.
    """
    include = [p for p in include if p and p.strip()]
    exclude = [p for p in exclude if p and p.strip()]
    selected: list[tuple[tuple, ModelInfo]] = []
    excluded: list[tuple[ModelInfo, str]] = []
    for rank, provider in enumerate(providers):
        unservable = provider.native.get("unservable") or {}
        for model in provider.models:
            reason: str | None = None
            if is_embedding(model):
                reason = "embedding model"
            elif model.cloud and not include_cloud:
                reason = CLOUD_REASON
            elif include and not any(_matches(p, model) for p in include):
                reason = "not matched by --models"
            else:
                hit = next((p for p in exclude if _matches(p, model)), None)
                if hit is not None:
                    reason = f"excluded by --exclude '{hit}'"
                elif model.id in unservable:
                    reason = str(unservable[model.id])
                elif not model.cloud:
                    reason = _size_reason(model, max_size_gb)
            if reason is None:
                selected.append((preference_key(model, rank), model))
            else:
                excluded.append((model, reason))
    selected.sort(key=lambda item: item[0])
    return Selection(
        providers=list(providers),
        selected=[m for _, m in selected],
        excluded=excluded,
        probed=list(probed),
        unreachable=dict(unreachable or {}),
    )


# ---------------------------------------------------------------------------------------------
# The `soaktui discover` table.

KIND_LABELS = {  # how the tables name each server kind
    "lmstudio": "LM Studio",
    "ollama": "Ollama",
    "llamacpp": "llama.cpp",
    "vllm": "vLLM",
    "openai": "OpenAI-compatible",
}


def format_params(params_b: float | None) -> str:
    if params_b is None:
        return "?"
    if params_b < 1:
        return f"{params_b * 1000:.0f}M"
    return f"{params_b:.1f}B" if params_b < 100 else f"{params_b:.0f}B"


def format_size(model: ModelInfo) -> str:
    gb = model.size_gb
    if gb is None:
        return "?"
    text = f"{gb:.2f} GB" if gb < 1 else f"{gb:.1f} GB"
    return f"{text} (est.)" if model.size_estimated else text


def _tokens(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def format_context(model: ModelInfo) -> str:
    """`trained/runtime` context in tokens (`128k/4k`): the training window and the context a request
    can use, which servers such as Ollama set far lower. `>=` marks a runtime context known only as a
    floor until the model is loaded; one figure when the two are the same or only one is known."""
    run = _tokens(model.context_length)
    if model.context_length and model.context_is_floor:
        run = ">=" + run
    if model.context_trained and model.context_trained != model.context_length:
        return f"{_tokens(model.context_trained)}/{run}"
    return run


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)] + [r[-1]]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def format_selection(selection: Selection) -> str:
    """The human table for `soaktui discover`: servers, every model with its facts and verdict."""
    lines: list[str] = []
    rank = {m.key: i + 1 for i, m in enumerate(selection.selected)}
    reasons = {m.key: r for m, r in selection.excluded}
    if selection.providers:
        lines.append(f"servers found ({len(selection.providers)}):")
        rows = []
        for p in selection.providers:
            label = KIND_LABELS.get(p.kind, p.kind)
            version = f" {p.version}" if p.version else ""
            n = len(p.models)
            rows.append([p.name, f"{label}{version}", p.base_url, f"{n} model{'s' if n != 1 else ''}"])
        lines.extend(_table(rows))
    else:
        lines.append("servers found: none")
    if selection.unreachable:
        lines.append("not reachable:")
        lines.extend(f"  {url}: {why}" for url, why in selection.unreachable.items())
    for p in selection.providers:
        lines.append("")
        lines.append(f"{p.name}:")
        if not p.models:
            lines.append("  (no models)")
            continue
        header = ["MODEL", "TYPE", "SIZE", "PARAMS", "QUANT", "CTX TRAINED/RUNTIME", "TOOLS", "LOADED", "VERDICT"]
        rows = [header]
        for m in sorted(p.models, key=lambda m: m.id):
            if m.key in rank:
                verdict = f"test #{rank[m.key]}"
                if m.size_bytes is None:
                    verdict += " (size unknown)"
            else:
                verdict = f"skip: {reasons.get(m.key, 'not selected')}"
            rows.append(
                [
                    m.id,
                    m.type if m.type and m.type != "unknown" else "?",
                    format_size(m),
                    format_params(m.params_b),
                    m.quantization or "?",
                    format_context(m),
                    _yes_no(m.tool_use),
                    _yes_no(m.loaded),
                    verdict,
                ]
            )
        lines.extend(_table(rows))
    lines.append("")
    total = sum(len(p.models) for p in selection.providers)
    if selection.selected:
        lines.append(f"a run would test {len(selection.selected)} of {total} models, in this order:")
        lines.extend(f"  {i + 1}. {m.key}" for i, m in enumerate(selection.selected))
    else:
        lines.append(f"a run would test none of {total} models")
    return "\n".join(lines)
