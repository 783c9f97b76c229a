"""The small statistics the report is made of, defined once so every figure means the same thing.

Percentiles use linear interpolation between the two nearest ranks (`percentile`), the one
definition of p50/p95/p99 everywhere: the client's inter-token latency, the report, the dashboard
and the benchmarks. Rates are never shown bare: a success rate
always travels with its counts and a Wilson 95% score interval, which stays honest for the small
samples a soak produces (3/3 is "100%, 95% CI 44-100%", not "100%").
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, TypedDict, cast

from soaktui.sketch import QuantileSketch


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence; None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


NA = "n/a"  # how every surface shows a figure that was never measured (never as 0)
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def select(parts: Sequence[Sequence[float]], r: int) -> float:
    """The r-th smallest value (0-based) of the union of sorted `parts`, without merging them.

    For each part, binary-search an element x with less(x) <= r < less_or_equal(x), where the
    counts over all parts come from bisect: O(k log^2 n) for k parts, no copy of the data.
    """
    for arr in parts:
        lo, hi = 0, len(arr)
        while lo < hi:
            mid = (lo + hi) // 2
            x = arr[mid]
            if sum(bisect_right(p, x) for p in parts) <= r:
                lo = mid + 1  # x is below the target
            elif sum(bisect_left(p, x) for p in parts) > r:
                hi = mid  # x is above the target
            else:
                return float(x)
    raise IndexError(f"rank {r} out of range")


Sample = Sequence[float] | QuantileSketch  # a sorted exact sample, or a live fold's sketch of one


def _split(parts: Sequence[Sample]) -> tuple[QuantileSketch | None, Sequence[Sequence[float]]]:
    """(the parts merged into one sketch, ()) when they are sketches (a live fold's), else (None,
    the parts): a fold keeps all its samples one way or the other."""
    if parts and isinstance(parts[0], QuantileSketch):
        return QuantileSketch.merged(cast("Sequence[QuantileSketch]", parts)), ()
    return None, cast("Sequence[Sequence[float]]", parts)


def sorted_sample(values: Sample) -> Sample:
    """An exact sample sorted (a new list), or a live fold's sketch as it is (it needs no sorting)."""
    return values if isinstance(values, QuantileSketch) else sorted(values)


def percentile_of(sample: Sample, q: float) -> float | None:
    """`percentile` of one sorted sample or sketch (a sketch's within its ALPHA)."""
    if isinstance(sample, QuantileSketch):
        return sample.quantile(q)
    return percentile(sample, q)


def percentile_parts(parts: Sequence[Sample], q: float) -> float | None:
    """`percentile` (linear interpolation, q in 0..100) of the union of sorted parts (or sketches)."""
    sketch, exact = _split(parts)
    if sketch is not None:
        return sketch.quantile(q)
    exact = [p for p in exact if len(p)]
    if len(exact) <= 1:
        return percentile(exact[0], q) if exact else None
    n = sum(len(p) for p in exact)
    pos = (n - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    a = select(exact, lo)
    b = a if hi == lo else select(exact, hi)
    return float(a + (b - a) * (pos - lo))


class Describe(TypedDict):
    """A distribution: its size and figures, each None when n is 0 (never 0)."""

    n: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None


class Rate(TypedDict):
    """A success rate with its evidence: k of n, the rate (None when n is 0), a Wilson 95% interval."""

    k: int
    n: int
    rate: float | None
    ci95: list[float] | None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def describe_parts(parts: Sequence[Sample], sums: Sequence[float] | None = None) -> Describe:
    """n, mean, p50/p95/p99, min, max over the union of sorted parts; figures None when n is 0.

    `sums` (one per part, e.g. cached `math.fsum` of each) saves a pass over the data. Sketches (a
    live fold's) give the same figures, the percentiles within the sketch's ALPHA.
    """
    sketch, exact = _split(parts)
    if sketch is not None:
        return _describe_sketch(sketch)
    if sums is None:
        sums = [math.fsum(p) for p in exact]
    n = sum(len(p) for p in exact)
    if n == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "min": None, "max": None}
    total = math.fsum(s for p, s in zip(exact, sums, strict=True) if len(p))
    exact = [p for p in exact if len(p)]
    return {
        "n": n,
        "mean": _r(total / n),
        "p50": _r(percentile_parts(exact, 50)),
        "p95": _r(percentile_parts(exact, 95)),
        "p99": _r(percentile_parts(exact, 99)),
        "min": _r(float(min(p[0] for p in exact))),
        "max": _r(float(max(p[-1] for p in exact))),
    }


def _describe_sketch(s: QuantileSketch) -> Describe:
    n = len(s)
    if n == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "min": None, "max": None}
    return {
        "n": n,
        "mean": _r(s.sum() / n),
        "p50": _r(s.quantile(50)),
        "p95": _r(s.quantile(95)),
        "p99": _r(s.quantile(99)),
        "min": _r(s.min),
        "max": _r(s.max),
    }


def describe(sorted_values: Sample) -> Describe:
    """n, mean, p50/p95/p99, min, max of one sorted sample; every figure None when n is 0."""
    return describe_parts([sorted_values])


def median_ci(parts: Sequence[Sample], z: float = Z95) -> list[float] | None:
    """A distribution-free 95% confidence interval of the median of the union of sorted `parts`:
    the order statistics at ranks n/2 -+ z*sqrt(n)/2 (the binomial(n, 1/2) normal approximation).
    None below 6 values, where no such interval reaches 95%."""
    n = sum(len(p) for p in parts)
    if n < 6:
        return None
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    sketch, exact = _split(parts)
    if sketch is not None:
        return [round(sketch.value_at_rank(lo), 3), round(sketch.value_at_rank(hi), 3)]
    live = [p for p in exact if len(p)]
    return [round(float(select(live, lo)), 3), round(float(select(live, hi)), 3)]


def median(sorted_values: Sequence[float]) -> float | None:
    return _r(percentile(sorted_values, 50))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes out of n (None when n is 0), as fractions 0..1."""
    if n <= 0:
        return None
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> Rate:
    """A success rate with its evidence: {k, n, rate, ci95: [lo, hi]}; rate None when n is 0."""
    ci = wilson(k, n)
    return {
        "k": k,
        "n": n,
        "rate": None if n == 0 else round(k / n, 4),
        "ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
    }


def format_rate(r: Rate | None, unit: str = "") -> str:
    """'3/3 (100%; 95% CI 44-100%)'; 'n/a (0 tests)' when nothing was counted. Never a bare %."""
    if not r or not r.get("n") or r["ci95"] is None or r["rate"] is None:  # n > 0 sets both
        return f"n/a (0{' ' + unit if unit else ''})"
    lo, hi = r["ci95"]
    return f"{r['k']}/{r['n']} ({100 * r['rate']:.0f}%; 95% CI {100 * lo:.0f}-{100 * hi:.0f}%)"


SMALL_SAMPLE = 10  # below this many trials a rate is shown as counts and interval only


def compact_rate(r: Rate | None) -> str:
    """A rate for a table cell: '3/3 (44–100%)' below SMALL_SAMPLE trials (no bare point estimate
    on a small sample), '95/100 95% (89–98%)' from there on; 'n/a' when nothing was counted."""
    if not r or not r.get("n") or r["ci95"] is None or r["rate"] is None:  # n > 0 sets both
        return NA
    lo, hi = r["ci95"]
    ci = f"({100 * lo:.0f}–{100 * hi:.0f}%)"
    if r["n"] < SMALL_SAMPLE:
        return f"{r['k']}/{r['n']} {ci}"
    return f"{r['k']}/{r['n']} {100 * r['rate']:.0f}% {ci}"


def lower_bound(r: Rate | None) -> float | None:
    """The lower end of a rate's Wilson 95% interval (what rankings sort by), None when n is 0."""
    ci = r["ci95"] if r else None
    return ci[0] if ci else None


def top(counts: dict[str, int], limit: int) -> list[list[Any]]:
    """The `limit` largest counts as [name, count] pairs, ties by name (stable output)."""
    return [[k, v] for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


OVERFLOW = "(other)"  # where a bounded tally or count puts the keys past its cap


def bounded_tally(
    pairs: dict[str, list[int]], key: str, ok: bool, cap: int, overflow: str = OVERFLOW
) -> None:
    """pairs[key] += [ok, 1 trial], at most `cap` distinct keys: later newcomers go to `overflow`.

    Every tally of successes is a [k, n] pair, in the order of `rate(k, n)` and of the model
    database (profiles/capdb.py), which stores the same pairs."""
    row = pairs.get(key)
    if row is None:
        if len(pairs) >= cap:
            key = overflow
        row = pairs.setdefault(key, [0, 0])
    row[0] += ok
    row[1] += 1


def bounded_inc(counts: dict[str, int], key: str, cap: int, overflow: str = OVERFLOW) -> None:
    """counts[key] += 1, but never more than `cap` distinct keys: later newcomers go to `overflow`."""
    if key in counts or len(counts) < cap:
        counts[key] = counts.get(key, 0) + 1
    else:
        counts[overflow] = counts.get(overflow, 0) + 1
