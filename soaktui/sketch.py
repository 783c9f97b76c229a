"""A bounded, mergeable quantile sketch: the live figures' replacement for an exact array of values.

The idea is DDSketch's (Masson, Rim and Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch
with Relative-Error Guarantees", VLDB 2019), the same log-bucketing HdrHistogram uses: a positive
value v goes to bin i = ceil(log_gamma(v)) with gamma = (1 + ALPHA) / (1 - ALPHA), and every value
of bin i is read back as 2 gamma^i / (gamma + 1), which is within ALPHA of it *relatively*. So:

    every order statistic (and hence every quantile) the sketch returns is within ALPHA = 1% of the
    exact one, |estimate - exact| <= ALPHA * |exact|;

the count, sum, min and max are kept exactly (the sum as a running float sum, so the mean is good to
rounding). Negative values go to a mirrored store, zero to a count of its own. A quantile between
two ranks is interpolated linearly exactly as stats.percentile does; two estimates each within ALPHA
of a non-negative exact value interpolate to within ALPHA of the exact interpolation, and the
results are clamped to the exact [min, max].

Memory is bounded whatever the number of values: the first EXACT_CAP values are kept as they are
(a small sample, such as a quiet 15-second timeline cell, costs no more than an array, and its
figures are exact), then the bins take over as a dense array of counts, at most MAX_BINS of them
per sign (8 bytes each): a sketch holds at most 16 KiB of counts, typically a few hundred bytes. Values of one metric
rarely span more than a few hundred bins (a ratio of 100 between the fastest and the slowest is 231
bins at 1%); beyond MAX_BINS (a ratio of about 10^17) the lowest bins are folded together, as
DDSketch does, and only the quantiles in those folded bins lose the bound.

Merging two sketches adds their bins: the result is the sketch of all their values, fed in any
order (tests/test_sketch.py checks both properties with hypothesis). It has `append` and `extend`
and `len`, like the `array('d')` it stands in for, so a fold's hot path does not change.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence

ALPHA = 0.01  # relative accuracy of every quantile
EXACT_CAP = 64  # values kept exactly before the bins take over (512 bytes, about a sketch's bins)
MAX_BINS = 2048  # bins per sign; beyond, the lowest are folded together

_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_MID = 2.0 / (_GAMMA + 1)  # a bin's value, relative to its upper bound gamma^i
_INF, _NEG_INF = math.inf, -math.inf  # shared: `-math.inf` would make a float per sketch


def _index(v: float) -> int:
    """The bin of a positive value: ceil(log_gamma(v))."""
    return math.ceil(math.log(v) * _INV_LOG_GAMMA)


def _value(i: int) -> float:
    """The value every member of bin i is read as (within ALPHA of each)."""
    return _MID * _GAMMA**i


class _Store:
    """Counts of the bins offset..offset+len(counts)-1 (one sign's values), dense."""

    __slots__ = ("counts", "offset")

    def __init__(self) -> None:
        self.counts = array("q")
        self.offset = 0

    def add(self, i: int, n: int = 1) -> None:
        counts = self.counts
        j = i - self.offset
        if 0 <= j < len(counts):
            counts[j] += n
            return
        if not counts:
            self.offset, self.counts = i, array("q", [n])
            return
        if j < 0:  # below the lowest bin: grow down, at most to MAX_BINS (then it joins the lowest)
            grow = min(-j, MAX_BINS - len(counts))
            if grow > 0:
                self.counts = counts = array("q", bytes(8 * grow)) + counts
                self.offset -= grow
            counts[0] += n
            return
        counts.extend(array("q", bytes(8 * (j - len(counts) + 1))))
        counts[j] += n
        if len(self.counts) > MAX_BINS:  # fold the lowest bins into the lowest one kept
            cut = len(self.counts) - MAX_BINS
            low = sum(self.counts[: cut + 1])
            self.counts = self.counts[cut:]
            self.counts[0] = low
            self.offset += cut

    def bins(self) -> Iterator[tuple[int, int]]:
        """(bin, count) of every non-empty bin, lowest first."""
        off = self.offset
        for j, n in enumerate(self.counts):
            if n:
                yield off + j, n


class QuantileSketch:
    """Quantiles of a stream of numbers within ALPHA relative error, in bounded memory, mergeable."""

    __slots__ = ("exact", "n", "total", "lo", "hi", "zeros", "pos", "neg")

    def __init__(self, values: Iterable[float] = ()) -> None:
        # Until EXACT_CAP values, `exact` holds them and the fields below are unused (a timeline
        # cell's sketch costs little more than an array); then they count everything.
        self.exact: array[float] | None = array("d")
        self.n = 0
        self.total = 0.0
        self.lo = _INF
        self.hi = _NEG_INF
        self.zeros = 0
        self.pos: _Store | None = None  # bins of the positive values, once the bins took over
        self.neg: _Store | None = None  # bins of -v for negative values, once one came
        self.extend(values)

    def __len__(self) -> int:
        exact = self.exact
        return self.n if exact is None else len(exact)

    def append(self, v: float) -> None:
        """Add one value. A non-number raises TypeError, NaN or an infinity ValueError, before
        anything changed (as the exact fold's array raises for a non-number). The hot path."""
        if v - v:  # NaN or an infinity (a str or None raises TypeError here)
            raise ValueError(f"{v} has no rank in a quantile sketch")
        exact = self.exact
        if exact is not None:
            if len(exact) < EXACT_CAP:
                exact.append(v)
                return
            self._to_bins()
        if v > 0.0:
            i = math.ceil(math.log(v) * _INV_LOG_GAMMA)
            store = self.pos
            assert store is not None
            counts = store.counts
            j = i - store.offset
            if 0 <= j < len(counts):
                counts[j] += 1
            else:
                store.add(i)
        elif v < 0.0:
            if self.neg is None:
                self.neg = _Store()
            self.neg.add(_index(-v))
        else:
            self.zeros += 1
        self.n += 1
        self.total += v
        if v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v

    def _to_bins(self) -> None:
        """Move the exact values into the bins (from here on, only the bins count)."""
        exact, self.exact = self.exact, None
        self.pos = _Store()
        for v in exact or ():
            self.append(v)

    def extend(self, values: Iterable[float]) -> None:
        """Add every value of `values`; another sketch is merged (its bins added to these)."""
        if not isinstance(values, QuantileSketch):
            for v in values:
                self.append(v)
            return
        other = values
        if other.exact is not None:
            for v in other.exact:
                self.append(v)
            return
        if self.exact is not None:
            self._to_bins()
        assert self.pos is not None and other.pos is not None
        for i, k in other.pos.bins():
            self.pos.add(i, k)
        if other.neg is not None:
            if self.neg is None:
                self.neg = _Store()
            for i, k in other.neg.bins():
                self.neg.add(i, k)
        self.zeros += other.zeros
        self.n += other.n
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    @property
    def min(self) -> float | None:
        """The smallest value (exact); None when empty."""
        if self.exact is not None:
            return min(self.exact) if self.exact else None
        return self.lo

    @property
    def max(self) -> float | None:
        """The largest value (exact); None when empty."""
        if self.exact is not None:
            return max(self.exact) if self.exact else None
        return self.hi

    def sum(self) -> float:
        """The sum of the values (math.fsum while they are kept exactly, a running sum after)."""
        return math.fsum(self.exact) if self.exact is not None else self.total

    @classmethod
    def merged(cls, parts: Sequence[QuantileSketch]) -> QuantileSketch:
        """One sketch of every value of `parts` (the parts are left as they were)."""
        out = cls()
        for p in parts:
            out.extend(p)
        return out

    def counts(self) -> Iterator[tuple[float, int]]:
        """(value, how many) in ascending order: the exact values, or each bin's value and count."""
        if self.exact is not None:
            for v in sorted(self.exact):
                yield v, 1
            return
        if self.neg is not None:
            for i, k in reversed(list(self.neg.bins())):
                yield -_value(i), k
        if self.zeros:
            yield 0.0, self.zeros
        if self.pos is not None:
            for i, k in self.pos.bins():
                yield _value(i), k

    def value_at_rank(self, r: int) -> float:
        """The r-th smallest value (0-based), within ALPHA of the exact one; rank 0 and n-1 exact."""
        n = len(self)
        if not 0 <= r < n:
            raise IndexError(f"rank {r} out of range")
        if self.exact is not None:
            return sorted(self.exact)[r]
        if r == 0:
            return self.lo
        if r == n - 1:
            return self.hi
        seen = 0
        for v, k in self.counts():
            seen += k
            if seen > r:
                return min(max(v, self.lo), self.hi)
        raise AssertionError("counts do not add up to n")  # pragma: no cover

    def quantile(self, q: float) -> float | None:
        """Linear-interpolated percentile (q in 0..100) as stats.percentile; None when empty."""
        n = len(self)
        if n == 0:
            return None
        pos = (n - 1) * q / 100.0
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        a = self.value_at_rank(lo)
        b = a if hi == lo else self.value_at_rank(hi)
        return float(a + (b - a) * (pos - lo))


__all__ = ["ALPHA", "EXACT_CAP", "MAX_BINS", "QuantileSketch"]
