"""Weighted scenario choice: each test draws its scenario from the configured weights."""

from __future__ import annotations

import random
from collections.abc import Mapping


class ScenarioPicker:
    def __init__(self, weights: Mapping[str, float], rng: random.Random) -> None:
        active = {name: float(w) for name, w in weights.items() if w > 0}
        if not active:
            raise ValueError("no scenario has a positive weight")
        self.names = list(active)
        self._cum: list[float] = []
        total = 0.0
        for name in self.names:
            total += active[name]
            self._cum.append(total)
        self.weights = active
        self._rng = rng

    def pick(self) -> str:
        return self._rng.choices(self.names, cum_weights=self._cum, k=1)[0]
