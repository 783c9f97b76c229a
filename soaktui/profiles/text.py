"""The text of `soaktui models`: the capability database's model profiles, for a terminal.

Same conventions as the report: every rate with its counts and Wilson interval (a small sample as
counts and interval only), "n/a" for what was never measured. Medians cannot be merged across runs,
so TTFT and tokens/s show the range of the per-run medians and how many runs measured them.
Like the report's tables, it fits 100 columns: models go by short names (their keys are listed
below the table), wide tables are split into column groups, long lines are wrapped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from soaktui.hints import command
from soaktui.report.capabilities import KIND_LABELS
from soaktui.report.cells import NA, WIDTH, column_groups, num
from soaktui.report.names import short_names
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
    """Aligned columns (the first row the header), split into column groups that fit WIDTH, each
    repeating the first column; a blank line between groups."""
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]  # + 2: the gap after it
    out: list[str] = []
    for cols in column_groups(widths, WIDTH + 2):  # + 2: the last column needs no gap
        out += [] if not out else [""]
        out += ["".join(r[i].ljust(widths[i]) for i in cols).rstrip() for r in rows]
    return out


def _wrap(text: str, indent: str = "", hang: str = "    ") -> list[str]:
    """A line of prose cut to WIDTH at spaces (keys and paths stay whole), later lines indented."""
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
        break_long_words=False, break_on_hyphens=False,
    ) or [""]  # fmt: skip


def format_list(profiles: dict[str, dict[str, Any]], path: Path) -> str:
    """`soaktui models`: one line per model, then the runs each profile came from."""
    if not profiles:
        return "\n".join(
            [
                f"no model profiles yet (database: {path})",
                "a run adds its models when its report is built; to add an older run:",
                "  " + command("report", "RUN_DIR"),
            ]
        )
    run_ids = {rid for p in profiles.values() for rid in p["run_ids"]}
    names = short_names(profiles, profile_keys=True)
    rows = [["MODEL", "RUNS", *COLUMNS, "LAST SEEN"]]
    for key, p in profiles.items():
        runs = str(p["runs"]) + (f" ({p['demo_runs']} demo)" if p["demo_runs"] else "")
        rows.append([names[key], runs, *figure_cells(p), _when(p["last_seen"])])
    lines = [
        f"model profiles: {_plural(len(profiles), 'model')} from {_plural(len(run_ids), 'run')}",
        f"database: {path}",
        "",
    ]
    lines += _columns(rows)
    lines += ["", "models by key, with their runs (oldest first):"]
    for key, p in profiles.items():
        ids = p["run_ids"]
        more = len(ids) - MAX_RUN_IDS
        shown = ", ".join(ids[-MAX_RUN_IDS:])
        lines += _wrap(f"{key}: " + (f"… {more} more, " if more > 0 else "") + shown, "  ")
    lines += [
        "",
        "rates: passed/trials with a Wilson 95% interval; one model's runs (MODEL: a key or a unique part):",
        "  " + command("models", "MODEL"),
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
    lines = [*_wrap(f"{key}: {_plural(prof['runs'], 'run')}{demo}, last seen {_when(prof['last_seen'])}"), ""]
    width = max(len(f) for f, _ in facts)
    for f, v in facts:
        lines += _wrap(f"  {f.ljust(width)}  {v}", hang=" " * (width + 4))
    rows = [["RUN", "ENDED", "SERVER", *COLUMNS]]
    for rec, p in zip(runs, per_run, strict=True):
        run = (
            rec["run_id"] + (" (demo)" if rec["demo"] else "") + ("" if rec["finished"] else " (unfinished)")
        )
        rows.append([run, _when(rec["ended_at"]), rec["model"].partition("/")[0], *figure_cells(p)])
    lines += ["", *_columns(rows)]
    return "\n".join(lines)
