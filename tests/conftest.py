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
