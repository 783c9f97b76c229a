"""`report.html`: the report as one self-contained page, with charts, that works offline.

The charts are plotly.js (the JavaScript library behind plotly, well kept, MIT-licensed), inlined
from the `plotly` Python package's copy, so the page needs no network and no CDN when it is copied
off the box: about 5 MB of script plus the run's figures. The figures are the snapshot's, as the
Markdown has them; nothing is recomputed here. Each chart is built as plain plotly JSON (traces and
a layout), with every value axis starting at 0 and its unit in the title.

The page holds: the verdict and the legend of short names; the capability matrix as a coloured
table; per model over time (tokens/s, TTFT, errors and stalls); latency percentiles per model;
the concurrency and context-size curves; the hardware charts where readings exist. A small script
draws each chart and then marks the page (`data-charts-rendered` on <body>) so a headless browser
test can check that every chart was drawn.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

import orjson

from soaktui.durations import format_duration
from soaktui.report.capabilities import KINDS
from soaktui.report.markdown import CAPABILITY_HEADERS, capability_cells
from soaktui.report.snapshot import CapabilityRow, SampledRate, Snapshot

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def plotly_js() -> str:
    """plotly.min.js from the plotly package: inlined, so the page works offline."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def _esc(text: Any) -> str:
    return html.escape("n/a" if text is None else str(text))


def _rich(line: str) -> str:
    """A verdict line: Markdown **bold** to <strong>, the rest escaped."""
    parts = line.removeprefix("- ").split("**")
    return "".join(f"<strong>{_esc(p)}</strong>" if i % 2 else _esc(p) for i, p in enumerate(parts))


def _rate_class(r: SampledRate | None) -> str:
    if not r or not r["n"] or r["rate"] is None:
        return "na"
    return "good" if r["rate"] >= 0.9 else "fair" if r["rate"] >= 0.5 else "poor"


def _chart(cid: str, title: str, traces: list[dict[str, Any]], xtitle: str, ytitle: str,
           *, y2title: str | None = None, barmode: str | None = None) -> dict[str, Any]:  # fmt: skip
    layout: dict[str, Any] = {
        "title": {"text": title},
        "xaxis": {"title": {"text": xtitle}},
        "yaxis": {"title": {"text": ytitle}, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 60, "t": 50, "b": 50},
        "legend": {"orientation": "h"},
        "height": 380,
    }
    if y2title:
        layout["yaxis2"] = {
            "title": {"text": y2title},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
        }
    if barmode:
        layout["barmode"] = barmode
    return {"id": cid, "data": traces, "layout": layout}


def _line(name: str, xs: list[Any], ys: list[Any], i: int, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": xs, "y": ys,
            "line": {"color": PALETTE[i % len(PALETTE)]}, "connectgaps": False, **extra}  # fmt: skip


def charts(snap: Snapshot) -> list[dict[str, Any]]:
    """Every chart of the page as plotly JSON ({"id", "data", "layout"}), from the snapshot."""
    names = snap["names"]
    out: list[dict[str, Any]] = []
    tl = snap["timeline"]
    if tl["models"]:
        tps, ttft, err = [], [], []
        for i, (key, buckets) in enumerate(tl["models"].items()):
            name = names.get(key, key)
            xs = [round(b["start_s"] / 60, 2) for b in buckets]
            tps.append(_line(name, xs, [b["gen_tps_p50"] for b in buckets], i))
            ttft.append(_line(name, xs, [b["ttft_p50_ms"] for b in buckets], i))
            err.append(_line(f"{name} error rate", xs, [None if b["error_rate"] is None else round(100 * b["error_rate"], 2) for b in buckets], i))  # fmt: skip
            stalls = [b["stalls"] or None for b in buckets]
            if any(stalls):
                err.append({"type": "bar", "name": f"{name} stalls", "x": xs, "y": stalls, "yaxis": "y2",
                            "marker": {"color": PALETTE[i % len(PALETTE)]}, "opacity": 0.5})  # fmt: skip
        width = f"buckets of {format_duration(tl['bucket_s'])}"
        out.append(_chart("over-time-tps", f"Generation tokens/s over time (median per bucket; {width})", tps,
                          "minutes from the start", "tokens/s"))  # fmt: skip
        out.append(_chart("over-time-ttft", f"Time to first token over time (median per bucket; {width})", ttft,
                          "minutes from the start", "TTFT (ms)"))  # fmt: skip
        out.append(_chart("over-time-errors", "Errors and stalls over time", err, "minutes from the start",
                          "failed requests (%)", y2title="stalled streams"))  # fmt: skip
    models = {k: m for k, m in snap["models"].items() if m["e2e_ms"]["n"] or m["ttft_ms"]["n"]}
    if models:
        labels = [names.get(k, k) for k in models]
        for cid, field, title in (("latency-ttft", "ttft_ms", "Time to first token"), ("latency-e2e", "e2e_ms", "End-to-end latency")):  # fmt: skip
            traces = [
                {
                    "type": "bar",
                    "name": q,
                    "x": labels,
                    "y": [m[field][q] for m in models.values()],  # type: ignore[literal-required]
                    "marker": {"color": PALETTE[j]},
                }  # fmt: skip
                for j, q in enumerate(("p50", "p95", "p99"))
            ]
            out.append(_chart(cid, f"{title} percentiles per model (successful requests)", traces, "model", "ms",
                              barmode="group"))  # fmt: skip
    conc = snap["scaling"]["concurrency"]
    if conc:
        traces = []
        for i, (key, rows) in enumerate(conc.items()):
            pts = [
                (r["concurrency"], r["aggregate_tps"]["p50"])
                for r in rows
                if r["aggregate_tps"]["p50"] is not None
            ]
            if pts:
                traces.append(_line(names.get(key, key), [x for x, _ in pts], [y for _, y in pts], i))
        if traces:
            out.append(_chart("concurrency", "Aggregate tokens/s by concurrency (median over fully successful batches)",
                              traces, "concurrent streams", "tokens/s"))  # fmt: skip
    ctx = snap["scaling"]["context"]
    if ctx:
        traces = []
        for i, (key, buckets_of) in enumerate(ctx.items()):
            sizes = [(r["bucket"], r["ttft_ms"]["p50"]) for r in buckets_of if r["ttft_ms"]["p50"] is not None]
            if sizes:
                traces.append(_line(names.get(key, key), [x for x, _ in sizes], [y for _, y in sizes], i))
        if traces:
            out.append(_chart("context", "TTFT by prompt size (large_context, successful requests)", traces,
                              "prompt tokens", "TTFT p50 (ms)"))  # fmt: skip
    series = snap["hardware"]["series"] if snap.get("hardware") else None
    if series and series["minutes"]:
        xs = series["minutes"]
        traces = []
        for i, (field, label) in enumerate((("cpu_temp_c", "CPU °C"), ("gpu_temp_c", "GPU °C"), ("power_w", "power W"), ("fan_rpm", "fan rpm / 100"))):  # fmt: skip
            ys = series[field]  # type: ignore[literal-required]
            if sum(v is not None for v in ys) >= 2:
                if field == "fan_rpm":
                    ys = [None if v is None else round(v / 100, 1) for v in ys]
                traces.append(_line(label, xs, ys, i))
        if traces:
            traces.append(_line("output tokens/s", xs, series["output_tps"], 5, yaxis="y2", line={"dash": "dot", "color": PALETTE[5]}))  # fmt: skip
            out.append(_chart("hardware", "The machine over time: readings (left) against output tokens/s (right)",
                              traces, "minutes from the start", "°C / W / rpm÷100", y2title="tokens/s"))  # fmt: skip
    return out


def _capability_table(snap: Snapshot) -> str:
    rows = snap["capabilities"]["models"]
    if not rows:
        return "<p>No model was tested.</p>"
    names = snap["names"]
    head = "".join(f"<th>{_esc(h)}</th>" for h in CAPABILITY_HEADERS)
    body = []
    for key, row in rows.items():
        cells = capability_cells(names.get(key, key), row)
        rates = _rates_of(row)
        tds = [f"<th>{_esc(cells[0])}</th>"]
        tds += [f'<td class="{_rate_class(r)}">{_esc(c)}</td>' for c, r in zip(cells[1:], rates, strict=True)]
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="matrix"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _rates_of(row: CapabilityRow) -> list[SampledRate | None]:
    """The rates behind capability_cells' cells (after the model name), for their colours."""
    tc, so, pc = row["tool_calling"], row["structured_output"], row["prompt_checks"]
    kinds = tc["by_kind"] if tc else {}
    modes = tc["by_mode"] if tc else {}
    return [
        tc["overall"] if tc else None,
        *(kinds.get(k) for k in KINDS),
        modes.get("native"),
        modes.get("prompted"),
        so["schema_valid"] if so else None,
        so["parsed"] if so else None,
        pc["passed"] if pc else None,
    ]


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}
.verdict li{margin:.3em 0}.muted{color:#666}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
.matrix td.good{background:#d8f0d8}.matrix td.fair{background:#fbeccb}.matrix td.poor{background:#f6d0d0}
.matrix td.na{color:#888}.chart{margin:1.5em 0;min-height:380px}
"""

SCRIPT = """
(function(){
  var charts = JSON.parse(document.getElementById('charts-data').textContent);
  var done = 0;
  charts.forEach(function(c){
    Plotly.newPlot(c.id, c.data, c.layout, {displaylogo:false, responsive:true}).then(function(){
      done += 1;
      document.body.setAttribute('data-charts-rendered', String(done));
    });
  });
  document.body.setAttribute('data-charts-expected', String(charts.length));
})();
"""


def render_html(snap: Snapshot, js: str | None = None) -> bytes:
    """The page as UTF-8 bytes. `js`: plotly.min.js (read from the package when None)."""
    run = snap["run"]
    names = snap["names"]
    verdict = snap["verdict"]["lines"]
    chart_list = charts(snap)
    data = orjson.dumps(chart_list).decode().replace("</", "<\\/")
    legend = "".join(
        f"<tr><td>{_esc(short)}</td><td>{_esc(key)}</td></tr>" for key, short in names.items() if short != key
    )
    sections = [
        f"<h1>soaktui report: {_esc(run['run_id'] or 'unknown run')}</h1>",
        f'<p class="muted">{_esc(run["started_at"])} to {_esc(run["ended_at"])}; '
        f"{_esc(run['finish_reason'] or 'did not finish')}; {len(snap['models'])} models.</p>",
        "<h2>Verdict</h2>",
        '<ul class="verdict">' + "".join(f"<li>{_rich(line)}</li>" for line in verdict) + "</ul>"
        if verdict
        else "<p>No test finished: nothing to decide.</p>",
    ]
    if legend:
        sections.append(f"<details><summary>Model names in full</summary><table>{legend}</table></details>")
    sections += ["<h2>Capability matrix</h2>", _capability_table(snap),
                 '<p class="muted">Rates are passes/trials with a Wilson 95% interval; green at 90% or more, '
                 "amber from 50%, red below; n/a: not measured.</p>"]  # fmt: skip
    titles = {"over-time-tps": "Over time", "latency-ttft": "Latency", "concurrency": "Scaling",
              "hardware": "Hardware"}  # fmt: skip
    for c in chart_list:
        if c["id"] in titles:
            sections.append(f"<h2>{titles[c['id']]}</h2>")
        sections.append(f'<div class="chart" id="{c["id"]}"></div>')
    if not chart_list:
        sections.append("<p>No figure to chart yet.</p>")
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>soaktui report: {_esc(run['run_id'] or 'unknown run')}</title>"
        f"<style>{STYLE}</style><script>{js if js is not None else plotly_js()}</script></head><body>"
        + "\n".join(sections)
        + f'<script type="application/json" id="charts-data">{data}</script><script>{SCRIPT}</script>'
        "</body></html>\n"
    )
    return page.encode("utf-8")


__all__ = ["charts", "plotly_js", "render_html"]
