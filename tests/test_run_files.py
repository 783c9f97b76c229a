"""The run directory under a hostile or broken filesystem: read-only, full, another user's, or with
links planted in it (issue 14, items 8 and 9; log/safefiles.py, docs/report.md).

Root ignores file modes, so "read-only" is a real read-only bind mount when the tests run as root
and a 0555 directory otherwise; "another user's" is a chown to nobody (65534) as root and a
root-owned directory otherwise. A full disk is RLIMIT_FSIZE (tests/helpers.py), which binds root too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from soaktui import attach
from soaktui.config import load_settings
from soaktui.engine.control import ControlServer
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.errors import SetupError
from soaktui.locations import claim_out_dir, new_run_dir
from soaktui.log import rundir
from soaktui.log.reader import iter_events
from soaktui.sinks.console import unstamped
from tests.helpers import full_disk_after

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "data" / "ui" / "recorded_events.jsonl"
REPORTS = (rundir.REPORT_MD, rundir.REPORT_JSON, rundir.REPORT_HTML)
ROOT = os.geteuid() == 0
NOBODY = 65534


def report(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soaktui", "report", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def last_line(out: subprocess.CompletedProcess) -> str:
    """The one clear line a failed command ends with (no traceback, exit 2)."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = [unstamped(ln) for ln in out.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("soaktui: "), out.stderr
    return lines[-1]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A finished run's directory (a recorded log), without its report yet."""
    path = tmp_path / "run"
    path.mkdir()
    shutil.copy(RECORDED, path / rundir.EVENTS)
    return path


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` as a directory nobody, root included, can write into: the path to use."""
    if not ROOT:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    view = path.with_name(path.name + "-ro")
    view.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)
        view.rmdir()


def foreign_dir(tmp_path: Path) -> Path:
    """An existing directory that belongs to another user."""
    if not ROOT:
        return Path("/")  # root's
    path = tmp_path / "theirs"
    path.mkdir()
    os.chown(path, NOBODY, NOBODY)
    return path


# --------------------------------------------------------------------------- soaktui report (item 8)


def test_report_into_a_read_only_run_says_so_and_out_dir_rebuilds_it_elsewhere(run_dir, tmp_path):
    with read_only(run_dir) as ro:
        line = last_line(report(ro))
        assert f"cannot write the report into {ro}" in line and "--out-dir" in line
        elsewhere = tmp_path / "elsewhere" / "report"
        out = report(ro, "--out-dir", elsewhere)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(elsewhere / name) for name in REPORTS]
    for name in REPORTS:
        assert (elsewhere / name).stat().st_size > 0
        assert not (run_dir / name).exists()
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o700


def test_report_on_a_full_disk_says_so_and_keeps_the_previous_report_whole(run_dir):
    assert report(run_dir).returncode == 0
    before = {name: (run_dir / name).read_bytes() for name in REPORTS}
    line = last_line(report(run_dir, preexec_fn=full_disk_after(4096)))
    assert f"cannot write the report into {run_dir}" in line and "--out-dir" in line
    assert {name: (run_dir / name).read_bytes() for name in REPORTS} == before
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([rundir.EVENTS, *REPORTS])  # no temp left


def test_report_on_another_users_run_is_refused_with_a_way_out(run_dir, tmp_path):
    if ROOT:  # root could write there: it must not, the owner could have planted links
        os.chown(run_dir, NOBODY, NOBODY)
        line = last_line(report(run_dir))
        assert "belongs to uid 65534" in line and "--out-dir" in line
        assert not any((run_dir / name).exists() for name in REPORTS)
        out = report(run_dir, "--out-dir", tmp_path / "mine")
        assert out.returncode == 0, out.stderr
        assert all((tmp_path / "mine" / name).is_file() for name in REPORTS)
    else:  # another user's log is unreadable (0600): the read fails with one line
        (run_dir / rundir.EVENTS).chmod(0)
        line = last_line(report(run_dir))
        assert "cannot read" in line and "Permission denied" in line
    line = last_line(report(run_dir, "--out-dir", foreign_dir(tmp_path)))
    assert "refusing to write the report into" in line


# --------------------------------------------------------------------------- planted links (item 9)


SOAK = {
    "quiet_hours.enabled": False,
    "thresholds.simple_min_tokens": "10",
    "thresholds.simple_max_tokens": "40",
    "thresholds.stream_max_tokens": "40",
    "timeouts.grace": "2",
    "scenarios": "simple_inference,streaming",
    "duration": "2s",
    "seed": "1",
}


def soak(out: Path, base_url: str) -> int:
    settings = load_settings(None, {}, {**SOAK, "base_urls": base_url, "out": str(out)})
    return asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))


@pytest.mark.integration
def test_links_planted_in_the_run_dir_are_refused_or_replaced_never_followed(start_sim, tmp_path, capsys):
    """Every kind of run file: appended logs are refused (the run goes on without them), files
    rewritten whole replace the link itself, the control socket does not start on a link."""
    sim = start_sim(flavor="lmstudio", seed=1)
    out, victims = tmp_path / "run", tmp_path / "victims"
    out.mkdir()
    victims.mkdir()
    planted = [*rundir.TEXT_LOGS, rundir.SUMMARY, *REPORTS, rundir.CONTROL_SOCKET]
    for name in planted:
        (victims / name).write_text(f"precious {name}\n")
        (out / name).symlink_to(victims / name)

    assert soak(out, sim.base_url) == 0

    for name in planted:
        assert (victims / name).read_text() == f"precious {name}\n", name
    for name in (rundir.SUMMARY, *REPORTS):  # replaced: now the run's own file
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0, name
    for name in (*rundir.TEXT_LOGS, rundir.CONTROL_SOCKET):  # refused: the link is left alone
        assert (out / name).is_symlink(), name
    assert "a symlink is there" in capsys.readouterr().err
    events = list(iter_events(out / rundir.EVENTS))
    assert events[-1]["kind"] == "run_finished"
    assert any(e["kind"] == "error" and e.get("error_class") == "control_socket" for e in events)


@pytest.mark.integration
def test_a_planted_control_path_does_not_make_a_run_unlink_someone_elses_socket(tmp_path):
    """A run removes the stale socket its pointer names only inside soaktui's own private directory."""
    run_dir, theirs = tmp_path / "run", tmp_path / "theirs.sock"
    run_dir.mkdir()
    with socket.socket(socket.AF_UNIX) as s:  # bound, not listening: as stale as a dead run's socket
        s.bind(str(theirs))
    (run_dir / rundir.CONTROL_POINTER).write_text(f"{theirs}\n")

    async def start_and_stop() -> None:
        async with ControlServer(run_dir, lambda command, arg: {}) as server:
            assert server.socket_path == run_dir / rundir.CONTROL_SOCKET

    asyncio.run(start_and_stop())
    assert stat.S_ISSOCK(theirs.lstat().st_mode)


@pytest.mark.integration
def test_a_planted_events_log_stops_the_run_before_it_starts(start_sim, tmp_path):
    sim = start_sim(flavor="lmstudio", seed=1)
    out, victim = tmp_path / "run", tmp_path / "victim"
    out.mkdir()
    (out / rundir.EVENTS).symlink_to(victim)  # dangling: `holds_run` does not see a run
    with pytest.raises(SetupError, match="a symlink is there"):
        soak(out, sim.base_url)
    assert not victim.exists()


@pytest.mark.integration
def test_engine_log_is_never_written_through_a_planted_link(tmp_path):
    """The dashboard appends the engine's stderr to engine.log before the engine starts."""
    target = tmp_path / "target"
    target.write_text("precious\n")
    for plant, why in ((os.symlink, "a symlink is there"), (os.link, "single link")):
        run_dir = tmp_path / plant.__name__
        run_dir.mkdir()
        plant(target, run_dir / attach.ENGINE_LOG)
        with pytest.raises(SetupError, match=why):
            attach.start_engine(["--no-ui"], run_dir, created=False)
    assert target.read_text() == "precious\n"


@pytest.mark.integration
def test_a_run_dir_of_another_user_is_refused(start_sim, tmp_path):
    theirs = foreign_dir(tmp_path)
    with pytest.raises(SetupError, match=f"refusing --out {theirs}: it belongs to uid"):
        claim_out_dir(theirs)  # the dashboard's check, before it writes engine.log
    sim = start_sim(flavor="lmstudio", seed=1)
    with pytest.raises(SetupError, match="it belongs to uid"):
        soak(theirs, sim.base_url)
    assert not (theirs / rundir.EVENTS).exists()


@pytest.mark.integration
def test_run_dirs_are_0700_and_run_files_0600(start_sim, tmp_path):
    sim = start_sim(flavor="lmstudio", seed=1)
    out = tmp_path / "new" / "run"
    assert soak(out, sim.base_url) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    files = list(out.iterdir())
    assert {p.name for p in files} >= {rundir.EVENTS, rundir.SUMMARY, *REPORTS, *rundir.TEXT_LOGS}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    _, fresh = new_run_dir(tmp_path / "runs")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
