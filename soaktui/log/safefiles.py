"""Open the files of a run directory without following anything planted there.

A run directory holds server text (error bodies, answers) that may carry secrets, and soaktui is
sometimes run as root. So every file soaktui writes in one goes through `open_run_file`:

- `O_NOFOLLOW`: a symlink planted at the name is refused, never followed (its target is untouched);
- created with mode 0600 (`PRIVATE_FILE`), run directories with 0700 (`PRIVATE_DIR`);
- `new=True` adds `O_EXCL` for a file that must not exist yet (the text logs of a new run, the
  temporary file of an atomic replace): anything already there, a planted hard link included, is
  refused;
- `new=False` (a file appended to across attempts, such as engine.log) accepts only a regular file
  with one link, owned by the current user, so a planted hard link is refused too.

Files rewritten whole (test_summary.json, the report) are written to a new temporary file opened
this way and renamed over the name (report/atomic.py): rename(2) replaces a planted symlink itself,
never its target. A run directory not owned by the current user is refused (`not_owned`): its owner
could plant links faster than any check.

The errors raised are OSError with a `strerror` that says what was found, so a caller's usual
"cannot write PATH: {exc.strerror}" reads as one clear line.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SYMLINK_REFUSED = "a symlink is there (soaktui never follows one in a run directory)"
EXISTS_REFUSED = "a file is already there (a new run's files must be new)"
NOT_PLAIN_REFUSED = "not a plain file of yours with a single link (refusing to write through it)"


def open_run_file(path: str | os.PathLike[str], *, new: bool) -> int:
    """A write-only, appending descriptor on `path` that never follows a symlink (see the module doc)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_EXCL if new else 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except OSError as exc:
        # O_EXCL reports a planted symlink as EEXIST; O_NOFOLLOW alone as ELOOP.
        if exc.errno in (errno.ELOOP, errno.EEXIST) and os.path.islink(path):
            raise OSError(errno.ELOOP, SYMLINK_REFUSED, os.fspath(path)) from None
        if exc.errno == errno.EEXIST:
            raise OSError(errno.EEXIST, EXISTS_REFUSED, os.fspath(path)) from None
        raise
    if not new:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            os.close(fd)
            raise OSError(errno.EPERM, NOT_PLAIN_REFUSED, os.fspath(path))
    return fd


def open_run_text(path: str | os.PathLike[str], *, new: bool) -> IO[str]:
    """`open_run_file` as a line-buffered UTF-8 text file (the human-readable logs)."""
    return os.fdopen(open_run_file(path, new=new), "a", encoding="utf-8", buffering=1)


def make_run_dir(path: str | os.PathLike[str], *, exist_ok: bool) -> Path:
    """Create the run directory `path` with mode 0700 (its parents as usual). With `exist_ok` an
    existing directory is left as it is (check `not_owned`); without, FileExistsError is raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if not exist_ok or not path.is_dir():
            raise
    return path


def not_owned(path: str | os.PathLike[str]) -> str | None:
    """Why the directory `path` is not the current user's ("it belongs to uid N, ..."), or None."""
    try:
        owner = os.stat(path).st_uid
    except OSError:
        return None  # missing or unreadable: the write that follows says why
    me = os.geteuid()
    if owner == me:
        return None
    return f"it belongs to uid {owner}, not to you (uid {me})"
