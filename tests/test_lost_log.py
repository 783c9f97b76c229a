"""A deleted or replaced events.jsonl is noticed, reopened and said, never silently lost.

Before the fix the engine kept appending to the unlinked file and claimed at the end that
events.jsonl was intact: everything was gone.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from soaktui.config import load_settings
from soaktui.engine.launch import RunRequest, run_soak
from soaktui.log.follow import LogFollower
from soaktui.log.reader import iter_events
from soaktui.log.writer import JsonlWriter
from soaktui.simulator.threaded import SimConfig, run_in_thread
from tests.helpers import WAIT_S


def _write_until_reopened(w: JsonlWriter, lost: list[dict]) -> None:
    """Keep writing (the fsync thread checks the file's identity after a write) until it reopened."""
    deadline = time.monotonic() + WAIT_S
    i = 0
    while not lost:
        assert time.monotonic() < deadline, "the writer never noticed"
        w.handle({"kind": "probe", "i": i})
        i += 1
        time.sleep(0.02)


@pytest.mark.integration
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_the_writer_notices_and_reopens(tmp_path, how):
    path = tmp_path / "events.jsonl"
    w = JsonlWriter(path, fsync_interval_s=0.01)
    lost: list[dict] = []
    w.on_lost = lost.append
    for i in range(5):
        w.handle({"kind": "before", "i": i})
    time.sleep(0.05)
    if how == "deleted":
        path.unlink()
    else:
        other = tmp_path / "other.jsonl"
        other.write_bytes(b'{"kind": "someone else"}\n')
        os.replace(other, path)
    _write_until_reopened(w, lost)
    w.handle({"kind": "after"})
    w.close()
    assert [x["why"] for x in lost] == [how] and lost[0]["lines_in_lost_file"] >= 5
    kinds = [e["kind"] for e in iter_events(path)]
    assert kinds[-1] == "after" and "before" not in kinds
    if how == "replaced":
        assert kinds[0] == "someone else"  # the replacement is appended to, not clobbered
    assert w.losses == lost  # nothing lost after the last write: close() adds nothing


@pytest.mark.integration
def test_a_loss_after_the_last_write_is_still_recorded(tmp_path):
    path = tmp_path / "events.jsonl"
    w = JsonlWriter(path, fsync_interval_s=60)
    w.handle({"kind": "only"})
    path.unlink()
    w.close()
    assert [x["why"] for x in w.losses] == ["deleted"]


@pytest.mark.integration
def test_a_symlink_at_the_path_is_refused(tmp_path):
    target = tmp_path / "target"
    target.write_text("precious\n")
    (tmp_path / "events.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        JsonlWriter(tmp_path / "events.jsonl")
    assert target.read_text() == "precious\n"


@pytest.mark.integration
def test_the_follower_moves_to_the_new_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"kind": "a"}\n{"kind": "b"}\n')
    f = LogFollower(path)
    assert [e["kind"] for e in f.read()] == ["a", "b"]
    path.unlink()
    assert f.read() == []  # deleted, nothing new yet: keep the old file
    path.write_bytes(b'{"kind": "c"}\n')
    assert f.read() == []  # the switch
    assert [e["kind"] for e in f.read()] == ["c"] and f.switches == 1


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_run_whose_log_is_deleted_says_so_everywhere(tmp_path, capsys):
    run_dir = tmp_path / "run"
    log = run_dir / "events.jsonl"

    def delete_soon() -> None:
        deadline = time.monotonic() + WAIT_S
        while not log.exists() or log.stat().st_size < 2000:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        log.unlink()

    t = threading.Thread(target=delete_soon, daemon=True)
    with run_in_thread(SimConfig(flavor="llamacpp", seed=4, speed=40.0)) as sim:
        settings = load_settings(
            None,
            {},
            {
                "base_urls": sim.base_url,
                "out": str(run_dir),
                "seed": "1",
                "duration": "6s",
                "scenarios": "streaming,simple_inference",
                "thresholds.simple_max_tokens": "100",
                "quiet_hours.enabled": "false",
                "output.fsync_interval": "0.05s",
            },
        )
        t.start()
        code = asyncio.run(run_soak(RunRequest(settings=settings, quiet=True)))
    t.join(5)
    assert code == 0
    events = list(iter_events(log))
    (lost,) = [e for e in events if e["kind"] == "error" and e.get("error_class") == "log_lost"]
    assert "was deleted during the run" in lost["message"]
    assert events[-1]["kind"] == "run_finished"  # the new file goes on to the end
    err = capsys.readouterr().err
    assert "warning: events.jsonl was deleted during the run" in err and "intact" not in err
    report = (run_dir / "final_report.md").read_text()
    assert "log_lost" in report
    assert "events.jsonl was lost" in report.split("## ", 2)[1]  # on the verdict, not only in a table
