"""The capability matrix: per model, what it can do next to how fast and how reliably it does it.

Answering "which models call tools correctly and return valid structured output?" needs the
verdicts the capability scenarios put in `scenario_result.metrics` (and the `tool_call` events),
which the rest of the run aggregate does not read. This reducer folds exactly those, per model, in
bounded counters: a fixed set of prompt kinds and modes, and the open-ended names (verdicts,
formats, failure kinds, check names) capped at MAX_NAMES distinct each. `matrix()` then joins them
with figures RunAggregate already computes (TTFT of the streaming scenario's requests, generation
tokens/s, the large_context buckets, test and request success) instead of folding those twice.

Counting rules (docs/events.md, `tool_calling` and `structured_output`):
- one test is one scored attempt; cancelled tests never get here (RunAggregate counts them apart);
- a test whose request failed (verdict or failure `request_failed`, or no verdict and a request
  error class) is a reliability failure, not a capability verdict: it is counted as
  `request_failed` and left out of the capability rates, which are over scored tests only;
- tool calling: correct / scored overall, by prompt kind, by mode (native, prompted), and each
  check's passes over the tests it applied to (a check of None was not applicable);
- structured output: parsed / scored and schema-valid / scored, failure kinds counted;
- prompt checks: prompt_variety tests whose checks all passed / answered tests that had checks.
Every rate is `stats.rate` (counts and a Wilson 95% interval) plus `small_sample` (n < 10).
"""

from __future__ import annotations

from typing import Any, ClassVar

from soaktui import errors
from soaktui.report.folds.common import is_cancelled, model_key
from soaktui.report.folds.merging import add_counts, add_fields, add_firsts, add_rows, add_tallies, overflowed
from soaktui.report.snapshot import (
    Capabilities,
    CapabilityRow,
    ContextRow,
    LargeContextCapability,
    ModelProfile,
    PromptChecks,
    SampledRate,
    StructuredOutput,
    ToolCalling,
)
from soaktui.stats import SMALL_SAMPLE, Describe, bounded_inc, bounded_tally, rate
from soaktui.toolcalls.calls import UNPARSED_PREFIX

TOOL_SCENARIO = "tool_calling"
SO_SCENARIO = "structured_output"
PV_SCENARIO = "prompt_variety"
SCENARIOS = frozenset({TOOL_SCENARIO, SO_SCENARIO, PV_SCENARIO})

KINDS = ("explicit", "implicit", "irrelevant", "parallel", "multi_turn")
KIND_LABELS = {
    "explicit": "explicit",
    "implicit": "implicit",
    "irrelevant": "irrelevance",
    "parallel": "parallel",
    "multi_turn": "multi-turn",
}
TOOL_MODES = ("native", "prompted")
SO_MODES = ("json_schema", "instruction")
REQUEST_FAILED = "request_failed"
MAX_NAMES = 50  # distinct verdicts / formats / failure kinds / check names kept per model
MAX_EXAMPLES = 3  # distinct schema error paths (unparsed call excerpts) kept per model
EXAMPLE_CHARS = 200

DEFINITIONS = {
    "tool_calling": "tool_calling tests judged correct (call made or rightly not made, name, arguments "
    "parse, validate against the schema, match the accepted values, right count, result used) / tests "
    "scored; tests whose request failed are counted apart, not scored",
    "structured_output": "structured_output answers that parse as JSON / that validate against the "
    "schema, over tests scored; tests whose request failed are counted apart",
    "prompt_checks": "prompt_variety answers passing every check of their prompt / answered prompts "
    "that had checks",
    "streaming_ttft_ms": "time to first token of the streaming scenario's successful requests",
    "large_context": "largest prompt (server-reported prompt tokens) answered successfully by "
    "large_context, and the largest context bucket with a successful request",
    "reliability": "tests succeeded / tests (cancelled tests excluded); failed requests / requests",
    "small_sample": f"a rate over fewer than {SMALL_SAMPLE} trials: shown as counts and interval only",
}


def cap_rate(k: int, n: int) -> SampledRate:
    """`stats.rate` marked as a small sample when 0 < n < SMALL_SAMPLE."""
    return {**rate(k, n), "small_sample": 0 < n < SMALL_SAMPLE}


def _tally(pairs: dict[str, list[int]], name: str, ok: bool) -> None:
    bounded_tally(pairs, name, ok, MAX_NAMES)


def rates(pairs: dict[str, list[int]], order: tuple[str, ...] = ()) -> dict[str, SampledRate]:
    """{name: cap_rate} of [k, n] tallies, the names of `order` first, then the rest sorted (the
    model database rates its summed tallies the same way)."""
    names = [n for n in order if n in pairs] + sorted(n for n in pairs if n not in order)
    return {n: cap_rate(*pairs[n]) for n in names}


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _request_failed(m: dict[str, Any], field: str, judged: bool, error_class: Any) -> bool:
    """The test never got a model answer to judge: the scenario says so, or it gave no verdict and
    failed with a request error class."""
    if m.get(field) == REQUEST_FAILED:
        return True
    return not judged and error_class not in (None, errors.CHECK_FAILED)


class _Tools:
    __slots__ = (
        "tests",
        "request_failed",
        "unscored",
        "overall",
        "kinds",
        "modes",
        "checks",
        "verdicts",
        "formats",
        "events",
        "unparsed",
    )

    def __init__(self) -> None:
        self.tests = self.request_failed = self.unscored = self.events = 0
        self.unparsed: list[str] = []  # excerpts of calls written in a syntax soaktui cannot read
        self.overall = [0, 0]  # [correct, scored]
        self.kinds: dict[str, list[int]] = {}
        self.modes: dict[str, list[int]] = {}
        self.checks: dict[str, list[int]] = {}
        self.verdicts: dict[str, int] = {}
        self.formats: dict[str, int] = {}

    def add(self, m: dict[str, Any], error_class: Any) -> None:
        self.tests += 1
        correct = m.get("correct")
        verdict = m.get("verdict")
        if _request_failed(m, "verdict", verdict is not None or type(correct) is bool, error_class):
            self.request_failed += 1
            return
        if type(correct) is not bool:
            if verdict is None:
                self.unscored += 1
                return
            correct = verdict == "correct"
        self.overall[0] += correct
        self.overall[1] += 1
        _tally(self.kinds, str(m.get("prompt_kind") or "(unknown)"), correct)
        _tally(self.modes, str(m.get("mode") or "(unknown)"), correct)
        bounded_inc(self.verdicts, str(verdict or ("correct" if correct else "(no verdict)")), MAX_NAMES)
        bounded_inc(self.formats, str(m.get("format") or "(unknown)"), MAX_NAMES)
        if verdict == "unparsed_call" and len(self.unparsed) < MAX_EXAMPLES:
            excerpt = str(m.get("detail") or "").removeprefix(UNPARSED_PREFIX)[:EXAMPLE_CHARS]
            if excerpt and excerpt not in self.unparsed:
                self.unparsed.append(excerpt)
        checks = m.get("checks")
        if type(checks) is dict:
            for name, passed in checks.items():
                if type(passed) is bool:
                    _tally(self.checks, str(name), passed)

    def overflowed(self) -> bool:
        return overflowed(self.kinds, self.modes, self.checks, self.verdicts, self.formats)

    def merge(self, later: _Tools) -> None:
        add_fields(self, later, ("tests", "request_failed", "unscored", "events"))
        self.overall = [a + b for a, b in zip(self.overall, later.overall, strict=True)]
        for mine, theirs in (
            (self.kinds, later.kinds),
            (self.modes, later.modes),
            (self.checks, later.checks),
        ):
            add_tallies(mine, theirs, MAX_NAMES)
        add_counts(self.verdicts, later.verdicts, MAX_NAMES)
        add_counts(self.formats, later.formats, MAX_NAMES)
        add_firsts(self.unparsed, later.unparsed, MAX_EXAMPLES)

    def figures(self) -> ToolCalling:
        return {
            "tests": self.tests,
            "scored": self.overall[1],
            "request_failed": self.request_failed,
            "unscored": self.unscored,
            "overall": cap_rate(*self.overall),
            "by_kind": rates(self.kinds, KINDS),
            "by_mode": rates(self.modes, TOOL_MODES),
            "checks": rates(self.checks),
            "verdicts": _ordered(self.verdicts),
            "formats": _ordered(self.formats),
            "tool_call_events": self.events,
            "unparsed_examples": list(self.unparsed),
        }


class _Structured:
    __slots__ = (
        "tests",
        "request_failed",
        "unscored",
        "scored",
        "parsed",
        "valid",
        "modes",
        "failures",
        "examples",
    )

    def __init__(self) -> None:
        self.tests = self.request_failed = self.unscored = self.scored = self.parsed = self.valid = 0
        self.modes: dict[str, list[int]] = {}
        self.failures: dict[str, int] = {}
        self.examples: list[str] = []

    def add(self, m: dict[str, Any], error_class: Any) -> None:
        self.tests += 1
        parsed = m.get("parsed")
        if _request_failed(m, "failure", type(parsed) is bool, error_class):
            self.request_failed += 1
            return
        if type(parsed) is not bool:
            self.unscored += 1
            return
        valid = m.get("schema_valid") is True
        self.scored += 1
        self.parsed += parsed
        self.valid += valid
        _tally(self.modes, str(m.get("mode") or "(unknown)"), valid)
        failure = m.get("failure")
        if not valid:
            bounded_inc(self.failures, str(failure or "(no failure kind given)"), MAX_NAMES)
            path = str(m.get("error_path") or "")[:EXAMPLE_CHARS]
            if path and len(self.examples) < MAX_EXAMPLES and path not in self.examples:
                self.examples.append(path)

    def overflowed(self) -> bool:
        return overflowed(self.modes, self.failures)

    def merge(self, later: _Structured) -> None:
        add_fields(self, later, ("tests", "request_failed", "unscored", "scored", "parsed", "valid"))
        add_tallies(self.modes, later.modes, MAX_NAMES)
        add_counts(self.failures, later.failures, MAX_NAMES)
        add_firsts(self.examples, later.examples, MAX_EXAMPLES)

    def figures(self) -> StructuredOutput:
        return {
            "tests": self.tests,
            "scored": self.scored,
            "request_failed": self.request_failed,
            "unscored": self.unscored,
            "parsed": cap_rate(self.parsed, self.scored),
            "schema_valid": cap_rate(self.valid, self.scored),
            "by_mode": rates(self.modes, SO_MODES),
            "failures": _ordered(self.failures),
            "error_examples": list(self.examples),
        }


class _Checks:
    __slots__ = ("tests", "request_failed", "no_checks", "passed", "by_check")

    def __init__(self) -> None:
        self.tests = self.request_failed = self.no_checks = 0
        self.passed = [0, 0]  # [passed every check, had checks]
        self.by_check: dict[str, list[int]] = {}

    def add(self, m: dict[str, Any], error_class: Any) -> None:
        self.tests += 1
        checks = m.get("checks")
        if error_class not in (None, errors.CHECK_FAILED):
            self.request_failed += 1
            return
        if type(checks) is not dict or not checks:
            self.no_checks += 1
            return
        all_ok = True
        for name, passed in checks.items():
            ok = passed is True
            all_ok = all_ok and ok
            _tally(self.by_check, str(name), ok)
        self.passed[0] += all_ok
        self.passed[1] += 1

    def overflowed(self) -> bool:
        return overflowed(self.by_check)

    def merge(self, later: _Checks) -> None:
        add_fields(self, later, ("tests", "request_failed", "no_checks"))
        self.passed = [a + b for a, b in zip(self.passed, later.passed, strict=True)]
        add_tallies(self.by_check, later.by_check, MAX_NAMES)

    def figures(self) -> PromptChecks:
        return {
            "tests": self.tests,
            "with_checks": self.passed[1],
            "without_checks": self.no_checks,
            "request_failed": self.request_failed,
            "passed": cap_rate(*self.passed),
            "by_check": rates(self.by_check),
        }


class _Model:
    __slots__ = ("tools", "structured", "checks")

    def __init__(self) -> None:
        self.tools: _Tools | None = None
        self.structured: _Structured | None = None
        self.checks: _Checks | None = None

    def parts(self) -> tuple[_Tools | None, _Structured | None, _Checks | None]:
        return self.tools, self.structured, self.checks

    def merge(self, later: _Model) -> None:
        for name in self.__slots__:
            theirs = getattr(later, name)
            mine = getattr(self, name)
            if mine is None:
                setattr(self, name, theirs)
            elif theirs is not None:
                mine.merge(theirs)


class CapabilityReducer:
    """Fed by RunAggregate: capability scenarios' results and `tool_call` events, per model key."""

    KINDS: ClassVar[dict[str, str]] = {"scenario_result": "feed_result", "tool_call": "feed_tool_call"}
    ONLY_SCENARIOS: ClassVar[dict[str, tuple[str, ...]]] = {"scenario_result": tuple(sorted(SCENARIOS))}

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}

    def feed_result(self, ev: dict[str, Any]) -> None:
        scenario = ev.get("scenario")
        if scenario in SCENARIOS and not is_cancelled(ev):
            self.on_result(model_key(ev.get("provider"), ev.get("model")), scenario, ev)

    def feed_tool_call(self, ev: dict[str, Any]) -> None:
        self.on_tool_call(model_key(ev.get("provider"), ev.get("model")))

    def _model(self, key: str) -> _Model:
        m = self._models.get(key)
        if m is None:
            m = self._models[key] = _Model()
        return m

    def on_result(self, key: str, scenario: str, ev: dict[str, Any]) -> None:
        """One (not cancelled) scenario_result of a scenario in SCENARIOS."""
        metrics = ev.get("metrics")
        m = metrics if type(metrics) is dict else {}
        error_class = ev.get("error_class")
        model = self._model(key)
        if scenario == TOOL_SCENARIO:
            if model.tools is None:
                model.tools = _Tools()
            model.tools.add(m, error_class)
        elif scenario == SO_SCENARIO:
            if model.structured is None:
                model.structured = _Structured()
            model.structured.add(m, error_class)
        elif scenario == PV_SCENARIO:
            if model.checks is None:
                model.checks = _Checks()
            model.checks.add(m, error_class)

    def on_tool_call(self, key: str) -> None:
        """A `tool_call` event: counted as evidence; verdicts come from the test's scenario_result."""
        model = self._model(key)
        if model.tools is None:
            model.tools = _Tools()
        model.tools.events += 1

    # -- joining (report/split.py) -----------------------------------------------------------------
    def cannot_merge(self, later: CapabilityReducer) -> str | None:
        """Why `merge(later)` would not be exact (a bounded table of `later` overflowed), or None."""
        if any(p is not None and p.overflowed() for m in later._models.values() for p in m.parts()):
            return "more capability verdicts, formats or checks than a fold keeps"
        return None

    def merge(self, later: CapabilityReducer) -> None:
        """Join the state over a later stretch of the log, as if one reducer had read both."""
        add_rows(self._models, later._models)

    def matrix(
        self,
        models: dict[str, ModelProfile],
        streaming_ttft: dict[str, Describe],
        context: dict[str, list[ContextRow]],
    ) -> Capabilities:
        """The capability matrix of the models that were tested, in `models` order.

        `models` is RunAggregate's per-model profiles, `streaming_ttft` its TTFT description of each
        model's streaming-scenario requests, `context` its large_context rows (scaling.context).
        A capability that was not measured for a model is None, never 0.
        """
        rows: dict[str, CapabilityRow] = {}
        for key, prof in models.items():
            req_total = prof["requests_ok"] + prof["requests_failed"]
            if not (prof["tests"] or req_total):
                continue
            c = self._models.get(key) or _Model()
            ttft = streaming_ttft.get(key)
            gen = prof["gen_tps"]
            rows[key] = {
                "tool_calling": c.tools.figures() if c.tools is not None else None,
                "structured_output": c.structured.figures() if c.structured is not None else None,
                "prompt_checks": c.checks.figures() if c.checks is not None else None,
                "streaming_ttft_ms": {"n": ttft["n"], "p50": ttft["p50"], "p95": ttft["p95"]}
                if ttft and ttft["n"]
                else None,
                "gen_tps": {"n": gen["n"], "p50": gen["p50"]} if gen["n"] else None,
                "large_context": context_reached(context.get(key)),
                "reliability": {
                    "tests": cap_rate(prof["ok_tests"], prof["tests"]),
                    "request_errors": cap_rate(prof["requests_failed"], req_total),
                },
            }
        return {"models": rows, "definitions": dict(DEFINITIONS), "small_sample_below": SMALL_SAMPLE}


def context_reached(rows: list[ContextRow] | None) -> LargeContextCapability | None:
    """From one model's large_context rows (in bucket order): how far it got, and the evidence."""
    if not rows:
        return None
    reached = [r for r in rows if r["requests_ok"] and r["bucket"] != "unknown"]
    tokens = [t for r in rows if (t := r["max_prompt_tokens_ok"]) is not None]
    return {
        "max_prompt_tokens": max(tokens) if tokens else None,
        "bucket": reached[-1]["bucket"] if reached else None,
        "requests_ok": sum(r["requests_ok"] for r in rows),
        "requests_failed": sum(r["requests_failed"] for r in rows),
        "context_overflow": sum(r["context_overflow"] for r in rows),
    }


__all__ = ["KINDS", "KIND_LABELS", "SCENARIOS", "CapabilityReducer", "cap_rate", "context_reached", "rates"]
