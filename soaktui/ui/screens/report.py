"""`r`: the report screen, the same figures as `soaktui report`, as tables and plotext charts.

The data is `RunAggregate.snapshot()` of everything the viewer has folded so far (the report so far
while the run goes on, the final report once it has finished), computed on a thread worker and
refreshed every few seconds while the screen is open and new events arrived. The viewer folds in
the aggregate's bounded live mode, so its percentiles are within 1% of the report's (sketch.py). `w`
writes final_report.md, report.json and report.html rebuilt exactly from the run's events.jsonl
(report.build: the same fold and writer as the end of a run and `soaktui report`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from soaktui.report.build import build_report, write_report_files
from soaktui.report.cells import NA, duration, num
from soaktui.report.hardware_markdown import (
    FAMILY_LABELS,
    energy_cells,
    plot_series,
    unavailable_text,
    verdict,
)
from soaktui.report.markdown import CAPABILITY_HEADERS, SPEED_HEADERS, capability_cells, speed_cells
from soaktui.report.snapshot import Hardware, Snapshot
from soaktui.stats import Describe, compact_rate, format_rate
from soaktui.ui.format import display_path, short_model
from soaktui.ui.messages import ReportReady
from soaktui.ui.themes import theme_colors

if TYPE_CHECKING:
    from soaktui.ui.view import ReportSource

REFRESH_S = 2.0


def p(d: Describe | None, key: str = "p50", nd: int = 1) -> str:
    return num(d.get(key), nd) if d and d.get("n") else NA


def verdict_line(line: str) -> Content:
    """A verdict line (Markdown: the picked model in **bold**) as styled text."""
    parts = line.split("**")
    return Content.assemble(*((part, "bold $text-primary") if i % 2 else part for i, part in enumerate(parts)))


def ok_total(ok: int, failed: int) -> str:
    return f"{ok:,}/{ok + failed:,}"


TABLES: dict[str, tuple[str, ...]] = {
    "capabilities": tuple(CAPABILITY_HEADERS),
    "capability-speed": tuple(SPEED_HEADERS),
    "rank-throughput": ("rank", "model", "median output tok/s", "n (requests)"),
    "rank-reliability": ("rank", "model", "tests succeeded", "lower bound"),
    "profiles": (
        "model",
        "tests succeeded",
        "requests ok/total",
        "e2e p50 ms",
        "e2e p95 ms",
        "TTFT p50 ms",
        "ITL p50 ms",
        "tok/s p50",
        "tok/s n",
        "size",
        "context",
        "failed requests",
    ),
    "scenarios": (
        "scenario",
        "tests succeeded",
        "requests ok/total",
        "e2e p50 ms",
        "e2e p95 ms",
        "e2e p99 ms",
        "TTFT p50 ms",
        "tok/s p50",
        "models",
    ),
    "errors": ("class", "failed requests", "failed tests", "per model", "example"),
    "concurrency": (
        "model",
        "concurrency",
        "batches ok/partial/failed",
        "saturated",
        "requests ok/total",
        "aggregate tok/s p50",
        "latency p50 ms",
    ),
    "context": ("model", "prompt tokens", "requests ok/total", "overflow", "TTFT p50 ms", "prompt tok/s p50"),
    "failover": ("model", "mode", "tests succeeded", "detect p50 ms", "recover p50 ms", "cold load p50 ms"),
    "hardware": ("reading", "figures"),
    "energy": ("model", "energy Wh", "output tokens", "J per token", "mean power W", "tests with power"),
}


class ReportScreen(Screen):
    BINDINGS = [
        Binding("w", "write", "write report files"),
        Binding("escape", "back", "dashboard"),
    ]

    def __init__(self, source: ReportSource) -> None:
        super().__init__()
        self.source = source
        self._seen_generation = -1
        self._computing = False
        self.snap: Snapshot | None = None
        self.names: dict[str, str] = {}

    def model_label(self, key: str) -> str:
        return self.names.get(key) or short_model(key)

    def compose(self) -> ComposeResult:
        yield Static("", id="report-head")
        with VerticalScroll(id="report-body"):
            yield Static("", id="summary", classes="report-text")
            yield Static(Content.styled("Capability matrix", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("capabilities")
            yield from self._table_widgets("capability-speed")
            yield Static(Content.styled("Rankings", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("rank-throughput")
            yield from self._table_widgets("rank-reliability")
            yield Static("", id="rank-notes", classes="report-text")
            yield Static(Content.styled("Model profiles", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("profiles")
            yield PlotextPlot(id="tps-chart", classes="report-chart")
            yield Static(Content.styled("Scenarios", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("scenarios")
            yield Static(Content.styled("Errors by class", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("errors")
            yield Static(Content.styled("Scaling", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("concurrency")
            yield PlotextPlot(id="conc-chart", classes="report-chart")
            yield from self._table_widgets("context")
            yield Static(Content.styled("Failover and recovery", "bold $text-primary"), classes="report-h")
            yield from self._table_widgets("failover")
            yield Static(
                Content.styled("Throttle, pauses and commands", "bold $text-primary"), classes="report-h"
            )
            yield Static("", id="control", classes="report-text")
            yield Static(Content.styled("Hardware", "bold $text-primary"), classes="report-h")
            yield Static("", id="hw-verdict", classes="report-text")
            yield from self._table_widgets("hardware")
            yield from self._table_widgets("energy")
            yield PlotextPlot(id="hw-chart", classes="report-chart")
        yield Footer(compact=True)

    @staticmethod
    def _table_widgets(table_id: str) -> ComposeResult:
        yield Static("", id=f"{table_id}-empty", classes="report-text report-empty")
        yield DataTable(id=table_id, classes="report-table", cursor_type="none", zebra_stripes=True)

    def on_mount(self) -> None:
        for table_id, columns in TABLES.items():
            self.query_one(f"#{table_id}", DataTable).add_columns(*columns)
        self.query_one("#report-head", Static).update(Content.styled("computing the report…", "$text-muted"))
        self.refresh_snapshot()
        self.set_interval(REFRESH_S, self.refresh_snapshot)

    # -- data --------------------------------------------------------------------------------------
    def refresh_snapshot(self) -> None:
        source = self.source
        if self._computing or source.generation == self._seen_generation or self.app.screen is not self:
            return
        self._computing = True
        self._seen_generation = source.generation
        self._compute()

    @work(thread=True, exclusive=True, group="report", exit_on_error=False, description="fold the report")
    def _compute(self) -> None:
        self.post_message(ReportReady(self.source.report_snapshot()))

    def on_report_ready(self, msg: ReportReady) -> None:
        self._computing = False
        self.snap = msg.snap
        self.show(msg.snap)

    # -- writing -----------------------------------------------------------------------------------
    def action_write(self) -> None:
        self._write()

    @work(
        thread=True, exclusive=True, group="report-write", exit_on_error=False, description="write the report"
    )
    def _write(self) -> None:
        app, source = self.app, self.source
        try:
            snap, _ = build_report(source.run_dir)  # exact, not the viewer's bounded live figures
            paths = write_report_files(source.run_dir, snap)
        except OSError as exc:
            app.call_from_thread(
                app.notify, f"could not write the report: {exc.strerror or exc}", severity="error", timeout=8
            )
            return
        text = "wrote " + ", ".join(display_path(p) for p in paths)
        app.call_from_thread(app.notify, text, title="report", timeout=8)

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- drawing -----------------------------------------------------------------------------------
    def show(self, snap: Snapshot) -> None:
        run, totals = snap["run"], snap["totals"]
        self.names = snap["names"]  # the report's short names (report/names.py)
        if run["finished"]:
            state = ("final report", "bold $text-success")
        elif self.source.phase in ("live", "stopping", "connecting", "waiting"):
            state = ("the report so far (the run goes on)", "bold $text-warning")
        else:
            state = ("the run ended without finishing: a report of what was logged", "bold $text-error")
        self.query_one("#report-head", Static).update(
            Content.assemble(
                ("Report ", "bold $text-primary"),
                (run["run_id"] or "unknown run", "bold"),
                "  ",
                state,
                (
                    f"  · {totals['events']:,} events · w writes final_report.md + report.json · r/Esc back",
                    "$text-muted",
                ),
            )
        )
        self._summary(snap)
        self._capabilities(snap)
        self._rankings(snap)
        self._profiles(snap)
        self._scenarios(snap)
        self._errors(snap)
        self._scaling(snap)
        self._failover(snap)
        self._control(snap)
        self._hardware(snap)

    def _table(self, table_id: str, rows: list[tuple[Any, ...]], empty: str) -> None:
        """Fill a table, or hide it and say why it is empty. Cells are Text, never markup: they quote
        servers (model ids, error messages such as "[/INST]" that Rich would take for a tag)."""
        table = self.query_one(f"#{table_id}", DataTable)
        note = self.query_one(f"#{table_id}-empty", Static)
        table.clear()
        table.add_rows([tuple(Text(NA if c is None else str(c), end="") for c in r) for r in rows])
        table.display = bool(rows)
        note.display = not rows
        note.update(Content.styled(empty, "$text-muted"))

    def _summary(self, snap: Snapshot) -> None:
        run, t = snap["run"], snap["totals"]
        lines = [verdict_line(line) for line in snap["verdict"]["lines"]]
        lines += [
            Content.assemble(
                ("Duration ", "$text-muted"),
                f"{duration(run['duration_s'])} ({run['duration_source']})",
                ("   finish reason ", "$text-muted"),
                run["finish_reason"] or "did not finish",
            ),
            Content.assemble(("Tests succeeded ", "$text-muted"), format_rate(t["success"], "tests")),
            Content.assemble(
                ("Requests succeeded ", "$text-muted"), format_rate(t["requests_success"], "requests")
            ),
        ]
        self.query_one("#summary", Static).update(Content("\n").join(lines))

    def _capabilities(self, snap: Snapshot) -> None:
        """The capability matrix: the report's cells (rates as passes/trials with their interval)."""
        rows = snap["capabilities"]["models"]
        self._table(
            "capabilities",
            [tuple(capability_cells(self.model_label(k), r)) for k, r in rows.items()],
            "no model was tested yet",
        )
        self._table(
            "capability-speed",
            [tuple(speed_cells(self.model_label(k), r)) for k, r in rows.items()],
            "no model was tested yet",
        )

    def _rankings(self, snap: Snapshot) -> None:
        rk = snap["rankings"]
        self._table(
            "rank-throughput",
            [
                (i + 1, self.model_label(r["model"]), num(r["median_gen_tps"]), r["n"])
                for i, r in enumerate(rk["throughput"])
            ],
            "no model has enough streamed requests yet",
        )
        self._table(
            "rank-reliability",
            [
                (i + 1, self.model_label(r["model"]), format_rate(r["success"]), f"{100 * r['score']:.0f}%")
                for i, r in enumerate(rk["reliability"])
            ],
            "no model has enough tests yet",
        )
        mins = rk["min_samples"]
        notes = [
            f"Throughput: {rk['rules']['throughput']} (at least {mins['throughput_requests']} requests). "
            f"Reliability: {rk['rules']['reliability']} (at least {mins['reliability_tests']} tests)."
        ]
        short = rk["insufficient"]
        if short["throughput"] or short["reliability"]:
            names = sorted({self.model_label(r["model"]) for r in short["throughput"] + short["reliability"]})
            notes.append("Insufficient data: " + ", ".join(names))
        self.query_one("#rank-notes", Static).update(Content.styled("\n".join(notes), "$text-muted"))

    def _profiles(self, snap: Snapshot) -> None:
        rows = []
        bars: list[tuple[str, float]] = []
        for key, m in snap["models"].items():
            if not (m["tests"] or m["requests_ok"] or m["requests_failed"]):
                continue
            size = m.get("size_gb")
            size_s = NA if size is None else f"{size:.1f} GB" + (" est." if m.get("size_estimated") else "")
            errors = ", ".join(f"{c} {n}" for c, n in m["errors"].items()) or "none"
            rows.append(
                (
                    self.model_label(key),
                    compact_rate(m["success"]),
                    ok_total(m["requests_ok"], m["requests_failed"]),
                    p(m["e2e_ms"]),
                    p(m["e2e_ms"], "p95"),
                    p(m["ttft_ms"]),
                    p(m["itl_p50_ms"]),
                    p(m["gen_tps"]),
                    m["gen_tps"]["n"],
                    size_s,
                    num(m["context_length"]),
                    errors,
                )
            )
            if m["gen_tps"]["n"] and m["gen_tps"]["p50"] is not None:
                bars.append((self.model_label(key), float(m["gen_tps"]["p50"])))
        self._table("profiles", rows, "no model was tested yet")
        chart = self.query_one("#tps-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        if len(bars) >= 2:
            plt.bar(
                [b[0] for b in bars],
                [b[1] for b in bars],
                orientation="horizontal",
                color=theme_colors(self.app)[0],
                width=0.4,
            )
            plt.xlim(0, max(b[1] for b in bars) * 1.05)  # bars from 0: their lengths compare
            plt.title("median output tokens/s (generation phase, successful streamed requests)")
        elif bars:  # one bar would fill the chart: a comparison needs two
            plt.title(f"one model measured: {bars[0][0]}, median {bars[0][1]:,.1f} output tokens/s")
        else:
            plt.title("no successful streamed request yet")
        chart.refresh()

    def _scenarios(self, snap: Snapshot) -> None:
        rows = []
        for name, s in snap["scenarios"].items():
            e = s["e2e_ms"]
            rows.append(
                (
                    name,
                    compact_rate(s["success"]),
                    ok_total(s["requests_ok"], s["requests_failed"]),
                    p(e),
                    p(e, "p95"),
                    p(e, "p99"),
                    p(s["ttft_ms"]),
                    p(s["gen_tps"]),
                    len(s["models"]),
                )
            )
        self._table("scenarios", rows, "no scenario ran yet")

    def _errors(self, snap: Snapshot) -> None:
        err = snap["errors"]
        rows: list[tuple[Any, ...]] = [
            (
                cls,
                r["requests"],
                r["tests"],
                ", ".join(f"{self.model_label(k)} {n}" for k, n in r["per_model"].items()),
                (r["example"] or "")[:120],
            )
            for cls, r in err["by_class"].items()
        ]
        rows += [
            (f"{e['error_class']} ({e['where']})", "", e["count"], "", (e["example"] or "")[:120])
            for e in err["engine"]
        ]
        self._table("errors", rows, "no request or test failed")

    def _scaling(self, snap: Snapshot) -> None:
        conc = snap["scaling"]["concurrency"]
        rows = []
        for key, levels in conc.items():
            for r in levels:
                rows.append(
                    (
                        self.model_label(key),
                        r["concurrency"],
                        f"{r['full']}/{r['partial']}/{r['failed']}",
                        r["saturated"],
                        ok_total(r["requests_ok"], r["requests_failed"]),
                        f"{p(r['aggregate_tps'])} (n={r['aggregate_tps']['n']})",
                        p(r["latency_p50_ms"]),
                    )
                )
        self._table("concurrency", rows, "no concurrent_load test ran yet")
        chart = self.query_one("#conc-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        colors = theme_colors(self.app)
        drawn = 0
        for key, levels in conc.items():
            pts = [
                (r["concurrency"], r["aggregate_tps"]["p50"])
                for r in levels
                if isinstance(r["concurrency"], (int, float)) and r["aggregate_tps"]["p50"] is not None
            ]
            if pts:
                plt.plot(
                    [x for x, _ in pts],
                    [y for _, y in pts],
                    label=self.model_label(key),
                    color=colors[drawn % len(colors)],
                    marker="braille",
                )
                drawn += 1
        plt.xlabel("concurrent streams")
        plt.title(
            "aggregate output tokens/s by concurrency (median over fully successful batches)"
            if drawn
            else "no fully successful concurrent batch yet"
        )
        chart.refresh()
        ctx_rows = []
        for key, buckets in snap["scaling"]["context"].items():
            for row in buckets:
                ctx_rows.append(
                    (
                        self.model_label(key),
                        row["bucket"],
                        ok_total(row["requests_ok"], row["requests_failed"]),
                        row["context_overflow"],
                        p(row["ttft_ms"]),
                        p(row["prompt_tps"]),
                    )
                )
        self._table("context", ctx_rows, "no large_context request ran yet")

    def _failover(self, snap: Snapshot) -> None:
        rows = []
        for key, modes in snap["failover"].items():
            for mode, r in modes.items():
                rows.append(
                    (
                        self.model_label(key),
                        mode,
                        compact_rate(r["success"]),
                        p(r["detect_ms"]),
                        p(r["recover_ms"]),
                        p(r["cold_load_ms"]),
                    )
                )
        self._table("failover", rows, "no provider_failover test ran yet")

    def _control(self, snap: Snapshot) -> None:
        c = snap["control"]
        last = c["throttle_last"]
        parts = [
            f"throttle at start {c['throttle_start_pct']}%"
            + (f", last {last['pct']}% (effective {last['effective_pct']}%)" if last else ""),
            f"{c['throttle_changes']} throttle changes, {c['quiet_hours_changes']} quiet-hours changes",
            f"{c['pauses']} pauses ({duration(c['paused_s'])} paused), {c['models_skipped']} models skipped, "
            f"{c['model_switches']} model switches",
        ]
        if c["commands"]:
            parts.append("commands: " + ", ".join(f"{k} {n}" for k, n in c["commands"].items()))
        self.query_one("#control", Static).update(Content.styled("\n".join(parts), "$text-muted"))

    def _hardware(self, snap: Snapshot) -> None:
        """The report's hardware section: readings or why they are unavailable, guard, energy, a chart."""
        hw = snap.get("hardware")
        note = self.query_one("#hw-verdict", Static)
        chart = self.query_one("#hw-chart", PlotextPlot)
        if not hw or not hw["readings"]:
            note.update(Content.styled("No telemetry reading in the log yet.", "$text-muted"))
            self._table("hardware", [], "")
            self._table("energy", [], "")
            chart.display = False
            return
        if hw["sustained"]["readings_known"]:
            note.update(Content(verdict(hw, bold="")))
        else:
            note.update(
                Content.styled(
                    "No temperature or thermal-pressure reading: how the machine held up is unknown.",
                    "$text-muted",
                )
            )
        rows: list[tuple[Any, ...]] = []
        for fam, label in FAMILY_LABELS.items():
            f = hw["families"][fam]
            if f["readings"]:
                rows.append((label, f"{f['readings']:,} readings from {', '.join(f['sources']) or '?'}"))
            else:
                rows.append((label, unavailable_text(hw, fam)))
        for fam in ("cpu", "gpu"):
            d = hw["temperatures"][fam]
            if d["n"]:
                rows.append(
                    (
                        f"{fam.upper()} temperature °C",
                        f"peak {num(d['peak'])}, p95 {num(d['p95'])}, limit {d['limit_c']:g}, "
                        f"over it {duration(d['time_over_s'])} of {duration(d['time_known_s'])}",
                    )
                )
        for hist, label, unit, nd in ((hw["power_w"], "power", "W", 1), (hw["fan_rpm"], "fan", "rpm", 0)):
            if hist["n"]:
                figures = f"peak {num(hist['peak'], nd)}, p95 {num(hist['p95'], nd)}, mean {num(hist['mean'], nd)}"
                rows.append((f"{label} {unit}", figures))
        g = hw["guard"]
        e = g["entries"]
        rows.append(
            (
                "thermal guard",
                ("on" if g["enabled"] else "off")
                + f": reduced {e['reduced']}x ({duration(g['time_s']['reduced'])}), "
                f"paused {e['paused']}x ({duration(g['time_s']['paused'])})",
            )
        )
        for reason, v in hw["gpu_throttle"].items():
            rows.append((f"GPU {reason}", f"{v['readings']:,} readings, {duration(v['time_s'])}"))
        if hw["cpu_throttle"]:
            rows.append(
                ("CPU throttle events", ", ".join(f"{k} {n:,}" for k, n in hw["cpu_throttle"].items()))
            )
        self._table("hardware", rows, "")
        energy = hw["energy"]
        self._table(
            "energy",
            [
                tuple(energy_cells(self.model_label(k), m))
                for k, m in energy["per_model"].items()
                if m["tests_with_power"]
            ],
            f"energy per token: power {unavailable_text(hw, 'power')}"
            if energy["total_j"] is None
            else "no test ran with power readings yet",
        )
        self._hardware_chart(chart, hw)

    def _hardware_chart(self, chart: PlotextPlot, hw: Hardware) -> None:
        s = hw["series"]
        if s is None:
            chart.display = False
            return
        x = s["minutes"]
        lines = [
            (label, ys)
            for label, ys in (("cpu °C", s["cpu_temp_c"]), ("gpu °C", s["gpu_temp_c"]))
            if ys and sum(v is not None for v in ys) >= 2
        ]
        chart.display = bool(lines)
        if not lines:
            return
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        colors = theme_colors(self.app)
        series = [(label, x, ys, "left") for label, ys in lines]
        series.append(("output tok/s (right)", x, s["gen_tps"], "right"))
        plot_series(plt, series, lambda i: {"color": colors[i % len(colors)], "marker": "braille"})
        plt.xlabel("minutes")
        plt.title("temperature (°C) against output tokens/s (right axis), mean per time bucket")
        chart.refresh()
