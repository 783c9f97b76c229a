"""Which simulated models are loaded, and when a cold one will be ready to answer.

LM Studio and Ollama load a model on its first request and can unload it on demand; soaktui's
provider_failover scenario unloads a model and times the next request (a cold load). The simulator
keeps that state here: the flavor's listings read it, its unload endpoints change it, and a chat
request on a model that is not loaded starts a load and waits for it. Requests that arrive while
the load is under way wait for the same load, as on a real server; nobody pays for it twice.
"""

from __future__ import annotations

from soaktui.simulator.personas import Persona


class LoadState:
    """Loaded models of one simulator. `cold_loads=False`: every model counts as loaded, always."""

    def __init__(self, personas: list[Persona], cold_loads: bool) -> None:
        self.cold_loads = cold_loads
        self._loaded = {p.id for p in personas if p.loaded or not cold_loads}
        self._ready_at: dict[str, int] = {}  # model id -> perf_counter_ns() when its load is done

    def is_loaded(self, p: Persona) -> bool:
        """Loaded or being loaded (a listing shows a model as soon as its load has started)."""
        return p.id in self._loaded

    def unload(self, p: Persona) -> bool:
        """Mark `p` not loaded; False when it was not loaded (or cold loads are off)."""
        if not self.cold_loads or p.id not in self._loaded:
            return False
        self._loaded.discard(p.id)
        self._ready_at.pop(p.id, None)
        return True

    def wait_ns(self, p: Persona, now_ns: int, load_ns: int) -> int:
        """How long a request arriving at `now_ns` waits for `p` to be loaded; starts a load if needed."""
        if p.id not in self._loaded:
            self._loaded.add(p.id)
            if load_ns <= 0:
                return 0
            self._ready_at[p.id] = now_ns + load_ns
            return load_ns
        ready = self._ready_at.get(p.id)
        if ready is None:
            return 0
        if ready <= now_ns:
            del self._ready_at[p.id]
            return 0
        return ready - now_ns
