"""The capability database: idempotent per-run rows, counts re-aggregated across runs, two writers
at once, failures that cost only a warning, and `soaktui models` after a real demo run.

The data dir is the per-test temp dir tests/conftest.py sets (SOAKTUI_DATA_DIR), so the child
processes (multiprocessing, the `soaktui` command) write there too.
"""

from __future__ import annotations

import copy
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from soaktui.cli import main as cli_main
from soaktui.profiles import capdb
from soaktui.report import build_report
from soaktui.report.names import short_names
from soaktui.stats import compact_rate

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).parent / "data" / "capabilities" / "two_models.jsonl"
SMALL_CONFIG = """\
[quiet_hours]
enabled = false
[thresholds]
simple_min_tokens = 20
simple_max_tokens = 120
stream_max_tokens = 60
large_context_min_tokens = 400
large_context_max_tokens = 900
[timeouts]
grace = 2
[rotation]
min_tests = 2
max_tests = 3
"""


@pytest.fixture(scope="module")
def base_snap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = tmp_path_factory.mktemp("caps")
    shutil.copy(FIXTURE, run / "events.jsonl")
    return build_report(run)[0]


def snap_as(base: dict[str, Any], run_id: str, ended_t: float) -> dict[str, Any]:
    s = copy.deepcopy(base)
    s["run"]["run_id"] = run_id
    s["run"]["ended_t"] = ended_t
    return s


def rows(path: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT run_id, model, profile FROM model_runs ORDER BY run_id, model").fetchall()
    finally:
        con.close()


def kn(r: dict[str, Any]) -> tuple[int, int]:
    return r["k"], r["n"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "soaktui", *args], capture_output=True, text=True, timeout=timeout
    )


def test_recording_a_run_again_replaces_it(base_snap: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "caps.sqlite3"
    assert capdb.record_snapshot(base_snap, db) is None
    assert capdb.record_snapshot(base_snap, db) is None
    assert rows(db) == [("soak_caps", "sim/alpha", "openai/alpha"), ("soak_caps", "sim/beta", "openai/beta")]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    fewer = copy.deepcopy(base_snap)
    del fewer["capabilities"]["models"]["sim/beta"]  # the run, rebuilt, no longer has beta
    assert capdb.record_snapshot(fewer, db) is None
    assert rows(db) == [("soak_caps", "sim/alpha", "openai/alpha")]


def test_profiles_add_counts_across_runs(base_snap: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "caps.sqlite3"
    second = snap_as(base_snap, "soak_later", base_snap["run"]["ended_t"] + 3600)
    second["capabilities"]["models"]["sim/alpha"]["streaming_ttft_ms"]["p50"] = 200.0
    for s in (second, base_snap):  # recorded out of order: profiles sort runs by their end
        assert capdb.record_snapshot(s, db) is None
    profiles = capdb.profiles(capdb.load_runs(db))
    a = profiles["openai/alpha"]
    assert a["runs"] == 2 and a["run_ids"] == ["soak_caps", "soak_later"] and a["demo_runs"] == 2
    assert a["model_keys"] == ["sim/alpha"]
    assert kn(a["tests"]) == (60, 74) and kn(a["request_errors"]) == (4, 74)
    tc = a["tool_calling"]
    assert kn(tc["overall"]) == (36, 40) and tc["request_failed"] == 2
    assert {k: kn(r) for k, r in tc["by_kind"].items()} == {
        "explicit": (12, 12),
        "implicit": (6, 8),
        "irrelevant": (8, 8),
        "parallel": (4, 6),
        "multi_turn": (6, 6),
    }
    assert {k: kn(r) for k, r in tc["by_mode"].items()} == {"native": (26, 28), "prompted": (10, 12)}
    so = a["structured_output"]
    assert kn(so["schema_valid"]) == (4, 8) and kn(so["parsed"]) == (6, 8)
    assert so["failures"] == {"no_json": 2, "schema_violation": 2}
    assert kn(a["prompt_checks"]["passed"]) == (4, 6)
    # medians are not merged: the range of the per-run medians, over how many runs
    assert a["streaming_ttft_p50_ms"] == {"runs": 2, "min_p50": 200.0, "max_p50": 300.0, "n": 10}
    assert a["large_context"] == {
        "max_prompt_tokens": 20000,
        "requests_ok": 4,
        "requests_failed": 2,
        "runs": 2,
    }
    b = profiles["openai/beta"]
    assert b["structured_output"] is None and b["large_context"] is None and kn(b["tests"]) == (22, 22)


def _write_runs(paths: list[str], snap: dict[str, Any], prefix: str, n: int, barrier: Any, out: Any) -> None:
    snaps = [snap_as(snap, f"{prefix}_{i}", 1000.0 + i) for i in range(n)]
    results = []
    for path in paths:
        barrier.wait(30)  # both processes start on each database at the same moment
        results += [capdb.record_snapshot(s, Path(path)) for s in snaps]
    out.put((prefix, results))


@pytest.mark.integration
def test_two_processes_writing_at_once_both_land(base_snap: dict[str, Any], tmp_path: Path) -> None:
    # many fresh databases: creating one (the switch to WAL mode) is the touchiest moment
    paths = [str(tmp_path / f"caps{i}.sqlite3") for i in range(40)]
    n = 2
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_write_runs, args=(paths, base_snap, prefix, n, barrier, out))
        for prefix in ("p1", "p2")
    ]
    for proc in procs:
        proc.start()
    try:
        results = dict(out.get(timeout=180) for _ in procs)
    finally:
        for proc in procs:
            proc.join(30)
    assert results == {"p1": [None] * n * len(paths), "p2": [None] * n * len(paths)}
    for path in paths:
        got = rows(Path(path))
        assert len(got) == 2 * n * 2  # two processes x n runs x two models
        assert {r[0] for r in got} == {f"{p}_{i}" for p in ("p1", "p2") for i in range(n)}


def _open_fresh(paths: list[str], barrier: Any, out: Any) -> None:
    errors = []
    for path in paths:
        barrier.wait(30)
        try:
            capdb.connect(Path(path)).close()
        except sqlite3.Error as exc:
            errors.append(f"{path}: {exc}")
    out.put(errors)


@pytest.mark.integration
def test_two_processes_creating_the_database_at_once() -> None:
    """SQLite answers "locked" at once, without waiting, to a switch to WAL while another process has
    the new file open: connect() retries it. Many fresh files, both processes released together."""
    base = capdb.db_path().parent
    base.mkdir(parents=True, exist_ok=True)
    paths = [str(base / f"fresh{i}.sqlite3") for i in range(150)]
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open_fresh, args=(paths, barrier, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    try:
        errors = [out.get(timeout=180) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
    assert errors == [[], []]
    for path in paths:
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()


def test_a_database_failure_is_a_warning_not_an_error(base_snap: dict[str, Any], tmp_path: Path) -> None:
    assert "model profiles not updated" in (capdb.record_snapshot(base_snap, tmp_path) or "")  # a directory
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not an sqlite database, it is a text file that got in the way\n" * 20)
    warning = capdb.record_snapshot(base_snap, junk)
    assert warning and "not a database" in warning and "the report itself is written" in warning
    newer = tmp_path / "newer.sqlite3"
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.close()
    assert "newer" in (capdb.record_snapshot(base_snap, newer) or "")
    nameless = copy.deepcopy(base_snap)
    nameless["run"]["run_id"] = None
    assert capdb.record_snapshot(nameless, tmp_path / "ok.sqlite3") == (
        "model profiles not updated: the event log has no run id"
    )


WIDE = {  # LM Studio's ids as people have them, behind a provider key with host and port
    "alpha": "qwen2.5-coder-14b-instruct-mlx-4bit:latest",
    "beta": "deepseek-r1-distill-qwen-32b-abliterated-q4_k_m",
}


def test_models_fits_100_columns_with_wide_model_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    provider = "lmstudio@127.0.0.1:1234"
    text = FIXTURE.read_text().replace('"kind":"openai"', '"kind":"lmstudio"').replace('"sim/', f'"{provider}/')
    text = text.replace('"provider":"sim"', f'"provider":"{provider}"').replace('"name":"sim"', f'"name":"{provider}"')
    for short, wide in WIDE.items():
        text = text.replace(f'"{short}"', f'"{wide}"').replace(f"/{short}\"", f'/{wide}"')
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text(text)
    assert capdb.record_snapshot(build_report(run)[0]) is None  # into the test's data dir
    keys = [f"lmstudio/{wide}" for wide in sorted(WIDE.values())]
    profiles = capdb.profiles(capdb.load_runs())
    assert sorted(profiles) == keys and all(len(k) > 50 for k in keys)

    assert cli_main(["models"]) == 0
    listing = capsys.readouterr().out
    assert max(len(line) for line in listing.splitlines()) <= 100, listing
    names = short_names(keys, profile_keys=True)
    assert names["lmstudio/" + WIDE["alpha"]] == "qwen2.5-coder-14…struct-mlx-4bit"  # no kind, no :latest
    both = ["lmstudio/m", "ollama/m:latest"]  # one model on two kinds of server: the kind tells them apart
    assert short_names(both, profile_keys=True) == {"lmstudio/m": "lmstudio/m", "ollama/m:latest": "ollama/m"}
    for key in keys:  # each model's figures on rows that start with its short name; its key listed
        rows = [line for line in listing.splitlines() if line.startswith(names[key] + "  ")]
        assert len(rows) >= 2 and compact_rate(profiles[key]["tests"]) in rows[0]
        assert f"  {key}: soak_caps" in listing

    assert cli_main(["models", "qwen2.5-coder"]) == 0
    history = capsys.readouterr().out
    assert max(len(line) for line in history.splitlines()) <= 100, history
    assert history.startswith(f"lmstudio/{WIDE['alpha']}: 1 run") and "by kind: explicit" in history


@pytest.mark.e2e
def test_report_command_survives_a_broken_database(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(FIXTURE, run / "events.jsonl")
    capdb.db_path().parent.mkdir(parents=True, exist_ok=True)
    capdb.db_path().write_bytes(b"garbage" * 100)
    out = cli("report", str(run))
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "model profiles not updated" in warnings[0]
    assert (run / "final_report.md").is_file() and (run / "report.json").is_file()
    listing = cli("models")
    assert listing.returncode == 2 and listing.stderr.count("\n") == 1
    assert "cannot read the capability database" in listing.stderr


@pytest.mark.e2e
def test_models_with_no_database_yet() -> None:
    out = cli("models")
    assert out.returncode == 0 and "no model profiles yet" in out.stdout
    data = orjson.loads(cli("models", "--json").stdout)
    assert data["models"] == {} and data["database"] == str(capdb.db_path())


@pytest.mark.e2e
def test_models_after_a_real_demo_run(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_CONFIG)
    run = tmp_path / "run"
    out = cli(
        "--no-ui", "--demo", "--duration", "12s", "--seed", "1", "--config", str(cfg), "--out", str(run)
    )
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr
    report = orjson.loads((run / "report.json").read_bytes())
    run_id = report["run"]["run_id"]
    tested = report["capabilities"]["models"]
    assert tested, "the demo run tested no model"
    kinds = {p["name"]: p["kind"] for p in report["run"]["providers"]}

    listing = cli("models")
    assert listing.returncode == 0, listing.stderr
    assert f"from 1 run\ndatabase: {capdb.db_path()}\n" in listing.stdout
    data = orjson.loads(cli("models", "--json").stdout)
    assert set(data["models"]) == {capdb.profile_key(k, kinds) for k in tested}
    for key, row in tested.items():
        prof = data["models"][capdb.profile_key(key, kinds)]
        assert prof["run_ids"] == [run_id] and prof["demo_runs"] == 1
        assert kn(prof["tests"]) == kn(row["reliability"]["tests"])
        assert kn(prof["request_errors"]) == kn(row["reliability"]["request_errors"])
        assert capdb.profile_key(key, kinds) in listing.stdout

    # rebuilding the report replaces the run's rows: still one run per model
    assert cli("report", str(run)).returncode == 0
    again = orjson.loads(cli("models", "--json").stdout)
    assert all(p["runs"] == 1 for p in again["models"].values())

    key = next(iter(tested))
    model_id = key.partition("/")[2]
    one = cli("models", model_id)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith(f"{capdb.profile_key(key, kinds)}: 1 run, 1 with the built-in simulator")
    assert run_id in one.stdout and "SERVER" in one.stdout
    detail = orjson.loads(cli("models", model_id, "--json").stdout)
    assert [r["run_id"] for r in detail["runs"]] == [run_id] and detail["runs"][0]["model"] == key
    missing = cli("models", "no-such-model")
    assert missing.returncode == 2 and "no model profile matches 'no-such-model'" in missing.stderr
