"""Prometheus metrics: the run's events as counters, histograms and gauges on `/metrics`.

Labs soak several machines and already run Prometheus and Grafana, so soaktui plugs into that
(`--metrics-port N`, config `[metrics]`) rather than inventing a collector. This sink folds each
event into the official `prometheus_client` types, in a registry of its own; the library's HTTP
server answers scrapes from its own thread, so nothing here runs on the engine's timing path but
the fold of an event that has already been measured.

Labels are `host`, `provider`, `model` and `scenario` (plus `outcome`, `verdict` or `state` where
a metric has one), all taken from soaktui's own names for things: never a prompt, an answer, a
message or a key. Their number is bounded by the models discovery selected times the scenarios
(and error classes, a fixed set). A reading the machine cannot give is never exported as 0: a
hardware gauge appears with the first reading that has it, and reads NaN while it is missing.
"""

from __future__ import annotations

import math
import socket
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from soaktui.errors import CANCELLED, STALLED
from soaktui.log import events as ev

# Buckets for local LLMs: a first token from 50 ms (warm, small model) to minutes (a cold load or a
# 40k-token prompt on a CPU); whole answers up to the 10-minute request limit; generation speeds
# from a CPU's 1 token/s to a GPU's thousands.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 600)
ITL_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5)
TPS_BUCKETS = (1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560)
HARDWARE = (  # telemetry summary key, metric name, help
    ("cpu_pct", "soaktui_cpu_percent", "CPU load of the machine, %"),
    ("cpu_temp_c", "soaktui_cpu_temp_celsius", "Hottest CPU sensor, °C"),
    ("gpu_temp_c", "soaktui_gpu_temp_celsius", "Hottest GPU, °C"),
    ("power_w", "soaktui_power_watts", "CPU + GPU power (telemetry.summarize says which sources), W"),
    ("fan_rpm", "soaktui_fan_rpm", "Fastest fan, RPM"),
)
GUARD_STATES = ("ok", "reduced", "paused", "off")
MODEL = ("host", "provider", "model")
SCENARIO = (*MODEL, "scenario")


class MetricsSink:
    """Folds events into a private registry; `serve()` exposes it on /metrics."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host or socket.gethostname()
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "soaktui_requests",
            "Requests sent, by outcome (ok or the error class)",
            (*SCENARIO, "outcome"),
            registry=r,
        )
        self.tests = Counter(
            "soaktui_tests",
            "Tests run, by verdict (pass, fail, cancelled)",
            (*SCENARIO, "verdict"),
            registry=r,
        )
        self.ttft = Histogram(
            "soaktui_ttft_seconds",
            "Time to first token of streamed requests (warm)",
            SCENARIO,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "soaktui_e2e_seconds",
            "Whole request time of successful requests",
            SCENARIO,
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "soaktui_itl_seconds",
            "Each streamed request's median gap between tokens",
            SCENARIO,
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.tps = Histogram(
            "soaktui_gen_tokens_per_second",
            "Generation speed of each streamed request",
            SCENARIO,
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("soaktui_output_tokens", "Output tokens received", SCENARIO, registry=r)
        self.stalls = Counter(
            "soaktui_stalls", "Streams silent for thresholds.stall_s between two tokens", SCENARIO, registry=r
        )
        self.tool_calls = Counter(
            "soaktui_tool_calls", "Tool-calling attempts, by verdict", (*MODEL, "verdict"), registry=r
        )
        self.structured = Counter(
            "soaktui_structured_output",
            "Structured-output tests, by verdict (valid or the failure)",
            (*MODEL, "verdict"),
            registry=r,
        )
        self.duty = Gauge(
            "soaktui_duty_cycle_percent",
            "Duty cycle applied (throttle, quiet hours, thermal guard)",
            ("host",),
            registry=r,
        )
        self.throttle = Gauge("soaktui_throttle_percent", "Throttle the user set", ("host",), registry=r)
        self.paused = Gauge("soaktui_paused", "1 while testing is paused by command", ("host",), registry=r)
        self.guard = Gauge(
            "soaktui_thermal_guard_state",
            "1 for the thermal guard's state now",
            ("host", "state"),
            registry=r,
        )
        self.provider_up = Gauge(
            "soaktui_provider_up",
            "0 while a provider is down (probed with backoff), else 1",
            ("host", "provider"),
            registry=r,
        )
        self.hardware = {key: Gauge(name, text, ("host",), registry=r) for key, name, text in HARDWARE}
        self._hardware_seen: set[str] = set()
        self._server: Any = None
        self.port: int | None = None
        self._routes = {
            ev.REQUEST: self._request,
            ev.SCENARIO_RESULT: self._result,
            ev.TOOL_CALL: self._tool_call,
            ev.STATUS: self._status,
            ev.THERMAL_GUARD: self._thermal,
            ev.TELEMETRY: self._telemetry,
            ev.PROVIDER_DOWN: lambda e: self.provider_up.labels(self.host, str(e.get("provider"))).set(0),
            ev.PROVIDER_UP: lambda e: self.provider_up.labels(self.host, str(e.get("provider"))).set(1),
            ev.PAUSED: lambda e: self.paused.labels(self.host).set(1),
            ev.RESUMED: lambda e: self.paused.labels(self.host).set(0),
            ev.PROVIDERS_DISCOVERED: self._discovered,
            ev.RUN_STARTED: self._pace,
            ev.THROTTLE_CHANGED: self._pace,
            ev.QUIET_HOURS_CHANGED: self._pace,
        }

    # -- serving ---------------------------------------------------------------------------------
    def serve(self, port: int, bind: str = "127.0.0.1") -> int:
        """Start the HTTP server (its own thread); returns the port (given 0: the one chosen).
        Raises OSError when the address cannot be bound."""
        self._server, _ = start_http_server(port, addr=bind, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- folding ----------------------------------------------------------------------------------
    def handle(self, e: dict[str, Any]) -> None:
        fn = self._routes.get(e["kind"])
        if fn is not None:
            fn(e)

    def _labels(self, e: dict[str, Any]) -> tuple[str, str, str]:
        return self.host, str(e.get("provider")), str(e.get("model"))

    def _discovered(self, e: dict[str, Any]) -> None:
        for p in e.get("providers") or []:
            self.provider_up.labels(self.host, str(p.get("name"))).set(1)

    def _request(self, e: dict[str, Any]) -> None:
        labels = (*self._labels(e), str(e.get("scenario")))
        cls = e.get("error_class")
        self.requests.labels(*labels, "ok" if e.get("ok") else str(cls or "other")).inc()
        if cls == CANCELLED:
            return
        if cls == STALLED:
            self.stalls.labels(*labels).inc()
        tokens = e.get("output_tokens")
        if isinstance(tokens, int) and tokens > 0:
            self.tokens.labels(*labels).inc(tokens)
        if not e.get("ok"):
            return
        for hist, key, scale in (
            (self.e2e, "e2e_ms", 1e-3),
            (self.itl, "itl_p50_ms", 1e-3),
            (self.tps, "gen_tps", 1.0),
        ):
            v = e.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v) and v >= 0:
                hist.labels(*labels).observe(v * scale)
        ttft = e.get("ttft_ms")
        if isinstance(ttft, (int, float)) and not e.get("cold"):  # a cold load is not a first token
            self.ttft.labels(*labels).observe(ttft / 1e3)

    def _result(self, e: dict[str, Any]) -> None:
        verdict = "cancelled" if e.get("error_class") == CANCELLED else ("pass" if e.get("ok") else "fail")
        self.tests.labels(*self._labels(e), str(e.get("scenario")), verdict).inc()
        if e.get("scenario") == "structured_output" and verdict != "cancelled":
            m = e.get("metrics") or {}
            so = (
                "valid"
                if m.get("schema_valid")
                else str(m.get("failure") or e.get("error_class") or "invalid")
            )
            self.structured.labels(*self._labels(e), so).inc()

    def _tool_call(self, e: dict[str, Any]) -> None:
        self.tool_calls.labels(*self._labels(e), str(e.get("verdict") or "unknown")).inc()

    def _status(self, e: dict[str, Any]) -> None:
        for gauge, key in ((self.duty, "duty_pct"), (self.throttle, "throttle_pct")):
            if isinstance(e.get(key), (int, float)):
                gauge.labels(self.host).set(e[key])
        if isinstance(e.get("paused"), bool):
            self.paused.labels(self.host).set(int(e["paused"]))
        if e.get("thermal_state") in GUARD_STATES:
            self._set_guard(str(e["thermal_state"]))

    def _pace(self, e: dict[str, Any]) -> None:
        """The throttle set and the duty cycle between status events (run start, keys, quiet hours)."""
        pct = e.get("throttle_pct", e.get("pct"))
        if isinstance(pct, (int, float)):
            self.throttle.labels(self.host).set(pct)
        duty = e.get("effective_pct", pct)
        if isinstance(duty, (int, float)):
            self.duty.labels(self.host).set(duty)

    def _thermal(self, e: dict[str, Any]) -> None:
        if e.get("state") in GUARD_STATES:
            self._set_guard(str(e["state"]))

    def _set_guard(self, state: str) -> None:
        for s in GUARD_STATES:
            self.guard.labels(self.host, s).set(1 if s == state else 0)

    def _telemetry(self, e: dict[str, Any]) -> None:
        for key, gauge in self.hardware.items():
            v = e.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                gauge.labels(self.host).set(v)
                self._hardware_seen.add(key)
            elif key in self._hardware_seen:  # it was read before and is missing now: unknown, not 0
                gauge.labels(self.host).set(math.nan)
