"""The viewer: a Textual app that follows one run directory and steers its engine.

The engine always runs in its own process (docs/architecture.md: a UI on the same loop, or a thread beside it,
bends time-to-first-token by tens of milliseconds). This app attaches to a run directory exactly
like `soaktui watch` does, whether it started the engine itself (`engine` given) or not:

- a thread worker follows `events.jsonl` from a byte offset and folds each batch into the report's
  RunAggregate and the panes' LiveState, under one lock. Folding happens on that thread, never on
  the event loop, so attaching to a million-event log shows its first screen at once ("loading N%")
  and the keys stay responsive while it catches up;
- the dashboard redraws on a 4 Hz tick, only visible panes, only when their data changed;
- keys go to the control socket from a second thread worker (one command at a time, in order); the
  reply's engine state is shown at once and the events confirm it. When no engine listens (a
  finished or crashed run) the viewer is read-only and says so.

Quitting while a run is active asks first, sends `stop`, waits for `run_finished` and for the report
(the engine child's exit, or report.json), then exits 0. `d` detaches and prints how to re-attach.
A lost terminal (SSH drop: SIGHUP, or a tty that stops being one) ends the viewer, not the run.

This module is the top of the viewer: the screens and panes never import it. Each screen is
handed the app as the narrow view it reads (ui/view.py: DashboardFeed, ReportSource, StopSource),
and the threads' messages live in ui/messages.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import App
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import get_current_worker

from soaktui.hints import command, shell_arg
from soaktui.log import rundir
from soaktui.log.follow import LogFollower
from soaktui.report.aggregate import RunAggregate
from soaktui.report.snapshot import Snapshot, log_stats
from soaktui.ui.commands import KEYS, SoakCommands, bindings
from soaktui.ui.controller import PROBE_INTERVAL_S, Controller
from soaktui.ui.format import display_path
from soaktui.ui.messages import ControlReply, FollowError, LogProgress
from soaktui.ui.screens.confirm import QuitConfirm, StoppingScreen
from soaktui.ui.screens.dashboard import DashboardScreen
from soaktui.ui.screens.help import HelpScreen
from soaktui.ui.screens.report import ReportScreen
from soaktui.ui.state import LiveState
from soaktui.ui.themes import DEFAULT_THEME, resolve_theme, shipped_themes
from soaktui.ui.view import EngineProcess
from soaktui.ui.widgets.pane import BAD, GOOD, WARN

POLL_S = 0.1  # how often the follower looks for new bytes once it has caught up
FEEDBACK_S = 4.0  # how long the header shows a key's outcome
HANGUP_EXIT = 129  # 128 + SIGHUP: the terminal went away
HANGUP_GRACE_S = 5.0  # after a hang-up, the orderly exit gets this long before the process just ends
TERMINAL_CHECK_S = 1.0


class SoakApp(App[int]):
    CSS_PATH = "soaktui.tcss"
    TITLE = "soaktui"
    BINDINGS = bindings()
    COMMANDS = App.COMMANDS | {SoakCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(
        self,
        run_dir: Path,
        *,
        theme: str = DEFAULT_THEME,
        engine: EngineProcess | None = None,
        clock: Callable[[], float] | None = None,
        themes: Mapping[str, Theme] | None = None,
        probe_interval_s: float | None = PROBE_INTERVAL_S,
    ) -> None:
        shipped = shipped_themes() if themes is None else dict(themes)
        theme_name = resolve_theme(theme, shipped)  # SetupError before any terminal work
        super().__init__()
        for t in shipped.values():
            self.register_theme(t)
        self.theme = theme_name
        self.run_dir = Path(run_dir)
        self.engine = engine
        self.clock: Callable[[], float] = clock or time.time
        self.lock = threading.Lock()  # guards live + aggregate (the follower thread feeds them)
        # bounded (sketches, percentiles within 1% of the report's): a viewer may follow a run for
        # days; `w` on the report screen rebuilds the exact report from the log
        self.aggregate = RunAggregate(exact=False)
        self.live = LiveState(counts=self.aggregate.requests)  # counts read from the report's fold
        self.follower = LogFollower(self.run_dir / rundir.EVENTS)
        self.generation = 0  # batches folded so far
        self.feed_errors = 0  # events a reducer choked on (skipped)
        self.loaded = False
        self.load_pct: int | None = None
        self.reachable: bool | None = None  # did a live engine answer on the control socket last time
        self.stopping = False
        self.follow_done = threading.Event()  # set when the follower thread has closed the log
        self.caught_up_at = float("-inf")  # monotonic time the follower last read to the log's end
        self._exit_seen: float | None = None  # monotonic time the engine child was first seen gone
        self._pending: deque[str] = deque(maxlen=32)
        self._feedback: tuple[str, str, float] | None = None
        self._hung_up = False
        self.exit_message = ""  # the line printed on exit (how to re-attach, where the report is)
        self._tty_fd: int | None = None
        self.controller = Controller(
            self.run_dir, lambda r: self.post_message(ControlReply(r)), probe_interval_s=probe_interval_s
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return DashboardScreen(self)

    def on_mount(self) -> None:
        self._follow_log()
        self._control_loop()
        if not self.is_headless:
            self._watch_terminal()

    def on_unmount(self) -> None:
        self.workers.cancel_all()
        self.controller.wake()
        if self._tty_fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    # -- the follower (thread) ---------------------------------------------------------------------
    def _follow_log(self) -> None:
        self.run_worker(
            self._follow_thread,
            name="follow",
            group="follow",
            description=f"follow {self.run_dir / rundir.EVENTS}",
            exclusive=True,
            exit_on_error=False,
            thread=True,
        )

    def _follow_thread(self) -> None:
        worker = get_current_worker()
        cancelled = worker.cancelled_event
        follower = self.follower
        agg_feed, live_feed = self.aggregate.feed, self.live.feed
        target = follower.size() or 0  # what "loaded" means: the log as it was at attach
        shown: int | None = -1
        last_error = ""
        try:
            while not cancelled.is_set():
                try:
                    events = follower.read()
                except OSError as exc:  # the log became unreadable (permissions, a vanished disk)
                    if str(exc) != last_error:
                        last_error = str(exc)
                        self.post_message(FollowError(f"cannot read {follower.path}: {exc}"))
                    cancelled.wait(1.0)
                    continue
                if events:
                    with self.lock:
                        for ev in events:
                            try:
                                agg_feed(ev)
                                live_feed(ev)
                            except Exception:  # one odd event must not stop the viewer following
                                self.feed_errors += 1
                        self.generation += 1
                if not self.loaded:
                    done = follower.offset >= target
                    pct = int(100 * follower.offset / target) if target else None
                    if done or pct != shown:  # at most one message per percent
                        shown = pct
                        self.post_message(LogProgress(done, pct))
                    if done:
                        self.loaded = True
                if not events and follower.at_end():
                    self.caught_up_at = time.monotonic()
                    cancelled.wait(POLL_S)
        finally:
            follower.close()
            self.follow_done.set()

    def on_log_progress(self, msg: LogProgress) -> None:
        self.load_pct = msg.pct
        if msg.loaded:
            self.redraw(force=True)
        else:
            self.redraw_header()

    def on_follow_error(self, msg: FollowError) -> None:
        self.notify(msg.text, title=rundir.EVENTS, severity="error", timeout=10, markup=False)

    # -- the controller (thread) -------------------------------------------------------------------
    def _control_loop(self) -> None:
        self.run_worker(
            lambda: self.controller.run(get_current_worker().cancelled_event),
            name="control",
            group="control",
            description=f"control socket of {self.run_dir}",
            exclusive=True,
            exit_on_error=False,
            thread=True,
        )

    def on_control_reply(self, msg: ControlReply) -> None:
        r = msg.reply
        self.reachable = r.reachable
        if r.reachable and r.state:
            with self.lock:
                self.live.apply_status(r.state, r.received_t)
        if not r.probe:
            if self._pending:
                self._pending.popleft()
            if r.reachable and r.ok:
                self._set_feedback(f"✓ {r.message or r.label}", GOOD)
            else:
                self._set_feedback(f"✗ {r.label}", BAD)
                # the engine's message can quote a server (a model id): never markup
                self.notify(r.message or f"{r.label} failed", title=r.label, severity="warning", markup=False)
            if r.command == "stop" and not (r.reachable and r.ok):
                self._stop_failed()
        self.redraw_header()

    # -- what the run is doing ---------------------------------------------------------------------
    def report_snapshot(self) -> Snapshot:
        """The report of everything folded so far, with the log's statistics (the report screen's)."""
        with self.lock:
            snap = self.aggregate.snapshot()
            snap["log"] = log_stats(self.follower.stats)
        return snap

    @property
    def engine_code(self) -> int | None:
        return None if self.engine is None else self.engine.poll()

    @property
    def phase(self) -> str:
        """loading | waiting | connecting | live | stopping | finished | ended | engine_exited."""
        live = self.live
        if live.finished is not None:
            return "finished"
        if not self.loaded:
            return "loading"
        engine_alive = self.engine is not None and self.engine.poll() is None
        if self.engine is not None and not engine_alive:
            if self._exit_seen is None:
                self._exit_seen = time.monotonic()
            if self.caught_up_at < self._exit_seen:
                # The engine writes run_finished before it exits: only once the log has been read
                # to its end after the exit does a missing run_finished mean it did not finish.
                return "stopping" if self.stopping else "connecting"
            return "engine_exited"
        if self.stopping:
            return "stopping"
        if self.reachable:
            return "live" if live.started_t is not None else "waiting"
        if engine_alive or self.reachable is None:
            return "waiting" if live.started_t is None else "connecting"
        return "ended" if live.started_t is not None else "waiting"

    @property
    def run_active(self) -> bool:
        return self.phase in ("live", "connecting", "stopping") or (
            self.phase == "waiting" and (self.reachable or self.engine is not None)
        )

    @property
    def read_only(self) -> bool:
        return self.phase in ("finished", "ended", "engine_exited") or (
            self.phase == "waiting" and self.reachable is False and self.engine is None
        )

    def action_feedback(self) -> tuple[str, str] | None:
        """What the header shows about the last key: pending, then its outcome for a few seconds."""
        if self._pending:
            return (f"→ {self._pending[-1]}…", WARN)
        if self._feedback is not None:
            text, style, at = self._feedback
            if time.monotonic() - at < FEEDBACK_S:
                return (text, style)
        return None

    def _set_feedback(self, text: str, style: str) -> None:
        self._feedback = (text, style, time.monotonic())

    # -- drawing -----------------------------------------------------------------------------------
    def dashboard(self) -> DashboardScreen | None:
        for s in self.screen_stack:
            if isinstance(s, DashboardScreen):
                return s
        return None

    def redraw(self, *, force: bool = False) -> None:
        d = self.dashboard()
        if d is not None:
            d.tick(force=force)

    def redraw_header(self) -> None:
        d = self.dashboard()
        if d is not None:
            d.draw_header()

    # -- keys --------------------------------------------------------------------------------------
    def _steer(self, command: str, arg: Any = None) -> None:
        label = command if arg is None else f"{command} {arg}"
        if self.read_only:
            why = {
                "finished": "the run has finished",
                "engine_exited": "the engine has exited",
            }.get(self.phase, "no engine listens in this run directory")
            self.notify(f"read-only: {why}; {label} not sent", title="read-only", severity="warning")
            return
        if not self.controller.submit(command, arg):
            self.notify("the engine is not answering; command dropped", severity="error")
            return
        self._pending.append(label)
        self.redraw_header()

    def action_throttle(self, delta: str) -> None:
        self._steer("throttle", delta)

    def action_skip(self) -> None:
        self._steer("skip")

    def action_toggle_pause(self) -> None:
        self._steer("resume" if self.live.paused else "pause")

    def action_toggle_quiet(self) -> None:
        self._steer("quiet", "toggle")

    def action_report(self) -> None:
        if isinstance(self.screen, ReportScreen):
            self.pop_screen()
        elif not self._modal_open():
            self.push_screen(ReportScreen(self))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        elif not self._modal_open():
            self.push_screen(HelpScreen(KEYS))

    def _back_to_dashboard(self) -> DashboardScreen | None:
        """The dashboard on top (the report closed) for a key about its panes; None under a dialog."""
        if self._modal_open():
            return None
        while len(self.screen_stack) > 1 and not isinstance(self.screen, DashboardScreen):
            self.pop_screen()
        return self.dashboard()

    def action_focus_errors(self) -> None:
        if (d := self._back_to_dashboard()) is not None:
            d.focus_errors()

    def action_filter_errors(self) -> None:
        if (d := self._back_to_dashboard()) is not None:
            d.pick_error_filter()

    def action_zoom(self, number: int) -> None:
        if (d := self._back_to_dashboard()) is not None:
            d.zoom(number)

    def action_restore(self) -> None:
        if (d := self._back_to_dashboard()) is not None:
            d.minimize()

    def action_detach(self) -> None:
        self.leave(detached=True)

    async def action_quit(self) -> None:
        if isinstance(self.screen, (QuitConfirm, StoppingScreen)):
            return
        if self.run_active and not self.stopping:
            self.push_screen(QuitConfirm(self.run_dir), self._on_quit_choice)
        elif self.stopping:
            self.notify("stopping: waiting for the report (d leaves now)")
        else:
            self.leave(detached=False)

    def _modal_open(self) -> bool:
        return isinstance(self.screen, (QuitConfirm, StoppingScreen))

    def _on_quit_choice(self, choice: str | None) -> None:
        if choice == "stop":
            self.begin_stop()
        elif choice == "detach":
            self.leave(detached=True)

    def begin_stop(self) -> None:
        """Send `stop` and wait (on a modal) for run_finished and the report."""
        self.stopping = True
        self.controller.submit("stop")
        self._pending.append("stop")
        self.push_screen(StoppingScreen(self))
        self.redraw_header()

    def _stop_failed(self) -> None:
        if self.live.finished is not None:
            return  # it had finished anyway: the stopping screen completes on its own
        self.stopping = False
        if isinstance(self.screen, StoppingScreen):
            self.pop_screen()

    def stop_complete(self) -> bool:
        """run_finished seen, and the report written: the child has exited, or report.json is newer."""
        fin = self.live.finished
        if fin is None:
            return False
        if self.engine is not None:
            return self.engine.poll() is not None
        try:
            mtime = (self.run_dir / rundir.REPORT_JSON).stat().st_mtime
        except OSError:
            return False
        t = fin.get("t")
        return not isinstance(t, (int, float)) or mtime >= t - 1.0

    def leave(self, *, detached: bool) -> None:
        """Exit the viewer (the run is not touched) with a line that says where things are."""
        where = shell_arg(display_path(self.run_dir))
        code = 0
        if detached and self.run_active and not self.stopping:
            again = command("watch", display_path(self.run_dir))
            message = f"soaktui: detached; the run goes on. Re-attach with: {again}"
        elif detached and self.stopping:
            message = f"soaktui: left while the run stops; its report will be in {where}"
        else:
            report = self.run_dir / rundir.REPORT_MD
            message = f"soaktui: report: {display_path(report)}" if report.exists() else ""
            rc = self.engine_code
            if rc:
                code = rc
        self.exit_message = message
        # no_wrap: the re-attach command must stay one line to copy (the terminal may still soft-wrap it)
        self.exit(
            code,
            return_code=code,
            message=Text(message, no_wrap=True, overflow="ignore") if message else None,
        )

    # -- a lost terminal ---------------------------------------------------------------------------
    def _watch_terminal(self) -> None:
        stdin = sys.__stdin__
        try:
            fd = stdin.fileno() if stdin is not None else -1
            if fd < 0 or not os.isatty(fd):
                return
        except (OSError, ValueError):
            return
        self._tty_fd = fd
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.hang_up)
        self.set_interval(TERMINAL_CHECK_S, self._check_terminal)

    def _terminal_gone(self) -> bool:
        """The terminal the viewer started on is no longer one (its other side closed)."""
        if self._tty_fd is None:
            return False
        try:
            return not os.isatty(self._tty_fd)
        except OSError:
            return True

    def _check_terminal(self) -> None:
        if self._tty_fd is None or self._terminal_gone():
            self.hang_up()

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the viewer. When the terminal vanishes, Textual's output can fail before the
        watchdog's next look: an error exit with the terminal gone is that hang-up, not a crash."""
        code = super().run(*args, **kwargs)
        if code not in (None, 0, HANGUP_EXIT) and self._terminal_gone():
            return HANGUP_EXIT
        return code

    def hang_up(self) -> None:
        """The terminal is gone: exit at once (the run, in its own process, is not affected)."""
        if self._hung_up:
            return
        self._hung_up = True
        # A viewer without a terminal holds nothing of record (the engine writes everything), so it
        # must never linger: if the orderly exit has not finished in HANGUP_GRACE_S (a write to the
        # dead terminal or a worker that does not let go; seen once in CI under load), end the process.
        timer = threading.Timer(HANGUP_GRACE_S, os._exit, args=(HANGUP_EXIT,))
        timer.daemon = True
        timer.start()
        self.workers.cancel_all()
        self.exit(HANGUP_EXIT, return_code=HANGUP_EXIT)


def create_app(
    run_dir: Path,
    *,
    theme: str = DEFAULT_THEME,
    engine: EngineProcess | None = None,
    clock: Callable[[], float] | None = None,
) -> SoakApp:
    """The viewer for `run_dir`. `theme`: a shipped or built-in theme name (SetupError if unknown);
    `engine`: the engine child this process started, if any; `clock`: wall time for display (tests)."""
    return SoakApp(Path(run_dir), theme=theme, engine=engine, clock=clock)


__all__ = ["EngineProcess", "HANGUP_EXIT", "SoakApp", "create_app"]
