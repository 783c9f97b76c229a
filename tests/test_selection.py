"""Size estimates, name parsing, filters and the preference order of model selection."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from soaktui.providers.selection import (
    estimate_size_bytes,
    fill_estimates,
    format_context,
    format_params,
    format_selection,
    is_embedding,
    normalise_quant,
    params_from_name,
    parse_params,
    quant_bits,
    quant_from_name,
    select_models,
)
from soaktui.providers.types import ModelInfo, Provider

pytestmark = pytest.mark.unit


def model(mid: str, provider: str = "p@h:1", **kw) -> ModelInfo:
    return ModelInfo(id=mid, provider=provider, **kw)


def provider(name: str, models: list[ModelInfo], kind: str = "ollama", **kw) -> Provider:
    for m in models:
        m.provider = name
    return Provider(name=name, kind=kind, base_url=f"http://{name}", models=models, **kw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7.6B", 7.6),
        ("135M", 0.135),
        ("8x7B", 56.0),
        ("494.03M", 0.49403),
        ("70b", 70.0),
        ("7", 7.0),
        (" 13B ", 13.0),
        ("1T", 1000.0),
        ("", None),
        (None, None),
        ("unknown", None),
        ("0B", None),
        ("9" * 400 + "B", None),
    ],
)
def test_parse_params(text, expected):
    assert parse_params(text) == expected


@pytest.mark.parametrize(
    ("mid", "expected"),
    [
        ("qwen2.5-7b-instruct", 7.0),
        ("llama3:8b", 8.0),
        ("Qwen/Qwen2.5-14B-Instruct-AWQ", 14.0),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", 0.135),
        ("mixtral:8x7b", 56.0),
        ("deepseek-r1:1.5b", 1.5),
        ("Qwen3-30B-A3B", 30.0),
        ("../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 8.0),
        ("mlx-community/Llama-3.2-3B-Instruct-4bit", 3.0),
        ("text-embedding-nomic-embed-text-v1.5", None),
        ("phi-3-mini-4k-instruct", None),
        ("smollm2-tools", None),
        ("qwen2.5-coder", None),
    ],
)
def test_params_from_name(mid, expected):
    assert params_from_name(mid) == expected


@pytest.mark.parametrize(
    ("mid", "expected"),
    [
        ("../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("qwen2.5-7b-instruct-q8_0", "Q8_0"),
        ("mlx-community/Llama-3.2-3B-Instruct-4bit", "4bit"),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", "AWQ"),
        ("Qwen2.5-7B-Instruct-GPTQ-Int4", "GPTQ-INT4"),
        ("unsloth/Qwen3-8B-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("model-f16.gguf", "F16"),
        ("qwen2.5-7b-instruct", None),
        ("qwq-32b", None),
    ],
)
def test_quant_from_name(mid, expected):
    assert quant_from_name(mid) == expected


def test_quant_bits_and_normalisation():
    assert normalise_quant("q4_k_m") == "Q4_K_M"
    assert normalise_quant("Q4_K - Medium") == "Q4_K_M"
    assert normalise_quant("MLX 4bit") == "4bit"
    assert quant_bits("Q4_0") == 4.5 and quant_bits("Q4_1") == 5.0 and quant_bits("Q8_0") == 8.5
    assert quant_bits("Q4_K_M") == pytest.approx(4.89) and quant_bits("Q6_K") == pytest.approx(6.56)
    assert quant_bits("BF16") == 16 and quant_bits("F32") == 32
    assert quant_bits("4bit") == 4.5 and quant_bits("8bit") == 8.5
    assert quant_bits("AWQ") == 4.25 and quant_bits("GPTQ-INT4") == 4.25 and quant_bits("GPTQ-Int8") == 8.0
    assert quant_bits("Q4_K_XL") == 4.5  # unknown variant: its base type
    assert quant_bits("mystery") is None and quant_bits(None) is None


def test_estimate_size_bytes():
    assert estimate_size_bytes(7.6, "Q4_K_M") == (int(7.6e9 * 4.89 / 8), 4.89)
    assert estimate_size_bytes(8.0, "F16") == (16_000_000_000, 16.0)
    assert estimate_size_bytes(None, "Q4_0") == (None, 4.5)
    assert estimate_size_bytes(7.0, None) == (None, None)
    assert estimate_size_bytes(7.0, "mystery") == (None, None)


def test_fill_estimates_marks_sources_and_keeps_reported_facts():
    m = fill_estimates(model("qwen2.5-7b-instruct-q4_k_m"))
    assert m.params_b == 7.0 and m.source["params_b"] == "name"
    assert m.quantization == "Q4_K_M" and m.source["quantization"] == "name"
    assert m.size_estimated and m.size_bytes == int(7e9 * 4.89 / 8)
    assert m.source["size_bytes"].startswith("estimate: 7B params x 4.89 bits")
    reported = fill_estimates(model("qwen2.5-7b-instruct", size_bytes=123, params_b=7.6, quantization="Q8_0"))
    assert reported.size_bytes == 123 and not reported.size_estimated and reported.params_b == 7.6
    unknown = fill_estimates(model("my-favourite-model"))
    assert unknown.size_bytes is None and unknown.params_b is None and not unknown.size_estimated


def test_is_embedding_rules():
    assert is_embedding(model("a", type="embedding"))
    assert is_embedding(model("nomic", type="llm", capabilities=["embedding"]))
    assert not is_embedding(model("both", type="llm", capabilities=["embedding", "completion"]))
    assert is_embedding(model("nomic-embed-text:latest", type="unknown"))
    assert not is_embedding(model("nomic-embed-text:latest", type="llm"))  # the server says llm
    assert not is_embedding(model("llama3", type="unknown"))


def test_filters_and_reasons():
    models = [
        model("qwen2.5-7b-instruct", params_b=7.6, size_bytes=4_700_000_000),
        model("nomic-embed-text", type="embedding", params_b=0.137, size_bytes=274_000_000),
        model("llama3.3:70b", params_b=70.6, size_bytes=14_200_000_000, size_estimated=True),
        model("mixtral:8x22b", params_b=141.0, size_bytes=80_000_000_000),
        model("codellama:13b", params_b=13.0, size_bytes=7_400_000_000),
        model("mystery", params_b=None, size_bytes=None),
    ]
    p = provider("ollama@127.0.0.1:11434", models)
    sel = select_models([p], max_size_gb=14, exclude=["code*"])
    reasons = {m.id: r for m, r in sel.excluded}
    assert reasons == {
        "nomic-embed-text": "embedding model",
        "llama3.3:70b": "14.2 GB (estimated) over --max-size-gb 14",
        "mixtral:8x22b": "80.0 GB over --max-size-gb 14",
        "codellama:13b": "excluded by --exclude 'code*'",
    }
    assert [m.id for m in sel.selected] == ["qwen2.5-7b-instruct", "mystery"]  # unknown size is kept
    assert "size unknown" in format_selection(sel)


def test_include_patterns_substring_and_glob_on_id_or_key():
    p = provider(
        "lmstudio@127.0.0.1:1234",
        [
            model("qwen2.5-7b-instruct", params_b=7),
            model("llama-3.1-8b", params_b=8),
            model("phi-4", params_b=14),
        ],
        kind="lmstudio",
    )
    sel = select_models([p], include=["QWEN"])
    assert [m.id for m in sel.selected] == ["qwen2.5-7b-instruct"]
    assert {r for _, r in sel.excluded} == {"not matched by --models"}
    sel = select_models([p], include=["lmstudio@*/phi-*", "llama-3.?-8b"])
    assert [m.id for m in sel.selected] == ["llama-3.1-8b", "phi-4"]
    sel = select_models([p], include=["qwen*"], exclude=["qwen"])  # include first, then exclude
    assert sel.selected == [] and sel.excluded[0][1] == "excluded by --exclude 'qwen'"
    assert select_models([p], include=["", "  "]).selected != []  # blank patterns are ignored


def test_preference_order():
    sizes = {
        "a": 0.5,
        "b": 3.0,
        "c": 7.6,
        "d": 14.8,
        "e": 32.0,
        "f": 70.0,
        "g": None,
        "h": 8.0,
        "i": 1.5,
        "j": 6.7,
    }
    p = provider("vllm@h:8000", [model(k, params_b=v) for k, v in sizes.items()], kind="vllm")
    order = [m.id for m in select_models([p], max_size_gb=1000).selected]
    # 7B-14B ascending, then smaller (largest first), then larger (smallest first), unknown last.
    assert order == ["j", "c", "h", "d", "b", "i", "a", "e", "f", "g"]


def test_tie_break_is_provider_then_id_and_stable():
    a = provider("a@h:1", [model("m2", params_b=7), model("m1", params_b=7)])
    b = provider("b@h:2", [model("m0", params_b=7), model("m1", params_b=7)])
    keys = [m.key for m in select_models([a, b]).selected]
    assert keys == ["a@h:1/m1", "a@h:1/m2", "b@h:2/m0", "b@h:2/m1"]
    assert keys == [m.key for m in select_models([a, b]).selected]


def test_unservable_note_from_provider_becomes_reason():
    p = provider("lmstudio@h:1234", [model("x-7b", params_b=7)], kind="lmstudio")
    p.native["unservable"] = {"x-7b": "not served on /v1/models (LM Studio JIT loading off? load it first)"}
    sel = select_models([p])
    assert sel.selected == [] and sel.excluded[0][1].startswith("not served on /v1/models")


def test_cloud_models_are_excluded_with_their_reason_unless_asked_for():
    cloud = model("gpt-oss:120b-cloud", params_b=116.8, size_bytes=384)
    cloud.cloud = True
    local = model("qwen2.5:7b", params_b=7.6)
    p = provider("ollama@h:11434", [cloud, local], kind="ollama")
    sel = select_models([p])
    assert [m.id for m in sel.selected] == ["qwen2.5:7b"]
    assert sel.excluded == [(cloud, "cloud model, runs remotely (--include-cloud to test it)")]
    assert "skip: cloud model, runs remotely" in format_selection(sel)
    # Opted in: tested, and its manifest-sized `size` is no reason to skip it either way.
    sel = select_models([p], include_cloud=True, max_size_gb=1)
    assert [m.id for m in sel.selected] == ["qwen2.5:7b", "gpt-oss:120b-cloud"]


def test_context_column_shows_trained_and_runtime():
    m = model("llama3.1:8b", context_length=4096)
    m.context_trained = 131072
    assert format_context(m) == "128k/4k"
    m.context_is_floor = True  # e.g. Ollama 0.15.5+'s VRAM-tier default, before the model is loaded
    assert format_context(m) == "128k/>=4k"
    same = model("x", context_length=8192)
    same.context_trained = 8192
    assert format_context(same) == "8k"
    assert format_context(model("y")) == "?"
    assert format_context(model("z", context_length=5000)) == "5000"


def test_selection_event_and_table():
    p = provider(
        "ollama@127.0.0.1:11434",
        [
            model(
                "llama3:latest",
                type="llm",
                params_b=8.03,
                size_bytes=3_825_819_519,
                quantization="Q4_0",
                context_length=8192,
                tool_use=False,
                loaded=True,
            ),
            model("nomic-embed-text:latest", type="embedding", params_b=0.137, size_bytes=274_302_450),
        ],
        version="0.6.5",
    )
    sel = select_models(
        [p],
        probed=["http://127.0.0.1:11434", "http://127.0.0.1:1234"],
        unreachable={"http://127.0.0.1:1234": "connection refused"},
    )
    event = orjson.loads(orjson.dumps(sel.to_event()))
    assert event["selected"] == ["ollama@127.0.0.1:11434/llama3:latest"]
    assert event["excluded"] == [
        {"model": "ollama@127.0.0.1:11434/nomic-embed-text:latest", "reason": "embedding model"}
    ]
    assert event["probed"] == ["http://127.0.0.1:11434", "http://127.0.0.1:1234"]
    text = format_selection(sel)
    row = next(line for line in text.splitlines() if line.strip().startswith("llama3:latest"))
    for cell in ("llm", "3.8 GB", "8.0B", "Q4_0", "8k", "no", "yes", "test #1"):
        assert cell in row
    emb_row = next(line for line in text.splitlines() if line.strip().startswith("nomic-embed-text"))
    assert "0.27 GB" in emb_row and "137M" in emb_row and "skip: embedding model" in emb_row
    assert "Ollama 0.6.5" in text and "http://127.0.0.1:1234: connection refused" in text
    assert "a run would test 1 of 2 models" in text


def test_format_without_anything():
    text = format_selection(select_models([]))
    assert "servers found: none" in text and "a run would test none of 0 models" in text


def test_format_params():
    assert format_params(None) == "?" and format_params(0.135) == "135M"
    assert format_params(7.615) == "7.6B" and format_params(405.0) == "405B"


@given(st.text(max_size=40))
def test_name_parsers_never_raise(text):
    p = parse_params(text)
    assert p is None or p > 0
    q = params_from_name(text)
    assert q is None or q > 0
    quant_from_name(text)
    quant_bits(text)
    fill_estimates(ModelInfo(id=text, provider="p"))


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0.01, max_value=2000)), max_size=12))
def test_order_respects_the_bands(params):
    p = provider("p@h:1", [model(f"m{i}", params_b=v) for i, v in enumerate(params)])
    got = [m.params_b for m in select_models([p], max_size_gb=1e9).selected]
    known = [v for v in got if v is not None]
    assert got[len(known) :] == [None] * (len(got) - len(known))  # unknown ones are last
    band = [v for v in known if 6.5 <= v < 15]
    smaller = [v for v in known if v < 6.5]
    larger = [v for v in known if v >= 15]
    assert known == band + smaller + larger
    assert band == sorted(band) and smaller == sorted(smaller, reverse=True) and larger == sorted(larger)
