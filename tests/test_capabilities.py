"""The capability matrix, its rankings and recommendations, against a hand-written event log.

tests/data/capabilities/two_models.jsonl (events as the tool_calling / structured_output contract
describes them; provider `sim`, models `alpha` and `beta`):

- alpha, tool_calling: 20 scored tests, 18 correct. explicit 6/6 (native), implicit 3/4 (the miss is
  prompted), irrelevant 4/4 (2 native, 2 prompted), parallel 2/3 (native; one wrong_count), multi_turn
  3/3 (prompted): native 13/14, prompted 5/6. One more test whose request failed (HTTP 500, verdict
  request_failed, with its tool_call event) and one cancelled test (no tool_call event).
- alpha, structured_output: json_schema valid twice; instruction: one schema_violation (parsed), one
  no_json. Parsed 3/4, schema-valid 2/4.
- alpha, prompt_variety: checks all passed twice, one failed check, one prompt without checks.
- alpha, streaming: TTFT 100..500 ms, gen tokens/s 10..50; every other streamed request 30 tokens/s.
- alpha, large_context: 9,000 and 20,000 prompt tokens answered, an overflow aimed at 40,000.
- beta: tool_calling 5/5 explicit native; streaming TTFT 50..100 ms at 100 tokens/s.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from soaktui.log.reader import read_all
from soaktui.report import build_report, fold, render_json, render_markdown
from soaktui.report.capabilities import MAX_NAMES, CapabilityReducer
from soaktui.simulator import SimConfig, run_in_thread
from soaktui.stats import compact_rate, rate, wilson

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).parent / "data" / "capabilities" / "two_models.jsonl"
EVENTS, _ = read_all(FIXTURE)


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = tmp_path_factory.mktemp("caps")
    shutil.copy(FIXTURE, run / "events.jsonl")
    s, stats = build_report(run)
    assert stats.lines_bad == 0
    return s


def caps(snap: dict[str, Any], key: str) -> dict[str, Any]:
    return snap["capabilities"]["models"][key]


def kn(r: dict[str, Any]) -> tuple[int, int]:
    return r["k"], r["n"]


def test_compact_rate_never_shows_a_bare_percentage_on_a_small_sample() -> None:
    assert compact_rate(rate(3, 3)) == "3/3 (44–100%)"
    assert compact_rate(rate(9, 9)).startswith("9/9 (")
    assert compact_rate(rate(95, 100)) == "95/100 95% (89–98%)"
    assert compact_rate(rate(0, 0)) == "n/a" and compact_rate(None) == "n/a"


def test_tool_calling_by_kind_and_mode(snap: dict[str, Any]) -> None:
    tc = caps(snap, "sim/alpha")["tool_calling"]
    assert tc["tests"] == 21 and tc["scored"] == 20 and tc["request_failed"] == 1 and tc["unscored"] == 0
    assert kn(tc["overall"]) == (18, 20) and not tc["overall"]["small_sample"]
    assert {k: kn(r) for k, r in tc["by_kind"].items()} == {
        "explicit": (6, 6),
        "implicit": (3, 4),
        "irrelevant": (4, 4),
        "parallel": (2, 3),
        "multi_turn": (3, 3),
    }
    assert list(tc["by_kind"]) == ["explicit", "implicit", "irrelevant", "parallel", "multi_turn"]
    assert {k: kn(r) for k, r in tc["by_mode"].items()} == {"native": (13, 14), "prompted": (5, 6)}
    assert tc["by_kind"]["multi_turn"]["small_sample"]
    # each check over the tests it applied to (None = not applicable)
    assert kn(tc["checks"]["decision"]) == (19, 20)
    assert kn(tc["checks"]["name"]) == (15, 15)  # not applicable to irrelevant prompts or the miss
    assert kn(tc["checks"]["count"]) == (2, 3) and kn(tc["checks"]["uses_result"]) == (3, 3)
    assert tc["verdicts"] == {"correct": 18, "missed_call": 1, "wrong_count": 1}
    assert tc["formats"] == {"native": 14, "hermes": 6}
    assert tc["tool_call_events"] == 21  # the cancelled test logged none
    ci = wilson(18, 20)
    assert tc["overall"]["ci95"] == [round(ci[0], 4), round(ci[1], 4)]


def test_structured_output_and_prompt_checks(snap: dict[str, Any]) -> None:
    so = caps(snap, "sim/alpha")["structured_output"]
    assert (so["tests"], so["scored"], so["request_failed"]) == (4, 4, 0)
    assert (
        kn(so["parsed"]) == (3, 4) and kn(so["schema_valid"]) == (2, 4) and so["schema_valid"]["small_sample"]
    )
    assert {k: kn(r) for k, r in so["by_mode"].items()} == {"json_schema": (2, 2), "instruction": (0, 2)}
    assert so["failures"] == {"no_json": 1, "schema_violation": 1}
    assert so["error_examples"] == ["$.items[2].qty: 'x' is not of type 'integer'"]
    pc = caps(snap, "sim/alpha")["prompt_checks"]
    assert (pc["tests"], pc["with_checks"], pc["without_checks"]) == (4, 3, 1)
    assert kn(pc["passed"]) == (2, 3)
    assert {k: kn(r) for k, r in pc["by_check"].items()} == {"code_fence": (2, 3), "item_count": (2, 2)}


def test_speed_context_and_reliability(snap: dict[str, Any]) -> None:
    a, b = caps(snap, "sim/alpha"), caps(snap, "sim/beta")
    assert a["streaming_ttft_ms"] == {"n": 5, "p50": 300.0, "p95": 480.0}  # streaming scenario only
    assert b["streaming_ttft_ms"] == {"n": 6, "p50": 75.0, "p95": 97.5}
    assert a["gen_tps"] == {"n": 11, "p50": 30.0} and b["gen_tps"] == {"n": 6, "p50": 100.0}
    assert a["large_context"] == {
        "max_prompt_tokens": 20000,
        "bucket": "16k-32k",
        "requests_ok": 2,
        "requests_failed": 1,
        "context_overflow": 1,
    }
    # 20 + 1 tool, 4 structured, 4 prompt, 5 streaming, 3 context tests; the cancelled one left out
    assert kn(a["reliability"]["tests"]) == (30, 37) and kn(a["reliability"]["request_errors"]) == (2, 37)
    assert kn(b["reliability"]["tests"]) == (11, 11)


def test_what_was_not_measured_is_none(snap: dict[str, Any]) -> None:
    b = caps(snap, "sim/beta")
    assert b["structured_output"] is None and b["prompt_checks"] is None and b["large_context"] is None
    assert kn(b["tool_calling"]["overall"]) == (5, 5)


def test_capability_rankings_use_the_interval_lower_bound(snap: dict[str, Any]) -> None:
    rk = snap["rankings"]["capabilities"]
    # 18/20 (90%, lower bound 70%) ranks above 5/5 (100%, lower bound 57%)
    assert [(e["model"], kn(e["rate"])) for e in rk["tool_calling"]["ranked"]] == [
        ("sim/alpha", (18, 20)),
        ("sim/beta", (5, 5)),
    ]
    assert rk["tool_calling"]["ranked"][0]["score"] == round(wilson(18, 20)[0], 4)
    assert rk["structured_output"]["ranked"] == [] and rk["structured_output"]["insufficient"] == [
        {"model": "sim/alpha", "n": 4}
    ]
    assert rk["prompt_checks"]["insufficient"] == [{"model": "sim/alpha", "n": 3}]
    assert [e["model"] for e in rk["streaming_ttft"]["ranked"]] == ["sim/beta", "sim/alpha"]
    assert rk["large_context"]["ranked"] == [
        {"model": "sim/alpha", "max_prompt_tokens": 20000, "requests_ok": 2}
    ]


def test_recommendations_name_their_evidence(snap: dict[str, Any]) -> None:
    recs = {r["title"]: r for r in snap["recommendations"]}
    assert list(recs) == ["best for tool calling", "fastest", "most reliable", "best balance"]
    tool = recs["best for tool calling"]
    assert tool["model"] == "sim/alpha"
    assert "18/20 (90%; 95% CI 70-97%)" in tool["evidence"]
    assert "explicit 6/6" in tool["evidence"] and "multi-turn 3/3" in tool["evidence"]
    assert "native 13/14, prompted 5/6" in tool["evidence"]
    assert recs["fastest"]["model"] == "sim/beta"
    assert recs["most reliable"]["model"] == "sim/beta" and "11/11" in recs["most reliable"]["evidence"]


def test_best_balance_is_the_geometric_mean_of_its_parts(snap: dict[str, Any]) -> None:
    bal = next(r for r in snap["recommendations"] if r["title"] == "best balance")
    # structured output and prompt checks ranked no model, so the score uses speed, reliability and
    # tool calling. beta: speed 100/100, reliability lb(11/11), tool calling lb(5/5).
    beta = (1.0 * wilson(11, 11)[0] * wilson(5, 5)[0]) ** (1 / 3)
    alpha = (30.0 / 100.0 * wilson(30, 37)[0] * wilson(18, 20)[0]) ** (1 / 3)
    assert beta > alpha
    assert bal["model"] == "sim/beta" and bal["score"] == round(beta, 4)
    assert "speed 1.00" in bal["evidence"] and "tool calling 0.57 (5/5)" in bal["evidence"]
    assert "geometric mean" in snap["rankings"]["rules"]["balance"]


def _so_result(model: str, seq: int) -> dict[str, Any]:
    metrics = {"schema_id": "invoice", "mode": "json_schema", "parsed": True, "schema_valid": True,
               "failure": None, "error_path": None}  # fmt: skip
    return {"v": 1, "kind": "scenario_result", "run_id": "soak_caps", "seq": seq, "t": 0.0, "test_id": seq,
            "scenario": "structured_output", "provider": "sim", "model": model, "ok": True, "reason": None,
            "error_class": None, "metrics": metrics}  # fmt: skip


def test_balance_uses_a_small_sample_through_its_lower_bound() -> None:
    # beta gets 5/5 schema-valid answers: structured output is ranked, so the score uses it. alpha has
    # only 4 tries (not ranked) and still qualifies, its 2/4 counting as lb(2/4).
    extra = [_so_result("beta", 1000 + i) for i in range(5)]
    s = fold(EVENTS[:-1] + extra).snapshot()
    assert [e["model"] for e in s["rankings"]["capabilities"]["structured_output"]["ranked"]] == ["sim/beta"]
    bal = {e["model"]: e for e in s["rankings"]["balance"]}
    assert set(bal) == {"sim/alpha", "sim/beta"}
    assert bal["sim/alpha"]["parts"]["structured_output"] == round(wilson(2, 4)[0], 4)
    assert "structured output 0.15 (2/4)" in bal["sim/alpha"]["evidence"]
    beta = (1.0 * wilson(16, 16)[0] * wilson(5, 5)[0] * wilson(5, 5)[0]) ** (1 / 4)
    assert bal["sim/beta"]["score"] == round(beta, 4) and s["rankings"]["balance"][0]["model"] == "sim/beta"
    # a model never tried on a capability the score uses is not judged on it: alpha alone has prompt
    # checks; with 5 of them ranked, beta drops out of the balance
    checks = [
        {**e, "seq": 2000 + i, "metrics": {**e["metrics"], "checks": {"code_fence": True}}}
        for i, e in enumerate(
            x for x in EVENTS if x.get("scenario") == "prompt_variety" and x["kind"] == "scenario_result"
        )
    ]
    s = fold(EVENTS[:-1] + checks * 2).snapshot()
    assert [e["model"] for e in s["rankings"]["balance"]] == ["sim/alpha"]
    assert s["recommendations"][-1]["model"] == "sim/alpha"


def test_markdown_capability_matrix(snap: dict[str, Any]) -> None:
    md = render_markdown(snap)
    assert "## Capability matrix" in md and "### Verdicts and failure kinds" in md
    # the matrix is wider than 100 columns: split into tables that each repeat the model column
    rows = [line for line in md.splitlines() if line.startswith("| sim/alpha | ")]
    assert (
        "| sim/alpha | 18/20 90% (70–97%) | 6/6 (61–100%) | 3/4 (30–95%) | 4/4 (51–100%) | 2/3 (21–94%) |"
        in rows
    )
    assert "| sim/alpha | 3/3 (44–100%) | 13/14 93% (69–99%) | 5/6 (44–97%) | 2/4 (15–85%) |" in rows
    assert "| sim/alpha | 3/4 (30–95%) | 2/3 (21–94%) |" in rows
    assert "| sim/beta | 5/5 (57–100%) | 5/5 (57–100%) | n/a |" in md
    assert "| sim/alpha | 300 ms / 480 ms (n=5) | 30.0 tok/s (n=11) | 20,000 (16k-32k; 2/3 ok) |" in rows
    assert all(len(line) <= 100 for line in md.splitlines() if line.startswith("|"))
    assert "- Best for tool calling: **sim/alpha**: tool calls correct 18/20" in md
    assert "Best balance: geometric mean of speed" in md
    assert "### Balance (geometric mean of speed" in md and "| 1 | sim/beta | 0.75 |" in md and "- sim/beta: speed 1.00" in md
    assert (
        "### Tool calling (lower bound of the Wilson 95% interval of tool calls correct; at least 5 tests)"
        in md
    )
    assert "Insufficient data: sim/alpha (n=4)" in md


def test_report_json_carries_the_matrix(snap: dict[str, Any]) -> None:
    data = orjson.loads(render_json(snap))
    assert data["capabilities"]["models"]["sim/alpha"]["tool_calling"]["overall"]["k"] == 18
    assert data["rankings"]["capabilities"]["tool_calling"]["ranked"][0]["model"] == "sim/alpha"


def test_no_capability_scenario_says_so() -> None:
    s = fold([e for e in EVENTS if e.get("scenario") not in ("tool_calling", "structured_output")]).snapshot()
    rec = s["recommendations"][0]
    assert rec["title"] == "best for tool calling" and rec["model"] is None
    assert rec["evidence"] == "insufficient data (no tool_calling test ran)"
    assert s["capabilities"]["models"]["sim/beta"]["tool_calling"] is None


def _result(scenario: str, metrics: Any, ok: bool = False, error_class: str | None = "check_failed") -> dict:
    return {"kind": "scenario_result", "scenario": scenario, "provider": "p", "model": "m", "ok": ok,
            "error_class": error_class, "metrics": metrics}  # fmt: skip


def test_reducer_survives_odd_metrics_and_stays_bounded() -> None:
    r = CapabilityReducer()
    r.on_result("p/m", "tool_calling", _result("tool_calling", "not a dict"))  # no verdict, check_failed
    r.on_result("p/m", "tool_calling", _result("tool_calling", None, error_class="read_timeout"))
    r.on_result("p/m", "tool_calling", _result("tool_calling", {"verdict": "bad_args", "checks": [1]}))
    for i in range(MAX_NAMES + 10):
        m = {
            "verdict": "correct",
            "correct": True,
            "format": f"f{i}",
            "prompt_kind": "explicit",
            "mode": "native",
        }
        r.on_result("p/m", "tool_calling", _result("tool_calling", m, ok=True, error_class=None))
    r.on_result("p/m", "structured_output", _result("structured_output", {}, error_class="http_status"))
    r.on_result("p/m", "structured_output", _result("structured_output", {"parsed": "yes"}))
    r.on_result(
        "p/m", "prompt_variety", _result("prompt_variety", {"checks": "x"}, ok=True, error_class=None)
    )
    prof = {"tests": 1, "ok_tests": 1, "requests_ok": 1, "requests_failed": 0, "success": rate(1, 1),
            "gen_tps": {"n": 0, "p50": None}}  # fmt: skip
    row = r.matrix({"p/m": prof}, {}, {})["models"]["p/m"]
    tc = row["tool_calling"]
    assert (tc["tests"], tc["unscored"], tc["request_failed"]) == (MAX_NAMES + 13, 1, 1)
    assert kn(tc["overall"]) == (MAX_NAMES + 10, MAX_NAMES + 11)  # bad_args scored as not correct
    # the bad_args test took a slot as "(unknown)": 49 named formats fit, 11 go to "(other)"
    assert len(tc["formats"]) == MAX_NAMES + 1 and tc["formats"]["(other)"] == 11
    so = row["structured_output"]
    assert (so["request_failed"], so["unscored"], so["scored"]) == (1, 1, 0) and so["parsed"]["rate"] is None
    assert row["prompt_checks"]["without_checks"] == 1 and row["prompt_checks"]["passed"]["n"] == 0
    assert row["gen_tps"] is None and row["streaming_ttft_ms"] is None and row["large_context"] is None


# -- end to end: a real run against the built-in simulator ------------------------------------------
def _recount(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The capability counts straight from the scenario_result events, the plain way."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["kind"] != "scenario_result" or e.get("error_class") == "cancelled":
            continue
        m, row = e["metrics"], out.setdefault(f"{e['provider']}/{e['model']}", {})
        if e["scenario"] == "structured_output" and m["failure"] != "request_failed":
            so = row.setdefault("structured_output", [0, 0, 0])
            so[0] += 1
            so[1] += m["parsed"]
            so[2] += m["schema_valid"]
        elif e["scenario"] == "tool_calling" and m["verdict"] != "request_failed":
            kinds = row.setdefault("tool_calling", {})
            k = kinds.setdefault(m["prompt_kind"], [0, 0])
            k[0] += 1
            k[1] += m["correct"]
        elif e["scenario"] == "streaming" and e["ok"]:
            row["streaming_tests"] = row.get("streaming_tests", 0) + 1
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_matrix_of_a_real_run_matches_its_events(tmp_path: Path) -> None:
    from soaktui.scenarios import REGISTRY
    from tests.test_soak import soak

    scenarios = ["structured_output", "streaming"] + (["tool_calling"] if "tool_calling" in REGISTRY else [])
    with run_in_thread(SimConfig(flavor="lmstudio", seed=3, speed=40.0)) as sim:
        code, events = soak(tmp_path / "run", sim.base_url, duration="10s", scenarios=",".join(scenarios))
    assert code == 0
    report = orjson.loads((tmp_path / "run" / "report.json").read_bytes())
    matrix = report["capabilities"]["models"]
    expected = _recount(events)
    assert any("structured_output" in row for row in expected.values()), "no structured_output test ran"
    for key, row in expected.items():
        got = matrix[key]
        if "structured_output" in row:
            n, parsed, valid = row["structured_output"]
            assert kn(got["structured_output"]["parsed"]) == (parsed, n)
            assert kn(got["structured_output"]["schema_valid"]) == (valid, n)
        else:
            assert got["structured_output"] is None
        if "tool_calling" in row:
            by_kind = got["tool_calling"]["by_kind"]
            assert {k: (c, n) for k, (n, c) in row["tool_calling"].items()} == {
                k: kn(r) for k, r in by_kind.items()
            }
        if row.get("streaming_tests"):
            assert got["streaming_ttft_ms"]["n"] == row["streaming_tests"]
    # the run's end recorded the same figures in the capability database
    from soaktui.profiles import capdb

    kinds = {p["name"]: p["kind"] for p in report["run"]["providers"]}
    profiles = capdb.profiles(capdb.load_runs())
    for key, row in matrix.items():
        prof = profiles[capdb.profile_key(key, kinds)]
        assert prof["run_ids"] == [report["run"]["run_id"]]
        if row["structured_output"]:
            assert kn(prof["structured_output"]["schema_valid"]) == kn(
                row["structured_output"]["schema_valid"]
            )


def test_calls_soaktui_cannot_read_are_shown_per_model_not_scored_as_refusals() -> None:
    """Metrics built by the real detector and scorer, folded as the report folds them."""
    from soaktui.toolcalls import catalog, detect
    from soaktui.toolcalls.prompts import shipped_bank
    from soaktui.toolcalls.scoring import score_calls

    bank = shipped_bank()
    answer = '@@invoke get_weather(city="Oslo")@@'  # call-shaped, in no family's syntax
    events = []
    for i, prompt in enumerate(p for p in bank.prompts if p.kind in ("irrelevant", "explicit")):
        d = detect(answer, None, catalog.TOOL_NAMES)
        s = score_calls(d, prompt)
        metrics = {"prompt_id": prompt.id, "prompt_kind": prompt.kind, "mode": "prompted", "format": d.format,
                   "checks": s.checks, "verdict": s.verdict, "correct": s.correct, "detail": s.detail}  # fmt: skip
        events.append(
            {**_result("tool_calling", metrics, ok=s.correct, error_class="check_failed"), "seq": i}
        )
    snap = fold(events).snapshot()
    tc = snap["capabilities"]["models"]["p/m"]["tool_calling"]
    assert tc["overall"]["k"] == 0 and tc["overall"]["n"] == len(events)
    assert tc["by_kind"]["irrelevant"]["k"] == 0 and tc["by_kind"]["irrelevant"]["n"] > 0
    assert tc["verdicts"] == {"unparsed_call": len(events)} and tc["formats"] == {"unparsed": len(events)}
    assert tc["unparsed_examples"] == [answer]  # one distinct excerpt, quoted without the detail's prefix
    md = render_markdown(snap)
    assert "### Tool calls soaktui could not read" in md
    assert f"- p/m: {len(events)} test(s), e.g. `{answer}`" in md


def test_no_pick_crowns_a_zero() -> None:
    """Two models that never made a correct tool call, with plenty of trials: ranked (0/n each),
    but neither is recommended, and the pick says why."""
    events = []
    for i in range(40):
        for model in ("m", "n"):
            metrics = {"prompt_kind": "explicit", "mode": "native", "format": "none", "verdict": "missed_call",
                       "correct": False, "checks": {"decision": False}}  # fmt: skip
            events.append({**_result("tool_calling", metrics), "model": model, "seq": 2 * i + (model == "n")})
    snap = fold(events).snapshot()
    ranked = snap["rankings"]["capabilities"]["tool_calling"]["ranked"]
    assert [e["rate"]["k"] for e in ranked] == [0, 0] and all(e["rate"]["n"] == 40 for e in ranked)
    rec = next(r for r in snap["recommendations"] if r["title"] == "best for tool calling")
    assert rec["model"] is None and "no model made a correct tool call (80 scored tests" in rec["evidence"]
    rel = next(r for r in snap["recommendations"] if r["title"] == "most reliable")
    assert rel["model"] is None and rel["evidence"].startswith("no pick: no model passed a test")
