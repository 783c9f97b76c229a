"""Shared fixtures (keep the host's config and data out of every test) and the test tiers.

Every test is in exactly one tier, the pytest markers registered in pyproject.toml: unit,
integration, e2e or real_server (README, Development). A module names its tier with `pytestmark`;
a test of another kind in it carries its own tier mark, and the closest mark wins, so
`-m integration` never selects the one e2e test of an integration module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from soaktui.locations import CONFIG_DIR_ENV, DATA_DIR_ENV
from tests.helpers import host_setting

TIERS = ("unit", "integration", "e2e", "real_server")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test the one tier of its closest tier mark (its own, its class's, its module's) and
    drop the others; refuse a test with none: it would fall out of `./scripts/test --fast` and of
    every tier selection without anyone noticing."""
    tiers: dict[str, str] = {}
    problems = []
    for item in items:
        for node in reversed(item.listchain()):
            names = [m.name for m in node.own_markers if m.name in TIERS]
            if len(names) > 1:
                problems.append(f"{item.nodeid}: several tiers on {node.nodeid or 'the session'}: {names}")
            if names:
                tiers[item.nodeid] = names[0]
                break
        else:
            problems.append(f"{item.nodeid}: no tier (one of {', '.join(TIERS)})")
    if problems:
        raise pytest.UsageError("test tiers:\n  " + "\n  ".join(problems))
    for item in items:
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
    for item in items:
        item.add_marker(tiers[item.nodeid])


def _isolate(mp: pytest.MonkeyPatch, base: Path) -> None:
    """Drop the host's SOAKTUI_* / OPENAI_* variables and point config and data dirs under `base`, in
    os.environ, so the soaktui child processes tests start inherit it."""
    for name in list(os.environ):
        if host_setting(name):
            mp.delenv(name, raising=False)
    mp.setenv(CONFIG_DIR_ENV, str(base / "config"))
    mp.setenv(DATA_DIR_ENV, str(base / "data"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_session_home(tmp_path_factory):
    """For the whole session, before any module- or session-scoped fixture: a run shared by a
    module's tests (tests/test_ui_keys.py) starts before the per-test home below exists, and its
    report would otherwise land in the user's real data dir and capability database."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp_path_factory.mktemp("session-home"))
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test its own empty config and data dirs."""
    _isolate(monkeypatch, tmp_path_factory.mktemp("home"))
    yield


SIM_FAST = 1000.0  # the simulator's time compression for tests that do not look at pacing


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Clock times in reports are local: pin the zone so golden files hold anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def start_sim():
    """Start simulators on free ports (keyword arguments go to SimConfig; speed SIM_FAST unless
    given); all stopped afterwards."""
    from soaktui.simulator import SimConfig, run_in_thread

    handles = []

    def start(**kwargs):
        kwargs.setdefault("speed", SIM_FAST)
        handle = run_in_thread(SimConfig(**kwargs))
        handles.append(handle)
        return handle

    yield start
    for h in handles:
        h.stop()


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """One real llama-server (tests/realserver.py) per test module that asks for it."""
    from tests.realserver import LlamaServer

    server = LlamaServer(tmp_path_factory.mktemp("llama"))
    server.start()
    yield server
    server.stop()
