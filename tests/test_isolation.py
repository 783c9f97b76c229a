"""Tests never write into the user's real config or data dir (tests/conftest.py sets both to temp
dirs in os.environ): not a run without --out, not the capability database, not a run shared by a
module's tests, not a soaktui child process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import platformdirs
import pytest

from soaktui.locations import APP_NAME, CONFIG_DIR_ENV, DATA_DIR_ENV, runs_dir
from soaktui.profiles import capdb

pytestmark = pytest.mark.unit

REAL_DATA = platformdirs.user_data_path(APP_NAME, appauthor=False)


@pytest.fixture(scope="module")
def module_env() -> list[str | None]:
    """What a module-scoped fixture sees: it is set up before any per-test fixture."""
    return [os.environ.get(DATA_DIR_ENV), os.environ.get(CONFIG_DIR_ENV)]


def test_a_module_fixture_already_sees_temporary_dirs(module_env, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    for value in module_env:
        assert value is not None and Path(value).is_relative_to(base), value


@pytest.mark.e2e
def test_a_run_without_out_and_the_model_database_stay_in_the_temp_dir(start_sim, tmp_path_factory):
    sim = start_sim(seed=2)
    soaktui = [sys.executable, "-m", "soaktui"]
    run = subprocess.run(
        [*soaktui, "--no-ui", "--base-url", sim.base_url, "--duration", "2s", "--scenarios", "simple_inference"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SOAKTUI_QUIET_HOURS__ENABLED": "false"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = re.search(r"writing to (\S+)", run.stderr)
    assert found, run.stderr
    run_dir = Path(found.group(1))
    assert run_dir.parent == runs_dir() and run_dir.is_relative_to(tmp_path_factory.getbasetemp())
    assert (run_dir / "report.json").is_file() and not (REAL_DATA / "runs" / run_dir.name).exists()
    listing = subprocess.run([*soaktui, "models", "--json"], capture_output=True, text=True, timeout=60)
    models = orjson.loads(listing.stdout)
    assert models["database"] == str(capdb.db_path()) and capdb.db_path().is_relative_to(runs_dir().parent)
    assert models["models"] and all(p["run_ids"] == [run_dir.name] for p in models["models"].values())
