"""Fold a long event log in two processes: the report of a night's soak in half the wall time.

Reading and folding a log costs a few microseconds an event, all of it in one CPU: a million
requests take seconds. So a log of at least MIN_SPLIT_BYTES is cut in two at a line boundary; a
forked child folds the second half (`RunAggregate(later=True)`) while this process folds the
first, then the child's aggregate is joined on (`RunAggregate.merge`: folds/merging.py, and
folds/hardware_join.py for the readings). The join gives exactly what one fold over the whole log
gives; where it could not (a bounded table that overflowed, a run_started in the second half, a
guard change before its first reading...: `RunAggregate.cannot_merge` says which), or when the
child fails, hangs or dies, this process folds the second half itself, in order, and the report is
the same, only slower. Nothing here is needed for correctness: it is only ever a shortcut.

The child is forked from a single-threaded process (`soaktui report`). A process with other
threads (the engine writing its end-of-run report, the dashboard's report screen) must not fork:
another thread could hold a lock the child would need. It starts a fresh interpreter instead
(`CHILD_CODE`), which costs its imports, a fraction of a second: isolated from the environment and
the working directory (`python -I`), with this process's import path, so it runs the same code. A
child's answer starts with CODE_ID, what code it ran; one that ran other code (soaktui upgraded
during a week-long run, say) is not joined.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from soaktui.log.reader import ReadStats, iter_event_batches
from soaktui.report.aggregate import RunAggregate

MIN_SPLIT_BYTES = 64 << 20  # below this a log folds in well under a second: one process
MAX_LINE_SEARCH = 64 << 20  # how far past the middle a line end is looked for
CHILD_GRACE_S = 10.0  # beyond twice this process's own fold time, the child is taken as stuck


def _code_id() -> bytes:
    """Which soaktui this process runs, as its files were when this module was imported: the
    package's directory and each module's size and modification time."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(str(root).encode())
    try:
        for f in sorted(root.rglob("*.py")):
            st = f.stat()
            digest.update(f"{f.relative_to(root)} {st.st_size} {st.st_mtime_ns}\n".encode())
    except OSError as exc:  # not files on a disk (a zip, say): only the place tells
        digest.update(repr(exc).encode())
    return digest.hexdigest().encode()


CODE_ID = _code_id()


def _fold(agg: RunAggregate, path: Path, stats: ReadStats, start: int = 0, end: int | None = None) -> None:
    feed_all = agg.feed_all
    for batch in iter_event_batches(path, stats, start=start, end=end):
        feed_all(batch)


FIRST_SHARE = 0.52  # of the bytes, folded here: the child also sorts and sends its half


def middle_cut(path: Path, size: int, share: float = FIRST_SHARE) -> int | None:
    """The offset just after the first newline at or past `share` of the file (None: none near
    enough, or nothing after it)."""
    start = int(size * share)
    with open(path, "rb") as fh:
        fh.seek(start)
        searched = 0
        while searched < MAX_LINE_SEARCH:
            block = fh.read(1 << 20)
            if not block:
                return None
            i = block.find(b"\n")
            if i >= 0:
                cut = start + searched + i + 1
                return cut if cut < size else None
            searched += len(block)
    return None


def can_fork() -> bool:
    """Whether a child process may be forked here: a POSIX system, two CPUs, no other thread."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2 and threading.active_count() == 1


def can_spawn() -> bool:
    """Whether a child interpreter may be started here instead: POSIX, two CPUs, a known python."""
    return hasattr(os, "posix_spawn") and (os.cpu_count() or 1) >= 2 and bool(sys.executable)


def first_event(path: Path) -> dict[str, Any] | None:
    """The log's first event (its first non-blank line, if that is one within the first MiB): the
    run's run_started, which the second half's hardware fold is seeded with. A wrong seed costs
    time only: the join checks it against the run_started the first half read last."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    line = next((ln for ln in head.split(b"\n") if ln.strip()), b"")
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return ev if type(ev) is dict else None


def _start_child(path: Path, cut: int) -> tuple[int, int]:
    """A child process folding [cut, end): (its pid, the read end of the pipe it answers on).
    Forked when this process has no other thread, else a fresh interpreter (see the docstring)."""
    read_fd, write_fd = os.pipe()
    try:
        if can_fork():
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 0
                try:
                    os.close(read_fd)
                    _child(path, cut, write_fd)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
        else:  # the pipe's write end at a number of its own (dup2 keeps it open across exec); the
            # child's standard streams go nowhere (a dashboard owns the terminal): it answers on the pipe
            fd = max(read_fd, write_fd, 2) + 1
            paths = json.dumps(sys.path)
            argv = [sys.executable, "-I", "-c", CHILD_CODE, paths, str(path), str(cut), str(fd)]
            actions: list[tuple[Any, ...]] = [
                (os.POSIX_SPAWN_DUP2, write_fd, fd),
                *((os.POSIX_SPAWN_OPEN, n, os.devnull, os.O_RDWR, 0) for n in (0, 1, 2)),
            ]
            pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return pid, read_fd


def _child(path: Path, cut: int, write_fd: int) -> None:
    """In the child: fold [cut, end) and send back (aggregate, stats), or the reason it stopped."""
    payload: Any
    try:
        later, stats = RunAggregate(later=True), ReadStats()
        start = first_event(path)  # the run's run_started seeds the hardware fold
        if start is not None and start.get("kind") == "run_started":
            later.hardware.seed(start)
        feed_all = later.feed_all
        record = later.hardware.later
        assert record is not None
        for batch in iter_event_batches(path, stats, start=cut):
            feed_all(batch)
            if later.unmergeable is not None or record.problem is not None:
                payload = "the second half cannot be joined"  # no use folding the rest
                break
        else:
            later.requests.sort()  # sorted here, in parallel: the join then merges sorted runs
            payload = (later, stats)
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # anything at all: the parent folds this half itself
        data = pickle.dumps(f"the child failed: {type(exc).__name__}: {exc}")
    with os.fdopen(write_fd, "wb") as out:
        out.write(CODE_ID + b"\n")
        out.write(data)


def _join(pid: int, read_fd: int, wait_s: float) -> Any:
    """What the child sent (None when it sent nothing usable), once it has exited. A child still
    sending after `wait_s` is stuck (it should take as long as this process did): it is killed and
    its half folded here."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + wait_s
    done = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                break  # stuck
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                done = True
                break
            chunks.append(chunk)
    finally:
        _stop(pid, read_fd, kill=not done)  # killed when stuck, or when this process is interrupted
    if not done:
        return None
    answer = b"".join(chunks)
    head = answer.find(b"\n")
    if answer[: max(head, 0)] != CODE_ID:  # nothing, or another soaktui's folds: not read
        return None
    try:
        return pickle.loads(memoryview(answer)[head + 1 :])
    except Exception:  # a child killed mid-write: its half is folded here instead
        return None


def _stop(pid: int, read_fd: int, kill: bool = True) -> None:
    """Close the pipe, kill the child (unless it finished) and reap it, whatever state each is in."""
    for step in (
        lambda: os.close(read_fd),
        lambda: os.kill(pid, signal.SIGKILL) if kill else None,
        lambda: os.waitpid(pid, 0),
    ):
        try:
            step()
        except OSError:  # closed already, gone already, reaped already
            pass


def fold_log(
    path: str | os.PathLike[str],
    stats: ReadStats,
    agg: RunAggregate | None = None,
    *,
    min_bytes: int = MIN_SPLIT_BYTES,
    cut: int | None = None,
) -> RunAggregate:
    """`agg` (a new RunAggregate by default) fed with every event of the log at `path`, `stats`
    filled as one pass would fill them; in two processes when the log is large enough (`cut`:
    where to split instead of the middle, for tests). Returns `agg`."""
    path = Path(path)
    agg = agg if agg is not None else RunAggregate()
    size = path.stat().st_size
    two = can_fork() or can_spawn()
    if cut is None and size >= min_bytes and two:
        cut = middle_cut(path, size)
    if cut is None or not 0 < cut < size or not two:
        _fold(agg, path, stats)
        return agg
    with open(path, "rb") as fh:
        fh.seek(cut - 1)
        if fh.read(1) != b"\n":
            raise ValueError(f"cut {cut} is not at the start of a line")
    try:
        pid, read_fd = _start_child(path, cut)
    except OSError:  # no process to be had (a limit on processes, no memory): one pass, here
        _fold(agg, path, stats)
        return agg
    started = time.monotonic()
    try:
        _fold(agg, path, stats, end=cut)
        agg.requests.sort()  # while the child finishes: the join then merges two sorted runs
    except BaseException:
        _stop(pid, read_fd)
        raise
    got = _join(pid, read_fd, wait_s=2 * (time.monotonic() - started) + CHILD_GRACE_S)
    later_stats = ReadStats()
    try:
        if not isinstance(got, tuple):
            raise ValueError("the child sent nothing usable")
        agg.merge(got[0])  # changes nothing when it raises
        later_stats = got[1]
    except ValueError:  # folded here, in order
        _fold(agg, path, later_stats, start=cut)
    stats.merge(later_stats)
    return agg


def main(argv: list[str]) -> None:
    """The child as a fresh interpreter (CHILD_CODE): LOG CUT FD. It ends at once when it has
    answered: no exit handlers, no waiting for threads a site hook may have started."""
    code = 1
    try:
        _child(Path(argv[0]), int(argv[1]), int(argv[2]))
        code = 0
    finally:
        os._exit(code)


# What a fresh interpreter runs, with `-I` (no environment, no working directory on its path) and
# this process's import path as its first argument. (Not `-m soaktui.report.split`: runpy warns on
# stderr when the package has imported the module already.)
CHILD_CODE = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from soaktui.report.split import main; main(sys.argv[2:])"
)

__all__ = ["MIN_SPLIT_BYTES", "can_fork", "can_spawn", "fold_log", "middle_cut"]
