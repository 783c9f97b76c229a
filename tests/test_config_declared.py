"""Each setting is declared once (soaktui/config/settings.py) and everything else derives from it;
scenarios declare their own name and weight, and the settings learn them from the registry."""

from __future__ import annotations

import dataclasses

import pytest

from soaktui.config import Settings, example_config_toml, key_table, load_settings, registry
from soaktui.config.keys import SECTIONS
from soaktui.scenarios import REGISTRY, SCENARIOS

pytestmark = pytest.mark.unit


@pytest.fixture
def env(tmp_path):
    return {"SOAKTUI_CONFIG_DIR": str(tmp_path / "cfg"), "SOAKTUI_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def own_registry(monkeypatch):
    """A copy of the registry for the test to change."""
    monkeypatch.setattr(registry, "_weights", dict(registry._weights))
    return registry


def test_every_dataclass_field_is_a_key_and_its_default_is_the_keys():
    keys = key_table()
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if "check" in f.metadata:
            assert keys[f.name].default == getattr(defaults, f.name), f.name
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert keys[f"{name}.{f.name}"].default == getattr(getattr(defaults, name), f.name)
    assert {k.partition(".")[2] for k in keys if k.startswith("weights.")} == set(REGISTRY)
    non_keys = {"weights", "config_path", "sources", *SECTIONS}
    assert {k for k in keys if "." not in k} == {f.name for f in dataclasses.fields(Settings)} - non_keys


def test_env_names_are_derived_from_the_keys():
    keys = key_table()
    assert keys["throttle"].env_var == "SOAKTUI_THROTTLE"
    assert keys["quiet_hours.start"].env_var == "SOAKTUI_QUIET_HOURS__START"
    assert keys["weights.streaming"].env_var == "SOAKTUI_WEIGHTS__STREAMING"


def test_scenarios_declare_name_weight_and_success_rule():
    assert tuple(REGISTRY) == registry.known_scenarios()
    for cls in SCENARIOS:
        assert cls.name and cls.success_rule and cls.weight >= 0, cls
        assert Settings().weights[cls.name] == cls.weight


def test_a_new_scenario_needs_no_config_change(own_registry, env):
    class Soup:
        name = "soup"
        weight = 0.25

    own_registry.register_scenarios([Soup])
    assert "soup = 0.25" in example_config_toml().split("[weights]")[1]
    s = load_settings(None, {**env, "SOAKTUI_WEIGHTS__SOUP": "2"}, {"scenarios": "soup,streaming"})
    assert s.weights["soup"] == 2.0 and s.enabled_weights == {"soup": 2.0, "streaming": 2.0}
    assert "soup" in key_table()["scenarios"].help


@pytest.mark.parametrize(
    ("name", "weight"), [("", 1.0), ("Bad Name", 1.0), ("ok", -1), ("ok", "1"), ("ok", None)]
)
def test_a_bad_declaration_is_refused(own_registry, name, weight):
    cls = type("Bad", (), {"name": name, "weight": weight} if weight is not None else {"name": name})
    with pytest.raises(ValueError, match="a scenario's"):
        own_registry.register_scenarios([cls])


def test_loading_before_the_scenarios_are_registered_says_so(monkeypatch, env):
    monkeypatch.setattr(registry, "_weights", {})
    with pytest.raises(RuntimeError, match="import soaktui.scenarios"):
        load_settings(None, env, {})
    assert Settings().weights == {}  # a bare Settings() (tests, the report) needs no scenarios
