"""Rankings and recommendations, each naming its evidence and refusing to judge on thin samples.

Throughput ranks models by the median output tokens/s of their successful streamed requests.
Reliability ranks by the lower bound of the Wilson 95% interval of the test success rate, so
3/3 does not beat 95/100. A model below the minimum sample is listed as "insufficient data"
instead of being ranked. "Best balance" multiplies relative throughput (median / best median)
by that same lower bound, among models that qualify for both rankings.
"""

from __future__ import annotations

from typing import Any

from soaktui.report.stats import format_rate


def rank(
    models: dict[str, dict[str, Any]], *, min_requests: int, min_tests: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(rankings, recommendations) from the per-model profiles of a snapshot."""
    thr, thr_short, rel, rel_short = [], [], [], []
    for key, m in models.items():
        g = m["gen_tps"]
        if g["n"] >= min_requests and g["p50"] is not None:
            thr.append({"model": key, "median_gen_tps": g["p50"], "n": g["n"]})
        elif m["requests_ok"] or m["requests_failed"] or m["tests"]:
            thr_short.append({"model": key, "n": g["n"]})
        s = m["success"]
        if s["n"] >= min_tests:
            rel.append({"model": key, "success": s, "score": s["ci95"][0]})
        elif m["tests"] or m["requests_ok"] or m["requests_failed"]:
            rel_short.append({"model": key, "n": s["n"]})
    thr.sort(key=lambda r: (-r["median_gen_tps"], r["model"]))
    rel.sort(key=lambda r: (-r["score"], -r["success"]["n"], r["model"]))
    rankings = {
        "min_samples": {"throughput_requests": min_requests, "reliability_tests": min_tests},
        "throughput": thr,
        "reliability": rel,
        "insufficient": {"throughput": thr_short, "reliability": rel_short},
        "rules": {
            "throughput": "median output tokens/s in the generation phase, successful streamed requests",
            "reliability": "lower bound of the Wilson 95% interval of the test success rate",
            "balance": "(median tokens/s / best median tokens/s) x reliability lower bound",
        },
    }
    recs: list[dict[str, Any]] = []
    if thr:
        best = thr[0]
        recs.append(
            {
                "title": "fastest",
                "model": best["model"],
                "evidence": f"median {best['median_gen_tps']:.1f} output tokens/s over "
                f"{best['n']} successful streamed requests",
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
    if rel:
        best = rel[0]
        recs.append(
            {
                "title": "most reliable",
                "model": best["model"],
                "evidence": f"tests succeeded {format_rate(best['success'])}",
            }
        )
    else:
        recs.append(
            {
                "title": "most reliable",
                "model": None,
                "evidence": f"insufficient data (no model has {min_tests} tests)",
            }
        )
    rel_by = {r["model"]: r for r in rel}
    top_tps = thr[0]["median_gen_tps"] if thr else None
    balanced = []
    for r in thr:
        q = rel_by.get(r["model"])
        if q is None or not top_tps:
            continue
        score = (r["median_gen_tps"] / top_tps) * q["score"]
        balanced.append((score, r, q))
    if balanced:
        balanced.sort(key=lambda x: (-x[0], x[1]["model"]))
        score, r, q = balanced[0]
        recs.append(
            {
                "title": "best balance",
                "model": r["model"],
                "score": round(score, 4),
                "evidence": f"median {r['median_gen_tps']:.1f} output tokens/s (n={r['n']}) and tests "
                f"succeeded {format_rate(q['success'])}",
            }
        )
    else:
        recs.append(
            {
                "title": "best balance",
                "model": None,
                "evidence": "insufficient data (no model qualifies for both rankings)",
            }
        )
    return rankings, recs
