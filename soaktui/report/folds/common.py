"""Small helpers every fold shares: model keys, number tests, times."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def model_key(provider: Any, model: Any) -> str:
    """`provider/model`, the key of a model in every section of the report."""
    return f"{provider}/{model}" if provider else str(model)


def is_num(v: Any) -> bool:
    """A real number (bools are not)."""
    return v is not None and type(v) is not bool and isinstance(v, (int, float))


def iso(t: float | None) -> str | None:
    """Epoch seconds as a local ISO time, to the second."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=timezone.utc).astimezone().isoformat(timespec="seconds")
