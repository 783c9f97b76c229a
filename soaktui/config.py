"""Run settings from four layers: defaults < config.toml < SOAKTUI_* environment < command-line flags.

A soak runs unattended for hours, so a typo must stop it at the start, not be ignored: every key
is checked against one table (`KEYS`), unknown keys are rejected with a close-match suggestion,
and each message names where the value came from, the key, the bad value and what is allowed:

    config.toml: quiet_hours.start = '25:00': expected HH:MM (00:00-23:59)

The same table renders the commented example config (`example_config_toml`), so the documented
defaults are the real ones (a test parses the example back).

Durations are stored as float seconds. `duration` takes a bare number as hours (the original
script's habit); timeouts and intervals take a bare number as seconds. Every duration key also
accepts a string with units ("90s", "30m", "1h30m") and, from code, a `datetime.timedelta`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from soaktui import locations
from soaktui.durations import (
    CLOCK_EXPECTED,
    DurationError,
    duration_expected,
    format_clock,
    parse_clock,
    parse_duration,
)
from soaktui.errors import SetupError
from soaktui.thermal import THERMAL_GPU_REASONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KNOWN_SCENARIOS = (
    "simple_inference",
    "streaming",
    "concurrent_load",
    "large_context",
    "provider_failover",
    "prompt_variety",
    "tool_calling",
    "structured_output",
)

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "prompt_variety": 3.0,
    "simple_inference": 3.0,
    "tool_calling": 2.0,
    "streaming": 2.0,
    "concurrent_load": 1.5,
    "large_context": 0.5,
    "provider_failover": 0.5,
    "structured_output": 1.0,
}

ENV_PREFIX = "SOAKTUI_"
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

MAX_TESTS_PER_TURN = 1000
MAX_CONCURRENCY = 64
MAX_TOKENS = 10_000_000


class ConfigError(SetupError):
    """A setting that cannot be used; the message names the source, the key and what is allowed."""


# --------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Rotation:
    min_tests: int = 5
    max_tests: int = 10


@dataclass(frozen=True)
class QuietHours:
    enabled: bool = True
    start: str = "22:00"  # local time, HH:MM; the window may wrap past midnight
    end: str = "06:00"
    throttle: int = 30  # percent duty cycle inside the window

    @property
    def start_hm(self) -> tuple[int, int]:
        return parse_clock(self.start)

    @property
    def end_hm(self) -> tuple[int, int]:
        return parse_clock(self.end)


@dataclass(frozen=True)
class Timeouts:  # seconds
    connect: float = 5.0
    read: float = 120.0
    request: float = 600.0
    discovery: float = 2.0
    grace: float = 10.0


@dataclass(frozen=True)
class Thresholds:
    saturation_error_rate: float = 0.25
    saturation_latency_factor: float = 3.0
    simple_min_tokens: int = 100
    simple_max_tokens: int = 10_000
    large_context_min_tokens: int = 10_000
    large_context_max_tokens: int = 40_000
    stream_max_tokens: int = 512
    structured_max_tokens: int = 1024
    tool_max_tokens: int = 1024
    stall_s: float = 5.0


@dataclass(frozen=True)
class Output:  # seconds
    summary_interval: float = 300.0
    status_interval: float = 60.0
    telemetry_interval: float = 2.0
    fsync_interval: float = 1.0




@dataclass(frozen=True)
class Thermal:
    """Limits of the thermal guard (engine/thermal_guard.py): over one, the duty cycle drops to
    `reduce_to_pct`; far over (limit + pause_margin_c, or pressure trapping/sleeping), testing pauses.
    It steps back once the readings are under limit - hysteresis_c and the state is min_hold_s old."""

    enabled: bool = True
    cpu_temp_limit_c: float = 95.0
    gpu_temp_limit_c: float = 85.0
    pause_margin_c: float = 5.0
    hysteresis_c: float = 5.0
    pressure_limit: str = "heavy"  # one of THERMAL_PRESSURE_LEVELS[1:4], or "off"
    gpu_throttle_reasons: tuple[str, ...] = THERMAL_GPU_REASONS
    reduce_to_pct: int = 50
    min_hold_s: float = 30.0


SECTIONS: Mapping[str, type] = {
    "rotation": Rotation,
    "quiet_hours": QuietHours,
    "timeouts": Timeouts,
    "thresholds": Thresholds,
    "output": Output,
    "thermal": Thermal,
}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs. Durations are float seconds; `duration` None = until stopped."""

    duration: float | None = None
    throttle: int = 100
    seed: int | None = None
    base_urls: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()  # empty = every registered scenario
    max_size_gb: float = 15.0
    include_cloud: bool = False
    concurrency: tuple[int, ...] = (2, 4, 8)
    out: Path | None = None
    prompt_dirs: tuple[Path, ...] = ()
    theme: str = "dark"
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    rotation: Rotation = field(default_factory=Rotation)
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    timeouts: Timeouts = field(default_factory=Timeouts)
    thresholds: Thresholds = field(default_factory=Thresholds)
    output: Output = field(default_factory=Output)
    thermal: Thermal = field(default_factory=Thermal)
    # Not settings: where they came from.
    config_path: Path | None = field(default=None, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def selected_scenarios(self) -> tuple[str, ...]:
        """The scenarios this run may choose from (before the engine drops unregistered ones)."""
        return self.scenarios or KNOWN_SCENARIOS

    @property
    def enabled_weights(self) -> dict[str, float]:
        """{scenario: weight} for the selected scenarios with a weight above zero."""
        return {n: self.weights[n] for n in self.selected_scenarios if self.weights.get(n, 0.0) > 0}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready effective settings for the run_started event; the API key is redacted.

        Keys are the config keys; durations are seconds.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "api_key":
                value = REDACTED if value else None
            elif f.name in SECTIONS:
                value = dataclasses.asdict(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


REDACTED = "<redacted>"

# --------------------------------------------------------------------------- value checks
# A check takes a value of the key's type and returns it normalised, or raises _Invalid with the
# "expected ..." half of the message. A from_text converter turns environment/flag text into that
# type where it can and otherwise returns the text unchanged, so the check reports it.


class _Invalid(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_check(lo: int, hi: int | None, what: str = "an integer") -> Callable[[Any], int]:
    expected = f"expected {what} from {lo} to {hi}" if hi is not None else f"expected {what} >= {lo}"

    def check(v: Any) -> int:
        if not _is_int(v) or v < lo or (hi is not None and v > hi):
            raise _Invalid(expected)
        return v

    return check


def _any_int(v: Any) -> int:
    if not _is_int(v):
        raise _Invalid("expected an integer")
    return v


def _number_check(ok: Callable[[float], bool], expected: str) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if not _is_number(v) or not ok(float(v)):
            raise _Invalid(expected)
        return float(v)

    return check


def _duration_check(default_unit: str) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, dt.timedelta):
            seconds = v.total_seconds()
            if seconds > 0:
                return seconds
            raise _Invalid(duration_expected(default_unit))
        try:
            return parse_duration(v, default_unit=default_unit)
        except DurationError as exc:
            raise _Invalid(duration_expected(default_unit)) from exc

    return check


def _bool_check(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid("expected true or false")
    return v


def _clock_check(v: Any) -> str:
    if isinstance(v, dt.time) and not (v.second or v.microsecond):  # unquoted TOML: start = 22:00:00
        return format_clock((v.hour, v.minute))
    try:
        return format_clock(parse_clock(v))
    except (ValueError, AttributeError) as exc:
        raise _Invalid(CLOCK_EXPECTED) from exc


def _text_check(pattern: str, expected: str) -> Callable[[Any], str]:
    rx = re.compile(pattern)

    def check(v: Any) -> str:
        if not isinstance(v, str) or not rx.fullmatch(v.strip()):
            raise _Invalid(expected)
        return v.strip()

    return check


def _choice_check(choices: tuple[str, ...]) -> Callable[[Any], str]:
    expected = "expected one of " + ", ".join(choices)

    def check(v: Any) -> str:
        if not isinstance(v, str) or v.strip().lower() not in choices:
            raise _Invalid(expected)
        return v.strip().lower()

    return check


def _api_key_check(v: Any) -> str:
    if not isinstance(v, str) or not v.strip() or any(c.isspace() or ord(c) < 32 for c in v.strip()):
        raise _Invalid("expected a non-empty string without spaces or control characters")
    return v.strip()


def _path_check(v: Any) -> Path:
    if not isinstance(v, (str, os.PathLike)) or not os.fspath(v).strip():
        raise _Invalid("expected a directory path")
    return Path(os.fspath(v).strip()).expanduser()


def _url_item(v: Any) -> str:
    expected = "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:1234/v1"
    if not isinstance(v, str):
        raise _Invalid(expected)
    text = v.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise _Invalid(expected) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise _Invalid(expected)
    return text


def _pattern_item(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Invalid("expected a non-empty pattern such as 'qwen*'")
    return v.strip()


def _scenario_item(v: Any) -> str:
    name = v.strip() if isinstance(v, str) else v
    if name not in KNOWN_SCENARIOS:
        close = difflib.get_close_matches(str(name), KNOWN_SCENARIOS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _Invalid(f"unknown scenario{hint}; known: {', '.join(KNOWN_SCENARIOS)}")
    return name


def _list_check(
    item: Callable[[Any], Any], what: str, *, allow_empty: bool = True, empty_hint: str = ""
) -> Callable[[Any], tuple[Any, ...]]:
    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)):
            raise _Invalid(f"expected a list of {what}")
        if not v and not allow_empty:
            raise _Invalid(f"expected at least one of {what}{empty_hint}")
        out: list[Any] = []
        for x in v:
            try:
                value = item(x)
            except _Invalid as exc:
                raise _Invalid(f"{x!r}: {exc.expected}") from None
            if value not in out:
                out.append(value)
        return tuple(out)

    return check


def _concurrency_check(v: Any) -> tuple[int, ...]:
    expected = f"expected a non-empty ascending list of distinct integers from 1 to {MAX_CONCURRENCY}, e.g. [2, 4, 8]"
    if not isinstance(v, (list, tuple)) or not v:
        raise _Invalid(expected)
    if not all(_is_int(x) and 1 <= x <= MAX_CONCURRENCY for x in v):
        raise _Invalid(expected)
    if any(a >= b for a, b in zip(v, v[1:], strict=False)):
        raise _Invalid(expected)
    return tuple(v)


# Text (environment / flag) converters.


def _text_int(s: str) -> Any:
    try:
        return int(s.strip())
    except ValueError:
        return s


def _text_float(s: str) -> Any:
    try:
        return float(s.strip())
    except ValueError:
        return s


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _text_bool(s: str) -> Any:
    low = s.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else s


def _text_list(item: Callable[[str], Any] = str) -> Callable[[str], Any]:
    return lambda s: [item(x.strip()) for x in s.split(",") if x.strip()]


def _same(s: str) -> Any:
    return s


# --------------------------------------------------------------------------- the key table


@dataclass(frozen=True)
class Key:
    key: str  # dotted: "throttle", "quiet_hours.start"
    check: Callable[[Any], Any]
    from_text: Callable[[str], Any]
    help: str
    example: str  # a TOML literal: the default, or (optional keys) a sample shown commented out
    optional: bool = False
    secret: bool = False

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "__")


_SECONDS_HELP = 'seconds, or a duration such as "30s", "2m"'

_KEY_LIST: list[Key] = [
    Key(
        "duration",
        _duration_check("h"),
        _same,
        "How long to run. A bare number is hours (4, 2.5, 0.5); 90s, 30m, 4h, 1h30m also work. "
        "Leave it out to run until stopped.",
        '"8h"',
        optional=True,
    ),
    Key(
        "throttle",
        _int_check(1, 100, "a whole-number percentage"),
        _text_int,
        "Duty cycle in percent: at 60 the engine idles so that testing takes 60% of wall time.",
        "100",
    ),
    Key(
        "seed",
        _any_int,
        _text_int,
        "Makes the sequence of models, scenarios and prompts reproducible; random when left out.",
        "42",
        optional=True,
    ),
    Key(
        "base_urls",
        _list_check(_url_item, "http(s) URLs"),
        _text_list(),
        "OpenAI-compatible endpoints to test. Leave it out to probe the default ports "
        "(LM Studio 1234, Ollama 11434, llama.cpp 8080 and 9931, vLLM 8000).",
        '["http://192.168.1.20:11434"]',
        optional=True,
    ),
    Key(
        "api_key",
        _api_key_check,
        _same,
        "Sent as a Bearer token; falls back to OPENAI_API_KEY. Prefer SOAKTUI_API_KEY to keeping it here.",
        '"sk-..."',
        optional=True,
        secret=True,
    ),
    Key(
        "models",
        _list_check(_pattern_item, "model patterns"),
        _text_list(),
        "Test only models whose id matches one of these shell-style patterns.",
        '["qwen*", "llama-3*"]',
        optional=True,
    ),
    Key(
        "exclude",
        _list_check(_pattern_item, "model patterns"),
        _text_list(),
        "Never test models matching these patterns.",
        '["*embed*"]',
        optional=True,
    ),
    Key(
        "scenarios",
        _list_check(
            _scenario_item,
            "scenario names",
            allow_empty=False,
            empty_hint=" (leave the key out to run them all)",
        ),
        _text_list(),
        "Run only these scenarios (default: all). Known: " + ", ".join(KNOWN_SCENARIOS) + ".",
        '["streaming", "tool_calling"]',
        optional=True,
    ),
    Key(
        "max_size_gb",
        _number_check(lambda x: x > 0, "expected a number of gigabytes greater than 0"),
        _text_float,
        "Skip models larger than this (GB on disk, or estimated from parameters x quantization).",
        "15",
    ),
    Key(
        "include_cloud",
        _bool_check,
        _text_bool,
        "Also test cloud models a local server lists (Ollama *-cloud: they run remotely, not on this machine).",
        "false",
    ),
    Key(
        "concurrency",
        _concurrency_check,
        _text_list(_text_int),
        "The ladder of parallel streams for concurrent_load; climbing stops when the server saturates.",
        "[2, 4, 8]",
    ),
    Key(
        "prompt_dirs",
        _list_check(_path_check, "directory paths"),
        _text_list(),
        "Your own prompts, added to the shipped bank: *.jsonl for prompt_variety, tools/*.jsonl for "
        "tool_calling, structured/*.jsonl for structured_output (formats in prompts/README.md).",
        '["~/soak-prompts"]',
        optional=True,
    ),
    Key(
        "out",
        _path_check,
        _same,
        "Run directory. Default: a new soak_YYYYMMDD_HHMMSS directory under the data dir's runs/.",
        '"~/soak-runs/tonight"',
        optional=True,
    ),
    Key(
        "theme",
        _text_check(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "expected a theme name (letters, digits, _ . -)"),
        _same,
        "Dashboard theme.",
        '"dark"',
    ),
]

_KEY_LIST += [
    Key(
        f"weights.{name}",
        _number_check(lambda x: x >= 0, "expected a number >= 0"),
        _text_float,
        "",
        repr(weight),
    )
    for name, weight in sorted(DEFAULT_WEIGHTS.items(), key=lambda kv: KNOWN_SCENARIOS.index(kv[0]))
]

_TESTS = _int_check(1, MAX_TESTS_PER_TURN, "an integer")
_TOKENS = _int_check(1, MAX_TOKENS, "a token count")
_SECONDS = _duration_check("s")
_KEY_LIST += [
    Key("rotation.min_tests", _TESTS, _text_int, "Fewest tests on a model before moving on.", "5"),
    Key("rotation.max_tests", _TESTS, _text_int, "Most tests on a model before moving on.", "10"),
    Key("quiet_hours.enabled", _bool_check, _text_bool, "", "true"),
    Key("quiet_hours.start", _clock_check, _same, "Local time, HH:MM.", '"22:00"'),
    Key("quiet_hours.end", _clock_check, _same, "Local time, HH:MM; may be past midnight.", '"06:00"'),
    Key(
        "quiet_hours.throttle",
        _int_check(1, 100, "a whole-number percentage"),
        _text_int,
        "Duty cycle inside the window (the lower of this and `throttle` applies).",
        "30",
    ),
    Key("timeouts.connect", _SECONDS, _same, "TCP connect.", "5"),
    Key("timeouts.read", _SECONDS, _same, "Longest silence while a response streams.", "120"),
    Key("timeouts.request", _SECONDS, _same, "Whole request.", "600"),
    Key("timeouts.discovery", _SECONDS, _same, "Each probe while looking for servers.", "2"),
    Key("timeouts.grace", _SECONDS, _same, "In-flight requests get this long after a stop.", "10"),
    Key(
        "thresholds.saturation_error_rate",
        _number_check(lambda x: 0 <= x <= 1, "expected a fraction from 0 to 1"),
        _text_float,
        "concurrent_load stops climbing when this fraction of a rung's requests fail...",
        "0.25",
    ),
    Key(
        "thresholds.saturation_latency_factor",
        _number_check(lambda x: x > 1, "expected a number greater than 1"),
        _text_float,
        "...or when latency grows by this factor over the single-stream figure.",
        "3.0",
    ),
    Key("thresholds.simple_min_tokens", _TOKENS, _text_int, "simple_inference output sizes span...", "100"),
    Key("thresholds.simple_max_tokens", _TOKENS, _text_int, "...this range.", "10000"),
    Key("thresholds.large_context_min_tokens", _TOKENS, _text_int, "large_context prompt sizes...", "10000"),
    Key(
        "thresholds.large_context_max_tokens",
        _TOKENS,
        _text_int,
        "...capped to the model's context length.",
        "40000",
    ),
    Key("thresholds.stream_max_tokens", _TOKENS, _text_int, "max_tokens of a streaming test.", "512"),
    Key("thresholds.structured_max_tokens", _TOKENS, _text_int, "max_tokens of a structured test.", "1024"),
    Key(
        "thresholds.tool_max_tokens",
        _TOKENS,
        _text_int,
        "max_tokens of each tool-calling request (reasoning models need room to think first).",
        "1024",
    ),
    Key(
        "thresholds.stall_s",
        _SECONDS,
        _same,
        "A stream silent this long between two tokens has stalled: its test fails (error class stalled).",
        '"5s"',
    ),
    Key("output.summary_interval", _SECONDS, _same, "How often test_summary.json is rewritten.", '"5m"'),
    Key("output.status_interval", _SECONDS, _same, "How often a status event is written.", '"60s"'),
    Key(
        "output.telemetry_interval",
        _SECONDS,
        _same,
        "How often a telemetry event (machine, sensors, server metrics) is written.",
        '"2s"',
    ),
    Key("output.fsync_interval", _SECONDS, _same, "Longest time events.jsonl goes without fsync.", '"1s"'),
]

_CELSIUS = _number_check(lambda x: 30 <= x <= 150, "expected degrees Celsius from 30 to 150")
_KEY_LIST += [
    Key("thermal.enabled", _bool_check, _text_bool, "", "true"),
    Key(
        "thermal.cpu_temp_limit_c",
        _CELSIUS,
        _text_float,
        "Hottest CPU sensor (°C). Intel parts throttle at 100, Ryzen 7000 runs at 95 by design, Apple "
        "silicon dies read 90-105 under load: raise it there and let thermal pressure decide.",
        "95.0",
    ),
    Key(
        "thermal.gpu_temp_limit_c",
        _CELSIUS,
        _text_float,
        "Hottest GPU (°C); NVIDIA's target is 83-87.",
        "85.0",
    ),
    Key(
        "thermal.pause_margin_c",
        _number_check(lambda x: 0 < x <= 50, "expected degrees from above 0 to 50"),
        _text_float,
        "Testing pauses at limit + this margin (°C).",
        "5.0",
    ),
    Key(
        "thermal.hysteresis_c",
        _number_check(lambda x: 0 <= x <= 30, "expected degrees from 0 to 30"),
        _text_float,
        "The pace returns once every reading is this far under its limit (°C).",
        "5.0",
    ),
    Key(
        "thermal.pressure_limit",
        _choice_check(("moderate", "heavy", "trapping", "off")),
        _same,
        "macOS thermal pressure that lowers the pace (trapping and sleeping always pause); off ignores it.",
        '"heavy"',
    ),
    Key(
        "thermal.gpu_throttle_reasons",
        _list_check(
            _text_check(r"[a-z0-9_]+", "expected a reason name such as sw_thermal_slowdown"), "reasons"
        ),
        _text_list(),
        "GPU clock-throttle reasons (NVML, decoded) that count as too hot; [] ignores them.",
        "[" + ", ".join(f'"{r}"' for r in THERMAL_GPU_REASONS) + "]",
    ),
    Key(
        "thermal.reduce_to_pct",
        _int_check(1, 100, "a whole-number percentage"),
        _text_int,
        "Duty cycle while over a limit (the lower of this and the throttle applies).",
        "50",
    ),
    Key(
        "thermal.min_hold_s",
        _SECONDS,
        _same,
        "Least time in a state before stepping back (no flapping).",
        '"30s"',
    ),
]

KEYS: Mapping[str, Key] = {k.key: k for k in _KEY_LIST}
ENV_KEYS: Mapping[str, str] = {k.env_var: k.key for k in _KEY_LIST}
SECTION_NAMES = (*SECTIONS, "weights")

_SECTION_HELP = {
    "weights": "Relative weight of each scenario in the random choice of the next test; 0 disables it.",
    "rotation": "Stay on a model for a random number of tests in [min_tests, max_tests], then move on.",
    "quiet_hours": "A lower duty cycle during a local-time window.",
    "timeouts": f"Timeouts, in {_SECONDS_HELP}.",
    "thresholds": "When concurrency counts as saturated, and the sizes scenarios ask for.",
    "output": f"Intervals of the files derived from the event log, in {_SECONDS_HELP}.",
    "thermal": "The thermal guard: over a limit the engine lowers its duty cycle, far over it pauses; "
    "readings the machine cannot give never trigger it.",
}


# --------------------------------------------------------------------------- loading


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The effective settings: defaults < TOML file < SOAKTUI_* env < `overrides` (CLI flags).

    `config_path` None means $SOAKTUI_CONFIG if set (it must exist), else the platform config file
    if it exists. `overrides` uses dotted keys ("quiet_hours.start"); None values are skipped (an
    unset flag), text is parsed like an environment value, anything else is checked as is. Empty
    SOAKTUI_* variables count as unset. Raises ConfigError.
    """
    env = os.environ if env is None else env
    layers = _Layers()
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
    return _build(layers.values, path, layers.sources)


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

    def __init__(self) -> None:
        defaults = Settings()
        self.values: dict[str, Any] = {}
        for key in KEYS:
            section, _, name = key.rpartition(".")
            if section == "weights":
                self.values[key] = defaults.weights[name]
            elif section:
                self.values[key] = getattr(getattr(defaults, section), name)
            else:
                self.values[key] = getattr(defaults, key)
        self.sources: dict[str, str] = dict.fromkeys(KEYS, DEFAULT_SOURCE)

    def set(self, key: str, value: Any, source: str, shown_as: str) -> None:
        """Check and store one value; `source` starts error messages, `shown_as` names the key there.

        The recorded origin is the variable's name for environment values, else `source`.
        """
        spec = KEYS[key]
        try:
            self.values[key] = spec.check(value)
        except _Invalid as exc:
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
    top_keys = [k for k in KEYS if "." not in k]
    for name, value in data.items():
        if name in SECTION_NAMES:
            if not isinstance(value, dict):
                raise ConfigError(f"{label}: {name} = {value!r}: expected a table ([{name}])")
            section_keys = [k.partition(".")[2] for k in KEYS if k.startswith(name + ".")]
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
                f"{label}: unknown key{_did_you_mean(name, [*top_keys, *SECTION_NAMES, *KEYS])}"
                f"; top-level keys: {', '.join(top_keys)}; tables: {', '.join(SECTION_NAMES)}"
            )


def _apply_env(layers: _Layers, env: Mapping[str, str]) -> None:
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in NON_CONFIG_ENV or var.startswith(NON_CONFIG_ENV_PREFIX):
            continue
        key = ENV_KEYS.get(var)
        if key is None:
            raise ConfigError(
                f"{ENV_SOURCE}: unknown variable{_did_you_mean(var, [*ENV_KEYS, *NON_CONFIG_ENV])}"
                " (settings use SOAKTUI_<KEY> and SOAKTUI_<TABLE>__<KEY>, e.g. SOAKTUI_QUIET_HOURS__START)"
            )
        text = env[var]
        if text.strip() == "":
            continue
        layers.set(key, KEYS[key].from_text(text), ENV_SOURCE, var)


def _apply_overrides(layers: _Layers, overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in KEYS:
            raise ConfigError(f"{CLI_SOURCE}: unknown setting{_did_you_mean(key, KEYS)}")
        if isinstance(value, str):
            value = KEYS[key].from_text(value)
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
    selected = v["scenarios"] or KNOWN_SCENARIOS
    if not any(v[f"weights.{name}"] > 0 for name in selected):
        raise ConfigError(
            f"every selected scenario has weight 0 ({', '.join(f'weights.{n}' for n in selected)}): "
            "at least one must be greater than 0"
        )


def _build(values: Mapping[str, Any], path: Path | None, sources: Mapping[str, str]) -> Settings:
    top: dict[str, Any] = {k: values[k] for k in KEYS if "." not in k}
    weights = {k.partition(".")[2]: values[k] for k in KEYS if k.startswith("weights.")}
    sections = {
        name: cls(**{k.partition(".")[2]: values[k] for k in KEYS if k.startswith(name + ".")})
        for name, cls in SECTIONS.items()
    }
    return Settings(**top, weights=weights, **sections, config_path=path, sources=dict(sources))


# --------------------------------------------------------------------------- the example file


def example_config_toml() -> str:
    """A commented config.toml holding the defaults (optional keys commented out with a sample)."""
    lines = [
        "# soaktui configuration.",
        "# Precedence: defaults < this file < SOAKTUI_* environment variables < command-line flags.",
        "# Environment: SOAKTUI_<KEY> (SOAKTUI_THROTTLE=60, lists comma-separated) and",
        "# SOAKTUI_<TABLE>__<KEY> (SOAKTUI_QUIET_HOURS__START=23:00).",
    ]
    section = ""
    for spec in _KEY_LIST:
        sec, _, name = spec.key.rpartition(".")
        if sec != section:
            section = sec
            lines += ["", f"# {_SECTION_HELP[sec]}", f"[{sec}]"]
        if spec.help:
            if not sec:
                lines.append("")
            lines.append(f"# {spec.help}")
        lines.append(f"{'# ' if spec.optional else ''}{name} = {spec.example}")
    return "\n".join(lines) + "\n"
