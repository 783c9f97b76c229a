"""Logs no soaktui wrote: the report still renders, and the two-process join is exact or refused.

Hypothesis builds short logs of every kind the report reads, each field now and then replaced by a
value of the wrong type or an absurd size (text, lists, objects, 1e300, negative times, times that
run backwards). A fuzzer of this shape once crashed `soaktui report` on about one log in ten and
found fourteen ways to make the join of two halves differ from one pass (tests/test_report_split.py
keeps each as a log). Derandomised, so a run in CI is the same run every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soaktui.report import build_report
from soaktui.report.html import render_html
from soaktui.report.jsonout import render_json
from soaktui.report.markdown import render_markdown
from tests.test_report_split import _join_at, _line_starts, _one_pass

pytestmark = pytest.mark.unit

WEIRD: list[Any] = ["x", [1], {"a": 1}, None, True, -1, 0, 1.5, 1e300, -1e300, "", [[[]]]]
SCENARIOS = [
    "streaming",
    "concurrent_load",
    "large_context",
    "provider_failover",
    "tool_calling",
    "prompt_variety",
]


def _value(draw: st.DrawFn, good: Any) -> Any:
    """`good` most of the time, else a value of the wrong type or size."""
    return draw(st.sampled_from(WEIRD)) if draw(st.integers(0, 9)) == 0 else good


@st.composite
def _event(draw: st.DrawFn, t: float, test_id: int) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["request", "request", "scenario_result", "telemetry", "telemetry", "thermal_guard", "tool_call"]
            + ["provider_down", "provider_up", "paused", "resumed", "error", "model_context"]
        )
    )
    ev: dict[str, Any] = {"v": 1, "kind": kind, "t": _value(draw, t), "run_id": "r"}
    who = {"provider": _value(draw, "p"), "model": _value(draw, draw(st.sampled_from(["m", "n"])))}
    scenario = _value(draw, draw(st.sampled_from(SCENARIOS)))
    if kind == "request":
        ok = draw(st.booleans())
        ev |= who | {"test_id": _value(draw, test_id), "scenario": scenario, "ok": ok, "stream": True}
        ev |= {"ttft_ms": _value(draw, 90.0), "e2e_ms": _value(draw, 900.0), "gen_tps": _value(draw, 40.5)}
        ev |= {
            "output_tokens": _value(draw, 12),
            "prompt_tokens": _value(draw, 9000),
            "token_source": "usage",
        }
        if not ok:
            ev |= {"error_class": _value(draw, "http_status"), "error": "HTTP 500"}
    elif kind == "scenario_result":
        ev |= who | {"test_id": _value(draw, test_id), "scenario": scenario, "ok": draw(st.booleans())}
        ev |= {"duration_ms": _value(draw, 1500.0), "error_class": _value(draw, None)}
        metrics = {"concurrency": 2, "succeeded": 2, "failed": 0, "aggregate_tps": 80.0, "mode": "failover"}
        ev["metrics"] = _value(draw, metrics | {"verdict": "correct", "correct": True, "category": "math"})
    elif kind == "telemetry":
        ev |= {
            "cpu_temp_c": _value(draw, draw(st.sampled_from([55.5, 91.2]))),
            "power_w": _value(draw, 120.3),
        }
        ev |= {"fan_rpm": _value(draw, 1800), "gpu_throttle_reasons": _value(draw, ["sw_thermal_slowdown"])}
        ev |= {"cpu_throttle": _value(draw, {"core_events": 4}), "gpus": _value(draw, [{"name": "g"}])}
    elif kind == "thermal_guard":
        ev |= {"state": _value(draw, draw(st.sampled_from(["ok", "reduced", "paused"]))), "previous": "ok"}
    elif kind in ("provider_down", "provider_up", "model_context", "tool_call"):
        ev |= who | {"downtime_s": _value(draw, 3.0), "context_length": _value(draw, 8192)}
    return ev


@st.composite
def hostile_logs(draw: st.DrawFn) -> list[bytes]:
    settings_ = {"thermal": {"cpu_temp_limit_c": _value(draw, 88.0), "hysteresis_c": _value(draw, 3.0)}}
    events: list[dict[str, Any]] = [
        {"v": 1, "kind": "run_started", "t": 0.0, "run_id": "r", "settings": settings_}
    ]
    t = 1.0
    for test_id in range(draw(st.integers(3, 24))):
        t += draw(st.sampled_from([0.5, 2.0, 2.0, 20.0, -5.0]))  # now and then a gap, or time running back
        events.append(draw(_event(t, test_id // 2)))
    return [orjson.dumps(ev) for ev in events]


HOSTILE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@HOSTILE
@given(lines=hostile_logs())
def test_the_report_of_a_hostile_log_renders(lines: list[bytes], tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    snap, _ = build_report(tmp_path)
    assert render_json(snap) and render_markdown(snap) and render_html(snap)


@HOSTILE
@given(lines=hostile_logs())
def test_every_cut_of_a_hostile_log_is_exact_or_refused(lines: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    want = _one_pass(path)
    for cut in _line_starts(path):
        reason, got, _ = _join_at(path, cut)
        assert reason is not None or got == want, f"cut at byte {cut}"
