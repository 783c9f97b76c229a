"""The timing arithmetic of one request: every derived figure from hand-made stamps."""

from __future__ import annotations

from array import array

import pytest

from soaktui.providers.result import RequestResult
from soaktui.stats import percentile

pytestmark = pytest.mark.unit

MS = 1_000_000


def streamed(**kw) -> RequestResult:
    r = RequestResult(model="m", stream=True, ok=True, **kw)
    return r


def test_stream_figures_from_stamps():
    # sent at 0, first byte at 50 ms, content chunks at 100, 110, 130, 160 ms, end at 170 ms.
    r = streamed(
        submit_ns=-2 * MS,
        sent_ns=0,
        first_byte_ns=50 * MS,
        first_token_ns=100 * MS,
        last_token_ns=160 * MS,
        end_ns=170 * MS,
        token_ns=array("q", [100 * MS, 110 * MS, 130 * MS, 160 * MS]),
        output_tokens=4,
        prompt_tokens=200,
        token_source="chunks",
    )
    assert r.ttft_ms == 100.0
    assert r.first_byte_ms == 50.0
    assert r.e2e_ms == 170.0
    assert r.client_queue_ms == 2.0
    assert r.itl_ms() == [10.0, 20.0, 30.0]
    assert r.itl_percentiles() == (20.0, 29.0)  # linear interpolation: p95 of 10, 20, 30
    assert r.gen_tps == pytest.approx(3 / 0.060, abs=1e-3)  # tokens after the first / first->last
    assert r.prompt_tps == pytest.approx(200 / 0.100)
    fields = r.event_fields()
    assert fields["ttft_ms"] == 100.0 and fields["itl_p50_ms"] == 20.0 and fields["client_queue_ms"] == 2.0


def test_unmeasurable_figures_are_none_not_zero():
    r = streamed(sent_ns=0, first_token_ns=5 * MS, last_token_ns=5 * MS, end_ns=6 * MS, output_tokens=1)
    assert r.gen_tps is None  # one token: no generation phase to time
    assert r.prompt_tps is None  # prompt tokens unknown
    assert r.itl_percentiles() == (None, None)
    empty = RequestResult(model="m", stream=True)
    assert (empty.ttft_ms, empty.e2e_ms, empty.gen_tps, empty.client_queue_ms) == (None, None, None, None)


def test_non_streamed_figures():
    r = RequestResult(model="m", stream=False, ok=True, sent_ns=0, end_ns=2000 * MS, output_tokens=100)
    assert r.ttft_ms is None  # no first token to see in a blocking answer
    assert r.gen_tps == 50.0  # output / e2e
    r.finish_reason = "length"
    assert r.truncated


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
