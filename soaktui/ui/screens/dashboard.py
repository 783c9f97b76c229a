"""The dashboard screen: the header, six panes in a responsive grid, the footer of keys.

At 120+ columns and 34+ rows the panes sit in a 3x2 grid; narrower terminals get two columns;
short ones (80x24) hide the throughput plot and the tool-call feed and keep rotation, scenarios,
machine and errors. The screen's tick (4 Hz) redraws only panes that are displayed and whose data
or size changed; the header also follows the clock (once a second while the run is live).
Keys 1-6 maximise pane N (Textual's Screen.maximized; its Esc handling restores the grid), also a
pane the short layout hides; while one pane fills the screen, the tick draws only that pane.
The screen reads the app through a DashboardFeed (ui/view.py), the panes only the live state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Footer

from soaktui.ui.panes import PANES
from soaktui.ui.screens.error_filter import ErrorFilterScreen
from soaktui.ui.widgets.errors import ErrorLog, held
from soaktui.ui.widgets.header import RunHeader
from soaktui.ui.widgets.pane import Redraws
from soaktui.ui.widgets.rotation import RotationPane
from soaktui.ui.widgets.scenarios import ScenarioPane
from soaktui.ui.widgets.thermal import ThermalPane
from soaktui.ui.widgets.throughput import ThroughputPane
from soaktui.ui.widgets.toolcalls import ToolCallPane

if TYPE_CHECKING:
    from soaktui.ui.view import DashboardFeed

TICK_S = 0.25
KINDS: dict[str, Callable[..., Redraws]] = {
    "rotation": RotationPane,
    "scenarios": ScenarioPane,
    "throughput": ThroughputPane,
    "thermal": ThermalPane,
    "toolcalls": ToolCallPane,
    "errors": ErrorLog,
}


class DashboardScreen(Screen):
    # Nothing is focused until `e`: a focused error log renders every held error and scrolls, which
    # a glance at the dashboard does not need (and which costs the viewer CPU on every new error).
    AUTO_FOCUS = ""
    ALLOW_IN_MAXIMIZED_VIEW = "RunHeader, Footer"  # a maximised pane keeps the header and the keys
    # For the footer only: Textual restores on Esc before any binding runs (App.ESCAPE_TO_MINIMIZE).
    BINDINGS = [Binding("escape", "restore", "restore")]

    def __init__(self, feed: DashboardFeed) -> None:
        super().__init__()
        self.feed = feed
        self._panes: list[Redraws] = []

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with Grid(id="panes"):
            for number, (pane_id, name) in enumerate(PANES, 1):
                pane = KINDS[pane_id](id=pane_id)
                pane.numbered(number, name)
                yield cast(Widget, pane)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._panes: list[Redraws] = [cast(Redraws, self.query_one(f"#{p}")) for p, _ in PANES]
        self.set_interval(TICK_S, self.tick)
        self.call_after_refresh(self.tick, force=True)
        self.watch(self, "maximized", self._zoom_changed, init=False)

    def _zoom_changed(self) -> None:
        self.refresh_bindings()  # the footer shows "esc restore" only while a pane is maximised
        self.call_after_refresh(self.tick, force=True)

    def on_resize(self) -> None:
        self.call_after_refresh(self.tick, force=True)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self.tick, force=True)

    def visible(self) -> bool:
        """On top, or under a modal dialog (which shows the dashboard around it)."""
        stack = self.app.screen_stack
        if not stack:
            return False
        if stack[-1] is self:
            return True
        return isinstance(stack[-1], ModalScreen) and len(stack) > 1 and stack[-2] is self

    def tick(self, force: bool = False) -> None:
        if not self.is_mounted or not self.visible():
            return
        feed = self.feed
        now = feed.clock()
        slow = not feed.loaded  # catching up with a long log: the fold gets the CPU, panes fill slowly
        theme = self.app.theme
        with feed.lock:
            live = feed.live
            self.query_one(RunHeader).draw(feed, live, now)
            zoomed = self.maximized
            for pane in self._panes:
                if pane.display and (zoomed is None or pane is zoomed):
                    pane.maybe_draw(live, now, theme, force=force, slow=slow)

    def draw_header(self) -> None:
        if not self.is_mounted or not self.visible():
            return
        feed = self.feed
        with feed.lock:
            self.query_one(RunHeader).draw(feed, feed.live, feed.clock())

    def focus_errors(self) -> None:
        self.query_one(ErrorLog).focus()

    def pick_error_filter(self) -> None:
        """`f`: the picker, offering the models and classes of the errors held now."""
        log = self.query_one(ErrorLog)
        with self.feed.lock:
            models, classes = held(self.feed.live.errors)
        self.app.push_screen(ErrorFilterScreen(models, classes, log.error_filter), log.set_filter)

    def zoom(self, number: int) -> None:
        """Maximise pane `number` (1-based, as its title says); the same number again restores."""
        if not 1 <= number <= len(self._panes):
            return
        pane = cast(Widget, self._panes[number - 1])
        if self.maximized is pane:
            self.minimize()
            return
        self.maximized = pane  # as Screen.maximize does, minus its allow_maximize test (scroll views refuse)
        if isinstance(pane, ErrorLog):
            pane.focus()  # a maximised error log is there to be read: every held error, scrollable

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restore":
            return self.maximized is not None
        return True

    def action_restore(self) -> None:
        self.minimize()
