"""Problems that are not a request's failure (`error` events: discovery, a sink, a scenario crash,
the engine), by class and where they happened."""

from __future__ import annotations

from typing import Any, ClassVar

from soaktui.report.snapshot import EngineError

MAX_ENGINE_ERRORS = 100  # distinct (class, where) pairs; later ones count as ("other", "(more)")
EXAMPLE_CHARS = 300  # an example message is cut to this


class EngineErrorFold:
    KINDS: ClassVar[dict[str, str]] = {"error": "on_error"}

    def __init__(self) -> None:
        self._errors: dict[tuple[str, str], list[Any]] = {}  # -> [count, example]

    def on_error(self, ev: dict[str, Any]) -> None:
        key = (str(ev.get("error_class") or "other"), str(ev.get("where") or "unknown"))
        rec = self._errors.get(key)
        if rec is None:
            if len(self._errors) >= MAX_ENGINE_ERRORS:
                key = ("other", "(more)")
                rec = self._errors.setdefault(key, [0, None])
            else:
                rec = self._errors[key] = [0, None]
        rec[0] += 1
        if rec[1] is None and ev.get("message"):
            rec[1] = str(ev.get("message"))[:EXAMPLE_CHARS]

    def snapshot(self) -> list[EngineError]:
        return [
            {"error_class": cls, "where": where, "count": n, "example": ex}
            for (cls, where), (n, ex) in sorted(self._errors.items(), key=lambda kv: -kv[1][0])
        ]
