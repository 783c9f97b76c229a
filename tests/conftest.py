"""Shared fixtures: keep the host's config and data out of every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point config and data dirs at temp dirs and drop SOAKTUI_* / OPENAI_* variables from the host."""
    base = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if (name.startswith("SOAKTUI_") and not name.startswith("SOAKTUI_TEST_")) or name == "OPENAI_API_KEY":
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
