"""The dashboard's live state: a light fold of the events into what the panes draw.

The report figures come from `RunAggregate` (the same fold as `soaktui report`), and so do the
counts of tests and requests: the live state reads them from the report's request fold
(report/folds/requests.py, shared with the app's aggregate or its own when it stands alone), so a
rule such as "a cancelled test is not a failure" exists once. This reducer only keeps what else the
panes need *now*: the rotation, short recent histories for sparklines, the
latest telemetry, the newest errors. Everything it keeps is bounded (deques with maxlen, a throughput series
that halves its resolution instead of growing), so an eight-hour run costs what a five-minute one
does; the counts' fold is the report's, which the viewer holds for the report screen anyway. Each pane's section has a version number that moves when its data changes, so the viewer
redraws only panes that changed.

Steering keys are answered by the control socket with the engine's state; `apply_status` shows that
at once, and a later event only overrides it when it is newer (fields carry the time they were set).

Textual-free, so it is tested (and benchmarked) without a terminal.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from soaktui.report.folds.common import is_cancelled
from soaktui.report.folds.requests import Counts, RequestFold
from soaktui.stats import percentile

SPARK_POINTS = 60  # per-scenario sparkline: latest successful requests
MODEL_TPS_WINDOW = 50  # per-model median tokens/s: its latest successful streamed requests
MAX_ERRORS = 200  # error lines kept (newest)
MAX_TOOLCALLS = 100  # tool-call detections kept (newest)
SERIES_POINTS = 240  # throughput buckets per model before the resolution halves
SERIES_BUCKET_S = 2.0  # the throughput series starts with 2-second buckets
CPU_POINTS = 120  # telemetry readings kept for the CPU sparkline
# summary readings kept (CPU_POINTS each) for the thermal pane's sparklines; absent readings add nothing
HISTORY_KEYS = ("cpu_temp_c", "gpu_temp_c", "power_w", "fan_rpm")
MAX_MODELS = 200  # distinct models tracked (discovery selects far fewer)
MAX_SCENARIOS = 50
MAX_CLASSES = 50

NO_COUNTS = Counts()  # a model or scenario with nothing counted yet

SECTIONS = ("header", "rotation", "scenarios", "toolcalls", "telemetry", "errors", "throughput")


@dataclass(frozen=True)
class InFlightView:
    """The test in flight as the header draws it (LiveState.in_flight)."""

    test_id: Any
    scenario: str
    key: str
    elapsed_s: float
    requests: int | None  # on the wire now (None: known from the log only)
    silent_s: float | None  # longest silence of its streamed requests (None: unknown or none)
    no_byte_yet: bool  # that request has received nothing yet
    whole_wait_s: float | None  # longest wait of a non-streamed request (silent by design)
    stall_s: float | None

    def silence_level(self) -> str:
        """"ok", "amber" past half of stall_s, "red" past stall_s (the now line's colour)."""
        if self.silent_s is None or self.stall_s is None:
            return "ok"
        if self.silent_s >= self.stall_s:
            return "red"
        return "amber" if self.silent_s >= self.stall_s / 2 else "ok"


def model_key(provider: Any, model: Any) -> str:
    """The key the engine uses for a model: `provider/model` (RunAggregate uses the same)."""
    return f"{provider}/{model}" if provider else str(model)


class Downsampled:
    """A bounded time series: mean value per time bucket; when full, neighbours merge (width doubles).

    Covers the whole run at a resolution that coarsens as the run grows: 240 buckets of 2 s for
    the first 8 minutes, then 4 s, 8 s ... An eight-hour run ends with about 2-minute buckets.
    """

    __slots__ = ("origin", "width", "cap", "_sums", "_counts")

    def __init__(self, origin: float, width: float = SERIES_BUCKET_S, cap: int = SERIES_POINTS) -> None:
        self.origin = origin
        self.width = width
        self.cap = cap
        self._sums: dict[int, float] = {}
        self._counts: dict[int, int] = {}

    def add(self, t: float, value: float) -> None:
        i = max(0, int((t - self.origin) // self.width))
        sums, counts = self._sums, self._counts
        if i in sums:
            sums[i] += value
            counts[i] += 1
        else:
            sums[i] = value
            counts[i] = 1
            while len(self._sums) > self.cap:
                self._coarsen()

    def _coarsen(self) -> None:
        sums: dict[int, float] = {}
        counts: dict[int, int] = {}
        for i, s in self._sums.items():
            j = i // 2
            sums[j] = sums.get(j, 0.0) + s
            counts[j] = counts.get(j, 0) + self._counts[i]
        self._sums, self._counts = sums, counts
        self.width *= 2

    def points(self) -> list[tuple[float, float]]:
        """(bucket middle in seconds since origin, mean) in time order."""
        w = self.width
        return [((i + 0.5) * w, self._sums[i] / self._counts[i]) for i in sorted(self._sums)]

    def __len__(self) -> int:
        return len(self._sums)


@dataclass
class ModelLine:
    """What the rotation pane shows for one model."""

    key: str
    provider: str | None = None
    model: str | None = None
    recent_tps: deque[float] = field(default_factory=lambda: deque(maxlen=MODEL_TPS_WINDOW))
    skipped: int = 0

    def median_tps(self) -> float | None:
        return percentile(sorted(self.recent_tps), 50) if self.recent_tps else None


@dataclass
class ScenarioLine:
    name: str
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=SPARK_POINTS))


@dataclass
class ErrorLine:
    t: float | None
    error_class: str
    where: str  # scenario or engine location
    model: str | None
    message: str


class LiveState:
    """Feed events in log order (`feed`); read the fields to draw. Not thread-safe: callers lock.

    `counts`: the request fold of a `RunAggregate` fed the same events (the viewer's), read for
    every count; without it the live state keeps and feeds a fold of its own.
    """

    def __init__(self, counts: RequestFold | None = None) -> None:
        self._own_counts = counts is None
        self.counts = RequestFold(exact=False) if counts is None else counts  # bounded: a live view
        self.versions = dict.fromkeys(SECTIONS, 0)
        self.events = 0
        self.run_id: str | None = None
        self.out_dir: str | None = None
        self.started_t: float | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.planned_duration_s: float | None = None
        self.demo: bool | None = None
        self.host: dict[str, Any] | None = None
        self.quiet_window: tuple[str, str] | None = None  # ("22:00", "06:00")
        self.quiet_pct: int | None = None
        self.quiet_active_event: bool | None = None  # from the last quiet_hours_changed
        self.finished: dict[str, Any] | None = None
        # Steerable fields: (value, time set). An event only overrides a newer control reply.
        self._stamped: dict[str, tuple[Any, float]] = {}
        # rotation
        self.selected: list[str] = []
        self.models: dict[str, ModelLine] = {}
        self.current: str | None = None
        self.current_provider: str | None = None
        self.current_model: str | None = None
        self.planned_tests: int | None = None
        self.turn_tests = 0
        self.upcoming: list[str] = []
        self.skips = 0
        # panes
        self.scenarios: dict[str, ScenarioLine] = {}
        self.errors: deque[ErrorLine] = deque(maxlen=MAX_ERRORS)
        self.errors_total = 0
        self.error_classes: dict[str, int] = {}
        self.toolcalls: deque[dict[str, Any]] = deque(maxlen=MAX_TOOLCALLS)
        self.toolcalls_total = 0
        self.telemetry: dict[str, Any] | None = None
        self.telemetry_t: float | None = None
        self.cpu_history: deque[float] = deque(maxlen=CPU_POINTS)
        self.histories: dict[str, deque[float]] = {k: deque(maxlen=CPU_POINTS) for k in HISTORY_KEYS}
        self.thermal: dict[str, Any] | None = None  # the last thermal_guard event: state, cap, reason
        self.throughput: dict[str, Downsampled] = {}
        self._last_pm: tuple[Any, Any] | None = None  # consecutive requests mostly share a model
        self._last_key = ""
        self._handlers = {
            "run_started": self._on_run_started,
            "providers_discovered": self._on_discovered,
            "model_switched": self._on_model_switched,
            "model_skipped": self._on_model_skipped,
            "request": self._on_request,
            "scenario_result": self._on_result,
            "test_started": self._on_test_started,
            "throttle_changed": self._on_throttle,
            "quiet_hours_changed": self._on_quiet,
            "paused": self._on_paused,
            "resumed": self._on_resumed,
            "status": self._on_status,
            "telemetry": self._on_telemetry,
            "thermal_guard": self._on_thermal_guard,
            "error": self._on_error,
            "tool_call": self._on_tool_call,
            "run_finished": self._on_finished,
        }

    # -- feeding -------------------------------------------------------------------------------------
    def feed(self, ev: dict[str, Any]) -> None:
        self.events += 1
        t = ev.get("t")
        if isinstance(t, (int, float)):
            if self.first_t is None:
                self.first_t = t
            self.last_t = t
        handler = self._handlers.get(ev.get("kind"))  # type: ignore[arg-type]
        if handler is not None:
            try:
                handler(ev)
            except (TypeError, ValueError, AttributeError, KeyError):
                pass  # a malformed event never takes the viewer down; the report counts it

    def feed_all(self, events: Iterable[dict[str, Any]]) -> LiveState:
        for ev in events:
            self.feed(ev)
        return self

    def _touch(self, *sections: str) -> None:
        v = self.versions
        for s in sections:
            v[s] += 1

    def _t(self, ev: dict[str, Any]) -> float:
        t = ev.get("t")
        return float(t) if isinstance(t, (int, float)) else 0.0

    # -- steerable fields ------------------------------------------------------------------------------
    def _set(self, name: str, value: Any, t: float) -> None:
        old = self._stamped.get(name)
        if old is None or t >= old[1]:
            self._stamped[name] = (value, t)

    def get(self, name: str, default: Any = None) -> Any:
        item = self._stamped.get(name)
        return default if item is None else item[0]

    @property
    def throttle_pct(self) -> int | None:
        return self.get("throttle_pct")

    @property
    def effective_pct(self) -> int | None:
        return self.get("effective_pct")

    @property
    def paused(self) -> bool:
        return bool(self.get("paused", False))

    @property
    def quiet_enabled(self) -> bool | None:
        return self.get("quiet_enabled")

    @property
    def pace_reason(self) -> str | None:
        """Why the engine's pace differs from the throttle set (its last status), if it does."""
        return self.get("pace_reason")

    def in_flight(self, now: float) -> InFlightView | None:
        """The test in flight at wall time `now`, its figures moved on by the time since they were
        read (the engine answers a status probe once a second; the clock ticks in between)."""
        item = self._stamped.get("now")
        if item is None or not isinstance(item[0], dict):
            return None
        d, t = item
        ahead = max(0.0, now - t)

        def moved(name: str) -> float | None:
            v = d.get(name)
            return float(v) + ahead if isinstance(v, (int, float)) else None

        stall = d.get("stall_s")
        return InFlightView(
            test_id=d.get("test_id"),
            scenario=str(d.get("scenario") or "?"),
            key=str(d.get("key") or model_key(d.get("provider"), d.get("model"))),
            elapsed_s=moved("elapsed_s") or ahead,
            requests=d.get("requests") if isinstance(d.get("requests"), int) else None,
            silent_s=moved("silent_s"),
            no_byte_yet=bool(d.get("no_byte_yet")),
            whole_wait_s=moved("whole_wait_s"),
            stall_s=float(stall) if isinstance(stall, (int, float)) and stall > 0 else None,
        )

    def apply_status(self, state: dict[str, Any], t: float) -> None:
        """Show a control reply's engine state (status_fields) at once; `t` is the wall time of the reply."""
        for src, dst in (
            ("throttle_pct", "throttle_pct"),
            ("effective_pct", "effective_pct"),
            ("paused", "paused"),
            ("quiet_hours", "quiet_enabled"),
            ("pace_reason", "pace_reason"),
            ("now", "now"),
        ):
            if src in state:
                self._set(dst, state[src], t)
        cur = state.get("current_model")
        if isinstance(cur, str) and cur != self.current:
            self._switch_to(cur, None, None, None, None)
            self._touch("rotation")
        self._touch("header")

    # -- handlers -----------------------------------------------------------------------------------------
    def _on_run_started(self, ev: dict[str, Any]) -> None:
        t = self._t(ev)
        self.run_id = ev.get("run_id")
        self.out_dir = ev.get("out_dir")
        self.started_t = t
        self.planned_duration_s = ev.get("duration_s")
        self.demo = ev.get("demo")
        self.host = ev.get("host") if isinstance(ev.get("host"), dict) else None
        self._set("throttle_pct", ev.get("throttle_pct"), t)
        self._set("effective_pct", ev.get("throttle_pct"), t)
        self._set("paused", False, t)
        q = ev.get("quiet_hours")
        if isinstance(q, dict):
            self._set("quiet_enabled", bool(q.get("enabled")), t)
            if q.get("start") and q.get("end"):
                self.quiet_window = (str(q["start"]), str(q["end"]))
            self.quiet_pct = q.get("throttle_pct")
        for series in self.throughput.values():
            series.origin = t
        self._touch("header", "throughput")

    def _model(self, key: str) -> ModelLine | None:
        line = self.models.get(key)
        if line is None:
            if len(self.models) >= MAX_MODELS:
                return None
            line = self.models[key] = ModelLine(key)
        return line

    def _on_discovered(self, ev: dict[str, Any]) -> None:
        self.selected = [str(k) for k in ev.get("selected") or []]
        for p in ev.get("providers") or []:
            for m in p.get("models") or []:
                key = m.get("key") or model_key(m.get("provider") or p.get("name"), m.get("id"))
                if key in self.selected:
                    line = self._model(key)
                    if line is not None:
                        line.provider = m.get("provider") or p.get("name")
                        line.model = m.get("id")
        for key in self.selected:
            self._model(key)
        self._touch("rotation")

    def _switch_to(
        self, key: str, provider: Any, model: Any, planned: Any, upcoming: list[str] | None
    ) -> None:
        line = self._model(key)
        if line is not None:
            provider = provider or line.provider
            model = model or line.model
            if provider and line.provider is None:
                line.provider = provider
            if model and line.model is None:
                line.model = model
        self.current = key
        self.current_provider = provider
        self.current_model = model
        self.planned_tests = planned
        self.turn_tests = 0
        if upcoming is not None:
            self.upcoming = upcoming

    def _on_model_switched(self, ev: dict[str, Any]) -> None:
        key = ev.get("key") or model_key(ev.get("provider"), ev.get("model"))
        upcoming = [str(k) for k in ev.get("upcoming") or []]
        if key == self.current and self.turn_tests == 0 and self.planned_tests is None:
            # a control reply showed this switch first: complete it, keep nothing stale
            self.current_provider = ev.get("provider")
            self.current_model = ev.get("model")
            self.planned_tests = ev.get("planned_tests")
            self.upcoming = upcoming
        else:
            self._switch_to(key, ev.get("provider"), ev.get("model"), ev.get("planned_tests"), upcoming)
        self._touch("rotation", "header")

    def _on_model_skipped(self, ev: dict[str, Any]) -> None:
        self.skips += 1
        key = ev.get("key")
        if isinstance(key, str):
            line = self._model(key)
            if line is not None:
                line.skipped += 1
        self._touch("rotation")

    def _on_request(self, ev: dict[str, Any]) -> None:
        """The hot path (most events are requests): locals, dict.get, no per-event helper calls."""
        get = ev.get
        versions = self.versions
        if self._own_counts:
            self.counts.on_request(ev)
        versions["header"] += 1
        if is_cancelled(ev):
            return
        pm = (get("provider"), get("model"))
        if pm == self._last_pm:
            key = self._last_key
        else:
            key = model_key(*pm)
            self._last_pm, self._last_key = pm, key
        line = self.models.get(key) or self._model(key)
        if not get("ok"):
            self._error(
                ev,
                str(get("error_class") or "other"),
                str(get("scenario") or "request"),
                get("model"),
                str(get("error") or "no message"),
            )
            return
        e2e = get("e2e_ms")
        if isinstance(e2e, (int, float)):
            scen = self.scenarios.get(get("scenario")) or self._scenario(get("scenario"))
            if scen is not None:
                scen.latency.append(e2e)
                versions["scenarios"] += 1
        tps = get("gen_tps")
        if isinstance(tps, (int, float)) and get("stream") and math.isfinite(tps):
            if line is not None:
                line.recent_tps.append(tps)
                versions["rotation"] += 1
            series = self.throughput.get(key)
            if series is None and len(self.throughput) < MAX_MODELS:
                origin = self.started_t if self.started_t is not None else self._t(ev)
                series = self.throughput[key] = Downsampled(origin)
            if series is not None:
                series.add(self._t(ev), tps)
                versions["throughput"] += 1

    def _scenario(self, name: Any) -> ScenarioLine | None:
        if name is None:
            return None
        name = str(name)
        line = self.scenarios.get(name)
        if line is None:
            if len(self.scenarios) >= MAX_SCENARIOS:
                return None
            line = self.scenarios[name] = ScenarioLine(name)
        return line

    def _on_test_started(self, ev: dict[str, Any]) -> None:
        """From the log alone: the test in flight and since when (its silence comes from the engine)."""
        fields = ("test_id", "scenario", "provider", "model", "key")
        self._set("now", {**{k: ev.get(k) for k in fields}, "elapsed_s": 0.0}, self._t(ev))
        self._touch("header")

    def _on_result(self, ev: dict[str, Any]) -> None:
        get = ev.get
        cur = self.get("now")
        if isinstance(cur, dict) and cur.get("test_id") == get("test_id"):
            self._set("now", None, self._t(ev))
        if self._own_counts:
            self.counts.on_result(ev)
        if is_cancelled(ev):
            self._touch("header")
            return
        ok = get("ok") is True
        self._scenario(get("scenario"))
        key = get("key") or model_key(get("provider"), get("model"))
        self._model(key)
        if key == self.current:
            self.turn_tests += 1
        if not ok and get("error_class") == "check_failed":
            # a test that failed its success rule without a failed request: the request log has no line
            self._error(ev, "check_failed", str(get("scenario")), get("model"), str(get("reason") or ""))
        self._touch("header", "scenarios", "rotation")

    def _on_throttle(self, ev: dict[str, Any]) -> None:
        t = self._t(ev)
        self._set("throttle_pct", ev.get("pct"), t)
        self._set("effective_pct", ev.get("effective_pct"), t)
        self._touch("header")

    def _on_quiet(self, ev: dict[str, Any]) -> None:
        t = self._t(ev)
        self._set("quiet_enabled", bool(ev.get("enabled")), t)
        self._set("effective_pct", ev.get("effective_pct"), t)
        self.quiet_active_event = ev.get("active")
        self._touch("header")

    def _on_paused(self, ev: dict[str, Any]) -> None:
        self._set("paused", True, self._t(ev))
        self._touch("header")

    def _on_resumed(self, ev: dict[str, Any]) -> None:
        self._set("paused", False, self._t(ev))
        self._touch("header")

    def _on_status(self, ev: dict[str, Any]) -> None:
        t = self._t(ev)
        for name in ("pace_reason", "now"):
            if name in ev:
                self._set(name, ev.get(name), t)
        for src, dst in (("throttle_pct", "throttle_pct"), ("effective_pct", "effective_pct")):
            if ev.get(src) is not None:
                self._set(dst, ev[src], t)
        if isinstance(ev.get("paused"), bool):
            self._set("paused", ev["paused"], t)
        self._touch("header")

    def _on_telemetry(self, ev: dict[str, Any]) -> None:
        self.telemetry = {k: v for k, v in ev.items() if k not in ("v", "kind", "run_id", "seq", "mono_ns")}
        self.telemetry_t = self._t(ev)
        cpu = ev.get("cpu_pct")
        if isinstance(cpu, (int, float)):
            self.cpu_history.append(float(cpu))
        for key, history in self.histories.items():
            v = ev.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                history.append(float(v))
        self._touch("telemetry")

    def _on_thermal_guard(self, ev: dict[str, Any]) -> None:
        get = ev.get
        self.thermal = {
            "state": get("state"),
            "cap_pct": get("cap_pct"),
            "duty_pct": get("duty_pct"),
            "reason": str(get("reason") or "")[:200],
            "t": get("t"),
        }
        self._touch("header", "telemetry")

    def _on_error(self, ev: dict[str, Any]) -> None:
        self._error(
            ev,
            str(ev.get("error_class") or "other"),
            str(ev.get("where") or "engine"),
            None,
            str(ev.get("message") or "no message"),
        )

    def _error(self, ev: dict[str, Any], cls: str, where: str, model: Any, message: str) -> None:
        self.errors_total += 1
        if cls in self.error_classes or len(self.error_classes) < MAX_CLASSES:
            self.error_classes[cls] = self.error_classes.get(cls, 0) + 1
        self.errors.append(
            ErrorLine(ev.get("t"), cls, where, None if model is None else str(model), message[:300])
        )
        self._touch("errors")

    def _on_tool_call(self, ev: dict[str, Any]) -> None:
        self.toolcalls_total += 1
        self.toolcalls.append({k: v for k, v in ev.items() if k not in ("v", "run_id", "seq", "mono_ns")})
        self._touch("toolcalls")

    def _on_finished(self, ev: dict[str, Any]) -> None:
        self.finished = {k: ev.get(k) for k in ("reason", "elapsed_s", "tests", "ok_tests", "requests", "t")}
        self._set("now", None, self._t(ev))
        self._touch("header", "rotation")

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def tests(self) -> int:
        return self.counts.counts()[0]

    @property
    def ok_tests(self) -> int:
        return self.counts.counts()[1]

    @property
    def requests(self) -> int:
        """Requests that succeeded or failed (cancelled ones aside)."""
        _, _, ok, failed = self.counts.counts()
        return ok + failed

    @property
    def failed_requests(self) -> int:
        return self.counts.counts()[3]

    @property
    def cancelled_tests(self) -> int:
        return self.counts.cancelled_tests

    @property
    def cancelled_requests(self) -> int:
        return self.counts.cancelled_requests

    def model_counts(self) -> dict[str, Counts]:
        """Tests and requests per model key (a model with none has no entry)."""
        return self.counts.counts_by_model()

    def scenario_counts(self) -> dict[str, Counts]:
        """Tests and requests per scenario (a scenario with none has no entry)."""
        return self.counts.counts_by_scenario()

    def elapsed_s(self, now: float | None, live: bool) -> float | None:
        """Seconds since the run started: run_finished's figure, the clock while live, else the last event."""
        if self.finished is not None and isinstance(self.finished.get("elapsed_s"), (int, float)):
            return float(self.finished["elapsed_s"])
        if self.started_t is None:
            return None
        end = now if live and now is not None else self.last_t
        return None if end is None else max(0.0, end - self.started_t)

    def remaining_s(self, now: float | None, live: bool) -> float | None:
        """Seconds left of a planned duration while live; None when until stopped or not live."""
        if not live or self.finished is not None or not self.planned_duration_s:
            return None
        elapsed = self.elapsed_s(now, live)
        return None if elapsed is None else max(0.0, float(self.planned_duration_s) - elapsed)

    def model_order(self) -> list[str]:
        """Selected models in rotation order, then any others seen (sorted)."""
        rest = sorted(k for k in self.models if k not in self.selected)
        return [k for k in self.selected if k in self.models] + rest


__all__ = [
    "CPU_POINTS",
    "MAX_ERRORS",
    "MODEL_TPS_WINDOW",
    "SPARK_POINTS",
    "Downsampled",
    "ErrorLine",
    "LiveState",
    "ModelLine",
    "ScenarioLine",
    "Counts",
    "NO_COUNTS",
    "model_key",
]
