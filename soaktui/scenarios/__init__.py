"""The registered scenarios. A scenario not built yet is simply not here (its weight is ignored).

Each scenario class declares its `name`, default `weight` and `success_rule`. `SCENARIOS` is their
order (the order `soaktui config` and config's messages list them); importing this package
registers them with the settings (soaktui.config.registry), which stand a floor below.
"""

from __future__ import annotations

from soaktui.config import register_scenarios
from soaktui.scenarios.base import Scenario
from soaktui.scenarios.concurrent_load import ConcurrentLoad
from soaktui.scenarios.large_context import LargeContext
from soaktui.scenarios.prompt_variety import PromptVariety
from soaktui.scenarios.provider_failover import ProviderFailover
from soaktui.scenarios.simple_inference import SimpleInference
from soaktui.scenarios.streaming import Streaming
from soaktui.scenarios.structured_output import StructuredOutput
from soaktui.scenarios.tool_calling import ToolCalling

SCENARIOS: tuple[type[Scenario], ...] = (
    SimpleInference,
    Streaming,
    ConcurrentLoad,
    LargeContext,
    ProviderFailover,
    PromptVariety,
    ToolCalling,
    StructuredOutput,
)

REGISTRY: dict[str, type[Scenario]] = {cls.name: cls for cls in SCENARIOS}

register_scenarios(SCENARIOS)
