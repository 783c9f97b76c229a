"""Join a fold's state over a later stretch of a log onto its state over the stretch before.

`soaktui report` folds a long log in two processes, each over one half (report/split.py), and
joins the halves. A join must give exactly what one fold over the whole log gives, so every
helper here states the sequential rule it reproduces. Where a later half cannot be joined exactly
(a bounded table that overflowed: which keys it sent to OVERFLOW depended on what it had seen, not
on what the earlier half had), `overflowed` says so and the report folds that half again in order.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Any, Protocol

from soaktui.stats import OVERFLOW


class Extendable(Protocol):
    def extend(self, values: Any, /) -> None: ...


def overflowed(*tables: dict[Any, Any]) -> bool:
    """Some bounded table (bounded_inc, bounded_tally) sent a key past its cap to OVERFLOW: a key
    the earlier half holds may be among them, so the join would not be exact."""
    return any(OVERFLOW in t for t in tables)


def add_counts(into: dict[Any, int], later: dict[Any, int], cap: int | None = None) -> None:
    """`later`'s counts added in its first-seen order; past `cap` distinct keys a newcomer goes to
    OVERFLOW (bounded_inc's rule, as if `later`'s events had come one by one)."""
    for key, n in later.items():
        if key not in into and cap is not None and len(into) >= cap:
            key = OVERFLOW
        into[key] = into.get(key, 0) + n


def add_tallies(into: dict[Any, list[int]], later: dict[Any, list[int]], cap: int | None = None) -> None:
    """`later`'s [k, n] tallies added in its first-seen order; bounded_tally's cap rule."""
    for key, (k, n) in later.items():
        row = into.get(key)
        if row is None:
            if cap is not None and len(into) >= cap:
                key = OVERFLOW
            row = into.setdefault(key, [0, 0])
        row[0] += k
        row[1] += n


def add_firsts(into: MutableSequence[Any], later: MutableSequence[Any], cap: int) -> None:
    """The first `cap` distinct items: `later`'s (its own first distinct ones, in order) after
    `into`'s. Exact whatever `later` dropped: it kept at least as many of the newcomers as fit."""
    for item in later:
        if len(into) >= cap:
            return
        if item not in into:
            into.append(item)


def add_first_of(into: dict[Any, Any], later: dict[Any, Any]) -> None:
    """Per key, the earlier half's value when it has one (a first example), else the later's."""
    for key, value in later.items():
        into.setdefault(key, value)


def add_fields(into: Any, later: Any, counts: tuple[str, ...], samples: tuple[str, ...] = ()) -> None:
    """A record's counters summed and its samples extended (the row classes of the folds)."""
    for name in counts:
        setattr(into, name, getattr(into, name) + getattr(later, name))
    add_samples([(getattr(into, name), getattr(later, name)) for name in samples])


def add_rows(into: dict[Any, Any], later: dict[Any, Any]) -> None:
    """Keyed rows (each with a `merge(later_row)`) joined: new keys in `later`'s first-seen order."""
    for key, row in later.items():
        mine = into.get(key)
        if mine is None:
            into[key] = row
        else:
            mine.merge(row)


def add_samples(pairs: list[tuple[Extendable, Any]]) -> None:
    """Each (into, later) sample extended: order within a sample means nothing to any figure."""
    for into, later in pairs:
        into.extend(later)


__all__ = [
    "add_counts",
    "add_fields",
    "add_first_of",
    "add_rows",
    "add_firsts",
    "add_samples",
    "add_tallies",
    "overflowed",
]
