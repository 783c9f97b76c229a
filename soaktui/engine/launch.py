"""Wires one soak run together: servers, run directory, sinks, control socket, engine, report.

Order matters for "nothing lost": discovery first (no run directory is created for a run that
cannot start), then the run directory and the JSONL writer (always the first sink), then the
derived sinks. At the end the report is built by folding events.jsonl, the same path as
`soaktui report`. A failure of the JSONL writer (a full disk) stops the run with one message;
everything already written stays readable.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import socket
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soaktui import __version__
from soaktui.config import Settings
from soaktui.engine.control import ControlServer
from soaktui.engine.demo import SPEED, demo_settings, simulator_args
from soaktui.engine.runner import Engine
from soaktui.engine.throttle import Throttle
from soaktui.errors import SetupError
from soaktui.hints import command
from soaktui.locations import claim_out_dir, new_run_dir
from soaktui.log import events as ev
from soaktui.log import rundir
from soaktui.log.events import EventBus
from soaktui.log.textsafe import Sanitiser
from soaktui.log.writer import JsonlWriter
from soaktui.profiles.capdb import record_snapshot
from soaktui.providers.client import ChatClient
from soaktui.providers.discovery import discover, no_servers_message
from soaktui.providers.selection import select_models
from soaktui.providers.types import Selection
from soaktui.report import build_report, write_report_files
from soaktui.scenarios import REGISTRY
from soaktui.scenarios.banks import load_prompt_bank, scenario_factories
from soaktui.simulator.launcher import SimulatorProcess
from soaktui.sinks.console import JsonStdout, ProgressPrinter, say
from soaktui.sinks.summary import SummarySink
from soaktui.sinks.textlogs import TextLogSink

if TYPE_CHECKING:
    from soaktui.sinks.metrics import MetricsSink


@dataclass
class RunRequest:
    settings: Settings
    demo: bool = False
    json_events: bool = False
    quiet: bool = False  # no progress lines (tests)
    prompt_dirs: tuple[Path, ...] = ()


async def find_models(settings: Settings, base_urls: list[str], *, probe_defaults: bool) -> Selection:
    providers, probed, unreachable = await discover(
        base_urls,
        probe_defaults=probe_defaults,
        api_key=settings.api_key,
        timeout_s=settings.timeouts.discovery,
    )
    selection = select_models(
        providers,
        max_size_gb=settings.max_size_gb,
        include_cloud=settings.include_cloud,
        include=list(settings.models),
        exclude=list(settings.exclude),
    )
    selection.probed = probed
    selection.unreachable = unreachable
    return selection


def _prepare_run_dir(settings: Settings) -> tuple[str, Path]:
    if settings.out is None:
        return new_run_dir()
    out, _ = claim_out_dir(Path(settings.out))
    return out.name, out


def _serve_metrics(s: Settings) -> MetricsSink | None:
    """The Prometheus endpoint when `metrics.port` is set; SetupError when it cannot listen.
    prometheus_client is imported only then: a run without the endpoint does not pay for it."""
    if not s.metrics.port:
        return None
    from soaktui.sinks.metrics import MetricsSink
    sink = MetricsSink()
    try:
        sink.serve(s.metrics.port, s.metrics.bind)
    except OSError as exc:
        raise SetupError(
            f"cannot serve metrics on {s.metrics.bind}:{s.metrics.port}: {exc.strerror or exc}"
        ) from None
    return sink


def _host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


async def run_soak(req: RunRequest) -> int:
    """Run one soak; returns the process exit code. SetupError propagates to the CLI."""
    s = demo_settings(req.settings) if req.demo else req.settings
    weights = {n: w for n, w in s.enabled_weights.items() if n in REGISTRY}
    if not weights:
        raise SetupError(
            f"none of the chosen scenarios can run yet ({', '.join(s.selected_scenarios)}); "
            f"available: {', '.join(REGISTRY)}"
        )
    prompt_dirs = [*s.prompt_dirs, *req.prompt_dirs]
    prompts = load_prompt_bank(prompt_dirs)
    scenarios = scenario_factories(prompt_dirs)
    async with AsyncExitStack() as stack:
        base_urls = list(s.base_urls)
        if req.demo:
            sim = SimulatorProcess(seed=s.seed, extra_args=simulator_args())
            await asyncio.to_thread(sim.start)
            stack.callback(sim.stop)
            base_urls.append(sim.base_url)
            say(
                f"demo: built-in simulator at {sim.base_url}, in compressed time ({SPEED:g}x faster, "
                "short answers, quiet hours do not apply)"
            )
        selection = await find_models(s, base_urls, probe_defaults=not base_urls)
        if not selection.providers:
            raise SetupError(no_servers_message(selection.probed, selection.unreachable))
        if not selection.selected:
            why = "; ".join(f"{m.key}: {r}" for m, r in selection.excluded) or "the servers list no models"
            raise SetupError(f"no model to test ({why})")

        metrics = _serve_metrics(s)  # before the run directory: a port in use stops the run cleanly
        if metrics is not None:
            stack.callback(metrics.close)
        run_id, run_dir = _prepare_run_dir(s)
        say(f"soaktui run {run_id}: writing to {run_dir}")
        stop_reason: list[str] = []
        # Every event's server text is neutralised and the key redacted before any sink stores it:
        # a server that echoes the Authorization header must not put the key into the run's files.
        bus = EventBus(run_id, sanitise=Sanitiser([s.api_key]).neutralise)
        try:
            writer = JsonlWriter(run_dir / rundir.EVENTS, fsync_interval_s=s.output.fsync_interval)
        except OSError as exc:
            raise SetupError(f"cannot write {run_dir / rundir.EVENTS}: {exc.strerror or exc}") from None
        bus.add_sink(writer)
        loop = asyncio.get_running_loop()

        def log_lost(info: dict[str, Any]) -> None:
            # Called inside the writer's handle(): the error event goes out once this one is done.
            message = (
                f"events.jsonl was {info['why']} during the run: the {info['lines_in_lost_file']} events "
                "written to it before are gone from this run's log; a new events.jsonl continues from here"
            )
            loop.call_soon(lambda: bus.emit(ev.ERROR, error_class="log_lost", where="events.jsonl", message=message))

        writer.on_lost = log_lost
        for make in (
            lambda: TextLogSink(run_dir),
            lambda: SummarySink(run_dir, interval_s=s.output.summary_interval),
        ):
            try:
                bus.add_sink(make())
            except OSError as exc:
                say(f"warning: {exc.strerror or exc}: {getattr(exc, 'filename', '')} (the run continues)")
        if not req.quiet:
            bus.add_sink(ProgressPrinter())
        if req.json_events:
            bus.add_sink(JsonStdout())
        if metrics is not None:
            bus.add_sink(metrics)
            if not req.quiet:
                say(f"metrics: http://{s.metrics.bind}:{metrics.port}/metrics (Prometheus)")

        clients = {
            p.name: ChatClient(
                p.base_url,
                api_key=s.api_key,
                connect_timeout_s=s.timeouts.connect,
                read_timeout_s=s.timeouts.read,
                transport=s.http_transport,
            )
            for p in selection.providers
        }
        for c in clients.values():
            stack.push_async_callback(c.aclose)
        q = s.quiet_hours
        throttle = Throttle(
            pct=s.throttle,
            quiet_enabled=q.enabled,
            quiet_start=q.start_hm,
            quiet_end=q.end_hm,
            quiet_pct=q.throttle,
        )
        engine = Engine(
            bus,
            selection.providers,
            selection.selected,
            clients,
            throttle,
            s,
            weights,
            prompts=prompts,
            scenarios=scenarios,
        )

        def sink_failed(sink: Any, exc: BaseException) -> None:
            if sink is writer:
                say(
                    f"error: cannot write events.jsonl ({getattr(exc, 'strerror', None) or exc}); "
                    "stopping the run: what was logged so far is kept"
                )
                stop_reason.append("error")
                engine.request_stop("error", now=True)
            else:
                say(f"warning: {type(sink).__name__} stopped ({exc}); the run and events.jsonl continue")

        bus.on_sink_failure = sink_failed
        bus.emit(
            ev.RUN_STARTED,
            version=__version__,
            host=_host(),
            out_dir=str(run_dir),
            seed=s.seed,
            duration_s=s.duration,
            throttle_pct=s.throttle,
            quiet_hours={"enabled": q.enabled, "start": q.start, "end": q.end, "throttle_pct": q.throttle},
            scenarios=weights,
            settings=s.to_dict(),
            demo=req.demo,
            http={name: client.transport for name, client in clients.items()},
        )
        bus.emit(ev.PROVIDERS_DISCOVERED, **selection.to_event())

        control = ControlServer(run_dir / rundir.CONTROL_SOCKET, lambda cmd, arg: engine.command(cmd, arg))
        try:
            await control.start()
        except Exception as exc:  # the run works without remote control; say so once
            bus.emit(ev.ERROR, error_class="control_socket", where="control", message=str(exc))
            control = None
        if not req.quiet:  # how to reach the run from another shell, as the user can type it
            say(f"watch: {command('watch', run_dir)}")
            signals = f"Ctrl-C, or kill {os.getpid()}"
            ways = f"{command('ctl', run_dir, 'stop')} (or {signals};" if control else f"{signals} ("
            say(f"stop:  {ways} the test in flight finishes first)")

        signals_seen = {"n": 0}

        def on_signal(signame: str) -> None:
            signals_seen["n"] += 1
            if signals_seen["n"] == 1:
                say(f"{signame}: stopping after the test in flight (press Ctrl-C again to stop at once)")
                engine.request_stop("signal")
            else:
                say(f"{signame} again: stopping now")
                engine.request_stop("signal", now=True)

        def on_hangup() -> None:
            # An SSH session dropped without nohup: the run is meant to last the night, so it goes
            # on (its output stops; the log, the text logs and the report do not need a terminal).
            say(f"SIGHUP: the terminal hung up; the run goes on (stop it with: {command('ctl', run_dir, 'stop')})")

        for sig, handler, args in (
            (signal.SIGINT, on_signal, ("SIGINT",)),
            (signal.SIGTERM, on_signal, ("SIGTERM",)),
            (signal.SIGHUP, on_hangup, ()),
        ):
            try:
                loop.add_signal_handler(sig, handler, *args)
            except (NotImplementedError, RuntimeError, AttributeError):
                pass
        t0 = time.monotonic()
        try:
            reason = await engine.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError):
                    pass
            if control is not None:
                await control.close()
        if stop_reason:
            reason = stop_reason[0]
        bus.emit(
            ev.RUN_FINISHED,
            reason=reason,
            elapsed_s=round(time.monotonic() - t0, 3),
            tests=engine.tests,
            ok_tests=engine.ok_tests,
            requests=engine.requests,
        )
        bus.close()
    for loss in writer.losses:
        say(
            f"warning: events.jsonl was {loss['why']} during the run; {loss['lines_in_lost_file']} events "
            "are gone from it, and the report covers only what was written after"
        )

    if signals_seen["n"] > 1:
        say(f"report skipped; build it with: {command('report', run_dir)}")
        return 130
    try:
        snap, _ = build_report(run_dir)
        paths = write_report_files(run_dir, snap)
        for line in snap["verdict"]["lines"]:  # the morning answer, as the report opens with it
            say(line.replace("**", ""))
        say("report: " + ", ".join(str(p) for p in paths))
    except OSError as exc:
        kept = "events.jsonl is intact" if not writer.losses else "what events.jsonl holds is kept"
        say(f"error: could not write the report ({exc.strerror or exc}); {kept}: {command('report', run_dir)}")
        return 1
    warning = record_snapshot(snap)  # the model profiles of the capability database
    if warning:
        say(f"warning: {warning}")
    return 1 if reason == "error" else 0
