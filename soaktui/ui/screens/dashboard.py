"""The dashboard screen: the header, six panes in a responsive grid, the footer of keys.

At 120+ columns and 34+ rows the panes sit in a 3x2 grid; narrower terminals get two columns;
short ones (80x24) hide the throughput plot and the tool-call feed and keep rotation, scenarios,
machine and errors. The screen's tick (4 Hz) redraws only panes that are displayed and whose data
or size changed; the header also follows the clock (once a second while the run is live).
The screen reads the app through a DashboardFeed (ui/view.py), the panes only the live state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Grid
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer

from soaktui.ui.widgets.errors import ErrorLog
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
PANE_IDS = ("rotation", "scenarios", "throughput", "thermal", "toolcalls", "errors")


class DashboardScreen(Screen):
    # Nothing is focused until `e`: a focused error log renders every held error and scrolls, which
    # a glance at the dashboard does not need (and which costs the viewer CPU on every new error).
    AUTO_FOCUS = ""

    def __init__(self, feed: DashboardFeed) -> None:
        super().__init__()
        self.feed = feed
        self._panes: list[Redraws] = []

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with Grid(id="panes"):
            yield RotationPane(id="rotation")
            yield ScenarioPane(id="scenarios")
            yield ThroughputPane(id="throughput")
            yield ThermalPane(id="thermal")
            yield ToolCallPane(id="toolcalls")
            yield ErrorLog(id="errors")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._panes: list[Redraws] = [cast(Redraws, self.query_one(f"#{p}")) for p in PANE_IDS]
        self.set_interval(TICK_S, self.tick)
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
            for pane in self._panes:
                if pane.display:
                    pane.maybe_draw(live, now, theme, force=force, slow=slow)

    def draw_header(self) -> None:
        if not self.is_mounted or not self.visible():
            return
        feed = self.feed
        with feed.lock:
            self.query_one(RunHeader).draw(feed, feed.live, feed.clock())

    def focus_errors(self) -> None:
        self.query_one(ErrorLog).focus()
