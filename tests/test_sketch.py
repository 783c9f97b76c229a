"""The quantile sketch of the live views (soaktui/sketch.py): its stated bound, merging, its size."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soaktui.sketch import ALPHA, EXACT_CAP, MAX_BINS, QuantileSketch
from soaktui.stats import percentile

pytestmark = pytest.mark.unit

QS = (0, 0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)

# non-negative, as every metric the folds keep; within MAX_BINS bins of each other (a ratio of 10^15)
values = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9))
signed = st.one_of(values, values.map(lambda v: -v))


def within(estimate: float | None, exact: float | None) -> bool:
    """The stated bound, with room for the last bit of a logarithm."""
    assert estimate is not None and exact is not None
    return abs(estimate - exact) <= ALPHA * abs(exact) * (1 + 1e-9) + 1e-300


@st.composite
def samples(draw: st.DrawFn, elements: st.SearchStrategy[float] = values) -> list[float]:
    """A hand-picked list (shrinks well), repeated so that most examples outgrow EXACT_CAP, or a
    long skewed sample (log-normal, with ties and zeros) of up to 20 times EXACT_CAP."""
    if draw(st.booleans()):
        base = draw(st.lists(elements, min_size=1, max_size=300))
        return base * draw(st.integers(1, 3))
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1, 20 * EXACT_CAP))
    mu, sigma = draw(st.floats(-3, 12)), draw(st.floats(0.01, 3))
    out = [round(rng.lognormvariate(mu, sigma), rng.choice((1, 3, 9))) for _ in range(n)]
    return [0.0 if v < 1e-6 else v for v in out]


@settings(max_examples=150, deadline=None)
@given(samples())
def test_every_quantile_is_within_the_stated_relative_error(xs: list[float]) -> None:
    sk = QuantileSketch(xs)
    exact = sorted(xs)
    assert len(sk) == len(xs)
    assert sk.min == exact[0] and sk.max == exact[-1]  # exact
    assert math.isclose(sk.sum(), math.fsum(xs), rel_tol=1e-9, abs_tol=1e-9)
    for q in QS:
        assert within(sk.quantile(q), percentile(exact, q)), q


@settings(max_examples=100, deadline=None)
@given(samples(signed))
def test_every_order_statistic_is_within_the_bound_whatever_the_sign(xs: list[float]) -> None:
    sk = QuantileSketch(xs)
    exact = sorted(xs)
    step = max(1, len(xs) // 200)
    for r in [*range(0, len(xs), step), len(xs) - 1]:
        assert within(sk.value_at_rank(r), exact[r]), r


@settings(max_examples=150, deadline=None)
@given(st.lists(samples(signed), min_size=1, max_size=5))
def test_merging_equals_feeding_every_value_to_one_sketch(parts: list[list[float]]) -> None:
    whole = QuantileSketch([v for p in parts for v in p])
    merged = QuantileSketch.merged([QuantileSketch(p) for p in parts])
    assert list(merged.counts()) == list(whole.counts())
    assert len(merged) == len(whole)
    assert (merged.min, merged.max) == (whole.min, whole.max)
    assert math.isclose(merged.sum(), whole.sum(), rel_tol=1e-9, abs_tol=1e-6)
    assert [merged.quantile(q) for q in QS] == [whole.quantile(q) for q in QS]


def test_a_small_sample_is_exact() -> None:
    xs = [random.Random(1).expovariate(0.01) for _ in range(EXACT_CAP)]
    sk = QuantileSketch(xs)
    assert [sk.quantile(q) for q in QS] == [percentile(sorted(xs), q) for q in QS]


def test_memory_is_bounded_however_many_and_however_spread_the_values() -> None:
    rng = random.Random(2)
    sk = QuantileSketch()
    xs = [10 ** rng.uniform(-30, 30) for _ in range(100_000)]  # a ratio of 10^60: more than MAX_BINS
    for v in xs:
        sk.append(v)
    assert sk.exact is None and sk.pos is not None and len(sk.pos.counts) <= MAX_BINS
    exact = sorted(xs)
    # the lowest bins (below 10^12.2, MAX_BINS under the top) were folded together; the values above
    # them keep the bound
    for q in (75, 95, 99, 100):
        assert within(sk.quantile(q), percentile(exact, q)), q
    # folding is the same whatever the order the values come in, or the parts merged
    halves = QuantileSketch.merged([QuantileSketch(xs[1::2]), QuantileSketch(xs[::2])])
    assert list(QuantileSketch(exact[::-1]).counts()) == list(sk.counts()) == list(halves.counts())


@pytest.mark.parametrize("bad", ["12.5", None, [1.0]])
def test_a_non_number_raises_type_error_and_changes_nothing(bad: object) -> None:
    """As `array('d').append` does: the aggregate counts the event as malformed."""
    sk = QuantileSketch([1.0, 2.0])
    with pytest.raises(TypeError):
        sk.append(bad)  # type: ignore[arg-type]
    assert len(sk) == 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_raise_value_error_and_change_nothing(bad: float) -> None:
    sk = QuantileSketch([1.0] * (EXACT_CAP + 5))
    with pytest.raises(ValueError):
        sk.append(bad)
    assert len(sk) == EXACT_CAP + 5 and sk.max == 1.0
