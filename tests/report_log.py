"""A varied synthetic event log for proving that report optimisations change no figure.

`write_varied_log` writes a few thousand events that reach every fold and every branch the hot
paths take: failures of many classes, cancelled and refitted requests, cold, stalled and cut
requests, the server's own speeds, every scenario, tool calls, telemetry with every sensor family
(temperatures, fans, power, GPUs with throttle reasons, thermal pressure, throttle counters that
restart, gaps longer than a reading holds), the thermal guard, outages, engine errors, events of
known kinds with fields of the wrong type (malformed), unknown kinds, a newer schema, bad lines, a
blank line, a line with a control character (the sanitising pass) and a torn tail.

Deterministic for a seed (random.Random), so tests/data/golden/report_varied.json, made by the
code before an optimisation, pins the report of the same log after it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

MODELS = [
    ("llamacpp@127.0.0.1:8080", "qwen3-8b"),
    ("llamacpp@127.0.0.1:8080", "gemma-3-4b"),
    ("ollama@127.0.0.1:11434", "mistral:7b"),
    ("lmstudio@127.0.0.1:1234", "phi-4-mini"),
]
SCENARIOS = [
    "simple_inference",
    "streaming",
    "prompt_variety",
    "concurrent_load",
    "large_context",
    "provider_failover",
    "tool_calling",
    "structured_output",
]
FAIL_CLASSES = [
    "http_status",
    "read_timeout",
    "connection_dropped",
    "context_overflow",
    "stalled",
    "runaway_stream",
]
TOKEN_SOURCES = [
    "usage",
    "usage",
    "chunks",
    None,
    "chunks (usage rejected: negative completion_tokens)",
    "unknown (usage rejected: cached_tokens above prompt_tokens)",
]
# Fields of the wrong type for a request (malformed events): each breaks a different step.
BAD_REQUEST_FIELDS: list[dict[str, Any]] = [
    {"e2e_ms": "12.5"},
    {"ttft_ms": "fast"},
    {"gen_tps": [1]},
    {"output_tokens": "many"},
    {"itl_p50_ms": {}},
    {"prompt_tps": "x"},
    {"provider": ["a", "list"]},
    {"t": "noon"},
    {"ok": False, "error_class": ["x"]},
    {"cold": True, "ttft_ms": "slow"},
    {"cold": True, "load_ms": "long"},
]


class _Log:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[bytes] = []
        self.seq = 0
        self.t = 1_767_225_600.25
        self.mono = 5_000_000_000

    def emit(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        ev = {"v": 1, "kind": kind, "run_id": "soak_varied", "seq": self.seq, "t": round(self.t, 6)}
        ev["mono_ns"] = self.mono
        ev.update(fields)
        self.lines.append(orjson.dumps(ev))

    def advance(self, s: float) -> None:
        self.t += s
        self.mono += int(s * 1e9)


def _request(
    log: _Log, test_id: int, prov: str, model: str, scen: str, **extra: Any
) -> tuple[bool, dict[str, Any]]:
    rng = log.rng
    stream = scen != "simple_inference" or rng.random() < 0.4
    ok = rng.random() > 0.12
    prompt_tokens = extra.pop("_prompt_tokens", rng.randint(20, 900))
    f: dict[str, Any] = {
        "test_id": test_id,
        "scenario": scen,
        "provider": prov,
        "model": model,
        "stream": stream,
    }
    if ok:
        out = rng.randint(1, 1200)
        ttft = rng.uniform(40, 900)
        e2e = ttft + out * rng.uniform(5, 40)
        f.update(
            ok=True,
            error_class=None,
            error=None,
            http_status=200,
            ttft_ms=round(ttft, 3) if stream else None,
            e2e_ms=round(e2e, 3) if rng.random() > 0.05 else int(e2e),
            itl_p50_ms=round(rng.uniform(5, 40), 3) if stream and rng.random() > 0.05 else None,
            gen_tps=round(rng.uniform(10, 120), 3) if rng.random() > 0.03 else None,
            prompt_tps=round(rng.uniform(100, 3000), 3) if stream and rng.random() > 0.2 else None,
            prompt_tokens=prompt_tokens,
            output_tokens=out if rng.random() > 0.05 else None,
            token_source=rng.choice(TOKEN_SOURCES),
            finish_reason="stop" if rng.random() > 0.1 else "length",
            truncated=rng.random() < 0.1,
        )
    else:
        cls = rng.choice(FAIL_CLASSES)
        if rng.random() < 0.08:
            cls = rng.choice(["cancelled", "tools_did_not_fit"])
        f.update(
            ok=False,
            error_class=cls,
            error=f"{cls}: simulated after {rng.randint(5, 30000)} ms" if rng.random() > 0.1 else None,
            http_status=503 if cls == "http_status" else None,
            e2e_ms=round(rng.uniform(5, 30000), 3),
            ttft_ms=None,
            gen_tps=None,
            prompt_tokens=prompt_tokens if rng.random() < 0.3 else None,
            output_tokens=None,
            token_source=None,
        )
    r = rng.random()
    if r < 0.05:
        f.update(
            cold=True,
            cold_source="ollama /api/ps",
            load_ms=round(rng.uniform(500, 9000), 1) if r < 0.03 else None,
        )
    elif r < 0.08:
        f.update(stalled=True, max_gap_ms=round(rng.uniform(5000, 20000), 1))
    elif r < 0.10:
        f.update(
            prompt_truncated=True,
            prompt_tokens_floor=prompt_tokens + 50,
            prompt_chars=(prompt_tokens + 50) * 6,
        )
    if rng.random() < 0.3 and stream:
        f.update(
            server_gen_tps=round(rng.uniform(10, 150), 3), server_prompt_tps=round(rng.uniform(100, 4000), 3)
        )
    if rng.random() < 0.02 and r >= 0.10:  # (a cut or stalled request with a bad `t` breaks the renderers)
        f.update(rng.choice(BAD_REQUEST_FIELDS))
    f.update(extra)
    log.advance(rng.uniform(0.05, 3.0))
    log.emit("request", **f)
    return bool(f.get("ok")) and f.get("error_class") is None, f


def _telemetry(log: _Log, n: int, sensing: bool) -> None:
    rng = log.rng
    if not sensing:
        log.emit(
            "telemetry",
            source="psutil",
            cpu_pct=round(rng.uniform(5, 90), 1),
            unavailable={"temps": "no hwmon", "power": "RAPL energy_uj is root-only here"},
        )
        return
    ev: dict[str, Any] = {"source": "psutil", "cpu_pct": round(rng.uniform(5, 90), 1)}
    cpu = round(rng.uniform(60, 99), 1)
    if rng.random() > 0.05:
        ev["cpu_temp_c"] = cpu
        ev["temps"] = [{"sensor": "coretemp/Package id 0", "kind": "cpu", "c": cpu, "source": "hwmon"}]
    if rng.random() > 0.3:
        gpu = round(rng.uniform(50, 95), 1)
        reasons = rng.choice([[], ["gpu_idle"], ["sw_thermal_slowdown"], ["sw_power_cap", "hw_slowdown"]])
        ev["gpu_temp_c"] = gpu
        ev["gpus"] = [
            {
                "index": 0,
                "name": "RTX 4090",
                "temp_c": gpu,
                "power_w": round(rng.uniform(30, 400), 1),
                "throttle_reasons": reasons,
                "source": "nvml",
            }
        ]
        ev["gpu_throttle_reasons"] = reasons
    if rng.random() > 0.1:
        ev["power_w"] = round(rng.uniform(20, 450), 2) if rng.random() > 0.02 else 300
        ev["power"] = [{"sensor": "cpu_package", "w": ev["power_w"], "source": "rapl"}]
    if rng.random() > 0.2:
        ev["fan_rpm"] = rng.randint(800, 4800)
        ev["fans"] = [{"sensor": "nct6775/fan2", "rpm": ev["fan_rpm"], "source": "hwmon"}]
    if rng.random() > 0.5:
        ev["thermal_pressure"] = rng.choice(["nominal", "Moderate", "heavy", "trapping", "bogus"])
        ev["thermal_pressure_source"] = "notifyutil"
    ev["cpu_throttle"] = {
        "core_events": n * 3 if n < 400 else n - 400,
        "package_events": n // 7,
        "source": "sysfs thermal_throttle",
    }
    if rng.random() < 0.02:
        ev["cpu_temp_c"] = "hot"  # malformed
    if rng.random() < 0.02:
        ev["unavailable"] = {"thermal_pressure": "not macOS"}
    if rng.random() < 0.25:  # the summary values only, as bench/report_1m.py --sensors writes them
        for k in ("temps", "fans", "power", "gpus", "thermal_pressure", "cpu_throttle", "thermal_pressure_source"):
            ev.pop(k, None)
    log.emit("telemetry", **ev)


def write_varied_log(
    path: Path, seed: int = 7, tests: int = 1400, dirty: bool = True, hardware: bool = True
) -> Path:
    """Write the log to `path` (see the module docstring); returns `path`. `dirty=False` leaves out
    the line with a control character, so the reader takes its clean path; `hardware=False` leaves
    out the telemetry and thermal guard events (a machine without sensors: the log report/split.py
    joins from two halves)."""
    rng = random.Random(seed)
    log = _Log(rng)
    log.emit(
        "run_started",
        version="0.1.0",
        host={"hostname": "golden", "cpus": 8},
        seed=seed,
        duration_s=86400,
        throttle_pct=100,
        scenarios={s: 1.0 for s in SCENARIOS},
        settings={"thermal": {"cpu_temp_limit_c": 88.0, "gpu_temp_limit_c": 85.0, "pressure_limit": "heavy"}},
    )
    log.emit(
        "providers_discovered",
        providers=[],
        selected=[f"{p}/{m}" for p, m in MODELS[:3]],
        excluded=[],
        probed=[],
        unreachable={},
    )
    log.emit(
        "model_context",
        provider=MODELS[0][0],
        model=MODELS[0][1],
        key="/".join(MODELS[0]),
        context_length=16384,
        previous=32768,
        context_trained=131072,
        source="ollama /api/ps",
    )
    last_reading = log.t
    readings = 0
    for test_id in range(1, tests + 1):
        prov, model = MODELS[(test_id // 5) % len(MODELS)]
        scen = rng.choice(SCENARIOS)
        gap = 30.0 if test_id % 211 == 0 else 2.0  # now and then the readings stop for a while
        while log.t - last_reading >= gap:
            last_reading = log.t if gap == 2.0 else log.t - 1.0
            readings += 1
            if hardware:
                _telemetry(log, readings, sensing=test_id > 40)
            break
        if test_id % 97 == 0 and hardware:
            state = rng.choice(["ok", "reduced", "paused", "melting"])
            log.emit(
                "thermal_guard",
                state=state,
                previous="ok",
                cap_pct=30,
                duty_pct=30,
                reason="cpu 96.0°C > limit 88°C",
                held_s=12.5,
            )
        if test_id % 53 == 0:
            log.emit(
                rng.choice(
                    [
                        "throttle_changed",
                        "paused",
                        "resumed",
                        "command",
                        "status",
                        "model_skipped",
                        "model_switched",
                        "test_started",
                        "stream_silent",
                        "mystery_kind",
                    ]
                ),
                pct=50,
                source="command",
                command="throttle",
                arg="50",
                ok=True,
                message="done",
            )
        if test_id % 131 == 0:
            log.emit(
                "provider_down",
                provider=prov,
                error_class="connection_refused",
                http_status=None,
                message="refused",
                failed_requests=3,
                next_probe_s=1.0,
            )
            log.advance(rng.uniform(5, 60))
            log.emit(
                "provider_up",
                provider=prov,
                downtime_s=12.0,
                down_since_t=log.t - 12,
                failed_probes=2,
                last_error="refused",
            )
        if test_id % 173 == 0:
            log.emit(
                "error", error_class=rng.choice(["sink", "log_lost"]), where="engine", message="a problem"
            )
        metrics: dict[str, Any] = {}
        t0 = log.t
        if scen == "concurrent_load":
            conc = rng.choice([2, 4, 8])
            res = [_request(log, test_id, prov, model, scen, concurrency=conc) for _ in range(conc)]
            succ = sum(ok for ok, _ in res)
            metrics = {
                "concurrency": conc,
                "succeeded": succ,
                "failed": conc - succ,
                "aggregate_tps": round(rng.uniform(20, 400), 3),
                "wall_ms": 1000.0,
                "latency_p50_ms": round(rng.uniform(100, 3000), 3),
                "saturated": succ < conc,
            }
            if rng.random() < 0.05:
                metrics["succeeded"] = None
            ok = succ == conc
        elif scen == "large_context":
            target = rng.choice([2000, 8000, 20000, 40000, 100000])
            ok, f = _request(
                log, test_id, prov, model, scen, context_target_tokens=target, _prompt_tokens=target
            )
            metrics = {"context_target_tokens": target, "prompt_tokens": f.get("prompt_tokens")}
        elif scen == "prompt_variety":
            cat = rng.choice(["coding", "math", "summarise", None])
            ok, _ = _request(log, test_id, prov, model, scen, category=cat, prompt_id=f"{cat}-1")
            ok = ok and rng.random() < 0.85
            metrics = {
                "prompt_id": f"{cat}-1",
                "category": cat,
                "checks": {"answer": ok, "format": rng.random() < 0.9},
            }
        elif scen == "provider_failover":
            ok, _ = _request(log, test_id, prov, model, scen, phase="primary")
            metrics = {
                "mode": rng.choice(["failover", "recovery", "cold_load"]),
                "detect_ms": round(rng.uniform(5, 50), 3),
                "recover_ms": round(rng.uniform(50, 5000), 3) if ok else None,
                "attempts": rng.randint(1, 4),
                "cold_load_ms": round(rng.uniform(500, 8000), 1),
                "from_provider": prov,
                "to_provider": prov,
            }
        elif scen == "tool_calling":
            ok, _ = _request(log, test_id, prov, model, scen, tool_mode="native", turn=1, tools_offered=3)
            verdict = (
                "correct"
                if ok and rng.random() < 0.7
                else rng.choice(["missed_call", "bad_args", "unparsed_call"])
            )
            metrics = {
                "prompt_id": "weather-1",
                "prompt_kind": rng.choice(["explicit", "implicit", "parallel"]),
                "mode": rng.choice(["native", "prompted"]),
                "format": rng.choice(["native", "hermes", "unparsed"]),
                "trust": rng.randint(0, 3),
                "verdict": verdict,
                "correct": verdict == "correct",
                "checks": {"decision": ok, "name": ok, "args_parse": None},
                "detail": None,
            }
            log.emit(
                "tool_call",
                test_id=test_id,
                scenario=scen,
                provider=prov,
                model=model,
                key=f"{prov}/{model}",
                **metrics,
            )
            ok = verdict == "correct"
        elif scen == "structured_output":
            ok, _ = _request(log, test_id, prov, model, scen, schema_id="invoice", mode="json_schema")
            valid = ok and rng.random() < 0.8
            metrics = {
                "schema_id": "invoice",
                "mode": rng.choice(["json_schema", "instruction"]),
                "parsed": ok,
                "schema_valid": valid,
                "failure": None if valid else "schema_violation",
            }
            ok = valid
        else:
            ok, _ = _request(log, test_id, prov, model, scen)
        if rng.random() < 0.03:
            metrics = ["not", "a", "dict"]  # type: ignore[assignment]
        cancelled = rng.random() < 0.02
        log.emit(
            "scenario_result",
            test_id=test_id,
            scenario=scen,
            provider=prov,
            model=model,
            ok=ok if rng.random() > 0.01 else 1,
            reason=None if ok else f"{scen} failed: check {test_id % 60}",
            error_class="cancelled"
            if cancelled
            else (None if ok else rng.choice(["check_failed", "http_status"])),
            requests=1,
            duration_ms=round((log.t - t0) * 1000, 3) if rng.random() > 0.01 else "long",
            metrics=metrics,
        )
    log.emit(
        "run_finished", reason="duration", elapsed_s=round((log.mono - 5_000_000_000) / 1e9, 3), tests=tests
    )
    lines = log.lines
    lines.insert(len(lines) // 3, b"")  # a blank line
    lines.insert(len(lines) // 2, b'{"kind": "request", "broken')  # a damaged middle line
    lines.insert(len(lines) // 2 + 5, b"[1, 2, 3]")  # valid JSON, not an event
    newer = orjson.loads(lines[len(lines) // 4])
    newer["v"] = 2
    lines.insert(len(lines) // 4, orjson.dumps(newer))
    if dirty:
        bad = orjson.loads(lines[-40])
        bad.update(
            kind="request",
            ok=False,
            error_class="http_status",
            error="server said \x1b]0;pwned\x07 no",
            provider=MODELS[0][0],
            model=MODELS[0][1],
            scenario="streaming",
        )
        lines.insert(len(lines) - 30, orjson.dumps(bad))
    path.write_bytes(b"\n".join(lines) + b'\n{"v": 1, "kind": "request", "t": 1')  # torn tail
    return path


__all__ = ["write_varied_log"]
