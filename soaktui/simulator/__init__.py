"""The built-in simulator: an OpenAI-compatible server of simulated models with fault injection.

`soaktui simulate` runs it in the foreground, `soaktui --demo` in a child process (launcher.py), the
tests on a thread (`run_in_thread`, threaded.py). See server.py for the endpoints and docs in each
module for the details.
"""

from __future__ import annotations

from soaktui.simulator.faults import FAULT_KINDS, FaultPlan, plan_from_specs
from soaktui.simulator.flavors import FLAVORS
from soaktui.simulator.personas import Persona, default_personas, flaky_personas, persona_set
from soaktui.simulator.server import SimConfig, SimServer
from soaktui.simulator.textgen import count_tokens
from soaktui.simulator.threaded import SimHandle, run_in_thread

__all__ = [
    "FAULT_KINDS",
    "FLAVORS",
    "FaultPlan",
    "Persona",
    "SimConfig",
    "SimHandle",
    "SimServer",
    "count_tokens",
    "default_personas",
    "flaky_personas",
    "persona_set",
    "plan_from_specs",
    "run_in_thread",
]
