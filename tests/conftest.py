"""Shared fixtures (keep the host's config and data out of every test) and the test tiers.

Every test is in exactly one tier, the pytest markers registered in pyproject.toml: unit,
integration, e2e or real_server (README, Development). A module names its tier with `pytestmark`;
a test of another kind in it carries its own tier mark, and the closest mark wins, so
`-m integration` never selects the one e2e test of an integration module.
"""

from __future__ import annotations

import os

import pytest

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


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point config and data dirs at temp dirs and drop SOAKTUI_* / OPENAI_* variables from the host."""
    base = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if host_setting(name):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOAKTUI_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("SOAKTUI_DATA_DIR", str(base / "data"))
    yield


SIM_FAST = 1000.0  # the simulator's time compression for tests that do not look at pacing


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
