"""Replace a file atomically, so a reader (or a crash, or a full disk) never sees half of it.

The bytes go to a new temporary file in the same directory (opened by log/safefiles.py: O_EXCL and
O_NOFOLLOW, mode 0600), are fsynced, and `os.replace` swaps it in. A symlink planted at the name is
replaced itself, its target untouched (rename(2) never follows the new name). On any error the
temporary file is removed and the old file is left untouched.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from soaktui.log.safefiles import open_run_file


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` atomically (mode 0600); raises OSError (the old file stays intact) on failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = open_run_file(tmp, new=True)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
