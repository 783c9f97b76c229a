"""Run settings from four layers: defaults < config.toml < SOAKTUI_* environment < command-line flags.

A soak runs unattended for hours, so a typo must stop it at the start, not be ignored: every key
is checked, unknown keys are rejected with a close-match suggestion, and each message names where
the value came from, the key, the bad value and what is allowed:

    config.toml: quiet_hours.start = '25:00': expected HH:MM (00:00-23:59)

Each setting is declared once, as a dataclass field in settings.py carrying its default (written
as in config.toml), its check (checks.py), its help and, for an optional key, a sample:

    read: float = setting(120, c.SECONDS, "Longest silence while a response streams.")

keys.py walks those fields to derive everything else: the key table (`key_table()`), the
SOAKTUI_<KEY> / SOAKTUI_<TABLE>__<KEY> variable names, and the commented example config
(`example_config_toml`), so the documented defaults are the real ones (a test parses the example
back). load.py layers file, environment and flags over the defaults and checks each value.

Scenarios declare their own name and default weight, on their class (soaktui/scenarios/). The
settings stand a floor below the scenarios and cannot import them; instead soaktui.scenarios
registers its classes into registry.py when it is imported, and the settings read that registry
when they check a scenario name, build the [weights] keys or default the weights. So adding a
scenario touches only the scenarios, and loading settings needs soaktui.scenarios imported first
(the engine and the CLI do; an empty registry is an error that says so, not an empty run).

Durations are stored as float seconds. `duration` takes a bare number as hours (the original
script's habit); timeouts and intervals take a bare number as seconds. Every duration key also
accepts a string with units ("90s", "30m", "1h30m") and, from code, a `datetime.timedelta`.
"""

from __future__ import annotations

from soaktui.config.checks import MAX_CONCURRENCY, MAX_TESTS_PER_TURN, MAX_TOKENS
from soaktui.config.keys import ENV_PREFIX, SECTIONS, Key, env_keys, example_config_toml, key_table
from soaktui.config.load import (
    API_KEY_FALLBACK_ENV,
    CLI_SOURCE,
    CONFIG_PATH_ENV,
    DEFAULT_SOURCE,
    ENV_SOURCE,
    NON_CONFIG_ENV,
    NON_CONFIG_ENV_PREFIX,
    ConfigError,
    load_settings,
)
from soaktui.config.registry import default_weights, known_scenarios, register_scenarios
from soaktui.config.settings import (
    REDACTED,
    Output,
    QuietHours,
    Rotation,
    Settings,
    Thermal,
    Thresholds,
    Timeouts,
)

__all__ = [
    "API_KEY_FALLBACK_ENV",
    "CLI_SOURCE",
    "CONFIG_PATH_ENV",
    "DEFAULT_SOURCE",
    "ENV_PREFIX",
    "ENV_SOURCE",
    "MAX_CONCURRENCY",
    "MAX_TESTS_PER_TURN",
    "MAX_TOKENS",
    "NON_CONFIG_ENV",
    "NON_CONFIG_ENV_PREFIX",
    "REDACTED",
    "SECTIONS",
    "ConfigError",
    "Key",
    "Output",
    "QuietHours",
    "Rotation",
    "Settings",
    "Thermal",
    "Thresholds",
    "Timeouts",
    "default_weights",
    "env_keys",
    "example_config_toml",
    "key_table",
    "known_scenarios",
    "load_settings",
    "register_scenarios",
]
