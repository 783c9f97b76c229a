"""Where soaktui keeps things: the config file, run directories, and the data shipped in the package.

Paths follow the platform's conventions (platformdirs: ~/.config and ~/.local/share on Linux,
~/Library/Application Support on macOS). `SOAKTUI_CONFIG_DIR` and `SOAKTUI_DATA_DIR` override them,
which is also how tests keep the host's own config and runs out of the way. Every function takes an
optional `env` mapping (default `os.environ`) so callers that carry their own environment agree.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path

import platformdirs

import soaktui
from soaktui.errors import SetupError
from soaktui.log import rundir
from soaktui.log.safefiles import make_run_dir, not_owned

APP_NAME = "soaktui"
CONFIG_DIR_ENV = "SOAKTUI_CONFIG_DIR"
DATA_DIR_ENV = "SOAKTUI_DATA_DIR"
CONFIG_FILE_NAME = "config.toml"
RUN_PREFIX = "soak_"
PACKAGE_DATA = ("prompts", "themes")

_RUN_NAME = re.compile(r"soak_(\d{8}_\d{6})(?:_(\d+))?")
_MAX_SUFFIX = 1000


def _override(var: str, env: Mapping[str, str] | None) -> Path | None:
    value = (os.environ if env is None else env).get(var, "")
    return Path(value).expanduser() if value else None


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    return _override(CONFIG_DIR_ENV, env) or platformdirs.user_config_path(APP_NAME, appauthor=False)


def config_file(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / CONFIG_FILE_NAME


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    return _override(DATA_DIR_ENV, env) or platformdirs.user_data_path(APP_NAME, appauthor=False)


def runs_dir(env: Mapping[str, str] | None = None) -> Path:
    return data_dir(env) / "runs"


def new_run_dir(
    base: Path | None = None, now: dt.datetime | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, Path]:
    """Create and return (run_id, path) for a new run: `soak_YYYYMMDD_HHMMSS`, `_2`, `_3`... if taken.

    The directory is created here (mkdir without exist_ok, mode 0700), so two runs started in the
    same second never share one, and nobody else can read or plant files in it.
    """
    base = runs_dir(env) if base is None else Path(base)
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d_%H%M%S")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create the runs directory {base}: {exc.strerror or exc}") from exc
    for n in range(1, _MAX_SUFFIX + 1):
        run_id = f"{RUN_PREFIX}{stamp}" if n == 1 else f"{RUN_PREFIX}{stamp}_{n}"
        path = base / run_id
        try:
            make_run_dir(path, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise SetupError(f"cannot create the run directory {path}: {exc.strerror or exc}") from exc
        _refuse_foreign(path, "the run directory")
        return run_id, path
    raise SetupError(f"{base}: {_MAX_SUFFIX} run directories already exist for {stamp}")


def claim_out_dir(out: Path) -> tuple[Path, bool]:
    """Make `--out DIR` ready for a new run: (its path, whether it was created here). One rule for
    the engine and for the dashboard, which writes engine.log there before the engine starts.

    SetupError when it holds a run, cannot be created or written, or is not the user's (its owner
    could plant links in it: log/safefiles.py).
    """
    out = Path(out).expanduser()
    taken = rundir.holds_run(out)
    if taken:
        raise SetupError(taken)
    created = not out.exists()
    try:
        make_run_dir(out, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    _refuse_foreign(out, "--out")
    if not os.access(out, os.W_OK):
        raise SetupError(f"cannot write to --out {out}: permission denied")
    return out, created


def _refuse_foreign(path: Path, what: str) -> None:
    why = not_owned(path)
    if why:
        raise SetupError(f"refusing {what} {path}: {why}; choose a directory of your own")


def latest_run_dir(base: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The newest `soak_*` directory under `base` (default: runs_dir()), by the time in its name."""
    base = runs_dir(env) if base is None else Path(base)
    best: tuple[str, int] | None = None
    found: Path | None = None
    try:
        entries = list(base.iterdir())
    except OSError:
        return None
    for entry in entries:
        m = _RUN_NAME.fullmatch(entry.name)
        if m is None or not entry.is_dir():
            continue
        key = (m.group(1), int(m.group(2) or 1))
        if best is None or key > best:
            best, found = key, entry
    return found


def package_data_dir(name: str) -> Path:
    """The shipped data directory `name` ("prompts" or "themes").

    Installed from a wheel it sits inside the package (soaktui/prompts); in a source checkout it is
    at the top of the repository, next to the package.
    """
    if name not in PACKAGE_DATA:
        raise ValueError(f"unknown package data {name!r}; expected one of {', '.join(PACKAGE_DATA)}")
    package = Path(soaktui.__file__).resolve().parent
    for candidate in (package / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise SetupError(
        f"soaktui's {name}/ directory is missing (looked in {package / name} and {package.parent / name}); "
        "reinstall soaktui"
    )
