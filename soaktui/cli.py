"""The `soaktui` command: a soak run (default), and the report, discover, simulate, ctl subcommands.

Setup problems (bad config, no server, unwritable --out) end with one line on stderr and a
non-zero exit, never a traceback. Settings come from defaults < config file < SOAKTUI_* env <
these flags (soaktui/config.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from soaktui import __version__
from soaktui.errors import SetupError
from soaktui.log import rundir
from soaktui.log.textsafe import neutralise, visible

EPILOG = """\
subcommands:
  soaktui [run] [options]            soak the servers found (or --base-url / --demo), with the dashboard
  soaktui watch [RUN_DIR]            attach the dashboard to a run (the latest by default)
  soaktui report RUN_DIR [--format md,json,html] [--out-dir DIR]
                                     rebuild final_report.md, report.json, report.html from events.jsonl
  soaktui models [MODEL] [--json]    model profiles accumulated across runs (one model's runs)
  soaktui compare RUN_DIR... [--json] [--html FILE]
                                     runs side by side (hosts, nights), with significant differences
  soaktui discover [options]         pre-flight: servers, models, and what a run would test
  soaktui simulate [--port N] ...    run the built-in OpenAI-compatible simulator
  soaktui ctl RUN_DIR COMMAND [ARG]  steer a running soak: pause, resume, skip, throttle N|+N|-N,
                                     quiet on|off|toggle, stop, status
  soaktui config                     print a commented example config file
  soaktui detect FILE|- [--tools ...] what the tool-call detector sees in one raw model answer
"""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", action="append", metavar="URL", help="OpenAI-compatible server (repeatable)")
    p.add_argument("--api-key", help="API key (or SOAKTUI_API_KEY / OPENAI_API_KEY)")
    p.add_argument("--demo", action="store_true", help="start the built-in simulator and soak it")
    p.add_argument("--models", action="append", metavar="PATTERNS", help="only models matching (comma list)")
    p.add_argument("--exclude", action="append", metavar="PATTERNS", help="leave out models matching")
    p.add_argument("--max-size-gb", metavar="GB", help="skip models larger than this (default 15)")
    p.add_argument(
        "--include-cloud",
        action="store_true",
        default=None,
        help="also test cloud models a local server lists (Ollama *-cloud; they run remotely)",
    )
    p.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default: the platform config dir)"
    )


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="soaktui",
        description="Soak-test local LLM servers and learn which models hold up.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"soaktui {__version__}")
    p.add_argument("--no-ui", action="store_true", help="run headless (for nohup, systemd, CI)")
    p.add_argument(
        "--duration", metavar="D", help="how long: 4 (hours), 2.5, 90s, 30m, 4h; default until stopped"
    )
    _add_server_options(p)
    p.add_argument("--out", metavar="DIR", help="run directory (default: under the user data dir)")
    p.add_argument("--seed", metavar="N", help="make the model/scenario/prompt sequence reproducible")
    p.add_argument("--throttle", metavar="PCT", help="duty cycle in percent, 1..100 (default 100)")
    p.add_argument("--metrics-port", metavar="N", help="serve Prometheus /metrics on this port (127.0.0.1)")
    p.add_argument("--metrics-bind", metavar="ADDR", help="address for /metrics (default 127.0.0.1)")
    p.add_argument("--scenarios", metavar="NAMES", help="run only these scenarios (comma list)")
    p.add_argument("--concurrency", metavar="LADDER", help="concurrent_load ladder, e.g. 2,4,8")
    p.add_argument("--prompts", action="append", type=Path, metavar="DIR", help="your own prompt directory, added to the shipped bank and to config prompt_dirs (repeatable)")
    p.add_argument("--json", action="store_true", help="stream every event to stdout as JSON lines")
    p.add_argument("--theme", metavar="NAME", help="dashboard theme (dark, light)")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if getattr(args, "base_url", None):
        o["base_urls"] = tuple(args.base_url)
    if getattr(args, "models", None):
        o["models"] = tuple(x for item in args.models for x in _csv(item))
    if getattr(args, "exclude", None):
        o["exclude"] = tuple(x for item in args.exclude for x in _csv(item))
    for flag, key in (
        ("api_key", "api_key"),
        ("max_size_gb", "max_size_gb"),
        ("include_cloud", "include_cloud"),
        ("duration", "duration"),
        ("out", "out"),
        ("seed", "seed"),
        ("throttle", "throttle"),
        ("scenarios", "scenarios"),
        ("concurrency", "concurrency"),
        ("theme", "theme"),
        ("metrics_port", "metrics.port"),
        ("metrics_bind", "metrics.bind"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            o[key] = value
    return o


def _settings(args: argparse.Namespace):
    import soaktui.scenarios  # noqa: F401 - registers the scenario names and weights the settings check
    from soaktui.config import load_settings

    return load_settings(args.config, os.environ, _overrides(args))


def _cmd_run(argv: list[str]) -> int:
    from soaktui.engine.launch import RunRequest, run_soak

    args = run_parser().parse_args(argv)
    settings = _settings(args)
    if not args.no_ui and not args.json:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from soaktui.attach import run_with_dashboard

            return run_with_dashboard(argv, settings.out, settings.theme)
        from soaktui.sinks.console import say

        say("soaktui: not a terminal, running headless (pass --no-ui to say so)")
    req = RunRequest(
        settings=settings, demo=args.demo, json_events=args.json, prompt_dirs=tuple(args.prompts or ())
    )
    return asyncio.run(run_soak(req))


def _cmd_report(argv: list[str]) -> int:
    from soaktui.log.reader import newer_schema_warning
    from soaktui.profiles.capdb import record_snapshot
    from soaktui.report import build_report, write_report_files

    p = argparse.ArgumentParser(
        prog="soaktui report", description="Rebuild a run's report from events.jsonl."
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--format",
        type=_csv,
        default=["md", "json", "html"],
        help="the files to write: md (final_report.md), json (report.json), html (report.html); default all",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write the report files into DIR (created if missing) instead of the run directory, "
        "e.g. when the run directory is read-only or not yours",
    )
    args = p.parse_args(argv)
    unknown = [f for f in args.format if f not in ("md", "json", "html")]
    if unknown or not args.format:
        raise SetupError(f"--format takes md, json and html (comma-separated), not {','.join(unknown) or 'nothing'}")
    log = args.run_dir / rundir.EVENTS
    if not log.is_file():
        raise SetupError(f"{args.run_dir}: no events.jsonl here (is it a soaktui run directory?)")
    out_dir = _report_dir(args.run_dir, args.out_dir)
    try:
        snap, stats = build_report(args.run_dir)
    except OSError as exc:
        raise SetupError(f"cannot read {log}: {exc.strerror or exc}") from None
    try:
        paths = write_report_files(out_dir, snap, tuple(args.format))
    except OSError as exc:
        elsewhere = "" if args.out_dir else "; rebuild it elsewhere with --out-dir DIR"
        raise SetupError(f"cannot write the report into {out_dir}: {exc.strerror or exc}{elsewhere}") from None
    warning = record_snapshot(snap)
    if warning:
        sys.stderr.write(f"soaktui: warning: {warning}\n")
    note = []
    if stats.lines_bad:
        note.append(f"{stats.lines_bad} unreadable line(s) skipped, first at line {stats.first_bad_line}")
    if stats.torn_tail:
        note.append("a torn last line skipped (the run was killed mid-write)")
    newer = newer_schema_warning(stats)
    if newer:
        sys.stderr.write(f"soaktui: warning: {newer}\n")
    if not snap["run"].get("finished"):
        note.append("the run ended without finishing (killed or still running): a report of what was logged")
    sys.stderr.write(f"read {stats.lines_ok} events from {log}" + "".join(f"; {n}" for n in note) + "\n")
    for line in snap["verdict"]["lines"]:
        sys.stderr.write(line.replace("**", "") + "\n")
    for path in paths:
        print(path)
    return 0


def _cmd_compare(argv: list[str]) -> int:
    import orjson

    from soaktui.report.compare import CompareError, compare, expand, render_html, render_markdown

    p = argparse.ArgumentParser(
        prog="soaktui compare",
        description="Compare runs side by side (from this host or copied from others): per model, "
        "success, TTFT, tokens/s, tool-calling and structured-output rates, and which differences are "
        "significant. Quote a glob to let soaktui expand it: 'runs/soak_*'.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or glob patterns")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write the comparison as one HTML page")
    args = p.parse_args(argv)
    try:
        doc = compare(expand(args.run_dirs))
    except CompareError as exc:
        raise SetupError(str(exc)) from None
    if args.html is not None:
        try:
            args.html.write_bytes(render_html(doc))
        except OSError as exc:
            raise SetupError(f"cannot write {args.html}: {exc.strerror or exc}") from None
        sys.stderr.write(f"wrote {args.html}\n")
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_markdown(doc))
    return 0


def _report_dir(run_dir: Path, out_dir: Path | None) -> Path:
    """Where `soaktui report` writes: the run directory, or --out-dir (created private). Either must
    be the user's: as root, writing report files into someone else's run would follow their links."""
    from soaktui.log.safefiles import make_run_dir, not_owned

    target = run_dir if out_dir is None else out_dir.expanduser()
    if out_dir is not None:
        try:
            make_run_dir(target, exist_ok=True)
        except OSError as exc:
            raise SetupError(f"cannot create --out-dir {target}: {exc.strerror or exc}") from None
    why = not_owned(target)
    if why:
        hint = "" if out_dir is not None else "; write the report elsewhere with --out-dir DIR"
        raise SetupError(f"refusing to write the report into {target}: {why}{hint}")
    return target


def _cmd_models(argv: list[str]) -> int:
    import orjson

    from soaktui.profiles import capdb
    from soaktui.profiles.text import format_history, format_list

    p = argparse.ArgumentParser(
        prog="soaktui models", description="Model profiles accumulated across runs (the capability database)."
    )
    p.add_argument("model", nargs="?", help="one model (its key, or a unique part of it): its runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args(argv)
    path = capdb.db_path()
    runs = capdb.load_runs(path)
    profiles = capdb.profiles(runs)
    if args.model is None:
        if args.json:
            listing = {"database": str(path), "models": profiles}
            print(orjson.dumps(neutralise(listing), option=orjson.OPT_INDENT_2).decode())
        else:
            print(visible(format_list(profiles, path)))
        return 0
    key = capdb.find_model(profiles, args.model)
    mine = [r for r in runs if r["profile"] == key]
    per_run = [capdb.profile([r]) for r in mine]
    if args.json:
        doc = {
            "database": str(path),
            "model": key,
            "profile": profiles[key],
            "runs": [
                {k: v for k, v in r.items() if k not in ("profile", "figures")}
                | {"counts": r["figures"], "figures": pr}
                for r, pr in zip(mine, per_run, strict=True)
            ],
        }
        print(orjson.dumps(neutralise(doc), option=orjson.OPT_INDENT_2).decode())
    else:
        print(visible(format_history(key, profiles[key], mine, per_run)))
    return 0


def _cmd_discover(argv: list[str]) -> int:
    from soaktui.engine.launch import find_models
    from soaktui.providers.discovery import format_selection, no_servers_message
    from soaktui.simulator.launcher import SimulatorProcess

    p = argparse.ArgumentParser(
        prog="soaktui discover", description="Find servers and models; show the plan."
    )
    _add_server_options(p)
    args = p.parse_args(argv)
    settings = _settings(args)
    sim = None
    base_urls = list(settings.base_urls)
    if args.demo:
        sim = SimulatorProcess(seed=settings.seed)
        base_urls.append(sim.start())
    try:
        selection = asyncio.run(find_models(settings, base_urls, probe_defaults=not base_urls))
    finally:
        if sim is not None:
            sim.stop()
    print(visible(format_selection(selection)))  # model ids and error bodies are server text
    if not selection.providers:
        raise SetupError(no_servers_message(selection.probed, selection.unreachable))
    return 0 if selection.selected else 1


def _cmd_simulate(argv: list[str]) -> int:
    from soaktui.simulator import cli as sim_cli

    p = argparse.ArgumentParser(prog="soaktui simulate", description="Run the built-in simulator.")
    sim_cli.add_arguments(p)
    return sim_cli.run(p.parse_args(argv))


def _cmd_ctl(argv: list[str]) -> int:
    import orjson

    from soaktui.engine.control import send_command

    p = argparse.ArgumentParser(prog="soaktui ctl", description="Send a command to a running soak.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("command", help="pause, resume, skip, throttle, quiet, stop, status")
    p.add_argument("arg", nargs="?", help="throttle: 1..100, +N or -N; quiet: on, off, toggle")
    p.add_argument("--json", action="store_true", help="status: print the engine's state as JSON (for scripts)")
    args = p.parse_args(argv)
    reply = send_command(args.run_dir, args.command, args.arg)
    if args.command == "status" and args.json:
        print(orjson.dumps(reply.get("state", {}), option=orjson.OPT_INDENT_2).decode())
    elif args.command == "status" and reply.get("state"):
        from soaktui.sinks.textlogs import describe_status

        print(describe_status(reply["state"]))  # the line the headless run prints, with why the pace differs
    else:
        print(reply.get("message", ""))
    return 0 if reply.get("ok") else 1


def _cmd_watch(argv: list[str]) -> int:
    from soaktui.attach import watch

    p = argparse.ArgumentParser(prog="soaktui watch", description="Attach the dashboard to a run.")
    p.add_argument("run_dir", type=Path, nargs="?", help="the run directory (default: the latest run)")
    p.add_argument("--theme", metavar="NAME", help="dashboard theme (dark, light)")
    p.add_argument("--config", type=Path, metavar="PATH", help="config file (for its theme key)")
    args = p.parse_args(argv)
    return watch(args.run_dir, _settings(args).theme)


def _cmd_config(argv: list[str]) -> int:
    import soaktui.scenarios  # noqa: F401 - registers the scenarios the [weights] table lists
    from soaktui.config import example_config_toml
    from soaktui.locations import config_file

    argparse.ArgumentParser(prog="soaktui config", description="Print an example config file.").parse_args(
        argv
    )
    print(f"# save as {config_file()} (or pass --config PATH)")
    print(example_config_toml())
    return 0


def _cmd_detect(argv: list[str]) -> int:
    from soaktui.toolcalls.explain import default_tools, detection_dict, explain

    p = argparse.ArgumentParser(
        prog="soaktui detect",
        description="Show the tool calls soaktui finds in a raw model answer: the message text, or a "
        "saved chat-completion response (OpenAI or Ollama JSON).",
    )
    p.add_argument("file", help="the answer's file, or - for stdin")
    p.add_argument("--tools", type=_csv, default=None, help="offered tool names (default: the bank's tools)")
    p.add_argument("--json", action="store_true", help="print the detection as JSON")
    args = p.parse_args(argv)
    try:
        raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SetupError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    detection, lines = explain(raw, args.tools if args.tools is not None else default_tools())
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(detection_dict(detection), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(visible("\n".join(lines)))  # the answer's own escapes, shown rather than obeyed
    return 0


COMMANDS = {
    "run": _cmd_run,
    "report": _cmd_report,
    "models": _cmd_models,
    "compare": _cmd_compare,
    "discover": _cmd_discover,
    "simulate": _cmd_simulate,
    "ctl": _cmd_ctl,
    "watch": _cmd_watch,
    "config": _cmd_config,
    "detect": _cmd_detect,
}


def _complain(name: str, text: str) -> None:
    """A command's last line on stderr; a run's carries the clock time, like every other line it prints.
    Setup errors quote servers (model ids, error bodies): their escapes are shown, not obeyed."""
    text = visible(text)
    if name == "run":
        from soaktui.sinks.console import say

        say(text)
    else:
        sys.stderr.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv and argv[0] in COMMANDS else "run"
    if argv and argv[0] == name:
        argv = argv[1:]
    try:
        return COMMANDS[name](argv)
    except SetupError as exc:
        _complain(name, f"soaktui: {exc}")
        return 2
    except KeyboardInterrupt:
        _complain(name, "soaktui: interrupted")
        return 130
    except BrokenPipeError:
        return 1
