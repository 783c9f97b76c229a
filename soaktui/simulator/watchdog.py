"""Exit with the parent: a simulator started for one run must not outlive it.

`soaktui --demo` runs the simulator as a child process. If the engine is killed with SIGKILL it
cannot stop its child, and an orphan simulator would keep its port and its CPU. With
`soaktui simulate --exit-with-parent PID` the simulator checks a few times a second whether that
process is still there and stops on its own when it is not. A cheap check: one /proc read (or its
macOS equivalent) through psutil, which also tells a zombie or a reused pid from the live process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import psutil

CHECK_INTERVAL_S = 0.2


def process_watch(pid: int) -> Callable[[], bool]:
    """A function that tells whether process `pid` (as it is now) is still alive.

    It is dead once it exited (even if nobody reaped it yet: a zombie), once its pid belongs to
    another process, and, when `pid` is our parent, once we have been handed to another parent.
    """
    was_parent = pid == os.getppid()
    try:
        proc = psutil.Process(pid)
    except (psutil.NoSuchProcess, ValueError):
        return lambda: False

    def alive() -> bool:
        if was_parent and os.getppid() != pid:
            return False
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # it exists, we may just not look at it

    return alive


async def wait_until_gone(pid: int, interval_s: float = CHECK_INTERVAL_S) -> None:
    """Return once process `pid` is gone (checked every `interval_s` seconds)."""
    alive = process_watch(pid)
    while alive():
        await asyncio.sleep(interval_s)
