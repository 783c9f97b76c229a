"""Whole runs against the built-in simulator: files, schema, faults, commands, crashes, bad input.

The engine runs in-process (asyncio.run of run_soak) or as the real `soaktui` command in a
subprocess; the simulator runs on a thread of the test process. Both are real HTTP over loopback.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from soaktui.config import load_settings
from soaktui.durations import format_duration
from soaktui.engine.control import send_command
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.hints import command
from soaktui.log.reader import iter_events
from soaktui.report.names import short_names
from soaktui.simulator import SimConfig, plan_from_specs, run_in_thread
from soaktui.simulator.personas import default_personas
from soaktui.sinks.console import unstamped
from soaktui.sinks.textlogs import FILES
from tests.helpers import WAIT_S, engine_env, full_disk_after, stop_process, wait_for_events

pytestmark = pytest.mark.e2e

SMALL = {
    "quiet_hours.enabled": False,
    "thresholds.simple_min_tokens": "20",
    "thresholds.simple_max_tokens": "120",
    "thresholds.stream_max_tokens": "60",
    "thresholds.large_context_min_tokens": "400",
    "thresholds.large_context_max_tokens": "900",
    "timeouts.grace": "2",
    "output.status_interval": "1s",
    "output.telemetry_interval": "1s",
    "rotation.min_tests": "2",
    "rotation.max_tests": "3",
}
COMMON_FIELDS = ("v", "kind", "run_id", "seq", "t", "mono_ns")
REQUEST_FIELDS = (
    "provider",
    "model",
    "scenario",
    "stream",
    "ok",
    "error_class",
    "ttft_ms",
    "e2e_ms",
    "prompt_tokens",
    "output_tokens",
    "token_source",
)


@pytest.fixture
def sim():
    with run_in_thread(SimConfig(flavor="lmstudio", seed=1, speed=40.0)) as handle:
        yield handle


def soak(run_dir: Path, base_url: str, **overrides) -> tuple[int, list[dict]]:
    o = {**SMALL, "base_urls": base_url, "out": str(run_dir), "seed": "1", "duration": "4s"}
    o.update({k.replace("__", "."): v for k, v in overrides.items()})
    settings = load_settings(None, {}, o)
    code = asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))
    return code, list(iter_events(run_dir / "events.jsonl"))


def cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soaktui", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_writes_every_file_with_a_complete_schema(sim, tmp_path):
    run_dir = tmp_path / "run"
    code, events = soak(run_dir, sim.base_url, duration="5s")
    assert code == 0
    for name in (*FILES, "events.jsonl", "test_summary.json", "final_report.md", "report.json"):
        assert (run_dir / name).is_file(), name
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["run_id"] for e in events}) == 1
    for e in events:
        for f in COMMON_FIELDS:
            assert f in e, (f, e["kind"])
        assert e["v"] == 1
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["run_started", "providers_discovered", "model_switched"]
    providers = [p["name"] for p in events[1]["providers"]]
    assert events[0]["http"] == {name: "lean" for name in providers}  # plain http on loopback
    assert kinds[-1] == "run_finished"
    finished = events[-1]
    assert finished["reason"] == "duration"
    assert finished["elapsed_s"] <= 5 + 2 + 1  # duration + grace + slack for the last request's end
    requests = [e for e in events if e["kind"] == "request"]
    assert requests and all(all(f in e for f in REQUEST_FIELDS) for e in requests)
    ok = [e for e in requests if e["ok"]]
    assert all(e["token_source"] == "usage" and e["output_tokens"] > 0 for e in ok)
    assert all(e["ttft_ms"] > 0 for e in ok if e["stream"])
    assert any(e["kind"] == "status" for e in events)
    telemetry = [e for e in events if e["kind"] == "telemetry"]
    assert telemetry and all(e["source"] == "psutil" and 0 <= e["cpu_pct"] <= 100 for e in telemetry)
    assert all(e["mem_total_bytes"] > e["mem_used_bytes"] > 0 for e in telemetry)
    summary = orjson.loads((run_dir / "test_summary.json").read_bytes())
    assert summary["tests"] == finished["tests"]
    assert "sim-" in (run_dir / "main_test.log").read_text()


@pytest.mark.integration
def test_headless_lines_carry_the_clock_short_names_and_human_durations(start_sim, tmp_path, capsys):
    """Two servers serve the same model (LM Studio, and Ollama with its :latest): the lines tell them
    apart by server kind alone, never by host:port; the run dir is reachable by the commands shown."""
    urls = [start_sim(flavor=f, seed=3).base_url for f in ("lmstudio", "ollama")]
    run_dir = tmp_path / "run"
    o = {**SMALL, "base_urls": ",".join(urls), "out": str(run_dir), "seed": "3", "duration": "3s",
         "models": "sim-qwen2.5-7b-instruct", "rotation.min_tests": "1", "rotation.max_tests": "2"}  # fmt: skip
    code = asyncio.run(run_soak(RunRequest(settings=load_settings(None, {}, o))))
    assert code == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines and all(re.match(r"\d\d:\d\d:\d\d \S", ln) for ln in lines), err
    text = [unstamped(ln) for ln in lines]
    assert f"watch: {command('watch', run_dir)}" in text
    assert any(ln.startswith(f"stop:  {command('ctl', run_dir, 'stop')} (or Ctrl-C") for ln in text), err
    events = list(iter_events(run_dir / "events.jsonl"))
    tests = [e for e in events if e["kind"] == "scenario_result"]
    for e in tests:
        took = format_duration(e["duration_ms"] / 1000, compact=True)
        line = next(ln for ln in text if ln.startswith(f"#{e['test_id']} "))
        assert line.startswith(f"#{e['test_id']} {e['scenario']} on {e['provider'].split('@')[0]}/sim-qwen2.5-7b-instruct: ")
        assert line.endswith(f" in {took}")
    assert {e["provider"].split("@")[0] for e in tests} == {"lmstudio", "ollama"}
    switches = [ln for ln in text if ln.startswith("model -> ")]
    assert switches and all(re.match(r"model -> (lmstudio|ollama)/sim-qwen2.5-7b-instruct \(", ln) for ln in switches)
    status = [ln for ln in text if ln.startswith("status: ")]
    assert status and all(re.match(r"status: elapsed \d+\.\ds remaining (\d+\.\ds|\d+ms|0s) \| ", ln) for ln in status)
    assert not re.search(r"127\.0\.0\.1:\d+/|:latest|\d{4,}ms", "\n".join(ln for ln in text if ln[:1] in "#ms"))


@pytest.mark.integration
def test_discovery_event_records_exclusions_with_reasons(sim, tmp_path):
    _, events = soak(tmp_path / "run", sim.base_url, duration="1s")
    disc = next(e for e in events if e["kind"] == "providers_discovered")
    reasons = {x["model"].split("/", 1)[1]: x["reason"] for x in disc["excluded"]}
    assert any("embedding" in r for r in reasons.values())
    assert any("over --max-size-gb" in r for r in reasons.values())
    assert disc["providers"][0]["kind"] == "lmstudio"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        ("http_429", "http_status"),
        ("http_500", "http_status"),
        ("http_503", "http_status"),
        ("drop", "connection_dropped"),
        ("stall", "read_timeout"),
        ("malformed", "malformed_stream"),
        ("stream_error", "stream_error"),
    ],
)
def test_each_injected_fault_is_classified_and_the_run_goes_on(tmp_path, fault, error_class):
    plan = plan_from_specs([f"{fault}=every:2"], stall_s=3.0)
    with run_in_thread(SimConfig(flavor="lmstudio", seed=2, speed=40.0, faults=plan)) as s:
        code, events = soak(
            tmp_path / "run",
            s.base_url,
            duration="3s",
            scenarios="streaming",
            timeouts__read="0.5",
            timeouts__grace="1",
        )
    assert code == 0
    requests = [e for e in events if e["kind"] == "request"]
    failed = [e for e in requests if not e["ok"]]
    assert failed and {e["error_class"] for e in failed} == {error_class}
    assert all(e["error"] for e in failed)  # a message, never empty
    if error_class == "http_status":
        assert {e["http_status"] for e in failed} == {int(fault[-3:])}
    if fault == "stall":  # cut mid-stream: the message says what had arrived, not "sent nothing"
        assert all(re.search(r"went silent for 0\.5 s after \d+ content chunks", e["error"]) for e in failed)
    later_ok = [e for e in requests if e["ok"] and e["seq"] > failed[0]["seq"]]
    assert later_ok, "the run must go on after a failure"
    results = [e for e in events if e["kind"] == "scenario_result" and not e["ok"]]
    assert results and all(r["error_class"] == error_class and r["reason"] for r in results)
    errors_log = (tmp_path / "run" / "errors.log").read_text()
    assert error_class in errors_log


def _large_context_results(tmp_path: Path, flavor: str) -> tuple[list[dict], int]:
    """large_context tests of 10k-12k tokens on the 4k-context phi persona."""
    phi = [p for p in default_personas() if "phi" in p.id]
    with run_in_thread(SimConfig(flavor=flavor, seed=3, speed=40.0, personas=phi)) as s:
        code, events = soak(
            tmp_path / "run",
            s.base_url,
            duration="2s",
            scenarios="large_context",
            thresholds__large_context_min_tokens="10000",
            thresholds__large_context_max_tokens="12000",
        )
    assert code == 0
    results = [e for e in events if e["kind"] == "scenario_result"]
    assert results
    return results, phi[0].context_length


@pytest.mark.integration
def test_context_overflow_is_classified_not_a_crash(tmp_path):
    # The plain OpenAI flavour tells nothing about context length, so the 10k+ prompt is sent whole.
    results, _ = _large_context_results(tmp_path, "openai")
    assert {r["error_class"] for r in results} == {"context_overflow"}


@pytest.mark.integration
def test_large_context_is_capped_to_a_known_context_length(tmp_path):
    results, ctx_len = _large_context_results(tmp_path, "lmstudio")  # LM Studio reports the context
    assert all(r["ok"] for r in results), results
    for r in results:
        assert r["metrics"]["capped_to_context"] is True
        assert r["metrics"]["prompt_tokens"] < ctx_len


@pytest.mark.integration
@pytest.mark.slow
def test_same_seed_same_sequence(sim, tmp_path):
    def sequence(run: str) -> list[tuple[str, str]]:
        _, events = soak(tmp_path / run, sim.base_url, duration="3s")
        return [(e["scenario"], e["model"]) for e in events if e["kind"] == "scenario_result"]

    a, b = sequence("a"), sequence("b")
    n = min(len(a), len(b))
    assert n >= 3 and a[:n] == b[:n]


def _start(run_dir: Path, base_url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "soaktui",
            "--no-ui",
            "--base-url",
            base_url,
            "--out",
            str(run_dir),
            "--seed",
            "5",
            "--scenarios",
            "streaming,simple_inference",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "SOAKTUI_THRESHOLDS__SIMPLE_MAX_TOKENS": "200",
            "SOAKTUI_QUIET_HOURS__ENABLED": "false",
        },
    )


def test_commands_reach_the_engine_and_become_events(sim, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, sim.base_url, "--duration", "2m")
    try:
        log = run_dir / "events.jsonl"
        wait_for_events(log, lambda ev: any(e["kind"] == "scenario_result" for e in ev))
        assert send_command(run_dir, "throttle", 50)["ok"]
        assert send_command(run_dir, "throttle", "-10")["state"]["throttle_pct"] == 40
        state = send_command(run_dir, "pause")["state"]
        assert state["paused"] is True and state["pace_reason"] == "paused by command"
        human = cli("ctl", str(run_dir), "status")  # the status line, saying why the pace differs
        assert human.returncode == 0 and "(effective 40%: paused by command) | PAUSED" in human.stdout, human.stdout
        as_json = orjson.loads(cli("ctl", str(run_dir), "status", "--json").stdout)
        assert as_json["pace_reason"] == "paused by command" and as_json["throttle_pct"] == 40
        assert send_command(run_dir, "resume")["ok"]
        reply = send_command(run_dir, "skip")
        assert reply["ok"] and "skipped" in reply["message"]
        assert send_command(run_dir, "quiet", "on")["ok"]
        assert not send_command(run_dir, "throttle", 500)["ok"]
        assert send_command(run_dir, "stop")["ok"]
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    events = list(iter_events(run_dir / "events.jsonl"))
    kinds = [e["kind"] for e in events]
    throttles = [e["pct"] for e in events if e["kind"] == "throttle_changed" and e["source"] == "command"]
    assert throttles == [50, 40]
    assert "paused" in kinds and "resumed" in kinds
    assert kinds.index("paused") < kinds.index("resumed")
    assert any(e["kind"] == "model_switched" and e["reason"] == "skip" for e in events)
    assert any(e["kind"] == "model_skipped" for e in events)
    assert any(e["kind"] == "quiet_hours_changed" and e["enabled"] is True for e in events)
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "stopped"
    assert (run_dir / "final_report.md").is_file()
    assert not (run_dir / "control.sock").exists()


def test_ctl_without_a_running_run_says_so(tmp_path):
    out = cli("ctl", str(tmp_path), "status")
    assert out.returncode == 2
    assert "no running soaktui run" in out.stderr and "Traceback" not in out.stderr


def test_sigkill_leaves_a_log_that_report_reads_exactly(sim, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, sim.base_url, "--duration", "2m")
    try:
        wait_for_events(run_dir / "events.jsonl", lambda ev: sum(e["kind"] == "scenario_result" for e in ev) >= 3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    raw = (run_dir / "events.jsonl").read_bytes()
    complete = raw.count(b"\n")
    out = cli("report", str(run_dir))
    assert out.returncode == 0, out.stderr
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert report["log"]["lines_ok"] == complete
    assert report["run"]["ended_without_finishing"] is True
    assert "without finishing" in (run_dir / "final_report.md").read_text()


def test_sigint_stops_gracefully_with_a_report(sim, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, sim.base_url, "--duration", "2m")
    try:
        wait_for_events(run_dir / "events.jsonl", lambda ev: any(e["kind"] == "scenario_result" for e in ev))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = list(iter_events(run_dir / "events.jsonl"))
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "signal"
    assert (run_dir / "report.json").is_file()


def test_a_torn_last_line_is_tolerated_by_report(sim, tmp_path):
    run_dir = tmp_path / "run"
    soak(run_dir, sim.base_url, duration="1s")
    with open(run_dir / "events.jsonl", "ab") as f:
        f.write(b'{"v": 1, "kind": "request", "ok": tr')
    out = cli("report", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert orjson.loads((run_dir / "report.json").read_bytes())["log"]["torn_tail"] is True


# -- bad input: one clear line, no traceback, non-zero exit ------------------------------------------------


def _one_clear_line(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [unstamped(ln) for ln in out.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("soaktui: "), out.stderr
    for n in needles:
        assert n in lines[-1], (n, lines[-1])


def test_no_server_names_ports_and_suggests_demo():
    out = cli("--no-ui", "--base-url", "http://127.0.0.1:9", "--duration", "1m")
    _one_clear_line(out, "127.0.0.1:9", "--demo")


def _static_server(body: bytes, content_type: str):
    """A real HTTP server that answers every GET with the same body."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"<html><body>router login</body></html>", "text/html", "no LLM server found"),
        (b'{"object": "list", "data": []}', "application/json", "no model to test"),
    ],
)
def test_html_or_an_empty_model_list_is_a_clear_error(body, content_type, needle):
    srv = _static_server(body, content_type)
    try:
        out = cli("--no-ui", "--base-url", f"http://127.0.0.1:{srv.server_address[1]}", "--duration", "1m")
    finally:
        srv.shutdown()
    _one_clear_line(out, needle)


def test_only_embedding_models_is_a_clear_error(tmp_path):
    emb = [p for p in default_personas() if p.type == "embedding"]
    with run_in_thread(SimConfig(flavor="ollama", personas=emb)) as s:
        out = cli("--no-ui", "--base-url", s.base_url, "--duration", "1m")
    _one_clear_line(out, "no model to test", "embedding")


def test_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quiet_hours]\nstart = '25:00'\n")
    out = cli("--no-ui", "--demo", "--config", str(cfg))
    _one_clear_line(out, "quiet_hours.start")


def test_bad_duration_flag(tmp_path):
    out = cli("--no-ui", "--demo", "--duration", "soon")
    _one_clear_line(out, "duration")


def test_unwritable_out_is_a_clear_error(sim, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("--no-ui", "--base-url", sim.base_url, "--out", str(blocker / "run"), "--duration", "5s")
    _one_clear_line(out, "--out")


def test_full_disk_stops_the_run_and_keeps_what_was_logged(sim, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "soaktui",
            "--no-ui",
            "--base-url",
            sim.base_url,
            "--out",
            str(run_dir),
            "--duration",
            "1m",
            "--scenarios",
            "streaming",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=full_disk_after(40_000),
        env={**os.environ, "SOAKTUI_THRESHOLDS__STREAM_MAX_TOKENS": "40"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cannot write events.jsonl" in proc.stderr
    events = list(iter_events(run_dir / "events.jsonl"))
    assert len(events) > 5 and events[0]["kind"] == "run_started"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.mark.integration
def test_http_transport_httpx_measures_through_httpx_and_says_so(sim, tmp_path):
    code, events = soak(tmp_path / "run", sim.base_url, duration="2s", http_transport="httpx")
    assert code == 0
    assert set(events[0]["http"].values()) == {"httpx"}
    ok = [e for e in events if e["kind"] == "request" and e["ok"]]
    assert ok and all(e["output_tokens"] > 0 for e in ok)


def test_json_streams_every_event_to_stdout_and_progress_goes_to_stderr(sim, tmp_path):
    run_dir = tmp_path / "run"
    out = cli(
        "--no-ui",
        "--json",
        "--base-url",
        sim.base_url,
        "--out",
        str(run_dir),
        "--duration",
        "3s",
        "--seed",
        "2",
        env={
            **os.environ,
            "SOAKTUI_THRESHOLDS__SIMPLE_MAX_TOKENS": "150",
            "SOAKTUI_QUIET_HOURS__ENABLED": "0",
        },
    )
    assert out.returncode == 0, out.stderr
    streamed = [orjson.loads(line) for line in out.stdout.splitlines()]
    logged = list(iter_events(run_dir / "events.jsonl"))
    assert streamed == logged
    tests = [e for e in logged if e["kind"] == "scenario_result"]
    assert tests
    names = short_names(next(e for e in logged if e["kind"] == "providers_discovered")["selected"])
    for e in tests:
        assert f"#{e['test_id']} {e['scenario']} on {names[e['key']]}" in out.stderr
    assert f"writing to {run_dir}" in out.stderr


def test_second_sigint_stops_at_once_and_the_log_still_makes_a_report(tmp_path):
    plan = plan_from_specs(["stall=every:1"], stall_s=30.0)  # every request hangs mid-stream
    with run_in_thread(SimConfig(flavor="lmstudio", seed=4, speed=40.0, faults=plan)) as s:
        run_dir = tmp_path / "run"
        proc = _start(run_dir, s.base_url, "--duration", "5m")
        proc_env_note = "timeouts.grace 10s by default: only a second SIGINT ends the run this fast"
        try:
            log = run_dir / "events.jsonl"
            wait_for_events(log, lambda ev: any(e["kind"] == "model_switched" for e in ev))
            time.sleep(1.0)  # a request is now stalled in flight
            proc.send_signal(signal.SIGINT)
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=8)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, (proc_env_note, err)
    assert b"soaktui report" in err and b"Traceback" not in err
    events = list(iter_events(run_dir / "events.jsonl"))
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "signal"
    cancelled = [e for e in events if e["kind"] == "scenario_result"]
    assert cancelled and cancelled[-1]["error_class"] == "cancelled"
    assert not (run_dir / "final_report.md").exists()
    assert cli("report", str(run_dir)).returncode == 0
    assert (run_dir / "final_report.md").is_file()


def test_a_hangup_leaves_a_headless_run_going_until_it_is_stopped(sim, tmp_path):
    """An SSH session dropped without nohup: the engine's terminal is a pty whose master closes,
    so the kernel sends SIGHUP and later writes to the terminal fail (EIO). The run goes on, then
    `soaktui ctl DIR stop` ends it with a report and no stale socket."""
    import fcntl
    import pty
    import select
    import termios

    run_dir = tmp_path / "run"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "soaktui", "--no-ui", "--base-url", sim.base_url, "--out", str(run_dir),
         "--seed", "5", "--scenarios", "streaming,simple_inference", "--duration", "2m"],
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        env=engine_env(tmp_path, THRESHOLDS__SIMPLE_MAX_TOKENS="200"),
    )  # fmt: skip
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + WAIT_S
        while b" on " not in seen:  # a finished test's line reached the terminal
            assert time.monotonic() < deadline and proc.poll() is None, seen[-500:]
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 65536)
        os.close(master)  # the hangup
        master = -1
        hung_up = len(list(iter_events(run_dir / "events.jsonl")))
        wait_for_events(run_dir / "events.jsonl", lambda ev: len(ev) > hung_up + 20)  # it went on
        assert proc.poll() is None
        stop = cli("ctl", str(run_dir), "stop", env=engine_env(tmp_path))
        assert stop.returncode == 0, stop.stderr
        proc.wait(60)
    finally:
        if master >= 0:
            os.close(master)
        stop_process(proc)
    assert proc.returncode == 0
    events = list(iter_events(run_dir / "events.jsonl"))
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "stopped"
    assert (run_dir / "report.json").is_file() and (run_dir / "final_report.md").is_file()
    assert not (run_dir / "control.sock").exists()
