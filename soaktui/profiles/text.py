"""The text of `soaktui models`: the capability database's model profiles, for a terminal.

Same conventions as the report: every rate with its counts and Wilson interval (a small sample as
counts and interval only), "n/a" for what was never measured. Medians cannot be merged across runs,
so TTFT and tokens/s show the range of the per-run medians and how many runs measured them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soaktui.report.capabilities import KIND_LABELS
from soaktui.report.cells import NA, num
from soaktui.report.snapshot import SampledRate
from soaktui.stats import compact_rate

MAX_RUN_IDS = 6  # run ids listed per model in the overview (all of them with MODEL or --json)

COLUMNS = [
    "TESTS SUCCEEDED",
    "TOOL CALLING",
    "STRUCTURED OUTPUT",
    "PROMPT CHECKS",
    "TTFT P50 MS",
    "TOK/S P50",
    "LARGEST PROMPT",
    "REQUEST ERRORS",
]


def _spread(s: dict[str, Any] | None, nd: int) -> str:
    if s is None:
        return NA
    lo, hi = num(s["min_p50"], nd), num(s["max_p50"], nd)
    text = lo if lo == hi else f"{lo}–{hi}"
    return text if s["runs"] == 1 else f"{text} ({s['runs']} runs)"


def _context(c: dict[str, Any] | None) -> str:
    if c is None:
        return NA
    total = c["requests_ok"] + c["requests_failed"]
    if c["max_prompt_tokens"] is None:
        return (
            f"none ({c['requests_ok']}/{total} ok)"
            if not c["requests_ok"]
            else f"size n/a ({c['requests_ok']}/{total} ok)"
        )
    return f"{num(c['max_prompt_tokens'])} ({c['requests_ok']}/{total} ok)"


def _sub(part: dict[str, Any] | None, name: str) -> str:
    return compact_rate(part[name]) if part else NA


def figure_cells(p: dict[str, Any]) -> list[str]:
    """The COLUMNS cells of one profile (over many runs or one)."""
    return [
        compact_rate(p["tests"]),
        _sub(p["tool_calling"], "overall"),
        _sub(p["structured_output"], "schema_valid"),
        _sub(p["prompt_checks"], "passed"),
        _spread(p["streaming_ttft_p50_ms"], 0),
        _spread(p["gen_tps_p50"], 1),
        _context(p["large_context"]),
        compact_rate(p["request_errors"]),
    ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _when(iso: str | None) -> str:
    return NA if not iso else iso[:16].replace("T", " ")


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_list(profiles: dict[str, dict[str, Any]], path: Path) -> str:
    """`soaktui models`: one line per model, then the runs each profile came from."""
    if not profiles:
        return (
            f"no model profiles yet ({path})\n"
            "a run adds its models when its report is built; `soaktui report RUN_DIR` adds an older run"
        )
    run_ids = {rid for p in profiles.values() for rid in p["run_ids"]}
    rows = [["MODEL", "RUNS", *COLUMNS, "LAST SEEN"]]
    for key, p in profiles.items():
        runs = str(p["runs"]) + (f" ({p['demo_runs']} demo)" if p["demo_runs"] else "")
        rows.append([key, runs, *figure_cells(p), _when(p["last_seen"])])
    lines = [
        f"model profiles: {_plural(len(profiles), 'model')} from {_plural(len(run_ids), 'run')} ({path})",
        "",
    ]
    lines += _columns(rows)
    lines += ["", "runs (oldest first):"]
    for key, p in profiles.items():
        ids = p["run_ids"]
        more = len(ids) - MAX_RUN_IDS
        shown = ", ".join(ids[-MAX_RUN_IDS:])
        lines.append(f"  {key}: " + (f"… {more} more, " if more > 0 else "") + shown)
    lines += [
        "",
        "rates: passed/trials with a Wilson 95% interval; `soaktui models MODEL` for one model's runs",
    ]
    return "\n".join(lines)


def _by(rates: dict[str, SampledRate], labels: dict[str, str] | None = None) -> str:
    return ", ".join(f"{(labels or {}).get(k, k)} {compact_rate(r)}" for k, r in rates.items())


def format_history(
    key: str, prof: dict[str, Any], runs: list[dict[str, Any]], per_run: list[dict[str, Any]]
) -> str:
    """`soaktui models MODEL`: the model's profile over all its runs, then one line per run."""
    tc, so, pc = prof["tool_calling"], prof["structured_output"], prof["prompt_checks"]
    cells = figure_cells(prof)
    facts = [
        ("tests succeeded", cells[0]),
        ("request errors", cells[7]),
        (
            "tool calling",
            NA
            if tc is None
            else f"{compact_rate(tc['overall'])}; by kind: {_by(tc['by_kind'], KIND_LABELS) or NA}; "
            f"by mode: {_by(tc['by_mode']) or NA}; request failures (not scored) {tc['request_failed']}",
        ),
        (
            "structured output",
            NA
            if so is None
            else f"schema-valid {compact_rate(so['schema_valid'])}, parsed {compact_rate(so['parsed'])}; "
            f"by mode: {_by(so['by_mode']) or NA}; failures: "
            + (", ".join(f"{k} {n}" for k, n in so["failures"].items()) or "none"),
        ),
        ("prompt checks", NA if pc is None else compact_rate(pc["passed"])),
        ("streaming TTFT p50 ms", cells[4]),
        ("tokens/s p50", cells[5]),
        ("largest prompt answered", cells[6]),
    ]
    demo = f", {prof['demo_runs']} with the built-in simulator" if prof["demo_runs"] else ""
    lines = [f"{key}: {_plural(prof['runs'], 'run')}{demo}, last seen {_when(prof['last_seen'])}", ""]
    width = max(len(f) for f, _ in facts)
    lines += [f"  {f.ljust(width)}  {v}" for f, v in facts]
    rows = [["RUN", "ENDED", "SERVER", *COLUMNS]]
    for rec, p in zip(runs, per_run, strict=True):
        run = (
            rec["run_id"] + (" (demo)" if rec["demo"] else "") + ("" if rec["finished"] else " (unfinished)")
        )
        rows.append([run, _when(rec["ended_at"]), rec["model"].partition("/")[0], *figure_cells(p)])
    lines += ["", *_columns(rows)]
    return "\n".join(lines)
