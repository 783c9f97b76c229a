"""Time as an axis: how each model behaved over the run, and whether it degraded.

The request fold (requests.py) keeps each model's requests in 15-second cells (BASE_S, by epoch
time; the cell doubles when a model outgrows MAX_CELLS, about 17 hours), filled on its hot path: successes and failures, stalls, failures by class, and the generation tokens/s and TTFT of
the successful warm streamed requests (arrays of floats: 16 bytes a request, sorted only when a
snapshot reads them; bounded sketches in a live fold, see folds/common.new_sample). `timeline()` regroups a model's cells into buckets sized
to the run (the smallest of WIDTHS that gives at most TARGET_BUCKETS buckets: 10 minutes for an
eight-hour night, 15 seconds for a few minutes' demo) and compares each model's first hour with its last:

- generation tokens/s and TTFT: the Mann-Whitney U test (two-sided, normal approximation with the
  tie correction) between the first hour's requests and the last hour's; a model *degraded* when
  p < ALPHA and its median got worse by more than DRIFT_SHARE;
- error rate: the two-proportion z-test, degraded when p < ALPHA and the rate rose by more than
  DRIFT_POINTS.

Runs shorter than two hours have no separate first and last hour: the comparison says so. A
cancelled request (and one whose tool list did not fit) counts nowhere, as in every section.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from soaktui.report.snapshot import Drift, DriftTest, TimeBucket, Timeline
from soaktui.sketch import QuantileSketch
from soaktui.stats import Sample, percentile_of

BASE_S = 15.0
MAX_CELLS = 4096  # per model; beyond, the cell width doubles
TARGET_BUCKETS = 48
WIDTHS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)  # seconds
HOUR_S = 3600.0
ALPHA = 0.01
DRIFT_SHARE = 0.10  # tokens/s 10% lower, or TTFT 10% higher
DRIFT_POINTS = 0.05  # error rate 5 percentage points higher

METHOD = (
    "first hour vs last hour of the model's requests: Mann-Whitney U (two-sided, normal approximation "
    f"with tie correction) for tokens/s and TTFT, two-proportion z-test for the error rate; degraded when "
    f"p < {ALPHA} and the median is {DRIFT_SHARE:.0%} worse (error rate {DRIFT_POINTS * 100:.0f} points higher)"
)


class _Cell:
    __slots__ = ("ok", "failed", "stalls", "classes", "tps", "ttft")

    def __init__(self, new: Callable[[], Any]) -> None:
        self.ok = self.failed = self.stalls = 0
        self.classes: dict[str, int] | None = None
        self.tps = new()  # array('d'), or a QuantileSketch in a live fold (folds/common.new_sample)
        self.ttft = new()

    def fail(self, cls: str) -> None:
        self.failed += 1
        classes = self.classes
        if classes is None:
            classes = self.classes = {}
        classes[cls] = classes.get(cls, 0) + 1

    def merge(self, other: _Cell) -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.stalls += other.stalls
        if other.classes:
            classes = self.classes if self.classes is not None else {}
            for c, n in other.classes.items():
                classes[c] = classes.get(c, 0) + n
            self.classes = classes
        self.tps.extend(other.tps)
        self.ttft.extend(other.ttft)


class TimeCells:
    """One bucket's requests in time cells of `width` seconds, indexed by epoch time // width.

    The request fold (requests.py) fills them on its hot path: `last`/`last_i` let consecutive
    requests of one minute skip the lookup; `nowhere` takes requests without a time (read by nothing).
    """

    __slots__ = ("width", "cells", "last", "last_i", "nowhere", "new")

    def __init__(self, new: Callable[[], Any]) -> None:
        self.new = new
        self.width = BASE_S
        self.cells: dict[int, _Cell] = {}
        self.last = _Cell(new)
        self.last_i: int | None = None
        self.nowhere = _Cell(new)

    def cell(self, i: int) -> _Cell:
        c = self.cells.get(i)
        if c is None:
            if len(self.cells) >= MAX_CELLS:
                self._coarsen()
                return self.cell(i // 2)
            c = self.cells[i] = _Cell(self.new)
        self.last, self.last_i = c, i
        return c

    def merge(self, later: TimeCells) -> None:
        """Join the cells of a later stretch of the log (folds/merging.py). Exact: the width one
        fold over both would have reached is the narrowest that holds every cell within MAX_CELLS,
        and cells are sums."""
        while later.width > self.width:
            self._coarsen()
        while self.width > later.width:
            later._coarsen()
        for i, c in later.cells.items():
            mine = self.cells.get(i)
            if mine is None:
                self.cells[i] = c
            else:
                mine.merge(c)
        self.nowhere.merge(later.nowhere)
        while len(self.cells) > MAX_CELLS:
            self._coarsen()
        self.last, self.last_i = _Cell(self.new), None

    def _coarsen(self) -> None:
        merged: dict[int, _Cell] = {}
        for i, c in self.cells.items():
            into = merged.get(i // 2)
            if into is None:
                merged[i // 2] = c
            else:
                into.merge(c)
        self.cells = merged
        self.width *= 2
        self.last, self.last_i = _Cell(self.new), None


def _runs(sample: Sample) -> Iterable[tuple[float, int]]:
    """(value, how many) of an exact sample (each value once) or of a live fold's sketch (its bins)."""
    if isinstance(sample, QuantileSketch):
        return sample.counts()
    return ((v, 1) for v in sample)


def mann_whitney(a: Sample, b: Sample) -> float | None:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with the tie correction);
    None below 5 values on either side or when every value is tied. Sketches (a live fold's) are
    ranked by their bins' values: their values tie within a bin."""
    n1, n2 = len(a), len(b)
    if n1 < 5 or n2 < 5:
        return None
    groups: dict[float, list[int]] = {}  # value -> [how many in a, how many in b]
    for side, sample in ((0, a), (1, b)):
        for v, k in _runs(sample):
            row = groups.get(v)
            if row is None:
                row = groups[v] = [0, 0]
            row[side] += k
    n = n1 + n2
    rank_sum_a = 0.0
    ties = 0.0
    i = 0
    for v in sorted(groups):
        in_a, in_b = groups[v]
        size = in_a + in_b
        j = i + size - 1
        rank = (i + j) / 2 + 1  # the tied values' mean rank
        ties += size**3 - size
        rank_sum_a += rank * in_a
        i = j + 1
    u = rank_sum_a - n1 * (n1 + 1) / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return None
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)  # continuity correction
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value of the two-proportion z-test; None below 10 trials on either side."""
    if n1 < 10 or n2 < 10:
        return None
    p = (k1 + k2) / (n1 + n2)
    var = p * (1 - p) * (1 / n1 + 1 / n2)
    if var <= 0:
        return None
    z = abs(k1 / n1 - k2 / n2) / math.sqrt(var)
    return math.erfc(z / math.sqrt(2))


def _median(values: Sample) -> float | None:
    return percentile_of(values, 50)


def _shift(first: Sample, last: Sample, worse_if_lower: bool) -> DriftTest:
    m1, m2 = _median(first), _median(last)
    p = mann_whitney(first, last)
    change = (m2 - m1) / m1 if m1 and m2 is not None else None
    worse = change is not None and (-change if worse_if_lower else change) > DRIFT_SHARE
    return {
        "first": None if m1 is None else round(m1, 2),
        "last": None if m2 is None else round(m2, 2),
        "n_first": len(first),
        "n_last": len(last),
        "change": None if change is None else round(change, 4),
        "p": None if p is None else round(p, 6),
        "degraded": bool(worse and p is not None and p < ALPHA),
    }


def _spans(parts: list[TimeCells]) -> list[tuple[float, float, _Cell]]:
    """Every cell of a model as (start, end, cell) in epoch seconds."""
    return [(i * tc.width, (i + 1) * tc.width, c) for tc in parts for i, c in tc.cells.items()]


def timeline(cells: dict[str, list[TimeCells]], origin: float | None, end: float | None) -> Timeline:
    """The report's "over time" section from the request fold's cells (`RequestFold.time_cells`):
    buckets sized to the run from `origin` (the run's start) to `end` (its last event)."""
    spans = {key: _spans(parts) for key, parts in cells.items()}
    starts = [a for cs in spans.values() for a, _, _ in cs]
    if origin is None and starts:
        origin = min(starts)
    if end is None and spans:
        end = max(b for cs in spans.values() for _, b, _ in cs)
    span = (end - origin) if origin is not None and end is not None else 0.0
    base = max((tc.width for parts in cells.values() for tc in parts), default=BASE_S)
    width = next(
        (w for w in WIDTHS if w >= base and w % base == 0 and span / w <= TARGET_BUCKETS),
        max(base, span / TARGET_BUCKETS),
    )
    zero = origin or 0.0
    return {
        "bucket_s": width,
        "origin_t": origin,
        "span_s": round(span, 3),
        "models": {key: _buckets(cs, zero, width) for key, cs in spans.items()},
        "drift": {key: _drift(cs, zero, span) for key, cs in spans.items()},
        "method": METHOD,
    }


def _merged(cells: list[_Cell], attr: str) -> Sample:
    """The cells' values of `attr` as one sorted sample (one sketch, in a live fold)."""
    parts = [getattr(c, attr) for c in cells]
    if parts and isinstance(parts[0], QuantileSketch):
        return QuantileSketch.merged(parts)
    merged = array("d")
    for p in parts:
        merged.extend(p)
    return sorted(merged)


def _buckets(cells: list[tuple[float, float, _Cell]], zero: float, width: float) -> list[TimeBucket]:
    groups: dict[int, list[_Cell]] = {}
    for a, _, c in cells:
        groups.setdefault(max(0, int((a - zero) // width)), []).append(c)
    out: list[TimeBucket] = []
    for b in sorted(groups):
        group = groups[b]
        ok = sum(c.ok for c in group)
        failed = sum(c.failed for c in group)
        tps = _merged(group, "tps")  # one bucket's values: merged, then sorted
        ttft = _merged(group, "ttft")
        classes: dict[str, int] = {}
        for c in group:
            for cls, n in (c.classes or {}).items():
                classes[cls] = classes.get(cls, 0) + n
        p50 = percentile_of(tps, 50)
        t50 = percentile_of(ttft, 50)
        t95 = percentile_of(ttft, 95)
        out.append(
            {
                "start_s": b * width,
                "requests_ok": ok,
                "requests_failed": failed,
                "error_rate": round(failed / (ok + failed), 4) if ok + failed else None,
                "stalls": sum(c.stalls for c in group),
                "errors": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
                "gen_tps_p50": None if p50 is None else round(p50, 2),
                "gen_tps_n": len(tps),
                "ttft_p50_ms": None if t50 is None else round(t50, 1),
                "ttft_p95_ms": None if t95 is None else round(t95, 1),
            }
        )
    return out


def _drift(cells: list[tuple[float, float, _Cell]], zero: float, span: float) -> Drift:
    if span < 2 * HOUR_S:
        return {"compared": False, "why": "the run is shorter than two hours: no separate first and last hour",
                "gen_tps": None, "ttft_ms": None, "error_rate": None, "degraded": False}  # fmt: skip
    first = [c for a, b, c in cells if b - zero <= HOUR_S]
    last = [c for a, b, c in cells if a - zero >= span - HOUR_S]
    ok1, bad1 = sum(c.ok for c in first), sum(c.failed for c in first)
    ok2, bad2 = sum(c.ok for c in last), sum(c.failed for c in last)
    n1, n2 = ok1 + bad1, ok2 + bad2
    p = two_proportions(bad1, n1, bad2, n2)
    r1 = bad1 / n1 if n1 else None
    r2 = bad2 / n2 if n2 else None
    rose = r1 is not None and r2 is not None and r2 - r1 > DRIFT_POINTS
    errors: DriftTest = {
        "first": None if r1 is None else round(r1, 4),
        "last": None if r2 is None else round(r2, 4),
        "n_first": n1,
        "n_last": n2,
        "change": None if r1 is None or r2 is None else round(r2 - r1, 4),
        "p": None if p is None else round(p, 6),
        "degraded": bool(rose and p is not None and p < ALPHA),
    }
    gen = _shift(_merged(first, "tps"), _merged(last, "tps"), worse_if_lower=True)
    ttft = _shift(_merged(first, "ttft"), _merged(last, "ttft"), worse_if_lower=False)
    return {
        "compared": True,
        "why": None,
        "gen_tps": gen,
        "ttft_ms": ttft,
        "error_rate": errors,
        "degraded": gen["degraded"] or ttft["degraded"] or errors["degraded"],
    }


__all__ = ["ALPHA", "METHOD", "TimeCells", "mann_whitney", "timeline", "two_proportions"]
