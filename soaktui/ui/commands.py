"""The viewer's keys, defined once: bindings, the footer, the `?` help screen and the command palette.

Each key is an app action; steering keys (throttle, skip, pause, quiet hours) become control-socket
commands, the others change what the viewer shows. The palette provider offers the same actions by
name, so a key forgotten is one Ctrl+P away. A spec with `choices` is one row of help for several
keys (1-6 maximise pane N: one binding and one palette entry each).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from soaktui.ui.panes import PANES


@dataclass(frozen=True)
class KeySpec:
    keys: str  # Textual key names, comma-separated
    display: str  # as the help screen shows it
    action: str  # app action
    name: str  # for the command palette and the help screen
    help: str  # one line for the help screen and the palette
    steers: bool = False  # sends a command to the engine (refused when read-only)
    footer: str | None = None  # the footer's label; None: not in the footer
    footer_key: str | None = None  # the footer's key text when it differs from `display`
    choices: tuple[str, ...] = ()  # one per key: key i runs `action(i)` (1-based), named by its choice
    bound: bool = True  # False: Textual handles the key itself (Esc restores a maximised pane)

    def entries(self) -> list[tuple[str, str, str, str]]:
        """(keys, display, action, name) of each binding and palette entry this spec makes."""
        if not self.choices:
            return [(self.keys, self.display, self.action, self.name)]
        keys = self.keys.split(",")
        return [
            (key, key, f"{self.action}({i})", f"{self.name} {choice}")
            for i, (key, choice) in enumerate(zip(keys, self.choices, strict=True), 1)
        ]


def _key(keys: str, display: str, action: str, name: str, help: str, **kw: object) -> KeySpec:  # noqa: A002
    return KeySpec(keys, display, action, name, help, **kw)  # type: ignore[arg-type]


KEYS: tuple[KeySpec, ...] = (
    _key("plus,equals_sign", "+", "throttle('+10')", "Throttle +10", "raise the throttle by 10 points",
         steers=True, footer="throttle", footer_key="+/-"),
    _key("minus,underscore", "-", "throttle('-10')", "Throttle -10", "lower the throttle by 10 points",
         steers=True),
    _key("s", "s", "skip", "Skip model", "move to the next model now", steers=True, footer="skip"),
    _key("p", "p", "toggle_pause", "Pause / resume", "pause after the test in flight, or resume",
         steers=True, footer="pause"),
    _key("n", "n", "toggle_quiet", "Quiet hours on/off", "a lower throttle in the night window",
         steers=True, footer="quiet"),
    _key("r", "r", "report", "Report", "the report so far: rankings, profiles, errors",
         footer="report"),
    _key("e", "e", "focus_errors", "Error log", "focus the error log (arrows scroll it)"),
    _key("f", "f", "filter_errors", "Filter errors", "show one model's or one error class's errors"),
    _key(",".join(str(i) for i in range(1, len(PANES) + 1)), f"1-{len(PANES)}", "zoom", "Maximise pane",
         "fill the screen with pane N (see its title)", choices=tuple(t for _, t in PANES)),
    _key("escape", "Esc", "restore", "Restore layout", "back to every pane from a maximised one",
         bound=False),
    _key("question_mark", "?", "help", "Help", "list the keys", footer="help"),
    _key("d", "d", "detach", "Detach", "leave; the run goes on (soaktui watch DIR)",
         footer="detach"),
    _key("q", "q", "quit", "Quit", "stop the run and write its report (asks)", footer="quit"),
)  # fmt: skip


def bindings() -> list[Binding]:
    keys = [
        Binding(key, action, k.footer or name, show=k.footer is not None, key_display=k.footer_key or display)
        for k in KEYS
        if k.bound
        for key, display, action, name in k.entries()
    ]
    # Ctrl+C is how people leave a terminal program: the same as q (it asks first while a run is active).
    return [*keys, Binding("ctrl+c", "quit", "quit", show=False, priority=True)]


class SoakCommands(Provider):
    """Command palette entries for every viewer key."""

    def _commands(self) -> list[tuple[str, str, str]]:
        return [
            (f"{name} ({display})", k.help, action) for k in KEYS for _, display, action, name in k.entries()
        ]

    async def discover(self) -> Hits:
        for name, help_text, action in self._commands():
            yield DiscoveryHit(name, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action in self._commands():
            score = max(matcher.match(name), matcher.match(help_text))
            if score > 0:
                yield Hit(
                    score, matcher.highlight(name), partial(self.app.run_action, action), help=help_text
                )


__all__ = ["KEYS", "KeySpec", "SoakCommands", "bindings"]
