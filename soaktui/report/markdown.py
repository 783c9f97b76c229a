"""Render a report snapshot as `final_report.md`: the document people read the morning after.

Only presentation lives here; every figure comes from the snapshot (aggregate.py). Conventions:
units in column headers, "n/a" for anything not measured (never 0), every average with the
sample it is over (n=...), every rate with its counts and Wilson 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from soaktui.report.aggregate import DEFINITIONS
from soaktui.report.capabilities import KIND_LABELS, KINDS
from soaktui.report.cells import NA, clock, clock_offset, duration, ms, num, pvalue, table
from soaktui.report.hardware_markdown import render_hardware
from soaktui.report.snapshot import (
    CapabilityRow,
    Drift,
    LargeContextCapability,
    ModelProfile,
    Run,
    SampledRate,
    Snapshot,
)
from soaktui.stats import Describe, compact_rate
from soaktui.stats import format_rate as rate


def _stat_row(label: str, d: Describe, fmt: Callable[[Any], str]) -> list[Any]:
    return [label, d["n"], fmt(d["mean"]), fmt(d["p50"]), fmt(d["p95"]), fmt(d["p99"])]


def _tps(x: Any) -> str:
    return NA if x is None else f"{x:,.1f} tok/s"


_STAT_HEADERS = ["figure", "n", "mean", "p50", "p95", "p99"]


def _verdict(snap: Snapshot) -> list[str]:
    """The verdict first (report/verdict.py: at most 8 lines), then the legend of the short names."""
    v = snap["verdict"]
    if not v["lines"]:
        return ["No test finished: nothing to decide.", ""]
    out = ["## Verdict", "", *v["lines"], ""]
    names = snap["names"]
    if any(short != key for key, short in names.items()):
        out += ["Model names are short; in full:", ""]
        out += table(["name", "model (server/model id)"], [[short, key] for key, short in names.items()])
    return out


def _body_header(snap: Snapshot) -> list[str]:
    run = snap["run"]
    log = snap.get("log")
    out: list[str] = []
    if run["ended_without_finishing"]:
        out += [
            "> **The run ended without finishing** (no `run_finished` event: killed or crashed). "
            "The end time is the time of the last event in the log.",
            "",
        ]
    host = run.get("host") or {}
    host_s = (
        ", ".join(f"{k} {v}" for k, v in host.items() if v is not None) if isinstance(host, dict) else host
    )
    qh = run.get("quiet_hours")
    if isinstance(qh, dict):
        qh_s = (
            f"{qh.get('start')}-{qh.get('end')} at {qh.get('throttle_pct')}%" if qh.get("enabled") else "off"
        )
    else:
        qh_s = None
    log_s = None
    if log:
        log_s = f"{log.get('lines_ok', 0):,} events read"
        if log.get("lines_bad"):
            log_s += (
                f", {log['lines_bad']:,} invalid lines skipped (first at line {log.get('first_bad_line')})"
            )
        if log.get("torn_tail"):
            log_s += ", torn last line skipped"
        if log.get("newer_events"):
            log_s += f", {log['newer_events']:,} from a newer soaktui"
    rows: list[list[Any]] = [
        ["Run id", run["run_id"]],
        ["Started", run["started_at"]],
        [
            "Ended",
            run["ended_at"] + ("" if run["finished"] else " (last event)") if run["ended_at"] else None,
        ],
        ["Duration", f"{duration(run['duration_s'])} ({run['duration_source']})"],
        ["Planned duration", _planned(run)],
        ["Finish reason", run["finish_reason"] or "did not finish (killed?)"],
        ["Host", host_s or None],
        ["soaktui version", run["version"]],
        ["Seed", run["seed"]],
        ["Throttle at start", f"{run['throttle_pct']}%" if run["throttle_pct"] is not None else None],
        ["Quiet hours", qh_s],
        ["Demo (built-in simulator)", num(run["demo"]) if run["demo"] is not None else None],
        [
            "Engine peak RSS (status events)",
            f"{run['max_rss_bytes'] / 1e6:,.0f} MB" if run["max_rss_bytes"] else None,
        ],
        ["Log", log_s],
    ]
    out += ["## Run", ""] + table(["", ""], rows)
    if log and log.get("warning"):
        out += [f"Warning: {log['warning']}.", ""]
    if run["providers"]:
        out += ["### Providers", ""]
        out += table(
            ["name", "kind", "base URL", "version", "models"],
            [
                [p.get("name"), p.get("kind"), p.get("base_url"), p.get("version"), p.get("models")]
                for p in run["providers"]
            ],
        )
    if run["unreachable"]:
        out += ["Unreachable: " + "; ".join(f"{u} ({why})" for u, why in run["unreachable"].items()), ""]
    if run["selected"]:
        out += ["### Models selected (rotation order)", ""]
        models = snap["models"]
        picked: list[list[Any]] = []
        for key in run["selected"]:
            m = models.get(key)
            if m is None:
                picked.append([key, "unknown", NA, NA, 0])
                continue
            picked.append([key, _size(m), num(m["context_trained"]), num(m["context_length"]), m["tests"]])
        out += table(
            ["model", "size", "trained context (tokens)", "runtime context (tokens)", "tests"], picked
        )
    if run["excluded"]:
        out += ["### Models excluded", ""]
        out += table(["model", "reason"], [[e.get("model"), e.get("reason")] for e in run["excluded"]])
    return out


def _planned(run: Run) -> str | None:
    if not run["run_started_seen"]:
        return None
    return duration(run["planned_duration_s"]) if run["planned_duration_s"] else "until stopped"


def _size(m: ModelProfile) -> str:
    gb = m.get("size_gb")
    if gb is None:
        return "unknown"
    return f"{gb:.2f} GB" + (" (estimated)" if m.get("size_estimated") else "")


def _summary(snap: Snapshot) -> list[str]:
    t = snap["totals"]
    out = ["## Summary", ""]
    out += table(
        ["", ""],
        [
            ["Tests succeeded", rate(t["success"], "tests")],
            ["Requests succeeded", rate(t["requests_success"], "requests")],
            ["Requests failed", t["requests_failed"]],
            [
                "Cancelled by soaktui (skip, stop, end of run; not counted above)",
                f"{t['cancelled_tests']} tests, {t['cancelled_requests']} requests",
            ],
            *(
                [
                    [
                        "Tool lists too long for a model's context (retried with fewer tools; not counted above)",
                        f"{t['tools_did_not_fit']} requests",
                    ]
                ]
                if t["tools_did_not_fit"]
                else []
            ),
            [
                "Events",
                f"{t['events']:,}"
                + (f" ({t['malformed_events']} malformed)" if t["malformed_events"] else ""),
            ],
        ],
    )
    out += ["### Recommendations", ""]
    for r in snap["recommendations"]:
        who = f"**{r['model']}**" if r["model"] else "none"
        out.append(f"- {r['title'].capitalize()}: {who}: {r['evidence']}.")
    out += ["", f"Best balance: {snap['rankings']['rules']['balance']}.", ""]
    return out


CAPABILITY_HEADERS = [
    "model",
    "tool calling",
    *(KIND_LABELS[k] for k in KINDS),
    "native tools",
    "prompted tools",
    "structured output valid",
    "JSON parsed",
    "prompt checks",
]
SPEED_HEADERS = [
    "model",
    "streaming TTFT p50 / p95 (n)",
    "tokens/s p50 (n)",
    "largest prompt answered (tokens)",
    "tests succeeded",
    "request errors",
]


def _attempted(r: SampledRate, request_failed: int) -> str:
    """A capability rate; when every attempt failed at the request, say so rather than n/a."""
    if not r["n"] and request_failed:
        return f"0 scored, {request_failed} failed"
    return compact_rate(r)


def capability_cells(key: str, row: CapabilityRow) -> list[str]:
    """One model's capability-table cells (CAPABILITY_HEADERS); the dashboard shows the same."""
    tc, so, pc = row["tool_calling"], row["structured_output"], row["prompt_checks"]
    kinds = tc["by_kind"] if tc else {}
    modes = tc["by_mode"] if tc else {}
    return [
        key,
        _attempted(tc["overall"], tc["request_failed"]) if tc else NA,
        *(compact_rate(kinds.get(k)) for k in KINDS),
        compact_rate(modes.get("native")),
        compact_rate(modes.get("prompted")),
        _attempted(so["schema_valid"], so["request_failed"]) if so else NA,
        _attempted(so["parsed"], so["request_failed"]) if so else NA,
        _attempted(pc["passed"], pc["request_failed"]) if pc else NA,
    ]


def speed_cells(key: str, row: CapabilityRow) -> list[str]:
    """One model's speed / context / reliability cells (SPEED_HEADERS)."""
    t, g, rel = row["streaming_ttft_ms"], row["gen_tps"], row["reliability"]
    return [
        key,
        f"{ms(t['p50'])} / {ms(t['p95'])} (n={t['n']})" if t else NA,
        f"{_tps(g['p50'])} (n={g['n']})" if g else NA,
        _context_cell(row["large_context"]),
        compact_rate(rel["tests"]),
        compact_rate(rel["request_errors"]),
    ]


def _context_cell(c: LargeContextCapability | None) -> str:
    if c is None:
        return NA
    total = c["requests_ok"] + c["requests_failed"]
    if not c["requests_ok"]:
        return f"none ({total} failed)"
    size = NA if c["max_prompt_tokens"] is None else num(c["max_prompt_tokens"])
    return f"{size} ({c['bucket'] or 'bucket unknown'}; {c['requests_ok']}/{total} ok)"


def _capabilities(snap: Snapshot) -> list[str]:
    caps = snap["capabilities"]
    rows = caps["models"]
    out = ["## Capability matrix", ""]
    if not rows:
        return out + ["No model was tested.", ""]
    out += [
        f"Rates are passes/trials with a Wilson 95% interval; below {caps['small_sample_below']} trials "
        "only the counts and the interval are shown. n/a: not measured.",
        "",
    ]
    out += table(CAPABILITY_HEADERS, [capability_cells(k, r) for k, r in rows.items()])
    out += table(SPEED_HEADERS, [speed_cells(k, r) for k, r in rows.items()])
    detail = []
    for key, r in rows.items():
        tc, so = r["tool_calling"], r["structured_output"]
        if tc:
            detail.append(
                [
                    key,
                    "tool calling",
                    ", ".join(f"{v} {n}" for v, n in tc["verdicts"].items()) or NA,
                    ", ".join(f"{f} {n}" for f, n in tc["formats"].items()) or NA,
                    tc["request_failed"],
                ]
            )
        if so:
            detail.append(
                [
                    key,
                    "structured output",
                    ", ".join(f"{v} {n}" for v, n in so["failures"].items()) or "none",
                    "; ".join(so["error_examples"]) or NA,
                    so["request_failed"],
                ]
            )
    unread = [(k, tc) for k, r in rows.items() if (tc := r["tool_calling"]) and tc["unparsed_examples"]]
    if unread:
        out += ["### Tool calls soaktui could not read", ""]
        out += [
            "These answers look like tool calls in a syntax soaktui does not parse. They are scored "
            "`unparsed_call`: neither a correct call nor a correct refusal. `soaktui detect FILE` shows "
            "what the detector sees in a raw answer.",
            "",
        ]
        for key, tc in unread:
            n = tc["verdicts"].get("unparsed_call", 0)
            shown = "; ".join(f"`{ex.replace('`', chr(39))}`" for ex in tc["unparsed_examples"])
            out.append(f"- {key}: {n} test(s), e.g. {shown}")
        out.append("")
    if detail:
        out += ["### Verdicts and failure kinds", ""]
        out += table(
            [
                "model",
                "capability",
                "verdicts / failure kinds",
                "formats detected / example errors",
                "request failures (not scored)",
            ],
            detail,
            keep=2,
        )
    out += [f"- {k}: {v}." for k, v in caps["definitions"].items()]
    out.append("")
    return out


def _rankings(snap: Snapshot) -> list[str]:
    rk = snap["rankings"]
    mins = rk["min_samples"]
    out = ["## Rankings", ""]
    out += [
        f"### Throughput ({rk['rules']['throughput']}; at least {mins['throughput_requests']} requests)",
        "",
    ]
    if rk["throughput"]:
        out += table(
            ["rank", "model", "median output tokens/s", "n (requests)"],
            [[i + 1, r["model"], num(r["median_gen_tps"]), r["n"]] for i, r in enumerate(rk["throughput"])],
            keep=2,
        )
    else:
        out += ["No model has enough data.", ""]
    short = rk["insufficient"]["throughput"]
    if short:
        out += ["Insufficient data: " + ", ".join(f"{r['model']} (n={r['n']})" for r in short), ""]
    out += [f"### Reliability ({rk['rules']['reliability']}; at least {mins['reliability_tests']} tests)", ""]
    if rk["reliability"]:
        out += table(
            ["rank", "model", "tests succeeded", "lower bound"],
            [
                [i + 1, r["model"], rate(r["success"]), f"{100 * r['score']:.0f}%"]
                for i, r in enumerate(rk["reliability"])
            ],
        )
    else:
        out += ["No model has enough data.", ""]
    short = rk["insufficient"]["reliability"]
    if short:
        out += ["Insufficient data: " + ", ".join(f"{r['model']} (n={r['n']} tests)" for r in short), ""]
    for c in rk["capabilities"].values():
        if not (c["ranked"] or c["insufficient"]):
            continue
        out += [f"### {c['title']} ({c['rule']}; at least {c['min_samples']} {c['sample_unit']})", ""]
        if not c["ranked"]:
            out += ["No model has enough data.", ""]
        elif "rate" in c["ranked"][0]:
            out += table(
                ["rank", "model", "passed", "lower bound"],
                [
                    [i + 1, e["model"], rate(e["rate"]), f"{100 * e['score']:.0f}%"]
                    for i, e in enumerate(c["ranked"])
                ],
            )
        elif "p50_ms" in c["ranked"][0]:
            out += table(
                ["rank", "model", "TTFT p50", "TTFT p95", "n (requests)"],
                [
                    [i + 1, e["model"], ms(e["p50_ms"]), ms(e["p95_ms"]), e["n"]]
                    for i, e in enumerate(c["ranked"])
                ],
            )
        else:
            out += table(
                ["rank", "model", "largest prompt answered (tokens)", "successful requests"],
                [
                    [i + 1, e["model"], num(e["max_prompt_tokens"]), e["requests_ok"]]
                    for i, e in enumerate(c["ranked"])
                ],
            )
        if c["insufficient"]:
            out += [
                "Insufficient data: " + ", ".join(f"{e['model']} (n={e['n']})" for e in c["insufficient"]),
                "",
            ]
    if rk["balance"]:
        out += [f"### Balance ({rk['rules']['balance']})", ""]
        out += table(
            ["rank", "model", "score"],
            [[i + 1, e["model"], f"{e['score']:.2f}"] for i, e in enumerate(rk["balance"])],
        )
        out += [f"- {e['model']}: {e['evidence']}" for e in rk["balance"]] + [""]
    return out


# (label, figure, cell format, what it is over: printed under the table)
_PROFILE_FIGURES: list[tuple[str, Callable[[ModelProfile], Describe], Callable[[Any], str], str]] = [
    ("end-to-end latency", lambda m: m["e2e_ms"], ms, "successful requests"),
    ("time to first token", lambda m: m["ttft_ms"], ms, "successful streamed requests"),
    (
        "inter-token latency",
        lambda m: m["itl_p50_ms"],
        ms,
        "the median of each successful streamed request's ITL p50",
    ),
    ("output speed (generation)", lambda m: m["gen_tps"], _tps, "successful streamed requests"),
    (
        "output speed (output / e2e)",
        lambda m: m["gen_tps_nonstream"],
        _tps,
        "successful non-streamed requests",
    ),
    (
        "prompt speed",
        lambda m: m["prompt_tps"],
        _tps,
        "successful streamed requests with known prompt tokens",
    ),
]


def _profiles(snap: Snapshot) -> list[str]:
    out = ["## Model profiles", ""]
    if not snap["models"]:
        return out + ["No model was tested.", ""]
    untested = [
        k for k, m in snap["models"].items() if not (m["tests"] or m["requests_ok"] or m["requests_failed"])
    ]
    if untested:
        out += ["Selected but not tested: " + ", ".join(untested) + ".", ""]
    for key, m in snap["models"].items():
        if key in untested:
            continue
        out += [f"### {key}", ""]
        src = m["token_source"]
        info = m.get("info") or {}
        scen = ", ".join(f"{s} ({v['tests']})" for s, v in m["scenarios"].items() if v["tests"]) or None
        rows: list[list[Any]] = [
            ["Size", _size(m)],
            ["Parameters", f"{info['params_b']} B" if info.get("params_b") is not None else None],
            ["Quantization", info.get("quantization")],
            ["Context length (tokens)", num(m["context_length"])],
            ["Tests succeeded", rate(m["success"], "tests")],
            ["Requests succeeded", rate(m["requests_success"], "requests")],
            ["Scenarios tested (tests)", scen],
            [
                "Token counts from",
                f"server usage {src['usage']:,}, counted chunks {src['chunks']:,}"
                + (f", unknown {src['unknown']:,}" if src["unknown"] else "")
                + " (successful requests)",
            ],
            ["Output tokens (successful requests with a count)", num(m["output_tokens"])],
            ["Truncated answers (finish_reason=length)", m["truncated"]],
        ]
        if src.get("usage_rejected"):
            rows.append(["Server usage not believed (impossible counts)", f"{src['usage_rejected']:,} requests"])
        if m["errors"]:
            rows.append(["Failed requests by class", ", ".join(f"{c} {n}" for c, n in m["errors"].items())])
        out += table(["", ""], rows)
        shown = [(label, d, fmt, over) for label, of, fmt, over in _PROFILE_FIGURES if (d := of(m))["n"]]
        if shown:
            out += table(_STAT_HEADERS, [_stat_row(label, d, fmt) for label, d, fmt, _ in shown])
            out += ["Over: " + "; ".join(f"{label}: {over}" for label, _, _, over in shown) + ".", ""]
        else:
            out += ["No successful request: latency and throughput n/a.", ""]
        if m["prompt_categories"]:
            out += ["Prompt categories (prompt_variety tests):", ""]
            out += table(
                ["category", "tests succeeded"],
                [[c, rate(v["success"])] for c, v in m["prompt_categories"].items()],
            )
    return out


def _scenarios(snap: Snapshot) -> list[str]:
    out = ["## Scenarios", ""]
    if not snap["scenarios"]:
        return out + ["No scenario ran.", ""]
    rows = []
    for name, s in snap["scenarios"].items():
        e, f = s["e2e_ms"], s["ttft_ms"]
        rows.append(
            [
                name,
                rate(s["success"], "tests"),
                f"{s['requests_ok']:,}/{s['requests_ok'] + s['requests_failed']:,}",
                f"{ms(e['p50'])} / {ms(e['p95'])} / {ms(e['p99'])} (n={e['n']})",
                f"{ms(f['p50'])} (n={f['n']})",
                len(s["models"]),
            ]
        )
    out += table(
        [
            "scenario",
            "tests succeeded",
            "requests ok/total",
            "e2e p50/p95/p99 (successful)",
            "TTFT p50 (successful streamed)",
            "models",
        ],
        rows,
    )
    failing = [(n, s) for n, s in snap["scenarios"].items() if s["failure_reasons"]]
    if failing:
        out += ["### Top failure reasons", ""]
        rows = [[n, reason, c] for n, s in failing for reason, c in s["failure_reasons"]]
        out += table(["scenario", "reason", "tests"], rows)
    return out


def _errors(snap: Snapshot) -> list[str]:
    err = snap["errors"]
    out = ["## Errors by class", ""]
    if err["by_class"]:
        out += table(
            ["class", "failed requests", "failed tests", "per model", "example"],
            [
                [
                    cls,
                    r["requests"],
                    r["tests"],
                    ", ".join(f"{k} {n}" for k, n in r["per_model"].items()),
                    r["example"],
                ]
                for cls, r in err["by_class"].items()
            ],
        )
    else:
        out += ["No request or test failed.", ""]
    if err["engine"]:
        out += ["### Other errors (engine, discovery, sinks)", ""]
        out += table(
            ["class", "where", "count", "example"],
            [[e["error_class"], e["where"], e["count"], e["example"]] for e in err["engine"]],
        )
    return out + _outages(snap)


def _outages(snap: Snapshot) -> list[str]:
    """Providers that were down, as periods (the engine probed them instead of testing)."""
    periods = snap.get("outages") or []
    if not periods:
        return []
    out = ["### Outages (provider down: no tests ran on it, it was probed with backoff)", ""]
    out += table(
        ["provider", "down", "back", "downtime", "failed probes", "why"],
        [
            [
                o["provider"],
                _clock(o["down_t"]),
                _clock(o["up_t"]) if o["up_t"] is not None else "still down at the end",
                duration(o["downtime_s"]) if o["downtime_s"] is not None else NA,
                o["failed_probes"] if o["failed_probes"] is not None else NA,
                f"{o['error_class']}: {o['message']}" if o["message"] else o["error_class"],
            ]
            for o in periods
        ],
    )
    return out


def _ms_cell(d: Describe | None) -> str:
    """p50 (max), or n/a."""
    if not d or not d.get("n"):
        return NA
    return f"{ms(d['p50'])} ({ms(d['max'])}) n={d['n']}"


def _clock(t: Any) -> str:
    return clock(t, "%H:%M:%S", NA)


def _server_truth(snap: Snapshot) -> list[str]:
    truth = snap.get("server_truth") or {}
    out = ["## What the servers hid", ""]
    out += [
        "Failures an HTTP 200 can hide, and the servers' own view of speed. Cold requests waited for a "
        "model load and are left out of every TTFT and latency figure above; stalled streams and "
        "silently cut prompts count as failures.",
        "",
    ]
    if not truth:
        out += ["Nothing to show: no cold load, stall, cut prompt or server timing in this run.", ""]
        return out
    rows = []
    for key, t in truth.items():
        cold, st, cut, gen = t["cold_loads"], t["stalls"], t["prompt_truncated"], t["gen_speed"]
        load = cold["load_ms_server"] if cold["load_ms_server"]["n"] else cold["load_ms_estimated"]
        load_cell = _ms_cell(load)
        if load_cell != NA and not cold["load_ms_server"]["n"]:
            load_cell += " est."
        if gen["pairs"]:
            speed = f"{num(gen['soaktui_gen_tps_p50'])} / {num(gen['server_gen_tps_p50'])} (n={gen['pairs']})"
            if gen["disagree"]:
                speed += " **disagree**"
        else:
            speed = NA
        ctx = t.get("runtime_context") or {}
        rows.append(
            [
                key,
                cold["requests"],
                _ms_cell(cold["first_token_wait_ms"]),
                load_cell,
                st["requests"],
                NA if st["max_gap_ms"] is None else f"{st['max_gap_ms'] / 1000:.1f} s",
                cut["requests"],
                speed,
                num(ctx.get("context_length")) if ctx else NA,
            ]
        )
    out += table(
        [
            "model",
            "cold loads",
            "first token after load p50 (max)",
            "load p50 (max)",
            "stalls",
            "longest gap",
            "cut prompts",
            "gen tok/s soaktui / server p50",
            "runtime context (server)",
        ],
        rows,
    )
    events: list[tuple[float, str]] = []
    for key, t in truth.items():
        for ex in t["stalls"]["examples"]:
            gap = ex.get("max_gap_ms")
            gap_s = NA if gap is None else f"{gap / 1000:.1f} s"
            events.append(
                (
                    ex.get("t") or 0,
                    f"{_clock(ex.get('t'))} {key}: stream stalled {gap_s} ({ex.get('scenario')})",
                )
            )
        for cut_ex in t["prompt_truncated"]["examples"]:
            events.append(
                (
                    cut_ex.get("t") or 0,
                    f"{_clock(cut_ex.get('t'))} {key}: prompt cut to {num(cut_ex.get('prompt_tokens'))} tokens "
                    f"(at least {num(cut_ex.get('prompt_tokens_floor'))} sent; {cut_ex.get('scenario')})",
                )
            )
    if events:
        out += ["### When", ""]
        out += [f"- {text}" for _, text in sorted(events, key=lambda e: e[0])]
        out.append("")
    return out


def _scaling(snap: Snapshot) -> list[str]:
    out = ["## Scaling", ""]
    conc = snap["scaling"]["concurrency"]
    out += ["### Concurrency (concurrent_load)", "", DEFINITIONS["concurrency"] + ".", ""]
    if not conc:
        out += ["No concurrent_load test ran.", ""]
    for key, rows in conc.items():
        out += [f"**{key}**", ""]
        out += table(
            [
                "concurrency",
                "batches (all ok / partial / all failed)",
                "saturated",
                "requests ok/total",
                "aggregate tokens/s (median)",
                "per-request p50 latency (median)",
            ],
            [
                [
                    r["concurrency"],
                    f"{r['batches']} ({r['full']} / {r['partial']} / {r['failed']})",
                    r["saturated"],
                    f"{r['requests_ok']}/{r['requests_ok'] + r['requests_failed']}",
                    f"{num(r['aggregate_tps']['p50'])} (n={r['aggregate_tps']['n']})",
                    f"{ms(r['latency_p50_ms']['p50'])} (n={r['latency_p50_ms']['n']})",
                ]
                for r in rows
            ],
        )
    ctx = snap["scaling"]["context"]
    out += ["### Context size (large_context)", "", DEFINITIONS["context"] + ".", ""]
    if not ctx:
        out += ["No large_context request ran.", ""]
    for key, buckets in ctx.items():
        out += [f"**{key}**", ""]
        out += table(
            [
                "prompt tokens",
                "requests ok/total",
                "context overflow",
                "TTFT p50 (successful)",
                "prompt tokens/s p50 (successful)",
            ],
            [
                [
                    r["bucket"]
                    + (f" ({r['bucketed_by_target']} by target size)" if r["bucketed_by_target"] else ""),
                    f"{r['requests_ok']}/{r['requests_ok'] + r['requests_failed']}",
                    r["context_overflow"],
                    f"{ms(r['ttft_ms']['p50'])} (n={r['ttft_ms']['n']})",
                    f"{num(r['prompt_tps']['p50'])} (n={r['prompt_tps']['n']})",
                ]
                for r in buckets
            ],
        )
    return out


def _failover(snap: Snapshot) -> list[str]:
    out = ["## Failover and recovery", ""]
    fo = snap["failover"]
    if not fo:
        return out + ["No provider_failover test ran.", ""]
    rows = []
    for key, modes in fo.items():
        for mode, r in modes.items():
            rows.append(
                [
                    key,
                    mode,
                    rate(r["success"], "tests"),
                    f"{ms(r['detect_ms']['p50'])} (n={r['detect_ms']['n']})",
                    f"{ms(r['recover_ms']['p50'])} (n={r['recover_ms']['n']})",
                    f"{ms(r['cold_load_ms']['p50'])} (n={r['cold_load_ms']['n']})",
                    f"{num(r['attempts']['p50'])} (n={r['attempts']['n']})",
                ]
            )
    out += table(
        [
            "model",
            "mode",
            "tests succeeded",
            "detect p50",
            "recover p50",
            "cold load p50",
            "attempts p50",
        ],
        rows,
    )
    return out


def _control(snap: Snapshot) -> list[str]:
    c = snap["control"]
    last, pace = c["throttle_last"], c["pace_last"]
    rows: list[list[Any]] = [
        ["Throttle at start", f"{c['throttle_start_pct']}%" if c["throttle_start_pct"] is not None else None],
        ["Throttle changes", c["throttle_changes"]],
        ["Last throttle setting", f"{last['pct']}% ({last['source']})" if last else "unchanged"],
        [
            "Duty cycle at the end",
            f"{pace['effective_pct']}%: {pace['why']} at {_clock(pace['t'])}"
            if pace
            else "as set at the start",
        ],
        ["Quiet-hours changes", c["quiet_hours_changes"]],
        ["Pauses", c["pauses"]],
        ["Time paused", duration(c["paused_s"]) + (" (paused at the end)" if c["paused_at_end"] else "")],
        ["Models skipped", c["models_skipped"]],
        ["Model switches", c["model_switches"]],
    ]
    if c["commands"]:
        rows.append(["Commands", ", ".join(f"{k} {n}" for k, n in c["commands"].items())])
    return ["## Throttle, pauses and commands", ""] + table(["", ""], rows)


def _hardware(snap: Snapshot) -> list[str]:
    return render_hardware(snap.get("hardware"))


def _over_time(snap: Snapshot) -> list[str]:
    """Each model over the run (report/folds/timeline.py), its errors by class with their first and
    last time, and the first-hour vs last-hour comparison."""
    tl = snap["timeline"]
    out = ["## Over time", ""]
    if not tl["models"]:
        return out + ["No request finished.", ""]
    out += [
        f"Buckets of {duration(tl['bucket_s'])} from the start of the run; tokens/s and TTFT over successful "
        "streamed requests (cold loads left out).",
        "",
    ]
    names = snap["names"]
    for key, buckets in tl["models"].items():
        out += [f"### {names.get(key, key)}", ""]
        rows = [
            [
                clock_offset(b["start_s"]),
                f"{b['requests_ok']}/{b['requests_ok'] + b['requests_failed']}",
                NA if b["error_rate"] is None else f"{b['error_rate']:.0%}",
                b["stalls"],
                NA if b["gen_tps_p50"] is None else f"{b['gen_tps_p50']:.1f} (n={b['gen_tps_n']})",
                f"{ms(b['ttft_p50_ms'])} / {ms(b['ttft_p95_ms'])}",
            ]
            for b in buckets
        ]
        out += table(
            ["from start", "requests ok/total", "errors", "stalls", "tokens/s p50", "TTFT p50 / p95"], rows
        )
        spans = snap["models"][key]["error_spans"] if key in snap["models"] else {}
        if spans:
            counts = snap["models"][key]["errors"]
            seen = ", ".join(
                f"{cls} {counts.get(cls, '')} ({_clock(t0)}-{_clock(t1)})".replace("  ", " ")
                for cls, (t0, t1) in spans.items()
            )
            out += [f"Failures by class (first-last seen): {seen}.", ""]
        d = tl["drift"].get(key)
        if d is not None:
            out += [_drift_line(d), ""]
    out += [f"First hour vs last hour: {tl['method']}.", ""]
    return out


def _drift_line(d: Drift) -> str:
    if not d["compared"]:
        return f"First vs last hour: not compared ({d['why']})."
    parts = []
    for label, test, fmt in (("tokens/s p50", d["gen_tps"], "{:.1f}"), ("TTFT p50", d["ttft_ms"], "{:.0f} ms"),
                             ("error rate", d["error_rate"], "{:.1%}")):  # fmt: skip
        if test is None or test["first"] is None or test["last"] is None:
            continue
        flag = " **degraded**" if test["degraded"] else ""
        parts.append(
            f"{label} {fmt.format(test['first'])} -> {fmt.format(test['last'])} ({pvalue(test['p'])}){flag}"
        )
    return (
        "First vs last hour: " + ("; ".join(parts) if parts else "too few requests in one of the hours") + "."
    )


def _definitions(snap: Snapshot) -> list[str]:
    out = ["## Definitions", ""]
    out += [f"- `{k}`: {v}." for k, v in snap["definitions"].items()]
    out += ["- n/a: not measured (never shown as 0).", ""]
    return out


def render_markdown(snap: Snapshot) -> str:
    """The whole report as Markdown text. Models go by their short names (the legend under the
    verdict gives each one's full key), so the body's keys are replaced by them."""
    parts = (
        _body_header,
        _summary,
        _capabilities,
        _rankings,
        _profiles,
        _scenarios,
        _errors,
        _server_truth,
        _over_time,
        _scaling,
        _failover,
        _control,
        _hardware,
        _definitions,
    )
    view = cast(Snapshot, _shortened(snap, sorted(snap["names"].items(), key=lambda kv: -len(kv[0]))))
    lines = [f"# soaktui report: {snap['run']['run_id'] or 'unknown run'}", "", *_verdict(snap)]
    for part in parts:
        lines += part(view)
    return "\n".join(lines).rstrip("\n") + "\n"


def _shortened(obj: Any, names: list[tuple[str, str]]) -> Any:
    """`obj` with every model key (in keys and in text) replaced by its short name."""
    if isinstance(obj, str):
        for key, short in names:
            if key in obj:
                obj = obj.replace(key, short)
        return obj
    if isinstance(obj, dict):
        return {_shortened(k, names): _shortened(v, names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shortened(v, names) for v in obj]
    return obj
