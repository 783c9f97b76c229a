"""Human-readable logs for people who `tail -f` a run, derived line by line from the events.

File names follow the script soaktui replaces, so habits carry over:

- main_test.log            every test, model switch, and run-level event
- performance_metrics.log  every request with its measured figures
- model_profiling.log      what discovery found and each turn on a model
- tool_calling.log         each scored tool-calling attempt: prompt, mode, format, calls, verdict
- integration_events.log   providers, failover/recovery, commands, throttle, pause
- errors.log               every failed request and error event: class and message

Lines are written and flushed one at a time (line-buffered text files). The files are created new
for each run, mode 0600, never through a planted symlink or hard link (log/safefiles.py). They are a
convenience: the truth is events.jsonl, and a failure here never touches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from soaktui.durations import format_duration
from soaktui.log import events as ev
from soaktui.log import rundir
from soaktui.log.safefiles import open_run_text
from soaktui.stats import NA

FILES = rundir.TEXT_LOGS


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return NA
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _took(seconds: Any) -> str:
    return NA if seconds is None else format_duration(float(seconds), compact=True)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe_request(e: dict[str, Any]) -> str:
    """One line with a request's figures (shared by the performance log and headless output)."""
    parts = [
        f"{e.get('scenario')}",
        f"{e.get('model')}",
        "stream" if e.get("stream") else "block",
        "ok" if e.get("ok") else f"FAIL {e.get('error_class')}",
        f"ttft={_fmt(e.get('ttft_ms'), 'ms')}",
        f"e2e={_fmt(e.get('e2e_ms'), 'ms')}",
        f"itl_p50={_fmt(e.get('itl_p50_ms'), 'ms')}",
        f"tok/s={_fmt(e.get('gen_tps'))}",
        f"in={_fmt(e.get('prompt_tokens'))}",
        f"out={_fmt(e.get('output_tokens'))}({e.get('token_source') or NA})",
    ]
    if e.get("concurrency"):
        parts.append(f"conc={e['concurrency']}")
    if e.get("truncated"):
        parts.append("truncated")
    if e.get("cold"):
        parts.append("cold load")
    if e.get("max_gap_ms") is not None and e.get("stalled"):
        parts.append(f"max_gap={_fmt(e['max_gap_ms'], 'ms')}")
    if e.get("server_gen_tps") is not None:
        parts.append(f"server_tok/s={_fmt(e['server_gen_tps'])}")
    return " | ".join(parts)


def describe_test(e: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One line for a finished test (shared by main_test.log and headless output). `names` maps model
    keys to short names (the headless output's); the log keeps the server's model id."""
    m = e.get("metrics") or {}
    model = (names or {}).get(e.get("key") or "", e.get("model"))
    head = f"#{e.get('test_id')} {e.get('scenario')} on {model}: "
    if e.get("ok"):
        head += "PASS"
    elif e.get("error_class") == "cancelled":
        head += f"CANCELLED ({e.get('reason')}; not counted)"
    else:
        head += f"FAIL ({e.get('error_class')}: {e.get('reason')})"
    keys = (
        "ttft_ms",
        "gen_tps",
        "output_tokens",
        "aggregate_tps",
        "concurrency",
        "prompt_tokens",
        "prompt_tps",
        "recover_ms",
        "category",
    )
    detail = [f"{k}={_fmt(m[k])}" for k in keys if m.get(k) is not None]
    tail = f" [{', '.join(detail)}]" if detail else ""
    ms = e.get("duration_ms")
    return f"{head}{tail} in {_took(None if ms is None else ms / 1000)}"


def describe_silence(e: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One line for a streamed request silent for stall_s while its test is still in flight."""
    what = "no byte yet" if e.get("no_byte_yet") else f"after {e.get('output_chunks')} content chunks"
    model = (names or {}).get(e.get("key") or "", e.get("model"))
    return (
        f"#{e.get('test_id')} {e.get('scenario')} on {model}: stream silent for "
        f"{_fmt(e.get('silent_s'), 's', 1)} ({what}; stall limit {_fmt(e.get('stall_s'), 's', 1)}), still waiting"
    )


def describe_outage(e: dict[str, Any]) -> str:
    """One line for a provider going down or coming back (shared by the text logs and headless output)."""
    if e.get("kind") == ev.PROVIDER_UP:
        return (
            f"provider {e.get('provider')} is back after {_fmt(e.get('downtime_s'), 's', 1)} "
            f"({e.get('failed_probes')} probes failed); testing resumes"
        )
    status = f" {e.get('http_status')}" if e.get("http_status") else ""
    return (
        f"provider {e.get('provider')} is down ({e.get('error_class')}{status}: {e.get('message')}); "
        "no tests on it, probing with backoff"
    )


class TextLogSink:
    """Writes the seed-style text logs of a run directory."""

    def __init__(self, run_dir: Path) -> None:
        self._files: dict[str, IO[str]] = {}
        try:  # a new run's logs are new files: a planted symlink or file is refused, not written through
            for name in FILES:
                self._files[name] = open_run_text(Path(run_dir) / name, new=True)
        except OSError:
            self.close()
            raise
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            ev.RUN_STARTED: self._run_started,
            ev.PROVIDERS_DISCOVERED: self._providers,
            ev.MODEL_SWITCHED: self._model_switched,
            ev.REQUEST: self._request,
            ev.SCENARIO_RESULT: self._scenario,
            ev.ERROR: self._error,
            ev.RUN_FINISHED: self._run_finished,
            ev.STATUS: self._status,
            ev.TOOL_CALL: self._tool_call,
            ev.MODEL_CONTEXT: self._model_context,
            ev.STREAM_SILENT: lambda e: self._write("main_test.log", e["t"], describe_silence(e)),
            ev.PROVIDER_DOWN: self._outage,
            ev.PROVIDER_UP: self._outage,
        }

    def _write(self, name: str, t: float, text: str) -> None:
        self._files[name].write(f"{_stamp(t)} | {text}\n")

    def handle(self, event: dict[str, Any]) -> None:
        handler = self._handlers.get(event["kind"])
        if handler is not None:
            handler(event)
        elif event["kind"] in (
            ev.THROTTLE_CHANGED,
            ev.QUIET_HOURS_CHANGED,
            ev.PAUSED,
            ev.RESUMED,
            ev.MODEL_SKIPPED,
            ev.COMMAND,
            ev.THERMAL_GUARD,
        ):
            fields = {k: v for k, v in event.items() if k not in ("v", "run_id", "seq", "t", "mono_ns")}
            self._write("integration_events.log", event["t"], " ".join(f"{k}={v}" for k, v in fields.items()))
            self._write("main_test.log", event["t"], f"{event['kind']}")

    def _outage(self, e: dict[str, Any]) -> None:
        for name in ("main_test.log", "errors.log"):
            self._write(name, e["t"], describe_outage(e))

    def _run_started(self, e: dict[str, Any]) -> None:
        dur = e.get("duration_s")
        text = (
            f"run {e['run_id']} started: duration={'until stopped' if dur is None else _took(dur)} "
            f"throttle={e.get('throttle_pct')}% seed={e.get('seed')} out={e.get('out_dir')}"
        )
        for name in FILES:
            self._write(name, e["t"], text)

    def _providers(self, e: dict[str, Any]) -> None:
        for p in e.get("providers", []):
            self._write(
                "integration_events.log",
                e["t"],
                f"provider {p['name']} kind={p['kind']} url={p['base_url']} models={len(p.get('models', []))}",
            )
            for m in p.get("models", []):
                size = m.get("size_bytes")
                size_txt = "size unknown" if size is None else f"{size / 1e9:.1f} GB"
                if m.get("size_estimated"):
                    size_txt += " (estimated)"
                self._write(
                    "model_profiling.log",
                    e["t"],
                    f"model {m['key']} type={m.get('type')} {size_txt} params={_fmt(m.get('params_b'), 'B')} "
                    f"quant={m.get('quantization') or NA} ctx={_fmt(m.get('context_length'))} "
                    f"ctx_trained={_fmt(m.get('context_trained'))} "
                    f"tools={_fmt(m.get('tool_use'))}",
                )
        for x in e.get("excluded", []):
            self._write("model_profiling.log", e["t"], f"excluded {x['model']}: {x['reason']}")
        self._write("model_profiling.log", e["t"], f"rotation: {', '.join(e.get('selected', []))}")
        for url, why in (e.get("unreachable") or {}).items():
            self._write("integration_events.log", e["t"], f"unreachable {url}: {why}")

    def _model_context(self, e: dict[str, Any]) -> None:
        self._write(
            "model_profiling.log",
            e["t"],
            f"model {e.get('key')} runs with a {_fmt(e.get('context_length'))}-token context "
            f"(planned {_fmt(e.get('previous'))}; {e.get('source')})",
        )

    def _model_switched(self, e: dict[str, Any]) -> None:
        text = describe_switch(e)
        self._write("main_test.log", e["t"], text)
        self._write("model_profiling.log", e["t"], text)

    def _request(self, e: dict[str, Any]) -> None:
        self._write("performance_metrics.log", e["t"], describe_request(e))
        if not e.get("ok"):
            self._write(
                "errors.log",
                e["t"],
                f"{e.get('error_class')} | {e.get('scenario')} | {e.get('model')} | "
                f"{e.get('error') or 'no message'}",
            )
        if e.get("phase"):
            self._write(
                "integration_events.log",
                e["t"],
                f"failover {e.get('phase')} {e.get('provider')}/{e.get('model')} "
                f"{'ok' if e.get('ok') else e.get('error_class')}",
            )

    def _scenario(self, e: dict[str, Any]) -> None:
        self._write("main_test.log", e["t"], describe_test(e))
        if e.get("scenario") == "provider_failover":
            m = e.get("metrics") or {}
            self._write(
                "integration_events.log",
                e["t"],
                f"{m.get('mode')} from={m.get('from_provider')} to={m.get('to_provider')} "
                f"detect={_fmt(m.get('detect_ms'), 'ms')} recover={_fmt(m.get('recover_ms'), 'ms')}",
            )

    def _tool_call(self, e: dict[str, Any]) -> None:
        self._write("tool_calling.log", e["t"], describe_tool_call(e))

    def _error(self, e: dict[str, Any]) -> None:
        self._write("errors.log", e["t"], f"{e.get('error_class')} | {e.get('where')} | {e.get('message')}")

    def _status(self, e: dict[str, Any]) -> None:
        self._write("main_test.log", e["t"], describe_status(e))

    def _run_finished(self, e: dict[str, Any]) -> None:
        text = (
            f"run finished ({e.get('reason')}): {e.get('tests')} tests, {e.get('ok_tests')} passed, "
            f"{e.get('requests')} requests in {_took(e.get('elapsed_s'))}"
        )
        for name in FILES:
            self._write(name, e["t"], text)

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except OSError:
                pass


def describe_tool_call(e: dict[str, Any]) -> str:
    """One line for a scored tool-calling attempt: what was asked, what the model called, the verdict."""
    calls = ", ".join(f"{c.get('name')}({c.get('args')})" for c in e.get("calls") or []) or "no call"
    failed = [name for name, passed in (e.get("checks") or {}).items() if passed is False]
    text = (
        f"{e.get('model')} | {e.get('prompt_id')} ({e.get('prompt_kind')}, {e.get('mode')}) | "
        f"format={e.get('format')} trust={e.get('trust')} | {calls} -> {e.get('verdict')}"
    )
    if failed:
        text += f" [failed: {', '.join(failed)}]"
    if e.get("detail"):
        text += f" ({e['detail']})"
    return text


def describe_switch(e: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """One line for a model switch (main_test.log, model_profiling.log, headless output)."""
    key = e.get("key")
    model = (names or {}).get(key or "", key)
    return f"model -> {model} ({e.get('reason')}, {e.get('planned_tests')} tests planned)"


def describe_status(e: dict[str, Any], names: Mapping[str, str] | None = None) -> str:
    """The status line (main_test.log, headless output, `soaktui ctl status`); `names` as in describe_test."""
    rem = e.get("remaining_s")
    tests = e.get("tests") or 0
    ok = e.get("ok_tests") or 0
    rate = f"{100 * ok / tests:.0f}%" if tests else NA
    model = (names or {}).get(e.get("current_model") or "", e.get("current_model"))
    return (
        f"elapsed {_took(e.get('elapsed_s'))} remaining {'-' if rem is None else _took(rem)} | "
        f"tests {tests} ok {ok} ({rate}) | model {model} | "
        f"throttle {e.get('throttle_pct')}% (effective {e.get('duty_pct', e.get('effective_pct'))}%"
        + (f": {e['pace_reason']}" if e.get("pace_reason") else "")
        + ")"
        + (" | PAUSED" if e.get("paused") else "")
    )
