"""vLLM as the simulator's vllm flavor plays it: /metrics and the error chunk inside a stream.

Read in the Python source of the vLLM wheels on PyPI (0.4.3 .. 0.34.0); thresholds in versions.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from soaktui.simulator import versions as v

KV_CAPACITY_CONTEXTS = 4  # simulator choice: a model's KV cache holds 4 full contexts of tokens


@dataclass
class ModelCounters:
    prompt_tokens: int = 0
    generation_tokens: int = 0
    running: int = 0
    running_tokens: int = 0  # prompt + planned completion of the requests running now
    finished: dict[str, int] = field(default_factory=dict)  # finished_reason -> count
    created: float = 0.0


def stream_error(version: tuple[int, ...], message: str) -> bytes:
    """The chunk a failed generation writes into a stream, then `data: [DONE]` (chat serving
    chat_completion_stream_generator: `except Exception` -> create_streaming_error_response)."""
    if version >= v.VLLM_CLASSIFIED_STREAM_ERRORS:
        # the exception object is classified: GenerationError("Internal server error") -> 500
        err: dict[str, Any] = {
            "message": "Internal server error",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    else:
        # create_streaming_error_response(str(e)): always BadRequestError/400
        err = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
        if version < v.VLLM_NESTED_ERRORS:
            err = {"object": "error", **err}  # ErrorResponse had `object: "error"` up to 0.10.0
    if version >= v.VLLM_COMPACT_STREAM_ERRORS:
        data = orjson.dumps({"error": err})  # 0.34: ErrorResponse.model_dump_json(), compact
    else:
        data = json.dumps({"error": err}).encode()  # json.dumps: ", " and ": " separators
    return b"data: " + data + b"\n\ndata: [DONE]\n\n"


def metrics_text(version: tuple[int, ...], models: dict[str, tuple[int, ModelCounters]]) -> str:
    """GET /metrics in prometheus_client's text format: V1 names (vllm/v1/metrics/loggers.py,
    0.34.0) with the `model_name` and `engine` labels; older names per versions.py.
    `models`: served name -> (max_model_len, counters)."""
    lines: list[str] = []
    v1 = version >= v.VLLM_ENGINE_LABEL

    def label(name: str, extra: str = "") -> str:
        # prometheus_client keeps the declared order: labelnames = ["model_name", "engine"] (+ extras)
        base = f'model_name="{name}",engine="0"' if v1 else f'model_name="{name}"'
        return "{" + (f"{base},{extra}" if extra else base) + "}"

    def family(metric: str, kind: str, help_text: str, rows: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for labels, value in rows:
            lines.append(f"{metric}{labels} {float(value)!r}")

    items = list(models.items())
    family(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        [(label(n), c.running) for n, (_, c) in items],
    )
    family(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        [(label(n), 0) for n, _ in items],
    )
    usage = [(label(n), min(1.0, c.running_tokens / (ctx * KV_CAPACITY_CONTEXTS))) for n, (ctx, c) in items]
    if version >= v.VLLM_KV_CACHE_METRIC:
        family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", usage)
    if version < v.VLLM_GPU_CACHE_GONE:
        family("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", usage)
    if version < v.VLLM_AVG_THROUGHPUT_GONE:
        family(
            "vllm:avg_prompt_throughput_toks_per_s",
            "gauge",
            "Average prefill throughput in tokens/s.",
            [(label(n), 0) for n, _ in items],
        )
        family(
            "vllm:avg_generation_throughput_toks_per_s",
            "gauge",
            "Average generation throughput in tokens/s.",
            [(label(n), 0) for n, _ in items],
        )
    for metric, attr, help_text in (
        ("vllm:prompt_tokens", "prompt_tokens", "Number of prefill tokens processed."),
        ("vllm:generation_tokens", "generation_tokens", "Number of generation tokens processed."),
    ):
        lines.append(f"# HELP {metric}_total {help_text}")
        lines.append(f"# TYPE {metric}_total counter")
        for n, (_, c) in items:
            lines.append(f"{metric}_total{label(n)} {float(getattr(c, attr))!r}")
        for n, (_, c) in items:
            lines.append(f"{metric}_created{label(n)} {c.created!r}")
    lines.append("# HELP vllm:request_success_total Count of successfully processed requests.")
    lines.append("# TYPE vllm:request_success_total counter")
    for n, (_, c) in items:
        for reason in ("stop", "length", "abort"):
            labels = label(n, 'finished_reason="' + reason + '"')
            lines.append(f"vllm:request_success_total{labels} {float(c.finished.get(reason, 0))!r}")
    return "\n".join(lines) + "\n"
