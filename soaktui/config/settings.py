"""The settings, each declared once: a dataclass field carrying its default, check, help and sample.

`setting(default, check, help)` declares one key. The default is written as it would be in
config.toml ("5m", 120, "22:00") and goes through the key's own check, so the dataclass default is
the checked value (300.0 seconds) and the example file shows what was written. An optional key
(left out of the file unless wanted) gives an `example` instead: its default (None or ()) is
"unset", and the example file shows the sample commented out. `section(cls, help)` nests a table
of settings; `scenario_weights(help, check)` is the [weights] table, one key per registered
scenario (registry.py). keys.py walks these fields to derive the key table, the SOAKTUI_*
variables and the example file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soaktui.config import checks as c
from soaktui.config.registry import known_scenarios, registered_weights
from soaktui.durations import parse_clock
from soaktui.log.textsafe import REDACTED
from soaktui.thermal import THERMAL_GPU_REASONS


def setting(
    default: Any,
    check: c.Check,
    help: str | Callable[[], str] = "",
    *,
    example: Any = None,
    secret: bool = False,
) -> Any:
    """One key: its default (as written in config.toml), its check, its help (a callable when it
    names the registered scenarios), and for an optional key (default None or ()) a sample for the
    example file. A secret is never shown, nor in the dataclass's repr."""
    optional = example is not None
    value = default if optional else check(default)
    meta = {
        "check": check,
        "help": help,
        "shown": example if optional else default,
        "optional": optional,
        "secret": secret,
    }
    return field(default=value, repr=not secret, metadata=meta)


def section(cls: type, help: str) -> Any:
    """A table of settings ([rotation], ...): the fields of `cls`, declared with `setting`."""
    return field(default_factory=cls, metadata={"section": help})


def scenario_weights(help: str, check: c.Check) -> Any:
    """The [weights] table: one key per registered scenario, its default the scenario's own weight."""
    return field(default_factory=registered_weights, metadata={"section": help, "entries": check})


# --------------------------------------------------------------------------- the tables


@dataclass(frozen=True)
class Rotation:
    min_tests: int = setting(5, c.TESTS, "Fewest tests on a model before moving on.")
    max_tests: int = setting(10, c.TESTS, "Most tests on a model before moving on.")


@dataclass(frozen=True)
class QuietHours:
    enabled: bool = setting(True, c.BOOL)
    start: str = setting("22:00", c.CLOCK, "Local time, HH:MM.")
    end: str = setting("06:00", c.CLOCK, "Local time, HH:MM; may be past midnight.")
    throttle: int = setting(  # percent duty cycle inside the window
        30, c.PERCENT, "Duty cycle inside the window (the lower of this and `throttle` applies)."
    )

    @property
    def start_hm(self) -> tuple[int, int]:
        return parse_clock(self.start)

    @property
    def end_hm(self) -> tuple[int, int]:
        return parse_clock(self.end)


@dataclass(frozen=True)
class Timeouts:  # seconds
    connect: float = setting(5, c.SECONDS, "TCP connect.")
    read: float = setting(
        120,
        c.SECONDS,
        "Longest silence while a response streams (a whole, non-streamed answer gets longer: its "
        "size at the model's measured speed, up to the request limit).",
    )
    request: float = setting(600, c.SECONDS, "Whole request.")
    discovery: float = setting(2, c.SECONDS, "Each probe while looking for servers.")
    grace: float = setting(10, c.SECONDS, "In-flight requests get this long after a stop.")


@dataclass(frozen=True)
class Thresholds:
    saturation_error_rate: float = setting(
        0.25,
        c.number(lambda x: 0 <= x <= 1, "expected a fraction from 0 to 1"),
        "concurrent_load stops climbing when this fraction of a rung's requests fail...",
    )
    saturation_latency_factor: float = setting(
        3.0,
        c.number(lambda x: x > 1, "expected a number greater than 1"),
        "...or when latency grows by this factor over the single-stream figure.",
    )
    simple_min_tokens: int = setting(100, c.TOKENS, "simple_inference output sizes span...")
    simple_max_tokens: int = setting(10_000, c.TOKENS, "...this range.")
    large_context_min_tokens: int = setting(10_000, c.TOKENS, "large_context prompt sizes...")
    large_context_max_tokens: int = setting(40_000, c.TOKENS, "...capped to the model's context length.")
    stream_max_tokens: int = setting(512, c.TOKENS, "max_tokens of a streaming test.")
    concurrent_max_tokens: int = setting(
        128, c.TOKENS, "max_tokens of each concurrent_load stream (short answers keep a batch about load)."
    )
    structured_max_tokens: int = setting(1024, c.TOKENS, "max_tokens of a structured test.")
    tool_max_tokens: int = setting(
        1024,
        c.TOKENS,
        "max_tokens of each tool-calling request (reasoning models need room to think first).",
    )
    stall_s: float = setting(
        "5s",
        c.SECONDS,
        "A stream silent this long between two tokens has stalled: its test fails (error class stalled).",
    )


@dataclass(frozen=True)
class Output:  # seconds
    summary_interval: float = setting(
        "5m", c.SUMMARY_INTERVAL, "How often test_summary.json is rewritten (at least 1s)."
    )
    status_interval: float = setting("60s", c.STATUS_INTERVAL, "How often a status event is written (at least 1s).")
    telemetry_interval: float = setting(
        "2s",
        c.TELEMETRY_INTERVAL,
        "How often a telemetry event (machine, sensors, server metrics) is written (at least 0.5s).",
    )
    fsync_interval: float = setting(
        "1s", c.FSYNC_INTERVAL, "Longest time events.jsonl goes without fsync (at least 0.05s)."
    )


@dataclass(frozen=True)
class Metrics:
    """The Prometheus endpoint (sinks/metrics.py), for a fleet scraped by one Prometheus."""

    port: int = setting(
        0, c.int_range(0, 65535, "a TCP port"), "Serve /metrics on this port while the run lasts (0: off)."
    )
    bind: str = setting(
        "127.0.0.1",
        c.text(r"[0-9A-Za-z.:\-\[\]]+", "expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0"),
        "Address of the endpoint. Only this machine by default; 0.0.0.0 lets a Prometheus on another "
        "host scrape it.",
    )


@dataclass(frozen=True)
class Thermal:
    """Limits of the thermal guard (engine/thermal_guard.py): over one, the duty cycle drops to
    `reduce_to_pct`; far over (limit + pause_margin_c, or pressure trapping/sleeping), testing pauses.
    It steps back once the readings are under limit - hysteresis_c and the state is min_hold_s old."""

    enabled: bool = setting(True, c.BOOL)
    cpu_temp_limit_c: float = setting(
        95.0,
        c.CELSIUS,
        "Hottest CPU sensor (°C). Intel parts throttle at 100, Ryzen 7000 runs at 95 by design, Apple "
        "silicon dies read 90-105 under load: raise it there and let thermal pressure decide.",
    )
    gpu_temp_limit_c: float = setting(85.0, c.CELSIUS, "Hottest GPU (°C); NVIDIA's target is 83-87.")
    pause_margin_c: float = setting(
        5.0,
        c.number(lambda x: 0 < x <= 50, "expected degrees from above 0 to 50"),
        "Testing pauses at limit + this margin (°C).",
    )
    hysteresis_c: float = setting(
        5.0,
        c.number(lambda x: 0 <= x <= 30, "expected degrees from 0 to 30"),
        "The pace returns once every reading is this far under its limit (°C).",
    )
    pressure_limit: str = setting(  # one of THERMAL_PRESSURE_LEVELS[1:4], or "off"
        "heavy",
        c.choice("moderate", "heavy", "trapping", "off"),
        "macOS thermal pressure that lowers the pace (trapping and sleeping always pause); off ignores it.",
    )
    gpu_throttle_reasons: tuple[str, ...] = setting(
        THERMAL_GPU_REASONS,
        c.list_of(c.text(r"[a-z0-9_]+", "expected a reason name such as sw_thermal_slowdown"), "reasons"),
        "GPU clock-throttle reasons (NVML, decoded) that count as too hot; [] ignores them.",
    )
    reduce_to_pct: int = setting(
        50, c.PERCENT, "Duty cycle while over a limit (the lower of this and the throttle applies)."
    )
    min_hold_s: float = setting("30s", c.SECONDS, "Least time in a state before stepping back (no flapping).")


# --------------------------------------------------------------------------- the settings


def _scenarios_help() -> str:
    return "Run only these scenarios (default: all). Known: " + ", ".join(known_scenarios()) + "."


@dataclass(frozen=True)
class Settings:
    """Everything a run needs. Durations are float seconds; `duration` None = until stopped."""

    duration: float | None = setting(
        None,
        c.duration("h"),
        "How long to run. A bare number is hours (4, 2.5, 0.5); 90s, 30m, 4h, 1h30m also work. "
        "Leave it out to run until stopped.",
        example="8h",
    )
    throttle: int = setting(
        100,
        c.PERCENT,
        "Duty cycle in percent: at 60 the engine idles so that testing takes 60% of wall time.",
    )
    seed: int | None = setting(
        None,
        c.ANY_INT,
        "Makes the sequence of models, scenarios and prompts reproducible; random when left out.",
        example=42,
    )
    base_urls: tuple[str, ...] = setting(
        (),
        c.list_of(c.URL, "http(s) URLs"),
        "OpenAI-compatible endpoints to test. Leave it out to probe the default ports "
        "(LM Studio 1234, Ollama 11434, llama.cpp 8080 and 9931, vLLM 8000).",
        example=["http://192.168.1.20:11434"],
    )
    http_transport: str = setting(
        "auto",
        c.choice("auto", "lean", "httpx"),
        "HTTP client under the measurements: lean (soaktui's own HTTP/1.1 for plain http, far less "
        "CPU per token), httpx (httpx's own), or auto: lean unless a proxy is in the way. https always uses httpx.",
    )
    api_key: str | None = setting(
        None,
        c.API_KEY,
        "Sent as a Bearer token; falls back to OPENAI_API_KEY. Prefer SOAKTUI_API_KEY to keeping it here.",
        example="sk-...",
        secret=True,
    )
    models: tuple[str, ...] = setting(
        (),
        c.list_of(c.PATTERN, "model patterns"),
        "Test only models whose id matches one of these shell-style patterns.",
        example=["qwen*", "llama-3*"],
    )
    exclude: tuple[str, ...] = setting(
        (),
        c.list_of(c.PATTERN, "model patterns"),
        "Never test models matching these patterns.",
        example=["*embed*"],
    )
    scenarios: tuple[str, ...] = setting(  # empty = every registered scenario
        (),
        c.list_of(
            c.SCENARIO, "scenario names", allow_empty=False, empty_hint=" (leave the key out to run them all)"
        ),
        _scenarios_help,
        example=["streaming", "tool_calling"],
    )
    max_size_gb: float = setting(
        15,
        c.number(lambda x: x > 0, "expected a number of gigabytes greater than 0"),
        "Skip models larger than this (GB on disk, or estimated from parameters x quantization).",
    )
    include_cloud: bool = setting(
        False,
        c.BOOL,
        "Also test cloud models a local server lists (Ollama *-cloud: they run remotely, not on this machine).",
    )
    concurrency: tuple[int, ...] = setting(
        (2, 4, 8),
        c.CONCURRENCY,
        "The ladder of parallel streams for concurrent_load; climbing stops when the server saturates.",
    )
    prompt_dirs: tuple[Path, ...] = setting(
        (),
        c.list_of(c.PATH, "directory paths"),
        "Your own prompts, added to the shipped bank: *.jsonl for prompt_variety, tools/*.jsonl for "
        "tool_calling, structured/*.jsonl for structured_output (formats in prompts/README.md).",
        example=["~/soak-prompts"],
    )
    out: Path | None = setting(
        None,
        c.PATH,
        "Run directory. Default: a new soak_YYYYMMDD_HHMMSS directory under the data dir's runs/.",
        example="~/soak-runs/tonight",
    )
    theme: str = setting(
        "dark",
        c.text(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "expected a theme name (letters, digits, _ . -)"),
        "Dashboard theme.",
    )
    weights: Mapping[str, float] = scenario_weights(
        "Relative weight of each scenario in the random choice of the next test; 0 disables it.", c.WEIGHT
    )
    rotation: Rotation = section(
        Rotation, "Stay on a model for a random number of tests in [min_tests, max_tests], then move on."
    )
    quiet_hours: QuietHours = section(QuietHours, "A lower duty cycle during a local-time window.")
    timeouts: Timeouts = section(Timeouts, f"Timeouts, in {c.SECONDS_HELP}.")
    thresholds: Thresholds = section(
        Thresholds, "When concurrency counts as saturated, and the sizes scenarios ask for."
    )
    output: Output = section(
        Output, f"Intervals of the files derived from the event log, in {c.SECONDS_HELP}."
    )
    metrics: Metrics = section(Metrics, "A Prometheus /metrics endpoint for Grafana and fleets of hosts.")
    thermal: Thermal = section(
        Thermal,
        "The thermal guard: over a limit the engine lowers its duty cycle, far over it pauses; "
        "readings the machine cannot give never trigger it.",
    )
    # Not settings: where they came from.
    config_path: Path | None = field(default=None, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def selected_scenarios(self) -> tuple[str, ...]:
        """The scenarios this run may choose from (before the engine drops unregistered ones)."""
        return self.scenarios or known_scenarios()

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
            if f.metadata.get("secret"):
                value = REDACTED if value else None
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out
