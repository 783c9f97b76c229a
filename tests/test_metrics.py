"""The Prometheus endpoint: served during a real run, figures that match the log, no secrets.

A real run against the built-in simulator serves /metrics (scraped over HTTP while it runs, parsed
with prometheus_client's own parser). The figures are checked against the run's events.jsonl,
counted here independently of the sink: requests by outcome, tests by verdict, output tokens,
and one histogram observation per successful warm streamed request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from soaktui.config import load_settings
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.errors import SetupError
from soaktui.log.reader import iter_events
from soaktui.simulator import SimConfig, plan_from_specs, run_in_thread
from soaktui.sinks.metrics import MetricsSink
from tests.helpers import free_port

SECRET = "sk-test-do-not-leak-4242"


def _samples(text: str) -> list:
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_run_serves_metrics_that_match_its_log(tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    scrapes: list[str] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                scrapes.append(r.text)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    plan = plan_from_specs(["http_500=every:5"])
    with run_in_thread(SimConfig(flavor="llamacpp", seed=3, speed=40.0, faults=plan)) as sim:
        settings = load_settings(None, {}, {
            "base_urls": sim.base_url, "out": str(run_dir), "seed": "2", "duration": "5s", "api_key": SECRET,
            "scenarios": "streaming,simple_inference,structured_output", "thresholds.simple_max_tokens": "100",
            "quiet_hours.enabled": "false", "metrics.port": str(port),
        })  # fmt: skip
        t = threading.Thread(target=scrape, daemon=True)
        t.start()
        code = asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))
        done.set()
        t.join(5)
    assert code == 0 and scrapes, "the endpoint never answered"
    live = scrapes[-1]
    assert "soaktui_requests_total" in live and SECRET not in "".join(scrapes)
    with pytest.raises(httpx.HTTPError):  # the server stops with the run
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)

    # The same sink code over the whole log, against counts made here from the log itself.
    events = list(iter_events(run_dir / "events.jsonl"))
    sink = MetricsSink(host="h")
    for e in events:
        sink.handle(e)
    samples = _samples(generate_latest(sink.registry).decode())
    reqs = [e for e in events if e["kind"] == "request"]
    by_outcome = Counter("ok" if e["ok"] else e["error_class"] for e in reqs)
    got = Counter()
    for s in samples:
        if s.name == "soaktui_requests_total":
            got[s.labels["outcome"]] += int(s.value)
    assert got == by_outcome and by_outcome["http_status"] >= 1
    tests = Counter(("pass" if e["ok"] else "fail") for e in events if e["kind"] == "scenario_result")
    verdicts = Counter()
    for s in samples:
        if s.name == "soaktui_tests_total":
            verdicts[s.labels["verdict"]] += int(s.value)
    assert verdicts == tests
    tokens = sum(e["output_tokens"] or 0 for e in reqs if e.get("error_class") != "cancelled")
    assert sum(s.value for s in samples if s.name == "soaktui_output_tokens_total") == tokens
    warm = sum(1 for e in reqs if e["ok"] and e.get("ttft_ms") is not None and not e.get("cold"))
    assert sum(s.value for s in samples if s.name == "soaktui_ttft_seconds_count") == warm > 0
    structured = sum(1 for e in events if e["kind"] == "scenario_result" and e["scenario"] == "structured_output")
    assert sum(s.value for s in samples if s.name == "soaktui_structured_output_total") == structured
    labels = {k for s in samples for k in s.labels}
    assert labels <= {"host", "provider", "model", "scenario", "outcome", "verdict", "state", "le"}


@pytest.mark.unit
def test_a_reading_the_machine_cannot_give_is_not_exported_as_zero():
    sink = MetricsSink(host="h")
    sink.handle({"kind": "telemetry", "cpu_pct": 12.5})
    text = generate_latest(sink.registry).decode()
    assert 'soaktui_cpu_percent{host="h"} 12.5' in text
    assert "soaktui_cpu_temp_celsius{" not in text  # never read: absent, not 0
    sink.handle({"kind": "telemetry", "cpu_pct": 10.0, "cpu_temp_c": 71.0})
    sink.handle({"kind": "telemetry", "cpu_pct": 11.0})  # the sensor went missing
    assert 'soaktui_cpu_temp_celsius{host="h"} NaN' in generate_latest(sink.registry).decode()


@pytest.mark.integration
def test_a_port_in_use_is_a_clear_setup_error(tmp_path):
    busy = MetricsSink()
    port = busy.serve(0)
    try:
        with run_in_thread(SimConfig(flavor="llamacpp", seed=3, speed=40.0)) as sim:
            settings = load_settings(None, {}, {"base_urls": sim.base_url, "out": str(tmp_path / "run"),
                                                "duration": "2s", "metrics.port": str(port)})  # fmt: skip
            with pytest.raises(SetupError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
                asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))
        assert not (tmp_path / "run").exists()  # no run directory for a run that could not start
    finally:
        busy.close()


@pytest.mark.unit
def test_the_grafana_dashboard_reads_only_metrics_soaktui_exports():
    """Every soaktui_* series a panel queries is one the sink defines (a renamed metric would leave
    an empty panel); every label it filters on is one the sink sets; verdicts exist."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    dash = json.loads((root / "contrib" / "grafana" / "soaktui.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    sink = MetricsSink(host="h")
    defined = set()
    for metric in sink.registry.collect():
        kind_suffix = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(metric.type, ("",))
        defined |= {metric.name + s for s in kind_suffix}
    used = {m for e in exprs for m in re.findall(r"soaktui_[a-z_]+", e)}
    assert used and used <= defined, used - defined
    labels = {m for e in exprs for m in re.findall(r"([a-z_]+)\s*[=!]~?\s*\"", e)}
    assert labels <= {"host", "model", "outcome", "verdict"}, labels
    assert 'verdict="correct"' in "".join(exprs) and 'verdict="valid"' in "".join(exprs)
    prom = (root / "contrib" / "prometheus" / "prometheus.yml").read_text()
    assert "job_name: soaktui" in prom
    unit = (root / "contrib" / "systemd" / "soaktui.service").read_text()
    assert "--no-ui" in unit and "--metrics-port" in unit
