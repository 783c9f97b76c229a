"""Join the hardware fold of a later stretch of the log onto the fold of the stretch before it.

The two-process report (report/split.py) folds each half of a log apart. Most folds are sums and
join by adding; the hardware section is not: a reading holds until the next one, a stretch under
the limits runs on across readings, a test's energy is integrated over the power readings before
it, its tokens come from requests logged before its result, and the guard's state lasts until it
changes. The later fold (made with `later=True`, seeded with the run's run_started) cannot know
any of that at its start, so it records what depends on it (`LaterStretch`), and `join` settles
it here against the earlier fold, step by step in the order one pass would have met it:

1. the later stretch's requests and tests before its first reading, replayed onto the earlier fold;
2. the earlier stretch's last reading held until the later's first (MAX_GAP_S at most);
3. the stretch under the limits open at the cut, closed or continued by the later's first judged
   reading, with the busy time of the tests begun before it;
4. the guard state at the cut, for the later stretch's time, tests and timeline cells before its
   first guard change;
5. timelines, value tables and sums added;
6. tests begun before the later stretch's first reading: the tokens of their requests in the
   earlier stretch, and their energy over the earlier stretch's power readings and the later's.

`join` says why (the caller then folds the later stretch again, in order) wherever it could not
be exact: a bounded table that overflowed or could have (tests left unfinished), a value histogram
that coarsened, a guard change before the later stretch's first reading, a run_started other than
the one the later fold was seeded with, times that run backwards at the cut, token counts that are
not whole numbers, a test id that is not one. Every sum of the fold is an int (hardware.FIXED), so
the order of the terms changes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from soaktui.report.folds.hardware import (
    _TPS,
    FIXED,
    MAX_GAP_S,
    MAX_MODELS,
    MAX_NAMES,
    MAX_PENDING,
    MAX_POWER_POINTS,
    UNKNOWN,
    HardwareFold,
    LaterStretch,
    _bounded_add,
    energy_over,
)
from soaktui.report.folds.merging import add_counts
from soaktui.thermal import STATE_RANK


class _Inexact(Exception):
    """The join would not give one pass's figures."""


def join(first: HardwareFold, later: HardwareFold) -> HardwareFold | str:
    """A new fold: `first` with `later` (a later stretch's fold) joined on, or why the join could
    not be exact. Neither argument is changed."""
    if later.later is None:
        return "the later fold was not made for a later stretch"
    if later.later.problem is not None:
        return later.later.problem
    try:
        joined, theirs = copy.deepcopy(first), copy.deepcopy(later)  # the join takes parts of both
        assert theirs.later is not None
        _join_into(joined, theirs, theirs.later)
    except _Inexact as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a malformed early event, a value too deep to copy...
        return f"the join failed ({type(exc).__name__}): one pass decides"
    return joined


def _join_into(m: HardwareFold, b: HardwareFold, rec: LaterStretch) -> None:
    if rec.early_overflow and m.sensing:
        raise _Inexact("requests before the later stretch's first reading were not all kept")
    # 1. what came before the later stretch's first reading, in order
    if rec.early and m.sensing:
        for ev in rec.early:
            (m.feed_request if ev.get("kind") == "request" else m.on_result)(ev)
    if b.untouched:  # no reading, guard change or run_started: those events were all of it
        return
    if b._readings_done != b.readings or rec.results[0] != rec.results[1]:
        raise _Inexact("a reading or a result that raised partway (one pass keeps what it did)")
    if (b.limits, b.limits_source, b._origin, b._started_t) != (m.limits, m.limits_source, m._origin, m._started_t):
        raise _Inexact("the later fold was not seeded with the run_started this one read last")
    if b._evicted or len(b.per_model) >= MAX_MODELS or len(m._pending) + b._pending_peak >= MAX_PENDING:
        raise _Inexact("a bounded table full, or it could have been")
    if rec.first_sensing is False and m.sensing:
        raise _Inexact("the later stretch's first reading did not make it sensing")
    if not _whole_tokens(m) or not _whole_tokens(b):
        raise _Inexact("token counts that are not whole numbers")
    power_at_cut = list(m._power)
    _hold_and_stretch(m, b, rec)
    cut_state = m.guard_state
    _guard(m, b, rec, cut_state)
    _timeline(m, b, cut_state)
    _tables(m, b)
    _boundary_tests(m, b, rec, power_at_cut)
    m._power.extend(b._power)
    m._prev = b._prev if b._prev is not None else m._prev


def _hold_and_stretch(m: HardwareFold, b: HardwareFold, rec: LaterStretch) -> None:
    """Steps 2 and 3: the reading held across the cut, and the stretch open at it."""
    if b.readings:
        if m._prev is not None:
            m._hold_previous(b._first_reading_t)  # type: ignore[arg-type]
        if m._first_reading_t is None:
            m._first_reading_t = b._first_reading_t
        m._last_reading_t = b._last_reading_t
        m.readings += b.readings
    open_a = m._stretch
    if rec.first_judged is None:  # no judged reading after the cut: the open stretch runs on
        return
    t1, over1 = rec.first_judged
    if open_a is not None and (over1 or t1 - open_a[1] > MAX_GAP_S):
        m._close_stretch(open_a[0], t1 if over1 else open_a[1] + MAX_GAP_S, open_a[2])
        open_a = None
    merged_open = b._stretch
    if not over1:  # the later stretch's first one began at t1
        if open_a is not None:  # and continues the open one: its early tests count from its start
            if t1 < open_a[0]:  # time ran backwards: tests it did not keep would count otherwise
                raise _Inexact("times that run backwards at the cut")
            extra = sum(
                round(max(0.0, t - max(a, open_a[0])) * FIXED) - round(max(0.0, t - max(a, t1)) * FIXED)
                for a, t in rec.first_stretch_tests
            )
            if rec.provisional is not None:
                _, end, busy = rec.provisional
                m._close_stretch(open_a[0], end, open_a[2] + busy + extra)
            elif b._stretch is not None:
                merged_open = [open_a[0], b._stretch[1], open_a[2] + b._stretch[2] + extra]
        elif rec.provisional is not None:
            m._close_stretch(*rec.provisional)
    m._stretch = merged_open
    m.stretches += b.stretches
    if b.longest is not None and (m.longest is None or b.longest[0] > m.longest[0]):
        m.longest = b.longest
    if b.best is not None and (m.best is None or b.best[0] > m.best[0]):
        m.best = b.best


def _guard(m: HardwareFold, b: HardwareFold, rec: LaterStretch, cut_state: str) -> None:
    """Step 4: before its first change, the later stretch ran in the state at the cut."""
    m.guard_busy[cut_state] += b.guard_busy[UNKNOWN]
    for state in STATE_RANK:
        m.guard_busy[state] += b.guard_busy[state]
    if rec.first_guard_t is not None:
        since = m._guard_since
        if since is None:  # one pass would have started the guard's clock at the timeline's origin
            assert b.timeline is not None  # a guard change makes one
            since = b.timeline.origin
        m.guard_time[cut_state] += round(max(0.0, rec.first_guard_t - since) * FIXED)
        for state in STATE_RANK:
            m.guard_time[state] += b.guard_time[state]
        m._guard_since, m.guard_state = b._guard_since, b.guard_state
    elif m._guard_since is None:
        m._guard_since = b._guard_since
    m.guard_events += b.guard_events
    add_counts(m.guard_entries, b.guard_entries)
    m.guard_history.extend(b.guard_history)


def _timeline(m: HardwareFold, b: HardwareFold, cut_state: str) -> None:
    """Step 5, the timeline: the same origin (both from run_started), cells added; the cells the
    later stretch read before its first guard change take the state at the cut."""
    if b.timeline is not None:
        if m.timeline is None:
            m.timeline = b.timeline
        elif m.timeline.origin != b.timeline.origin:
            raise _Inexact("timelines from different origins")
        else:
            m.timeline.join(b.timeline)
        rank = STATE_RANK[cut_state]
        for c in m.timeline.cells:
            if c is not None and c.early:
                c.guard = max(c.guard, rank)
                c.early = False
    if b._last_t is not None and (m._last_t is None or b._last_t > m._last_t):
        m._last_t = b._last_t
    if m._origin is None:
        m._origin = b._origin


def _tables(m: HardwareFold, b: HardwareFold) -> None:
    """Step 5, the rest: histograms, counts, times, names, counters, energy, models."""
    for name, h in m.hists.items():
        if not h.join(b.hists[name]):
            raise _Inexact("a value histogram coarsened")
    m.sensing = m.sensing or b.sensing
    add_counts(m.family_readings, b.family_readings)
    if len(b.unavailable) >= MAX_NAMES or len(b.gpu_reasons) >= MAX_NAMES:
        raise _Inexact("a bounded table full")
    for fam, why in b.unavailable.items():
        _bounded_add(m.unavailable, fam, why)
    for fam, src in b.sources.items():
        if len(src) >= MAX_NAMES:
            raise _Inexact("a bounded table full")
        for label in src:
            _bounded_add(m.sources[fam], label, None)
    for fam in m.time_known:
        m.time_known[fam] += b.time_known[fam]
        m.time_over[fam] += b.time_over[fam]
    m.time_any_over += b.time_any_over
    for level, seconds in b.pressure_time.items():
        m.pressure_time[level] = m.pressure_time.get(level, 0) + seconds
    for reason, (n, seconds) in b.gpu_reasons.items():
        row = m.gpu_reasons.get(reason)
        if row is not None:
            row[0] += n
            row[1] += seconds
        elif len(m.gpu_reasons) < MAX_NAMES:
            m.gpu_reasons[reason] = [n, seconds]
    for counter, (last, total) in b.cpu_throttle.items():
        first = b._throttle_first[counter]
        counts = m.cpu_throttle.get(counter)
        if counts is None:
            m.cpu_throttle[counter] = [last, total]
            m._throttle_first.setdefault(counter, first)
        else:  # the later stretch's first value continues the earlier's counter (or restarts it)
            counts[1] += (first - counts[0] if first >= counts[0] else first) + total
            counts[0] = last
    m.energy_j += b.energy_j
    m.energy_s += b.energy_s
    m.busy_s += b.busy_s
    m.tests += b.tests
    for key, row in b.per_model.items():
        mine = m.per_model.get(key)
        if mine is not None:
            for i, v in enumerate(row):
                mine[i] += v
        elif len(m.per_model) < MAX_MODELS:
            m.per_model[key] = row


def _boundary_tests(m: HardwareFold, b: HardwareFold, rec: LaterStretch, power_at_cut: list[Any]) -> None:
    """Step 6, in the later stretch's order: tests whose requests or power readings the earlier
    stretch holds, and results that only used up a test's requests (their time or length bad)."""
    unfinished = m._pending
    # tests the earlier stretch left unfinished: no result the later one did not keep is theirs
    if unfinished and rec.min_id is not None and not max(unfinished) < rec.min_id:
        raise _Inexact("an unfinished test's result may not have been kept")
    for test_id, t, a, span, key, tokens, known, covered, readings in rec.boundary:
        earlier = unfinished.pop(test_id, None)
        if t is None:  # a result that was not folded: one pass would have dropped the requests too
            continue
        extra = 0
        if earlier is not None:
            extra, tps_sum, tps_n = earlier
            if m.timeline is not None:
                cell = m.timeline.cell(t)
                cell.tokens += extra
                cell.sums[_TPS] += tps_sum
                cell.counts[_TPS] += tps_n
        row = m.per_model.get(key)
        if row is None:
            continue
        if known:
            if covered:
                row[2] += extra
            continue
        if readings > MAX_POWER_POINTS:
            raise _Inexact("a test longer than the power readings kept")
        points = (power_at_cut + rec.power_head[:readings])[-MAX_POWER_POINTS:]
        joules, seconds = energy_over(points, a, t) if points and span > 0 else (0.0, 0.0)
        if points and span > 0 and seconds >= span * 0.999:
            row[0] += round(joules * FIXED)
            row[1] += round(span * FIXED)
            row[2] += tokens + extra
            row[3] += 1
        else:
            row[4] += 1
    for test_id, row in b._pending.items():
        mine = unfinished.get(test_id)
        if mine is None:
            unfinished[test_id] = row
        else:
            for i, v in enumerate(row):
                mine[i] += v


def _whole_tokens(fold: HardwareFold) -> bool:
    """Every token count the fold added up is an int: sums of ints do not depend on their order."""
    cells = fold.timeline.cells if fold.timeline is not None else ()
    return (
        all(type(c.tokens) is int for c in cells if c is not None)
        and all(type(row[2]) is int for row in fold.per_model.values())
        and all(type(row[0]) is int for row in fold._pending.values())
    )


__all__ = ["join"]
