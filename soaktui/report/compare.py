"""`soaktui compare`: runs side by side, from one host or several, last night against tonight.

Each run directory is folded exactly as `soaktui report` folds it (build_report over its
events.jsonl), so a copied run directory from another host compares like a local one. Models are
matched across runs by server kind and model id (`lmstudio@127.0.0.1:1234/qwen2.5-7b` and
`lmstudio@10.0.0.5:1234/qwen2.5-7b` are the same model on two hosts). Per model and run: the
test success rate, warm streamed TTFT p50, generation tokens/s p50, tool-calling and
structured-output rates, each with its sample size and interval.

Which differences are significant, always against the first run that has the model (the
baseline, column A):
- rates: a two-proportion z-test (report/folds/timeline.py `two_proportions`), p < ALPHA;
- tokens/s: the distribution-free 95% intervals of the two medians do not overlap;
- TTFT p50: no interval is kept for it, so it is shown and never called significant.
A significant difference is marked `*` in the markdown (with its p or "intervals apart") and
listed in `differences` in the JSON.
"""

from __future__ import annotations

import glob
import html
from pathlib import Path
from typing import Any

from soaktui.log import rundir
from soaktui.report.build import build_report
from soaktui.report.cells import NA, duration, num, pvalue, table
from soaktui.report.folds.timeline import two_proportions
from soaktui.report.html import STYLE
from soaktui.report.names import elide, split_key
from soaktui.report.snapshot import Snapshot
from soaktui.stats import Rate, compact_rate

ALPHA = 0.05
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
RATES = (  # figure, the title of its table
    ("success", "Tests passed"),
    ("tool_calling", "Tool calls correct"),
    ("structured_output", "Schema-valid answers"),
)


class CompareError(Exception):
    """A run directory that cannot be compared (the message says why, in one line)."""


def expand(patterns: list[str]) -> list[Path]:
    """Run directories from paths and glob patterns, in the order given, each once."""
    out: list[Path] = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        for h in hits:
            path = Path(h).expanduser()
            if (path / rundir.EVENTS).is_file() and path not in out:
                out.append(path)
            elif not any(c in p for c in "*?["):
                raise CompareError(f"{h}: no {rundir.EVENTS} here (is it a soaktui run directory?)")
    if len(out) < 2:
        raise CompareError(f"compare needs at least two run directories; found {len(out)}")
    if len(out) > len(LABELS):
        raise CompareError(f"at most {len(LABELS)} runs at once; found {len(out)}")
    return out


def match_key(model_key: str) -> str:
    """`kind/model`: the provider's kind (its name before `@host:port`) and the model id."""
    kind, _, model = split_key(model_key, profile_key=True)
    return f"{kind}/{model}" if kind and model else model_key


def _rates(snap: Snapshot, key: str) -> dict[str, Rate | None]:
    caps = snap["capabilities"]["models"].get(key)
    tc = caps["tool_calling"] if caps else None
    so = caps["structured_output"] if caps else None
    return {
        "success": snap["models"][key]["success"],
        "tool_calling": tc["overall"] if tc else None,
        "structured_output": so["schema_valid"] if so else None,
    }


def _figures(snap: Snapshot, key: str) -> dict[str, Any]:
    m = snap["models"][key]
    caps = snap["capabilities"]["models"].get(key)
    ttft = caps["streaming_ttft_ms"] if caps else None
    return {
        "key": key,
        **{k: (dict(v) if v else None) for k, v in _rates(snap, key).items()},
        "ttft_p50_ms": ttft["p50"] if ttft else None,
        "ttft_n": ttft["n"] if ttft else 0,
        "gen_tps_p50": m["gen_tps"]["p50"],
        "gen_tps_n": m["gen_tps"]["n"],
        "gen_tps_ci95": m["gen_tps_p50_ci95"],
    }


def _run_row(label: str, path: Path, snap: Snapshot) -> dict[str, Any]:
    run = snap["run"]
    host = run["host"] or {}
    temps = snap["hardware"]["temperatures"]
    return {
        "label": label,
        "run_dir": str(path),
        "run_id": run["run_id"],
        "hostname": host.get("hostname"),
        "platform": host.get("platform"),
        "cpus": host.get("cpus"),
        "started_at": run["started_at"],
        "duration_s": run["duration_s"],
        "demo": run["demo"],
        "tests": snap["totals"]["tests"],
        "cpu_temp_peak_c": temps["cpu"]["peak"] if "cpu" in temps else None,
        "gpu_temp_peak_c": temps["gpu"]["peak"] if "gpu" in temps else None,
        "power_w_mean": snap["hardware"]["power_w"]["mean"],
    }


def _significant(base: dict[str, Any], other: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of `other` that differ significantly from `base` (see the module docstring)."""
    found = []
    for fig, _ in RATES:
        a, b = base.get(fig), other.get(fig)
        if a and b and a["n"] and b["n"]:
            p = two_proportions(a["k"], a["n"], b["k"], b["n"])
            if p is not None and p < ALPHA:
                found.append({"figure": fig, "p": round(p, 4), "from": a["rate"], "to": b["rate"]})
    ca, cb = base.get("gen_tps_ci95"), other.get("gen_tps_ci95")  # [low, high] of each median
    if ca and cb and (cb[0] > ca[1] or cb[1] < ca[0]):
        found.append(
            {"figure": "gen_tps_p50", "p": None, "from": base["gen_tps_p50"], "to": other["gen_tps_p50"]}
        )
    return found


def compare(paths: list[Path]) -> dict[str, Any]:
    """The comparison document (what `--json` prints; markdown and HTML render it)."""
    snaps = []
    for path in paths:
        try:
            snap, _ = build_report(path)
        except OSError as exc:
            raise CompareError(f"{path}: cannot read the run ({exc.strerror or exc})") from None
        snaps.append(snap)
    runs = [_run_row(LABELS[i], p, s) for i, (p, s) in enumerate(zip(paths, snaps, strict=True))]
    matched: dict[str, list[dict[str, Any] | None]] = {}
    for i, snap in enumerate(snaps):
        for key, m in snap["models"].items():
            if not m["tests"]:
                continue
            row = matched.setdefault(match_key(key), [None] * len(snaps))
            if row[i] is None or m["tests"] > (row[i] or {}).get("tests", 0):
                row[i] = {**_figures(snap, key), "tests": m["tests"]}
    models = []
    for name, per_run in matched.items():
        base_i, base = next((i, r) for i, r in enumerate(per_run) if r is not None)
        diffs = []
        for i, r in enumerate(per_run):
            if r is not None and i != base_i:
                diffs += [{"run": LABELS[i], "against": LABELS[base_i], **d} for d in _significant(base, r)]
        models.append({"model": name, "runs": per_run, "baseline": LABELS[base_i], "differences": diffs})
    models.sort(key=lambda m: (-sum(r is not None for r in m["runs"]), m["model"]))
    return {
        "runs": runs,
        "models": models,
        "method": {
            "match": "models are matched by server kind and model id",
            "rates": f"two-proportion z-test against the baseline run, significant at p < {ALPHA}",
            "gen_tps_p50": "significant when the 95% intervals of the two medians do not overlap",
            "ttft_p50_ms": "shown only: no interval is kept for it",
        },
    }


def _rate_cell(r: dict[str, Any] | None, mark: str) -> str:
    return NA if not r or not r.get("n") else compact_rate(r) + mark  # type: ignore[arg-type]


def _cells(doc: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of each table: the runs, then one table per figure."""
    labels = [r["label"] for r in doc["runs"]]
    runs = [
        [
            r["label"],
            r["run_id"] or NA,
            r["hostname"] or NA,
            str(r["cpus"] or NA),
            (r["started_at"] or NA)[:16],
            duration(r["duration_s"]),
            str(r["tests"]),
            num(r["cpu_temp_peak_c"]),
            num(r["gpu_temp_peak_c"]),
            num(r["power_w_mean"]),
        ]  # fmt: skip
        for r in doc["runs"]
    ]
    out = [
        (
            "Runs",
            ["run", "id", "host", "CPUs", "started", "ran", "tests", "CPU °C", "GPU °C", "W"],
            runs,
        )
    ]
    figures = [(fig, title) for fig, title in RATES] + [
        ("gen_tps_p50", "Generation tokens/s, p50"),
        ("ttft_p50_ms", "Warm TTFT p50, ms"),
    ]
    for fig, title in figures:
        rows = []
        for m in doc["models"]:
            sig = {d["run"]: d for d in m["differences"] if d["figure"] == fig}
            cells = []
            for label, r in zip(labels, m["runs"], strict=True):
                d = sig.get(label)
                mark = "" if d is None else (f" *{pvalue(d['p'])}" if d["p"] is not None else " *apart")
                if r is None:
                    cells.append("-")
                elif fig == "gen_tps_p50":
                    cells.append(
                        NA
                        if r["gen_tps_p50"] is None
                        else f"{r['gen_tps_p50']:.1f} (n={r['gen_tps_n']}){mark}"
                    )
                elif fig == "ttft_p50_ms":
                    cells.append(
                        NA if r["ttft_p50_ms"] is None else f"{r['ttft_p50_ms']:.0f} (n={r['ttft_n']})"
                    )
                else:
                    cells.append(_rate_cell(r[fig], mark))
            if any(c not in ("-", NA) for c in cells):
                rows.append([elide(m["model"], 40), *cells])
        if rows:
            out.append((title, ["model", *labels], rows))
    return out


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.0f}%"


def _difference_lines(doc: dict[str, Any]) -> list[str]:
    """Each significant difference in words; one sentence when there is none."""
    out = []
    for m in doc["models"]:
        for d in m["differences"]:
            how = pvalue(d["p"]) if d["p"] is not None else "95% intervals apart"
            fmt = _pct if d["figure"] != "gen_tps_p50" else (lambda x: f"{x:.1f} tokens/s")
            was, now = fmt(d["from"]), fmt(d["to"])
            out.append(f"{m['model']}: {d['figure']} {d['against']} {was} -> {d['run']} {now} ({how})")
    return out or ["None at the 95% level: the runs do not tell these models apart."]


def _method(doc: dict[str, Any]) -> str:
    return "Method: " + "; ".join(f"{k}: {v}" for k, v in doc["method"].items()) + "."


def render_markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# soaktui compare",
        "",
        "A figure marked * differs significantly from the model's first run (see Method).",
        "",
    ]
    for title, header, rows in _cells(doc):
        lines += [f"## {title}", ""] + table(header, rows) + [""]
    lines += ["## Significant differences", ""] + [f"- {x}" for x in _difference_lines(doc)]
    lines += ["", _method(doc), ""]
    lines += ["Runs in full: " + "; ".join(f"{r['label']} = {r['run_dir']}" for r in doc["runs"]), ""]
    return "\n".join(lines)


def render_html(doc: dict[str, Any]) -> bytes:
    """The same tables as one offline page, in the run report's style (report/html.py)."""
    esc = html.escape
    parts = ["<h1>soaktui compare</h1>"]
    for title, header, rows in _cells(doc):
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f"<h2>{esc(title)}</h2><table><tr>{head}</tr>{body}</table>")
    parts.append(
        "<h2>Significant differences</h2><ul>"
        + "".join(f"<li>{esc(x)}</li>" for x in _difference_lines(doc))
        + "</ul>"
    )
    parts.append(f'<p class="muted">{esc(_method(doc))}</p>')
    page = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>soaktui compare</title>'
            f"<style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>\n")  # fmt: skip
    return page.encode("utf-8")
