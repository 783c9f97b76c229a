"""`soaktui simulate`: run the simulator in the foreground until SIGINT or SIGTERM (or, with
`--exit-with-parent PID`, until that process is gone).

Kept apart from soaktui/cli.py so the simulator can be started on its own
(`python -m soaktui.simulator.cli --port 0`) and so the main CLI only has to wire two functions in.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from soaktui.simulator.context import LMSTUDIO_OVERFLOW
from soaktui.simulator.faults import plan_from_specs
from soaktui.simulator.flavors import FLAVORS
from soaktui.simulator.personas import PERSONA_SETS, persona_set
from soaktui.simulator.server import SimConfig, SimServer
from soaktui.simulator.watchdog import wait_until_gone

PROG = "soaktui simulate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default: 8765)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and generated text (default: 0)")
    parser.add_argument(
        "--flavor", choices=FLAVORS, default="openai", help="which server to imitate (default: openai)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time compression: every simulated delay is divided by it (default: 1)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="inject a fault into every model: KIND=RATE (0..1) or KIND=every:N; kinds: http_429, http_500, "
        "http_503, drop, stall, malformed, stream_error; repeatable",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=5.0,
        help="length of a stall fault in real seconds (default: 5)",
    )
    parser.add_argument(
        "--exit-with-parent",
        "--parent-pid",
        dest="parent_pid",
        type=int,
        default=None,
        metavar="PID",
        help="exit on our own when process PID is gone (for a simulator started by another program)",
    )
    parser.add_argument(
        "--personas",
        choices=tuple(PERSONA_SETS),
        default="default",
        help="set of simulated models (default: default)",
    )
    server = parser.add_argument_group("server behaviour (docs/servers.md)")
    server.add_argument(
        "--server-version",
        metavar="V",
        default=None,
        help="the release the flavor imitates: 0.12.6 (ollama), b11434 (llamacpp), 0.34.0 (vllm), 0.3.15 "
        "(lmstudio); behaviours that changed between releases follow it (default: those)",
    )
    server.add_argument(
        "--ollama-num-ctx",
        type=int,
        default=None,
        metavar="N",
        help="ollama: the runtime context (OLLAMA_CONTEXT_LENGTH; default: the version's, 4096 from 0.6.7)",
    )
    server.add_argument(
        "--no-ollama-cloud",
        dest="ollama_cloud",
        action="store_false",
        help="ollama: do not list the cloud model stub gpt-oss:120b-cloud",
    )
    server.add_argument(
        "--llamacpp-router",
        action="store_true",
        help="llamacpp: router mode (llama-server without -m): models load on demand, /metrics needs ?model=",
    )
    server.add_argument(
        "--llamacpp-slots",
        type=int,
        default=4,
        metavar="N",
        help="llamacpp: slots per model (-np; default: 4)",
    )
    server.add_argument(
        "--llamacpp-split-kv",
        dest="llamacpp_kv_unified",
        action="store_false",
        help="llamacpp: no unified KV cache: each slot gets context / slots",
    )
    server.add_argument(
        "--llamacpp-ctx",
        type=int,
        default=None,
        metavar="N",
        help="llamacpp: the context (-c; default: each model's training window)",
    )
    server.add_argument(
        "--llamacpp-no-metrics",
        dest="llamacpp_metrics",
        action="store_false",
        help="llamacpp: serve /metrics with 501, as llama-server without --metrics does",
    )
    server.add_argument(
        "--lmstudio-overflow",
        choices=LMSTUDIO_OVERFLOW,
        default="error",
        help="lmstudio: what a prompt over the context gets (default: error, HTTP 400)",
    )


def build_config(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the arguments describe; ValueError with a one-line reason if they are wrong."""
    if args.stall_seconds < 0:
        raise ValueError("--stall-seconds must not be negative")
    if not args.speed > 0:
        raise ValueError("--speed must be positive")
    if args.parent_pid is not None and args.parent_pid <= 0:
        raise ValueError("--exit-with-parent needs a positive process id")
    plan = plan_from_specs(list(args.fault), stall_s=args.stall_seconds)
    return SimConfig(
        flavor=args.flavor,
        seed=args.seed,
        speed=args.speed,
        faults=plan,
        personas=persona_set(args.personas),
        server_version=args.server_version,
        ollama_num_ctx=args.ollama_num_ctx,
        ollama_cloud=args.ollama_cloud,
        llamacpp_router=args.llamacpp_router,
        llamacpp_slots=args.llamacpp_slots,
        llamacpp_kv_unified=args.llamacpp_kv_unified,
        llamacpp_ctx=args.llamacpp_ctx,
        llamacpp_metrics=args.llamacpp_metrics,
        lmstudio_overflow=args.lmstudio_overflow,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config, args.host, args.port, args.parent_pid))
    except OSError as exc:
        print(
            f"{PROG}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1


async def _serve(config: SimConfig, host: str, port: int, parent_pid: int | None = None) -> int:
    server = SimServer(config)
    await server.start(host, port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"soaktui simulator ({config.flavor}) listening on {server.base_url}", flush=True)
    serving = asyncio.create_task(server.serve_forever())
    waiters = [asyncio.create_task(stop.wait())]
    if parent_pid is not None:
        waiters.append(asyncio.create_task(wait_until_gone(parent_pid)))
    done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if waiters[0] not in done:
        print(f"{PROG}: process {parent_pid} is gone; stopping", file=sys.stderr, flush=True)
    await server.stop()
    await serving
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Run soaktui's built-in simulated LLM server.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
