"""The verdict: at most eight lines that say which model to use for what, and how sure that is.

Every surface opens with it (final_report.md, the report screen, the end of a headless run), from
this one function, so they cannot disagree. For each use the run measured:

- general reliability: tests passed (a rate), ranked by the lower bound of its Wilson 95% interval;
- tool calling: tool calls correct, and structured output: schema-valid answers (rates, the same);
- speed: median generation tokens/s, with a distribution-free 95% interval of the median;
- best balance: the rankings' geometric-mean score (a composite: no interval).

Rules, stated in the report's definitions too:

- A pick needs at least `min_trials` trials (tests; successful streamed requests for speed) and at
  least one success. Without enough trials the line says what more is needed, and how long that
  takes at this run's pace.
- "statistically tied with Y": Y's 95% interval overlaps the pick's. The line then estimates how
  much longer the run would have to go to separate the two (normal approximation: the trials at
  which the two intervals, at their current rates, would stop overlapping; for medians, where the
  intervals narrow as 1/sqrt(n)). Beyond two days it says so rather than print a number.
- A caveat on any pick that fails more than CAVEAT_SHARE of its tests, or of its prompt checks.
- A last line says what went wrong during the run and when: the most frequent failure classes (not
  check_failed, which is the model's answer being wrong) with their first and last time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from soaktui.report.cells import clock, duration, pvalue
from soaktui.report.snapshot import CapabilityRow, Drift, ErrorClass, ModelProfile, Outage, Pick, Verdict
from soaktui.stats import Z95, Rate, wilson

CAVEAT_SHARE = 0.25  # a pick failing more than this share of its tests or checks gets a caveat
MAX_LINES = 8
MAX_HOURS = 48.0  # separating two models would take longer than this: "effectively tied"
INCIDENT_CLASSES = 3  # failure classes named on the "went wrong" line

RULES = {
    "picks": "a pick needs min_trials trials and one success; ranked by the lower bound of the Wilson "
    "95% interval (rates) or by the median (speed)",
    "ties": "statistically tied: the 95% intervals overlap (Wilson for rates, the distribution-free "
    "interval of the median for speed)",
    "caveats": f"a caveat when a pick fails more than {CAVEAT_SHARE:.0%} of its tests or prompt checks",
    "more_time": "the time to separate tied models: the trials at which both intervals stop "
    "overlapping at their current rates (normal approximation), at this run's pace per model",
}


def _clock(t: float | None) -> str:
    return clock(t, "%H:%M", "?")


def _hours_text(h: float) -> str:
    if h <= 0:
        return "a little longer"
    if h < 1:
        minutes = max(1, round(h * 60))
        return f"about {minutes} more minute{'s' if minutes != 1 else ''}"
    return f"about {h:.0f} more hours" if h >= 1.5 else "about 1 more hour"


def _rate_separation(a: Rate, b: Rate, per_hour: Callable[[int], float]) -> str:
    """How long until the intervals of rates `a` (ahead) and `b` would stop overlapping."""
    pa, pb = a["k"] / a["n"], b["k"] / b["n"]
    if pa == pb:
        return "the same rate so far: running longer separates them only if they differ"
    spread = math.sqrt(pa * (1 - pa)) + math.sqrt(pb * (1 - pb))
    need = math.ceil((Z95 * spread / abs(pa - pb)) ** 2)
    hours = max((need - a["n"]) / max(per_hour(a["n"]), 1e-9), (need - b["n"]) / max(per_hour(b["n"]), 1e-9))
    if hours > MAX_HOURS:
        return "effectively tied: separating them would take more than two days at this pace"
    return f"run {_hours_text(hours)} to separate them (about {need} trials each)"


def _overlap(lo1: float, hi1: float, lo2: float, hi2: float) -> bool:
    return lo1 <= hi2 and lo2 <= hi1


def _caveat(prof: ModelProfile, caps: CapabilityRow | None) -> str | None:
    parts = []
    s = prof["success"]
    if s["n"] and (s["n"] - s["k"]) / s["n"] > CAVEAT_SHARE:
        parts.append(f"fails {(s['n'] - s['k']) / s['n']:.0%} of its tests ({s['n'] - s['k']}/{s['n']})")
    checks = caps["prompt_checks"] if caps else None
    if checks and checks["passed"]["n"]:
        pc = checks["passed"]
        share = (pc["n"] - pc["k"]) / pc["n"]
        if share > CAVEAT_SHARE:
            parts.append(f"fails {share:.0%} of its prompt checks ({pc['n'] - pc['k']}/{pc['n']})")
    return "; ".join(parts) or None


class _Context:
    def __init__(
        self,
        models: dict[str, ModelProfile],
        caps: dict[str, CapabilityRow],
        hours: float | None,
        names: dict[str, str],
    ) -> None:
        self.models, self.caps, self.hours, self.names = models, caps, hours, names

    def per_hour(self, n: int) -> float:
        return n / self.hours if self.hours else 0.0

    def name(self, key: str) -> str:
        return self.names.get(key, key)


def _rate_pick(
    ctx: _Context, use: str, rates: dict[str, Rate], min_trials: int, trials: str, unit: str
) -> Pick | None:
    """`trials`: what a trial is ("tests"); `unit`: what a success is ("tests passed")."""
    tried = {k: r for k, r in rates.items() if r["n"]}
    if not tried:
        return None
    enough = {k: r for k, r in tried.items() if r["n"] >= min_trials}
    if not enough:
        most = max(tried.values(), key=lambda r: r["n"])["n"]
        needs = f"needs {min_trials} {trials} per model, most so far {most}"
        rate_h = ctx.per_hour(most)
        if rate_h:
            needs += f": run {_hours_text((min_trials - most) / rate_h)}"
        return Pick(use=use, model=None, evidence="insufficient data", tied_with=[], caveat=None, needs=needs)
    winners = {k: r for k, r in enough.items() if r["k"] > 0}
    if not winners:
        total = sum(r["n"] for r in enough.values())
        return Pick(use=use, model=None, evidence=f"no model succeeded (0 {unit} in {total} {trials})", tied_with=[],
                    caveat=None, needs=None)  # fmt: skip
    bounds = {k: wilson(r["k"], r["n"]) or (0.0, 1.0) for k, r in winners.items()}
    order = sorted(winners, key=lambda k: (-bounds[k][0], -winners[k]["n"], k))
    best = order[0]
    lo, hi = bounds[best]
    tied = [k for k in order[1:] if _overlap(lo, hi, *bounds[k])]
    r = winners[best]
    separation = _rate_separation(r, winners[tied[0]], ctx.per_hour) if tied else None
    return Pick(
        use=use,
        model=best,
        evidence=f"{r['k']}/{r['n']} {unit} ({r['k'] / r['n']:.0%}; 95% CI {lo:.0%}-{hi:.0%})",
        tied_with=tied,
        caveat=_caveat(ctx.models[best], ctx.caps.get(best)) if best in ctx.models else None,
        needs=separation,
    )


def _speed_pick(ctx: _Context, min_requests: int) -> Pick | None:
    measured = {k: m for k, m in ctx.models.items() if m["gen_tps"]["n"] and m["gen_tps"]["p50"] is not None}
    if not measured:
        return None
    enough = {k: m for k, m in measured.items() if m["gen_tps"]["n"] >= min_requests}
    if not enough:
        most = max(m["gen_tps"]["n"] for m in measured.values())
        short = f"needs {min_requests} successful streamed requests per model, most so far {most}"
        return Pick(
            use="speed", model=None, evidence="insufficient data", tied_with=[], caveat=None, needs=short
        )
    order = sorted(enough, key=lambda k: (-(enough[k]["gen_tps"]["p50"] or 0.0), k))
    best = order[0]
    g = enough[best]["gen_tps"]
    ci = enough[best]["gen_tps_p50_ci95"]
    tied = []
    needs: str | None = None
    for k in order[1:]:
        other = enough[k]["gen_tps_p50_ci95"]
        if ci and other and _overlap(ci[0], ci[1], other[0], other[1]):
            tied.append(k)
    if tied and ci:
        rival = enough[tied[0]]
        rci = rival["gen_tps_p50_ci95"] or ci
        gap = abs((g["p50"] or 0.0) - (rival["gen_tps"]["p50"] or 0.0))
        widths = (ci[1] - ci[0]) / 2 + (rci[1] - rci[0]) / 2
        if gap <= 0:
            needs = "the same median so far: running longer separates them only if they differ"
        else:
            factor = (widths / gap) ** 2  # intervals narrow as 1/sqrt(n)
            n_now = min(g["n"], rival["gen_tps"]["n"])
            hours = (factor - 1) * n_now / max(ctx.per_hour(n_now), 1e-9)
            needs = (
                "effectively tied: separating them would take more than two days at this pace"
                if hours > MAX_HOURS
                else f"run {_hours_text(hours)} to separate them"
            )
    span = f"; 95% CI {ci[0]:.1f}-{ci[1]:.1f}" if ci else ""
    return Pick(
        use="speed",
        model=best,
        evidence=f"median {g['p50']:.1f} tokens/s (n={g['n']}{span})",
        tied_with=tied,
        caveat=_caveat(enough[best], ctx.caps.get(best)),
        needs=needs,
    )


def _outage_incidents(outages: list[Outage]) -> list[str]:
    """Each provider outage as a period: "lmstudio down 02:14-02:31 (17m 2s)"."""
    out = []
    for o in outages[:INCIDENT_CLASSES]:
        if o["up_t"] is None:
            out.append(f"{o['provider']} down from {_clock(o['down_t'])} to the end ({o['error_class']})")
        else:
            took = f", {duration(o['downtime_s'])}" if o["downtime_s"] is not None else ""
            out.append(f"{o['provider']} down {_clock(o['down_t'])}-{_clock(o['up_t'])} ({o['error_class']}{took})")
    if len(outages) > INCIDENT_CLASSES:
        out.append(f"{len(outages) - INCIDENT_CLASSES} more outages")
    return out


def _incidents(by_class: dict[str, ErrorClass]) -> list[str]:
    out = []
    classes = [(c, e) for c, e in by_class.items() if c not in ("check_failed", "cancelled")]
    for cls, e in classes[:INCIDENT_CLASSES]:
        n = e["requests"] or e["tests"]
        when = f"{_clock(e['first_t'])}-{_clock(e['last_t'])}" if e["first_t"] is not None else "time unknown"
        models = len(e["per_model"])
        out.append(f"{n} {cls.replace('_', ' ')} ({when}, {models} model{'s' if models != 1 else ''})")
    return out


USE_LABELS = {
    "reliability": "Most reliable",
    "tool_calling": "Tool calling",
    "structured_output": "Structured output",
    "speed": "Fastest",
    "balance": "Best balance",
}


def decide(
    models: dict[str, ModelProfile],
    caps: dict[str, CapabilityRow],
    balance: list[tuple[str, float, str]],
    by_class: dict[str, ErrorClass],
    drift: dict[str, Drift],
    *,
    outages: list[Outage] | None = None,
    log_lost: int = 0,
    duration_s: float | None,
    min_tests: int,
    min_requests: int,
    names: dict[str, str],
) -> Verdict:
    """The verdict of a run's figures. `balance`: (model key, score, evidence) best first."""
    hours = duration_s / 3600 if duration_s else None
    ctx = _Context(models, caps, hours, names)
    picks: list[Pick] = []
    candidates = (
        _rate_pick(ctx, "reliability", {k: m["success"] for k, m in models.items()}, min_tests, "tests", "tests passed"),
        _rate_pick(ctx, "tool_calling", _capability(caps, lambda r: r["tool_calling"]["overall"] if r["tool_calling"] else None), min_tests, "scored tool-calling tests", "tool calls correct"),
        _rate_pick(ctx, "structured_output", _capability(caps, lambda r: r["structured_output"]["schema_valid"] if r["structured_output"] else None), min_tests, "scored structured-output tests", "schema-valid answers"),
        _speed_pick(ctx, min_requests),
    )  # fmt: skip
    picks += [p for p in candidates if p is not None]
    scored = [(k, s, ev) for k, s, ev in balance if s > 0]
    if scored:
        k, s, ev = scored[0]
        picks.append(Pick(use="balance", model=k, evidence=f"score {s:.2f}", tied_with=[],
                          caveat=_caveat(models[k], caps.get(k)) if k in models else None, needs=None))  # fmt: skip
    incidents = _outage_incidents(outages or []) + _incidents(by_class)
    if log_lost:  # the writer reopened a deleted or replaced events.jsonl (log/writer.py)
        incidents.insert(0, "events.jsonl was lost during the run: these figures cover only what came after")
    lines = [_line(p, ctx) for p in picks][: MAX_LINES - 2]
    degraded = [_degraded(k, d, ctx) for k, d in drift.items() if d["degraded"]]
    if degraded:
        lines.append("- Degraded over the run: " + "; ".join(degraded))
    if incidents:
        lines.append("- Went wrong: " + "; ".join(incidents))
    elif models:
        lines.append("- Went wrong: no request failed for the server's or the connection's reasons")
    return Verdict(lines=lines[:MAX_LINES], picks=picks, incidents=incidents, rules=dict(RULES))


def _degraded(key: str, d: Drift, ctx: _Context) -> str:
    """What got worse between the model's first and last hour, with the evidence."""
    parts = []
    for label, test, unit in (("tokens/s", d["gen_tps"], ""), ("TTFT", d["ttft_ms"], " ms")):
        if test and test["degraded"] and test["change"] is not None and test["p"] is not None:
            parts.append(
                f"{label} {test['first']:g}{unit} -> {test['last']:g}{unit} ({test['change']:+.0%}, {pvalue(test['p'])})"
            )
    e = d["error_rate"]
    if e and e["degraded"] and e["first"] is not None and e["last"] is not None and e["p"] is not None:
        parts.append(f"error rate {e['first']:.0%} -> {e['last']:.0%} ({pvalue(e['p'])})")
    return f"{ctx.name(key)}: " + ", ".join(parts) + ", first hour vs last"


def _capability(
    caps: dict[str, CapabilityRow], get: Callable[[CapabilityRow], Rate | None]
) -> dict[str, Rate]:
    out = {}
    for k, row in caps.items():
        r = get(row)
        if r is not None:
            out[k] = r
    return out


def _line(p: Pick, ctx: _Context) -> str:
    label = USE_LABELS.get(p["use"], p["use"])
    if p["model"] is None:
        text = f"- {label}: no pick, {p['evidence']}"
    else:
        text = f"- {label}: **{ctx.name(p['model'])}**, {p['evidence']}"
    if p["tied_with"]:
        tied = ", ".join(ctx.name(k) for k in p["tied_with"][:2]) + (
            " and others" if len(p["tied_with"]) > 2 else ""
        )
        text += f"; statistically tied with {tied}"
    if p["needs"]:
        text += f"; {p['needs']}"
    if p["caveat"]:
        text += f"; caveat: {p['caveat']}"
    return text


__all__ = ["CAVEAT_SHARE", "MAX_LINES", "RULES", "USE_LABELS", "decide"]
