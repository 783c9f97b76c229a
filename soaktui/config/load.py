"""Loading: defaults < config.toml < SOAKTUI_* environment < command-line flags, every value checked.

Every message names where the value came from, the key, the bad value and what is allowed:

    config.toml: quiet_hours.start = '25:00': expected HH:MM (00:00-23:59)
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from soaktui import locations
from soaktui.config.checks import Invalid
from soaktui.config.keys import ENTRY_TABLES, ENV_PREFIX, SECTIONS, TABLES, Key, env_keys, key_table
from soaktui.config.registry import known_scenarios
from soaktui.config.settings import REDACTED, Settings
from soaktui.errors import SetupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_PATH_ENV = "SOAKTUI_CONFIG"
API_KEY_FALLBACK_ENV = "OPENAI_API_KEY"
# SOAKTUI_* variables that are not settings (and so are not "unknown").
NON_CONFIG_ENV = frozenset(
    {CONFIG_PATH_ENV, locations.CONFIG_DIR_ENV, locations.DATA_DIR_ENV, "SOAKTUI_LOG_LEVEL"}
)
NON_CONFIG_ENV_PREFIX = "SOAKTUI_TEST_"

ENV_SOURCE = "environment"
CLI_SOURCE = "command line"
DEFAULT_SOURCE = "default"


class ConfigError(SetupError):
    """A setting that cannot be used; the message names the source, the key and what is allowed."""


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The effective settings: defaults < TOML file < SOAKTUI_* env < `overrides` (CLI flags).

    `config_path` None means $SOAKTUI_CONFIG if set (it must exist), else the platform config file
    if it exists. `overrides` uses dotted keys ("quiet_hours.start"); None values are skipped (an
    unset flag), text is parsed like an environment value, anything else is checked as is. Empty
    SOAKTUI_* variables count as unset. Raises ConfigError. The scenarios must be registered
    (import soaktui.scenarios first).
    """
    env = os.environ if env is None else env
    layers = _Layers(key_table())
    fallback_key = env.get(API_KEY_FALLBACK_ENV, "")
    if fallback_key:
        layers.set("api_key", fallback_key, API_KEY_FALLBACK_ENV, API_KEY_FALLBACK_ENV)

    path, explicit = _config_location(config_path, env)
    data = _read_toml(path, explicit) if path is not None else None
    if data is not None:
        _apply_toml(layers, data, str(path))
    else:
        path = None
    _apply_env(layers, env)
    _apply_overrides(layers, overrides or {})
    _cross_check(layers)
    return _build(layers, path)


def _config_location(config_path: Path | None, env: Mapping[str, str]) -> tuple[Path, bool]:
    if config_path is not None:
        return Path(config_path).expanduser(), True
    from_env = env.get(CONFIG_PATH_ENV, "")
    if from_env:
        return Path(from_env).expanduser(), True
    return locations.config_file(env), False


def _read_toml(path: Path, explicit: bool) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


class _Layers:
    """The flat {dotted key: value} being built, and where each value came from."""

    def __init__(self, keys: Mapping[str, Key]) -> None:
        self.keys = keys
        self.values: dict[str, Any] = {k: spec.default for k, spec in keys.items()}
        self.sources: dict[str, str] = dict.fromkeys(keys, DEFAULT_SOURCE)

    def set(self, key: str, value: Any, source: str, shown_as: str) -> None:
        """Check and store one value; `source` starts error messages, `shown_as` names the key there.

        The recorded origin is the variable's name for environment values, else `source`.
        """
        spec = self.keys[key]
        try:
            self.values[key] = spec.check(value)
        except Invalid as exc:
            shown = REDACTED if spec.secret else repr(value)
            raise ConfigError(f"{source}: {shown_as} = {shown}: {exc.expected}") from None
        self.sources[key] = shown_as if source == ENV_SOURCE else source


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """ " 'name' (did you mean 'x'?)": a close candidate, or one whose last dotted part is close."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        leaves = {c.rpartition(".")[2]: c for c in reversed(candidates) if "." in c}
        close = [leaves[m] for m in difflib.get_close_matches(name, list(leaves), n=1, cutoff=0.8)]
    return f" {name!r} (did you mean {close[0]!r}?)" if close else f" {name!r}"


def _apply_toml(layers: _Layers, data: Mapping[str, Any], label: str) -> None:
    keys = layers.keys
    top_keys = [k for k in keys if "." not in k]
    for name, value in data.items():
        if name in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{label}: {name} = {value!r}: expected a table ([{name}])")
            section_keys = [k.partition(".")[2] for k in keys if k.startswith(name + ".")]
            for sub, sub_value in value.items():
                if sub not in section_keys:
                    raise ConfigError(
                        f"{label}: unknown key{_did_you_mean(f'{name}.{sub}', [f'{name}.{k}' for k in section_keys])}"
                        f"; keys in [{name}]: {', '.join(section_keys)}"
                    )
                layers.set(f"{name}.{sub}", sub_value, label, f"{name}.{sub}")
        elif name in top_keys:
            layers.set(name, value, label, name)
        else:
            raise ConfigError(
                f"{label}: unknown key{_did_you_mean(name, [*top_keys, *TABLES, *keys])}"
                f"; top-level keys: {', '.join(top_keys)}; tables: {', '.join(TABLES)}"
            )


def _apply_env(layers: _Layers, env: Mapping[str, str]) -> None:
    by_var = env_keys()
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in NON_CONFIG_ENV or var.startswith(NON_CONFIG_ENV_PREFIX):
            continue
        key = by_var.get(var)
        if key is None:
            raise ConfigError(
                f"{ENV_SOURCE}: unknown variable{_did_you_mean(var, [*by_var, *NON_CONFIG_ENV])}"
                " (settings use SOAKTUI_<KEY> and SOAKTUI_<TABLE>__<KEY>, e.g. SOAKTUI_QUIET_HOURS__START)"
            )
        text = env[var]
        if text.strip() == "":
            continue
        layers.set(key, layers.keys[key].from_text(text), ENV_SOURCE, var)


def _apply_overrides(layers: _Layers, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in layers.keys:
            raise ConfigError(f"{CLI_SOURCE}: unknown setting{_did_you_mean(key, layers.keys)}")
        if isinstance(value, str):
            value = layers.keys[key].from_text(value)
        layers.set(key, value, CLI_SOURCE, key)


def _cross_check(layers: _Layers) -> None:
    v, src = layers.values, layers.sources

    def show(key: str) -> str:
        return f"{key} = {v[key]!r} (from {src[key]})"

    for low, high in (
        ("rotation.min_tests", "rotation.max_tests"),
        ("thresholds.simple_min_tokens", "thresholds.simple_max_tokens"),
        ("thresholds.large_context_min_tokens", "thresholds.large_context_max_tokens"),
    ):
        if v[low] > v[high]:
            raise ConfigError(
                f"{show(low)} is greater than {show(high)}: the minimum must not exceed the maximum"
            )
    if v["quiet_hours.enabled"] and v["quiet_hours.start"] == v["quiet_hours.end"]:
        raise ConfigError(
            f"{show('quiet_hours.start')} equals quiet_hours.end: the window would be empty "
            "(set quiet_hours.enabled = false to turn quiet hours off)"
        )
    selected = v["scenarios"] or known_scenarios()
    if not any(v[f"weights.{name}"] > 0 for name in selected):
        raise ConfigError(
            f"every selected scenario has weight 0 ({', '.join(f'weights.{n}' for n in selected)}): "
            "at least one must be greater than 0"
        )


def _build(layers: _Layers, path: Path | None) -> Settings:
    values = layers.values
    top = {k: v for k, v in values.items() if "." not in k}
    tables: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
    for k, v in values.items():
        table, _, name = k.partition(".")
        if name:
            tables[table][name] = v
    sections = {name: cls(**tables[name]) for name, cls in SECTIONS.items()}
    entries = {name: tables[name] for name in ENTRY_TABLES}
    return Settings(**top, **entries, **sections, config_path=path, sources=dict(layers.sources))
