"""Small helpers every fold shares: model keys, the cancelled rule, number tests, times."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeGuard

from soaktui.errors import CANCELLED
from soaktui.sketch import QuantileSketch


def model_key(provider: Any, model: Any) -> str:
    """`provider/model`, the key of a model in every section of the report."""
    return f"{provider}/{model}" if provider else str(model)


def new_sample(exact: bool) -> Callable[[], Any]:
    """What a fold keeps a metric's values in: every value (`array('d')`, 8 bytes each: the report)
    or a bounded QuantileSketch (the live views: test_summary.json and the viewer), whose figures are
    within sketch.ALPHA of the exact ones. Both have `append`, `extend` and `len`."""
    return _float_array if exact else QuantileSketch


def _float_array() -> array[float]:
    """An empty exact sample (a module-level function, so a fold's state pickles)."""
    return array("d")


def is_cancelled(ev: dict[str, Any]) -> bool:
    """Cancelled by soaktui itself (skip, stop, end of run): counted apart, neither a success nor a
    failure of the model, in every section and on the dashboard."""
    return ev.get("error_class") == CANCELLED


def num_or_none(v: Any) -> float | None:
    """`v` when it is a real number, else None: what an example row may show of a field."""
    return v if is_num(v) else None


def is_num(v: Any) -> TypeGuard[float]:
    """A real number (bools are not)."""
    return v is not None and type(v) is not bool and isinstance(v, (int, float))


def is_int(v: Any) -> TypeGuard[int]:
    """A whole number as the engine writes counts and nanoseconds (bools are not)."""
    return type(v) is int


def iso(t: Any) -> str | None:
    """Epoch seconds as a local ISO time, to the second (None for what is not a time a clock shows)."""
    if not is_num(t):
        return None
    try:
        return datetime.fromtimestamp(t, tz=timezone.utc).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # a log's absurd time
        return None
