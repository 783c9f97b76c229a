"""The report snapshot's declared shape: one typed record per section.

`RunAggregate.snapshot()` returns a `Snapshot`; `report.json` is that record written as JSON, and
the renderers (final_report.md, the report screen, `test_summary.json`, the model database) read
its fields. The records are `TypedDict`s: at run time a snapshot stays plain dicts, lists, numbers
and strings (JSON as it is, no conversion on the hot path), while the type checker (scripts/test
runs mypy, strict on report/) checks every field a fold writes and a renderer reads against the
declarations here. A section's fields change in one place: its record, then what mypy names.

Conventions every record follows: a figure never measured is None, never 0; a rate is a `Rate`
(counts, rate and Wilson 95% interval); a distribution is a `Describe` (n and its percentiles);
maps keyed by model are keyed by `provider/model`. Fields copied from an engine event (run_id,
host, settings...) carry whatever the log held and are None when the event was missing.

`docs/events.md` describes the events; `DEFINITIONS` (report/aggregate.py) says what each figure
measures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from soaktui.log.reader import ReadStats, newer_schema_warning
from soaktui.stats import Describe, Rate

if TYPE_CHECKING:  # typing.NotRequired is Python 3.11+; only the type checker reads it
    from typing_extensions import NotRequired


class SampledRate(Rate):
    """A rate the capability matrix flags when it rests on fewer than SMALL_SAMPLE trials."""

    small_sample: bool


# -- run ------------------------------------------------------------------------------------------


class QuietHours(TypedDict):
    enabled: bool
    start: str
    end: str
    throttle_pct: int


class ProviderRow(TypedDict):
    name: str
    kind: str
    base_url: str
    version: str | None
    models: int


class Excluded(TypedDict):
    model: str
    reason: str


class FinalCounts(TypedDict):
    """run_finished's own counts."""

    tests: int | None
    ok_tests: int | None
    requests: int | None


class Run(TypedDict):
    run_id: str | None
    version: str | None
    started_at: str | None
    ended_at: str | None
    started_t: float | None
    ended_t: float | None
    run_started_seen: bool
    finished: bool
    finish_reason: str | None
    ended_without_finishing: bool
    duration_s: float | None
    duration_source: str
    planned_duration_s: float | None
    host: dict[str, Any] | None
    out_dir: str | None
    seed: int | None
    demo: bool | None
    throttle_pct: int | None
    quiet_hours: QuietHours | None
    scenario_weights: dict[str, float] | None
    settings: dict[str, Any] | None  # the run's whole configuration (config/settings.py declares it)
    providers: list[ProviderRow]
    selected: list[str]
    excluded: list[Excluded]
    probed: list[str]
    unreachable: dict[str, str]
    max_rss_bytes: int | None
    final: FinalCounts | None


class RequestTotals(TypedDict):
    """The run's counts of tests and requests (report/folds/requests.py)."""

    tests: int
    ok_tests: int
    success: Rate
    requests: int
    requests_ok: int
    requests_failed: int
    requests_success: Rate
    cancelled_tests: int
    cancelled_requests: int
    tools_did_not_fit: int  # requests whose tool list overflowed the context, retried with fewer tools


class Totals(RequestTotals):
    events: int
    malformed_events: int
    kinds: dict[str, int]


# -- models and scenarios (report/folds/requests.py) ----------------------------------------------


class TokenSource(TypedDict):
    usage: int
    chunks: int
    unknown: int
    usage_rejected: int  # counted in chunks or unknown: the server's usage had impossible counts


class ScenarioCounts(TypedDict):
    tests: int
    ok_tests: int
    requests_ok: int
    requests_failed: int


class CategoryRate(TypedDict):
    tests: int
    ok: int
    success: Rate


class ModelProfile(TypedDict):
    key: str
    selected: bool
    turns: int
    info: dict[str, Any] | None  # discovery's ModelInfo fields (providers/base.py)
    size_gb: float | None
    size_estimated: bool | None
    context_length: int | None
    context_trained: int | None
    tests: int
    ok_tests: int
    success: Rate
    requests_ok: int
    requests_failed: int
    requests_success: Rate
    output_tokens: int | None
    truncated: int
    token_source: TokenSource
    scenarios: dict[str, ScenarioCounts]
    prompt_categories: dict[str, CategoryRate]
    errors: dict[str, int]
    error_spans: dict[str, list[float]]  # error class -> [first, last] failure time (epoch seconds)
    gen_tps_p50_ci95: list[float] | None  # distribution-free 95% interval of the median tokens/s
    e2e_ms: Describe
    ttft_ms: Describe
    itl_p50_ms: Describe
    gen_tps: Describe
    gen_tps_nonstream: Describe
    prompt_tps: Describe


class ScenarioSummary(TypedDict):
    tests: int
    ok_tests: int
    success: Rate
    requests_ok: int
    requests_failed: int
    requests_success: Rate
    failure_reasons: list[list[Any]]  # [reason, count] pairs, most frequent first
    distinct_failure_reasons: int
    failure_classes: dict[str, int]
    models: list[str]
    e2e_ms: Describe
    ttft_ms: Describe
    gen_tps: Describe


# -- errors ---------------------------------------------------------------------------------------


class ErrorClass(TypedDict):
    requests: int
    tests: int
    per_model: dict[str, int]
    example: str | None  # a message of this class (a request's error, else a test's reason)
    first_t: float | None  # when a request or test first failed with it (epoch seconds)
    last_t: float | None


class EngineError(TypedDict):
    error_class: str
    where: str
    count: int
    example: str | None


class Outage(TypedDict):
    """A provider that was down: from its provider_down event to its provider_up (folds/outages.py)."""

    provider: str
    down_t: float | None
    up_t: float | None  # None: still down when the log ends
    downtime_s: float | None  # the engine's measure (monotonic); None while still down
    error_class: str | None
    http_status: int | None
    message: str | None
    failed_probes: int | None


class Errors(TypedDict):
    by_class: dict[str, ErrorClass]
    engine: list[EngineError]


# -- scaling (report/folds/scaling.py) --------------------------------------------------------------


class ConcurrencyRow(TypedDict):
    concurrency: int
    batches: int
    full: int
    partial: int
    failed: int
    saturated: int
    requests_ok: int
    requests_failed: int
    aggregate_tps: Describe
    latency_p50_ms: Describe


class ContextRow(TypedDict):
    bucket: str
    requests_ok: int
    requests_failed: int
    context_overflow: int
    bucketed_by_target: int
    max_prompt_tokens_ok: float | None  # prompt tokens as the server counted them
    ttft_ms: Describe
    prompt_tps: Describe


class Scaling(TypedDict):
    concurrency: dict[str, list[ConcurrencyRow]]
    context: dict[str, list[ContextRow]]


# -- capabilities (report/capabilities.py) -----------------------------------------------------------


class ToolCalling(TypedDict):
    tests: int
    scored: int
    request_failed: int
    unscored: int
    overall: SampledRate
    by_kind: dict[str, SampledRate]
    by_mode: dict[str, SampledRate]
    checks: dict[str, SampledRate]
    verdicts: dict[str, int]
    formats: dict[str, int]
    tool_call_events: int
    unparsed_examples: list[str]  # answers shaped like calls in a syntax soaktui cannot read


class StructuredOutput(TypedDict):
    tests: int
    scored: int
    request_failed: int
    unscored: int
    parsed: SampledRate
    schema_valid: SampledRate
    by_mode: dict[str, SampledRate]
    failures: dict[str, int]
    error_examples: list[str]


class PromptChecks(TypedDict):
    tests: int
    with_checks: int
    without_checks: int
    request_failed: int
    passed: SampledRate
    by_check: dict[str, SampledRate]


class LargeContextCapability(TypedDict):
    max_prompt_tokens: float | None
    bucket: str | None
    requests_ok: int
    requests_failed: int
    context_overflow: int


class Reliability(TypedDict):
    tests: SampledRate
    request_errors: SampledRate


class TtftFigures(TypedDict):
    n: int
    p50: float | None
    p95: float | None


class SpeedFigures(TypedDict):
    n: int
    p50: float | None


class CapabilityRow(TypedDict):
    tool_calling: ToolCalling | None
    structured_output: StructuredOutput | None
    prompt_checks: PromptChecks | None
    streaming_ttft_ms: TtftFigures | None
    gen_tps: SpeedFigures | None
    large_context: LargeContextCapability | None
    reliability: Reliability


class Capabilities(TypedDict):
    models: dict[str, CapabilityRow]
    definitions: dict[str, str]
    small_sample_below: int


# -- failover, control ---------------------------------------------------------------------------------


class FailoverMode(TypedDict):
    tests: int
    ok_tests: int
    success: Rate
    detect_ms: Describe
    recover_ms: Describe
    cold_load_ms: Describe
    attempts: Describe


class ThrottleChange(TypedDict):
    t: float | None
    pct: int | None
    effective_pct: int | None
    source: str | None


class PaceChange(TypedDict):
    """The duty cycle in force after the last change of the throttle or of quiet hours, and why."""

    t: float | None
    effective_pct: int | None
    why: str


class Skip(TypedDict):
    t: float | None
    model: str | None
    tests_done: int | None


class Control(TypedDict):
    throttle_start_pct: int | None
    throttle_changes: int
    throttle_last: ThrottleChange | None
    pace_last: PaceChange | None
    throttle_history: list[ThrottleChange]
    quiet_hours_changes: int
    pauses: int
    paused_s: float
    paused_at_end: bool
    commands: dict[str, int]
    models_skipped: int
    skips: list[Skip]
    model_switches: int
    last_status: dict[str, Any] | None  # the last status event's fields (docs/events.md)


# -- hardware (report/folds/hardware.py) ------------------------------------------------------------------


class Family(TypedDict):
    readings: int
    sources: list[str]
    unavailable: str | None


class Histogram(TypedDict):
    n: int
    mean: float | None
    p95: float | None
    peak: float | None
    resolution: float


class Temperature(Histogram):
    limit_c: float
    time_over_s: float | None
    time_known_s: float | None


class OverLimits(TypedDict):
    time_over_s: dict[str, float | None]
    time_known_s: dict[str, float | None]
    time_any_over_s: float | None


class ThermalPressure(TypedDict):
    time_s: dict[str, float | None]
    limit: str


class GpuThrottleReason(TypedDict):
    readings: int
    time_s: float | None
    thermal: bool


class Guard(TypedDict):
    enabled: bool
    intervened: bool
    changes: int
    entries: dict[str, int]
    time_s: dict[str, float | None]
    duty_pct: dict[str, float | None]
    state_at_end: str
    history: list[dict[str, Any]]  # thermal_guard events as logged


class ModelEnergy(TypedDict):
    energy_j: float | None
    energy_wh: float | None
    seconds: float | None
    output_tokens: int | float  # a float only past 64 bits (a log with absurd counts)
    j_per_token: float | None
    mean_power_w: float | None
    tests_with_power: int
    tests_without_power: int


class Energy(TypedDict):
    total_j: float | None
    covered_s: float | None
    mean_power_w: float | None
    per_model: dict[str, ModelEnergy]


class Sustained(TypedDict):
    readings_known: bool
    exceeded: bool
    run_s: float | None
    busy_s: float | None
    run_duty_pct: float | None
    stretches: int
    longest_s: float | None
    longest_duty_pct: float | None
    best_duty_pct: float | None
    best_s: float | None
    min_stretch_s: float


class Series(TypedDict):
    """The timeline: one value per bucket in every list (None where nothing was read)."""

    bucket_s: float
    minutes: list[float]
    duty_pct: list[float | None]
    output_tps: list[float | None]
    over: list[bool]
    guard: list[str | None]
    cpu_temp_c: list[float | None]
    gpu_temp_c: list[float | None]
    power_w: list[float | None]
    fan_rpm: list[float | None]
    gen_tps: list[float | None]
    cpu_temp_max_c: list[float | None]
    gpu_temp_max_c: list[float | None]


class Hardware(TypedDict):
    readings: int
    first_reading_t: float | None
    last_reading_t: float | None
    mean_interval_s: float | None
    families: dict[str, Family]
    limits: dict[str, Any]  # the run's [thermal] settings (config.Thermal)
    limits_source: str
    temperatures: dict[str, Temperature]
    power_w: Histogram
    fan_rpm: Histogram
    over_limits: OverLimits
    thermal_pressure: ThermalPressure
    gpu_throttle: dict[str, GpuThrottleReason]
    cpu_throttle: dict[str, float] | None
    guard: Guard
    energy: Energy
    sustained: Sustained
    series: Series | None
    methods: dict[str, str]


# -- what the servers hid (report/folds/server_truth.py) ----------------------------------------------


class ColdLoads(TypedDict):
    requests: int
    first_token_wait_ms: Describe
    load_ms_server: Describe
    load_ms_estimated: Describe
    estimate_rule: str


class StallExample(TypedDict):
    t: float | None
    scenario: str | None
    max_gap_ms: float | None
    test_id: int | None


class Stalls(TypedDict):
    requests: int
    max_gap_ms: float | None
    examples: list[StallExample]


class CutExample(TypedDict):
    t: float | None
    scenario: str | None
    prompt_tokens: int | None
    prompt_tokens_floor: int | None
    prompt_chars: int | None


class CutPrompts(TypedDict):
    requests: int
    examples: list[CutExample]


class GenSpeed(TypedDict):
    pairs: int
    soaktui_gen_tps_p50: float | None
    server_gen_tps_p50: float | None
    ratio: float | None
    disagree: bool | None


class ServerTruth(TypedDict):
    cold_loads: ColdLoads
    stalls: Stalls
    prompt_truncated: CutPrompts
    gen_speed: GenSpeed
    server_prompt_tps: Describe
    runtime_context: dict[str, Any] | None  # the model_context event the engine logged


# -- over time (report/folds/timeline.py) -------------------------------------------------------------


class TimeBucket(TypedDict):
    start_s: float  # seconds from the run's start
    requests_ok: int
    requests_failed: int
    error_rate: float | None  # failed / requests in the bucket (None: no request)
    stalls: int
    errors: dict[str, int]  # failed requests by class
    gen_tps_p50: float | None  # successful warm streamed requests
    gen_tps_n: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


class DriftTest(TypedDict):
    first: float | None  # the first hour's median (error rate: its rate)
    last: float | None
    n_first: int
    n_last: int
    change: float | None  # relative (medians) or in points (error rate)
    p: float | None  # the test's two-sided p-value
    degraded: bool


class Drift(TypedDict):
    compared: bool
    why: str | None  # why not compared
    gen_tps: DriftTest | None
    ttft_ms: DriftTest | None
    error_rate: DriftTest | None
    degraded: bool


class Timeline(TypedDict):
    bucket_s: float
    origin_t: float | None  # the run's start (epoch seconds)
    span_s: float
    models: dict[str, list[TimeBucket]]
    drift: dict[str, Drift]
    method: str


# -- rankings (report/rankings.py) ------------------------------------------------------------------------


class Insufficient(TypedDict):
    model: str
    n: int


class ThroughputPick(TypedDict):
    model: str
    median_gen_tps: float
    n: int


class ReliabilityPick(TypedDict):
    model: str
    success: Rate
    score: float


class BalancePick(TypedDict):
    model: str
    score: float
    parts: dict[str, float]
    evidence: str


class CapabilityPick(TypedDict):
    """One model in a capability ranking; which figures it carries depends on the capability."""

    model: str
    score: NotRequired[float]
    rate: NotRequired[SampledRate]
    p50_ms: NotRequired[float | None]
    p95_ms: NotRequired[float | None]
    n: NotRequired[int]
    max_prompt_tokens: NotRequired[float]
    requests_ok: NotRequired[int]


class CapabilityRanking(TypedDict):
    title: str
    rule: str
    min_samples: int
    sample_unit: str
    ranked: list[CapabilityPick]
    insufficient: list[Insufficient]


class MinSamples(TypedDict):
    throughput_requests: int
    reliability_tests: int


class RankingInsufficient(TypedDict):
    throughput: list[Insufficient]
    reliability: list[Insufficient]


class Rankings(TypedDict):
    min_samples: MinSamples
    throughput: list[ThroughputPick]
    reliability: list[ReliabilityPick]
    insufficient: RankingInsufficient
    capabilities: dict[str, CapabilityRanking]
    balance: list[BalancePick]
    rules: dict[str, str]


class Pick(TypedDict):
    """One use's pick in the verdict (report/verdict.py)."""

    use: str  # reliability | tool_calling | structured_output | speed | balance
    model: str | None  # the model key; None when the data cannot decide
    evidence: str
    tied_with: list[str]  # model keys whose 95% interval overlaps the pick's
    caveat: str | None
    needs: str | None  # what more the run would need to decide, or to separate a tie


class Verdict(TypedDict):
    lines: list[str]  # what every surface opens with (at most 8, Markdown emphasis on names)
    picks: list[Pick]
    incidents: list[str]  # what went wrong during the run, and when
    rules: dict[str, str]


class Recommendation(TypedDict):
    title: str
    model: str | None
    evidence: str
    score: NotRequired[float]


# -- the whole --------------------------------------------------------------------------------------------


class LogStats(TypedDict):
    """How the event log read (log/reader.py ReadStats.as_dict); added by `soaktui report`."""

    lines_ok: int
    lines_bad: int
    torn_tail: bool
    bytes_read: int
    first_bad_line: int | None
    newer_schema: int | None  # events from a newer soaktui: the highest schema version among them
    newer_events: int
    warning: str | None  # said once, on every surface that shows the log's stats


def log_stats(stats: ReadStats) -> LogStats:
    """The `log` part of a snapshot from a pass over the event log."""
    return {
        "lines_ok": stats.lines_ok,
        "lines_bad": stats.lines_bad,
        "torn_tail": stats.torn_tail,
        "bytes_read": stats.bytes_read,
        "first_bad_line": stats.first_bad_line,
        "newer_schema": stats.newer_schema,
        "newer_events": stats.newer_events,
        "warning": newer_schema_warning(stats),
    }


class Snapshot(TypedDict):
    schema: int
    run: Run
    totals: Totals
    models: dict[str, ModelProfile]
    scenarios: dict[str, ScenarioSummary]
    errors: Errors
    scaling: Scaling
    capabilities: Capabilities
    failover: dict[str, dict[str, FailoverMode]]
    control: Control
    hardware: Hardware
    server_truth: dict[str, ServerTruth]
    definitions: dict[str, str]
    rankings: Rankings
    recommendations: list[Recommendation]
    verdict: Verdict
    names: dict[str, str]
    timeline: Timeline  # model key -> the short name every surface prints (report/names.py)
    outages: list[Outage]
    log: NotRequired[LogStats]
