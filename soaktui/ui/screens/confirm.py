"""The quit dialogs: confirm stopping an active run, then wait while it stops and writes its report.

`q` on an active run asks first (y stops the run and writes the report, d detaches instead, n or
Esc goes back). While stopping, the dialog waits for `run_finished` and the report; `d` leaves at
once (the engine finishes stopping on its own).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from soaktui.ui.format import display_path

if TYPE_CHECKING:
    from soaktui.ui.view import StopSource

SLOW_STOP_S = 30.0  # after this, the stopping dialog says the report is late and how to leave


class QuitConfirm(ModalScreen[str | None]):
    BINDINGS = [
        Binding("y,enter", "choose('stop')", "stop the run"),
        Binding("d", "choose('detach')", "detach"),
        Binding("n,escape,q", "choose(None)", "back"),
    ]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled("Stop the run?", "bold"), classes="dialog-title")
            yield Static(
                Content.assemble(
                    "The run in ",
                    (display_path(self.run_dir), "$text-primary"),
                    " is still going. Stopping it lets the test in flight finish, then writes "
                    "final_report.md and report.json.\n\n",
                    ("y", "bold $text-primary"),
                    " stop and write the report   ",
                    ("d", "bold $text-primary"),
                    " detach (the run goes on)   ",
                    ("n", "bold $text-primary"),
                    " back",
                )
            )

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class StoppingScreen(ModalScreen[None]):
    BINDINGS = [Binding("d", "leave", "leave now")]

    def __init__(self, source: StopSource) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                Content.styled("stopping, writing report…", "bold $text-warning"), classes="dialog-title"
            )
            yield Static("", id="stop-detail")

    def on_mount(self) -> None:
        self._since = time.monotonic()
        self.set_interval(0.1, self._check)
        self._check()

    def _check(self) -> None:
        source = self.source
        if source.stop_complete():
            source.leave(detached=False)
            return
        if source.live.finished is None:
            step = "waiting for the test in flight and run_finished"
        elif source.engine is not None:
            step = "run finished; waiting for the engine to write the report and exit"
        else:
            step = "run finished; waiting for report.json"
        late = time.monotonic() - self._since > SLOW_STOP_S
        self.query_one("#stop-detail", Static).update(
            Content.assemble(
                (step, "$text-muted"),
                ("\nthis is taking long; " if late else "\n", "$text-warning"),
                ("d", "bold $text-primary"),
                " leaves now (the run finishes stopping on its own)",
            )
        )

    def action_leave(self) -> None:
        self.source.leave(detached=True)
