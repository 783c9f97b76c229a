"""What the screens and the header read from the viewer: one narrow, read-only view each.

The app (ui/app.py) follows the log and steers the engine; screens and panes only draw. Each of
them is handed the part of the app it reads, named here as a Protocol that `SoakApp` satisfies,
so nothing under widgets/ or screens/ imports ui/app.py. They used to, for typing alone (every
draw method took the whole app), and since the app imports every screen and the dashboard every
pane, that one import tied twelve modules of the viewer into a single import circle.

Inside ui/ the imports now go one way: format, themes, state, commands, controller, messages and
this module at the bottom; widgets/ on them; screens/ on widgets/; app.py on top
(tests/test_ui_import_graph.py checks that no circle comes back).

Most panes need no view at all: they draw one LiveState section (`Redraws.maybe_draw(live, now,
theme)`). Only the header reads more than the live state: the run's phase, the loading progress,
the last key's outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from soaktui.report.snapshot import Snapshot
    from soaktui.ui.state import LiveState


@runtime_checkable
class EngineProcess(Protocol):
    """The engine child this viewer started (subprocess.Popen fits); None when attached to a run."""

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...


class RunPhase(Protocol):
    """Which run, and what it is doing: loading | waiting | connecting | live | stopping | finished
    | ended | engine_exited (SoakApp.phase says when each holds)."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def phase(self) -> str: ...


class RunStatus(RunPhase, Protocol):
    """The header: the phase, how far loading got, how the engine child exited, the last key."""

    @property
    def load_pct(self) -> int | None: ...

    @property
    def engine_code(self) -> int | None: ...

    def action_feedback(self) -> tuple[str, str] | None:
        """The last key's command while pending, then its outcome for a few seconds: (text, style)."""
        ...


class DashboardFeed(RunStatus, Protocol):
    """The dashboard's tick: the live state (read under `lock`, which the follower thread holds
    while it folds a batch), the display clock, and whether the initial fold has caught up."""

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def live(self) -> LiveState: ...

    @property
    def loaded(self) -> bool: ...

    @property
    def clock(self) -> Callable[[], float]: ...


class ReportSource(RunPhase, Protocol):
    """The report screen: a snapshot of everything folded so far, and whether that changed."""

    @property
    def generation(self) -> int:
        """Batches folded so far: a new snapshot is worth computing only when this moved."""
        ...

    def report_snapshot(self) -> Snapshot:
        """RunAggregate.snapshot() with the log's statistics, taken under the lock (a thread calls it)."""
        ...


class StopSource(Protocol):
    """The stopping dialog: whether the run has finished and its report is written, and leaving."""

    @property
    def live(self) -> LiveState: ...

    @property
    def engine(self) -> EngineProcess | None: ...

    def stop_complete(self) -> bool: ...

    def leave(self, *, detached: bool) -> None: ...


__all__ = ["DashboardFeed", "EngineProcess", "ReportSource", "RunPhase", "RunStatus", "StopSource"]
