"""Dashboard themes: TOML files shipped in `themes/`, turned into Textual `Theme` objects.

Themes are data people edit, so they live outside the code (themes/README.md describes the keys)
and are checked on load: an unknown key or a colour Textual cannot parse is a SetupError naming
the file, not a traceback halfway through drawing. `--theme NAME` accepts a shipped theme or one of
Textual's built-ins; an unknown name lists the known ones.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from soaktui.errors import SetupError
from soaktui.locations import package_data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from textual.app import App

DEFAULT_THEME = "dark"
_COLOR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_OTHER_KEYS = {"dark": bool, "luminosity_spread": (int, float), "text_alpha": (int, float)}
_ALLOWED = {f.name for f in dataclasses.fields(Theme)} - {"name", "ansi"}


def load_theme_file(path: Path) -> Theme:
    """The Theme in one TOML file, named after the file (dark.toml -> "dark")."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read theme {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"theme {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise SetupError(
            f"theme {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_ALLOWED))}"
        )
    if "primary" not in data or "dark" not in data:
        raise SetupError(f"theme {path}: `primary` and `dark` are required")
    for key in _COLOR_KEYS:
        if key in data:
            _check_color(path, key, data[key])
    for key, kinds in _OTHER_KEYS.items():
        if key in data and (
            not isinstance(data[key], kinds) or (kinds is not bool and isinstance(data[key], bool))
        ):
            raise SetupError(f"theme {path}: `{key}` has the wrong type ({data[key]!r})")
    variables = data.pop("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise SetupError(f"theme {path}: [variables] must map names to strings")
    return Theme(name=path.stem, variables={str(k): v for k, v in variables.items()}, **data)


def _check_color(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise SetupError(f"theme {path}: `{key}` must be a colour string, got {value!r}")
    try:
        Color.parse(value)
    except ColorParseError:
        raise SetupError(f"theme {path}: `{key}` = {value!r} is not a colour") from None


def shipped_themes(directory: Path | None = None) -> dict[str, Theme]:
    """Every `*.toml` theme in `directory` (default: the package's themes/), by name."""
    directory = package_data_dir("themes") if directory is None else directory
    return {p.stem: load_theme_file(p) for p in sorted(directory.glob("*.toml"))}


def known_theme_names(shipped: Mapping[str, Theme]) -> list[str]:
    return [*shipped, *(n for n in BUILTIN_THEMES if n not in shipped)]


def resolve_theme(name: str, shipped: Mapping[str, Theme] | None = None) -> str:
    """`name` if it is a shipped or built-in theme, else SetupError listing the known names."""
    shipped = shipped_themes() if shipped is None else shipped
    if name in shipped or name in BUILTIN_THEMES:
        return name
    ours = ", ".join(shipped) or "none"
    builtin = ", ".join(n for n in BUILTIN_THEMES if n not in shipped)
    raise SetupError(f"unknown theme {name!r}: soaktui themes: {ours}; Textual's built-in themes: {builtin}")


def theme_color(theme: Theme, name: str, fallback: str) -> Color:
    """A colour of `theme` by Theme field name (e.g. "success"), or the theme's `fallback` field."""
    value = getattr(theme, name, None) or getattr(theme, fallback, None) or theme.primary
    return Color.parse(value)


PALETTE = ("primary", "accent", "success", "secondary", "warning", "error")


def theme_colors(app: App[Any]) -> list[tuple[int, int, int]]:
    """The colours of plot lines (the throughput pane, the report's charts): the app's current theme's."""
    var = app.theme_variables
    out = []
    for name in PALETTE:
        value = var.get(name)
        if value:
            try:
                out.append(Color.parse(value).rgb)
            except Exception:
                continue
    return out or [Color.parse(app.current_theme.primary).rgb]


__all__ = [
    "DEFAULT_THEME",
    "known_theme_names",
    "load_theme_file",
    "resolve_theme",
    "shipped_themes",
    "theme_color",
    "theme_colors",
]
