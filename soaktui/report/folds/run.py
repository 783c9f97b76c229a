"""The run itself: when and how it started and ended, what discovery found, and every model's facts."""

from __future__ import annotations

from typing import Any, ClassVar

from soaktui.report.folds.common import is_num, iso, model_key
from soaktui.report.snapshot import Run

# The discovery facts of a model the report keeps (providers_discovered models; docs/events.md).
MODEL_FACTS = (
    "type",
    "size_bytes",
    "size_estimated",
    "params_b",
    "quantization",
    "context_length",
    "context_trained",
    "tool_use",
    "family",
    "cloud",
)


class RunFold:
    KINDS: ClassVar[dict[str, str]] = {
        "run_started": "on_run_started",
        "providers_discovered": "on_discovered",
        "run_finished": "on_finished",
    }

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.started: dict[str, Any] | None = None
        self.finished: dict[str, Any] | None = None
        self.discovered: dict[str, Any] | None = None
        self.model_info: dict[str, dict[str, Any]] = {}

    def on_run_started(self, ev: dict[str, Any]) -> None:
        self.started = {k: v for k, v in ev.items() if k not in ("kind", "seq", "mono_ns")}
        self.run_id = ev.get("run_id") or self.run_id

    def on_discovered(self, ev: dict[str, Any]) -> None:
        self.discovered = {
            "providers": [
                {k: p.get(k) for k in ("name", "kind", "base_url", "version")}
                | {"models": len(p.get("models") or [])}
                for p in ev.get("providers") or []
            ],
            "selected": list(ev.get("selected") or []),
            "excluded": list(ev.get("excluded") or []),
            "probed": list(ev.get("probed") or []),
            "unreachable": dict(ev.get("unreachable") or {}),
        }
        for p in ev.get("providers") or []:
            for m in p.get("models") or []:
                key = m.get("key") or model_key(m.get("provider") or p.get("name"), m.get("id"))
                self.model_info[key] = {k: m.get(k) for k in MODEL_FACTS}

    def on_finished(self, ev: dict[str, Any]) -> None:
        self.finished = {k: v for k, v in ev.items() if k not in ("kind", "run_id", "v")}

    @property
    def selected(self) -> list[str]:
        """Model keys in rotation order, as discovery chose them."""
        return list((self.discovered or {}).get("selected") or [])

    def order(self, keys: Any) -> list[str]:
        """`keys` in report order: the rotation's first, then the rest sorted."""
        selected = self.selected
        return selected + sorted(k for k in keys if k not in selected)

    def header(
        self, *, run_id: str | None, first_t: Any, last_t: Any, elapsed_s: float | None, max_rss: Any
    ) -> Run:
        """The run section. The other arguments come from events this fold does not read: `run_id`
        (run_started's, else the first event's), the first and last event times, the peak RSS."""
        st = self.started or {}
        fin = self.finished
        start_t = st.get("t", first_t)
        end_t = fin.get("t") if fin else last_t
        if fin and is_num(fin.get("elapsed_s")):
            duration, source = fin["elapsed_s"], "run_finished.elapsed_s"
        else:
            duration, source = elapsed_s, "first to last event"
        disc = self.discovered or {}
        return {
            "run_id": run_id,
            "version": st.get("version"),
            "started_at": iso(start_t),
            "ended_at": iso(end_t),
            "started_t": start_t,
            "ended_t": end_t,
            "run_started_seen": self.started is not None,
            "finished": fin is not None,
            "finish_reason": fin.get("reason") if fin else None,
            "ended_without_finishing": fin is None,
            "duration_s": duration,
            "duration_source": source,
            "planned_duration_s": st.get("duration_s"),
            "host": st.get("host"),
            "out_dir": st.get("out_dir"),
            "seed": st.get("seed"),
            "demo": st.get("demo"),
            "throttle_pct": st.get("throttle_pct"),
            "quiet_hours": st.get("quiet_hours"),
            "scenario_weights": st.get("scenarios"),
            "settings": st.get("settings"),
            "providers": disc.get("providers", []),
            "selected": disc.get("selected", []),
            "excluded": disc.get("excluded", []),
            "probed": disc.get("probed", []),
            "unreachable": disc.get("unreachable", {}),
            "max_rss_bytes": max_rss,
            "final": {"tests": fin.get("tests"), "ok_tests": fin.get("ok_tests"), "requests": fin.get("requests")}
            if fin
            else None,
        }
