"""`f`: which errors the log shows, picked from the errors it holds.

Two lists side by side, a model (or all) and an error class (or all), each with how many held
errors it has; the current filter starts highlighted. Arrows choose, Tab moves to the other list,
Enter applies both, Esc leaves the filter as it was. The picker returns an ErrorFilter and knows
nothing else of the viewer.
"""

from __future__ import annotations

from collections import Counter

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static

from soaktui.report.names import elide, short_names
from soaktui.ui.widgets.errors import ErrorFilter

NAME = 24  # a model's short name in the list, elided in the middle: one line each at 80 columns


class ErrorFilterScreen(ModalScreen[ErrorFilter | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, models: Counter[str], classes: Counter[str], current: ErrorFilter) -> None:
        super().__init__()
        self.current = current
        # None first: "all"; then the held values, most errors first
        self.model_choices: list[str | None] = [None, *(m for m, _ in models.most_common())]
        self.class_choices: list[str | None] = [None, *(c for c, _ in classes.most_common())]
        self.counts = (models, classes)

    def compose(self) -> ComposeResult:
        models, classes = self.counts
        names = short_names(models)
        with Vertical(classes="dialog", id="filter-box"):
            yield Static(Content.styled("Filter the error log", "bold"), classes="dialog-title")
            with Horizontal(id="filter-lists"):
                with Vertical():
                    yield Static(Content.styled("model", "bold $text-muted"))
                    yield OptionList(
                        f"all models ({models.total()})",  # Content below: model names are not markup
                        *(Content(f"{elide(names[m], NAME)} ({models[m]})") for m in self.model_choices[1:]),
                        id="filter-model",
                    )
                with Vertical():
                    yield Static(Content.styled("error class", "bold $text-muted"))
                    yield OptionList(
                        f"all classes ({classes.total()})",
                        *(Content(f"{c} ({classes[c]})") for c in self.class_choices[1:]),
                        id="filter-class",
                    )
            yield Static(
                Content.styled("↑↓ choose · Tab the other list · Enter apply · Esc cancel", "$text-muted")
            )

    def on_mount(self) -> None:
        model_list = self.query_one("#filter-model", OptionList)
        class_list = self.query_one("#filter-class", OptionList)
        model_list.highlighted = self._index(self.model_choices, self.current.model)
        class_list.highlighted = self._index(self.class_choices, self.current.error_class)
        model_list.focus()

    @staticmethod
    def _index(values: list[str | None], value: str | None) -> int:
        return values.index(value) if value in values else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        m = self.query_one("#filter-model", OptionList).highlighted or 0
        c = self.query_one("#filter-class", OptionList).highlighted or 0
        self.dismiss(ErrorFilter(self.model_choices[m], self.class_choices[c]))
