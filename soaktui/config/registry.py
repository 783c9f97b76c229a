"""The scenarios the settings know of, as the scenario classes declare them.

Each scenario class (soaktui/scenarios/) declares its `name` and default `weight`; the package
soaktui.scenarios registers its classes here when it is imported, in the order `soaktui config` and
the error messages list them. The settings stand a floor below the scenarios, so they cannot import
them: they read this registry when they check a scenario name or build the default weights, and
ask the caller to import soaktui.scenarios first when it is still empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol


class ScenarioDeclaration(Protocol):
    """What a scenario class declares for the settings (soaktui.scenarios.base.Scenario)."""

    name: str
    weight: float


_weights: dict[str, float] = {}


def register_scenarios(scenarios: Iterable[ScenarioDeclaration]) -> None:
    """Make these scenarios known, with their default weights; registering a name again replaces it."""
    for cls in scenarios:
        name = getattr(cls, "name", "")
        weight = getattr(cls, "weight", None)
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise ValueError(f"{cls!r}: a scenario's name must be a lower-case identifier, not {name!r}")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (math.isfinite(weight) and weight >= 0)
        ):
            raise ValueError(f"{cls!r}: a scenario's default weight must be a number >= 0, not {weight!r}")
        _weights[name] = float(weight)


def known_scenarios() -> tuple[str, ...]:
    """The registered scenario names, in registration order."""
    if not _weights:
        raise RuntimeError("no scenarios registered: import soaktui.scenarios before loading the settings")
    return tuple(_weights)


def default_weights() -> dict[str, float]:
    """{scenario: default weight}, in registration order."""
    known_scenarios()
    return dict(_weights)


def registered_weights() -> dict[str, float]:
    """The same, empty rather than an error before registration (the default of `Settings.weights`)."""
    return dict(_weights)
