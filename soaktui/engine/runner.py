"""The soak loop: pick a scenario, run it on the current model, record it, idle, repeat.

One test at a time (concurrency lives inside the concurrent_load scenario). Between tests the
engine idles to honour the duty cycle. Commands (pause, resume, skip, throttle, quiet hours, stop)
arrive from the control socket or signal handlers and take effect at once: a skip or a stop cancels
the test in flight (a stop first gives it `grace_s` to finish). The run never overshoots its
duration by more than the grace period. Every change becomes an event; the engine itself keeps
only counters, so its memory does not grow with the length of the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from soaktui import errors
from soaktui.config import Settings
from soaktui.engine.inflight import InFlight
from soaktui.engine.outages import PROBE, PROBE_TIMEOUT_S, PROBE_TOKENS, Outages
from soaktui.engine.picker import ScenarioPicker
from soaktui.engine.rotation import Rotation, Turn
from soaktui.engine.thermal_guard import ThermalGuard
from soaktui.engine.throttle import Throttle, idle_seconds
from soaktui.log import events as ev
from soaktui.log.events import EventBus
from soaktui.providers import load_state
from soaktui.providers.client import ChatClient
from soaktui.providers.types import ModelInfo, Provider
from soaktui.scenarios import REGISTRY
from soaktui.scenarios.base import Outcome, Scenario, ScenarioContext
from soaktui.telemetry.sampler import TelemetrySampler
from soaktui.thermal import PAUSED

GUARD_STALE_S = 10.0  # a reading older than this (or 5 sampling intervals) is no reading for the guard


SILENCE_CHECK_S = 1.0  # how often the in-flight requests are checked for a silence of stall_s


def model_tags(m: ModelInfo) -> dict[str, str]:
    """The fields that name a model in every event about it."""
    return {"provider": m.provider, "model": m.id, "key": m.key}


def _rss_bytes() -> int | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # psutil can fail in odd sandboxes; the figure is then unavailable
        return None


class Engine:
    def __init__(
        self,
        bus: EventBus,
        providers: list[Provider],
        models: list[ModelInfo],
        clients: dict[str, ChatClient],
        throttle: Throttle,
        settings: Settings,
        weights: dict[str, float],
        prompts: Any = None,
        scenarios: Mapping[str, Callable[[], Scenario]] | None = None,
        sampler: TelemetrySampler | None = None,
    ) -> None:
        self.bus = bus
        self.providers = providers
        self.clients = clients
        self.throttle = throttle
        self.settings = settings
        self.prompts = prompts
        registry = scenarios if scenarios is not None else REGISTRY
        weights = {n: w for n, w in weights.items() if n in registry}
        self.scenarios = {n: registry[n]() for n in weights if weights[n] > 0}
        self.rng = random.Random(settings.seed)
        self.rotation = Rotation(
            models, random.Random(self.rng.random()), settings.rotation.min_tests, settings.rotation.max_tests
        )
        self.picker = ScenarioPicker(
            {n: weights[n] for n in self.scenarios}, random.Random(self.rng.random())
        )
        self._provider_by_name = {p.name: p for p in providers}
        self._model_state: dict[str, dict[str, Any]] = {}
        self._last_failure: dict[str, tuple[int, str]] = {}
        self.tests = 0
        self.ok_tests = 0
        self.requests = 0
        self.paused = False
        self._resume = asyncio.Event()
        self._resume.set()
        self._wake = asyncio.Event()  # throttle / quiet hours / stop changed: recompute idle
        self._stop_reason: str | None = None
        self._stop_now = False
        self._stop_event = asyncio.Event()
        self._test_task: asyncio.Task | None = None
        self._cancel_why: str | None = None
        self._started = time.monotonic()
        self._last_effective = throttle.effective()
        # Hardware and server readings on their own thread (started by run()); the loop only reads them.
        self.sampler = sampler or TelemetrySampler(
            providers, interval_s=min(1.0, settings.output.telemetry_interval)
        )
        # The thermal guard caps the duty cycle or pauses testing while the machine is too hot.
        self.guard = ThermalGuard(settings.thermal) if settings.thermal.enabled else None
        self._guard_clear = asyncio.Event()  # set unless the guard has paused testing
        self._guard_clear.set()
        # Providers that are down: no test runs on them, they are probed with backoff (outages.py).
        self.outages = Outages(random.Random(None if settings.seed is None else settings.seed + 7919))
        # The test in flight and how long its requests have been silent (status `now`, stream_silent).
        self.inflight = InFlight(clients, settings.thresholds.stall_s)

    # -- time ------------------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def remaining_s(self) -> float | None:
        if self.settings.duration is None:
            return None
        return max(0.0, self.settings.duration - self.elapsed_s())

    # -- events ----------------------------------------------------------------------------------
    def _emit_request(self, fields: dict[str, Any]) -> None:
        self.requests += 1
        sent = fields.get("sent_mono_ns")
        if isinstance(sent, int):  # temperatures and power seen while the request ran
            e2e = fields.get("e2e_ms")
            end = sent + int(e2e * 1e6) if isinstance(e2e, (int, float)) else time.perf_counter_ns()
            fields.update(self.sampler.window(sent, end))
        self.outages.observe(fields)
        if not fields.get("ok") and fields.get("error_class") in errors.UNAVAILABLE:
            self._last_failure[fields["provider"]] = (time.perf_counter_ns(), fields["error_class"])
        self.bus.emit(ev.REQUEST, **fields)

    def _emit_switch(self, turn: Turn) -> None:
        self.bus.emit(
            ev.MODEL_SWITCHED,
            **model_tags(turn.model),
            reason=turn.reason,
            planned_tests=turn.planned_tests,
            position=turn.position,
            upcoming=[u.key for u in self.rotation.upcoming()],
        )

    def status_fields(self) -> dict[str, Any]:
        return {
            "elapsed_s": round(self.elapsed_s(), 3),
            "remaining_s": None if self.remaining_s() is None else round(self.remaining_s(), 3),
            "tests": self.tests,
            "ok_tests": self.ok_tests,
            "requests": self.requests,
            "current_model": self.rotation.current.key,
            "throttle_pct": self.throttle.pct,
            "effective_pct": self.throttle.effective(),
            "quiet_hours": self.throttle.quiet_enabled,
            "paused": self.paused,
            "thermal_state": self.guard.state if self.guard is not None else "off",
            "thermal_cap_pct": self.guard.cap_pct if self.guard is not None else None,
            "duty_pct": self.duty_pct(),
            "pace_reason": self.pace_reason(),
            "now": self.inflight.now(),
            "providers_down": sorted(self.outages.down),
        }

    def pace_reason(self) -> str | None:
        """Why the pace applied differs from the throttle the user set (None when it does not):
        shown on the dashboard's header, the status line and `ctl status`."""
        if self.paused:
            return "paused by command"
        t = self.throttle
        cap = self.guard.cap_pct if self.guard is not None else None
        if cap is not None and cap < t.effective():
            why = self.guard.reason if self.guard is not None and self.guard.reason else "over a limit"
            return f"thermal guard: {why}"
        if t.effective() < t.pct:
            return f"quiet hours until {t.quiet_end[0]:02d}:{t.quiet_end[1]:02d}"
        if self.outages.all_down(m.provider for m in self.rotation.models):
            return f"waiting: {self.outages.describe()}"
        return None

    async def _around_outages(self) -> bool:
        """Probe the down providers that are due; True when the current model's provider is up
        (moving the rotation to a model of a provider that is up when needed), False after
        waiting for the next probe while every provider is down."""
        for o in self.outages.due():
            await self._probe(o.provider)
        if not self.outages.is_down(self.rotation.current.provider):
            return True
        if not self.outages.all_down(m.provider for m in self.rotation.models):
            turn = self.rotation.advance("provider_down")
            while self.outages.is_down(turn.model.provider):
                turn = self.rotation.advance("provider_down")
            self._emit_switch(turn)
            return True
        wait = self.outages.seconds_to_next_probe() or 0.0
        rem = self.remaining_s()
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=wait if rem is None else min(wait, rem))
        except asyncio.TimeoutError:
            pass
        return False

    async def _probe(self, provider: str) -> None:
        """One tiny chat request to a down provider (not a test: no request event); a reply ends
        its outage with `provider_up`."""
        cur = self.rotation.current
        model = cur if cur.provider == provider else next(m for m in self.rotation.models if m.provider == provider)
        r = await self.clients[provider].chat(
            model.id, PROBE, stream=False, max_tokens=PROBE_TOKENS, total_timeout_s=PROBE_TIMEOUT_S
        )
        up = self.outages.probe_result(provider, r.ok, None if r.ok else f"{r.error_class}: {r.error}")
        if up is not None:
            self.bus.emit(ev.PROVIDER_UP, **up)

    def duty_pct(self) -> int:
        """The duty cycle applied now: the throttle (with quiet hours), capped by the thermal guard."""
        eff = self.throttle.effective()
        cap = self.guard.cap_pct if self.guard is not None else None
        return eff if cap is None else min(eff, cap)

    def _check_guard(self) -> None:
        """Show the guard the sampler's latest reading (none when stale); emit and apply a change."""
        if self.guard is None:
            return
        reading = self.sampler.latest()
        sampled = reading.get("sample_mono_ns") if reading is not None else None
        stale_ns = max(GUARD_STALE_S, 5 * self._guard_interval_s()) * 1e9
        if isinstance(sampled, int) and time.perf_counter_ns() - sampled > stale_ns:
            reading = None  # the sampler stopped: no decision on an old reading
        change = self.guard.update(reading)
        if change is None:
            return
        if change.state == PAUSED:
            self._guard_clear.clear()
        else:
            self._guard_clear.set()
        self.bus.emit(ev.THERMAL_GUARD, **change.event_fields(), duty_pct=self.duty_pct())
        self._wake.set()  # an idle in progress recomputes with the new duty cycle

    def _guard_interval_s(self) -> float:
        interval = getattr(self.sampler, "interval_s", None)
        return interval if isinstance(interval, (int, float)) and interval > 0 else 1.0

    async def _guard_loop(self) -> None:
        while True:
            await asyncio.sleep(self._guard_interval_s())
            self._check_guard()

    async def _wait_guard(self) -> None:
        """Wait while the guard keeps testing paused (a stop or the end of the run ends the wait)."""
        waiters = {
            asyncio.create_task(self._guard_clear.wait()),
            asyncio.create_task(self._stop_event.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=self.remaining_s(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _check_quiet_hours(self) -> None:
        eff = self.throttle.effective()
        if eff != self._last_effective:
            self._last_effective = eff
            self.bus.emit(ev.THROTTLE_CHANGED, pct=self.throttle.pct, effective_pct=eff, source="quiet_hours")

    # -- commands ----------------------------------------------------------------------------------
    def command(self, name: str, arg: Any = None) -> dict[str, Any]:
        """Apply one command; returns {"ok", "message", "state"}. Safe to call from the loop only."""
        ok, message = True, ""
        if name == "pause":
            if self.paused:
                message = "already paused"
            else:
                self.paused = True
                self._resume.clear()
                self.bus.emit(ev.PAUSED, source="command")
                message = "paused (the test in flight finishes first)"
        elif name == "resume":
            if not self.paused:
                message = "not paused"
            else:
                self.paused = False
                self._resume.set()
                self.bus.emit(ev.RESUMED, source="command")
                message = "resumed"
        elif name == "skip":
            done = self.rotation.turn.done
            old = self.rotation.current.key
            turn = self.rotation.skip()
            self.bus.emit(ev.MODEL_SKIPPED, key=old, tests_done=done, source="command")
            self._emit_switch(turn)
            self._cancel_test(f"model {old} skipped")
            message = f"skipped {old}; now {turn.model.key}"
        elif name == "throttle":
            pct = self._parse_throttle(arg)
            if pct is None:
                ok, message = False, f"throttle takes 1..100 or +N/-N, got {arg!r}"
            else:
                self.throttle.pct = pct
                self._last_effective = self.throttle.effective()
                self.bus.emit(
                    ev.THROTTLE_CHANGED, pct=pct, effective_pct=self._last_effective, source="command"
                )
                self._wake.set()
                message = f"throttle {pct}% (effective {self._last_effective}%)"
        elif name == "quiet":
            want = {"on": True, "off": False}.get(str(arg).lower(), not self.throttle.quiet_enabled)
            self.throttle.quiet_enabled = want
            self._last_effective = self.throttle.effective()
            self.bus.emit(
                ev.QUIET_HOURS_CHANGED,
                enabled=want,
                active=self.throttle.quiet_active(),
                effective_pct=self._last_effective,
            )
            self._wake.set()
            message = f"quiet hours {'on' if want else 'off'} (effective {self._last_effective}%)"
        elif name == "stop":
            self.request_stop("stopped")
            message = "stopping: the test in flight gets its grace period, then the report is written"
        elif name == "status":
            message = "status"
        else:
            ok, message = False, f"unknown command {name!r}"
        if name != "status":
            self.bus.emit(ev.COMMAND, command=name, arg=arg, ok=ok, message=message)
        return {"ok": ok, "message": message, "state": self.status_fields()}

    def _parse_throttle(self, arg: Any) -> int | None:
        try:
            if isinstance(arg, str) and arg[:1] in "+-":
                value = self.throttle.pct + int(arg)
                return min(100, max(1, value))
            value = int(arg)
        except (TypeError, ValueError):
            return None
        return value if 1 <= value <= 100 else None

    def request_stop(self, reason: str, *, now: bool = False) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_event.set()
        self._resume.set()
        self._wake.set()
        if now:
            self._stop_now = True
            self._cancel_test("stopped at once")

    def _cancel_test(self, why: str) -> None:
        if self._test_task is not None and not self._test_task.done():
            self._cancel_why = why
            self._test_task.cancel()

    # -- the loop ------------------------------------------------------------------------------------
    def _context(self, test_id: int, name: str) -> ScenarioContext:
        model = self.rotation.current
        provider = self._provider_by_name[model.provider]
        return ScenarioContext(
            test_id=test_id,
            scenario=name,
            model=model,
            provider=provider,
            client=self.clients[provider.name],
            providers=self.providers,
            clients=self.clients,
            rng=random.Random(self.rng.random()),
            settings=self.settings,
            model_state=self._model_state.setdefault(model.key, {}),
            emit_request=self._emit_request,
            remaining_s=self.remaining_s,
            last_failure=self._last_failure.get,
            prompts=self.prompts,
            emit_event=self.bus.emit,
        )

    async def _check_loaded(self, ctx: ScenarioContext) -> None:
        """Ask the server whether the model is loaded (servers that load on demand): if not, this
        test's first requests wait for a load and are marked `cold`. A runtime context the server
        reports for the loaded model replaces the one discovery planned with."""
        if not load_state.can_check(ctx.provider):
            return
        try:
            found = await load_state.check(ctx.client, ctx.provider, ctx.model)
        except Exception as exc:  # a probe must never cost a test
            self.bus.emit(ev.ERROR, error_class=errors.OTHER, where="load_check", message=f"{exc!r}"[:300])
            return
        if found is None:
            return
        if found.loaded is False:
            ctx.cold_pending = True
            ctx.cold_source = found.source
        m = ctx.model
        if found.runtime_context and found.runtime_context != m.context_length:
            previous = m.context_length
            m.context_length = found.runtime_context
            m.context_is_floor = False
            m.source["context_length"] = f"{found.source} (runtime)"
            self.bus.emit(
                ev.MODEL_CONTEXT,
                **model_tags(m),
                context_length=m.context_length,
                previous=previous,
                context_trained=m.context_trained,
                source=m.source["context_length"],
            )

    async def _run_test(self, name: str, ctx: ScenarioContext) -> Outcome:
        self._cancel_why = None
        self._test_task = asyncio.create_task(self.scenarios[name].run(ctx), name=f"test-{ctx.test_id}")
        task = self._test_task
        try:
            deadline_wait = self.remaining_s()
            stop_wait = asyncio.create_task(self._stop_event.wait())
            try:
                await asyncio.wait(
                    {task, stop_wait}, timeout=deadline_wait, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop_wait.cancel()
            if not task.done():
                # Stop requested or the run's time is up: a bounded grace period, then cancel.
                if self._stop_reason is None:
                    self._stop_reason = "duration"
                if not self._stop_now:
                    await asyncio.wait({task}, timeout=self.settings.timeouts.grace)
                if not task.done():
                    self._cancel_why = self._cancel_why or "run ended (grace period over)"
                    task.cancel()
            try:
                return await task
            except asyncio.CancelledError:
                if self._cancel_why is None:  # not our cancel: the engine itself is being cancelled
                    raise
                return Outcome(False, self._cancel_why or "cancelled", errors.CANCELLED)
            except Exception as exc:  # a bug in a scenario must not end an overnight run
                self.bus.emit(
                    ev.ERROR,
                    error_class=errors.OTHER,
                    where=f"scenario:{name}",
                    message=f"{type(exc).__name__}: {exc}",
                )
                return Outcome(False, f"scenario crashed: {type(exc).__name__}: {exc}", errors.OTHER)
        finally:
            self._test_task = None

    async def _idle(self, work_s: float) -> None:
        waited = 0.0
        while self._stop_reason is None:
            if self.guard is not None and self.guard.paused:
                return  # the loop waits for the guard instead
            target = idle_seconds(work_s, self.duty_pct())
            rem = self.remaining_s()
            left = target - waited
            if rem is not None:
                left = min(left, rem)
            if left <= 0:
                return
            self._wake.clear()
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
            waited += time.monotonic() - t0
            self._check_quiet_hours()

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.output.status_interval)
            self._check_quiet_hours()
            self.bus.emit(ev.STATUS, **self.status_fields(), rss_bytes=_rss_bytes())

    async def _silence_loop(self) -> None:
        """Once a second: say when a streamed request in flight has gone silent for stall_s."""
        while True:
            await asyncio.sleep(SILENCE_CHECK_S)
            self.inflight.check(self.bus.emit)

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.output.telemetry_interval)
            reading = self.sampler.latest()
            if reading is not None:
                self.bus.emit(ev.TELEMETRY, **reading)

    async def run(self) -> str:
        """Run until the duration is over or a stop is requested; returns the finish reason."""
        self._started = time.monotonic()
        self._emit_switch(self.rotation.turn)
        status = asyncio.create_task(self._status_loop())
        silence = asyncio.create_task(self._silence_loop())
        self.sampler.start()
        telemetry = asyncio.create_task(self._telemetry_loop())
        guard = asyncio.create_task(self._guard_loop()) if self.guard is not None else None
        test_id = 0
        try:
            while self._stop_reason is None:
                if self.remaining_s() == 0.0:
                    self._stop_reason = "duration"
                    break
                if self.paused:
                    waiter = asyncio.create_task(self._resume.wait())
                    await asyncio.wait({waiter}, timeout=self.remaining_s())
                    waiter.cancel()
                    continue
                self._check_guard()
                if self.guard is not None and self.guard.paused:
                    await self._wait_guard()  # the test in flight (if any) was left to finish
                    continue
                self._check_quiet_hours()
                if self.outages.down and not await self._around_outages():
                    continue
                name = self.picker.pick()
                test_id += 1
                ctx = self._context(test_id, name)
                turn = self.rotation.turn
                await self._check_loaded(ctx)
                tags = {"test_id": test_id, "scenario": name, **model_tags(ctx.model)}
                self.bus.emit(
                    ev.TEST_STARTED,
                    **tags,
                    planned_requests=self.scenarios[name].planned_requests(ctx),
                    cold=ctx.cold_pending,
                )
                self.inflight.begin(tags)
                t0 = time.perf_counter_ns()
                try:
                    outcome = await self._run_test(name, ctx)
                finally:
                    self.inflight.end()
                work_s = (time.perf_counter_ns() - t0) / 1e9
                self.tests += 1
                self.ok_tests += bool(outcome.ok)
                self.bus.emit(
                    ev.SCENARIO_RESULT,
                    **tags,
                    ok=outcome.ok,
                    reason=outcome.reason,
                    error_class=outcome.error_class,
                    requests=ctx.requests,
                    duration_ms=round(work_s * 1e3, 3),
                    metrics=outcome.metrics,
                )
                for down in self.outages.test_done():
                    self.bus.emit(ev.PROVIDER_DOWN, **down)
                if self.rotation.turn is turn and self._stop_reason is None:
                    new_turn = self.rotation.record_test()
                    if new_turn is not None:
                        self._emit_switch(new_turn)
                await self._idle(work_s)
        finally:
            status.cancel()
            silence.cancel()
            telemetry.cancel()
            if guard is not None:
                guard.cancel()
            self.sampler.stop()
        return self._stop_reason or "stopped"
