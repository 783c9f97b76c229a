"""provider_failover tests per (model, mode): how fast a failure is noticed and service is back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from soaktui.report.folds.common import is_cancelled, is_num, model_key, new_sample
from soaktui.report.folds.merging import add_fields, add_rows
from soaktui.report.snapshot import FailoverMode
from soaktui.stats import describe, rate, sorted_sample


class _FailRow:
    __slots__ = ("tests", "ok", "detect", "recover", "cold", "attempts")

    def __init__(self, new: Callable[[], Any]) -> None:
        self.tests = self.ok = 0
        self.detect = new()
        self.recover = new()
        self.cold = new()
        self.attempts = new()

    def merge(self, later: _FailRow) -> None:
        add_fields(self, later, ("tests", "ok"), ("detect", "recover", "cold", "attempts"))


class FailoverFold:
    KINDS: ClassVar[dict[str, str]] = {"scenario_result": "on_result"}
    ONLY_SCENARIOS: ClassVar[dict[str, tuple[str, ...]]] = {"scenario_result": ("provider_failover",)}

    def __init__(self, *, exact: bool = True) -> None:
        self._new = new_sample(exact)  # every value, or bounded sketches (folds/common.new_sample)
        self._rows: dict[tuple[Any, Any, Any], _FailRow] = {}

    def on_result(self, ev: dict[str, Any]) -> None:
        get = ev.get
        if get("scenario") != "provider_failover" or is_cancelled(ev):
            return
        m = get("metrics")
        if type(m) is not dict:
            return
        key = (get("provider"), get("model"), m.get("mode") or "unknown")
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _FailRow(self._new)
        row.tests += 1
        row.ok += get("ok") is True
        for name, arr in (
            ("detect_ms", row.detect),
            ("recover_ms", row.recover),
            ("cold_load_ms", row.cold),
            ("attempts", row.attempts),
        ):
            v = m.get(name)
            if is_num(v):
                arr.append(v)

    def merge(self, later: FailoverFold) -> None:
        """Join the state over a later stretch of the log (folds/merging.py)."""
        add_rows(self._rows, later._rows)

    def snapshot(self) -> dict[str, dict[str, FailoverMode]]:
        out: dict[str, dict[str, FailoverMode]] = {}
        for (prov, model, mode), row in sorted(self._rows.items(), key=lambda kv: str(kv[0])):
            out.setdefault(model_key(prov, model), {})[str(mode)] = {
                "tests": row.tests,
                "ok_tests": row.ok,
                "success": rate(row.ok, row.tests),
                "detect_ms": describe(sorted_sample(row.detect)),
                "recover_ms": describe(sorted_sample(row.recover)),
                "cold_load_ms": describe(sorted_sample(row.cold)),
                "attempts": describe(sorted_sample(row.attempts)),
            }
        return out
