"""A hostile server through a real run (issue 14, items 6 and 10): its terminal escapes and the API key
it echoes reach no file of the run and no output of soaktui, and the key never shows in `ps`.

The run is started the way the dashboard starts its engine (attach.start_engine, the child that
lives for the whole run), against tests/hostile.py's server, which refuses requests without the
key: a run that records answered requests has authenticated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soaktui.attach import KEY_ENV, engine_argv, start_engine
from soaktui.log.reader import read_all
from soaktui.report.html import plotly_js
from tests.helpers import stop_process, wait_for_events
from tests.hostile import KEY, HostileServer, hostile_log, raw_escapes

pytestmark = pytest.mark.integration

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
VISIBLE_OSC = "\\x1b]0;pwned\\x07"  # the title-setting sequence as soaktui shows it: text


def soaktui(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "soaktui", *args], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """A run against the hostile server, steered and stopped over its control socket; what it left."""
    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    run_dir.mkdir()
    seen: dict[str, object] = {"run_dir": run_dir}
    with pytest.MonkeyPatch.context() as mp, HostileServer() as srv:
        mp.setenv("SOAKTUI_QUIET_HOURS__ENABLED", "false")
        argv = ["--base-url", srv.base_url, "--api-key", KEY, "--scenarios", "simple_inference,streaming"]
        proc = start_engine(argv, run_dir, created=False)
        try:
            seen["cmdline"] = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            seen["events"] = wait_for_events(
                run_dir / "events.jsonl",
                lambda evs: any(e["kind"] == "request" and e["ok"] for e in evs)
                and any(e["kind"] == "request" and e.get("http_status") == 500 for e in evs),
            )
            seen["status"] = soaktui("ctl", str(run_dir), "status")
            soaktui("ctl", str(run_dir), "stop")
            proc.wait(60)
        finally:
            stop_process(proc)
        seen["models"] = soaktui("models")
    return seen


def test_the_engine_child_gets_the_key_from_its_environment_not_its_command_line(hostile_run):
    cmdline = hostile_run["cmdline"]
    assert b"soaktui" in cmdline and KEY.encode() not in cmdline and b"--api-key" not in cmdline
    answered = [e for e in hostile_run["events"] if e["kind"] == "request" and e["ok"]]
    assert answered, "the server answers only requests that carry the key"


@pytest.mark.unit
@pytest.mark.parametrize(
    "flag", [["--api-key", "K123"], ["--api-key=K123"], ["--api", "K123"], ["--api-k=K123"]], ids=str
)
def test_every_spelling_of_the_key_flag_moves_to_the_environment(tmp_path, flag):
    cmd, env = engine_argv(["--demo", *flag, "--theme", "light"], tmp_path)
    assert "K123" not in " ".join(cmd) and env == {KEY_ENV: "K123"}
    assert cmd[cmd.index("run") :] == ["run", "--no-ui", "--demo", "--out", str(tmp_path)]


def _run_files(run_dir: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file() and not p.is_socket()}
    files["report.html"] = files["report.html"].replace(plotly_js().encode(), b"")  # the chart library (plotly)
    return files


def test_no_file_of_the_run_holds_the_key(hostile_run):
    files = _run_files(hostile_run["run_dir"])
    assert {"events.jsonl", "errors.log", "main_test.log", "engine.log", "final_report.md"} <= set(files)
    assert [name for name, data in files.items() if KEY.encode() in data] == []
    events = files["events.jsonl"].decode()
    assert "Bearer <redacted>" in events and "key=<redacted>" in events  # the server did echo it
    settings = next(e for e in hostile_run["events"] if e["kind"] == "run_started")["settings"]
    assert settings["api_key"] == "<redacted>"


def test_no_file_of_the_run_holds_a_terminal_escape(hostile_run):
    """engine.log is the engine's stderr: the headless output."""
    files = _run_files(hostile_run["run_dir"])
    assert {name: raw_escapes(data) for name, data in files.items() if raw_escapes(data)} == {}
    assert any(VISIBLE_OSC in str(e.get("error")) for e in read_all(hostile_run["run_dir"] / "events.jsonl")[0])
    assert VISIBLE_OSC.encode() in files["errors.log"] and VISIBLE_OSC.encode() in files["engine.log"]


def test_ctl_status_and_models_show_server_text_as_text(hostile_run):
    for out in (hostile_run["status"], hostile_run["models"]):
        assert out.returncode == 0, out.stderr
        assert raw_escapes(out.stdout + out.stderr) == []
        assert b"\\x1b" in out.stdout  # the model id was shown, made visible


def test_discovery_output_and_setup_errors_show_model_ids_as_text(tmp_path):
    with HostileServer() as srv:
        listed = soaktui("discover", "--base-url", srv.base_url, "--api-key", KEY)
        refused = soaktui("--no-ui", "--base-url", srv.base_url, "--api-key", KEY, "--exclude", "evil*")
    assert listed.returncode == 0 and VISIBLE_OSC.encode() in listed.stdout
    assert refused.returncode == 2 and VISIBLE_OSC.encode() in refused.stderr
    assert raw_escapes(listed.stdout + listed.stderr + refused.stdout + refused.stderr) == []


def test_a_log_written_before_the_fix_reports_without_escapes(tmp_path):
    """The readers neutralise what an older soaktui stored raw: every report file and the verdict."""
    run_dir = tmp_path / "run"
    log = hostile_log(RECORDED, run_dir)
    assert raw_escapes(log.read_bytes())
    out = soaktui("report", str(run_dir))
    assert out.returncode == 0, out.stderr
    files = _run_files(run_dir)
    assert {name: raw_escapes(data) for name, data in files.items() if name != "events.jsonl" and raw_escapes(data)} == {}
    assert raw_escapes(out.stdout + out.stderr) == []
    assert VISIBLE_OSC.encode() in files["final_report.md"]
