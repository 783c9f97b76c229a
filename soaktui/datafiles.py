"""The JSON Lines data files people edit (prompt banks, structured-output tasks), read one way.

One JSON object a line; blank lines and lines starting with `//` are skipped. A line that is not a
JSON object, or lacks a key it must have, is a SetupError naming its file and line: a soak must not
start on data that cannot be used, and must not skip a line silently either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from soaktui.errors import SetupError


def json_objects(files: Iterable[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for every data line of `files`, in order."""
    for f in files:
        for i, line in enumerate(Path(f).read_bytes().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith(b"//"):
                continue
            where = f"{f}:{i}"
            try:
                d = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise SetupError(f"{where}: not valid JSON ({exc})") from None
            if not isinstance(d, dict):
                raise SetupError(f"{where}: expected a JSON object")
            yield where, d


def require(d: dict[str, Any], keys: Iterable[str], where: str) -> None:
    """SetupError naming the keys of `keys` that `d` lacks."""
    missing = [k for k in keys if k not in d]
    if missing:
        raise SetupError(f"{where}: missing {', '.join(missing)}")


class _Entry(Protocol):
    id: str


E = TypeVar("E", bound=_Entry)


def unique_entries(dirs: Iterable[Path], parse: Callable[[dict[str, Any], str], E], what: str) -> list[E]:
    """The entries of every `*.jsonl` file in `dirs` (each directory's files by name), parsed by
    `parse(object, "file:line")`. `what` names them in errors: a missing directory, or an id defined
    twice, is a SetupError."""
    entries: list[E] = []
    seen: dict[str, str] = {}
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise SetupError(f"{what} directory {d} does not exist")
        for where, obj in json_objects(sorted(d.glob("*.jsonl"))):
            entry = parse(obj, where)
            if entry.id in seen:
                raise SetupError(f"{where}: {what} id {entry.id!r} already defined in {seen[entry.id]}")
            seen[entry.id] = where
            entries.append(entry)
    return entries
