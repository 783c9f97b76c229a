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
    """Loaded models of one simulator. `cold_loads=False`: every model counts as loaded, always.

    `max_loaded`: at most that many models stay loaded; starting a load unloads the least recently
    used idle one (llama.cpp's router: --models-max, default 4, server-models.cpp LRU).
    """

    def __init__(self, personas: list[Persona], cold_loads: bool, max_loaded: int | None = None) -> None:
        self.cold_loads = cold_loads
        self.max_loaded = max_loaded
        loaded = [p.id for p in personas if p.loaded or not cold_loads]
        if cold_loads and max_loaded is not None:
            loaded = loaded[:max_loaded]
        self._loaded = set(loaded)
        self._ready_at: dict[str, int] = {}  # model id -> perf_counter_ns() when its load is done
        self._last_used: dict[str, int] = {pid: i for i, pid in enumerate(loaded)}
        self._busy: dict[str, int] = {}
        self._uses = len(loaded)

    def state(self, p: Persona, now_ns: int) -> str:
        """The model's state: "loaded", "loading" (its load is under way) or "unloaded"."""
        if p.id not in self._loaded:
            return "unloaded"
        ready = self._ready_at.get(p.id)
        return "loading" if ready is not None and ready > now_ns else "loaded"

    def begin(self, p: Persona) -> None:
        """A request on `p` starts (it is not evicted while busy)."""
        self._busy[p.id] = self._busy.get(p.id, 0) + 1
        self._uses += 1
        self._last_used[p.id] = self._uses

    def end(self, p: Persona) -> None:
        n = self._busy.get(p.id, 0) - 1
        if n > 0:
            self._busy[p.id] = n
        else:
            self._busy.pop(p.id, None)

    def _evict_for(self, pid: str) -> None:
        if self.max_loaded is None:
            return
        while len(self._loaded) > self.max_loaded:
            idle = [m for m in self._loaded if m != pid and not self._busy.get(m)]
            if not idle:
                return
            lru = min(idle, key=lambda m: self._last_used.get(m, 0))
            self._loaded.discard(lru)
            self._ready_at.pop(lru, None)

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
            self._evict_for(p.id)
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
