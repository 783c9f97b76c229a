"""Rankings and recommendations, each naming its evidence and refusing to judge on thin samples.

Throughput ranks models by the median output tokens/s of their successful streamed requests.
Reliability ranks by the lower bound of the Wilson 95% interval of the test success rate, so
3/3 does not beat 95/100. The capability rates (tool calls correct, schema-valid structured output,
prompt checks passed) rank the same way, by their interval's lower bound; streaming TTFT ranks by
its median (lower first) and large context by the largest prompt answered. A model below the
minimum sample (tests for rates, successful requests for speed) is listed as "insufficient data"
instead of being ranked. A recommendation also needs at least one success: when every ranked model
scored zero (0/1210 tool calls correct), the pick says so and names nobody.

"Best balance" is the geometric mean of: speed (the model's median tokens/s divided by the best
ranked median), reliability (the lower bound above) and, for each capability rate that ranked at
least one model in this run, the model's own lower bound of that rate. Every part is between 0
and 1, so the score is too; a zero in any part (a model that never called a tool right) makes the
score zero. A model qualifies when it is ranked for speed and reliability and has at least one
trial of every capability rate the score uses: there the lower bound itself discounts a small
sample (4/4 counts 0.51, 95/100 counts 0.89), so a model is not dropped for being a few tests
short of a capability ranking, and a model never tested for a capability is not judged on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from soaktui.report.capabilities import KIND_LABELS
from soaktui.report.snapshot import (
    BalancePick,
    CapabilityPick,
    CapabilityRanking,
    CapabilityRow,
    Insufficient,
    ModelProfile,
    Rankings,
    Recommendation,
    ReliabilityPick,
    SampledRate,
    ThroughputPick,
)
from soaktui.stats import format_rate, lower_bound

# capability name -> (label, which rate of the matrix row, what the rate counts)
RATE_CAPABILITIES: dict[str, tuple[str, Callable[[CapabilityRow], SampledRate | None], str]] = {
    "tool_calling": (
        "tool calling",
        lambda row: tc["overall"] if (tc := row["tool_calling"]) else None,
        "tool calls correct",
    ),
    "structured_output": (
        "structured output",
        lambda row: so["schema_valid"] if (so := row["structured_output"]) else None,
        "schema-valid answers",
    ),
    "prompt_checks": (
        "prompt checks",
        lambda row: pc["passed"] if (pc := row["prompt_checks"]) else None,
        "prompts passing their checks",
    ),
}
BALANCE_RULE = (
    "geometric mean of speed (median tokens/s / best median tokens/s), reliability (Wilson 95% lower "
    "bound of test success) and the model's Wilson 95% lower bound of each capability rate ranked in "
    "this run (tool calls correct, schema-valid structured output, prompt checks passed); a model "
    "qualifies when it is ranked for speed and reliability and was tried on every capability used"
)


def _rate_of(row: CapabilityRow | None, name: str) -> SampledRate | None:
    return RATE_CAPABILITIES[name][1](row) if row is not None else None


def _capability_rankings(
    caps: dict[str, CapabilityRow], *, min_requests: int, min_tests: int
) -> dict[str, CapabilityRanking]:
    out: dict[str, CapabilityRanking] = {}
    for name, (label, _, counts) in RATE_CAPABILITIES.items():
        scored: list[tuple[float, int, str, SampledRate]] = []
        short: list[Insufficient] = []
        for key, row in caps.items():
            r = _rate_of(row, name)
            if not r or not r["n"]:
                continue
            if r["n"] >= min_tests:
                scored.append((lower_bound(r) or 0.0, r["n"], key, r))  # n > 0: the bound exists
            else:
                short.append({"model": key, "n": r["n"]})
        scored.sort(key=lambda e: (-e[0], -e[1], e[2]))
        ranked: list[CapabilityPick] = [{"model": key, "rate": r, "score": lb} for lb, _, key, r in scored]
        out[name] = {
            "title": label.capitalize(),
            "rule": f"lower bound of the Wilson 95% interval of {counts}",
            "min_samples": min_tests,
            "sample_unit": "tests",
            "ranked": ranked,
            "insufficient": short,
        }
    ttft: list[CapabilityPick] = []
    ttft_short: list[Insufficient] = []
    for key, row in caps.items():
        t = row["streaming_ttft_ms"]
        if not t:
            continue
        if t["n"] >= min_requests:
            ttft.append({"model": key, "p50_ms": t["p50"], "p95_ms": t["p95"], "n": t["n"]})
        else:
            ttft_short.append({"model": key, "n": t["n"]})
    ttft.sort(key=lambda e: (e.get("p50_ms") or 0.0, e["model"]))  # n > 0: p50 exists
    out["streaming_ttft"] = {
        "title": "Streaming TTFT",
        "rule": "median TTFT of successful streaming-scenario requests, lower first",
        "min_samples": min_requests,
        "sample_unit": "requests",
        "ranked": ttft,
        "insufficient": ttft_short,
    }
    ctx: list[CapabilityPick] = []
    for key, row in caps.items():
        c = row["large_context"]
        if c and c["max_prompt_tokens"] is not None:
            ctx.append(
                {"model": key, "max_prompt_tokens": c["max_prompt_tokens"], "requests_ok": c["requests_ok"]}
            )
    ctx.sort(key=lambda e: (-e.get("max_prompt_tokens", 0), e["model"]))
    out["large_context"] = {
        "title": "Large context",
        "rule": "largest prompt (server-reported tokens) answered successfully",
        "min_samples": 1,
        "sample_unit": "successful request",
        "ranked": ctx,
        "insufficient": [],
    }
    return out


def _tool_evidence(row: CapabilityRow) -> str:
    tc = row["tool_calling"]
    if tc is None:
        return "no tool_calling test"
    parts = [f"tool calls correct {format_rate(tc['overall'])}"]
    kinds = ", ".join(f"{KIND_LABELS.get(k, k)} {r['k']}/{r['n']}" for k, r in tc["by_kind"].items())
    modes = ", ".join(f"{m} {r['k']}/{r['n']}" for m, r in tc["by_mode"].items())
    if kinds:
        parts.append(f"by kind: {kinds}")
    if modes:
        parts.append(f"by mode: {modes}")
    return "; ".join(parts)


def _balance(
    thr: list[ThroughputPick],
    rel: list[ReliabilityPick],
    cap_ranks: dict[str, CapabilityRanking],
    caps: dict[str, CapabilityRow],
) -> list[BalancePick]:
    """Every qualifying model's balance score with its parts, best first (see the module docstring)."""
    if not thr or not thr[0]["median_gen_tps"]:
        return []
    top_tps = thr[0]["median_gen_tps"]
    rel_by = {r["model"]: r for r in rel}
    # the capability parts the score uses: those that ranked at least one model in this run
    used = [name for name in RATE_CAPABILITIES if cap_ranks[name]["ranked"]]
    out: list[BalancePick] = []
    for r in thr:
        key = r["model"]
        q = rel_by.get(key)
        rates = {name: _rate_of(caps.get(key), name) for name in used}
        if q is None:
            continue
        present = {name: x for name, x in rates.items() if x and x["n"]}
        if len(present) < len(rates):
            continue
        speed = r["median_gen_tps"] / top_tps
        parts = {"speed": round(speed, 4), "reliability": q["score"]}
        words = [
            f"speed {speed:.2f} (median {r['median_gen_tps']:.1f} tokens/s, n={r['n']})",
            f"reliability {q['score']:.2f} (tests {q['success']['k']}/{q['success']['n']})",
        ]
        for name, x in present.items():
            lb = lower_bound(x) or 0.0
            parts[name] = lb
            words.append(f"{RATE_CAPABILITIES[name][0]} {lb:.2f} ({x['k']}/{x['n']})")
        score = math.prod([speed, q["score"], *(parts[name] for name in used)]) ** (1 / (2 + len(used)))
        out.append({"model": key, "score": round(score, 4), "parts": parts, "evidence": ", ".join(words)})
    out.sort(key=lambda e: (-e["score"], e["model"]))
    return out


def rank(
    models: dict[str, ModelProfile],
    *,
    min_requests: int,
    min_tests: int,
    capabilities: dict[str, CapabilityRow] | None = None,
) -> tuple[Rankings, list[Recommendation]]:
    """(rankings, recommendations) from the per-model profiles and capability matrix of a snapshot."""
    caps = capabilities or {}
    thr: list[ThroughputPick] = []
    rel: list[ReliabilityPick] = []
    thr_short: list[Insufficient] = []
    rel_short: list[Insufficient] = []
    for key, m in models.items():
        g = m["gen_tps"]
        if g["n"] >= min_requests and g["p50"] is not None:
            thr.append({"model": key, "median_gen_tps": g["p50"], "n": g["n"]})
        elif m["requests_ok"] or m["requests_failed"] or m["tests"]:
            thr_short.append({"model": key, "n": g["n"]})
        s = m["success"]
        if s["n"] >= min_tests:
            rel.append({"model": key, "success": s, "score": lower_bound(s) or 0.0})  # n > 0: it exists
        elif m["tests"] or m["requests_ok"] or m["requests_failed"]:
            rel_short.append({"model": key, "n": s["n"]})
    thr.sort(key=lambda r: (-r["median_gen_tps"], r["model"]))
    rel.sort(key=lambda r: (-r["score"], -r["success"]["n"], r["model"]))
    cap_ranks = _capability_rankings(caps, min_requests=min_requests, min_tests=min_tests)
    balance = _balance(thr, rel, cap_ranks, caps)
    rankings: Rankings = {
        "min_samples": {"throughput_requests": min_requests, "reliability_tests": min_tests},
        "throughput": thr,
        "reliability": rel,
        "insufficient": {"throughput": thr_short, "reliability": rel_short},
        "capabilities": cap_ranks,
        "balance": balance,
        "rules": {
            "throughput": "median output tokens/s in the generation phase, successful streamed requests",
            "reliability": "lower bound of the Wilson 95% interval of the test success rate",
            "balance": BALANCE_RULE,
        },
    }
    recs: list[Recommendation] = []
    # A pick needs at least one success: a ranking of zeros crowns nobody (0/1210 is not "best").
    ranked_tools = cap_ranks["tool_calling"]["ranked"]
    tools = [e for e in ranked_tools if e.get("rate", {}).get("k", 0) > 0]
    if tools:
        best_tools = tools[0]
        recs.append(
            {
                "title": "best for tool calling",
                "model": best_tools["model"],
                "evidence": _tool_evidence(caps[best_tools["model"]]),
            }
        )
    else:
        measured = any(row["tool_calling"] for row in caps.values())
        scored = sum(e.get("rate", {}).get("n", 0) for e in ranked_tools)
        recs.append(
            {
                "title": "best for tool calling",
                "model": None,
                "evidence": f"no pick: no model made a correct tool call ({scored} scored tests by "
                f"{len(ranked_tools)} ranked model(s))"
                if ranked_tools
                else f"insufficient data (no model has {min_tests} scored tool-calling tests)"
                if measured
                else "insufficient data (no tool_calling test ran)",
            }
        )
    if thr:
        fastest = thr[0]
        recs.append(
            {
                "title": "fastest",
                "model": fastest["model"],
                "evidence": f"median {fastest['median_gen_tps']:.1f} output tokens/s over "
                f"{fastest['n']} successful streamed requests",
            }
        )
    else:
        recs.append(
            {
                "title": "fastest",
                "model": None,
                "evidence": f"insufficient data (no model has {min_requests} successful streamed requests)",
            }
        )
    reliable = [e for e in rel if e["success"]["k"] > 0]
    if reliable:
        steadiest = reliable[0]
        recs.append(
            {
                "title": "most reliable",
                "model": steadiest["model"],
                "evidence": f"tests succeeded {format_rate(steadiest['success'])}",
            }
        )
    else:
        recs.append(
            {
                "title": "most reliable",
                "model": None,
                "evidence": f"no pick: no model passed a test ({sum(e['success']['n'] for e in rel)} tests)"
                if rel
                else f"insufficient data (no model has {min_tests} tests)",
            }
        )
    balanced_picks = [e for e in balance if e["score"] > 0]
    if balanced_picks:
        balanced = balanced_picks[0]
        recs.append(
            {
                "title": "best balance",
                "model": balanced["model"],
                "score": balanced["score"],
                "evidence": f"score {balanced['score']:.2f} = geometric mean of {balanced['evidence']}",
            }
        )
    else:
        recs.append(
            {
                "title": "best balance",
                "model": None,
                "evidence": "no pick: every qualifying model has a zero part (no success at one of "
                "the capabilities the score uses)"
                if balance
                else "insufficient data (no model is ranked for speed and reliability and tried on "
                "every capability the score uses)",
            }
        )
    return rankings, recs
