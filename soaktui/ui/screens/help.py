"""`?`: every key with what it does, from the same table as the bindings and the command palette."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from soaktui.ui.commands import KeySpec


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "close")]

    def __init__(self, keys: Sequence[KeySpec]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        width = max(len(k.display) for k in self.keys) + 2
        rows = [
            Content.assemble(
                (k.display.ljust(width), "bold $text-primary"), k.name.ljust(22), (k.help, "$text-muted")
            )
            for k in self.keys
        ]
        notes = [
            Content(""),
            Content.assemble(
                ("ctrl+p", "bold $text-primary"), "  the command palette: the same actions by name"
            ),
            Content.assemble(("ctrl+c", "bold $text-primary"), "  the same as q"),
            Content.styled("Steering keys go to the engine over the run's control socket;", "$text-muted"),
            Content.styled("a finished run is read-only. Esc or ? closes this.", "$text-muted"),
        ]
        with Vertical(id="help-box"):
            yield Static(Content.styled("Keys", "bold"), id="help-title")
            yield Static(Content("\n").join(rows + notes), id="help-body")
