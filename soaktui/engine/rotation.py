"""Model rotation: stay on a model for a random share of tests, then move to the next.

Models come in discovery's preference order; each turn on a model lasts a random number of tests
in [min_tests, max_tests] drawn from the run's seeded RNG, so a seed reproduces the sequence. After
the last model the rotation wraps around. `skip()` ends the current turn at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from soaktui.providers.types import ModelInfo


@dataclass
class Turn:
    model: ModelInfo
    position: int
    planned_tests: int
    reason: str  # start | rotation | skip
    done: int = 0


class Rotation:
    def __init__(self, models: list[ModelInfo], rng: random.Random, min_tests: int = 5, max_tests: int = 10):
        if not models:
            raise ValueError("rotation needs at least one model")
        if not 1 <= min_tests <= max_tests:
            raise ValueError("need 1 <= min_tests <= max_tests")
        self.models = list(models)
        self._rng = rng
        self._min = min_tests
        self._max = max_tests
        self.turn = self._new_turn(0, "start")
        self.skipped: set[str] = set()  # keys skipped by the user at least once

    def _new_turn(self, position: int, reason: str) -> Turn:
        return Turn(self.models[position], position, self._rng.randint(self._min, self._max), reason)

    @property
    def current(self) -> ModelInfo:
        return self.turn.model

    def upcoming(self, n: int = 5) -> list[ModelInfo]:
        k = len(self.models)
        return (
            [self.models[(self.turn.position + i) % k] for i in range(1, min(n, k - 1) + 1)] if k > 1 else []
        )

    def record_test(self) -> Turn | None:
        """Count a finished test; returns the new turn when the model changes (or a new turn starts)."""
        self.turn.done += 1
        if self.turn.done >= self.turn.planned_tests:
            return self.advance("rotation")
        return None

    def skip(self) -> Turn:
        self.skipped.add(self.current.key)
        return self.advance("skip")

    def advance(self, reason: str) -> Turn:
        self.turn = self._new_turn((self.turn.position + 1) % len(self.models), reason)
        return self.turn
