"""The key table, the SOAKTUI_* variable names and the example config file, all derived from the
declarations in settings.py (a setting is declared once, there).

Keys are dotted ("throttle", "quiet_hours.start"), in declaration order: the top-level settings,
then each table. The [weights] keys are the registered scenarios (registry.py), so the table is
built when first asked for, once the scenarios are known.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soaktui.config.checks import Check
from soaktui.config.registry import default_weights
from soaktui.config.settings import Settings

ENV_PREFIX = "SOAKTUI_"


@dataclass(frozen=True)
class Key:
    key: str  # dotted: "throttle", "quiet_hours.start"
    check: Check
    help: str
    example: str  # a TOML literal: the default, or (optional keys) a sample shown commented out
    default: Any  # the checked default (None or () for an optional key)
    optional: bool = False
    secret: bool = False

    @property
    def from_text(self) -> Any:
        """Reads environment/flag text as the key's type (checks.Check.from_text)."""
        return self.check.from_text

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "__")


def toml_literal(value: Any) -> str:
    """`value` as written in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


_FIELDS = dataclasses.fields(Settings)
# Tables of settings ([rotation], ...): name -> dataclass; tables with one key per scenario ([weights]).
SECTIONS: Mapping[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in _FIELDS
    if "section" in f.metadata and "entries" not in f.metadata
}
ENTRY_TABLES: tuple[str, ...] = tuple(f.name for f in _FIELDS if "entries" in f.metadata)
TABLES: tuple[str, ...] = (*SECTIONS, *ENTRY_TABLES)
SECTION_HELP: Mapping[str, str] = {f.name: f.metadata["section"] for f in _FIELDS if "section" in f.metadata}


def _key(key: str, f: dataclasses.Field) -> Key:
    m = f.metadata
    text = m["help"]() if callable(m["help"]) else m["help"]
    return Key(key, m["check"], text, toml_literal(m["shown"]), f.default, m["optional"], m["secret"])


@functools.lru_cache(maxsize=4)
def _table(weights: tuple[tuple[str, float], ...]) -> Mapping[str, Key]:
    keys: list[Key] = []
    for f in _FIELDS:
        if "check" in f.metadata:
            keys.append(_key(f.name, f))
        elif "entries" in f.metadata:
            check = f.metadata["entries"]
            keys += [Key(f"{f.name}.{n}", check, "", toml_literal(w), check(w)) for n, w in weights]
        elif "section" in f.metadata:
            keys += [_key(f"{f.name}.{g.name}", g) for g in dataclasses.fields(SECTIONS[f.name])]
    return {k.key: k for k in keys}


def key_table() -> Mapping[str, Key]:
    """{dotted key: Key} for every setting, in declaration order (needs the scenarios registered)."""
    return _table(tuple(default_weights().items()))


def env_keys() -> Mapping[str, str]:
    """{SOAKTUI_* variable: dotted key}."""
    return {k.env_var: k.key for k in key_table().values()}


def example_config_toml() -> str:
    """A commented config.toml holding the defaults (optional keys commented out with a sample)."""
    lines = [
        "# soaktui configuration.",
        "# Precedence: defaults < this file < SOAKTUI_* environment variables < command-line flags.",
        "# Environment: SOAKTUI_<KEY> (SOAKTUI_THROTTLE=60, lists comma-separated) and",
        "# SOAKTUI_<TABLE>__<KEY> (SOAKTUI_QUIET_HOURS__START=23:00).",
    ]
    section = ""
    for spec in key_table().values():
        sec, _, name = spec.key.rpartition(".")
        if sec != section:
            section = sec
            lines += ["", f"# {SECTION_HELP[sec]}", f"[{sec}]"]
        if spec.help:
            if not sec:
                lines.append("")
            lines.append(f"# {spec.help}")
        lines.append(f"{'# ' if spec.optional else ''}{name} = {spec.example}")
    return "\n".join(lines) + "\n"
